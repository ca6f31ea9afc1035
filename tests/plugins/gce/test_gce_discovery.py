"""Discovery through the real client (google-api-python-client over HTTP) and the Compute emulator."""

from __future__ import annotations

import asyncio
import time

import pytest

from gce_plugin import metrics
from gce_plugin.api import Endpoint, GceUpstreamSpec
from gce_plugin.emulator.server import Emulator
from gce_plugin.plugins.gce.compute import RetryPolicy
from gce_plugin.plugins.gce.discovery import GceDiscovery
from gce_plugin.plugins.plugin import DiscoveryError, EndpointsUpdate, WatchOpts
from tests.plugins.gce.gce_helpers import (
    PROJECT,
    discovery_for,
    gce_upstream,
    next_item,
    poll,
    static_upstream,
    vm,
    watch_of,
)

WEB = ("default", "web")
API = ("default", "api")


def summary(endpoints: tuple[Endpoint, ...]) -> list[tuple[str, str, int]]:
    return sorted((e.metadata.annotations["gce.solo.io/instance-name"], e.address, e.port) for e in endpoints)


def test_zonal_group_running_members_with_the_named_port(emulator: Emulator, discovery: GceDiscovery) -> None:
    result = poll(discovery, gce_upstream("web", port_name="http"))
    assert result.errors == {}
    assert summary(result.endpoints[WEB]) == [("web-1", "10.0.0.11", 8080), ("web-2", "10.0.0.12", 8080)]
    web1 = next(e for e in result.endpoints[WEB] if e.address == "10.0.0.11")
    assert [(r.namespace, r.name) for r in web1.upstreams] == [WEB]
    assert web1.metadata.namespace == "gloo-system"
    assert web1.metadata.name.startswith("web-web-1-")
    assert dict(web1.metadata.labels) == {"env": "prod", "tier": "web"}
    annotations = dict(web1.metadata.annotations)
    assert annotations["gce.solo.io/zone"] == "us-central1-a"
    assert annotations["gce.solo.io/project"] == PROJECT
    assert annotations["gce.solo.io/instance-id"] == "4242"
    assert annotations["gce.solo.io/instance-group"] == "zones/us-central1-a/web"
    names = [e.metadata.name for e in result.endpoints[WEB]]
    assert names == sorted(names)  # an upstream's endpoints come in name order


def test_regional_group_spans_zones_and_defaults_to_the_http_named_port(discovery: GceDiscovery) -> None:
    result = poll(
        discovery, gce_upstream("api", instance_group_name="api", instance_group_region="us-central1")
    )
    assert result.errors == {}
    assert summary(result.endpoints[API]) == [("api-1", "10.0.0.21", 8081), ("api-2", "10.0.1.22", 8081)]
    zones = {e.metadata.annotations["gce.solo.io/zone"] for e in result.endpoints[API]}
    assert zones == {"us-central1-a", "us-central1-b"}


def test_a_zonal_group_is_found_from_its_region(emulator: Emulator, discovery: GceDiscovery) -> None:
    upstream = gce_upstream("edge", instance_group_name="edge", instance_group_region="us-central1")
    result = poll(discovery, upstream)
    assert result.errors == {}
    assert summary(result.endpoints[("default", "edge")]) == [
        ("edge-1", "10.0.1.31", 80)
    ]  # no named ports: 80
    counts = emulator.stats()["counts"]
    assert counts["regionInstanceGroups.get"] == 1
    assert counts["instanceGroups.aggregatedList"] == 1
    emulator.reset_stats()
    assert poll(discovery, upstream).endpoints == result.endpoints
    assert "instanceGroups.aggregatedList" not in emulator.stats()["counts"]  # the location is cached


