"""Incremental (delta) xDS through real gRPC on 127.0.0.1: ADS and the standalone services."""

from __future__ import annotations

import grpc
import pytest
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse

from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE
from gce_plugin.xds import cache as cache_module
from tests.xds.xds_testkit import (
    Env,
    assignment,
    assignments_of,
    cluster,
    clusters_of,
    nacks,
    only_stream,
    ports_of,
    run_with_server,
    wait_for,
)


def versions(response: DeltaDiscoveryResponse) -> dict[str, str]:
    return {r.name: r.version for r in response.resources}


def endpoint_ports(response: DeltaDiscoveryResponse) -> dict[str, list[int]]:
    return {name: ports_of(cla) for name, cla in assignments_of(response).items()}


def test_wildcard_clusters_added_changed_removed() -> None:
    async def body(env: Env) -> None:
        client = env.delta_ads()
        await client.request(CLUSTER_TYPE)  # nothing subscribed: the legacy wildcard
        empty = await client.recv()  # answered at once, even with nothing to send
        assert empty.type_url == CLUSTER_TYPE and not empty.resources and not empty.removed_resources
        await client.ack(empty)

        env.set_clusters("a", "b")
        first = await client.recv()
        assert versions(first) == {
            "a": env.cache.resource_version(CLUSTER_TYPE, "a"),
            "b": env.cache.resource_version(CLUSTER_TYPE, "b"),
        }
        assert first.system_version_info == env.cache.version(CLUSTER_TYPE)
        await client.ack(first)

        env.cache.update_resources(CLUSTER_TYPE, {"a": cluster("a", timeout_ms=2000)})
        changed = await client.recv()
        assert list(versions(changed)) == ["a"]  # only what changed
        await client.ack(changed)

        env.cache.update_resources(CLUSTER_TYPE, {}, removals=["b"])
        removed = await client.recv()
        assert list(removed.removed_resources) == ["b"] and not removed.resources
        await client.ack(removed)

        env.cache.update_resources(CLUSTER_TYPE, {"c": cluster("c")})
        assert list(clusters_of(await client.recv())) == ["c"]

    run_with_server(body)


def test_explicit_subscribe_and_unsubscribe() -> None:
    async def body(env: Env) -> None:
        env.set_assignments({"a": [1], "b": [2], "c": [3]})
        client = env.delta_eds()
        await client.request(ENDPOINT_TYPE, subscribe=["a"])
        got = await client.recv()
        assert endpoint_ports(got) == {"a": [1]}
        await client.ack(got)

        await client.request(ENDPOINT_TYPE, subscribe=["b"])  # spontaneous: no nonce
        got = await client.recv()
        assert endpoint_ports(got) == {"b": [2]}
        await client.ack(got)

        # Unsubscribing needs no answer, and a's changes are no longer pushed: the next push is b's.
        stream = await only_stream(env, requests=4)
        await client.request(ENDPOINT_TYPE, unsubscribe=["a"])
        await wait_for(lambda: stream.requests_seen == 5, what="unsubscribe processed")
        env.update_assignment("a", 11)
        env.update_assignment("b", 22)
        got = await client.recv()
        assert endpoint_ports(got) == {"b": [22]}
        await client.ack(got)

        # Subscribing again sends it, and so does re-subscribing a name the client seems to have.
        await client.request(ENDPOINT_TYPE, subscribe=["a", "b"])
        got = await client.recv()
        assert endpoint_ports(got) == {"a": [11], "b": [22]}

    run_with_server(body)


def test_initial_resource_versions_are_honoured() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a", "b", "c")
        current_a = env.cache.resource_version(CLUSTER_TYPE, "a")
        assert current_a is not None
        client = env.delta_ads()
        # A reconnecting client: it has a (current), b (outdated) and gone (deleted meanwhile).
        await client.request(
            CLUSTER_TYPE, subscribe=["*"], initial={"a": current_a, "b": "outdated", "gone": "v1"}
        )
        got = await client.recv()
        assert sorted(versions(got)) == ["b", "c"]
        assert list(got.removed_resources) == ["gone"]

    run_with_server(body)


def test_nack_is_counted_and_not_pushed_again() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a", "b")
        client = env.delta_cds()
        await client.request(CLUSTER_TYPE, subscribe=["*"])
        await client.ack(await client.recv())
        env.cache.update_resources(CLUSTER_TYPE, {"a": cluster("a", timeout_ms=5)})
        rejected = await client.recv()
        before = nacks(CLUSTER_TYPE)
        await client.nack(rejected, error="a: bad timeout")
        await wait_for(lambda: nacks(CLUSTER_TYPE) == before + 1, what="NACK counted")

        env.cache.update_resources(CLUSTER_TYPE, {"b": cluster("b", timeout_ms=7)})
        got = await client.recv()
        assert list(versions(got)) == ["b"]  # not a again
        await client.ack(got)
        env.cache.update_resources(CLUSTER_TYPE, {"a": cluster("a", timeout_ms=9)})
        assert list(versions(await client.recv())) == ["a"]  # the next version of a is pushed

    run_with_server(body)


