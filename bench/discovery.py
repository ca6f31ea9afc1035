"""Scenario 1, discovery economy: Compute API calls per poll cycle against the emulator.

Full size: 1,000 gce upstreams over 50 instance groups (40 zonal, 10 regional) in 5 zones, 5,000
instances (1,000 per zone, 100 per group, 20 upstreams per group). Quick: 100 upstreams over 10
groups, 500 instances.

Measured with the emulator's per-method request counts:

- the product's ``GceDiscovery.poll_once``: the first cycle (group locations unknown) and a steady
  cycle (locations cached, as in every poll for ``location_ttl``, 10 minutes by default);
- a baseline written after the original Gloo plugin tutorial: per upstream, one ``instances.list``
  of its zone (first page only, the API's default 500 results) with the real googleapiclient, keeping
  the instances whose labels match the upstream's selector (here ``ig=<group>``). The tutorial's spec
  names one zone, so for a regional group the baseline lists the region's first zone.

Target: steady calls per cycle <= distinct groups + one per (project, zone) per 500 instances.
Correctness: the product finds every one of the instances, and every upstream gets all its group's
members.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httplib2
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build

from bench.fleet import GROUP_LABEL, PROJECT, Fleet, FleetSize, build_fleet
from bench.report import Report
from gce_plugin.emulator import Emulator
from gce_plugin.plugins.gce.compute import PAGE_SIZE, ComputeClient
from gce_plugin.plugins.gce.discovery import GceDiscovery
from gce_plugin.plugins.gce.spec import ANNOTATION_PREFIX

NAME = "discovery"
TITLE = "Discovery economy"

FULL = FleetSize(zones=5, per_zone=1000, zonal_per_zone=8, group_size=100, upstreams_per_group=20)
QUICK = FleetSize(zones=5, per_zone=100, zonal_per_zone=1, group_size=50, upstreams_per_group=10)


def call_bound(fleet: Fleet) -> int:
    """Distinct groups + one call per (project, zone) per 500 instances."""
    pages = sum(math.ceil(count / PAGE_SIZE) for count in fleet.zone_counts().values())
    return len(fleet.groups) + pages


def measure_product(emulator: Emulator, fleet: Fleet, report: Report) -> None:
    upstreams = fleet.upstreams()
    anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
    discovery = GceDiscovery(ComputeClient(anonymous, endpoint=emulator.url))
    try:
        cycles: list[dict[str, Any]] = []
        for label in ("first", "steady", "steady"):
            emulator.reset_stats()
            started = time.perf_counter()
            result = asyncio.run(discovery.poll_once("gloo-system", upstreams))
            elapsed = time.perf_counter() - started
            stats = emulator.stats()
            cycles.append({"cycle": label, "calls": stats["total"], "counts": stats["counts"], "s": elapsed})
    finally:
        discovery.close()

    first, steady = cycles[0], cycles[-1]
    found = {
        (
            e.metadata.annotations[ANNOTATION_PREFIX + "zone"],
            e.metadata.annotations[ANNOTATION_PREFIX + "instance-name"],
        )
        for eps in result.endpoints.values()
        for e in eps
    }
    endpoints = sum(len(eps) for eps in result.endpoints.values())
    short = [
        f"{key[0]}.{key[1]}"
        for group in fleet.groups
        for key in [(u.metadata.namespace, u.metadata.name) for u in fleet.group_upstreams(group)]
        if len(result.endpoints.get(key, ())) != len(group.members)
    ]
    bound = call_bound(fleet)
    report.metric("product: calls, first cycle", first["calls"], "calls")
    report.metric("product: calls per steady cycle", steady["calls"], "calls")
    report.metric("product: steady cycle by method", _by_method(steady["counts"]))
    report.metric("product: poll time, first cycle", first["s"], "s")
    report.metric("product: poll time, steady cycle", steady["s"], "s")
    report.metric("product: endpoints", endpoints)
    report.metric("product: distinct instances found", len(found))
    report.target(
        "calls per steady cycle <= groups + zones x pages",
        str(steady["calls"]),
        f"<= {bound} ({len(fleet.groups)} groups + {bound - len(fleet.groups)} zone pages)",
        steady["calls"] <= bound,
    )
    report.check(
        "product finds every instance",
        len(found) == len(fleet.instances) and not result.errors,
        f"{len(found)}/{len(fleet.instances)} instances, {len(result.errors)} upstream errors",
    )
    report.check(
        "every upstream gets all members of its group",
        not short,
        f"{len(short)} upstreams short" + (f", e.g. {short[0]}" if short else ""),
    )
    report.raw["product_cycles"] = cycles


def baseline_poll(emulator: Emulator, fleet: Fleet, workers: int = 8) -> tuple[int, set[tuple[str, str]]]:
    """One cycle of the tutorial's discovery: (endpoints found, distinct (zone, instance) found)."""
    local = threading.local()

    def compute() -> Any:
        service = getattr(local, "service", None)
        if service is None:
            service = build(
                "compute",
                "v1",
                http=httplib2.Http(timeout=30),
                static_discovery=True,
                cache_discovery=False,
                client_options={"api_endpoint": emulator.url},
            )
            local.service = service
        return service

    def one(group_name: str, location: str) -> Callable[[], list[tuple[str, str]]]:
        zone = location if location.count("-") >= 2 else min(z for z in fleet.zones if z.startswith(location))

        def call() -> list[tuple[str, str]]:
            page = compute().instances().list(project=PROJECT, zone=zone).execute()
            return [
                (zone, str(item["name"]))
                for item in page.get("items", [])
                if (item.get("labels") or {}).get(GROUP_LABEL) == group_name
                and item.get("status") == "RUNNING"
            ]

        return call

    calls = [one(group.name, group.location) for group in fleet.groups for _ in fleet.group_upstreams(group)]
    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(lambda call: call(), calls))
    return sum(len(a) for a in answers), {m for a in answers for m in a}


