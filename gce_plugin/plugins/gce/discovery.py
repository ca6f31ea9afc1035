"""GCE endpoint discovery, one poll: instance groups -> their RUNNING VMs -> ``Endpoint``s, from the
Compute Engine API (after Prometheus's GCE service discovery: poll, list, turn each VM into a target).
The spec rules are in ``spec.py``, the group location cache in ``locations.py``; the refresh loop
around a poll is the shared one (``plugins/refresh.py``).

One poll cycle, for all gce upstreams at once:

1. **Locate** each distinct (project, location, group) (``locations.py``). ``instance_group_region`` is a zone
   (``us-central1-a``: a zonal group, ``instanceGroups.get``) or a region (``us-central1``: the
   regional group of that name, ``regionInstanceGroups.get``; if there is none, the zonal groups of
   that name in the region's zones, from one ``instanceGroups.aggregatedList`` with a name filter —
   two calls, where ``regions.get`` plus ``instanceGroups.get`` per zone would be four or more;
   several zones with a same-named group all serve the upstream). A location is told from a region
   by its form: zones are ``<region>-<letter>``, so they have two or more dashes. Locations (with
   named ports) are cached for ``location_ttl``; a 404 on a cached group drops that group from its
   location, and the location once none of its groups is left.
2. **List members** of each distinct group once (``listInstances``, RUNNING only; for a managed
   group ``listManagedInstances``, with each VM's action and health: ``managed.py``), and **list
   instances** of each distinct (project, zone) once (``instances.list``), for every group and
   upstream in that zone: calls per cycle grow with distinct groups and zones, not with upstreams.
   Zonal groups' zones are known up front and listed first (member listings leave them slots of
   the client, see ``_Slots``); a zone that only the members of a regional group reveal is listed
   as soon as one does. Independent calls run concurrently (the client bounds how many at once),
   and each answer's share of the join is done as it arrives (``_Run``). Per-zone
   ``instances.list`` rather than ``instances.aggregatedList``: it walks only the zones that
   matter, not every instance of the project.
3. **Join** members to instances by instance URL (its path from ``projects/`` on, so hosts do not
   matter; never one ``instances.get`` per VM), then per upstream: label selector, address
   (INTERNAL: the first NIC's ``networkIP``; EXTERNAL: its first access config's ``natIP``; an
   instance without one is skipped with a warning) and port (explicit ``port``; else the named port
   ``port_name``, an error when the group has none; else the group's ``http`` named port; else 80).
   A managed group's VM is an endpoint, and of which health, as ``health.endpoint_health`` says
   (``honour_health``; the health rides on the endpoint as ``HEALTH_STATUS_ANNOTATION``).

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
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from gce_plugin import heap
from gce_plugin.api import Endpoint, Upstream
from gce_plugin.plugins.gce.compute import MAX_CONCURRENT_CALLS, ComputeClient, ComputeError, JsonObject
from gce_plugin.plugins.gce.locations import (
    DEFAULT_LOCATION_TTL,
    Group,
    GroupLocations,
    GroupNotFound,
    GroupRef,
    Outcome,
    Where,
    named_ports,
    not_found_text,
)
from gce_plugin.plugins.gce.managed import is_forbidden, list_members, member_facts, member_health
from gce_plugin.plugins.gce.spec import (
    NO_ZONE,
    Target,
    address_kind,
    group_text,
    is_gce,
    join_facts,
    make_endpoint,
    matches,
    parse_target,
    select_address,
    select_port,
    sorted_endpoints,
    url_path,
    zone_of_instance,
)
from gce_plugin.plugins.plugin import NO_ENDPOINTS, UpstreamEndpoints, UpstreamKey, upstream_key
from gce_plugin.plugins.refresh import PollResult
from gce_plugin.redact import clip

log = logging.getLogger(__name__)
T = TypeVar("T")


# --- one poll --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Joined:
    """A target's endpoints as a poll joined them, and what they were joined from (``poll``: the
    last poll that found them valid; a memo found valid again is moved on, not made anew)."""

    poll: int
    groups: tuple[Group, ...]
    found: UpstreamEndpoints


# A hash of what a group's join reads (its named ports, its members and, for each, its instance or
# None: not listed), as one poll saw it: one int per group kept between polls, not the listed JSON.
# String hashes are keyed per process (SipHash), so equal hashes of unequal inputs (a missed change)
# are as unlikely as a 64-bit collision, and cannot be aimed at.
_GroupInputs = int
Zone = tuple[str, str]  # (project, zone)


@dataclass
class _Listing:
    """What one poll has listed so far, filled in as answers arrive: group locations, each group's
    members, each zone's instances (by instance URL path too), the groups found deleted per
    location, this poll's hash of each group's inputs, and the groups whose inputs are what the
    previous poll saw."""

    located: dict[Where, Outcome]
    members: dict[GroupRef, Outcome] = field(default_factory=dict)
    instances: dict[Zone, Outcome] = field(default_factory=dict)
    by_url: dict[str, JsonObject] = field(default_factory=dict)
    deleted: dict[Where, tuple[GroupRef, ...]] = field(default_factory=dict)
    inputs: dict[GroupRef, _GroupInputs] = field(default_factory=dict)
    unchanged: set[GroupRef] = field(default_factory=set)


class GceDiscovery:
    """Polls the Compute API for the endpoints of gce upstreams. Long-lived: it keeps the group
    location cache and the thread pool across polls and watches."""

    def __init__(
        self,
        client: ComputeClient,
        location_ttl: float = DEFAULT_LOCATION_TTL,
        clock: Callable[[], float] = time.monotonic,
        honour_health: bool = True,
        max_concurrent_calls: int = MAX_CONCURRENT_CALLS,
    ) -> None:
        self.client = client
        # Managed groups: map each VM's state to its endpoint's health (health.py); False: RUNNING
        # members are endpoints of unknown health, the behaviour before managed groups were read.
        self.honour_health = honour_health
        # How many calls the client runs at once: member listings leave room for zone listings.
        self.max_concurrent_calls = max_concurrent_calls
        self._locations = GroupLocations(client, location_ttl, clock)
        self._warned: set[tuple[UpstreamKey, str]] = set()
        # The join's memo: a target whose groups' members and instances are what the previous poll
        # saw gets that poll's endpoints (and their version) again instead of building them anew.
        # With thousands of upstreams, building every Endpoint message every poll dominated a poll.
        self._polls = 0
        self._group_inputs: dict[GroupRef, _GroupInputs] = {}
        self._joined: dict[tuple[Target, str], _Joined] = {}

    def close(self, wait: bool = False) -> None:
        """Stop the client's thread pool (``wait``: until its threads are done)."""
        self.client.close(wait=wait)

    async def poll_once(self, write_namespace: str, upstreams: Sequence[Upstream]) -> PollResult:
        """One discovery pass over the gce upstreams in ``upstreams`` (others are ignored). Cancel
        it like any task: the calls it is waiting for are cancelled with it.

        Each answer's share of the work is done as it arrives (``_Run``): a group is hashed once its
        members and their zones are listed, and a location's upstreams are joined once its groups
        are, so little is left to do when the last answer comes."""
        result = PollResult()
        targets = _parse_targets(upstreams, result)
        located = await self._locations.locate_all((t.project, t.location, t.group) for t in targets)
        self._polls += 1
        run = _Run(self, write_namespace, targets, located, result)
        await run.run()
        # What this poll listed and what the previous one kept (~100,000 objects at 10,000
        # upstreams, ~13 ms to free) is dropped once the answer has been handed on.
        heap.release_later((run, self._joined, self._group_inputs))
        self._group_inputs = run.listing.inputs
        self._joined = run.joined  # targets that went away are forgotten
        return result

    def _join_target(
        self,
        target: Target,
        write_namespace: str,
        listing: _Listing,
        intact: tuple[Group, ...] | None,
        result: PollResult,
    ) -> _Joined | None:
        """3. Join one upstream whose location is listed: its endpoints or its error into ``result``;
        what to remember of it. ``intact``: the location's groups if none of them was deleted or
        changed since the previous poll (then a valid memo is the answer)."""
        memo = self._joined.get((target, write_namespace))
        if memo is not None and intact is not None and memo.poll == self._polls - 1 and memo.groups == intact:
            # The common case, kept cheap: what _join_one would conclude for a valid memo of a
            # location with nothing deleted.
            result.found[target.key] = memo.found
            memo.poll = self._polls
            return memo
        return self._join_one(target, write_namespace, listing, memo, result)

    def _join_one(
        self,
        target: Target,
        write_namespace: str,
        listing: _Listing,
        memo: _Joined | None,
        result: PollResult,
    ) -> _Joined | None:
        """3. Join one upstream: its endpoints or its error into ``result``; what to remember of it."""
        where = (target.project, target.location, target.group)
        location = listing.located[where]
        # One of several groups deleted: the upstream keeps the others, and is told which went.
        gone = "; ".join(
            not_found_text(ref.project, ref.location, ref.name) for ref in listing.deleted.get(where, ())
        )
        try:
            if memo is not None and self._still_valid(memo, location, listing.unchanged):
                found = memo.found
            else:
                found = UpstreamEndpoints.of(self._endpoints_of(target, write_namespace, listing))
        except GroupNotFound as exc:
            result.found[target.key] = NO_ENDPOINTS
            result.errors[target.key] = str(exc)
        except Exception as exc:
            result.errors[target.key] = _joined_text(gone, _failure_text(target, exc))
        else:
            result.found[target.key] = found
            if gone:
                result.errors[target.key] = gone
            return _Joined(self._polls, location.value, found)
        # Failed: joined afresh next time (the memo's poll is not the last one).
        return memo

    def _still_valid(self, memo: _Joined, location: Outcome, unchanged: set[GroupRef]) -> bool:
        """Whether a memo's endpoints are what a join would give: joined last poll, from the same
        groups, whose members and instances are what they were."""
        return (
            memo.poll == self._polls - 1
            and location.error is None
            and memo.groups == location.value
            and all(group.ref in unchanged for group in location.value)
        )

    def _endpoints_of(self, target: Target, write_namespace: str, listing: _Listing) -> tuple[Endpoint, ...]:
        """The target's endpoints; raises the first failure that concerns it."""
        location = listing.located[(target.project, target.location, target.group)]
        if location.error is not None:
            raise location.error
        if not location.value:  # every group of the location was deleted
            raise GroupNotFound(not_found_text(target.project, target.location, target.group))
        # An instance listed twice (in two pages, or in two groups of the location) counts once.
        endpoints: dict[str, Endpoint] = {}
        for group in location.value:
            for endpoint in self._group_endpoints(target, write_namespace, group, listing):
                endpoints.setdefault(endpoint.metadata.name, endpoint)
        return sorted_endpoints(endpoints.values())

    def _group_endpoints(
        self, target: Target, write_namespace: str, group: Group, listing: _Listing
    ) -> Iterator[Endpoint]:
        listed = listing.members[group.ref]
        if listed.error is not None:
            raise listed.error
        group_members: list[JsonObject] = listed.value
        # Members carry the group's current named ports; the cached group's are the fallback.
        ports = named_ports(group_members[0]) if group_members else group.named_ports
        try:
            port = select_port(target, ports or group.named_ports)
        except ValueError as exc:
            raise ValueError(f"instance group {group.ref.name} ({group.ref.location}): {exc}") from None
        group_path = f"{group.ref.scope}/{group.ref.location}/{group.ref.name}"
        for member in group_members:
            health = member_health(member, group.membership, self.honour_health)
            if not health.is_endpoint:
                continue
            instance = _running_instance(str(member.get("instance", "")), listing)
            if instance is None:
                continue
            try:
                if not matches(instance, target.selector):
                    continue
                address = select_address(instance, target.external)
                if address is None:
                    self._warn_once(
                        target, f"instance {instance.get('name')} has no {address_kind(target)} address"
                    )
                    continue
                endpoint = make_endpoint(
                    target, write_namespace, group_path, instance, address, port, health.value
                )
            except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
                # A malformed instance: this instance only, never its upstream or the others.
                self._warn_once(
                    target, f"instance {instance.get('selfLink')} is malformed ({type(exc).__name__}: {exc})"
                )
                continue
            yield endpoint

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

    # --- the calls ---

    def _list_members(self, group: Group) -> Awaitable[list[JsonObject]]:
        ref = group.ref
        return list_members(self.client, ref.project, ref.scope, ref.location, ref.name, group.membership)

    def _list_zone(self, zone: tuple[str, str]) -> Awaitable[list[JsonObject]]:
        return self.client.list_instances(zone[0], zone[1])


