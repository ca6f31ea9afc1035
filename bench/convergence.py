"""Scenario 4, convergence with a real Envoy: a VM added in the emulator until Envoy's admin
``/clusters`` lists it. Emulator, ``gce-plugin run`` (refresh 1 s) and Envoy run as processes
(``gce_plugin.localstack``). 20 trials (quick: 3), each at a random phase of the poll cycle.

Three numbers per trial, all from wall-clock timestamps on this one machine:

- end to end: from the admin call that added the VM returning to the first ``/clusters`` answer
  (polled every few ms) that lists it. Includes waiting for the next poll: 0..1 s by phase.
- end to end minus the refresh interval: the brief's correction; a worst-case-phase bound, so it
  is often negative.
- the control plane's own delay (what the target is about): from the emulator's answer to the last
  discovery call of the first poll that saw the VM (emulator request log; a poll sees the VM when
  both its ``listInstances`` and its ``instances.list`` were answered after the add) to Envoy listing
  it. That covers parsing, the join, translation, the snapshot, the xDS push and Envoy applying it.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bench.fleet import PROJECT as FLEET_PROJECT
from bench.fleet import FleetSize, build_fleet
from bench.footprint import SyncClient, write_manifests
from bench.report import Report, median, percentile
from gce_plugin.emulator import Emulator
from gce_plugin.localstack import (
    LocalStack,
    Process,
    free_port,
    start_control_plane,
    wait_for,
)

NAME = "convergence"
TITLE = "Convergence with a real Envoy"
PROJECT = "bench-project"
ZONE = "us-central1-a"
GROUP = "web"
CLUSTER = "web_default"
REFRESH = 1.0
POLL_GAP = 0.3  # discovery calls more than this apart belong to different polls
C = TypeVar("C")
MANIFEST = f"""\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {{name: web, namespace: default}}
spec:
  upstreamSpec:
    gce: {{instanceGroupName: {GROUP}, instanceGroupRegion: {ZONE}, projectId: {PROJECT}, port: 8080}}
"""


def fixture() -> dict[str, Any]:
    instances = [{"name": f"web-{i}", "networkIP": f"10.1.0.{i}"} for i in range(1, 4)]
    return {
        "projects": {
            PROJECT: {
                "zones": {
                    ZONE: {
                        "instances": instances,
                        "instanceGroups": [{"name": GROUP, "instances": [i["name"] for i in instances]}],
                    }
                }
            }
        }
    }


def discovery_polls(requests: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The emulator's logged discovery calls, grouped into polls (calls close together in time)."""
    calls = [r for r in requests if r["method"] in ("instanceGroups.listInstances", "instances.list")]
    return by_poll(calls, lambda r: float(r["at"]))


def by_poll(calls: Iterable[C], at: Callable[[C], float]) -> list[list[C]]:
    """``calls`` in time order, grouped into polls: calls of one poll are never POLL_GAP apart."""
    polls: list[list[C]] = []
    for call in sorted(calls, key=at):
        if polls and at(call) - at(polls[-1][-1]) < POLL_GAP:
            polls[-1].append(call)
        else:
            polls.append([call])
    return polls


def seeing_poll(
    polls: list[list[dict[str, Any]]], before: float, after: float, seen: float
) -> list[dict[str, Any]] | None:
    """The poll that saw a VM added between ``before`` (the admin call sent) and ``after`` (its answer
    received), Envoy having listed the VM at ``seen``. A poll whose calls were all answered after
    ``after`` certainly saw it; one that began between ``before`` and ``after`` may have (the emulator
    applies the add before its answer reaches the caller, and a loaded machine can stretch that gap
    to many milliseconds). The first certain poll done by ``seen`` is the one, if there is one;
    otherwise Envoy's listing can only come from a poll that began inside the gap."""
    complete = [p for p in polls if len(p) >= 2 and max(c["at"] for c in p) <= seen]
    certain = next((p for p in complete if min(c["at"] for c in p) > after), None)
    if certain is not None:
        return certain
    return next((p for p in complete if min(c["at"] for c in p) > before), None)


