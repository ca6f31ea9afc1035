"""Gloo's Upstream/Endpoint schema closure, transcribed by hand from the fact sheet
(/work/shared/gloo-schema.md: Gloo b716b00c, solo-kit v0.10.2, gogo v1.2.0).

Kept as literal data on purpose: the tests compare the generated descriptors against this table, so
it must not be derived from the protos (or parsed from the markdown) at test time.

Rows are ``(field name, number, type, label, JSON key)`` exactly as in the fact sheet's tables:
type is a scalar name, a fully qualified ``.package.Message``/``.package.Enum``, or
``map<key, value>``; label is ``""`` (singular), ``"repeated"``, ``"map"`` or ``"oneof <name>"``.
"""

from __future__ import annotations

from typing import NamedTuple


class Field(NamedTuple):
    name: str
    number: int
    type: str
    label: str
    json: str


class FileFact(NamedTuple):
    package: str
    go_package: str
    syntax: str
    # Every message defined in the file, nested ones included, by full name.
    messages: tuple[str, ...]
    # Gloo's imports of this file that the fact sheet lists (gogo and out-of-scope files left out).
    imports: tuple[str, ...]
    equal_all: bool


GLOO = "github.com/solo-io/gloo/projects/gloo/api/v1"
GLOO_GO = "github.com/solo-io/gloo/projects/gloo/pkg/api/v1"
SOLO_KIT = "github.com/solo-io/solo-kit/api/v1"
SOLO_KIT_GO = "github.com/solo-io/solo-kit/pkg/api/v1/resources/core"
GOGO = "gogoproto/gogo.proto"

