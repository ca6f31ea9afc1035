"""The snapshot cache: the resources every xDS client should have, with versions and a change log.

One global set of resources per type URL (every node gets the same; a per-node view would be chosen
by the server from the node id of a stream's first request). Each resource is serialized once, when
it is set: its version is a hash of those bytes (so re-setting identical content changes nothing, and
versions mean the same across restarts), and its wire encodings for SotW and delta responses are kept,
so fanning out to many clients costs a byte join per client, never a re-serialization.

Changes go into a per-type log of ``(seq, names)``: a stream remembers the ``seq`` it has seen and
asks for the names changed since, which costs O(changed names), not O(all resources). Streams learn
that something changed through ``watch`` callbacks.

Not thread-safe: call it from the event loop's thread (the control plane is asyncio throughout).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse, DiscoveryResponse, Resource
from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.message import Message

from gce_plugin.xds.resources import CLUSTER, DEFAULT_TYPES, ENDPOINT, ResourceType

log = logging.getLogger(__name__)

# Bounds of each type's change log. A stream that falls further behind (it has not run while this
# many changes happened) re-checks everything it subscribes to instead.
MAX_LOG_CHANGES = 4096
MAX_LOG_NAMES = 1 << 17
_MAX_PLACEHOLDERS = 4096
_MAX_BODIES = 8  # distinct subscribed-name sets memoized per type and version

K = TypeVar("K")
V = TypeVar("V")


def _remember(memo: dict[K, V], key: K, value: V, most: int) -> V:
    """Keep ``value`` under ``key`` in ``memo``, emptied first when it holds ``most`` entries."""
    if len(memo) >= most:
        memo.clear()
    memo[key] = value
    return value


def _mix(name: str, version: str) -> int:
    digest = hashlib.blake2b(f"{name}\0{version}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class Entry:
    """One resource as stored: its serialized value, version and ready-made wire encodings. The
    message given is not kept (bytes are what the cache serves): ``message`` decodes a new copy on
    demand, for the few readers that need one."""

    __slots__ = ("_cls", "_delta_field", "_offset", "mix", "name", "sotw_field", "type_url", "version")

    def __init__(self, type_url: str, name: str, message: Message, value: bytes) -> None:
        self.type_url = type_url
        self.name = name
        self._cls = type(message)
        self.version = hashlib.blake2b(value, digest_size=8).hexdigest()
        # The entry's share of the type version (XOR of all entries': O(1) to update per change).
        self.mix = _mix(name, self.version)
        # ``resources`` field (2) of a DiscoveryResponse holding this resource (an Any of type_url and
        # value), encoded by hand; responses are joins of these. The value is kept only in it.
        head = _field(0x0A, type_url.encode()) + (_length(0x12, len(value)) if value else b"")
        self.sotw_field: bytes = _length(0x12, len(head) + len(value)) + head + value
        self._offset = len(self.sotw_field) - len(value)
        self._delta_field: bytes | None = None

    @property
    def value(self) -> bytes:
        """The resource's deterministic serialization."""
        return self.sotw_field[self._offset :]

    @property
    def message(self) -> Message:
        """The resource, decoded anew from ``value`` (a copy: changing it changes nothing here)."""
        return self._cls.FromString(self.value)

    def _any(self) -> AnyPb:
        return AnyPb(type_url=self.type_url, value=self.value)

    @property
    def delta_field(self) -> bytes:
        """``resources`` field of a DeltaDiscoveryResponse holding this resource (made on first use)."""
        if self._delta_field is None:
            resource = Resource(name=self.name, version=self.version, resource=self._any())
            self._delta_field = DeltaDiscoveryResponse(resources=[resource]).SerializeToString()
        return self._delta_field


