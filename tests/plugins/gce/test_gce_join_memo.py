"""The join's memo: a poll that sees a group exactly as the previous poll did hands its upstreams the
same endpoints (the same objects, not rebuilt); any change to what the join reads is seen at once.
Through the real client and the Compute emulator (fixture in gce_helpers)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from gce_plugin.api import Endpoint, Upstream
from gce_plugin.emulator.server import Emulator
from gce_plugin.plugins.gce.discovery import GceDiscovery
from gce_plugin.plugins.gce.spec import Target
from gce_plugin.plugins.plugin import UpstreamKey
from tests.plugins.gce.gce_helpers import PROJECT, gce_upstream, poll

ZONE = "us-central1-a"
WEB = ("default", "web")
API = ("default", "api")


def upstreams() -> tuple[Upstream, Upstream]:
    return gce_upstream("web"), gce_upstream(
        "api", instance_group_name="api", instance_group_region="us-central1"
    )


def names(endpoints: tuple[Endpoint, ...]) -> list[str]:
    return sorted(e.metadata.annotations["gce.solo.io/instance-name"] for e in endpoints)


def test_an_unchanged_group_gives_the_same_endpoints_again(discovery: GceDiscovery) -> None:
    first = poll(discovery, *upstreams())
    second = poll(discovery, *upstreams())
    assert second.endpoints[WEB] is first.endpoints[WEB]
    assert second.endpoints[API] is first.endpoints[API]
    assert names(second.endpoints[WEB]) == ["web-1", "web-2"]


def test_a_new_member_is_seen_and_other_groups_keep_theirs(
    emulator: Emulator, discovery: GceDiscovery
) -> None:
    first = poll(discovery, *upstreams())
    emulator.add_instance(PROJECT, {"name": "web-4", "networkIP": "10.0.0.14"}, ["web"], zone=ZONE)
    second = poll(discovery, *upstreams())
    assert names(second.endpoints[WEB]) == ["web-1", "web-2", "web-4"]
    assert second.endpoints[API] is first.endpoints[API]


def test_instance_changes_are_seen(emulator: Emulator, discovery: GceDiscovery) -> None:
    poll(discovery, *upstreams())
    emulator.set_instance_labels(PROJECT, ZONE, "web-2", {"tier": "canary"})
    labels = {
        e.metadata.annotations["gce.solo.io/instance-name"]: dict(e.metadata.labels)
        for e in poll(discovery, *upstreams()).endpoints[WEB]
    }
    assert labels["web-2"] == {"tier": "canary"}
    emulator.stop_instance(PROJECT, ZONE, "web-1")
    assert names(poll(discovery, *upstreams()).endpoints[WEB]) == ["web-2"]


def test_named_port_changes_are_seen(emulator: Emulator, discovery: GceDiscovery) -> None:
    web = gce_upstream("web", port_name="http")
    assert {e.port for e in poll(discovery, web).endpoints[WEB]} == {8080}
    emulator.set_named_ports(PROJECT, "web", ["http:9090"], zone=ZONE)
    assert {e.port for e in poll(discovery, web).endpoints[WEB]} == {9090}


def test_a_changed_spec_or_namespace_is_joined_afresh(discovery: GceDiscovery) -> None:
    first = poll(discovery, gce_upstream("web"))
    explicit = poll(discovery, gce_upstream("web", port=7000))
    assert {e.port for e in explicit.endpoints[WEB]} == {7000}
    other_namespace = asyncio.run(discovery.poll_once("elsewhere", [gce_upstream("web", port=7000)]))
    assert {e.metadata.namespace for e in other_namespace.endpoints[WEB]} == {"elsewhere"}
    assert first.endpoints[WEB] is not explicit.endpoints[WEB]


def joins(discovery: GceDiscovery, monkeypatch: pytest.MonkeyPatch) -> list[UpstreamKey]:
    """The upstreams joined afresh (not given the memo's endpoints), from now on."""
    joined: list[UpstreamKey] = []
    endpoints_of = discovery._endpoints_of

    def counting(target: Target, *args: Any) -> Iterable[Endpoint]:
        joined.append(target.key)
        return endpoints_of(target, *args)

    monkeypatch.setattr(discovery, "_endpoints_of", counting)
    return joined


def test_a_failed_listing_is_not_mistaken_for_unchanged(
    emulator: Emulator, discovery: GceDiscovery, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = poll(discovery, *upstreams())
    emulator.inject_fault("instanceGroups.listInstances", status=503, count=None)
    failed = poll(discovery, *upstreams())
    assert WEB in failed.errors and WEB not in failed.endpoints
    emulator.clear_faults()
    joined = joins(discovery, monkeypatch)
    again = poll(discovery, *upstreams())
    assert again.errors == {}
    assert joined == [WEB]  # joined afresh after the failure (api's group was listed both times)
    assert again.found[WEB] == first.found[WEB]  # into the same endpoints: the same version


def test_a_group_joined_afresh_into_the_same_endpoints_keeps_its_version(
    emulator: Emulator, discovery: GceDiscovery, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = poll(discovery, *upstreams())
    joined = joins(discovery, monkeypatch)
    emulator.set_named_ports(PROJECT, "web", ["http:8080", "admin:9001"], zone=ZONE)  # admin is not used
    second = poll(discovery, *upstreams())
    assert joined == [WEB]
    assert second.found[WEB].version == first.found[WEB].version
    assert second.endpoints[WEB] == first.endpoints[WEB]
    emulator.set_instance_labels(PROJECT, ZONE, "web-2", {"env": "staging"})  # a real change
    third = poll(discovery, *upstreams())
    assert third.found[WEB].version != first.found[WEB].version
    assert {e.metadata.labels["env"] for e in third.endpoints[WEB]} == {"prod", "staging"}
