"""Shared pieces of the gce tests: upstreams, a test fixture for the emulator, a discovery on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, TypeVar

from google.auth.credentials import AnonymousCredentials, Credentials

from gce_plugin.api import GceUpstreamSpec, StaticHost, Upstream
from gce_plugin.emulator.fixture import Fixture
from gce_plugin.emulator.server import Emulator
from gce_plugin.plugins.gce.compute import ComputeClient, RetryPolicy
from gce_plugin.plugins.gce.discovery import GceDiscovery
from gce_plugin.plugins.gce.spec import is_gce
from gce_plugin.plugins.plugin import EndpointsUpdate, WatchedUpstreams, WatchOpts
from gce_plugin.plugins.refresh import PollResult, refresh_loop

PROJECT = "demo"
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_elapsed=5.0)

T = TypeVar("T")


def gce_upstream(name: str = "web", namespace: str = "default", **spec: Any) -> Upstream:
    upstream = Upstream()
    upstream.metadata.name = name
    upstream.metadata.namespace = namespace
    fields: dict[str, Any] = {
        "instance_group_name": "web",
        "instance_group_region": "us-central1-a",
        "projectId": PROJECT,
    }
    fields.update(spec)
    upstream.upstream_spec.gce.CopyFrom(GceUpstreamSpec(**fields))
    return upstream


def static_upstream(name: str = "static", port: int = 9999) -> Upstream:
    upstream = Upstream()
    upstream.metadata.name = name
    upstream.metadata.namespace = "default"
    upstream.upstream_spec.static.hosts.append(StaticHost(addr="127.0.0.1", port=port))
    return upstream


def vm(name: str, ip: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "networkIP": ip, **extra}


def fixture_data() -> dict[str, Any]:
    """Zone a: group web (http:8080, admin:9000) with a stopped member and one VM without natIP.
    Zone b: zonal group edge (no named ports). Region us-central1: group api (http:8081) across
    zones a and b."""
    return {
        "projects": {
            PROJECT: {
                "zones": {
                    "us-central1-a": {
                        "instances": [
                            vm(
                                "web-1",
                                "10.0.0.11",
                                id=4242,
                                natIP="203.0.113.11",
                                labels={"env": "prod", "tier": "web"},
                            ),
                            vm("web-2", "10.0.0.12", labels={"env": "dev", "tier": "web"}),
                            vm("web-3", "10.0.0.13", status="TERMINATED", labels={"env": "prod"}),
                            vm("api-1", "10.0.0.21", labels={"app": "api"}),
                            vm("spare", "10.0.0.99"),
                        ],
                        "instanceGroups": [
                            {
                                "name": "web",
                                "namedPorts": ["http:8080", "admin:9000"],
                                "instances": ["web-1", "web-2", "web-3"],
                            }
                        ],
                    },
                    "us-central1-b": {
                        "instances": [
                            vm("api-2", "10.0.1.22", labels={"app": "api"}),
                            vm("edge-1", "10.0.1.31"),
                        ],
                        "instanceGroups": [{"name": "edge", "instances": ["edge-1"]}],
                    },
                },
                "regions": {
                    "us-central1": {
                        "instanceGroups": [
                            {
                                "name": "api",
                                "namedPorts": ["http:8081"],
                                "instances": ["us-central1-a/api-1", "us-central1-b/api-2"],
                            }
                        ]
                    }
                },
            }
        }
    }


def make_fixture() -> Fixture:
    return Fixture.from_dict(fixture_data())


def discovery_for(
    emulator: Emulator,
    credentials: Credentials | None = None,
    page_size: int = 500,
    retry: RetryPolicy = FAST_RETRY,
    timeout: float = 5.0,
) -> GceDiscovery:
    anonymous: Credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    client = ComputeClient(
        credentials or anonymous, endpoint=emulator.url, timeout=timeout, retry=retry, page_size=page_size
    )
    return GceDiscovery(client)


def poll(discovery: GceDiscovery, *upstreams: Upstream) -> PollResult:
    """One poll cycle, as the watch runs it."""
    return asyncio.run(discovery.poll_once("gloo-system", upstreams))


async def next_item(iterator: AsyncIterator[T], timeout: float = 10.0) -> T:
    """The next item, or fail after ``timeout`` seconds (a deadline, not a sleep)."""
    return await asyncio.wait_for(anext(iterator), timeout)


def watch_of(
    discovery: GceDiscovery, upstreams: Sequence[Upstream], opts: WatchOpts
) -> AsyncGenerator[EndpointsUpdate, None]:
    """The watch the gce plugin runs: the shared refresh loop around ``discovery.poll_once``."""

    async def poll(batch: Sequence[Upstream]) -> PollResult:
        return await discovery.poll_once("gloo-system", batch)

    return refresh_loop("gce", poll, WatchedUpstreams(upstreams), opts, is_gce)
