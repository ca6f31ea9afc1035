"""Canonical proto3 JSON uses exactly Gloo's keys and value forms (what Go's jsonpb writes/reads)."""

from __future__ import annotations

import json

from google.protobuf import json_format

from gce_plugin.api import Upstream
from tests.schema import gloo_facts as facts
from tests.schema import samples
from tests.schema.schema_walk import closure

# MessageToDict of samples.gce_upstream(), written out by hand from the fact sheet's JSON keys.
GCE_UPSTREAM_JSON = {
    "upstreamSpec": {
        "gce": {
            "instanceGroupName": "web",
            "instanceGroupRegion": "us-central1-a",
            "projectId": "demo-project",
            "port": 8080,
            "portName": "http",
            "addressType": "EXTERNAL",
            "labelSelector": {"role": "web", "env": "prod"},
        },
        "sslConfig": {
            "sslFiles": {"tlsCert": "/certs/tls.crt", "tlsKey": "/certs/tls.key", "rootCa": "/certs/ca.crt"},
            "sni": "web.example.com",
            "verifySubjectAltName": ["web.example.com", "www.example.com"],
            "parameters": {
                "minimumProtocolVersion": "TLSv1_2",
                "maximumProtocolVersion": "TLSv1_3",
                "cipherSuites": ["ECDHE-RSA-AES128-GCM-SHA256"],
                "ecdhCurves": ["X25519", "P-256"],
            },
        },
        "circuitBreakers": {
            "maxConnections": 100,
            "maxPendingRequests": 200,
            "maxRequests": 300,
            "maxRetries": 4,
        },
        "loadBalancerConfig": {"healthyPanicThreshold": 50.0, "updateMergeWindow": "2s", "roundRobin": {}},
        "connectionConfig": {
            "maxRequestsPerConnection": 50,
            "connectTimeout": "1.500s",
            "tcpKeepalive": {"keepaliveProbes": 3, "keepaliveTime": "7200s", "keepaliveInterval": "75s"},
        },
        "useHttp2": True,
    },
    "status": {
        "state": "Rejected",
        "reason": "1 error",
        "reportedBy": "gloo",
        "subresourceStatuses": {
            "gateway-proxy": {
                "state": "Accepted",
                "reportedBy": "gloo",
                "subresourceStatuses": {
                    "listener": {"state": "Rejected", "reason": "port 9999 is closed", "reportedBy": "gloo"}
                },
            },
            "other": {"state": "Accepted"},
        },
    },
    "metadata": {
        "name": "web",
        "namespace": "gloo-system",
        "cluster": "east",
        "resourceVersion": "42",
        "labels": {"app": "web", "tier": "frontend"},
        "annotations": {"owner": "edge-team"},
    },
    "discoveryMetadata": {},
}


def test_canonical_json_of_a_populated_upstream() -> None:
    assert json_format.MessageToDict(samples.gce_upstream()) == GCE_UPSTREAM_JSON


def test_json_of_a_go_style_document_parses() -> None:
    # As Go's jsonpb would send it: a JSON text, 64-bit-free, enums as names, durations as strings.
    text = json.dumps(GCE_UPSTREAM_JSON)
    assert json_format.Parse(text, Upstream()) == samples.gce_upstream()


def _all_rows() -> list[facts.Field]:
    rows = [f for fields in facts.MESSAGES.values() for f in fields]
    return rows + list(facts.GLOO_UPSTREAM_SPEC_ADDITIONS + facts.GCE_ADDITIONS)


def test_json_keys_are_the_fact_sheet_keys() -> None:
    """Every key a populated message emits is a fact-sheet JSON key of that message's fields."""
    allowed = {f.json for f in _all_rows()}

    map_fields = {f.json for f in _all_rows() if f.label == "map"}

    def keys(value: object) -> set[str]:
        found: set[str] = set()
        if isinstance(value, dict):
            for key, item in value.items():
                found.add(key)
                if key in map_fields:  # a map's keys are data, not field names: only look inside values
                    for entry in item.values():
                        found |= keys(entry)
                else:
                    found |= keys(item)
        elif isinstance(value, list):
            for item in value:
                found |= keys(item)
        return found

    emitted: set[str] = set()
    for upstream in samples.upstreams():
        emitted |= keys(json_format.MessageToDict(upstream))
    assert emitted <= allowed
    # And the easy-to-get-wrong ones are really there.
    assert {"tcpKeepalive", "useHttp2", "rootCa", "sslFiles", "projectId", "reportedBy"} <= emitted
    assert {"subresourceStatuses", "mergeExtractorsToBody", "sslConfig", "upstreamSpec"} <= emitted


def test_proto_field_names_keep_projectId_mixed_case() -> None:
    as_proto_names = json_format.MessageToDict(samples.gce_upstream(), preserving_proto_field_name=True)
    gce = as_proto_names["upstream_spec"]["gce"]
    assert "projectId" in gce and "project_id" not in gce
    assert "instance_group_name" in gce


def test_json_names_match_descriptor_json_names() -> None:
    messages, _ = closure(Upstream.DESCRIPTOR)
    for name, message in messages.items():
        expected = {f.name: f.json for f in facts.MESSAGES[name]}
        if name == "gloo.solo.io.UpstreamSpec":
            expected |= {f.name: f.json for f in facts.GLOO_UPSTREAM_SPEC_ADDITIONS}
        if name == "gce.plugins.gloo.solo.io.UpstreamSpec":
            expected |= {f.name: f.json for f in facts.GCE_ADDITIONS}
        assert {f.name: f.json_name for f in message.fields} == expected, name


def test_enums_as_names_and_numbers() -> None:
    upstream = samples.gce_upstream()
    assert json_format.MessageToDict(upstream)["status"]["state"] == "Rejected"
    numeric = json_format.MessageToDict(upstream, use_integers_for_enums=True)
    assert numeric["status"]["state"] == 2
    assert numeric["upstreamSpec"]["sslConfig"]["parameters"]["minimumProtocolVersion"] == 3
    # Readers accept both, like Go's jsonpb.
    assert json_format.ParseDict({"status": {"state": 1}}, Upstream()).status.state == 1
    assert json_format.ParseDict({"status": {"state": "Accepted"}}, Upstream()).status.state == 1
