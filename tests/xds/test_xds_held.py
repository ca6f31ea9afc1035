"""Held names: an assignment that is on its way is neither answered with an empty placeholder nor
reported removed, so an Envoy that already has it keeps it; it is sent as soon as it exists. The
"nothing was sent" checks are ordered: the next response a client gets must be the real one."""

from __future__ import annotations

from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE
from tests.xds.xds_testkit import Env, assignments_of, ports_of, run_with_server


def test_sotw_held_assignment_gets_no_placeholder_then_the_real_one() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("web", "api")
        env.cache.hold(ENDPOINT_TYPE, ["web"])
        client = env.ads()
        await client.request(CLUSTER_TYPE)
        await client.ack(await client.recv())
        await client.request(ENDPOINT_TYPE, ["web", "api"])
        first = await client.recv()
        # "api" is not held: it gets the placeholder at once; "web" gets nothing.
        assert set(assignments_of(first)) == {"api"}
        assert ports_of(assignments_of(first)["api"]) == []
        await client.ack(first, ["web", "api"])
        env.update_assignment("web", 8080)
        second = await client.recv()
        assert set(assignments_of(second)) == {"web"}
        assert ports_of(assignments_of(second)["web"]) == [8080]

    run_with_server(body)


def test_delta_held_assignment_is_not_reported_removed() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("web")
        env.cache.hold(ENDPOINT_TYPE, ["web"])
        client = env.delta_ads()
        await client.request(ENDPOINT_TYPE, subscribe=["web"])
        first = await client.recv()
        assert not first.resources and list(first.removed_resources) == []
        await client.ack(first)
        env.update_assignment("web", 8080)
        second = await client.recv()
        assert [r.name for r in second.resources] == ["web"] and not second.removed_resources

    run_with_server(body)


def test_releasing_a_hold_without_a_resource_brings_the_placeholder_back() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("web")
        env.cache.hold(ENDPOINT_TYPE, ["web"])
        env.cache.hold(ENDPOINT_TYPE, [])
        client = env.ads()
        await client.request(ENDPOINT_TYPE, ["web"])
        assert ports_of(assignments_of(await client.recv())["web"]) == []

    run_with_server(body)
