"""``gce-plugin apply -f FILE|DIR``: create or update Upstreams in the etcd store.

The manifests are read and checked by the same loader, with the same messages, as a ``--config``
directory (a directory's duplicate rule included). Nothing is written unless every manifest is
good. Each upstream is then written with compare-and-swap (``metadata.resourceVersion`` when the
manifest has one, else the revision just read), and reported as kubectl does: ``created``,
``configured`` or ``unchanged`` (applying the same manifest twice writes nothing the second time).
Exit status: 0 when everything was applied, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gce_plugin import manifests
from gce_plugin.api import Upstream
from gce_plugin.store.client import EtcdError
from gce_plugin.store.options import store_from_args, store_parent
from gce_plugin.store.upstreams import Conflict, UpstreamStore, closing

PARENTS = (store_parent,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        type=Path,
        metavar="FILE|DIR",
        help="a manifest file or a directory of them",
    )


def read_manifests(path: Path) -> tuple[list[Upstream], list[manifests.ManifestError]]:
    if path.is_dir():
        loaded, errors = manifests.load_dir(path)
        return [u for upstreams in loaded.values() for u in upstreams], errors
    try:
        return manifests.load_file(path), []
    except manifests.ManifestError as err:
        return [], [err]


def main(args: argparse.Namespace) -> int:
    upstreams, errors = read_manifests(args.filename)
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    if errors:
        return 1
    if not upstreams:
        print(f"error: no upstreams in {args.filename}", file=sys.stderr)
        return 1
    try:
        client, layout = store_from_args(args)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    store = UpstreamStore(client, layout)
    return asyncio.run(closing(store, _apply(store, upstreams)))


async def _apply(store: UpstreamStore, upstreams: list[Upstream]) -> int:
    failed = 0
    try:
        for upstream in upstreams:
            meta = upstream.metadata
            try:
                outcome, _ = await store.apply(upstream)
            except (Conflict, ValueError) as err:
                print(f"error: {err}", file=sys.stderr)
                failed += 1
                continue
            print(f"upstream {meta.namespace}/{meta.name} {outcome}")
    except EtcdError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 1 if failed else 0
