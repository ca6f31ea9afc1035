"""Last good state that survives a restart: a directory of named records, each checksummed.

The control plane keeps "the last good version" of what it serves (a manifest file's upstreams, an
upstream's last accepted definition, an upstream's last discovered endpoints) in memory; this module
keeps the same on disk, so a restart with a broken manifest or an unreachable cloud API serves what
was served before instead of nothing. Any source of configuration can use it (manifests, discovery,
etcd): the API is four calls on opaque bytes.

- ``StateStore(directory)``; ``save(kind, key, data)`` writes one record atomically (a temporary file,
  fsync, rename); ``save_later`` (and ``delete_later``) queue it for a background writer thread (the
  newest data per record wins; ``flush`` writes what is queued), so a caller on the event loop never
  waits for a disk; ``load(kind, key)`` returns a record (``Record``: data and when it was saved) or
  None, queued data first; ``delete(kind, key)``.
- A record is one file, ``<directory>/<kind>/<sha256 of key>.rec``: a JSON header line (the key, the
  sha256 of the data, the save time, the format version) then the data. A record whose checksum, key
  or header does not match is corrupt: ``load`` logs an error naming the file, counts it in
  ``gce_plugin_state_corrupt_records_total`` and returns None (never trusted, never deleted, so an
  operator can look at it). A store that cannot be written logs an error and goes on (the state is
  a fallback, never a reason to stop serving).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter

from gce_plugin import metrics

log = logging.getLogger(__name__)

FORMAT = 1
_KIND = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
# Records larger than this are refused on read (a state directory is small; a huge file is not ours).
MAX_RECORD_BYTES = 256 * 1024 * 1024

CORRUPT_RECORDS = Counter(
    "gce_plugin_state_corrupt_records",
    "State records (last good manifests, upstreams, endpoints) found corrupt and ignored.",
    ["kind"],
    registry=metrics.REGISTRY,
)
WRITE_ERRORS = Counter(
    "gce_plugin_state_write_errors",
    "Failed writes to the state directory (the last good state is then not persisted).",
    ["kind"],
    registry=metrics.REGISTRY,
)


@dataclass(frozen=True)
class Record:
    data: bytes
    saved_at: float  # Unix time


class StateStore:
    """Checksummed records under ``directory`` (created on first write). Thread-safe."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        # Queued writes: (kind, key) -> (data, when queued), or None for a deletion.
        self._queued: dict[tuple[str, str], tuple[bytes, float] | None] = {}
        self._queue_lock = threading.Lock()
        self._wake = threading.Condition(self._queue_lock)
        self._io = threading.Lock()  # one queued write at a time (flush waits for one in progress)
        self._writer: threading.Thread | None = None

    def save_later(self, kind: str, key: str, data: bytes) -> None:
        self._enqueue(kind, key, (data, time.time()))

    def delete_later(self, kind: str, key: str) -> None:
        self._enqueue(kind, key, None)

    def flush(self) -> None:
        """Write every queued record now, in the caller's thread."""
        while self._write_next():
            pass

    def _enqueue(self, kind: str, key: str, item: tuple[bytes, float] | None) -> None:
        self._checked(kind)
        with self._queue_lock:
            self._queued[(kind, key)] = item
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._drain, name="state-writer", daemon=True)
                self._writer.start()
            self._wake.notify()

    def _drain(self) -> None:
        while True:
            with self._queue_lock:
                if not self._queued and not self._wake.wait(timeout=5.0):
                    self._writer = None
                    return
            self._write_next()

    def _write_next(self) -> bool:
        with self._io:
            with self._queue_lock:
                if not self._queued:
                    return False
                (kind, key), item = next(iter(self._queued.items()))
                del self._queued[(kind, key)]
            if item is None:
                self.delete(kind, key)
            else:
                self.save(kind, key, item[0])
            return True

    def save(self, kind: str, key: str, data: bytes) -> bool:
        """Write ``data`` as the record ``key`` of ``kind``; False (logged) when it cannot be written."""
        path = self._path(kind, key)
        header = {
            "format": FORMAT,
            "key": key,
            "sha256": hashlib.sha256(data).hexdigest(),
            "saved": time.time(),
        }
        blob = json.dumps(header, sort_keys=True).encode() + b"\n" + data
        try:
            with self._lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
                try:
                    with os.fdopen(fd, "wb") as out:
                        out.write(blob)
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(tmp, path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
        except OSError as err:
            WRITE_ERRORS.labels(kind=kind).inc()
            log.error("cannot write the state record %s: %s", path, err.strerror or err)
            return False
        return True

    def load(self, kind: str, key: str) -> Record | None:
        """The record, or None when there is none or it is corrupt (logged loudly, never trusted)."""
        with self._queue_lock:
            if (kind, key) in self._queued:
                queued = self._queued[(kind, key)]
                return None if queued is None else Record(*queued)
        path = self._path(kind, key)
        try:
            if path.stat().st_size > MAX_RECORD_BYTES:
                return self._corrupt(kind, path, "larger than any record this process writes")
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            log.error("cannot read the state record %s: %s", path, err.strerror or err)
            return None
        head, sep, data = blob.partition(b"\n")
        try:
            header = json.loads(head) if sep else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            return self._corrupt(kind, path, "no valid header")
        if header.get("key") != key:
            return self._corrupt(kind, path, "it belongs to another key")
        if header.get("sha256") != hashlib.sha256(data).hexdigest():
            return self._corrupt(kind, path, "checksum mismatch")
        saved = header.get("saved")
        return Record(data, float(saved) if isinstance(saved, int | float) else 0.0)

    def delete(self, kind: str, key: str) -> None:
        with self._lock, contextlib.suppress(FileNotFoundError):
            self._path(kind, key).unlink()

    def _path(self, kind: str, key: str) -> Path:
        name = hashlib.sha256(key.encode()).hexdigest()[:40]
        return self.directory / self._checked(kind) / f"{name}.rec"

    @staticmethod
    def _checked(kind: str) -> str:
        if not _KIND.match(kind):
            raise ValueError(f"state kind {kind!r}: want lower-case letters, digits and dashes")
        return kind

    @staticmethod
    def _corrupt(kind: str, path: Path, why: str) -> None:
        CORRUPT_RECORDS.labels(kind=kind).inc()
        log.error("CORRUPT STATE RECORD IGNORED: %s: %s (it is left in place for inspection)", path, why)
        return None


def default_state_dir(config_dir: str | os.PathLike[str]) -> Path:
    """The state directory of a manifest directory: ``$GCE_PLUGIN_STATE_DIR``, else
    ``$XDG_STATE_HOME/gce-plugin/<hash>``, else ``~/.local/state/gce-plugin/<hash>``, where ``<hash>``
    names the manifest directory's absolute path (two control planes never share state by accident)."""
    explicit = os.environ.get("GCE_PLUGIN_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    digest = hashlib.sha256(os.path.abspath(config_dir).encode()).hexdigest()[:16]
    return Path(base) / "gce-plugin" / digest
