"""The emulator's fixture: the projects, zones, VMs and instance groups it serves.

A fixture is plain dataclasses (``Fixture`` > ``Project`` > ``Instance`` / ``InstanceGroup``), so
benchmarks can build one in code; ``Fixture.load(path)`` / ``Fixture.from_dict(data)`` read the YAML
form below. Every fixture is checked (``Fixture.check``) before an emulator serves it: unknown keys,
bad names, duplicate instances and group members that do not resolve are errors that name the spot.

YAML form (keys are the Compute API's camelCase names)::

    projects:
      demo-project:                       # project id
        zones:
          us-central1-a:                  # a zone; its region is the name minus the last "-x"
            instances:
              - name: web-1               # required; RFC 1035 (lowercase letters, digits, "-")
                id: 1001                  # optional; default: a stable number from project/zone/name
                status: RUNNING           # default RUNNING; also STOPPED, TERMINATED, STAGING, ...
                networkIP: 127.0.0.11     # default: the next free 10.128.x.y
                natIP: 203.0.113.11       # optional; gives the VM an ONE_TO_ONE_NAT access config
                labels: {env: prod}       # optional
                port: 8080                # optional; the port --serve-backends binds for this VM
                machineType: e2-small     # optional
            instanceGroups:               # zonal unmanaged groups
              - name: web
                namedPorts: [{name: http, port: 8080}]   # or the short form ["http:8080"]
                instances: [web-1]        # members: names in this zone
          us-central1-b: {}               # a zone with nothing in it (still answers zones.get)
        regions:
          us-central1:
            instanceGroups:               # regional groups; members from any zone of the region
              - name: api
                namedPorts: ["http:8081"]
                instances: [us-central1-a/api-1, api-2]   # "zone/name", or a name unique in the region
            instanceGroupManagers:        # regional managed groups (see below)

Managed instance groups (``instanceGroupManagers``, under a zone or a region) own their VMs: the
manager creates ``targetSize`` VMs named ``baseInstanceName-xxxx`` and an instance group of its own
name holding them (with its ``namedPorts``), and walks them through the lifecycle the admin API
starts (resize, rolling replace, autohealing; docs/managed-instance-groups.md)::

            instanceGroupManagers:
              - name: shop
                targetSize: 4
                baseInstanceName: shop              # default: the manager's name
                namedPorts: ["http:8090"]
                instanceTemplate: shop-v1           # the version new VMs get
                listManagedInstancesResults: PAGELESS   # or PAGINATED (maxResults/pageToken apply)
                autoHealingPolicies: [{healthCheck: shop-hc, initialDelaySec: 0}]  # gives VMs health
                updatePolicy: {maxSurge: {fixed: 1}, maxUnavailable: {fixed: 0}}  # default: #zones, #zones
                zones: [us-central1-a, us-central1-b]   # regional only; default REGION-a, -b, -c
                networkIPRange: 127.0.3.0/24        # emulator: new VMs' networkIP from here
                callerCanRead: true                 # emulator: false answers 403 to get/listManagedInstances
                timings: {creating: 0.5, verifying: 0.5, deleting: 1.0, autoheal: 1.0, grace: 0}  # seconds

In code::

    Fixture([Project("p", instances=[Instance("vm-1", zone="us-central1-a")],
                     instance_groups=[InstanceGroup("g", zone="us-central1-a", instances=["vm-1"])])])
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

# The Compute v1 discovery document the client bundles (compute.DOCUMENT_FILE, pruned to the methods
# it calls, which are the ones the emulator answers), read without importing the client.
_DOCUMENT = Path(__file__).parents[1] / "plugins" / "gce" / "compute_v1_discovery.json"
SCHEMAS: dict[str, Any] = json.loads(_DOCUMENT.read_text())["schemas"]
STATUSES = frozenset(SCHEMAS["Instance"]["properties"]["status"]["enum"])

_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_PROJECT = re.compile(r"^[a-z](?:[-a-z0-9.:]{0,61}[a-z0-9])?$")
ZONE_NAME = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
REGION_NAME = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")


class FixtureError(ValueError):
    """A fixture that cannot be served; the message says where (e.g. ``projects.p.zones.z...``)."""


def region_of(zone: str) -> str:
    """``us-central1-a`` -> ``us-central1``."""
    return zone.rsplit("-", 1)[0]


def stable_id(*parts: str) -> int:
    """A 19-digit id that stays the same for the same resource path across runs."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return 10**18 + int.from_bytes(digest[:8], "big") % (9 * 10**18)


def check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise FixtureError(
            f"{kind} name {name!r}: want 1-63 lowercase letters, digits or '-', starting a letter"
        )
    return name


def check_zone(zone: object) -> str:
    if not isinstance(zone, str) or not ZONE_NAME.match(zone):
        raise FixtureError(f"zone {zone!r}: want a zone name like us-central1-a")
    return zone


def check_region(region: object) -> str:
    if not isinstance(region, str) or not REGION_NAME.match(region):
        raise FixtureError(f"region {region!r}: want a region name like us-central1")
    return region


def check_status(status: object) -> str:
    if status not in STATUSES:
        raise FixtureError(f"status {status!r}: want one of {', '.join(sorted(STATUSES))}")
    return str(status)


def check_ip(kind: str, value: object) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise FixtureError(f"{kind} {value!r}: want an IPv4 address") from None


def check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise FixtureError(f"port {port!r}: want an integer 1-65535")
    return port


def check_labels(labels: object) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise FixtureError(f"labels {labels!r}: want a mapping of strings")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
            raise FixtureError(f"label {key!r}: want string keys and values")
        out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


@dataclass
class NamedPort:
    name: str
    port: int

    def check(self) -> None:
        check_name("named port", self.name)
        check_port(self.port)


@dataclass
class Instance:
    name: str
    zone: str
    status: str = "RUNNING"
    id: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    network_ip: str | None = None
    nat_ip: str | None = None
    port: int | None = None
    machine_type: str = "e2-small"
    network: str = "default"

    def check(self) -> None:
        check_name("instance", self.name)
        check_zone(self.zone)
        check_status(self.status)
        check_labels(self.labels)
        if self.id is not None and (
            isinstance(self.id, bool) or not isinstance(self.id, int) or self.id <= 0
        ):
            raise FixtureError(f"id {self.id!r}: want a positive integer")
        for kind, ip in (("networkIP", self.network_ip), ("natIP", self.nat_ip)):
            if ip is not None:
                check_ip(kind, ip)
        if self.port is not None:
            check_port(self.port)
        check_name("network", self.network)


@dataclass
class InstanceGroup:
    """An unmanaged instance group: zonal when ``zone`` is set, regional when ``region`` is."""

    name: str
    zone: str | None = None
    region: str | None = None
    named_ports: list[NamedPort] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)  # "name" or "zone/name"
    id: int | None = None
    network: str = "default"

    def check(self) -> None:
        check_name("instance group", self.name)
        _check_scope("instance group", self.name, self.zone, self.region)
        for named_port in self.named_ports:
            named_port.check()
        check_name("network", self.network)


def _check_scope(kind: str, name: str, zone: str | None, region: str | None) -> None:
    if (zone is None) == (region is None):
        raise FixtureError(f"{kind} {name!r}: set exactly one of zone and region")
    if zone is not None:
        check_zone(zone)
    if region is not None:
        check_region(region)


LIST_RESULTS = ("PAGELESS", "PAGINATED")


@dataclass
class Timings:
    """Seconds each managed-instance phase lasts in the emulator (the real ones take minutes)."""

    creating: float = 0.5  # CREATING: the VM does not exist yet
    verifying: float = 0.5  # VERIFYING (with a health check): RUNNING, health UNKNOWN, then HEALTHY
    deleting: float = 1.0  # DELETING / RECREATING: RUNNING, its backend answers 503, then gone
    autoheal: float = 1.0  # UNHEALTHY (or TIMEOUT) this long before autohealing recreates the VM
    # How long a VM's service keeps answering 200 once its group starts tearing it down or its health
    # turns UNHEALTHY/TIMEOUT/DRAINING, before it answers 503: 0 is at once. Above a discovery
    # refresh, it models the group recording DELETING before the guest gets its shutdown signal.
    grace: float = 0.0

    def check(self) -> None:
        for name in TIMINGS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise FixtureError(f"timings.{name} {value!r}: want seconds >= 0")


TIMINGS = tuple(f.name for f in fields(Timings))


@dataclass
class InstanceGroupManager:
    """A managed instance group: zonal when ``zone`` is set, regional when ``region`` is."""

    name: str
    zone: str | None = None
    region: str | None = None
    target_size: int = 0
    base_instance_name: str | None = None
    named_ports: list[NamedPort] = field(default_factory=list)
    instance_template: str = "template-1"
    list_managed_instances_results: str = "PAGELESS"
    health_check: str | None = None  # the autohealing policy's health check; None: no health check
    initial_delay_sec: int = 0
    max_surge: int | None = None  # None: the number of zones, as the real default
    max_unavailable: int | None = None
    zones: list[str] = field(default_factory=list)  # regional: where VMs go
    network_ip_range: str | None = None
    caller_can_read: bool = True
    timings: Timings = field(default_factory=Timings)
    id: int | None = None
    network: str = "default"

    @property
    def base_name(self) -> str:
        return self.base_instance_name or self.name

    def distribution_zones(self) -> list[str]:
        if self.zone is not None:
            return [self.zone]
        return sorted(self.zones) or [f"{self.region}-{x}" for x in "abc"]

    def check(self) -> None:
        check_name("instance group manager", self.name)
        self._check_scope()
        check_name("base instance name", self.base_name)
        check_name("instance template", self.instance_template)
        if self.health_check is not None:
            check_name("health check", self.health_check)
        for named_port in self.named_ports:
            named_port.check()
        self._check_knobs()
        self.timings.check()
        check_name("network", self.network)

    def _check_scope(self) -> None:
        _check_scope("instance group manager", self.name, self.zone, self.region)
        if self.zone is not None and self.zones:
            raise FixtureError("zones: only for regional managers")
        for zone in self.zones:
            if region_of(check_zone(zone)) != self.region:
                raise FixtureError(f"zone {zone!r} is not in region {self.region}")

    def _check_knobs(self) -> None:
        if self.list_managed_instances_results not in LIST_RESULTS:
            raise FixtureError(
                f"listManagedInstancesResults {self.list_managed_instances_results!r}: "
                "want PAGELESS or PAGINATED"
            )
        _check_count("targetSize", self.target_size)
        for what, value in (("maxSurge", self.max_surge), ("maxUnavailable", self.max_unavailable)):
            if value is not None:
                _check_count(f"updatePolicy.{what}.fixed", value)
        if self.network_ip_range is not None:
            try:
                ipaddress.IPv4Network(self.network_ip_range)
            except ValueError:
                raise FixtureError(
                    f"networkIPRange {self.network_ip_range!r}: want a CIDR like 127.0.3.0/24"
                ) from None


def _check_count(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FixtureError(f"{what} {value!r}: want an integer >= 0")


@dataclass
class Project:
    name: str
    instances: list[Instance] = field(default_factory=list)
    instance_groups: list[InstanceGroup] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)  # zones with nothing in them; others are implied
    instance_group_managers: list[InstanceGroupManager] = field(default_factory=list)

    def all_zones(self) -> list[str]:
        found = set(self.zones) | {i.zone for i in self.instances}
        found |= {g.zone for g in self.instance_groups if g.zone is not None}
        for manager in self.instance_group_managers:
            found |= set(manager.distribution_zones())
        return sorted(found)


