"""Fully populated messages: together they set every field of the closure (test_schema_roundtrip
checks that), every oneof member included, with non-default values so proto3 presence shows."""

from __future__ import annotations

from collections.abc import Callable

from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.grpc.grpc_pb2 import (
    ServiceSpec as GrpcServiceSpec,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.rest.rest_pb2 import (
    ServiceSpec as RestServiceSpec,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.transformation.transformation_pb2 import (  # noqa: E501
    Extraction,
    InjaTemplate,
    MergeExtractorsToBody,
    Passthrough,
    TransformationTemplate,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.ssl_pb2 import CallCredentials
from google.protobuf.duration_pb2 import Duration
from google.protobuf.wrappers_pb2 import DoubleValue, UInt32Value

from gce_plugin.api import (
    AwsUpstreamSpec,
    AzureUpstreamSpec,
    CircuitBreakerConfig,
    ConnectionConfig,
    ConsulUpstreamSpec,
    DiscoveryMetadata,
    Endpoint,
    GceUpstreamSpec,
    KubeUpstreamSpec,
    LambdaFunctionSpec,
    LoadBalancerConfig,
    Metadata,
    ResourceRef,
    SDSConfig,
    Selector,
    ServiceSpec,
    SSLFiles,
    SslParameters,
    StaticHost,
    StaticUpstreamSpec,
    Status,
    SubsetSpec,
    Upstream,
    UpstreamSpec,
    UpstreamSslConfig,
)


def metadata(name: str) -> Metadata:
    return Metadata(
        name=name,
        namespace="gloo-system",
        cluster="east",
        resource_version="42",
        labels={"app": name, "tier": "frontend"},
        annotations={"owner": "edge-team"},
    )


def status() -> Status:
    # Recursive: subresource_statuses holds Statuses that hold Statuses.
    leaf = Status(state=Status.Rejected, reason="port 9999 is closed", reported_by="gloo")
    child = Status(state=Status.Accepted, reported_by="gloo", subresource_statuses={"listener": leaf})
    return Status(
        state=Status.Rejected,
        reason="1 error",
        reported_by="gloo",
        subresource_statuses={"gateway-proxy": child, "other": Status(state=Status.Accepted)},
    )


def common_options(spec: UpstreamSpec) -> UpstreamSpec:
    spec.circuit_breakers.CopyFrom(
        CircuitBreakerConfig(
            max_connections=UInt32Value(value=100),
            max_pending_requests=UInt32Value(value=200),
            max_requests=UInt32Value(value=300),
            max_retries=UInt32Value(value=4),
        )
    )
    spec.connection_config.CopyFrom(
        ConnectionConfig(
            max_requests_per_connection=50,
            connect_timeout=Duration(seconds=1, nanos=500_000_000),
            tcp_keepalive=ConnectionConfig.TcpKeepAlive(
                keepalive_probes=3,
                keepalive_time=Duration(seconds=7200),
                keepalive_interval=Duration(seconds=75),
            ),
        )
    )
    spec.use_http2 = True
    return spec


def rest_service_spec() -> ServiceSpec:
    templates = {
        "getPet": TransformationTemplate(
            advanced_templates=True,
            extractors={"id": Extraction(header=":path", regex="/pets/(\\d+)", subgroup=1)},
            headers={":method": InjaTemplate(text="GET")},
            body=InjaTemplate(text='{"id": {{ id }}}'),
        ),
        "merge": TransformationTemplate(merge_extractors_to_body=MergeExtractorsToBody()),
    }
    swagger = RestServiceSpec.SwaggerInfo(url="http://petstore/swagger.json")
    return ServiceSpec(rest=RestServiceSpec(transformations=templates, swagger_info=swagger))


def gce_upstream() -> Upstream:
    spec = common_options(
        UpstreamSpec(
            gce=GceUpstreamSpec(
                instance_group_name="web",
                instance_group_region="us-central1-a",
                projectId="demo-project",
                port=8080,
                port_name="http",
                address_type=GceUpstreamSpec.EXTERNAL,
                label_selector={"role": "web", "env": "prod"},
            ),
            ssl_config=UpstreamSslConfig(
                ssl_files=SSLFiles(
                    tls_cert="/certs/tls.crt", tls_key="/certs/tls.key", root_ca="/certs/ca.crt"
                ),
                sni="web.example.com",
                verify_subject_alt_name=["web.example.com", "www.example.com"],
                parameters=SslParameters(
                    minimum_protocol_version=SslParameters.TLSv1_2,
                    maximum_protocol_version=SslParameters.TLSv1_3,
                    cipher_suites=["ECDHE-RSA-AES128-GCM-SHA256"],
                    ecdh_curves=["X25519", "P-256"],
                ),
            ),
            load_balancer_config=LoadBalancerConfig(
                healthy_panic_threshold=DoubleValue(value=50.0),
                update_merge_window=Duration(seconds=2),
                round_robin=LoadBalancerConfig.RoundRobin(),
            ),
        )
    )
    return Upstream(
        metadata=metadata("web"),
        status=status(),
        upstream_spec=spec,
        discovery_metadata=DiscoveryMetadata(),
    )


def static_upstream() -> Upstream:
    spec = UpstreamSpec(
        static=StaticUpstreamSpec(
            hosts=[StaticHost(addr="10.0.0.1", port=80), StaticHost(addr="petstore.local", port=8080)],
            use_tls=True,
            service_spec=rest_service_spec(),
        ),
        ssl_config=UpstreamSslConfig(secret_ref=ResourceRef(name="tls", namespace="gloo-system")),
        load_balancer_config=LoadBalancerConfig(
            least_request=LoadBalancerConfig.LeastRequest(choice_count=3)
        ),
    )
    return Upstream(metadata=metadata("petstore"), upstream_spec=spec)


def kube_upstream() -> Upstream:
    grpc = GrpcServiceSpec(
        descriptors=b"\x0a\x05hello\x00\xff",
        grpc_services=[
            GrpcServiceSpec.GrpcService(
                package_name="bookstore", service_name="Bookstore", function_names=["ListShelves", "GetBook"]
            )
        ],
    )
    sds = SDSConfig(
        target_uri="127.0.0.1:8236",
        call_credentials=CallCredentials(
            file_credential_source=CallCredentials.FileCredentialSource(
                token_file_name="/var/run/token", header="authorization"
            )
        ),
        certificates_secret_name="cert",
        validation_context_name="ca",
    )
    spec = UpstreamSpec(
        kube=KubeUpstreamSpec(
            service_name="bookstore",
            service_namespace="default",
            service_port=8443,
            selector={"app": "bookstore"},
            service_spec=ServiceSpec(grpc=grpc),
            subset_spec=SubsetSpec(selectors=[Selector(keys=["version"]), Selector(keys=["zone", "rack"])]),
        ),
        ssl_config=UpstreamSslConfig(sds=sds),
        load_balancer_config=LoadBalancerConfig(random=LoadBalancerConfig.Random()),
    )
    return Upstream(metadata=metadata("bookstore"), upstream_spec=spec)


def aws_upstream() -> Upstream:
    spec = UpstreamSpec(
        aws=AwsUpstreamSpec(
            region="us-east-1",
            secret_ref=ResourceRef(name="aws-creds", namespace="gloo-system"),
            lambda_functions=[
                LambdaFunctionSpec(logical_name="hello", lambda_function_name="hello-fn", qualifier="$LATEST")
            ],
        )
    )
    return Upstream(metadata=metadata("lambda"), upstream_spec=spec)


def azure_upstream() -> Upstream:
    spec = UpstreamSpec(
        azure=AzureUpstreamSpec(
            function_app_name="app",
            secret_ref=ResourceRef(name="azure-creds", namespace="gloo-system"),
            functions=[
                AzureUpstreamSpec.FunctionSpec(
                    function_name="a", auth_level=AzureUpstreamSpec.FunctionSpec.Function
                ),
                AzureUpstreamSpec.FunctionSpec(
                    function_name="b", auth_level=AzureUpstreamSpec.FunctionSpec.Admin
                ),
            ],
        )
    )
    return Upstream(metadata=metadata("azure"), upstream_spec=spec)


def consul_upstream() -> Upstream:
    swagger = RestServiceSpec.SwaggerInfo(inline="swagger: '2.0'")
    templates = {"passthrough": TransformationTemplate(passthrough=Passthrough())}
    spec = UpstreamSpec(
        consul=ConsulUpstreamSpec(
            service_name="billing",
            service_tags=["v1", "primary"],
            service_spec=ServiceSpec(rest=RestServiceSpec(transformations=templates, swagger_info=swagger)),
            connect_enabled=True,
            data_centers=["dc1", "dc2"],
        )
    )
    return Upstream(metadata=metadata("billing"), upstream_spec=spec)


# One builder per upstream type; a new type adds its own (docs/adding-an-upstream-type.md).
UPSTREAM_BUILDERS: list[Callable[[], Upstream]] = [
    gce_upstream,
    static_upstream,
    kube_upstream,
    aws_upstream,
    azure_upstream,
    consul_upstream,
]


def upstreams() -> list[Upstream]:
    return [build() for build in UPSTREAM_BUILDERS]


def endpoint() -> Endpoint:
    return Endpoint(
        upstreams=[
            ResourceRef(name="web", namespace="gloo-system"),
            ResourceRef(name="web2", namespace="default"),
        ],
        address="10.128.0.7",
        port=8080,
        metadata=metadata("web-10-128-0-7"),
    )
