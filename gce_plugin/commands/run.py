"""``gce-plugin run``: the control plane. Loads the Upstream manifests of a directory (and follows
changes), discovers endpoints, translates to Envoy v3 and serves them over xDS. With ``--store``
instead of ``--config``: one replica of a replicated control plane on etcd
(docs/running-replicated.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket

from gce_plugin import logs, paths, safe_yaml
from gce_plugin.builtin import default_registry
from gce_plugin.commands.options import compute_parent, gce_settings, logging_parent, seconds
from gce_plugin.controlplane import ControlPlane, Options
from gce_plugin.hostport import address
from gce_plugin.plugins.plugin import Settings
from gce_plugin.plugins.registry import Registry
from gce_plugin.state import default_state_dir
from gce_plugin.store.leader import DEFAULT_TTL
from gce_plugin.store.options import store_from_args, store_parent
from gce_plugin.store.replica import StoreReplica
from gce_plugin.xds import security

log = logging.getLogger("gce_plugin.run")


PARENTS = (compute_parent, logging_parent, lambda: store_parent(required=False))
DEFAULT_SETTLE = 2.0


def _lease_ttl(value: str) -> int:
    try:
        ttl = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: want whole seconds") from None
    if ttl < 2:
        raise argparse.ArgumentTypeError(f"{ttl}: at least 2 seconds")
    return ttl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="DIR", help="directory of Upstream manifests (one machine; or --store)"
    )
    parser.add_argument(
        "--lease-ttl",
        type=_lease_ttl,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help="with --store: the leader's lease; a dead leader is replaced within it",
    )
    parser.add_argument(
        "--xds-address",
        type=address,
        default="127.0.0.1:18000",
        metavar="HOST:PORT",
        help="gRPC xDS (ADS, CDS, EDS) address",
    )
    parser.add_argument(
        "--metrics-address",
        type=lambda v: v if v == "off" else address(v),
        default="127.0.0.1:9091",
        metavar="HOST:PORT",
        help="admin HTTP address: status page /, /metrics, /healthz, /readyz, /statuses, /proxy-status; "
        "'off' disables it",
    )
    parser.add_argument(
        "--manifest-poll",
        type=seconds(0.01),
        default=1.0,
        metavar="SECONDS",
        help="how often the manifest directory is checked for changes",
    )
    _add_failure_model_arguments(parser)
    _add_last_good_arguments(parser)


def _add_last_good_arguments(parser: argparse.ArgumentParser) -> None:
    """Last good across restarts, settled changes, discovery deadlines (docs/operating.md)."""
    group = parser.add_argument_group("last good state and settled changes")
    group.add_argument(
        "--state-dir",
        default=None,
        metavar="DIR",
        help="where the last good manifests, upstreams and endpoints are kept across restarts "
        "(default: $GCE_PLUGIN_STATE_DIR, else $XDG_STATE_HOME/gce-plugin/<hash of --config>, else "
        "~/.local/state/gce-plugin/<hash of --config>; with --store: none, etcd keeps the state); "
        "'off' keeps nothing",
    )
    group.add_argument(
        "--settle",
        type=seconds(0.0),
        default=DEFAULT_SETTLE,
        metavar="SECONDS",
        help="a manifest change is applied once the file has been stable this long, and a removal "
        "once it has persisted this long (0: at once; docs/operating.md, failure model)",
    )
    group.add_argument(
        "--poll-timeout",
        type=seconds(1.0),
        default=300.0,
        metavar="SECONDS",
        help="a discovery poll still running after this long is cancelled and reported as failed",
    )


def _add_failure_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Limits and security (docs/operating.md, "Failure model")."""
    group = parser.add_argument_group("limits and security")
    group.add_argument("--xds-tls-cert", metavar="FILE", help="serve xDS over TLS with this certificate")
    group.add_argument("--xds-tls-key", metavar="FILE", help="the private key of --xds-tls-cert")
    group.add_argument("--xds-client-ca", metavar="FILE", help="require xDS client certificates from this CA")
    group.add_argument(
        "--xds-max-request-bytes",
        type=int,
        default=security.DEFAULT_MAX_REQUEST_BYTES,
        metavar="BYTES",
        help="largest xDS request accepted (a larger one closes its stream, unparsed)",
    )
    group.add_argument(
        "--xds-max-names",
        type=int,
        default=security.DEFAULT_MAX_NAMES,
        metavar="N",
        help="most resource names in one xDS request or delta subscription",
    )
    group.add_argument(
        "--max-manifest-bytes",
        type=int,
        default=safe_yaml.DEFAULT_MAX_BYTES,
        metavar="BYTES",
        help="largest manifest file loaded (a larger one is reported and its last good version kept)",
    )
    group.add_argument(
        "--allow-file-root",
        action="append",
        metavar="DIR",
        help="a directory under which upstreams may name files for Envoy to open (sslConfig, SDS token "
        f"files); repeatable; replaces the default {', '.join(paths.DEFAULT_FILE_ROOTS)}",
    )


