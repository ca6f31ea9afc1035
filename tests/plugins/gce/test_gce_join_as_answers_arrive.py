"""Each answer's share of a poll is done as it arrives (issue 12, own delay at 10,000 upstreams): an
upstream is joined once its own group and zone are listed, not after the slowest listing of the
poll; member listings leave the client's slots to zone listings while those are in flight.
Through the real client and the Compute emulator (fixture in gce_helpers)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gce_plugin.api import Endpoint
from gce_plugin.emulator.server import Emulator
from gce_plugin.plugins.gce.discovery import GceDiscovery, _Slots
from gce_plugin.plugins.gce.spec import Target
from gce_plugin.plugins.plugin import UpstreamKey
from tests.plugins.gce.gce_helpers import gce_upstream, poll

WEB = ("default", "web")
EDGE = ("default", "edge")
SLOW = 1.5  # seconds the edge group's member listing is held back


def test_an_upstream_is_joined_before_a_slow_listing_of_another_group_answers(
    emulator: Emulator, discovery: GceDiscovery, monkeypatch: pytest.MonkeyPatch
) -> None:
    web, edge = (
        gce_upstream("web"),
        gce_upstream("edge", instance_group_name="edge", instance_group_region="us-central1-b"),
    )
    poll(discovery, web, edge)  # groups located: the next poll only lists members and zones
    joined_at: dict[UpstreamKey, float] = {}
    endpoints_of = discovery._endpoints_of

    def timed(target: Target, *args: Any) -> tuple[Endpoint, ...]:
        joined_at[target.key] = time.monotonic()
        return endpoints_of(target, *args)

    monkeypatch.setattr(discovery, "_endpoints_of", timed)
    emulator.set_instance_labels("demo", "us-central1-a", "web-2", {"tier": "canary"})  # web joined afresh
    emulator.set_instance_labels("demo", "us-central1-b", "edge-1", {"tier": "canary"})
    emulator.inject_fault("instanceGroups.listInstances", path="instanceGroups/edge/", status=0, delay=SLOW)
    result = poll(discovery, web, edge)
    done = time.monotonic()
    assert result.errors == {}
    assert {e.metadata.labels["tier"] for e in result.endpoints[EDGE]} == {"canary"}
    assert set(joined_at) == {WEB, EDGE}
    # web's share was done while edge's listing was still held back; edge's only once it answered.
    assert done - joined_at[WEB] > SLOW / 2
    assert done - joined_at[EDGE] < SLOW / 2


def test_member_listings_leave_the_slots_of_zone_listings_in_flight() -> None:
    async def scenario() -> list[int]:
        slots = _Slots(calls=8, zones=5)
        seen: list[int] = []
        held: list[None] = []

        async def member() -> None:
            async with slots.members:
                held.append(None)
                seen.append(len(held))
                await asyncio.sleep(0)
                held.pop()

        tasks = [asyncio.create_task(member()) for _ in range(20)]
        await asyncio.sleep(0)
        assert len(held) == 3  # 8 calls, 5 of them zone listings
        for _ in range(5):
            slots.zone_done()
        slots.zone_done()  # more zones done than were held back: no more slots than calls
        await asyncio.gather(*tasks)
        return seen

    assert max(asyncio.run(scenario())) <= 8


def test_with_more_zones_than_calls_one_member_listing_still_runs() -> None:
    async def scenario() -> None:
        slots = _Slots(calls=2, zones=10)
        async with slots.members:
            assert slots.members.locked()
        for _ in range(10):
            slots.zone_done()
        async with slots.members, slots.members:
            pass  # both slots are members' once the zones are done

    asyncio.run(scenario())
