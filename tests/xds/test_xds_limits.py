"""What one xDS client may cost: request size and names per request are bounded, a hostile client is
closed without slowing the others, and what it sends reaches the log bounded and rate-limited."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache, XdsServer
from gce_plugin.xds.security import DEFAULT_MAX_UNKNOWN_NAMES, XdsLimits
from tests.xds.xds_testkit import Env, assignments_of, clusters_of, only_stream, wait_for

ROOT = Path(__file__).resolve().parents[2]


def run_limited(test: object, limits: XdsLimits | None = None) -> None:
    async def main() -> None:
        cache = SnapshotCache()
        server = XdsServer(cache, "127.0.0.1:0", limits=limits)
        port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            await asyncio.wait_for(test(Env(cache, server, channel, port)), 60)  # type: ignore[operator]
        finally:
            await channel.close()
            await server.stop(0)

    asyncio.run(main())


@dataclass
class Attack:
    """How a victim client fared while tests/xds/hostile_client.py attacked, and how the attacker's
    stream ended. ``worst_cpu``: the most CPU this process's event loop thread (the server's, and the
    victim client's) spent between one of the victim's cluster updates and its arrival: the work the
    victim waited behind. Unlike the wall-clock ``worst``, it does not grow with what else the machine
    runs (a 2-core CI machine, or other test runs beside this one), so it can be bounded tightly."""

    worst: float
    worst_cpu: float
    outcome: str


async def victim_latency_during_attack(env: Env, names: int, requests: int = 1) -> Attack:
    """The worst delay of a victim client's cluster updates while tests/xds/hostile_client.py (a
    process of its own: its CPU and gRPC state stay out of the server's) sends its requests; and how
    the attacker's stream ended."""
    env.set_clusters("web")
    victim = env.ads(node="victim")
    await victim.request(CLUSTER_TYPE)
    await victim.ack(await victim.recv())
    attacker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.xds.hostile_client",
        *(str(n) for n in (env.port, names, requests)),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert attacker.stdout is not None
    try:
        assert await asyncio.wait_for(attacker.stdout.readline(), 60) == b"sending\n"
        worst, worst_cpu, updates = 0.0, 0.0, 0
        while attacker.returncode is None or updates < 10:  # throughout the attack
            started, started_cpu = time.monotonic(), time.thread_time()
            env.set_clusters("web", f"extra-{updates}")
            response = await victim.recv(timeout=5)
            worst = max(worst, time.monotonic() - started)
            worst_cpu = max(worst_cpu, time.thread_time() - started_cpu)
            assert f"extra-{updates}" in clusters_of(response)
            await victim.ack(response)
            updates += 1
        outcome = (await asyncio.wait_for(attacker.stdout.read(), 30)).decode().strip()
    finally:
        if attacker.returncode is None:
            attacker.kill()
        await attacker.wait()
    return Attack(worst, worst_cpu, outcome)


def placeholders_cpu(count: int) -> float:
    """The CPU (this thread's) to build ``count`` placeholders, each for a name the cache does not
    have: what one request naming that many unknown names cost the loop before the allowance."""
    cache = SnapshotCache()
    started = time.thread_time()
    for i in range(count):
        cache.entry_or_placeholder(ENDPOINT_TYPE, f"unknown-{i}")
    return time.thread_time() - started


def test_a_million_name_request_is_refused_while_another_client_stays_prompt() -> None:
    async def body(env: Env) -> None:
        attack = await victim_latency_during_attack(env, 1_000_000)
        assert attack.outcome == "RESOURCE_EXHAUSTED"
        # Loop CPU, not wall time: see Attack. The wall time stays under victim.recv's 5 s.
        assert attack.worst_cpu < 1.0

    run_limited(body)


@pytest.mark.parametrize("delta", [False, True])
def test_more_names_than_allowed_in_one_request_closes_the_stream(
    delta: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    async def body(env: Env) -> None:
        env.set_clusters("web")
        stub = AggregatedDiscoveryServiceStub(env.channel)
        names = [f"n{i}" for i in range(101)]
        if delta:
            call = stub.DeltaAggregatedResources()
            await call.write(DeltaDiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names_subscribe=names))
        else:
            call = stub.StreamAggregatedResources()
            await call.write(DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=names))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call.read(), 5)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "more than 100 resource names" in (caught.value.details() or "")
        await wait_for(lambda: not env.server.streams(), what="the stream to close")

    run_limited(body, XdsLimits(max_names=100))
    assert "xDS request refused" in caplog.text


