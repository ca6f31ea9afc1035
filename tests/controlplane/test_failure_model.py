"""Small failure-model findings: metric series of deleted upstreams, credentials in URLs and in the
emulator's stats, and the emulator bound beyond loopback."""

from __future__ import annotations

import io
import json
import logging
import urllib.request
from pathlib import Path

import pytest

from gce_plugin import logs, metrics
from gce_plugin.controlplane import ControlPlane, Options
from gce_plugin.emulator import Emulator, Fixture
from gce_plugin.plugins.gce.credentials import load_credentials
from gce_plugin.plugins.registry import Registry
from gce_plugin.translation.translator import Translator
from gce_plugin.xds import CLUSTER_TYPE
from tests.controlplane.test_controlplane import MANIFEST, FlakyDiscovery, run_plane, until
from tests.manifests.test_manifests_limits import BILLION_LAUGHS
from tests.translation.translation_fakes import FakeEdsPlugin, gce_upstream

EXAMPLE_FIXTURE = Path(__file__).resolve().parents[2] / "examples" / "fixture.yaml"


def series(name: str) -> set[str]:
    return {
        sample.labels["upstream"]
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
        if sample.name == name
    }


def test_metric_series_of_deleted_upstreams_are_removed(tmp_path: Path) -> None:
    plane = ControlPlane(Options(config_dir=str(tmp_path)), Registry([FakeEdsPlugin()]))
    upstreams = [gce_upstream(f"u{i}", namespace="fm") for i in range(50)]
    plane.apply_upstreams(upstreams)
    for upstream in upstreams:
        label = f"fm.{upstream.metadata.name}"
        metrics.UPSTREAM_ENDPOINTS.labels(upstream=label).set(3)
        metrics.UPSTREAM_DISCOVERY_ERRORS.labels(upstream=label).inc()
    plane.apply_upstreams(upstreams[:2])
    kept = {"fm.u0", "fm.u1"}
    assert {s for s in series("gce_plugin_upstream_endpoints") if s.startswith("fm.")} == kept
    assert {s for s in series("gce_plugin_upstream_discovery_errors_total") if s.startswith("fm.")} == kept
    plane.registry.close()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_userinfo_in_urls_never_reaches_a_log_line(fmt: str) -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.setup("info", fmt, out)
        endpoint = "http://admin:hunter2@127.0.0.1:8085/"
        loaded = load_credentials(compute_endpoint=endpoint)
        logging.getLogger("gce_plugin.test").info(
            "using %s via %s", loaded.source, endpoint, extra={"endpoint": endpoint}
        )
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert "hunter2" not in out.getvalue() and "admin:" not in out.getvalue()
    assert "http://***@127.0.0.1:8085/" in out.getvalue()
    assert "hunter2" not in loaded.source


def test_the_emulator_stats_never_show_bearer_tokens() -> None:
    with Emulator(Fixture.load(EXAMPLE_FIXTURE)) as emulator:
        request = urllib.request.Request(
            f"{emulator.compute_url}projects/demo-project/zones",
            headers={"Authorization": "Bearer ya29.a-real-looking-token"},
        )
        with urllib.request.urlopen(request, timeout=5):
            pass
        with urllib.request.urlopen(f"{emulator.url}admin/stats", timeout=5) as response:
            body = response.read().decode()
    assert "a-real-looking-token" not in body
    assert json.loads(body)["last_authorization"].startswith("Bearer sha256:")


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_the_emulator_warns_when_bound_beyond_loopback(
    host: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gce_plugin.emulator")
    with Emulator(Fixture.load(EXAMPLE_FIXTURE), host=host):
        pass
    assert ("beyond loopback" in caplog.text) == warned


def test_an_alias_bomb_present_at_start_up_does_not_stop_the_control_plane(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(MANIFEST)
    (tmp_path / "bomb.yaml").write_text(BILLION_LAUGHS)

    async def body(plane: ControlPlane, plugin: FlakyDiscovery) -> None:
        await until("xDS serving", plane.ready, timeout=5)
        assert "web_default" in plane.cache.resources(CLUSTER_TYPE)
        assert "YAML aliases" in plane.manifests.errors[tmp_path / "bomb.yaml"]

    run_plane(tmp_path, FlakyDiscovery(), body)


def test_a_huge_value_in_a_rejected_upstream_is_clipped_in_its_status() -> None:
    upstream = gce_upstream("web", namespace="fm")
    upstream.upstream_spec.ssl_config.ssl_files.root_ca = "/x" * 100_000
    status = Translator([FakeEdsPlugin()]).translate([upstream]).statuses[("fm", "web")]
    assert "Envoy would open" in status.reason and len(status.reason) < 1100


def test_userinfo_in_the_compute_endpoint_is_never_used_as_a_host() -> None:
    from gce_plugin.plugins.gce.compute import api_root

    assert api_root("http://admin:hunter2@127.0.0.1:8085/") == "http://127.0.0.1:8085/compute/v1/"
    assert api_root("https://u:p@compute.example.com/compute/v1") == "https://compute.example.com/compute/v1/"
