"""Managed instance groups in the emulator: the manager's view of its VMs and the lifecycle it walks
them through, on a clock, as the real one does in minutes:

- created:     CREATING (no VM yet) -> VERIFYING (RUNNING, health UNKNOWN; only with a health
               check) -> NONE (HEALTHY with a health check);
- deleted:     DELETING (still RUNNING; its backend answers 503) -> gone;
- autohealed:  UNHEALTHY or TIMEOUT for ``timings.autoheal`` -> RECREATING (503) -> gone ->
               CREATING under the same name -> VERIFYING -> NONE;
- rolling replace: every VM not at the target template is replaced, creating at most ``maxSurge``
  VMs above ``targetSize`` and keeping at least ``targetSize - maxUnavailable`` available (RUNNING,
  no action, HEALTHY when there is a health check), as ``updatePolicy`` says;
- resize: scale out creates VMs, scale in deletes (DELETING first) the least available, newest first.

The VMs themselves live in the state's zones; ``VmOps`` creates and deletes them. Everything here
runs with the state's lock held.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gce_plugin.emulator.fixture import InstanceGroupManager, stable_id

HEALTH_STATES = ("DRAINING", "HEALTHY", "TIMEOUT", "UNHEALTHY", "UNKNOWN")
# currentAction values under which the VM's service is shutting down (its backend answers 503).
TEARDOWN_ACTIONS = frozenset({"ABANDONING", "DELETING", "RECREATING", "RESTARTING", "STOPPING", "SUSPENDING"})
UNHEALTHY_STATES = frozenset({"UNHEALTHY", "TIMEOUT"})
FAILING_HEALTH = UNHEALTHY_STATES | {"DRAINING"}
_SUFFIX = string.ascii_lowercase + string.digits
Taken = Callable[[str, str], bool]  # (zone, name) -> whether a VM of that name exists there


class VmOps(Protocol):
    def create_vm(self, manager: Manager, vm: ManagedVm) -> None: ...

    def delete_vm(self, manager: Manager, vm: ManagedVm) -> None: ...


@dataclass
class ManagedVm:
    name: str
    zone: str
    action: str  # currentAction
    version: str  # the instance template it runs (or will)
    health: str | None = None  # detailedHealthState; None without a health check or a VM
    exists: bool = False  # whether the VM has been created
    until: float = 0.0  # when the current timed phase ends
    unhealthy_since: float | None = None
    failing_since: float | None = None  # since when its service has had reason to answer 503
    serial: int = 0  # creation order

    @property
    def available(self) -> bool:
        """``updatePolicy.maxUnavailable``'s definition: RUNNING and (with a health check) HEALTHY."""
        return self.exists and self.action == "NONE" and self.health in (None, "HEALTHY")

    @property
    def failing(self) -> bool:
        """Torn down by its group, or its health check says it should not take requests."""
        return self.action in TEARDOWN_ACTIONS or self.health in FAILING_HEALTH

    def note_failing(self, now: float) -> None:
        """Keep ``failing_since`` (the start of the current failing stretch) up to date."""
        if not self.failing:
            self.failing_since = None
        elif self.failing_since is None:
            self.failing_since = now

    def serving(self, now: float, grace: float) -> bool:
        """Whether the VM's service answers requests normally (else 503): not while it is failing,
        once ``grace`` seconds have passed since it started to; never before its first HEALTHY."""
        if not self.exists:
            return False
        if self.action == "VERIFYING":
            return self.health == "HEALTHY"
        if not self.failing:
            return True
        return self.failing_since is not None and now - self.failing_since < grace


