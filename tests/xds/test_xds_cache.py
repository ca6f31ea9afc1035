"""SnapshotCache alone: versions, no-op re-sets, O(changed) updates, the change log, validation."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse, DiscoveryResponse

from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE, SnapshotCache
from gce_plugin.xds import cache as cache_module
from tests.xds.xds_testkit import assignment, cluster


def test_versions_per_resource_and_type() -> None:
    cache = SnapshotCache()
    empty_version = cache.version(ENDPOINT_TYPE)
    cache.set_resources(ENDPOINT_TYPE, {"a": assignment("a", 1), "b": assignment("b", 2)})
    v1 = cache.version(ENDPOINT_TYPE)
    a1, b1 = cache.resource_version(ENDPOINT_TYPE, "a"), cache.resource_version(ENDPOINT_TYPE, "b")
    assert v1 != empty_version and a1 and b1 and a1 != b1

    # An endpoint change of one cluster changes only that assignment's version (and the type's).
    cache.update_resources(ENDPOINT_TYPE, {"a": assignment("a", 1, 3)})
    assert cache.resource_version(ENDPOINT_TYPE, "a") != a1
    assert cache.resource_version(ENDPOINT_TYPE, "b") == b1
    assert cache.version(ENDPOINT_TYPE) != v1

    # Versions are content hashes: back to the old content, back to the old versions.
    cache.update_resources(ENDPOINT_TYPE, {"a": assignment("a", 1)})
    assert cache.resource_version(ENDPOINT_TYPE, "a") == a1
    assert cache.version(ENDPOINT_TYPE) == v1

    # And the same content in another cache has the same versions (they survive restarts).
    other = SnapshotCache()
    other.set_resources(ENDPOINT_TYPE, {"b": assignment("b", 2), "a": assignment("a", 1)})
    assert other.version(ENDPOINT_TYPE) == v1


def test_identical_set_is_no_change() -> None:
    cache = SnapshotCache()
    calls: list[int] = []
    cache.watch(lambda: calls.append(1))
    cache.set_resources(CLUSTER_TYPE, {"a": cluster("a"), "b": cluster("b")})
    seq, version = cache.seq(CLUSTER_TYPE), cache.version(CLUSTER_TYPE)
    entry_a = cache.entries(CLUSTER_TYPE)["a"]
    assert calls == [1]

    cache.set_resources(CLUSTER_TYPE, {"b": cluster("b"), "a": cluster("a")})  # new objects, same content
    cache.update_resources(CLUSTER_TYPE, {"a": cluster("a")}, removals=["not-there"])
    assert (cache.seq(CLUSTER_TYPE), cache.version(CLUSTER_TYPE)) == (seq, version)
    assert cache.entries(CLUSTER_TYPE)["a"] is entry_a
    assert calls == [1]


def test_set_replaces_whole_type_and_update_touches_only_named() -> None:
    cache = SnapshotCache()
    cache.set_resources(ENDPOINT_TYPE, {n: assignment(n, 1) for n in ("a", "b", "c")})
    entries = dict(cache.entries(ENDPOINT_TYPE))
    cursor = cache.seq(ENDPOINT_TYPE)

    cache.update_resources(ENDPOINT_TYPE, {"b": assignment("b", 2), "d": assignment("d", 4)}, ["c"])
    changes = cache.changes_since(ENDPOINT_TYPE, cursor)
    assert changes.names == frozenset({"b", "c", "d"})
    assert changes.since is not None
    assert sorted(cache.resources(ENDPOINT_TYPE)) == ["a", "b", "d"]
    # Untouched resources are the very same stored entries: nothing re-serialized or re-hashed.
    assert cache.entries(ENDPOINT_TYPE)["a"] is entries["a"]

    cursor = cache.seq(ENDPOINT_TYPE)
    cache.set_resources(ENDPOINT_TYPE, {"a": assignment("a", 1), "e": assignment("e", 5)})
    assert cache.changes_since(ENDPOINT_TYPE, cursor).names == frozenset({"b", "d", "e"})
    assert sorted(cache.resources(ENDPOINT_TYPE)) == ["a", "e"]
    assert cache.entries(ENDPOINT_TYPE)["a"] is entries["a"]
    # Nothing since the latest cursor.
    latest = cache.changes_since(ENDPOINT_TYPE, cache.seq(ENDPOINT_TYPE))
    assert latest.names == frozenset() and latest.since is None


def test_changes_since_unions_several_changes() -> None:
    cache = SnapshotCache()
    cursor = cache.seq(ENDPOINT_TYPE)
    for name in ("a", "b", "a", "c"):
        cache.update_resources(ENDPOINT_TYPE, {name: assignment(name, len(cache.resources(ENDPOINT_TYPE)))})
    changes = cache.changes_since(ENDPOINT_TYPE, cursor)
    assert changes.names == frozenset({"a", "b", "c"})
    assert changes.seq == cache.seq(ENDPOINT_TYPE)


def test_change_log_is_bounded_and_reports_falling_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "MAX_LOG_CHANGES", 3)
    cache = SnapshotCache()
    cursor = cache.seq(ENDPOINT_TYPE)
    for port in range(5):
        cache.update_resources(ENDPOINT_TYPE, {"a": assignment("a", port)})
    assert cache.changes_since(ENDPOINT_TYPE, cursor).names is None  # too far behind: "anything"
    assert cache.changes_since(ENDPOINT_TYPE, cache.seq(ENDPOINT_TYPE) - 3).names == frozenset({"a"})


def test_cluster_change_resends_its_assignment() -> None:
    """EDS follows CDS: a changed cluster re-sends the same-named assignment (Envoy re-warms it)."""
    cache = SnapshotCache()
    cache.set_resources(CLUSTER_TYPE, {"a": cluster("a"), "b": cluster("b")})
    cache.set_resources(ENDPOINT_TYPE, {"a": assignment("a", 1)})
    eds_version, cursor = cache.version(ENDPOINT_TYPE), cache.seq(ENDPOINT_TYPE)
    cache.update_resources(CLUSTER_TYPE, {"a": cluster("a", timeout_ms=2000)})
    assert cache.changes_since(ENDPOINT_TYPE, cursor).names == frozenset({"a"})
    assert cache.version(ENDPOINT_TYPE) == eds_version  # content did not change
    cursor = cache.seq(ENDPOINT_TYPE)
    cache.update_resources(CLUSTER_TYPE, {}, removals=["b"])  # removals touch nothing
    assert cache.seq(ENDPOINT_TYPE) == cursor


def test_bad_input_is_rejected_and_changes_nothing() -> None:
    cache = SnapshotCache()
    cache.set_resources(CLUSTER_TYPE, {"a": cluster("a")})
    version = cache.version(CLUSTER_TYPE)
    with pytest.raises(TypeError, match="ClusterLoadAssignment"):
        cache.set_resources(CLUSTER_TYPE, {"b": cluster("b"), "c": assignment("c")})
    with pytest.raises(ValueError, match="name='x'"):
        cache.update_resources(CLUSTER_TYPE, {"b": cluster("b"), "y": cluster("x")})
    with pytest.raises(ValueError, match="both upserted and removed"):
        cache.update_resources(CLUSTER_TYPE, {"b": cluster("b")}, removals=["b"])
    with pytest.raises(ValueError, match="unknown xDS type"):
        cache.set_resources("type.googleapis.com/nope.Nope", {})
    assert cache.version(CLUSTER_TYPE) == version
    assert list(cache.resources(CLUSTER_TYPE)) == ["a"]


def test_wire_encodings_are_cached_and_parse_back() -> None:
    cache = SnapshotCache()
    cache.set_resources(ENDPOINT_TYPE, {"a": assignment("a", 7)})
    entry = cache.entries(ENDPOINT_TYPE)["a"]
    sotw = DiscoveryResponse.FromString(entry.sotw_field)
    cla = ClusterLoadAssignment()
    assert sotw.resources[0].Unpack(cla) and cla == assignment("a", 7)
    delta = DeltaDiscoveryResponse.FromString(entry.delta_field)
    assert delta.resources[0].name == "a" and delta.resources[0].version == entry.version
    assert entry.delta_field is entry.delta_field  # made once
    # The shared full-state body is memoized per version.
    body = cache.full_state_body(ENDPOINT_TYPE)
    assert cache.full_state_body(ENDPOINT_TYPE) is body
    cache.update_resources(ENDPOINT_TYPE, {"b": assignment("b")})
    assert len(DiscoveryResponse.FromString(cache.full_state_body(ENDPOINT_TYPE)).resources) == 2


def test_placeholder_for_missing_assignment() -> None:
    cache = SnapshotCache()
    entry = cache.entry_or_placeholder(ENDPOINT_TYPE, "warming")
    assert entry is not None and entry.message == ClusterLoadAssignment(cluster_name="warming")
    assert cache.entry_or_placeholder(CLUSTER_TYPE, "missing") is None
    assert "warming" not in cache.resources(ENDPOINT_TYPE)


def test_more_types_can_be_registered() -> None:
    cache = SnapshotCache()
    with pytest.raises(ValueError, match="register"):
        cache.version(ROUTE.type_url)
    cache.register(ROUTE)
    cache.register(ROUTE)  # idempotent
    cache.set_resources(ROUTE.type_url, {"r": RouteConfiguration(name="r")})
    assert [t.type_url for t in cache.types()] == [CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE.type_url]
    assert list(cache.resources(ROUTE.type_url)) == ["r"]


def test_consistent_names_eds_clusters_with_neither_an_assignment_nor_a_hold() -> None:
    cache = SnapshotCache()
    assert cache.consistent() == []
    web = Cluster(name="web", type=Cluster.EDS)
    api = Cluster(name="api", type=Cluster.EDS)
    api.eds_cluster_config.service_name = "api-svc"
    static = Cluster(name="db", type=Cluster.STATIC)
    cache.update_resources(CLUSTER_TYPE, {"web": web, "api": api, "db": static}, ())
    assert cache.consistent() == ["api-svc", "web"]
    cache.hold(ENDPOINT_TYPE, ["api-svc"])
    assert cache.consistent() == ["web"]
    cache.update_resources(ENDPOINT_TYPE, {"web": ClusterLoadAssignment(cluster_name="web")}, ())
    assert cache.consistent() == []
