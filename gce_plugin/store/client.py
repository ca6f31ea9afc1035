"""A small asyncio client for etcd's v3 gRPC API: KV, Watch and Lease, over grpc.aio.

Why this and not a client from PyPI (docs/running-replicated.md says more): the messages are
compiled from etcd's own .proto definitions (gce_plugin/store/etcdpb) with the project's pinned
protoc, the transport is grpcio, already a dependency, and nothing touches ``sys.path`` or the
default descriptor pool beyond the ``etcdserverpb``/``mvccpb`` names.

Endpoints: the client talks to one member at a time and moves to the next one when a call fails with
UNAVAILABLE or times out (a member killed, paused, or without a raft leader). Unary calls and lease
refreshes try every member once, pause, and try them all once more before giving up with
``EtcdUnavailable``. A watch stream is not retried here: its caller resumes it from the last
revision it saw (``gce_plugin/store/watch.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from gce_plugin.hostport import join_host_port, parse_host_port
from gce_plugin.store.etcdpb import kv_pb2, rpc_pb2

M = TypeVar("M", bound=Message)
T = TypeVar("T")

_ROUNDS = 2
_ROUND_PAUSE = 1.0  # seconds; etcd's default election timeout is 1 s
# The reasons a member cannot serve a call now, but another member may.
_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# etcd's metadata asking a member to fail a watch when it has no raft leader (clientv3's
# WithRequireLeader): a member cut off from the quorum then ends our watch instead of going quiet.
_REQUIRE_LEADER = (("hasleader", "true"),)
_CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 10_000),  # etcd refuses pings more often than every 5 s
    ("grpc.keepalive_timeout_ms", 5_000),
    # etcd's server closes connections that ping with no stream open (ENHANCE_YOUR_CALM).
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


class EtcdError(Exception):
    """etcd answered with an error, or could not be reached."""


class EtcdUnavailable(EtcdError):
    """No member could serve the call (all down, paused, or without quorum)."""


class Compacted(EtcdError):
    """The revision asked for has been compacted away; ``revision`` is the oldest one left."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"revision compacted (oldest available: {revision})")
        self.revision = revision


@dataclass(frozen=True)
class TlsFiles:
    """Client TLS for etcd: the CA that signed the members' certificates, and an optional client
    certificate and key (for members started with --client-cert-auth)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert is None) != (self.key is None):
            raise ValueError("etcd TLS: a client certificate needs its key and a key its certificate")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca),
            private_key=_read(self.key),
            certificate_chain=_read(self.cert),
        )


def _read(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()


def parse_store_url(url: str) -> list[tuple[str, int]]:
    """``etcd://HOST:PORT[,HOST:PORT...]`` -> [(host, port), ...]. Raises ValueError."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme != "etcd":
        raise ValueError(f"store {url!r}: want etcd://HOST:PORT[,HOST:PORT...]")
    endpoints = [parse_host_port(part.strip()) for part in rest.rstrip("/").split(",") if part.strip()]
    if not endpoints:
        raise ValueError(f"store {url!r}: no HOST:PORT given")
    return endpoints


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that makes a range or watch cover every key starting with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every key


