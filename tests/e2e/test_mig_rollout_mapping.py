"""The managed-group pieces together before the control plane wires them (phase 2 of the managed
instance groups issue): the emulator's MIG with --serve-backends, a discovery loop that polls
``listManagedInstances`` + ``instances.list`` through the real googleapiclient and maps each VM with
``endpoint_health``, the xDS server, and a real Envoy with ``gce-plugin bootstrap``'s routes.

While requests flow without pause, the group is rolling-replaced and a VM is autohealed: with the
mapping, no request fails and Envoy's /clusters shows the draining and unhealthy hosts as such; with
the mapping off (RUNNING-only), the 503s of draining VMs reach the client.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from gce_plugin.commands import bootstrap
from gce_plugin.emulator import Emulator, Fixture, NamedPort, Project
from gce_plugin.emulator.fixture import InstanceGroupManager, Timings
from gce_plugin.localstack import free_port
from gce_plugin.plugins.gce.health import ManagedState, endpoint_health
from gce_plugin.xds import ENDPOINT_TYPE
from tests.emulator.emulator_testkit import compute_client
from tests.emulator.mig_testkit import MigDriver
from tests.xds.test_xds_envoy import envoy, eventually, http_get
from tests.xds.xds_testkit import Env, run_with_server

P, ZONE = "demo-project", "us-central1-a"
POLL = 0.25  # the discovery loop's refresh
# grace >> POLL + push (room for a loaded machine): the group records DELETING (and the health check
# UNHEALTHY) before the VM's app starts answering 503, long enough for a poll to tell Envoy.
TIMINGS = Timings(creating=0.3, verifying=0.8, deleting=3.0, autoheal=1.0, grace=2.0)


def fixture(port: int) -> Fixture:
    shop = InstanceGroupManager(
        "shop",
        zone=ZONE,
        target_size=4,
        named_ports=[NamedPort("http", port)],
        health_check="shop-hc",
        max_surge=1,
        max_unavailable=0,
        network_ip_range="127.9.0.0/24",
        timings=TIMINGS,
    )
    return Fixture([Project(P, instance_group_managers=[shop])])


def discover(compute: Any, port: int, honour_health: bool) -> ClusterLoadAssignment:
    """One poll: the managed instances, their addresses joined by URL, the mapping."""
    managed = (
        compute.instanceGroupManagers()
        .listManagedInstances(project=P, zone=ZONE, instanceGroupManager="shop")
        .execute()
    )
    vms = compute.instances().list(project=P, zone=ZONE).execute().get("items", [])
    addresses = {vm["selfLink"]: vm["networkInterfaces"][0]["networkIP"] for vm in vms}
    cla = ClusterLoadAssignment(cluster_name="web")
    locality = cla.endpoints.add()
    for item in managed.get("managedInstances", []):
        health = endpoint_health(ManagedState.from_api(item), honour_health=honour_health)
        if not health.is_endpoint or item["instance"] not in addresses:
            continue
        lb = locality.lb_endpoints.add()
        lb.endpoint.address.socket_address.address = addresses[item["instance"]]
        lb.endpoint.address.socket_address.port_value = port
        lb.health_status = health_check_pb2.HealthStatus.Value(health.value)
    return cla


@dataclass
class Traffic:
    statuses: dict[str, int] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return self.total - self.statuses.get("200", 0)


@contextmanager
def traffic(url: str, admin: str) -> Iterator[Traffic]:
    """Requests through Envoy without pause, and Envoy's host health flags, until the block ends."""
    seen = Traffic()
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            answer = http_get(url)
            key = "200" if answer.startswith("hello from") else answer.split(" ")[0] + " " + answer[5:8]
            seen.statuses[key] = seen.statuses.get(key, 0) + 1

    def watch() -> None:
        while not stop.wait(0.05):
            seen.flags.update(re.findall(r"^web::[\d.:]+::health_flags::(\S+)$", http_get(admin), re.M))

    threads = [threading.Thread(target=send, daemon=True), threading.Thread(target=watch, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)


def rollout(tmp_path: Path, honour_health: bool, autoheal: bool) -> Traffic:
    port = free_port("127.9.0.1")
    with Emulator(fixture(port), serve_backends=True) as emulator:
        compute = compute_client(emulator.url)
        mig = MigDriver(emulator.url, P, "shop", zone=ZONE)
        result: list[Traffic] = []

        async def body(env: Env) -> None:
            env.set_clusters("web")
            env.cache.set_resources(ENDPOINT_TYPE, {"web": discover(compute, port, honour_health)})
            stop = asyncio.Event()

            async def poll() -> None:
                while not stop.is_set():
                    cla = await asyncio.to_thread(discover, compute, port, honour_health)
                    env.cache.update_resources(ENDPOINT_TYPE, {"web": cla})
                    await asyncio.sleep(POLL)

            poller = asyncio.create_task(poll())
            listen, admin = free_port(), free_port()
            addresses = {"listen": f"127.0.0.1:{listen}", "admin": f"127.0.0.1:{admin}"}
            config = bootstrap.build(f"127.0.0.1:{env.port}", [("/", "web")], **addresses)
            path = tmp_path / f"envoy-{honour_health}.json"
            path.write_text(json.dumps(config))
            url = f"http://127.0.0.1:{listen}/"
            try:
                with envoy(path, tmp_path / f"envoy-{honour_health}.log"):
                    await eventually(lambda: http_get(url).startswith("hello from"), 20, "traffic")
                    with traffic(url, f"http://127.0.0.1:{admin}/clusters") as seen:
                        await asyncio.to_thread(mig.rolling_replace)
                        await asyncio.to_thread(mig.wait_settled, 30, 4)
                        if autoheal:
                            await asyncio.to_thread(mig.autoheal)
                            await asyncio.sleep(TIMINGS.autoheal)
                            await asyncio.to_thread(mig.wait_settled, 30, 4)
                    result.append(seen)
            finally:
                stop.set()
                await poller

        run_with_server(body, timeout=120)
        return result[0]


def test_with_the_mapping_a_rollout_and_an_autoheal_fail_no_request(tmp_path: Path) -> None:
    seen = rollout(tmp_path, honour_health=True, autoheal=True)
    assert seen.total >= 300, seen.statuses
    assert seen.failed == 0, seen.statuses
    assert any("/eds_status_draining" in f for f in seen.flags), seen.flags
    assert any("/failed_eds_health" in f for f in seen.flags), seen.flags


def test_with_the_mapping_off_the_draining_vms_503s_reach_the_client(tmp_path: Path) -> None:
    seen = rollout(tmp_path, honour_health=False, autoheal=False)
    assert seen.statuses.get("HTTP 503", 0) > 0, seen.statuses
    assert seen.flags == {"healthy"}, seen.flags
