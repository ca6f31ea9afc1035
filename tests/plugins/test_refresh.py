"""The shared refresh loop, with a fake "poll once": what it polls when, what it answers, what it
reports, and the gauge it keeps per upstream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence

import pytest

from gce_plugin import metrics
from gce_plugin.api import Upstream
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
from tests.translation.translation_fakes import endpoint, gce_upstream, static_upstream

WEB: UpstreamKey = ("default", "web")
API: UpstreamKey = ("default", "api")


class FakePoll:
    """Each gce upstream has one endpoint on port 8080, or fails when its name is in ``failing``."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.failing: set[str] = set()
        self.broken = False

    async def __call__(self, upstreams: Sequence[Upstream]) -> PollResult:
        self.batches.append(sorted(u.metadata.name for u in upstreams))
        if self.broken:
            raise DiscoveryError("fake: no credentials")
        result = PollResult()
        for u in upstreams:
            name = u.metadata.name
            if name in self.failing:
                result.errors[upstream_key(u)] = f"{name} failed"
            elif not u.upstream_spec.gce.projectId:
                result.invalid[upstream_key(u)] = f"{name}: projectId required"
            else:
                group = u.upstream_spec.gce.instance_group_name
                found = endpoint(name, "10.0.0.1" if group == name else "10.0.0.2")
                result.found[upstream_key(u)] = UpstreamEndpoints.of([found])
        return result


def gauge(key: UpstreamKey) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "gce_plugin_upstream_endpoints", {"upstream": f"{key[0]}.{key[1]}"}
    )


def is_gce(upstream: Upstream) -> bool:
    return upstream.upstream_spec.HasField("gce")


async def next_answer(watch: AsyncGenerator[EndpointsUpdate, None]) -> EndpointsUpdate:
    return await asyncio.wait_for(anext(watch), timeout=5)


async def settled(poll: FakePoll, count: int) -> None:
    """Until ``count`` batches were polled (with a deadline), then a few more loop turns."""
    for _ in range(500):
        if len(poll.batches) >= count:
            break
        await asyncio.sleep(0.01)
    for _ in range(10):
        await asyncio.sleep(0)


def test_an_edit_polls_only_what_it_changed() -> None:
    poll, errors = FakePoll(), list[DiscoveryError]()

    async def body() -> None:
        watched = WatchedUpstreams([gce_upstream("web"), gce_upstream("api"), static_upstream("db", [])])
        watch = refresh_loop("fake", poll, watched, WatchOpts(600, errors.append), is_gce)
        try:
            first = await next_answer(watch)
            assert first.changed == {WEB, API} and poll.batches == [["api", "web"]]
            assert gauge(WEB) == 1 and gauge(API) == 1
            # Another type's upstream and a common option: nothing to discover again, no answer.
            watched.replace([gce_upstream("web"), gce_upstream("api", use_http2=True)])
            pending = asyncio.ensure_future(next_answer(watch))
            await asyncio.sleep(0.05)
            assert not pending.done() and poll.batches == [["api", "web"]]
            # api pointed at another group: api alone is polled at once.
            repointed = gce_upstream("api")
            repointed.upstream_spec.gce.instance_group_name = "api-v2"
            watched.replace([gce_upstream("web"), repointed])
            second = await pending
            assert poll.batches == [["api", "web"], ["api"]]
            assert second.changed == {API} and second.removed == frozenset()
            assert second.upstreams[API].endpoints[0].address == "10.0.0.2"
            assert second.upstreams[WEB] == first.upstreams[WEB]
            # api removed: an answer that says so, its gauge goes, web's stays.
            watched.replace([gce_upstream("web")])
            third = await next_answer(watch)
            assert third.removed == {API} and third.changed == frozenset()
            assert poll.batches == [["api", "web"], ["api"]]
            assert gauge(API) is None and gauge(WEB) == 1
        finally:
            await watch.aclose()
        assert gauge(WEB) is None  # a watch that ends takes its gauges with it
        assert errors == []

    asyncio.run(body())


