"""What a managed instance group says about one of its VMs -> what Envoy should do with it.

A pure function, the one place this policy lives: ``endpoint_health(ManagedState.from_api(item))``
for an item of ``instanceGroupManagers.listManagedInstances`` (or the regional method) gives the
``LbEndpoint.health_status`` name Envoy should get for that VM, or ``NOT_AN_ENDPOINT``.

The table, with the reason for every row, is in docs/managed-instance-groups.md. Every input value
is from the Compute v1 reference (``ManagedInstance.currentAction``, ``.instanceStatus`` and
``ManagedInstanceInstanceHealth.detailedHealthState`` in the discovery document bundled with
google-api-python-client); every output name is an ``envoy.config.core.v3.HealthStatus`` value.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class EndpointHealth(enum.Enum):
    """An Envoy ``HealthStatus`` name (``HealthStatus.Value(h.value)``), or not an endpoint at all."""

    UNKNOWN = "UNKNOWN"  # Envoy routes to it (as to HEALTHY) when there is no active health checking
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DRAINING = "DRAINING"
    TIMEOUT = "TIMEOUT"
    NOT_AN_ENDPOINT = "NOT_AN_ENDPOINT"  # left out of the assignment

    @property
    def is_endpoint(self) -> bool:
        return self is not EndpointHealth.NOT_AN_ENDPOINT

    @property
    def takes_traffic(self) -> bool:
        """Whether Envoy load-balances new requests to a host with this status."""
        return self in (EndpointHealth.UNKNOWN, EndpointHealth.HEALTHY)


# currentAction values (ManagedInstance.currentAction, Compute v1).
TEARDOWN_ACTIONS = frozenset({"ABANDONING", "DELETING", "RECREATING", "RESTARTING", "STOPPING", "SUSPENDING"})
NOT_YET_SERVING_ACTIONS = frozenset({"CREATING", "CREATING_WITHOUT_RETRIES", "STARTING", "RESUMING"})
VERIFYING = "VERIFYING"
# NONE and REFRESHING (configuration applied without stopping the VM): health decides.
STEADY_ACTIONS = frozenset({"NONE", "REFRESHING"})
KNOWN_ACTIONS = TEARDOWN_ACTIONS | NOT_YET_SERVING_ACTIONS | STEADY_ACTIONS | {VERIFYING}

# detailedHealthState values (ManagedInstanceInstanceHealth, Compute v1), worst first: with more than
# one health check on a VM, the worst state wins.
_HEALTH_BY_SEVERITY: tuple[tuple[str, EndpointHealth], ...] = (
    ("UNHEALTHY", EndpointHealth.UNHEALTHY),
    ("TIMEOUT", EndpointHealth.TIMEOUT),
    ("DRAINING", EndpointHealth.DRAINING),
    ("UNKNOWN", EndpointHealth.UNKNOWN),
    ("HEALTHY", EndpointHealth.HEALTHY),
)
KNOWN_HEALTH_STATES = frozenset(name for name, _ in _HEALTH_BY_SEVERITY)


@dataclass(frozen=True)
class ManagedState:
    """The fields of a managed instance the mapping reads.

    ``instance_status`` is None while the VM does not exist yet (the API leaves it out, as ``id``);
    ``current_action`` None is what an item without the field means: no scheduled action;
    ``health_states`` holds one ``detailedHealthState`` per health check (empty: no health check).
    """

    instance_status: str | None
    current_action: str | None = None
    health_states: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> ManagedState:
        """From a ``ManagedInstance`` JSON item; absent or malformed fields read as absent."""
        status = item.get("instanceStatus")
        action = item.get("currentAction")
        health = item.get("instanceHealth")
        return cls(
            instance_status=status if isinstance(status, str) else None,
            current_action=action if isinstance(action, str) else None,
            health_states=tuple(_states(health if isinstance(health, list) else ())),
        )


def endpoint_health(state: ManagedState, *, honour_health: bool = True) -> EndpointHealth:
    """The ``health_status`` Envoy should get for a managed VM, or ``NOT_AN_ENDPOINT``.

    ``honour_health=False`` is the behaviour before managed groups were read: RUNNING is an endpoint
    of unknown health, anything else is not one.
    """
    if state.instance_status != "RUNNING":
        return EndpointHealth.NOT_AN_ENDPOINT
    if not honour_health:
        return EndpointHealth.UNKNOWN
    action = state.current_action
    if action in TEARDOWN_ACTIONS:
        return EndpointHealth.DRAINING
    if action in NOT_YET_SERVING_ACTIONS:
        return EndpointHealth.NOT_AN_ENDPOINT
    health = _worst(state.health_states)
    if action == VERIFYING:
        # Verification waits for the autohealing health check's first HEALTHY: until then the VM is
        # not serving; once it is HEALTHY, it is.
        return health if health is EndpointHealth.HEALTHY else EndpointHealth.NOT_AN_ENDPOINT
    # NONE, REFRESHING, no action, or an action newer than this table: the health checks decide.
    return health


def _worst(states: Iterable[str]) -> EndpointHealth:
    """The worst of the health checks' states; none (no health check) or only unknown values is
    UNKNOWN, which Envoy treats as routable."""
    present = set(states)
    for name, health in _HEALTH_BY_SEVERITY:
        if name in present:
            return health
    return EndpointHealth.UNKNOWN


def _states(health: Iterable[Any]) -> Iterable[str]:
    for entry in health:
        if isinstance(entry, Mapping):
            state = entry.get("detailedHealthState")
            if isinstance(state, str):
                yield state
