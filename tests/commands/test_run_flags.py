"""``run``'s limit and security flags: parsed into Options, incomplete sets refused with exit 2."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gce_plugin import cli
from gce_plugin.commands import run


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser("run").parse_args(["run", "--config", "/nonexistent", *argv])


@pytest.mark.parametrize(
    "argv",
    [
        ("--xds-tls-cert", "/c.crt"),
        ("--xds-tls-key", "/c.key"),
        ("--xds-client-ca", "/ca.crt"),
        ("--allow-file-root", "relative/dir"),
    ],
)
def test_incomplete_or_bad_flags_exit_2(argv: tuple[str, ...]) -> None:
    assert run.main(parse(*argv)) == 2


def test_tls_flags_make_mutual_tls() -> None:
    tls = run._xds_tls(parse("--xds-tls-cert", "/c.crt", "--xds-tls-key", "/c.key", "--xds-client-ca", "/ca"))
    assert tls is not None and (tls.cert_file, tls.key_file, tls.client_ca_file) == (
        "/c.crt",
        "/c.key",
        "/ca",
    )
    assert run._xds_tls(parse()) is None


def test_unreadable_tls_files_stop_the_start(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text("")
    args = parse("--xds-tls-cert", str(tmp_path / "missing.crt"), "--xds-tls-key", str(tmp_path / "k"))
    args.config = str(tmp_path)
    args.xds_address = "127.0.0.1:0"
    args.metrics_address = "off"
    assert run.main(args) == 1
