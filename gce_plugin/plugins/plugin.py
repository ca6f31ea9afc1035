"""The plugin contracts, after Gloo's ``projects/gloo/pkg/plugins/plugin_interface.go``.

A plugin handles one upstream type. ``UpstreamPlugin``s shape the Envoy cluster of an upstream during
translation; ``DiscoveryPlugin``s find the endpoints of their type.
Plugins work only on generated messages: gloo ``Upstream``/``Endpoint`` and Envoy v3 ``Cluster``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import struct
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from google.protobuf.message import Message

from gce_plugin.api import Endpoint, ResourceRef, Upstream

# An endpoint's health for Envoy (``LbEndpoint.health_status``), carried on Gloo's ``Endpoint`` as an
# annotation so its schema is unchanged: an ``envoy.config.core.v3.HealthStatus`` name (``HEALTHY``,
# ``UNHEALTHY``, ``DRAINING``, ``TIMEOUT``, ``DEGRADED``, ``UNKNOWN``). Absent: ``UNKNOWN``, which
# Envoy load-balances to as to a healthy host. Any discovery plugin may set it; translation maps it.
HEALTH_STATUS_ANNOTATION = "gce-plugin.solo.io/health-status"

# (namespace, name): how upstreams are keyed everywhere in memory.
UpstreamKey = tuple[str, str]


def upstream_key(upstream: Upstream) -> UpstreamKey:
    return (upstream.metadata.namespace, upstream.metadata.name)


def upstream_ref(upstream: Upstream) -> ResourceRef:
    return ResourceRef(name=upstream.metadata.name, namespace=upstream.metadata.namespace)


def upstream_label(key: UpstreamKey) -> str:
    """``namespace.name``: how logs, metrics, statuses and errors name an upstream."""
    return f"{key[0]}.{key[1]}"


def discovery_target(upstream: Upstream) -> bytes:
    """What an upstream's endpoints are discovered from: its type and type-specific spec (the common
    options, such as use_http2, do not change which endpoints it has). Two upstreams definitions with
    the same target have the same endpoints."""
    spec = upstream.upstream_spec
    kind = spec.WhichOneof("upstream_type")
    if kind is None:
        return b""
    typed: Message = getattr(spec, kind)
    return kind.encode() + b"\0" + typed.SerializeToString(deterministic=True)


def cluster_name(upstream: Upstream) -> str:
    """Gloo's name for an upstream's Envoy cluster: ``<name>_<namespace>``, or ``<name>``."""
    meta = upstream.metadata
    return f"{meta.name}_{meta.namespace}" if meta.namespace else meta.name


@dataclass(frozen=True)
class Settings:
    """Process-wide settings handed to every plugin at ``init``. A plugin's own settings are given to
    it when the registry is assembled (``gce_plugin.builtin``), not put here."""

    refresh_interval: float = 30.0


@dataclass(frozen=True)
class InitParams:
    settings: Settings = field(default_factory=Settings)


@dataclass(frozen=True)
class Params:
    """Per-translation context: the upstreams of the snapshot being translated."""

    upstreams: Sequence[Upstream] = ()


class DiscoveryError(Exception):
    """A discovery failure. ``upstream`` is set when one upstream is affected, None when all are."""

    def __init__(self, message: str, upstream: UpstreamKey | None = None) -> None:
        super().__init__(message)
        self.upstream = upstream

    @property
    def label(self) -> str:
        """The upstream's label, or ``*`` when all are affected."""
        return upstream_label(self.upstream) if self.upstream else "*"


class LastGoodEndpoints(Protocol):
    """Where a watch keeps each upstream's last discovered endpoints across restarts
    (``gce_plugin.last_good.EndpointsArchive``). ``target`` is the upstream's ``discovery_target``:
    endpoints are restored only for the target they were found for."""

    def save(self, key: UpstreamKey, target: bytes, found: UpstreamEndpoints) -> None: ...

    def forget(self, key: UpstreamKey) -> None: ...

    def load(self, key: UpstreamKey, target: bytes) -> tuple[UpstreamEndpoints, float] | None: ...


