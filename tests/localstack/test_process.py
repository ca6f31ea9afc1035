"""localstack.Process: children die with the process that started them, even when it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gce_plugin.localstack import wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_child_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    # The signal is armed by the time the child runs its own code (setpriv execs it after prctl).
    ready = tmp_path / "child-running"
    parent_code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from gce_plugin.localstack import Process
        code = "import pathlib, time; pathlib.Path({str(ready)!r}).touch(); time.sleep(120)"
        child = Process("sleeper", [sys.executable, "-c", code], Path({str(tmp_path)!r}))
        print(child.proc.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        wait_for("the child to run", lambda: ready.exists() or None, timeout=30)
        assert _alive(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for("the child to die with its parent", lambda: not _alive(child_pid) or None, timeout=10)
    finally:
        parent.kill()
        parent.wait()
