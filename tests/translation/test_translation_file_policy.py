"""The file-path policy: an upstream whose cluster would make Envoy open a file outside the allowed
roots is Rejected with the field and the reason; files under them are accepted."""

from __future__ import annotations

import pytest
from gce_plugin_gen.github.com.solo_io.gloo.projects.gloo.api.v1.ssl_pb2 import CallCredentials

from gce_plugin.api import SDSConfig, SSLFiles, Status, UpstreamSslConfig
from gce_plugin.paths import DEFAULT_FILE_ROOTS, outside_roots
from gce_plugin.translation.translator import Translator
from tests.translation.translation_fakes import FakeEdsPlugin, gce_upstream


def status_of(config: UpstreamSslConfig, roots: tuple[str, ...] = DEFAULT_FILE_ROOTS) -> Status:
    upstream = gce_upstream("web", ssl_config=config)
    result = Translator([FakeEdsPlugin()], file_roots=roots).translate([upstream])
    return result.statuses[("default", "web")]


def sds_with_token(token_file: str) -> UpstreamSslConfig:
    source = CallCredentials.FileCredentialSource(token_file_name=token_file, header="authorization")
    return UpstreamSslConfig(
        sds=SDSConfig(
            target_uri="attacker.example.com:443",
            certificates_secret_name="cert",
            call_credentials=CallCredentials(file_credential_source=source),
        )
    )


@pytest.mark.parametrize(
    "config",
    [
        UpstreamSslConfig(ssl_files=SSLFiles(root_ca="/etc/shadow")),
        UpstreamSslConfig(ssl_files=SSLFiles(tls_cert="/etc/ssl/certs/c.pem", tls_key="/root/.ssh/id_rsa")),
        UpstreamSslConfig(ssl_files=SSLFiles(root_ca="/etc/ssl/certs/../../shadow")),
        UpstreamSslConfig(ssl_files=SSLFiles(root_ca="etc/ssl/certs/ca.pem")),
        UpstreamSslConfig(ssl_files=SSLFiles(root_ca="/etc/ssl/certsX/ca.pem")),
        sds_with_token("/var/run/secrets/kubernetes.io/serviceaccount/token"),
    ],
)
def test_a_file_outside_the_allowed_roots_rejects_the_upstream(config: UpstreamSslConfig) -> None:
    status = status_of(config)
    assert status.state == Status.Rejected
    assert "--allow-file-root" in status.reason and "Envoy would open" in status.reason


def test_the_rejection_names_the_field() -> None:
    status = status_of(sds_with_token("/etc/shadow"))
    assert "secret_data.filename" in status.reason and "'/etc/shadow'" in status.reason


def test_files_under_the_allowed_roots_are_accepted() -> None:
    files = SSLFiles(
        tls_cert="/etc/envoy/tls/c.crt", tls_key="/etc/envoy/tls/c.key", root_ca="/etc/ssl/certs/ca.pem"
    )
    assert status_of(UpstreamSslConfig(ssl_files=files)).state == Status.Accepted
    assert status_of(sds_with_token("/var/run/token"), ("/var/run",)).state == Status.Accepted


def test_no_roots_allow_nothing() -> None:
    assert status_of(UpstreamSslConfig(ssl_files=SSLFiles(root_ca="/etc/ssl/certs/ca.pem")), ()).state == (
        Status.Rejected
    )


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/etc/ssl/certs/ca.pem", True),
        ("/etc/ssl/certs", True),
        ("/etc/ssl/certs/../shadow", False),
        ("/etc/ssl/certs2/x", False),
        ("relative/ca.pem", False),
        ("/etc/ssl/certs/ca\x00.pem", False),
    ],
)
def test_outside_roots(path: str, allowed: bool) -> None:
    assert (outside_roots(path, ["/etc/ssl/certs/"]) is None) == allowed


def test_files_inside_any_packed_extensions_are_found_and_unknown_extensions_fail_closed() -> None:
    from envoy.config.cluster.v3.cluster_pb2 import Cluster
    from envoy.config.core.v3.health_check_pb2 import HealthCheck

    from gce_plugin.translation.file_policy import check_files

    cluster = Cluster(name="c")
    cluster.health_checks.append(HealthCheck(event_log_path="/tmp/owned"))
    with pytest.raises(ValueError, match=r"health_checks\[0\].event_log_path"):
        check_files(cluster, DEFAULT_FILE_ROOTS)
    unknown = Cluster(name="c")
    unknown.transport_socket.typed_config.type_url = "type.googleapis.com/not.Linked"
    with pytest.raises(ValueError, match="unknown type"):
        check_files(unknown, DEFAULT_FILE_ROOTS)