def test_stale_nonce_still_changes_subscriptions_but_does_not_ack() -> None:
    async def body(env: Env) -> None:
        env.set_assignments({"a": [1], "b": [2]})
        client = env.delta_ads()
        await client.request(ENDPOINT_TYPE, subscribe=["a"])
        old = await client.recv()
        await client.ack(old)
        env.update_assignment("a", 10)
        latest = await client.recv()  # not ACKed yet
        stream = await only_stream(env, requests=2)

        before = nacks(ENDPOINT_TYPE)
        await client.request(ENDPOINT_TYPE, subscribe=["b"], nonce=old.nonce, error="about the old one")
        await wait_for(lambda: stream.requests_seen == 3, what="stale request processed")
        assert nacks(ENDPOINT_TYPE) == before
        assert stream.describe()["types"][ENDPOINT_TYPE]["names"] == 2  # b is subscribed

        await client.ack(latest)  # now the subscription to b is answered
        assert endpoint_ports(await client.recv()) == {"b": [2]}

    run_with_server(body)


def test_missing_names_are_reported_removed() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a", "x")
        client = env.delta_cds()
        await client.request(CLUSTER_TYPE, subscribe=["a", "nope"])
        got = await client.recv()
        assert list(versions(got)) == ["a"] and list(got.removed_resources) == ["nope"]
        await client.ack(got)
        env.cache.update_resources(CLUSTER_TYPE, {"nope": cluster("nope")})
        got = await client.recv()
        assert list(versions(got)) == ["nope"]
        await client.ack(got)

        # With a wildcard too, unsubscribing a name says whether the wildcard still covers it.
        await client.request(CLUSTER_TYPE, subscribe=["*", "y"])
        got = await client.recv()
        assert "x" in versions(got) and list(got.removed_resources) == ["y"]
        await client.ack(got)
        await client.request(CLUSTER_TYPE, unsubscribe=["a", "y"])
        got = await client.recv()
        assert list(versions(got)) == ["a"] and list(got.removed_resources) == ["y"]

    run_with_server(body)


def test_assignments_of_warming_clusters_are_empty_not_removed() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("warming")
        client = env.delta_ads()
        await client.request(ENDPOINT_TYPE, subscribe=["warming"])
        got = await client.recv()
        assert endpoint_ports(got) == {"warming": []} and not got.removed_resources
        await client.ack(got)
        env.update_assignment("warming", 4)
        assert endpoint_ports(await client.recv()) == {"warming": [4]}

    run_with_server(body)


def test_clusters_before_assignments_on_delta_ads() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("a")
        env.set_assignments({"a": [1]})
        client = env.delta_ads()
        await client.request(CLUSTER_TYPE)
        await client.ack(await client.recv())
        await client.request(ENDPOINT_TYPE, subscribe=["a"])
        await client.ack(await client.recv())
        env.cache.set_resources(CLUSTER_TYPE, {"a": cluster("a", timeout_ms=2000), "b": cluster("b")})
        env.set_assignments({"a": [2], "b": [3]})
        first, second = await client.recv(), await client.recv()
        assert first.type_url == CLUSTER_TYPE and sorted(versions(first)) == ["a", "b"]
        assert second.type_url == ENDPOINT_TYPE and endpoint_ports(second) == {"a": [2]}

    run_with_server(body)


def test_delta_stream_that_fell_behind_is_closed_for_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "MAX_LOG_CHANGES", 3)

    async def body(env: Env) -> None:
        huge = assignment("huge", 1)
        huge.endpoints[0].lb_endpoints[0].endpoint.hostname = "x" * (16 * 1024 * 1024)
        env.cache.set_resources(ENDPOINT_TYPE, {"huge": huge})
        channel = env.new_channel(**{"grpc.max_receive_message_length": -1})
        try:
            client = env.delta_ads(channel=channel)
            await client.request(ENDPOINT_TYPE, subscribe=["huge", "a"])
            await wait_for(lambda: any(s.writing for s in env.server.streams()), what="write blocked")
            for port in range(10):  # more changes than the log keeps, while the writer is stuck
                env.update_assignment("a", port)
            got = await client.recv()  # reading unblocks the writer...
            assert sorted(versions(got)) == ["a", "huge"]
            with pytest.raises(grpc.aio.AioRpcError) as err:  # ...which finds it missed changes
                await client.recv()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await channel.close()

    run_with_server(body)
