"""``gce-plugin discover`` as a user runs it: a subprocess against an emulator subprocess."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CLI = [sys.executable, "-m", "gce_plugin.cli"]
CREDENTIAL_VARS = ("GOOGLE_CREDENTIALS_JSON", "GOOGLE_APPLICATION_CREDENTIALS", "GCE_PLUGIN_COMPUTE_ENDPOINT")


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The test's environment without any credentials (and an empty gcloud config)."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    env["CLOUDSDK_CONFIG"] = str(tmp_path / "gcloud")
    env["NO_GCE_CHECK"] = "True"
    return env


class Lines:
    """A process's stdout lines, read by a thread, so a test can wait for them with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.proc = proc
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.queue.put(line)
        self.queue.put("")  # EOF

    def until(self, done: Callable[[str], bool], timeout: float = 15.0) -> list[str]:
        """Lines until ``done(line)`` is true; fails after ``timeout`` seconds or at EOF."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no complete output within {timeout}s; got {lines!r}")
            if not line:
                pytest.fail(f"process exited ({self.proc.poll()}); got {lines!r}")
            lines.append(line)
            if done(line):
                return lines


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [*CLI, "emulator", "--fixture", str(EXAMPLES / "fixture.yaml"), "--address", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(tmp_path),
    )
    try:
        line = Lines(proc).until(lambda line: "emulator listening on" in line)[-1]
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    directory = tmp_path / "upstreams"
    shutil.copytree(EXAMPLES / "upstreams", directory)
    return directory


def discover(config: Path, url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "discover", "--config", str(config), "--compute-endpoint", url, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(tmp_path),
    )


def test_once_prints_the_endpoints_as_sorted_protobuf_json(
    config: Path, emulator_url: str, tmp_path: Path
) -> None:
    done = discover(config, emulator_url, tmp_path, "--once", "-o", "json")
    assert done.returncode == 0, done.stderr
    endpoints = json.loads(done.stdout)
    names = [e["metadata"]["name"] for e in endpoints]
    assert names == sorted(names)
    got = {
        (e["upstreams"][0]["name"], e["metadata"]["annotations"]["gce.solo.io/instance-name"], e["port"])
        for e in endpoints
    }
    assert got == {
        ("web", "web-1", 8080),
        ("web", "web-2", 8080),
        ("web", "web-3", 8080),  # web-4 is STOPPED
        ("api", "api-1", 8081),
        ("api", "api-2", 8081),
    }
    web1 = next(e for e in endpoints if e["metadata"]["annotations"]["gce.solo.io/instance-name"] == "web-1")
    assert web1["address"] == "127.0.0.11"
    assert web1["metadata"]["labels"] == {"app": "web", "env": "prod"}
    assert web1["metadata"]["namespace"] == "gloo-system"


def test_table_output(config: Path, emulator_url: str, tmp_path: Path) -> None:
    done = discover(config, emulator_url, tmp_path, "--once", "-o", "table")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["UPSTREAM", "ENDPOINT", "ADDRESS", "PORT", "ZONE", "INSTANCE"]
    assert len(lines) == 6
    assert any(
        line.split()[0] == "default.api"
        and line.split()[2:] == ["127.0.0.22", "8081", "us-central1-b", "api-2"]
        for line in lines
    )


def test_a_failing_upstream_exits_1_and_the_others_are_still_printed(
    config: Path, emulator_url: str, tmp_path: Path
) -> None:
    (config / "ghost.yaml").write_text(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: ghost, namespace: default}\n"
        "spec: {upstreamSpec: {gce: {instanceGroupName: ghost, instanceGroupRegion: us-central1,\n"
        "  projectId: demo-project}}}\n"
    )
    done = discover(config, emulator_url, tmp_path, "--once")
    assert done.returncode == 1
    assert (
        "error: default.ghost: instance group ghost not found in project demo-project region us-central1"
        in done.stderr
    )
    assert len(json.loads(done.stdout)) == 5


def test_a_bad_manifest_exits_1_and_names_the_file(config: Path, emulator_url: str, tmp_path: Path) -> None:
    (config / "broken.yaml").write_text(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: x}\n"
        "spec: {upstreamSpec: {gce: {bogus: 1}}}\n"
    )
    done = discover(config, emulator_url, tmp_path, "--once")
    assert done.returncode == 1
    assert "broken.yaml" in done.stderr and "bogus" in done.stderr
    assert len(json.loads(done.stdout)) == 5


def test_an_unreachable_api_exits_1(config: Path, tmp_path: Path) -> None:
    done = discover(config, "http://127.0.0.1:9/", tmp_path, "--once", "--api-timeout", "1")
    assert done.returncode == 1
    assert "error: default.web:" in done.stderr and "error: default.api:" in done.stderr
    assert json.loads(done.stdout) == []


def test_watch_prints_a_new_list_after_a_change(config: Path, emulator_url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "discover", "--config", str(config), "--compute-endpoint", emulator_url, "--refresh", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(tmp_path),
    )
    lines = Lines(proc)
    try:
        first = json.loads("".join(lines.until(lambda line: line == "]\n")))
        assert len(first) == 5
        stop = f"{emulator_url}admin/projects/demo-project/zones/us-central1-a/instances/web-2/stop"
        with urllib.request.urlopen(urllib.request.Request(stop, method="POST"), timeout=5) as reply:
            assert reply.status == 200
        second = json.loads("".join(lines.until(lambda line: line == "]\n")))
        names = {e["metadata"]["annotations"]["gce.solo.io/instance-name"] for e in second}
        assert names == {"web-1", "web-3", "api-1", "api-2"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
