"""Exact, thread-safe request accounting: calls per Compute method and the last requests seen."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

from gce_plugin import redact

RECENT = 200  # requests kept for inspection


@dataclass(frozen=True)
class RequestRecord:
    method: str  # Compute method name (e.g. "instances.list"), "token", or "" when nothing matched
    verb: str
    path: str
    status: int
    authorization: str | None  # the scheme and a fingerprint of the credential (redact.authorization)
    at: float


class RequestStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def record(self, method: str, verb: str, path: str, status: int, authorization: str | None) -> None:
        # Never kept in clear: /admin/stats may be read by anyone who can reach the emulator, and a
        # misconfigured client may send real credentials. A fingerprint still tells tokens apart.
        entry = RequestRecord(method, verb, path, status, redact.authorization(authorization), time.time())
        with self._lock:
            if method == "token":
                self._tokens += 1
            elif method:
                self._counts[method] += 1
                self._statuses[status] += 1
                self._total += 1
            else:
                self._unmatched += 1
            self._recent.append(entry)

    def snapshot(self) -> dict[str, Any]:
        """``counts`` per Compute method, ``total`` Compute calls, ``statuses`` of those calls,
        ``unmatched`` (unknown paths), ``token_requests``, and ``requests``: the last ones, oldest first."""
        with self._lock:
            recent = list(self._recent)
            return {
                "counts": dict(self._counts),
                "total": self._total,
                "statuses": {str(k): v for k, v in self._statuses.items()},
                "unmatched": self._unmatched,
                "token_requests": self._tokens,
                "last_authorization": next((r.authorization for r in reversed(recent) if r.method), None),
                "requests": [asdict(r) for r in recent],
            }

    def reset(self) -> None:
        """Back to no requests seen (the state a new RequestStats starts in)."""
        with self._lock:
            self._counts: Counter[str] = Counter()
            self._statuses: Counter[int] = Counter()
            self._total = self._unmatched = self._tokens = 0
            self._recent: deque[RequestRecord] = deque(maxlen=RECENT)