# The fact sheet's "Files, import paths, packages" table (+ the gce file from its gce section).
FILES: dict[str, FileFact] = {
    f"{GLOO}/upstream.proto": FileFact(
        "gloo.solo.io",
        GLOO_GO,
        "proto3",
        ("gloo.solo.io.Upstream", "gloo.solo.io.DiscoveryMetadata"),
        (
            f"{SOLO_KIT}/metadata.proto",
            f"{SOLO_KIT}/status.proto",
            f"{SOLO_KIT}/solo-kit.proto",
            f"{GLOO}/plugins.proto",
        ),
        True,
    ),
    f"{GLOO}/endpoint.proto": FileFact(
        "gloo.solo.io",
        GLOO_GO,
        "proto3",
        ("gloo.solo.io.Endpoint",),
        (f"{SOLO_KIT}/metadata.proto", f"{SOLO_KIT}/ref.proto", f"{SOLO_KIT}/solo-kit.proto"),
        True,
    ),
    f"{GLOO}/plugins.proto": FileFact(
        "gloo.solo.io",
        GLOO_GO,
        "proto3",
        ("gloo.solo.io.UpstreamSpec",),
        (
            f"{GLOO}/ssl.proto",
            f"{GLOO}/circuit_breaker.proto",
            f"{GLOO}/load_balancer.proto",
            f"{GLOO}/connection.proto",
            f"{GLOO}/plugins/kubernetes/kubernetes.proto",
            f"{GLOO}/plugins/static/static.proto",
            f"{GLOO}/plugins/aws/aws.proto",
            f"{GLOO}/plugins/azure/azure.proto",
            f"{GLOO}/plugins/consul/consul.proto",
            "google/protobuf/struct.proto",
            "google/protobuf/duration.proto",
            f"{GLOO}/plugins/gce/gce.proto",  # the project's addition
        ),
        True,
    ),
    f"{GLOO}/ssl.proto": FileFact(
        "gloo.solo.io",
        GLOO_GO,
        "proto3",
        (
            "gloo.solo.io.UpstreamSslConfig",
            "gloo.solo.io.SSLFiles",
            "gloo.solo.io.SDSConfig",
            "gloo.solo.io.CallCredentials",
            "gloo.solo.io.CallCredentials.FileCredentialSource",
            "gloo.solo.io.SslParameters",
        ),
        (f"{SOLO_KIT}/ref.proto",),
        True,
    ),
    f"{GLOO}/circuit_breaker.proto": FileFact(
        "gloo.solo.io",
        GLOO_GO,
        "proto3",
        ("gloo.solo.io.CircuitBreakerConfig",),
        ("google/protobuf/wrappers.proto",),
        True,
    ),
    f"{GLOO}/load_balancer.proto": FileFact(
        "gloo.solo.io",
        GLOO_GO,
        "proto3",
        (
            "gloo.solo.io.LoadBalancerConfig",
            "gloo.solo.io.LoadBalancerConfig.RoundRobin",
            "gloo.solo.io.LoadBalancerConfig.LeastRequest",
            "gloo.solo.io.LoadBalancerConfig.Random",
        ),
        ("google/protobuf/duration.proto", "google/protobuf/wrappers.proto"),
        True,
    ),
    f"{GLOO}/connection.proto": FileFact(
        "gloo.solo.io",
        GLOO_GO,
        "proto3",
        ("gloo.solo.io.ConnectionConfig", "gloo.solo.io.ConnectionConfig.TcpKeepAlive"),
        ("google/protobuf/duration.proto", "google/protobuf/wrappers.proto"),
        True,
    ),
    f"{GLOO}/plugins/kubernetes/kubernetes.proto": FileFact(
        "kubernetes.plugins.gloo.solo.io",
        f"{GLOO_GO}/plugins/kubernetes",
        "proto3",
        ("kubernetes.plugins.gloo.solo.io.UpstreamSpec",),
        (f"{GLOO}/plugins/service_spec.proto", f"{GLOO}/plugins/subset_spec.proto"),
        True,
    ),
    f"{GLOO}/plugins/static/static.proto": FileFact(
        "static.plugins.gloo.solo.io",
        f"{GLOO_GO}/plugins/static",
        "proto3",
        ("static.plugins.gloo.solo.io.UpstreamSpec", "static.plugins.gloo.solo.io.Host"),
        (f"{GLOO}/plugins/service_spec.proto",),
        True,
    ),
    f"{GLOO}/plugins/aws/aws.proto": FileFact(
        "aws.plugins.gloo.solo.io",
        f"{GLOO_GO}/plugins/aws",
        "proto3",
        ("aws.plugins.gloo.solo.io.UpstreamSpec", "aws.plugins.gloo.solo.io.LambdaFunctionSpec"),
        (f"{SOLO_KIT}/ref.proto",),
        True,
    ),
    f"{GLOO}/plugins/azure/azure.proto": FileFact(
        "azure.plugins.gloo.solo.io",
        f"{GLOO_GO}/plugins/azure",
        "proto3",
        ("azure.plugins.gloo.solo.io.UpstreamSpec", "azure.plugins.gloo.solo.io.UpstreamSpec.FunctionSpec"),
        (f"{SOLO_KIT}/ref.proto",),
        True,
    ),
    f"{GLOO}/plugins/consul/consul.proto": FileFact(
        "consul.plugins.gloo.solo.io",
        f"{GLOO_GO}/plugins/consul",
        "proto3",
        ("consul.plugins.gloo.solo.io.UpstreamSpec",),
        (f"{GLOO}/plugins/service_spec.proto",),
        True,
    ),
    f"{GLOO}/plugins/service_spec.proto": FileFact(
        "plugins.gloo.solo.io",
        f"{GLOO_GO}/plugins",
        "proto3",
        ("plugins.gloo.solo.io.ServiceSpec",),
        (f"{GLOO}/plugins/rest/rest.proto", f"{GLOO}/plugins/grpc/grpc.proto"),
        True,
    ),
    f"{GLOO}/plugins/subset_spec.proto": FileFact(
        "plugins.gloo.solo.io",
        f"{GLOO_GO}/plugins",
        "proto3",
        ("plugins.gloo.solo.io.SubsetSpec", "plugins.gloo.solo.io.Selector"),
        (),
        True,
    ),
    f"{GLOO}/plugins/rest/rest.proto": FileFact(
        "rest.plugins.gloo.solo.io",
        f"{GLOO_GO}/plugins/rest",
        "proto3",
        ("rest.plugins.gloo.solo.io.ServiceSpec", "rest.plugins.gloo.solo.io.ServiceSpec.SwaggerInfo"),
        (f"{GLOO}/plugins/transformation/transformation.proto",),
        True,
    ),
    f"{GLOO}/plugins/grpc/grpc.proto": FileFact(
        "grpc.plugins.gloo.solo.io",
        f"{GLOO_GO}/plugins/grpc",
        "proto3",
        ("grpc.plugins.gloo.solo.io.ServiceSpec", "grpc.plugins.gloo.solo.io.ServiceSpec.GrpcService"),
        (),
        True,
    ),
    f"{GLOO}/plugins/transformation/transformation.proto": FileFact(
        "envoy.api.v2.filter.http",
        f"{GLOO_GO}/plugins/transformation",
        "proto3",
        (
            "envoy.api.v2.filter.http.TransformationTemplate",
            "envoy.api.v2.filter.http.Extraction",
            "envoy.api.v2.filter.http.InjaTemplate",
            "envoy.api.v2.filter.http.Passthrough",
            "envoy.api.v2.filter.http.MergeExtractorsToBody",
        ),
        (),
        True,
    ),
    f"{SOLO_KIT}/metadata.proto": FileFact(
        "core.solo.io", SOLO_KIT_GO, "proto3", ("core.solo.io.Metadata",), (), True
    ),
    f"{SOLO_KIT}/ref.proto": FileFact(
        "core.solo.io", SOLO_KIT_GO, "proto3", ("core.solo.io.ResourceRef",), (), True
    ),
    f"{SOLO_KIT}/status.proto": FileFact(
        "core.solo.io", SOLO_KIT_GO, "proto3", ("core.solo.io.Status",), (), True
    ),
    f"{SOLO_KIT}/solo-kit.proto": FileFact(
        "core.solo.io",
        SOLO_KIT_GO,
        "proto3",
        ("core.solo.io.Resource",),
        ("google/protobuf/descriptor.proto",),
        False,  # the one file that does not import gogo
    ),
    f"{GLOO}/plugins/gce/gce.proto": FileFact(
        "gce.plugins.gloo.solo.io",
        f"{GLOO_GO}/plugins/gce",
        "proto3",
        ("gce.plugins.gloo.solo.io.UpstreamSpec",),
        (),
        True,  # not in the fact sheet (gce is new); follows the other plugin files
    ),
}

