"""Leader election and fenced writes against real etcd: one leader, failover when its lease goes,
a deposed leader's writes refused by etcd, only changed keys published."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from gce_plugin.api import Status
from gce_plugin.localstack import Process, wait_for
from gce_plugin.store.etcdpb import rpc_pb2
from gce_plugin.store.layout import Layout
from gce_plugin.store.leader import Deposed, Election, PublishedEndpoints, Publisher, fenced
from gce_plugin.store.local import EtcdCluster
from gce_plugin.store.statuses import decode_status
from gce_plugin.store.watch import EndpointsWatch, PublishedState
from tests.store.store_testkit import client_for, eventually


def test_one_leader_then_the_next_when_the_lease_goes(etcd1: EtcdCluster, prefix: str) -> None:
    async def scenario() -> None:
        layout = Layout(prefix)
        async with client_for(etcd1) as a_client, client_for(etcd1) as b_client:
            a = Election(a_client, "a", layout=layout, ttl=3)
            b = Election(b_client, "b", layout=layout, ttl=3)
            lead_a = await a.campaign()
            waiting = asyncio.create_task(b.campaign(retry=0.1))
            await asyncio.sleep(4)  # longer than the TTL: a keeps its lease alive, b waits
            assert not waiting.done()
            assert await b.leader() == "a"
            await a.resign(lead_a)
            lead_b = await asyncio.wait_for(waiting, 10)
            assert await a.leader() == "b"
            assert lead_b.create_revision > lead_a.create_revision
            await b.resign(lead_b)

    asyncio.run(scenario())


def test_a_deposed_leaders_writes_are_refused(etcd1: EtcdCluster, prefix: str) -> None:
    """The leader is paused past its TTL (its keep-alive stops), a successor is elected; when the
    old leader resumes, etcd refuses its writes even though it still believes it leads."""

    async def scenario() -> None:
        layout = Layout(prefix)
        async with client_for(etcd1) as a_client, client_for(etcd1) as b_client:
            a = Election(a_client, "a", layout=layout, ttl=2)
            lead_a = await a.campaign()
            assert a._keepalive is not None
            a._keepalive.cancel()  # as if the process were stopped: no more refreshes
            with contextlib.suppress(asyncio.CancelledError):
                await a._keepalive
            b = Election(b_client, "b", layout=layout, ttl=2)
            lead_b = await asyncio.wait_for(b.campaign(retry=0.1), 15)
            assert not lead_a.lost.is_set()  # a has not noticed
            key = f"{prefix}/fenced".encode()
            put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"from a"))
            with pytest.raises(Deposed):
                await fenced(a_client, lead_a, [put])
            assert lead_a.lost.is_set()
            assert not (await a_client.range(key)).kvs
            put_b = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"from b"))
            await fenced(b_client, lead_b, [put_b])
            assert (await a_client.range(key)).kvs[0].value == b"from b"
            await b.resign(lead_b)

    asyncio.run(scenario())


def test_a_stopped_leader_process_is_fenced(etcd3: EtcdCluster) -> None:
    """The only etcd member the leader can reach is frozen (kill -STOP) past the TTL: the leader
    cannot refresh its lease and says it lost leadership, a candidate that reaches the other
    members takes over, and once the member thaws the old leader's writes are refused."""

    async def scenario() -> None:
        async with client_for(etcd3, [0], timeout=1.0) as a_client, client_for(etcd3, [1, 2]) as b_client:
            a = Election(a_client, "a", ttl=2)
            lead_a = await a.campaign()
            etcd3.kill(0, signal.SIGSTOP)
            try:
                b = Election(b_client, "b", ttl=2)
                lead_b = await asyncio.wait_for(b.campaign(retry=0.1), 20)

                async def a_knows() -> bool:
                    return lead_a.lost.is_set()

                await eventually("the old leader notices", a_knows, timeout=10)
            finally:
                etcd3.kill(0, signal.SIGCONT)
            with pytest.raises(Deposed):
                await fenced(a_client, lead_a, [])
            assert await b.leader() == "b"
            await b.resign(lead_b)

    asyncio.run(scenario())


