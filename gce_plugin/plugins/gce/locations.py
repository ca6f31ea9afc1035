"""Where instance groups are: an upstream's (project, location, group) located once, then cached.

``instance_group_region`` is a zone (``us-central1-a``: a zonal group, ``instanceGroups.get``) or a
region (``us-central1``: the regional group of that name, ``regionInstanceGroups.get``; if there is
none, the zonal groups of that name in the region's zones, from one ``instanceGroups.aggregatedList``
with a name filter). Locations (with named ports) are cached for ``ttl``; a group found deleted (a 404
listing its members) is dropped from its location for this poll, and the location is located again
next poll, which confirms the deletion (or brings a group back after a transient 404). Each located
group's manager is read with it (``managed.find_membership``): that decides how its members are listed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import astuple, dataclass
from typing import Any, TypeVar

from gce_plugin.plugins.gce.compute import ComputeClient, ComputeError, JsonObject
from gce_plugin.plugins.gce.managed import Membership, find_membership
from gce_plugin.plugins.gce.spec import is_zone, region_of

DEFAULT_LOCATION_TTL = 600.0

T = TypeVar("T")
# (project, location, group name): what an upstream names.
Where = tuple[str, str, str]


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
    # How its members are listed: read from its manager when the location is looked up (managed.py).
    membership: Membership = Membership.UNMANAGED


class GroupNotFound(Exception):
    """The group does not exist (HTTP 404): the upstream has no endpoints."""


@dataclass
class Outcome:
    """A call's value or its exception (so one failure does not hide the others)."""

    value: Any = None
    error: BaseException | None = None


async def gather_outcomes(calls: Sequence[Awaitable[T]]) -> list[Outcome]:
    """Every call at once (the client bounds how many run), each one's value or exception."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    return [Outcome(error=r) if isinstance(r, BaseException) else Outcome(value=r) for r in results]


def not_found_text(project: str, location: str, name: str) -> str:
    kind = "zone" if is_zone(location) else "region"
    return f"instance group {name} not found in project {project} {kind} {location}"


def named_ports(resource: JsonObject) -> tuple[tuple[str, int], ...]:
    """The named ports of a group (or a member); malformed entries are ignored."""
    ports = resource.get("namedPorts") or []
    return tuple(
        (str(p.get("name", "")), int(p["port"]))
        for p in (ports if isinstance(ports, list) else [])
        if isinstance(p, dict) and isinstance(p.get("port"), int | str) and str(p.get("port")).isdigit()
    )


def is_not_found(error: BaseException | None) -> bool:
    return isinstance(error, ComputeError) and error.not_found


@dataclass
class _CachedLocation:
    groups: tuple[Group, ...]
    expires: float


class GroupLocations:
    """The location cache, and the calls that fill it."""

    def __init__(
        self,
        client: ComputeClient,
        ttl: float = DEFAULT_LOCATION_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[Where, _CachedLocation] = {}

    async def locate_all(self, wanted: Iterable[Where]) -> dict[Where, Outcome]:
        """Each location's groups (cached, or asked for now), or why it failed."""
        wanted = set(wanted)
        located: dict[Where, Outcome] = {}
        for where in wanted:
            cached = self._cache.get(where)
            if cached is not None and cached.expires > self._clock():
                located[where] = Outcome(value=cached.groups)
        unknown = sorted(wanted - set(located))
        for where, outcome in zip(
            unknown, await gather_outcomes([self._locate(*w) for w in unknown]), strict=True
        ):
            located[where] = outcome
            if outcome.error is None:
                self._cache[where] = _CachedLocation(outcome.value, self._clock() + self._ttl)
        return located

    def drop_deleted(
        self, located: dict[Where, Outcome], members: dict[GroupRef, Outcome]
    ) -> dict[Where, tuple[GroupRef, ...]]:
        """Take the groups whose member listing says they no longer exist (404) out of their
        locations, in ``located`` and in the cache; return them by location. A location left with
        no group is located again next poll (gone, or moved)."""
        deleted: dict[Where, tuple[GroupRef, ...]] = {}
        for where, outcome in located.items():
            if outcome.error is not None:
                continue
            gone = tuple(g.ref for g in outcome.value if is_not_found(members[g.ref].error))
            if not gone:
                continue
            deleted[where] = gone
            left = tuple(g for g in outcome.value if g.ref not in gone)
            located[where] = Outcome(value=left)
            # Located again next poll: the group's absence is confirmed by a get (or the aggregated
            # list) before anyone relies on it; a transient 404 brings it straight back.
            self._cache.pop(where, None)
        return deleted

    def forget_group(self, ref: GroupRef) -> None:
        """Look up again, next poll, every location holding ``ref`` (e.g. its manager became unreadable)."""
        for where in [w for w, c in self._cache.items() if any(g.ref == ref for g in c.groups)]:
            del self._cache[where]

    async def _locate(self, project: str, location: str, name: str) -> tuple[Group, ...]:
        groups = await self._locate_groups(project, location, name)
        memberships = await asyncio.gather(*(find_membership(self._client, *astuple(g.ref)) for g in groups))
        return tuple(
            Group(g.ref, g.named_ports, membership) for g, membership in zip(groups, memberships, strict=True)
        )

    async def _locate_groups(self, project: str, location: str, name: str) -> tuple[Group, ...]:
        client = self._client
        scope = "zones" if is_zone(location) else "regions"
        try:
            group = await client.get_instance_group(project, scope, location, name)
            return (Group(GroupRef(project, scope, location, name), named_ports(group)),)
        except ComputeError as exc:
            if not exc.not_found:
                raise
            if scope == "zones":
                raise GroupNotFound(not_found_text(project, location, name)) from None
        # No regional group of that name: the zonal groups of that name in the region's zones.
        scopes = await client.aggregated_instance_groups(project, f'name eq "{name}"')
        zonal = [
            Group(GroupRef(project, "zones", scope.split("/", 1)[1], name), named_ports(group))
            for scope, scoped in sorted(scopes.items())
            if scope.startswith("zones/") and region_of(scope.split("/", 1)[1]) == location
            for group in scoped
            if group.get("name") == name  # the filter is a regex: check the name exactly
        ]
        if not zonal:
            raise GroupNotFound(not_found_text(project, location, name))
        return tuple(zonal)
