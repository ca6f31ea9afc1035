"""localstack.free_port: a port for a child process to listen on, which no outgoing connection of this
machine can take before the child binds it, and which is never handed out twice."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from gce_plugin.localstack import free_port

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(sys.platform != "linux" or not RANGE.exists(), reason="Linux's ephemeral port range")
def test_ports_are_below_the_ephemeral_range() -> None:
    low = int(RANGE.read_text().split()[0])
    assert all(free_port() < low for _ in range(100))


def picks(monkeypatch: pytest.MonkeyPatch, *ports: int) -> None:
    """free_port's random picks are ``ports``, in order."""
    sequence = iter(ports)
    monkeypatch.setattr("gce_plugin.localstack.random.randint", lambda low, high: next(sequence))


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_port_is_never_handed_out_twice_even_before_it_is_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    first = free_port()  # nobody binds it: free_port must remember it
    fresh = unused_port()
    picks(monkeypatch, first, first, fresh)
    assert free_port() == fresh


def test_a_port_someone_listens_on_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        taken = listening.getsockname()[1]
        fresh = unused_port()
        picks(monkeypatch, taken, taken, fresh)
        assert free_port() == fresh
