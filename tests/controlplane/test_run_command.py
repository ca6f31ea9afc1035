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
    # web discovered first: the edit below must leave its endpoints (and gauge) as they are.
    wait_for("web endpoints", lambda: endpoints_gauge(stack, "default.web") == 3.0)
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
    # The rejected upstream is left out; the other one keeps being served and discovered: the edit
    # touched neither its watch nor its gauge.
    assert endpoints_gauge(stack, "default.web") == 3.0


def test_sigterm_is_a_graceful_shutdown(stack: LocalStack) -> None:
    assert stack.control_plane is not None
    cp = stack.control_plane
    assert cp.stop() == 0, cp.log_text()[-3000:]
    assert '"msg": "stopped"' in cp.log_text()
    stack.control_plane = None
    assert http_get(f"http://127.0.0.1:{stack.metrics_port}/healthz")[0] == 0


STATIC = """\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: db, namespace: default}
spec:
  upstreamSpec:
    static: {hosts: [{addr: 127.0.0.1, port: 5432}]}
"""


def polls(stack: LocalStack) -> float:
    match = re.search(r'gce_plugin_discovery_polls_total{plugin="gce",result="ok"} (\S+)', metrics(stack))
    return float(match.group(1)) if match else 0.0


def test_editing_one_upstream_leaves_every_other_one_alone(tmp_path: Path) -> None:
    """An edit re-discovers the edited upstream only: the others keep their endpoints, their gauge
    and their poll schedule (no Compute call for their groups), and an edit that changes no gce
    upstream makes no call at all."""
    config = tmp_path / "upstreams"
    config.mkdir()
    (config / "web.yaml").write_text(WEB)
    (config / "api.yaml").write_text(API)
    # No scheduled poll during the test: every poll after the first is one an edit caused.
    stack = LocalStack(FIXTURE, config, refresh=600, work_dir=tmp_path)
    try:
        stack.start_emulator()
        stack.start_control_plane()
        wait_for("web endpoints", lambda: endpoints_gauge(stack, "default.web") == 3.0)
        wait_for("api endpoints", lambda: endpoints_gauge(stack, "default.api") == 2.0)
        before = stack.emulator_admin("GET", "stats")["counts"]
        polls_before = polls(stack)

        (config / "db.yaml").write_text(STATIC)  # another plugin's upstream
        (config / "api.yaml").write_text(
            API.replace("projectId: demo-project}", "projectId: demo-project, labelSelector: {env: canary}}")
        )

        def api_rediscovered() -> bool:
            # Sampled all along: the other upstream's gauge never blanks.
            assert endpoints_gauge(stack, "default.web") == 3.0
            return endpoints_gauge(stack, "default.api") == 0.0

        wait_for("api rediscovered alone", api_rediscovered)
        after = stack.emulator_admin("GET", "stats")["counts"]
        for method in ("instanceGroups.get", "instanceGroups.listInstances"):  # web's group only
            assert after.get(method, 0) == before.get(method, 0), method
        assert after["regionInstanceGroups.listInstances"] == before["regionInstanceGroups.listInstances"] + 1
        assert polls(stack) == polls_before + 1
        assert endpoints_gauge(stack, "default.web") == 3.0
    finally:
        stack.close()


def test_statuses_show_a_duplicate_upstream_naming_both_files(stack: LocalStack) -> None:
    """web.yaml defines web; z-more.yaml defines web again and api: web.yaml's web and z-more.yaml's
    api are served, and the duplicate shows in web's status, naming both files."""
    wait_for("web endpoints", lambda: endpoints_gauge(stack, "default.web") == 3.0)
    more = stack.config_dir / "z-more.yaml"
    more.write_text(WEB.replace("instanceGroupName: web,", "instanceGroupName: api,") + "---\n" + API)

    def statuses() -> dict[str, dict[str, object]] | None:
        status, body = http_get(f"http://127.0.0.1:{stack.metrics_port}/statuses")
        assert status == 200
        report: dict[str, dict[str, object]] = json.loads(body)
        return report if "default.api" in report else None

    report = wait_for("the api upstream's status", statuses)
    api = {k: v for k, v in report["default.api"].items() if k not in ("discovery", "endpoints")}
    assert api == {"state": "Accepted", "reportedBy": "gce-plugin"}
    web = report["default.web"]
    assert web["state"] == "Accepted"
    [(name, duplicate)] = web["subresourceStatuses"].items()  # type: ignore[attr-defined]
    assert name == f"file:{more}"
    assert duplicate["state"] == "Rejected"
    assert str(more) in duplicate["reason"] and str(stack.config_dir / "web.yaml") in duplicate["reason"]
    assert endpoints_gauge(stack, "default.web") == 3.0  # still web.yaml's group
