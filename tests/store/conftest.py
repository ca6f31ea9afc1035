from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from gce_plugin.store.local import EtcdCluster

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def etcd1() -> Iterator[EtcdCluster]:
    """One real etcd member on loopback, shared by a module's tests (each uses its own prefix)."""
    with EtcdCluster(1) as cluster:
        yield cluster


@pytest.fixture
def etcd3() -> Iterator[EtcdCluster]:
    """Three real etcd members on loopback, for one test (tests kill and restart members)."""
    with EtcdCluster(3) as cluster:
        yield cluster


@pytest.fixture
def prefix() -> str:
    """A store prefix no other test of the module uses."""
    return f"t{next(_prefixes)}"
