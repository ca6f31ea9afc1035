"""The plugin as the control plane uses it: settings in, credentials from their sources, a watch
through the real client against the emulator (with tokens required, for the credentials flow)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials

from gce_plugin import redact
from gce_plugin.emulator.server import Emulator
from gce_plugin.plugins.gce import plugin as gce_plugin_module
from gce_plugin.plugins.gce.credentials import CredentialsError, LoadedCredentials
from gce_plugin.plugins.gce.plugin import GcePlugin
from gce_plugin.plugins.gce.settings import GceSettings
from gce_plugin.plugins.plugin import (
    DiscoveryError,
    EndpointsUpdate,
    WatchedUpstreams,
    WatchOpts,
)
from tests.plugins.gce.gce_helpers import gce_upstream, make_fixture, next_item, static_upstream
from tests.service_account import service_account_info


@pytest.fixture
def secured() -> Iterator[Emulator]:
    with Emulator(make_fixture(), require_token=True) as running:
        yield running


def first_list(plugin: GcePlugin, errors: list[DiscoveryError]) -> EndpointsUpdate:
    async def body() -> EndpointsUpdate:
        opts = WatchOpts(refresh_interval=0.05, on_error=errors.append)
        watch = plugin.watch_endpoints(
            "gloo-system", WatchedUpstreams([gce_upstream("web"), static_upstream()]), opts
        )
        try:
            return await next_item(watch)
        finally:
            await watch.aclose()

    try:
        return asyncio.run(body())
    finally:
        plugin.close()


def test_service_account_token_from_the_token_uri_is_sent_to_compute(
    secured: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(service_account_info(secured.token_uri)))
    plugin = GcePlugin(GceSettings(compute_endpoint=secured.url, credentials_file=str(key_file)))
    errors: list[DiscoveryError] = []
    endpoints = first_list(plugin, errors)
    assert errors == []
    assert len(endpoints.endpoints) == 2
    issued = secured.issued_tokens()
    assert len(issued) == 1  # got by the first call, then shared by every worker thread
    assert issued[0]["claims"]["scope"] == "https://www.googleapis.com/auth/compute.readonly"
    requests = [r for r in secured.stats()["requests"] if r["path"].startswith("/compute/")]
    assert requests and {r["authorization"] for r in requests} == {
        f"Bearer {redact.fingerprint(issued[0]['access_token'])}"
    }


def test_the_credentials_json_env_var_comes_first(secured: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CREDENTIALS_JSON", json.dumps(service_account_info(secured.token_uri)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/should-not-be-read.json")
    plugin = GcePlugin(GceSettings(compute_endpoint=secured.url, credentials_file="/nonexistent/either.json"))
    errors: list[DiscoveryError] = []
    assert len(first_list(plugin, errors).endpoints) == 2
    assert errors == []


def test_anonymous_calls_are_refused_by_a_server_that_wants_a_token(secured: Emulator) -> None:
    plugin = GcePlugin(GceSettings(compute_endpoint=secured.url))
    errors: list[DiscoveryError] = []
    endpoints = first_list(plugin, errors)
    assert endpoints == EndpointsUpdate()  # nothing known yet: not resolved, not "zero endpoints"
    assert [e.upstream for e in errors] == [("default", "web")]
    assert "HTTP 401" in str(errors[0])


def test_a_token_endpoint_failure_is_reported_without_the_key(secured: Emulator, tmp_path: Path) -> None:
    info = service_account_info(secured.url + "no-such-token-path")
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(info))
    plugin = GcePlugin(GceSettings(compute_endpoint=secured.url, credentials_file=str(key_file)))
    errors: list[DiscoveryError] = []
    first_list(plugin, errors)
    assert errors and "access token" in str(errors[0])
    assert info["private_key"].splitlines()[1] not in str(errors[0])


def test_bad_credentials_are_reported_and_the_watch_goes_on(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    plugin = GcePlugin(GceSettings(compute_endpoint="http://127.0.0.1:9/", credentials_file=str(bad)))
    errors: list[DiscoveryError] = []

    async def body() -> None:
        opts = WatchOpts(refresh_interval=0.01, on_error=errors.append)
        watch = plugin.watch_endpoints("gloo-system", WatchedUpstreams([gce_upstream("web")]), opts)
        pending = asyncio.ensure_future(anext(watch))
        deadline = asyncio.get_running_loop().time() + 5
        while len(errors) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # polling a condition, with a deadline
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending

    asyncio.run(body())
    assert len(errors) >= 2  # retried every interval
    assert str(errors[0]).startswith(f"gce: no credentials: credentials file {bad}: not valid JSON")


def test_without_gce_upstreams_no_credentials_are_needed() -> None:
    plugin = GcePlugin(GceSettings())  # no endpoint, no credentials: ADC would be needed

    async def body() -> EndpointsUpdate:
        watch = plugin.watch_endpoints("gloo-system", WatchedUpstreams([static_upstream()]), WatchOpts())
        try:
            return await next_item(watch)
        finally:
            await watch.aclose()

    assert asyncio.run(body()) == EndpointsUpdate()


def test_a_slow_credentials_lookup_does_not_stall_the_event_loop(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """google.auth.default() may block for seconds probing a metadata server. The stub blocks until
    a ticker task on the event loop releases it: it is only released if the loop keeps running."""
    entered = threading.Event()
    released = threading.Event()
    calls: list[bool] = []

    def slow_loader(credentials_file: str | None, compute_endpoint: str | None) -> LoadedCredentials:
        released.clear()
        entered.set()
        calls.append(released.wait(timeout=2.0))
        if len(calls) == 1:
            raise CredentialsError("metadata server did not answer")  # the watch retries
        return LoadedCredentials(AnonymousCredentials(), "stub")  # type: ignore[no-untyped-call]

    monkeypatch.setattr(gce_plugin_module, "load_credentials", slow_loader)
    plugin = GcePlugin(GceSettings(compute_endpoint=emulator.url))
    errors: list[DiscoveryError] = []

    async def ticker() -> None:
        # Every lookup waits for ticks of the loop; while it blocks the loop there are none.
        while len(calls) < 2:
            if entered.is_set():
                for _ in range(5):
                    await asyncio.sleep(0)
                entered.clear()
                released.set()
            await asyncio.sleep(0.001)

    async def body() -> EndpointsUpdate:
        opts = WatchOpts(refresh_interval=0.05, on_error=errors.append)
        watch = plugin.watch_endpoints("gloo-system", WatchedUpstreams([gce_upstream("web")]), opts)
        ticking = asyncio.create_task(ticker())
        try:
            return await next_item(watch)
        finally:
            ticking.cancel()
            await watch.aclose()

    try:
        endpoints = asyncio.run(body())
    finally:
        released.set()
        if plugin._discovery is not None:
            plugin._discovery.close()
    assert calls == [True, True]  # released by the loop both times, not by the stub's timeout
    assert [str(e) for e in errors] == ["gce: no credentials: metadata server did not answer"]
    assert len(endpoints.endpoints) == 2


def test_close_stops_the_discovery_threads() -> None:
    with Emulator(make_fixture()) as emulator:
        plugin = GcePlugin(GceSettings(compute_endpoint=emulator.url))
        before = {t for t in threading.enumerate() if t.name.startswith("gce-compute")}
        errors: list[DiscoveryError] = []
        assert first_list(plugin, errors).endpoints  # polled on the pool; first_list closes the plugin
        deadline = time.monotonic() + 10
        while {t for t in threading.enumerate() if t.name.startswith("gce-compute")} - before:
            assert time.monotonic() < deadline, "gce-compute threads still running after close()"
            time.sleep(0.02)
