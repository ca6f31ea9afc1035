"""The control plane in process, with fake plugins: it survives a crashing discovery plugin and a
manifest directory that goes away, and publishes through to the xDS cache."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub

from gce_plugin.api import Endpoint, ResourceRef, Upstream
from gce_plugin.controlplane import ControlPlane, Options
from gce_plugin.envoy_config.sources import eds_over_ads
from gce_plugin.plugins.plugin import (
    DiscoveryPlugin,
    EndpointsUpdate,
    Params,
    Settings,
    UpstreamPlugin,
    WatchedUpstreams,
    WatchOpts,
    upstream_key,
)
from gce_plugin.plugins.registry import Registry
from gce_plugin.translation import Delta
from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE
from tests.translation.translation_fakes import answer
from tests.xds.xds_testkit import SotwClient, assignments_of, clusters_of, ports_of

MANIFEST = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: web, namespace: default}
spec:
  upstreamSpec:
    gce: {instanceGroupName: web, instanceGroupRegion: us-central1-a, projectId: p}
"""


class FlakyDiscovery(UpstreamPlugin, DiscoveryPlugin):
    """EDS for gce upstreams; its first watch crashes after one answer, the next ones work."""

    name = "flaky"

    def __init__(self) -> None:
        self.watches = 0

    def process_upstream(self, params: Params, upstream: Upstream, cluster: Cluster) -> None:
        if upstream.upstream_spec.HasField("gce"):
            eds_over_ads(cluster)

    async def watch_endpoints(
        self, write_namespace: str, upstreams: WatchedUpstreams, opts: WatchOpts
    ) -> AsyncGenerator[EndpointsUpdate, None]:
        self.watches += 1
        keys = frozenset(upstream_key(u) for u in upstreams.snapshot()[1])
        port = 8000 + self.watches
        endpoints = tuple(
            Endpoint(upstreams=[ResourceRef(namespace=ns, name=n)], address="10.0.0.1", port=port)
            for ns, n in sorted(keys)
        )
        yield answer(endpoints, keys)
        if self.watches == 1:
            raise RuntimeError("plugin bug")
        await asyncio.Event().wait()


async def until(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


P = TypeVar("P", bound=FlakyDiscovery)


def run_plane(config: Path, plugin: P, body: Callable[[ControlPlane, P], Awaitable[None]]) -> None:
    """Run a control plane on ``config`` with ``plugin`` as its only plugin while ``body`` runs."""
    options = Options(
        config_dir=str(config),
        xds_address="127.0.0.1:0",
        admin_address=None,
        settings=Settings(refresh_interval=0.1),
        manifest_poll_interval=0.05,
    )
    plane = ControlPlane(options, Registry([plugin]))
    # After every publish, the cache keeps the EDS warming rule (SnapshotCache.consistent).
    broken: list[list[str]] = []
    publish = plane._publish

    def checked(delta: Delta) -> None:
        publish(delta)
        if plane.cache.consistent():
            broken.append(plane.cache.consistent())

    plane._publish = checked  # type: ignore[method-assign]

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(plane.run(stop))
        try:
            await body(plane, plugin)
        finally:
            stop.set()
            await running

    asyncio.run(main())
    assert broken == []


def port_of(plane: ControlPlane) -> int | None:
    assignment = plane.cache.resources(ENDPOINT_TYPE).get("web_default")
    if assignment is None or not assignment.endpoints:  # type: ignore[attr-defined]
        return None
    return int(assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value)  # type: ignore[attr-defined]


def test_a_crashing_discovery_watch_is_restarted(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(MANIFEST)

    async def body(plane: ControlPlane, plugin: FlakyDiscovery) -> None:
        await until("the cluster", lambda: "web_default" in plane.cache.resources(CLUSTER_TYPE))
        # The first watch answered (port 8001), then crashed; the restarted one answers 8002.
        await until("the restarted watch's endpoints", lambda: port_of(plane) == 8002)
        assert plugin.watches == 2

    run_plane(tmp_path, FlakyDiscovery(), body)


def test_manifest_directory_gone_keeps_the_last_good_upstreams(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "upstreams"
    config.mkdir()
    (config / "web.yaml").write_text(MANIFEST)

    async def body(plane: ControlPlane, plugin: FlakyDiscovery) -> None:
        await until("the cluster", lambda: "web_default" in plane.cache.resources(CLUSTER_TYPE))
        shutil.rmtree(config)
        await until(
            "a scan of the missing directory",
            lambda: any("cannot read the manifest directory" in r.getMessage() for r in caplog.records),
        )
        assert "web_default" in plane.cache.resources(CLUSTER_TYPE)
        config.mkdir()
        (config / "web.yaml").write_text(MANIFEST.replace("name: web,", "name: web2,"))
        await until(
            "the directory's new content", lambda: "web2_default" in plane.cache.resources(CLUSTER_TYPE)
        )
        assert "web_default" not in plane.cache.resources(CLUSTER_TYPE)

    run_plane(config, FlakyDiscovery(), body)


class GatedDiscovery(FlakyDiscovery):
    """Answers only once ``gate`` is set: a slow first poll (or a failing Compute API)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def watch_endpoints(
        self, write_namespace: str, upstreams: WatchedUpstreams, opts: WatchOpts
    ) -> AsyncGenerator[EndpointsUpdate, None]:
        await self.gate.wait()
        keys = frozenset(upstream_key(u) for u in upstreams.snapshot()[1])
        endpoints = tuple(
            Endpoint(upstreams=[ResourceRef(namespace=ns, name=n)], address="10.0.0.7", port=8080)
            for ns, n in sorted(keys)
        )
        yield answer(endpoints, keys)
        await asyncio.Event().wait()


def test_before_discovery_answers_envoy_gets_clusters_but_no_empty_assignment(tmp_path: Path) -> None:
    """What a restarted control plane tells a reconnecting Envoy: its clusters at once, and the
    assignments only when discovery has found them, never an empty one meanwhile."""
    (tmp_path / "web.yaml").write_text(MANIFEST)

    async def body(plane: ControlPlane, plugin: GatedDiscovery) -> None:
        await until("xDS to open", lambda: plane.xds.port != 0)
        # It opened with the manifests already translated: the first CDS answer has the cluster.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{plane.xds.port}") as channel:
            client = SotwClient(AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(), "e")
            await client.request(CLUSTER_TYPE)
            clusters = await client.recv()
            assert list(clusters_of(clusters)) == ["web_default"]
            await client.ack(clusters)
            await client.request(ENDPOINT_TYPE, ["web_default"])
            # The request is answered, but with no assignment (an empty one would wipe the hosts
            # of an Envoy that has them; a response without resources leaves them alone).
            answer = await client.recv()
            assert answer.type_url == ENDPOINT_TYPE and not assignments_of(answer)
            await client.ack(answer, ["web_default"])
            plugin.gate.set()
            # The first assignment this client ever gets is the discovered one.
            first = assignments_of(await client.recv())
            assert list(first) == ["web_default"]
            assert ports_of(first["web_default"]) == [8080]
            await channel.close()

    run_plane(tmp_path, GatedDiscovery(), body)


class ClosingPlugin(FlakyDiscovery):
    closed = False

    def close(self) -> None:
        self.closed = True


def test_shutdown_closes_the_plugins(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(MANIFEST)
    plugin = ClosingPlugin()

    async def body(plane: ControlPlane, plugin: ClosingPlugin) -> None:
        await until("xDS to open", lambda: plane.xds.port != 0)

    run_plane(tmp_path, plugin, body)
    assert plugin.closed
