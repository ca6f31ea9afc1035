"""Config sources: where Envoy gets a cluster's endpoints from."""

from __future__ import annotations

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.config_source_pb2 import AggregatedConfigSource, ApiVersion, ConfigSource


def ads_config_source() -> ConfigSource:
    """The v3 ADS config source: on the stream the cluster came on."""
    return ConfigSource(ads=AggregatedConfigSource(), resource_api_version=ApiVersion.V3)


def eds_over_ads(cluster: Cluster) -> None:
    """Make ``cluster`` an EDS cluster whose assignment comes over ADS. With no service_name Envoy
    asks for the cluster's own name, which is what the control plane publishes the
    ClusterLoadAssignment under."""
    cluster.type = Cluster.EDS
    cluster.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
    cluster.eds_cluster_config.ClearField("service_name")