GOGO_FILE = FileFact("gogoproto", "github.com/gogo/protobuf/gogoproto", "proto2", (), (), False)

# The fact sheet's message tables. Empty messages map to ().
MESSAGES: dict[str, tuple[Field, ...]] = {
    "gloo.solo.io.Upstream": (
        Field("upstream_spec", 2, ".gloo.solo.io.UpstreamSpec", "", "upstreamSpec"),
        Field("status", 6, ".core.solo.io.Status", "", "status"),
        Field("metadata", 7, ".core.solo.io.Metadata", "", "metadata"),
        Field("discovery_metadata", 8, ".gloo.solo.io.DiscoveryMetadata", "", "discoveryMetadata"),
    ),
    "gloo.solo.io.DiscoveryMetadata": (),
    "gloo.solo.io.Endpoint": (
        Field("upstreams", 1, ".core.solo.io.ResourceRef", "repeated", "upstreams"),
        Field("address", 2, "string", "", "address"),
        Field("port", 3, "uint32", "", "port"),
        Field("metadata", 7, ".core.solo.io.Metadata", "", "metadata"),
    ),
    # Gloo's fields 1-10; the project's gce = 11 is GLOO_UPSTREAM_SPEC_ADDITIONS below.
    "gloo.solo.io.UpstreamSpec": (
        Field("kube", 1, ".kubernetes.plugins.gloo.solo.io.UpstreamSpec", "oneof upstream_type", "kube"),
        Field("aws", 2, ".aws.plugins.gloo.solo.io.UpstreamSpec", "oneof upstream_type", "aws"),
        Field("azure", 3, ".azure.plugins.gloo.solo.io.UpstreamSpec", "oneof upstream_type", "azure"),
        Field("static", 4, ".static.plugins.gloo.solo.io.UpstreamSpec", "oneof upstream_type", "static"),
        Field("consul", 5, ".consul.plugins.gloo.solo.io.UpstreamSpec", "oneof upstream_type", "consul"),
        Field("ssl_config", 6, ".gloo.solo.io.UpstreamSslConfig", "", "sslConfig"),
        Field("circuit_breakers", 7, ".gloo.solo.io.CircuitBreakerConfig", "", "circuitBreakers"),
        Field("load_balancer_config", 8, ".gloo.solo.io.LoadBalancerConfig", "", "loadBalancerConfig"),
        Field("connection_config", 9, ".gloo.solo.io.ConnectionConfig", "", "connectionConfig"),
        Field("use_http2", 10, "bool", "", "useHttp2"),
    ),
    "gloo.solo.io.UpstreamSslConfig": (
        Field("secret_ref", 1, ".core.solo.io.ResourceRef", "oneof ssl_secrets", "secretRef"),
        Field("ssl_files", 2, ".gloo.solo.io.SSLFiles", "oneof ssl_secrets", "sslFiles"),
        Field("sni", 3, "string", "", "sni"),
        Field("sds", 4, ".gloo.solo.io.SDSConfig", "oneof ssl_secrets", "sds"),
        Field("verify_subject_alt_name", 5, "string", "repeated", "verifySubjectAltName"),
        Field("parameters", 7, ".gloo.solo.io.SslParameters", "", "parameters"),
    ),
    "gloo.solo.io.SSLFiles": (
        Field("tls_cert", 1, "string", "", "tlsCert"),
        Field("tls_key", 2, "string", "", "tlsKey"),
        Field("root_ca", 3, "string", "", "rootCa"),
    ),
    "gloo.solo.io.SDSConfig": (
        Field("target_uri", 1, "string", "", "targetUri"),
        Field("call_credentials", 2, ".gloo.solo.io.CallCredentials", "", "callCredentials"),
        Field("certificates_secret_name", 3, "string", "", "certificatesSecretName"),
        Field("validation_context_name", 4, "string", "", "validationContextName"),
    ),
    "gloo.solo.io.CallCredentials": (
        Field(
            "file_credential_source",
            1,
            ".gloo.solo.io.CallCredentials.FileCredentialSource",
            "",
            "fileCredentialSource",
        ),
    ),
    "gloo.solo.io.CallCredentials.FileCredentialSource": (
        Field("token_file_name", 1, "string", "", "tokenFileName"),
        Field("header", 2, "string", "", "header"),
    ),
    "gloo.solo.io.SslParameters": (
        Field(
            "minimum_protocol_version",
            1,
            ".gloo.solo.io.SslParameters.ProtocolVersion",
            "",
            "minimumProtocolVersion",
        ),
        Field(
            "maximum_protocol_version",
            2,
            ".gloo.solo.io.SslParameters.ProtocolVersion",
            "",
            "maximumProtocolVersion",
        ),
        Field("cipher_suites", 3, "string", "repeated", "cipherSuites"),
        Field("ecdh_curves", 4, "string", "repeated", "ecdhCurves"),
    ),
    "gloo.solo.io.CircuitBreakerConfig": (
        Field("max_connections", 1, ".google.protobuf.UInt32Value", "", "maxConnections"),
        Field("max_pending_requests", 2, ".google.protobuf.UInt32Value", "", "maxPendingRequests"),
        Field("max_requests", 3, ".google.protobuf.UInt32Value", "", "maxRequests"),
        Field("max_retries", 4, ".google.protobuf.UInt32Value", "", "maxRetries"),
    ),
    "gloo.solo.io.LoadBalancerConfig": (
        Field("healthy_panic_threshold", 1, ".google.protobuf.DoubleValue", "", "healthyPanicThreshold"),
        Field("update_merge_window", 2, ".google.protobuf.Duration", "", "updateMergeWindow"),
        Field("round_robin", 3, ".gloo.solo.io.LoadBalancerConfig.RoundRobin", "oneof type", "roundRobin"),
        Field(
            "least_request", 4, ".gloo.solo.io.LoadBalancerConfig.LeastRequest", "oneof type", "leastRequest"
        ),
        Field("random", 5, ".gloo.solo.io.LoadBalancerConfig.Random", "oneof type", "random"),
    ),
    "gloo.solo.io.LoadBalancerConfig.RoundRobin": (),
    "gloo.solo.io.LoadBalancerConfig.LeastRequest": (Field("choice_count", 1, "uint32", "", "choiceCount"),),
    "gloo.solo.io.LoadBalancerConfig.Random": (),
    "gloo.solo.io.ConnectionConfig": (
        Field("max_requests_per_connection", 1, "uint32", "", "maxRequestsPerConnection"),
        Field("connect_timeout", 2, ".google.protobuf.Duration", "", "connectTimeout"),
        Field("tcp_keepalive", 3, ".gloo.solo.io.ConnectionConfig.TcpKeepAlive", "", "tcpKeepalive"),
    ),
    "gloo.solo.io.ConnectionConfig.TcpKeepAlive": (
        Field("keepalive_probes", 1, "uint32", "", "keepaliveProbes"),
        Field("keepalive_time", 2, ".google.protobuf.Duration", "", "keepaliveTime"),
        Field("keepalive_interval", 3, ".google.protobuf.Duration", "", "keepaliveInterval"),
    ),
    "kubernetes.plugins.gloo.solo.io.UpstreamSpec": (
        Field("service_name", 1, "string", "", "serviceName"),
        Field("service_namespace", 2, "string", "", "serviceNamespace"),
        Field("service_port", 3, "uint32", "", "servicePort"),
        Field("selector", 4, "map<string, string>", "map", "selector"),
        Field("service_spec", 5, ".plugins.gloo.solo.io.ServiceSpec", "", "serviceSpec"),
        Field("subset_spec", 6, ".plugins.gloo.solo.io.SubsetSpec", "", "subsetSpec"),
    ),
    "static.plugins.gloo.solo.io.UpstreamSpec": (
        Field("hosts", 1, ".static.plugins.gloo.solo.io.Host", "repeated", "hosts"),
        Field("use_tls", 3, "bool", "", "useTls"),
        Field("service_spec", 5, ".plugins.gloo.solo.io.ServiceSpec", "", "serviceSpec"),
    ),
    "static.plugins.gloo.solo.io.Host": (
        Field("addr", 1, "string", "", "addr"),
        Field("port", 2, "uint32", "", "port"),
    ),
    "aws.plugins.gloo.solo.io.UpstreamSpec": (
        Field("region", 1, "string", "", "region"),
        Field("secret_ref", 2, ".core.solo.io.ResourceRef", "", "secretRef"),
        Field(
            "lambda_functions",
            3,
            ".aws.plugins.gloo.solo.io.LambdaFunctionSpec",
            "repeated",
            "lambdaFunctions",
        ),
    ),
    "aws.plugins.gloo.solo.io.LambdaFunctionSpec": (
        Field("logical_name", 1, "string", "", "logicalName"),
        Field("lambda_function_name", 2, "string", "", "lambdaFunctionName"),
        Field("qualifier", 3, "string", "", "qualifier"),
    ),
    "azure.plugins.gloo.solo.io.UpstreamSpec": (
        Field("function_app_name", 1, "string", "", "functionAppName"),
        Field("secret_ref", 2, ".core.solo.io.ResourceRef", "", "secretRef"),
        Field(
            "functions", 3, ".azure.plugins.gloo.solo.io.UpstreamSpec.FunctionSpec", "repeated", "functions"
        ),
    ),
    "azure.plugins.gloo.solo.io.UpstreamSpec.FunctionSpec": (
        Field("function_name", 1, "string", "", "functionName"),
        Field(
            "auth_level",
            2,
            ".azure.plugins.gloo.solo.io.UpstreamSpec.FunctionSpec.AuthLevel",
            "",
            "authLevel",
        ),
    ),
    "consul.plugins.gloo.solo.io.UpstreamSpec": (
        Field("service_name", 1, "string", "", "serviceName"),
        Field("service_tags", 2, "string", "repeated", "serviceTags"),
        Field("service_spec", 3, ".plugins.gloo.solo.io.ServiceSpec", "", "serviceSpec"),
        Field("connect_enabled", 4, "bool", "", "connectEnabled"),
        Field("data_centers", 5, "string", "repeated", "dataCenters"),
    ),
    "plugins.gloo.solo.io.ServiceSpec": (
        Field("rest", 1, ".rest.plugins.gloo.solo.io.ServiceSpec", "oneof plugin_type", "rest"),
        Field("grpc", 2, ".grpc.plugins.gloo.solo.io.ServiceSpec", "oneof plugin_type", "grpc"),
    ),
    "plugins.gloo.solo.io.SubsetSpec": (
        Field("selectors", 1, ".plugins.gloo.solo.io.Selector", "repeated", "selectors"),
    ),
    "plugins.gloo.solo.io.Selector": (Field("keys", 1, "string", "repeated", "keys"),),
    "rest.plugins.gloo.solo.io.ServiceSpec": (
        Field(
            "transformations",
            1,
            "map<string, .envoy.api.v2.filter.http.TransformationTemplate>",
            "map",
            "transformations",
        ),
        Field("swagger_info", 2, ".rest.plugins.gloo.solo.io.ServiceSpec.SwaggerInfo", "", "swaggerInfo"),
    ),
    "rest.plugins.gloo.solo.io.ServiceSpec.SwaggerInfo": (
        Field("url", 1, "string", "oneof swagger_spec", "url"),
        Field("inline", 2, "string", "oneof swagger_spec", "inline"),
    ),
    "grpc.plugins.gloo.solo.io.ServiceSpec": (
        Field("descriptors", 1, "bytes", "", "descriptors"),
        Field(
            "grpc_services",
            2,
            ".grpc.plugins.gloo.solo.io.ServiceSpec.GrpcService",
            "repeated",
            "grpcServices",
        ),
    ),
    "grpc.plugins.gloo.solo.io.ServiceSpec.GrpcService": (
        Field("package_name", 1, "string", "", "packageName"),
        Field("service_name", 2, "string", "", "serviceName"),
        Field("function_names", 3, "string", "repeated", "functionNames"),
    ),
    "envoy.api.v2.filter.http.TransformationTemplate": (
        Field("advanced_templates", 1, "bool", "", "advancedTemplates"),
        Field("extractors", 2, "map<string, .envoy.api.v2.filter.http.Extraction>", "map", "extractors"),
        Field("headers", 3, "map<string, .envoy.api.v2.filter.http.InjaTemplate>", "map", "headers"),
        Field("body", 4, ".envoy.api.v2.filter.http.InjaTemplate", "oneof body_transformation", "body"),
        Field(
            "passthrough",
            5,
            ".envoy.api.v2.filter.http.Passthrough",
            "oneof body_transformation",
            "passthrough",
        ),
        Field(
            "merge_extractors_to_body",
            6,
            ".envoy.api.v2.filter.http.MergeExtractorsToBody",
            "oneof body_transformation",
            "mergeExtractorsToBody",
        ),
    ),
    "envoy.api.v2.filter.http.Extraction": (
        Field("header", 1, "string", "", "header"),
        Field("regex", 2, "string", "", "regex"),
        Field("subgroup", 3, "uint32", "", "subgroup"),
    ),
    "envoy.api.v2.filter.http.InjaTemplate": (Field("text", 1, "string", "", "text"),),
    "envoy.api.v2.filter.http.Passthrough": (),
    "envoy.api.v2.filter.http.MergeExtractorsToBody": (),
    "core.solo.io.Metadata": (
        Field("name", 2, "string", "", "name"),
        Field("namespace", 3, "string", "", "namespace"),
        Field("resource_version", 4, "string", "", "resourceVersion"),
        Field("labels", 5, "map<string, string>", "map", "labels"),
        Field("annotations", 6, "map<string, string>", "map", "annotations"),
        Field("cluster", 7, "string", "", "cluster"),
    ),
    "core.solo.io.ResourceRef": (
        Field("name", 1, "string", "", "name"),
        Field("namespace", 2, "string", "", "namespace"),
    ),
    "core.solo.io.Status": (
        Field("state", 1, ".core.solo.io.Status.State", "", "state"),
        Field("reason", 2, "string", "", "reason"),
        Field("reported_by", 3, "string", "", "reportedBy"),
        Field("subresource_statuses", 4, "map<string, .core.solo.io.Status>", "map", "subresourceStatuses"),
    ),
    # From the fact sheet's gce section: the seed's three fields (note the mixed-case projectId).
    # The project's fields 4-7 are GCE_ADDITIONS below.
    "gce.plugins.gloo.solo.io.UpstreamSpec": (
        Field("instance_group_name", 1, "string", "", "instanceGroupName"),
        Field("instance_group_region", 2, "string", "", "instanceGroupRegion"),
        Field("projectId", 3, "string", "", "projectId"),
    ),
}

