"""The two seams of the control plane: where its upstreams come from, and where its endpoints do.

``ConfigSource``: the manifest directory (``gce_plugin.manifest_watch.ManifestDirectory``, one
machine) or the etcd store (``gce_plugin.store.replica.StoreReplica``, replicated).

``EndpointsSource``: local discovery (``LocalDiscovery``: this process polls) or the store's leader
election (``StoreReplica``: the leader polls and publishes, the other replicas read what it
published). Either way the control plane receives ``EndpointsUpdate`` answers through
``LocalEndpoints.apply_endpoints``: translation never knows which source it is fed by.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from gce_plugin.api import Status, Upstream
from gce_plugin.manifests import ManifestError
from gce_plugin.plugins.plugin import EndpointsUpdate, UpstreamKey


class ConfigSource(Protocol):
    """Upstreams to serve, the last good version of each kept while a newer one is broken."""

    @property
    def errors(self) -> Mapping[Any, str]:
        """Where a definition is broken (a file, a store key) -> the error; replaced (a new
        mapping) on every (re)load, so that a reader notices a reload by identity."""
        ...

    @property
    def duplicates(self) -> Mapping[UpstreamKey, list[ManifestError]]:
        """Upstreams defined more than once: the rejected definitions."""
        ...

    @property
    def sources(self) -> Mapping[UpstreamKey, Any]:
        """Where each served upstream is defined (a file, a store key)."""
        ...

    @property
    def stale(self) -> Mapping[Any, float]:
        """Sources served from their saved last good version (after a restart) -> when it was saved."""
        ...

    def watch(self, interval: float) -> AsyncIterator[list[Upstream]]:
        """Every upstream to serve, at once and again after each change."""
        ...

    def degraded(self) -> list[str]:
        """What is wrong with the source itself while its last good config is served."""
        ...


class LocalEndpoints(Protocol):
    """What an endpoints source drives: the control plane's translation and its own discovery."""

    def apply_endpoints(self, update: EndpointsUpdate) -> None:
        """Translate one answer (from this process's discovery, or read from the store)."""
        ...

    async def discover(self, on_update: Callable[[EndpointsUpdate], None]) -> None:
        """Run this process's discovery (every plugin's watch) until cancelled, handing each answer
        to ``on_update`` (which applies it, or publishes it for every replica to apply)."""
        ...


class EndpointsSource(Protocol):
    async def run(self, local: LocalEndpoints) -> None:
        """Feed ``local`` endpoints until cancelled."""
        ...

    def statuses_changed(self, statuses: Mapping[UpstreamKey, Status]) -> None:
        """Translation reported these statuses (called on every change)."""
        ...


class LocalDiscovery:
    """One machine: this process polls, and nothing else learns of it."""

    async def run(self, local: LocalEndpoints) -> None:
        await local.discover(local.apply_endpoints)

    def statuses_changed(self, statuses: Mapping[UpstreamKey, Status]) -> None:
        pass
