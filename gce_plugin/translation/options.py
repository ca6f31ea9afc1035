"""The options every upstream type shares (``gloo.solo.io.UpstreamSpec``), applied to its cluster.

Mirrors Gloo's translator defaults and its upstreamconn, loadbalancer and upstreamssl plugins, using
the non-deprecated Envoy v3 fields: HTTP options go in ``typed_extension_protocol_options``.

Not mapped: a per-connection buffer limit. Gloo's ConnectionConfig of this schema version has no such
field (it only has max_requests_per_connection, connect_timeout and tcp_keepalive), and Gloo's
messages are not extended here.
"""

from __future__ import annotations

import math

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 import HttpProtocolOptions
from google.protobuf.duration_pb2 import Duration

from gce_plugin.api import CircuitBreakerConfig, ConnectionConfig, LoadBalancerConfig, UpstreamSpec
from gce_plugin.envoy_config.tls import (
    ssl_config_to_tls_context,
    upstream_tls_context,
    upstream_tls_socket,
)

# Gloo's ClusterConnectionTimeout, set before plugins run so they (and connection_config) can override it.
DEFAULT_CONNECT_TIMEOUT = Duration(seconds=5)
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def apply_upstream_options(spec: UpstreamSpec, cluster: Cluster) -> None:
    """Apply the shared options of ``spec`` to ``cluster``; raise ValueError on an invalid one."""
    if spec.HasField("connection_config"):
        apply_connection_config(spec.connection_config, cluster)
    if spec.HasField("circuit_breakers"):
        apply_circuit_breakers(spec.circuit_breakers, cluster)
    if spec.HasField("load_balancer_config"):
        apply_load_balancer_config(spec.load_balancer_config, cluster)
    if spec.use_http2:
        options = _http_protocol_options(cluster)
        options.explicit_http_config.http2_protocol_options.SetInParent()
        _set_http_protocol_options(cluster, options)
    if spec.HasField("ssl_config"):
        apply_ssl_config(spec, cluster)


def apply_connection_config(config: ConnectionConfig, cluster: Cluster) -> None:
    if config.HasField("connect_timeout"):
        timeout = config.connect_timeout
        if timeout.seconds < 0 or timeout.nanos < 0 or (timeout.seconds == 0 and timeout.nanos == 0):
            raise ValueError("connection_config.connect_timeout must be greater than zero")
        cluster.connect_timeout.CopyFrom(timeout)
    if config.max_requests_per_connection > 0:
        options = _http_protocol_options(cluster)
        options.common_http_protocol_options.max_requests_per_connection.value = (
            config.max_requests_per_connection
        )
        _set_http_protocol_options(cluster, options)
    if config.HasField("tcp_keepalive"):
        keepalive = config.tcp_keepalive
        out = cluster.upstream_connection_options.tcp_keepalive
        out.SetInParent()
        if keepalive.keepalive_probes > 0:
            out.keepalive_probes.value = keepalive.keepalive_probes
        if keepalive.HasField("keepalive_time"):
            out.keepalive_time.value = _whole_seconds(keepalive.keepalive_time, "keepalive_time")
        if keepalive.HasField("keepalive_interval"):
            out.keepalive_interval.value = _whole_seconds(keepalive.keepalive_interval, "keepalive_interval")


def _whole_seconds(duration: Duration, field: str) -> int:
    """Envoy keeps keepalive times in whole seconds; Gloo rounds a duration up to the next second."""
    if duration.seconds < 0 or duration.nanos < 0:
        raise ValueError(f"connection_config.tcp_keepalive.{field} must not be negative")
    return math.ceil(duration.seconds + duration.nanos / 1e9)


def apply_circuit_breakers(config: CircuitBreakerConfig, cluster: Cluster) -> None:
    cluster.circuit_breakers.ClearField("thresholds")
    thresholds = cluster.circuit_breakers.thresholds.add()
    for field in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
        if config.HasField(field):
            getattr(thresholds, field).value = getattr(config, field).value


def apply_load_balancer_config(config: LoadBalancerConfig, cluster: Cluster) -> None:
    if config.HasField("healthy_panic_threshold"):
        threshold = config.healthy_panic_threshold.value
        if not 0.0 <= threshold <= 100.0:
            raise ValueError(
                "load_balancer_config.healthy_panic_threshold must be a percentage in [0, 100], "
                f"got {threshold}"
            )
        cluster.common_lb_config.healthy_panic_threshold.value = threshold
    if config.HasField("update_merge_window"):
        window = config.update_merge_window
        if window.seconds < 0 or window.nanos < 0:
            raise ValueError("load_balancer_config.update_merge_window must not be negative")
        cluster.common_lb_config.update_merge_window.CopyFrom(window)
    policy = config.WhichOneof("type")
    if policy == "round_robin":
        cluster.lb_policy = Cluster.ROUND_ROBIN
    elif policy == "random":
        cluster.lb_policy = Cluster.RANDOM
    elif policy == "least_request":
        cluster.lb_policy = Cluster.LEAST_REQUEST
        choices = config.least_request.choice_count
        if choices == 1:
            raise ValueError("load_balancer_config.least_request.choice_count must be at least 2 (or unset)")
        if choices:
            cluster.least_request_lb_config.choice_count.value = choices


def apply_ssl_config(spec: UpstreamSpec, cluster: Cluster) -> None:
    """``ssl_config`` replaces any TLS a plugin set up (as in Gloo); an SNI the plugin chose is kept when
    ``ssl_config.sni`` is empty, so a static upstream's hostname still reaches the server."""
    context = ssl_config_to_tls_context(spec.ssl_config)
    if not context.sni and cluster.HasField("transport_socket"):
        previous = upstream_tls_context(cluster.transport_socket)
        if previous is not None:
            context.sni = previous.sni
    cluster.transport_socket.CopyFrom(upstream_tls_socket(context))


def _http_protocol_options(cluster: Cluster) -> HttpProtocolOptions:
    """The cluster's HttpProtocolOptions so far (a plugin may have set some), or new ones for HTTP/1."""
    options = HttpProtocolOptions()
    existing = cluster.typed_extension_protocol_options.get(HTTP_PROTOCOL_OPTIONS)
    if existing is not None and not existing.Unpack(options):
        raise ValueError(f"typed_extension_protocol_options[{HTTP_PROTOCOL_OPTIONS}] holds another type")
    if options.WhichOneof("upstream_protocol_options") is None:
        # Envoy requires a protocol choice; HTTP/1.1 is what a cluster without options speaks.
        options.explicit_http_config.http_protocol_options.SetInParent()
    return options


def _set_http_protocol_options(cluster: Cluster, options: HttpProtocolOptions) -> None:
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].Pack(options)
