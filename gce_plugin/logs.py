"""Structured logs: one JSON object per line, with any ``extra=`` fields (e.g. ``upstream``)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from gce_plugin import redact

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged too.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Credentials in URLs (a --compute-endpoint with user:password@) never reach a log line.
        return redact.scrub(self._format(record))

    def _format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact.scrub(super().format(record))


def setup(level: str = "info", fmt: str = "json", stream: TextIO = sys.stderr) -> None:
    """Configure the root logger once for a command: ``fmt`` is "json" or "text"."""
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at INFO.
    for noisy in ("googleapiclient", "google.auth", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
