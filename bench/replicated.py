"""Scenario 6, the replicated control plane on etcd (``gce_plugin.localcluster``): etcd, the
emulator, ``gce-plugin run --store`` replicas and Envoy as processes on loopback.

- Compute calls per poll against the replica count (1, 3, 5): the emulator's calls over a window
  divided by the polls every replica made in it (only the leader polls, so the number must not
  grow with replicas), and the calls per second.
- Failover: the leader killed (-9) -> the first poll of the new leader (its Compute call counter
  leaves 0) -> Envoy lists a VM added at the kill. Bounded by the lease TTL plus one refresh.
- etcd writes per poll at scale (quick: 100 upstreams, full: 1,000): keys the leader writes in
  polls where nothing changed (target 0), then when one VM changed (target: the endpoints keys of
  just the upstreams of its group).
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from pathlib import Path

from bench.fleet import PROJECT as FLEET_PROJECT
from bench.fleet import FleetSize, build_fleet
from bench.footprint import write_manifests
from bench.report import Report
from gce_plugin.demo import examples_dir, own_block, relocate_fixture
from gce_plugin.emulator import Emulator
from gce_plugin.localcluster import Replica, ReplicatedStack
from gce_plugin.localstack import wait_for

NAME = "replicated"
TITLE = "Replicated control plane on etcd"
REFRESH = 1.0
TTL = 3
ROUTES = [("/web", "default.web"), ("/api", "default.api")]
CALLS = "gce_plugin_compute_api_calls_total"
POLLS = "gce_plugin_discovery_polls_total"
WRITES = 'gce_plugin_store_writes_total{kind="endpoints"}'
SCALE_QUICK = FleetSize(zones=1, per_zone=100, zonal_per_zone=10, group_size=10, upstreams_per_group=10)
SCALE_FULL = FleetSize(zones=1, per_zone=1000, zonal_per_zone=10, group_size=10, upstreams_per_group=10)


def _stack(work: Path, replicas: int, members: int) -> ReplicatedStack:
    work.mkdir(parents=True)
    relocate_fixture(examples_dir() / "fixture.yaml", work / "fixture.yaml", own_block())
    return ReplicatedStack(
        work / "fixture.yaml",
        ROUTES,
        replicas=replicas,
        members=members,
        refresh=REFRESH,
        lease_ttl=TTL,
        work_dir=work,
    )


def _start(stack: ReplicatedStack, envoy: bool) -> None:
    stack.etcd.start()
    stack.start_emulator()
    for index in range(len(stack.replicas)):
        stack.start_replica(index)
    applied = stack.gce_plugin("apply", "-f", str(examples_dir() / "upstreams"))
    if applied.returncode != 0:
        raise RuntimeError(f"apply failed: {applied.stderr}")
    if envoy:
        stack.start_envoy()


def calls_per_poll(work: Path, replicas: int, members: int, window: float) -> dict[str, float]:
    stack = _stack(work, replicas, members)
    try:
        _start(stack, envoy=False)
        wait_for("a poll", lambda: sum(r.metric(POLLS) for r in stack.replicas) >= 2, timeout=30)
        polls_before = sum(r.metric(POLLS) for r in stack.replicas)
        stack.emulator_admin("POST", "stats/reset")
        time.sleep(window)
        calls = stack.emulator_admin("GET", "stats")["total"]
        polls = sum(r.metric(POLLS) for r in stack.replicas) - polls_before
        pollers = sum(1 for r in stack.replicas if r.metric(CALLS) > 0)
        return {"calls": calls, "polls": polls, "per_poll": calls / max(polls, 1), "pollers": pollers}
    finally:
        stack.close()


def failover(work: Path, trials: int) -> list[dict[str, float]]:
    stack = _stack(work, 3, 3)
    samples = []
    try:
        _start(stack, envoy=True)
        envoy = stack.envoys[0]
        wait_for("web in Envoy", lambda: len(envoy.cluster_hosts("web_default")) == 3, timeout=30)
        block = next(iter(envoy.cluster_hosts("web_default"))).rsplit(".", 1)[0] + "."
        for n in range(trials):
            old = wait_for("one leader", stack.leader, timeout=30, interval=0.1)
            others = [r for r in stack.replicas if r is not old]
            before = {r.index: r.metric(CALLS) for r in others}
            killed = time.monotonic()
            stack.kill_replica(old.index, signal.SIGKILL)
            address = f"{block}{40 + n}"
            stack.emulator_admin(
                "POST",
                "projects/demo-project/zones/us-central1-a/instances",
                {"name": f"web-added-{n}", "networkIP": address, "groups": ["web"]},
            )

            def polled(others: list[Replica] = others, before: dict[int, float] = before) -> bool:
                return any(r.metric(CALLS) > before[r.index] for r in others)

            wait_for("the new leader's first poll", polled, timeout=60, interval=0.05)
            first_poll = time.monotonic() - killed
            wait_for(
                "Envoy updated",
                lambda a=address: f"{a}:8080" in envoy.cluster_hosts("web_default"),  # type: ignore[misc]
                timeout=60,
                interval=0.02,
            )
            samples.append({"first_poll_s": first_poll, "envoy_s": time.monotonic() - killed})
            stack.start_replica(old.index)
    finally:
        stack.close()
    return samples


def writes_at_scale(work: Path, size: FleetSize) -> dict[str, float]:
    fleet = build_fleet(size)
    upstreams = fleet.upstreams()
    group = fleet.groups[0]
    zone, vm = group.members[0]
    work.mkdir(parents=True)
    config = work / "upstreams"
    config.mkdir()
    write_manifests(config, upstreams)
    stack = ReplicatedStack(
        work / "unused.yaml", replicas=2, members=1, refresh=REFRESH, lease_ttl=TTL, work_dir=work
    )
    with Emulator(fleet.fixture()) as emulator:
        stack.emulator_url = emulator.url
        try:
            stack.etcd.start()
            for index in range(len(stack.replicas)):
                stack.start_replica(index, timeout=120)
            applied = stack.gce_plugin("apply", "-f", str(config))
            if applied.returncode != 0:
                raise RuntimeError(f"apply failed: {applied.stderr[-2000:]}")
            lead = wait_for("one leader", stack.leader, timeout=30, interval=0.1)
            wait_for("every upstream published", lambda: lead.metric(WRITES) >= len(upstreams), timeout=120)
            steady_polls = lead.metric(POLLS)
            steady = lead.metric(WRITES)
            time.sleep(3 * REFRESH)
            quiet_writes = lead.metric(WRITES) - steady
            quiet_polls = lead.metric(POLLS) - steady_polls
            emulator.stop_instance(FLEET_PROJECT, zone, vm)
            wait_for("the change published", lambda: lead.metric(WRITES) > steady + quiet_writes, timeout=30)
            time.sleep(2 * REFRESH)  # later polls: nothing more
            changed_writes = lead.metric(WRITES) - steady - quiet_writes
        finally:
            stack.close()
    return {
        "upstreams": len(upstreams),
        "affected": size.upstreams_per_group,
        "quiet_writes": quiet_writes,
        "quiet_polls": quiet_polls,
        "changed_writes": changed_writes,
    }


def run(quick: bool) -> Report:
    size = SCALE_QUICK if quick else SCALE_FULL
    members = 1 if quick else 3
    window = 3 * REFRESH if quick else 10 * REFRESH
    trials = 1 if quick else 3
    report = Report(
        NAME,
        TITLE,
        "quick" if quick else "full",
        {"refresh_s": REFRESH, "lease_ttl_s": TTL, "etcd_members": members, "window_s": window},
    )
    work = Path(tempfile.mkdtemp(prefix="bench-replicated-"))
    try:
        per_count = {n: calls_per_poll(work / f"calls-{n}", n, members, window) for n in (1, 3, 5)}
        for n, result in per_count.items():
            report.metric(
                f"Compute calls per poll, {n} replica(s)",
                f"{result['per_poll']:.1f} ({result['calls']:.0f} calls, {result['polls']:.0f} polls, "
                f"{result['calls'] / window:.1f}/s, {result['pollers']:.0f} poller)",
            )
        base = per_count[1]["per_poll"]
        report.check(
            "one poller whatever the replica count",
            all(r["pollers"] == 1 for r in per_count.values())
            # calls of a poll cut by either end of the window: within a quarter
            and all(abs(r["per_poll"] - base) <= 0.25 * base for r in per_count.values()),
            ", ".join(f"{n}: {r['per_poll']:.1f}" for n, r in per_count.items()),
        )
        samples = failover(work / "failover", trials)
        worst_poll = max(s["first_poll_s"] for s in samples)
        worst_envoy = max(s["envoy_s"] for s in samples)
        report.metric(
            "failover: kill -> new leader's first poll -> Envoy updated",
            "; ".join(f"{s['first_poll_s']:.2f} s -> {s['envoy_s']:.2f} s" for s in samples),
        )
        report.target(
            "new leader polls within TTL + one refresh",
            f"{worst_poll:.2f} s",
            f"<= {TTL + REFRESH:.0f} s",
            worst_poll <= TTL + REFRESH,
        )
        report.metric("failover: worst kill -> Envoy updated", f"{worst_envoy:.2f}", "s")
        writes = writes_at_scale(work / "writes", size)
        report.metric(
            f"etcd writes in {writes['quiet_polls']:.0f} polls with nothing changed "
            f"({writes['upstreams']:.0f} upstreams)",
            f"{writes['quiet_writes']:.0f}",
        )
        report.metric(
            "etcd writes when one VM changed",
            f"{writes['changed_writes']:.0f} (upstreams of its group: {writes['affected']:.0f})",
        )
        report.check("no writes when nothing changed", writes["quiet_writes"] == 0)
        report.check(
            "only the changed upstreams' keys written",
            writes["changed_writes"] == writes["affected"],
            f"{writes['changed_writes']:.0f} writes",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report
