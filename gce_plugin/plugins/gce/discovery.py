"""GCE endpoint discovery: instance groups -> their RUNNING VMs -> ``Endpoint``s, by polling the
Compute Engine API (after Prometheus's GCE service discovery: poll, list, turn each VM into a target).

One poll cycle, for all gce upstreams at once:

1. **Locate** each distinct (project, location, group). ``instance_group_region`` is a zone
   (``us-central1-a``: a zonal group, ``instanceGroups.get``) or a region (``us-central1``: the
   regional group of that name, ``regionInstanceGroups.get``; if there is none, the zonal groups of
   that name in the region's zones, from one ``instanceGroups.aggregatedList`` with a name filter —
   two calls, where ``regions.get`` plus ``instanceGroups.get`` per zone would be four or more;
   several zones with a same-named group all serve the upstream). A location is told from a region
   by its form: zones are ``<region>-<letter>``, so they have two or more dashes. Locations (with
   named ports) are cached for ``location_ttl``; a 404 on a cached group drops that group from its
   location, and the location once none of its groups is left.
2. **List members** of each distinct group once (``listInstances``, RUNNING only), and **list
   instances** of each distinct (project, zone) once (``instances.list``), for every group and
   upstream in that zone: calls per cycle grow with distinct groups and zones, not with upstreams.
   Zonal groups' zones are known up front and listed alongside the members; zones that only the
   members of regional groups reveal are listed right after. Independent calls run concurrently on
   a bounded thread pool. Per-zone ``instances.list`` rather than ``instances.aggregatedList``: it
   walks only the zones that matter instead of every instance of the project.
3. **Join** members to instances by instance URL (its path from ``projects/`` on, so hosts do not
   matter; never one ``instances.get`` per VM), then per upstream: label selector, address
   (INTERNAL: the first NIC's ``networkIP``; EXTERNAL: its first access config's ``natIP``; an
   instance without one is skipped with a warning) and port (explicit ``port``; else the named port
   ``port_name``, an error when the group has none; else the group's ``http`` named port; else 80).

Faults stay local. An upstream whose group or zone failed keeps its last good endpoints and gets an
error; the others go on. A group that no longer exists (404) is reported ("instance group X not
found in project P zone Z"). If it was one of several zonal groups a region resolved to, the
upstream keeps the others' endpoints; once every group of its location is gone, it resolves to zero
endpoints ("... region R"): the user deleted it.

Endpoint names: ``<upstream name>-<instance name>-<8 hex digits>``, where the digits hash the
upstream's namespace and name and the instance's project, zone and name: readable, unique per
upstream and instance (instance names repeat across zones, upstream names across namespaces) and
stable across polls. Instance labels become endpoint labels; id, name, zone, project and group are
annotations under ``gce.solo.io/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gce_plugin import metrics
from gce_plugin.api import Endpoint, GceUpstreamSpec, ResourceRef, Upstream
from gce_plugin.plugins.gce.compute import ComputeClient, ComputeError, JsonObject
from gce_plugin.plugins.plugin import DiscoveryError, EndpointList, UpstreamKey, WatchOpts, upstream_key

log = logging.getLogger(__name__)

PLUGIN = "gce"
DEFAULT_PORT = 80
DEFAULT_PORT_NAME = "http"
ANNOTATION_PREFIX = "gce.solo.io/"
MAX_CONCURRENT_CALLS = 8
DEFAULT_LOCATION_TTL = 600.0

T = TypeVar("T")


# --- what an upstream asks for ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A gce upstream's spec, validated."""

    key: UpstreamKey
    project: str
    location: str
    group: str
    port: int
    port_name: str
    external: bool
    selector: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        """``namespace.name``: how logs and metrics name the upstream."""
        return f"{self.key[0]}.{self.key[1]}"


def is_gce(upstream: Upstream) -> bool:
    return upstream.upstream_spec.WhichOneof("upstream_type") == "gce"


def is_zone(location: str) -> bool:
    """Zones are ``<region>-<letter(s)>`` (``us-central1-a``); regions have one dash (``us-central1``)."""
    return location.count("-") >= 2


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


_LOCATION = re.compile(r"^[a-z]+(-[a-z0-9]+)+$")


