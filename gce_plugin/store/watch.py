"""Revision-based watches on etcd that never hand out a partial or empty view.

``PrefixWatch`` lists a key prefix at one revision, then watches it from the next revision. When
the stream breaks (a member killed or cut off from its quorum) it moves to another member and
resumes from the last revision it saw, so no event is lost or seen twice; when that revision has
been compacted it lists again. Each state it yields is the complete content of the prefix at one
revision. While no member answers it yields nothing (the consumer keeps serving what it has) and
its ``health`` says "etcd unreachable" with the reason, until a member answers again.

``UpstreamWatch`` turns those states into upstream configs: a bad value is reported with its key
and the last good version of that upstream is kept (from this process's memory, else from the
key's earlier revisions that etcd still holds).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Generic, TypeVar

from gce_plugin.api import Upstream
from gce_plugin.manifests import ManifestError
from gce_plugin.store.client import Compacted, EtcdClient, EtcdError, prefix_end
from gce_plugin.store.etcdpb import kv_pb2
from gce_plugin.store.layout import Layout, UpstreamRef
from gce_plugin.store.leader import PublishedEndpoints
from gce_plugin.store.upstreams import decode_kv

log = logging.getLogger(__name__)

# How many earlier revisions of a bad key to look through for its last good version.
HISTORY_DEPTH = 8

T = TypeVar("T")


@dataclass(frozen=True)
class Health:
    reachable: bool
    reason: str
    since: float  # time.monotonic() of the change


@dataclass(frozen=True)
class PrefixState:
    """Every key under the prefix at ``revision``; ``changed``: keys put or deleted since the
    previous state (None after a full list: compare everything)."""

    revision: int
    entries: Mapping[bytes, kv_pb2.KeyValue]
    changed: frozenset[bytes] | None


class PrefixWatch:
    def __init__(
        self,
        client: EtcdClient,
        prefix: bytes,
        *,
        retry: float = 0.2,
        max_retry: float = 2.0,
        on_health: Callable[[Health], None] | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.retry = retry
        self.max_retry = max_retry
        self.on_health = on_health
        self.health = Health(False, "connecting", time.monotonic())
        self.relists = 0  # full lists done (1 at start, +1 per compaction)
        self.resumes = 0  # watch streams resumed after a break

    def _set_health(self, reachable: bool, reason: str) -> None:
        if reachable == self.health.reachable and reason == self.health.reason:
            return
        self.health = Health(reachable, reason, time.monotonic())
        (log.info if reachable else log.warning)(
            "etcd %s: %s", "reachable" if reachable else "unreachable", reason
        )
        if self.on_health is not None:
            self.on_health(self.health)

    async def states(self) -> AsyncIterator[PrefixState]:
        entries: dict[bytes, kv_pb2.KeyValue] = {}
        revision = 0
        delay = self.retry
        while True:
            try:
                if not revision:
                    revision, kvs = await self.client.range_all(self.prefix)
                    entries = {kv.key: kv for kv in kvs}
                    self.relists += 1
                    self._set_health(True, f"listed at revision {revision}")
                    yield PrefixState(revision, MappingProxyType(dict(entries)), None)
                async for reply in self.client.watch(
                    self.prefix, prefix_end(self.prefix), start_revision=revision + 1
                ):
                    self._set_health(True, f"watching via {self.client.current_endpoint}")
                    delay = self.retry
                    changed = _apply(entries, reply.events)
                    revision = max(revision, reply.events[-1].kv.mod_revision)
                    yield PrefixState(revision, MappingProxyType(dict(entries)), changed)
            except Compacted as err:
                log.warning("etcd watch from revision %d: %s; listing again", revision + 1, err)
                revision = 0
            except EtcdError as err:  # unavailable, or refused (auth, TLS): report, retry
                self._set_health(False, str(err))
                self.client.rotate()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry)
                if revision:
                    self.resumes += 1


def _apply(entries: dict[bytes, kv_pb2.KeyValue], events: Iterable[kv_pb2.Event]) -> frozenset[bytes]:
    changed = set()
    for event in events:
        changed.add(event.kv.key)
        if event.type == kv_pb2.Event.DELETE:
            entries.pop(event.kv.key, None)
        else:
            entries[event.kv.key] = event.kv
    return frozenset(changed)


class _Decoded(Generic[T]):
    """Each key's decoded value, kept while its mod_revision stays the same: a state decodes only
    the keys that changed since the last one."""

    def __init__(self, decode: Callable[[kv_pb2.KeyValue], T]) -> None:
        self._decode = decode
        self._by_key: dict[bytes, tuple[int, T]] = {}  # key -> (mod_revision, result)

    def get(self, kv: kv_pb2.KeyValue) -> T:
        cached = self._by_key.get(kv.key)
        if cached is not None and cached[0] == kv.mod_revision:
            return cached[1]
        result = self._decode(kv)
        self._by_key[kv.key] = (kv.mod_revision, result)
        return result

    def keep(self, entries: Mapping[bytes, kv_pb2.KeyValue]) -> list[bytes]:
        """Forgets the keys not in ``entries``; returns them."""
        gone = [key for key in self._by_key if key not in entries]
        for key in gone:
            del self._by_key[key]
        return gone


@dataclass(frozen=True)
class UpstreamConfig:
    """The upstreams to serve at ``revision``: every good key, and for each bad key its last good
    version when one is known (``stale``) and the error naming the key (``errors``)."""

    revision: int
    upstreams: Mapping[UpstreamRef, Upstream]
    errors: Mapping[UpstreamRef, ManifestError] = field(default_factory=dict)
    stale: frozenset[UpstreamRef] = frozenset()


class UpstreamWatch:
    def __init__(
        self,
        client: EtcdClient,
        layout: Layout | None = None,
        *,
        on_health: Callable[[Health], None] | None = None,
    ) -> None:
        self.client = client
        self.layout = layout or Layout()
        self.watch = PrefixWatch(client, self.layout.upstreams(), on_health=on_health)
        self._decoded = _Decoded(self._decode)
        self._last_good: dict[UpstreamRef, Upstream] = {}
        self._history_checked: dict[bytes, int] = {}  # key -> bad mod_revision already looked up

    @property
    def health(self) -> Health:
        return self.watch.health

    async def configs(self) -> AsyncIterator[UpstreamConfig]:
        async for state in self.watch.states():
            yield await self._config(state)

    async def _config(self, state: PrefixState) -> UpstreamConfig:
        upstreams: dict[UpstreamRef, Upstream] = {}
        errors: dict[UpstreamRef, ManifestError] = {}
        stale: set[UpstreamRef] = set()
        for key in self._decoded.keep(state.entries):
            self._history_checked.pop(key, None)
        for key, kv in state.entries.items():
            ref = self.layout.upstream_ref(key)
            if ref is None:
                continue  # deeper or odd keys under the directory are not upstreams
            result = self._decoded.get(kv)
            if isinstance(result, Upstream):
                upstreams[ref] = self._last_good[ref] = result
                continue
            errors[ref] = result
            good = self._last_good.get(ref) or await self._history_once(kv)
            if good is not None:
                upstreams[ref] = self._last_good[ref] = good
                stale.add(ref)
        for ref in [r for r in self._last_good if r not in upstreams]:
            del self._last_good[ref]  # deleted upstreams are gone, not kept
        return UpstreamConfig(
            state.revision, MappingProxyType(upstreams), MappingProxyType(errors), frozenset(stale)
        )

    def _decode(self, kv: kv_pb2.KeyValue) -> Upstream | ManifestError:
        try:
            return decode_kv(self.layout, kv)
        except ManifestError as err:
            log.error("upstream %s", err)
            return err

    async def _history_once(self, kv: kv_pb2.KeyValue) -> Upstream | None:
        """``_from_history``, asked once per bad revision of a key (not again on every state)."""
        if self._history_checked.get(kv.key) == kv.mod_revision:
            return None
        self._history_checked[kv.key] = kv.mod_revision
        return await self._from_history(kv)

    async def _from_history(self, kv: kv_pb2.KeyValue) -> Upstream | None:
        """The newest good version among the key's earlier revisions still in etcd (a process
        restarted after a bad edit serves what it served before)."""
        at = kv.mod_revision - 1
        for _ in range(HISTORY_DEPTH):
            if at < kv.create_revision:
                return None
            try:
                reply = await self.client.range(kv.key, revision=at)
            except (Compacted, EtcdError):
                return None
            if not reply.kvs:
                return None
            try:
                return decode_kv(self.layout, reply.kvs[0])
            except ManifestError:
                at = reply.kvs[0].mod_revision - 1
        return None


@dataclass(frozen=True)
class PublishedState:
    """The endpoints the leader published, per upstream, at ``revision``; keys whose value is not
    a published-endpoints value are listed in ``errors`` (and left out)."""

    revision: int
    endpoints: Mapping[UpstreamRef, PublishedEndpoints]
    errors: Mapping[UpstreamRef, str] = field(default_factory=dict)


class EndpointsWatch:
    """What a replica that does not poll reads: every upstream's published endpoints, complete at
    each revision, with PrefixWatch's resume and re-list."""

    def __init__(self, client: EtcdClient, layout: Layout | None = None) -> None:
        self.layout = layout or Layout()
        self.watch = PrefixWatch(client, self.layout.endpoints_dir)
        self._decoded = _Decoded(_decode_published)

    async def states(self) -> AsyncIterator[PublishedState]:
        directory = self.layout.endpoints_dir
        async for state in self.watch.states():
            endpoints: dict[UpstreamRef, PublishedEndpoints] = {}
            errors: dict[UpstreamRef, str] = {}
            self._decoded.keep(state.entries)
            for key, kv in state.entries.items():
                ref = self.layout.ref_under(directory, key)
                if ref is None:
                    continue
                result = self._decoded.get(kv)
                if isinstance(result, PublishedEndpoints):
                    endpoints[ref] = result
                else:
                    errors[ref] = result
            yield PublishedState(state.revision, MappingProxyType(endpoints), MappingProxyType(errors))


def _decode_published(kv: kv_pb2.KeyValue) -> PublishedEndpoints | str:
    try:
        return PublishedEndpoints.decode(kv.value)
    except ValueError as err:
        error = f"{kv.key.decode(errors='replace')}: {err}"
        log.error("published endpoints %s", error)
        return error
