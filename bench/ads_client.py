"""The benchmarks' minimal Envoy-like ADS client (state of the world): asks for every cluster, then
subscribes to the assignments of the clusters of the first CDS response, and ACKs every response.
Subclasses look at what arrives in ``received``."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE

ADS_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


def _raw(data: bytes) -> bytes:
    return data


@dataclass
class AdsClient:
    index: int
    port: int
    node_prefix: str = "bench-client"
    eds_names: tuple[str, ...] = ()
    error: str = ""

    def received(self, response: DiscoveryResponse, size: int, at_ns: int) -> None:
        """Called for every response (``size`` bytes on the wire, received at ``at_ns``), before its ACK."""

    async def before_subscribing(self) -> None:
        """Called once the first CDS response is in, before the EDS request is sent (a benchmark can
        hold every client here, then let them all ask at the same moment)."""

    async def run(self) -> None:
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{self.port}",
            # A connection of its own, as separate Envoys have (channels share subchannels otherwise).
            options=[("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 1 << 30)],
        )
        subscribed = False
        try:
            call = channel.stream_stream(
                ADS_METHOD, request_serializer=DiscoveryRequest.SerializeToString, response_deserializer=_raw
            )()
            await call.write(self.request(CLUSTER_TYPE))
            while True:
                raw = await call.read()
                if raw is grpc.aio.EOF:
                    return
                at_ns = time.monotonic_ns()
                response = DiscoveryResponse.FromString(raw)
                ack = self.request(response.type_url, response.version_info, response.nonce)
                if response.type_url == CLUSTER_TYPE and not subscribed:
                    # As Envoy: subscribe to the new clusters' assignments, then ACK the clusters.
                    subscribed = True
                    self.eds_names = tuple(Cluster.FromString(a.value).name for a in response.resources)
                    await self.before_subscribing()
                    await call.write(self.request(ENDPOINT_TYPE, names=self.eds_names))
                elif response.type_url == ENDPOINT_TYPE:
                    ack.resource_names.extend(self.eds_names)  # SotW: every request names them all
                self.received(response, len(raw), at_ns)
                await call.write(ack)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                self.error = f"{err.code().name}: {err.details()}"
        finally:
            await channel.close(grace=None)

    def request(
        self, type_url: str, version: str = "", nonce: str = "", names: tuple[str, ...] = ()
    ) -> DiscoveryRequest:
        request = DiscoveryRequest(type_url=type_url, version_info=version, response_nonce=nonce)
        request.node.id = f"{self.node_prefix}-{self.index}"
        request.node.cluster = "bench"
        request.resource_names.extend(names)
        return request
