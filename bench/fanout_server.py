"""The xDS server side of the fan-out benchmark, as a process of its own (so its CPU time is its own).

``python -m bench.fanout_server --clusters K`` serves K EDS clusters (10 endpoints each) from a
``SnapshotCache`` over ``XdsServer`` on a free loopback port, prints ``READY <port>``, then follows
commands on stdin, one per line:

- ``change <i>``: move one endpoint of cluster i; prints ``CHANGED <cluster name> <monotonic ns>``,
  the time just before the cache update (CLOCK_MONOTONIC is system-wide, so the parent compares it
  with its own receipt times);
- ``unacked``: prints ``UNACKED <streams with a response not yet ACKed>``;
- ``streams``: prints ``STREAMS <open xDS streams>``;
- ``quit`` (or end of input): stops.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from google.protobuf.duration_pb2 import Duration

from gce_plugin.envoy_config.sources import eds_over_ads
from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache, XdsServer

ENDPOINTS = 10


def cluster_name(i: int) -> str:
    return f"svc-{i:04d}_default"


def make_cluster(i: int) -> Cluster:
    cluster = Cluster(name=cluster_name(i), connect_timeout=Duration(seconds=5))
    eds_over_ads(cluster)
    return cluster


def make_assignment(i: int, generation: int = 0) -> ClusterLoadAssignment:
    assignment = ClusterLoadAssignment(cluster_name=cluster_name(i))
    lb_endpoints = assignment.endpoints.add().lb_endpoints
    for j in range(ENDPOINTS):
        address = lb_endpoints.add().endpoint.address.socket_address
        # The last endpoint moves with every generation: a real change, same size.
        address.address = (
            f"10.{i // 256}.{i % 256}.{(j + (generation if j == ENDPOINTS - 1 else 0)) % 250 + 1}"
        )
        address.port_value = 8080
    return assignment


async def serve(clusters: int) -> None:
    cache = SnapshotCache()
    cache.set_resources(CLUSTER_TYPE, {cluster_name(i): make_cluster(i) for i in range(clusters)})
    cache.set_resources(ENDPOINT_TYPE, {cluster_name(i): make_assignment(i) for i in range(clusters)})
    server = XdsServer(cache, "127.0.0.1:0")
    port = await server.start()
    print(f"READY {port}", flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    generations: dict[int, int] = {}
    # CPU spent answering the benchmark's probes ("unacked", polled every few ms while clients ACK):
    # the server's CPU per change is reported without it.
    probe_cpu = 0.0
    try:
        while True:
            line = (await reader.readline()).decode().split()
            if not line or line[0] == "quit":
                break
            if line[0] == "change":
                i = int(line[1])
                generations[i] = generations.get(i, 0) + 1
                assignment = make_assignment(i, generations[i])
                at = time.monotonic_ns()
                cache.update_resources(ENDPOINT_TYPE, {assignment.cluster_name: assignment})
                print(f"CHANGED {assignment.cluster_name} {at}", flush=True)
            elif line[0] == "unacked":
                started = time.thread_time()
                unacked = sum(
                    1
                    for s in server.streams()
                    if any(t["awaiting_ack"] for t in s.describe()["types"].values())
                )
                print(f"UNACKED {unacked}", flush=True)
                probe_cpu += time.thread_time() - started
            elif line[0] == "cpu":
                print(f"CPU {time.process_time() - probe_cpu}", flush=True)
            elif line[0] == "gate":
                gate = server.gate
                print(f"GATE {gate.waited} {gate.overheld}", flush=True)
            elif line[0] == "streams":
                print(f"STREAMS {server.connected_clients()}", flush=True)
    finally:
        await server.stop(grace=0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(serve(args.clusters))


if __name__ == "__main__":
    main()
