"""A misbehaving HTTP server for discovery fault tests: it forwards every request to the Compute
emulator and lets a test rewrite the answer (``meddle``) or misdeliver it: trickle it one byte at a
time, cut it short, or answer with any body. Loopback, a free port, stopped by ``close``."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    """What the proxy sends back: ``body`` as is, or ``trickle`` seconds between single bytes, or
    ``truncate`` (a Content-Length larger than the body, then the connection closed)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    trickle: float = 0.0
    truncate: bool = False


# (request path, emulator's answer) -> the answer to send (or None: the emulator's, unchanged).
Meddle = Callable[[str, Answer], Answer | None]


class MeddlingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.meddle: Meddle = lambda path, answer: None
        self.requests: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

            def _forward(self, method: str) -> None:
                proxy.requests.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                request = urllib.request.Request(proxy.upstream + self.path, data=data, method=method)
                request.add_header("Content-Type", self.headers.get("Content-Type") or "application/json")
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        answer = Answer(resp.status, resp.read())
                except urllib.error.HTTPError as err:
                    answer = Answer(err.code, err.read())
                answer = proxy.meddle(self.path, answer) or answer
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body) + (100 if answer.truncate else 0)))
                if answer.truncate:
                    self.send_header("Connection", "close")
                self.end_headers()
                try:
                    if answer.trickle:
                        for byte in answer.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(answer.trickle)
                    else:
                        self.wfile.write(answer.body)
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up (as it should)
                if answer.truncate:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MeddlingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rewrite_json(answer: Answer, change: Callable[[Any], Any]) -> Answer:
    """The answer with its JSON body changed by ``change``."""
    return Answer(answer.status, json.dumps(change(json.loads(answer.body))).encode())
