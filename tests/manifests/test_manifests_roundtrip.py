"""load -> dump -> load gives the same Upstreams, for every upstream type and every field."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from gce_plugin import manifests
from gce_plugin.api import Status, Upstream
from tests.schema import samples


def _without_cluster(upstream: Upstream) -> Upstream:
    # metadata.cluster is not part of a Kubernetes manifest (solo-kit does not store it either).
    copy = Upstream()
    copy.CopyFrom(upstream)
    copy.metadata.ClearField("cluster")
    return copy


def test_every_sample_upstream_survives_dump_and_load(tmp_path: Path) -> None:
    upstreams = [_without_cluster(u) for u in samples.upstreams()]
    path = tmp_path / "all.yaml"
    path.write_text(manifests.dumps(upstreams))
    loaded = manifests.load_file(path)
    assert loaded == upstreams
    # And once more through the loaded copies: dumping is stable.
    assert manifests.dumps(loaded) == path.read_text()


def test_load_dump_load(tmp_path: Path) -> None:
    source = tmp_path / "web.yaml"
    source.write_text(
        "apiVersion: gloo.solo.io/v1\n"
        "kind: Upstream\n"
        "metadata: {name: web, labels: {app: web}, annotations: {a: b}, resourceVersion: '3'}\n"
        "spec:\n"
        "  upstream_spec:\n"
        "    gce: {instance_group_name: web, instanceGroupRegion: us-central1-a, projectId: p, port: 80}\n"
        "    connectionConfig: {connectTimeout: 0.25s}\n"
        "status: {state: 1, reported_by: gloo}\n"
    )
    [first] = manifests.load_file(source)
    dumped = tmp_path / "dumped.json"
    dumped.write_text(json.dumps(manifests.dump_upstream(first)))
    assert manifests.load_file(dumped) == [first]


def test_dump_is_the_crd_layout() -> None:
    upstream = samples.gce_upstream()
    doc = manifests.dump_upstream(upstream)
    assert list(doc) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert (doc["apiVersion"], doc["kind"]) == ("gloo.solo.io/v1", "Upstream")
    assert doc["metadata"] == {
        "name": "web",
        "namespace": "gloo-system",
        "labels": {"app": "web", "tier": "frontend"},
        "annotations": {"owner": "edge-team"},
        "resourceVersion": "42",
    }
    assert set(doc["spec"]) == {"upstreamSpec", "discoveryMetadata"}
    assert doc["spec"]["upstreamSpec"]["gce"]["projectId"] == "demo-project"
    assert doc["spec"]["upstreamSpec"]["connectionConfig"]["connectTimeout"] == "1.500s"
    # solo-kit's CRD status: Go encoding/json of core.Status, snake_case keys, numeric state.
    assert doc["status"]["state"] == Status.Rejected == 2
    assert doc["status"]["reported_by"] == "gloo"
    assert doc["status"]["subresource_statuses"]["gateway-proxy"]["state"] == 1
    # Plain data only: it serializes as YAML and JSON as is.
    assert yaml.safe_load(yaml.safe_dump(doc)) == doc == json.loads(json.dumps(doc))


def test_dump_without_status_has_no_status_key() -> None:
    upstream = samples.static_upstream()
    assert not upstream.HasField("status")
    assert "status" not in manifests.dump_upstream(upstream)


def test_every_map_dumps_in_sorted_key_order() -> None:
    """A map's own iteration order (upb's) differs between processes and between equal maps built in
    another order: dumped as is, one Upstream could be written two ways (1 run in 100 of the round
    trip above failed so). Keys inserted in reverse order come out sorted, at every depth."""
    keys = [f"k{i:02}" for i in range(30)]
    upstream = samples.gce_upstream()
    selector = upstream.upstream_spec.gce.label_selector
    selector.clear()
    for key in reversed(keys):
        selector[key] = "v"
    statuses = upstream.status.subresource_statuses
    for key in reversed(keys):
        statuses[key].subresource_statuses["inner-b"].state = Status.Accepted
        statuses[key].subresource_statuses["inner-a"].state = Status.Accepted
    doc = manifests.dump_upstream(upstream)
    assert list(doc["spec"]["upstreamSpec"]["gce"]["labelSelector"]) == keys
    dumped = doc["status"]["subresource_statuses"]
    assert list(dumped) == sorted([*keys, "gateway-proxy", "other"])
    assert all(list(dumped[key]["subresource_statuses"]) == ["inner-a", "inner-b"] for key in keys)
