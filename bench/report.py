"""What a scenario reports: measured values, targets (PASS/MISS) and correctness checks (OK/FAIL).

Targets are performance goals: a miss is reported, never fatal (machines are noisy). Correctness
checks are facts the benchmark relies on (every instance found, only the changed assignment sent):
a failed one makes ``python -m bench`` exit non-zero.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Metric:
    name: str
    value: float | int | str
    unit: str = ""

    def text(self) -> str:
        value = self.value
        if isinstance(value, float):
            shown = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
        elif isinstance(value, int):
            shown = f"{value:,}"
        else:
            shown = value
        return f"{shown} {self.unit}".strip()


@dataclass
class Target:
    name: str
    measured: str
    goal: str
    met: bool

    @property
    def status(self) -> str:
        return "PASS" if self.met else "MISS"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""

    @property
    def status(self) -> str:
        return "OK" if self.ok else "FAIL"


@dataclass
class Report:
    scenario: str
    title: str
    size: str  # "quick" or "full"
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)  # samples etc., JSON only
    seconds: float = 0.0
    error: str = ""

    def metric(self, name: str, value: float | int | str, unit: str = "") -> None:
        self.metrics.append(Metric(name, value, unit))

    def target(self, name: str, measured: str, goal: str, met: bool) -> None:
        self.targets.append(Target(name, measured, goal, met))

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, ok, detail))

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def failed(self) -> bool:
        return bool(self.error) or not all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "machine": machine()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        report = cls(data["scenario"], data["title"], data["size"], data.get("params", {}))
        report.metrics = [Metric(**m) for m in data.get("metrics", [])]
        report.targets = [Target(**t) for t in data.get("targets", [])]
        report.checks = [Check(**c) for c in data.get("checks", [])]
        report.notes = list(data.get("notes", []))
        report.raw = dict(data.get("raw", {}))
        report.seconds = float(data.get("seconds", 0.0))
        report.error = str(data.get("error", ""))
        return report

    def write(self, directory: Path = RESULTS_DIR) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.scenario}.json"
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")
        return path


# --- statistics ------------------------------------------------------------------------------


def percentile(samples: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def ms(seconds: float) -> float:
    return seconds * 1000.0


# --- the machine -----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def envoy_version() -> str:
    binary = shutil.which("envoy")
    if binary is None:
        return "not installed"
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    # ".../envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    found = re.search(r"version: [0-9a-f]+/([0-9][^/\s]*)/", out)
    return found.group(1) if found else out.strip() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
