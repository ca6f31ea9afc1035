"""``gce-plugin get upstreams [NAME] [-n NS] [-o table|yaml|json]``: the Upstreams in the etcd store.

``table`` shows each upstream's type, the status the leader published for it, and its
resourceVersion; ``yaml`` and ``json`` print a ``kind: List`` of manifests (``apply -f`` reads it
back), status included. A key whose value is bad is reported on stderr with the key, the field and
the reason, and the exit status is then 1 (the good upstreams are still printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import yaml

from gce_plugin import manifests
from gce_plugin.api import Status, Upstream
from gce_plugin.commands import format_table
from gce_plugin.store.client import EtcdError
from gce_plugin.store.options import store_from_args, store_parent
from gce_plugin.store.upstreams import UpstreamStore, closing

RESOURCES = ("upstreams", "upstream", "us")


PARENTS = (store_parent,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("resource", choices=RESOURCES, help="what to list (upstreams)")
    parser.add_argument("name", nargs="?", help="only this upstream")
    parser.add_argument("-n", "--namespace", help="only this namespace (default: all)")
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "yaml", "json"),
        default="table",
        help="table: one line per upstream; yaml, json: a List of manifests (apply -f reads it)",
    )


def main(args: argparse.Namespace) -> int:
    try:
        client, layout = store_from_args(args)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    store = UpstreamStore(client, layout)
    try:
        listing = asyncio.run(closing(store, store.list(args.namespace, with_statuses=True)))
    except EtcdError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    upstreams = [u for u in listing.upstreams if args.name is None or u.metadata.name == args.name]
    errors = [e for e in listing.errors if args.name is None or e.path.endswith(f"/{args.name}")]
    for bad in errors:
        print(f"error: {bad}", file=sys.stderr)
    print(render(upstreams, listing.statuses, args.output), end="")
    if args.name is not None and not upstreams and not errors:
        print(f"error: upstream {args.name} not found", file=sys.stderr)
        return 1
    return 1 if errors else 0


def render(upstreams: list[Upstream], statuses: dict[tuple[str, str], Status], output: str) -> str:
    with_status = [_with_status(u, statuses) for u in upstreams]
    if output == "table":
        return _table(with_status)
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [manifests.dump_upstream(u) for u in with_status],
    }
    if output == "json":
        return json.dumps(doc, indent=2) + "\n"
    return yaml.safe_dump(doc, sort_keys=False)


def _with_status(upstream: Upstream, statuses: dict[tuple[str, str], Status]) -> Upstream:
    status = statuses.get((upstream.metadata.namespace, upstream.metadata.name))
    if status is None:
        return upstream
    shown = Upstream()
    shown.CopyFrom(upstream)
    shown.status.CopyFrom(status)
    return shown


def _table(upstreams: list[Upstream]) -> str:
    rows = [("NAMESPACE", "NAME", "TYPE", "STATUS", "VERSION")]
    for u in upstreams:
        state = Status.State.Name(u.status.state) if u.HasField("status") else "-"
        kind = u.upstream_spec.WhichOneof("upstream_type") or "-"
        rows.append((u.metadata.namespace, u.metadata.name, kind, state, u.metadata.resource_version))
    return format_table(rows, gap="   ")
