"""The plugin contracts, after Gloo's ``projects/gloo/pkg/plugins/plugin_interface.go``.

A plugin handles one upstream type. ``UpstreamPlugin``s shape the Envoy cluster of an upstream during
translation; ``DiscoveryPlugin``s find the endpoints (and possibly the upstreams) of their type.
Plugins work only on generated messages: gloo ``Upstream``/``Endpoint`` and Envoy v3 ``Cluster``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from envoy.config.cluster.v3.cluster_pb2 import Cluster

from gce_plugin.api import Endpoint, ResourceRef, Upstream

# (namespace, name): how upstreams are keyed everywhere in memory.
UpstreamKey = tuple[str, str]


def upstream_key(upstream: Upstream) -> UpstreamKey:
    return (upstream.metadata.namespace, upstream.metadata.name)


def upstream_ref(upstream: Upstream) -> ResourceRef:
    return ResourceRef(name=upstream.metadata.name, namespace=upstream.metadata.namespace)


def cluster_name(upstream: Upstream) -> str:
    """Gloo's name for an upstream's Envoy cluster: ``<name>_<namespace>``, or ``<name>``."""
    meta = upstream.metadata
    return f"{meta.name}_{meta.namespace}" if meta.namespace else meta.name


@dataclass(frozen=True)
class Settings:
    """Process-wide settings handed to every plugin at ``init``."""

    refresh_interval: float = 30.0
    # Compute API root override, e.g. "http://127.0.0.1:8085/" for the emulator.
    compute_endpoint: str | None = None
    # Path to a service-account or authorized-user JSON file.
    credentials_file: str | None = None
    # Per-call timeout for cloud APIs, in seconds: one slow call never blocks a poll forever.
    api_timeout: float = 10.0


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


@dataclass(frozen=True)
class WatchOpts:
    refresh_interval: float = 30.0
    # The error path of a watch: called for every failure, never ends the watch.
    on_error: Callable[[DiscoveryError], None] = lambda err: None
    # Called for every upstream a poll resolved (changed or not): discovery health's last success.
    on_success: Callable[[UpstreamKey], None] = lambda key: None


class EndpointList:
    """One complete answer of a discovery watch.

    ``endpoints`` holds one ``Endpoint`` per instance and upstream (sorted by namespace and name).
    ``resolved`` are the upstreams whose endpoints are known: discovery has succeeded for them at
    least once. An upstream that failed this time keeps its last good endpoints here; one that never
    succeeded is absent from ``resolved``, so nobody mistakes "not yet known" for "no endpoints".

    A watch that keeps its endpoints per upstream answers with ``EndpointList.of_upstreams``:
    ``by_upstream`` maps each upstream to its endpoints (every one of them references it). Handing
    an unchanged upstream the same tuple object as in the previous answer lets a consumer skip it
    by identity, so an answer costs work for what changed only; ``endpoints`` is then built (and
    sorted) on first use. ``by_upstream`` is None for a list made from ``endpoints``. Endpoints and
    tuples handed on must not be changed afterwards. Immutable; equal when ``resolved`` and
    ``endpoints`` are.
    """

    __slots__ = ("_endpoints", "by_upstream", "resolved")

    _endpoints: tuple[Endpoint, ...] | None
    by_upstream: Mapping[UpstreamKey, tuple[Endpoint, ...]] | None
    resolved: frozenset[UpstreamKey]

    def __init__(
        self, endpoints: Iterable[Endpoint] = (), resolved: Iterable[UpstreamKey] = frozenset()
    ) -> None:
        object.__setattr__(self, "_endpoints", tuple(endpoints))
        object.__setattr__(self, "by_upstream", None)
        object.__setattr__(self, "resolved", frozenset(resolved))

    @classmethod
    def of_upstreams(
        cls,
        by_upstream: Mapping[UpstreamKey, tuple[Endpoint, ...]],
        resolved: Iterable[UpstreamKey] | None = None,
    ) -> EndpointList:
        """The answer for the upstreams in ``by_upstream`` (the mapping is kept, not copied: hand
        over one that is not changed afterwards). ``resolved`` defaults to its keys."""
        answer = cls.__new__(cls)
        object.__setattr__(answer, "_endpoints", None)
        object.__setattr__(answer, "by_upstream", by_upstream)
        object.__setattr__(answer, "resolved", frozenset(by_upstream if resolved is None else resolved))
        return answer

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        flat = self._endpoints
        if flat is None:
            assert self.by_upstream is not None
            # An endpoint of several upstreams is listed under each of them, and once here.
            unique = {id(e): e for found in self.by_upstream.values() for e in found}
            flat = tuple(sorted(unique.values(), key=lambda e: (e.metadata.namespace, e.metadata.name)))
            object.__setattr__(self, "_endpoints", flat)
        return flat

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"EndpointList is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"EndpointList is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EndpointList):
            return NotImplemented
        return self.resolved == other.resolved and self.endpoints == other.endpoints

    __hash__ = None  # type: ignore[assignment]  # endpoint messages are not hashable

    def __repr__(self) -> str:
        return f"EndpointList(endpoints={self.endpoints!r}, resolved={self.resolved!r})"


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
    def discover_upstreams(
        self, watch_namespaces: Sequence[str], write_namespace: str, opts: WatchOpts
    ) -> AsyncIterator[list[Upstream]] | None:
        """Upstream discovery (Gloo's UDS). None: this plugin does not create upstreams."""
        return None

    def update_upstream(self, original: Upstream, desired: Upstream) -> bool:
        """Copy discovered-only fields of ``original`` into ``desired``; True if it changed."""
        return False

    @abc.abstractmethod
    def watch_endpoints(
        self, write_namespace: str, upstreams: Sequence[Upstream], opts: WatchOpts
    ) -> AsyncIterator[EndpointList]:
        """Yield the endpoints of the upstreams of this plugin's type, again after every change,
        until the consumer stops iterating (or the task is cancelled). Failures go to
        ``opts.on_error`` and never end the watch. Upstreams of other types are ignored."""
