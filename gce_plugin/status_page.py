"""The admin port's ``/``: a read-only HTML status page, rendered on the server (no script needed)
and reloaded by the browser every few seconds. Every value is escaped."""

from __future__ import annotations

from html import escape
from typing import Any

REFRESH_SECONDS = 3

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; } code { font-size: 12px; }
.ok { color: #116611; font-weight: bold; } .bad { color: #aa1111; font-weight: bold; }
.warn { color: #aa6600; font-weight: bold; } .muted { color: #777; }
"""

_CLASS = {"SYNCED": "ok", "STALE": "warn", "NOT SENT": "muted", "Accepted": "ok", "Rejected": "bad"}


def _cell(value: Any, css: str = "") -> str:
    text = "" if value is None else str(value)
    return f'<td class="{css}">{escape(text)}</td>' if css else f"<td>{escape(text)}</td>"


def proxy_table(report: dict[str, Any]) -> tuple[list[str], list[list[tuple[str, str]]]]:
    """The proxies table of this page and of ``gce-plugin proxy-status``: its header (node, cluster,
    address, stream, connected since, one column per xDS type, last NACK) and a row per proxy of
    (text, status) cells; a cell's status (SYNCED, STALE, NOT SENT, Rejected or none) picks its colour."""
    proxies = report.get("proxies", [])
    types = sorted({t for p in proxies for t in p["types"]})
    header = ["node", "cluster", "address", "stream", "connected since", *types, "last NACK"]
    return header, [_proxy_row(proxy, types) for proxy in proxies]


def _proxy_row(proxy: dict[str, Any], types: list[str]) -> list[tuple[str, str]]:
    keys = ("node", "cluster", "address", "stream", "connectedSince")
    cells = [(str(proxy[key] or ""), "") for key in keys]
    nacks = []
    for t in types:
        state = proxy["types"].get(t)
        if state is None:
            cells.append(("NOT SENT", "NOT SENT"))
            continue
        cells.append((f"{state['status']} {state['acked'][:8]}".strip(), state["status"]))
        if state.get("lastNack"):
            nacks.append(f"{t}: {state['lastNack']['error']}")
    cells.append(("; ".join(nacks), "Rejected" if nacks else ""))
    return cells


def _proxies_table(report: dict[str, Any]) -> str:
    header, rows = proxy_table(report)
    if not rows:
        return '<p id="no-proxies" class="warn">No Envoy is connected.</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(_cell(text, _CLASS.get(status, "")) for text, status in row) + "</tr>"
        for row in rows
    )
    return f'<table id="proxies"><tr>{head}</tr>{body}</table>'


def _upstreams_table(statuses: dict[str, Any]) -> str:
    if not statuses:
        return "<p>No upstreams.</p>"
    rows = []
    for name, status in sorted(statuses.items()):
        discovery = status.get("discovery") or {}
        rows.append(
            "<tr>"
            + _cell(name)
            + _cell(status.get("state"), _CLASS.get(str(status.get("state")), ""))
            + _cell(status.get("reason", ""))
            + _cell(_endpoints(status.get("endpoints")))
            + _cell(discovery.get("lastSuccess") or ("never" if discovery else "n/a"))
            + _cell(discovery.get("error") or "", "bad" if discovery.get("error") else "")
            + "</tr>"
        )
    return (
        '<table id="upstreams"><tr><th>upstream</th><th>status</th><th>reason</th>'
        "<th>endpoints</th><th>last discovery success</th><th>discovery error</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _endpoints(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "n/a"
    by_health = ", ".join(f"{n} {h.lower()}" for h, n in sorted(counts.items()) if h != "total")
    return f"{counts.get('total', 0)}" + (f" ({by_health})" if by_health else "")


def render(ready: bool, degraded: list[str], statuses: dict[str, Any], proxies: dict[str, Any]) -> str:
    state = "ready" if ready else "not ready"
    css = "bad" if not ready else ("warn" if degraded else "ok")
    suffix = " (degraded)" if degraded else ""
    problems = "".join(f"<li>{escape(d)}</li>" for d in degraded)
    latest = ", ".join(f"{escape(t)} {escape(v[:8])}" for t, v in proxies.get("latest", {}).items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>gce-plugin control plane</title><style>{_STYLE}</style></head>
<body>
<h1>gce-plugin control plane: <span id="state" class="{css}">{state}{suffix}</span></h1>
{f'<ul id="degraded">{problems}</ul>' if problems else ""}
<h2>Envoys</h2>
<p class="muted">latest versions: {latest or "none yet"}</p>
{_proxies_table(proxies)}
<h2>Upstreams</h2>
{_upstreams_table(statuses)}
<p class="muted">JSON: <a href="/proxy-status">/proxy-status</a> · <a href="/statuses">/statuses</a> ·
<a href="/readyz">/readyz</a> · <a href="/metrics">/metrics</a>. Reloads every {REFRESH_SECONDS} s.</p>
</body></html>
"""
