"""Endpoints -> ClusterLoadAssignments: labels, order, invalid endpoints."""

from __future__ import annotations

import logging
import random

import pytest
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from google.protobuf import json_format

from gce_plugin.translation.endpoints import (
    LB_METADATA_NAMESPACE,
    build_assignment,
    canonical,
    endpoint_record,
)
from gce_plugin.translation.translator import Translator
from tests.translation.translation_fakes import FakeEdsPlugin, answer, endpoint, gce_upstream


def addresses(assignment: ClusterLoadAssignment) -> list[tuple[str, int]]:
    [locality] = assignment.endpoints
    return [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for e in locality.lb_endpoints
    ]


def test_labels_become_envoy_lb_metadata() -> None:
    records = canonical([endpoint_record(endpoint("web", "10.0.0.1", labels={"zone": "a", "app": "web"}))])
    assignment = build_assignment("web_default", records)
    assert assignment.cluster_name == "web_default"
    [lb_endpoint] = assignment.endpoints[0].lb_endpoints
    assert json_format.MessageToDict(lb_endpoint.metadata.filter_metadata[LB_METADATA_NAMESPACE]) == {
        "app": "web",
        "zone": "a",
    }


def test_endpoint_without_labels_has_no_metadata() -> None:
    assignment = build_assignment("web", canonical([endpoint_record(endpoint("web", "10.0.0.1"))]))
    assert not assignment.endpoints[0].lb_endpoints[0].HasField("metadata")


def test_same_endpoints_in_any_order_give_identical_bytes() -> None:
    endpoints = [
        endpoint("web", f"10.0.{i % 3}.{i}", port=8000 + i % 2, labels={"i": str(i % 4), "b": "x"})
        for i in range(50)
    ]
    shuffled = list(endpoints)
    random.Random(7).shuffle(shuffled)
    first = build_assignment("web", canonical(endpoint_record(e) for e in endpoints))
    second = build_assignment("web", canonical(endpoint_record(e) for e in shuffled))
    assert first.SerializeToString(deterministic=True) == second.SerializeToString(deterministic=True)
    assert addresses(first) == sorted(addresses(first))


def test_records_already_canonical_are_kept_once() -> None:
    records = canonical(endpoint_record(endpoint("web", f"10.0.0.{i}")) for i in (3, 1, 2, 1))
    assert [r[0] for r in records] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert canonical(records) is records
    unsorted = (records[2], records[0], records[1])
    assert canonical(unsorted) == records and canonical(unsorted) is not unsorted


def test_duplicates_collapse_but_different_ports_stay() -> None:
    endpoints = [
        endpoint("web", "10.0.0.1", 80),
        endpoint("web", "10.0.0.1", 80),
        endpoint("web", "10.0.0.1", 81),
    ]
    assignment = build_assignment("web", canonical(endpoint_record(e) for e in endpoints))
    assert addresses(assignment) == [("10.0.0.1", 80), ("10.0.0.1", 81)]


def test_ipv6_endpoint() -> None:
    assignment = build_assignment("web", canonical([endpoint_record(endpoint("web", "fd00::1", 443))]))
    assert addresses(assignment) == [("fd00::1", 443)]


@pytest.mark.parametrize(
    ("address", "port"), [("", 80), ("web.internal", 80), ("10.0.0.2", 0), ("10.0.0.2", 70000)]
)
def test_endpoints_envoy_would_reject_are_skipped_with_a_warning(
    address: str, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    records = canonical(
        endpoint_record(e) for e in [endpoint("web", "10.0.0.1"), endpoint("web", address, port)]
    )
    with caplog.at_level(logging.WARNING, logger="gce_plugin.translation.endpoints"):
        assignment = build_assignment("web_default", records, upstream="default.web")
    assert addresses(assignment) == [("10.0.0.1", 8080)]
    [message] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "EDS needs an IP address" in message.getMessage()
    assert getattr(message, "upstream") == "default.web"  # noqa: B009 - set via logging's extra


def test_an_endpoint_of_two_upstreams_is_in_both_assignments() -> None:
    shared = endpoint("web", "10.0.0.9")
    shared.upstreams.add(name="api", namespace="prod")
    update = answer([endpoint("web", "10.0.0.1"), shared])
    assert sorted(update.upstreams) == [("default", "web"), ("prod", "api")]
    result = Translator([FakeEdsPlugin()]).translate(
        [gce_upstream("web"), gce_upstream("api", "prod")], update
    )
    assert addresses(result.assignments["web_default"]) == [("10.0.0.1", 8080), ("10.0.0.9", 8080)]
    assert addresses(result.assignments["api_prod"]) == [("10.0.0.9", 8080)]
