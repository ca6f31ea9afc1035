"""``gce-plugin demo`` (``make run``): the whole system on this machine, no cloud account needed.

Starts the Compute emulator on the example fixture (its VMs are small local HTTP servers), the
control plane on the example manifests, and a real Envoy; checks that traffic through Envoy reaches
every VM, prints the curl commands to try, and runs until Ctrl-C (``--check`` exits instead).

The VMs' backends listen on loopback addresses of a block this demo picks for itself (127.A.B.x), so
two demos (or a demo and the tests) never answer for each other; if one cannot be bound, the demo
fails and says which. The fixture and manifests ship inside the package: this runs from a wheel.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gce_plugin.localstack import LocalStack, Process, http_get, wait_for

ROUTES = [("/web", "default.web"), ("/api", "default.api")]
# What the example fixture runs: the RUNNING VMs behind each route.
EXPECTED = {"/web": {"web-1", "web-2", "web-3"}, "/api": {"api-1", "api-2"}}
FIXTURE_BLOCK = "127.0.0."  # the example fixture's VM addresses


def examples_dir() -> Path:
    """The example fixture and manifests: package data in a wheel, ``examples/`` in a checkout."""
    packaged = Path(str(resources.files("gce_plugin"))) / "examples"
    if (packaged / "fixture.yaml").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "examples"


def own_block(rand: random.Random | None = None) -> str:
    """A loopback block ``127.A.B.`` for this demo's backends, away from 127.0.0.x."""
    rand = rand or random.Random()
    return f"127.{rand.randint(100, 254)}.{rand.randint(1, 254)}."


def relocate_fixture(source: Path, target: Path, block: str) -> dict[str, str]:
    """Copy the fixture with every ``127.0.0.x`` VM address moved to ``block``; VM name -> address."""
    fixture: dict[str, Any] = yaml.safe_load(source.read_text())
    moved: dict[str, str] = {}
    for project in (fixture.get("projects") or {}).values():
        for zone in ((project or {}).get("zones") or {}).values():
            for vm in (zone or {}).get("instances") or []:
                ip = str(vm.get("networkIP", ""))
                if ip.startswith(FIXTURE_BLOCK):
                    vm["networkIP"] = block + ip[len(FIXTURE_BLOCK) :]
                    moved[vm["name"]] = vm["networkIP"]
    target.write_text(yaml.safe_dump(fixture, sort_keys=False))
    return moved


def reached_backends(url: str, want: set[str], tries: int = 60) -> set[str]:
    seen: set[str] = set()
    for _ in range(tries):
        status, body = http_get(url)
        if status == 200 and body.startswith("hello from "):
            seen.add(body.split()[2])
        if seen >= want:
            break
    return seen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="exit after checking traffic reaches every VM")
    parser.add_argument("--fixture", help="Compute fixture (default: the packaged example)")
    parser.add_argument("--config", help="manifest directory (default: the packaged example manifests)")
    parser.add_argument(
        "--backends",
        type=_block,
        metavar="127.A.B.",
        help="loopback block for the example VMs' backends (default: a random one of 127.100-254.x.)",
    )


def _block(value: str) -> str:
    parts = value.rstrip(".").split(".")
    if len(parts) != 3 or parts[0] != "127" or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise argparse.ArgumentTypeError(f"{value!r}: want a loopback block like 127.100.7.")
    return ".".join(parts) + "."


def _missing_backends(stack: LocalStack, moved: dict[str, str]) -> list[str]:
    """RUNNING VMs whose backend the emulator could not bind (another process holds the address)."""
    running = stack.emulator_admin("GET", "backends")["backends"]
    wanted = {vm for names in EXPECTED.values() for vm in names}
    return [f"{vm} ({moved.get(vm, '?')})" for vm in sorted(wanted) if vm not in running]