class EtcdClient:
    """Calls to an etcd cluster through one member at a time (see the module docstring)."""

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        tls: TlsFiles | None = None,
        timeout: float = 5.0,
    ) -> None:
        if not endpoints:
            raise ValueError("etcd: no endpoints")
        self.endpoints = [join_host_port(host, port) for host, port in endpoints]
        self.timeout = timeout
        self._credentials = tls.credentials() if tls is not None else None
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._current = 0

    @property
    def current_endpoint(self) -> str:
        return self.endpoints[self._current]

    def _channel(self, index: int) -> grpc.aio.Channel:
        channel = self._channels.get(index)
        if channel is None:
            target = self.endpoints[index]
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.secure_channel(target, self._credentials, options=_CHANNEL_OPTIONS)
            self._channels[index] = channel
        return channel

    def rotate(self) -> None:
        """Use the next member from now on (a stream's caller does this when its stream breaks)."""
        self._current = (self._current + 1) % len(self.endpoints)

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- unary calls ---

    async def _on_members(self, method: str, attempt: Callable[[int], Awaitable[T]]) -> T:
        """``attempt(member index)`` on the current member, then on the next ones while they are
        unavailable: every member once, then, after a pause that outlasts a raft election (a
        proposal made while the members elect a new leader fails), every member once more."""
        errors: list[str] = []
        for round_ in range(_ROUNDS):
            if round_:
                await asyncio.sleep(_ROUND_PAUSE)
            for _ in range(len(self.endpoints)):
                index = self._current
                try:
                    return await attempt(index)
                except grpc.aio.AioRpcError as err:
                    if err.code() not in _RETRY_CODES:
                        raise _error(method, err) from None
                    errors.append(f"{self.endpoints[index]}: {err.code().name} {err.details()}")
                    if self._current == index:
                        self.rotate()
        raise EtcdUnavailable(f"etcd unreachable ({method}): " + "; ".join(errors))

    async def _unary(self, method: str, request: Message, response: type[M]) -> M:
        async def attempt(index: int) -> M:
            call = self._channel(index).unary_unary(
                method, request_serializer=_serialize, response_deserializer=response.FromString
            )
            result: M = await call(request, timeout=self.timeout)
            return result

        return await self._on_members(method, attempt)

    async def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
    ) -> rpc_pb2.RangeResponse:
        request = rpc_pb2.RangeRequest(
            key=key, range_end=range_end, revision=revision, limit=limit, keys_only=keys_only
        )
        return await self._unary("/etcdserverpb.KV/Range", request, rpc_pb2.RangeResponse)

    async def range_all(
        self, prefix: bytes, *, revision: int = 0, page: int = 1000
    ) -> tuple[int, list[kv_pb2.KeyValue]]:
        """Every key under ``prefix`` at one revision (the latest when 0), read in pages of ``page``
        keys: (revision, key-values in key order)."""
        end = prefix_end(prefix)
        start: bytes = prefix
        kvs: list[kv_pb2.KeyValue] = []
        while True:
            reply = await self.range(start, end, revision=revision, limit=page)
            revision = revision or reply.header.revision
            kvs.extend(reply.kvs)
            if not reply.more or not reply.kvs:
                return revision, kvs
            start = reply.kvs[-1].key + b"\0"

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> rpc_pb2.PutResponse:
        request = rpc_pb2.PutRequest(key=key, value=value, lease=lease)
        return await self._unary("/etcdserverpb.KV/Put", request, rpc_pb2.PutResponse)

    async def delete(self, key: bytes, range_end: bytes = b"") -> rpc_pb2.DeleteRangeResponse:
        request = rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end)
        return await self._unary("/etcdserverpb.KV/DeleteRange", request, rpc_pb2.DeleteRangeResponse)

    async def txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        return await self._unary("/etcdserverpb.KV/Txn", request, rpc_pb2.TxnResponse)

    async def compact(self, revision: int) -> None:
        request = rpc_pb2.CompactionRequest(revision=revision, physical=True)
        await self._unary("/etcdserverpb.KV/Compact", request, rpc_pb2.CompactionResponse)

    async def lease_grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds: its id."""
        reply = await self._unary(
            "/etcdserverpb.Lease/LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=ttl), rpc_pb2.LeaseGrantResponse
        )
        if reply.error:
            raise EtcdError(f"lease grant: {reply.error}")
        return int(reply.ID)

    async def lease_revoke(self, lease: int) -> None:
        await self._unary(
            "/etcdserverpb.Lease/LeaseRevoke",
            rpc_pb2.LeaseRevokeRequest(ID=lease),
            rpc_pb2.LeaseRevokeResponse,
        )

    async def lease_keepalive(self, lease: int) -> int:
        """Refresh ``lease`` once: its TTL left in seconds, 0 or less when it has expired."""
        return await self._on_members("LeaseKeepAlive", lambda index: self._keepalive_once(index, lease))

    async def _keepalive_once(self, index: int, lease: int) -> int:
        stream = self._channel(index).stream_stream(
            "/etcdserverpb.Lease/LeaseKeepAlive",
            request_serializer=_serialize,
            response_deserializer=rpc_pb2.LeaseKeepAliveResponse.FromString,
        )
        call = stream(timeout=self.timeout)
        try:
            await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease))
            await call.done_writing()
            async for reply in call:
                return int(reply.TTL)
            return 0
        finally:
            call.cancel()

    # --- watch ---

    async def watch(
        self, key: bytes, range_end: bytes = b"", *, start_revision: int = 0
    ) -> AsyncIterator[rpc_pb2.WatchResponse]:
        """One watch stream on the current member: every WatchResponse with events (the creation
        reply is consumed). Raises ``Compacted`` when ``start_revision`` is gone, ``EtcdUnavailable``
        when the stream breaks (the member died, or lost its leader); the caller resumes."""
        stream = self._channel(self._current).stream_stream(
            "/etcdserverpb.Watch/Watch",
            request_serializer=_serialize,
            response_deserializer=rpc_pb2.WatchResponse.FromString,
        )
        call = stream(metadata=_REQUIRE_LEADER)
        create = rpc_pb2.WatchCreateRequest(key=key, range_end=range_end, start_revision=start_revision)
        try:
            await _send(call, rpc_pb2.WatchRequest(create_request=create))
            async for reply in _replies(call):
                if reply.compact_revision:
                    raise Compacted(int(reply.compact_revision))
                if reply.canceled:
                    raise EtcdUnavailable(f"watch canceled by {self.current_endpoint}: {reply.cancel_reason}")
                if reply.events:
                    yield reply
            raise EtcdUnavailable(f"watch stream from {self.current_endpoint} ended")
        finally:
            call.cancel()


async def _send(call: Any, request: Message) -> None:
    try:
        await call.write(request)
    except grpc.aio.AioRpcError as err:
        raise _error("Watch", err) from None
    except asyncio.InvalidStateError:  # the call already ended: its reply loop says how
        pass


async def _replies(call: Any) -> AsyncIterator[rpc_pb2.WatchResponse]:
    try:
        async for reply in call:
            yield reply
    except grpc.aio.AioRpcError as err:
        raise _error("Watch", err) from None


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _error(method: str, err: grpc.aio.AioRpcError) -> EtcdError:
    details = err.details() or ""
    if err.code() in _RETRY_CODES or err.code() == grpc.StatusCode.CANCELLED:
        return EtcdUnavailable(f"etcd unreachable ({method}): {err.code().name} {details}")
    if "compacted" in details:
        return Compacted(0)
    return EtcdError(f"etcd {method}: {err.code().name} {details}")