def test_explicit_port_wins_and_a_missing_named_port_fails_only_its_upstream(discovery: GceDiscovery) -> None:
    result = poll(
        discovery,
        gce_upstream("explicit", port=7000, port_name="http"),
        gce_upstream("admin", port_name="admin"),
        gce_upstream("grpc", port_name="grpc"),
    )
    assert {e.port for e in result.endpoints[("default", "explicit")]} == {7000}
    assert {e.port for e in result.endpoints[("default", "admin")]} == {9000}
    assert ("default", "grpc") not in result.endpoints
    assert "no named port 'grpc'" in result.errors[("default", "grpc")]
    assert list(result.errors) == [("default", "grpc")]


def test_external_addresses_skip_instances_without_a_nat_ip(
    discovery: GceDiscovery, caplog: pytest.LogCaptureFixture
) -> None:
    result = poll(discovery, gce_upstream("web", address_type=GceUpstreamSpec.EXTERNAL))
    assert summary(result.endpoints[WEB]) == [("web-1", "203.0.113.11", 8080)]
    skipped = [r for r in caplog.records if "web-2" in r.getMessage()]
    assert skipped and getattr(skipped[0], "upstream", None) == "default.web"


def test_label_selector_keeps_instances_with_every_label(discovery: GceDiscovery) -> None:
    prod = gce_upstream("prod", label_selector={"env": "prod", "tier": "web"})
    none = gce_upstream("none", label_selector={"env": "prod", "tier": "db"})
    result = poll(discovery, prod, none)
    assert summary(result.endpoints[("default", "prod")]) == [("web-1", "10.0.0.11", 8080)]
    assert result.endpoints[("default", "none")] == ()


def test_every_page_is_followed(emulator: Emulator) -> None:
    for i in range(7):
        emulator.add_instance(
            PROJECT, {"name": f"extra-{i}", "networkIP": f"10.0.2.{i + 1}"}, ["web"], zone="us-central1-a"
        )
    small_pages = discovery_for(emulator, page_size=2)
    try:
        emulator.reset_stats()
        result = poll(small_pages, gce_upstream("web"))
    finally:
        small_pages.close()
    assert len(result.endpoints[WEB]) == 9  # web-1, web-2 and 7 extra; web-3 is stopped
    counts = emulator.stats()["counts"]
    assert counts["instanceGroups.listInstances"] == 5  # 9 RUNNING members, 2 per page
    assert counts["instances.list"] == 6  # 12 VMs in the zone, 2 per page


def test_upstreams_sharing_groups_and_zones_share_the_calls(
    emulator: Emulator, discovery: GceDiscovery
) -> None:
    upstreams = [
        gce_upstream("web-http", port_name="http"),
        gce_upstream("web-admin", port_name="admin"),
        gce_upstream("web-prod", label_selector={"env": "prod"}),
        gce_upstream("web-ext", address_type=GceUpstreamSpec.EXTERNAL),
        gce_upstream("api", instance_group_name="api", instance_group_region="us-central1"),
        gce_upstream("api-again", instance_group_name="api", instance_group_region="us-central1"),
        static_upstream(),
    ]
    first = poll(discovery, *upstreams)
    assert first.errors == {} and len(first.endpoints) == 6
    assert emulator.stats()["counts"] == {
        "instanceGroups.get": 1,
        "regionInstanceGroups.get": 1,
        "instanceGroups.listInstances": 1,
        "regionInstanceGroups.listInstances": 1,
        "instances.list": 2,  # zones a and b, once each for all six upstreams
        # Located groups' managers (none here: both groups are unmanaged), read with the location.
        "instanceGroupManagers.get": 1,
        "regionInstanceGroupManagers.get": 1,
    }
    emulator.reset_stats()
    assert poll(discovery, *upstreams).endpoints == first.endpoints
    assert emulator.stats()["counts"] == {
        "instanceGroups.listInstances": 1,
        "regionInstanceGroups.listInstances": 1,
        "instances.list": 2,
    }


