"""Static upstreams, after Gloo's ``projects/gloo/pkg/plugins/static``.

The hosts go inline into the cluster's ``load_assignment``. The cluster is STATIC, or STRICT_DNS
(IPv4 lookups, as Gloo) as soon as one host is a hostname. ``use_tls``, or any host on port 443,
turns on upstream TLS, with the first hostname as SNI.
"""

from __future__ import annotations

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import UpstreamTlsContext

from gce_plugin.api import StaticUpstreamSpec, Upstream
from gce_plugin.envoy_config.addresses import is_ip
from gce_plugin.envoy_config.tls import upstream_tls_socket
from gce_plugin.plugins.plugin import Params, UpstreamPlugin

TLS_PORT = 443


class StaticPlugin(UpstreamPlugin):
    name = "static"

    def process_upstream(self, params: Params, upstream: Upstream, cluster: Cluster) -> None:
        if upstream.upstream_spec.WhichOneof("upstream_type") != "static":
            return
        spec: StaticUpstreamSpec = upstream.upstream_spec.static
        _check_hosts(spec)
        hostname = next((host.addr for host in spec.hosts if not is_ip(host.addr)), "")

        cluster.type = Cluster.STRICT_DNS if hostname else Cluster.STATIC
        if hostname:
            # Gloo's fix for hosts whose IPv6 addresses cannot be reached.
            cluster.dns_lookup_family = Cluster.V4_ONLY
        cluster.load_assignment.cluster_name = cluster.name
        lb_endpoints = cluster.load_assignment.endpoints.add().lb_endpoints
        for host in spec.hosts:
            socket_address = lb_endpoints.add().endpoint.address.socket_address
            socket_address.address = host.addr
            socket_address.port_value = host.port

        if (spec.use_tls or any(host.port == TLS_PORT for host in spec.hosts)) and not cluster.HasField(
            "transport_socket"
        ):
            cluster.transport_socket.CopyFrom(upstream_tls_socket(UpstreamTlsContext(sni=hostname)))


def _check_hosts(spec: StaticUpstreamSpec) -> None:
    if not spec.hosts:
        raise ValueError("static upstream needs at least one host in static.hosts")
    for index, host in enumerate(spec.hosts):
        if not host.addr:
            raise ValueError(f"static.hosts[{index}].addr is empty")
        if host.port == 0:
            raise ValueError(f"static.hosts[{index}] ({host.addr}) has no port")
        if host.port > 65535:
            raise ValueError(f"static.hosts[{index}] ({host.addr}) port {host.port} is above 65535")
