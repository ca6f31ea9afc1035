"""gen/ is exactly what scripts/generate.sh makes from proto/ (run in a temporary copy of the repo)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _pinned(package: str) -> str | None:
    match = re.search(rf'"{re.escape(package)}==([^"]+)"', (REPO / "pyproject.toml").read_text())
    return match.group(1) if match else None


def _installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generate_sh_reproduces_committed_gen(tmp_path: Path) -> None:
    for package in ("grpcio-tools", "mypy-protobuf"):
        want, have = _pinned(package), _installed(package)
        if want is None or have != want:
            pytest.skip(f"{package}=={want} is pinned in pyproject.toml but {have or 'none'} is installed")
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "protoc-gen-mypy").exists() and shutil.which("protoc-gen-mypy") is None:
        pytest.skip("protoc-gen-mypy (mypy-protobuf) is not on PATH")

    work = tmp_path / "repo"
    work.mkdir()
    for name in ("proto", "scripts"):
        shutil.copytree(REPO / name, work / name)
    shutil.copy2(REPO / "pyproject.toml", work / "pyproject.toml")
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PYTHON": sys.executable, "PATH": path}
    result = subprocess.run(
        ["bash", "scripts/generate.sh"], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr

    generated, committed = _tree(work / "gen"), _tree(REPO / "gen")
    assert sorted(generated) == sorted(committed)
    differing = [name for name in committed if generated[name] != committed[name]]
    assert differing == [], f"gen/ is stale for {differing}: run `make generated-code` and commit gen/"
    assert any(name.endswith("gce_pb2.py") for name in generated)
