"""Managed instance groups: how a group is known to be managed, how its members are listed, and what
each member's state means for its endpoint.

**Known to be managed.** An instance group has no field naming its manager; a manager makes (and
shares the name of) its group, in the same zone or region. So when a group is located (once per
``location_ttl``, never per poll) its manager is read too: ``instanceGroupManagers.get`` for a zonal
group, ``regionInstanceGroupManagers.get`` for a regional one, in the same zone or region, with the
group's name. The answer decides how the group's members are listed until the location is looked up
again:

- 200: ``MANAGED`` (or ``MANAGED_PAGINATED`` when its ``listManagedInstancesResults`` is
  ``PAGINATED``): members from ``listManagedInstances``, each with its ``instanceStatus``,
  ``currentAction`` and ``instanceHealth``, mapped by ``health.endpoint_health``;
- 404: ``UNMANAGED``: members from ``listInstances`` (RUNNING), as before;
- 403 (not a rate limit): ``UNREADABLE``, the caller may read the group but not its manager: members
  from ``listInstances`` (RUNNING only, every one of ``UNKNOWN`` health, the behaviour before managed
  groups were read), with a warning naming the permission to grant
  (``compute.instanceGroupManagers.get``; list calls need ``.list``). Granting it takes effect at
  the next location lookup;
- anything else fails the location like a failed group lookup: the upstream keeps its last good
  endpoints and is retried next poll.

One member call per group per poll either way (``listManagedInstances`` instead of
``listInstances``): no extra call per cycle in the steady state; one more per group location lookup.
A ``listManagedInstances`` that answers 403 later (permission revoked) fails that poll for the group
(last good endpoints kept) and its location is looked up again on the next poll.
"""

from __future__ import annotations

import enum
import logging

from gce_plugin.plugins.gce.compute import RATE_LIMIT_REASONS, ComputeClient, ComputeError, JsonObject
from gce_plugin.plugins.gce.health import EndpointHealth, ManagedState, endpoint_health

log = logging.getLogger(__name__)


class Membership(enum.Enum):
    """How a group's members are listed (and what their listing says about them)."""

    UNMANAGED = "unmanaged"
    MANAGED = "managed"
    MANAGED_PAGINATED = "managed-paginated"
    UNREADABLE = "unreadable"

    @property
    def managed_listing(self) -> bool:
        """Whether members come from ``listManagedInstances``."""
        return self in (Membership.MANAGED, Membership.MANAGED_PAGINATED)


def is_forbidden(error: BaseException | None) -> bool:
    """A final 403 that is not a rate limit: the caller lacks a permission."""
    return isinstance(error, ComputeError) and error.code == 403 and error.reason not in RATE_LIMIT_REASONS


async def find_membership(
    client: ComputeClient, project: str, scope: str, location: str, name: str
) -> Membership:
    """Read the manager of the group ``name`` (same scope and location); see the module docstring."""
    try:
        manager = await client.get_group_manager(project, scope, location, name)
    except ComputeError as exc:
        if exc.not_found:
            return Membership.UNMANAGED
        if is_forbidden(exc):
            log.warning(
                "cannot read the manager of instance group %s in %s/%s (%s): its members are listed "
                "without their managed state (RUNNING only); grant compute.instanceGroupManagers.get "
                "to use it",
                name,
                scope,
                location,
                exc,
                extra={"project": project},
            )
            return Membership.UNREADABLE
        raise
    if manager.get("listManagedInstancesResults") == "PAGINATED":
        return Membership.MANAGED_PAGINATED
    return Membership.MANAGED


async def list_members(
    client: ComputeClient, project: str, scope: str, location: str, name: str, membership: Membership
) -> list[JsonObject]:
    """The group's members: ``ManagedInstance`` items of a readable manager, else RUNNING
    ``InstanceWithNamedPorts``. Both name the VM's URL in ``instance``."""
    if membership.managed_listing:
        paginated = membership is Membership.MANAGED_PAGINATED
        return await client.list_managed_instances(project, scope, location, name, paginated)
    return await client.list_group_instances(project, scope, location, name)


def member_health(member: JsonObject, membership: Membership, honour_health: bool) -> EndpointHealth:
    """What a member's endpoint gets: a managed item through the mapping (``honour_health=False``:
    RUNNING-only), a ``listInstances`` member (RUNNING already) ``UNKNOWN``."""
    if not membership.managed_listing:
        return EndpointHealth.UNKNOWN
    return endpoint_health(ManagedState.from_api(member), honour_health=honour_health)
