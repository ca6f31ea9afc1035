"""``host:port`` flags, parsed once for every command."""

from __future__ import annotations

import ipaddress


def parse_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"address {value!r}: want HOST:PORT, e.g. 127.0.0.1:18000")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """True for a host only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