def test_rate_limits_are_retried_until_success(emulator: Emulator, discovery: GceDiscovery) -> None:
    emulator.inject_fault("instances.list", status=429, reason="rateLimitExceeded", count=2)
    emulator.inject_fault("instanceGroups.listInstances", status=403, reason="userRateLimitExceeded", count=1)
    result = poll(discovery, gce_upstream("web"))
    assert result.errors == {}
    assert len(result.endpoints[WEB]) == 2
    assert emulator.stats()["counts"]["instances.list"] == 3
    assert emulator.stats()["counts"]["instanceGroups.listInstances"] == 2


def test_a_forbidden_group_is_not_retried_and_fails_only_its_upstream(
    emulator: Emulator, discovery: GceDiscovery
) -> None:
    emulator.inject_fault(
        "regionInstanceGroups.get", status=403, reason="forbidden", message="Required permission"
    )
    result = poll(
        discovery,
        gce_upstream("web"),
        gce_upstream("api", instance_group_name="api", instance_group_region="us-central1"),
    )
    assert result.errors[API] == (
        "instance group api in project demo region us-central1: "
        "regionInstanceGroups.get: HTTP 403 forbidden: Required permission"
    )
    assert API not in result.endpoints and len(result.endpoints[WEB]) == 2
    assert emulator.stats()["counts"]["regionInstanceGroups.get"] == 1


def test_a_deleted_group_is_reported_and_has_no_endpoints(
    emulator: Emulator, discovery: GceDiscovery
) -> None:
    upstream = gce_upstream("web")
    assert len(poll(discovery, upstream).endpoints[WEB]) == 2
    emulator.delete_group(PROJECT, "web", zone="us-central1-a")
    result = poll(discovery, upstream)
    assert result.endpoints[WEB] == ()
    assert result.errors[WEB] == f"instance group web not found in project {PROJECT} zone us-central1-a"
    never = poll(
        discovery, gce_upstream("ghost", instance_group_name="ghost", instance_group_region="us-central1")
    )
    assert (
        never.errors[("default", "ghost")]
        == f"instance group ghost not found in project {PROJECT} region us-central1"
    )


REGIONAL_WEB = ("default", "regional-web")


def zonal_web_in_two_zones(emulator: Emulator) -> None:
    """Group ``web`` exists as zonal groups in us-central1-a (the fixture's) and us-central1-b."""
    emulator.add_group(PROJECT, {"name": "web", "namedPorts": ["http:8080"]}, zone="us-central1-b")
    emulator.add_instance(PROJECT, vm("web-b1", "10.0.1.41"), ["web"], zone="us-central1-b")


def test_a_deleted_zonal_group_of_a_region_leaves_the_other_zones_serving(
    emulator: Emulator, discovery: GceDiscovery
) -> None:
    zonal_web_in_two_zones(emulator)
    upstream = gce_upstream("regional-web", instance_group_region="us-central1")
    before = poll(discovery, upstream)
    assert before.errors == {}
    assert [a for _, a, _ in summary(before.endpoints[REGIONAL_WEB])] == [
        "10.0.0.11",
        "10.0.0.12",
        "10.0.1.41",
    ]
    emulator.delete_group(PROJECT, "web", zone="us-central1-b")
    emulator.reset_stats()
    after = poll(discovery, upstream)
    assert summary(after.endpoints[REGIONAL_WEB]) == [
        ("web-1", "10.0.0.11", 8080),
        ("web-2", "10.0.0.12", 8080),
    ]
    assert (
        after.errors[REGIONAL_WEB] == f"instance group web not found in project {PROJECT} zone us-central1-b"
    )
    again = poll(discovery, upstream)  # the deleted group is no longer asked for, nor reported
    assert again.errors == {} and summary(again.endpoints[REGIONAL_WEB]) == summary(
        after.endpoints[REGIONAL_WEB]
    )
    counts = emulator.stats()["counts"]
    assert counts["instanceGroups.listInstances"] == 3  # a and b, then a only
    # The deletion is confirmed by locating the group again (issue 8: one 404 is not proof).
    assert counts["instanceGroups.aggregatedList"] == 1


