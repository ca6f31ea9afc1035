"""One replica of a replicated control plane (``gce-plugin run --store``): its config source and
its endpoints source (gce_plugin/sources.py), both on etcd.

Config: ``UpstreamWatch`` (watch.py): the upstreams at each revision, a bad key reported with its key
named and its last good version kept; while etcd is unreachable nothing changes and ``degraded``
says so.

Endpoints: every replica, the leader included, translates what is published in etcd
(``EndpointsWatch``), applied as the same ``EndpointsUpdate`` answers local discovery gives: equal
content, equal versions, equal xDS resources on every replica, and nothing served that etcd does
not hold (a leader cut off from etcd does not serve answers the others cannot see). Every replica
campaigns (leader.py); the **leader** also runs this process's discovery (the only replica that
calls the Compute API) and publishes each answer into etcd, one key per upstream, only what
changed, in fenced writes; it also writes each upstream's status (Accepted/Rejected, reason,
observed resourceVersion) under its own key, never the user's Upstream key (so a status write
triggers no re-translation and overwrites no concurrent edit), and deletes the keys of upstreams
that were deleted. A leader that loses its lease (etcd unreachable for a TTL, a pause past it) or
has a write refused stops polling at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType

from gce_plugin import metrics
from gce_plugin.api import Endpoint, Status, Upstream
from gce_plugin.last_good import unpack
from gce_plugin.manifests import ManifestError
from gce_plugin.plugins.plugin import EndpointsUpdate, UpstreamEndpoints, UpstreamKey
from gce_plugin.sources import LocalEndpoints
from gce_plugin.store.client import EtcdClient, EtcdError
from gce_plugin.store.layout import Layout, UpstreamRef
from gce_plugin.store.leader import DEFAULT_TTL, Deposed, Election, Leadership, PublishedEndpoints, Publisher
from gce_plugin.store.watch import EndpointsWatch, Health, UpstreamConfig, UpstreamWatch
from gce_plugin.translation.translator import REPORTER

log = logging.getLogger(__name__)

RETRY = 0.5  # seconds between attempts of a failed etcd write or campaign


def publish(found: UpstreamEndpoints) -> PublishedEndpoints:
    """One upstream's endpoints as the leader publishes them: each Endpoint's deterministic
    serialization, length-prefixed, in the order of ``UpstreamEndpoints`` (its version kept)."""
    return PublishedEndpoints(found.version, found.serialized)  # kept in exactly that form


def unpublish(item: PublishedEndpoints) -> UpstreamEndpoints:
    """The endpoints of a published value. Raises ValueError (not such a value, or its version
    does not match its content)."""
    try:
        found = UpstreamEndpoints.of([Endpoint.FromString(chunk) for chunk in unpack(item.data)])
    except ValueError as err:
        raise ValueError(f"truncated endpoint ({err})") from None
    except Exception as err:  # protobuf's DecodeError
        raise ValueError(f"bad endpoint: {err}") from None
    if found.version != item.version:
        raise ValueError(f"version {item.version} does not match the content ({found.version})")
    return found


class StoreReplica:
    """``ConfigSource`` and ``EndpointsSource`` of a replica (see the module docstring)."""

    def __init__(
        self, client: EtcdClient, layout: Layout, identity: str, *, lease_ttl: int = DEFAULT_TTL
    ) -> None:
        self.client = client
        self.layout = layout
        self.identity = identity
        self.config_watch = UpstreamWatch(client, layout, on_health=self._on_health)
        self.election = Election(client, identity, layout=layout, ttl=lease_ttl)
        self.publisher = Publisher(client, layout)
        self.errors: Mapping[str, str] = MappingProxyType({})
        self.duplicates: Mapping[UpstreamKey, list[ManifestError]] = MappingProxyType({})
        # The store keeps a bad key's last good version itself (its earlier revisions): no file is
        # ever served from the state directory here.
        self.sources: Mapping[UpstreamKey, str] = MappingProxyType({})
        self.stale: Mapping[str, float] = MappingProxyType({})
        self.config: UpstreamConfig | None = None
        self.leadership: Leadership | None = None
        self._statuses: dict[UpstreamRef, Status] = {}  # as translation last reported them
        # What the leader still has to write (None: delete the key); the writer takes them.
        self._pending_endpoints: dict[UpstreamRef, PublishedEndpoints | None] = {}
        self._pending_statuses: dict[UpstreamRef, tuple[Status, str] | None] = {}
        self._wake = asyncio.Event()

    # -- config source ------------------------------------------------------------------------------

    def _on_health(self, health: Health) -> None:
        metrics.STORE_REACHABLE.set(1 if health.reachable else 0)

    def degraded(self) -> list[str]:
        health = self.config_watch.health
        if health.reachable:
            return []
        return [f"etcd unreachable ({health.reason}): serving the last good config"]

    async def watch(self, interval: float) -> AsyncIterator[list[Upstream]]:
        """The upstreams at each revision that changes them (``interval`` is unused: etcd pushes)."""
        served: dict[UpstreamRef, str] | None = None
        async for config in self.config_watch.configs():
            previous, self.config = self.config, config
            self.errors = MappingProxyType(
                {self.layout.upstream(*ref).decode(): str(err) for ref, err in config.errors.items()}
            )
            self._config_changed(previous, config)
            versions = {ref: u.metadata.resource_version for ref, u in config.upstreams.items()}
            if versions != served:
                served = versions
                yield [config.upstreams[ref] for ref in sorted(config.upstreams)]

    def _config_changed(self, previous: UpstreamConfig | None, config: UpstreamConfig) -> None:
        """The leader's share of a config change: statuses of changed or broken keys; the keys of
        upstreams that are gone deleted."""
        if self.leadership is None:
            return
        before = _judged(previous)
        after = _judged(config)
        for ref in before.keys() - after.keys():
            self._pending_endpoints[ref] = None
            self._pending_statuses[ref] = None
        for ref in after:
            if before.get(ref) != after[ref]:
                self._queue_status(ref)
        self._wake.set()

    def _status_of(self, ref: UpstreamRef) -> tuple[Status, str] | None:
        """What the leader writes for ``ref``: the error of a broken key, else translation's status
        with the resourceVersion it judged. None while neither is known."""
        config = self.config
        if config is None:
            return None
        error = config.errors.get(ref)
        if error is not None:
            return Status(state=Status.Rejected, reason=str(error), reported_by=REPORTER), ""
        status = self._statuses.get(ref)
        upstream = config.upstreams.get(ref)
        if status is None or upstream is None:
            return None
        return status, upstream.metadata.resource_version

    def _queue_status(self, ref: UpstreamRef) -> None:
        item = self._status_of(ref)
        if item is not None:
            self._pending_statuses[ref] = item

    def statuses_changed(self, statuses: Mapping[UpstreamKey, Status]) -> None:
        self._statuses.update(statuses)
        if self.leadership is not None:
            for ref in statuses:
                self._queue_status(ref)
            self._wake.set()

    # -- endpoints source ---------------------------------------------------------------------------

    async def run(self, local: LocalEndpoints) -> None:
        """Apply the published endpoints; campaign, lead when elected, again; until cancelled."""
        follower = asyncio.create_task(self._follow(local), name="follow-endpoints")
        try:
            while True:
                leadership = await self._campaign()
                await self._lead(local, leadership)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    async def _campaign(self) -> Leadership:
        while True:
            try:
                return await self.election.campaign(retry=RETRY)
            except EtcdError as err:
                log.warning("election: %s", err)
                await asyncio.sleep(RETRY)

    async def _follow(self, local: LocalEndpoints) -> None:
        """Apply what the leader published, as discovery answers."""
        last: EndpointsUpdate | None = None
        known: dict[UpstreamRef, tuple[str, UpstreamEndpoints]] = {}
        async for state in EndpointsWatch(self.client, self.layout).states():
            upstreams: dict[UpstreamKey, UpstreamEndpoints] = {}
            for ref, item in state.endpoints.items():
                cached = known.get(ref)
                if cached is not None and cached[0] == item.version:
                    upstreams[ref] = cached[1]
                    continue
                try:
                    upstreams[ref] = unpublish(item)
                except ValueError as err:
                    log.error("published endpoints %s: %s", self.layout.endpoints(*ref).decode(), err)
            known = {ref: (found.version, found) for ref, found in upstreams.items()}
            update = EndpointsUpdate.first(upstreams) if last is None else last.next(upstreams)
            if last is None or update.changed or update.removed:
                local.apply_endpoints(update)
            last = update

    async def _lead(self, local: LocalEndpoints, leadership: Leadership) -> None:
        """Poll and publish until leadership is lost (or the task is cancelled)."""
        self.leadership = leadership
        metrics.LEADER.set(1)
        tasks: list[asyncio.Task[None]] = []
        try:
            if not await self._load(leadership):
                return
            tasks = [
                asyncio.create_task(local.discover(self._discovered), name="discovery"),
                asyncio.create_task(self._write(leadership), name="publish"),
                asyncio.create_task(_wait(leadership.lost), name="lease"),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("leader task %s failed", task.get_name(), exc_info=task.exception())
            log.warning("%s stops leading", self.identity)
        finally:
            self.leadership = None
            metrics.LEADER.set(0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._pending_endpoints.clear()
            self._pending_statuses.clear()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self.election.resign(leadership)

    async def _load(self, leadership: Leadership) -> bool:
        """A new leader learns what is published, then queues what differs: every status, and the
        deletion of keys of upstreams that are gone. False when leadership was lost meanwhile."""
        while not leadership.lost.is_set():
            try:
                await self.publisher.load()
                break
            except EtcdError as err:
                log.warning("leader: cannot read what is published: %s", err)
                await asyncio.sleep(RETRY)
        else:
            return False
        present = set(self.config.upstreams) | set(self.config.errors) if self.config else set()
        for ref in self.publisher.stored(self.layout.endpoints_dir) - present:
            self._pending_endpoints[ref] = None
        for ref in self.publisher.stored(self.layout.statuses_dir) - present:
            self._pending_statuses[ref] = None
        for ref in present:
            self._queue_status(ref)
        self._wake.set()
        return True

    def _discovered(self, update: EndpointsUpdate) -> None:
        """One answer of this (leading) process's discovery: queue what changed."""
        present = set(self.config.upstreams) if self.config else set()
        for ref in update.changed:
            self._pending_endpoints[ref] = publish(update.upstreams[ref])
        for ref in update.removed - present:  # left the watch because it left the config
            self._pending_endpoints[ref] = None
        self._wake.set()

    async def _write(self, leadership: Leadership) -> None:
        """Write what is queued, fenced; keep it queued while etcd is unreachable. Returns when
        a write is refused (this replica is deposed)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            endpoints, self._pending_endpoints = self._pending_endpoints, {}
            statuses, self._pending_statuses = self._pending_statuses, {}
            try:
                written = await self.publisher.publish_endpoints(leadership, endpoints)
                metrics.STORE_WRITES.labels(kind="endpoints").inc(written)
                written = await self.publisher.publish_statuses(leadership, statuses)
                metrics.STORE_WRITES.labels(kind="statuses").inc(written)
            except Deposed as err:
                metrics.STORE_WRITES_REFUSED.inc()
                log.warning("leader write refused: %s", err)
                return
            except EtcdError as err:
                log.warning("leader write failed, will retry: %s", err)
                # Newer values queued meanwhile win over the ones that failed.
                self._pending_endpoints = {**endpoints, **self._pending_endpoints}
                self._pending_statuses = {**statuses, **self._pending_statuses}
                await asyncio.sleep(RETRY)
                self._wake.set()


def _judged(config: UpstreamConfig | None) -> dict[UpstreamRef, str]:
    """ref -> what its status depends on: the resourceVersion served, or the error of its key."""
    if config is None:
        return {}
    judged = {ref: u.metadata.resource_version for ref, u in config.upstreams.items()}
    judged.update({ref: f"error: {err}" for ref, err in config.errors.items()})
    return judged


async def _wait(event: asyncio.Event) -> None:
    await event.wait()
