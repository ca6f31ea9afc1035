"""Upstreams + discovered endpoints -> Envoy v3 Clusters and ClusterLoadAssignments.

``translate_upstream`` builds one upstream's cluster as Gloo's translator does: defaults, then every
``UpstreamPlugin`` in registry order, then the options all upstream types share. ``Translator`` keeps
the result per upstream so updates are incremental: ``set_upstreams`` re-translates only upstreams
whose definition changed, ``set_endpoints`` rebuilds only the assignments of the upstreams a
discovery answer says changed (``EndpointsUpdate.changed``; it reads nothing else, and of those
only the endpoints it has not seen: ``KnownEndpoints``), and each returns
a ``Delta`` (resource name -> message upserts, and removals) for the xDS cache.

An upstream that fails to translate is reported Gloo-style (``Status`` Rejected, with the reason) and
gets no cluster; if it had been accepted before, its last accepted cluster keeps being served, so a bad
edit loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from prometheus_client import Counter

from gce_plugin import metrics
from gce_plugin.api import Status, Upstream
from gce_plugin.paths import DEFAULT_FILE_ROOTS
from gce_plugin.plugins.plugin import (
    EndpointsUpdate,
    Params,
    UpstreamKey,
    UpstreamPlugin,
    cluster_name,
    discovery_target,
    upstream_key,
    upstream_label,
)
from gce_plugin.redact import clip
from gce_plugin.translation.endpoints import (
    EndpointRecord,
    KnownEndpoints,
    build_assignment,
    canonical,
    gc_paused,
)
from gce_plugin.translation.file_policy import check_files
from gce_plugin.translation.options import DEFAULT_CONNECT_TIMEOUT, apply_upstream_options

log = logging.getLogger(__name__)

REPORTER = "gce-plugin"
# Updates of fewer upstreams than this build too few objects to be worth pausing the cyclic GC.
_FEW = 64
# Cluster types whose endpoints must come inline, in the cluster's load_assignment.
_INLINE_ENDPOINT_TYPES = (Cluster.STATIC, Cluster.STRICT_DNS, Cluster.LOGICAL_DNS)


def translate_upstream(
    plugins: Sequence[UpstreamPlugin],
    params: Params,
    upstream: Upstream,
    file_roots: Sequence[str] = DEFAULT_FILE_ROOTS,
) -> Cluster:
    """The cluster of one upstream. Raises ValueError with a reason a user can act on. Files the
    cluster makes Envoy open must lie under ``file_roots``."""
    if not upstream.metadata.name:
        raise ValueError("metadata.name is empty")
    cluster = Cluster(name=cluster_name(upstream))
    cluster.connect_timeout.CopyFrom(DEFAULT_CONNECT_TIMEOUT)
    for plugin in plugins:
        try:
            plugin.process_upstream(params, upstream, cluster)
        except ValueError:
            raise
        except Exception as err:  # a plugin bug fails this upstream only, with a reason that says so
            name, label = _plugin_name(plugin), upstream_label(upstream_key(upstream))
            log.exception("plugin %s failed", name, extra={"upstream": label})
            raise ValueError(f"internal error in plugin {name}: {err!r}") from err
    apply_upstream_options(upstream.upstream_spec, cluster)
    _check_cluster(upstream, cluster)
    check_files(cluster, file_roots)
    return cluster


def _check_cluster(upstream: Upstream, cluster: Cluster) -> None:
    # Gloo's validateCluster: a cluster that needs inline endpoints but has none is useless, and is
    # also what an upstream type no plugin handles ends up as.
    if cluster.type in _INLINE_ENDPOINT_TYPES and not any(
        locality.lb_endpoints for locality in cluster.load_assignment.endpoints
    ):
        kind = upstream.upstream_spec.WhichOneof("upstream_type")
        if kind is None:
            raise ValueError("upstream_spec has no upstream type")
        raise ValueError(
            f"cluster type {Cluster.DiscoveryType.Name(cluster.type)} has no endpoints: "
            f"is upstream type {kind!r} supported by a plugin?"
        )


@dataclass(frozen=True)
class Result:
    """Everything translated: clusters and assignments by resource name, statuses by upstream."""

    clusters: dict[str, Cluster]
    assignments: dict[str, ClusterLoadAssignment]
    statuses: dict[UpstreamKey, Status]


@dataclass
class Delta:
    """What one update changed, by resource name, for ``update_resources(type_url, upserts, removals)``.

    ``statuses`` holds the upstreams whose status is new or different (removed upstreams have none).
    The messages are the translator's own: treat them as read-only.
    """

    cluster_upserts: dict[str, Cluster] = field(default_factory=dict)
    cluster_removals: set[str] = field(default_factory=set)
    assignment_upserts: dict[str, ClusterLoadAssignment] = field(default_factory=dict)
    assignment_removals: set[str] = field(default_factory=set)
    statuses: dict[UpstreamKey, Status] = field(default_factory=dict)
    # The complete set of assignment names to hold (``SnapshotCache.hold``) when it changed with this
    # update, else None: the EDS clusters being served whose endpoints discovery has not answered.
    held: frozenset[str] | None = None

    # A name is never both upserted and removed: the later change wins.
    def upsert_cluster(self, cluster: Cluster) -> None:
        self.cluster_removals.discard(cluster.name)
        self.cluster_upserts[cluster.name] = cluster

    def remove_cluster(self, name: str) -> None:
        self.cluster_upserts.pop(name, None)
        self.cluster_removals.add(name)

    def upsert_assignment(self, assignment: ClusterLoadAssignment) -> None:
        self.assignment_removals.discard(assignment.cluster_name)
        self.assignment_upserts[assignment.cluster_name] = assignment

    def remove_assignment(self, name: str) -> None:
        self.assignment_upserts.pop(name, None)
        self.assignment_removals.add(name)


@dataclass
class _UpstreamState:
    name: str
    # What the upstream was translated from; None forces a retry on the next set_upstreams.
    fingerprint: tuple[bytes, bytes] | None
    # The cluster being served: the last accepted translation.
    cluster: Cluster | None
    status: Status
    # What discovery looks for: the upstream type and its spec (see discovery_target).
    target: bytes = b""


class Translator:
    """Incremental translation state. Not thread-safe: use it from one task."""

    def __init__(
        self,
        plugins: Sequence[UpstreamPlugin],
        reporter: str = REPORTER,
        *,
        file_roots: Sequence[str] = DEFAULT_FILE_ROOTS,
        _record_metrics: bool = True,
    ) -> None:
        self._plugins = list(plugins)
        self._file_roots = tuple(file_roots)
        self._reporter = reporter
        self._record_metrics = _record_metrics
        self._upstreams: dict[UpstreamKey, _UpstreamState] = {}
        self._owners: dict[str, UpstreamKey] = {}  # cluster name -> the upstream serving it
        # Known endpoints per upstream (discovery has answered for it): its answer and records.
        self._endpoints: dict[UpstreamKey, KnownEndpoints] = {}
        # Published assignments per upstream: the records they were built from and their name. The
        # message itself goes to the cache in the Delta and is not kept here (``result`` rebuilds it).
        self._assignments: dict[UpstreamKey, tuple[tuple[EndpointRecord, ...], str]] = {}
        # Assignment messages ``result`` built, kept until the assignment changes (so asking twice
        # gives the same messages); empty unless someone asked (the control plane never does).
        self._built: dict[UpstreamKey, ClusterLoadAssignment] = {}
        # The EDS warming rule, decided here: per upstream, the assignment name its EDS cluster asks
        # for while no assignment of that name is published (discovery has not answered for it).
        self._awaited: dict[UpstreamKey, str] = {}
        self._counters: dict[str, Counter] = {}

    def serving(self, key: UpstreamKey) -> bool:
        """Whether a cluster is served for ``key`` (it was accepted at least once)."""
        state = self._upstreams.get(key)
        return state is not None and state.cluster is not None

    def held(self) -> frozenset[str]:
        """The assignment names to hold: EDS clusters served without an assignment yet."""
        return frozenset(self._awaited.values())

    # -- one-shot ---------------------------------------------------------------------------------

    def translate_upstream(self, params: Params, upstream: Upstream) -> Cluster:
        return translate_upstream(self._plugins, params, upstream, self._file_roots)

    def translate(self, upstreams: Sequence[Upstream], endpoints: EndpointsUpdate | None = None) -> Result:
        """A full translation from scratch (every upstream of ``endpoints`` read, changed or not);
        leaves this translator's own state alone."""
        fresh = Translator(self._plugins, self._reporter, file_roots=self._file_roots, _record_metrics=False)
        fresh.set_upstreams(upstreams)
        if endpoints is not None:
            delta = Delta()
            with gc_paused():
                fresh._apply(endpoints, endpoints.upstreams, delta)
            # The assignments just built are the result's: kept, not built a second time.
            for key, (_, name) in fresh._assignments.items():
                built = delta.assignment_upserts.get(name)
                if built is not None:
                    fresh._built[key] = built
        metrics.TRANSLATIONS.labels(kind="full").inc()
        return fresh.result()

    # -- incremental ------------------------------------------------------------------------------

    def set_upstreams(self, upstreams: Sequence[Upstream]) -> Delta:
        """Make ``upstreams`` the full set: translate new and changed ones, drop removed ones."""
        before = self.held()
        with gc_paused():
            delta = self._set_upstreams(upstreams)
        self._note_held(before, delta)
        self._count("incremental")
        if self._record_metrics:
            metrics.UPSTREAMS_REJECTED.set(
                sum(1 for s in self._upstreams.values() if s.status.state == Status.Rejected)
            )
        return delta

    def _set_upstreams(self, upstreams: Sequence[Upstream]) -> Delta:
        delta = Delta()
        incoming: dict[UpstreamKey, Upstream] = {}
        for upstream in upstreams:
            key = upstream_key(upstream)
            if key in incoming:
                log.warning("duplicate upstream; the last one wins", extra={"upstream": upstream_label(key)})
            incoming[key] = upstream
        for key in self._upstreams.keys() - incoming.keys():
            self._remove_upstream(key, delta)
        params = Params(upstreams=tuple(incoming.values()))
        # Sorted, so when two upstreams map to one cluster name the same one wins every time.
        for key in sorted(incoming):
            upstream = incoming[key]
            fingerprint = _fingerprint(upstream)
            state = self._upstreams.get(key)
            if state is None or state.fingerprint != fingerprint:
                target = discovery_target(upstream)
                if state is not None and state.target != target:
                    # Another type, group or selector: the endpoints known so far were found for the
                    # old one. The assignment being served stays until discovery answers for the new
                    # target, so an edit never empties a cluster by itself.
                    self._forget_endpoints(key)
                self._translate(key, upstream, fingerprint, params, delta)
                self._upstreams[key].target = target
        return delta

    def set_endpoints(self, update: EndpointsUpdate) -> Delta:
        """Apply one discovery answer: the upstreams it says changed get exactly their endpoints
        (unless their version is the one already applied); nothing else is read, so the cost grows
        with what changed. Upstreams it does not answer for keep theirs, so an unfinished or failed
        discovery never replaces good endpoints with none (``removed`` ones included: an upstream
        that left the watch either left the manifests too, and ``set_upstreams`` dropped it, or
        awaits the answer of the watch it moved to)."""
        delta = Delta()
        before = self.held() if self._awaited else None
        if len(update.changed) < _FEW:
            self._apply(update, update.changed, delta)
        else:
            with gc_paused():
                self._apply(update, update.changed, delta)
        if before is not None:
            self._note_held(before, delta)
        self._count("incremental")
        return delta

    def _apply(self, update: EndpointsUpdate, keys: Iterable[UpstreamKey], delta: Delta) -> None:
        endpoints = self._endpoints
        for key in keys:
            found = update.upstreams[key]
            previous = endpoints.get(key)
            if previous is not None and previous.found.version == found.version:
                continue
            endpoints[key] = KnownEndpoints.read(found, previous)
            state = self._upstreams.get(key)
            if state is not None:
                self._sync_assignment(key, state, delta)

    def result(self) -> Result:
        """The current state, as served."""
        clusters = {s.name: s.cluster for s in self._upstreams.values() if s.cluster is not None}
        assignments = {}
        for key, (records, name) in self._assignments.items():
            built = self._built.get(key)
            if built is None:
                built = self._built[key] = build_assignment(name, records, upstream=upstream_label(key))
            assignments[name] = built
        statuses = {key: s.status for key, s in self._upstreams.items()}
        return Result(clusters=clusters, assignments=assignments, statuses=statuses)

    # -- internals --------------------------------------------------------------------------------

    def _translate(
        self,
        key: UpstreamKey,
        upstream: Upstream,
        fingerprint: tuple[bytes, bytes],
        params: Params,
        delta: Delta,
    ) -> None:
        name = cluster_name(upstream)
        state = self._upstreams.get(key)
        if state is None:
            state = self._upstreams[key] = _UpstreamState(name, None, None, Status())
        owner = self._owners.get(name)
        if owner is not None and owner != key:
            state.fingerprint = None  # retried once the owner is gone
            reason = f"cluster name {name!r} is already used by upstream {upstream_label(owner)}"
            self._set_status(key, state, self._rejected(reason), delta)
            return
        try:
            cluster = translate_upstream(self._plugins, params, upstream, self._file_roots)
        except ValueError as err:
            state.fingerprint = fingerprint  # unchanged and still invalid: not retried
            reason = str(err)
            if state.cluster is not None:
                reason += " (still serving the last accepted version)"
            log.debug("upstream rejected: %s", reason, extra={"upstream": upstream_label(key)})
            self._set_status(key, state, self._rejected(reason), delta)
            return
        state.fingerprint = fingerprint
        self._owners[name] = key
        if state.cluster != cluster:
            state.cluster = cluster
            delta.upsert_cluster(cluster)
        self._set_status(key, state, Status(state=Status.Accepted, reported_by=self._reporter), delta)
        self._sync_assignment(key, state, delta)

    def _note_held(self, before: frozenset[str], delta: Delta) -> None:
        after = self.held()
        if after != before:
            delta.held = after

    def _rejected(self, reason: str) -> Status:
        # Bounded: a reason may quote manifest values (shown in /statuses and logs).
        return Status(state=Status.Rejected, reason=clip(reason, 1000), reported_by=self._reporter)

    @staticmethod
    def _set_status(key: UpstreamKey, state: _UpstreamState, status: Status, delta: Delta) -> None:
        if state.status != status:
            state.status = status
            delta.statuses[key] = status

    def _remove_upstream(self, key: UpstreamKey, delta: Delta) -> None:
        state = self._upstreams.pop(key)
        if state.cluster is not None:
            delta.remove_cluster(state.name)
        if self._owners.get(state.name) == key:
            del self._owners[state.name]
        published = self._assignments.pop(key, None)
        self._built.pop(key, None)
        if published is not None:
            delta.remove_assignment(published[1])
        self._awaited.pop(key, None)
        # A re-added upstream waits for discovery again rather than trusting old endpoints.
        self._forget_endpoints(key)

    def _forget_endpoints(self, key: UpstreamKey) -> None:
        self._endpoints.pop(key, None)

    def _sync_assignment(self, key: UpstreamKey, state: _UpstreamState, delta: Delta) -> None:
        """Publish, rebuild or withdraw the assignment of one upstream, as its cluster and endpoints
        say; then note whether its EDS cluster awaits one."""
        if state.cluster is None or state.cluster.type != Cluster.EDS:
            published = self._assignments.pop(key, None)
            self._built.pop(key, None)
            if published is not None:
                delta.remove_assignment(published[1])
            self._awaited.pop(key, None)
            return
        # EDS asks for a cluster's endpoints by its service_name when it has one.
        name = state.cluster.eds_cluster_config.service_name or state.name
        self._publish_assignment(key, name, delta)
        published = self._assignments.get(key)
        if published is not None and published[1] == name:
            self._awaited.pop(key, None)
        else:
            self._awaited[key] = name

    def _publish_assignment(self, key: UpstreamKey, name: str, delta: Delta) -> None:
        published = self._assignments.get(key)
        known = self._endpoints.get(key)
        if known is None:
            return  # discovery has not answered for it yet: publish nothing rather than nothing known
        records = canonical(known.records)
        if published is not None:
            if published[0] == records and published[1] == name:
                return
            if published[1] != name:
                delta.remove_assignment(published[1])
        assignment = build_assignment(name, records, upstream=upstream_label(key))
        self._assignments[key] = (records, name)
        self._built.pop(key, None)
        delta.upsert_assignment(assignment)

    def _count(self, kind: str) -> None:
        if self._record_metrics:
            counter = self._counters.get(kind)
            if counter is None:  # the labelled child, looked up once (labels() costs more than inc())
                counter = self._counters[kind] = metrics.TRANSLATIONS.labels(kind=kind)
            counter.inc()


def _fingerprint(upstream: Upstream) -> tuple[bytes, bytes]:
    # Everything a plugin may read except the status (which translation itself reports).
    return (
        upstream.upstream_spec.SerializeToString(deterministic=True),
        upstream.metadata.SerializeToString(deterministic=True),
    )


def _plugin_name(plugin: UpstreamPlugin) -> str:
    return plugin.name or type(plugin).__name__