def test_a_region_whose_zonal_groups_are_all_deleted_has_no_endpoints(
    emulator: Emulator, discovery: GceDiscovery
) -> None:
    zonal_web_in_two_zones(emulator)
    upstream = gce_upstream("regional-web", instance_group_region="us-central1")
    assert len(poll(discovery, upstream).endpoints[REGIONAL_WEB]) == 3
    emulator.delete_group(PROJECT, "web", zone="us-central1-a")
    emulator.delete_group(PROJECT, "web", zone="us-central1-b")
    gone = poll(discovery, upstream)
    assert gone.endpoints[REGIONAL_WEB] == ()
    assert (
        gone.errors[REGIONAL_WEB] == f"instance group web not found in project {PROJECT} region us-central1"
    )


def test_watch_keeps_serving_the_live_zone_when_another_zones_group_is_deleted(
    emulator: Emulator, discovery: GceDiscovery
) -> None:
    zonal_web_in_two_zones(emulator)

    async def body() -> None:
        errors: list[DiscoveryError] = []
        upstream = gce_upstream("regional-web", instance_group_region="us-central1")
        watch = watch_of(discovery, [upstream], watch_opts(errors))
        try:
            first = await next_item(watch)
            assert len(first.endpoints) == 3
            emulator.delete_group(PROJECT, "web", zone="us-central1-b")
            second = await next_item(watch)
            assert {e.address for e in second.endpoints} == {"10.0.0.11", "10.0.0.12"}
            assert second.resolved == frozenset({REGIONAL_WEB})
            assert [(e.upstream, str(e)) for e in errors] == [
                (REGIONAL_WEB, f"instance group web not found in project {PROJECT} zone us-central1-b")
            ]
        finally:
            await watch.aclose()

    asyncio.run(body())


def test_a_slow_api_times_out_instead_of_blocking_the_poll(emulator: Emulator) -> None:
    emulator.inject_fault("instances.list", status=0, delay=3.0)
    slow = discovery_for(
        emulator, timeout=0.3, retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)
    )
    started = time.monotonic()
    try:
        result = poll(slow, gce_upstream("web"))
    finally:
        slow.close()
    assert time.monotonic() - started < 2.5
    assert "timeout" in result.errors[WEB] or "timed out" in result.errors[WEB]
    emulator.clear_faults()


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def watch_opts(errors: list[DiscoveryError]) -> WatchOpts:
    return WatchOpts(refresh_interval=0.05, on_error=errors.append)


def test_watch_yields_after_changes_only(emulator: Emulator, discovery: GceDiscovery) -> None:
    async def body() -> None:
        errors: list[DiscoveryError] = []
        watch = watch_of(discovery, [gce_upstream("web"), static_upstream()], watch_opts(errors))
        polls = sample("gce_plugin_discovery_polls_total", plugin="gce", result="ok")
        try:
            first = await next_item(watch)
            assert first.resolved == frozenset({WEB}) and len(first.endpoints) == 2
            calls = emulator.stats()["counts"]["instanceGroups.listInstances"]
            emulator.add_instance(
                PROJECT, {"name": "web-9", "networkIP": "10.0.0.19"}, ["web"], zone="us-central1-a"
            )
            second = await next_item(watch)
            assert "10.0.0.19" in {e.address for e in second.endpoints} and len(second.endpoints) == 3
            assert sample("gce_plugin_upstream_endpoints", upstream="default.web") == 3
            assert sample("gce_plugin_discovery_polls_total", plugin="gce", result="ok") >= polls + 2
            assert emulator.stats()["counts"]["instanceGroups.listInstances"] > calls + 0  # polled again
            emulator.stop_instance(PROJECT, "us-central1-a", "web-1")
            third = await next_item(watch)
            assert {e.address for e in third.endpoints} == {"10.0.0.12", "10.0.0.19"}
            assert errors == []
        finally:
            await watch.aclose()
        assert sample("gce_plugin_upstream_endpoints", upstream="default.web") == 0  # gone with the watch

    asyncio.run(body())


