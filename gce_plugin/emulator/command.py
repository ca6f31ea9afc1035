"""``gce-plugin emulator``: serve the Compute Engine API emulator from a fixture until SIGTERM/SIGINT.

When ready it prints one line to stdout, ``emulator listening on http://HOST:PORT/``, so a parent
process can read the port (``--address 127.0.0.1:0`` picks a free one).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from gce_plugin import logs
from gce_plugin.commands.options import logging_parent
from gce_plugin.emulator.fixture import Fixture, FixtureError
from gce_plugin.emulator.server import Emulator
from gce_plugin.hostport import address, parse_host_port

log = logging.getLogger(__name__)


PARENTS = (logging_parent,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fixture", required=True, help="the fixture YAML (see examples/fixture.yaml)")
    parser.add_argument(
        "--address",
        type=address,
        default="127.0.0.1:8085",
        metavar="HOST:PORT",
        help="address to listen on; port 0 picks a free port",
    )
    parser.add_argument(
        "--serve-backends",
        action="store_true",
        help="run a small HTTP server for every RUNNING VM with a 127.x networkIP and a port",
    )
    parser.add_argument(
        "--require-token",
        action="store_true",
        help="answer Compute calls 401 unless they carry a bearer token issued by POST /token",
    )
    parser.add_argument(
        "--token-lifetime",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long an issued token lives",
    )


def main(args: argparse.Namespace) -> int:
    logs.setup(args.log_level, args.log_format)
    try:
        host, port = parse_host_port(args.address)
        fixture = Fixture.load(args.fixture)
    except (ValueError, FixtureError) as exc:
        print(f"gce-plugin emulator: {exc}", file=sys.stderr)
        return 2
    emulator = Emulator(
        fixture,
        host,
        port,
        serve_backends=args.serve_backends,
        require_token=args.require_token,
        token_lifetime=args.token_lifetime,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        emulator.start()
    except OSError as exc:
        print(f"gce-plugin emulator: cannot listen on {args.address}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"emulator listening on {emulator.url}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        emulator.stop()
    log.info("emulator stopped")
    return 0
