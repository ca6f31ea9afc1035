"""The generated Gloo / solo-kit messages users touch, under short names.

The modules under ``gen/`` keep Gloo's import paths below one package of ours
(``gce_plugin_gen.github.com.solo_io...``) so the protos can be
shared with Go Gloo unchanged; this module is the short way in.
"""

from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.circuit_breaker_pb2 import (
    CircuitBreakerConfig,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.connection_pb2 import ConnectionConfig
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.endpoint_pb2 import Endpoint
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.load_balancer_pb2 import LoadBalancerConfig
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.aws.aws_pb2 import (
    LambdaFunctionSpec,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.aws.aws_pb2 import (
    UpstreamSpec as AwsUpstreamSpec,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.azure.azure_pb2 import (
    UpstreamSpec as AzureUpstreamSpec,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.consul.consul_pb2 import (
    UpstreamSpec as ConsulUpstreamSpec,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.gce.gce_pb2 import (
    UpstreamSpec as GceUpstreamSpec,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.kubernetes.kubernetes_pb2 import (
    UpstreamSpec as KubeUpstreamSpec,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.service_spec_pb2 import ServiceSpec
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.static.static_pb2 import (
    Host as StaticHost,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.static.static_pb2 import (
    UpstreamSpec as StaticUpstreamSpec,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins.subset_spec_pb2 import (
    Selector,
    SubsetSpec,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.plugins_pb2 import UpstreamSpec
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.ssl_pb2 import (
    SDSConfig,
    SSLFiles,
    SslParameters,
    UpstreamSslConfig,
)
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.upstream_pb2 import (
    DiscoveryMetadata,
    Upstream,
)
from gce_plugin_gen.github.com.solo_io.solo_kit.api.v1.metadata_pb2 import Metadata
from gce_plugin_gen.github.com.solo_io.solo_kit.api.v1.ref_pb2 import ResourceRef
from gce_plugin_gen.github.com.solo_io.solo_kit.api.v1.status_pb2 import Status

__all__ = [
    "AwsUpstreamSpec",
    "AzureUpstreamSpec",
    "CircuitBreakerConfig",
    "ConnectionConfig",
    "ConsulUpstreamSpec",
    "DiscoveryMetadata",
    "Endpoint",
    "GceUpstreamSpec",
    "KubeUpstreamSpec",
    "LambdaFunctionSpec",
    "LoadBalancerConfig",
    "Metadata",
    "ResourceRef",
    "SDSConfig",
    "SSLFiles",
    "Selector",
    "ServiceSpec",
    "SslParameters",
    "StaticHost",
    "StaticUpstreamSpec",
    "Status",
    "SubsetSpec",
    "Upstream",
    "UpstreamSpec",
    "UpstreamSslConfig",
]
