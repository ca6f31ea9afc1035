"""``gce-plugin delete upstream NAMESPACE/NAME``: remove an Upstream from the etcd store.

Its endpoints and status keys are the leader's to remove (it sees the upstream go). Exit status 1
when there was no such upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from gce_plugin.store.client import EtcdError
from gce_plugin.store.layout import check_ref
from gce_plugin.store.options import store_from_args, store_parent
from gce_plugin.store.upstreams import UpstreamStore, closing

PARENTS = (store_parent,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("resource", choices=("upstream", "upstreams", "us"), help="what to delete (upstream)")
    parser.add_argument("ref", metavar="NAMESPACE/NAME", help="the upstream")


def main(args: argparse.Namespace) -> int:
    namespace, sep, name = args.ref.partition("/")
    try:
        if not sep:
            raise ValueError(f"{args.ref!r}: want NAMESPACE/NAME")
        check_ref(namespace, name)
        client, layout = store_from_args(args)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        store = UpstreamStore(client, layout)
        deleted = asyncio.run(closing(store, store.delete(namespace, name)))
    except EtcdError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not deleted:
        print(f"error: upstream {namespace}/{name} not found", file=sys.stderr)
        return 1
    print(f"upstream {namespace}/{name} deleted")
    return 0
