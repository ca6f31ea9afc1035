"""Scenario 6, reconnect storm: every Envoy comes back at once (after a control-plane restart).

``gce-plugin run`` on the footprint's fleet (10,000 upstreams / 100,000 endpoints through the
emulator; quick: 1,000 / 10,000), refresh 60 s. Once the first poll is published (an observer client
has every assignment), 1,000 Envoy-like ADS clients (quick: 100) connect at the same moment and each
waits for its full EDS answer (every assignment: 7.5 MB each at full size). Arrival (env
``BENCH_STORM_ARRIVAL``): ``together`` (default) holds every client once it has its clusters until
all have them, then all ask for their assignments at the same moment: the worst case, what a quiet
machine produces, whatever else runs on this one; ``natural`` lets each ask as soon as it has its
clusters (on a loaded machine the requests then trickle in). Reported: the control
plane's peak RSS (VmHWM) over the storm, RSS once every client is synced, and how long the storm took
to sync everyone (first and last client). Correctness: every client synced.

The target (peak RSS <= 1 GiB at 1,000 clients) is about holding a bounded number of full responses
at once; before the xDS send gate, each client joining at once added ~6 MB.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fleet import FleetSize, build_fleet
from bench.footprint import FULL, QUICK, REFRESH, SyncClient, write_manifests
from bench.proc import memory_kib
from bench.report import Report
from gce_plugin.emulator import Emulator
from gce_plugin.localstack import Process, free_port, start_control_plane

NAME = "storm"
TITLE = "Reconnect storm"
# BENCH_STORM_CLIENTS overrides the client count (e.g. to measure an older tree at a size it survives).
CLIENTS = {"quick": 100, "full": 1000}
TARGET_PEAK_MIB = 1024.0
SAMPLE_EVERY = 0.05


ARRIVALS = ("together", "natural")


@dataclass
class StormClient(SyncClient):
    """Counts its EDS resources without parsing each assignment; notes when it is synced. With a
    ``barrier``, asks for its assignments only once every client of the storm has its clusters."""

    synced_at: float = 0.0
    asked_at: float = 0.0  # when it sent its EDS request
    barrier: asyncio.Barrier | None = None

    async def before_subscribing(self) -> None:
        if self.barrier is not None:
            await self.barrier.wait()
        self.asked_at = time.monotonic()

    def received(self, response: Any, size: int, at_ns: int) -> None:
        super().received(response, size, at_ns)
        if self.full_eds.is_set() and not self.synced_at:
            self.synced_at = time.monotonic()


async def storm(
    port: int, pid: int, clients: int, expected: int, arrival: str, samples: dict[str, Any]
) -> int:
    observer = SyncClient(0, port, observer=True, expected_clusters=expected, node_prefix="storm")
    tasks = [asyncio.create_task(observer.run())]
    peak = 0
    try:
        await asyncio.wait_for(observer.full_eds.wait(), 600)
        samples["before"] = memory_kib(pid)
        barrier = asyncio.Barrier(clients) if arrival == "together" else None
        herd = [
            StormClient(i, port, expected_clusters=expected, node_prefix="storm", barrier=barrier)
            for i in range(1, clients + 1)
        ]
        started = time.monotonic()
        tasks += [asyncio.create_task(c.run()) for c in herd]
        everyone = asyncio.gather(*(c.full_eds.wait() for c in herd))
        deadline = started + 600
        while not everyone.done():
            peak = max(peak, memory_kib(pid)["VmRSS"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sum(c.full_eds.is_set() for c in herd)}/{clients} synced after 600 s")
            await asyncio.wait({everyone}, timeout=SAMPLE_EVERY)
        samples["first_synced_s"] = min(c.synced_at for c in herd) - started
        samples["all_synced_s"] = max(c.synced_at for c in herd) - started
        samples["all_asked_s"] = max(c.asked_at for c in herd) - started
        await asyncio.sleep(1.0)
        samples["after"] = memory_kib(pid)
        samples["peak_sampled_kib"] = peak
        return sum(1 for c in herd if c.full_eds.is_set())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def measure(size: FleetSize, clients: int, arrival: str) -> tuple[dict[str, Any], int]:
    fleet = build_fleet(size)
    upstreams = fleet.upstreams()
    work = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    samples: dict[str, Any] = {}
    control_plane: Process | None = None
    try:
        config = work / "upstreams"
        config.mkdir()
        write_manifests(config, upstreams)
        with Emulator(fleet.fixture()) as emulator:
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
            pid = control_plane.proc.pid
            synced = asyncio.run(storm(xds_port, pid, clients, len(upstreams), arrival, samples))
            samples["hwm"] = memory_kib(pid)["VmHWM"]
    finally:
        if control_plane is not None:
            control_plane.stop()
        shutil.rmtree(work, ignore_errors=True)
    return samples, synced


def run(quick: bool) -> Report:
    size_name = "quick" if quick else "full"
    size = QUICK if quick else FULL
    clients = int(os.environ.get("BENCH_STORM_CLIENTS", CLIENTS[size_name]))
    arrival = os.environ.get("BENCH_STORM_ARRIVAL", ARRIVALS[0])
    if arrival not in ARRIVALS:
        raise ValueError(f"BENCH_STORM_ARRIVAL={arrival!r}: one of {', '.join(ARRIVALS)}")
    upstreams = len(build_fleet(size).upstreams())
    report = Report(
        NAME,
        TITLE,
        size_name,
        {
            "upstreams": upstreams,
            "endpoints": upstreams * size.group_size,
            "clients at once": clients,
            "arrival": arrival,
        },
    )
    samples, synced = measure(size, clients, arrival)

    def mib(kib: int) -> float:
        return kib / 1024

    before = mib(samples["before"]["VmRSS"])
    peak = mib(samples["hwm"])
    report.metric("RSS before the storm (first poll published, 1 client)", before, "MiB")
    report.metric("peak RSS (VmHWM)", peak, "MiB")
    report.metric("RSS with every client synced", mib(samples["after"]["VmRSS"]), "MiB")
    report.metric("peak growth per client", 1024 * (peak - before) / clients, "KiB")
    report.metric(
        "every client had its clusters and asked for its assignments after", samples["all_asked_s"], "s"
    )
    report.metric("first client synced after", samples["first_synced_s"], "s")
    report.metric("all clients synced after", samples["all_synced_s"], "s")
    report.check(f"all {clients} clients synced", synced == clients, f"{synced}/{clients}")
    if clients >= 1000:
        report.target(
            f"peak RSS, {clients} clients connecting at once",
            f"{peak:,.0f} MiB",
            f"<= {TARGET_PEAK_MIB:,.0f} MiB",
            peak <= TARGET_PEAK_MIB,
        )
    else:
        report.note(f"the peak RSS target (<= {TARGET_PEAK_MIB:,.0f} MiB) is for 1,000 clients at full size")
    report.raw["samples"] = samples
    return report
