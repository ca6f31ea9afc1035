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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3.health_check_pb2 import HealthStatus
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from google.protobuf import json_format

from gce_plugin import heap, metrics
from gce_plugin.admin_http import AdminServer
from gce_plugin.api import Status, Upstream
from gce_plugin.builtin import default_registry
from gce_plugin.health import EVERYTHING, ConfigHealth, DiscoveryHealth, iso
from gce_plugin.hostport import parse_host_port
from gce_plugin.last_good import EndpointsArchive, UpstreamArchive
from gce_plugin.manifest_watch import ManifestDirectory
from gce_plugin.metrics import UPSTREAM_DISCOVERY_ERRORS
from gce_plugin.paths import DEFAULT_FILE_ROOTS
from gce_plugin.plugins.plugin import (
    DiscoveryError,
    DiscoveryPlugin,
    EndpointsUpdate,
    InitParams,
    Settings,
    UpstreamKey,
    WatchedUpstreams,
    WatchOpts,
    cluster_name,
    upstream_key,
    upstream_label,
)
from gce_plugin.plugins.registry import Registry
from gce_plugin.safe_yaml import DEFAULT_MAX_BYTES
from gce_plugin.sources import ConfigSource, EndpointsSource, LocalDiscovery
from gce_plugin.state import StateStore
from gce_plugin.sync_status import SyncTracker
from gce_plugin.translation.translator import REPORTER, Delta, Translator
from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache, XdsServer
from gce_plugin.xds.security import XdsLimits, XdsTls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    # The manifest directory (unless the control plane is given another ConfigSource).
    config_dir: str = ""
    xds_address: str = "127.0.0.1:18000"
    # None: no metrics/health endpoint.
    admin_address: str | None = "127.0.0.1:9091"
    settings: Settings = field(default_factory=Settings)
    write_namespace: str = "gloo-system"
    # How often the manifest directory is checked for changes.
    manifest_poll_interval: float = 1.0
    # Failure model (docs/operating.md): a larger manifest file is refused.
    max_manifest_bytes: int = DEFAULT_MAX_BYTES
    # None: xDS without TLS (warned about when bound beyond loopback).
    xds_tls: XdsTls | None = None
    xds_limits: XdsLimits = field(default_factory=XdsLimits)
    # Directories under which a cluster may name files for Envoy to open (sslConfig, SDS token files).
    file_roots: tuple[str, ...] = DEFAULT_FILE_ROOTS
    # Where last good manifests, upstreams and endpoints are kept across restarts (None: nowhere).
    state_dir: str | None = None
    # A manifest change is applied once stable this long (0: at once); see manifest_watch.py.
    settle: float = 0.0
    # A discovery poll is cancelled (a failure of every upstream in it) after this many seconds.
    poll_timeout: float = 300.0


@dataclass(frozen=True)
class _Substitute:
    """An upstream that fails validation and has no accepted version in this process, served from
    its last accepted version in the state directory."""

    rejected: Upstream  # the manifest's version
    served: Upstream  # the saved one
    reason: str
    saved_at: float


