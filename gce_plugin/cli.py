"""The ``gce-plugin`` console script. Each command lives in its own module that provides
``add_arguments(parser)`` and ``main(args) -> int``; only the chosen one is imported."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "discover": (
        "gce_plugin.commands.discover",
        "run endpoint discovery for the upstream manifests in a dir",
    ),
    "run": ("gce_plugin.commands.run", "run the control plane: discovery, translation and xDS to Envoy"),
    "bootstrap": (
        "gce_plugin.commands.bootstrap",
        "print an Envoy bootstrap that talks ADS to this control plane",
    ),
    "emulator": ("gce_plugin.emulator.command", "serve a Compute Engine API emulator from a fixture"),
    "apply": ("gce_plugin.commands.apply", "create or update Upstreams in an etcd store from manifests"),
    "get": ("gce_plugin.commands.get", "list the Upstreams of an etcd store, with their status"),
    "delete": ("gce_plugin.commands.delete", "delete an Upstream from an etcd store"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gce-plugin", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = list(COMMANDS)
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_list if a in COMMANDS), None)
    for name in names:
        module_name, help_text = COMMANDS[name]
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module_name).add_arguments(cmd)
    args = parser.parse_args(args_list)
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(args))


if __name__ == "__main__":
    sys.exit(main())
