"""A reconnect storm through real gRPC on loopback: many clients, each on a connection of its own,
ask for every assignment at the same moment, as every Envoy does after a control-plane restart.

What the server holds for a stream that waits for a ``SendGate`` slot must not grow with the names
it asked for: otherwise memory grows with how many clients arrive before the gate drains them (a
quiet machine's storm peaked at 1.5-1.8 GiB, a loaded one's at 0.65 GiB). The gate never has more
full sends in flight than its limit, and every client gets its full state."""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc

import grpc
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub

from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache, XdsServer
from tests.xds.xds_testkit import SotwClient, assignment, assignments_of, cluster, wait_for

CLIENTS = 50
NAMES = 3000
SLOTS = 2


def _cache() -> tuple[SnapshotCache, list[str]]:
    names = [f"storm-upstream-{i:05d}_default" for i in range(NAMES)]
    cache = SnapshotCache()
    cache.set_resources(CLUSTER_TYPE, {name: cluster(name) for name in names})
    cache.set_resources(ENDPOINT_TYPE, {name: assignment(name, 8080 + i % 7) for i, name in enumerate(names)})
    return cache, names


def _held_by_xds(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes alive that were allocated by the xDS server's own code (not by the clients or grpc)."""
    traces = snapshot.filter_traces([tracemalloc.Filter(True, "*/gce_plugin/xds/*")])
    return sum(stat.size for stat in traces.statistics("filename"))


def _subscribed(server: XdsServer) -> int:
    """Streams whose EDS subscription names every assignment and whose cluster ACK is in."""
    count = 0
    for stream in server.streams():
        types = stream.describe()["types"]
        eds = types.get(ENDPOINT_TYPE)
        if eds is not None and eds["names"] == NAMES and not types[CLUSTER_TYPE]["awaiting_ack"]:
            count += 1
    return count


async def _full_state(client: SotwClient) -> int:
    response = await client.recv(timeout=60)
    assert response.type_url == ENDPOINT_TYPE
    return len(assignments_of(response))


def test_a_storm_waiting_for_the_gate_holds_no_per_name_state_and_syncs_everyone() -> None:
    async def main() -> None:
        cache, names = _cache()
        server = XdsServer(cache, "127.0.0.1:0", full_sends=SLOTS)
        port = await server.start()
        # A connection per client, as separate Envoys have.
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(CLIENTS)
        ]
        try:
            clients = [
                SotwClient(AggregatedDiscoveryServiceStub(ch).StreamAggregatedResources(), f"storm-{i}")
                for i, ch in enumerate(channels)
            ]
            for client in clients:
                await client.request(CLUSTER_TYPE)
            clusters = [await client.recv() for client in clients]
            await wait_for(lambda: server.gate.in_use == 0, what="the cluster sends to finish")
            async with contextlib.AsyncExitStack() as taken:
                # Every slot taken: the storm's full sends all wait, as when clients arrive faster
                # than the gate drains them.
                for _ in range(SLOTS):
                    await taken.enter_async_context(server.gate.slot())
                tracemalloc.start()
                try:
                    before = _held_by_xds(tracemalloc.take_snapshot())
                    for client, response in zip(clients, clusters, strict=True):
                        # As Envoy: the new clusters' assignments, then the clusters' ACK.
                        await client.request(ENDPOINT_TYPE, names)
                        await client.ack(response)
                    await wait_for(lambda: _subscribed(server) == CLIENTS, what="every EDS request read")
                    held = _held_by_xds(tracemalloc.take_snapshot()) - before
                finally:
                    tracemalloc.stop()
                assert server.gate.in_use == SLOTS  # nobody got past the gate
            # Before: each waiting stream held its own table of the names and the request's strings
            # (~110 bytes a name). Less than a pointer a name means no per-stream copy of them.
            assert held / CLIENTS < NAMES * 8, f"{held / CLIENTS:,.0f} bytes held per waiting stream"
            counts = await asyncio.gather(*(_full_state(client) for client in clients))
            assert counts == [NAMES] * CLIENTS  # nobody starved, everyone has every assignment
            assert server.gate.most == SLOTS
            assert server.gate.waited >= CLIENTS
            assert server.gate.overheld == 0
        finally:
            for channel in channels:
                await channel.close()
            await server.stop(0)

    asyncio.run(asyncio.wait_for(main(), 120))
