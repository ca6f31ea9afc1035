"""Synthetic GCE fleets for the benchmarks: zones, instances, zonal and regional instance groups, and
gce upstreams pointing at the groups, built in code (emulator ``Fixture`` dataclasses and ``Upstream``
messages) so any size costs no YAML.

Layout: ``zones`` zones over two regions; every zone holds ``per_zone`` RUNNING instances. Each zone
has ``zonal_per_zone`` zonal groups of ``group_size`` members; the instances left over in a region
(taken round-robin across its zones) form its regional groups, also of ``group_size``. Every instance
is in exactly one group and carries the label ``ig=<group>``. Each group is the target of
``upstreams_per_group`` upstreams.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from gce_plugin.api import GceUpstreamSpec, Upstream
from gce_plugin.emulator.fixture import Fixture, Instance, InstanceGroup, NamedPort, Project

PROJECT = "bench-project"
ZONES = ("us-central1-a", "us-central1-b", "us-central1-c", "us-east1-b", "us-east1-c")
GROUP_LABEL = "ig"
HTTP_PORT = 8080


@dataclass(frozen=True)
class FleetSize:
    zones: int = 5
    per_zone: int = 1000
    zonal_per_zone: int = 8
    group_size: int = 100
    upstreams_per_group: int = 20


@dataclass(frozen=True)
class GroupSpec:
    name: str
    location: str  # a zone (zonal group) or a region (regional group)
    members: tuple[tuple[str, str], ...]  # (zone, instance name)

    @property
    def zonal(self) -> bool:
        return self.location.count("-") >= 2


@dataclass
class Fleet:
    size: FleetSize
    zones: tuple[str, ...]
    instances: list[Instance] = field(default_factory=list)
    groups: list[GroupSpec] = field(default_factory=list)

    def fixture(self) -> Fixture:
        groups = [
            InstanceGroup(
                name=g.name,
                zone=g.location if g.zonal else None,
                region=None if g.zonal else g.location,
                named_ports=[NamedPort("http", HTTP_PORT)],
                instances=[f"{zone}/{name}" for zone, name in g.members],
            )
            for g in self.groups
        ]
        return Fixture([Project(PROJECT, instances=list(self.instances), instance_groups=groups)])

    def upstreams(self, namespace: str = "default") -> list[Upstream]:
        return [up for group in self.groups for up in self.group_upstreams(group, namespace)]

    def group_upstreams(self, group: GroupSpec, namespace: str = "default") -> Iterator[Upstream]:
        for j in range(self.size.upstreams_per_group):
            yield gce_upstream(f"{group.name}-u{j:02d}", namespace, group.name, group.location)

    def zone_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for instance in self.instances:
            counts[instance.zone] = counts.get(instance.zone, 0) + 1
        return counts


def gce_upstream(name: str, namespace: str, group: str, location: str, port: int = 0) -> Upstream:
    upstream = Upstream()
    upstream.metadata.name = name
    upstream.metadata.namespace = namespace
    upstream.upstream_spec.gce.CopyFrom(
        GceUpstreamSpec(
            instance_group_name=group, instance_group_region=location, projectId=PROJECT, port=port
        )
    )
    return upstream


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def _ip(n: int) -> str:
    # 10.0.0.0/8 from 10.0.1.0 on: unique per instance, valid as Envoy endpoints.
    n += 256
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def build_fleet(size: FleetSize) -> Fleet:
    zones = ZONES[: size.zones]
    fleet = Fleet(size, zones)
    by_zone: dict[str, list[str]] = {}
    n = 0
    for zone in zones:
        names = [f"vm-{zone.rsplit('-', 2)[1]}-{zone[-1]}-{i:05d}" for i in range(size.per_zone)]
        by_zone[zone] = names
        for name in names:
            fleet.instances.append(Instance(name=name, zone=zone, network_ip=_ip(n)))
            n += 1
    labels: dict[tuple[str, str], str] = {}
    leftovers: dict[str, list[tuple[str, str]]] = {}
    for zone in zones:
        names = by_zone[zone]
        used = size.zonal_per_zone * size.group_size
        if used > len(names):
            raise ValueError("zonal groups need more instances than a zone has")
        for g in range(size.zonal_per_zone):
            members = tuple((zone, name) for name in names[g * size.group_size : (g + 1) * size.group_size])
            group = GroupSpec(f"ig-{zone}-{g}", zone, members)
            fleet.groups.append(group)
            labels.update(dict.fromkeys(members, group.name))
        leftovers.setdefault(region_of(zone), []).extend((zone, name) for name in names[used:])
    for region, pool in leftovers.items():
        # Round-robin across the region's zones, so a regional group spans all of them.
        zones_of_region = sorted({zone for zone, _ in pool})
        columns = [[m for m in pool if m[0] == zone] for zone in zones_of_region]
        interleaved = [m for row in zip(*columns, strict=True) for m in row]
        if len(interleaved) % size.group_size:
            raise ValueError(f"region {region}: {len(interleaved)} leftover instances is not whole groups")
        for g in range(len(interleaved) // size.group_size):
            members = tuple(interleaved[g * size.group_size : (g + 1) * size.group_size])
            group = GroupSpec(f"ig-{region}-r{g}", region, members)
            fleet.groups.append(group)
            labels.update(dict.fromkeys(members, group.name))
    for instance in fleet.instances:
        instance.labels = {GROUP_LABEL: labels[instance.zone, instance.name]}
    return fleet
