"""xDS resource types: what the cache holds and the server serves, keyed by type URL.

A type is data, not code: adding LDS or RDS to a control plane is ``cache.register(LISTENER)``; the
server then serves it on ADS and on its standalone discovery service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from google.protobuf.message import Message

TYPE_PREFIX = "type.googleapis.com/"


@dataclass(frozen=True)
class ResourceType:
    """One xDS resource type and the protocol facts about it."""

    # Full protobuf name, e.g. "envoy.config.cluster.v3.Cluster"; the type URL derives from it.
    message_name: str
    # The field of the message that must equal the resource's name ("name", "cluster_name").
    name_field: str
    # SotW responses of LDS/CDS must carry every subscribed resource; those of EDS/RDS only the changed.
    full_state: bool
    # Push order on one ADS stream (make before break: CDS, EDS, LDS, RDS).
    order: int
    # The standalone gRPC service and its methods.
    service: str
    sotw_method: str
    delta_method: str
    fetch_method: str
    # What to answer for a requested name the cache does not hold (None: answer nothing).
    placeholder: Callable[[str], Message] | None = None
    # A type whose change of resource N re-sends this type's resource N (Envoy re-warms an updated
    # cluster and waits for a fresh assignment of it).
    follows: str | None = None
    short_name: str = ""

    @property
    def type_url(self) -> str:
        return TYPE_PREFIX + self.message_name


def empty_assignment(name: str) -> ClusterLoadAssignment:
    return ClusterLoadAssignment(cluster_name=name)


CLUSTER = ResourceType(
    message_name="envoy.config.cluster.v3.Cluster",
    name_field="name",
    full_state=True,
    order=10,
    service="envoy.service.cluster.v3.ClusterDiscoveryService",
    sotw_method="StreamClusters",
    delta_method="DeltaClusters",
    fetch_method="FetchClusters",
    short_name="cds",
)

# Every requested assignment is answered: a cluster that has no endpoints yet (or that the cache does
# not know at all) gets an empty ClusterLoadAssignment, so Envoy finishes warming it at once instead
# of waiting for its initial fetch timeout, and traffic to it fails fast with "no healthy upstream".
# The real assignment follows whenever it appears. Names the cache holds (SnapshotCache.hold: the
# control plane holds EDS clusters whose discovery has not answered yet) get no placeholder.
ENDPOINT = ResourceType(
    message_name="envoy.config.endpoint.v3.ClusterLoadAssignment",
    name_field="cluster_name",
    full_state=False,
    order=20,
    service="envoy.service.endpoint.v3.EndpointDiscoveryService",
    sotw_method="StreamEndpoints",
    delta_method="DeltaEndpoints",
    fetch_method="FetchEndpoints",
    placeholder=empty_assignment,
    follows=TYPE_PREFIX + "envoy.config.cluster.v3.Cluster",
    short_name="eds",
)

LISTENER = ResourceType(
    message_name="envoy.config.listener.v3.Listener",
    name_field="name",
    full_state=True,
    order=30,
    service="envoy.service.listener.v3.ListenerDiscoveryService",
    sotw_method="StreamListeners",
    delta_method="DeltaListeners",
    fetch_method="FetchListeners",
    short_name="lds",
)

ROUTE = ResourceType(
    message_name="envoy.config.route.v3.RouteConfiguration",
    name_field="name",
    full_state=False,
    order=40,
    service="envoy.service.route.v3.RouteDiscoveryService",
    sotw_method="StreamRoutes",
    delta_method="DeltaRoutes",
    fetch_method="FetchRoutes",
    short_name="rds",
)

# What a cache serves unless told otherwise.
DEFAULT_TYPES = (CLUSTER, ENDPOINT)