class _Run:
    """One poll once its groups are located (steps 2 and 3): every listing is asked for, and each
    answer's share of the join is done as it arrives. A group is closed (its inputs hashed) once its
    members and their zones are listed; a location once its groups are (its deleted groups are
    taken out, its upstreams joined). Zonal groups' zones are listed first, member listings wait
    for a free slot while zone pages are in flight (a zone's pages come one after the other: behind
    a thousand queued member listings, the zones would be the last answers, each holding up every
    group in it); a zone only members reveal is listed as soon as one does."""

    def __init__(
        self,
        discovery: GceDiscovery,
        write_namespace: str,
        targets: list[Target],
        located: dict[Where, Outcome],
        result: PollResult,
    ) -> None:
        self.discovery = discovery
        self.write_namespace = write_namespace
        self.result = result
        self.listing = _Listing(located)
        self.joined: dict[tuple[Target, str], _Joined] = {}
        self.by_ref = {g.ref: g for o in located.values() if o.error is None for g in o.value}
        self._targets_at: dict[Where, list[Target]] = {}
        for target in targets:
            self._targets_at.setdefault((target.project, target.location, target.group), []).append(target)
        # Per location, its groups not closed yet; per group, the locations it is in.
        self._open: dict[Where, set[GroupRef]] = {}
        self._locations_of: dict[GroupRef, list[Where]] = {}
        for where, outcome in located.items():
            refs = {g.ref for g in outcome.value} if outcome.error is None else set()
            self._open[where] = refs
            for ref in refs:
                self._locations_of.setdefault(ref, []).append(where)
        # Groups whose members are listed, waiting for these zones' instances.
        self._missing: dict[GroupRef, set[Zone]] = {}
        self._waiting: dict[Zone, list[GroupRef]] = {}
        self._asked: set[Zone] = set()
        self._tasks: asyncio.TaskGroup | None = None

    async def run(self) -> None:
        for where in sorted(w for w, refs in self._open.items() if not refs):
            self._close_location(where)  # failed to locate: nothing to list
        groups = sorted(self.by_ref)
        zones = sorted({(g.project, g.location) for g in groups if g.scope == "zones"})
        self._asked.update(zones)
        slots = _Slots(self.discovery.max_concurrent_calls, len(zones))
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            for zone in zones:
                tasks.create_task(self._list_zone(zone, slots))
            for ref in groups:
                tasks.create_task(self._list_members(self.by_ref[ref], slots))

    async def _list_zone(self, zone: Zone, slots: _Slots | None = None) -> None:
        try:
            outcome = await _outcome(self.discovery._list_zone(zone))
        finally:
            if slots is not None:
                slots.zone_done()
        listed = _well_formed(outcome, _INSTANCE_KEYS, f"zone {zone[1]}")
        self.listing.instances[zone] = listed
        if listed.error is None:
            by_url = self.listing.by_url
            for instance in listed.value:
                by_url[url_path(str(instance.get("selfLink", "")))] = instance
        for ref in self._waiting.pop(zone, ()):
            missing = self._missing[ref]
            missing.discard(zone)
            if not missing:
                del self._missing[ref]
                self._close_group(ref)

    async def _list_members(self, group: Group, slots: _Slots) -> None:
        ref = group.ref
        async with slots.members:
            outcome = await _outcome(self.discovery._list_members(group))
        listed = _well_formed(outcome, _MEMBER_KEYS, f"group {ref.name} ({ref.location})")
        self.listing.members[ref] = listed
        if group.membership.managed_listing and is_forbidden(listed.error):
            self.discovery._locations.forget_group(ref)  # its manager is read again next poll
        missing = set() if listed.error is not None else self._unlisted_zones(listed.value)
        if not missing:
            self._close_group(ref)
            return
        self._missing[ref] = missing
        for zone in missing:
            self._waiting.setdefault(zone, []).append(ref)

    def _unlisted_zones(self, members: list[JsonObject]) -> set[Zone]:
        """The zones of ``members`` whose instances are not listed yet; those nobody asked for are
        asked for now."""
        zones = {zone_of_instance(str(m.get("instance", ""))) for m in members} - {NO_ZONE}
        missing = {z for z in zones if z not in self.listing.instances}
        assert self._tasks is not None
        for zone in sorted(missing - self._asked):
            self._asked.add(zone)
            self._tasks.create_task(self._list_zone(zone))
        return missing

    def _close_group(self, ref: GroupRef) -> None:
        """Everything the group's join reads is listed: remember its inputs, close its locations."""
        listing = self.listing
        listed = listing.members[ref]
        if listed.error is None:
            # A malformed value (a string where a map belongs, a list where a string does): the
            # group is not remembered, so it is joined afresh (and its own checks apply) every poll.
            with contextlib.suppress(TypeError, AttributeError, ValueError, IndexError, KeyError):
                inputs = _group_inputs(listed.value, listing.instances, listing.by_url)
                if inputs is not None:
                    listing.inputs[ref] = inputs
                    if self.discovery._group_inputs.get(ref) == inputs:
                        listing.unchanged.add(ref)
        for where in self._locations_of.get(ref, ()):
            refs = self._open[where]
            refs.discard(ref)
            if not refs:
                self._close_location(where)

    def _close_location(self, where: Where) -> None:
        """Every group of the location is listed: take out its deleted groups, join its upstreams."""
        listing = self.listing
        location = listing.located[where]
        if location.error is None:
            one = {where: location}
            listing.deleted.update(self.discovery._locations.drop_deleted(one, listing.members))
            location = listing.located[where] = one[where]
        intact = None
        if (
            location.error is None
            and where not in listing.deleted
            and all(group.ref in listing.unchanged for group in location.value)
        ):
            intact = location.value
        for target in self._targets_at.get(where, ()):
            joined = self.discovery._join_target(target, self.write_namespace, listing, intact, self.result)
            if joined is not None:
                self.joined[(target, self.write_namespace)] = joined


