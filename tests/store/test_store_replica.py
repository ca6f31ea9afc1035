"""StoreReplica in one process against a real etcd: two replicas, one leader that polls (a fake
local discovery) and publishes, both applying exactly what was published; unchanged endpoints are
not written again; deleted upstreams lose their keys."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gce_plugin import manifests
from gce_plugin.api import Endpoint, Status, Upstream
from gce_plugin.plugins.plugin import EndpointsUpdate, UpstreamEndpoints
from gce_plugin.store.layout import Layout
from gce_plugin.store.leader import PublishedEndpoints
from gce_plugin.store.local import EtcdCluster
from gce_plugin.store.replica import StoreReplica, publish, unpublish
from gce_plugin.store.statuses import decode_status
from gce_plugin.store.upstreams import UpstreamStore
from tests.store.store_testkit import client_for, eventually


def endpoint(name: str, address: str) -> Endpoint:
    e = Endpoint()
    e.metadata.name = name
    e.metadata.namespace = "default"
    e.address = address
    e.port = 8080
    return e


def upstream(name: str) -> Upstream:
    doc = {
        "apiVersion": "gloo.solo.io/v1",
        "kind": "Upstream",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "upstreamSpec": {
                "gce": {"instanceGroupName": name, "instanceGroupRegion": "us-central1-a", "projectId": "p"}
            }
        },
    }
    (found,) = manifests.upstreams_from_document(doc, "test")
    return found


def test_published_endpoints_round_trip_and_a_bad_value_is_refused() -> None:
    found = UpstreamEndpoints.of([endpoint("b", "10.0.0.2"), endpoint("a", "10.0.0.1")])
    assert unpublish(publish(found)) == found
    assert unpublish(publish(UpstreamEndpoints.of(()))).version == UpstreamEndpoints.of(()).version
    with pytest.raises(ValueError, match="does not match"):
        unpublish(PublishedEndpoints("other", publish(found).data))
    with pytest.raises(ValueError, match="truncated"):
        unpublish(PublishedEndpoints(found.version, publish(found).data[:-3]))


class FakePlane:
    """The control plane as a replica sees it: applied answers recorded; its discovery answers from
    ``answers`` (a queue), counted in ``polls``."""

    def __init__(self) -> None:
        self.applied: dict[tuple[str, str], str] = {}
        self.answers: asyncio.Queue[EndpointsUpdate] = asyncio.Queue()
        self.polling = False

    def apply_endpoints(self, update: EndpointsUpdate) -> None:
        for key in update.changed:
            self.applied[key] = update.upstreams[key].version

    async def discover(self, on_update: Callable[[EndpointsUpdate], None]) -> None:
        self.polling = True
        try:
            while True:
                on_update(await self.answers.get())
        finally:
            self.polling = False


def test_leader_publishes_follower_applies_and_deleted_upstreams_lose_their_keys(
    etcd1: EtcdCluster, prefix: str
) -> None:
    async def scenario() -> None:
        layout = Layout(prefix)
        async with client_for(etcd1) as ca, client_for(etcd1) as cb, client_for(etcd1) as admin:
            store = UpstreamStore(admin, layout)
            for name in ("web", "api"):
                await store.apply(upstream(name))
            replicas = [
                StoreReplica(ca, layout, "a", lease_ttl=2),
                StoreReplica(cb, layout, "b", lease_ttl=2),
            ]
            planes = [FakePlane(), FakePlane()]
            configs = [r.watch(1.0) for r in replicas]
            for config in configs:
                assert len(await anext(config)) == 2
            tasks = [asyncio.create_task(r.run(p)) for r, p in zip(replicas, planes, strict=True)]
            lead = await eventually("a leader", lambda: _leader(replicas))
            lead_plane, follower_plane = planes[replicas.index(lead)], planes[1 - replicas.index(lead)]
            await eventually("the leader polls", lambda: _true(lead_plane.polling))
            assert not follower_plane.polling

            web = UpstreamEndpoints.of([endpoint("web-1", "10.0.0.1")])
            api = UpstreamEndpoints.of([endpoint("api-1", "10.0.0.2")])
            await lead_plane.answers.put(
                EndpointsUpdate.first({("default", "web"): web, ("default", "api"): api})
            )
            want = {("default", "web"): web.version, ("default", "api"): api.version}
            await eventually("the follower applies them", lambda: _true(follower_plane.applied == want))
            # The leader serves what etcd holds, as every replica does (not its answers directly).
            await eventually("the leader applies them", lambda: _true(lead_plane.applied == want))
            lead.statuses_changed(
                {("default", "web"): Status(state=Status.Accepted, reported_by="gce-plugin")}
            )
            status_key = layout.status("default", "web")
            stored = await eventually("web's status", lambda: _value(admin, status_key))
            status = decode_status(stored)
            assert status is not None and status.state == Status.Accepted
            writes = lead.publisher.writes

            # Unchanged endpoints are not written again.
            await lead_plane.answers.put(
                EndpointsUpdate.first({("default", "web"): web, ("default", "api"): api})
            )
            await asyncio.sleep(0.5)
            assert lead.publisher.writes == writes

            # A deleted upstream loses its endpoints and status keys.
            await store.delete("default", "web")
            for config in configs:
                assert len(await anext(config)) == 1
            await eventually(
                "web's keys gone", lambda: _gone(admin, layout.endpoints("default", "web"), status_key)
            )
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for config in configs:
                await config.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


async def _leader(replicas: list[StoreReplica]) -> StoreReplica | None:
    leaders = [r for r in replicas if r.leadership is not None]
    return leaders[0] if len(leaders) == 1 else None


async def _true(value: bool) -> bool:
    return value


async def _value(client: object, key: bytes) -> bytes | None:
    reply = await client.range(key)  # type: ignore[attr-defined]
    return bytes(reply.kvs[0].value) if reply.kvs else None


async def _gone(client: object, *keys: bytes) -> bool:
    return all([await _value(client, key) is None for key in keys])
