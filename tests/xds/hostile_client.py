"""A hostile xDS client in a process of its own (its CPU and gRPC state stay out of the server's):
``python -m tests.xds.hostile_client PORT NAMES REQUESTS`` sends REQUESTS SotW EDS requests of NAMES
distinct names each on one ADS stream, keeping it open 3 s more; prints "sending" when it starts to
send, then how the stream ended (a gRPC status code name)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import grpc
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


def hold(batch: list[DiscoveryRequest], seconds: float = 3.0) -> Iterator[DiscoveryRequest]:
    """The requests, then a pause before the half-close (which would end the stream at once)."""
    yield from batch
    time.sleep(seconds)


def main(port: int, names: int, requests: int) -> str:
    batch = [
        DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=[f"r{r}-{i}" for i in range(names)])
        for r in range(requests)
    ]
    for request in batch:
        request.node.id = "attacker"
    print("sending", flush=True)
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call = AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(hold(batch), timeout=30)
        try:
            for _ in call:
                pass
        except grpc.RpcError as err:
            return str(err.code().name)
    return "OK"


if __name__ == "__main__":
    print(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])), flush=True)
