"""``--serve-backends``: a tiny HTTP server per RUNNING VM on a loopback address, so Envoy has real
backends to route to. Each answers every request with 200, ``hello from <vm>`` and ``x-instance``,
except while its VM is not serving (a managed VM whose health check fails, or that its group is
tearing down or has not verified yet): then it answers 503, as an application failing its health
check or shutting down on SIGTERM does.

The fleet is reconciled after every state change: stopping or removing a VM closes its listener
(new connections are refused), starting or adding one opens it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gce_plugin.emulator.state import Vm

log = logging.getLogger(__name__)

Address = tuple[str, int]


class _BackendServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: Address, vm: Vm, serving: Callable[[], bool]) -> None:
        self.vm_name = vm.name
        self.zone = vm.zone
        self.serving = serving
        super().__init__(address, _BackendHandler)


class _BackendHandler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a stopped VM keeps no open keep-alive connections.
    protocol_version = "HTTP/1.0"
    disable_nagle_algorithm = True
    server: _BackendServer

    def _answer(self, with_body: bool) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.server.serving():
            status, body = 200, f"hello from {self.server.vm_name}\n".encode()
        else:
            status, body = 503, f"{self.server.vm_name} is not serving\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-instance", self.server.vm_name)
        self.send_header("x-instance-zone", self.server.zone)
        self.send_header("Connection", "close")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: object) -> None:
        log.debug("backend %s: " + format, self.server.vm_name, *args)


class BackendFleet:
    def __init__(self, targets: Callable[[], dict[Address, Vm]], serving: Callable[[Vm], bool]) -> None:
        self._targets = targets
        self._serving = serving
        self._lock = threading.Lock()
        self._servers: dict[Address, _BackendServer] = {}
        self.errors: dict[Address, str] = {}  # addresses that could not be bound, and why

    def reconcile(self) -> None:
        with self._lock:
            desired = self._targets()
            for address, server in list(self._servers.items()):
                vm = desired.get(address)
                if vm is None or vm.name != server.vm_name:
                    self._stop(address)
            for address, vm in desired.items():
                if address not in self._servers:
                    self._start(address, vm)

    def running(self) -> dict[str, str]:
        """VM name -> ``ip:port`` of its backend."""
        with self._lock:
            return {s.vm_name: f"{a[0]}:{a[1]}" for a, s in self._servers.items()}

    def stop_all(self) -> None:
        with self._lock:
            for address in list(self._servers):
                self._stop(address)

    def _start(self, address: Address, vm: Vm) -> None:
        try:
            server = _BackendServer(address, vm, lambda: self._serving(vm))
        except OSError as exc:
            if self.errors.get(address) != exc.strerror:
                log.warning("backend for %s on %s:%d: %s", vm.name, *address, exc.strerror)
            self.errors[address] = str(exc.strerror)
            return
        self.errors.pop(address, None)
        self._servers[address] = server
        name = f"backend-{vm.name}"
        threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True).start()
        log.info("backend for %s listening on %s:%d", vm.name, *address)

    def _stop(self, address: Address) -> None:
        server = self._servers.pop(address)
        server.shutdown()
        server.server_close()
        log.info("backend for %s on %s:%d stopped", server.vm_name, *address)
