"""State-of-the-world xDS through real gRPC on 127.0.0.1: ADS and the standalone CDS/EDS services.

"Nothing was pushed" is never checked by waiting: a later change that must be pushed serves as a
barrier, since responses on a stream arrive in order.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.service.cluster.v3.cds_pb2_grpc import ClusterDiscoveryServiceStub
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE, SnapshotCache, XdsServer
from tests.xds.xds_testkit import (
    Env,
    SotwClient,
    assignment,
    assignments_of,
    cluster,
    clusters_of,
    folded,
    nacks,
    only_stream,
    ports_of,
    pushes,
    run_with_server,
    sample,
    wait_for,
)


def test_first_request_gets_current_state_at_once() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a", "b")
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        response = await client.recv()
        assert response.type_url == CLUSTER_TYPE
        assert sorted(clusters_of(response)) == ["a", "b"]
        assert response.version_info == env.cache.version(CLUSTER_TYPE)
        assert response.nonce

    run_with_server(body)


def test_empty_cache_still_answers_the_first_request() -> None:
    """Envoy's initialization waits for a first CDS response, even an empty one."""

    async def body(env: Env) -> None:
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        response = await client.recv()
        assert response.type_url == CLUSTER_TYPE and not response.resources
        await client.ack(response)
        env.set_clusters("a")
        assert sorted(clusters_of(await client.recv())) == ["a"]

    run_with_server(body)


def test_cluster_change_sends_every_cluster_with_a_new_version() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a", "b")
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        first = await client.recv()
        await client.ack(first)
        env.cache.update_resources(CLUSTER_TYPE, {"c": cluster("c")})
        second = await client.recv()
        assert sorted(clusters_of(second)) == ["a", "b", "c"]  # CDS is state of the world
        assert second.version_info == env.cache.version(CLUSTER_TYPE) != first.version_info
        assert second.nonce != first.nonce
        await client.ack(second)
        env.cache.update_resources(CLUSTER_TYPE, {}, removals=["a"])
        assert sorted(clusters_of(await client.recv())) == ["b", "c"]

    run_with_server(body)


def test_nack_is_logged_and_counted_and_not_pushed_again(caplog: pytest.LogCaptureFixture) -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a")
        client = env.ads("nacking-node")
        await client.request(CLUSTER_TYPE)
        await client.ack(await client.recv())
        env.cache.update_resources(CLUSTER_TYPE, {"bad": cluster("bad")})
        rejected = await client.recv()
        before = nacks(CLUSTER_TYPE)
        await client.nack(rejected, error="cluster bad: invalid")
        await wait_for(lambda: nacks(CLUSTER_TYPE) == before + 1, what="NACK counted")

        # Barrier: an EDS request is answered next, so the NACKed version was not pushed again.
        await client.request(ENDPOINT_TYPE, ["a"])
        barrier = await client.recv()
        assert barrier.type_url == ENDPOINT_TYPE
        await client.ack(barrier, ["a"])

        # The next different version is pushed.
        env.cache.update_resources(CLUSTER_TYPE, {"bad": cluster("bad", timeout_ms=5)})
        fixed = await client.recv()
        assert fixed.type_url == CLUSTER_TYPE and fixed.version_info != rejected.version_info
        assert fixed.version_info == env.cache.version(CLUSTER_TYPE)

        records = [r for r in caplog.records if r.levelno == logging.WARNING and "NACK" in r.getMessage()]
        assert len(records) == 1
        record = records[0]
        assert "cluster bad: invalid" in record.getMessage()
        assert record.__dict__["node"] == "nacking-node"
        assert record.__dict__["type_url"] == CLUSTER_TYPE
        assert record.__dict__["rejected_version"] == rejected.version_info

    run_with_server(body)


def test_stale_nonce_is_neither_ack_nor_nack() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a")
        env.set_assignments({"a": [1]})
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        await client.ack(await client.recv())
        await client.request(ENDPOINT_TYPE, ["a"])
        old = await client.recv()
        await client.ack(old, ["a"])
        env.update_assignment("a", 2)
        latest = await client.recv()  # not ACKed yet
        assert ports_of(assignments_of(latest)["a"]) == [2]

        before = nacks(ENDPOINT_TYPE)
        stream = await only_stream(env, requests=4)
        # The client answers an older response: stale, so this error is not a NACK...
        await client.request(ENDPOINT_TYPE, ["a"], nonce=old.nonce, error="about the old one")
        await wait_for(lambda: stream.requests_seen == 5, what="stale request processed")
        # ...and not an ACK either: a new change is held until the latest response is answered.
        env.update_assignment("a", 3)
        await folded(stream, env.cache, ENDPOINT_TYPE)
        env.cache.update_resources(CLUSTER_TYPE, {"z": cluster("z")})
        barrier = await client.recv()
        assert barrier.type_url == CLUSTER_TYPE  # no EDS push came before it
        await client.ack(barrier)
        assert nacks(ENDPOINT_TYPE) == before

        await client.ack(latest, ["a"])
        pushed = await client.recv()
        assert pushed.type_url == ENDPOINT_TYPE
        assert {name: ports_of(cla) for name, cla in assignments_of(pushed).items()} == {"a": [3]}

    run_with_server(body)