def trial(stack: LocalStack, n: int) -> dict[str, float]:
    envoy = stack.envoys[0]
    name, address = f"added-{n}", f"10.1.1.{n + 1}"
    host = f"{address}:8080"
    time.sleep(random.uniform(0, REFRESH))  # a random phase of the poll cycle
    before = time.time()
    stack.emulator_admin(
        "POST",
        f"projects/{PROJECT}/zones/{ZONE}/instances",
        {"name": name, "networkIP": address, "groups": [GROUP]},
    )
    added = time.time()
    wait_for(
        f"Envoy to list {host}", lambda: host in envoy.cluster_hosts(CLUSTER), timeout=15, interval=0.003
    )
    seen = time.time()
    polls = discovery_polls(stack.emulator_admin("GET", "stats")["requests"])
    saw = seeing_poll(polls, before, added, seen)
    if saw is None:
        raise RuntimeError(f"trial {n}: no poll after the add in the emulator's request log")
    answered = max(c["at"] for c in saw)
    return {"end_to_end_s": seen - added, "own_delay_s": seen - answered, "poll_wait_s": answered - added}


# At scale: the footprint's fleet (quick: 1,000 upstreams / 10,000 endpoints; full: 10,000 /
# 100,000), one ADS client standing in for Envoy (its /clusters would be megabytes of JSON per look).
SCALE_QUICK = FleetSize(zones=5, per_zone=200, zonal_per_zone=16, group_size=10, upstreams_per_group=10)
SCALE_FULL = FleetSize(zones=5, per_zone=2000, zonal_per_zone=160, group_size=10, upstreams_per_group=10)


def at_scale(size: FleetSize, trials: int) -> list[dict[str, float]]:
    """Own delay with many upstreams: from the last answer of the poll that saw the VM to the ADS
    client getting the assignment with it. The emulator runs in this process, so every Compute
    request it answers is logged with its time."""
    fleet = build_fleet(size)
    upstreams = fleet.upstreams()
    group = fleet.groups[0]
    cluster = f"{group.name}-u00_default"
    work = Path(tempfile.mkdtemp(prefix="bench-convergence-scale-"))
    answered: list[tuple[float, str, str]] = []
    control_plane: Process | None = None
    try:
        config = work / "upstreams"
        config.mkdir()
        write_manifests(config, upstreams)
        with Emulator(fleet.fixture()) as emulator:
            record = emulator.stats_recorder.record

            def logged(method: str, verb: str, path: str, status: int, authorization: str | None) -> None:
                answered.append((time.time(), method, path))
                record(method, verb, path, status, authorization)

            emulator.stats_recorder.record = logged  # type: ignore[method-assign]
            xds_port, admin_port = free_port(), free_port()
            control_plane = start_control_plane(
                config,
                emulator.url,
                work,
                refresh=REFRESH,
                xds_port=xds_port,
                metrics_port=admin_port,
                extra_args=["--log-level", "warning"],
                timeout=300,
            )

            async def trials_of() -> list[dict[str, float]]:
                observer = SyncClient(0, xds_port, observer=True, expected_clusters=len(upstreams))
                task = asyncio.create_task(observer.run())
                try:
                    await asyncio.wait_for(observer.full_eds.wait(), 600)
                    samples = []
                    for n in range(trials):
                        await asyncio.sleep(random.uniform(0, REFRESH))  # a random phase
                        had = observer.endpoints.get(cluster)
                        vm = {"name": f"added-{n}", "networkIP": f"10.250.0.{n + 1}"}
                        sent = time.time()
                        await asyncio.to_thread(
                            emulator.add_instance, FLEET_PROJECT, vm, [group.name], group.location
                        )
                        added = time.time()
                        deadline = time.monotonic() + 60
                        while observer.endpoints.get(cluster) == had:
                            if time.monotonic() > deadline:
                                raise TimeoutError(f"trial {n}: the ADS client never got the new VM")
                            await asyncio.sleep(0.002)
                        seen = time.time()
                        samples.append(_scale_sample(answered, sent, added, seen, group.name, group.location))
                    return samples
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

            return asyncio.run(trials_of())
    finally:
        if control_plane is not None:
            control_plane.stop()
        shutil.rmtree(work, ignore_errors=True)


