"""What an idle xDS stream keeps in memory (found by the footprint benchmark): streams naming the same
resources share one name set, and nothing keeps a stream's last response once it is written."""

from __future__ import annotations

import gc
import inspect
import tracemalloc
from typing import Any, ClassVar

from gce_plugin.xds import CLUSTER_TYPE, ENDPOINT_TYPE, SnapshotCache, XdsServer
from gce_plugin.xds.streams import DeltaSubscription, NameSet, Stream, shared_names
from tests.xds.xds_testkit import Env, cluster, run_with_server, wait_for


def test_equal_name_sets_are_one_object_and_go_with_their_last_user() -> None:
    first = shared_names(["a", "b", "c"])
    second = shared_names(("c", "b", "a"))
    assert first is second
    assert isinstance(first, NameSet) and first == frozenset({"a", "b", "c"})
    assert shared_names(["a"]) is not first
    key = hash(first)
    del first, second
    gc.collect()
    # Weakly held: a set nobody subscribes to any more is gone.
    from gce_plugin.xds import streams

    assert streams._NAME_SETS.get(key) is None


def test_streams_naming_the_same_assignments_share_the_names() -> None:
    cache = SnapshotCache()
    names = [f"cluster-{i}" for i in range(1000)]
    streams = [Stream(cache, delta=False) for _ in range(3)]
    for stream in streams:
        request = _request(ENDPOINT_TYPE, list(names))
        stream.on_request(request)
    subscriptions = [s._subs[ENDPOINT_TYPE] for s in streams]
    assert subscriptions[0].names == set(names)
    assert subscriptions[1].names is subscriptions[0].names
    assert subscriptions[2].names is subscriptions[0].names
    # One stream changing its names leaves the others alone.
    streams[2].on_request(_request(ENDPOINT_TYPE, names[:10]))
    assert subscriptions[2].names == set(names[:10])
    assert subscriptions[0].names == set(names)


def test_stream_handlers_write_rather_than_yield() -> None:
    """grpc keeps the last message an async-generator handler yielded until the next one; a coroutine
    handler that writes keeps nothing once the write is done."""
    server = XdsServer(SnapshotCache(), "127.0.0.1:0")
    handlers = server._handlers()
    for generic in handlers:
        for handler in generic._method_handlers.values():
            if handler.request_streaming and handler.response_streaming:
                assert inspect.iscoroutinefunction(handler.stream_stream)


def test_a_written_response_is_released() -> None:
    """After a large response is written and ACKed, no stream, generator frame or grpc coroutine keeps
    its bytes (the cache keeps only the memoized body it was joined from)."""

    async def body(env: Env) -> None:
        env.cache.set_resources(CLUSTER_TYPE, {f"c-{i}": cluster(f"c-{i}") for i in range(2000)})
        client = env.ads()
        tracemalloc.start(1)
        try:
            await client.request(CLUSTER_TYPE)
            response = await client.recv()
            await client.ack(response)
            size = len(response.SerializeToString())
            assert size > 100_000
            await wait_for(
                lambda: all(not s._subs[CLUSTER_TYPE].awaiting_ack for s in env.server.streams()),
                what="the ACK",
            )
            gc.collect()
            snapshot = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        kept = [
            trace.size
            for trace in snapshot.traces
            if trace.size >= size - 64 and trace.traceback[0].filename.endswith("xds/streams.py")
        ]
        assert not kept, f"{len(kept)} responses of {size} bytes still referenced"

    run_with_server(body)


def _request(type_url: str, names: list[str]) -> object:
    from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

    return DiscoveryRequest(type_url=type_url, resource_names=names)


def test_a_stream_does_not_hold_its_last_request_while_waiting_for_the_next() -> None:
    """A SotW request lists every subscribed name (~1 MB parsed for 10,000 assignments); grpc's own
    request iterator keeps the last one while it waits for the next, for every idle stream."""
    import asyncio
    import weakref

    class Request:
        pass

    class Reader(Stream):
        """A stream that notes which requests it was given (weakly) instead of applying them."""

        seen: ClassVar[list[weakref.ref[Request]]] = []

        def on_request(self, request: Any) -> None:
            self.seen.append(weakref.ref(request))

    class Context:
        def __init__(self) -> None:
            self.sent = [Request()]
            self.waiting = asyncio.Event()

        async def read(self) -> object:
            if self.sent:
                return self.sent.pop()
            self.waiting.set()
            await asyncio.Event().wait()  # no further request
            return None

    async def main() -> None:
        context = Context()
        stream = Reader(SnapshotCache(), delta=False)
        # As the server reads: context.read() itself, no request iterator in between.
        waiting = asyncio.ensure_future(stream.read(context.read, None))
        await context.waiting.wait()
        gc.collect()
        assert len(stream.seen) == 1
        ref = stream.seen[0]
        assert ref() is None
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)

    asyncio.run(main())


def test_reconnecting_delta_clients_with_the_same_state_share_what_they_have() -> None:
    """A fleet of delta Envoys coming back after a restart each name every assignment they have with
    its version: held per stream until its first response (while it waits for the SendGate), one map
    for all of them rather than one each, and no per-stream list of names still to send."""
    from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest

    cache = SnapshotCache()
    names = [f"cluster-{i}" for i in range(1000)]
    had = {name: f"v-{i}" for i, name in enumerate(names)}
    streams = [Stream(cache, delta=True) for _ in range(3)]
    for stream in streams[:2]:
        stream.on_request(
            DeltaDiscoveryRequest(
                type_url=ENDPOINT_TYPE, resource_names_subscribe=names, initial_resource_versions=had
            )
        )
    streams[2].on_request(
        DeltaDiscoveryRequest(
            type_url=ENDPOINT_TYPE, resource_names_subscribe=names, initial_resource_versions={"x": "1"}
        )
    )
    first, second, other = (s._subs[ENDPOINT_TYPE] for s in streams)
    assert isinstance(first, DeltaSubscription) and isinstance(second, DeltaSubscription)
    assert isinstance(other, DeltaSubscription)
    assert first.initial == had
    assert second.initial is first.initial
    assert other.initial == {"x": "1"} and other.initial is not first.initial
    assert first.names == set(names)
    assert not first.dirty  # its first response considers every subscribed name anyway
