"""A real xDS client for the tests: grpc.aio channels to an XdsServer on 127.0.0.1, resources to serve,
and a per-test event loop with a deadline (pytest-asyncio is not used)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_components_pb2 import LbEndpoint
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.service.cluster.v3.cds_pb2_grpc import ClusterDiscoveryServiceStub
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)
from envoy.service.endpoint.v3.eds_pb2_grpc import EndpointDiscoveryServiceStub
from google.protobuf.duration_pb2 import Duration
from google.rpc.status_pb2 import Status

from gce_plugin import metrics
from gce_plugin.envoy_config.sources import eds_over_ads
from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache, XdsServer
from gce_plugin.xds.streams import Stream

RECV_TIMEOUT = 10.0


def cluster(name: str, timeout_ms: int = 1000) -> Cluster:
    result = Cluster(
        name=name, connect_timeout=Duration(seconds=timeout_ms // 1000, nanos=timeout_ms % 1000 * 1_000_000)
    )
    eds_over_ads(result)
    return result


def assignment(name: str, *ports: int, host: str = "127.0.0.1") -> ClusterLoadAssignment:
    cla = ClusterLoadAssignment(cluster_name=name)
    if ports:
        locality = cla.endpoints.add()
        for port in ports:
            lb: LbEndpoint = locality.lb_endpoints.add()
            lb.endpoint.address.socket_address.address = host
            lb.endpoint.address.socket_address.port_value = port
    return cla


def ports_of(cla: ClusterLoadAssignment) -> list[int]:
    return sorted(
        lb.endpoint.address.socket_address.port_value
        for locality in cla.endpoints
        for lb in locality.lb_endpoints
    )


def clusters_of(response: DiscoveryResponse | DeltaDiscoveryResponse) -> dict[str, Cluster]:
    out: dict[str, Cluster] = {}
    for any_msg in _anys(response):
        msg = Cluster()
        assert any_msg.Unpack(msg)
        out[msg.name] = msg
    return out


def assignments_of(response: DiscoveryResponse | DeltaDiscoveryResponse) -> dict[str, ClusterLoadAssignment]:
    out: dict[str, ClusterLoadAssignment] = {}
    for any_msg in _anys(response):
        msg = ClusterLoadAssignment()
        assert any_msg.Unpack(msg)
        out[msg.cluster_name] = msg
    return out


def _anys(response: DiscoveryResponse | DeltaDiscoveryResponse) -> list[Any]:
    if isinstance(response, DeltaDiscoveryResponse):
        return [r.resource for r in response.resources]
    return list(response.resources)


class SotwClient:
    """One SotW stream (ADS or a standalone service) driven by hand."""

    def __init__(self, call: Any, node: str) -> None:
        self.call = call
        self.node = node
        self.versions: dict[str, str] = {}  # last ACKed version per type

    async def request(
        self,
        type_url: str,
        names: Iterable[str] = (),
        *,
        nonce: str = "",
        version: str | None = None,
        error: str | None = None,
        send_type: bool = True,
    ) -> None:
        req = DiscoveryRequest(
            version_info=self.versions.get(type_url, "") if version is None else version,
            resource_names=list(names),
            type_url=type_url if send_type else "",
            response_nonce=nonce,
        )
        req.node.id = self.node
        if error is not None:
            req.error_detail.CopyFrom(Status(code=3, message=error))
        await self.call.write(req)

    async def recv(self, timeout: float = RECV_TIMEOUT) -> DiscoveryResponse:
        response = await asyncio.wait_for(self.call.read(), timeout)
        assert response is not grpc.aio.EOF, "stream ended"
        assert isinstance(response, DiscoveryResponse)
        return response

    async def ack(self, response: DiscoveryResponse, names: Iterable[str] = ()) -> None:
        self.versions[response.type_url] = response.version_info
        await self.request(response.type_url, names, nonce=response.nonce)

    async def nack(self, response: DiscoveryResponse, names: Iterable[str] = (), error: str = "bad") -> None:
        await self.request(response.type_url, names, nonce=response.nonce, error=error)


class DeltaClient:
    def __init__(self, call: Any, node: str) -> None:
        self.call = call
        self.node = node

    async def request(
        self,
        type_url: str,
        subscribe: Iterable[str] = (),
        unsubscribe: Iterable[str] = (),
        *,
        nonce: str = "",
        initial: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        req = DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=list(subscribe),
            resource_names_unsubscribe=list(unsubscribe),
            initial_resource_versions=dict(initial or {}),
            response_nonce=nonce,
        )
        req.node.id = self.node
        if error is not None:
            req.error_detail.CopyFrom(Status(code=3, message=error))
        await self.call.write(req)

    async def recv(self, timeout: float = RECV_TIMEOUT) -> DeltaDiscoveryResponse:
        response = await asyncio.wait_for(self.call.read(), timeout)
        assert response is not grpc.aio.EOF, "stream ended"
        assert isinstance(response, DeltaDiscoveryResponse)
        return response

    async def ack(self, response: DeltaDiscoveryResponse) -> None:
        await self.request(response.type_url, nonce=response.nonce)

    async def nack(self, response: DeltaDiscoveryResponse, error: str = "bad") -> None:
        await self.request(response.type_url, nonce=response.nonce, error=error)


@dataclass
class Env:
    """A cache, the server serving it, and a channel to it."""

    cache: SnapshotCache
    server: XdsServer
    channel: grpc.aio.Channel
    port: int

    def ads(self, node: str = "node-1", channel: grpc.aio.Channel | None = None) -> SotwClient:
        stub = AggregatedDiscoveryServiceStub(channel or self.channel)
        return SotwClient(stub.StreamAggregatedResources(), node)

    def delta_ads(self, node: str = "node-1", channel: grpc.aio.Channel | None = None) -> DeltaClient:
        stub = AggregatedDiscoveryServiceStub(channel or self.channel)
        return DeltaClient(stub.DeltaAggregatedResources(), node)

    def cds(self, node: str = "node-1") -> SotwClient:
        return SotwClient(ClusterDiscoveryServiceStub(self.channel).StreamClusters(), node)

    def eds(self, node: str = "node-1") -> SotwClient:
        return SotwClient(EndpointDiscoveryServiceStub(self.channel).StreamEndpoints(), node)

    def delta_cds(self, node: str = "node-1") -> DeltaClient:
        return DeltaClient(ClusterDiscoveryServiceStub(self.channel).DeltaClusters(), node)

    def delta_eds(self, node: str = "node-1") -> DeltaClient:
        return DeltaClient(EndpointDiscoveryServiceStub(self.channel).DeltaEndpoints(), node)

    def new_channel(self, **options: Any) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"127.0.0.1:{self.port}", options=list(options.items()))

    def set_clusters(self, *names: str) -> None:
        self.cache.set_resources(CLUSTER_TYPE, {name: cluster(name) for name in names})

    def set_assignments(self, mapping: Mapping[str, Iterable[int]]) -> None:
        self.cache.set_resources(
            ENDPOINT_TYPE, {name: assignment(name, *ports) for name, ports in mapping.items()}
        )

    def update_assignment(self, name: str, *ports: int) -> None:
        self.cache.update_resources(ENDPOINT_TYPE, {name: assignment(name, *ports)})


async def wait_for(
    condition: Callable[[], bool], timeout: float = RECV_TIMEOUT, what: str = "condition"
) -> None:
    """Poll ``condition`` until true or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run_with_server(
    test: Callable[[Env], Awaitable[None]],
    *,
    cache: SnapshotCache | None = None,
    timeout: float = 60.0,
) -> None:
    """Start a server on a free port, run ``test`` against it within ``timeout``, always clean up."""

    async def main() -> None:
        the_cache = cache or SnapshotCache()
        server = XdsServer(the_cache, "127.0.0.1:0")
        port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            await asyncio.wait_for(test(Env(the_cache, server, channel, port)), timeout)
        finally:
            await channel.close()
            await server.stop(0)

    asyncio.run(main())


def sample(name: str, **labels: str) -> float:
    """Current value of a metric sample in the project registry (0 if not yet created)."""
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def nacks(type_url: str) -> float:
    return sample("gce_plugin_xds_nacks_total", type_url=type_url)


def pushes(type_url: str) -> float:
    return sample("gce_plugin_xds_pushes_total", type_url=type_url)


async def only_stream(env: Env, requests: int = 1) -> Stream:
    """The server's one open stream, once it has processed ``requests`` requests."""
    await wait_for(
        lambda: len(env.server.streams()) == 1 and env.server.streams()[0].requests_seen >= requests,
        what=f"one stream with {requests} requests processed",
    )
    return env.server.streams()[0]


async def folded(stream: Stream, cache: SnapshotCache, type_url: str) -> None:
    """Wait until the stream's writer has looked at every change of ``type_url`` in the cache."""
    await wait_for(
        lambda: stream.describe()["types"][type_url]["cursor"] == cache.seq(type_url),
        what=f"stream to fold {type_url}",
    )
