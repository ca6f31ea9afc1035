"""xDS over mutual TLS: a real Envoy with a client certificate (bootstrap --xds-ca/--xds-client-*)
gets its clusters and proxies; a client without a certificate, or without TLS, is refused. And the
warning for an xDS port bound beyond loopback without TLS."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import logging
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from gce_plugin.commands import bootstrap
from gce_plugin.localstack import free_port
from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache, XdsServer
from gce_plugin.xds.security import XdsTls
from tests.xds.test_xds_envoy import envoy, eventually, http_get, stats, upstream
from tests.xds.xds_testkit import assignment, cluster

SERVER_NAME = "xds.test"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, name: str, serial: int
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca[0].subject if ca else subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ca is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        sans = [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca[1] if ca else key, hashes.SHA256()), key


def write_pki(directory: Path) -> dict[str, Path]:
    """A CA; a server certificate for ``xds.test`` and 127.0.0.1; a client certificate; and a second,
    unrelated CA's client certificate."""
    ca = _issue(None, "test ca", 1)
    other_ca = _issue(None, "other ca", 2)
    files: dict[str, bytes] = {"ca.crt": ca[0].public_bytes(serialization.Encoding.PEM)}
    for name, issuer, serial in (("server", ca, 3), ("client", ca, 4), ("stranger", other_ca, 5)):
        cert, key = _issue(issuer, name, serial)
        files[f"{name}.crt"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{name}.key"] = _pem_key(key)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return {name: directory / name for name in files}


def mtls(pki: dict[str, Path]) -> XdsTls:
    return XdsTls(str(pki["server.crt"]), str(pki["server.key"]), str(pki["ca.crt"]))


async def first_response(channel: grpc.aio.Channel) -> object:
    call = AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    await call.write(DiscoveryRequest(type_url=CLUSTER_TYPE))
    return await asyncio.wait_for(call.read(), 5)


def secure_channel(port: int, pki: dict[str, Path], client: str | None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki["ca.crt"].read_bytes(),
        private_key=pki[f"{client}.key"].read_bytes() if client else None,
        certificate_chain=pki[f"{client}.crt"].read_bytes() if client else None,
    )
    return grpc.aio.secure_channel(
        f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", SERVER_NAME)]
    )


def test_mutual_tls_admits_a_client_certificate_and_refuses_the_rest(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)

    async def main() -> None:
        cache = SnapshotCache()
        cache.set_resources(CLUSTER_TYPE, {"web": cluster("web")})
        server = XdsServer(cache, "127.0.0.1:0", tls=mtls(pki))
        port = await server.start()
        try:
            async with secure_channel(port, pki, "client") as channel:
                response = await first_response(channel)
                assert getattr(response, "type_url", None) == CLUSTER_TYPE
            for client in (None, "stranger"):
                async with secure_channel(port, pki, client) as channel:
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await first_response(channel)
                    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                with pytest.raises(grpc.aio.AioRpcError):
                    await first_response(channel)
            assert not server.streams()
        finally:
            await server.stop(0)

    asyncio.run(main())


def test_a_real_envoy_connects_over_mutual_tls(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    with upstream("over mtls") as backend:

        async def main() -> None:
            cache = SnapshotCache()
            cache.set_resources(CLUSTER_TYPE, {"web": cluster("web")})
            cache.set_resources(ENDPOINT_TYPE, {"web": assignment("web", backend)})
            server = XdsServer(cache, "127.0.0.1:0", tls=mtls(pki))
            port = await server.start()
            listen, admin = free_port(), free_port()
            tls = bootstrap.XdsClientTls(
                str(pki["ca.crt"]), str(pki["client.crt"]), str(pki["client.key"]), SERVER_NAME
            )
            config = bootstrap.build(
                f"127.0.0.1:{port}",
                [("/", "web")],
                listen=f"127.0.0.1:{listen}",
                admin=f"127.0.0.1:{admin}",
                node_id="envoy-mtls",
            )
            config = bootstrap.with_tls(config, tls)
            config_path = tmp_path / "envoy.json"
            config_path.write_text(json.dumps(config))
            try:
                with envoy(config_path, tmp_path / "envoy.log"):
                    url = f"http://127.0.0.1:{listen}/"
                    await eventually(lambda: http_get(url) == "over mtls", 20, "traffic over mTLS xDS")
                    assert [s.node_id for s in server.streams()] == ["envoy-mtls"]
            finally:
                await server.stop(0)

        asyncio.run(main())


def test_bootstrap_flags_make_the_tls_transport_socket(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    bootstrap.add_arguments(parser)
    args = parser.parse_args(
        ["--xds-ca", "/etc/ca.crt", "--xds-client-cert", "/c.crt", "--xds-client-key", "/c.key"]
    )
    tls = bootstrap.client_tls(args)
    assert tls is not None
    socket_ = bootstrap.with_tls(bootstrap.build("127.0.0.1:18000", []), tls)["static_resources"]["clusters"][
        0
    ]
    common = socket_["transport_socket"]["typed_config"]["common_tls_context"]
    assert common["validation_context"]["trusted_ca"] == {"filename": "/etc/ca.crt"}
    assert common["tls_certificates"][0]["private_key"] == {"filename": "/c.key"}
    with pytest.raises(ValueError, match="--xds-client-key"):
        bootstrap.client_tls(parser.parse_args(["--xds-ca", "/ca", "--xds-client-cert", "/c.crt"]))


@pytest.mark.parametrize(
    ("address", "tls", "warned"),
    [("0.0.0.0:0", False, True), ("0.0.0.0:0", True, False), ("127.0.0.1:0", False, False)],
)
def test_binding_beyond_loopback_without_tls_warns_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, address: str, tls: bool, warned: bool
) -> None:
    pki = write_pki(tmp_path)
    caplog.set_level(logging.WARNING, logger="gce_plugin.xds")

    async def main() -> None:
        server = XdsServer(SnapshotCache(), address, tls=mtls(pki) if tls else None)
        await server.start()
        await server.stop(0)

    asyncio.run(main())
    assert ("WITHOUT TLS" in caplog.text) == warned


def test_a_real_envoy_without_a_client_certificate_is_refused(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)

    async def main() -> None:
        cache = SnapshotCache()
        cache.set_resources(CLUSTER_TYPE, {"web": cluster("web")})
        server = XdsServer(cache, "127.0.0.1:0", tls=mtls(pki))
        port = await server.start()
        admin = free_port()
        config = bootstrap.build(
            f"127.0.0.1:{port}",
            [("/", "web")],
            listen=f"127.0.0.1:{free_port()}",
            admin=f"127.0.0.1:{admin}",
            node_id="envoy-no-cert",
        )
        config = bootstrap.with_tls(
            config, bootstrap.XdsClientTls(str(pki["ca.crt"]), server_name=SERVER_NAME)
        )
        config_path = tmp_path / "envoy.json"
        config_path.write_text(json.dumps(config))
        try:
            with envoy(config_path, tmp_path / "envoy.log"):

                def handshakes_failed() -> bool:
                    # The server ends each handshake (no client certificate): a failed connect.
                    return stats(admin).get("cluster.xds_cluster.upstream_cx_connect_fail", 0) >= 2

                await eventually(handshakes_failed, 20, "Envoy's TLS handshakes to fail")
                assert not server.streams()
                assert "web" not in http_get(f"http://127.0.0.1:{admin}/clusters")
        finally:
            await server.stop(0)

    asyncio.run(main())
