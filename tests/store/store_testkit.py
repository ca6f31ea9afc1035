"""Helpers for the store tests: a client for a cluster, polling in asyncio."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def write_tls_files(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA, with
    their keys, as PEM files: {"ca", "server_cert", "server_key", "client_cert", "client_key"}."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "etcd test ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": ca.public_bytes(serialization.Encoding.PEM)}
    for role, serial in (("server", 2), ("client", 3)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"etcd {role}")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if role == "server":
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        files[f"{role}_cert"] = builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        files[f"{role}_key"] = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    paths = {}
    for name, data in files.items():
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths
