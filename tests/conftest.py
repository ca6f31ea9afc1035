"""Every test runs with its own state directory (``gce-plugin run``'s default would be under the home
directory): nothing a test saves as "last good" outlives it or reaches another test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def own_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("GCE_PLUGIN_STATE_DIR", str(tmp_path_factory.mktemp("state")))
