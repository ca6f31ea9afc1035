"""Upstream values in etcd, without etcd: the format Go Gloo's KV client writes and reads."""

from __future__ import annotations

import pytest
import yaml

from gce_plugin.api import Metadata, Status, Upstream
from gce_plugin.manifests import ManifestError
from gce_plugin.store.codec import decode_upstream, encode_upstream, same_content
from gce_plugin.store.layout import Layout

KEY = "gloo/gloo.solo.io/v1/Upstream/default/web"


def _upstream() -> Upstream:
    upstream = Upstream(metadata=Metadata(name="web", namespace="default", labels={"team": "a"}))
    gce = upstream.upstream_spec.gce
    gce.instance_group_name = "web"
    gce.instance_group_region = "us-central1-a"
    gce.projectId = "demo-project"
    upstream.upstream_spec.use_http2 = True
    return upstream


def test_value_is_the_whole_message_in_proto3_json_names_with_sorted_keys() -> None:
    upstream = _upstream()
    upstream.metadata.resource_version = "41"
    upstream.status.CopyFrom(Status(state=Status.Accepted))
    text = encode_upstream(upstream).decode()
    assert text == (
        "metadata:\n"
        "  labels:\n"
        "    team: a\n"
        "  name: web\n"
        "  namespace: default\n"
        "upstreamSpec:\n"
        "  gce:\n"
        "    instanceGroupName: web\n"
        "    instanceGroupRegion: us-central1-a\n"
        "    projectId: demo-project\n"
        "  useHttp2: true\n"
    )  # no resourceVersion (etcd's mod_revision is) and no status (it has its own key)


def test_round_trip_and_resource_version_from_the_revision() -> None:
    upstream = _upstream()
    back = decode_upstream(KEY, encode_upstream(upstream), 57, ("default", "web"))
    assert back.metadata.resource_version == "57"
    assert same_content(back, upstream)
    back.upstream_spec.use_http2 = False
    assert not same_content(back, upstream)


def test_values_go_writes_are_read_status_included() -> None:
    value = yaml.safe_dump(
        {
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "3"},
            "status": {"state": "Rejected", "reason": "bad", "reportedBy": "gloo"},
            "upstreamSpec": {"static": {"hosts": [{"addr": "10.0.0.1", "port": 80}]}},
        }
    ).encode()
    upstream = decode_upstream(KEY, value, 9, ("default", "web"))
    assert upstream.metadata.resource_version == "9"
    assert upstream.status.state == Status.Rejected and upstream.status.reported_by == "gloo"
    assert upstream.upstream_spec.static.hosts[0].addr == "10.0.0.1"


def test_missing_metadata_comes_from_the_key() -> None:
    value = b"upstreamSpec:\n  static:\n    hosts: [{addr: 10.0.0.1, port: 80}]\n"
    upstream = decode_upstream(KEY, value, 2, ("default", "web"))
    assert (upstream.metadata.namespace, upstream.metadata.name) == ("default", "web")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"\xff", f"{KEY}: not UTF-8 text (byte 0)"),
        (b"a: [", f"{KEY}: line 1: YAML syntax error"),
        (b"a: 1\n---\nb: 2\n", f"{KEY}: expected one YAML document, found 2"),
        (b"- 1\n", f"{KEY}: expected a mapping with metadata and upstreamSpec"),
        (b"metadata: {name: web}\n", f"{KEY}: upstreamSpec: required"),
        (b"upstreamSpec: {gce: {projectID: x}}\n", f"{KEY}: upstreamSpec.gce.projectID: unknown field"),
        (b"upstreamSpec: {}\nkind: Upstream\n", f"{KEY}: kind: unknown field"),
        (b"upstreamSpec: {}\nx: 1\n", f"{KEY}: x: unknown field"),
        (b"metadata: {namespace: other}\n", f"{KEY}: metadata.namespace: 'other' does not match the key"),
        (b"a: 1\na: 2\n", f"{KEY}: line 2: YAML syntax error: duplicate key 'a'"),
    ],
)
def test_bad_values_are_rejected_naming_the_key_and_field(value: bytes, message: str) -> None:
    with pytest.raises(ManifestError) as err:
        decode_upstream(KEY, value, 1, ("default", "web"))
    assert str(err.value).startswith(message), str(err.value)


def test_layout_matches_glooks_kv_source() -> None:
    layout = Layout()
    assert layout.upstream("ns", "web") == b"gloo/gloo.solo.io/v1/Upstream/ns/web"
    assert layout.upstreams() == b"gloo/gloo.solo.io/v1/Upstream/"
    assert layout.upstream_ref(b"gloo/gloo.solo.io/v1/Upstream/ns/web") == ("ns", "web")
    assert layout.upstream_ref(b"gloo/gloo.solo.io/v1/Upstream/ns/web/deeper") is None
    assert layout.upstream_ref(b"gloo/gloo.solo.io/v1/UpstreamGroup/ns/web") is None
    assert Layout("corp/gloo").endpoints("ns", "web") == b"corp/gloo/gce-plugin/v1/endpoints/ns/web"
    assert Layout("corp/gloo").status("ns", "web") == b"corp/gloo/gce-plugin/v1/statuses/ns/web"
    for bad in (("", "web"), ("ns", "a/b"), ("ns", "..")):
        with pytest.raises(ValueError):
            layout.upstream(*bad)
    with pytest.raises(ValueError):
        Layout("gloo/")