@dataclass(frozen=True)
class WatchOpts:
    refresh_interval: float = 30.0
    # The error path of a watch: called for every failure, never ends the watch.
    on_error: Callable[[DiscoveryError], None] = lambda err: None
    # Called for every upstream a poll resolved (changed or not): discovery health's last success.
    on_success: Callable[[UpstreamKey], None] = lambda key: None
    # A whole poll ends (as a failure of every upstream in it) after this many seconds.
    poll_timeout: float = 300.0
    # Last good endpoints across restarts (None: not persisted).
    last_good: LastGoodEndpoints | None = None
    # Called when an upstream is served endpoints restored from ``last_good`` (saved at that Unix
    # time) because discovery could not resolve it: stale until its next on_success.
    on_stale: Callable[[UpstreamKey, float], None] = lambda key, saved_at: None


# The length before each endpoint's serialization in ``UpstreamEndpoints.serialized``.
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class UpstreamEndpoints:
    """The endpoints of one upstream and their content ``version``: a digest of their deterministic
    serialization, in ``(namespace, name)`` order. Equal versions mean equal endpoints, whoever
    computed them, so a consumer compares versions, never the endpoints (or object identities).
    Make one with ``UpstreamEndpoints.of``.

    What is kept is compact: ``serialized``, each endpoint's deterministic serialization in that
    order, preceded by its length (4 bytes, big-endian), exactly the bytes ``version`` digests, and
    their ``count``. ``endpoints`` decodes them on demand, for the few readers that need messages;
    the last few endpoints made or decoded (at most ``_MAX_DECODED_ENDPOINTS`` in all) are memoized by
    version, so a reader of an upstream just discovered finds the messages the plugin just built
    instead of decoding them. Endpoints handed to ``of`` must not be changed afterwards."""

    serialized: bytes
    version: str
    count: int

    @classmethod
    def of(cls, endpoints: Iterable[Endpoint]) -> UpstreamEndpoints:
        ordered = sorted(endpoints, key=lambda e: (e.metadata.namespace, e.metadata.name))
        parts: list[bytes] = []
        for endpoint in ordered:
            data = endpoint.SerializeToString(deterministic=True)
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        serialized = b"".join(parts)
        version = hashlib.blake2b(serialized, digest_size=16).hexdigest()
        _remember_decoded(version, tuple(ordered))
        return cls(serialized, version, len(ordered))

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints, decoded from ``serialized``, in ``(namespace, name)`` order. The last few
        decoded are memoized by version (equal versions are equal endpoints), so readers asking twice
        get the same messages; treat them as read-only."""
        decoded = _DECODED.get(self.version)
        if decoded is None:
            decoded = self.decode()
            _remember_decoded(self.version, decoded)
        return decoded

    def decode(self) -> tuple[Endpoint, ...]:
        """New messages decoded from ``serialized`` (not memoized: for a reader that reads each once)."""
        return tuple(Endpoint.FromString(data) for data in self.serialized_endpoints())

    def serialized_endpoints(self) -> list[bytes]:
        """Each endpoint's deterministic serialization, in order, without decoding it."""
        data, unpack, parts = self.serialized, _LENGTH.unpack_from, []
        at, end = 0, len(data)
        while at < end:
            (size,) = unpack(data, at)
            at += 4
            parts.append(data[at : at + size])
            at += size
        return parts


# Recently made or decoded endpoints by version, bounded by how many endpoints they hold in all (a
# poll or a reader that walks every upstream keeps only the last few alive, never all of them).
_DECODED: OrderedDict[str, tuple[Endpoint, ...]] = OrderedDict()
_MAX_DECODED_ENDPOINTS = 1024
_decoded_count = 0


def _remember_decoded(version: str, decoded: tuple[Endpoint, ...]) -> None:
    global _decoded_count
    if len(decoded) > _MAX_DECODED_ENDPOINTS:
        return
    with contextlib.suppress(KeyError):  # another thread got there first
        while _DECODED and _decoded_count + len(decoded) > _MAX_DECODED_ENDPOINTS:
            _decoded_count -= len(_DECODED.popitem(last=False)[1])
        if version not in _DECODED:
            _DECODED[version] = decoded
            _decoded_count += len(decoded)


NO_ENDPOINTS = UpstreamEndpoints.of(())