def parse_target(upstream: Upstream) -> Target:
    """The validated target of a gce upstream; ValueError with the reason when it is invalid."""
    spec = upstream.upstream_spec.gce
    missing = [
        name
        for name, value in (
            ("instanceGroupName", spec.instance_group_name),
            ("instanceGroupRegion", spec.instance_group_region),
            ("projectId", spec.projectId),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"gce upstream: {', '.join(missing)} required")
    if not _LOCATION.match(spec.instance_group_region):
        raise ValueError(
            f"gce upstream: instanceGroupRegion {spec.instance_group_region!r} is neither a region "
            "(e.g. us-central1) nor a zone (e.g. us-central1-a)"
        )
    if spec.port > 65535:
        raise ValueError(f"gce upstream: port {spec.port} out of range (1-65535)")
    return Target(
        key=upstream_key(upstream),
        project=spec.projectId,
        location=spec.instance_group_region,
        group=spec.instance_group_name,
        port=spec.port,
        port_name=spec.port_name,
        external=spec.address_type == GceUpstreamSpec.EXTERNAL,
        selector=tuple(sorted(spec.label_selector.items())),
    )


# --- where groups are ------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class GroupRef:
    """One instance group: ``scope`` is "zones" or "regions", ``location`` the zone or region."""

    project: str
    scope: str
    location: str
    name: str


@dataclass(frozen=True)
class Group:
    ref: GroupRef
    named_ports: tuple[tuple[str, int], ...]


class GroupNotFound(Exception):
    """The group does not exist (HTTP 404): the upstream has no endpoints."""


def _group_text(target: Target) -> str:
    kind = "zone" if is_zone(target.location) else "region"
    return f"instance group {target.group} in project {target.project} {kind} {target.location}"


def _describe(project: str, location: str, name: str) -> str:
    kind = "zone" if is_zone(location) else "region"
    return f"instance group {name} not found in project {project} {kind} {location}"


def _named_ports(resource: JsonObject) -> tuple[tuple[str, int], ...]:
    return tuple((str(p.get("name", "")), int(p.get("port", 0))) for p in resource.get("namedPorts") or [])


def url_path(url: str) -> str:
    """An API URL's path from ``projects/`` on: the same resource whatever host named it."""
    index = url.find("projects/")
    return url[index:] if index >= 0 else url


NO_ZONE = ("", "")


def zone_of_instance(url: str) -> tuple[str, str]:
    """(project, zone) of an instance URL ``.../projects/P/zones/Z/instances/N``, else NO_ZONE."""
    parts = url_path(url).split("/")
    if len(parts) < 6 or parts[0] != "projects" or parts[2] != "zones":
        return NO_ZONE
    return parts[1], parts[3]


# --- endpoints -------------------------------------------------------------------------------


def select_port(target: Target, named_ports: Iterable[tuple[str, int]]) -> int:
    """The endpoint port of ``target`` in a group with ``named_ports``; ValueError when the named
    port the upstream asks for is missing."""
    if target.port:
        return target.port
    ports = dict(reversed(list(named_ports)))  # the first of duplicate names wins
    if target.port_name:
        if target.port_name not in ports:
            names = ", ".join(sorted(ports)) or "none"
            raise ValueError(f"the group has no named port {target.port_name!r} (named ports: {names})")
        return ports[target.port_name]
    return ports.get(DEFAULT_PORT_NAME, DEFAULT_PORT)


def select_address(instance: JsonObject, external: bool) -> str | None:
    """INTERNAL: the first NIC's networkIP; EXTERNAL: its first access config's natIP; or None."""
    nics = instance.get("networkInterfaces") or []
    if not nics:
        return None
    if not external:
        return nics[0].get("networkIP") or None
    configs = nics[0].get("accessConfigs") or []
    return (configs[0].get("natIP") or None) if configs else None


def matches(instance: JsonObject, selector: Iterable[tuple[str, str]]) -> bool:
    labels = instance.get("labels") or {}
    return all(labels.get(key) == value for key, value in selector)


_NAME_CHARS = re.compile(r"[^a-z0-9.-]+")


def endpoint_name(key: UpstreamKey, project: str, zone: str, instance: str) -> str:
    digest = hashlib.sha256(f"{key[0]}/{key[1]}|{project}/{zone}/{instance}".encode()).hexdigest()[:8]
    return _NAME_CHARS.sub("-", f"{key[1]}-{instance}".lower()) + f"-{digest}"


def make_endpoint(
    target: Target, write_namespace: str, group: GroupRef, instance: JsonObject, address: str, port: int
) -> Endpoint:
    project, zone = zone_of_instance(str(instance.get("selfLink", "")))
    name = str(instance.get("name", ""))
    endpoint = Endpoint(
        upstreams=[ResourceRef(name=target.key[1], namespace=target.key[0])], address=address, port=port
    )
    endpoint.metadata.name = endpoint_name(target.key, project, zone, name)
    endpoint.metadata.namespace = write_namespace
    endpoint.metadata.labels.update({str(k): str(v) for k, v in (instance.get("labels") or {}).items()})
    endpoint.metadata.annotations.update(
        {
            ANNOTATION_PREFIX + "instance-id": str(instance.get("id", "")),
            ANNOTATION_PREFIX + "instance-name": name,
            ANNOTATION_PREFIX + "zone": zone,
            ANNOTATION_PREFIX + "project": project,
            ANNOTATION_PREFIX + "instance-group": f"{group.scope}/{group.location}/{group.name}",
        }
    )
    return endpoint


def sorted_endpoints(endpoints: Iterable[Endpoint]) -> tuple[Endpoint, ...]:
    return tuple(sorted(endpoints, key=lambda e: (e.metadata.namespace, e.metadata.name)))


# --- one poll --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollResult:
    """One poll cycle. ``endpoints``: the upstreams resolved by this poll (a deleted group: empty).
    ``errors``: upstreams that failed this poll (and deleted groups). ``invalid``: bad specs."""

    endpoints: dict[UpstreamKey, tuple[Endpoint, ...]] = field(default_factory=dict)
    errors: dict[UpstreamKey, str] = field(default_factory=dict)
    invalid: dict[UpstreamKey, str] = field(default_factory=dict)

    def all_endpoints(self) -> tuple[Endpoint, ...]:
        return sorted_endpoints(e for eps in self.endpoints.values() for e in eps)


@dataclass
class _Outcome:
    """A call's value or its exception (so one failure does not hide the others)."""

    value: Any = None
    error: BaseException | None = None


@dataclass
class _CachedLocation:
    groups: tuple[Group, ...]
    expires: float


@dataclass(frozen=True)
class _Joined:
    """A target's endpoints as a poll joined them, and what they were joined from."""

    poll: int
    groups: tuple[Group, ...]
    endpoints: tuple[Endpoint, ...]


# A group's members and, for each, its instance (None: not listed), as one poll saw them.
_GroupInputs = tuple[list[JsonObject], list[JsonObject | None]]


class GceDiscovery:
    """Polls the Compute API for the endpoints of gce upstreams. Long-lived: it keeps the group
    location cache and the thread pool across polls and watches."""

    def __init__(
        self,
        client: ComputeClient,
        location_ttl: float = DEFAULT_LOCATION_TTL,
        max_concurrent_calls: int = MAX_CONCURRENT_CALLS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._location_ttl = location_ttl
        self._clock = clock
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent_calls, thread_name_prefix="gce-compute"
        )
        self._locations: dict[tuple[str, str, str], _CachedLocation] = {}
        self._warned: set[tuple[UpstreamKey, str]] = set()
        # The join's memo: a target whose groups' members and instances are what the previous poll
        # saw gets that poll's endpoints again (the same objects) instead of building them anew.
        # With thousands of upstreams, building every Endpoint message every poll dominated a poll.
        # A target joined afresh into the endpoints it had gets its previous tuple back, so a tuple
        # stays the same object for as long as its endpoints are the same.
        self._polls = 0
        self._group_inputs: dict[GroupRef, _GroupInputs] = {}
        self._joined: dict[tuple[Target, str], _Joined] = {}

    def close(self, wait: bool = False) -> None:
        """Stop the thread pool (``wait``: until its threads are done); calls in flight end within
        the client's timeout, calls waiting to retry at once if their poll was cancelled."""
        self._executor.shutdown(wait=wait, cancel_futures=True)

    async def _run(self, calls: Sequence[Callable[[], T]]) -> list[_Outcome]:
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(self._executor, call) for call in calls]
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [_Outcome(error=r) if isinstance(r, BaseException) else _Outcome(value=r) for r in results]

    async def poll_once(self, write_namespace: str, upstreams: Sequence[Upstream]) -> PollResult:
        """One discovery pass over the gce upstreams in ``upstreams`` (others are ignored)."""
        abort = threading.Event()
        try:
            return await self._poll(write_namespace, upstreams, abort)
        except BaseException:
            abort.set()  # cancelled: calls waiting to retry give up, queued ones never start
            raise

    async def _poll(
        self, write_namespace: str, upstreams: Sequence[Upstream], abort: threading.Event
    ) -> PollResult:
        result = PollResult()
        targets: list[Target] = []
        for upstream in upstreams:
            if not is_gce(upstream):
                continue
            try:
                targets.append(parse_target(upstream))
            except ValueError as exc:
                result.invalid[upstream_key(upstream)] = str(exc)

        # 1. Locate the groups (cached, or asked for now).
        located: dict[tuple[str, str, str], _Outcome] = {}
        for where in {(t.project, t.location, t.group) for t in targets}:
            cached = self._locations.get(where)
            if cached is not None and cached.expires > self._clock():
                located[where] = _Outcome(value=cached.groups)
        unknown = sorted({(t.project, t.location, t.group) for t in targets} - set(located))
        for where, outcome in zip(
            unknown, await self._run([self._locator(w, abort) for w in unknown]), strict=True
        ):
            located[where] = outcome
            if outcome.error is None:
                self._locations[where] = _CachedLocation(outcome.value, self._clock() + self._location_ttl)

        # 2. Members of each group, and instances of every zone known so far.
        groups = sorted({g.ref for o in located.values() if o.error is None for g in o.value})
        zones = sorted({(g.project, g.location) for g in groups if g.scope == "zones"})
        outcomes = await self._run(
            [self._member_lister(g, abort) for g in groups] + [self._zone_lister(z, abort) for z in zones]
        )
        members = dict(zip(groups, outcomes[: len(groups)], strict=True))
        instances = dict(zip(zones, outcomes[len(groups) :], strict=True))
        more = sorted(
            {
                zone_of_instance(str(m.get("instance", "")))
                for o in members.values()
                if o.error is None
                for m in o.value
            }
            - set(instances)
            - {NO_ZONE}
        )
        instances.update(zip(more, await self._run([self._zone_lister(z, abort) for z in more]), strict=True))
        deleted = self._drop_deleted_groups(located, members)

        # 3. Join, per upstream.
        by_url: dict[str, JsonObject] = {
            url_path(str(i.get("selfLink", ""))): i
            for o in instances.values()
            if o.error is None
            for i in o.value
        }
        self._polls += 1
        unchanged = self._note_group_inputs(members, instances, by_url)
        joined: dict[tuple[Target, str], _Joined] = {}
        for target in targets:
            where = (target.project, target.location, target.group)
            location = located[where]
            # One of several groups deleted: the upstream keeps the others, and is told which went.
            gone = "; ".join(_describe(ref.project, ref.location, ref.name) for ref in deleted.get(where, ()))
            memo = self._joined.get((target, write_namespace))
            try:
                if (
                    memo is not None
                    and memo.poll == self._polls - 1
                    and location.error is None
                    and memo.groups == location.value
                    and all(group.ref in unchanged for group in location.value)
                ):
                    endpoints = memo.endpoints
                else:
                    endpoints = self._endpoints_of(
                        target, write_namespace, located, members, instances, by_url
                    )
                    if memo is not None and memo.endpoints == endpoints:
                        endpoints = memo.endpoints  # the same tuple: consumers skip it by identity
                joined[(target, write_namespace)] = _Joined(self._polls, location.value, endpoints)
            except GroupNotFound as exc:
                result.endpoints[target.key] = ()
                result.errors[target.key] = str(exc)
            except ComputeError as exc:
                result.errors[target.key] = _joined_text(gone, f"{_group_text(target)}: {exc}")
            except ValueError as exc:
                result.errors[target.key] = _joined_text(gone, str(exc))
            except Exception as exc:  # unexpected (a bug, an odd response): this upstream only
                log.exception("gce discovery failed", extra={"upstream": target.label})
                result.errors[target.key] = _joined_text(gone, f"{type(exc).__name__}: {exc}")
            else:
                result.endpoints[target.key] = endpoints
                if gone:
                    result.errors[target.key] = gone
            if (target, write_namespace) not in joined and memo is not None:
                # Failed: joined afresh next time (the memo's poll is not the last one), and what it
                # gives is compared with what was last handed on.
                joined[(target, write_namespace)] = memo
        self._joined = joined  # targets that went away are forgotten
        return result

    def _drop_deleted_groups(
        self, located: dict[tuple[str, str, str], _Outcome], members: dict[GroupRef, _Outcome]
    ) -> dict[tuple[str, str, str], tuple[GroupRef, ...]]:
        """Take the groups whose member listing says they no longer exist (404) out of their
        locations, in ``located`` and in the cache; return them by location. A location left with
        no group is located again next poll (gone, or moved)."""
        deleted: dict[tuple[str, str, str], tuple[GroupRef, ...]] = {}
        for where, outcome in located.items():
            if outcome.error is not None:
                continue
            gone = tuple(g.ref for g in outcome.value if _not_found(members[g.ref].error))
            if not gone:
                continue
            deleted[where] = gone
            left = tuple(g for g in outcome.value if g.ref not in gone)
            located[where] = _Outcome(value=left)
            cached = self._locations.get(where)
            if left and cached is not None:
                cached.groups = left  # the rest of the location stays cached until it expires
            else:
                self._locations.pop(where, None)
        return deleted

    def _note_group_inputs(
        self,
        members: dict[GroupRef, _Outcome],
        instances: dict[tuple[str, str], _Outcome],
        by_url: dict[str, JsonObject],
    ) -> set[GroupRef]:
        """Remember what each group's join reads this poll; return the groups for which that is what
        the previous poll read (a failed listing is never unchanged)."""
        current: dict[GroupRef, _GroupInputs] = {}
        for ref, listed in members.items():
            if listed.error is not None:
                continue
            found: list[JsonObject | None] = []
            for member in listed.value:
                url = str(member.get("instance", ""))
                zone = instances.get(zone_of_instance(url))
                if zone is not None and zone.error is not None:
                    break
                found.append(by_url.get(url_path(url)))
            else:
                current[ref] = (listed.value, found)
        unchanged = {ref for ref, inputs in current.items() if self._group_inputs.get(ref) == inputs}
        self._group_inputs = current
        return unchanged

    def _endpoints_of(
        self,
        target: Target,
        write_namespace: str,
        located: dict[tuple[str, str, str], _Outcome],
        members: dict[GroupRef, _Outcome],
        instances: dict[tuple[str, str], _Outcome],
        by_url: dict[str, JsonObject],
    ) -> tuple[Endpoint, ...]:
        """The target's endpoints; raises the first failure that concerns it."""
        location = located[(target.project, target.location, target.group)]
        if location.error is not None:
            raise location.error
        if not location.value:  # every group of the location was deleted
            raise GroupNotFound(_describe(target.project, target.location, target.group))
        endpoints: list[Endpoint] = []
        for group in location.value:
            listed = members[group.ref]
            if listed.error is not None:
                raise listed.error
            group_members: list[JsonObject] = listed.value
            # Members carry the group's current named ports; the cached group's are the fallback.
            named_ports = _named_ports(group_members[0]) if group_members else group.named_ports
            try:
                port = select_port(target, named_ports or group.named_ports)
            except ValueError as exc:
                raise ValueError(f"instance group {group.ref.name} ({group.ref.location}): {exc}") from None
            for member in group_members:
                url = str(member.get("instance", ""))
                zone = instances.get(zone_of_instance(url))
                if zone is None:
                    continue  # not an instance URL
                if zone.error is not None:
                    raise zone.error
                instance = by_url.get(url_path(url))
                if instance is None or instance.get("status") != "RUNNING":
                    continue  # created or stopped between the two calls: next poll will tell
                if not matches(instance, target.selector):
                    continue
                address = select_address(instance, target.external)
                if address is None:
                    self._warn_once(target, f"instance {instance.get('name')} has no {_kind(target)} address")
                    continue
                endpoints.append(make_endpoint(target, write_namespace, group.ref, instance, address, port))
        return sorted_endpoints(endpoints)

    def _warn_once(self, target: Target, message: str) -> None:
        first = (target.key, message) not in self._warned
        if len(self._warned) > 10_000:  # VMs come and go: forget old ones (they may warn again)
            self._warned.clear()
        self._warned.add((target.key, message))
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "%s; skipped",
            message,
            extra={"upstream": target.label},
        )

    # --- the blocking calls, for the thread pool ---

    def _locate(self, project: str, location: str, name: str, abort: threading.Event) -> tuple[Group, ...]:
        client = self.client
        try:
            if is_zone(location):
                group = client.get_instance_group(project, location, name, abort)
                return (Group(GroupRef(project, "zones", location, name), _named_ports(group)),)
            try:
                group = client.get_region_instance_group(project, location, name, abort)
                return (Group(GroupRef(project, "regions", location, name), _named_ports(group)),)
            except ComputeError as exc:
                if not exc.not_found:
                    raise
        except ComputeError as exc:
            if exc.not_found:
                raise GroupNotFound(_describe(project, location, name)) from None
            raise
        # No regional group of that name: the zonal groups of that name in the region's zones.
        scopes = client.aggregated_instance_groups(project, f'name eq "{name}"', abort)
        zonal = [
            Group(GroupRef(project, "zones", scope.split("/", 1)[1], name), _named_ports(group))
            for scope, scoped in sorted(scopes.items())
            if scope.startswith("zones/") and region_of(scope.split("/", 1)[1]) == location
            for group in scoped
            if group.get("name") == name  # the filter is a regex: check the name exactly
        ]
        if not zonal:
            raise GroupNotFound(_describe(project, location, name))
        return tuple(zonal)

    def _locator(
        self, where: tuple[str, str, str], abort: threading.Event
    ) -> Callable[[], tuple[Group, ...]]:
        return lambda: self._locate(*where, abort=abort)

    def _member_lister(self, group: GroupRef, abort: threading.Event) -> Callable[[], list[JsonObject]]:
        return lambda: self.client.list_group_instances(
            group.project, group.scope, group.location, group.name, abort
        )

    def _zone_lister(self, zone: tuple[str, str], abort: threading.Event) -> Callable[[], list[JsonObject]]:
        return lambda: self.client.list_instances(zone[0], zone[1], abort)

    # --- the watch ---

    async def watch(
        self, write_namespace: str, upstreams: Sequence[Upstream], opts: WatchOpts
    ) -> AsyncGenerator[EndpointList, None]:
        """Poll every ``opts.refresh_interval``; yield after the first poll and on every change.

        Answers are ``EndpointList.of_upstreams``: an upstream whose endpoints did not change keeps
        the tuple it had in the previous answer, and a poll costs the watch one identity check per
        upstream (an equality check for a rebuilt tuple), not work on every endpoint."""
        gce_upstreams = [u for u in upstreams if is_gce(u)]
        # Per upstream, the endpoints last handed on: its last good ones.
        published: dict[UpstreamKey, tuple[Endpoint, ...]] = {}
        first = True
        try:
            while True:
                changed = await self._poll_and_report(write_namespace, gce_upstreams, published, opts, first)
                if changed or first:
                    yield EndpointList.of_upstreams(dict(published))
                first = False
                await asyncio.sleep(opts.refresh_interval)
        finally:
            # The next watch (with the new set of upstreams) sets the gauges of the ones that remain.
            for key in published:
                with contextlib.suppress(KeyError):
                    metrics.UPSTREAM_ENDPOINTS.remove(f"{key[0]}.{key[1]}")

    async def _poll_and_report(
        self,
        write_namespace: str,
        upstreams: Sequence[Upstream],
        published: dict[UpstreamKey, tuple[Endpoint, ...]],
        opts: WatchOpts,
        first: bool,
    ) -> bool:
        """One poll: report its errors, take its changes into ``published``; True if there were any."""
        errors: list[DiscoveryError] = []
        try:
            result = await self.poll_once(write_namespace, upstreams)
        except Exception as exc:  # a bug, not a cloud failure (those are per upstream): report, go on
            log.exception("gce discovery poll failed")
            result = PollResult()
            errors.append(DiscoveryError(f"gce discovery poll failed: {exc}"))
        for key, message in result.errors.items():
            errors.append(DiscoveryError(message, upstream=key))
        if first:  # a spec does not change during a watch: say once what is wrong with it
            errors.extend(DiscoveryError(m, upstream=k) for k, m in result.invalid.items())
        metrics.DISCOVERY_POLLS.labels(plugin=PLUGIN, result="error" if errors else "ok").inc()
        for error in errors:
            # Counting (UPSTREAM_DISCOVERY_ERRORS) and logging errors is the consumer's, in
            # on_error: the control plane does it alike for every discovery plugin.
            label = f"{error.upstream[0]}.{error.upstream[1]}" if error.upstream else "*"
            log.debug("discovery error: %s", error, extra={"upstream": label})
            try:
                opts.on_error(error)
            except Exception:
                log.exception("on_error callback failed")
        for key in result.endpoints.keys() - result.errors.keys():
            opts.on_success(key)
        changed = False
        for key, endpoints in result.endpoints.items():
            known = published.get(key)
            if known is endpoints or (known is not None and known == endpoints):
                continue
            published[key] = endpoints
            metrics.UPSTREAM_ENDPOINTS.labels(upstream=f"{key[0]}.{key[1]}").set(len(endpoints))
            changed = True
        return changed


def _not_found(error: BaseException | None) -> bool:
    return isinstance(error, ComputeError) and error.not_found


def _joined_text(*messages: str) -> str:
    return "; ".join(m for m in messages if m)


def _kind(target: Target) -> str:
    return "external (natIP)" if target.external else "internal (networkIP)"
