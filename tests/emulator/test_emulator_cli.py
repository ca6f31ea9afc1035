"""``gce-plugin emulator`` as a real subprocess: ready line, serving, clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from googleapiclient.errors import HttpError

from gce_plugin.localstack import free_port
from tests.emulator.emulator_testkit import (
    EXAMPLE_FIXTURE,
    PROJECT,
    ZONE_A,
    bare_compute_client,
    compute_client,
    get_backend,
    member_names,
)
from tests.emulator.mig_testkit import MigDriver

MIG_FIXTURE = EXAMPLE_FIXTURE.parent / "mig-fixture.yaml"
READY = re.compile(r"^emulator listening on (http://127\.0\.0\.1:(\d+)/)$")


class EmulatorProcess:
    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "gce_plugin.cli", "emulator", "--log-format", "text", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ready_url(self, timeout: float = 20.0) -> str:
        """The URL from the ready line (fails if the process prints something else or exits)."""
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise AssertionError(f"no ready line within {timeout}s")
        line = self.process.stdout.readline().strip()
        match = READY.match(line)
        assert match, f"unexpected first line {line!r}; stderr: {self.stderr()}"
        return match.group(1)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def processes() -> Iterator[list[EmulatorProcess]]:
    started: list[EmulatorProcess] = []
    yield started
    for process in started:
        process.kill()


def launch(processes: list[EmulatorProcess], *args: str) -> EmulatorProcess:
    process = EmulatorProcess(*args)
    processes.append(process)
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_the_example_and_exits_cleanly_on_signal(
    processes: list[EmulatorProcess], signum: int
) -> None:
    process = launch(processes, "--fixture", str(EXAMPLE_FIXTURE), "--address", "127.0.0.1:0")
    url = process.ready_url()
    compute = compute_client(url)
    response = (
        compute.instanceGroups()
        .listInstances(project=PROJECT, zone=ZONE_A, instanceGroup="web", body={"instanceState": "RUNNING"})
        .execute()
    )
    assert member_names(response["items"]) == ["web-1", "web-2", "web-3"]
    started = time.monotonic()
    assert process.stop(signum) == 0
    assert time.monotonic() - started < 5


def test_backends_and_required_tokens_from_the_command_line(
    processes: list[EmulatorProcess], tmp_path: Path
) -> None:
    port = free_port("127.7.1.1")
    fixture = {
        "projects": {
            PROJECT: {
                "zones": {
                    ZONE_A: {
                        "instances": [{"name": "cli-1", "networkIP": "127.7.1.1"}],
                        "instanceGroups": [
                            {"name": "g", "namedPorts": [f"http:{port}"], "instances": ["cli-1"]}
                        ],
                    }
                }
            }
        }
    }
    path = tmp_path / "fixture.yaml"
    path.write_text(yaml.safe_dump(fixture))
    process = launch(
        processes, "--fixture", str(path), "--address", "127.0.0.1:0", "--serve-backends", "--require-token"
    )
    url = process.ready_url()
    assert get_backend("127.7.1.1", port) == (200, "hello from cli-1\n", "cli-1")
    with pytest.raises(HttpError) as caught:
        bare_compute_client(url).instances().list(project=PROJECT, zone=ZONE_A).execute()
    assert caught.value.status_code == 401
    assert process.stop() == 0
    assert get_backend("127.7.1.1", port) is None


def test_a_bad_fixture_exits_2_naming_the_problem(processes: list[EmulatorProcess], tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"projects": {"p": {"zones": {ZONE_A: {"instances": [{"name": "a", "colour": 1}]}}}}})
    )
    process = launch(processes, "--fixture", str(path), "--address", "127.0.0.1:0")
    assert process.process.wait(20) == 2
    assert "projects.p.zones.us-central1-a.instances[0]: unknown key 'colour'" in process.stderr()


def test_a_busy_address_exits_1(processes: list[EmulatorProcess]) -> None:
    first = launch(processes, "--fixture", str(EXAMPLE_FIXTURE), "--address", "127.0.0.1:0")
    port = first.ready_url().rsplit(":", 1)[1].rstrip("/")
    second = launch(processes, "--fixture", str(EXAMPLE_FIXTURE), "--address", f"127.0.0.1:{port}")
    assert second.process.wait(20) == 1
    assert "cannot listen" in second.stderr()


def test_managed_groups_move_on_their_own_in_the_process(processes: list[EmulatorProcess]) -> None:
    process = launch(processes, "--fixture", str(MIG_FIXTURE), "--address", "127.0.0.1:0")
    url = process.ready_url()
    items = (
        compute_client(url)
        .instanceGroupManagers()
        .listManagedInstances(project=PROJECT, zone=ZONE_A, instanceGroupManager="shop")
        .execute()["managedInstances"]
    )
    assert len(items) == 4
    mig = MigDriver(url, PROJECT, "shop", zone=ZONE_A)
    with mig.watch() as seen:
        mig.resize(3)
        mig.wait_settled(timeout=20, size=3)
    assert "DELETING" in seen.actions()
    assert process.stop() == 0
