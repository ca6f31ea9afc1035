"""``/admin/...``: JSON control of a running emulator, one route per ``Emulator`` method.

    GET    /admin/                         this index: every admin route, as JSON
    GET    /admin/stats                    counts per Compute method, total, last requests
    POST   /admin/stats/reset
    POST   /admin/reset                    back to the fixture; no faults; stats zeroed
    GET    /admin/faults                   active faults
    POST   /admin/faults                   {"method"|"path", "verb"?, "status"?, "reason"?, "message"?,
                                            "delay"?, "count"?} -> {"id"}
    DELETE /admin/faults[/ID]              clear all faults, or one
    GET    /admin/tokens                   tokens issued by /token, with their JWT claims
    POST   /admin/tokens/revoke            invalidate every issued token
    GET    /admin/backends                 VM name -> ip:port (with --serve-backends)
    POST   /admin/projects/P/zones/Z/instances                {fixture instance fields, "groups"?: [...]}
    DELETE /admin/projects/P/zones/Z/instances/I
    POST   /admin/projects/P/zones/Z/instances/I/stop         {"status"?: "TERMINATED"}
    POST   /admin/projects/P/zones/Z/instances/I/start
    POST   /admin/projects/P/zones/Z/instances/I/setStatus    {"status": ...}
    POST   /admin/projects/P/zones/Z/instances/I/setLabels    {"labels": {...}}
    POST   /admin/projects/P/SCOPE/instanceGroups             {fixture group fields}
    DELETE /admin/projects/P/SCOPE/instanceGroups/G
    POST   /admin/projects/P/SCOPE/instanceGroups/G/addInstances     {"instances": ["name" | "zone/name"]}
    POST   /admin/projects/P/SCOPE/instanceGroups/G/removeInstances  {"instances": [...]}
    POST   /admin/projects/P/SCOPE/instanceGroups/G/setNamedPorts    {"namedPorts": [...]}
    GET    /admin/projects/P/SCOPE/instanceGroupManagers/M                 every managed instance
    POST   /admin/projects/P/SCOPE/instanceGroupManagers/M/resize          {"size": N}
    POST   /admin/projects/P/SCOPE/instanceGroupManagers/M/rollingReplace  {"instanceTemplate"?,
                                                                  "maxSurge"?: N, "maxUnavailable"?: N}
    POST   /admin/projects/P/zones/Z/instances/I/setHealth    {"detailedHealthState": "UNHEALTHY"|...}

SCOPE is ``zones/Z`` or ``regions/R``. Errors use the Compute error shape.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from gce_plugin.emulator import errors
from gce_plugin.emulator.errors import ApiError
from gce_plugin.emulator.faults import Fault

if TYPE_CHECKING:
    from gce_plugin.emulator.server import Emulator

log = logging.getLogger(__name__)

Handler = Callable[["Emulator", dict[str, str], dict[str, Any]], Any]

_INSTANCES = r"/admin/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/instances"
_INSTANCE = _INSTANCES + r"/(?P<name>[^/]+)"
_GROUPS = r"/admin/projects/(?P<project>[^/]+)/(?P<kind>zones|regions)/(?P<scope>[^/]+)/instanceGroups"
_GROUP = _GROUPS + r"/(?P<name>[^/]+)"
_MANAGER = (
    r"/admin/projects/(?P<project>[^/]+)/(?P<kind>zones|regions)/(?P<scope>[^/]+)"
    r"/instanceGroupManagers/(?P<name>[^/]+)"
)


def _named(params: dict[str, str]) -> tuple[str, str]:
    """(project, name) of a group or manager route (its scope: ``_scope``)."""
    return params["project"], params["name"]


def _vm(params: dict[str, str]) -> tuple[str, str, str]:
    """(project, zone, name) of an instance route."""
    return params["project"], params["zone"], params["name"]


def _scope(params: dict[str, str]) -> dict[str, str]:
    return {"zone" if params["kind"] == "zones" else "region": params["scope"]}


def _members(body: dict[str, Any]) -> list[str]:
    members = body.get("instances")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise errors.bad_request('want {"instances": ["name" or "zone/name", ...]}')
    return members


def _size(body: dict[str, Any]) -> int:
    size = body.get("size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise errors.bad_request('want {"size": N}')
    return size


def _add_instance(emulator: Emulator, p: dict[str, str], body: dict[str, Any]) -> Any:
    groups = body.pop("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise errors.bad_request("groups: want a list of group names")
    return emulator.add_instance(p["project"], body, groups, zone=p["zone"])


def _add_fault(emulator: Emulator, p: dict[str, str], body: dict[str, Any]) -> Any:
    try:
        fault = Fault.from_dict(body)
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from None
    return {"id": emulator.add_fault(fault)}


def _index() -> dict[str, Any]:
    """Every admin route, read from this module's docstring (the one place they are written)."""
    routes = []
    for line in (__doc__ or "").splitlines():
        match = re.match(r"^\s+(GET|POST|DELETE)\s+(\S+)\s*(.*)$", line)
        if match:
            verb, path, about = match.groups()
            routes.append({"method": verb, "path": path, "about": about.strip()})
    return {"routes": routes, "note": "SCOPE is zones/Z or regions/R; bodies and answers are JSON"}


