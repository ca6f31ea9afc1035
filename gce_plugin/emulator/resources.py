"""Compute v1 JSON for the emulator's resources, with links under the emulator's own base URL."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

from gce_plugin.emulator.fixture import SCHEMAS, region_of, stable_id
from gce_plugin.emulator.managers import ManagedVm, Manager
from gce_plugin.emulator.state import Group, ProjectState, Vm

# Top-level fields filters may name, per resource: its schema's properties.
_PROPERTIES = {name: frozenset(schema.get("properties", ())) for name, schema in SCHEMAS.items()}
INSTANCE_FIELDS = _PROPERTIES["Instance"] | {""}
GROUP_FIELDS = _PROPERTIES["InstanceGroup"] | {""}
GROUP_MEMBER_FIELDS = _PROPERTIES["InstanceWithNamedPorts"]
MANAGED_INSTANCE_FIELDS = _PROPERTIES["ManagedInstance"] | {""}
MANAGER_FIELDS = _PROPERTIES["InstanceGroupManager"] | {""}
# currentActions: a count per property of the schema, each the camelCase of its action's name.
_ACTION_COUNTS = {
    re.sub("([A-Z])", r"_\1", key).upper(): key
    for key in sorted(_PROPERTIES["InstanceGroupManagerActionsSummary"])
}

# Fixed, so zones and regions look the same in every run.
_EPOCH = "1969-12-31T16:00:00.000-08:00"


class Links:
    """URLs as the real API writes them, e.g. ``{base}projects/p/zones/z/instances/i``."""

    def __init__(self, base: str) -> None:
        self.base = base  # ends with "compute/v1/"

    def zone(self, project: str, zone: str) -> str:
        return f"{self.base}projects/{project}/zones/{zone}"

    def region(self, project: str, region: str) -> str:
        return f"{self.base}projects/{project}/regions/{region}"

    def instance(self, project: str, zone: str, name: str) -> str:
        return f"{self.base}projects/{project}/zones/{zone}/instances/{name}"

    def resource(self, resource: Group | Manager) -> str:
        """A group's or a manager's URL."""
        return f"{self.base}{resource.resource}"

    def health_check(self, project: str, name: str) -> str:
        return f"{self.base}projects/{project}/global/healthChecks/{name}"

    def template(self, project: str, name: str) -> str:
        return f"{self.base}projects/{project}/global/instanceTemplates/{name}"

    def network(self, project: str, network: str) -> str:
        return f"{self.base}projects/{project}/global/networks/{network}"

    def subnetwork(self, project: str, region: str, network: str) -> str:
        return f"{self.base}projects/{project}/regions/{region}/subnetworks/{network}"


def instance_json(links: Links, vm: Vm) -> dict[str, Any]:
    """An ``compute#instance`` (cached on the record; callers must not modify it)."""
    cached = vm.rendered.get(links.base)
    if cached is not None:
        return cached
    nic: dict[str, Any] = {
        "kind": "compute#networkInterface",
        "name": "nic0",
        "network": links.network(vm.project, vm.network),
        "subnetwork": links.subnetwork(vm.project, region_of(vm.zone), vm.network),
        "networkIP": vm.network_ip,
        "stackType": "IPV4_ONLY",
        "fingerprint": _fingerprint(vm.project, vm.zone, vm.name, "nic0"),
    }
    if vm.nat_ip:
        nic["accessConfigs"] = [
            {
                "kind": "compute#accessConfig",
                "type": "ONE_TO_ONE_NAT",
                "name": "External NAT",
                "natIP": vm.nat_ip,
                "networkTier": "PREMIUM",
            }
        ]
    zone_url = links.zone(vm.project, vm.zone)
    rendered: dict[str, Any] = {
        "kind": "compute#instance",
        "id": str(vm.id),
        "creationTimestamp": vm.created,
        "name": vm.name,
        "machineType": f"{zone_url}/machineTypes/{vm.machine_type}",
        "status": vm.status,
        "zone": zone_url,
        "networkInterfaces": [nic],
        "canIpForward": False,
        "cpuPlatform": "Intel Broadwell" if vm.status == "RUNNING" else "Unknown CPU Platform",
        "labelFingerprint": _fingerprint(*sorted(f"{k}={v}" for k, v in vm.labels.items())),
        "fingerprint": _fingerprint(vm.project, vm.zone, vm.name, vm.status, vm.network_ip),
        "deletionProtection": False,
        "selfLink": links.instance(vm.project, vm.zone, vm.name),
    }
    if vm.labels:
        rendered["labels"] = dict(vm.labels)
    vm.rendered[links.base] = rendered
    return rendered


def group_json(links: Links, group: Group) -> dict[str, Any]:
    """An ``compute#instanceGroup``, zonal (``zone``) or regional (``region``)."""
    rendered: dict[str, Any] = {
        "kind": "compute#instanceGroup",
        "id": str(group.id),
        "creationTimestamp": group.created,
        "name": group.name,
        "description": "",
        "network": links.network(group.project, group.network),
        "fingerprint": _fingerprint(group.resource, *(f"{p.name}:{p.port}" for p in group.named_ports)),
        "selfLink": links.resource(group),
        "size": len(group.members),
    }
    if group.named_ports:
        rendered["namedPorts"] = named_ports_json(group)
    if group.zone is not None:
        rendered["zone"] = links.zone(group.project, group.zone)
        region = region_of(group.zone)
    else:
        region = str(group.region)
        rendered["region"] = links.region(group.project, region)
    rendered["subnetwork"] = links.subnetwork(group.project, region, group.network)
    return rendered