def _length(tag: int, size: int) -> bytes:
    """A length-delimited field's tag byte (fields 1-15) and length varint."""
    out = bytearray((tag,))
    while size >= 0x80:
        out.append((size & 0x7F) | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return _length(tag, len(payload)) + payload


class Changes(NamedTuple):
    """What changed in one type after some cursor."""

    seq: int  # the cursor to ask from next time
    names: frozenset[str] | None  # None: the log no longer reaches back; anything may have changed
    since: float | None  # monotonic time of the earliest of these changes (None if none)


@dataclass(frozen=True)
class _Change:
    seq: int
    names: frozenset[str]
    at: float


_NO_NAMES: frozenset[str] = frozenset()


@dataclass
class _TypeState:
    rtype: ResourceType
    entries: dict[str, Entry] = field(default_factory=dict)
    mix: int = 0
    seq: int = 0
    log: deque[_Change] = field(default_factory=deque)
    log_names: int = 0
    full_body: bytes | None = None
    # Joined ``resources`` fields by subscribed-name set, for the current version (see sotw_body).
    bodies: dict[frozenset[str], bytes] = field(default_factory=dict)
    tail: bytes | None = None  # version_info and type_url of a SotW response, for the current version
    # Whole SotW responses but their nonce (body + tail) by subscribed-name set, for the current
    # version: every stream sent the same change writes the same bytes (see sotw_response).
    prepared: dict[frozenset[str], bytes] = field(default_factory=dict)
    full_prepared: bytes | None = None
    placeholders: dict[str, Entry] = field(default_factory=dict)
    # Names whose real resource is on its way: no placeholder for them (see SnapshotCache.hold).
    held: frozenset[str] = frozenset()
    # ``mix`` as the type's version string, formatted once per change (read on every send).
    version: str = f"{0:016x}"

    def changed(self) -> None:
        """Forget everything made for the previous version."""
        self.version = f"{self.mix:016x}"
        self.full_body = None
        self.full_prepared = None
        self.bodies = {}
        self.prepared = {}
        self.tail = None


class _MessagesView(Mapping[str, Message]):
    """Read-only name -> message view over the entries, each message decoded on access."""

    def __init__(self, entries: dict[str, Entry]) -> None:
        self._entries = entries

    def __getitem__(self, name: str) -> Message:
        return self._entries[name].message

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class SnapshotCache:
    """Resources by type URL, with per-resource versions and change notification."""

    def __init__(self, types: Iterable[ResourceType] = DEFAULT_TYPES) -> None:
        self._types: dict[str, _TypeState] = {}
        self._watchers: dict[int, Callable[[], None]] = {}
        self._next_watcher = 0
        for rtype in types:
            self.register(rtype)

    # --- types

    def register(self, rtype: ResourceType) -> None:
        """Serve one more resource type (e.g. LISTENER, ROUTE). Registering a type twice is a no-op."""
        if rtype.type_url in self._types:
            if self._types[rtype.type_url].rtype != rtype:
                raise ValueError(f"type {rtype.type_url} is already registered differently")
            return
        self._types[rtype.type_url] = _TypeState(rtype)

    def types(self) -> list[ResourceType]:
        """Registered types in push order."""
        return sorted((st.rtype for st in self._types.values()), key=lambda t: t.order)

    def resource_type(self, type_url: str) -> ResourceType | None:
        st = self._types.get(type_url)
        return st.rtype if st else None

    def _state(self, type_url: str) -> _TypeState:
        try:
            return self._types[type_url]
        except KeyError:
            raise ValueError(f"unknown xDS type URL {type_url!r}: register its ResourceType first") from None

    # --- the control plane's side

    def set_resources(self, type_url: str, resources: Mapping[str, Message]) -> None:
        """Replace the full set of one type. Unchanged resources keep their version; no-op if nothing
        changed. Raises (changing nothing) on a wrong message type or a name that does not match.
        The messages given are serialized at once and not kept."""
        st = self._state(type_url)
        upserts = self._changed_entries(st, resources)
        removals = [name for name in st.entries if name not in resources]
        self._apply(st, upserts, removals)

    def update_resources(
        self, type_url: str, upserts: Mapping[str, Message], removals: Iterable[str] = ()
    ) -> None:
        """Upsert and remove some resources of one type; costs O(changed), not O(all)."""
        st = self._state(type_url)
        removals = list(removals)
        both = set(upserts).intersection(removals)
        if both:
            raise ValueError(f"{type_url}: names both upserted and removed: {sorted(both)}")
        entries = self._changed_entries(st, upserts)
        self._apply(st, entries, [name for name in removals if name in st.entries])

    def version(self, type_url: str) -> str:
        """The type's state-of-the-world version (a hash of all its resources' names and versions)."""
        return self._state(type_url).version

    def resources(self, type_url: str) -> Mapping[str, Message]:
        return _MessagesView(self._state(type_url).entries)

    def resource_version(self, type_url: str, name: str) -> str | None:
        entry = self._state(type_url).entries.get(name)
        return entry.version if entry else None

    # --- the server's side

    def entries(self, type_url: str) -> Mapping[str, Entry]:
        return self._state(type_url).entries

    def hold(self, type_url: str, names: Iterable[str]) -> None:
        """Names whose resource is on its way but not known yet (e.g. the assignments of EDS clusters
        whose discovery has not answered). Requests for them get nothing until it arrives, neither a
        placeholder nor a removal: a client that already has the resource (an Envoy reconnecting after
        a control-plane restart) keeps it, rather than having it emptied. Replaces the held set."""
        st = self._state(type_url)
        held = frozenset(names)
        if held != st.held:
            st.held = held
            st.bodies = {}  # joins include placeholders for names no longer (or now) held
            st.prepared = {}

    def consistent(self) -> list[str]:
        """The EDS warming rule, checked: the assignment names of the EDS clusters in the cache that
        have neither an assignment nor a hold (a client asking for one would be told it is empty).
        Empty when the cache is consistent; tests check it after every publish."""
        clusters = self._types.get(CLUSTER.type_url)
        assignments = self._types.get(ENDPOINT.type_url)
        if clusters is None or assignments is None:
            return []
        broken = []
        for name, entry in clusters.entries.items():
            cluster = entry.message
            if not isinstance(cluster, Cluster) or cluster.type != Cluster.EDS:
                continue
            wanted = cluster.eds_cluster_config.service_name or name
            if wanted not in assignments.entries and wanted not in assignments.held:
                broken.append(wanted)
        return sorted(broken)

    def is_held(self, type_url: str, name: str) -> bool:
        return name in self._state(type_url).held

    def held(self, type_url: str) -> frozenset[str]:
        """Every name of ``type_url`` held (see ``hold``)."""
        return self._state(type_url).held

    def entry_or_placeholder(self, type_url: str, name: str) -> Entry | None:
        """The entry of ``name``, else the type's placeholder for it (e.g. an empty assignment)."""
        st = self._state(type_url)
        entry = st.entries.get(name)
        if entry is not None or st.rtype.placeholder is None or name in st.held:
            return entry
        entry = st.placeholders.get(name)
        if entry is None:
            message = st.rtype.placeholder(name)
            entry = Entry(type_url, name, message, message.SerializeToString(deterministic=True))
            _remember(st.placeholders, name, entry, _MAX_PLACEHOLDERS)
        return entry

    def full_state_body(self, type_url: str) -> bytes:
        """The ``resources`` fields of a SotW response holding every resource of the type (memoized per
        version, shared by all wildcard subscribers)."""
        st = self._state(type_url)
        if st.full_body is None:
            st.full_body = b"".join(entry.sotw_field for entry in st.entries.values())
        return st.full_body

    def sotw_body(self, type_url: str, names: frozenset[str]) -> bytes:
        """The ``resources`` fields of a SotW response holding ``names`` (placeholders included),
        memoized per version and name set: every stream subscribed to the same names (an Envoy
        fleet's initial syncs) shares one join instead of making its own."""
        st = self._state(type_url)
        body = st.bodies.get(names)
        if body is None:
            parts = []
            for name in names:
                entry = self.entry_or_placeholder(type_url, name)
                if entry is not None:
                    parts.append(entry.sotw_field)
            body = _remember(st.bodies, names, b"".join(parts), _MAX_BODIES)
        return body

    def sotw_response(self, type_url: str, names: frozenset[str]) -> bytes:
        """A whole SotW response holding ``names`` but for its nonce (``sotw_body`` + ``sotw_tail``),
        memoized as the body: a change fanned out to every stream is one join and one concatenation,
        and each stream appends only its nonce field."""
        st = self._state(type_url)
        response = st.prepared.get(names)
        if response is None:
            response = self.sotw_body(type_url, names) + self.sotw_tail(type_url)
            _remember(st.prepared, names, response, _MAX_BODIES)
        return response

    def full_state_response(self, type_url: str) -> bytes:
        """A whole SotW response holding every resource of the type but for its nonce (memoized per
        version, shared by all wildcard subscribers)."""
        st = self._state(type_url)
        if st.full_prepared is None:
            st.full_prepared = self.full_state_body(type_url) + self.sotw_tail(type_url)
        return st.full_prepared

    def sotw_tail(self, type_url: str) -> bytes:
        """``version_info`` and ``type_url`` of a SotW response of the type's current version,
        encoded once per version (a response is body + tail + nonce)."""
        st = self._state(type_url)
        if st.tail is None:
            st.tail = DiscoveryResponse(version_info=st.version, type_url=type_url).SerializeToString()
        return st.tail

    def seq(self, type_url: str) -> int:
        return self._state(type_url).seq

    def changes_since(self, type_url: str, cursor: int) -> Changes:
        st = self._state(type_url)
        if cursor >= st.seq:
            return Changes(st.seq, _NO_NAMES, None)
        if not st.log or st.log[0].seq > cursor + 1:
            return Changes(st.seq, None, st.log[0].at if st.log else time.monotonic())
        picked: list[_Change] = []
        for change in reversed(st.log):
            if change.seq <= cursor:
                break
            picked.append(change)
        names = picked[0].names if len(picked) == 1 else frozenset().union(*(c.names for c in picked))
        return Changes(st.seq, names, picked[-1].at)

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` after every change (it must be cheap and not raise); returns an unwatch."""
        key = self._next_watcher
        self._next_watcher += 1
        self._watchers[key] = callback

        def unwatch() -> None:
            self._watchers.pop(key, None)

        return unwatch

    # --- internals

    def _changed_entries(self, st: _TypeState, resources: Mapping[str, Message]) -> list[Entry]:
        rtype = st.rtype
        changed: list[Entry] = []
        for name, message in resources.items():
            if message.DESCRIPTOR.full_name != rtype.message_name:
                raise TypeError(
                    f"{rtype.type_url}: resource {name!r} is a {message.DESCRIPTOR.full_name}, "
                    f"want {rtype.message_name}"
                )
            inner_name = getattr(message, rtype.name_field)
            if inner_name != name:
                raise ValueError(
                    f"{rtype.type_url}: resource keyed {name!r} has {rtype.name_field}={inner_name!r}"
                )
            value = message.SerializeToString(deterministic=True)
            old = st.entries.get(name)
            if old is None or old.value != value:
                changed.append(Entry(rtype.type_url, name, message, value))
        return changed

    def _apply(self, st: _TypeState, upserts: list[Entry], removals: list[str]) -> None:
        if not upserts and not removals:
            return
        for entry in upserts:
            old = st.entries.get(entry.name)
            if old is not None:
                st.mix ^= old.mix
            st.entries[entry.name] = entry
            st.mix ^= entry.mix
        for name in removals:
            st.mix ^= st.entries.pop(name).mix
        st.changed()
        now = time.monotonic()
        upserted = frozenset(entry.name for entry in upserts)
        self._append(st, upserted.union(removals) if removals else upserted, now)
        if upserted:
            for follower in self._types.values():
                if follower.rtype.follows == st.rtype.type_url:
                    self._append(follower, upserted, now)
        for callback in list(self._watchers.values()):
            callback()

    @staticmethod
    def _append(st: _TypeState, names: frozenset[str], at: float) -> None:
        st.seq += 1
        st.log.append(_Change(st.seq, names, at))
        st.log_names += len(names)
        while len(st.log) > 1 and (len(st.log) > MAX_LOG_CHANGES or st.log_names > MAX_LOG_NAMES):
            st.log_names -= len(st.log.popleft().names)