def test_ads_sends_clusters_before_their_assignments() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a")
        env.set_assignments({"a": [1]})
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        await client.ack(await client.recv())
        await client.request(ENDPOINT_TYPE, ["a"])
        await client.ack(await client.recv(), ["a"])

        # New cluster b and endpoint changes, set in the order a control plane does it.
        env.cache.set_resources(CLUSTER_TYPE, {"a": cluster("a"), "b": cluster("b")})
        env.set_assignments({"a": [2], "b": [3]})
        cds = await client.recv()
        eds = await client.recv()
        assert cds.type_url == CLUSTER_TYPE and sorted(clusters_of(cds)) == ["a", "b"]
        assert eds.type_url == ENDPOINT_TYPE
        assert {n: ports_of(c) for n, c in assignments_of(eds).items()} == {"a": [2]}
        await client.ack(cds)
        # Like Envoy: the new cluster warms and its assignment is requested; it comes at once.
        await client.ack(eds, ["a", "b"])
        warm = await client.recv()
        assert {n: ports_of(c) for n, c in assignments_of(warm).items()} == {"b": [3]}

    run_with_server(body)


def test_assignments_wait_for_an_unacked_cluster_update() -> None:
    """An assignment never overtakes the cluster update it belongs to."""

    async def body(env: Env) -> None:
        env.set_clusters("a")
        env.set_assignments({"a": [1]})
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        unacked = await client.recv()
        await client.request(ENDPOINT_TYPE, ["a"])
        await client.ack(await client.recv(), ["a"])
        stream = await only_stream(env, requests=3)

        env.cache.update_resources(CLUSTER_TYPE, {"a": cluster("a", timeout_ms=2000)})
        env.update_assignment("a", 2)
        await folded(stream, env.cache, ENDPOINT_TYPE)
        await client.ack(unacked)
        first, second = await client.recv(), await client.recv()
        assert first.type_url == CLUSTER_TYPE
        assert clusters_of(first)["a"].connect_timeout.ToMilliseconds() == 2000
        assert second.type_url == ENDPOINT_TYPE
        assert ports_of(assignments_of(second)["a"]) == [2]

    run_with_server(body)


def test_assignment_of_a_warming_cluster_is_not_held_back_by_a_later_cluster_update() -> None:
    """Envoy ACKs a cluster update only once its new clusters are warm: their assignments are sent
    when they arrive even while another cluster update waits for that ACK (else both would stall
    until Envoy's initial fetch timeout). Seen with two upstreams applied to etcd 50 ms apart."""

    async def body(env: Env) -> None:
        env.set_clusters()
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        await client.ack(await client.recv())
        env.cache.hold(ENDPOINT_TYPE, ["a"])
        env.set_clusters("a")
        unacked = await client.recv()  # cluster a: Envoy warms it and asks for its assignment
        assert sorted(clusters_of(unacked)) == ["a"]
        await client.request(ENDPOINT_TYPE, ["a"])
        nothing_yet = await client.recv()  # a first request is answered, here with nothing
        assert nothing_yet.type_url == ENDPOINT_TYPE and not assignments_of(nothing_yet)
        await client.ack(nothing_yet, ["a"])
        stream = await only_stream(env, requests=4)
        env.cache.hold(ENDPOINT_TYPE, ["a", "b"])
        env.set_clusters("a", "b")  # the next update, held until a is warm and ACKed
        await folded(stream, env.cache, CLUSTER_TYPE)
        env.update_assignment("a", 1)  # discovery answers
        warm = await client.recv()
        assert warm.type_url == ENDPOINT_TYPE
        assert {n: ports_of(c) for n, c in assignments_of(warm).items()} == {"a": [1]}
        await client.ack(unacked)
        nxt = await client.recv()
        assert nxt.type_url == CLUSTER_TYPE and sorted(clusters_of(nxt)) == ["a", "b"]

    run_with_server(body)


def test_updated_cluster_gets_its_assignment_again() -> None:
    """Envoy re-warms an updated cluster and waits for a new assignment, even an unchanged one."""

    async def body(env: Env) -> None:
        env.set_clusters("a", "b")
        env.set_assignments({"a": [1], "b": [2]})
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        await client.ack(await client.recv())
        await client.request(ENDPOINT_TYPE, ["a", "b"])
        await client.ack(await client.recv(), ["a", "b"])
        env.cache.update_resources(CLUSTER_TYPE, {"a": cluster("a", timeout_ms=3000)})
        cds = await client.recv()
        eds = await client.recv()
        assert cds.type_url == CLUSTER_TYPE
        assert {n: ports_of(c) for n, c in assignments_of(eds).items()} == {"a": [1]}

    run_with_server(body)


