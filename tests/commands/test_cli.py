"""The ``gce-plugin`` command line: help, version, defaults, HOST:PORT flags, the --refresh floor,
and errors that name what failed (a bind address, the Compute endpoint, how to use the emulator)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import google.auth
import google.auth.exceptions
import pytest
import yaml

from gce_plugin import cli
from gce_plugin.localstack import free_port
from gce_plugin.plugins.gce.compute import ComputeClient, ComputeError, RetryPolicy
from gce_plugin.plugins.gce.credentials import CredentialsError, load_credentials

CLI = [sys.executable, "-m", "gce_plugin.cli"]


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_top_level_help_is_for_users_not_developers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("--help", capsys=capsys)
    assert code == 0
    assert "Each command lives in its own module" not in out
    assert "an xDS control plane that serves their endpoints to Envoy" in " ".join(out.split())
    for name in cli.COMMANDS:
        assert name in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("--version", capsys=capsys)
    assert code == 0
    assert out.startswith("gce-plugin ") and out.split()[1][0].isdigit()


def _actions(command: str) -> Iterator[argparse.Action]:
    parser = cli.build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    yield from sub.choices[command]._actions


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_flag_is_documented(command: str) -> None:
    undocumented = [a.option_strings for a in _actions(command) if a.option_strings and not a.help]
    assert undocumented == []


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli("run", "--help", capsys=capsys)
    out = " ".join(out.split())
    assert "(default: 127.0.0.1:18000)" in out
    assert "--manifest-poll SECONDS" in out and "(default: 1.0)" in out
    assert "(default: 30.0)" in out  # --refresh, from the shared Compute group


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["bootstrap", "--listen", "10000"], "--listen"),
        (["bootstrap", "--admin", "9901"], "--admin"),
        (["bootstrap", "--xds-address", "localhost"], "--xds-address"),
        (["run", "--config", ".", "--metrics-address", "9091"], "--metrics-address"),
        (["run", "--config", ".", "--xds-address", "18000"], "--xds-address"),
        (["run", "--config", ".", "--xds-address", "host:99999"], "--xds-address"),
        (["emulator", "--fixture", "f", "--address", "8085"], "--address"),
        (["proxy-status", "--admin", "nohost"], "--admin"),
    ],
)
def test_a_bad_address_is_a_usage_error_naming_the_flag(
    args: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(*args, capsys=capsys)
    assert code == 2
    assert f"argument {flag}: address" in err and "HOST:PORT" in err
    assert "Traceback" not in err


def test_colon_port_means_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("bootstrap", "--listen", ":10001", "--xds-address", ":18001", capsys=capsys)
    assert code == 0
    config = yaml.safe_load(out)
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "127.0.0.1", "port_value": 10001}


@pytest.mark.parametrize("value", ["0", "0.01", "-1", "nan", "soon"])
def test_refresh_has_a_floor(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli("run", "--config", ".", "--refresh", value, capsys=capsys)
    assert code == 2
    assert "argument --refresh:" in err
    if value not in ("nan", "soon"):
        assert "minimum is 0.1 s" in err


def _run_until_exit(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_a_taken_admin_address_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_until_exit(
            ["run", "--config", str(tmp_path), "--metrics-address", f"127.0.0.1:{port}",
             "--xds-address", f"127.0.0.1:{free_port()}", "--log-format", "text"],
            tmp_path,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"127.0.0.1:{port}" in done.stderr and "Address already in use" in done.stderr


def test_a_taken_xds_address_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_until_exit(
            ["run", "--config", str(tmp_path), "--xds-address", f"127.0.0.1:{port}",
             "--metrics-address", "off", "--log-format", "text"],
            tmp_path,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"127.0.0.1:{port}" in done.stderr and "xDS" in done.stderr


class _Refused:
    def request(self, *args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError(111, "Connection refused")


def test_a_transport_error_names_the_compute_endpoint() -> None:
    client = ComputeClient(
        None,
        endpoint="http://127.0.0.1:9/",
        retry=RetryPolicy(max_attempts=1),
        http_factory=_Refused,
    )
    with pytest.raises(ComputeError) as caught:
        asyncio.run(client.get_instance_group("p", "zones", "us-central1-a", "web"))
    client.close()
    assert "http://127.0.0.1:9/" in str(caught.value)


def test_missing_credentials_point_at_the_emulator_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_adc(**kwargs: object) -> None:
        raise google.auth.exceptions.DefaultCredentialsError(  # type: ignore[no-untyped-call]
            "Could not automatically determine credentials"
        )

    monkeypatch.setattr(google.auth, "default", no_adc)
    with pytest.raises(CredentialsError) as caught:
        load_credentials(None, None, environ={})
    assert "--compute-endpoint" in str(caught.value)
