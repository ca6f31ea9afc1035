"""What the control plane persists as "last good", on a ``StateStore`` (gce_plugin/state.py).

- ``EndpointsArchive``: per upstream, its last discovered endpoints and the discovery target they
  were found for (kind ``endpoints``). The refresh loop saves an upstream's endpoints when their
  content version changes (written by a background thread, newest per upstream wins) and, when a
  poll cannot resolve an upstream it has no endpoints for yet (after a restart, with the cloud API
  down), restores them if they were found for the same target.
- ``UpstreamArchive``: per manifest file, its last accepted upstreams (kind ``manifest``); per
  upstream, its last accepted definition (kind ``upstream``). Used by the manifest directory and the
  control plane to serve a file or an upstream that fails validation at start-up from its last
  accepted version.

Records are serialized protobuf messages behind length prefixes; the store checksums them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from gce_plugin.api import Endpoint, Upstream
from gce_plugin.plugins.plugin import UpstreamEndpoints, UpstreamKey
from gce_plugin.state import StateStore

log = logging.getLogger(__name__)


def _pack(parts: Sequence[bytes]) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def unpack(data: bytes) -> Iterator[bytes]:
    """The parts of a ``_pack``ed blob (each behind its 4-byte big-endian length). Raises ValueError."""
    at = 0
    while at < len(data):
        if at + 4 > len(data):
            raise ValueError("truncated length")
        size = int.from_bytes(data[at : at + 4], "big")
        at += 4
        if at + size > len(data):
            raise ValueError("truncated part")
        yield data[at : at + size]
        at += size


def _key_text(key: UpstreamKey) -> str:
    return f"{key[0]}/{key[1]}"


class EndpointsArchive:
    """Last discovered endpoints per upstream (see the module docstring). ``save`` never blocks on the
    disk: the store's writer thread persists the newest endpoints of each upstream."""

    KIND = "endpoints"

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def save(self, key: UpstreamKey, target: bytes, found: UpstreamEndpoints) -> None:
        data = _pack([target, *found.serialized_endpoints()])
        self._store.save_later(self.KIND, _key_text(key), data)

    def forget(self, key: UpstreamKey) -> None:
        """The upstream left: its endpoints are not kept."""
        self._store.delete_later(self.KIND, _key_text(key))

    def load(self, key: UpstreamKey, target: bytes) -> tuple[UpstreamEndpoints, float] | None:
        """The endpoints last saved for ``key`` if they were found for ``target``, and when."""
        record = self._store.load(self.KIND, _key_text(key))
        if record is None:
            return None
        try:
            parts = list(unpack(record.data))
            if not parts or parts[0] != target:
                return None  # found for another target: not this upstream's endpoints any more
            endpoints = [Endpoint.FromString(p) for p in parts[1:]]
        except Exception as exc:  # checksummed, so only a bug or another format: never trusted
            log.error("state record of %s's endpoints unreadable, ignored: %s", _key_text(key), exc)
            return None
        return UpstreamEndpoints.of(endpoints), record.saved_at

    def flush(self) -> None:
        self._store.flush()


class UpstreamArchive:
    """Last accepted manifest files and upstreams (see the module docstring). Writes are queued to
    the store's writer thread."""

    FILES = "manifest"
    UPSTREAMS = "upstream"

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def save_file(self, name: str, documents: Sequence[tuple[int, Upstream]]) -> None:
        parts = [b"%d" % index + b"\0" + u.SerializeToString(deterministic=True) for index, u in documents]
        self._store.save_later(self.FILES, name, _pack(parts))

    def load_file(self, name: str) -> tuple[list[tuple[int, Upstream]], float] | None:
        record = self._store.load(self.FILES, name)
        if record is None:
            return None
        try:
            documents = []
            for part in unpack(record.data):
                index, _, data = part.partition(b"\0")
                documents.append((int(index), Upstream.FromString(data)))
        except Exception as exc:
            log.error("state record of manifest %s unreadable, ignored: %s", name, exc)
            return None
        return documents, record.saved_at

    def forget_file(self, name: str) -> None:
        self._store.delete_later(self.FILES, name)

    def save_upstream(self, upstream: Upstream) -> None:
        key = (upstream.metadata.namespace, upstream.metadata.name)
        self._store.save_later(self.UPSTREAMS, _key_text(key), upstream.SerializeToString(deterministic=True))

    def load_upstream(self, key: UpstreamKey) -> tuple[Upstream, float] | None:
        record = self._store.load(self.UPSTREAMS, _key_text(key))
        if record is None:
            return None
        try:
            return Upstream.FromString(record.data), record.saved_at
        except Exception as exc:
            log.error("state record of upstream %s unreadable, ignored: %s", _key_text(key), exc)
            return None

    def forget_upstream(self, key: UpstreamKey) -> None:
        self._store.delete_later(self.UPSTREAMS, _key_text(key))
