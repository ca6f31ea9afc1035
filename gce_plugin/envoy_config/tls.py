"""Upstream TLS: Gloo's ``UpstreamSslConfig`` -> an Envoy ``envoy.transport_sockets.tls`` transport socket.

Mirrors Gloo's ``utils.ResolveUpstreamSslConfig`` (``ssl_files`` are paths local to the proxy, ``sds``
is a Google-gRPC SDS source, ``parameters`` are TLS parameters), with the v3 API's non-deprecated
fields. ``secret_ref`` needs Gloo's secret store, which this control plane does not have, so it is
rejected with a reason instead of producing a cluster Envoy would wait on forever.
"""

from __future__ import annotations

from envoy.config.core.v3.base_pb2 import DataSource, TransportSocket
from envoy.config.core.v3.config_source_pb2 import ApiConfigSource, ApiVersion, ConfigSource
from envoy.config.core.v3.grpc_service_pb2 import GrpcService
from envoy.config.grpc_credential.v3.file_based_metadata_pb2 import FileBasedMetadataConfig
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import (
    CertificateValidationContext,
    SubjectAltNameMatcher,
    TlsCertificate,
    TlsParameters,
)
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import SdsSecretConfig
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import CommonTlsContext, UpstreamTlsContext
from envoy.type.matcher.v3.string_pb2 import StringMatcher

from gce_plugin.api import SDSConfig, SslParameters, UpstreamSslConfig
from gce_plugin.envoy_config.addresses import is_ip

TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
# Gloo's names for the SDS channel's stats and its token-file call credentials.
SDS_STAT_PREFIX = "sds"
FILE_BASED_METADATA = "envoy.grpc_credentials.file_based_metadata"


def upstream_tls_socket(context: UpstreamTlsContext) -> TransportSocket:
    socket_ = TransportSocket(name=TLS_TRANSPORT_SOCKET)
    socket_.typed_config.Pack(context)
    return socket_


def upstream_tls_context(socket_: TransportSocket) -> UpstreamTlsContext | None:
    """The UpstreamTlsContext of a TLS transport socket, or None for any other socket."""
    context = UpstreamTlsContext()
    if socket_.name != TLS_TRANSPORT_SOCKET or not socket_.typed_config.Unpack(context):
        return None
    return context


def ssl_config_to_tls_context(config: UpstreamSslConfig) -> UpstreamTlsContext:
    """Translate ``upstream_spec.ssl_config``; raise ValueError when it cannot work."""
    secrets = config.WhichOneof("ssl_secrets")
    if secrets == "ssl_files":
        common = _files_context(config)
    elif secrets == "sds":
        common = _sds_context(config.sds, list(config.verify_subject_alt_name))
    elif secrets == "secret_ref":
        ref = config.secret_ref
        raise ValueError(
            f"ssl_config.secret_ref ({ref.namespace}.{ref.name}) is not supported: this control plane "
            "has no secret store; use ssl_config.ssl_files (paths on the proxy) or ssl_config.sds"
        )
    else:
        raise ValueError("ssl_config needs one of ssl_files, sds or secret_ref")
    if config.HasField("parameters"):
        common.tls_params.CopyFrom(_tls_params(config.parameters))
    return UpstreamTlsContext(common_tls_context=common, sni=config.sni)


def _files_context(config: UpstreamSslConfig) -> CommonTlsContext:
    files = config.ssl_files
    common = CommonTlsContext()
    if files.tls_cert and files.tls_key:
        common.tls_certificates.append(
            TlsCertificate(
                certificate_chain=DataSource(filename=files.tls_cert),
                private_key=DataSource(filename=files.tls_key),
            )
        )
    elif files.tls_cert or files.tls_key:
        raise ValueError("ssl_config.ssl_files: give both tls_cert and tls_key, or neither")
    sans = list(config.verify_subject_alt_name)
    if files.root_ca:
        validation = CertificateValidationContext(trusted_ca=DataSource(filename=files.root_ca))
        validation.match_typed_subject_alt_names.extend(san_matchers(sans))
        common.validation_context.CopyFrom(validation)
    elif sans:
        raise ValueError("ssl_config.verify_subject_alt_name needs ssl_files.root_ca to verify against")
    return common


def _sds_context(sds: SDSConfig, sans: list[str]) -> CommonTlsContext:
    if not sds.target_uri:
        raise ValueError("ssl_config.sds.target_uri is empty")
    common = CommonTlsContext()
    if sds.certificates_secret_name:
        common.tls_certificate_sds_secret_configs.append(_sds_secret(sds.certificates_secret_name, sds))
    if sds.validation_context_name:
        validation_sds = _sds_secret(sds.validation_context_name, sds)
        if sans:
            combined = common.combined_validation_context
            combined.default_validation_context.match_typed_subject_alt_names.extend(san_matchers(sans))
            combined.validation_context_sds_secret_config.CopyFrom(validation_sds)
        else:
            common.validation_context_sds_secret_config.CopyFrom(validation_sds)
    elif sans:
        # Gloo ignores the names here; refusing is safer than silently not verifying.
        raise ValueError("ssl_config.verify_subject_alt_name needs sds.validation_context_name")
    return common


def _sds_secret(name: str, sds: SDSConfig) -> SdsSecretConfig:
    google_grpc = GrpcService.GoogleGrpc(target_uri=sds.target_uri, stat_prefix=SDS_STAT_PREFIX)
    google_grpc.channel_credentials.local_credentials.SetInParent()
    token = sds.call_credentials.file_credential_source
    if token.token_file_name:
        metadata = FileBasedMetadataConfig(
            secret_data=DataSource(filename=token.token_file_name), header_key=token.header
        )
        google_grpc.credentials_factory_name = FILE_BASED_METADATA
        from_plugin = google_grpc.call_credentials.add().from_plugin
        from_plugin.name = FILE_BASED_METADATA
        from_plugin.typed_config.Pack(metadata)
    source = ConfigSource(
        resource_api_version=ApiVersion.V3,
        api_config_source=ApiConfigSource(
            api_type=ApiConfigSource.GRPC,
            transport_api_version=ApiVersion.V3,
            grpc_services=[GrpcService(google_grpc=google_grpc)],
        ),
    )
    return SdsSecretConfig(name=name, sds_config=source)


def _tls_params(params: SslParameters) -> TlsParameters:
    # Gloo's and Envoy's protocol enums share names and numbers (TLS_AUTO = 0 ... TLSv1_3 = 4).
    return TlsParameters(
        tls_minimum_protocol_version=int(params.minimum_protocol_version),
        tls_maximum_protocol_version=int(params.maximum_protocol_version),
        cipher_suites=list(params.cipher_suites),
        ecdh_curves=list(params.ecdh_curves),
    )


def san_matchers(names: list[str]) -> list[SubjectAltNameMatcher]:
    """Exact matchers for ``verify_subject_alt_name``, typed by the form of each name.

    Gloo's (deprecated) untyped matcher compared a name against SANs of any type; the typed v3
    matcher needs one type, so it is guessed: an IP literal is an IP SAN, ``scheme://...`` a URI,
    ``user@host`` an email, anything else a DNS name.
    """
    return [
        SubjectAltNameMatcher(san_type=_san_type(name), matcher=StringMatcher(exact=name)) for name in names
    ]


def _san_type(name: str) -> SubjectAltNameMatcher.SanType.ValueType:
    if is_ip(name):
        return SubjectAltNameMatcher.IP_ADDRESS
    if "://" in name:
        return SubjectAltNameMatcher.URI
    if "@" in name:
        return SubjectAltNameMatcher.EMAIL
    return SubjectAltNameMatcher.DNS
