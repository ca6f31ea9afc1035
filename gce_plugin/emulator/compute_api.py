"""The Compute v1 methods the emulator answers: routing (verb + path -> method name, as in the
discovery document) and one handler per method, each O(page size) over the state's sorted indexes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar
from urllib.parse import unquote

from gce_plugin.emulator import errors
from gce_plugin.emulator.errors import ApiError
from gce_plugin.emulator.filters import FilterError, Predicate, parse_filter
from gce_plugin.emulator.fixture import REGION_NAME, ZONE_NAME
from gce_plugin.emulator.managers import Manager
from gce_plugin.emulator.paging import decode_token, max_results, take_page
from gce_plugin.emulator.resources import (
    GROUP_FIELDS,
    GROUP_MEMBER_FIELDS,
    INSTANCE_FIELDS,
    MANAGED_INSTANCE_FIELDS,
    MANAGER_FIELDS,
    Links,
    group_json,
    instance_json,
    managed_instances_json,
    manager_json,
    member_json,
    named_ports_json,
    region_json,
    zone_json,
)
from gce_plugin.emulator.state import ComputeState, ProjectState, Vm, region_scope, zone_scope

Params = dict[str, str]
T = TypeVar("T")
Query = dict[str, str]


def _regional(name: str) -> str:
    """The regional twin of a zonal method or kind: ``instanceGroups.get`` -> ``regionInstanceGroups.get``."""
    return "region" + name[0].upper() + name[1:]


def _zonal_and_regional(name: str, verb: str, path: str) -> list[tuple[str, str, str]]:
    """A zonal method (``.../zones/{zone}/...``) and its regional twin (``.../regions/{region}/...``)."""
    return [(name, verb, path), (_regional(name), verb, path.replace("zones/{zone}", "regions/{region}"))]


_GROUP = "projects/{project}/zones/{zone}/instanceGroups"
_MANAGER = "projects/{project}/zones/{zone}/instanceGroupManagers"
# (method name, HTTP verb, path under compute/v1/), from the v1 discovery document.
ROUTE_TABLE: list[tuple[str, str, str]] = [
    ("instances.list", "GET", "projects/{project}/zones/{zone}/instances"),
    ("instances.get", "GET", "projects/{project}/zones/{zone}/instances/{instance}"),
    ("instances.aggregatedList", "GET", "projects/{project}/aggregated/instances"),
    ("instanceGroups.aggregatedList", "GET", "projects/{project}/aggregated/instanceGroups"),
    *_zonal_and_regional("instanceGroups.list", "GET", _GROUP),
    *_zonal_and_regional("instanceGroups.get", "GET", _GROUP + "/{instanceGroup}"),
    *_zonal_and_regional("instanceGroups.listInstances", "POST", _GROUP + "/{instanceGroup}/listInstances"),
    *_zonal_and_regional("instanceGroupManagers.list", "GET", _MANAGER),
    *_zonal_and_regional("instanceGroupManagers.get", "GET", _MANAGER + "/{instanceGroupManager}"),
    *_zonal_and_regional(
        "instanceGroupManagers.listManagedInstances",
        "POST",
        _MANAGER + "/{instanceGroupManager}/listManagedInstances",
    ),
    ("regions.list", "GET", "projects/{project}/regions"),
    ("regions.get", "GET", "projects/{project}/regions/{region}"),
    ("zones.list", "GET", "projects/{project}/zones"),
    ("zones.get", "GET", "projects/{project}/zones/{zone}"),
]

_ROUTES = [
    (name, verb, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"))
    for name, verb, path in ROUTE_TABLE
]


def match_route(verb: str, path: str) -> tuple[str, Params] | None:
    """``path`` is below ``/compute/v1/`` (segments still percent-encoded)."""
    for name, route_verb, pattern in _ROUTES:
        match = pattern.match(path)
        if match and route_verb == verb:
            return name, {k: unquote(v) for k, v in match.groupdict().items()}
    return None


class ComputeApi:
    def __init__(self, state: ComputeState, links: Links) -> None:
        self.state = state
        self.links = links
        # The zonal methods with a regional twin: one handler answers both.
        twins = {
            "instanceGroups.list": self.groups_list,
            "instanceGroups.get": self.groups_get,
            "instanceGroups.listInstances": self.groups_list_instances,
            "instanceGroupManagers.list": self.managers_list,
            "instanceGroupManagers.get": self.managers_get,
            "instanceGroupManagers.listManagedInstances": self.managers_list_managed_instances,
        }
        self._handlers: dict[str, Callable[[Params, Query, bytes], dict[str, Any]]] = {
            "instances.list": self.instances_list,
            "instances.get": self.instances_get,
            "instances.aggregatedList": self.instances_aggregated_list,
            "instanceGroups.aggregatedList": self.groups_aggregated_list,
            **twins,
            **{_regional(name): handler for name, handler in twins.items()},
            "regions.list": self.regions_list,
            "regions.get": self.regions_get,
            "zones.list": self.zones_list,
            "zones.get": self.zones_get,
        }

    def call(self, method: str, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        with self.state.lock:
            return self._handlers[method](params, query, body)

    # -- instances -------------------------------------------------------------------------------

    def instances_list(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project, zone = self._project(params), _zone(params["zone"])
        keep = self._keep(query, INSTANCE_FIELDS, partial(instance_json, self.links))
        page, token = take_page(project.iter_vms([zone], _after(query)), max_results(query), keep)
        resource = f"projects/{project.name}/zones/{zone}/instances"
        return self._list(
            "compute#instanceList", resource, [instance_json(self.links, v) for _, v in page], token
        )

    def instances_get(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project, zone = self._project(params), _zone(params["zone"])
        return instance_json(self.links, project.vm(zone, params["instance"]))

    def instances_aggregated_list(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project = self._project(params)
        keep = self._keep(query, INSTANCE_FIELDS, partial(instance_json, self.links))
        page, token = take_page(project.iter_vms(project.zone_names, _after(query)), max_results(query), keep)
        scopes = [zone_scope(z) for z in project.zone_names]
        items = _by_scope(
            scopes, "instances", ((zone_scope(k[0]), instance_json(self.links, v)) for k, v in page)
        )
        resource = f"projects/{project.name}/aggregated/instances"
        return self._list("compute#instanceAggregatedList", resource, items, token)

    # -- instance groups (zonal and regional) ------------------------------------------------------

    def groups_list(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project, scope = self._project(params), _scope(params)
        keep = self._keep(query, GROUP_FIELDS, partial(group_json, self.links))
        page, token = take_page(project.iter_groups([scope], _after(query)), max_results(query), keep)
        kind = _kind(params, "instanceGroupList")
        items = [group_json(self.links, g) for _, g in page]
        return self._list(kind, f"projects/{project.name}/{scope}/instanceGroups", items, token)

    def groups_get(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project, scope = self._project(params), _scope(params)
        return group_json(self.links, project.group(scope, params["instanceGroup"]))

    def groups_aggregated_list(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project = self._project(params)
        keep = self._keep(query, GROUP_FIELDS, partial(group_json, self.links))
        scopes = project.group_scopes()
        page, token = take_page(project.iter_groups(scopes, _after(query)), max_results(query), keep)
        all_scopes = sorted(
            [zone_scope(z) for z in project.zone_names] + [region_scope(r) for r in project.regions()]
        )
        items = _by_scope(all_scopes, "instanceGroups", ((k[0], group_json(self.links, g)) for k, g in page))
        resource = f"projects/{project.name}/aggregated/instanceGroups"
        return self._list("compute#instanceGroupAggregatedList", resource, items, token)

    def groups_list_instances(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project, scope = self._project(params), _scope(params)
        group = project.group(scope, params["instanceGroup"])
        request = _json_body(body)
        allowed = {"instanceState", "portName"} if "region" in params else {"instanceState"}
        for key in request:
            if key not in allowed:
                raise _unknown_field(key)
        state = request.get("instanceState", "ALL")
        if state not in ("ALL", "RUNNING"):
            raise errors.invalid_field("resource.instanceState", state, "Must be one of [ALL, RUNNING].")
        port_name = request.get("portName") or None
        named_ports = named_ports_json(group, port_name)
        filtered = self._filter(query, GROUP_MEMBER_FIELDS)

        def keep(vm: Vm) -> bool:
            if state == "RUNNING" and vm.status != "RUNNING":
                return False
            return filtered is None or filtered(member_json(self.links, vm, named_ports))

        page, token = take_page(project.iter_members(group, _after(query)), max_results(query), keep)
        kind = _kind(params, "instanceGroupsListInstances")
        items = [member_json(self.links, vm, named_ports) for _, vm in page]
        return self._list(kind, f"{group.resource}/listInstances", items, token)

    # -- instance group managers (zonal and regional) ---------------------------------------------

    def managers_list(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project, scope = self._project(params), _scope(params)
        keep = self._keep(query, MANAGER_FIELDS, partial(self._manager_json, project))
        page, token = take_page(project.iter_managers(scope, _after(query)), max_results(query), keep)
        kind = _kind(params, "instanceGroupManagerList")
        items = [self._manager_json(project, m) for _, m in page]
        return self._list(kind, f"projects/{project.name}/{scope}/instanceGroupManagers", items, token)

    def managers_get(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project = self._project(params)
        return self._manager_json(project, _readable_manager(project, params))

    def managers_list_managed_instances(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        """POST with no body. ``maxResults`` and ``pageToken`` apply only when the manager's
        ``listManagedInstancesResults`` is PAGINATED; PAGELESS (the default) answers everything."""
        project = self._project(params)
        manager = _readable_manager(project, params)
        for key in _json_body(body):
            raise _unknown_field(key)
        _order_by(query)
        predicate = self._filter(query, MANAGED_INSTANCE_FIELDS)
        rendered = managed_instances_json(self.links, project, manager)
        if manager.spec.list_managed_instances_results == "PAGINATED":
            after = _after(query)
            stream = ((k, item) for k, item in rendered if after is None or k > after)
            page, token = take_page(stream, max_results(query), predicate)
        else:
            page, token = [(k, i) for k, i in rendered if predicate is None or predicate(i)], None
        response: dict[str, Any] = {}
        if page:
            response["managedInstances"] = [item for _, item in page]
        if token:
            response["nextPageToken"] = token
        return response

    def _manager_json(self, project: ProjectState, manager: Manager) -> dict[str, Any]:
        return manager_json(self.links, manager, project.group(manager.scope, manager.name))

    # -- regions and zones -----------------------------------------------------------------------

    def regions_list(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project = self._project(params)
        regions = project.regions()
        fields = frozenset(region_json(self.links, "p", "r", []))
        rendered = ((r, region_json(self.links, project.name, r, regions[r])) for r in sorted(regions))
        return self._named_list(
            "compute#regionList", f"projects/{project.name}/regions", query, fields, rendered
        )

    def regions_get(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project = self._project(params)
        region = params["region"]
        zones = project.regions().get(region)
        if zones is None:
            raise errors.not_found(f"projects/{project.name}/regions/{region}")
        return region_json(self.links, project.name, region, zones)

    def zones_list(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project = self._project(params)
        fields = frozenset(zone_json(self.links, "p", "z-z1-a"))
        rendered = ((z, zone_json(self.links, project.name, z)) for z in project.zone_names)
        return self._named_list("compute#zoneList", f"projects/{project.name}/zones", query, fields, rendered)

    def zones_get(self, params: Params, query: Query, body: bytes) -> dict[str, Any]:
        project = self._project(params)
        zone = params["zone"]
        if zone not in project.zones:
            raise errors.not_found(f"projects/{project.name}/zones/{zone}")
        return zone_json(self.links, project.name, zone)

    # -- helpers -----------------------------------------------------------------------------------

    def _project(self, params: Params) -> ProjectState:
        return self.state.project(params["project"])

    def _list(self, kind: str, resource: str, items: Any, token: str | None) -> dict[str, Any]:
        """A list response; ``items`` is left out when empty, as the real API does."""
        response: dict[str, Any] = {"kind": kind, "id": resource}
        if items:
            response["items"] = items
        if token:
            response["nextPageToken"] = token
        response["selfLink"] = f"{self.links.base}{resource}"
        return response

    def _named_list(
        self, kind: str, resource: str, query: Query, fields: frozenset[str], items: Iterator[tuple[str, Any]]
    ) -> dict[str, Any]:
        """A list response of resources keyed by their name alone (regions, zones), ``items`` in name
        order, each rendered only when its page is."""
        keep = self._filter(query, fields)
        after = decode_token(query.get("pageToken", ""), 1)
        stream = (((name,), item) for name, item in items if after is None or (name,) > after)
        page, token = take_page(stream, max_results(query), keep)
        return self._list(kind, resource, [item for _, item in page], token)

    def _filter(self, query: Query, fields: frozenset[str]) -> Predicate | None:
        text = query.get("filter", "")
        try:
            return parse_filter(text, fields)
        except FilterError as exc:
            raise errors.invalid_field("filter", text, f"Invalid list filter expression: {exc}.") from None

    def _keep(
        self, query: Query, fields: frozenset[str], render: Callable[[T], dict[str, Any]]
    ) -> Callable[[T], bool] | None:
        """A list call's filter over its items as ``render`` writes them (``orderBy`` checked too)."""
        _order_by(query)
        predicate = self._filter(query, fields)
        if predicate is None:
            return None
        return lambda item: predicate(render(item))


