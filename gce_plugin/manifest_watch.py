"""The manifest directory as a source of upstreams: re-read on change, last good version kept.

Polling (not inotify): manifest directories are small, polling works on every filesystem (bind
mounts, Kubernetes ConfigMap symlink swaps), and a stat per file per second costs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from gce_plugin import manifests, safe_yaml
from gce_plugin.api import Upstream
from gce_plugin.plugins.plugin import UpstreamKey, upstream_key
from gce_plugin.redact import clip

log = logging.getLogger(__name__)


@dataclass
class _FileState:
    stat: tuple[int, int, int]  # (inode, mtime_ns, size): cheap change detection
    digest: bytes
    # The last good version: (document index, upstream) per upstream.
    documents: manifests.FileDocuments = field(default_factory=list)
    error: str | None = None


class ManifestDirectory:
    """Tracks every manifest file of ``directory``; ``scan`` picks up additions, edits and deletions.

    A broken file is reported (file, document, field) and its last good upstreams stay. A file that
    never loaded contributes nothing. Duplicates follow ``manifests.merge_files``, as ``discover``
    does: the first definition in file-name order wins, a later one is an error naming both files
    (in ``errors`` for its file, in ``duplicates`` for the upstream).
    """

    def __init__(
        self, directory: str | os.PathLike[str], max_bytes: int = safe_yaml.DEFAULT_MAX_BYTES
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._files: dict[Path, _FileState] = {}
        self._upstreams: list[Upstream] = []
        self.errors: dict[Path, str] = {}
        self.duplicates: dict[UpstreamKey, list[manifests.ManifestError]] = {}

    def upstreams(self) -> list[Upstream]:
        return list(self._upstreams)

    def degraded(self) -> list[str]:
        """Nothing beyond the files' own errors (``ConfigHealth`` reports those)."""
        return []

    def scan(self) -> bool:
        """Re-read what changed on disk. True when the set of upstreams changed."""
        if not self.directory.is_dir():
            raise FileNotFoundError(f"manifest directory {self.directory} does not exist")
        present = manifests.manifest_files(self.directory)
        changed = False
        for path in set(self._files) - set(present):
            log.info("manifest removed", extra={"file": str(path)})
            del self._files[path]
            changed = True
        for path in present:
            changed |= self._read(path)
        if changed:
            return self._merge()
        return False

    def _read(self, path: Path) -> bool:
        """True when the file's content changed (whether or not it loaded)."""
        try:
            st = path.stat()
            stat = (st.st_ino, st.st_mtime_ns, st.st_size)
            old = self._files.get(path)
            if old is not None and old.stat == stat:
                return False
            data = safe_yaml.read_file(path, self.directory, self.max_bytes)
        except safe_yaml.LimitError as err:  # refused before (or instead of) reading it
            data = str(err).encode()
        except OSError as err:  # vanished between listing and reading: the next scan sees it gone
            log.warning("cannot read manifest", extra={"file": str(path), "error": str(err)})
            return False
        digest = hashlib.sha256(data).digest()
        if old is not None and old.digest == digest:
            old.stat = stat
            return False
        state = _FileState(stat=stat, digest=digest, documents=old.documents if old else [])
        self._files[path] = state
        try:
            state.documents = manifests.load_documents(path, root=self.directory, max_bytes=self.max_bytes)
        except Exception as err:  # ManifestError, or a loader bug: either way, this file only
            state.error = (
                str(err) if isinstance(err, manifests.ManifestError) else clip(f"{path}: {err!r}", 500)
            )
            kept = len(state.documents)
            log.error(
                "bad manifest; keeping its last good version",
                extra={"file": str(path), "error": state.error, "kept_upstreams": kept},
            )
            return True
        log.info("manifest loaded", extra={"file": str(path), "upstreams": len(state.documents)})
        return True

    def _merge(self) -> bool:
        kept, duplicates = manifests.merge_files({p: s.documents for p, s in self._files.items()})
        errors = {p: s.error for p, s in self._files.items() if s.error}
        self.duplicates = {}
        for key, err in duplicates:
            path = Path(err.path)
            errors[path] = "; ".join(filter(None, (errors.get(path), str(err))))
            self.duplicates.setdefault(key, []).append(err)
            log.error("duplicate upstream ignored", extra={"file": err.path, "error": str(err)})
        self.errors = errors
        new = sorted((u for upstreams in kept.values() for u in upstreams), key=upstream_key)
        if new == self._upstreams:
            return False
        self._upstreams = new
        return True

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
