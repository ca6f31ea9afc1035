"""Gloo's wire format, built by hand from field numbers and wire types (not from this project's
classes), decodes to the expected values; this project's serialization gives the same bytes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf.duration_pb2 import Duration

from gce_plugin.api import (
    ConnectionConfig,
    GceUpstreamSpec,
    Metadata,
    StaticHost,
    StaticUpstreamSpec,
    Status,
    Upstream,
    UpstreamSpec,
)

VARINT, LEN = 0, 2


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def uint(number: int, value: int) -> bytes:
    return tag(number, VARINT) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return tag(number, LEN) + varint(len(data)) + data


def entry(number: int, key: str, value: str) -> bytes:
    """One map<string,string> entry: a length-delimited message {1: key, 2: value}."""
    return ld(number, ld(1, key) + ld(2, value))


def test_encoder_itself() -> None:
    # Spot checks against the protobuf encoding spec, so the encoder is not merely self-consistent.
    assert varint(1) == b"\x01"
    assert varint(150) == b"\x96\x01"
    assert varint(300) == b"\xac\x02"
    assert uint(1, 150) == b"\x08\x96\x01"
    assert ld(2, "testing") == b"\x12\x07testing"


# Fields appear in number order at every level, map entries in key order: what a deterministic
# serializer emits.
METADATA = ld(2, "web") + ld(3, "default") + entry(5, "app", "web") + entry(5, "team", "edge")
STATUS = uint(1, 1) + ld(2, "accepted by test")  # state = Accepted (1)
CONNECT_TIMEOUT_1_5S = ld(2, uint(1, 1) + uint(2, 500_000_000))  # Duration{seconds: 1, nanos: 5e8}
COMMON = ld(9, CONNECT_TIMEOUT_1_5S) + uint(10, 1)  # connection_config, use_http2
GCE = (
    ld(1, "web")
    + ld(2, "us-central1-a")
    + ld(3, "demo-project")
    + uint(4, 8080)
    + ld(5, "http")
    + uint(6, 1)  # address_type = EXTERNAL
    + entry(7, "env", "prod")
    + entry(7, "role", "web")
)
STATIC = ld(1, ld(1, "10.0.0.1") + uint(2, 80)) + ld(1, ld(1, "10.0.0.2") + uint(2, 8080)) + uint(3, 1)

GCE_UPSTREAM_BYTES = ld(2, COMMON + ld(11, GCE)) + ld(6, STATUS) + ld(7, METADATA)
STATIC_UPSTREAM_BYTES = ld(2, ld(4, STATIC) + COMMON) + ld(6, STATUS) + ld(7, METADATA)


def _common(spec: UpstreamSpec) -> UpstreamSpec:
    spec.connection_config.CopyFrom(ConnectionConfig(connect_timeout=Duration(seconds=1, nanos=500_000_000)))
    spec.use_http2 = True
    return spec


def _upstream(spec: UpstreamSpec) -> Upstream:
    return Upstream(
        metadata=Metadata(name="web", namespace="default", labels={"team": "edge", "app": "web"}),
        status=Status(state=Status.Accepted, reason="accepted by test"),
        upstream_spec=_common(spec),
    )


def expected_gce() -> Upstream:
    gce = GceUpstreamSpec(
        instance_group_name="web",
        instance_group_region="us-central1-a",
        projectId="demo-project",
        port=8080,
        port_name="http",
        address_type=GceUpstreamSpec.EXTERNAL,
        label_selector={"role": "web", "env": "prod"},
    )
    return _upstream(UpstreamSpec(gce=gce))


def expected_static() -> Upstream:
    hosts = [StaticHost(addr="10.0.0.1", port=80), StaticHost(addr="10.0.0.2", port=8080)]
    return _upstream(UpstreamSpec(static=StaticUpstreamSpec(hosts=hosts, use_tls=True)))


def test_hand_encoded_gce_upstream_decodes() -> None:
    upstream = Upstream.FromString(GCE_UPSTREAM_BYTES)
    meta = upstream.metadata
    assert (meta.name, meta.namespace) == ("web", "default")
    assert dict(meta.labels) == {"app": "web", "team": "edge"}
    assert upstream.status.state == Status.Accepted
    assert upstream.status.reason == "accepted by test"
    spec = upstream.upstream_spec
    assert spec.WhichOneof("upstream_type") == "gce"
    gce = spec.gce
    assert gce.instance_group_name == "web"
    assert gce.instance_group_region == "us-central1-a"
    assert gce.projectId == "demo-project"
    assert gce.port == 8080
    assert gce.port_name == "http"
    assert gce.address_type == GceUpstreamSpec.EXTERNAL
    assert dict(gce.label_selector) == {"env": "prod", "role": "web"}
    assert spec.use_http2 is True
    timeout = spec.connection_config.connect_timeout
    assert (timeout.seconds, timeout.nanos) == (1, 500_000_000)
    assert timeout.ToTimedelta().total_seconds() == 1.5
    assert not upstream.HasField("discovery_metadata")
    assert upstream == expected_gce()


def test_hand_encoded_static_upstream_decodes() -> None:
    upstream = Upstream.FromString(STATIC_UPSTREAM_BYTES)
    spec = upstream.upstream_spec
    assert spec.WhichOneof("upstream_type") == "static"
    assert [(h.addr, h.port) for h in spec.static.hosts] == [("10.0.0.1", 80), ("10.0.0.2", 8080)]
    assert spec.static.use_tls is True
    assert spec.use_http2 is True
    assert spec.connection_config.connect_timeout.ToTimedelta().total_seconds() == 1.5
    assert upstream.status.state == Status.Accepted
    assert upstream == expected_static()


@pytest.mark.parametrize(
    ("build", "wire"),
    [(expected_gce, GCE_UPSTREAM_BYTES), (expected_static, STATIC_UPSTREAM_BYTES)],
    ids=["gce", "static"],
)
def test_serialization_is_the_hand_encoded_bytes(build: Callable[[], Upstream], wire: bytes) -> None:
    upstream = build()
    assert upstream.SerializeToString(deterministic=True) == wire
    # Deterministic: the same bytes again, and from a decoded copy.
    assert upstream.SerializeToString(deterministic=True) == wire
    assert Upstream.FromString(wire).SerializeToString(deterministic=True) == wire
    assert upstream.ByteSize() == len(wire)


def test_fields_out_of_number_order_decode_the_same() -> None:
    # Decoders must accept any field order (Go writes number order, but that is not guaranteed).
    shuffled = ld(7, METADATA) + ld(6, STATUS) + ld(2, ld(11, GCE) + COMMON)
    assert Upstream.FromString(shuffled) == expected_gce()


def test_empty_non_nullable_submessages_from_go_are_present() -> None:
    # Go's gogo (nullable=false) always writes status and metadata, even empty: tag + length 0.
    upstream = Upstream.FromString(ld(6, b"") + ld(7, b""))
    assert upstream.HasField("status") and upstream.HasField("metadata")
    assert upstream.status.state == Status.Pending


def test_last_oneof_member_on_the_wire_wins() -> None:
    upstream = Upstream.FromString(ld(2, ld(11, GCE)) + ld(2, ld(4, STATIC)))
    assert upstream.upstream_spec.WhichOneof("upstream_type") == "static"