def test_warming_and_unknown_clusters_get_an_empty_assignment() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a", "warming")
        env.set_assignments({"a": [1]})
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        await client.ack(await client.recv())
        await client.request(ENDPOINT_TYPE, ["a", "warming", "unknown"])
        response = await client.recv()
        got = assignments_of(response)
        assert {n: ports_of(c) for n, c in got.items()} == {"a": [1], "warming": [], "unknown": []}
        assert got["warming"].cluster_name == "warming"
        await client.ack(response, ["a", "warming", "unknown"])
        env.update_assignment("warming", 5)
        later = await client.recv()
        assert {n: ports_of(c) for n, c in assignments_of(later).items()} == {"warming": [5]}

    run_with_server(body)


def test_only_changed_assignments_are_sent_and_unchanged_content_is_not() -> None:
    async def body(env: Env) -> None:
        env.set_assignments({"a": [1], "b": [2], "c": [3]})
        client = env.ads()
        names = ["a", "b", "c"]
        await client.request(ENDPOINT_TYPE, names)
        first = await client.recv()
        assert sorted(assignments_of(first)) == names
        await client.ack(first, names)

        env.update_assignment("b", 22)
        changed = await client.recv()
        assert {n: ports_of(c) for n, c in assignments_of(changed).items()} == {"b": [22]}
        await client.ack(changed, names)

        # Identical content, and a change nobody subscribed to: nothing to push...
        env.set_assignments({"a": [1], "b": [22], "c": [3]})
        env.update_assignment("other", 9)
        # ...so the next response is this change of c alone.
        env.update_assignment("c", 33)
        barrier = await client.recv()
        assert {n: ports_of(c) for n, c in assignments_of(barrier).items()} == {"c": [33]}

    run_with_server(body)


def test_reconnecting_client_gets_current_state_at_once() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a")
        env.set_assignments({"a": [1]})
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        cds = await client.recv()
        await client.ack(cds)
        await client.request(ENDPOINT_TYPE, ["a"])
        eds = await client.recv()
        await client.ack(eds, ["a"])
        client.call.cancel()
        await wait_for(lambda: env.server.connected_clients() == 0, what="stream closed")

        env.cache.update_resources(CLUSTER_TYPE, {"b": cluster("b")})
        again = env.ads()
        # It says which versions it has; it gets the current state anyway, at once.
        await again.request(CLUSTER_TYPE, version=cds.version_info)
        now = await again.recv()
        assert sorted(clusters_of(now)) == ["a", "b"]
        assert now.version_info == env.cache.version(CLUSTER_TYPE)
        await again.request(ENDPOINT_TYPE, ["a"], version=eds.version_info)
        assert ports_of(assignments_of(await again.recv())["a"]) == [1]

    run_with_server(body)


