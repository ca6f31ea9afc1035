"""Managed instance groups through discovery and translation, on the emulator through the real
googleapiclient: every row of the mapping table (docs/managed-instance-groups.md) from a
listManagedInstances item to the ``LbEndpoint.health_status`` Envoy gets, paging, regional managers,
an unmanaged group next to a managed one of the same name, a manager the caller cannot read, faults,
and the calls per cycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from envoy.config.core.v3.health_check_pb2 import HealthStatus

from gce_plugin.emulator.fixture import Fixture
from gce_plugin.emulator.server import Emulator
from gce_plugin.plugins.gce.discovery import GceDiscovery
from gce_plugin.plugins.plugin import HEALTH_STATUS_ANNOTATION, EndpointsUpdate, WatchOpts
from gce_plugin.plugins.refresh import PollResult
from gce_plugin.translation.endpoints import build_assignment, canonical, endpoint_record
from tests.plugins.gce.gce_helpers import PROJECT, discovery_for, gce_upstream, poll, watch_of

ZONE_A, ZONE_B, REGION = "us-central1-a", "us-central1-b", "us-central1"
SHOP = ("default", "shop")
LONG = {"creating": 3600, "verifying": 3600, "deleting": 3600, "autoheal": 3600}

# The docs table, row by row: (instanceStatus, currentAction, detailedHealthState) -> health_status,
# None meaning "not an endpoint". "(none)" health: a group without a health check.
TEARDOWN = ["ABANDONING", "DELETING", "RECREATING", "RESTARTING", "STOPPING", "SUSPENDING"]
NOT_YET = ["CREATING", "CREATING_WITHOUT_RETRIES", "STARTING", "RESUMING"]
ROWS: list[tuple[str, str, str, str | None]] = [
    ("TERMINATED", "NONE", "HEALTHY", None),
    ("STOPPING", "NONE", "HEALTHY", None),
    *[("RUNNING", action, "HEALTHY", "DRAINING") for action in TEARDOWN],
    ("RUNNING", "DELETING", "UNHEALTHY", "DRAINING"),
    *[("RUNNING", action, "HEALTHY", None) for action in NOT_YET],
    ("RUNNING", "VERIFYING", "HEALTHY", "HEALTHY"),
    *[("RUNNING", "VERIFYING", s, None) for s in ("UNKNOWN", "UNHEALTHY", "TIMEOUT", "DRAINING")],
    *[
        ("RUNNING", action, state, expected)
        for action in ("NONE", "REFRESHING")
        for state, expected in (
            ("HEALTHY", "HEALTHY"),
            ("UNHEALTHY", "UNHEALTHY"),
            ("TIMEOUT", "TIMEOUT"),
            ("DRAINING", "DRAINING"),
            ("UNKNOWN", "UNKNOWN"),
        )
    ],
]


def manager(name: str, size: int, ip_range: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "targetSize": size,
        "namedPorts": ["http:8080"],
        "autoHealingPolicies": [{"healthCheck": f"{name}-hc"}],
        "networkIPRange": ip_range,
        "timings": LONG,
        **extra,
    }


def emulator_with(zones: dict[str, Any], regions: dict[str, Any] | None = None) -> Emulator:
    body: dict[str, Any] = {"zones": zones}
    if regions:
        body["regions"] = regions
    return Emulator(Fixture.from_dict({"projects": {PROJECT: body}}))


@pytest.fixture
def running() -> Iterator[tuple[Emulator, GceDiscovery]]:
    zones = {ZONE_A: {"instanceGroupManagers": [manager("shop", len(ROWS), "10.9.0.0/24")]}}
    with emulator_with(zones) as emulator:
        discovery = discovery_for(emulator)
        try:
            yield emulator, discovery
        finally:
            discovery.close()


def set_rows(emulator: Emulator, rows: list[tuple[str, str, str, str | None]]) -> dict[str, str | None]:
    """Put the group's VMs in the rows' states; each VM's address -> the row's expected status."""
    expected: dict[str, str | None] = {}
    with emulator.state.lock:
        project = emulator.state.project(PROJECT)
        group = project.manager(f"zones/{ZONE_A}", "shop")
        for managed, (status, action, health, want) in zip(group.sorted_vms(), rows, strict=True):
            managed.action, managed.health, managed.until = action, health, 1e12
            expected[project.zones[ZONE_A].vms[managed.name].network_ip] = want
            if status != "RUNNING":
                emulator.set_instance_status(PROJECT, ZONE_A, managed.name, status)
    return expected


def statuses(result: PollResult, key: tuple[str, str] = SHOP) -> dict[str, str]:
    """Address -> the health_status name translation gives each endpoint of the upstream."""
    records = canonical(endpoint_record(e) for e in result.found[key].endpoints)
    assignment = build_assignment("shop", records)
    return {
        lb.endpoint.address.socket_address.address: HealthStatus.Name(lb.health_status)
        for lb in assignment.endpoints[0].lb_endpoints
    }


def test_every_row_of_the_mapping_through_discovery_and_translation(
    running: tuple[Emulator, GceDiscovery],
) -> None:
    emulator, discovery = running
    expected = set_rows(emulator, ROWS)
    result = poll(discovery, gce_upstream("shop", instance_group_name="shop"))
    assert result.errors == {}
    assert statuses(result) == {ip: want for ip, want in expected.items() if want is not None}
    # UNKNOWN travels as no annotation (what an endpoint without it means); others as their name.
    annotations = {
        e.address: e.metadata.annotations.get(HEALTH_STATUS_ANNOTATION) for e in result.found[SHOP].endpoints
    }
    assert {a for a in annotations.values()} == {None, "HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT"}
    assert all((a is None) == (expected[ip] == "UNKNOWN") for ip, a in annotations.items())


def test_with_the_mapping_off_every_running_vm_takes_traffic(running: tuple[Emulator, GceDiscovery]) -> None:
    emulator, discovery = running
    expected = set_rows(emulator, ROWS)
    discovery.honour_health = False
    result = poll(discovery, gce_upstream("shop", instance_group_name="shop"))
    running_vms = {ip for ip, (status, *_) in zip(expected, ROWS, strict=True) if status == "RUNNING"}
    assert statuses(result) == dict.fromkeys(running_vms, "UNKNOWN")
    assert not any(HEALTH_STATUS_ANNOTATION in e.metadata.annotations for e in result.found[SHOP].endpoints)


def test_a_health_change_of_one_vm_changes_only_its_upstreams_endpoints(
    running: tuple[Emulator, GceDiscovery],
) -> None:
    emulator, discovery = running
    shop, other = (
        gce_upstream("shop", instance_group_name="shop"),
        gce_upstream("web", instance_group_name="shop"),
    )
    shop.upstream_spec.gce.label_selector["nothing"] = "matches"
    first = poll(discovery, shop, other)
    name = sorted(i["name"] for i in emulator.managed_instances(PROJECT, "shop", zone=ZONE_A))[0]
    emulator.set_instance_health(PROJECT, ZONE_A, name, "UNHEALTHY")
    second = poll(discovery, shop, other)
    web = ("default", "web")
    assert second.found[SHOP].version == first.found[SHOP].version  # selects none: unchanged
    assert second.found[web].version != first.found[web].version
    assert sorted(statuses(second, web).values()).count("UNHEALTHY") == 1


@pytest.mark.parametrize("paging", ["PAGINATED", "PAGELESS"])
def test_list_managed_instances_is_paged_only_when_the_manager_says_paginated(paging: str) -> None:
    zones = {
        ZONE_A: {
            "instanceGroupManagers": [manager("shop", 7, "10.9.1.0/24", listManagedInstancesResults=paging)]
        }
    }
    with emulator_with(zones) as emulator:
        discovery = discovery_for(emulator, page_size=2)
        try:
            result = poll(discovery, gce_upstream("shop", instance_group_name="shop"))
        finally:
            discovery.close()
        assert result.errors == {}
        assert statuses(result) == {f"10.9.1.{i}": "HEALTHY" for i in range(1, 8)}
        calls = emulator.stats()["counts"]["instanceGroupManagers.listManagedInstances"]
        assert calls == (4 if paging == "PAGINATED" else 1)  # 7 VMs, 2 a page / all in one answer


def test_a_regional_manager_spans_its_zones() -> None:
    regions = {
        REGION: {
            "instanceGroupManagers": [
                manager(
                    "cart", 4, "10.9.2.0/24", zones=[ZONE_A, ZONE_B], listManagedInstancesResults="PAGINATED"
                )
            ]
        }
    }
    with emulator_with({ZONE_A: {}, ZONE_B: {}}, regions) as emulator:
        name = emulator.managed_instances(PROJECT, "cart", region=REGION)[0]["name"]
        zone = emulator.managed_instances(PROJECT, "cart", region=REGION)[0]["instance"].split("/")[-3]
        emulator.set_instance_health(PROJECT, zone, name, "DRAINING")
        discovery = discovery_for(emulator, page_size=3)
        try:
            result = poll(
                discovery, gce_upstream("cart", instance_group_name="cart", instance_group_region=REGION)
            )
        finally:
            discovery.close()
        assert result.errors == {}
        cart = ("default", "cart")
        assert sorted(statuses(result, cart).values()) == ["DRAINING", "HEALTHY", "HEALTHY", "HEALTHY"]
        assert {e.metadata.annotations["gce.solo.io/zone"] for e in result.found[cart].endpoints} == {
            ZONE_A,
            ZONE_B,
        }
        counts = emulator.stats()["counts"]
        assert counts["regionInstanceGroupManagers.listManagedInstances"] == 2  # 4 VMs, 3 a page
        assert "regionInstanceGroups.listInstances" not in counts


def test_an_unmanaged_group_next_to_a_managed_one_of_the_same_name() -> None:
    zones = {
        ZONE_A: {"instanceGroupManagers": [manager("shop", 2, "10.9.3.0/24")]},
        ZONE_B: {
            "instances": [{"name": "shop-legacy", "networkIP": "10.9.4.1"}],
            "instanceGroups": [{"name": "shop", "namedPorts": ["http:8080"], "instances": ["shop-legacy"]}],
        },
    }
    with emulator_with(zones) as emulator:
        [first, _] = emulator.managed_instances(PROJECT, "shop", zone=ZONE_A)
        emulator.set_instance_health(PROJECT, ZONE_A, first["name"], "UNHEALTHY")
        discovery = discovery_for(emulator)
        try:
            upstreams = [
                gce_upstream("both", instance_group_name="shop", instance_group_region=REGION),
                gce_upstream("a", instance_group_name="shop", instance_group_region=ZONE_A),
                gce_upstream("b", instance_group_name="shop", instance_group_region=ZONE_B),
            ]
            result = poll(discovery, *upstreams)
            emulator.reset_stats()
            steady = poll(discovery, *upstreams)
        finally:
            discovery.close()
        assert result.errors == {}
        assert sorted(statuses(result, ("default", "both")).values()) == ["HEALTHY", "UNHEALTHY", "UNKNOWN"]
        assert sorted(statuses(result, ("default", "a")).values()) == ["HEALTHY", "UNHEALTHY"]
        assert statuses(result, ("default", "b")) == {"10.9.4.1": "UNKNOWN"}
        assert steady.found == result.found
        assert emulator.stats()["counts"] == {
            "instanceGroupManagers.listManagedInstances": 1,  # zone a's group: managed
            "instanceGroups.listInstances": 1,  # zone b's group: not
            "instances.list": 2,
        }


def test_a_manager_the_caller_cannot_read_lists_running_members(caplog: pytest.LogCaptureFixture) -> None:
    zones = {ZONE_A: {"instanceGroupManagers": [manager("shop", 3, "10.9.5.0/24", callerCanRead=False)]}}
    with emulator_with(zones) as emulator:
        name = emulator.managed_instances(PROJECT, "shop", zone=ZONE_A)[0]["name"]
        emulator.set_instance_health(PROJECT, ZONE_A, name, "UNHEALTHY")
        discovery = discovery_for(emulator)
        try:
            with caplog.at_level(logging.WARNING):
                first = poll(discovery, gce_upstream("shop", instance_group_name="shop"))
            emulator.reset_stats()
            steady = poll(discovery, gce_upstream("shop", instance_group_name="shop"))
        finally:
            discovery.close()
        assert first.errors == {} and steady.errors == {}
        # Every RUNNING member, of unknown health (the behaviour before managed groups were read).
        assert statuses(first) == {f"10.9.5.{i}": "UNKNOWN" for i in (1, 2, 3)}
        assert "grant compute.instanceGroupManagers.get" in caplog.text
        assert emulator.stats()["counts"] == {"instanceGroups.listInstances": 1, "instances.list": 1}


def test_steady_cycles_of_a_managed_group_cost_what_a_plain_groups_do(
    running: tuple[Emulator, GceDiscovery],
) -> None:
    emulator, discovery = running
    upstream = gce_upstream("shop", instance_group_name="shop")
    poll(discovery, upstream)
    counts = emulator.stats()["counts"]
    assert counts["instanceGroups.get"] == counts["instanceGroupManagers.get"] == 1  # when located
    for _ in range(3):
        emulator.reset_stats()
        poll(discovery, upstream)
        assert emulator.stats()["counts"] == {
            "instanceGroupManagers.listManagedInstances": 1,  # instead of instanceGroups.listInstances
            "instances.list": 1,
        }


def test_a_failing_manager_listing_keeps_the_last_good_endpoints(
    running: tuple[Emulator, GceDiscovery],
) -> None:
    """A fault never turns into hosts Envoy must avoid: the upstream keeps what it had (the refresh
    loop keeps an upstream's last good endpoints when a poll reports an error and no endpoints)."""
    emulator, discovery = running
    upstream = gce_upstream("shop", instance_group_name="shop")
    assert poll(discovery, upstream).errors == {}
    emulator.inject_fault("instanceGroupManagers.listManagedInstances", status=500, count=100)
    failed = poll(discovery, upstream)
    assert SHOP in failed.errors and SHOP not in failed.found
    assert "listManagedInstances: HTTP 500" in failed.errors[SHOP]


def test_a_manager_that_becomes_unreadable_is_read_again_then_listed_running_only(
    running: tuple[Emulator, GceDiscovery],
) -> None:
    emulator, discovery = running
    upstream = gce_upstream("shop", instance_group_name="shop")
    first = poll(discovery, upstream)
    assert first.errors == {}
    emulator.inject_fault(
        "instanceGroupManagers.listManagedInstances", status=403, reason="forbidden", count=1
    )
    emulator.inject_fault("instanceGroupManagers.get", status=403, reason="forbidden", count=1)
    revoked = poll(discovery, upstream)
    assert SHOP in revoked.errors and SHOP not in revoked.found  # this poll: last good kept
    emulator.reset_stats()
    again = poll(discovery, upstream)
    assert again.errors == {}
    assert set(statuses(again).values()) == {"UNKNOWN"} and len(statuses(again)) == len(statuses(first))
    assert emulator.stats()["counts"]["instanceGroupManagers.get"] == 1  # located again
    assert emulator.stats()["counts"]["instanceGroups.listInstances"] == 1


def test_the_watch_keeps_the_last_good_health_through_a_failing_listing(
    running: tuple[Emulator, GceDiscovery],
) -> None:
    """Envoy is never sent hosts made unhealthy (or none) by a fault: while listManagedInstances
    fails, the watch answers nothing new for the upstream; once it answers again, the real states."""
    emulator, discovery = running
    errors: list[str] = []
    opts = WatchOpts(refresh_interval=0.05, on_error=lambda err: errors.append(str(err)))

    async def until(check: Callable[[], bool]) -> None:
        async with asyncio.timeout(20):
            while not check():
                await asyncio.sleep(0.02)

    async def body() -> list[EndpointsUpdate]:
        updates: list[EndpointsUpdate] = []
        watch = watch_of(discovery, [gce_upstream("shop", instance_group_name="shop")], opts)

        async def collect() -> None:
            async for update in watch:
                updates.append(update)

        task = asyncio.create_task(collect())
        try:
            await until(lambda: len(updates) == 1)
            emulator.inject_fault("instanceGroupManagers.listManagedInstances", status=503, count=10_000)
            name = emulator.managed_instances(PROJECT, "shop", zone=ZONE_A)[0]["name"]
            emulator.set_instance_health(PROJECT, ZONE_A, name, "UNHEALTHY")
            await until(lambda: len(errors) >= 2)
            assert len(updates) == 1  # nothing answered while the listing fails
            emulator.clear_faults()
            await until(lambda: len(updates) == 2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return updates

    first, healed = asyncio.run(body())[:2]
    assert "HTTP 503" in errors[0]
    assert healed.changed == {SHOP}
    before = {
        e.address: e.metadata.annotations.get(HEALTH_STATUS_ANNOTATION)
        for e in first.upstreams[SHOP].endpoints
    }
    after = {
        e.address: e.metadata.annotations.get(HEALTH_STATUS_ANNOTATION)
        for e in healed.upstreams[SHOP].endpoints
    }
    assert set(before.values()) == {"HEALTHY"}
    assert Counter(after.values()) == {"UNHEALTHY": 1, "HEALTHY": len(before) - 1}