# solo-kit's options message (solo-kit.proto); not part of the Upstream closure but read through
# the `resource` extension below.
RESOURCE_MESSAGE: tuple[Field, ...] = (
    Field("short_name", 1, "string", "", "shortName"),
    Field("plural_name", 2, "string", "", "pluralName"),
    Field("cluster_scoped", 3, "bool", "", "clusterScoped"),
    Field("skip_docs_gen", 4, "bool", "", "skipDocsGen"),
)

ENUMS: dict[str, tuple[tuple[str, int], ...]] = {
    "gloo.solo.io.SslParameters.ProtocolVersion": (
        ("TLS_AUTO", 0),
        ("TLSv1_0", 1),
        ("TLSv1_1", 2),
        ("TLSv1_2", 3),
        ("TLSv1_3", 4),
    ),
    "azure.plugins.gloo.solo.io.UpstreamSpec.FunctionSpec.AuthLevel": (
        ("Anonymous", 0),
        ("Function", 1),
        ("Admin", 2),
    ),
    "core.solo.io.Status.State": (("Pending", 0), ("Accepted", 1), ("Rejected", 2)),
}

# --- The project's additions (not in Gloo): asserted separately from Gloo's facts. ---
# A new upstream type adds its file to FILES, its messages to MESSAGES and its oneof member here
# (docs/adding-an-upstream-type.md); the closure tests fail for a type that is not declared.

