"""The emulator's live model: projects, zones, VMs and groups, with the indexes list calls page over.

All reads and writes hold ``lock``. VM records are immutable and replaced on every change, so a
rendered VM can be cached on its record. Listeners (the backend fleet) run after each change.
"""

from __future__ import annotations

import bisect
import dataclasses
import ipaddress
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from gce_plugin.emulator import errors
from gce_plugin.emulator.errors import ApiError
from gce_plugin.emulator.fixture import (
    Fixture,
    FixtureError,
    Instance,
    InstanceGroup,
    InstanceGroupManager,
    NamedPort,
    check_labels,
    check_name,
    check_status,
    region_of,
    resolve_member,
    stable_id,
)
from gce_plugin.emulator.managers import HEALTH_STATES, ManagedVm, Manager

VmKey = tuple[str, str]  # (zone, name)
_T = TypeVar("_T")
_FIRST_AUTO_IP = int(ipaddress.IPv4Address("10.128.0.2"))


def timestamp() -> str:
    """RFC 3339 with milliseconds, as ``creationTimestamp`` is written."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def zone_scope(zone: str) -> str:
    return f"zones/{zone}"


def region_scope(region: str) -> str:
    return f"regions/{region}"


@dataclass(frozen=True)
class Vm:
    project: str
    zone: str
    name: str
    id: int
    status: str
    labels: dict[str, str]
    network_ip: str
    nat_ip: str | None
    port: int | None
    machine_type: str
    network: str
    created: str
    # Rendered JSON by base URL; safe because a changed VM is a new record.
    rendered: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Group:
    project: str
    name: str
    scope: str  # "zones/Z" or "regions/R"
    id: int
    named_ports: list[NamedPort]
    network: str
    created: str
    members: list[VmKey] = field(default_factory=list)  # sorted

    @property
    def zone(self) -> str | None:
        return self.scope.removeprefix("zones/") if self.scope.startswith("zones/") else None

    @property
    def region(self) -> str | None:
        return self.scope.removeprefix("regions/") if self.scope.startswith("regions/") else None

    @property
    def resource(self) -> str:
        return f"projects/{self.project}/{self.scope}/instanceGroups/{self.name}"


@dataclass
class Zone:
    names: list[str] = field(default_factory=list)  # sorted
    vms: dict[str, Vm] = field(default_factory=dict)


@dataclass
class ProjectState:
    name: str
    zones: dict[str, Zone] = field(default_factory=dict)
    zone_names: list[str] = field(default_factory=list)  # sorted
    extra_regions: set[str] = field(default_factory=set)  # regions known only from regional groups
    groups: dict[str, dict[str, Group]] = field(default_factory=dict)  # scope -> name -> group
    group_names: dict[str, list[str]] = field(default_factory=dict)  # scope -> sorted names
    vm_groups: dict[VmKey, set[tuple[str, str]]] = field(default_factory=dict)  # -> {(scope, name)}
    used_ips: set[str] = field(default_factory=set)
    next_ip: int = _FIRST_AUTO_IP
    managers: dict[str, dict[str, Manager]] = field(default_factory=dict)  # scope -> name -> manager
    managed_by: dict[VmKey, Manager] = field(default_factory=dict)

    def zone(self, zone: str, create: bool = False) -> Zone | None:
        found = self.zones.get(zone)
        if found is None and create:
            found = self.zones[zone] = Zone()
            bisect.insort(self.zone_names, zone)
        return found

    def regions(self) -> dict[str, list[str]]:
        """Region -> its known zones (sorted)."""
        out: dict[str, list[str]] = {r: [] for r in self.extra_regions}
        for zone in self.zone_names:
            out.setdefault(region_of(zone), []).append(zone)
        return out

    def vm(self, zone: str, name: str) -> Vm:
        found = self.zones.get(zone)
        vm = found.vms.get(name) if found else None
        if vm is None:
            raise errors.not_found(f"projects/{self.name}/zones/{zone}/instances/{name}")
        return vm

    def group(self, scope: str, name: str) -> Group:
        group = self.groups.get(scope, {}).get(name)
        if group is None:
            raise errors.not_found(f"projects/{self.name}/{scope}/instanceGroups/{name}")
        return group

    def manager(self, scope: str, name: str) -> Manager:
        manager = self.managers.get(scope, {}).get(name)
        if manager is None:
            raise errors.not_found(f"projects/{self.name}/{scope}/instanceGroupManagers/{name}")
        return manager

    def iter_managers(self, scope: str, after: VmKey | None = None) -> Iterator[tuple[VmKey, Manager]]:
        """Managers of ``scope`` in name order, starting after ``after``."""
        for name in sorted(self.managers.get(scope, {})):
            if after is None or (scope, name) > after:
                yield (scope, name), self.managers[scope][name]

    def has_vm(self, zone: str, name: str) -> bool:
        found = self.zones.get(zone)
        return found is not None and name in found.vms

    def zones_with(self, name: str) -> list[str]:
        return [z for z in self.zone_names if name in self.zones[z].vms]

    def iter_vms(self, zones: Iterable[str], after: VmKey | None = None) -> Iterator[tuple[VmKey, Vm]]:
        """VMs of ``zones`` (sorted) in (zone, name) order, starting after ``after``."""
        for zone in zones:
            if after is not None and zone < after[0]:
                continue
            found = self.zones.get(zone)
            if found is None:
                continue
            names = found.names
            start = bisect.bisect_right(names, after[1]) if after is not None and zone == after[0] else 0
            for index in range(start, len(names)):
                yield (zone, names[index]), found.vms[names[index]]

    def iter_groups(self, scopes: Iterable[str], after: VmKey | None = None) -> Iterator[tuple[VmKey, Group]]:
        """Groups of ``scopes`` (sorted) in (scope, name) order, starting after ``after``."""
        for scope in scopes:
            if after is not None and scope < after[0]:
                continue
            names = self.group_names.get(scope, [])
            start = bisect.bisect_right(names, after[1]) if after is not None and scope == after[0] else 0
            for index in range(start, len(names)):
                yield (scope, names[index]), self.groups[scope][names[index]]

    def iter_members(self, group: Group, after: VmKey | None = None) -> Iterator[tuple[VmKey, Vm]]:
        """A group's member VMs in (zone, name) order, starting after ``after``."""
        members = group.members
        start = bisect.bisect_right(members, after) if after is not None else 0
        for index in range(start, len(members)):
            zone, name = members[index]
            yield members[index], self.zones[zone].vms[name]

    def group_scopes(self) -> list[str]:
        return sorted(s for s, names in self.group_names.items() if names)

    def first_named_port(self, key: VmKey) -> int | None:
        for scope, name in sorted(self.vm_groups.get(key, ())):
            ports = self.groups[scope][name].named_ports
            if ports:
                return ports[0].port
        return None


