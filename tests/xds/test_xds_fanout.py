"""Fan-out at scale: streams asking for the same names share one serialized body per version, and
full sends (initial syncs) are bounded in how many are built and written at once, in arrival order."""

from __future__ import annotations

import asyncio

from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)

from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache
from gce_plugin.xds.streams import SendGate, Stream, names_key, nonce_field
from tests.xds.xds_testkit import assignment, assignments_of, cluster


def _cache(n: int) -> SnapshotCache:
    cache = SnapshotCache()
    cache.set_resources(CLUSTER_TYPE, {f"c-{i}": cluster(f"c-{i}") for i in range(n)})
    cache.set_resources(ENDPOINT_TYPE, {f"c-{i}": assignment(f"c-{i}", 8000 + i) for i in range(n)})
    return cache


def test_streams_asking_for_the_same_names_share_one_body_per_version() -> None:
    cache = _cache(50)
    names = frozenset(f"c-{i}" for i in range(50))
    body = cache.sotw_body(ENDPOINT_TYPE, names)
    assert cache.sotw_body(ENDPOINT_TYPE, frozenset(set(names))) is body
    tail = cache.sotw_tail(ENDPOINT_TYPE)
    assert cache.sotw_tail(ENDPOINT_TYPE) is tail
    response = DiscoveryResponse.FromString(body + tail)
    assert set(assignments_of(response)) == names
    assert response.version_info == cache.version(ENDPOINT_TYPE)
    # A change makes new ones (the old bytes are never served for the new version).
    cache.update_resources(ENDPOINT_TYPE, {"c-1": assignment("c-1", 9999)})
    changed = cache.sotw_body(ENDPOINT_TYPE, names)
    assert changed is not body
    assert (
        assignments_of(DiscoveryResponse.FromString(changed))["c-1"]
        .endpoints[0]
        .lb_endpoints[0]
        .endpoint.address.socket_address.port_value
        == 9999
    )
    assert cache.sotw_tail(ENDPOINT_TYPE) != tail
    # Holding a name changes what the join holds (no placeholder for it), so that also starts afresh.
    unknown = frozenset({"c-1", "not-yet"})
    assert set(assignments_of(DiscoveryResponse.FromString(cache.sotw_body(ENDPOINT_TYPE, unknown)))) == {
        "c-1",
        "not-yet",
    }
    cache.hold(ENDPOINT_TYPE, ["not-yet"])
    assert set(assignments_of(DiscoveryResponse.FromString(cache.sotw_body(ENDPOINT_TYPE, unknown)))) == {
        "c-1"
    }


def test_initial_syncs_of_many_streams_are_one_join() -> None:
    async def main() -> None:
        cache = _cache(200)
        names = [f"c-{i}" for i in range(200)]
        bodies: list[bytes] = []
        for _ in range(3):
            stream = Stream(cache, delta=False)
            stream.on_request(DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=names))
            stream.wake()
            response = await anext(aiter(stream.responses()))
            bodies.append(response)
            assert len(assignments_of(DiscoveryResponse.FromString(response))) == 200
        shared = cache.sotw_body(ENDPOINT_TYPE, frozenset(names))
        assert all(b.startswith(shared) for b in bodies)

    asyncio.run(main())


def test_the_gate_bounds_concurrent_full_sends_and_serves_in_arrival_order() -> None:
    async def main() -> None:
        gate = SendGate(limit=2, hold=60)
        inside = 0
        most = 0
        order: list[int] = []
        release = asyncio.Event()

        async def send(i: int) -> None:
            nonlocal inside, most
            async with gate.slot():
                order.append(i)
                inside += 1
                most = max(most, inside)
                await release.wait()
                inside -= 1

        tasks = [asyncio.create_task(send(i)) for i in range(6)]
        await asyncio.sleep(0.01)
        assert inside == 2 and order == [0, 1]
        release.set()
        await asyncio.gather(*tasks)
        assert most == 2
        assert order == list(range(6))
        assert gate.waited == 4

    asyncio.run(main())


def test_a_slot_held_too_long_is_given_back() -> None:
    """A client that does not read keeps its write waiting; after ``hold`` seconds the others move on."""

    async def main() -> None:
        gate = SendGate(limit=1, hold=0.05)
        stuck = asyncio.Event()
        got_in = asyncio.Event()

        async def never_done() -> None:
            async with gate.slot():
                await stuck.wait()

        async def next_one() -> None:
            async with gate.slot():
                got_in.set()

        blocker = asyncio.create_task(never_done())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(next_one())
        await asyncio.wait_for(got_in.wait(), 5)
        stuck.set()
        await asyncio.gather(blocker, waiter)

    asyncio.run(main())


def test_a_stream_builds_its_initial_sync_inside_a_gate_slot() -> None:
    async def main() -> None:
        cache = _cache(20)
        gate = SendGate(limit=1, hold=60)
        first = Stream(cache, delta=False, gate=gate)
        second = Stream(cache, delta=False, gate=gate)
        for stream in (first, second):
            stream.on_request(DiscoveryRequest(type_url=CLUSTER_TYPE))
            stream.wake()
        first_responses = aiter(first.responses())
        await anext(first_responses)  # written (in the test's hands) but not done: slot still held
        second_task = asyncio.ensure_future(anext(aiter(second.responses())))
        await asyncio.sleep(0.01)
        assert not second_task.done()  # waiting for the slot
        first.wake()  # the first stream's generator resumes: its write is done, the slot is free
        resumed = asyncio.ensure_future(anext(first_responses))
        response = await asyncio.wait_for(second_task, 5)
        assert len(DiscoveryResponse.FromString(response).resources) == 20
        first.close()
        await asyncio.gather(resumed, return_exceptions=True)

    asyncio.run(main())


