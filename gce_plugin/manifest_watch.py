"""The manifest directory as a source of upstreams: re-read on change, last good version kept.

Polling (not inotify): manifest directories are small, polling works on every filesystem (bind
mounts, Kubernetes ConfigMap symlink swaps), and a stat per file per second costs nothing.

Settled changes (``settle`` seconds, 0: off): after the first scan, a file's new content is applied
only once it has stayed the same for ``settle`` (a file written in two halves, or truncated then
rewritten, is never applied half-written); a file that disappears (deleted, the directory removed
or recreated) takes its upstreams with it only once it has stayed away for ``settle``; and a change
that would remove more than ``MASS_REMOVAL_SHARE`` of all upstreams at once is applied only when a
read ``settle`` seconds later gives the same set of upstreams.

Last good across restarts (``archive``): every file's accepted upstreams are saved in the state
directory; a file that fails to load and has no last good version in this process (at start-up) is
served from its saved version, reported stale (``stale``, the error text, the control plane's
``/statuses`` and metrics) until it loads again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from gce_plugin import manifests, safe_yaml
from gce_plugin.api import Upstream
from gce_plugin.health import iso
from gce_plugin.last_good import UpstreamArchive
from gce_plugin.plugins.plugin import UpstreamKey, upstream_key
from gce_plugin.redact import clip

log = logging.getLogger(__name__)


MASS_REMOVAL_SHARE = 0.5  # removing more than half of all upstreams at once needs a second read


@dataclass
class _FileState:
    stat: tuple[int, int, int]  # (inode, mtime_ns, size): cheap change detection
    digest: bytes
    # The last good version: (document index, upstream) per upstream.
    documents: manifests.FileDocuments = field(default_factory=list)
    error: str | None = None
    # Set when ``documents`` come from the state directory (saved at this Unix time).
    stale_since: float | None = None


@dataclass
class _Pending:
    """Content seen on disk, not yet applied: applied once unchanged for the settle interval."""

    stat: tuple[int, int, int]
    digest: bytes
    since: float


class ManifestDirectory:
    """Tracks every manifest file of ``directory``; ``scan`` picks up additions, edits and deletions.

    A broken file is reported (file, document, field) and its last good upstreams stay. A file that
    never loaded contributes nothing (unless ``archive`` has its saved version: see the module
    docstring). Duplicates follow ``manifests.merge_files``, as ``discover`` does: the first
    definition in file-name order wins, a later one is an error naming both files (in ``errors`` for
    its file, in ``duplicates`` for the upstream).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        settle: float = 0.0,
        archive: UpstreamArchive | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = safe_yaml.DEFAULT_MAX_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.settle = settle
        self._archive = archive
        self._clock = clock
        self._files: dict[Path, _FileState] = {}
        self._pending: dict[Path, _Pending] = {}
        self._absent: dict[Path, float] = {}  # applied files missing from disk, since
        self._mass: tuple[frozenset[UpstreamKey], float] | None = None  # a held mass removal
        self._scanned = False
        self._upstreams: list[Upstream] = []
        self.errors: dict[Path, str] = {}
        self.duplicates: dict[UpstreamKey, list[manifests.ManifestError]] = {}
        # Each served upstream's file, and the files served from the state directory (saved at).
        self.sources: dict[UpstreamKey, Path] = {}
        self.stale: dict[Path, float] = {}

    def upstreams(self) -> list[Upstream]:
        return list(self._upstreams)

    def degraded(self) -> list[str]:
        """Nothing beyond the files' own errors (``ConfigHealth`` reports those)."""
        return []

    def scan(self) -> bool:
        """Re-read what changed on disk. True when the set of upstreams changed."""
        if not self.directory.is_dir():
            raise FileNotFoundError(f"manifest directory {self.directory} does not exist")
        now = self._clock()
        settling = self._scanned and self.settle > 0
        present = manifests.manifest_files(self.directory)
        changed = self._drop_removed(set(present), now, settling)
        self._pending = {p: v for p, v in self._pending.items() if p in present}
        for path in present:
            changed |= self._read(path, now, settling)
        self._scanned = True
        if changed or self._mass is not None:
            return self._merge(now, settling)
        return False

    def _drop_removed(self, present: set[Path], now: float, settling: bool) -> bool:
        """Forget the files gone from disk (for ``settle`` seconds when settling)."""
        changed = False
        for path in present:
            self._absent.pop(path, None)
        for path in set(self._files) - present:
            since = self._absent.setdefault(path, now)
            if settling and now - since < self.settle:
                if since == now:
                    log.info(
                        "manifest gone; its upstreams stay unless it stays away", extra={"file": str(path)}
                    )
                continue
            log.info("manifest removed", extra={"file": str(path)})
            del self._files[path]
            self._absent.pop(path, None)
            if self._archive is not None:
                self._archive.forget_file(path.name)
            changed = True
        return changed

    def _read(self, path: Path, now: float, settling: bool) -> bool:
        """True when the file's applied content changed (whether or not it loaded)."""
        try:
            st = path.stat()
            stat = (st.st_ino, st.st_mtime_ns, st.st_size)
            old = self._files.get(path)
            if old is not None and old.stat == stat:
                self._pending.pop(path, None)
                return False
            pending = self._pending.get(path)
            data: bytes | None = None  # read again to load it when settled
            if pending is not None and pending.stat == stat:
                if now - pending.since < self.settle:
                    return False  # unchanged, not settled yet
                digest = pending.digest
            else:
                digest, data = self._bounded_read(path)
        except OSError as err:  # vanished between listing and reading: the next scan sees it gone
            log.warning("cannot read manifest", extra={"file": str(path), "error": str(err)})
            return False
        if old is not None and old.digest == digest:
            old.stat = stat
            self._pending.pop(path, None)
            return False
        if settling and (pending is None or pending.digest != digest or now - pending.since < self.settle):
            if pending is None or pending.digest != digest:
                self._pending[path] = _Pending(stat, digest, now)
            else:
                pending.stat = stat
            return False
        self._pending.pop(path, None)
        return self._load(path, stat, digest, old, data)

    def _bounded_read(self, path: Path) -> tuple[bytes, bytes | None]:
        """The file's digest for change detection and its bytes (loaded as they are, not read
        again), read within the loader's limits; a refused file's refusal stands for its content."""
        try:
            data = safe_yaml.read_file(path, self.directory, self.max_bytes)
        except safe_yaml.LimitError as err:  # refused before (or instead of) reading it
            return hashlib.sha256(str(err).encode()).digest(), None
        return hashlib.sha256(data).digest(), data

    def _load(
        self,
        path: Path,
        stat: tuple[int, int, int],
        digest: bytes,
        old: _FileState | None,
        data: bytes | None,
    ) -> bool:
        state = _FileState(
            stat=stat,
            digest=digest,
            documents=old.documents if old else [],
            stale_since=old.stale_since if old else None,
        )
        self._files[path] = state
        try:
            state.documents = manifests.load_documents(
                path, root=self.directory, max_bytes=self.max_bytes, data=data
            )
        except Exception as err:  # ManifestError, or a loader bug: either way, this file only
            state.error = (
                str(err) if isinstance(err, manifests.ManifestError) else clip(f"{path}: {err!r}", 500)
            )
            if old is None:
                self._restore(path, state)
            kept = len(state.documents)
            log.error(
                "bad manifest; keeping its last good version",
                extra={"file": str(path), "error": state.error, "kept_upstreams": kept},
            )
            return True
        state.stale_since = None
        if self._archive is not None:
            self._archive.save_file(path.name, state.documents)
        log.info("manifest loaded", extra={"file": str(path), "upstreams": len(state.documents)})
        return True

    def _restore(self, path: Path, state: _FileState) -> None:
        """A file with no last good version in this process: its saved one, if any (stale)."""
        saved = self._archive.load_file(path.name) if self._archive is not None else None
        if saved is None:
            return
        state.documents, state.stale_since = saved
        state.error = (
            f"{state.error} (serving its last accepted version, saved at {iso(state.stale_since)}: stale)"
        )

    def _merge(self, now: float, settling: bool) -> bool:
        kept, duplicates = manifests.merge_files({p: s.documents for p, s in self._files.items()})
        errors = {p: s.error for p, s in self._files.items() if s.error}
        self.duplicates = {}
        for key, err in duplicates:
            path = Path(err.path)
            errors[path] = "; ".join(filter(None, (errors.get(path), str(err))))
            self.duplicates.setdefault(key, []).append(err)
            log.error("duplicate upstream ignored", extra={"file": err.path, "error": str(err)})
        self.errors = errors
        self.stale = {p: s.stale_since for p, s in self._files.items() if s.stale_since is not None}
        new = sorted((u for upstreams in kept.values() for u in upstreams), key=upstream_key)
        if settling and self._mass_removal_held(new, now):
            return False
        self.sources = {upstream_key(u): path for path, upstreams in kept.items() for u in upstreams}
        if new == self._upstreams:
            return False
        self._upstreams = new
        return True

    def _mass_removal_held(self, new: list[Upstream], now: float) -> bool:
        """Whether ``new`` removes more than MASS_REMOVAL_SHARE of the upstreams and has not yet been
        read the same ``settle`` seconds apart (then it is held, and the old set served)."""
        old = {upstream_key(u) for u in self._upstreams}
        keys = frozenset(upstream_key(u) for u in new)
        if len(old - keys) <= MASS_REMOVAL_SHARE * len(old):
            self._mass = None
            return False
        if self._mass is None or self._mass[0] != keys:
            self._mass = (keys, now)
            log.warning(
                "a change removes %d of %d upstreams; applied only if the directory reads the same in %.1fs",
                len(old - keys),
                len(old),
                self.settle,
            )
            return True
        if now - self._mass[1] < self.settle:
            return True
        self._mass = None
        return False

    async def watch(self, interval: float = 1.0) -> AsyncIterator[list[Upstream]]:
        """Yield the upstreams now, then again after every change. The directory must exist at
        first; if it vanishes later (a remount), the last good upstreams stay until it is back."""
        await asyncio.to_thread(self.scan)
        yield self.upstreams()
        unreadable = False
        while True:
            await asyncio.sleep(interval)
            try:
                changed = await asyncio.to_thread(self.scan)
            except OSError as err:
                if not unreadable:  # once per outage, not every interval
                    log.error("cannot read the manifest directory; keeping the last good upstreams: %s", err)
                unreadable = True
                continue
            unreadable = False
            if changed:
                yield self.upstreams()
