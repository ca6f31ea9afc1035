"""``HOST:PORT`` flags, parsed once for every command.

``address`` is the argparse type: it rejects a bad value with a usage error that argparse prefixes
with the flag's name (``argument --listen: ...``), and reads ``:PORT`` as loopback.
"""

from __future__ import annotations

import argparse
import ipaddress

LOOPBACK = "127.0.0.1"


def parse_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if sep and not host:
        host = LOOPBACK  # ":PORT"
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host.strip("[]"):
        raise ValueError(f"address {value!r}: want HOST:PORT (or :PORT for loopback), e.g. 127.0.0.1:18000")
    return host.strip("[]"), int(port)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def address(value: str) -> str:
    """argparse ``type=``: a valid ``HOST:PORT``, normalized (``:PORT`` -> ``127.0.0.1:PORT``)."""
    try:
        return join_host_port(*parse_host_port(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def is_loopback(host: str) -> bool:
    """True for a host only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
