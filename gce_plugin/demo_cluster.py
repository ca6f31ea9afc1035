"""``make run-cluster``: the replicated control plane on this machine (docs/running-replicated.md).

Starts three etcd members, the Compute emulator on the example fixture, three ``gce-plugin run
--store`` replicas and an Envoy bootstrapped to all three; applies the example upstreams with
``gce-plugin apply``; checks that traffic through Envoy reaches every VM; prints what to try (kill
the leader, kill an etcd member) and runs until Ctrl-C (``--check`` exits instead). The parts are
``gce_plugin.localcluster``'s; the fixture, its own loopback block and the traffic check are the
one-machine demo's (``gce_plugin.demo``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gce_plugin.demo import (
    ROUTES,
    _check_traffic,
    _missing_backends,
    examples_dir,
    own_block,
    relocate_fixture,
    run_in_work_dir,
    wait_for_ctrl_c,
)
from gce_plugin.localcluster import ReplicatedStack
from gce_plugin.localstack import wait_for

REFRESH = 2.0
LEASE_TTL = 5


def _print_usage(stack: ReplicatedStack) -> None:
    envoy = stack.envoys[0]
    leader = stack.leader()
    store = stack.etcd.store_url
    replicas = "\n".join(
        f"  {r.name}: pid {r.process.proc.pid if r.process else '-'}, xDS 127.0.0.1:{r.xds_port}, "
        f"status page http://127.0.0.1:{r.metrics_port}/" + ("  <- leader" if r is leader else "")
        for r in stack.replicas
    )
    members = "\n".join(
        f"  etcd {m.name}: pid {m.process.proc.pid if m.process else '-'}, {m.client_url}"
        for m in stack.etcd.members
    )
    print(
        f"""
Envoy routes to the VMs the leader discovered and every replica serves:

  curl {envoy.url}/web
  curl {envoy.url}/api

{replicas}
{members}

Try:

  kill -9 <the leader's pid>     another replica leads within the lease TTL ({LEASE_TTL} s); traffic goes on
  kill -9 <an etcd member's pid> nothing changes; kill a second one: everybody serves the last good state
  gce-plugin get upstreams --store {store}
  gce-plugin apply -f {examples_dir() / "upstreams"} --store {store}
  curl -s http://127.0.0.1:{stack.replicas[0].metrics_port}/metrics | grep -E 'gce_plugin_(leader|store_)'
  curl -X POST {stack.emulator_url}admin/projects/demo-project/zones/us-central1-a/instances/web-2/stop
""",
        flush=True,
    )


def main(args: argparse.Namespace) -> int:
    return run_in_work_dir("gce-plugin-cluster-", "the logs", lambda work_dir: _run(args, work_dir))


def _run(args: argparse.Namespace, work_dir: Path) -> int:
    block = own_block()
    moved = relocate_fixture(examples_dir() / "fixture.yaml", work_dir / "fixture.yaml", block)
    print("starting 3 etcd members, the Compute emulator, 3 replicas and Envoy ...", flush=True)
    print(f"  the VMs' backends listen on {block}x; logs: {work_dir}/", flush=True)
    stack = ReplicatedStack(
        work_dir / "fixture.yaml",
        ROUTES,
        replicas=3,
        members=3,
        refresh=REFRESH,
        lease_ttl=LEASE_TTL,
        work_dir=work_dir,
    )
    with stack:
        applied = stack.gce_plugin("apply", "-f", str(examples_dir() / "upstreams"))
        print("gce-plugin apply -f examples/upstreams:\n  " + applied.stdout.strip().replace("\n", "\n  "))
        if applied.returncode != 0:
            print(applied.stderr, file=sys.stderr)
            return 1
        missing = _missing_backends(stack, moved)
        if missing:
            print(f"cannot bind the backends of {', '.join(missing)}: see emulator.log", file=sys.stderr)
            return 1
        if not _check_traffic(stack):
            print("traffic did not reach every VM", file=sys.stderr)
            print(stack.logs(), file=sys.stderr)
            return 1
        wait_for("one leader", stack.leader, timeout=30, interval=0.1)
        _print_usage(stack)
        if args.check:
            return 0
        code = wait_for_ctrl_c(stack.emulator, stack.envoys[0].process)
    print("stopped")
    return code


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(
        prog="python -m gce_plugin.demo_cluster", description=__doc__.splitlines()[0]
    )
    _parser.add_argument("--check", action="store_true", help="exit after checking traffic reaches every VM")
    sys.exit(main(_parser.parse_args()))
