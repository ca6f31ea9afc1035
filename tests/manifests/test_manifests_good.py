"""Good manifest files load into the Upstreams they describe."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from google.protobuf.wrappers_pb2 import UInt32Value

from gce_plugin import manifests
from gce_plugin.api import (
    CircuitBreakerConfig,
    ConnectionConfig,
    DiscoveryMetadata,
    GceUpstreamSpec,
    Metadata,
    StaticHost,
    StaticUpstreamSpec,
    Status,
    Upstream,
    UpstreamSpec,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


CAMEL = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: web
  namespace: default
spec:
  upstreamSpec:
    gce:
      instanceGroupName: web
      instanceGroupRegion: us-central1-a
      projectId: demo-project
      portName: http
      addressType: EXTERNAL
      labelSelector: {env: prod}
"""

SNAKE = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: web
  namespace: default
spec:
  upstream_spec:
    gce:
      instance_group_name: web
      instance_group_region: us-central1-a
      projectId: demo-project
      port_name: http
      address_type: 1
      label_selector: {env: prod}
"""

WEB = Upstream(
    metadata=Metadata(name="web", namespace="default"),
    upstream_spec=UpstreamSpec(
        gce=GceUpstreamSpec(
            instance_group_name="web",
            instance_group_region="us-central1-a",
            projectId="demo-project",
            port_name="http",
            address_type=GceUpstreamSpec.EXTERNAL,
            label_selector={"env": "prod"},
        )
    ),
)


def test_one_document_camel_case(tmp_path: Path) -> None:
    assert manifests.load_file(write(tmp_path, "web.yaml", CAMEL)) == [WEB]


def test_proto_field_names_and_numeric_enums_load_the_same(tmp_path: Path) -> None:
    assert manifests.load_file(write(tmp_path, "web.yaml", SNAKE)) == [WEB]


def test_many_documents_in_order_with_empty_ones_skipped(tmp_path: Path) -> None:
    text = "---\n" + CAMEL + "---\n---\n" + CAMEL.replace("name: web\n", "name: api\n", 1) + "---\n"
    loaded = manifests.load_file(write(tmp_path, "two.yml", text))
    assert [u.metadata.name for u in loaded] == ["web", "api"]
    assert loaded[0] == WEB
    assert loaded[1].upstream_spec == WEB.upstream_spec


def test_every_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "full.yaml",
        """\
        apiVersion: gloo.solo.io/v1
        kind: Upstream
        metadata:
          name: web
          namespace: gloo-system
          labels: {app: web, tier: frontend}
          annotations: {example.com/owner: edge-team, note: "8080"}
          resourceVersion: "12345"
        spec:
          discoveryMetadata: {}
          upstreamSpec:
            useHttp2: true
            circuitBreakers: {maxConnections: 100, maxRetries: 3}
            connectionConfig:
              maxRequestsPerConnection: 10
              connectTimeout: 1.500s
              tcpKeepalive: {keepaliveProbes: 3, keepaliveTime: 60s, keepaliveInterval: "5s"}
            gce:
              instanceGroupName: web
              instanceGroupRegion: us-central1
              projectId: demo-project
              port: 8080
              portName: http
              addressType: INTERNAL
              labelSelector: {env: prod, role: web}
        status:
          state: 2
          reason: "bad port"
          reported_by: gloo
          subresource_statuses:
            listener: {state: 1, reported_by: gateway}
        """,
    )
    expected = Upstream(
        metadata=Metadata(
            name="web",
            namespace="gloo-system",
            labels={"app": "web", "tier": "frontend"},
            annotations={"example.com/owner": "edge-team", "note": "8080"},
            resource_version="12345",
        ),
        discovery_metadata=DiscoveryMetadata(),
        upstream_spec=UpstreamSpec(
            use_http2=True,
            circuit_breakers=CircuitBreakerConfig(
                max_connections=UInt32Value(value=100), max_retries=UInt32Value(value=3)
            ),
            connection_config=ConnectionConfig(
                max_requests_per_connection=10,
                connect_timeout=Duration(seconds=1, nanos=500_000_000),
                tcp_keepalive=ConnectionConfig.TcpKeepAlive(
                    keepalive_probes=3,
                    keepalive_time=Duration(seconds=60),
                    keepalive_interval=Duration(seconds=5),
                ),
            ),
            gce=GceUpstreamSpec(
                instance_group_name="web",
                instance_group_region="us-central1",
                projectId="demo-project",
                port=8080,
                port_name="http",
                address_type=GceUpstreamSpec.INTERNAL,
                label_selector={"env": "prod", "role": "web"},
            ),
        ),
        status=Status(
            state=Status.Rejected,
            reason="bad port",
            reported_by="gloo",
            subresource_statuses={"listener": Status(state=Status.Accepted, reported_by="gateway")},
        ),
    )
    [upstream] = manifests.load_file(path)
    assert upstream == expected
    assert upstream.HasField("discovery_metadata")


def test_missing_namespace_defaults_to_default(tmp_path: Path) -> None:
    text = CAMEL.replace("  namespace: default\n", "")
    [upstream] = manifests.load_file(write(tmp_path, "web.yaml", text))
    assert upstream.metadata.namespace == manifests.DEFAULT_NAMESPACE == "default"


def test_static_upstream(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "static.yaml",
        """\
        apiVersion: gloo.solo.io/v1
        kind: Upstream
        metadata: {name: petstore, namespace: default}
        spec:
          upstreamSpec:
            static:
              hosts:
              - {addr: 10.0.0.1, port: 8080}
              - addr: petstore.local
                port: "9090"
        """,
    )
    [upstream] = manifests.load_file(path)
    hosts = [StaticHost(addr="10.0.0.1", port=8080), StaticHost(addr="petstore.local", port=9090)]
    assert upstream.upstream_spec == UpstreamSpec(static=StaticUpstreamSpec(hosts=hosts))


def test_kubectl_output_server_fields_and_list_kind(tmp_path: Path) -> None:
    # What `kubectl get upstreams -o yaml` prints: a v1 List, server-set metadata, a CRD status.
    path = write(
        tmp_path,
        "exported.yaml",
        """\
        apiVersion: v1
        kind: List
        metadata: {resourceVersion: ""}
        items:
        - apiVersion: gloo.solo.io/v1
          kind: Upstream
          metadata:
            name: web
            namespace: default
            uid: 0b5c8f6e-1d2a-4d7e-9a0b-0c1d2e3f4a5b
            generation: 2
            creationTimestamp: "2019-07-09T12:00:00Z"
            resourceVersion: "811"
            managedFields: [{manager: kubectl}]
          spec:
            upstreamSpec:
              gce: {instanceGroupName: web, instanceGroupRegion: us-central1-a, projectId: demo-project}
          status: {reported_by: gloo, state: 1}
        - apiVersion: gloo.solo.io/v1
          kind: Upstream
          metadata: {name: api, namespace: default}
          spec:
            upstreamSpec:
              gce: {instanceGroupName: api, instanceGroupRegion: us-central1-a, projectId: demo-project}
        """,
    )
    web, api = manifests.load_file(path)
    assert (web.metadata.name, web.metadata.resource_version) == ("web", "811")
    assert web.status == Status(state=Status.Accepted, reported_by="gloo")
    assert api.metadata.name == "api" and not api.HasField("status")


def test_json_manifest(tmp_path: Path) -> None:
    doc = {
        "apiVersion": "gloo.solo.io/v1",
        "kind": "Upstream",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "upstreamSpec": {
                "gce": {
                    "instanceGroupName": "web",
                    "instanceGroupRegion": "us-central1-a",
                    "projectId": "demo-project",
                    "portName": "http",
                    "addressType": "EXTERNAL",
                    "labelSelector": {"env": "prod"},
                }
            }
        },
    }
    path = tmp_path / "web.json"
    path.write_text(json.dumps(doc, indent=2))
    assert manifests.load_file(path) == [WEB]


def test_null_means_unset(tmp_path: Path) -> None:
    # Go's jsonpb (EmitDefaults) writes null for unset messages.
    text = CAMEL + "    sslConfig: null\n  discoveryMetadata: null\n"
    [upstream] = manifests.load_file(write(tmp_path, "web.yaml", text))
    assert upstream == WEB
    assert not upstream.upstream_spec.HasField("ssl_config")


def test_empty_crd_status_is_present(tmp_path: Path) -> None:
    [upstream] = manifests.load_file(write(tmp_path, "web.yaml", CAMEL + "status: {}\n"))
    assert upstream.HasField("status")
    assert upstream.status == Status()
