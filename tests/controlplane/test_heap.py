"""The GC hook: the control plane freezes its long-lived state once, after it first publishes a
discovery answer; later publishes do nothing more, and frozen objects are still freed when dropped."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from gce_plugin import heap
from gce_plugin.controlplane import ControlPlane
from gce_plugin.xds import ENDPOINT_TYPE
from tests.controlplane.test_controlplane import MANIFEST, FlakyDiscovery, run_plane, until


@pytest.fixture
def fresh_heap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(heap, "_frozen", False)
    yield
    gc.unfreeze()


class Held:
    pass


def test_freezes_once_and_frozen_objects_still_go_when_dropped(fresh_heap: None) -> None:
    alive = Held()
    ref = weakref.ref(alive)
    assert heap.freeze_after_first_publish()
    assert heap.frozen()
    assert gc.get_freeze_count() > 0
    assert not heap.freeze_after_first_publish()  # only the first call does anything
    del alive
    assert ref() is None  # reference counting still frees a frozen object


def test_the_control_plane_freezes_after_its_first_discovery_publish(
    tmp_path: Path, fresh_heap: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "web.yaml").write_text(MANIFEST)
    calls: list[bool] = []
    real = heap.freeze_after_first_publish

    def recording() -> bool:
        # The answer is already in the cache when the hook runs.
        calls.append("web_default" in plane_ref[0].cache.resources(ENDPOINT_TYPE))
        return real()

    monkeypatch.setattr(heap, "freeze_after_first_publish", recording)
    plane_ref: list[ControlPlane] = []

    async def body(plane: ControlPlane, plugin: FlakyDiscovery) -> None:
        plane_ref.append(plane)
        await until("the hook", lambda: bool(calls))
        assert heap.frozen()

    run_plane(tmp_path, FlakyDiscovery(), body)
    assert calls and all(calls)
    assert gc.get_freeze_count() > 0


def test_inside_an_event_loop_the_freeze_runs_as_the_next_callback(fresh_heap: None) -> None:
    async def main() -> None:
        before = gc.get_freeze_count()
        assert heap.freeze_after_first_publish()
        assert gc.get_freeze_count() == before  # not yet: streams woken by the publish go first
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert gc.get_freeze_count() > before

    asyncio.run(main())


def test_release_later_keeps_garbage_until_the_loop_has_run_two_rounds() -> None:
    async def scenario() -> list[bool]:
        garbage = Held()
        ref = weakref.ref(garbage)
        alive: list[bool] = []
        loop = asyncio.get_running_loop()
        heap.release_later(garbage)
        del garbage
        # Callbacks scheduled in the same step (e.g. the streams a publish wakes) run first.
        loop.call_soon(lambda: alive.append(ref() is not None))
        for _ in range(3):
            await asyncio.sleep(0)
            alive.append(ref() is not None)
        return alive

    alive = asyncio.run(scenario())
    assert alive[0] is True  # still held in the round after the call
    assert alive[-1] is False  # then dropped


def test_release_later_outside_an_event_loop_drops_at_once() -> None:
    garbage = Held()
    ref = weakref.ref(garbage)
    heap.release_later(garbage)
    del garbage
    assert ref() is None
