"""The xDS layer: a snapshot cache (what every client should have) and a gRPC server (the protocol).

Split like go-control-plane's ``pkg/cache`` and ``pkg/server``. Usage, from inside the event loop::

    from envoy.config.cluster.v3.cluster_pb2 import Cluster
    from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
    from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache, XdsServer

    cache = SnapshotCache()                     # serves CDS and EDS; cache.register(LISTENER) adds LDS
    server = XdsServer(cache, "127.0.0.1:18000")
    port = await server.start()                 # "127.0.0.1:0" binds a free port

    # After a full translation: replace each type's whole set (unchanged resources are no change).
    cache.set_resources(CLUSTER_TYPE, {c.name: c for c in clusters})
    cache.set_resources(ENDPOINT_TYPE, {a.cluster_name: a for a in assignments})
    # When one upstream's endpoints change: O(changed); only that assignment is pushed.
    cache.update_resources(ENDPOINT_TYPE, {cla.cluster_name: cla})
    cache.update_resources(CLUSTER_TYPE, {}, removals=["gone_default"])

    server.connected_clients()
    await server.stop(grace=1.0)

Protocol choices (details in ``streams.py``):

- Set clusters before their assignments: on ADS a cluster update is always pushed before the
  assignments that follow it (a type waiting for its ACK holds back the later types).
- Every requested assignment is answered, with an empty ``ClusterLoadAssignment`` if the cache has
  none (a warming cluster, or a name the cache does not know), so Envoy never waits on a warming
  cluster; the real assignment follows when it appears. Except for names the cache holds
  (``cache.hold(ENDPOINT_TYPE, names)``): their real assignment is on its way, and an empty one would
  wipe the endpoints of an Envoy that already has them (after a control-plane restart).
- A changed cluster re-sends its assignment even if unchanged: Envoy re-warms an updated cluster
  and would otherwise wait for its initial fetch timeout.
- One response per type in flight per stream; a NACKed version is not sent again, the next
  different one is.

The cache is not thread-safe: call it from the event loop's thread.
"""

from gce_plugin.xds.cache import SnapshotCache
from gce_plugin.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, ResourceType
from gce_plugin.xds.server import XdsServer

CLUSTER_TYPE = CLUSTER.type_url
ENDPOINT_TYPE = ENDPOINT.type_url

__all__ = [
    "CLUSTER",
    "CLUSTER_TYPE",
    "ENDPOINT",
    "ENDPOINT_TYPE",
    "LISTENER",
    "ROUTE",
    "ResourceType",
    "SnapshotCache",
    "XdsServer",
]
