"""Upstreams in etcd: list, read, apply (create or update, compare-and-swap) and delete.

Every write is a transaction that compares the key's ``mod_revision`` (0 for "does not exist") with
the one the writer last saw, the way solo-kit's KV client writes with Consul's CAS: a concurrent
edit is never overwritten, the loser gets ``Conflict``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from gce_plugin.api import Status, Upstream
from gce_plugin.manifests import ManifestError
from gce_plugin.store import codec
from gce_plugin.store.client import EtcdClient
from gce_plugin.store.etcdpb import kv_pb2, rpc_pb2
from gce_plugin.store.layout import Layout, UpstreamRef
from gce_plugin.store.statuses import decode_status

T = TypeVar("T")

Outcome = Literal["created", "configured", "unchanged"]


class Conflict(Exception):
    """A compare-and-swap write lost: the key is not at the revision the writer expected."""


@dataclass(frozen=True)
class Listing:
    """Every upstream key read at one ``revision``: the good ones in key order, one error per bad
    key (naming it), and the published status of each upstream that has one."""

    revision: int
    upstreams: list[Upstream]
    errors: list[ManifestError]
    statuses: dict[UpstreamRef, Status] = field(default_factory=dict)


def decode_kv(layout: Layout, kv: kv_pb2.KeyValue) -> Upstream:
    """The upstream of one key-value of the upstream directory. Raises ManifestError."""
    key = kv.key.decode(errors="replace")
    ref = layout.upstream_ref(kv.key)
    if ref is None:
        raise ManifestError(
            key, "not an upstream key: want <prefix>/gloo.solo.io/v1/Upstream/<namespace>/<name>"
        )
    return codec.decode_upstream(key, kv.value, kv.mod_revision, ref)


def put_if(key: bytes, value: bytes, mod_revision: int, lease: int = 0) -> rpc_pb2.TxnRequest:
    """A transaction that puts ``value`` at ``key`` (on ``lease``, if any) only if the key is at
    ``mod_revision`` (0: absent)."""
    return rpc_pb2.TxnRequest(
        compare=[
            rpc_pb2.Compare(
                key=key,
                target=rpc_pb2.Compare.MOD,
                result=rpc_pb2.Compare.EQUAL,
                mod_revision=mod_revision,
            )
        ],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))],
    )


class UpstreamStore:
    def __init__(self, client: EtcdClient, layout: Layout | None = None) -> None:
        self.client = client
        self.layout = layout or Layout()

    async def list(self, namespace: str | None = None, *, with_statuses: bool = False) -> Listing:
        revision, kvs = await self.client.range_all(self.layout.upstreams(namespace))
        upstreams: list[Upstream] = []
        errors: list[ManifestError] = []
        for kv in kvs:
            try:
                upstreams.append(decode_kv(self.layout, kv))
            except ManifestError as err:
                errors.append(err)
        statuses: dict[UpstreamRef, Status] = {}
        if with_statuses:
            statuses = await self._statuses(revision)
        return Listing(revision, upstreams, errors, statuses)

    async def _statuses(self, revision: int) -> dict[UpstreamRef, Status]:
        _, kvs = await self.client.range_all(self.layout.statuses_dir, revision=revision)
        statuses: dict[UpstreamRef, Status] = {}
        for kv in kvs:
            ref = self.layout.ref_under(self.layout.statuses_dir, kv.key)
            status = decode_status(kv.value)
            if ref is not None and status is not None:
                statuses[ref] = status
        return statuses

    async def get(self, namespace: str, name: str) -> Upstream | None:
        """The upstream, None when absent. Raises ManifestError when its value is bad."""
        reply = await self.client.range(self.layout.upstream(namespace, name))
        return decode_kv(self.layout, reply.kvs[0]) if reply.kvs else None

    async def apply(self, upstream: Upstream) -> tuple[Outcome, int]:
        """Create or update ``upstream``: (what happened, its resourceVersion now). When
        ``metadata.resourceVersion`` is set the write happens only at that revision (solo-kit's
        optimistic concurrency); otherwise at the revision just read. Raises Conflict."""
        meta = upstream.metadata
        key = self.layout.upstream(meta.namespace, meta.name)
        reply = await self.client.range(key)
        current = reply.kvs[0] if reply.kvs else None
        at = current.mod_revision if current is not None else 0
        if meta.resource_version:
            wanted = _revision(meta.resource_version)
            if wanted != at:
                raise Conflict(
                    f"upstream {meta.namespace}/{meta.name}: resourceVersion {wanted} is stale "
                    f"(stored: {at or 'absent'})"
                )
        value = codec.encode_upstream(upstream)
        if current is not None and _same(self.layout, current, upstream):
            return "unchanged", at
        result = await self.client.txn(put_if(key, value, at))
        outcome: Outcome = "configured" if current is not None else "created"
        if result.succeeded:
            return outcome, int(result.header.revision)
        # The compare failed. Either someone else wrote in between, or our own write landed and its
        # reply was lost to a member failure, and the client sent it again to another member.
        now = (await self.client.range(key)).kvs
        if now and now[0].value == value and now[0].mod_revision > at:
            return outcome, int(now[0].mod_revision)
        raise Conflict(f"upstream {meta.namespace}/{meta.name} changed while being applied: try again")

    async def delete(self, namespace: str, name: str) -> bool:
        """Delete the upstream: False when there was none."""
        reply = await self.client.delete(self.layout.upstream(namespace, name))
        return reply.deleted > 0


async def closing(store: UpstreamStore, call: Awaitable[T]) -> T:
    """``call``'s result, the store's client closed after it: a command's one use of the store."""
    try:
        return await call
    finally:
        await store.client.close()


def _same(layout: Layout, current: kv_pb2.KeyValue, upstream: Upstream) -> bool:
    """The stored value says the same as ``upstream`` (whoever wrote it, however formatted)."""
    try:
        return codec.same_content(decode_kv(layout, current), upstream)
    except ManifestError:
        return False


def _revision(value: str) -> int:
    if not value.isdigit():
        raise Conflict(f"resourceVersion {value!r}: an etcd store wants a revision number")
    return int(value)
