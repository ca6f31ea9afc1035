"""Discovery against a misbehaving Compute API (issue 8, item 4): the real client and discovery talk
to the emulator through a proxy that trickles, truncates, garbles or loops its answers. Nothing
hangs, every fault is reported with its method and group, one bad item or group affects nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials, Credentials

from gce_plugin import metrics
from gce_plugin.emulator.server import Emulator
from gce_plugin.plugins.gce.compute import ComputeClient, ComputeError, RetryPolicy
from gce_plugin.plugins.gce.discovery import GceDiscovery
from gce_plugin.plugins.plugin import DiscoveryError, EndpointsUpdate, UpstreamKey, WatchOpts
from gce_plugin.plugins.refresh import PollResult
from tests.plugins.gce.gce_helpers import gce_upstream, watch_of
from tests.plugins.gce.meddling_proxy import Answer, MeddlingProxy, rewrite_json

WEB: UpstreamKey = ("default", "web")
EDGE: UpstreamKey = ("default", "edge")
API: UpstreamKey = ("default", "api")
UPSTREAMS = (
    gce_upstream("web"),
    gce_upstream("edge", instance_group_name="edge", instance_group_region="us-central1-b"),
    gce_upstream("api", instance_group_name="api", instance_group_region="us-central1"),
)
QUICK = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_elapsed=3.0)


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[MeddlingProxy]:
    with MeddlingProxy(emulator.url) as running:
        yield running


def discovery_via(proxy: MeddlingProxy, **client: Any) -> GceDiscovery:
    anonymous: Credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    options: dict[str, Any] = {"timeout": 1.0, "retry": QUICK, **client}
    return GceDiscovery(ComputeClient(anonymous, endpoint=proxy.url, **options))


def poll(discovery: GceDiscovery, limit: float = 30.0, close: bool = True) -> PollResult:
    """One poll, failing the test (instead of hanging it) past ``limit`` seconds."""

    async def bounded() -> PollResult:
        return await asyncio.wait_for(discovery.poll_once("gloo-system", UPSTREAMS), limit)

    try:
        return asyncio.run(bounded())
    finally:
        if close:
            discovery.close()


def addresses(result: PollResult, key: UpstreamKey) -> list[str]:
    return sorted(e.address for e in result.found[key].endpoints)


def calls(method: str, code: str) -> float:
    labels = {"method": method, "code": code}
    return metrics.REGISTRY.get_sample_value("gce_plugin_compute_api_calls_total", labels) or 0.0


def test_a_trickling_answer_ends_at_the_attempt_deadline_and_the_next_poll_recovers(
    proxy: MeddlingProxy,
) -> None:
    trickling = [True]

    def trickle(path: str, answer: Answer) -> Answer | None:
        if (
            trickling[0] and "/instanceGroups/web/listInstances" in path
        ):  # one byte every 0.3 s: no read ever times out
            return Answer(answer.status, answer.body, trickle=0.3)
        return None

    proxy.meddle = trickle
    # One thread: the aborted attempt's thread and connection must serve the next poll.
    discovery = discovery_via(
        proxy, attempt_deadline=1.0, retry=RetryPolicy(2, 0.01, 0.05, 2.0), max_concurrent_calls=1
    )
    started = time.monotonic()
    result = poll(discovery, close=False)
    assert time.monotonic() - started < 10
    assert "instanceGroups.listInstances" in result.errors[WEB] and "within" in result.errors[WEB]
    assert "instance group web" in result.errors[WEB]
    assert addresses(result, EDGE) == ["10.0.1.31"]  # the other groups are not held up
    trickling[0] = False
    started = time.monotonic()
    assert addresses(poll(discovery), WEB) == ["10.0.0.11", "10.0.0.12"]
    assert time.monotonic() - started < 5


def test_a_repeated_page_token_ends_the_list_with_an_error(proxy: MeddlingProxy) -> None:
    def loop(path: str, answer: Answer) -> Answer | None:
        if "/zones/us-central1-a/instances" in path:
            return Answer(200, json.dumps({"items": [], "nextPageToken": "again"}).encode())
        return None

    proxy.meddle = loop
    result = poll(discovery_via(proxy))
    assert "nextPageToken repeated" in result.errors[WEB] and "instances.list" in result.errors[WEB]
    assert sum("/zones/us-central1-a/instances?" in p for p in proxy.requests) <= 3
    assert addresses(result, EDGE) == ["10.0.1.31"]


def test_a_list_longer_than_the_page_cap_ends_with_an_error(proxy: MeddlingProxy) -> None:
    tokens = iter(range(10**6))

    def endless(path: str, answer: Answer) -> Answer | None:
        if "/zones/us-central1-a/instances" in path:
            return Answer(200, json.dumps({"items": [], "nextPageToken": f"t{next(tokens)}"}).encode())
        return None

    proxy.meddle = endless
    result = poll(discovery_via(proxy, max_pages=5))
    assert "more than 5 pages" in result.errors[WEB]
    assert sum("/zones/us-central1-a/instances?" in p for p in proxy.requests) == 5


@pytest.mark.parametrize(
    "bad",
    [
        Answer(200, b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
        Answer(200, b"null"),
        Answer(200, b'{"items": [{"instance": '),
        Answer(200, b"[1, 2, 3]"),
        Answer(200, b'{"items": []}' + b" " * 50, truncate=True),
    ],
    ids=["html", "null", "bad-json", "not-an-object", "truncated"],
)
def test_a_malformed_body_is_retried_and_reported_with_method_and_group(
    proxy: MeddlingProxy, bad: Answer
) -> None:
    method = "instanceGroups.listInstances"
    ok_before = calls(method, "200")
    proxy.meddle = lambda path, answer: bad if "/instanceGroups/web/listInstances" in path else None
    result = poll(discovery_via(proxy))
    error = result.errors[WEB]
    assert method in error and "instance group web" in error
    assert sum("/instanceGroups/web/listInstances" in p for p in proxy.requests) == QUICK.max_attempts
    # Other groups' listInstances calls succeed (api is regional: regionInstanceGroups), edge is zonal.
    assert calls(method, "200") == ok_before + 1  # edge's only: the bad answers never count as 200
    assert addresses(result, EDGE) == ["10.0.1.31"] and WEB not in result.found


def test_one_malformed_instance_is_skipped_and_affects_nothing_else(proxy: MeddlingProxy) -> None:
    def garble(path: str, answer: Answer) -> Answer | None:
        if "/zones/us-central1-a/instances" not in path:
            return None

        def change(body: dict[str, Any]) -> dict[str, Any]:
            items = body["items"]
            for item in items:
                if item["name"] == "web-1":
                    item["labels"] = "not a map"  # malformed: web-1 only is skipped
                if item["name"] == "api-1":
                    item["networkInterfaces"] = "eth0"
            return {**body, "items": [*items, "garbage", None, {"name": 7}]}

        return rewrite_json(answer, change)

    proxy.meddle = garble
    result = poll(discovery_via(proxy))
    assert result.errors == {}
    assert addresses(result, WEB) == ["10.0.0.12"]
    assert addresses(result, API) == ["10.0.1.22"]
    assert addresses(result, EDGE) == ["10.0.1.31"]


def test_instances_without_network_interfaces_and_duplicates(proxy: MeddlingProxy) -> None:
    def change(path: str, answer: Answer) -> Answer | None:
        if "/zones/us-central1-a/instances" in path:

            def drop_nics(body: dict[str, Any]) -> dict[str, Any]:
                for item in body["items"]:
                    if item["name"] == "web-2":
                        del item["networkInterfaces"]
                return body

            return rewrite_json(answer, drop_nics)
        if "/instanceGroups/web/listInstances" in path:
            return rewrite_json(answer, lambda body: {**body, "items": body["items"] * 2})
        return None

    proxy.meddle = change
    result = poll(discovery_via(proxy))
    assert [e.address for e in result.found[WEB].endpoints] == ["10.0.0.11"]  # once, web-2 skipped
    assert WEB not in result.errors


def test_an_oversized_response_is_refused(proxy: MeddlingProxy) -> None:
    result = poll(discovery_via(proxy, max_response_bytes=200))
    assert "too_large" in result.errors[WEB] or "exceeds the limit" in result.errors[WEB]


def test_one_404_on_list_instances_keeps_the_endpoints_a_deletion_lands_after_confirmation(
    emulator: Emulator, proxy: MeddlingProxy
) -> None:
    errors: list[DiscoveryError] = []

    async def body() -> None:
        discovery = discovery_via(proxy)
        opts = WatchOpts(refresh_interval=0.2, on_error=errors.append)
        watch = watch_of(discovery, [gce_upstream("web")], opts)
        try:
            first: EndpointsUpdate = await asyncio.wait_for(anext(watch), 10)
            assert len(first.upstreams[WEB].endpoints) == 2
            emulator.inject_fault("instanceGroups.listInstances", status=404, reason="notFound", count=1)
            nxt = asyncio.ensure_future(anext(watch))
            for _ in range(300):  # until the 404 was seen, and a poll after it
                if errors and emulator.faults() == []:
                    break
                await asyncio.sleep(0.02)
            requests = len(proxy.requests)
            while len(proxy.requests) < requests + 4:  # at least one more full poll
                await asyncio.sleep(0.02)
            assert not nxt.done()  # nothing changed: the 404 was not believed
            emulator.delete_group("demo", "web", zone="us-central1-a")  # a real deletion
            update = await asyncio.wait_for(nxt, 10)
            assert update.upstreams[WEB].endpoints == ()
        finally:
            await watch.aclose()
            discovery.close()

    asyncio.run(body())
    assert any("not found" in str(e) for e in errors)


def test_the_malformed_counter_names_the_method(proxy: MeddlingProxy) -> None:
    before = calls("instances.list", "malformed")
    proxy.meddle = lambda path, answer: Answer(200, b"null") if "/instances?" in path else None
    result = poll(discovery_via(proxy))
    assert calls("instances.list", "malformed") > before
    assert "instances.list" in result.errors[WEB] and "malformed" in result.errors[WEB]


class _EndlessBody(BaseHTTPRequestHandler):
    """Answers every request with a 200 whose body never ends (no Content-Length, close-delimited),
    written as fast as the client reads, for at most 20 s."""

    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        chunk = b'{"items": [' + b" " * 65536
        deadline = time.monotonic() + 20
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline:
                self.wfile.write(chunk)


def test_an_endless_response_is_refused_while_it_is_read() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessBody)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    anonymous: Credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/"
    client = ComputeClient(anonymous, endpoint=endpoint, timeout=5.0, retry=QUICK, max_response_bytes=1 << 20)
    try:
        with pytest.raises(ComputeError) as caught:
            asyncio.run(asyncio.wait_for(client.list_instances("demo", "us-central1-a"), 30))
    finally:
        client.close()
        server.shutdown()
        server.server_close()
    # Refused at the limit, not at the attempt's deadline (which is 15 s away with timeout=5).
    assert caught.value.reason == "too_large", caught.value
    assert "exceeds the limit" in str(caught.value)
