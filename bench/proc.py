"""Another process's CPU time and memory, from /proc (psutil is not a dependency), and the driver of a
benchmark server process that answers one-line commands on its stdin/stdout."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (its threads included)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: fields after it start past the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now), ``VmHWM`` (peak resident) and friends, in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "VmSize"):
            out[key] = int(value.split()[0])
    return out


def rss_mib(pid: int) -> float:
    return memory_kib(pid)["VmRSS"] / 1024.0


class LineServer:
    """A server process driven over its stdin/stdout: each command is a line, each answer a line
    starting with a word; ``quit`` ends it."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, timeout: float = 60.0) -> None:
        self.proc = proc
        self.name = name
        self.timeout = timeout

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def expect(self, word: str) -> list[str]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), self.timeout)
        parts = line.decode().split()
        if not parts or parts[0] != word:
            raise RuntimeError(f"{self.name}: expected {word}, got {line!r}")
        return parts[1:]

    async def command(self, text: str, answer: str) -> list[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.expect(answer)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"quit\n")
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
