"""The control plane: the data path of ``gce-plugin run``, wired in one place.

    manifests -> upstreams -> discovery -> endpoints -> translation -> snapshot -> xDS -> Envoy

Every stage runs in one asyncio loop. The translator is incremental: a manifest change re-translates
the changed upstreams only, and a discovery answer rebuilds the assignments of the upstreams whose
endpoints changed; the cache gets just those deltas, so the xDS server pushes just those resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from gce_plugin.admin_http import AdminServer
from gce_plugin.api import Status, Upstream
from gce_plugin.builtin import default_registry
from gce_plugin.hostport import parse_host_port
from gce_plugin.manifest_watch import ManifestDirectory
from gce_plugin.metrics import UPSTREAM_DISCOVERY_ERRORS
from gce_plugin.plugins.plugin import (
    DiscoveryError,
    DiscoveryPlugin,
    InitParams,
    Settings,
    UpstreamKey,
    WatchedUpstreams,
    WatchOpts,
    upstream_key,
)
from gce_plugin.plugins.registry import Registry
from gce_plugin.translation.translator import REPORTER, Delta, Translator
from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache, XdsServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    config_dir: str
    xds_address: str = "127.0.0.1:18000"
    # None: no metrics/health endpoint.
    admin_address: str | None = "127.0.0.1:9091"
    settings: Settings = field(default_factory=Settings)
    write_namespace: str = "gloo-system"
    # How often the manifest directory is checked for changes.
    manifest_poll_interval: float = 1.0


class ControlPlane:
    def __init__(self, options: Options, registry: Registry | None = None) -> None:
        self.options = options
        self.registry = registry or default_registry()
        self.registry.init(InitParams(settings=options.settings))
        self.manifests = ManifestDirectory(options.config_dir)
        self.translator = Translator(self.registry)
        self.cache = SnapshotCache()
        self.xds = XdsServer(self.cache, options.xds_address)
        self.admin: AdminServer | None = None
        self._ready = False
        self._loaded = asyncio.Event()
        # Gloo-style status per upstream, as translation last reported it.
        self.statuses: dict[UpstreamKey, Status] = {}
        # The upstreams every discovery watch serves: replaced on every manifest change, never by
        # restarting a watch (each one decides what changed for it, see plugins/refresh.py).
        self._watched = WatchedUpstreams()
        self._discovery: list[asyncio.Task[None]] = []

    def ready(self) -> bool:
        return self._ready

    def status_report(self) -> dict[str, Any]:
        """``{"namespace.name": {"state": "Accepted"|"Rejected", "reason": ..., "reportedBy": ...}}``"""
        statuses = dict(self.statuses)  # read from the admin thread: copy first
        for key, errors in dict(self.manifests.duplicates).items():
            # A duplicate definition of a served upstream: a rejected sub-resource of it, per file.
            status = statuses.get(key)
            if status is not None:
                status = Status()
                status.CopyFrom(statuses[key])
                for err in errors:
                    status.subresource_statuses[f"file:{err.path}"].CopyFrom(
                        Status(state=Status.Rejected, reason=str(err), reported_by=REPORTER)
                    )
                statuses[key] = status
        return {f"{ns}.{name}": json_format.MessageToDict(st) for (ns, name), st in sorted(statuses.items())}

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down gracefully."""
        if self.options.admin_address:
            host, port = parse_host_port(self.options.admin_address)
            self.admin = AdminServer(host, port, self.ready, self.status_report)
            self.admin.start()
        watcher = asyncio.create_task(self._follow_manifests(), name="manifests")
        stopping = asyncio.create_task(stop.wait())
        try:
            # xDS opens only once the manifests are translated: an Envoy reconnecting after a restart
            # must never be told that there are no clusters.
            loaded = asyncio.create_task(self._loaded.wait())
            await asyncio.wait({watcher, stopping, loaded}, return_when=asyncio.FIRST_COMPLETED)
            loaded.cancel()
            if self._loaded.is_set():
                await self.xds.start()
                self._ready = True
                await asyncio.wait({watcher, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                watcher.result()  # a crash of the watcher is a crash of the control plane
        finally:
            log.info("shutting down")
            self._ready = False
            for task in (watcher, stopping, *self._discovery):
                task.cancel()
            await asyncio.gather(watcher, stopping, *self._discovery, return_exceptions=True)
            await self.xds.stop(grace=1.0)
            if self.admin is not None:
                self.admin.stop()
            self.registry.close()

    # -- manifests -> upstreams -> translation ------------------------------------------------------

    async def _follow_manifests(self) -> None:
        async for upstreams in self.manifests.watch(self.options.manifest_poll_interval):
            self.apply_upstreams(upstreams)
            self._watched.replace(upstreams)
            if not self._discovery:
                self._start_discovery()
            self._loaded.set()

    def apply_upstreams(self, upstreams: Sequence[Upstream]) -> None:
        delta = self.translator.set_upstreams(upstreams)
        present = {upstream_key(u) for u in upstreams}
        self.statuses = {key: st for key, st in self.statuses.items() if key in present}
        self._publish(delta)
        log.info(
            "upstreams applied", extra={"upstreams": len(upstreams), "clusters": len(delta.cluster_upserts)}
        )

    # -- discovery -> endpoints -> translation ------------------------------------------------------

    def _start_discovery(self) -> None:
        """One endpoint watch per discovery plugin, for as long as the control plane runs."""
        self._discovery = [
            asyncio.create_task(self._watch_endpoints(plugin), name=f"discovery-{plugin.name}")
            for plugin in self.registry.discovery_plugins()
        ]

    async def _watch_endpoints(self, plugin: DiscoveryPlugin) -> None:
        """Feed one plugin's endpoint lists to translation. A watch that ends or crashes (a plugin
        bug) is reported and started again after a refresh interval: endpoints never freeze silently."""
        interval = self.options.settings.refresh_interval
        opts = WatchOpts(refresh_interval=interval, on_error=self._discovery_error)
        while True:
            watch = plugin.watch_endpoints(self.options.write_namespace, self._watched, opts)
            try:
                async for endpoint_list in watch:
                    self._publish(self.translator.set_endpoints(endpoint_list))
                log.error("discovery watch ended; restarting", extra={"plugin": plugin.name})
            except Exception as exc:
                log.exception("discovery watch crashed; restarting", extra={"plugin": plugin.name})
                self._discovery_error(DiscoveryError(f"{plugin.name} discovery crashed: {exc}"))
            finally:
                with contextlib.suppress(Exception):
                    await watch.aclose()
            await asyncio.sleep(interval)

    @staticmethod
    def _discovery_error(err: DiscoveryError) -> None:
        label = f"{err.upstream[0]}.{err.upstream[1]}" if err.upstream else "*"
        UPSTREAM_DISCOVERY_ERRORS.labels(upstream=label).inc()
        log.error("discovery failed: %s", err, extra={"upstream": label})

    # -- translation -> snapshot ---------------------------------------------------------------------

    def _publish(self, delta: Delta) -> None:
        # Held names first: an EDS cluster whose discovery has not answered is never answered with an
        # empty assignment (the translator decides which, see Delta.held and SnapshotCache.hold).
        if delta.held is not None:
            self.cache.hold(ENDPOINT_TYPE, delta.held)
        # Clusters first: on ADS the server keeps that order, so Envoy never sees an assignment for a
        # cluster it does not know.
        if delta.cluster_upserts or delta.cluster_removals:
            self.cache.update_resources(CLUSTER_TYPE, delta.cluster_upserts, delta.cluster_removals)
        if delta.assignment_upserts or delta.assignment_removals:
            self.cache.update_resources(ENDPOINT_TYPE, delta.assignment_upserts, delta.assignment_removals)
        self.statuses.update(delta.statuses)
        for (namespace, name), status in delta.statuses.items():
            level = logging.WARNING if status.state == Status.Rejected else logging.INFO
            log.log(
                level,
                "upstream %s",
                Status.State.Name(status.state).lower(),
                extra={"upstream": f"{namespace}.{name}", "reason": status.reason},
            )