def _check_traffic(stack: LocalStack) -> bool:
    envoy = stack.envoys[0]
    ok = True
    for prefix, want in EXPECTED.items():
        url = f"{envoy.url}{prefix}"
        try:
            wait_for(f"Envoy to route {prefix}", lambda: http_get(url)[0] == 200, timeout=30)  # noqa: B023
        except TimeoutError as err:
            print(f"  {err}", file=sys.stderr)
        seen = reached_backends(url, want)
        ok &= seen >= want
        reached = ", ".join(sorted(seen)) or "nothing"
        print(f"  {prefix}: reached {reached} (expected {', '.join(sorted(want))})")
    return ok


def _print_usage(stack: LocalStack) -> None:
    envoy = stack.envoys[0]
    admin = f"http://127.0.0.1:{stack.metrics_port}"
    print(
        f"""
Envoy routes to the VMs the control plane discovered from the Compute emulator:

  curl {envoy.url}/web
  curl {envoy.url}/api
  curl -s http://127.0.0.1:{envoy.admin_port}/clusters | grep -E '^(web|api)_default::.*::health_flags'

The control plane's status page (Envoys in sync, upstreams, discovery health): {admin}/
  gce-plugin proxy-status --admin 127.0.0.1:{stack.metrics_port}

Change the fleet and watch Envoy follow within one refresh (2 s):

  curl -X POST {stack.emulator_url}admin/projects/demo-project/zones/us-central1-a/instances/web-2/stop
  curl -s {stack.emulator_url}admin/
  curl -s {admin}/metrics | grep gce_plugin_upstream_endpoints
""",
        flush=True,
    )


def wait_for_ctrl_c(*procs: Process | None) -> int:
    """Runs until Ctrl-C or SIGTERM (0), or until one of ``procs`` exits (1)."""
    print("running; press Ctrl-C to stop", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    while not stopped.wait(1.0):
        for proc in procs:
            if proc is not None and not proc.alive():
                print(f"{proc.name} exited; stopping (its log: {proc.log_path})", file=sys.stderr)
                return 1
    return 0


def main(args: argparse.Namespace) -> int:
    """Runs the demo; its logs stay in their directory when it fails, and go when it succeeded."""
    return run_in_work_dir("gce-plugin-demo-", "the demo's logs", lambda work_dir: _run(args, work_dir))


def run_in_work_dir(prefix: str, what: str, run: Callable[[Path], int]) -> int:
    """``run`` in a new temporary directory, removed when it returns 0 and kept (and named on
    stderr as where ``what`` are) otherwise."""
    work_dir = Path(tempfile.mkdtemp(prefix=prefix))
    code = 1
    try:
        code = run(work_dir)
    finally:
        if code == 0:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"{what} are kept in {work_dir}/", file=sys.stderr)
    return code


def _run(args: argparse.Namespace, work_dir: Path) -> int:
    examples = examples_dir()
    config = args.config or str(examples / "upstreams")
    print("starting the Compute emulator, the control plane and Envoy ...", flush=True)
    fixture = args.fixture or examples / "fixture.yaml"
    stack = LocalStack(fixture, config, routes=ROUTES, refresh=2.0, work_dir=work_dir)
    moved: dict[str, str] = {}
    if args.fixture is None:
        block = args.backends or own_block()
        stack.fixture = stack.work_dir / "fixture.yaml"
        moved = relocate_fixture(examples / "fixture.yaml", stack.fixture, block)
        print(f"  the VMs' backends listen on {block}x (this demo's own addresses)")
    print(f"  logs: {stack.work_dir}/ (emulator.log, control-plane.log, envoy-1.log)", flush=True)
    with stack:
        missing = _missing_backends(stack, moved) if moved else []
        if missing:
            print(f"cannot bind the backends of {', '.join(missing)}: see emulator.log", file=sys.stderr)
            print(stack.logs(), file=sys.stderr)
            return 1
        if not _check_traffic(stack):
            print("the demo did not reach every VM", file=sys.stderr)
            print(stack.logs(), file=sys.stderr)
            return 1
        _print_usage(stack)
        if args.check:
            return 0
        code = wait_for_ctrl_c(stack.emulator, stack.control_plane, stack.envoys[0].process)
    print("stopped")
    return code


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m gce_plugin.demo", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
