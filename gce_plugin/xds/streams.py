"""The xDS protocol on one stream, without gRPC: subscriptions, nonces, ACK/NACK, what to send next.

A stream holds one subscription per resource type. Requests update subscriptions (always, even with a
stale nonce, as the spec asks) and ACK/NACK the latest response of their type (only with the latest
nonce). Responses are decided lazily by ``responses()``: it folds the cache's change log into each
subscription and builds a response from the cached wire encodings.

Flow control: each type has at most one response in flight; the next waits for the client's ACK or
NACK of it (as go-control-plane does). Changes meanwhile coalesce, a client that stops reading costs
one pending response per type, and a NACKed version is never pushed again (the cursor has moved on;
only a later change is sent). On ADS, types are pushed in order (CDS, EDS, LDS, RDS): a type whose
update is waiting for an ACK holds back the later types, so an assignment never overtakes the cluster
update it belongs to; except the names a SotW client requested and never got (the assignments of
clusters it is warming): Envoy ACKs a cluster update only once its new clusters are warm, so holding
those back would stall both types until Envoy's initial fetch timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Set
from typing import Any

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse
from google.protobuf.message import Message

from gce_plugin import metrics
from gce_plugin.redact import clip
from gce_plugin.xds.cache import Changes, SnapshotCache
from gce_plugin.xds.callbacks import NO_CALLBACKS, Callbacks
from gce_plugin.xds.resources import ResourceType
from gce_plugin.xds.security import (
    DEFAULT_MAX_NAMES,
    DEFAULT_MAX_UNKNOWN_NAMES,
    LogBudget,
    RequestRefused,
    names_over,
)

log = logging.getLogger(__name__)

WILDCARD = "*"


def encode(message: Message) -> bytes:
    return message.SerializeToString()


def nonce_field(nonce: str) -> bytes:
    """The ``nonce`` field (5, in both DiscoveryResponse and DeltaDiscoveryResponse) as protobuf
    encodes it. A message's fields may come in any order and concatenated encodings parse as one
    message, so a response is the shared bytes of everything else followed by this: nothing is
    re-encoded per stream."""
    value = nonce.encode()
    size = len(value)
    out = bytearray(b"\x2a")
    while size >= 0x80:
        out.append((size & 0x7F) | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + value


_NOT_NAMES = ("version_info", "node", "response_nonce", "error_detail", "type_url")


def names_key(request: Message) -> int:
    """A key of a SotW request's ``resource_names`` as encoded (names and order): the hash of the
    request's encoding without its other fields, made in C without a string per name. Equal keys
    from one stream's requests are taken as the same list: bytes hashes are SipHash with a key
    random per process, so a client cannot aim at a collision (2**-64 by chance)."""
    names = type(request)()
    names.CopyFrom(request)
    for field in _NOT_NAMES:
        names.ClearField(field)
    return hash(names.SerializeToString())


class _Wake:
    """A flag one task waits on (the stream's writer), as ``asyncio.Event`` for a single waiter but
    without its per-wait bookkeeping (a waiter list, a running-loop look-up): every open stream is
    woken on every change."""

    __slots__ = ("_loop", "_waiter", "flag")

    def __init__(self) -> None:
        self.flag = False
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def set(self) -> None:
        self.flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self.flag = False

    async def wait(self) -> None:
        if self.flag:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._waiter = waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None


# Unknown type URLs a stream remembers (to warn once each); beyond, only the log budget applies.
_MAX_IGNORED_TYPES = 16


class NameSet(frozenset[str]):
    """The names a SotW subscription asks for. Streams asking for the same names share one set (every
    Envoy of a fleet names every cluster's assignment): a stream costs a reference, not a copy of
    thousands of names."""


# hash -> a live NameSet; weak, so a set goes when its last stream does. A hash collision only
# means that set is not shared.
_NAME_SETS: weakref.WeakValueDictionary[int, NameSet] = weakref.WeakValueDictionary()


def shared_names(names: Iterable[str]) -> NameSet:
    candidate = NameSet(names)
    key = hash(candidate)
    found = _NAME_SETS.get(key)
    if found is not None and found == candidate:
        return found
    _NAME_SETS[key] = candidate
    return candidate


class Versions(dict[str, str]):
    """What a reconnecting delta client says it has (its first request's initial_resource_versions),
    kept until its first response. Clients that had the same state (a fleet coming back after a
    control-plane restart) share one map, as ``NameSet``: never updated in place."""


_VERSIONS: weakref.WeakValueDictionary[int, Versions] = weakref.WeakValueDictionary()


def shared_versions(versions: Mapping[str, str]) -> Mapping[str, str]:
    if not versions:
        return {}
    candidate = Versions(versions)
    key = sum(map(hash, candidate.items()))  # order-independent, and builds no second table
    found = _VERSIONS.get(key)
    if found is not None and found == candidate:
        return found
    _VERSIONS[key] = candidate
    return candidate


class SendGate:
    """Bounds how many full sends (a stream's initial or resync response, a state-of-the-world type's
    whole set) are being built and written at once, across all streams. Each in-flight full response
    is megabytes at scale (its bytes, and gRPC's copy until the client has read it), so a thousand
    clients syncing at the same moment (a reconnect storm) would otherwise hold a thousand of them.
    Waiters are served in arrival order (no stream is starved); a slot held longer than ``hold``
    seconds (a client that does not read) is given back so the others move on. The hold is long: a
    healthy but busy client can take seconds to take in 7.5 MB, and every slot given back early
    lets one more full response into memory (storm of 1,000 clients: peak 2.6 GiB with 5 s, 1.9
    GiB with 60 s)."""

    def __init__(self, limit: int = 16, hold: float = 60.0) -> None:
        self.limit = limit
        self.hold = hold
        self._free = asyncio.Semaphore(limit)  # FIFO: waiters get a slot in the order they asked
        self.waited = 0  # sends that had to wait for a slot (for tests and benchmarks)
        self.overheld = 0  # slots given back after ``hold`` seconds, their write still going on
        self.in_use = 0  # slots taken now
        self.most = 0  # the most slots ever taken at once (never above ``limit``)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        release = await self.take()
        try:
            yield
        finally:
            release()

    async def take(self) -> Callable[[], None]:
        """Wait for a slot; returns what gives it back (calling it again does nothing)."""
        if self._free.locked():
            self.waited += 1
        await self._free.acquire()
        self.in_use += 1
        self.most = max(self.most, self.in_use)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                timer.cancel()
                self.in_use -= 1
                self._free.release()

        def overheld() -> None:
            self.overheld += 1
            release()

        timer = asyncio.get_running_loop().call_later(self.hold, overheld)
        return release


class FellBehind(Exception):
    """A delta stream missed changes that the cache no longer remembers; the client must reconnect
    (its initial_resource_versions then tell exactly what to send)."""


class _Subscription:
    """One resource type on one stream: what the client asked for and what is still to send."""

    def __init__(self, rtype: ResourceType, cursor: int) -> None:
        self.rtype = rtype
        self.type_url = rtype.type_url
        self.wildcard = False
        self.names: Set[str] = frozenset()
        self.ever_named = False  # once a name was subscribed, an empty list no longer means "*"
        self.cursor = cursor  # cache change-log position folded in so far
        self.dirty: set[str] = set()  # names to send again (changed, or newly subscribed)
        self.everything = True  # reconsider every subscribed name (first response, wildcard added)
        self.first = True  # the first request is answered even when there is nothing to send
        self.nonce = ""  # of the latest response of this type
        self.sent_version = ""  # type version of the latest response (for NACK logs)
        self.awaiting_ack = False
        self.since: float | None = None  # when the oldest unsent relevant change happened
        # This type's metric children, looked up once (a labels() look-up per push costs a lock).
        self.pushes = metrics.XDS_PUSHES.labels(self.type_url)
        self.push_latency = metrics.XDS_PUSH_LATENCY.labels(self.type_url)

    def pending(self) -> bool:
        return self.first or self.everything or bool(self.dirty)

    def full_send(self) -> bool:
        """The next response covers every subscribed resource (bounded by the ``SendGate``)."""
        return self.everything or (self.rtype.full_state and self.pending())

    def fold(self, changes: Changes) -> None:
        self.cursor = changes.seq
        if changes.names is None:
            self._fell_behind()
            self._note(changes.since)
            return
        if not changes.names:
            return
        relevant = changes.names if self.wildcard else changes.names & self.names
        if relevant:
            self._mark(relevant)
            self._note(changes.since)

    def _fell_behind(self) -> None:
        self.everything = True

    def _mark(self, names: Iterable[str]) -> None:
        self.dirty.update(names)

    def _note(self, since: float | None) -> None:
        if since is not None and (self.since is None or since < self.since):
            self.since = since

    def take_since(self) -> float | None:
        since, self.since = self.since, None
        return since

    def _sent(self) -> None:
        self.first = False
        self.everything = False
        self.dirty.clear()


class SotwSubscription(_Subscription):
    def __init__(self, rtype: ResourceType, cursor: int) -> None:
        super().__init__(rtype, cursor)
        # Newly requested names not answered with a resource yet (held ones): a client warming a
        # cluster waits for them before it ACKs the cluster update, so they are never held back.
        # Never updated in place: after a first request it is ``names`` itself (see ``_await``).
        self.awaited: Set[str] = frozenset()
        self.names_key: int | None = None  # of the latest request's names (see update_names)

    def update_names(self, requested: Iterable[str], key: int | None = None) -> None:
        """Apply a request's ``resource_names``. ``key`` (see ``names_key``), if given, identifies the
        list as encoded: the list the previous request had, in the same order, changes nothing, and
        is known to without turning every name into a string and a set (every SotW ACK lists them
        all, and a fan-out is an ACK per stream)."""
        if key is not None and key == self.names_key:
            return
        self.names_key = key
        names = set(requested)
        if self.ever_named and not self.wildcard and names == self.names and WILDCARD not in names:
            return  # the same names again (every SotW ACK lists them all): nothing changes
        if not self.ever_named and not names:
            wildcard = True  # legacy: never named anything, so an empty list means "*"
        else:
            self.ever_named = True
            wildcard = WILDCARD in names
            names.discard(WILDCARD)
        if wildcard and not self.wildcard:
            self.everything = True
        old, self.names = self.names, shared_names(names)
        del names  # the request's own strings: only the shared set's are kept
        # Newly requested names are sent even if sent before (the client may have dropped them).
        added = self.names - old if old else self.names
        if added:
            self._mark(added)
        if added and not self.rtype.full_state:
            self._await(added)  # unsubscribed ones are dropped by build_awaited
        self.wildcard = wildcard

    def _await(self, added: Set[str]) -> None:
        if not self.awaited and len(added) == len(self.names):
            # Every name is new (a first request): the shared set itself, not a copy. A copy is a
            # table of 10,000 names per stream that waits for the SendGate in a reconnect storm, and
            # it kept the request's own strings alive (~1.1 MB per waiting stream).
            self.awaited = self.names
        else:
            self.awaited = self.awaited | added

    def _mark(self, names: Iterable[str]) -> None:
        if self.everything:
            # The next response covers every subscribed name anyway. An initial request naming
            # 10,000 assignments would otherwise copy them into a set of its own per stream (~0.5 MB,
            # held while the stream waits for the SendGate: a reconnect storm's peak).
            return
        if self.rtype.full_state:
            self.dirty.add(WILDCARD)  # any relevant change resends the whole set: a flag is enough
        else:
            self.dirty.update(names)

    def drop_names(self, names: Set[str]) -> None:
        """Stop answering for ``names`` (refused at intake; a later request may name them again)."""
        self.names_key = None  # the same request again is looked at again
        self.names = shared_names(self.names - names)
        self.dirty.difference_update(names)
        if self.awaited:
            self.awaited = self.awaited - names

    def build(self, cache: SnapshotCache) -> bytes | None:
        """The next response without its nonce, or None if there is nothing to send."""
        if not self.pending():
            return None
        type_url = self.type_url
        if self.rtype.full_state:
            if self.wildcard:
                response: bytes | None = cache.full_state_response(type_url)
            else:
                response = self._join(cache, sorted(self.names)) + cache.sotw_tail(type_url)
        else:
            response = self._build_some(cache)
        self._sent()
        if response is not None:
            self.sent_version = cache.version(type_url)
        return response

    def _build_some(self, cache: SnapshotCache) -> bytes | None:
        """The response of a type whose responses hold only what changed (EDS, RDS), or None."""
        type_url = self.type_url
        if self.everything and self.wildcard:
            every = self.names | cache.entries(type_url).keys()
            body = self._join(cache, every)
            self._answered(cache, every)
            return body + cache.sotw_tail(type_url) if body or self.first else None
        # Shared by every stream asking for the same names at this version (a fleet's initial syncs,
        # a change fanned out to every client): one join and one response but for the nonce, not one
        # per stream.
        names = self.names if self.everything else self.dirty
        frozen = names if isinstance(names, frozenset) else frozenset(names)
        self._answered(cache, names)
        if not self.first and not cache.sotw_body(type_url, frozen):
            return None
        return cache.sotw_response(type_url, frozen)

    def _answered(self, cache: SnapshotCache, names: Set[str]) -> None:
        """A response answered ``names``: they are awaited no more, unless held (nothing was sent)."""
        if self.awaited:
            self.awaited = {n for n in self.awaited if n not in names or cache.is_held(self.type_url, n)}

    def build_awaited(self, cache: SnapshotCache) -> bytes | None:
        """While held back: a response with just the awaited names that can be answered now (their
        resource arrived), or None. Other changes stay pending."""
        if self.awaited is not self.names:
            self.awaited = self.awaited & self.names
        ready = sorted(n for n in self.awaited if cache.entry_or_placeholder(self.type_url, n) is not None)
        if not ready:
            return None
        body = self._join(cache, ready)
        self.awaited = self.awaited - set(ready)
        self.dirty.difference_update(ready)
        self.first = False
        self.sent_version = cache.version(self.type_url)
        return body + cache.sotw_tail(self.type_url)

    def _join(self, cache: SnapshotCache, names: Iterable[str]) -> bytes:
        parts = []
        for name in names:
            entry = cache.entry_or_placeholder(self.type_url, name)
            if entry is not None:
                parts.append(entry.sotw_field)
        return b"".join(parts)


class DeltaSubscription(_Subscription):
    def __init__(self, rtype: ResourceType, cursor: int) -> None:
        super().__init__(rtype, cursor)
        self.names: set[str] = set()
        # What the client said it already has (first request only): not resent at the same version.
        self.initial: Mapping[str, str] = {}

    def update(self, subscribe: Iterable[str], unsubscribe: Iterable[str]) -> None:
        subscribe = list(subscribe)
        unsubscribe = list(unsubscribe)
        if not self.ever_named and not subscribe and WILDCARD not in unsubscribe:
            self.wildcard = True  # legacy: never subscribed to anything, so "*"
        for name in subscribe:
            self.ever_named = True
            if name == WILDCARD:
                if not self.wildcard:
                    self.wildcard = True
                    self.everything = True
            else:
                self.names.add(name)
                # Sent even if the client seems to have it (it may have forgotten), unless this is the
                # first request and initial_resource_versions says it has this version. While the
                # next response covers every name anyway, no per-stream copy (held while the stream
                # waits for the SendGate).
                if not self.everything:
                    self.dirty.add(name)
        for name in unsubscribe:
            self.ever_named = True
            if name == WILDCARD:
                self.wildcard = False
            elif name in self.names:
                self.names.discard(name)
                if self.wildcard:
                    # The client cannot tell whether the wildcard covers it: say so either way.
                    self.dirty.add(name)

    def drop_names(self, names: Set[str]) -> None:
        """Stop answering for ``names`` (refused at intake; a later request may name them again)."""
        self.names.difference_update(names)
        self.dirty.difference_update(names)

    def _fell_behind(self) -> None:
        raise FellBehind(f"{self.type_url}: missed changes the cache no longer holds")

    def _names_to_check(self, entries: Mapping[str, object]) -> set[str]:
        """Every name a full response considers, or only the ones changed since the last one."""
        if not self.everything:
            return self.dirty
        names: set[str] = set(self.names)
        names.update(self.initial)
        if self.wildcard:
            names.update(entries)
        names.update(self.dirty)
        return names

    def build(self, cache: SnapshotCache) -> bytes | None:
        if not self.pending():
            return None
        type_url = self.type_url
        entries = cache.entries(type_url)
        names = self._names_to_check(entries)
        parts: list[bytes] = []
        removed: list[str] = []
        for name in names:
            if name in self.names:
                entry = cache.entry_or_placeholder(type_url, name)
            elif self.wildcard:
                entry = entries.get(name)
            else:
                continue  # not subscribed
            if entry is None:
                if not cache.is_held(type_url, name):
                    removed.append(name)
            elif self.initial.get(name) != entry.version:
                parts.append(entry.delta_field)
        self.initial = {}
        if not parts and not removed and not self.first:
            self._sent()
            return None
        version = cache.version(type_url)
        self._sent()
        self.sent_version = version
        tail = encode(
            DeltaDiscoveryResponse(
                system_version_info=version, type_url=type_url, removed_resources=sorted(removed)
            )
        )
        return b"".join(parts) + tail


class Stream:
    """One xDS stream (SotW or delta; ADS or a single type). Not tied to gRPC: feed it requests with
    ``on_request`` and send what ``responses()`` yields (serialized response messages)."""

    def __init__(
        self,
        cache: SnapshotCache,
        *,
        delta: bool,
        only_type: str | None = None,
        label: str = "ads",
        peer: str = "",
        max_names: int = DEFAULT_MAX_NAMES,
        max_unknown_names: int = DEFAULT_MAX_UNKNOWN_NAMES,
        callbacks: Callbacks = NO_CALLBACKS,
        gate: SendGate | None = None,
    ) -> None:
        self._cache = cache
        self._gate = gate
        self.delta = delta
        self._only_type = only_type  # a standalone service serves one type; ADS all
        self.label = label
        self.peer = peer
        self.node_id = ""
        self.node_cluster = ""
        self.opened_at = time.time()
        self.callbacks = callbacks
        self._subs: dict[str, SotwSubscription | DeltaSubscription] = {}
        self._ordered: list[SotwSubscription | DeltaSubscription] = []
        self._ignored: set[str] = set()
        self._nonce = 0
        self.requests_seen = 0
        self.writing = False  # a response is being written (stays true while the client does not read)
        self._wake = _Wake()
        self._closed = False
        self.max_names = max_names
        self.max_unknown_names = max_unknown_names
        self.refused: str | None = None  # why the stream was closed on the client, if it was
        self._log_budget = LogBudget()

    # --- input

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def on_request(self, request: Any) -> None:
        """Apply one DiscoveryRequest or DeltaDiscoveryRequest."""
        self.requests_seen += 1
        if not self.node_id and request.HasField("node"):
            self.node_id = clip(request.node.id)
            self.node_cluster = clip(request.node.cluster)
            log.info(
                "xDS stream opened",
                extra={"node": self.node_id, "stream": self.label, "peer": self.peer},
            )
        self._check_size(request)
        type_url = request.type_url or self._only_type or ""
        sub = self._subs.get(type_url)
        first = sub is None
        if sub is None:
            sub = self._subscribe(type_url)
            if sub is None:
                return
        if self.delta:
            assert isinstance(sub, DeltaSubscription)
            if first:
                sub.initial = shared_versions(request.initial_resource_versions)
            sub.update(request.resource_names_subscribe, request.resource_names_unsubscribe)
            if len(sub.names) > self.max_names:
                raise RequestRefused(f"{names_over(self.max_names)} on one subscription")
        else:
            assert isinstance(sub, SotwSubscription)
            sub.update_names(request.resource_names, names_key(request))
        self._bound_unknown(sub)
        # Only a request carrying the latest nonce of its type ACKs or NACKs; an older nonce means the
        # client has not seen our latest response yet, and its ACK/NACK of that one will follow.
        if first or request.response_nonce != sub.nonce:
            return
        sub.awaiting_ack = False
        # Clipped: it is kept per stream (proxy-status) and logged.
        nack = clip(request.error_detail.message) if request.HasField("error_detail") else None
        self.callbacks.on_stream_request(self, type_url, sub.sent_version, nack)
        if nack is not None:
            metrics.XDS_NACKS.labels(type_url).inc()
            self.warn(
                "xDS NACK: %s",
                nack,
                type_url=type_url,
                rejected_version=sub.sent_version,
                client_version=getattr(request, "version_info", ""),
                nonce=request.response_nonce,
            )

    def _check_size(self, request: Any) -> None:
        """Refuse a request naming more resources than a client may ask for, before any of its names
        is looked at: the work a request costs stays proportional to what a client may have."""
        counts: tuple[int, ...]
        if self.delta:
            counts = (
                len(request.resource_names_subscribe),
                len(request.resource_names_unsubscribe),
                len(request.initial_resource_versions),
            )
        else:
            counts = (len(request.resource_names),)
        if max(counts) > self.max_names:
            raise RequestRefused(f"{names_over(self.max_names)} in one request")

    def _bound_unknown(self, sub: SotwSubscription | DeltaSubscription) -> None:
        """Answer at most ``max_unknown_names`` names the cache neither has nor expects: each costs
        a placeholder (an empty assignment) to build and send, and a client is entitled to what
        exists. The rest are dropped from the subscription; a later request may name them again."""
        if sub.rtype.placeholder is None or len(sub.names) <= self.max_unknown_names:
            return  # nothing is built for unknown names of this type, or too few to matter
        # Set differences, not a lookup per name in Python: this runs on the event loop for every
        # request, and a flood of 99,000 names cost 0.2 s of it per request that way (2-core CI).
        unknown = sub.names - self._cache.entries(sub.type_url).keys()  # cheap: most names are known
        if len(unknown) <= self.max_unknown_names:
            return
        unknown -= self._cache.held(sub.type_url)
        if len(unknown) <= self.max_unknown_names:
            return
        sub.drop_names(frozenset(itertools.islice(unknown, self.max_unknown_names, None)))
        self.warn(
            "xDS request names more unknown resources than a client may; answering only some",
            type_url=sub.type_url,
            unknown=str(len(unknown)),
            answered=str(self.max_unknown_names),
        )

    def warn(self, message: str, *args: str, **extra: str) -> None:
        """A rate-limited warning about this stream; every client-supplied string in it is clipped."""
        suppressed = self._log_budget.take()
        if suppressed is None:
            return
        fields: dict[str, Any] = {key: clip(value) for key, value in extra.items()}
        fields.update(node=self.node_id, stream=self.label, suppressed=suppressed)
        log.warning(message, *(clip(arg) for arg in args), extra=fields)

    def _subscribe(self, type_url: str) -> SotwSubscription | DeltaSubscription | None:
        rtype = self._cache.resource_type(type_url)
        if rtype is None or (self._only_type is not None and type_url != self._only_type):
            if type_url not in self._ignored:
                if len(self._ignored) < _MAX_IGNORED_TYPES:
                    self._ignored.add(type_url)
                self.warn("xDS request for a type this stream does not serve: ignored", type_url=type_url)
            return None
        cursor = self._cache.seq(type_url)
        sub = DeltaSubscription(rtype, cursor) if self.delta else SotwSubscription(rtype, cursor)
        self._subs[type_url] = sub
        self._ordered = sorted(self._subs.values(), key=lambda s: s.rtype.order)
        return sub

    async def read(self, receive: Callable[[], Awaitable[Any]], end: object = None) -> None:
        """Consume the client's requests (``await receive()`` each; ``end`` once it half-closes,
        then the stream ends). No async iterator in between: one generator less to resume per
        request, and nothing that keeps the last request while waiting for the next."""
        try:
            while (request := await receive()) is not end:
                self.on_request(request)
                # Not kept while waiting for the next one: a SotW request lists every subscribed name
                # (an Envoy's ACK of 10,000 assignments is ~1 MB parsed), per idle stream.
                del request
                if self._due():
                    self._wake.set()
        except RequestRefused as err:
            self.refused = str(err)
            self.warn("xDS request refused; closing the stream", error=self.refused)
        finally:
            self.close()

    def _due(self) -> bool:
        """Whether the writer has anything to do: a type not waiting for an ACK has something to send
        or changes to look at. A plain ACK with nothing new after it (every client, on every change)
        then costs no wake-up of the writer."""
        cache = self._cache
        return any(
            not sub.awaiting_ack and (sub.pending() or sub.cursor != cache.seq(sub.type_url))
            for sub in self._ordered
        )

    def describe(self) -> dict[str, Any]:
        """The stream's state, for debugging and tests."""
        return {
            "node": self.node_id,
            "stream": self.label,
            "peer": self.peer,
            "requests": self.requests_seen,
            "writing": self.writing,
            "types": {
                sub.type_url: {
                    "wildcard": sub.wildcard,
                    "names": len(sub.names),
                    "cursor": sub.cursor,
                    "nonce": sub.nonce,
                    "awaiting_ack": sub.awaiting_ack,
                    "pending": sub.pending(),
                }
                for sub in self._ordered
            },
        }

    # --- output

    def _build(self, sub: SotwSubscription | DeltaSubscription, held_back: bool) -> bytes | None:
        """The next response of ``sub`` without its nonce (see the module docstring), or None."""
        if not held_back:
            body = sub.build(self._cache)
            if body is None:
                sub.since = None
            return body
        if isinstance(sub, SotwSubscription) and sub.awaited:
            return sub.build_awaited(self._cache)
        return None

    async def responses(self) -> AsyncIterator[bytes]:
        """Serialized responses, as they become due; ends when the client half-closes."""
        cache = self._cache
        gate = self._gate
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            held_back = False
            for sub in self._ordered:
                if sub.cursor != cache.seq(sub.type_url):
                    sub.fold(cache.changes_since(sub.type_url, sub.cursor))
                if sub.awaiting_ack:
                    held_back = held_back or sub.pending()
                    continue
                # A full send is built and written inside a gate slot: the slot is held until the
                # write is done (this generator resumes only then).
                release = (
                    await gate.take() if gate is not None and not held_back and sub.full_send() else None
                )
                try:
                    response = self._next(sub, held_back)
                    if response is None:
                        continue
                    since = sub.take_since()
                    self.writing = True
                    yield response
                    # Drop every reference to a response once written: a stream then idles without
                    # holding its last (often its largest, initial) response, megabytes at scale.
                    del response
                    self.writing = False
                finally:
                    if release is not None:
                        release()
                sub.pushes.inc()
                self.callbacks.on_stream_response(self, sub.type_url, sub.sent_version, sub.nonce)
                if since is not None:
                    sub.push_latency.observe(time.monotonic() - since)

    def _next(self, sub: SotwSubscription | DeltaSubscription, held_back: bool) -> bytes | None:
        """The subscription's next response with its nonce, or None if there is nothing to send."""
        body = self._build(sub, held_back)
        if body is None:
            return None
        self._nonce += 1
        nonce = str(self._nonce)
        sub.nonce = nonce
        sub.awaiting_ack = True
        return body + nonce_field(nonce)
