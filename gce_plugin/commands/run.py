"""``gce-plugin run``: the control plane. Loads the Upstream manifests of a directory (and follows
changes), discovers endpoints, translates to Envoy v3 and serves them over xDS."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from gce_plugin import logs
from gce_plugin.builtin import default_registry
from gce_plugin.commands.options import compute_parent, gce_settings, logging_parent, seconds
from gce_plugin.controlplane import ControlPlane, Options
from gce_plugin.hostport import address
from gce_plugin.plugins.plugin import Settings
from gce_plugin.plugins.registry import Registry

log = logging.getLogger("gce_plugin.run")


PARENTS = (compute_parent, logging_parent)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="DIR", help="directory of Upstream manifests")
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


def main(args: argparse.Namespace) -> int:
    logs.setup(args.log_level, args.log_format)
    options = Options(
        config_dir=args.config,
        xds_address=args.xds_address,
        admin_address=None if args.metrics_address == "off" else args.metrics_address,
        settings=Settings(refresh_interval=args.refresh),
        write_namespace=args.write_namespace,
        manifest_poll_interval=args.manifest_poll,
    )
    if not os.path.isdir(args.config):
        log.error("manifest directory does not exist", extra={"dir": args.config})
        return 2
    try:
        asyncio.run(_serve(options, default_registry(gce_settings(args))))
    except OSError as err:
        # Bind errors name their address (the servers raise them so); anything else is named here.
        log.error("cannot start: %s", err)
        return 1
    return 0


async def _serve(options: Options, registry: Registry) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    plane = ControlPlane(options, registry)
    await plane.run(stop)
    log.info("stopped")
