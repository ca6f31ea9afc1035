"""ssl_config -> the upstream TLS transport socket."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.grpc_credential.v3.file_based_metadata_pb2 import FileBasedMetadataConfig
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import SubjectAltNameMatcher, TlsParameters
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import UpstreamTlsContext
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.ssl_pb2 import CallCredentials

from gce_plugin.api import ResourceRef, SDSConfig, SSLFiles, SslParameters, Upstream, UpstreamSslConfig
from gce_plugin.envoy_config.tls import TLS_TRANSPORT_SOCKET
from gce_plugin.plugins.plugin import Params
from gce_plugin.plugins.static.plugin import StaticPlugin
from gce_plugin.translation import translate_upstream
from tests.translation.translation_fakes import FakeEdsPlugin, gce_upstream, static_upstream


def translate(upstream: Upstream) -> Cluster:
    """The TLS mapping, with every path allowed (the path policy has its own tests)."""
    plugins = [StaticPlugin(), FakeEdsPlugin()]
    return translate_upstream(plugins, Params(upstreams=(upstream,)), upstream, file_roots=("/",))


def tls_context(cluster: Cluster) -> UpstreamTlsContext:
    assert cluster.transport_socket.name == TLS_TRANSPORT_SOCKET
    context = UpstreamTlsContext()
    assert cluster.transport_socket.typed_config.Unpack(context)
    return context


def test_ssl_files_sni_and_typed_san_matchers() -> None:
    config = UpstreamSslConfig(
        ssl_files=SSLFiles(
            tls_cert="/certs/client.crt", tls_key="/certs/client.key", root_ca="/certs/ca.crt"
        ),
        sni="api.example.com",
        verify_subject_alt_name=["api.example.com", "10.0.0.1", "spiffe://cluster/ns/web", "ops@example.com"],
    )
    context = tls_context(translate(gce_upstream("web", ssl_config=config)))
    assert context.sni == "api.example.com"
    common = context.common_tls_context
    [certificate] = common.tls_certificates
    assert certificate.certificate_chain.filename == "/certs/client.crt"
    assert certificate.private_key.filename == "/certs/client.key"
    validation = common.validation_context
    assert validation.trusted_ca.filename == "/certs/ca.crt"
    assert not validation.match_subject_alt_names  # the deprecated field stays unset
    assert [(m.san_type, m.matcher.exact) for m in validation.match_typed_subject_alt_names] == [
        (SubjectAltNameMatcher.DNS, "api.example.com"),
        (SubjectAltNameMatcher.IP_ADDRESS, "10.0.0.1"),
        (SubjectAltNameMatcher.URI, "spiffe://cluster/ns/web"),
        (SubjectAltNameMatcher.EMAIL, "ops@example.com"),
    ]
    assert not common.HasField("tls_params")


def test_root_ca_only_verifies_the_server_without_a_client_certificate() -> None:
    config = UpstreamSslConfig(ssl_files=SSLFiles(root_ca="/certs/ca.crt"))
    common = tls_context(translate(gce_upstream("web", ssl_config=config))).common_tls_context
    assert not common.tls_certificates
    assert common.validation_context.trusted_ca.filename == "/certs/ca.crt"


def test_tls_parameters() -> None:
    config = UpstreamSslConfig(
        ssl_files=SSLFiles(root_ca="/ca.crt"),
        parameters=SslParameters(
            minimum_protocol_version=SslParameters.TLSv1_2,
            maximum_protocol_version=SslParameters.TLSv1_3,
            cipher_suites=["ECDHE-RSA-AES128-GCM-SHA256"],
            ecdh_curves=["X25519", "P-256"],
        ),
    )
    params = tls_context(translate(gce_upstream("web", ssl_config=config))).common_tls_context.tls_params
    assert params.tls_minimum_protocol_version == TlsParameters.TLSv1_2
    assert params.tls_maximum_protocol_version == TlsParameters.TLSv1_3
    assert list(params.cipher_suites) == ["ECDHE-RSA-AES128-GCM-SHA256"]
    assert list(params.ecdh_curves) == ["X25519", "P-256"]


def test_sds_with_file_call_credentials_and_sans() -> None:
    config = UpstreamSslConfig(
        sds=SDSConfig(
            target_uri="unix:/var/run/sds.sock",
            certificates_secret_name="client-cert",
            validation_context_name="ca",
            call_credentials=CallCredentials(
                file_credential_source=CallCredentials.FileCredentialSource(
                    token_file_name="/var/run/token", header="authorization"
                )
            ),
        ),
        verify_subject_alt_name=["api.example.com"],
    )
    common = tls_context(translate(gce_upstream("web", ssl_config=config))).common_tls_context
    [certificate_sds] = common.tls_certificate_sds_secret_configs
    assert certificate_sds.name == "client-cert"
    [service] = certificate_sds.sds_config.api_config_source.grpc_services
    assert service.google_grpc.target_uri == "unix:/var/run/sds.sock"
    assert service.google_grpc.channel_credentials.HasField("local_credentials")
    [call] = service.google_grpc.call_credentials
    token = FileBasedMetadataConfig()
    assert call.from_plugin.typed_config.Unpack(token)
    assert (token.secret_data.filename, token.header_key) == ("/var/run/token", "authorization")
    combined = common.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "ca"
    [matcher] = combined.default_validation_context.match_typed_subject_alt_names
    assert (matcher.san_type, matcher.matcher.exact) == (SubjectAltNameMatcher.DNS, "api.example.com")


def test_sds_without_sans_or_call_credentials() -> None:
    config = UpstreamSslConfig(sds=SDSConfig(target_uri="unix:/sds.sock", validation_context_name="ca"))
    common = tls_context(translate(gce_upstream("web", ssl_config=config))).common_tls_context
    assert not common.tls_certificate_sds_secret_configs
    sds = common.validation_context_sds_secret_config
    assert sds.name == "ca"
    [service] = sds.sds_config.api_config_source.grpc_services
    assert not service.google_grpc.call_credentials
    assert not service.google_grpc.credentials_factory_name


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (UpstreamSslConfig(), "ssl_config needs one of ssl_files, sds or secret_ref"),
        (UpstreamSslConfig(ssl_files=SSLFiles(tls_cert="/c.crt")), "both tls_cert and tls_key, or neither"),
        (UpstreamSslConfig(ssl_files=SSLFiles(tls_key="/c.key")), "both tls_cert and tls_key, or neither"),
        (
            UpstreamSslConfig(ssl_files=SSLFiles(), verify_subject_alt_name=["a"]),
            "verify_subject_alt_name needs ssl_files.root_ca",
        ),
        (UpstreamSslConfig(sds=SDSConfig(validation_context_name="ca")), "sds.target_uri is empty"),
        (
            UpstreamSslConfig(sds=SDSConfig(target_uri="unix:/s"), verify_subject_alt_name=["a"]),
            "needs sds.validation_context_name",
        ),
        (
            UpstreamSslConfig(secret_ref=ResourceRef(name="tls", namespace="default")),
            r"secret_ref \(default.tls\) is not supported: this control plane has no secret store",
        ),
    ],
)
def test_invalid_ssl_config(config: UpstreamSslConfig, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        translate(gce_upstream("web", ssl_config=config))


def test_ssl_config_replaces_static_tls_but_keeps_its_sni() -> None:
    config = UpstreamSslConfig(ssl_files=SSLFiles(root_ca="/ca.crt"))
    upstream = static_upstream("ext", [("api.example.com", 443)], ssl_config=config)
    context = tls_context(translate(upstream))
    assert context.sni == "api.example.com"
    assert context.common_tls_context.validation_context.trusted_ca.filename == "/ca.crt"


def test_ssl_config_sni_wins_over_static_sni() -> None:
    config = UpstreamSslConfig(ssl_files=SSLFiles(root_ca="/ca.crt"), sni="other.example.com")
    upstream = static_upstream("ext", [("api.example.com", 443)], ssl_config=config)
    assert tls_context(translate(upstream)).sni == "other.example.com"
