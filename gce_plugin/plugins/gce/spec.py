"""The gce upstream's rules, pure (no calls, no state): what an upstream asks for (``Target``, from its
spec), and what an instance of its group gives it (the endpoint's address, port, name, labels and
annotations). After Gloo's ec2 plugin, where the spec rules live apart from the instance lister."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from gce_plugin.api import Endpoint, GceUpstreamSpec, ResourceRef, Upstream
from gce_plugin.plugins.gce.compute import JsonObject
from gce_plugin.plugins.plugin import HEALTH_STATUS_ANNOTATION, UpstreamKey, upstream_key, upstream_label

DEFAULT_PORT = 80
DEFAULT_PORT_NAME = "http"
ANNOTATION_PREFIX = "gce.solo.io/"


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
        return upstream_label(self.key)


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
    target: Target,
    write_namespace: str,
    group: str,
    instance: JsonObject,
    address: str,
    port: int,
    health: str = "UNKNOWN",
) -> Endpoint:
    """The endpoint of ``instance`` for ``target``; ``group`` is ``<scope>/<location>/<name>``;
    ``health`` an Envoy ``HealthStatus`` name, carried in the ``HEALTH_STATUS_ANNOTATION``
    annotation unless it is ``UNKNOWN`` (what an endpoint without it means)."""
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
            ANNOTATION_PREFIX + "instance-group": group,
        }
    )
    if health != "UNKNOWN":
        endpoint.metadata.annotations[HEALTH_STATUS_ANNOTATION] = health
    return endpoint


def join_facts(instance: JsonObject) -> tuple[object, ...]:
    """Everything of ``instance`` the join reads (``matches``, ``select_address``, ``make_endpoint``
    and the RUNNING check), hashable: a poll remembers a hash of these, not the instance, to tell
    whether a group's endpoints can have changed. A field one of those starts reading must be added
    here."""
    nics = instance.get("networkInterfaces") or ()
    nic = nics[0] if nics else {}
    configs = nic.get("accessConfigs") or ()
    labels = instance.get("labels")
    return (
        instance.get("selfLink"),
        instance.get("status"),
        instance.get("name"),
        instance.get("id"),
        tuple(labels.items()) if labels else (),
        nic.get("networkIP"),
        configs[0].get("natIP") if configs else None,
    )


def group_text(target: Target) -> str:
    kind = "zone" if is_zone(target.location) else "region"
    return f"instance group {target.group} in project {target.project} {kind} {target.location}"


def address_kind(target: Target) -> str:
    return "external (natIP)" if target.external else "internal (networkIP)"
