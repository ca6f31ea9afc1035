"""Config sources: where Envoy gets a cluster's endpoints from."""

from __future__ import annotations

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.config_source_pb2 import AggregatedConfigSource, ApiVersion, ConfigSource
from google.protobuf.duration_pb2 import Duration

# Envoy merges EDS updates that change only health, weight or metadata for 1 s by default
# (common_lb_config.update_merge_window); 0 applies them at once, so a VM the control plane marks
# DRAINING or UNHEALTHY stops taking requests as soon as its assignment arrives. Updates are pushed
# per changed upstream, so there is no burst to merge. An upstream's load_balancer_config overrides it.
EDS_UPDATE_MERGE_WINDOW = Duration(seconds=0)


def ads_config_source() -> ConfigSource:
    """The v3 ADS config source: on the stream the cluster came on."""
    return ConfigSource(ads=AggregatedConfigSource(), resource_api_version=ApiVersion.V3)


def eds_over_ads(cluster: Cluster) -> None:
    """Make ``cluster`` an EDS cluster whose assignment comes over ADS. With no service_name Envoy
    asks for the cluster's own name, which is what the control plane publishes the
    ClusterLoadAssignment under. Health-only updates are applied at once (EDS_UPDATE_MERGE_WINDOW)."""
    cluster.type = Cluster.EDS
    cluster.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
    cluster.eds_cluster_config.ClearField("service_name")
    cluster.common_lb_config.update_merge_window.CopyFrom(EDS_UPDATE_MERGE_WINDOW)
