from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gce_plugin.emulator import Emulator, Fixture
from tests.emulator.emulator_testkit import EXAMPLE_FIXTURE, compute_client


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The example fixture, served on a free port (no backends)."""
    with Emulator(Fixture.load(EXAMPLE_FIXTURE)) as running:
        yield running


@pytest.fixture
def compute(emulator: Emulator) -> Any:
    return compute_client(emulator.url)