def _xds_tls(args: argparse.Namespace) -> security.XdsTls | None:
    if bool(args.xds_tls_cert) != bool(args.xds_tls_key):
        raise ValueError("give both --xds-tls-cert and --xds-tls-key, or neither")
    if args.xds_client_ca and not args.xds_tls_cert:
        raise ValueError("--xds-client-ca needs --xds-tls-cert and --xds-tls-key")
    if not args.xds_tls_cert:
        return None
    return security.XdsTls(args.xds_tls_cert, args.xds_tls_key, args.xds_client_ca)


def state_dir(args: argparse.Namespace) -> str | None:
    if args.state_dir == "off" or (args.state_dir is None and args.config is None):
        return None  # with --store and no --state-dir: etcd keeps the last good state
    return str(args.state_dir or default_state_dir(args.config))


def main(args: argparse.Namespace) -> int:
    logs.setup(args.log_level, args.log_format)
    if (args.config is None) == (args.store is None):
        log.error("give either --config DIR (one machine) or --store etcd://... (replicated)")
        return 2
    try:
        xds_tls = _xds_tls(args)
        roots = paths.normalize_roots(args.allow_file_root or paths.DEFAULT_FILE_ROOTS)
    except ValueError as err:
        log.error("bad flags: %s", err)
        return 2
    options = Options(
        config_dir=args.config or "",
        xds_address=args.xds_address,
        admin_address=None if args.metrics_address == "off" else args.metrics_address,
        settings=Settings(refresh_interval=args.refresh),
        write_namespace=args.write_namespace,
        manifest_poll_interval=args.manifest_poll,
        max_manifest_bytes=args.max_manifest_bytes,
        xds_tls=xds_tls,
        xds_limits=security.XdsLimits(args.xds_max_request_bytes, args.xds_max_names),
        file_roots=roots,
        state_dir=state_dir(args),
        settle=args.settle,
        poll_timeout=args.poll_timeout,
    )
    replica: StoreReplica | None = None
    if args.store is not None:
        try:
            client, layout = store_from_args(args)
        except (ValueError, OSError) as err:
            log.error("store: %s", err)
            return 2
        identity = f"{socket.gethostname()}/{os.getpid()}/{args.xds_address}"
        replica = StoreReplica(client, layout, identity, lease_ttl=args.lease_ttl)
    elif not os.path.isdir(args.config):
        log.error("manifest directory does not exist", extra={"dir": args.config})
        return 2
    try:
        asyncio.run(_serve(options, default_registry(gce_settings(args)), replica))
    except OSError as err:
        # Bind errors name their address (the servers raise them so); anything else is named here.
        log.error("cannot start: %s", err)
        return 1
    return 0


async def _serve(options: Options, registry: Registry, replica: StoreReplica | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if replica is None:
        await ControlPlane(options, registry).run(stop)
    else:
        try:
            await ControlPlane(options, registry, config=replica, endpoints=replica).run(stop)
        finally:
            await replica.client.close()
    log.info("stopped")
