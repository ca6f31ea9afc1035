"""``gce-plugin run`` as a process: metrics, health, manifest hot reload, graceful SIGTERM."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gce_plugin.localstack import LocalStack, http_get, wait_for

FIXTURE = Path(__file__).resolve().parents[2] / "examples" / "fixture.yaml"
WEB = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: web, namespace: default}
spec:
  upstreamSpec:
    gce: {instanceGroupName: web, instanceGroupRegion: us-central1-a, projectId: demo-project}
"""
API = WEB.replace("name: web,", "name: api,").replace(
    "instanceGroupName: web, instanceGroupRegion: us-central1-a",
    "instanceGroupName: api, instanceGroupRegion: us-central1",
)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    config = tmp_path / "upstreams"
    config.mkdir()
    (config / "web.yaml").write_text(WEB)
    running = LocalStack(FIXTURE, config, refresh=0.5, work_dir=tmp_path)
    try:
        running.start_emulator()
        running.start_control_plane()
        yield running
    finally:
        running.close()


def metrics(stack: LocalStack) -> str:
    status, body = http_get(f"http://127.0.0.1:{stack.metrics_port}/metrics")
    assert status == 200
    return body


def endpoints_gauge(stack: LocalStack, upstream: str) -> float | None:
    match = re.search(
        rf'gce_plugin_upstream_endpoints{{upstream="{re.escape(upstream)}"}} (\S+)', metrics(stack)
    )
    return float(match.group(1)) if match else None


def test_health_and_metrics(stack: LocalStack) -> None:
    assert http_get(f"http://127.0.0.1:{stack.metrics_port}/healthz") == (200, "ok\n")
    assert http_get(f"http://127.0.0.1:{stack.metrics_port}/readyz")[0] == 200
    wait_for("web endpoints gauge", lambda: endpoints_gauge(stack, "default.web") == 3.0)
    body = metrics(stack)
    for name in ("gce_plugin_discovery_polls_total", "gce_plugin_compute_api_calls_total"):
        assert name in body


def test_manifest_added_changed_deleted_without_restart(stack: LocalStack) -> None:
    config = stack.config_dir
    wait_for("web endpoints", lambda: endpoints_gauge(stack, "default.web") == 3.0)
    (config / "api.yaml").write_text(API)
    wait_for("api endpoints after adding a file", lambda: endpoints_gauge(stack, "default.api") == 2.0)
    (config / "web.yaml").write_text(
        WEB.replace("projectId: demo-project}", "projectId: demo-project, labelSelector: {env: prod}}")
    )
    wait_for("web endpoints after a change", lambda: endpoints_gauge(stack, "default.web") == 2.0)
    (config / "api.yaml").unlink()
    assert stack.control_plane is not None
    cp = stack.control_plane
    wait_for("the control plane to drop the deleted file", lambda: "manifest removed" in cp.log_text())


def test_statuses_report_accepted_and_rejected_upstreams(stack: LocalStack) -> None:
    no_project = API.replace(", projectId: demo-project}", "}")
    (stack.config_dir / "api.yaml").write_text(no_project)

    def statuses() -> dict[str, dict[str, str]] | None:
        status, body = http_get(f"http://127.0.0.1:{stack.metrics_port}/statuses")
        assert status == 200
        report: dict[str, dict[str, str]] = json.loads(body)
        return report if "default.api" in report else None

    report = wait_for("the api upstream's status", statuses)
    web = {k: v for k, v in report["default.web"].items() if k not in ("discovery", "endpoints")}
    assert web == {"state": "Accepted", "reportedBy": "gce-plugin"}
    assert report["default.api"]["state"] == "Rejected"
    assert "projectId" in report["default.api"]["reason"]
    # The rejected upstream is left out; the other one keeps being served and discovered. Polled: the
    # manifest change restarts the discovery watch, whose gauges are re-set by its first poll.
    wait_for("web endpoints gauge", lambda: endpoints_gauge(stack, "default.web") == 3.0)


def test_sigterm_is_a_graceful_shutdown(stack: LocalStack) -> None:
    assert stack.control_plane is not None
    cp = stack.control_plane
    assert cp.stop() == 0
    assert '"msg": "stopped"' in cp.log_text()
    stack.control_plane = None
    assert http_get(f"http://127.0.0.1:{stack.metrics_port}/healthz")[0] == 0
