"""Hooks into the xDS protocol, as go-control-plane's ``server.Callbacks``: observers (sync status,
metrics, logs) implement the ones they need; the protocol code only calls them. Every hook runs on
the event loop's thread and must not block or raise."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gce_plugin.xds.streams import Stream


class Callbacks:
    """No-op base: override what you observe."""

    def on_stream_open(self, stream: Stream) -> None:
        """A stream was opened (its node id arrives with its first request)."""

    def on_stream_request(self, stream: Stream, type_url: str, version: str, nack: str | None) -> None:
        """The client ACKed (``nack`` None) or NACKed (``nack`` = its error_detail message) the
        response of ``type_url`` that carried ``version``."""

    def on_stream_response(self, stream: Stream, type_url: str, version: str, nonce: str) -> None:
        """A response was written to the stream."""

    def on_stream_closed(self, stream: Stream) -> None:
        """The stream ended."""


NO_CALLBACKS = Callbacks()
