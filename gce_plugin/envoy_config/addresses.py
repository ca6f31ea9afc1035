"""Address checks, shared by translation and the plugins."""

from __future__ import annotations

import socket


def is_ip(address: str) -> bool:
    """True for an IPv4 or IPv6 literal. ``inet_pton`` is C, far cheaper per call than ``ipaddress``,
    which matters when every discovered endpoint is checked (IPv4, the common case, first)."""
    try:
        socket.inet_pton(socket.AF_INET, address)
    except OSError:
        try:
            socket.inet_pton(socket.AF_INET6, address)
        except OSError:
            return False
    return True
