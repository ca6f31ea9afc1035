"""An endpoint's health travels on Gloo's Endpoint as the ``HEALTH_STATUS_ANNOTATION`` annotation
and becomes its ``LbEndpoint.health_status``; a health-only change of one VM rebuilds (and so sends)
only its upstream's assignment; EDS clusters apply such changes at once (``update_merge_window`` 0)."""

from __future__ import annotations

import logging

import pytest
from envoy.config.core.v3.health_check_pb2 import HealthStatus
from google.protobuf.duration_pb2 import Duration

from gce_plugin.api import Endpoint, LoadBalancerConfig
from gce_plugin.plugins.gce.plugin import GcePlugin
from gce_plugin.plugins.plugin import (
    HEALTH_STATUS_ANNOTATION,
    EndpointsUpdate,
    UpstreamEndpoints,
    UpstreamKey,
)
from gce_plugin.translation.translator import Translator
from tests.translation.translation_fakes import endpoint, gce_upstream

WEB: UpstreamKey = ("default", "web")
API: UpstreamKey = ("default", "api")


def with_health(e: Endpoint, health: str | None) -> Endpoint:
    if health is not None:
        e.metadata.annotations[HEALTH_STATUS_ANNOTATION] = health
    return e


def of(upstream: str, **health: str | None) -> UpstreamEndpoints:
    """Endpoints of ``upstream`` at 10.0.0.<n> for keyword ``h<n>=health``."""
    return UpstreamEndpoints.of(
        with_health(endpoint(upstream, f"10.0.0.{k[1:]}"), h) for k, h in health.items()
    )


def statuses(translator: Translator, cluster: str) -> dict[str, str]:
    assignment = translator.result().assignments[cluster]
    return {
        lb.endpoint.address.socket_address.address: HealthStatus.Name(lb.health_status)
        for lb in assignment.endpoints[0].lb_endpoints
    }


def test_the_annotation_becomes_health_status_and_its_absence_unknown() -> None:
    translator = Translator([GcePlugin()])
    translator.set_upstreams([gce_upstream("web")])
    names = ["HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT", "DEGRADED", "UNKNOWN", None]
    translator.set_endpoints(
        EndpointsUpdate.first({WEB: of("web", **{f"h{i}": n for i, n in enumerate(names)})})
    )
    assert statuses(translator, "web_default") == {f"10.0.0.{i}": n or "UNKNOWN" for i, n in enumerate(names)}


def test_a_value_envoy_does_not_know_is_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    translator = Translator([GcePlugin()])
    translator.set_upstreams([gce_upstream("web")])
    with caplog.at_level(logging.WARNING):
        translator.set_endpoints(EndpointsUpdate.first({WEB: of("web", h1="SICK", h2="HEALTHY")}))
    assert statuses(translator, "web_default") == {"10.0.0.1": "UNKNOWN", "10.0.0.2": "HEALTHY"}
    assert "'SICK' is not an Envoy HealthStatus" in caplog.text


def test_a_health_only_change_of_one_vm_sends_only_its_upstreams_assignment() -> None:
    translator = Translator([GcePlugin()])
    translator.set_upstreams([gce_upstream("web"), gce_upstream("api")])
    first = EndpointsUpdate.first({WEB: of("web", h1="HEALTHY", h2="HEALTHY"), API: of("api", h3="HEALTHY")})
    translator.set_endpoints(first)
    api = translator.result().assignments["api_default"]
    draining = first.next({**first.upstreams, WEB: of("web", h1="HEALTHY", h2="DRAINING")})
    assert draining.changed == {WEB}
    delta = translator.set_endpoints(draining)
    assert delta.assignment_upserts.keys() == {"web_default"}
    assert not delta.cluster_upserts and not delta.assignment_removals
    assert statuses(translator, "web_default") == {"10.0.0.1": "HEALTHY", "10.0.0.2": "DRAINING"}
    assert translator.result().assignments["api_default"] is api


def test_eds_clusters_apply_health_changes_at_once_unless_the_upstream_says_otherwise() -> None:
    translator = Translator([GcePlugin()])
    custom = gce_upstream(
        "api", load_balancer_config=LoadBalancerConfig(update_merge_window=Duration(seconds=2))
    )
    translator.set_upstreams([gce_upstream("web"), custom])
    clusters = translator.result().clusters
    assert clusters["web_default"].common_lb_config.HasField("update_merge_window")
    assert clusters["web_default"].common_lb_config.update_merge_window == Duration(seconds=0)
    assert clusters["api_default"].common_lb_config.update_merge_window == Duration(seconds=2)