@dataclass
class Manager:
    project: str
    spec: InstanceGroupManager
    scope: str  # "zones/Z" or "regions/R"
    id: int
    created: str
    target_size: int
    template: str
    max_surge: int
    max_unavailable: int
    vms: dict[str, ManagedVm] = field(default_factory=dict)
    updating: bool = False
    serial: int = 0

    @classmethod
    def from_spec(cls, project: str, spec: InstanceGroupManager, scope: str, created: str) -> Manager:
        zones = len(spec.distribution_zones())
        return cls(
            project=project,
            spec=spec,
            scope=scope,
            id=spec.id or stable_id(project, scope, "instanceGroupManagers", spec.name),
            created=created,
            target_size=spec.target_size,
            template=spec.instance_template,
            max_surge=zones if spec.max_surge is None else spec.max_surge,
            max_unavailable=zones if spec.max_unavailable is None else spec.max_unavailable,
        )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def health_check(self) -> str | None:
        return self.spec.health_check

    @property
    def resource(self) -> str:
        return f"projects/{self.project}/{self.scope}/instanceGroupManagers/{self.name}"

    def sorted_vms(self) -> list[ManagedVm]:
        """In (zone, name) order: the order listManagedInstances answers in."""
        return sorted(self.vms.values(), key=lambda v: (v.zone, v.name))

    # -- operations -------------------------------------------------------------------------------

    def populate(self, ops: VmOps, taken: Taken) -> None:
        """The fixture's VMs: ``targetSize`` of them, already RUNNING and settled."""
        for _ in range(self.target_size):
            vm = self._new_vm(taken)
            vm.action = "NONE"
            vm.exists = True
            vm.health = "HEALTHY" if self.health_check else None
            ops.create_vm(self, vm)

    def resize(self, size: int, now: float, taken: Taken) -> None:
        self.target_size = size
        live = self._live()
        for _ in range(size - len(live)):
            self._create(now, taken)
        if len(live) > size:
            # The least available go first; among equals, the newest.
            doomed = sorted(live, key=lambda v: (v.available, -v.serial))[: len(live) - size]
            for vm in doomed:
                self._start(vm, "DELETING", now, self.spec.timings.deleting)

    def rolling_replace(
        self, template: str | None, max_surge: int | None, max_unavailable: int | None
    ) -> None:
        """Replace every VM not at ``template`` (default: a new template name, so every VM)."""
        self.template = template or _next_template(self.template)
        if max_surge is not None:
            self.max_surge = max_surge
        if max_unavailable is not None:
            self.max_unavailable = max_unavailable
        for vm in self.vms.values():
            if vm.action in ("CREATING", "CREATING_WITHOUT_RETRIES"):
                vm.version = self.template  # not created yet: it will be from the new template
        self.updating = True

    def set_health(self, name: str, state: str, now: float) -> ManagedVm:
        vm = self.vms[name]
        vm.health = state
        if state in UNHEALTHY_STATES:
            vm.unhealthy_since = vm.unhealthy_since if vm.unhealthy_since is not None else now
        else:
            vm.unhealthy_since = None
        vm.note_failing(now)
        return vm

    # -- time -------------------------------------------------------------------------------------

    def tick(self, now: float, ops: VmOps, taken: Taken) -> bool:
        """Advance every phase that is due; True when anything changed."""
        changed = False
        for vm in list(self.vms.values()):
            changed |= self._advance(vm, now, ops)
        if self.updating:
            changed |= self._update_step(now, taken)
        return changed

    def _advance(self, vm: ManagedVm, now: float, ops: VmOps) -> bool:
        if vm.action == "NONE":
            return self._maybe_autoheal(vm, now)
        if now < vm.until:
            return False
        if vm.action in ("CREATING", "CREATING_WITHOUT_RETRIES"):
            vm.exists = True
            ops.create_vm(self, vm)
            if self.health_check:
                vm.health = "UNKNOWN"
                self._start(vm, "VERIFYING", now, self.spec.timings.verifying)
            else:
                vm.action = "NONE"
        elif vm.action == "VERIFYING":
            vm.action = "NONE"
            if vm.health == "UNKNOWN":
                vm.health = "HEALTHY"
        elif vm.action == "DELETING":
            self._remove(vm, ops)
        elif vm.action == "RECREATING":
            self._remove(vm, ops)
            self.vms[vm.name] = vm
            vm.version = self.template
            self._start(vm, "CREATING", now, self.spec.timings.creating)
        else:
            return False
        return True

    def _maybe_autoheal(self, vm: ManagedVm, now: float) -> bool:
        if not self.health_check or vm.unhealthy_since is None:
            return False
        if now - vm.unhealthy_since < self.spec.timings.autoheal:
            return False
        self._start(vm, "RECREATING", now, self.spec.timings.deleting)
        return True

    def _update_step(self, now: float, taken: Taken) -> bool:
        """One step of a rolling replace within maxSurge / maxUnavailable."""
        live = self._live()
        outdated = [v for v in live if v.version != self.template]
        if not outdated:
            self.updating = False
            return False
        changed = False
        available = sum(v.available for v in live)
        floor = self.target_size - self.max_unavailable
        # Unavailable VMs first: replacing them costs no availability. Then the oldest.
        for vm in sorted(outdated, key=lambda v: (v.available, v.serial)):
            if vm.action != "NONE":
                continue  # busy (verifying, being recreated): wait for it
            if vm.available:
                if available - 1 < floor:
                    break
                available -= 1
            self._start(vm, "DELETING", now, self.spec.timings.deleting)
            live.remove(vm)
            changed = True
        current = sum(v.version == self.template for v in live)
        while current < self.target_size and len(live) < self.target_size + self.max_surge:
            live.append(self._create(now, taken))
            current += 1
            changed = True
        return changed

    # -- helpers ----------------------------------------------------------------------------------

    def _live(self) -> list[ManagedVm]:
        """The VMs that count towards the target size: not being deleted."""
        return [v for v in self.vms.values() if v.action != "DELETING"]

    def _start(self, vm: ManagedVm, action: str, now: float, seconds: float) -> None:
        vm.action = action
        vm.until = now + seconds
        if action in ("DELETING", "RECREATING"):
            vm.unhealthy_since = None
        vm.note_failing(now)

    def _create(self, now: float, taken: Taken) -> ManagedVm:
        vm = self._new_vm(taken)
        self._start(vm, "CREATING", now, self.spec.timings.creating)
        return vm

    def _new_vm(self, taken: Taken) -> ManagedVm:
        self.serial += 1
        zone = self._emptiest_zone()
        key = (self.project, self.scope, self.name, str(self.serial))
        name = _vm_name(self.spec.base_name, key, lambda n: n in self.vms or taken(zone, n))
        vm = ManagedVm(name=name, zone=zone, action="CREATING", version=self.template, serial=self.serial)
        self.vms[name] = vm
        return vm

    def _emptiest_zone(self) -> str:
        counts = {z: 0 for z in self.spec.distribution_zones()}
        for vm in self._live():
            counts[vm.zone] = counts.get(vm.zone, 0) + 1
        return min(counts, key=lambda z: (counts[z], z))

    def _remove(self, vm: ManagedVm, ops: VmOps) -> None:
        del self.vms[vm.name]
        if vm.exists:
            ops.delete_vm(self, vm)
        vm.exists = False
        vm.health = None


def _vm_name(base: str, key: tuple[str, ...], taken: Callable[[str], bool]) -> str:
    """``base-xxxx``: four lowercase letters and digits, as the real manager names its VMs."""
    attempt = 0
    while True:
        number = stable_id(*key, str(attempt))
        suffix = "".join(_SUFFIX[(number >> (6 * i)) % len(_SUFFIX)] for i in range(4))
        name = f"{base}-{suffix}"
        if not taken(name):
            return name
        attempt += 1


def _next_template(template: str) -> str:
    """``shop-v1`` -> ``shop-v2``; ``t`` -> ``t-v2``."""
    head, sep, number = template.rpartition("-v")
    if sep and number.isdigit():
        return f"{head}-v{int(number) + 1}"
    return f"{template}-v2"