# New member of gloo.solo.io.UpstreamSpec's oneof upstream_type: the next free number after 1-10.
GLOO_UPSTREAM_SPEC_ADDITIONS: tuple[Field, ...] = (
    Field("gce", 11, ".gce.plugins.gloo.solo.io.UpstreamSpec", "oneof upstream_type", "gce"),
)

GCE_ADDITIONS: tuple[Field, ...] = (
    Field("port", 4, "uint32", "", "port"),
    Field("port_name", 5, "string", "", "portName"),
    Field("address_type", 6, ".gce.plugins.gloo.solo.io.UpstreamSpec.AddressType", "", "addressType"),
    Field("label_selector", 7, "map<string, string>", "map", "labelSelector"),
)

GCE_ENUMS: dict[str, tuple[tuple[str, int], ...]] = {
    "gce.plugins.gloo.solo.io.UpstreamSpec.AddressType": (("INTERNAL", 0), ("EXTERNAL", 1)),
}

# --- Options (Go codegen only; fact sheet "Options present"). ---

# Message options: full name -> {option: value}. Every other message in the closure has none.
MESSAGE_OPTIONS: dict[str, dict[str, object]] = {
    "gloo.solo.io.Upstream": {"resource": {"short_name": "us", "plural_name": "upstreams"}},
    "gloo.solo.io.Endpoint": {"resource": {"short_name": "ep", "plural_name": "endpoints"}},
    "core.solo.io.ResourceRef": {
        "goproto_sizecache": False,
        "goproto_unkeyed": False,
        "goproto_unrecognized": False,
    },
}

