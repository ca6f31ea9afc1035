"""docs/adding-an-upstream-type.md works as written: every marked step, applied in order to a scratch
copy of the repository, gives a tree that generates its code and passes the tests the page runs.

A step is a fenced code block right after a ``<!-- doc-test: DIRECTIVE -->`` comment:

- ``create PATH``: a new file with the block as content
- ``append PATH``: the block added at the end of an existing file
- ``insert PATH after|before "ANCHOR"``: the block inserted next to the one line containing ANCHOR
- ``replace PATH line "ANCHOR"``: the one line containing ANCHOR replaced by the block
- ``run``: each line of the block run with bash at the copy's root (``make`` uses this venv)

The real repository is never written to.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "adding-an-upstream-type.md"
STEP = re.compile(
    r"^<!-- doc-test: (?P<directive>[^\n]*?) -->\n```[\w-]*\n(?P<body>.*?)^```", re.DOTALL | re.MULTILINE
)
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "*.egg-info"
)


@dataclass(frozen=True)
class Step:
    op: str
    path: str = ""
    where: str = ""
    anchor: str = ""
    body: str = ""


def parse_steps(text: str) -> list[Step]:
    steps = []
    for match in STEP.finditer(text):
        words = shlex.split(match["directive"])
        op, body = words[0], match["body"]
        if op == "run" and len(words) == 1:
            steps.append(Step("run", body=body))
        elif op in ("create", "append") and len(words) == 2:
            steps.append(Step(op, words[1], body=body))
        elif op in ("insert", "replace") and len(words) == 4 and words[2] in ("after", "before", "line"):
            steps.append(Step(op, words[1], words[2], words[3], body))
        else:
            raise ValueError(f"bad doc-test directive: {match['directive']!r}")
    return steps


def apply(step: Step, root: Path, env: dict[str, str]) -> None:
    if step.op == "run":
        for command in step.body.splitlines():
            if command.strip() and not command.lstrip().startswith("#"):
                run(command, root, env)
        return
    target = (root / step.path).resolve()
    assert target.is_relative_to(root.resolve()), step.path
    if step.op == "create":
        assert not target.exists(), f"{step.path} already exists"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(step.body)
        return
    assert target.is_file(), f"{step.path} does not exist: the page is out of date"
    text = target.read_text()
    if step.op == "append":
        target.write_text(text + step.body)
        return
    lines = text.splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if step.anchor in line]
    where = f"{step.anchor!r} is on {len(found)} lines of {step.path}"
    assert len(found) == 1, f"{where}, not 1: the page is out of date"
    at = found[0]
    if step.where == "after":
        lines.insert(at + 1, step.body)
    elif step.where == "before":
        lines.insert(at, step.body)
    else:
        lines[at] = step.body
    target.write_text("".join(lines))


def undo(step: Step, root: Path) -> None:
    """Take a step's change out of ``root`` if it is there: a tree where the page was followed already
    (the user's new type) is replayed from the state the page starts from. A no-op otherwise."""
    if step.op == "run":
        return
    target = root / step.path
    if step.op == "create":
        target.unlink(missing_ok=True)
        return
    if not target.is_file() or step.body not in target.read_text():
        return
    # A replaced line goes back to its anchor, which is all the step looks for.
    back = step.anchor + "\n" if step.op == "replace" else ""
    target.write_text(target.read_text().replace(step.body, back, 1))


def run(command: str, root: Path, env: dict[str, str]) -> None:
    if command.startswith("make "):
        # The page's `make X` with this interpreter's virtualenv, never (re)installing it.
        venv = Path(sys.prefix)
        command = f"make -o {venv}/.installed VENV={venv} {command.removeprefix('make ')}"
    done = subprocess.run(
        ["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"`{command}` failed:\n{done.stdout}\n{done.stderr}"


def _pinned(package: str) -> str | None:
    match = re.search(rf'"{re.escape(package)}==([^"]+)"', (REPO / "pyproject.toml").read_text())
    return match.group(1) if match else None


def test_page_has_every_step() -> None:
    steps = parse_steps(DOC.read_text())
    assert [s.op for s in steps].count("run") == 2
    created = {s.path for s in steps if s.op == "create"}
    assert created == {
        "proto/github.com/solo-io/gloo/projects/gloo/api/v1/plugins/dns/dns.proto",
        "gce_plugin/plugins/dns/__init__.py",
        "gce_plugin/plugins/dns/plugin.py",
        "tests/plugins/dns/test_dns_plugin.py",
    }
    edited = {s.path for s in steps if s.op in ("append", "insert", "replace")}
    assert edited == {
        "proto/github.com/solo-io/gloo/projects/gloo/api/v1/plugins.proto",
        "gce_plugin/api.py",
        "gce_plugin/builtin.py",
        "tests/schema/gloo_facts.py",
        "tests/schema/samples.py",
    }
    # Every fenced block that looks like a step is one (a typo in a marker would silently skip it).
    markers = [line for line in DOC.read_text().splitlines() if line.startswith("<!-- doc-test:")]
    assert len(markers) == len(steps)


def test_following_the_page_in_a_scratch_copy(tmp_path: Path) -> None:
    for package in ("grpcio-tools", "mypy-protobuf"):
        want = _pinned(package)
        try:
            have = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have != want:
            pytest.skip(f"{package}=={want} is pinned in pyproject.toml but {have or 'none'} is installed")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")

    steps = parse_steps(DOC.read_text())
    touched = {REPO / s.path: _content(REPO / s.path) for s in steps if s.path}
    first = replay(REPO, tmp_path / "first", steps)
    # The page's last step, on the tree it leaves (the user's, with the new type in it): this very
    # replay works there too.
    root = replay(first, tmp_path / "second", steps)
    # The real repository is never written to.
    assert {path: _content(path) for path in touched} == touched
    assert (
        root / "gen/gce_plugin_gen/github/com/solo_io/gloo/projects/gloo/api/v1/plugins/dns/dns_pb2.py"
    ).is_file()


def _content(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def replay(source: Path, work: Path, steps: list[Step]) -> Path:
    """Every step of the page, applied to a copy of ``source`` (from the state the page starts from)."""
    root = work / "repo"
    shutil.copytree(source, root, ignore=NOT_COPIED, symlinks=True)
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        # The copy's packages, not the repository's (the editable install points there).
        "PYTHONPATH": f"{root}{os.pathsep}{root / 'gen'}",
    }
    for step in reversed(steps):
        undo(step, root)
    for step in steps:
        apply(step, root, env)
    return root
