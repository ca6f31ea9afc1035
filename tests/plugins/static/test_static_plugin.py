"""The static upstream plugin (Gloo's projects/gloo/pkg/plugins/static)."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import UpstreamTlsContext

from gce_plugin.api import (
    GceUpstreamSpec,
    Metadata,
    StaticHost,
    StaticUpstreamSpec,
    Upstream,
    UpstreamSpec,
)
from gce_plugin.envoy_config.tls import TLS_TRANSPORT_SOCKET
from gce_plugin.plugins.plugin import Params
from gce_plugin.plugins.static.plugin import StaticPlugin


def static(hosts: list[tuple[str, int]], use_tls: bool = False) -> Upstream:
    spec = StaticUpstreamSpec(hosts=[StaticHost(addr=a, port=p) for a, p in hosts], use_tls=use_tls)
    return Upstream(
        metadata=Metadata(name="ext", namespace="default"), upstream_spec=UpstreamSpec(static=spec)
    )


def process(upstream: Upstream) -> Cluster:
    cluster = Cluster(name="ext_default")
    StaticPlugin().process_upstream(Params(upstreams=(upstream,)), upstream, cluster)
    return cluster


def hosts(cluster: Cluster) -> list[tuple[str, int]]:
    [locality] = cluster.load_assignment.endpoints
    return [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for e in locality.lb_endpoints
    ]


def tls_sni(cluster: Cluster) -> str:
    assert cluster.transport_socket.name == TLS_TRANSPORT_SOCKET
    context = UpstreamTlsContext()
    assert cluster.transport_socket.typed_config.Unpack(context)
    return str(context.sni)


def test_ip_hosts_make_a_static_cluster_with_inline_endpoints_in_order() -> None:
    cluster = process(static([("10.0.0.2", 8080), ("10.0.0.1", 8081), ("fd00::1", 80)]))
    assert cluster.type == Cluster.STATIC
    assert cluster.load_assignment.cluster_name == "ext_default"
    assert hosts(cluster) == [("10.0.0.2", 8080), ("10.0.0.1", 8081), ("fd00::1", 80)]
    assert not cluster.HasField("transport_socket")
    assert cluster.dns_lookup_family == Cluster.AUTO


def test_a_hostname_makes_it_strict_dns_with_ipv4_lookups() -> None:
    cluster = process(static([("10.0.0.1", 80), ("api.example.com", 80)]))
    assert cluster.type == Cluster.STRICT_DNS
    assert cluster.dns_lookup_family == Cluster.V4_ONLY
    assert hosts(cluster) == [("10.0.0.1", 80), ("api.example.com", 80)]


def test_use_tls_sets_up_tls_with_the_first_hostname_as_sni() -> None:
    cluster = process(
        static([("10.0.0.1", 8443), ("a.example.com", 8443), ("b.example.com", 8443)], use_tls=True)
    )
    assert tls_sni(cluster) == "a.example.com"


def test_port_443_implies_tls_without_sni_for_ips() -> None:
    cluster = process(static([("10.0.0.1", 443)]))
    assert tls_sni(cluster) == ""


def test_existing_transport_socket_is_left_alone() -> None:
    upstream = static([("api.example.com", 443)])
    cluster = Cluster(name="ext_default")
    cluster.transport_socket.name = "envoy.transport_sockets.raw_buffer"
    StaticPlugin().process_upstream(Params(), upstream, cluster)
    assert cluster.transport_socket.name == "envoy.transport_sockets.raw_buffer"


@pytest.mark.parametrize(
    ("hosts_", "reason"),
    [
        ([], "static upstream needs at least one host in static.hosts"),
        ([("10.0.0.1", 80), ("", 80)], r"static.hosts\[1\].addr is empty"),
        ([("10.0.0.1", 0)], r"static.hosts\[0\] \(10.0.0.1\) has no port"),
        ([("10.0.0.1", 65536)], r"port 65536 is above 65535"),
    ],
)
def test_invalid_hosts_are_rejected(hosts_: list[tuple[str, int]], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        process(static(hosts_))


def test_other_upstream_types_are_untouched() -> None:
    upstream = Upstream(
        metadata=Metadata(name="web", namespace="default"),
        upstream_spec=UpstreamSpec(gce=GceUpstreamSpec(instance_group_name="web")),
    )
    cluster = Cluster(name="web_default")
    StaticPlugin().process_upstream(Params(), upstream, cluster)
    assert cluster == Cluster(name="web_default")
