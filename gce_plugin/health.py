"""Honest health: what is degraded while the control plane keeps serving its last good config.

``DiscoveryHealth`` tracks, per upstream, discovery's last success and current error;
``ConfigHealth`` tracks whether the manifest directory last loaded cleanly. Both are fed by the
control plane (``record_*``), read from the admin thread (``/statuses``, ``/readyz``'s body, the
status page) and exported as metrics at scrape time (``gce_plugin.metrics.HEALTH``). Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, overload

from gce_plugin.plugins.plugin import upstream_label

Key = tuple[str, str]  # (namespace, name)
# A failure of discovery as a whole (no credentials, a plugin crash), not of one upstream: reported as
# upstream "*" until the next success of any upstream shows discovery works again.
EVERYTHING: Key = ("", "*")


def label(key: Key) -> str:
    return "*" if key == EVERYTHING else upstream_label(key)


@dataclass(frozen=True)
class UpstreamHealth:
    since: float  # when this upstream was first tracked (its age counts from here until a success)
    last_success: float | None = None
    error: str | None = None
    error_since: float | None = None
    # Set while the upstream is served endpoints restored from the state directory (saved then).
    stale_since: float | None = None

    def as_dict(self) -> dict[str, Any]:
        report = {
            "lastSuccess": iso(self.last_success),
            "error": self.error,
            "errorSince": iso(self.error_since),
        }
        if self.stale_since is not None:
            report["staleEndpointsSavedAt"] = iso(self.stale_since)
        return report


@overload
def iso(when: float) -> str: ...
@overload
def iso(when: float | None) -> str | None: ...
def iso(when: float | None) -> str | None:
    """A Unix time as UTC ISO 8601 to the second (``2026-01-31T12:00:00Z``); None stays None."""
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


class DiscoveryHealth:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._upstreams: dict[Key, UpstreamHealth] = {}

    def retain(self, keys: Iterable[Key]) -> None:
        """Forget every upstream not in ``keys`` (removed from the manifests)."""
        keep = {*keys, EVERYTHING}
        with self._lock:
            self._upstreams = {k: h for k, h in self._upstreams.items() if k in keep}

    def record_success(self, key: Key, when: float | None = None) -> None:
        when = self._clock() if when is None else when
        with self._lock:
            self._upstreams[key] = UpstreamHealth(since=self._get(key, when).since, last_success=when)
            self._upstreams.pop(EVERYTHING, None)

    def record_error(self, key: Key, error: str, when: float | None = None) -> None:
        when = self._clock() if when is None else when
        with self._lock:
            old = self._get(key, when)
            since = old.error_since if old.error is not None else when
            self._upstreams[key] = replace(old, error=error, error_since=since)

    def record_stale(self, key: Key, saved_at: float) -> None:
        """``key`` is served endpoints saved at ``saved_at`` (Unix time) by a previous run; stale
        until its next success. Its age counts from when they were saved."""
        with self._lock:
            old = self._get(key, self._clock())
            self._upstreams[key] = replace(
                old, stale_since=saved_at, last_success=old.last_success or saved_at
            )

    def stale(self) -> dict[str, float]:
        """upstream label -> when the stale endpoints it is served were saved."""
        return {label(k): h.stale_since for k, h in self.snapshot().items() if h.stale_since is not None}

    def forget(self, key: Key) -> None:
        with self._lock:
            self._upstreams.pop(key, None)

    def snapshot(self) -> dict[Key, UpstreamHealth]:
        with self._lock:
            return dict(self._upstreams)

    def ages(self) -> dict[str, tuple[float, bool]]:
        """upstream label -> (seconds since its last successful discovery, failing now)."""
        now = self._clock()
        return {
            label(k): (max(0.0, now - (h.last_success or h.since)), h.error is not None)
            for k, h in self.snapshot().items()
        }

    def degraded(self) -> list[str]:
        return [
            f"discovery of {label(k)} failing: {h.error}"
            + (f" (serving endpoints saved at {iso(h.stale_since)})" if h.stale_since is not None else "")
            for k, h in sorted(self.snapshot().items())
            if h.error
        ]

    def _get(self, key: Key, now: float) -> UpstreamHealth:
        return self._upstreams.get(key) or UpstreamHealth(since=now)


class ConfigHealth:
    """Whether the last read of the manifests had errors (``config_last_reload_successful``)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.errors: dict[str, str] = {}
        self.last_success: float | None = None

    def record(self, errors: Mapping[Any, str], when: float | None = None) -> bool:
        """Record the outcome of a (re)load; True when it was clean."""
        when = self._clock() if when is None else when
        with self._lock:
            self.errors = {str(path): str(err) for path, err in errors.items()}
            if not self.errors:
                self.last_success = when
            return not self.errors

    def degraded(self) -> list[str]:
        with self._lock:
            return [f"manifest {path} rejected (last good version kept)" for path in sorted(self.errors)]