@dataclass(frozen=True)
class EndpointsUpdate:
    """One answer of a discovery watch: the complete state, and what changed since its previous answer.

    ``upstreams`` maps every upstream whose endpoints are known (discovery has succeeded for it at
    least once; an upstream that failed this time keeps its last good endpoints) to them; one that
    never succeeded is absent, so nobody mistakes "not yet known" for "no endpoints".
    ``changed``: the keys of ``upstreams`` whose version differs from the watch's previous answer
    (every key in a watch's first answer). ``removed``: the keys of the previous answer the watch no
    longer answers for. A consumer that has seen every previous answer needs to read only those:
    an update costs work for what changed, not for every upstream. Build the next answer with
    ``EndpointsUpdate.first`` then ``previous.next(upstreams)``.
    """

    upstreams: Mapping[UpstreamKey, UpstreamEndpoints] = field(default_factory=dict)
    changed: frozenset[UpstreamKey] = frozenset()
    removed: frozenset[UpstreamKey] = frozenset()

    def __post_init__(self) -> None:
        if not self.changed <= self.upstreams.keys():
            raise ValueError(
                f"changed upstreams without endpoints: {sorted(self.changed - self.upstreams.keys())}"
            )
        if not self.removed.isdisjoint(self.upstreams):
            raise ValueError(
                f"removed upstreams with endpoints: {sorted(self.removed & self.upstreams.keys())}"
            )

    @classmethod
    def first(cls, upstreams: Mapping[UpstreamKey, UpstreamEndpoints]) -> EndpointsUpdate:
        """A watch's first answer: everything in it is a change."""
        return cls(upstreams, frozenset(upstreams))

    def next(
        self,
        upstreams: Mapping[UpstreamKey, UpstreamEndpoints],
        changed: Iterable[UpstreamKey] | None = None,
    ) -> EndpointsUpdate:
        """The answer after this one: ``changed`` (when the caller knows it; else found by comparing
        versions) and the keys that left. The mapping is kept, not copied: do not change it later."""
        if changed is None:
            changed = [
                k
                for k, e in upstreams.items()
                if (o := self.upstreams.get(k)) is None or o.version != e.version
            ]
        return EndpointsUpdate(
            upstreams, frozenset(changed), frozenset(self.upstreams.keys() - upstreams.keys())
        )

    @property
    def resolved(self) -> frozenset[UpstreamKey]:
        """The upstreams whose endpoints are known."""
        return frozenset(self.upstreams)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint once (an endpoint of several upstreams is listed under each of them), sorted
        by namespace and name: for printing, not for the data path."""
        unique = {
            (e.metadata.namespace, e.metadata.name, e.SerializeToString(deterministic=True)): e
            for found in self.upstreams.values()
            for e in found.endpoints
        }
        return tuple(unique[k] for k in sorted(unique))


class WatchedUpstreams:
    """The upstreams a discovery watch serves. The control plane replaces them as the manifests change
    (``replace``) and never restarts a watch for it: the watch decides what a change means for it
    (``snapshot`` and ``wait_changed``). Use it from the event loop's thread."""

    def __init__(self, upstreams: Iterable[Upstream] = ()) -> None:
        self._upstreams = tuple(upstreams)
        self._version = 0
        self._changed = asyncio.Event()

    def snapshot(self) -> tuple[int, tuple[Upstream, ...]]:
        """The current upstreams and their version (it grows by one with every ``replace``)."""
        return self._version, self._upstreams

    def replace(self, upstreams: Iterable[Upstream]) -> None:
        self._upstreams = tuple(upstreams)
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self, since: int, timeout: float) -> bool:
        """Wait until the version is no longer ``since``, at most ``timeout`` seconds; True if it changed."""
        if self._version == since:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(timeout, 0.0)):
                    await self._changed.wait()
        return self._version != since


class Plugin(abc.ABC):  # noqa: B024 - init is optional, subclasses add the abstract hooks
    """Every plugin: a name and an ``init`` called once before use."""

    name: str = ""

    def init(self, params: InitParams) -> None:  # noqa: B027 - optional hook
        """Set up from process settings. The default does nothing."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the plugin holds (threads, connections) when the process stops. Default: nothing."""


class UpstreamPlugin(Plugin):
    @abc.abstractmethod
    def process_upstream(self, params: Params, upstream: Upstream, cluster: Cluster) -> None:
        """Shape ``cluster`` for ``upstream``. Ignore upstreams of other types; raise ValueError
        (with a reason a user can act on) when an upstream of this type is invalid."""


class DiscoveryPlugin(Plugin):
    @abc.abstractmethod
    def watch_endpoints(
        self, write_namespace: str, upstreams: WatchedUpstreams, opts: WatchOpts
    ) -> AsyncGenerator[EndpointsUpdate, None]:
        """Yield the endpoints of the upstreams of this plugin's type, again after every change,
        until the consumer stops iterating (or the task is cancelled). Failures go to
        ``opts.on_error`` and never end the watch. Upstreams of other types are ignored."""
