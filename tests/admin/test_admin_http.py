"""The admin HTTP server: bounded connections and timeouts (idle clients cannot pile up threads),
routes, /readyz's body, and a bind error that names the address."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from gce_plugin.admin_http import AdminServer
from gce_plugin.localstack import http_get, wait_for


def make_server(timeout: float) -> AdminServer:
    return AdminServer(
        "127.0.0.1",
        0,
        lambda: True,
        lambda: {"default.web": {"state": "Accepted"}},
        lambda: ["discovery of default.web failing: boom"],
        lambda: {"latest": {}, "proxies": []},
        max_connections=4,
        timeout=timeout,
    )


@pytest.fixture
def server() -> Iterator[AdminServer]:
    admin = make_server(timeout=0.5)
    admin.start()
    yield admin
    admin.stop()


@pytest.fixture
def patient_server() -> Iterator[AdminServer]:
    admin = make_server(timeout=30)
    admin.start()
    yield admin
    admin.stop()


def idle_connection(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_readyz_stays_ready_but_says_what_is_degraded(server: AdminServer) -> None:
    status, body = http_get(f"http://127.0.0.1:{server.port}/readyz")
    assert status == 200
    assert body.splitlines() == ["ready", "degraded: discovery of default.web failing: boom"]


def test_routes(server: AdminServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    assert json.loads(http_get(f"{base}/statuses")[1]) == {"default.web": {"state": "Accepted"}}
    assert json.loads(http_get(f"{base}/proxy-status")[1]) == {"latest": {}, "proxies": []}
    status, page = http_get(f"{base}/")
    assert status == 200 and "<html" in page and "No Envoy is connected" in page
    assert http_get(f"{base}/nope")[0] == 404


def test_connections_beyond_the_cap_are_refused_not_queued(patient_server: AdminServer) -> None:
    server = patient_server
    threads_before = threading.active_count()
    idle = [idle_connection(server.port) for _ in range(4)]
    try:
        wait_for("4 connection threads", lambda: threading.active_count() >= threads_before + 4, timeout=5)
        extra = [idle_connection(server.port) for _ in range(20)]
        try:
            for sock in extra:
                assert sock.recv(100).startswith(b"HTTP/1.1 503")
            assert threading.active_count() <= threads_before + 4
        finally:
            for sock in extra:
                sock.close()
    finally:
        for sock in idle:
            sock.close()


def test_idle_connections_time_out_and_free_their_slot(server: AdminServer) -> None:
    idle = [idle_connection(server.port) for _ in range(4)]
    try:
        started = time.monotonic()
        for sock in idle:
            assert sock.recv(100) == b""  # the server closed it
        assert time.monotonic() - started < 5
        wait_for(
            "a free slot", lambda: http_get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200, timeout=5
        )
    finally:
        for sock in idle:
            sock.close()


def test_a_taken_address_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"admin HTTP server cannot listen on 127.0.0.1:{port}"):
            AdminServer("127.0.0.1", port, lambda: True)