def measure_baseline(emulator: Emulator, fleet: Fleet, report: Report) -> None:
    emulator.reset_stats()
    started = time.perf_counter()
    endpoints, found = baseline_poll(emulator, fleet)
    elapsed = time.perf_counter() - started
    stats = emulator.stats()
    report.metric("baseline (tutorial): calls per cycle", stats["total"], "calls")
    report.metric("baseline (tutorial): poll time", elapsed, "s")
    report.metric("baseline (tutorial): endpoints", endpoints)
    report.metric("baseline (tutorial): distinct instances found", len(found))
    report.raw["baseline"] = {"calls": stats["total"], "counts": stats["counts"], "s": elapsed}


def _by_method(counts: dict[str, int]) -> str:
    return ", ".join(f"{method} {n}" for method, n in sorted(counts.items()))


def run(quick: bool) -> Report:
    size = QUICK if quick else FULL
    fleet = build_fleet(size)
    upstream_count = len(fleet.groups) * size.upstreams_per_group
    report = Report(
        NAME,
        TITLE,
        "quick" if quick else "full",
        {
            "upstreams": upstream_count,
            "groups": len(fleet.groups),
            "zonal_groups": sum(1 for g in fleet.groups if g.zonal),
            "regional_groups": sum(1 for g in fleet.groups if not g.zonal),
            "zones": len(fleet.zones),
            "instances": len(fleet.instances),
        },
    )
    with Emulator(fleet.fixture()) as emulator:
        measure_product(emulator, fleet, report)
        measure_baseline(emulator, fleet, report)
    report.note(
        "Steady cycle: group locations cached (they are for location_ttl, 10 min by default); the "
        "first cycle adds, per group, its get and its manager's (instanceGroupManagers.get, "
        "regional: regionInstanceGroups.get and regionInstanceGroupManagers.get; 404 here: the fleet's "
        "groups are plain ones, listed with listInstances)."
    )
    report.note(
        "Baseline = Gloo tutorial: one instances.list per upstream, first page only (500), label "
        "selector ig=<group>; a regional group lists its region's first zone (the tutorial's spec has "
        "one zone)."
    )
    return report
