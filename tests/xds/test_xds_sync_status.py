"""The sync tracker, fed by the xDS server's callbacks: per stream and type, SYNCED / STALE /
NOT SENT, the ACKed version against the latest, and the last NACK's error detail."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from gce_plugin.sync_status import NOT_SENT, STALE, SYNCED, SyncTracker
from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache, XdsServer
from tests.xds.xds_testkit import Env, cluster, wait_for


def run(test: Callable[[Env, SyncTracker], Awaitable[None]]) -> None:
    async def main() -> None:
        cache = SnapshotCache()
        tracker = SyncTracker()
        server = XdsServer(cache, "127.0.0.1:0", callbacks=tracker)
        port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            await asyncio.wait_for(test(Env(cache, server, channel, port), tracker), 60)
        finally:
            await channel.close()
            await server.stop(0)

    asyncio.run(main())


def set_clusters(env: Env, tracker: SyncTracker, *names: str) -> None:
    env.cache.set_resources(CLUSTER_TYPE, {name: cluster(name) for name in names})
    for type_url in (CLUSTER_TYPE, ENDPOINT_TYPE):
        tracker.set_latest(type_url, env.cache.version(type_url))


def proxy(tracker: SyncTracker, node: str) -> dict[str, Any] | None:
    return next((p for p in tracker.report()["proxies"] if p["node"] == node), None)


def sent(tracker: SyncTracker, node: str, kind: str) -> bool:
    """Whether ``node``'s stream is in the report with a response of ``kind`` sent."""
    state = proxy(tracker, node)
    return state is not None and state["types"][kind]["status"] != NOT_SENT


def test_ack_nack_and_close() -> None:
    async def body(env: Env, tracker: SyncTracker) -> None:
        set_clusters(env, tracker, "a")
        client = env.ads("edge-1")
        await client.request(CLUSTER_TYPE)
        first = await client.recv()
        # The server reports a response once its write completed, which may be after the client
        # (on this same loop) read it.
        await wait_for(lambda: sent(tracker, "edge-1", "Cluster"), what="the sent response in the report")
        state = proxy(tracker, "edge-1")
        assert state is not None
        assert state["types"]["Cluster"]["status"] == STALE  # sent, not ACKed yet
        assert state["types"]["ClusterLoadAssignment"]["status"] == NOT_SENT
        assert state["address"].startswith("127.0.0.1:") and state["connectedSince"]

        await client.ack(first)
        await wait_for(lambda: proxy(tracker, "edge-1")["types"]["Cluster"]["status"] == SYNCED)  # type: ignore[index]
        assert proxy(tracker, "edge-1")["types"]["Cluster"]["acked"] == first.version_info  # type: ignore[index]

        set_clusters(env, tracker, "a", "b")
        second = await client.recv()
        await client.nack(second, error="cluster b: invalid connect_timeout")

        def nacked() -> bool:
            cds = proxy(tracker, "edge-1")["types"]["Cluster"]  # type: ignore[index]
            return cds["lastNack"] is not None

        await wait_for(nacked, what="the NACK in the report")
        cds = proxy(tracker, "edge-1")["types"]["Cluster"]  # type: ignore[index]
        assert cds["status"] == STALE
        assert cds["acked"] == first.version_info and cds["latest"] == second.version_info
        assert cds["lastNack"]["error"] == "cluster b: invalid connect_timeout"
        assert cds["lastNack"]["version"] == second.version_info

        await client.call.done_writing()
        await wait_for(lambda: proxy(tracker, "edge-1") is None, what="the closed stream to leave the report")

    run(body)
