"""The option groups several commands share, one argparse parent parser each, and the value types
of their flags. A command lists the parents it takes in ``PARENTS``; ``gce_plugin.cli`` builds them."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from gce_plugin.logs import FORMATS, LEVELS
from gce_plugin.plugins.gce.settings import COMPUTE_ENDPOINT_ENV, GceSettings

# Below this, discovery would hammer the Compute API (`--refresh 0` made 338 calls in 3 s).
MIN_REFRESH = 0.1


def seconds(minimum: float, flag_hint: str = "") -> Callable[[str], float]:
    """argparse ``type=``: a number of seconds, at least ``minimum``."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
        if not number >= minimum:  # also rejects NaN
            hint = f" ({flag_hint})" if flag_hint else ""
            raise argparse.ArgumentTypeError(f"{value} s is too small: the minimum is {minimum:g} s{hint}")
        return number

    return parse


def logging_parent(default_level: str = "info", default_format: str = "json") -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("logging")
    group.add_argument("--log-level", default=default_level, choices=LEVELS, help="least severe level logged")
    group.add_argument(
        "--log-format",
        default=default_format,
        choices=FORMATS,
        help="json: one object per line; text: logfmt (key=value), every context field included",
    )
    return parent


def compute_parent() -> argparse.ArgumentParser:
    """The discovery flags; ``gce_settings`` reads the gce plugin's part of them."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("Compute API")
    group.add_argument(
        "--compute-endpoint",
        default=os.environ.get(COMPUTE_ENDPOINT_ENV),
        metavar="URL",
        help=f"Compute API root, e.g. an emulator's http://127.0.0.1:8085/ (env {COMPUTE_ENDPOINT_ENV}); "
        "unset: the real API with Google credentials",
    )
    group.add_argument(
        "--credentials-file", metavar="FILE", help="service-account or authorized-user credentials JSON"
    )
    group.add_argument(
        "--refresh",
        type=seconds(MIN_REFRESH, "it is how often every group is listed"),
        default=30.0,
        metavar="SECONDS",
        help=f"discovery poll interval (at least {MIN_REFRESH:g})",
    )
    group.add_argument(
        "--api-timeout",
        type=seconds(0.1),
        default=10.0,
        metavar="SECONDS",
        help="timeout of one Compute call",
    )
    group.add_argument(
        "--mig-health",
        choices=("on", "off"),
        default="on",
        help="managed instance groups: on: each VM's currentAction and health check state set its "
        "endpoint's health (DRAINING, UNHEALTHY, ...; docs/managed-instance-groups.md); off: every "
        "RUNNING member takes traffic (the behaviour of plain instance groups)",
    )
    group.add_argument(
        "--write-namespace",
        default="gloo-system",
        help="namespace of discovered endpoints (metadata.namespace)",
    )
    return parent


def gce_settings(args: argparse.Namespace) -> GceSettings:
    """The gce plugin's settings from ``compute_parent``'s flags."""
    return GceSettings(
        compute_endpoint=args.compute_endpoint,
        credentials_file=args.credentials_file,
        api_timeout=args.api_timeout,
        mig_health=args.mig_health == "on",
    )


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and appends each flag's default (unless it has none)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or action.default == [] or "%(default)" in text:
            return text
        if action.option_strings:
            text += " (default: %(default)s)"
        return text