# Field options: (message full name, field name) -> {option: value}. Every other field has none.
FIELD_OPTIONS: dict[tuple[str, str], dict[str, object]] = {
    ("gloo.solo.io.Upstream", "status"): {"nullable": False, "moretags": 'testdiff:"ignore"'},
    ("gloo.solo.io.Upstream", "metadata"): {"nullable": False},
    ("gloo.solo.io.Endpoint", "metadata"): {"nullable": False},
    ("aws.plugins.gloo.solo.io.UpstreamSpec", "secret_ref"): {"nullable": False},
    ("azure.plugins.gloo.solo.io.UpstreamSpec", "secret_ref"): {"nullable": False},
    ("gloo.solo.io.LoadBalancerConfig", "update_merge_window"): {"stdduration": True},
    ("gloo.solo.io.ConnectionConfig", "connect_timeout"): {"stdduration": True},
    ("gloo.solo.io.ConnectionConfig.TcpKeepAlive", "keepalive_time"): {"stdduration": True},
    ("gloo.solo.io.ConnectionConfig.TcpKeepAlive", "keepalive_interval"): {"stdduration": True},
    ("core.solo.io.Metadata", "resource_version"): {"moretags": 'testdiff:"ignore"'},
}

# Extension declarations: name -> (full name, extendee, number, type).
EXTENSIONS: dict[str, tuple[str, str, int, str]] = {
    "equal_all": ("gogoproto.equal_all", "google.protobuf.FileOptions", 63013, "bool"),
    "goproto_unrecognized": (
        "gogoproto.goproto_unrecognized",
        "google.protobuf.MessageOptions",
        64026,
        "bool",
    ),
    "goproto_sizecache": ("gogoproto.goproto_sizecache", "google.protobuf.MessageOptions", 64034, "bool"),
    "goproto_unkeyed": ("gogoproto.goproto_unkeyed", "google.protobuf.MessageOptions", 64035, "bool"),
    "nullable": ("gogoproto.nullable", "google.protobuf.FieldOptions", 65001, "bool"),
    "moretags": ("gogoproto.moretags", "google.protobuf.FieldOptions", 65006, "string"),
    "stdduration": ("gogoproto.stdduration", "google.protobuf.FieldOptions", 65011, "bool"),
    "resource": ("core.solo.io.resource", "google.protobuf.MessageOptions", 10000, ".core.solo.io.Resource"),
    "skip_hashing": ("core.solo.io.skip_hashing", "google.protobuf.FieldOptions", 10000, "bool"),
}