def named_ports_json(group: Group, port_name: str | None = None) -> list[dict[str, Any]]:
    return [{"name": p.name, "port": p.port} for p in group.named_ports if port_name in (None, p.name)]


def member_json(links: Links, vm: Vm, named_ports: list[dict[str, Any]]) -> dict[str, Any]:
    """An ``InstanceWithNamedPorts`` item of listInstances."""
    item: dict[str, Any] = {"instance": links.instance(vm.project, vm.zone, vm.name), "status": vm.status}
    if named_ports:
        item["namedPorts"] = named_ports
    return item


def managed_instance_json(
    links: Links, manager: Manager, managed: ManagedVm, vm: Vm | None
) -> dict[str, Any]:
    """A ``ManagedInstance`` item of listManagedInstances. ``id`` and ``instanceStatus`` only once the
    VM exists; ``instanceHealth`` only with an autohealing health check; ``version`` is empty while
    the VM is being deleted, as the reference says."""
    item: dict[str, Any] = {
        "instance": links.instance(manager.project, managed.zone, managed.name),
        "name": managed.name,
        "currentAction": managed.action,
        "targetStatus": "DELETED" if managed.action == "DELETING" else "RUNNING",
    }
    if vm is not None:
        item["id"] = str(vm.id)
        item["instanceStatus"] = vm.status
    if manager.health_check and vm is not None and managed.health is not None:
        item["instanceHealth"] = [
            {
                "healthCheck": links.health_check(manager.project, manager.health_check),
                "detailedHealthState": managed.health,
            }
        ]
    if managed.action not in ("DELETING", "ABANDONING"):
        item["version"] = {"instanceTemplate": links.template(manager.project, managed.version)}
    return item


def managed_instances_json(
    links: Links, project: ProjectState, manager: Manager
) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
    """A manager's ``ManagedInstance`` items in (zone, name) order, each with that key."""
    for managed in manager.sorted_vms():
        zone = project.zones.get(managed.zone)
        vm = zone.vms.get(managed.name) if zone is not None else None
        yield (managed.zone, managed.name), managed_instance_json(links, manager, managed, vm)


def manager_json(links: Links, manager: Manager, group: Group) -> dict[str, Any]:
    """An ``compute#instanceGroupManager``, zonal (``zone``) or regional (``region``)."""
    spec = manager.spec
    counts = dict.fromkeys(_ACTION_COUNTS.values(), 0)
    for managed in manager.vms.values():
        counts[_ACTION_COUNTS[managed.action]] += 1
    template = links.template(manager.project, manager.template)
    stable = counts["none"] == len(manager.vms) == manager.target_size
    reached = all(m.version == manager.template for m in manager.vms.values())
    rendered: dict[str, Any] = {
        "kind": "compute#instanceGroupManager",
        "id": str(manager.id),
        "creationTimestamp": manager.created,
        "name": manager.name,
        "description": "",
        "instanceGroup": links.resource(group),
        "baseInstanceName": spec.base_name,
        "instanceTemplate": template,
        "versions": [{"instanceTemplate": template, "targetSize": {"calculated": manager.target_size}}],
        "fingerprint": _fingerprint(manager.resource, manager.template, str(manager.target_size)),
        "currentActions": counts,
        "status": {"isStable": stable, "versionTarget": {"isReached": reached}},
        "targetSize": manager.target_size,
        "listManagedInstancesResults": spec.list_managed_instances_results,
        "updatePolicy": {
            "type": "PROACTIVE",
            "minimalAction": "REPLACE",
            "replacementMethod": "SUBSTITUTE",
            "maxSurge": {"fixed": manager.max_surge, "calculated": manager.max_surge},
            "maxUnavailable": {"fixed": manager.max_unavailable, "calculated": manager.max_unavailable},
        },
        "selfLink": links.resource(manager),
    }
    if spec.named_ports:
        rendered["namedPorts"] = named_ports_json(group)
    if spec.health_check:
        rendered["autoHealingPolicies"] = [
            {
                "healthCheck": links.health_check(manager.project, spec.health_check),
                "initialDelaySec": spec.initial_delay_sec,
            }
        ]
    if group.zone is not None:
        rendered["zone"] = links.zone(manager.project, group.zone)
    else:
        rendered["region"] = links.region(manager.project, str(group.region))
        rendered["distributionPolicy"] = {
            "zones": [{"zone": links.zone(manager.project, z)} for z in spec.distribution_zones()],
            "targetShape": "EVEN",
        }
    return rendered


def zone_json(links: Links, project: str, zone: str) -> dict[str, Any]:
    return {
        "kind": "compute#zone",
        "id": str(stable_id("zones", zone) % 10**4),
        "creationTimestamp": _EPOCH,
        "name": zone,
        "description": zone,
        "status": "UP",
        "region": links.region(project, region_of(zone)),
        "selfLink": links.zone(project, zone),
        "availableCpuPlatforms": ["Intel Broadwell"],
        "supportsPzs": False,
    }


def region_json(links: Links, project: str, region: str, zones: list[str]) -> dict[str, Any]:
    return {
        "kind": "compute#region",
        "id": str(stable_id("regions", region) % 10**4),
        "creationTimestamp": _EPOCH,
        "name": region,
        "description": region,
        "status": "UP",
        "zones": [links.zone(project, z) for z in zones],
        "quotas": [],
        "selfLink": links.region(project, region),
        "supportsPzs": False,
    }


def _fingerprint(*parts: str) -> str:
    """An opaque 8-byte base64 value, like the real fingerprints."""
    return base64.b64encode(stable_id(*parts).to_bytes(8, "big")).decode()