def test_watch_answers_per_upstream_and_names_only_the_changed_upstream(
    emulator: Emulator, discovery: GceDiscovery
) -> None:
    async def body() -> None:
        api = gce_upstream("api", instance_group_name="api", instance_group_region="us-central1")
        watch = watch_of(discovery, [gce_upstream("web"), api], watch_opts([]))
        try:
            first = await next_item(watch)
            assert first.upstreams.keys() == {WEB, API} and first.changed == {WEB, API}
            assert first.resolved == frozenset({WEB, API})
            emulator.add_instance(PROJECT, vm("web-9", "10.0.0.19"), ["web"], zone="us-central1-a")
            second = await next_item(watch)
            assert second.changed == {WEB} and second.removed == frozenset()
            assert second.upstreams[API].version == first.upstreams[API].version
            assert [e.address for e in second.upstreams[WEB].endpoints] == [
                "10.0.0.11",
                "10.0.0.12",
                "10.0.0.19",
            ]
            names = [(e.metadata.namespace, e.metadata.name) for e in second.endpoints]
            assert names == sorted(names) and len(names) == 5
        finally:
            await watch.aclose()

    asyncio.run(body())


def test_watch_keeps_last_good_endpoints_through_server_errors(
    emulator: Emulator, discovery: GceDiscovery
) -> None:
    async def body() -> None:
        errors: list[DiscoveryError] = []
        api = gce_upstream("api", instance_group_name="api", instance_group_region="us-central1")
        watch = watch_of(discovery, [gce_upstream("web"), api], watch_opts(errors))
        try:
            first = await next_item(watch)
            web_before = [e for e in first.endpoints if e.upstreams[0].name == "web"]
            emulator.inject_fault("instanceGroups.listInstances", status=503, reason="backendError")
            # api changes while web's group fails: the next list has api's change and web's last good.
            emulator.add_instance(
                PROJECT, {"name": "api-3", "networkIP": "10.0.1.23"}, ["api"], zone="us-central1-b"
            )
            second = await next_item(watch)
            assert [e for e in second.endpoints if e.upstreams[0].name == "web"] == web_before
            assert "10.0.1.23" in {e.address for e in second.endpoints}
            assert second.resolved == frozenset({WEB, API})
            assert errors and {e.upstream for e in errors} == {WEB}
            assert "HTTP 503" in str(errors[0])
            emulator.clear_faults()
            emulator.remove_instance(PROJECT, "us-central1-a", "web-2")
            third = await next_item(watch)  # recovered: web's list is current again
            assert [e.address for e in third.endpoints if e.upstreams[0].name == "web"] == ["10.0.0.11"]
        finally:
            await watch.aclose()

    asyncio.run(body())


def test_watch_ends_promptly_when_cancelled_during_a_slow_call(emulator: Emulator) -> None:
    slow = discovery_for(emulator, timeout=2.0, retry=RetryPolicy(max_attempts=3, base_delay=5, max_delay=5))

    async def body() -> None:
        watch = watch_of(slow, [gce_upstream("web")], watch_opts([]))
        first = await next_item(watch)
        assert len(first.endpoints) == 2
        emulator.inject_fault("instances.list", status=503)
        consumer = asyncio.create_task(anext(watch))
        deadline = time.monotonic() + 5
        while emulator.stats()["statuses"].get("503", 0) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # polling a condition, with a deadline
        consumer.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert time.monotonic() - started < 1.0

    try:
        asyncio.run(body())
        # The worker thread was waiting 5 s to retry: the cancelled poll's abort ends that wait.
        started = time.monotonic()
        slow.close(wait=True)
        assert time.monotonic() - started < 1.0
    finally:
        slow.close()


def test_nothing_known_before_the_first_success() -> None:
    assert EndpointsUpdate().resolved == frozenset()
