"""Another process's CPU time and memory, from /proc (psutil is not a dependency)."""

from __future__ import annotations

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
