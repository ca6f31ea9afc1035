"""deploy/prometheus/gce-plugin-alerts.yaml, run by ``promtool test rules`` against the series a real
control plane's /metrics produces: one upstream whose group does not exist, a rejected manifest, a
NACK from an xDS client that then disconnects. Each alert must fire for exactly what is broken."""

from __future__ import annotations

import queue
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from google.rpc.status_pb2 import Status
from prometheus_client.parser import text_string_to_metric_families

from gce_plugin.localstack import LocalStack, http_get, wait_for
from gce_plugin.xds import CLUSTER_TYPE
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "gce-plugin-alerts.yaml"
FIXTURE = ROOT / "examples" / "fixture.yaml"
WEB = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: web, namespace: default}
spec:
  upstreamSpec:
    gce: {instanceGroupName: web, instanceGroupRegion: us-central1-a, projectId: demo-project}
"""
GHOST = WEB.replace("name: web,", "name: ghost,").replace("instanceGroupName: web", "instanceGroupName: nope")
TARGET = {"job": "gce-plugin", "instance": "cp-1"}
MINUTES = 40


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    config = tmp_path / "upstreams"
    config.mkdir()
    (config / "web.yaml").write_text(WEB)
    (config / "ghost.yaml").write_text(GHOST)
    running = LocalStack(FIXTURE, config, refresh=0.3, work_dir=tmp_path)
    try:
        running.start_emulator()
        running.start_control_plane()
        yield running
    finally:
        running.close()


def admin(stack: LocalStack) -> str:
    return f"http://127.0.0.1:{stack.metrics_port}"


def scrape(stack: LocalStack) -> str:
    status, body = http_get(f"{admin(stack)}/metrics")
    assert status == 200
    return body


def value(stack: LocalStack, pattern: str) -> float | None:
    match = re.search(rf"^{pattern} (\S+)$", scrape(stack), re.MULTILINE)
    return float(match.group(1)) if match else None


def nack_once(stack: LocalStack) -> None:
    """An ADS client that NACKs the clusters it gets, then disconnects."""
    requests: queue.Queue[DiscoveryRequest | None] = queue.Queue()
    with grpc.insecure_channel(f"127.0.0.1:{stack.xds_port}") as channel:
        responses = AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
            iter(requests.get, None)
        )
        first = DiscoveryRequest(type_url=CLUSTER_TYPE)
        first.node.id = "edge-9"
        requests.put(first)
        response = next(responses)
        requests.put(
            DiscoveryRequest(
                type_url=CLUSTER_TYPE,
                response_nonce=response.nonce,
                error_detail=Status(code=3, message="cluster web_default: bad config"),
            )
        )
        wait_for(
            "the NACK to be counted", lambda: (value(stack, r"gce_plugin_xds_nacks_total\{.*\}") or 0) >= 1
        )
        requests.put(None)
        for _ in responses:
            pass


def series(metrics_text: str) -> list[dict[str, str]]:
    """promtool input series: every gce_plugin sample as scraped, as it would look over MINUTES."""
    out = []
    failing = {
        s.labels["upstream"]
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name == "gce_plugin_upstream_discovery_failing" and s.value == 1
    }
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if not sample.name.startswith("gce_plugin_") or sample.name.endswith("_created"):
                continue
            labels = {**sample.labels, **TARGET, "__name__": sample.name}
            selector = "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
            v = sample.value
            if family.type == "counter":
                values = f"0 {v}x{MINUTES}"  # the process started at 0 and is at v since
            elif (
                sample.name == "gce_plugin_upstream_discovery_age_seconds"
                and sample.labels["upstream"] in failing
            ):
                values = f"{v}+60x{MINUTES}"  # a failing upstream's age grows with time
            else:
                values = f"{v}x{MINUTES}"
            out.append({"series": selector, "values": values})
    return out


def _descriptions() -> dict[str, str]:
    """Each rule's description (static text): the tests check the templated summaries."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r["annotations"]["description"] for g in groups for r in g["rules"]}


def expect(at: str, name: str, severity: str = "", summary: str = "", **labels: str) -> dict[str, Any]:
    """An alert_rule_test case: ``name`` firing at ``at`` with these labels, or none if no summary."""
    alerts = []
    if summary:
        annotations = {"summary": summary, "description": _descriptions()[name]}
        alerts.append(
            {"exp_labels": {"severity": severity, **TARGET, **labels}, "exp_annotations": annotations}
        )
    return {"eval_time": at, "alertname": name, "exp_alerts": alerts}


def test_alert_rules_fire_for_what_is_broken(stack: LocalStack, tmp_path: Path) -> None:
    promtool = require_tool("promtool", package="prometheus")
    (stack.config_dir / "broken.yaml").write_text(
        WEB.replace("name: web,", "name: broken,").replace("gce:", "gce: 7, x:")
    )
    wait_for(
        "the ghost to fail",
        lambda: value(stack, r'gce_plugin_upstream_discovery_failing\{upstream="default.ghost"\}') == 1,
    )
    wait_for(
        "web to be discovered",
        lambda: value(stack, r'gce_plugin_upstream_discovery_failing\{upstream="default.web"\}') == 0,
    )
    wait_for("the rejected manifest", lambda: "degraded: manifest" in http_get(f"{admin(stack)}/readyz")[1])
    assert value(stack, "gce_plugin_config_last_reload_successful") == 0
    nack_once(stack)
    wait_for(
        "no connected client", lambda: value(stack, r'gce_plugin_xds_connected_clients\{service="ads"\}') == 0
    )
    body = scrape(stack)
    ghost = {"upstream": "default.ghost"}
    cases = [
        expect(
            "15m", "GcePluginDiscoveryFailing", "warning",
            "discovery of upstream default.ghost is failing", **ghost,
        ),
        expect("4m", "GcePluginDiscoveryFailing"),  # not yet: `for: 5m`
        expect(
            "20m", "GcePluginDiscoveryStale", "critical",
            "upstream default.ghost has not been discovered for over 10 minutes", **ghost,
        ),
        expect("30m", "GcePluginConfigReloadFailing", "warning", "a manifest of cp-1 is rejected"),
        expect(
            "5m", "GcePluginXdsNacks", "warning",
            f"Envoy rejected {CLUSTER_TYPE} updates", type_url=CLUSTER_TYPE,
        ),
        expect("30m", "GcePluginXdsNacks"),  # the NACK is older than the 10 min window
        expect("15m", "GcePluginNoEnvoyConnected", "warning", "no Envoy is connected to cp-1"),
    ]  # fmt: skip
    inputs = series(body)
    # The stale alert's input: the ghost (never discovered) ages with time; web does not.
    ages = {s["series"]: s["values"] for s in inputs if "discovery_age_seconds" in s["series"]}
    assert next(v for k, v in ages.items() if "default.ghost" in k).endswith(f"+60x{MINUTES}")
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": inputs, "alert_rule_test": cases}],
    }
    test_file = tmp_path / "alerts-test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
