"""``python -m bench [--quick] [scenario ...]``: run the benchmarks, print a table, write JSON.

Each scenario runs in a fresh child process (``--child NAME``), so one scenario's memory, threads
and gRPC state never colour another's numbers, and a crash is reported instead of ending the run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
import traceback
from types import ModuleType

from bench.report import RESULTS_DIR, Report, envoy_version, machine

SCENARIOS = (
    "discovery",
    "translation",
    "fanout",
    "convergence",
    "footprint",
    "storm",
    "rollout",
    "replicated",
)
# A scenario that takes longer than this is killed and reported as crashed.
TIMEOUT = {"quick": 150.0, "full": 400.0}


def load(name: str) -> ModuleType:
    return importlib.import_module(f"bench.{name}")


def run_child(name: str, quick: bool) -> int:
    """Run one scenario in this process; write its JSON; exit 1 if it failed."""
    module = load(name)
    size = "quick" if quick else "full"
    started = time.monotonic()
    try:
        report: Report = module.run(quick)
    except BaseException:
        report = Report(name, module.TITLE, size, error=traceback.format_exc())
    report.seconds = time.monotonic() - started
    report.write()
    return 1 if report.failed else 0


def run_scenario(name: str, quick: bool) -> Report:
    size = "quick" if quick else "full"
    path = RESULTS_DIR / f"{name}.json"
    path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench", "--child", name] + (["--quick"] if quick else [])
    started = time.monotonic()
    try:
        proc = subprocess.run(command, timeout=TIMEOUT[size], check=False)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = None
    elapsed = time.monotonic() - started
    if path.exists():
        report = Report.from_json(json.loads(path.read_text()))
    else:
        report = Report(name, load(name).TITLE, size)
    if code is None:
        report.error = report.error or f"timed out after {TIMEOUT[size]:.0f}s"
    elif code != 0 and not report.failed:
        report.error = f"exited with status {code}"
    if not path.exists() or report.error:
        report.seconds = elapsed
        report.write()
    return report


def print_report(report: Report) -> None:
    print(f"\n## {report.title} [{report.scenario}, {report.size}, {report.seconds:.1f}s]")
    if report.params:
        print("   " + ", ".join(f"{k}={v}" for k, v in report.params.items()))
    width = max([len(m.name) for m in report.metrics] + [10])
    for m in report.metrics:
        print(f"   {m.name:<{width}}  {m.text()}")
    for t in report.targets:
        print(f"   [{t.status}] {t.name}: {t.measured} (target {t.goal})")
    for c in report.checks:
        print(f"   [{c.status}] {c.name}" + (f": {c.detail}" if c.detail else ""))
    for note in report.notes:
        print(f"   note: {note}")
    if report.error:
        print("   [CRASH] " + report.error.strip().replace("\n", "\n   "))


def print_summary(reports: list[Report]) -> None:
    print("\n## Summary")
    rows = [("scenario", "target / check", "measured", "goal", "status")]
    for r in reports:
        if r.error:
            rows.append((r.scenario, "(run)", "", "", "CRASH"))
        for t in r.targets:
            rows.append((r.scenario, t.name, t.measured, t.goal, t.status))
        for c in r.checks:
            rows.append((r.scenario, c.name, c.detail, "", c.status))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for i, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def markdown(reports: list[Report], quick: bool) -> str:
    """The run as Markdown (bench/results/summary.md), for bench/RESULTS.md."""
    info = machine()
    lines = [
        f"Run: `python -m bench{' --quick' if quick else ''}`, {info['date']}",
        f"Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, Envoy {envoy_version()}",
        "",
    ]
    for r in reports:
        lines += [f"### {r.title} ({r.scenario})", ""]
        if r.params:
            lines += [", ".join(f"{k}={v}" for k, v in r.params.items()), ""]
        lines += ["| measure | value |", "|---|---|"]
        lines += [f"| {m.name} | {m.text()} |" for m in r.metrics]
        lines += [f"| **{t.status}** {t.name} (target {t.goal}) | {t.measured} |" for t in r.targets]
        lines += [f"| {c.status}: {c.name} | {c.detail} |" for c in r.checks]
        if r.error:
            lines.append(f"| CRASH | {r.error.strip().splitlines()[-1]} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small sizes (CI smoke, ~2-3 minutes)")
    parser.add_argument("--child", metavar="SCENARIO", help=argparse.SUPPRESS)
    parser.add_argument("scenarios", nargs="*", metavar="scenario", help=f"any of {', '.join(SCENARIOS)}")
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, args.quick)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    info = machine()
    print(f"# gce-plugin benchmarks ({'quick' if args.quick else 'full'} sizes)")
    print(f"   {info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['date']}")
    reports = []
    for name in args.scenarios or SCENARIOS:
        report = run_scenario(name, args.quick)
        print_report(report)
        sys.stdout.flush()
        reports.append(report)
    print_summary(reports)
    (RESULTS_DIR / "summary.md").write_text(markdown(reports, args.quick))
    failed = [r.scenario for r in reports if r.failed]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
