"""The operator's HTTP endpoint: Prometheus ``/metrics``, ``/healthz`` (alive), ``/readyz`` (serving
config) and ``/statuses`` (each upstream's Gloo-style status, e.g. why it was rejected, as JSON).
A stdlib server on its own thread, so it answers even when the event loop is busy."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gce_plugin.metrics import REGISTRY


class AdminServer:
    def __init__(
        self,
        host: str,
        port: int,
        ready: Callable[[], bool],
        statuses: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        ready_check, statuses_of = ready, statuses

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._reply(200, b"ok\n")
                elif path == "/readyz":
                    ok = ready_check()
                    self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                elif path == "/statuses":
                    body = json.dumps(statuses_of(), indent=2, sort_keys=True).encode() + b"\n"
                    self._reply(200, body, "application/json")
                else:
                    self._reply(404, b"not found\n")

            def _reply(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="admin-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
