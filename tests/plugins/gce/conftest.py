from __future__ import annotations

from collections.abc import Iterator

import pytest

from gce_plugin.emulator.server import Emulator
from gce_plugin.plugins.gce.discovery import GceDiscovery
from tests.plugins.gce.gce_helpers import discovery_for, make_fixture

AMBIENT_CREDENTIAL_VARS = (
    "GOOGLE_CREDENTIALS_JSON",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCE_PLUGIN_COMPUTE_ENDPOINT",
    "CLOUDSDK_CONFIG",
)


@pytest.fixture(autouse=True)
def isolated_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the machine's credentials: no credential env vars, an empty gcloud config dir."""
    for name in AMBIENT_CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path_factory.mktemp("gcloud")))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # google-auth: never probe a metadata server


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(make_fixture()) as running:
        yield running


@pytest.fixture
def discovery(emulator: Emulator) -> Iterator[GceDiscovery]:
    """A discovery on the real client, talking to ``emulator``."""
    made = discovery_for(emulator)
    yield made
    made.close()
