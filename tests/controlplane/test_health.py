"""Honest health: discovery failures and rejected manifests show in /statuses, /readyz's body and
metrics, while /readyz stays ready (the last good config is still served)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gce_plugin.health import EVERYTHING, ConfigHealth, DiscoveryHealth
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
GHOST = WEB.replace("name: web,", "name: ghost,").replace("instanceGroupName: web", "instanceGroupName: nope")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_discovery_health_tracks_success_error_and_age() -> None:
    clock = Clock()
    health = DiscoveryHealth(clock)
    web, api = ("default", "web"), ("default", "api")
    health.record_success(web)
    health.record_error(api, "instanceGroups.listInstances: HTTP 404")
    clock.now += 5
    health.record_error(api, "still 404")
    ages = health.ages()
    assert ages["default.web"] == (5.0, False)
    assert ages["default.api"] == (5.0, True)
    snapshot = health.snapshot()
    assert snapshot[api].error == "still 404" and snapshot[api].error_since == 1000.0
    assert health.degraded() == ["discovery of default.api failing: still 404"]
    health.record_success(api)
    assert health.degraded() == [] and health.ages()["default.api"] == (0.0, False)
    health.retain([web])
    assert set(health.ages()) == {"default.web"}


def test_a_failure_of_discovery_as_a_whole_is_reported_until_any_success() -> None:
    health = DiscoveryHealth(Clock())
    health.record_error(EVERYTHING, "gce: no credentials")
    assert health.degraded() == ["discovery of * failing: gce: no credentials"]
    assert health.ages()["*"] == (0.0, True)
    health.record_success(("default", "web"))
    assert health.degraded() == [] and "*" not in health.ages()


def test_config_health() -> None:
    clock = Clock()
    config = ConfigHealth(clock)
    assert config.record({}) and config.last_success == 1000.0
    clock.now += 1
    assert not config.record({"/m/web.yaml": "bad"})
    assert config.last_success == 1000.0
    assert config.degraded() == ["manifest /m/web.yaml rejected (last good version kept)"]


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


def sample(stack: LocalStack, name: str, labels: str = "") -> float | None:
    _, body = http_get(f"http://127.0.0.1:{stack.metrics_port}/metrics")
    match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_a_missing_group_is_reported_everywhere_while_staying_ready(stack: LocalStack) -> None:
    base = f"http://127.0.0.1:{stack.metrics_port}"

    def statuses() -> dict[str, dict[str, dict[str, str]]] | None:
        report = json.loads(http_get(f"{base}/statuses")[1])
        ok = report.get("default.ghost", {}).get("discovery", {}).get("error")
        web = report.get("default.web", {})
        # web's success is recorded as its answer is handed on; its endpoints count once published.
        return report if ok and web.get("discovery", {}).get("lastSuccess") and "endpoints" in web else None

    report = wait_for("discovery health in /statuses", statuses, timeout=20)
    assert "nope" in report["default.ghost"]["discovery"]["error"]
    assert report["default.web"]["discovery"]["error"] is None
    assert report["default.web"]["endpoints"]["total"] == 3
    status, body = http_get(f"{base}/readyz")
    assert status == 200
    assert body.startswith("ready\n") and "degraded: discovery of default.ghost failing" in body
    assert sample(stack, "gce_plugin_upstream_discovery_failing", '{upstream="default.ghost"}') == 1.0
    assert sample(stack, "gce_plugin_upstream_discovery_failing", '{upstream="default.web"}') == 0.0
    # The age of a failing upstream grows; a healthy one's stays within a few refreshes.
    first = sample(stack, "gce_plugin_upstream_discovery_age_seconds", '{upstream="default.ghost"}')
    assert first is not None
    wait_for(
        "the ghost's age to grow",
        lambda: (
            (sample(stack, "gce_plugin_upstream_discovery_age_seconds", '{upstream="default.ghost"}') or 0)
            > first + 0.5
        ),
        timeout=10,
    )
    web_age = sample(stack, "gce_plugin_upstream_discovery_age_seconds", '{upstream="default.web"}')
    assert web_age is not None and web_age < 5


def test_a_rejected_manifest_turns_the_reload_gauge_to_0_and_back(stack: LocalStack) -> None:
    wait_for("a clean load", lambda: sample(stack, "gce_plugin_config_last_reload_successful") == 1.0)
    clean_at = sample(stack, "gce_plugin_config_last_reload_success_timestamp_seconds")
    assert clean_at is not None and clean_at > 1e9
    (stack.config_dir / "web.yaml").write_text(WEB.replace("projectId", "projectIdd"))
    wait_for(
        "the reload gauge to drop", lambda: sample(stack, "gce_plugin_config_last_reload_successful") == 0.0
    )
    assert sample(stack, "gce_plugin_config_last_reload_success_timestamp_seconds") == clean_at
    _, body = http_get(f"http://127.0.0.1:{stack.metrics_port}/readyz")
    assert "degraded: manifest" in body and "web.yaml" in body
    (stack.config_dir / "web.yaml").write_text(WEB)
    wait_for(
        "the reload gauge to recover",
        lambda: sample(stack, "gce_plugin_config_last_reload_successful") == 1.0,
    )
    recovered = sample(stack, "gce_plugin_config_last_reload_success_timestamp_seconds")
    assert recovered is not None and recovered >= clean_at
