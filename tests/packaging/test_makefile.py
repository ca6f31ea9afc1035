"""`make setup` with a too-old Python: a clear message, and no half-made venv left behind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OLD_PYTHON = """#!/bin/sh
# Stands in for python3.10: reports its version and fails every version check.
if [ "$1" = "--version" ]; then echo "Python 3.10.12"; exit 0; fi
exit 1
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_too_old_python_is_named_and_leaves_no_venv(tmp_path: Path) -> None:
    python = tmp_path / "python3.10"
    python.write_text(OLD_PYTHON)
    python.chmod(0o755)
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "-s", "setup", f"PYTHON={python}", f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "needs Python 3.11 or newer" in done.stderr and "Python 3.10.12" in done.stderr
    assert "PYTHON=python3.11" in done.stderr
    assert not venv.exists()