def test_nonce_field_is_what_protobuf_encodes() -> None:
    for nonce in ("", "1", "42", "1" * 127, "7" * 128, "n" * 20_000):
        expected = DiscoveryResponse(nonce=nonce).SerializeToString()
        if nonce:
            assert nonce_field(nonce) == expected == DeltaDiscoveryResponse(nonce=nonce).SerializeToString()
        else:  # protobuf omits an empty string; the field spelled out still parses as empty
            assert DiscoveryResponse.FromString(nonce_field(nonce)).nonce == ""


def test_a_change_fanned_out_is_the_shared_bytes_and_each_streams_nonce() -> None:
    async def main() -> None:
        cache = _cache(20)
        names = [f"c-{i}" for i in range(20)]
        streams = []
        for _ in range(3):
            stream = Stream(cache, delta=False)
            stream.on_request(DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=names))
            stream.wake()
            responses = aiter(stream.responses())
            first = DiscoveryResponse.FromString(await anext(responses))
            stream.on_request(
                DiscoveryRequest(
                    type_url=ENDPOINT_TYPE,
                    resource_names=names,
                    version_info=first.version_info,
                    response_nonce=first.nonce,
                )
            )
            streams.append((stream, responses))
        changed = assignment("c-3", 9000)
        cache.update_resources(ENDPOINT_TYPE, {"c-3": changed})
        version = cache.version(ENDPOINT_TYPE)
        prepared = cache.sotw_response(ENDPOINT_TYPE, frozenset({"c-3"}))
        for stream, responses in streams:
            stream.wake()
            sent = await anext(responses)
            nonce = DiscoveryResponse.FromString(sent).nonce
            # Byte for byte what encoding the response for this stream alone gave before: the body,
            # the version and type URL, then the nonce as protobuf encodes it.
            per_stream = (
                cache.sotw_body(ENDPOINT_TYPE, frozenset({"c-3"}))
                + DiscoveryResponse(version_info=version, type_url=ENDPOINT_TYPE).SerializeToString()
                + DiscoveryResponse(nonce=nonce).SerializeToString()
            )
            assert sent == per_stream
            assert sent == prepared + nonce_field(nonce)
            # The same message as one built field by field.
            whole = DiscoveryResponse(version_info=version, type_url=ENDPOINT_TYPE, nonce=nonce)
            whole.resources.add().Pack(changed)
            assert DiscoveryResponse.FromString(sent) == whole
        assert DiscoveryResponse.FromString(prepared).nonce == ""
        # One prepared response per name set and version, shared; a change or a hold starts afresh.
        assert cache.sotw_response(ENDPOINT_TYPE, frozenset({"c-3"})) is prepared
        cache.hold(ENDPOINT_TYPE, ["c-19"])
        assert cache.sotw_response(ENDPOINT_TYPE, frozenset({"c-3"})) is not prepared
        cache.update_resources(ENDPOINT_TYPE, {"c-3": assignment("c-3", 9001)})
        again = cache.sotw_response(ENDPOINT_TYPE, frozenset({"c-3"}))
        assert DiscoveryResponse.FromString(again).version_info == cache.version(ENDPOINT_TYPE) != version
        full = cache.full_state_response(CLUSTER_TYPE)
        assert full == cache.full_state_body(CLUSTER_TYPE) + cache.sotw_tail(CLUSTER_TYPE)
        assert cache.full_state_response(CLUSTER_TYPE) is full

    asyncio.run(main())


def test_an_ack_naming_the_same_list_is_known_without_a_set_and_a_changed_list_still_counts() -> None:
    cache = _cache(5)
    names = [f"c-{i}" for i in range(5)]
    stream = Stream(cache, delta=False)
    stream.on_request(DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=names, response_nonce="x"))
    sub = stream.describe()["types"][ENDPOINT_TYPE]
    assert sub["names"] == 5
    ack = DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=names, version_info="v", response_nonce="9")
    assert names_key(ack) == names_key(DiscoveryRequest(resource_names=names))
    assert names_key(ack) != names_key(DiscoveryRequest(resource_names=list(reversed(names))))
    assert names_key(ack) != names_key(DiscoveryRequest(resource_names=names[:4]))
    stream.on_request(ack)
    # Another order is the same set (looked at, nothing changes); fewer names are fewer names.
    stream.on_request(DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=list(reversed(names))))
    assert stream.describe()["types"][ENDPOINT_TYPE]["names"] == 5
    stream.on_request(DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=names[:2]))
    assert stream.describe()["types"][ENDPOINT_TYPE]["names"] == 2


def test_names_refused_at_intake_are_looked_at_again_when_the_same_request_comes_again() -> None:
    cache = _cache(1)
    request = DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=["c-0", "new-1", "new-2", "new-3"])
    stream = Stream(cache, delta=False, max_unknown_names=1)
    stream.on_request(request)
    assert stream.describe()["types"][ENDPOINT_TYPE]["names"] == 2  # c-0 and one unknown name
    cache.update_resources(ENDPOINT_TYPE, {n: assignment(n, 8000) for n in ("new-1", "new-2", "new-3")})
    stream.on_request(request)  # the same list, byte for byte: now every name exists
    assert stream.describe()["types"][ENDPOINT_TYPE]["names"] == 4