@dataclass
class Fixture:
    projects: list[Project] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> Fixture:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise FixtureError(f"{path}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FixtureError(f"{path}: not valid YAML: {exc}") from None
        try:
            return cls.from_dict({} if data is None else data)
        except FixtureError as exc:
            raise FixtureError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any) -> Fixture:
        data = _keys(data, "", {"projects"})
        projects = [
            _project_from_dict(name, body, f"projects.{name}")
            for name, body in _mapping(data.get("projects"), "projects").items()
        ]
        fixture = cls(projects)
        fixture.check()
        return fixture

    def check(self) -> None:
        """Raise ``FixtureError`` unless every name is valid and every group member resolves."""
        seen_projects: set[str] = set()
        for project in self.projects:
            where = f"projects.{project.name}"
            if not isinstance(project.name, str) or not _PROJECT.match(project.name):
                raise FixtureError(f"{where}: project id {project.name!r} is not valid")
            if project.name in seen_projects:
                raise FixtureError(f"{where}: duplicate project")
            seen_projects.add(project.name)
            with located(where):
                for zone in project.zones:
                    check_zone(zone)
            _check_project(project, where)


def resolve_member(
    ref: str, group_zone: str | None, group_region: str | None, zones_with: Callable[[str], list[str]]
) -> tuple[str, str]:
    """A group member reference -> (zone, instance name).

    ``ref`` is ``name``, ``zone/name`` or a (partial) instance URL ``.../zones/Z/instances/N``;
    ``zones_with(name)`` lists the zones holding an instance of that name.
    """
    if "/instances/" in ref:
        head, _, name = ref.rpartition("/instances/")
        zone = head.rsplit("/", 1)[-1]
    elif "/" in ref:
        zone, _, name = ref.partition("/")
    else:
        name = ref
        candidates = zones_with(name)
        if group_zone is not None:
            zone = group_zone
        else:
            in_region = [z for z in candidates if region_of(z) == group_region]
            if len(in_region) > 1:
                raise FixtureError(f"member {ref!r} is ambiguous: in zones {', '.join(in_region)}")
            zone = in_region[0] if in_region else ""
    if zone not in zones_with(name):
        where = group_zone or f"region {group_region}"
        raise FixtureError(f"member {ref!r}: no such instance in {where}")
    if group_zone is not None and zone != group_zone:
        raise FixtureError(f"member {ref!r} is in zone {zone}, not in the group's zone {group_zone}")
    if group_region is not None and region_of(zone) != group_region:
        raise FixtureError(f"member {ref!r} is in zone {zone}, not in the group's region {group_region}")
    return zone, name


def _check_project(project: Project, where: str) -> None:
    zones_by_name: dict[str, list[str]] = {}
    for i, instance in enumerate(project.instances):
        with located(f"{where}.zones.{instance.zone}.instances[{i}]"):
            instance.check()
        zones = zones_by_name.setdefault(instance.name, [])
        if instance.zone in zones:
            raise FixtureError(f"{where}.zones.{instance.zone}: duplicate instance {instance.name!r}")
        zones.append(instance.zone)
    seen_groups: set[tuple[str, str]] = set()
    for group in project.instance_groups:
        scope = f"zones.{group.zone}" if group.zone else f"regions.{group.region}"
        group_where = f"{where}.{scope}.instanceGroups.{group.name}"
        with located(group_where):
            group.check()
        key = (scope, group.name)
        if key in seen_groups:
            raise FixtureError(f"{group_where}: duplicate instance group")
        seen_groups.add(key)
        with located(group_where):
            for ref in group.instances:
                resolve_member(ref, group.zone, group.region, lambda n: zones_by_name.get(n, []))
    for manager in project.instance_group_managers:
        scope = f"zones.{manager.zone}" if manager.zone else f"regions.{manager.region}"
        manager_where = f"{where}.{scope}.instanceGroupManagers.{manager.name}"
        with located(manager_where):
            manager.check()
        if (scope, manager.name) in seen_groups:
            raise FixtureError(
                f"{manager_where}: an instance group of that name exists (the manager makes its own)"
            )
        seen_groups.add((scope, manager.name))


