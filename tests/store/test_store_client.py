"""The etcd client against a real etcd: unary calls, CAS, paging, leases."""

from __future__ import annotations

import asyncio

import pytest

from gce_plugin.store.client import EtcdClient, EtcdUnavailable, parse_store_url, prefix_end
from gce_plugin.store.etcdpb import rpc_pb2
from gce_plugin.store.local import EtcdCluster
from gce_plugin.store.upstreams import put_if
from tests.store.store_testkit import client_for


def test_parse_store_url() -> None:
    assert parse_store_url("etcd://127.0.0.1:2379,[::1]:2380,etcd-0:2379") == [
        ("127.0.0.1", 2379),
        ("::1", 2380),
        ("etcd-0", 2379),
    ]
    for bad in ("http://a:1", "etcd://", "etcd://a", "etcd://a:99999"):
        with pytest.raises(ValueError):
            parse_store_url(bad)


def test_prefix_end() -> None:
    assert prefix_end(b"a/") == b"a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff") == b"\0"


def test_put_range_and_compare_and_swap(etcd1: EtcdCluster, prefix: str) -> None:
    async def scenario() -> None:
        async with client_for(etcd1) as client:
            key = f"{prefix}/k".encode()
            created = await client.txn(put_if(key, b"one", 0))
            assert created.succeeded
            again = await client.txn(put_if(key, b"two", 0))
            assert not again.succeeded  # exists: the create-only CAS loses
            reply = await client.range(key)
            assert reply.kvs[0].value == b"one"
            at = reply.kvs[0].mod_revision
            assert (await client.txn(put_if(key, b"two", at))).succeeded
            assert not (await client.txn(put_if(key, b"three", at))).succeeded  # stale revision
            assert (await client.range(key)).kvs[0].value == b"two"

    asyncio.run(scenario())


def test_range_all_reads_every_page_at_one_revision(etcd1: EtcdCluster, prefix: str) -> None:
    async def scenario() -> None:
        async with client_for(etcd1) as client:
            for i in range(25):
                await client.put(f"{prefix}/d/{i:03}".encode(), b"x")
            await client.put(f"{prefix}/e".encode(), b"outside")
            revision, kvs = await client.range_all(f"{prefix}/d/".encode(), page=10)
            assert [kv.key for kv in kvs] == [f"{prefix}/d/{i:03}".encode() for i in range(25)]
            assert revision >= max(kv.mod_revision for kv in kvs)

    asyncio.run(scenario())


def test_lease_expires_with_its_keys(etcd1: EtcdCluster, prefix: str) -> None:
    async def scenario() -> None:
        async with client_for(etcd1) as client:
            lease = await client.lease_grant(5)
            assert 0 < await client.lease_keepalive(lease) <= 5
            await client.put(f"{prefix}/leased".encode(), b"v", lease=lease)
            await client.lease_revoke(lease)
            assert not (await client.range(f"{prefix}/leased".encode())).kvs
            assert await client.lease_keepalive(lease) <= 0

    asyncio.run(scenario())


def test_nothing_listening_is_unavailable_naming_every_endpoint() -> None:
    from gce_plugin.localstack import free_port

    ports = [free_port(), free_port()]

    async def scenario() -> None:
        async with EtcdClient([("127.0.0.1", p) for p in ports], timeout=1.0) as client:
            with pytest.raises(EtcdUnavailable) as err:
                await client.range(b"k")
            for port in ports:
                assert f"127.0.0.1:{port}" in str(err.value)

    asyncio.run(scenario())


def test_unary_calls_move_to_a_live_member(etcd3: EtcdCluster) -> None:
    async def scenario() -> None:
        async with client_for(etcd3) as client:
            await client.put(b"k", b"before")
            assert client.current_endpoint == etcd3.endpoints[0]
            etcd3.kill(0)
            await client.put(b"k", b"after")  # served by another member
            assert client.current_endpoint != etcd3.endpoints[0]
            assert (await client.range(b"k")).kvs[0].value == b"after"

    asyncio.run(scenario())


class _ReplyLost(EtcdClient):
    """Applies each transaction, then answers as the retry on another member would: compare failed."""

    async def txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        await super().txn(request)
        return rpc_pb2.TxnResponse(succeeded=False)


def test_apply_whose_reply_was_lost_is_not_a_conflict(etcd1: EtcdCluster, prefix: str) -> None:
    from gce_plugin.hostport import parse_host_port
    from gce_plugin.store.layout import Layout
    from gce_plugin.store.upstreams import Conflict, UpstreamStore
    from tests.store.test_store_codec import _upstream

    async def scenario() -> None:
        client = _ReplyLost([parse_host_port(e) for e in etcd1.endpoints])
        async with client:
            store = UpstreamStore(client, Layout(prefix))
            assert (await store.apply(_upstream()))[0] == "created"
            changed = _upstream()
            changed.upstream_spec.use_http2 = False
            assert (await store.apply(changed))[0] == "configured"
            # A real conflict still is one: someone else's value is there.
            other = _upstream()
            other.metadata.resource_version = "1"
            with pytest.raises(Conflict):
                await store.apply(other)

    asyncio.run(scenario())
