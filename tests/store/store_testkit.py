"""Helpers for the store tests: a client for a cluster, polling in asyncio."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from gce_plugin.hostport import parse_host_port
from gce_plugin.store.client import EtcdClient
from gce_plugin.store.local import EtcdCluster

T = TypeVar("T")


def client_for(
    cluster: EtcdCluster, members: Sequence[int] | None = None, timeout: float = 2.0
) -> EtcdClient:
    chosen = [cluster.endpoints[i] for i in members] if members is not None else cluster.endpoints
    return EtcdClient([parse_host_port(e) for e in chosen], timeout=timeout)


async def eventually(what: str, check: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


def etcdctl(cluster: EtcdCluster, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        cluster.etcdctl(*args), input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