def _readable_manager(project: ProjectState, params: Params) -> Manager:
    manager = project.manager(_scope(params), params["instanceGroupManager"])
    if not manager.spec.caller_can_read:
        raise errors.forbidden("compute.instanceGroupManagers.get", manager.resource)
    return manager


def _zone(zone: str) -> str:
    if not ZONE_NAME.match(zone):
        raise errors.invalid_field("zone", zone, "Unknown zone.")
    return zone


def _kind(params: Params, zonal: str) -> str:
    """A list response's kind: ``compute#<zonal>`` for a zone, ``compute#region<Zonal>`` for a region."""
    return "compute#" + (zonal if "zone" in params else _regional(zonal))


def _scope(params: Params) -> str:
    if "zone" in params:
        return zone_scope(_zone(params["zone"]))
    region = params["region"]
    if not REGION_NAME.match(region):
        raise errors.invalid_field("region", region, "Unknown region.")
    return region_scope(region)


def _after(query: Query) -> tuple[str, str] | None:
    """Where a two-part key (zone or scope, name) page resumes."""
    key = decode_token(query.get("pageToken", ""), 2)
    return None if key is None else (key[0], key[1])


def _order_by(query: Query) -> None:
    """Results are always in name order; that is the only order this emulator offers."""
    order = query.get("orderBy", "")
    if order not in ("", "name"):
        raise errors.invalid_field("orderBy", order, "Sorting by this field is not supported.")


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "Invalid JSON payload received.", "parseError") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.", "parseError")
    return data


def _unknown_field(key: str) -> ApiError:
    return errors.bad_request(f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.')


def _by_scope(scopes: list[str], key: str, items: Iterator[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Aggregated ``items``: scope -> {key: [...]}, and for every scope with nothing on this page the
    real API's NO_RESULTS_ON_PAGE warning."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for scope, item in items:
        grouped.setdefault(scope, []).append(item)
    out: dict[str, Any] = {}
    for scope in sorted(set(scopes) | set(grouped)):
        if scope in grouped:
            out[scope] = {key: grouped[scope]}
        else:
            out[scope] = {
                "warning": {
                    "code": "NO_RESULTS_ON_PAGE",
                    "message": f"There are no results for scope '{scope}' on this page.",
                    "data": [{"key": "scope", "value": scope}],
                }
            }
    return out
