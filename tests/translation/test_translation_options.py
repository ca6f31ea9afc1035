"""The shared UpstreamSpec options, each mapped to its Envoy v3 cluster field."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 import HttpProtocolOptions
from google.protobuf.duration_pb2 import Duration
from google.protobuf.wrappers_pb2 import DoubleValue, UInt32Value

from gce_plugin.api import CircuitBreakerConfig, ConnectionConfig, LoadBalancerConfig, Upstream
from gce_plugin.plugins.plugin import Params
from gce_plugin.translation import translate_upstream
from gce_plugin.translation.options import HTTP_PROTOCOL_OPTIONS
from tests.translation.translation_fakes import FakeEdsPlugin, gce_upstream


def translate(upstream: Upstream) -> Cluster:
    return translate_upstream([FakeEdsPlugin()], Params(upstreams=(upstream,)), upstream)


def http_options(cluster: Cluster) -> HttpProtocolOptions:
    options = HttpProtocolOptions()
    assert cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].Unpack(options)
    return options


def test_defaults_are_glooish() -> None:
    cluster = translate(gce_upstream("web", "prod"))
    assert cluster.name == "web_prod"
    assert cluster.connect_timeout == Duration(seconds=5)
    assert cluster.type == Cluster.EDS
    assert not cluster.HasField("circuit_breakers")
    assert not cluster.HasField("transport_socket")
    assert not cluster.typed_extension_protocol_options
    assert cluster.lb_policy == Cluster.ROUND_ROBIN


def test_connection_config() -> None:
    config = ConnectionConfig(
        connect_timeout=Duration(seconds=1, nanos=500_000_000),
        max_requests_per_connection=7,
        tcp_keepalive=ConnectionConfig.TcpKeepAlive(
            keepalive_probes=3,
            keepalive_time=Duration(seconds=10, nanos=1),  # rounded up, as Gloo does
            keepalive_interval=Duration(seconds=2),
        ),
    )
    cluster = translate(gce_upstream("web", connection_config=config))
    assert cluster.connect_timeout == Duration(seconds=1, nanos=500_000_000)
    options = http_options(cluster)
    assert options.common_http_protocol_options.max_requests_per_connection.value == 7
    assert options.explicit_http_config.HasField("http_protocol_options")
    assert not cluster.HasField("max_requests_per_connection")  # the deprecated field stays unset
    keepalive = cluster.upstream_connection_options.tcp_keepalive
    assert (
        keepalive.keepalive_probes.value,
        keepalive.keepalive_time.value,
        keepalive.keepalive_interval.value,
    ) == (
        3,
        11,
        2,
    )


def test_empty_tcp_keepalive_turns_keepalive_on_with_os_defaults() -> None:
    config = ConnectionConfig(tcp_keepalive=ConnectionConfig.TcpKeepAlive())
    cluster = translate(gce_upstream("web", connection_config=config))
    assert cluster.upstream_connection_options.HasField("tcp_keepalive")
    assert not cluster.upstream_connection_options.tcp_keepalive.HasField("keepalive_probes")


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (ConnectionConfig(connect_timeout=Duration()), "connect_timeout must be greater than zero"),
        (ConnectionConfig(connect_timeout=Duration(seconds=-1)), "connect_timeout must be greater than zero"),
        (
            ConnectionConfig(
                tcp_keepalive=ConnectionConfig.TcpKeepAlive(keepalive_time=Duration(seconds=-3))
            ),
            "keepalive_time must not be negative",
        ),
    ],
)
def test_invalid_connection_config(config: ConnectionConfig, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        translate(gce_upstream("web", connection_config=config))


def test_circuit_breakers_copy_set_wrappers_only() -> None:
    config = CircuitBreakerConfig(
        max_connections=UInt32Value(value=10),
        max_requests=UInt32Value(value=0),
        max_retries=UInt32Value(value=3),
    )
    cluster = translate(gce_upstream("web", circuit_breakers=config))
    [thresholds] = cluster.circuit_breakers.thresholds
    assert thresholds.max_connections.value == 10
    assert thresholds.HasField("max_requests") and thresholds.max_requests.value == 0
    assert thresholds.max_retries.value == 3
    assert not thresholds.HasField("max_pending_requests")


def test_load_balancer_common_config() -> None:
    config = LoadBalancerConfig(
        healthy_panic_threshold=DoubleValue(value=25.5), update_merge_window=Duration(seconds=2)
    )
    cluster = translate(gce_upstream("web", load_balancer_config=config))
    assert cluster.common_lb_config.healthy_panic_threshold.value == 25.5
    assert cluster.common_lb_config.update_merge_window == Duration(seconds=2)


@pytest.mark.parametrize(
    ("config", "policy"),
    [
        (LoadBalancerConfig(round_robin=LoadBalancerConfig.RoundRobin()), Cluster.ROUND_ROBIN),
        (LoadBalancerConfig(random=LoadBalancerConfig.Random()), Cluster.RANDOM),
        (LoadBalancerConfig(least_request=LoadBalancerConfig.LeastRequest()), Cluster.LEAST_REQUEST),
    ],
)
def test_load_balancer_policy(config: LoadBalancerConfig, policy: int) -> None:
    cluster = translate(gce_upstream("web", load_balancer_config=config))
    assert cluster.lb_policy == policy
    assert not cluster.HasField("least_request_lb_config")


def test_least_request_choice_count() -> None:
    config = LoadBalancerConfig(least_request=LoadBalancerConfig.LeastRequest(choice_count=4))
    cluster = translate(gce_upstream("web", load_balancer_config=config))
    assert cluster.lb_policy == Cluster.LEAST_REQUEST
    assert cluster.least_request_lb_config.choice_count.value == 4


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (LoadBalancerConfig(healthy_panic_threshold=DoubleValue(value=100.5)), r"percentage in \[0, 100\]"),
        (LoadBalancerConfig(healthy_panic_threshold=DoubleValue(value=-1)), r"percentage in \[0, 100\]"),
        (LoadBalancerConfig(update_merge_window=Duration(seconds=-1)), "must not be negative"),
        (
            LoadBalancerConfig(least_request=LoadBalancerConfig.LeastRequest(choice_count=1)),
            "choice_count must be at least 2",
        ),
    ],
)
def test_invalid_load_balancer_config(config: LoadBalancerConfig, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        translate(gce_upstream("web", load_balancer_config=config))


def test_use_http2_is_the_v3_http_protocol_option() -> None:
    cluster = translate(gce_upstream("web", use_http2=True))
    options = http_options(cluster)
    assert options.explicit_http_config.HasField("http2_protocol_options")
    assert not cluster.HasField("http2_protocol_options")  # not the deprecated cluster field


def test_http2_and_max_requests_share_one_protocol_options() -> None:
    config = ConnectionConfig(max_requests_per_connection=2)
    cluster = translate(gce_upstream("web", use_http2=True, connection_config=config))
    assert list(cluster.typed_extension_protocol_options) == [HTTP_PROTOCOL_OPTIONS]
    options = http_options(cluster)
    assert options.explicit_http_config.HasField("http2_protocol_options")
    assert options.common_http_protocol_options.max_requests_per_connection.value == 2
