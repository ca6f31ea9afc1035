"""The emulator's HTTP server and its Python API.

One ``ThreadingHTTPServer`` answers three surfaces:

- ``/compute/v1/projects/...``: the Compute methods in ``compute_api``. The same paths without the
  ``compute/v1/`` service path are served too, because ``googleapiclient`` built with
  ``client_options={"api_endpoint": emulator.url}`` sends ``/projects/...`` (api_endpoint replaces
  the whole base URL); ``api_endpoint=emulator.compute_url`` gives the canonical form;
- ``POST /token``: an OAuth2 token endpoint for google-auth's service-account flow;
- ``/admin/...``: JSON control of the emulator (see ``admin_api``), mirrored by ``Emulator`` methods.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gce_plugin.emulator import errors
from gce_plugin.emulator.admin_api import handle_admin
from gce_plugin.emulator.backends import BackendFleet
from gce_plugin.emulator.compute_api import ComputeApi, match_route
from gce_plugin.emulator.errors import ApiError
from gce_plugin.emulator.faults import Fault, FaultInjector
from gce_plugin.emulator.fixture import (
    Fixture,
    Instance,
    InstanceGroup,
    NamedPort,
    group_from_dict,
    instance_from_dict,
    named_ports_from_list,
)
from gce_plugin.emulator.managers import Manager
from gce_plugin.emulator.resources import (
    Links,
    group_json,
    instance_json,
    managed_instances_json,
    manager_json,
)
from gce_plugin.emulator.state import ComputeState, checked, region_scope, zone_scope
from gce_plugin.emulator.stats import RequestStats
from gce_plugin.emulator.tokens import OAuthError, TokenIssuer
from gce_plugin.hostport import is_loopback

log = logging.getLogger(__name__)

COMPUTE_PREFIX = "/compute/v1/"
TOKEN_PATH = "/token"
ADMIN_PREFIX = "/admin/"
TICK = 0.05  # seconds between managed-group lifecycle steps


class Emulator:
    """A Compute Engine API emulator serving ``fixture``.

    >>> with Emulator(Fixture.load("examples/fixture.yaml")) as emulator:
    ...     compute = build("compute", "v1", static_discovery=True,
    ...                     client_options={"api_endpoint": emulator.url}, credentials=...)
    """

    def __init__(
        self,
        fixture: Fixture | str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        serve_backends: bool = False,
        require_token: bool = False,
        token_lifetime: float = 3600.0,
    ) -> None:
        self.fixture = fixture if isinstance(fixture, Fixture) else Fixture.load(fixture)
        self.state = ComputeState(self.fixture)
        self.host = host
        self.requested_port = port
        self.require_token = require_token
        self.stats_recorder = RequestStats()
        self.fault_injector = FaultInjector()
        self.tokens = TokenIssuer(token_lifetime)
        self.fleet: BackendFleet | None = None
        if serve_backends:
            self.fleet = BackendFleet(
                self.state.backend_targets, lambda vm: self.state.vm_serving(vm.project, vm.zone, vm.name)
            )
        self._server: ThreadingHTTPServer | None = None
        self._ticking = threading.Event()
        self._ticker: threading.Thread | None = None
        self._thread: threading.Thread | None = None
        self.api: ComputeApi | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Emulator:
        server = _Server((self.host, self.requested_port), self)
        self._server = server
        self.api = ComputeApi(self.state, Links(self.url + COMPUTE_PREFIX.lstrip("/")))
        if self.fleet is not None:
            self.state.add_listener(self.fleet.reconcile)
            self.fleet.reconcile()
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="emulator", daemon=True
        )
        self._thread.start()
        self._ticking.clear()
        self._ticker = threading.Thread(target=self._tick_forever, name="emulator-mig", daemon=True)
        self._ticker.start()
        log.info("emulator listening on %s", self.url)
        if not is_loopback(self.host):
            log.warning(
                "the emulator is bound beyond loopback (%s): anyone who can reach it can read and "
                "change its state through /admin; bind 127.0.0.1 unless that is intended",
                self.host,
            )
        return self

    def _tick_forever(self) -> None:
        """Managed groups move on their own: deletions end, VMs get created, verified, autohealed."""
        while not self._ticking.wait(TICK):
            if self.state.has_managers():
                try:
                    self.state.tick()
                except Exception:  # a bug must not stop time
                    log.exception("emulator: managed group tick failed")

    def stop(self) -> None:
        self._ticking.set()
        if self._ticker is not None:
            self._ticker.join(5)
            self._ticker = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.fleet is not None:
            self.state.remove_listener(self.fleet.reconcile)
            self.fleet.stop_all()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT/``: the ``api_endpoint`` for googleapiclient."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/"

    @property
    def compute_url(self) -> str:
        return self.url + COMPUTE_PREFIX.lstrip("/")

    @property
    def token_uri(self) -> str:
        return self.url + TOKEN_PATH.lstrip("/")

    # -- the admin API, in Python --------------------------------------------------------------------

    def add_instance(
        self, project: str, instance: Instance | Mapping[str, Any], groups: Iterable[str] = (), zone: str = ""
    ) -> dict[str, Any]:
        """Add a VM (an ``Instance``, or a fixture-style mapping plus ``zone``) and put it in ``groups``
        (a name: the zonal group of its zone, else the regional group of its region)."""
        if not isinstance(instance, Instance):
            instance = checked(lambda: instance_from_dict(instance, zone, "instance"))
        return instance_json(self._links(), self.state.add_instance(project, instance, groups))

    def remove_instance(self, project: str, zone: str, name: str) -> None:
        """Delete a VM (it leaves its groups too)."""
        self.state.remove_instance(project, zone, name)

    def set_instance_status(self, project: str, zone: str, name: str, status: str) -> dict[str, Any]:
        return instance_json(self._links(), self.state.set_status(project, zone, name, status))

    def stop_instance(self, project: str, zone: str, name: str, status: str = "TERMINATED") -> dict[str, Any]:
        """Stop a VM. The real API reports a stopped VM as TERMINATED."""
        return self.set_instance_status(project, zone, name, status)

    def start_instance(self, project: str, zone: str, name: str) -> dict[str, Any]:
        return self.set_instance_status(project, zone, name, "RUNNING")

    def set_instance_labels(
        self, project: str, zone: str, name: str, labels: Mapping[str, str]
    ) -> dict[str, Any]:
        return instance_json(self._links(), self.state.set_labels(project, zone, name, dict(labels)))

    def add_group(
        self,
        project: str,
        group: InstanceGroup | Mapping[str, Any],
        *,
        zone: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        """Create an instance group (an ``InstanceGroup``, or a fixture-style mapping plus zone/region)."""
        if not isinstance(group, InstanceGroup):
            group = checked(lambda: group_from_dict(group, "group", zone=zone, region=region))
        return self._render_group(self.state.add_group(project, group))

    def delete_group(
        self, project: str, name: str, *, zone: str | None = None, region: str | None = None
    ) -> None:
        self.state.delete_group(project, _scope(zone, region), name)

    def add_group_members(
        self,
        project: str,
        name: str,
        members: Iterable[str],
        *,
        zone: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        """Add VMs (``name`` or ``zone/name``) to a group."""
        return self._render_group(self.state.add_members(project, _scope(zone, region), name, members))

    def remove_group_members(
        self,
        project: str,
        name: str,
        members: Iterable[str],
        *,
        zone: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        return self._render_group(self.state.remove_members(project, _scope(zone, region), name, members))

    def set_named_ports(
        self,
        project: str,
        name: str,
        ports: Iterable[NamedPort | str | Mapping[str, Any]],
        *,
        zone: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        """Replace a group's named ports (``NamedPort``, ``"http:8080"`` or ``{"name", "port"}``)."""
        parsed = checked(
            lambda: [
                p if isinstance(p, NamedPort) else named_ports_from_list([p], "namedPorts")[0] for p in ports
            ]
        )
        return self._render_group(self.state.set_named_ports(project, _scope(zone, region), name, parsed))

    # -- managed instance groups ----------------------------------------------------------------

    def resize_group_manager(
        self, project: str, name: str, size: int, *, zone: str | None = None, region: str | None = None
    ) -> dict[str, Any]:
        """Set a managed group's target size: new VMs are CREATING, surplus ones DELETING."""
        return self._render_manager(
            project, self.state.resize_manager(project, _scope(zone, region), name, size)
        )

    def rolling_replace(
        self,
        project: str,
        name: str,
        *,
        zone: str | None = None,
        region: str | None = None,
        instance_template: str | None = None,
        max_surge: int | None = None,
        max_unavailable: int | None = None,
    ) -> dict[str, Any]:
        """Start replacing every VM of a managed group with one from ``instance_template`` (default:
        the next version of the current one), within ``max_surge`` / ``max_unavailable`` (default:
        the group's ``updatePolicy``)."""
        manager = self.state.rolling_replace(
            project, _scope(zone, region), name, instance_template, max_surge, max_unavailable
        )
        return self._render_manager(project, manager)

    def set_instance_health(self, project: str, zone: str, name: str, state: str) -> dict[str, Any]:
        """What a managed VM's health check reports (``detailedHealthState``). UNHEALTHY or TIMEOUT
        for the group's ``timings.autoheal`` seconds makes autohealing recreate the VM."""
        managed = self.state.set_health(project, zone, name, state)
        return {"name": managed.name, "currentAction": managed.action, "detailedHealthState": managed.health}

    def managed_instances(
        self, project: str, name: str, *, zone: str | None = None, region: str | None = None
    ) -> list[dict[str, Any]]:
        """listManagedInstances' items, all of them, whatever the group's paging or readability."""
        scope = _scope(zone, region)
        with self.state.lock:
            state = self.state.project(project)
            items = managed_instances_json(self._links(), state, state.manager(scope, name))
            return [item for _, item in items]

    def _render_manager(self, project: str, manager: Manager) -> dict[str, Any]:
        with self.state.lock:
            group = self.state.project(project).group(manager.scope, manager.name)
            return manager_json(self._links(), manager, group)

    def inject_fault(
        self,
        method: str | None = None,
        *,
        path: str | None = None,
        verb: str | None = None,
        status: int = 503,
        reason: str | None = None,
        message: str | None = None,
        delay: float = 0.0,
        count: int | None = None,
    ) -> int:
        """Fail (or, with ``status=0``, only delay) matching requests ``count`` times (None: until
        cleared). Returns the fault's id."""
        try:
            fault = Fault(method, path, verb, status, reason, message, delay, count)
        except ValueError as exc:
            raise ApiError(400, str(exc), "invalid") from None
        return self.add_fault(fault)

    def add_fault(self, fault: Fault) -> int:
        fault_id = self.fault_injector.add(fault)
        log.info("fault %d injected: %s", fault_id, fault.to_dict())
        return fault_id

    def clear_faults(self, fault_id: int | None = None) -> int:
        return self.fault_injector.clear(fault_id)

    def faults(self) -> list[dict[str, Any]]:
        return self.fault_injector.active()

    def stats(self) -> dict[str, Any]:
        """``counts`` (per Compute method), ``total``, ``statuses``, ``unmatched``, ``token_requests``,
        ``last_authorization`` and ``requests`` (the recent ones, each with its Authorization)."""
        return self.stats_recorder.snapshot()

    def calls(self, method: str) -> int:
        """How many requests a Compute method (e.g. ``instances.list``) has had."""
        return int(self.stats()["counts"].get(method, 0))

    def reset_stats(self) -> None:
        self.stats_recorder.reset()

    def reset(self) -> None:
        """Back to the fixture as loaded; no faults; stats zeroed. Issued tokens stay valid."""
        self.fault_injector.clear()
        self.state.load(self.fixture)
        self.stats_recorder.reset()

    def issued_tokens(self) -> list[dict[str, Any]]:
        """Each token issued: ``access_token``, the JWT's ``claims``, ``issued_at``, ``expires_at``."""
        return self.tokens.issued()

    def revoke_tokens(self) -> int:
        return self.tokens.revoke_all()

    def backends(self) -> dict[str, str]:
        """VM name -> ``ip:port`` of the backends --serve-backends runs right now."""
        return self.fleet.running() if self.fleet is not None else {}

    def _render_group(self, group: Any) -> dict[str, Any]:
        with self.state.lock:
            return group_json(self._links(), group)

    def _links(self) -> Links:
        if self.api is not None:
            return self.api.links
        return Links("http://unstarted/compute/v1/")


