"""Test doubles and builders for translation tests.

``FakeEdsPlugin`` stands in for the gce plugin's translation half: it marks gce upstreams' clusters EDS
with an ADS config source, which is all translation needs from it.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.cluster.v3.cluster_pb2 import Cluster

from gce_plugin.api import (
    Endpoint,
    GceUpstreamSpec,
    Metadata,
    ResourceRef,
    StaticHost,
    StaticUpstreamSpec,
    Upstream,
    UpstreamSpec,
)
from gce_plugin.envoy_config.sources import eds_over_ads
from gce_plugin.plugins.plugin import EndpointsUpdate, Params, UpstreamEndpoints, UpstreamKey, UpstreamPlugin
from gce_plugin.translation.translator import Delta


class FakeEdsPlugin(UpstreamPlugin):
    name = "fake-eds"

    def process_upstream(self, params: Params, upstream: Upstream, cluster: Cluster) -> None:
        if upstream.upstream_spec.WhichOneof("upstream_type") != "gce":
            return
        eds_over_ads(cluster)


class CountingPlugin(UpstreamPlugin):
    """Records which upstreams it was asked to process."""

    name = "counting"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def process_upstream(self, params: Params, upstream: Upstream, cluster: Cluster) -> None:
        self.seen.append((upstream.metadata.namespace, upstream.metadata.name))


class ExplodingPlugin(UpstreamPlugin):
    """A buggy plugin: fails with a non-ValueError for upstreams named ``boom``."""

    name = "exploding"

    def process_upstream(self, params: Params, upstream: Upstream, cluster: Cluster) -> None:
        if upstream.metadata.name == "boom":
            raise KeyError("missing")


def gce_upstream(name: str, namespace: str = "default", **spec_fields: object) -> Upstream:
    return Upstream(
        metadata=Metadata(name=name, namespace=namespace),
        upstream_spec=UpstreamSpec(
            gce=GceUpstreamSpec(
                instance_group_name=name, instance_group_region="us-central1-a", projectId="demo"
            ),
            **spec_fields,  # type: ignore[arg-type]
        ),
    )


def static_upstream(
    name: str,
    hosts: list[tuple[str, int]],
    namespace: str = "default",
    use_tls: bool = False,
    **spec_fields: object,
) -> Upstream:
    static = StaticUpstreamSpec(hosts=[StaticHost(addr=a, port=p) for a, p in hosts], use_tls=use_tls)
    return Upstream(
        metadata=Metadata(name=name, namespace=namespace),
        upstream_spec=UpstreamSpec(static=static, **spec_fields),  # type: ignore[arg-type]
    )


def endpoint(
    upstream: str,
    address: str,
    port: int = 8080,
    labels: dict[str, str] | None = None,
    namespace: str = "default",
    name: str | None = None,
) -> Endpoint:
    return Endpoint(
        upstreams=[ResourceRef(name=upstream, namespace=namespace)],
        address=address,
        port=port,
        metadata=Metadata(name=name or f"{upstream}-{address}", namespace=namespace, labels=labels or {}),
    )


def answer(endpoints: Iterable[Endpoint] = (), resolved: Iterable[UpstreamKey] = ()) -> EndpointsUpdate:
    """A complete discovery answer as a watch's first one (every upstream in it changed): each endpoint
    under every upstream it references; ``resolved`` names upstreams known even with no endpoints."""
    groups: dict[UpstreamKey, list[Endpoint]] = {key: [] for key in resolved}
    for e in endpoints:
        for ref in e.upstreams:
            groups.setdefault((ref.namespace, ref.name), []).append(e)
    return EndpointsUpdate.first({key: UpstreamEndpoints.of(found) for key, found in groups.items()})


def only(key: UpstreamKey, endpoints: Iterable[Endpoint]) -> EndpointsUpdate:
    """An answer for one upstream: all its endpoints."""
    return EndpointsUpdate.first({key: UpstreamEndpoints.of(endpoints)})


# What a delta changes in the cache, by resource name: (clusters upserted, clusters removed,
# assignments upserted, assignments removed), the four things the control plane hands it.
Published = tuple[set[str], set[str], set[str], set[str]]
NOTHING: Published = (set(), set(), set(), set())


def published(delta: Delta) -> Published:
    return (
        set(delta.cluster_upserts),
        set(delta.cluster_removals),
        set(delta.assignment_upserts),
        set(delta.assignment_removals),
    )
