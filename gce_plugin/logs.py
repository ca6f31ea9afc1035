"""Structured logs on stderr, in one of two formats, both with every ``extra=`` field (e.g.
``upstream``, ``file``, ``field``):

- ``json``: one JSON object per line;
- ``text``: logfmt, ``ts=... level=... logger=... msg="..." upstream=default.web``, for people.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from gce_plugin import redact

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged too.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("json", "text")


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            entry[key] = value
    if record.exc_info:
        entry["exc"] = formatter.formatException(record.exc_info)
    return entry


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Credentials (URL userinfo, tokens) never reach a log line: see redact.scrub.
        return redact.scrub(json.dumps(_fields(record, self), default=str))


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    return json.dumps(text)  # quoted, with quotes, backslashes and newlines escaped


class LogfmtFormatter(logging.Formatter):
    """``key=value`` pairs on one line; values with spaces, quotes or ``=`` are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        line = " ".join(f"{key}={_logfmt_value(value)}" for key, value in _fields(record, self).items())
        return redact.scrub(line)


def setup(level: str = "info", fmt: str = "json", stream: TextIO = sys.stderr) -> None:
    """Configure the root logger once for a command: ``fmt`` is "json" or "text" (logfmt)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at INFO.
    for noisy in ("googleapiclient", "google.auth", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
