"""One leader among the replicas, and writes only the leader can make.

Election (an etcd lease plus a transaction, as etcd's own ``concurrency.Election`` does): each
candidate holds a lease of ``ttl`` seconds and tries ``if mod_revision(leader key) == 0 then put
(leader key, identity, lease)`` (``put_if``: only while the key does not exist). The winner's
``Leadership`` remembers the key's create revision; the key disappears with the lease (the leader
died, or was paused past its TTL) and the next candidate's transaction then succeeds, creating the
key at a new revision.

Fencing: every write of the leader (``fenced``) is a transaction that first compares the leader
key's create revision with its own. A deposed leader's write (its key gone, or re-created by the
successor) fails the compare and is refused by etcd itself, whatever the deposed process believes;
``Deposed`` is raised and ``Leadership.lost`` set.

Publishing (``Publisher``): endpoints and statuses per upstream (layout.py), each with a content
version; only keys whose version changed are written, in fenced transactions of at most
``MAX_OPS`` operations (etcd's default --max-txn-ops is 128).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gce_plugin.api import Status
from gce_plugin.store.client import EtcdClient, EtcdError, EtcdUnavailable
from gce_plugin.store.etcdpb import rpc_pb2
from gce_plugin.store.layout import Layout, UpstreamRef
from gce_plugin.store.statuses import encode_status
from gce_plugin.store.upstreams import put_if

log = logging.getLogger(__name__)

DEFAULT_TTL = 15  # seconds, as Gloo's leader election
MAX_OPS = 100


class Deposed(Exception):
    """This process is not the leader (any more): its write was refused."""


@dataclass
class Leadership:
    identity: str
    key: bytes
    lease: int
    create_revision: int
    ttl: int
    lost: asyncio.Event = field(default_factory=asyncio.Event)

    def fence(self) -> rpc_pb2.Compare:
        """The compare every leader write carries: the leader key is still the one we created."""
        return rpc_pb2.Compare(
            key=self.key,
            target=rpc_pb2.Compare.CREATE,
            result=rpc_pb2.Compare.EQUAL,
            create_revision=self.create_revision,
        )


class Election:
    def __init__(
        self, client: EtcdClient, identity: str, *, layout: Layout | None = None, ttl: int = DEFAULT_TTL
    ) -> None:
        if ttl < 2:
            raise ValueError("lease TTL: at least 2 seconds")
        self.client = client
        self.identity = identity
        self.layout = layout or Layout()
        self.ttl = ttl
        self._keepalive: asyncio.Task[None] | None = None

    async def campaign(self, retry: float = 0.5) -> Leadership:
        """Wait until this candidate is the leader. Keeps its lease alive in the background until
        ``resign`` (or until the lease is lost: then ``lost`` is set)."""
        lease = await self.client.lease_grant(self.ttl)
        key = self.layout.leader
        while True:
            try:
                # A read first: while someone leads, waiting costs no raft proposal.
                held = (await self.client.range(key, keys_only=True)).kvs
                result = (
                    None if held else await self.client.txn(put_if(key, self.identity.encode(), 0, lease))
                )
            except EtcdUnavailable as err:
                log.warning("election: %s", err)
                await asyncio.sleep(retry)
                continue
            if result is not None and result.succeeded:
                leadership = Leadership(self.identity, key, lease, int(result.header.revision), self.ttl)
                self._keepalive = asyncio.create_task(self._keep(leadership))
                log.info("elected leader %s (revision %d)", self.identity, leadership.create_revision)
                return leadership
            # Someone else leads: refresh our own lease while we wait for the key to go.
            with contextlib.suppress(EtcdError):
                if await self.client.lease_keepalive(lease) <= 0:
                    lease = await self.client.lease_grant(self.ttl)
            await asyncio.sleep(retry)

    async def _keep(self, leadership: Leadership) -> None:
        """Refresh the lease every ttl/3; leadership is lost when etcd says the lease expired, or
        when no refresh succeeded for a whole TTL (etcd may have expired it meanwhile). A refresh
        never waits past that TTL (a call's retries over every member can take much longer)."""
        last_ok = time.monotonic()
        while not leadership.lost.is_set():
            await asyncio.sleep(leadership.ttl / 3)
            budget = max(0.1, leadership.ttl - (time.monotonic() - last_ok))
            try:
                async with asyncio.timeout(budget):
                    left = await self.client.lease_keepalive(leadership.lease)
            except (EtcdError, TimeoutError) as err:
                log.warning("leader lease refresh failed: %s", err)
                left = 1 if time.monotonic() - last_ok < leadership.ttl else 0
            else:
                last_ok = time.monotonic()
            if left <= 0:
                log.warning("leadership of %s lost: lease expired", leadership.identity)
                leadership.lost.set()

    async def resign(self, leadership: Leadership) -> None:
        """Give up leadership at once (the lease and the leader key go)."""
        leadership.lost.set()
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
            self._keepalive = None
        with contextlib.suppress(EtcdError):
            await self.client.lease_revoke(leadership.lease)

    async def leader(self) -> str | None:
        """The identity of the current leader, None when there is none."""
        reply = await self.client.range(self.layout.leader)
        return reply.kvs[0].value.decode() if reply.kvs else None


async def fenced(client: EtcdClient, leadership: Leadership, ops: Sequence[rpc_pb2.RequestOp]) -> int:
    """Apply ``ops`` if and only if ``leadership`` still holds: the revision written. Raises Deposed."""
    if leadership.lost.is_set():
        raise Deposed(f"{leadership.identity} is no longer the leader")
    reply = await client.txn(rpc_pb2.TxnRequest(compare=[leadership.fence()], success=list(ops)))
    if not reply.succeeded:
        leadership.lost.set()
        raise Deposed(f"{leadership.identity} is no longer the leader: write refused")
    return int(reply.header.revision)


@dataclass(frozen=True)
class PublishedEndpoints:
    """One upstream's discovered endpoints as the leader publishes them: ``data`` is the plugin's
    serialized answer, ``version`` its content version (equal data, equal version)."""

    version: str
    data: bytes

    def encode(self) -> bytes:
        return json.dumps(
            {"version": self.version, "data": base64.b64encode(self.data).decode()}, sort_keys=True
        ).encode()

    @classmethod
    def decode(cls, value: bytes) -> PublishedEndpoints:
        """Raises ValueError."""
        try:
            doc = json.loads(value)
            return cls(str(doc["version"]), base64.b64decode(doc["data"], validate=True))
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"not a published endpoints value: {err}") from None