class ComputeState:
    def __init__(self, fixture: Fixture, clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.projects: dict[str, ProjectState] = {}
        self._listeners: list[Callable[[], None]] = []
        self.load(fixture)

    # -- setup ---------------------------------------------------------------------------------

    def load(self, fixture: Fixture) -> None:
        """Replace everything with ``fixture`` (checked first; a bad fixture changes nothing)."""
        fixture.check()
        projects: dict[str, ProjectState] = {}
        for spec in fixture.projects:
            project = projects[spec.name] = ProjectState(spec.name)
            for zone in spec.all_zones():
                project.zone(zone, create=True)
            for instance in spec.instances:
                self._add_vm(project, instance)
            for group in spec.instance_groups:
                self._add_group(project, group)
            for manager in spec.instance_group_managers:
                self._add_manager(project, manager)
        with self.lock:
            self.projects = projects
        self._changed()

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    def project(self, name: str) -> ProjectState:
        project = self.projects.get(name)
        if project is None:
            raise errors.not_found(f"projects/{name}")
        return project

    # -- mutations (the admin API) ---------------------------------------------------------------

    def add_instance(self, project: str, instance: Instance, groups: Iterable[str] = ()) -> Vm:
        """Add a VM, and make it a member of ``groups`` (a name: the zonal group in its zone, else
        the regional group in its region; or ``zones/Z/NAME`` / ``regions/R/NAME``)."""
        checked(instance.check)
        with self.lock:
            state = self.project(project)
            if state.zone(instance.zone) is not None and instance.name in state.zones[instance.zone].vms:
                raise errors.already_exists(
                    f"projects/{project}/zones/{instance.zone}/instances/{instance.name}"
                )
            scopes = [self._group_for_new_member(state, instance.zone, g) for g in groups]
            vm = self._add_vm(state, instance)
            for scope, name in scopes:
                self._add_member(state, state.group(scope, name), (vm.zone, vm.name))
        self._changed()
        return vm

    def remove_instance(self, project: str, zone: str, name: str) -> None:
        """Delete a VM. A managed group notices and creates it again (CREATING, then VERIFYING)."""
        with self.lock:
            state = self.project(project)
            state.vm(zone, name)  # 404 when missing
            manager = state.managed_by.get((zone, name))
            self._remove_vm(state, zone, name)
            if manager is not None and name in manager.vms:
                managed = manager.vms[name]
                managed.exists, managed.health = False, None
                managed.action, managed.until = "CREATING", self.clock() + manager.spec.timings.creating
        self._changed()

    def set_status(self, project: str, zone: str, name: str, status: str) -> Vm:
        checked(lambda: check_status(status))
        return self._replace_vm(project, zone, name, status=status)

    def set_labels(self, project: str, zone: str, name: str, labels: dict[str, str]) -> Vm:
        return self._replace_vm(project, zone, name, labels=checked(lambda: check_labels(labels)))

    def add_group(self, project: str, group: InstanceGroup) -> Group:
        checked(group.check)
        with self.lock:
            state = self.project(project)
            scope = zone_scope(group.zone) if group.zone else region_scope(str(group.region))
            if group.name in state.groups.get(scope, {}):
                raise errors.already_exists(f"projects/{project}/{scope}/instanceGroups/{group.name}")
            created = self._add_group(state, group)
        self._changed()
        return created

    def delete_group(self, project: str, scope: str, name: str) -> None:
        with self.lock:
            state = self.project(project)
            group = state.group(scope, name)
            for key in list(group.members):
                self._remove_member(state, group, key)
            del state.groups[scope][name]
            names = state.group_names[scope]
            names.pop(bisect.bisect_left(names, name))
        self._changed()

    def add_members(self, project: str, scope: str, name: str, refs: Iterable[str]) -> Group:
        return self._change_members(project, scope, name, refs, self._add_member)

    def remove_members(self, project: str, scope: str, name: str, refs: Iterable[str]) -> Group:
        return self._change_members(project, scope, name, refs, self._remove_member)

    def _change_members(
        self, project: str, scope: str, name: str, refs: Iterable[str], change: Callable[..., None]
    ) -> Group:
        with self.lock:
            state = self.project(project)
            group = state.group(scope, name)
            for key in [_resolve(state, group, ref) for ref in refs]:  # all resolved before any change
                change(state, group, key)
        self._changed()
        return group

    def set_named_ports(self, project: str, scope: str, name: str, ports: list[NamedPort]) -> Group:
        with self.lock:
            group = self.project(project).group(scope, name)
            probe = InstanceGroup(name, zone=group.zone, region=group.region, named_ports=ports)
            checked(probe.check)
            group.named_ports = list(ports)
        self._changed()
        return group

    # -- managed instance groups ------------------------------------------------------------------

    def resize_manager(self, project: str, scope: str, name: str, size: int) -> Manager:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise errors.invalid_field("size", size, "Must be greater than or equal to 0.")
        with self.lock:
            state = self.project(project)
            manager = state.manager(scope, name)
            manager.resize(size, self.clock(), state.has_vm)
        self._changed()
        return manager

    def rolling_replace(
        self,
        project: str,
        scope: str,
        name: str,
        template: str | None = None,
        max_surge: int | None = None,
        max_unavailable: int | None = None,
    ) -> Manager:
        """Start replacing every VM of the group (``updatePolicy`` REPLACE, PROACTIVE)."""
        for field_name, value in (("maxSurge", max_surge), ("maxUnavailable", max_unavailable)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise errors.invalid_field(f"updatePolicy.{field_name}.fixed", value, "Must be >= 0.")
        with self.lock:
            manager = self.project(project).manager(scope, name)
            surge = manager.max_surge if max_surge is None else max_surge
            unavailable = manager.max_unavailable if max_unavailable is None else max_unavailable
            if surge == 0 and unavailable == 0:
                raise errors.bad_request(
                    "At least one of maxSurge and maxUnavailable must be greater than 0."
                )
            if template is not None:
                checked(lambda: check_name("instance template", template))
            manager.rolling_replace(template, surge, unavailable)
        self.tick()
        return manager

    def set_health(self, project: str, zone: str, name: str, health: str) -> ManagedVm:
        """Set what a managed VM's autohealing health check reports (``detailedHealthState``)."""
        if health not in HEALTH_STATES:
            raise errors.invalid_field(
                "detailedHealthState", health, f"Must be one of {list(HEALTH_STATES)}."
            )
        with self.lock:
            state = self.project(project)
            state.vm(zone, name)  # 404 when missing
            manager = state.managed_by.get((zone, name))
            if manager is None or name not in manager.vms:
                raise errors.bad_request(f"Instance '{name}' is not in a managed instance group")
            if manager.health_check is None:
                raise errors.bad_request(
                    f"Instance group manager '{manager.name}' has no autohealing health check"
                )
            managed = manager.set_health(name, health, self.clock())
        self._changed()
        return managed

    def tick(self) -> None:
        """Advance every managed group's timed phases; listeners run when anything changed."""
        changed = False
        with self.lock:
            now = self.clock()
            for state in self.projects.values():
                ops = _ManagerOps(self, state)
                for managers in state.managers.values():
                    for manager in managers.values():
                        changed |= manager.tick(now, ops, state.has_vm)
        if changed:
            self._changed()

    def has_managers(self) -> bool:
        return any(state.managers for state in self.projects.values())

    def vm_serving(self, project: str, zone: str, name: str) -> bool:
        """Whether a VM's service answers normally: unmanaged VMs do; managed ones unless their
        health check fails or the group is tearing them down (they answer 503 then)."""
        with self.lock:
            state = self.projects.get(project)
            manager = state.managed_by.get((zone, name)) if state is not None else None
            managed = manager.vms.get(name) if manager is not None else None
            if managed is None or manager is None:
                return True
            return managed.serving(self.clock(), manager.spec.timings.grace)

    # -- queries -----------------------------------------------------------------------------------

    def backend_targets(self) -> dict[tuple[str, int], Vm]:
        """(networkIP, port) -> VM, for RUNNING VMs on loopback addresses with a port (their own, or
        the first named port of a group they belong to)."""
        targets: dict[tuple[str, int], Vm] = {}
        with self.lock:
            for state in self.projects.values():
                for zone in state.zone_names:
                    for vm in state.zones[zone].vms.values():
                        if vm.status != "RUNNING" or not ipaddress.IPv4Address(vm.network_ip).is_loopback:
                            continue
                        port = vm.port or state.first_named_port((vm.zone, vm.name))
                        if port is not None:
                            targets.setdefault((vm.network_ip, port), vm)
        return targets

    # -- internals (lock held) -------------------------------------------------------------------

    def _replace_vm(self, project: str, zone: str, name: str, **changes: Any) -> Vm:
        with self.lock:
            state = self.project(project)
            vm = dataclasses.replace(state.vm(zone, name), rendered={}, **changes)
            state.zones[zone].vms[name] = vm
        self._changed()
        return vm

    def _add_vm(self, state: ProjectState, instance: Instance) -> Vm:
        ip = instance.network_ip or _next_free_ip(state)
        vm = Vm(
            project=state.name,
            zone=instance.zone,
            name=instance.name,
            id=instance.id or stable_id(state.name, instance.zone, "instances", instance.name),
            status=instance.status,
            labels=dict(instance.labels),
            network_ip=ip,
            nat_ip=instance.nat_ip,
            port=instance.port,
            machine_type=instance.machine_type,
            network=instance.network,
            created=timestamp(),
        )
        zone = state.zone(instance.zone, create=True)
        assert zone is not None
        zone.vms[vm.name] = vm
        bisect.insort(zone.names, vm.name)
        state.used_ips.add(ip)
        return vm

    def _add_manager(self, state: ProjectState, spec: InstanceGroupManager) -> None:
        scope = zone_scope(spec.zone) if spec.zone else region_scope(str(spec.region))
        group = InstanceGroup(
            spec.name, spec.zone, spec.region, named_ports=list(spec.named_ports), network=spec.network
        )
        self._add_group(state, group)
        manager = Manager.from_spec(state.name, spec, scope, timestamp())
        state.managers.setdefault(scope, {})[spec.name] = manager
        manager.populate(_ManagerOps(self, state), state.has_vm)

    def _remove_vm(self, state: ProjectState, zone: str, name: str) -> None:
        vm = state.vm(zone, name)
        key = (zone, name)
        for scope, group_name in state.vm_groups.pop(key, set()):
            self._remove_member(state, state.groups[scope][group_name], key)
        state.managed_by.pop(key, None)
        found = state.zones[zone]
        del found.vms[name]
        found.names.pop(bisect.bisect_left(found.names, name))
        state.used_ips.discard(vm.network_ip)

    def _add_group(self, state: ProjectState, spec: InstanceGroup) -> Group:
        scope = zone_scope(spec.zone) if spec.zone else region_scope(str(spec.region))
        if spec.zone:
            state.zone(spec.zone, create=True)
        elif spec.region not in state.regions():
            state.extra_regions.add(str(spec.region))
        group = Group(
            project=state.name,
            name=spec.name,
            scope=scope,
            id=spec.id or stable_id(state.name, scope, "instanceGroups", spec.name),
            named_ports=list(spec.named_ports),
            network=spec.network,
            created=timestamp(),
        )
        keys = [_resolve(state, group, ref) for ref in spec.instances]
        state.groups.setdefault(scope, {})[group.name] = group
        bisect.insort(state.group_names.setdefault(scope, []), group.name)
        for key in keys:
            self._add_member(state, group, key)
        return group

    def _group_for_new_member(self, state: ProjectState, zone: str, ref: str) -> tuple[str, str]:
        if ref.startswith(("zones/", "regions/")):
            scope, _, name = ref.rpartition("/")
            if scope not in (zone_scope(zone), region_scope(region_of(zone))):
                raise errors.bad_request(f"Group '{ref}' is not in the instance's zone or region")
        else:
            name = ref
            scope = zone_scope(zone)
            if name not in state.groups.get(scope, {}):
                scope = region_scope(region_of(zone))
        state.group(scope, name)  # 404 when missing
        return scope, name

    @staticmethod
    def _add_member(state: ProjectState, group: Group, key: VmKey) -> None:
        index = bisect.bisect_left(group.members, key)
        if index < len(group.members) and group.members[index] == key:
            return
        group.members.insert(index, key)
        state.vm_groups.setdefault(key, set()).add((group.scope, group.name))

    @staticmethod
    def _remove_member(state: ProjectState, group: Group, key: VmKey) -> None:
        index = bisect.bisect_left(group.members, key)
        if index < len(group.members) and group.members[index] == key:
            group.members.pop(index)
        state.vm_groups.get(key, set()).discard((group.scope, group.name))


class _ManagerOps:
    """How a manager creates and deletes its VMs in a project (lock held)."""

    def __init__(self, compute: ComputeState, state: ProjectState) -> None:
        self.compute = compute
        self.state = state

    def create_vm(self, manager: Manager, vm: ManagedVm) -> None:
        spec = manager.spec
        ip = _next_ip_in(self.state, spec.network_ip_range) if spec.network_ip_range else None
        instance = Instance(vm.name, zone=vm.zone, network_ip=ip, network=spec.network)
        self.compute._add_vm(self.state, instance)
        key = (vm.zone, vm.name)
        group = self.state.group(manager.scope, manager.name)
        self.compute._add_member(self.state, group, key)
        self.state.managed_by[key] = manager

    def delete_vm(self, manager: Manager, vm: ManagedVm) -> None:
        if self.state.has_vm(vm.zone, vm.name):
            self.compute._remove_vm(self.state, vm.zone, vm.name)


def _next_ip_in(state: ProjectState, cidr: str) -> str:
    for address in ipaddress.IPv4Network(cidr).hosts():
        if str(address) not in state.used_ips:
            return str(address)
    raise errors.bad_request(f"networkIPRange {cidr} has no free address")


def _resolve(state: ProjectState, group: Group, ref: str) -> VmKey:
    try:
        return resolve_member(ref, group.zone, group.region, state.zones_with)
    except FixtureError as exc:
        raise errors.bad_request(f"Instance group '{group.name}': {exc}") from None


def _next_free_ip(state: ProjectState) -> str:
    while str(ipaddress.IPv4Address(state.next_ip)) in state.used_ips:
        state.next_ip += 1
    ip = str(ipaddress.IPv4Address(state.next_ip))
    state.next_ip += 1
    return ip


def checked(check: Callable[[], _T]) -> _T:
    """Run a fixture check (or read); its FixtureError becomes a 400."""
    try:
        return check()
    except FixtureError as exc:
        raise ApiError(400, str(exc), "invalid") from None
