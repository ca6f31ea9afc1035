"""The xDS gRPC server (grpc.aio): ADS and the standalone discovery services of every cache type.

Each stream runs as two tasks of its own: one reads requests, one writes responses. Neither holds
anything another stream needs, so a client that stops reading backs up only its own stream.
Responses are written as ready-made bytes (the handlers have no response serializer): the bytes come
from joins of the cache's per-resource encodings, never from a per-client re-serialization.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DiscoveryRequest,
    DiscoveryResponse,
)

from gce_plugin import metrics
from gce_plugin.hostport import parse_host_port
from gce_plugin.xds.cache import SnapshotCache
from gce_plugin.xds.callbacks import NO_CALLBACKS, Callbacks
from gce_plugin.xds.security import XdsLimits, XdsTls, warn_if_exposed
from gce_plugin.xds.streams import FellBehind, SendGate, Stream

log = logging.getLogger(__name__)

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"

_DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Fail loudly if the port is taken instead of silently sharing it.
    ("grpc.so_reuseport", 0),
    # Envoy may send keepalive pings on an idle stream.
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
)


class XdsServer:
    """Serves a ``SnapshotCache`` over xDS. Types registered on the cache after ``start()`` are served
    on ADS only (the standalone services are fixed at start)."""

    def __init__(
        self,
        cache: SnapshotCache,
        address: str = "127.0.0.1:18000",
        *,
        options: Sequence[tuple[str, Any]] = (),
        full_sends: int = 16,
        callbacks: Callbacks = NO_CALLBACKS,
        tls: XdsTls | None = None,
        limits: XdsLimits | None = None,
    ) -> None:
        self._cache = cache
        self._callbacks = callbacks
        # At most this many full-state responses (initial syncs, resyncs) built and written at once.
        self.gate = SendGate(full_sends)
        self._address = address
        self._tls = tls
        self.limits = limits = limits or XdsLimits()
        # A request over the limit is refused by gRPC before it is parsed.
        size = [("grpc.max_receive_message_length", limits.max_request_bytes)]
        self._options = list(_DEFAULT_OPTIONS) + size + list(options)
        self._server: grpc.aio.Server | None = None
        self._streams: set[Stream] = set()
        self._no_streams = asyncio.Event()
        self._no_streams.set()
        self.port = 0

    async def start(self) -> int:
        """Bind and serve; returns the bound port (ask for port 0 to get a free one)."""
        if self._server is not None:
            raise RuntimeError("xDS server already started")
        credentials = self._tls.credentials() if self._tls is not None else None
        server = grpc.aio.server(options=self._options)
        server.add_generic_rpc_handlers(self._handlers())
        try:
            if credentials is not None:
                port: int = server.add_secure_port(self._address, credentials)
            else:
                port = server.add_insecure_port(self._address)
        except RuntimeError as err:
            raise OSError(f"xDS server cannot listen on {self._address}: {err}") from err
        if port == 0:
            raise OSError(f"xDS server cannot listen on {self._address}")
        await server.start()
        self._server = server
        self.port = port
        tls = "none" if self._tls is None else ("mutual" if self._tls.client_ca_file else "server")
        log.info("xDS server listening", extra={"address": self._address, "port": port, "tls": tls})
        warn_if_exposed(parse_host_port(self._address)[0], self._tls)
        return port

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop accepting streams; open streams are cancelled after ``grace`` seconds."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await server.stop(grace)
        # Cancelled streams finish their cleanup (metrics, logs) a moment later; wait for it.
        try:
            async with asyncio.timeout(5):
                await self._no_streams.wait()
        except TimeoutError:
            log.warning("xDS streams still open after stop", extra={"streams": len(self._streams)})

    def connected_clients(self) -> int:
        """Open xDS streams (all services)."""
        return len(self._streams)

    def streams(self) -> list[Stream]:
        return list(self._streams)

    # --- gRPC plumbing

    def _handlers(self) -> list[grpc.GenericRpcHandler]:
        handlers = [
            grpc.method_handlers_generic_handler(
                ADS_SERVICE,
                {
                    "StreamAggregatedResources": self._stream_handler(False, None, "ads"),
                    "DeltaAggregatedResources": self._stream_handler(True, None, "ads-delta"),
                },
            )
        ]
        for rtype in self._cache.types():
            label = rtype.short_name or rtype.message_name
            handlers.append(
                grpc.method_handlers_generic_handler(
                    rtype.service,
                    {
                        rtype.sotw_method: self._stream_handler(False, rtype.type_url, label),
                        rtype.delta_method: self._stream_handler(True, rtype.type_url, f"{label}-delta"),
                        rtype.fetch_method: grpc.unary_unary_rpc_method_handler(
                            _fetch_unimplemented,
                            request_deserializer=DiscoveryRequest.FromString,
                            response_serializer=DiscoveryResponse.SerializeToString,
                        ),
                    },
                )
            )
        return handlers

    def _stream_handler(self, delta: bool, only_type: str | None, label: str) -> grpc.RpcMethodHandler:
        # A coroutine that writes, not an async generator that yields: grpc keeps the last message a
        # handler yielded until the next one, so every idle stream would hold its last response
        # (often its first and largest, megabytes with thousands of resources).
        # The writes are made here, not passed up through another async generator: one generator
        # layer less to resume, twice per stream and change.
        async def handle(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
            await self._serve(context, delta, only_type, label)

        request_type = DeltaDiscoveryRequest if delta else DiscoveryRequest
        # No response serializer: the stream writes serialized bytes.
        return grpc.stream_stream_rpc_method_handler(handle, request_deserializer=request_type.FromString)

    async def _serve(
        self, context: grpc.aio.ServicerContext, delta: bool, only_type: str | None, label: str
    ) -> None:
        stream = Stream(
            self._cache,
            delta=delta,
            only_type=only_type,
            label=label,
            peer=context.peer(),
            max_names=self.limits.max_names,
            max_unknown_names=self.limits.max_unknown_names,
            callbacks=self._callbacks,
            gate=self.gate,
        )
        self._callbacks.on_stream_open(stream)
        unwatch = self._cache.watch(stream.wake)
        # context.read() itself: grpc's request iterator is an async generator that keeps the last
        # request it yielded while waiting for the next one; a SotW request lists every subscribed
        # name (an Envoy's ACK of 10,000 assignments is ~1 MB parsed), so every idle stream would
        # hold one. Stream.read drops each before reading the next.
        reader = asyncio.create_task(stream.read(context.read, grpc.aio.EOF))
        reader.add_done_callback(_reader_done(stream))
        self._streams.add(stream)
        self._no_streams.clear()
        metrics.XDS_CLIENTS.labels(label).inc()
        try:
            async for message in stream.responses():
                await context.write(message)
                del message
            if stream.refused is not None:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, stream.refused)
        except FellBehind as err:
            log.warning(
                "xDS stream fell behind; closing it so the client resyncs",
                extra={"node": stream.node_id, "stream": label, "error": str(err)},
            )
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        finally:
            unwatch()
            reader.cancel()
            self._streams.discard(stream)
            if not self._streams:
                self._no_streams.set()
            metrics.XDS_CLIENTS.labels(label).dec()
            self._callbacks.on_stream_closed(stream)
            log.info(
                "xDS stream closed", extra={"node": stream.node_id, "stream": label, "peer": stream.peer}
            )


def _reader_done(stream: Stream) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.debug("xDS stream read ended: %r", task.exception(), extra={"node": stream.node_id})

    return done


async def _fetch_unimplemented(request: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "use the streaming (SotW or delta) methods")