_ROUTE_TABLE: list[tuple[str, str, Handler]] = [
    ("GET", r"/admin", lambda e, p, b: _index()),
    ("GET", r"/admin/stats", lambda e, p, b: e.stats()),
    ("POST", r"/admin/stats/reset", lambda e, p, b: e.reset_stats()),
    ("POST", r"/admin/reset", lambda e, p, b: e.reset()),
    ("GET", r"/admin/faults", lambda e, p, b: {"faults": e.faults()}),
    ("POST", r"/admin/faults", _add_fault),
    ("DELETE", r"/admin/faults", lambda e, p, b: {"cleared": e.clear_faults()}),
    ("DELETE", r"/admin/faults/(?P<id>\d+)", lambda e, p, b: {"cleared": e.clear_faults(int(p["id"]))}),
    ("GET", r"/admin/tokens", lambda e, p, b: {"tokens": e.issued_tokens()}),
    ("POST", r"/admin/tokens/revoke", lambda e, p, b: {"revoked": e.revoke_tokens()}),
    ("GET", r"/admin/backends", lambda e, p, b: {"backends": e.backends()}),
    ("POST", _INSTANCES, _add_instance),
    ("DELETE", _INSTANCE, lambda e, p, b: e.remove_instance(*_vm(p))),
    (
        "POST",
        _INSTANCE + "/stop",
        lambda e, p, b: e.stop_instance(*_vm(p), str(b.get("status", "TERMINATED"))),
    ),
    ("POST", _INSTANCE + "/start", lambda e, p, b: e.start_instance(*_vm(p))),
    ("POST", _INSTANCE + "/setStatus", lambda e, p, b: e.set_instance_status(*_vm(p), str(b.get("status")))),
    ("POST", _INSTANCE + "/setLabels", lambda e, p, b: e.set_instance_labels(*_vm(p), b.get("labels") or {})),
    ("POST", _GROUPS, lambda e, p, b: e.add_group(p["project"], b, **_scope(p))),
    ("DELETE", _GROUP, lambda e, p, b: e.delete_group(*_named(p), **_scope(p))),
    (
        "POST",
        _GROUP + "/addInstances",
        lambda e, p, b: e.add_group_members(*_named(p), _members(b), **_scope(p)),
    ),
    (
        "POST",
        _GROUP + "/removeInstances",
        lambda e, p, b: e.remove_group_members(*_named(p), _members(b), **_scope(p)),
    ),
    (
        "POST",
        _GROUP + "/setNamedPorts",
        lambda e, p, b: e.set_named_ports(*_named(p), b.get("namedPorts") or [], **_scope(p)),
    ),
    ("GET", _MANAGER, lambda e, p, b: {"managedInstances": e.managed_instances(*_named(p), **_scope(p))}),
    ("POST", _MANAGER + "/resize", lambda e, p, b: e.resize_group_manager(*_named(p), _size(b), **_scope(p))),
    (
        "POST",
        _MANAGER + "/rollingReplace",
        lambda e, p, b: e.rolling_replace(
            *_named(p),
            instance_template=b.get("instanceTemplate"),
            max_surge=b.get("maxSurge"),
            max_unavailable=b.get("maxUnavailable"),
            **_scope(p),
        ),
    ),
    (
        "POST",
        _INSTANCE + "/setHealth",
        lambda e, p, b: e.set_instance_health(*_vm(p), str(b.get("detailedHealthState"))),
    ),
]
_ROUTES = [(verb, re.compile("^" + pattern + "/?$"), handler) for verb, pattern, handler in _ROUTE_TABLE]


def handle_admin(
    emulator: Emulator, verb: str, path: str, query: dict[str, str], body: bytes
) -> tuple[int, Any]:
    """(status, JSON payload) for an admin request."""
    try:
        request = json.loads(body) if body.strip() else {}
    except ValueError:
        return 400, errors.bad_request("admin request body is not JSON").body()
    if not isinstance(request, dict):
        return 400, errors.bad_request("admin request body must be a JSON object").body()
    path_matched = False
    for route_verb, pattern, handler in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        path_matched = True
        if route_verb != verb:
            continue
        params = {k: unquote(v) for k, v in match.groupdict().items()}
        try:
            result = handler(emulator, params, request)
        except ApiError as exc:
            log.info("admin %s %s: %d %s", verb, path, exc.code, exc.message)
            return exc.code, exc.body()
        log.info("admin %s %s", verb, path)
        return 200, {} if result is None else result
    if path_matched:
        return 405, ApiError(405, f"{verb} is not allowed on {path}", "methodNotAllowed").body()
    return 404, ApiError(404, f"No admin route {path}", "notFound").body()