def test_a_delta_subscription_growing_past_the_limit_closes_the_stream() -> None:
    async def body(env: Env) -> None:
        env.set_clusters("web")
        call = AggregatedDiscoveryServiceStub(env.channel).DeltaAggregatedResources()
        for batch in range(3):
            names = [f"b{batch}-{i}" for i in range(40)]
            await call.write(DeltaDiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names_subscribe=names))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            while True:
                await asyncio.wait_for(call.read(), 5)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "on one subscription" in (caught.value.details() or "")

    run_limited(body, XdsLimits(max_names=100))


def test_a_request_over_the_size_limit_is_refused_unparsed() -> None:
    async def body(env: Env) -> None:
        call = AggregatedDiscoveryServiceStub(env.channel).StreamAggregatedResources()
        await call.write(DiscoveryRequest(type_url=CLUSTER_TYPE, resource_names=["x" * 5000]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call.read(), 5)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    run_limited(body, XdsLimits(max_request_bytes=4096))


def test_unknown_type_urls_are_logged_at_a_bounded_rate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gce_plugin.xds")

    elapsed = 0.0

    async def body(env: Env) -> None:
        nonlocal elapsed
        started = time.monotonic()
        env.set_clusters("web")
        client = env.ads()
        for i in range(10_000):
            await client.request(f"type.googleapis.com/unknown.{i}")
        await client.request(CLUSTER_TYPE)
        await client.recv()
        await only_stream(env, requests=10_001)
        elapsed = time.monotonic() - started

    run_limited(body)
    ignored = [r for r in caplog.records if "does not serve" in r.getMessage()]
    # The stream's budget: a burst of 10, then one line per 10 s of the stream's life (10,000
    # requests took over 10 s on a loaded 2-core machine: 12 lines, which is the rate, not a leak).
    assert 1 <= len(ignored) <= 11 + int(elapsed // 10)
    assert len(caplog.text) < 20_000


def test_node_ids_and_nack_messages_are_clipped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gce_plugin.xds")

    async def body(env: Env) -> None:
        env.set_clusters("web")
        client = env.ads(node="n" * 1_000_000)
        await client.request(CLUSTER_TYPE)
        response = await client.recv()
        await client.nack(response, error="E" * 1_000_000)
        stream = await only_stream(env, requests=2)
        assert len(stream.node_id) < 300

    run_limited(body)
    [nack] = [r for r in caplog.records if r.getMessage().startswith("xDS NACK")]
    assert "EEEE" in nack.getMessage() and len(nack.getMessage()) < 400
    assert all(len(r.getMessage()) + len(str(getattr(r, "node", ""))) < 1000 for r in caplog.records)


@pytest.mark.parametrize("delta", [False, True])
def test_names_the_cache_does_not_have_are_answered_only_up_to_an_allowance(delta: bool) -> None:
    """A client is entitled to what exists: 90,000 unknown names cost at most 1,000 placeholders,
    while every name that exists is answered."""

    async def body(env: Env) -> None:
        env.set_assignments({f"known-{i}": [8000] for i in range(1500)})
        names = [f"known-{i}" for i in range(1500)] + [f"unknown-{i}" for i in range(90_000)]
        without_allowance = placeholders_cpu(90_000 - DEFAULT_MAX_UNKNOWN_NAMES)
        started = time.thread_time()
        if delta:
            client = env.delta_ads()
            await client.request(ENDPOINT_TYPE, subscribe=names)
            delta_response = await client.recv()
            answered = {r.name for r in delta_response.resources}
        else:
            sotw = env.ads()
            await sotw.request(ENDPOINT_TYPE, names)
            response = await sotw.recv()
            answered = set(assignments_of(response))
        # The loop's CPU for the request and its answer (see Attack), not wall time: under 2 s (the
        # old wall-clock figure, 2.5-4 s on a loaded 2-core machine) and under the placeholders
        # for the unknown names over the allowance, measured here, which the answer once built.
        spent = time.thread_time() - started
        assert spent < min(2.0, without_allowance), (spent, without_allowance)
        assert {f"known-{i}" for i in range(1500)} <= answered
        assert len(answered) == 1500 + 1000

    run_limited(body)


def test_a_flood_of_unknown_names_leaves_another_client_prompt() -> None:
    async def body(env: Env) -> None:
        # Without the allowance, 98,000 placeholders (the unknown names over it) were built in one go
        # per request, on the loop: 0.9 to 2.7 s, during which no other client got anything. Bounded
        # in the loop's CPU (see Attack), against the same build measured here: load on the machine
        # slows both alike, and a server building them again would fail either bound.
        without_allowance = placeholders_cpu(99_000 - DEFAULT_MAX_UNKNOWN_NAMES)
        attack = await victim_latency_during_attack(env, 99_000, requests=5)
        assert attack.worst_cpu < min(0.5, without_allowance), (attack, without_allowance)

    run_limited(body)
