"""``make run``: the whole system on this machine, no cloud account needed.

Starts the Compute emulator on the example fixture (its VMs are small local HTTP servers), the
control plane on examples/upstreams/, and a real Envoy; checks that traffic through Envoy reaches
every VM, prints the curl commands to try, and runs until Ctrl-C (``--check`` exits instead).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from gce_plugin.localstack import LocalStack, http_get, wait_for

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROUTES = [("/web", "default.web"), ("/api", "default.api")]
# What examples/fixture.yaml runs: the RUNNING VMs behind each route.
EXPECTED = {"/web": {"web-1", "web-2", "web-3"}, "/api": {"api-1", "api-2"}}


def reached_backends(url: str, want: set[str], tries: int = 60) -> set[str]:
    seen: set[str] = set()
    for _ in range(tries):
        status, body = http_get(url)
        if status == 200 and body.startswith("hello from "):
            seen.add(body.split()[2])
        if seen >= want:
            break
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gce_plugin.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit after checking traffic reaches every VM")
    parser.add_argument("--fixture", default=str(EXAMPLES / "fixture.yaml"))
    parser.add_argument("--config", default=str(EXAMPLES / "upstreams"))
    args = parser.parse_args(argv)

    print("starting the Compute emulator, the control plane and Envoy ...", flush=True)
    stack = LocalStack(args.fixture, args.config, routes=ROUTES, refresh=2.0)
    with stack:
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
        if not ok:
            print("the demo did not reach every VM; logs are in", stack.work_dir, file=sys.stderr)
            for proc in (stack.emulator, stack.control_plane, envoy.process):
                if proc is not None:
                    print(f"--- {proc.name} ---\n{proc.log_text()[-3000:]}", file=sys.stderr)
            return 1
        print(
            f"""
Envoy routes to the VMs the control plane discovered from the Compute emulator:

  curl {envoy.url}/web
  curl {envoy.url}/api
  curl -s http://127.0.0.1:{envoy.admin_port}/clusters | grep -E '^(web|api)_default::.*::health_flags'

Change the fleet and watch Envoy follow within one refresh (2 s):

  curl -X POST {stack.emulator_url}admin/projects/demo-project/zones/us-central1-a/instances/web-2/stop
  curl -s {stack.emulator_url}admin/stats
  curl -s http://127.0.0.1:{stack.metrics_port}/metrics | grep gce_plugin_upstream_endpoints
""",
            flush=True,
        )
        if args.check:
            return 0
        print("running; press Ctrl-C to stop", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        while not stopped.wait(1.0):
            for proc in (stack.emulator, stack.control_plane, envoy.process):
                if proc is not None and not proc.alive():
                    print(f"{proc.name} exited; stopping", file=sys.stderr)
                    return 1
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