def test_every_interval_polls_everything_and_answers_changes_only() -> None:
    poll = FakePoll()

    async def body() -> None:
        watched = WatchedUpstreams([gce_upstream("web"), gce_upstream("api")])
        watch = refresh_loop("fake", poll, watched, WatchOpts(0.02), is_gce)
        try:
            await next_answer(watch)
            pending = asyncio.ensure_future(next_answer(watch))
            await settled(poll, 3)
            assert not pending.done()  # polled again, nothing changed: nothing said
            assert poll.batches[:3] == [["api", "web"]] * 3
            poll.failing.add("web")
            await settled(poll, len(poll.batches) + 2)
            assert not pending.done()  # a failed upstream keeps its last good endpoints
            assert gauge(WEB) == 1
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        finally:
            await watch.aclose()

    asyncio.run(body())


def test_a_poll_that_fails_as_a_whole_is_reported_and_retried() -> None:
    poll, errors = FakePoll(), list[DiscoveryError]()
    poll.broken = True

    async def body() -> EndpointsUpdate:
        watch = refresh_loop(
            "fake", poll, WatchedUpstreams([gce_upstream("web")]), WatchOpts(0.01, errors.append), is_gce
        )
        try:
            pending = asyncio.ensure_future(next_answer(watch))
            await settled(poll, 2)
            assert not pending.done()  # nothing known yet: no answer
            poll.broken = False
            return await pending
        finally:
            await watch.aclose()

    first = asyncio.run(body())
    assert first.changed == {WEB}
    assert len(errors) >= 2 and str(errors[0]) == "fake: no credentials" and errors[0].upstream is None


def test_a_spec_error_is_reported_once_per_spec() -> None:
    poll, errors = FakePoll(), list[DiscoveryError]()
    bad = gce_upstream("web")
    bad.upstream_spec.gce.projectId = ""

    async def body() -> None:
        watched = WatchedUpstreams([bad])
        watch = refresh_loop("fake", poll, watched, WatchOpts(0.01, errors.append), is_gce)
        try:
            assert await next_answer(watch) == EndpointsUpdate()
            pending = asyncio.ensure_future(next_answer(watch))
            await settled(poll, 4)
            assert len(poll.batches) >= 4
            assert [str(e) for e in errors] == ["web: projectId required"]
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        finally:
            await watch.aclose()

    asyncio.run(body())


def test_without_upstreams_of_its_type_it_answers_once_and_polls_nothing() -> None:
    poll = FakePoll()

    async def body() -> None:
        watched = WatchedUpstreams([static_upstream("db", [])])
        watch = refresh_loop("fake", poll, watched, WatchOpts(0.01), is_gce)
        try:
            assert await next_answer(watch) == EndpointsUpdate()
            watched.replace([static_upstream("db", []), gce_upstream("web")])
            assert (await next_answer(watch)).changed == {WEB}
        finally:
            await watch.aclose()
        assert poll.batches == [["web"]]

    asyncio.run(body())


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_waiting_for_a_change_with_no_time_left_returns_at_once(interval: float) -> None:
    watched = WatchedUpstreams()
    assert asyncio.run(watched.wait_changed(0, interval)) is False


@pytest.mark.parametrize("turns", range(6))
def test_a_cancel_as_a_poll_ends_stops_the_watch(turns: int) -> None:
    """The consumer's cancel lands in every loop turn around the end of a poll (Python 3.11's
    ``asyncio.wait_for`` drops a cancel that arrives as the awaited poll completes): the watch must
    end every time, or a SIGTERM never ends the process."""
    release = asyncio.Event()
    inner = FakePoll()

    async def poll(upstreams: Sequence[Upstream]) -> PollResult:
        await release.wait()
        return await inner(upstreams)

    async def body() -> None:
        watched = WatchedUpstreams([gce_upstream("web")])
        watch = refresh_loop("fake", poll, watched, WatchOpts(600), is_gce)

        async def consume() -> None:
            async for _ in watch:
                pass

        task = asyncio.ensure_future(consume())
        for _ in range(5):
            await asyncio.sleep(0)
        release.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done == {task} and task.cancelled()

    asyncio.run(body())
