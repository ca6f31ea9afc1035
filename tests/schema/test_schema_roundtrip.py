"""Binary and JSON round trips of fully populated messages lose nothing."""

from __future__ import annotations

import pytest
from google.protobuf import json_format, text_format
from google.protobuf.message import Message

from gce_plugin.api import Endpoint, Upstream
from tests.schema import samples
from tests.schema.schema_walk import closure, present

MESSAGES, _ = closure(Upstream.DESCRIPTOR, Endpoint.DESCRIPTOR)

SAMPLES: list[Upstream | Endpoint] = [*samples.upstreams(), samples.endpoint()]
IDS = [f"{type(m).__name__}-{m.metadata.name}" for m in SAMPLES]


def test_samples_set_every_field_of_the_closure() -> None:
    covered = {pair for sample in SAMPLES for pair in present(sample)}
    every = {(name, f.name) for name, message in MESSAGES.items() for f in message.fields}
    every |= {(name, "") for name in MESSAGES}  # field-less messages must be present too
    assert every - covered == set()


@pytest.mark.parametrize("message", SAMPLES, ids=IDS)
def test_binary_round_trip(message: Message) -> None:
    data = message.SerializeToString(deterministic=True)
    back = type(message).FromString(data)
    assert back == message
    assert back.SerializeToString(deterministic=True) == data
    # Deterministic means the same bytes every time, and for a re-built copy too.
    assert message.SerializeToString(deterministic=True) == data
    copy = type(message)()
    copy.CopyFrom(message)
    assert copy.SerializeToString(deterministic=True) == data


@pytest.mark.parametrize("message", SAMPLES, ids=IDS)
@pytest.mark.parametrize("original_names", [False, True], ids=["camelCase", "proto-names"])
def test_json_round_trip(message: Message, original_names: bool) -> None:
    text = json_format.MessageToJson(message, preserving_proto_field_name=original_names)
    back = json_format.Parse(text, type(message)(), ignore_unknown_fields=False)
    assert back == message
    as_dict = json_format.MessageToDict(message, preserving_proto_field_name=original_names)
    assert json_format.ParseDict(as_dict, type(message)()) == message


@pytest.mark.parametrize("message", SAMPLES, ids=IDS)
def test_text_format_round_trip(message: Message) -> None:
    assert text_format.Parse(text_format.MessageToString(message), type(message)()) == message


def test_recursive_status_survives() -> None:
    upstream = Upstream.FromString(samples.gce_upstream().SerializeToString())
    leaf = upstream.status.subresource_statuses["gateway-proxy"].subresource_statuses["listener"]
    assert leaf.reason == "port 9999 is closed"
    assert leaf.state == upstream.status.Rejected


def test_unknown_fields_from_a_newer_gloo_are_kept() -> None:
    # A newer Gloo may add fields; a reader of this schema must pass them through untouched.
    extra = bytes([0x62, 0x03]) + b"new"  # field 12, length-delimited, b"new"
    upstream = Upstream.FromString(samples.gce_upstream().SerializeToString() + extra)
    assert upstream.SerializeToString().endswith(extra)


def test_endpoint_json_keys() -> None:
    assert json_format.MessageToDict(samples.endpoint()) == {
        "upstreams": [{"name": "web", "namespace": "gloo-system"}, {"name": "web2", "namespace": "default"}],
        "address": "10.128.0.7",
        "port": 8080,
        "metadata": {
            "name": "web-10-128-0-7",
            "namespace": "gloo-system",
            "cluster": "east",
            "resourceVersion": "42",
            "labels": {"app": "web-10-128-0-7", "tier": "frontend"},
            "annotations": {"owner": "edge-team"},
        },
    }
    assert Endpoint.FromString(samples.endpoint().SerializeToString()) == samples.endpoint()
