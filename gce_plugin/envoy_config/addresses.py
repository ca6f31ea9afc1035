"""Address checks, shared by translation and the plugins."""

from __future__ import annotations

import socket


def is_ip(address: str) -> bool:
    """True for an IPv4 or IPv6 literal. ``inet_pton`` is C, far cheaper per call than ``ipaddress``,
    which matters when every discovered endpoint is checked."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, address)
        except OSError:
            continue
        return True
    return False
