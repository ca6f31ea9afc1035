"""The shared refresh loop under faults (issue 8): losses are confirmed by the next poll, a hung poll
is cancelled at its deadline and the loop recovers, last good endpoints survive a restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

from gce_plugin.api import Upstream
from gce_plugin.health import EVERYTHING, DiscoveryHealth
from gce_plugin.last_good import EndpointsArchive
from gce_plugin.plugins.plugin import (
    DiscoveryError,
    EndpointsUpdate,
    UpstreamEndpoints,
    UpstreamKey,
    WatchedUpstreams,
    WatchOpts,
    upstream_key,
)
from gce_plugin.plugins.refresh import PollResult, refresh_loop
from gce_plugin.state import StateStore
from tests.translation.translation_fakes import endpoint, gce_upstream

WEB: UpstreamKey = ("default", "web")


class ScriptedPoll:
    """Answers web's endpoints from ``addresses`` (an error too when ``error`` is set); raises when
    ``broken``; never returns while ``hang`` is set."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = list(addresses)
        self.error: str | None = None
        self.broken = False
        self.hang = False
        self.polls = 0
        self._held_from: int | None = None
        self._released = asyncio.Event()

    def hold(self, from_poll: int) -> None:
        """Poll number ``from_poll`` (counting every poll so far) and later ones wait, once started,
        until ``release()``: a test sees the loop after the poll before, however slow the machine."""
        self._held_from = from_poll
        self._released.clear()

    def release(self) -> None:
        self._held_from = None
        self._released.set()

    async def started(self, count: int) -> None:
        """Until ``count`` polls have started (with a deadline)."""
        for _ in range(1000):
            if self.polls >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{count} polls never started ({self.polls} did)")

    async def __call__(self, upstreams: Sequence[Upstream]) -> PollResult:
        self.polls += 1
        if self._held_from is not None and self.polls >= self._held_from:
            await self._released.wait()
        if self.hang:
            await asyncio.Event().wait()
        if self.broken:
            raise DiscoveryError("fake: compute API down")
        result = PollResult()
        for u in upstreams:
            key = upstream_key(u)
            result.found[key] = UpstreamEndpoints.of(endpoint(u.metadata.name, a) for a in self.addresses)
            if self.error:
                result.errors[key] = self.error
        return result


def addresses(update: EndpointsUpdate) -> list[str]:
    return sorted(e.address for e in update.upstreams[WEB].endpoints)


async def answers(
    watch: AsyncGenerator[EndpointsUpdate, None], poll: ScriptedPoll, polls: int
) -> list[EndpointsUpdate]:
    """Every answer until ``polls`` polls have ended (with a deadline)."""
    seen: list[EndpointsUpdate] = []

    async def collect() -> None:
        async for update in watch:
            seen.append(update)

    task = asyncio.create_task(collect())
    for _ in range(1000):
        if poll.polls >= polls:
            break
        await asyncio.sleep(0.01)
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return seen


def watch_of(poll: ScriptedPoll, opts: WatchOpts) -> AsyncGenerator[EndpointsUpdate, None]:
    return refresh_loop("fake", poll, WatchedUpstreams([gce_upstream("web")]), opts, lambda u: True)


def test_a_drop_to_no_endpoints_is_applied_only_when_the_next_poll_confirms_it() -> None:
    async def one_watch() -> None:
        poll = ScriptedPoll(["10.0.0.1", "10.0.0.2"])
        updates: list[EndpointsUpdate] = []
        watch = watch_of(poll, WatchOpts(refresh_interval=0.05))
        updates.append(await asyncio.wait_for(anext(watch), 5))
        poll.addresses = []
        polls_before = poll.polls
        # The poll after the empty one waits: the loop has handled exactly one empty answer once it
        # starts (a 10 ms check could come after the second empty poll on a loaded machine).
        poll.hold(polls_before + 2)
        nxt = asyncio.ensure_future(anext(watch))
        await poll.started(polls_before + 2)
        await asyncio.sleep(0)
        assert not nxt.done()  # one empty answer: not applied
        poll.addresses = ["10.0.0.1", "10.0.0.2"]  # the glitch clears: never applied at all
        poll.release()
        for _ in range(5):
            start = poll.polls
            while poll.polls == start:
                await asyncio.sleep(0.01)
        assert not nxt.done()
        poll.addresses = []  # a real scale to zero: lands once two polls agree
        updates.append(await asyncio.wait_for(nxt, 5))
        assert updates[-1].upstreams[WEB].endpoints == ()
        assert poll.polls >= 2
        await watch.aclose()

    asyncio.run(one_watch())


