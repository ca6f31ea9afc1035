"""gce-plugin: Google Compute Engine instance groups as Gloo upstreams, and an xDS control plane that
serves their endpoints to Envoy. `gce-plugin COMMAND --help` describes each command."""

# Each command is a module with ``add_arguments(parser)``, ``main(args) -> int`` and optionally
# ``PARENTS`` (shared option groups, from gce_plugin.commands.options); only the chosen one is imported.

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata

from gce_plugin.commands.options import HelpFormatter

# name -> (module, one-line help). Other commands register here: one row each.
COMMANDS: dict[str, tuple[str, str]] = {
    "discover": (
        "gce_plugin.commands.discover",
        "run endpoint discovery for the upstream manifests in a dir",
    ),
    "run": ("gce_plugin.commands.run", "run the control plane: discovery, translation and xDS to Envoy"),
    "proxy-status": (
        "gce_plugin.commands.proxy_status",
        "show each connected Envoy's sync state (ACKed versions, NACKs) from a running control plane",
    ),
    "bootstrap": (
        "gce_plugin.commands.bootstrap",
        "print an Envoy bootstrap that talks ADS to this control plane",
    ),
    "emulator": ("gce_plugin.emulator.command", "serve a Compute Engine API emulator from a fixture"),
    "demo": ("gce_plugin.demo", "the whole system on this machine: emulator, control plane and a real Envoy"),
    "apply": ("gce_plugin.commands.apply", "create or update Upstreams in an etcd store from manifests"),
    "get": ("gce_plugin.commands.get", "list the Upstreams of an etcd store, with their status"),
    "delete": ("gce_plugin.commands.delete", "delete an Upstream from an etcd store"),
}


def version() -> str:
    try:
        return metadata.version("gce-plugin")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(chosen: str | None) -> argparse.ArgumentParser:
    """The parser, with the flags of ``chosen`` only (building every command's imports them all)."""
    parser = argparse.ArgumentParser(
        prog="gce-plugin", description=(__doc__ or "").strip(), formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        module = importlib.import_module(module_name)
        parents = [make() for make in getattr(module, "PARENTS", ())]
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            parents=parents,
            formatter_class=HelpFormatter,
        )
        module.add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_list if a in COMMANDS), None)
    args = build_parser(chosen).parse_args(args_list)
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(args))


if __name__ == "__main__":
    sys.exit(main())
