"""Which Envoys are connected and whether each is in sync (``gce-plugin proxy-status``, the admin
port's ``/proxy-status`` and status page): an xDS ``Callbacks`` observer.

Per stream and type: the version last sent, the version last ACKed, and the last NACK's error.
A type is SYNCED when its ACKed version is the cache's latest, STALE when it is not (an update is
in flight, waiting for its ACK, or was NACKed), NOT SENT when the stream has not received it yet.
Fed on the event loop's thread; read from the admin thread (hence the lock).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from gce_plugin.health import iso
from gce_plugin.xds.callbacks import Callbacks
from gce_plugin.xds.streams import Stream

SYNCED, STALE, NOT_SENT = "SYNCED", "STALE", "NOT SENT"


def short_type(type_url: str) -> str:
    """``type.googleapis.com/envoy.config.cluster.v3.Cluster`` -> ``Cluster``."""
    return type_url.rsplit(".", 1)[-1]


@dataclass
class _TypeState:
    sent_version: str = ""
    acked_version: str = ""
    nack_version: str = ""
    nack_error: str = ""
    nack_at: float | None = None


@dataclass
class _StreamState:
    stream: Stream
    types: dict[str, _TypeState] = field(default_factory=dict)


class SyncTracker(Callbacks):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[int, _StreamState] = {}
        self._latest: dict[str, str] = {}

    # -- fed by the control plane and the xDS server (event loop thread) ----------------------------

    def set_latest(self, type_url: str, version: str) -> None:
        """The cache's current version of a type (call after each cache update)."""
        with self._lock:
            self._latest[type_url] = version

    def on_stream_open(self, stream: Stream) -> None:
        with self._lock:
            self._streams[id(stream)] = _StreamState(stream)

    def on_stream_closed(self, stream: Stream) -> None:
        with self._lock:
            self._streams.pop(id(stream), None)

    def on_stream_response(self, stream: Stream, type_url: str, version: str, nonce: str) -> None:
        with self._lock:
            state = self._type(stream, type_url)
            if state is not None:
                state.sent_version = version

    def on_stream_request(self, stream: Stream, type_url: str, version: str, nack: str | None) -> None:
        with self._lock:
            state = self._type(stream, type_url)
            if state is None:
                return
            if nack is None:
                state.acked_version = version
            else:
                state.nack_version, state.nack_error, state.nack_at = version, nack, time.time()

    def _type(self, stream: Stream, type_url: str) -> _TypeState | None:
        entry = self._streams.get(id(stream))
        if entry is None:
            return None
        return entry.types.setdefault(type_url, _TypeState())

    # -- read (any thread) -------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """``{"latest": {type: version}, "proxies": [...]}``, proxies sorted by node id."""
        with self._lock:
            latest = dict(self._latest)
            proxies = [self._describe(entry, latest) for entry in self._streams.values()]
        proxies.sort(key=lambda p: (p["node"], p["stream"], p["connectedSince"]))
        return {"latest": {short_type(t): v for t, v in sorted(latest.items())}, "proxies": proxies}

    @staticmethod
    def _describe(entry: _StreamState, latest: dict[str, str]) -> dict[str, Any]:
        stream = entry.stream
        types: dict[str, Any] = {}
        for type_url in sorted(set(latest) | set(entry.types)):
            state = entry.types.get(type_url, _TypeState())
            if not state.sent_version and not state.acked_version:
                sync = NOT_SENT
            elif state.acked_version and state.acked_version == latest.get(type_url):
                sync = SYNCED
            else:
                sync = STALE
            types[short_type(type_url)] = {
                "status": sync,
                "acked": state.acked_version,
                "sent": state.sent_version,
                "latest": latest.get(type_url, ""),
                "lastNack": (
                    {"version": state.nack_version, "error": state.nack_error, "at": iso(state.nack_at)}
                    if state.nack_at is not None
                    else None
                ),
            }
        return {
            "node": stream.node_id,
            "cluster": stream.node_cluster,
            "address": _peer_address(stream.peer),
            "stream": stream.label,
            "connectedSince": iso(stream.opened_at),
            "types": types,
        }


def _peer_address(peer: str) -> str:
    """gRPC peer strings: ``ipv4:127.0.0.1:5555``, ``ipv6:[::1]:5555`` -> the address part."""
    kind, sep, rest = peer.partition(":")
    return rest if sep and kind in ("ipv4", "ipv6", "unix") else peer