def test_standalone_cds_and_eds_services() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a")
        env.set_assignments({"a": [1]})
        cds, eds = env.cds(), env.eds()
        await cds.request(CLUSTER_TYPE, send_type=False)  # the service implies the type
        clusters = await cds.recv()
        assert clusters.type_url == CLUSTER_TYPE and sorted(clusters_of(clusters)) == ["a"]
        await cds.ack(clusters)
        await eds.request(ENDPOINT_TYPE, ["a"])
        endpoints = await eds.recv()
        assert ports_of(assignments_of(endpoints)["a"]) == [1]
        await eds.ack(endpoints, ["a"])

        # Another type on a single-type service is ignored; the barrier shows nothing came of it.
        await eds.request(CLUSTER_TYPE)
        env.update_assignment("a", 2)
        assert ports_of(assignments_of(await eds.recv())["a"]) == [2]
        env.cache.update_resources(CLUSTER_TYPE, {"b": cluster("b")})
        assert sorted(clusters_of(await cds.recv())) == ["a", "b"]

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ClusterDiscoveryServiceStub(env.channel).FetchClusters(DiscoveryRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED

    run_with_server(body)


def test_registered_route_type_is_served() -> None:
    cache = SnapshotCache()
    cache.register(ROUTE)

    async def body(env: Env) -> None:
        env.cache.set_resources(ROUTE.type_url, {"r1": RouteConfiguration(name="r1")})
        client = env.ads()
        await client.request(ROUTE.type_url, ["r1", "r2"])
        response = await client.recv()
        assert response.type_url == ROUTE.type_url
        assert [any_msg.type_url for any_msg in response.resources] == [ROUTE.type_url]

    run_with_server(body, cache=cache)


def test_many_clients_get_an_update() -> None:
    clients_count = 50

    async def body(env: Env) -> None:
        env.set_clusters("a")
        env.set_assignments({"a": [1]})
        channels = [env.new_channel() for _ in range(5)]
        try:
            clients = [env.ads(f"node-{i}", channels[i % len(channels)]) for i in range(clients_count)]

            async def subscribe(client: SotwClient) -> None:
                await client.request(ENDPOINT_TYPE, ["a"])
                await client.ack(await client.recv(), ["a"])

            await asyncio.gather(*(subscribe(c) for c in clients))
            await wait_for(lambda: env.server.connected_clients() == clients_count, what="all connected")
            before = pushes(ENDPOINT_TYPE)
            env.update_assignment("a", 2)
            updates = await asyncio.gather(*(c.recv() for c in clients))
            assert all(ports_of(assignments_of(u)["a"]) == [2] for u in updates)
            # A push is counted once its write completed, which may be after the client read it.
            await wait_for(lambda: pushes(ENDPOINT_TYPE) >= before + clients_count, what="pushes counted")
        finally:
            for channel in channels:
                await channel.close()

    run_with_server(body)


def test_stalled_client_does_not_delay_others() -> None:
    """A client that never reads has a huge response stuck in its stream; another still gets updates."""

    async def body(env: Env) -> None:
        huge = assignment("huge", 1)
        huge.endpoints[0].lb_endpoints[0].endpoint.hostname = "x" * (16 * 1024 * 1024)
        env.cache.set_resources(ENDPOINT_TYPE, {"huge": huge, "small": assignment("small", 1)})
        # It would accept the huge message, if only it read it.
        stalled_channel = env.new_channel(**{"grpc.max_receive_message_length": -1})
        try:
            stalled = env.ads("stalled", stalled_channel)
            await stalled.request(ENDPOINT_TYPE, ["huge"])  # and never reads
            await wait_for(
                lambda: any(s.node_id == "stalled" and s.writing for s in env.server.streams()),
                what="stalled stream blocked in a write",
            )

            client = env.ads("healthy")
            await client.request(ENDPOINT_TYPE, ["small"])
            await client.ack(await client.recv(), ["small"])
            loop = asyncio.get_running_loop()
            started = loop.time()
            env.update_assignment("small", 2)
            update = await client.recv(timeout=5)
            assert ports_of(assignments_of(update)["small"]) == [2]
            assert loop.time() - started < 2.0
            # The stalled stream is still stuck in its write all along.
            assert [s.writing for s in env.server.streams() if s.node_id == "stalled"] == [True]
            stalled.call.cancel()
            await wait_for(lambda: env.server.connected_clients() == 1, what="stalled stream cleaned up")
        finally:
            await stalled_channel.close()

    run_with_server(body)


def test_stream_metrics_and_half_close() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a")
        gauge_before = sample("gce_plugin_xds_connected_clients", service="ads")
        latency_before = sample("gce_plugin_xds_push_latency_seconds_count", type_url=CLUSTER_TYPE)
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        await client.ack(await client.recv())
        assert sample("gce_plugin_xds_connected_clients", service="ads") == gauge_before + 1
        env.cache.update_resources(CLUSTER_TYPE, {"b": cluster("b")})
        await client.recv()
        await wait_for(
            lambda: (
                sample("gce_plugin_xds_push_latency_seconds_count", type_url=CLUSTER_TYPE)
                == latency_before + 1
            ),
            what="push latency observed",
        )
        # The client half-closes: the server ends the stream cleanly.
        await client.call.done_writing()
        assert await client.call.read() is grpc.aio.EOF
        assert await client.call.code() == grpc.StatusCode.OK
        await wait_for(lambda: env.server.connected_clients() == 0, what="stream gone")
        assert sample("gce_plugin_xds_connected_clients", service="ads") == gauge_before

    run_with_server(body)


def test_server_lifecycle_and_taken_port(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        first = XdsServer(SnapshotCache(), "127.0.0.1:0")
        port = await first.start()
        try:
            assert port > 0 and first.port == port
            with pytest.raises(RuntimeError, match="already started"):
                await first.start()
            with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
                await XdsServer(SnapshotCache(), f"127.0.0.1:{port}").start()
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            try:
                client = SotwClient(
                    AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(), "logged-node"
                )
                await client.request(CLUSTER_TYPE)
                await client.recv()
                await first.stop(0)
                assert first.connected_clients() == 0
            finally:
                await channel.close()
        finally:
            await first.stop(0)  # idempotent
        messages = [(r.getMessage(), r.__dict__.get("node")) for r in caplog.records]
        assert ("xDS stream opened", "logged-node") in messages
        assert ("xDS stream closed", "logged-node") in messages

    with caplog.at_level(logging.INFO, logger="gce_plugin.xds"):
        asyncio.run(asyncio.wait_for(body(), 30))