class _Slots:
    """How many member listings may be in flight: the client's calls less the zone listings in
    flight, so a zone's next page never waits behind member listings."""

    def __init__(self, calls: int, zones: int) -> None:
        allowed = max(1, calls - zones)
        self.members = asyncio.Semaphore(allowed)
        self._held_back = max(0, calls - allowed)

    def zone_done(self) -> None:
        if self._held_back > 0:
            self._held_back -= 1
            self.members.release()


async def _outcome(call: Awaitable[T]) -> Outcome:
    """A call's value or its exception (so one failure does not hide the others)."""
    try:
        return Outcome(value=await call)
    except Exception as exc:
        return Outcome(error=exc)


# The fields a listed item must have, as strings, to be used at all.
_MEMBER_KEYS = ("instance",)
_INSTANCE_KEYS = ("selfLink", "name")


def _well_formed(outcome: Outcome, keys: tuple[str, ...], where: str) -> Outcome:
    """A listing without its malformed items (not an object, or a key of ``keys`` missing or not a
    string), each skipped with a warning naming it: one bad item never fails its listing."""
    if outcome.error is not None:
        return outcome
    good: list[JsonObject] = []
    for item in outcome.value:
        if isinstance(item, dict) and all(isinstance(item.get(k), str) for k in keys):
            good.append(item)
            continue
        name = item.get("selfLink") or item.get("name") if isinstance(item, dict) else None
        log.warning(
            "malformed item in the listing of %s skipped: %s",
            where,
            clip(repr(name)) if name is not None else f"a {type(item).__name__} without {', '.join(keys)}",
        )
    return Outcome(value=good)


