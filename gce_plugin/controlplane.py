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

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from google.protobuf import json_format

from gce_plugin import heap
from gce_plugin.admin_http import AdminServer
from gce_plugin.api import Status, Upstream
from gce_plugin.hostport import parse_host_port
from gce_plugin.manifest_watch import ManifestDirectory
from gce_plugin.metrics import UPSTREAM_DISCOVERY_ERRORS
from gce_plugin.plugins.plugin import (
    DiscoveryError,
    DiscoveryPlugin,
    InitParams,
    Settings,
    UpstreamKey,
    WatchOpts,
    upstream_key,
)
from gce_plugin.plugins.registry import Registry, default_registry
from gce_plugin.translation.translator import Delta, Translator
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
        # Assignments of EDS clusters whose discovery has not answered yet (see SnapshotCache.hold).
        self._awaited: set[str] = set()
        # Gloo-style status per upstream, as translation last reported it.
        self.statuses: dict[UpstreamKey, Status] = {}
        self._watched: dict[UpstreamKey, bytes] | None = None
        self._discovery: list[asyncio.Task[None]] = []

    def ready(self) -> bool:
        return self._ready

    def status_report(self) -> dict[str, Any]:
        """``{"namespace.name": {"state": "Accepted"|"Rejected", "reason": ..., "reportedBy": ...}}``"""
        statuses = dict(self.statuses)  # read from the admin thread: copy first
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
            self._restart_discovery(upstreams)
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

    def _restart_discovery(self, upstreams: Sequence[Upstream]) -> None:
        """(Re)start the endpoint watches when the upstreams they track changed, as Gloo's EDS does."""
        specs = {upstream_key(u): u.upstream_spec.SerializeToString(deterministic=True) for u in upstreams}
        if specs == self._watched:
            return
        self._watched = specs
        for task in self._discovery:
            task.cancel()
        self._discovery = [
            asyncio.create_task(
                self._watch_endpoints(plugin, list(upstreams)), name=f"discovery-{plugin.name}"
            )
            for plugin in self.registry.discovery_plugins()
        ]

    async def _watch_endpoints(self, plugin: DiscoveryPlugin, upstreams: list[Upstream]) -> None:
        """Feed one plugin's endpoint lists to translation. A watch that ends or crashes (a plugin
        bug) is reported and started again after a refresh interval: endpoints never freeze silently."""
        interval = self.options.settings.refresh_interval
        opts = WatchOpts(refresh_interval=interval, on_error=self._discovery_error)
        while True:
            watch = plugin.watch_endpoints(self.options.write_namespace, upstreams, opts)
            try:
                async for endpoint_list in watch:
                    self._publish(self.translator.set_endpoints(endpoint_list))
                    heap.freeze_after_first_publish()
                log.error("discovery watch ended; restarting", extra={"plugin": plugin.name})
            except Exception as exc:
                log.exception("discovery watch crashed; restarting", extra={"plugin": plugin.name})
                self._discovery_error(DiscoveryError(f"{plugin.name} discovery crashed: {exc}"))
            finally:
                with contextlib.suppress(Exception):
                    await watch.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(interval)

    @staticmethod
    def _discovery_error(err: DiscoveryError) -> None:
        label = f"{err.upstream[0]}.{err.upstream[1]}" if err.upstream else "*"
        UPSTREAM_DISCOVERY_ERRORS.labels(upstream=label).inc()
        log.error("discovery failed: %s", err, extra={"upstream": label})

    # -- translation -> snapshot ---------------------------------------------------------------------

    def _hold_awaited_assignments(self, delta: Delta) -> None:
        """Keep the cache from answering for EDS clusters whose endpoints are not known yet: after a
        restart, Envoy asks at once for the assignments it already has, and an empty placeholder would
        wipe its good endpoints before the first discovery poll (or for as long as it fails)."""
        if delta.cluster_upserts or delta.cluster_removals:
            assignments = self.cache.resources(ENDPOINT_TYPE)
            self._awaited = {
                eds_name
                for name, cluster in self.cache.resources(CLUSTER_TYPE).items()
                if cluster.type == Cluster.EDS  # type: ignore[attr-defined]
                and (eds_name := cluster.eds_cluster_config.service_name or name)  # type: ignore[attr-defined]
                not in assignments
            }
        elif self._awaited and delta.assignment_upserts:
            self._awaited.difference_update(delta.assignment_upserts)
        else:
            return
        self.cache.hold(ENDPOINT_TYPE, self._awaited)

    def _publish(self, delta: Delta) -> None:
        # Clusters first: on ADS the server keeps that order, so Envoy never sees an assignment for a
        # cluster it does not know.
        if delta.cluster_upserts or delta.cluster_removals:
            self.cache.update_resources(CLUSTER_TYPE, delta.cluster_upserts, delta.cluster_removals)
        if delta.assignment_upserts or delta.assignment_removals:
            self.cache.update_resources(ENDPOINT_TYPE, delta.assignment_upserts, delta.assignment_removals)
        self._hold_awaited_assignments(delta)
        self.statuses.update(delta.statuses)
        for (namespace, name), status in delta.statuses.items():
            level = logging.WARNING if status.state == Status.Rejected else logging.INFO
            log.log(
                level,
                "upstream %s",
                Status.State.Name(status.state).lower(),
                extra={"upstream": f"{namespace}.{name}", "reason": status.reason},
            )