def _scale_sample(
    answered: list[tuple[float, str, str]], before: float, added: float, seen: float, group: str, zone: str
) -> dict[str, float]:
    """The poll that saw the VM: the first one (calls of one poll are never POLL_GAP apart) that has
    the group's ``listInstances`` and every page of its zone's ``instances.list`` answered after the add
    (``seeing_poll``'s rule: after ``added`` if such a poll ended by ``seen``, else after ``before``).
    Both, because the join needs the VM in the member listing and in the zone's instance listing: a
    poll that listed the zone before the add and the members after it skips the VM (it is not known
    to be running yet), and the next poll serves it."""
    # Whole polls: one may begin before the add.
    polls = by_poll((c for c in answered if c[0] <= seen), lambda c: c[0])

    def saw(poll: list[tuple[float, str, str]], after: float) -> bool:
        members = [c[0] for c in poll if c[1].endswith("listInstances") and f"/{group}/" in c[2]]
        listed = [c[0] for c in poll if c[1] == "instances.list" and f"zones/{zone}/" in c[2]]
        return bool(members and listed) and min(members + listed) > after

    poll = next((p for p in polls if saw(p, added)), None) or next((p for p in polls if saw(p, before)), None)
    if poll is None:
        raise RuntimeError(f"no poll listed {group} and {zone} between the add and the client seeing it")
    return {
        "end_to_end_s": seen - added,
        "own_delay_s": seen - poll[-1][0],
        "poll_s": poll[-1][0] - poll[0][0],
    }


def run(quick: bool) -> Report:
    trials = 3 if quick else 20
    report = Report(
        NAME, TITLE, "quick" if quick else "full", {"trials": trials, "refresh_s": REFRESH, "envoys": 1}
    )
    work = Path(tempfile.mkdtemp(prefix="bench-convergence-"))
    try:
        (work / "fixture.yaml").write_text(yaml.safe_dump(fixture()))
        config = work / "upstreams"
        config.mkdir()
        (config / "upstreams.yaml").write_text(MANIFEST)
        (work / "stack").mkdir()
        with LocalStack(work / "fixture.yaml", config, refresh=REFRESH, work_dir=work / "stack") as stack:
            envoy = stack.envoys[0]
            wait_for("Envoy's initial hosts", lambda: len(envoy.cluster_hosts(CLUSTER)) == 3, timeout=30)
            samples = [trial(stack, n) for n in range(trials)]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def ms_of(key: str) -> list[float]:
        return [1000 * s[key] for s in samples]

    e2e, own = ms_of("end_to_end_s"), ms_of("own_delay_s")
    minus = [x - 1000 * REFRESH for x in e2e]
    report.metric("end to end p50 / p99", f"{median(e2e):.0f} / {percentile(e2e, 99):.0f} ms")
    report.metric(
        "end to end minus refresh p50 / p99", f"{median(minus):.0f} / {percentile(minus, 99):.0f} ms"
    )
    report.metric("control plane's own delay p50 / p99", f"{median(own):.1f} / {percentile(own, 99):.1f} ms")
    report.metric("control plane's own delay max", max(own), "ms")
    report.target(
        "control plane's own delay p99 < 200 ms (poll answer -> Envoy)",
        f"{percentile(own, 99):.0f} ms",
        "< 200 ms",
        percentile(own, 99) < 200,
    )
    report.target(
        "own delay at the demo's size p99 <= 10 ms",
        f"{percentile(own, 99):.1f} ms",
        "<= 10 ms",
        percentile(own, 99) <= 10,
    )
    report.check("Envoy listed every added VM", len(samples) == trials, f"{len(samples)}/{trials} trials")
    report.note(
        "own delay = Envoy lists the VM - the emulator answered the last call of the first poll that "
        "saw it; end to end minus refresh is the brief's bound (negative when the add fell late in a cycle)."
    )
    report.raw["samples"] = samples

    size = SCALE_QUICK if quick else SCALE_FULL
    scale_trials = 3 if quick else 5
    scale = at_scale(size, scale_trials)
    upstream_count = len(build_fleet(size).upstreams())
    scale_own = [1000 * s["own_delay_s"] for s in scale]
    report.params["at_scale"] = {
        "upstreams": upstream_count,
        "endpoints": upstream_count * 10,
        "trials": scale_trials,
    }
    report.metric(
        f"at {upstream_count:,} upstreams: own delay p50 / max (ADS client)",
        f"{median(scale_own):.0f} / {max(scale_own):.0f} ms",
    )
    report.metric(
        f"at {upstream_count:,} upstreams: poll duration p50",
        1000 * median([s["poll_s"] for s in scale]),
        "ms",
    )
    report.raw["at_scale"] = scale
    if upstream_count >= 10_000:
        p99 = percentile(scale_own, 99)
        report.target(
            f"own delay at {upstream_count:,} upstreams p99 (ADS client)",
            f"{p99:.0f} ms",
            "<= 50 ms",
            p99 <= 50,
        )
    report.note(
        "At scale the stand-in for Envoy is an ADS client (Envoy's /clusters would be megabytes of JSON "
        "per look); no target is set for it."
    )
    return report
