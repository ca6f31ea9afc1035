"""Injected faults: make matching requests fail (or stall) a given number of times, or until cleared."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, fields
from typing import Any

from gce_plugin.emulator.compute_api import ROUTE_TABLE

FAULTABLE_METHODS = frozenset({name for name, _, _ in ROUTE_TABLE} | {"token"})


@dataclass
class Fault:
    """Matches a request by Compute ``method`` name (e.g. ``instanceGroups.listInstances``, or
    ``token`` for the token endpoint) and/or a ``path`` regex (searched in the canonical URL path,
    ``/compute/v1/projects/...`` or ``/token``), and optionally the HTTP ``verb``.

    ``status`` 0 means "no error": the request is only delayed by ``delay`` seconds and then answered
    normally. ``count`` is how many requests it hits (None: until cleared).
    """

    method: str | None = None
    path: str | None = None
    verb: str | None = None
    status: int = 503
    reason: str | None = None
    message: str | None = None
    delay: float = 0.0
    count: int | None = None
    id: int = 0
    hits: int = 0
    _path_re: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method is None and self.path is None:
            raise ValueError("a fault needs a method name or a path regex to match")
        if self.method is not None and self.method not in FAULTABLE_METHODS:
            raise ValueError(
                f"fault method {self.method!r}: want one of {', '.join(sorted(FAULTABLE_METHODS))}"
            )
        if self.status and not 400 <= self.status <= 599:
            raise ValueError(f"fault status {self.status}: want 0 (delay only) or 400-599")
        if self.delay < 0:
            raise ValueError("fault delay must be >= 0")
        if self.count is not None and self.count < 1:
            raise ValueError("fault count must be >= 1 (or absent: until cleared)")
        try:
            self._path_re = re.compile(self.path) if self.path is not None else None
        except re.error as exc:
            raise ValueError(f"fault path {self.path!r}: {exc}") from None
        if self.verb is not None:
            self.verb = self.verb.upper()

    @classmethod
    def from_dict(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        allowed = {"method", "path", "verb", "status", "reason", "message", "delay", "count"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown fault field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
        try:
            status = int(data.get("status", 503))
            delay = float(data.get("delay", 0.0))
            count = None if data.get("count") is None else int(data["count"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"fault status, delay and count must be numbers: {exc}") from None
        return cls(
            method=data.get("method"),
            path=data.get("path"),
            verb=data.get("verb"),
            status=status,
            reason=data.get("reason"),
            message=data.get("message"),
            delay=delay,
            count=count,
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field but the compiled regex."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.repr}

    def matches(self, method: str, verb: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self._path_re is not None and not self._path_re.search(path):
            return False
        return self.verb is None or self.verb == verb


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, fault: Fault) -> int:
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
            return fault.id

    def take(self, method: str, verb: str, path: str) -> Fault | None:
        """The first fault matching this request, consuming one of its ``count`` (atomically)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, verb, path):
                    fault.hits += 1
                    if fault.count is not None and fault.hits >= fault.count:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self, fault_id: int | None = None) -> int:
        """Remove one fault (or all); returns how many were removed."""
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if fault_id is not None and f.id != fault_id]
            return before - len(self._faults)

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]