class Publisher:
    """The leader's writes of endpoints and statuses: only what changed, always fenced."""

    def __init__(self, client: EtcdClient, layout: Layout | None = None) -> None:
        self.client = client
        self.layout = layout or Layout()
        self._written: dict[bytes, bytes] = {}  # key -> value as last written or read
        self.writes = 0  # keys put or deleted so far (for tests, metrics and the bench)

    async def load(self) -> None:
        """Learn what is stored now (a new leader does this first, so that it rewrites nothing
        its predecessor already published)."""
        self._written.clear()
        for directory in (self.layout.endpoints_dir, self.layout.statuses_dir):
            _, kvs = await self.client.range_all(directory)
            self._written.update((kv.key, kv.value) for kv in kvs)

    def stored(self, directory: bytes) -> set[UpstreamRef]:
        """The upstreams that have a key under ``directory`` (as written or loaded)."""
        refs = (self.layout.ref_under(directory, key) for key in self._written)
        return {ref for ref in refs if ref is not None}

    async def publish_endpoints(
        self, leadership: Leadership, changes: Mapping[UpstreamRef, PublishedEndpoints | None]
    ) -> int:
        """Write each upstream's endpoints (None: delete its key) when its version changed: the
        number of keys written. Raises Deposed."""
        desired = {
            self.layout.endpoints(*ref): (None if item is None else item.encode())
            for ref, item in changes.items()
        }
        return await self._write(leadership, desired)

    async def publish_statuses(
        self, leadership: Leadership, statuses: Mapping[UpstreamRef, tuple[Status, str] | None]
    ) -> int:
        """Write each upstream's (status, observed resourceVersion) when it changed (None: delete)."""
        desired = {
            self.layout.status(*ref): (None if item is None else encode_status(*item))
            for ref, item in statuses.items()
        }
        return await self._write(leadership, desired)

    async def _write(self, leadership: Leadership, desired: Mapping[bytes, bytes | None]) -> int:
        ops: list[tuple[bytes, bytes | None]] = [
            (key, value) for key, value in sorted(desired.items()) if self._written.get(key) != value
        ]
        for start in range(0, len(ops), MAX_OPS):
            chunk = ops[start : start + MAX_OPS]
            await fenced(self.client, leadership, [_op(key, value) for key, value in chunk])
            for key, value in chunk:
                if value is None:
                    self._written.pop(key, None)
                else:
                    self._written[key] = value
            self.writes += len(chunk)
        return len(ops)


def _op(key: bytes, value: bytes | None) -> rpc_pb2.RequestOp:
    if value is None:
        return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))