def _group_inputs(
    group_members: list[JsonObject], instances: dict[tuple[str, str], Outcome], by_url: dict[str, JsonObject]
) -> _GroupInputs | None:
    """The hash of what a group's join reads; None when a zone of its members failed to list."""
    group: list[object] = [named_ports(group_members[0]) if group_members else ()]
    for member in group_members:
        url = str(member.get("instance", ""))
        zone = instances.get(zone_of_instance(url))
        if zone is not None and zone.error is not None:
            return None
        instance = by_url.get(url_path(url))
        group.append(member_facts(member, url))
        group.append(None if instance is None else join_facts(instance))
    return hash(tuple(group))


def _running_instance(url: str, listing: _Listing) -> JsonObject | None:
    """The member's instance if it is RUNNING; raises its zone's listing failure."""
    zone = listing.instances.get(zone_of_instance(url))
    if zone is None:
        return None  # not an instance URL
    if zone.error is not None:
        raise zone.error
    instance = listing.by_url.get(url_path(url))
    if instance is None or instance.get("status") != "RUNNING":
        return None  # created or stopped between the two calls: next poll will tell
    return instance


def _parse_targets(upstreams: Sequence[Upstream], result: PollResult) -> list[Target]:
    """The valid targets of the gce upstreams; the invalid ones' reasons into ``result``."""
    targets: list[Target] = []
    for upstream in upstreams:
        if not is_gce(upstream):
            continue
        try:
            targets.append(parse_target(upstream))
        except ValueError as exc:
            result.invalid[upstream_key(upstream)] = str(exc)
    return targets


def _failure_text(target: Target, exc: Exception) -> str:
    if isinstance(exc, ComputeError):
        return f"{group_text(target)}: {exc}"
    if isinstance(exc, ValueError):
        return str(exc)
    # Unexpected (a bug, an odd response): this upstream only.
    log.exception("gce discovery failed", extra={"upstream": target.label})
    return f"{type(exc).__name__}: {exc}"


def _joined_text(*messages: str) -> str:
    return "; ".join(m for m in messages if m)
