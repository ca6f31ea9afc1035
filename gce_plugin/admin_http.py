"""The operator's HTTP endpoint:

    /               the status page (HTML, refreshes itself): Envoys' sync state, upstreams, health
    /metrics        Prometheus
    /healthz        alive
    /readyz         200 while serving a config (its body lists what is degraded), else 503
    /statuses       each upstream's Gloo-style status and discovery health, as JSON
    /proxy-status   each connected Envoy's sync state per xDS type, as JSON (``gce-plugin proxy-status``)

A stdlib server on its own thread, so it answers even when the event loop is busy. One thread per
connection, but bounded: at most ``max_connections`` at once (more are answered 503 and closed) and
each socket times out after ``timeout`` seconds, so idle or slow clients cannot pile up threads.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gce_plugin import status_page
from gce_plugin.hostport import join_host_port
from gce_plugin.metrics import REGISTRY

MAX_CONNECTIONS = 64
TIMEOUT = 10.0
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _no_proxies() -> dict[str, Any]:
    return {"latest": {}, "proxies": []}


class _BoundedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], slots: int) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class AdminServer:
    def __init__(
        self,
        host: str,
        port: int,
        ready: Callable[[], bool],
        statuses: Callable[[], dict[str, Any]] = dict,
        degraded: Callable[[], list[str]] = list,
        proxies: Callable[[], dict[str, Any]] = _no_proxies,
        *,
        max_connections: int = MAX_CONNECTIONS,
        timeout: float = TIMEOUT,
    ) -> None:
        # A handler class of this server's own: the sources and timeout are class attributes.
        sources = _Sources(ready, statuses, degraded, proxies)
        handler = type("Handler", (_Handler,), {"sources": sources, "timeout": timeout})
        self.address = join_host_port(host, port)
        try:
            self._server = _BoundedServer((host, port), handler, max_connections)
        except OSError as err:
            raise OSError(
                f"admin HTTP server cannot listen on {self.address}: {err.strerror or err}"
            ) from err
        self._thread = threading.Thread(target=self._server.serve_forever, name="admin-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class _Sources:
    ready: Callable[[], bool]
    statuses: Callable[[], dict[str, Any]]
    degraded: Callable[[], list[str]]
    proxies: Callable[[], dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    sources: ClassVar[_Sources]
    timeout: ClassVar[float | None]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        route = _ROUTES.get(path)
        if route is None:
            self._reply(404, b"not found\n")
        else:
            route(self)

    def _metrics(self) -> None:
        self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)

    def _healthz(self) -> None:
        self._reply(200, b"ok\n")

    def _readyz(self) -> None:
        if not self.sources.ready():
            self._reply(503, b"not ready\n")
            return
        # Ready while serving a config, even degraded: a failing cloud API must not pull replicas
        # out of rotation. The body says what is wrong.
        degraded = self.sources.degraded()
        lines = ["ready", *(f"degraded: {d}" for d in degraded)]
        self._reply(200, ("\n".join(lines) + "\n").encode())

    def _statuses(self) -> None:
        self._json(self.sources.statuses())

    def _proxy_status(self) -> None:
        self._json(self.sources.proxies())

    def _page(self) -> None:
        s = self.sources
        html = status_page.render(s.ready(), s.degraded(), s.statuses(), s.proxies())
        self._reply(200, html.encode(), "text/html; charset=utf-8")

    def _json(self, payload: Any) -> None:
        self._reply(200, json.dumps(payload, indent=2, sort_keys=True).encode() + b"\n", "application/json")

    def _reply(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with contextlib.suppress(TimeoutError, BrokenPipeError, ConnectionResetError):  # the client left
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
        pass


_ROUTES: dict[str, Callable[[_Handler], None]] = {
    "/": _Handler._page,
    "/metrics": _Handler._metrics,
    "/healthz": _Handler._healthz,
    "/readyz": _Handler._readyz,
    "/statuses": _Handler._statuses,
    "/proxy-status": _Handler._proxy_status,
}
