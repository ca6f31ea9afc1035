"""The ``--store`` flags every command that talks to etcd shares, parsed in one place."""

from __future__ import annotations

import argparse
from pathlib import Path

from gce_plugin.commands.options import seconds
from gce_plugin.store.client import EtcdClient, TlsFiles, parse_store_url
from gce_plugin.store.layout import DEFAULT_PREFIX, Layout


def store_parent(required: bool = True) -> argparse.ArgumentParser:
    """The ``--store`` option group, as an argparse parent (a command lists it in ``PARENTS``)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("store (etcd)")
    group.add_argument(
        "--store",
        required=required,
        metavar="etcd://HOST:PORT[,HOST:PORT...]",
        help="the etcd cluster holding the config (every member, or some)",
    )
    group.add_argument(
        "--store-prefix",
        default=DEFAULT_PREFIX,
        metavar="PREFIX",
        help="root key of the config, as in Gloo's key-value config source",
    )
    group.add_argument(
        "--store-ca", type=Path, metavar="FILE", help="CA certificate(s) of the etcd members: use TLS"
    )
    group.add_argument(
        "--store-cert", type=Path, metavar="FILE", help="client certificate for etcd (with --store-key)"
    )
    group.add_argument("--store-key", type=Path, metavar="FILE", help="client private key for etcd")
    group.add_argument(
        "--store-timeout", type=seconds(0.1), default=5.0, metavar="SECONDS", help="timeout of one etcd call"
    )
    return parent


def store_from_args(args: argparse.Namespace) -> tuple[EtcdClient, Layout]:
    """The client and key layout the flags describe. Raises ValueError (or OSError for TLS files)."""
    tls = None
    if args.store_ca or args.store_cert or args.store_key:
        tls = TlsFiles(ca=args.store_ca, cert=args.store_cert, key=args.store_key)
    client = EtcdClient(parse_store_url(args.store), tls=tls, timeout=args.store_timeout)
    return client, Layout(args.store_prefix)