def test_publisher_writes_only_what_changed_and_a_new_leader_rewrites_nothing(
    etcd1: EtcdCluster, prefix: str
) -> None:
    async def scenario() -> None:
        layout = Layout(prefix)
        async with client_for(etcd1) as client:
            election = Election(client, "a", layout=layout, ttl=5)
            lead = await election.campaign()
            publisher = Publisher(client, layout)
            await publisher.load()
            answers = {
                ("default", f"u{i}"): PublishedEndpoints(f"v{i}", f"data {i}".encode()) for i in range(150)
            }
            assert await publisher.publish_endpoints(lead, answers) == 150  # two fenced txns
            answers[("default", "u7")] = PublishedEndpoints("v7b", b"changed")
            assert await publisher.publish_endpoints(lead, answers) == 1
            assert await publisher.publish_endpoints(lead, {("default", "u8"): None}) == 1
            stored = await client.range(layout.endpoints("default", "u7"))
            assert PublishedEndpoints.decode(stored.kvs[0].value) == PublishedEndpoints("v7b", b"changed")
            assert not (await client.range(layout.endpoints("default", "u8"))).kvs
            accepted = Status(state=Status.Accepted, reported_by="gce-plugin")
            assert await publisher.publish_statuses(lead, {("default", "u1"): (accepted, "12")}) == 1
            assert await publisher.publish_statuses(lead, {("default", "u1"): (accepted, "12")}) == 0
            status = decode_status((await client.range(layout.status("default", "u1"))).kvs[0].value)
            assert status == accepted
            await election.resign(lead)

            # A successor learns what is stored and writes nothing for the same answers.
            successor = Election(client, "b", layout=layout, ttl=5)
            lead_b = await successor.campaign()
            fresh = Publisher(client, layout)
            await fresh.load()
            del answers[("default", "u8")]
            assert await fresh.publish_endpoints(lead_b, answers) == 0
            assert fresh.writes == 0
            await successor.resign(lead_b)

    asyncio.run(scenario())


def test_published_endpoints_value_is_checked() -> None:
    item = PublishedEndpoints("v1", b"\x00\x01bytes")
    assert PublishedEndpoints.decode(item.encode()) == item
    for bad in (b"", b"{}", b'{"version": "1", "data": "!!"}', b"\xff"):
        with pytest.raises(ValueError):
            PublishedEndpoints.decode(bad)


def test_replicas_read_what_the_leader_published(etcd1: EtcdCluster, prefix: str) -> None:
    async def scenario() -> None:
        layout = Layout(prefix)
        async with client_for(etcd1) as client:
            election = Election(client, "leader", layout=layout, ttl=5)
            lead = await election.campaign()
            publisher = Publisher(client, layout)
            await publisher.load()
            first = {
                ("default", "web"): PublishedEndpoints("1", b"w1"),
                ("default", "api"): PublishedEndpoints("1", b"a1"),
            }
            await publisher.publish_endpoints(lead, first)
            await client.put(layout.endpoints("default", "junk"), b"not json")

            replica = EndpointsWatch(client_for(etcd1), layout)
            states: list[PublishedState] = []

            async def consume() -> None:
                async for state in replica.states():
                    states.append(state)

            task = asyncio.create_task(consume())
            try:

                async def listed() -> bool:
                    return bool(states)

                await eventually("first state", listed)
                assert dict(states[0].endpoints) == first
                assert "not a published endpoints value" in states[0].errors[("default", "junk")]
                await publisher.publish_endpoints(lead, {("default", "web"): PublishedEndpoints("2", b"w2")})

                async def updated() -> bool:
                    return states[-1].endpoints[("default", "web")].version == "2"

                await eventually("the update", updated)
                assert states[-1].endpoints[("default", "api")] == first[("default", "api")]
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await replica.watch.client.close()
            await election.resign(lead)

    asyncio.run(scenario())


def test_kill_stop_of_the_leader_process_past_its_ttl_then_cont_its_writes_are_refused(
    etcd1: EtcdCluster, prefix: str, tmp_path: Path
) -> None:
    repo = Path(__file__).resolve().parents[2]
    child = Process(
        "leader-child",
        [sys.executable, "-m", "tests.store.leader_child", ",".join(etcd1.endpoints), prefix, "old"],
        tmp_path,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        wait_for("the child leads and writes", lambda: "wrote 3" in child.log_text(), timeout=20)
        child.proc.send_signal(signal.SIGSTOP)

        async def take_over() -> int:
            async with client_for(etcd1) as client:
                successor = Election(client, "new", layout=Layout(prefix), ttl=5)
                lead = await asyncio.wait_for(successor.campaign(retry=0.1), 20)
                return lead.create_revision

        elected_at = asyncio.run(take_over())
        child.proc.send_signal(signal.SIGCONT)
        assert child.proc.wait(20) == 3, child.log_text()
        assert "deposed" in child.log_text()

        async def old_writes() -> list[int]:
            async with client_for(etcd1) as client:
                _, kvs = await client.range_all(f"{prefix}/writes/old/".encode())
                return [kv.mod_revision for kv in kvs]

        revisions = asyncio.run(old_writes())
        assert len(revisions) >= 3
        assert max(revisions) < elected_at  # nothing the old leader wrote landed after the takeover
    finally:
        child.stop()