class ControlPlane:
    """``config``: where upstreams come from (default: ``options.config_dir``); ``endpoints``: where
    endpoints come from (default: this process's discovery). See gce_plugin/sources.py."""

    def __init__(
        self,
        options: Options,
        registry: Registry | None = None,
        *,
        config: ConfigSource | None = None,
        endpoints: EndpointsSource | None = None,
    ) -> None:
        self.options = options
        self.registry = registry or default_registry()
        self.registry.init(InitParams(settings=options.settings))
        self.state = StateStore(options.state_dir) if options.state_dir else None
        self._archive = UpstreamArchive(self.state) if self.state else None
        self._endpoints_archive = EndpointsArchive(self.state) if self.state else None
        self._substitutes: dict[UpstreamKey, _Substitute] = {}
        self._saved: dict[UpstreamKey, Upstream] = {}  # accepted definitions saved in this process
        self.manifests: ConfigSource = config or ManifestDirectory(
            options.config_dir,
            settle=options.settle,
            archive=self._archive,
            max_bytes=options.max_manifest_bytes,
        )
        self.endpoints: EndpointsSource = endpoints or LocalDiscovery()
        self.translator = Translator(self.registry.upstream_plugins(), file_roots=options.file_roots)
        self.cache = SnapshotCache()
        # Operator view: per-Envoy sync state, discovery and manifest health (gce_plugin/health.py).
        self.sync = SyncTracker()
        self.discovery_health = DiscoveryHealth()
        self.config_health = ConfigHealth()
        self._config_seen: object = None  # the manifests' errors dict last recorded
        self.xds = XdsServer(
            self.cache,
            options.xds_address,
            callbacks=self.sync,
            tls=options.xds_tls,
            limits=options.xds_limits,
        )
        self.admin: AdminServer | None = None
        self._ready = False
        self._loaded = asyncio.Event()
        # Gloo-style status per upstream, as translation last reported it.
        self.statuses: dict[UpstreamKey, Status] = {}
        # The upstreams every discovery watch serves: replaced on every manifest change, never by
        # restarting a watch (each one decides what changed for it, see plugins/refresh.py).
        self._watched = WatchedUpstreams()
        self._discovery: list[asyncio.Task[None]] = []
        # For the status page: the upstreams served (their clusters' names are worked out when the page
        # asks: ~3 MiB at 10,000 upstreams not kept for it), and each cluster's endpoints by health.
        self._served: Sequence[Upstream] = ()
        self._endpoint_counts: dict[str, dict[str, int]] = {}

    def ready(self) -> bool:
        return self._ready

    def degraded(self) -> list[str]:
        """What is wrong while the last good config is served (``/readyz``'s body, the status page)."""
        return self.manifests.degraded() + self.config_health.degraded() + self.discovery_health.degraded()

    def status_report(self) -> dict[str, Any]:
        """``{"namespace.name": {"state": "Accepted"|"Rejected", "reason": ..., "reportedBy": ...,
        "discovery": {"lastSuccess": ..., "error": ..., "errorSince": ...}}}``"""
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
        health = self.discovery_health.snapshot()
        sources, stale_files = dict(self.manifests.sources), dict(self.manifests.stale)
        substitutes = dict(self._substitutes)
        cluster_of = {upstream_key(u): cluster_name(u) for u in self._served}
        report: dict[str, Any] = {}
        for key, st in sorted(statuses.items()):
            entry = json_format.MessageToDict(st)
            source = sources.get(key)
            if source in stale_files:
                entry["stale"] = {"file": str(source), "savedAt": iso(stale_files[source])}
            elif key in substitutes:
                sub = substitutes[key]
                saved = iso(sub.saved_at)
                entry["state"] = Status.State.Name(Status.Rejected)
                entry["reason"] = f"{sub.reason} (serving its last accepted version, saved at {saved}: stale)"
                entry["stale"] = {"upstream": True, "savedAt": saved}
            if key in health:
                entry["discovery"] = health[key].as_dict()
            counts = self._endpoint_counts.get(cluster_of.get(key, ""))
            if counts is not None:
                entry["endpoints"] = dict(counts)
            report[upstream_label(key)] = entry
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down gracefully."""
        if self.options.admin_address:
            host, port = parse_host_port(self.options.admin_address)
            self.admin = AdminServer(
                host, port, self.ready, self.status_report, self.degraded, self.sync.report
            )
            self.admin.start()
        metrics.HEALTH.attach(self.discovery_health)
        watcher = asyncio.create_task(self._follow_manifests(), name="manifests")
        config_health = asyncio.create_task(self._follow_config_health(), name="config-health")
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
            for task in (watcher, config_health, stopping, *self._discovery):
                task.cancel()
            await asyncio.gather(watcher, config_health, stopping, *self._discovery, return_exceptions=True)
            metrics.HEALTH.detach(self.discovery_health)
            if self.state is not None:
                await asyncio.to_thread(self.state.flush)
            await self.xds.stop(grace=1.0)
            if self.admin is not None:
                self.admin.stop()
            self.registry.close()

    # -- manifests -> upstreams -> translation ------------------------------------------------------

    async def _follow_manifests(self) -> None:
        async for upstreams in self.manifests.watch(self.options.manifest_poll_interval):
            upstreams = self.apply_upstreams(upstreams)
            self.discovery_health.retain(upstream_key(u) for u in upstreams)
            self._watched.replace(upstreams)
            if not self._discovery:
                heap.freeze_once_loaded()
                self._start_discovery()
            self._loaded.set()
            self._record_config_health()

    def apply_upstreams(self, upstreams: Sequence[Upstream]) -> list[Upstream]:
        """Translate and publish ``upstreams``; return the ones served (an upstream that fails
        validation with no accepted version in this process is served its saved one, see
        ``_substitute``), which discovery is then asked for."""
        served = self._substitute(upstreams, None)
        delta = self.translator.set_upstreams(served)
        again = self._substitute(upstreams, delta)
        present = {upstream_key(u) for u in upstreams}
        self._served = again
        self.statuses = {key: st for key, st in self.statuses.items() if key in present}
        metrics.forget_upstreams({upstream_label(key) for key in present})
        self._publish(delta)
        if again != served:  # newly rejected ones with a saved version: served that instead
            self._publish(self.translator.set_upstreams(again))
        self._remember_accepted(again, present)
        log.info(
            "upstreams applied", extra={"upstreams": len(upstreams), "clusters": len(delta.cluster_upserts)}
        )
        return again

    def _substitute(self, upstreams: Sequence[Upstream], delta: Delta | None) -> list[Upstream]:
        """``upstreams`` with the rejected ones that have no accepted cluster replaced by their last
        accepted version from the state directory (stale). With ``delta``, also look for newly
        rejected ones; without, only keep the substitutes already made."""
        served: list[Upstream] = []
        for upstream in upstreams:
            key = upstream_key(upstream)
            known = self._substitutes.get(key)
            if known is not None and known.rejected == upstream:
                served.append(known.served)
                continue
            self._substitutes.pop(key, None)
            status = delta.statuses.get(key) if delta is not None else None
            if (
                status is not None
                and status.state == Status.Rejected
                and self._archive is not None
                and not self.translator.serving(key)
                and (saved := self._archive.load_upstream(key)) is not None
            ):
                found, saved_at = saved
                self._substitutes[key] = _Substitute(upstream, found, status.reason, saved_at)
                log.error(
                    "upstream rejected; serving its last accepted version saved at %s (stale)",
                    iso(saved_at),
                    extra={"upstream": upstream_label(key), "reason": status.reason},
                )
                served.append(found)
                continue
            served.append(upstream)
        metrics.CONFIG_STALE.labels(kind="upstream").set(len(self._substitutes))
        return served

    def _remember_accepted(self, served: Sequence[Upstream], present: set[UpstreamKey]) -> None:
        """Save every accepted upstream's definition (for ``_substitute`` after a restart); forget
        the ones that left."""
        if self._archive is None:
            return
        for upstream in served:
            key = upstream_key(upstream)
            status = self.statuses.get(key)
            if key in self._substitutes or status is None or status.state != Status.Accepted:
                continue
            if self._saved.get(key) != upstream:
                self._archive.save_upstream(upstream)
                self._saved[key] = upstream
        for key in self._saved.keys() - present:
            self._archive.forget_upstream(key)
            del self._saved[key]

    # -- discovery -> endpoints -> translation ------------------------------------------------------

    def _start_discovery(self) -> None:
        """The endpoints source, for as long as the control plane runs."""
        self._discovery = [asyncio.create_task(self.endpoints.run(self), name="endpoints")]

    def apply_endpoints(self, update: EndpointsUpdate) -> None:
        self._publish(self.translator.set_endpoints(update))
        heap.freeze_after_first_publish()

    async def discover(self, on_update: Callable[[EndpointsUpdate], None]) -> None:
        """One endpoint watch per discovery plugin, until cancelled."""
        watches = [
            asyncio.create_task(self._watch_endpoints(plugin, on_update), name=f"discovery-{plugin.name}")
            for plugin in self.registry.discovery_plugins()
        ]
        try:
            await asyncio.gather(*watches)
        finally:
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)

    async def _watch_endpoints(
        self, plugin: DiscoveryPlugin, on_update: Callable[[EndpointsUpdate], None]
    ) -> None:
        """Feed one plugin's endpoint lists to translation. A watch that ends or crashes (a plugin
        bug) is reported and started again after a refresh interval: endpoints never freeze silently."""
        interval = self.options.settings.refresh_interval
        opts = WatchOpts(
            refresh_interval=interval,
            on_error=self._discovery_error,
            on_success=self._discovery_success,
            poll_timeout=self.options.poll_timeout,
            last_good=self._endpoints_archive,
            on_stale=self.discovery_health.record_stale,
        )
        while True:
            watch = plugin.watch_endpoints(self.options.write_namespace, self._watched, opts)
            try:
                async for update in watch:
                    on_update(update)
                log.error("discovery watch ended; restarting", extra={"plugin": plugin.name})
            except Exception as exc:
                log.exception("discovery watch crashed; restarting", extra={"plugin": plugin.name})
                self._discovery_error(DiscoveryError(f"{plugin.name} discovery crashed: {exc}"))
            finally:
                with contextlib.suppress(Exception):
                    await watch.aclose()
            await asyncio.sleep(interval)

    def _discovery_success(self, key: UpstreamKey) -> None:
        self.discovery_health.record_success(key)

    def _discovery_error(self, err: DiscoveryError) -> None:
        self.discovery_health.record_error(err.upstream or EVERYTHING, str(err))
        UPSTREAM_DISCOVERY_ERRORS.labels(upstream=err.label).inc()
        log.error("discovery failed: %s", err, extra={"upstream": err.label})

    async def _follow_config_health(self) -> None:
        """Record each manifest (re)load's outcome: the directory replaces its ``errors`` dict on
        every load, whether or not the upstreams changed (a broken edit keeps them)."""
        while True:
            self._record_config_health()
            await asyncio.sleep(self.options.manifest_poll_interval)

    def _record_config_health(self) -> None:
        errors = self.manifests.errors
        if errors is self._config_seen or not self._loaded.is_set():
            return
        self._config_seen = errors
        metrics.CONFIG_STALE.labels(kind="file").set(len(self.manifests.stale))
        ok = self.config_health.record(errors)
        metrics.CONFIG_RELOAD_SUCCESSFUL.set(1 if ok else 0)
        if ok:
            metrics.CONFIG_RELOAD_SUCCESS_TIME.set(self.config_health.last_success or 0)

    # -- translation -> snapshot ---------------------------------------------------------------------

    def _count_endpoints(self, delta: Delta) -> None:
        counts = dict(self._endpoint_counts)  # replaced, not mutated: the admin thread reads it
        for name in delta.assignment_removals:
            counts.pop(name, None)
        for name, cla in delta.assignment_upserts.items():
            counts[name] = _by_health(cla)
        self._endpoint_counts = counts

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
        self._count_endpoints(delta)
        for type_url in (CLUSTER_TYPE, ENDPOINT_TYPE):
            self.sync.set_latest(type_url, self.cache.version(type_url))
        self.statuses.update(delta.statuses)
        if delta.statuses:
            self.endpoints.statuses_changed(delta.statuses)
        for key, status in delta.statuses.items():
            level = logging.WARNING if status.state == Status.Rejected else logging.INFO
            log.log(
                level,
                "upstream %s",
                Status.State.Name(status.state).lower(),
                extra={"upstream": upstream_label(key), "reason": status.reason},
            )


# HealthStatus value -> name, looked up once (``HealthStatus.Name`` per endpoint was ~9% of
# publishing a first answer of 100,000 endpoints).
_HEALTH_NAMES: dict[int, str] = {value: HealthStatus.Name(value) for value in HealthStatus.values()}


def _by_health(cla: ClusterLoadAssignment) -> dict[str, int]:
    """An assignment's endpoints counted by health status name, and in all (``total``)."""
    by_health = {"total": 0}
    for locality in cla.endpoints:
        for lb in locality.lb_endpoints:
            health = _HEALTH_NAMES.get(lb.health_status) or HealthStatus.Name(lb.health_status)
            by_health[health] = by_health.get(health, 0) + 1
        by_health["total"] += len(locality.lb_endpoints)
    return by_health