def _scope(zone: str | None, region: str | None) -> str:
    if (zone is None) == (region is None):
        raise ApiError(400, "name exactly one of zone and region", "invalid")
    return zone_scope(zone) if zone is not None else region_scope(str(region))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httplib2 expects
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's
    # delayed ACK (~40 ms per request on keep-alive connections).
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._handle(self.command)  # the request's verb

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)

    def _handle(self, verb: str) -> None:
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        emulator = self.server.emulator
        try:
            if path.startswith((COMPUTE_PREFIX, "/projects/")):
                status, payload = self._compute(emulator, verb, path, query, body)
            elif path == TOKEN_PATH:
                status, payload = self._token(emulator, verb, path, body)
            elif path.startswith(ADMIN_PREFIX) or path == ADMIN_PREFIX.rstrip("/"):
                status, payload = handle_admin(emulator, verb, path, query, body)
            else:
                emulator.stats_recorder.record("", verb, path, 404, self.headers.get("Authorization"))
                status, payload = 404, _unknown_path(path).body()
        except Exception:  # a bug must still answer, in the real shape
            log.exception("emulator: %s %s failed", verb, self.path)
            status, payload = 500, errors.for_status(500).body()
        self._send_json(status, payload)

    def _compute(
        self, emulator: Emulator, verb: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        authorization = self.headers.get("Authorization")
        # googleapiclient with api_endpoint=URL drops the service path ("compute/v1/"); both forms
        # are served, and recorded (and matched by faults) in the canonical one.
        if not path.startswith(COMPUTE_PREFIX):
            path = COMPUTE_PREFIX + path.lstrip("/")
        route = match_route(verb, path[len(COMPUTE_PREFIX) :])
        method = route[0] if route else ""
        try:
            if route is None:
                raise _unknown_path(path)
            if emulator.require_token and not emulator.tokens.is_valid(authorization):
                raise errors.unauthenticated()
            _apply_fault(emulator, method, verb, path)
            assert emulator.api is not None
            status, payload = 200, emulator.api.call(method, route[1], query, body)
        except ApiError as exc:
            status, payload = exc.code, exc.body()
        # Recorded before the answer goes out, so a client that got its answer sees itself counted.
        emulator.stats_recorder.record(method, verb, path, status, authorization)
        return status, payload

    def _token(self, emulator: Emulator, verb: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            if verb != "POST":
                raise _unknown_path(path)
            _apply_fault(emulator, "token", verb, path)
            status, payload = 200, emulator.tokens.issue(body)
        except OAuthError as exc:
            status, payload = 400, exc.body()
        except ApiError as exc:
            status, payload = exc.code, exc.body()
        emulator.stats_recorder.record("token", verb, path, status, self.headers.get("Authorization"))
        return status, payload

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _apply_fault(emulator: Emulator, method: str, verb: str, path: str) -> None:
    fault = emulator.fault_injector.take(method, verb, path)
    if fault is None:
        return
    if fault.delay:
        time.sleep(fault.delay)  # the fault *is* a slow answer
    if fault.status:
        raise errors.for_status(fault.status, fault.reason, fault.message)


def _unknown_path(path: str) -> ApiError:
    return ApiError(404, f"The requested URL {path} was not found on this server.", "notFound")