def test_a_shrink_reported_with_an_error_waits_for_the_next_poll() -> None:
    async def body() -> None:
        poll = ScriptedPoll(["10.0.0.1", "10.0.0.2"])
        watch = watch_of(poll, WatchOpts(refresh_interval=0.05))
        assert addresses(await asyncio.wait_for(anext(watch), 5)) == ["10.0.0.1", "10.0.0.2"]
        # One of two groups missing (404) once: the upstream keeps both until the next poll agrees.
        poll.addresses, poll.error = ["10.0.0.1"], "instance group b not found"
        start = poll.polls
        poll.hold(start + 2)  # as above: the loop has handled exactly the one erroring answer
        nxt = asyncio.ensure_future(anext(watch))
        await poll.started(start + 2)
        await asyncio.sleep(0)
        assert not nxt.done()
        poll.release()
        update = await asyncio.wait_for(nxt, 5)  # the next poll says the same: applied
        assert addresses(update) == ["10.0.0.1"]
        assert poll.polls >= start + 2
        # A shrink without an error (a scale-down) is applied at once.
        poll.addresses, poll.error = ["10.0.0.3", "10.0.0.4"], None
        assert addresses(await asyncio.wait_for(anext(watch), 5)) == ["10.0.0.3", "10.0.0.4"]
        start = poll.polls
        poll.addresses = ["10.0.0.3"]
        assert addresses(await asyncio.wait_for(anext(watch), 5)) == ["10.0.0.3"]
        assert poll.polls == start + 1
        await watch.aclose()

    asyncio.run(body())


def test_a_hung_poll_is_cancelled_at_its_deadline_reported_and_the_loop_recovers() -> None:
    errors: list[DiscoveryError] = []

    async def body() -> None:
        poll = ScriptedPoll(["10.0.0.1"])
        poll.hang = True
        watch = watch_of(poll, WatchOpts(refresh_interval=0.05, poll_timeout=0.3, on_error=errors.append))
        nxt = asyncio.ensure_future(anext(watch))
        for _ in range(500):
            if errors:
                break
            await asyncio.sleep(0.01)
        assert errors and "did not finish within" in str(errors[0])
        poll.hang = False  # the fault clears: the next poll answers
        assert addresses(await asyncio.wait_for(nxt, 5)) == ["10.0.0.1"]
        await watch.aclose()

    asyncio.run(body())


def test_endpoints_saved_before_a_restart_are_served_stale_while_discovery_fails(tmp_path: Path) -> None:
    stale: list[tuple[UpstreamKey, float]] = []

    async def before() -> None:
        archive = EndpointsArchive(StateStore(tmp_path))
        poll = ScriptedPoll(["10.0.0.1", "10.0.0.2"])
        watch = watch_of(poll, WatchOpts(refresh_interval=60, last_good=archive))
        await asyncio.wait_for(anext(watch), 5)
        await watch.aclose()
        archive.flush()

    async def after() -> None:
        archive = EndpointsArchive(StateStore(tmp_path))
        poll = ScriptedPoll([])
        poll.broken = True  # restarted while the compute API is down
        opts = WatchOpts(refresh_interval=60, last_good=archive, on_stale=lambda k, t: stale.append((k, t)))
        watch = watch_of(poll, opts)
        update = await asyncio.wait_for(anext(watch), 5)
        assert addresses(update) == ["10.0.0.1", "10.0.0.2"]
        await watch.aclose()

    asyncio.run(before())
    asyncio.run(after())
    assert [k for k, _ in stale] == [WEB] and stale[0][1] > 0


def test_saved_endpoints_of_another_target_or_a_corrupt_record_are_not_served(tmp_path: Path) -> None:
    async def save() -> None:
        archive = EndpointsArchive(StateStore(tmp_path))
        watch = watch_of(ScriptedPoll(["10.0.0.1"]), WatchOpts(refresh_interval=60, last_good=archive))
        await asyncio.wait_for(anext(watch), 5)
        await watch.aclose()
        archive.flush()

    async def restart(upstream: Upstream) -> list[EndpointsUpdate]:
        poll = ScriptedPoll([])
        poll.broken = True
        opts = WatchOpts(refresh_interval=60, last_good=EndpointsArchive(StateStore(tmp_path)))
        watch = refresh_loop("fake", poll, WatchedUpstreams([upstream]), opts, lambda u: True)
        return await answers(watch, poll, 1)

    asyncio.run(save())
    other = gce_upstream("web")
    other.upstream_spec.gce.instance_group_name = "elsewhere"
    assert asyncio.run(restart(other)) == []  # found for another group: not this one's endpoints
    for record in tmp_path.rglob("*.rec"):
        record.write_bytes(record.read_bytes()[:-3] + b"xyz")  # bit rot
    assert asyncio.run(restart(gce_upstream("web"))) == []


def test_a_hung_poll_shows_as_a_growing_discovery_age_then_as_failing() -> None:
    now = [1000.0]
    health = DiscoveryHealth(clock=lambda: now[0])

    async def body() -> None:
        poll = ScriptedPoll(["10.0.0.1"])
        opts = WatchOpts(
            refresh_interval=0.05,
            poll_timeout=0.5,
            on_success=health.record_success,
            on_error=lambda err: health.record_error(err.upstream or EVERYTHING, str(err)),
        )
        watch = watch_of(poll, opts)
        await asyncio.wait_for(anext(watch), 5)
        poll.hang = True
        start = poll.polls
        nxt = asyncio.ensure_future(anext(watch))
        while poll.polls == start:
            await asyncio.sleep(0.01)
        now[0] += 60  # the poll hangs: nobody records anything, the age grows at scrape time
        assert health.ages()["default.web"] == (60.0, False)
        for _ in range(300):
            if "*" in health.ages():
                break
            await asyncio.sleep(0.01)
        assert health.ages()["*"][1] is True  # then the deadline makes it a failure
        assert health.ages()["default.web"][0] == 60.0
        nxt.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await nxt
        await watch.aclose()

    asyncio.run(body())
