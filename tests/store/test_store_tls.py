"""The store over TLS with client certificates, against a real etcd started with --client-cert-auth."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gce_plugin.localstack import gce_plugin_command
from gce_plugin.store.client import EtcdClient, EtcdError, TlsFiles
from gce_plugin.store.local import EtcdCluster, ServerTls
from tests.store.store_testkit import write_tls_files
from tests.store.test_store_cli import EXAMPLES


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EtcdCluster, dict[str, Path]]]:
    files = write_tls_files(tmp_path_factory.mktemp("tls"))
    tls = ServerTls(cert=files["server_cert"], key=files["server_key"], client_ca=files["ca"])
    with EtcdCluster(1, tls=tls) as cluster:
        yield cluster, files


def test_apply_and_get_over_mutual_tls(tls_etcd: tuple[EtcdCluster, dict[str, Path]]) -> None:
    cluster, files = tls_etcd
    flags = [
        "--store",
        cluster.store_url,
        "--store-ca",
        str(files["ca"]),
        "--store-cert",
        str(files["client_cert"]),
        "--store-key",
        str(files["client_key"]),
    ]
    applied = subprocess.run(
        [*gce_plugin_command(), "apply", "-f", str(EXAMPLES), *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    listed = subprocess.run(
        [*gce_plugin_command(), "get", "upstreams", *flags], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["api", "web"]


def test_without_a_client_certificate_or_over_plaintext_it_is_refused(
    tls_etcd: tuple[EtcdCluster, dict[str, Path]],
) -> None:
    cluster, files = tls_etcd
    (host, port) = cluster.endpoints[0].split(":")

    async def attempt(tls: TlsFiles | None) -> None:
        async with EtcdClient([(host, int(port))], tls=tls, timeout=2.0) as client:
            await client.range(b"k")

    with pytest.raises(EtcdError):
        asyncio.run(attempt(TlsFiles(ca=files["ca"])))
    with pytest.raises(EtcdError):
        asyncio.run(attempt(None))
    asyncio.run(attempt(TlsFiles(ca=files["ca"], cert=files["client_cert"], key=files["client_key"])))


def test_a_certificate_without_its_key_is_a_usage_error(tmp_path: Path) -> None:
    files = write_tls_files(tmp_path)
    with pytest.raises(ValueError, match="needs its key"):
        TlsFiles(ca=files["ca"], cert=files["client_cert"]).credentials()
