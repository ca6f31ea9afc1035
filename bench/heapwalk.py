"""``python -m bench.heapwalk [--quick]``: what a full garbage collection walks once the control plane
has published its first discovery answer, and what it costs before and after ``gc.freeze()``.

Not a scenario (no targets): a profiling aid for bench/RESULTS.md. The control plane runs in this
process on the footprint's fleet (10,000 upstreams / 100,000 endpoints; quick: 1,000 / 10,000)
through the in-process emulator, with the control plane's own freeze hook disabled, until every
assignment has its endpoints. Then: GC-tracked objects by type, full collection times (min / median /
max of 5), and the same after ``gc.freeze()``. The emulator's own objects (its fixture) are counted
too (~20,000 at full size).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fleet import build_fleet
from bench.footprint import FULL, QUICK, write_manifests
from bench.proc import rss_mib
from gce_plugin import heap
from gce_plugin.builtin import default_registry
from gce_plugin.controlplane import ControlPlane, Options
from gce_plugin.emulator import Emulator
from gce_plugin.plugins.gce.settings import GceSettings
from gce_plugin.plugins.plugin import Settings
from gce_plugin.xds import ENDPOINT_TYPE


def full_collections(times: int = 5) -> str:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        gc.collect()
        samples.append(1000 * (time.perf_counter() - started))
    return f"{min(samples):.1f} / {statistics.median(samples):.1f} / {max(samples):.1f} ms"


async def publish_first_answer(plane: ControlPlane, upstreams: int) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(plane.run(stop))
    try:
        while _with_endpoints(plane) < upstreams:
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await running


def _with_endpoints(plane: ControlPlane) -> int:
    assignments: list[Any] = list(plane.cache.resources(ENDPOINT_TYPE).values())
    return sum(1 for a in assignments if len(a.endpoints))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.heapwalk", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    heap._frozen = True  # measure the heap as it is without the hook
    fleet = build_fleet(QUICK if args.quick else FULL)
    upstreams = fleet.upstreams()
    work = Path(tempfile.mkdtemp(prefix="bench-heapwalk-"))
    try:
        write_manifests(work, upstreams)
        with Emulator(fleet.fixture()) as emulator:
            settings = Settings(refresh_interval=600)
            options = Options(
                config_dir=str(work), xds_address="127.0.0.1:0", admin_address=None, settings=settings
            )
            plane = ControlPlane(options, default_registry(GceSettings(compute_endpoint=emulator.url)))
            asyncio.run(publish_first_answer(plane, len(upstreams)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    del fleet, upstreams
    tracked = gc.get_objects()
    by_type = collections.Counter(type(o).__name__ for o in tracked)
    print(f"first answer published; RSS {rss_mib_self():.0f} MiB; GC-tracked objects {len(tracked):,}")
    print("by type: " + ", ".join(f"{name} {count:,}" for name, count in by_type.most_common(16)))
    del tracked
    print(f"full collection (min / median / max of 5): {full_collections()}")
    gc.freeze()
    print(
        f"after gc.freeze(): {gc.get_freeze_count():,} objects frozen; full collection {full_collections()}"
    )
    print(f"thresholds {gc.get_threshold()}")


def rss_mib_self() -> float:
    return rss_mib(os.getpid())


if __name__ == "__main__":
    main()
