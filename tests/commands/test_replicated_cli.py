"""The replicated control plane's flags: ``bootstrap`` with every replica, ``run`` with exactly one
config source (``--config`` or ``--store``), ``--lease-ttl``'s floor."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.commands.test_cli import CLI, run_cli


def test_bootstrap_gives_envoy_every_replica(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        "bootstrap", "--xds-address", "10.0.0.1:18000", "--xds-address", "10.0.0.2:18001", capsys=capsys
    )
    assert code == 0
    (xds,) = yaml.safe_load(out)["static_resources"]["clusters"]
    hosts = [
        e["endpoint"]["address"]["socket_address"]
        for e in xds["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]
    assert hosts == [
        {"address": "10.0.0.1", "port_value": 18000},
        {"address": "10.0.0.2", "port_value": 18001},
    ]


def test_bootstrap_default_is_one_local_control_plane(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("bootstrap", capsys=capsys)
    assert code == 0
    (xds,) = yaml.safe_load(out)["static_resources"]["clusters"]
    (host,) = xds["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert host["endpoint"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18000}


@pytest.mark.parametrize("source", [[], ["--config", "CONFIG", "--store", "etcd://127.0.0.1:1"]])
def test_run_wants_exactly_one_config_source(source: list[str], tmp_path: Path) -> None:
    args = [str(tmp_path) if a == "CONFIG" else a for a in source]
    done = subprocess.run([*CLI, "run", *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "either --config DIR" in done.stderr


def test_lease_ttl_has_a_floor(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli("run", "--store", "etcd://127.0.0.1:1", "--lease-ttl", "1", capsys=capsys)
    assert code == 2
    assert "--lease-ttl" in err and "at least 2 seconds" in err
