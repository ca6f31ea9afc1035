"""``gce-plugin proxy-status``: every Envoy connected to a running control plane, and per xDS type
whether it is in sync: SYNCED (its ACKed version is the latest), STALE (an update is unACKed or was
NACKed), NOT SENT; with the last NACK's error. Reads ``/proxy-status`` on the control plane's admin
port (``gce-plugin run --metrics-address``)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any, TextIO

from gce_plugin.commands import format_table
from gce_plugin.hostport import address
from gce_plugin.status_page import proxy_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin",
        type=address,
        default="127.0.0.1:9091",
        metavar="HOST:PORT",
        help="the control plane's admin address (its --metrics-address)",
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="HTTP timeout")


def fetch(admin: str, timeout: float) -> dict[str, Any]:
    url = f"http://{admin}/proxy-status"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            report: dict[str, Any] = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise RuntimeError(
            f"cannot read {url}: {reason} (is `gce-plugin run` serving its admin port there?)"
        ) from None
    return report


def render_table(report: dict[str, Any]) -> str:
    header, rows = proxy_table(report)
    if not rows:
        return "no Envoy is connected\n"
    lines = [[h.upper() for h in header]] + [[text.replace("\n", " ") for text, _ in row] for row in rows]
    latest = ", ".join(f"{t} {v[:8]}" for t, v in report.get("latest", {}).items())
    return f"latest: {latest or 'none'}\n" + format_table(lines)


def main(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        report = fetch(args.admin, args.timeout)
    except RuntimeError as exc:
        print(f"gce-plugin proxy-status: {exc}", file=err)
        return 1
    if args.output == "json":
        out.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        out.write(render_table(report))
    return 0