@contextmanager
def located(where: str) -> Iterator[None]:
    """Prefix a FixtureError raised inside with where it happened."""
    try:
        yield
    except FixtureError as exc:
        raise FixtureError(f"{where}: {exc}") from None


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    """A YAML mapping; an absent (null) one is empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FixtureError(f"{where}: want a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FixtureError(f"{where}: want a list, got {type(value).__name__}")
    return value


def _keys(value: Any, where: str, allowed: Iterable[str], required: Iterable[str] = ()) -> Mapping[str, Any]:
    """``value`` as a mapping (null: empty) with only ``allowed`` keys and every ``required`` one."""
    where = where or "fixture"
    body = _mapping(value, where)
    allowed = set(allowed)
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        raise FixtureError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    for key in required:
        if key not in body:
            raise FixtureError(f"{where}: missing {key!r}")
    return body


def _project_from_dict(name: Any, body: Any, where: str) -> Project:
    body = _keys(body, where, {"zones", "regions"})
    project = Project(str(name))
    for zone, zone_body in _mapping(body.get("zones"), f"{where}.zones").items():
        zone_where = f"{where}.zones.{zone}"
        zone_body = _keys(zone_body, zone_where, {"instances", "instanceGroups", "instanceGroupManagers"})
        project.zones.append(str(zone))
        for i, item in enumerate(_list(zone_body.get("instances"), f"{zone_where}.instances")):
            project.instances.append(instance_from_dict(item, str(zone), f"{zone_where}.instances[{i}]"))
        _groups_from_dict(project, zone_body, zone_where, zone=str(zone))
    for region, region_body in _mapping(body.get("regions"), f"{where}.regions").items():
        region_where = f"{where}.regions.{region}"
        region_body = _keys(region_body, region_where, {"instanceGroups", "instanceGroupManagers"})
        _groups_from_dict(project, region_body, region_where, region=str(region))
    return project


def _groups_from_dict(project: Project, body: Any, where: str, **scope: str) -> None:
    """The instanceGroups and instanceGroupManagers of one zone (``zone=``) or region (``region=``)."""
    for i, item in enumerate(_list(body.get("instanceGroups"), f"{where}.instanceGroups")):
        project.instance_groups.append(group_from_dict(item, f"{where}.instanceGroups[{i}]", **scope))
    managers = _list(body.get("instanceGroupManagers"), f"{where}.instanceGroupManagers")
    for i, item in enumerate(managers):
        manager = manager_from_dict(item, f"{where}.instanceGroupManagers[{i}]", **scope)
        project.instance_group_managers.append(manager)


INSTANCE_KEYS = {"name", "id", "status", "labels", "networkIP", "natIP", "port", "machineType", "network"}


def instance_from_dict(item: Any, zone: str, where: str) -> Instance:
    """One instance entry of the YAML form (also the admin API's body for adding a VM)."""
    _keys(item, where, INSTANCE_KEYS, required={"name"})
    with located(where):
        labels = check_labels(item.get("labels"))
    instance = Instance(
        name=item["name"],
        zone=zone,
        status=item.get("status", "RUNNING"),
        id=item.get("id"),
        labels=labels,
        network_ip=None if item.get("networkIP") is None else str(item["networkIP"]),
        nat_ip=None if item.get("natIP") is None else str(item["natIP"]),
        port=item.get("port"),
        machine_type=str(item.get("machineType", "e2-small")),
        network=str(item.get("network", "default")),
    )
    with located(where):
        instance.check()
    return instance


GROUP_KEYS = {"name", "id", "namedPorts", "instances", "network"}


def group_from_dict(
    item: Any, where: str, *, zone: str | None = None, region: str | None = None
) -> InstanceGroup:
    """One instance group entry of the YAML form (also the admin API's body for creating a group)."""
    _keys(item, where, GROUP_KEYS, required={"name"})
    members = _list(item.get("instances"), f"{where}.instances")
    if not all(isinstance(m, str) for m in members):
        raise FixtureError(f"{where}.instances: want a list of instance names")
    group = InstanceGroup(
        name=item["name"],
        zone=zone,
        region=region,
        named_ports=named_ports_from_list(item.get("namedPorts"), f"{where}.namedPorts"),
        instances=list(members),
        id=item.get("id"),
        network=str(item.get("network", "default")),
    )
    with located(where):
        group.check()
    return group


def named_ports_from_list(value: Any, where: str) -> list[NamedPort]:
    """``[{name: http, port: 8080}]`` or the short form ``["http:8080"]``."""
    ports: list[NamedPort] = []
    for i, entry in enumerate(_list(value, where)):
        entry_where = f"{where}[{i}]"
        if isinstance(entry, str):
            name, sep, port = entry.partition(":")
            if not sep or not port.isdigit():
                raise FixtureError(f"{entry_where}: {entry!r}: want NAME:PORT, e.g. http:8080")
            ports.append(NamedPort(name, int(port)))
        else:
            _keys(entry, entry_where, {"name", "port"}, required={"name", "port"})
            ports.append(NamedPort(entry["name"], entry["port"]))
        with located(entry_where):
            ports[-1].check()
    return ports


MANAGER_KEYS = {
    "name",
    "id",
    "targetSize",
    "baseInstanceName",
    "namedPorts",
    "instanceTemplate",
    "listManagedInstancesResults",
    "autoHealingPolicies",
    "updatePolicy",
    "zones",
    "networkIPRange",
    "callerCanRead",
    "timings",
    "network",
}


def manager_from_dict(
    item: Any, where: str, *, zone: str | None = None, region: str | None = None
) -> InstanceGroupManager:
    """One instanceGroupManagers entry of the YAML form."""
    _keys(item, where, MANAGER_KEYS, required={"name"})
    health_check, initial_delay = _autohealing(
        item.get("autoHealingPolicies"), f"{where}.autoHealingPolicies"
    )
    max_surge, max_unavailable = _update_policy(item.get("updatePolicy"), f"{where}.updatePolicy")
    timings_body = _keys(item.get("timings"), f"{where}.timings", TIMINGS)
    zones = _list(item.get("zones"), f"{where}.zones")
    manager = InstanceGroupManager(
        name=item["name"],
        zone=zone,
        region=region,
        target_size=item.get("targetSize", 0),
        base_instance_name=item.get("baseInstanceName"),
        named_ports=named_ports_from_list(item.get("namedPorts"), f"{where}.namedPorts"),
        instance_template=str(item.get("instanceTemplate", "template-1")),
        list_managed_instances_results=str(item.get("listManagedInstancesResults", "PAGELESS")),
        health_check=health_check,
        initial_delay_sec=initial_delay,
        max_surge=max_surge,
        max_unavailable=max_unavailable,
        zones=[str(z) for z in zones],
        network_ip_range=None if item.get("networkIPRange") is None else str(item["networkIPRange"]),
        caller_can_read=bool(item.get("callerCanRead", True)),
        timings=Timings(**timings_body),
        id=item.get("id"),
        network=str(item.get("network", "default")),
    )
    with located(where):
        manager.check()
    return manager


def _autohealing(value: Any, where: str) -> tuple[str | None, int]:
    policies = _list(value, where)
    if not policies:
        return None, 0
    if len(policies) > 1:
        raise FixtureError(f"{where}: at most one autohealing policy (as the real API allows)")
    _keys(policies[0], f"{where}[0]", {"healthCheck", "initialDelaySec"}, required={"healthCheck"})
    health_check = str(policies[0]["healthCheck"]).rsplit("/", 1)[-1]
    delay = policies[0].get("initialDelaySec", 0)
    _check_count(f"{where}[0].initialDelaySec", delay)
    return health_check, int(delay)


def _update_policy(value: Any, where: str) -> tuple[int | None, int | None]:
    body = _keys(value, where, {"maxSurge", "maxUnavailable"})
    out: list[int | None] = []
    for key in ("maxSurge", "maxUnavailable"):
        knob = body.get(key)
        if knob is None:
            out.append(None)
            continue
        _keys(knob, f"{where}.{key}", {"fixed"}, required={"fixed"})
        out.append(knob["fixed"])
    return out[0], out[1]
