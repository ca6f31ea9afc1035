"""What the process lets out of text it did not write: bounded, and free of credentials.

One place for the policy, used by every log line and error message that carries a value from a
manifest file or an xDS client (node ids, NACK messages, type URLs, field names, values):

- ``clip(text)``: a string cut to a bounded length, saying how much was cut.
- ``show(value)``: a value's repr for an error message, bounded in size *and* in the work to make it
  (``reprlib``: a huge nested value is never fully walked).
- ``field_name(key)``: a mapping key as part of a field path; a key that does not look like a field
  name (a line of a file that is not a manifest) is described, never quoted.
- ``scrub(text)``: ``scheme://user:password@host`` -> ``scheme://***@host``; also secret query
  parameters and bearer tokens. Every log line goes through it (``logs.py``).
- ``fingerprint(secret)``: a short, stable digest naming a credential without revealing it.
"""

from __future__ import annotations

import hashlib
import re
import reprlib

# Longest client- or file-supplied string a log line or an error message carries.
MAX_TEXT = 200
# Longest value shown in an error message.
MAX_VALUE = 60

# Field names, and label/annotation keys (``example.com/name``).
_FIELD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,252}")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")
# Credentials in a query string, and bearer tokens quoted from headers.
_QUERY_SECRET = re.compile(r"(?P<name>[?&](?:access_token|token|key|password)=)[^&#\s\"']+", re.IGNORECASE)
# "user:password@host" without a scheme (as HTTP libraries quote a host they could not resolve).
_BARE_USERINFO = re.compile(r"(?<![\w/*])[^\s/@:\"'=]+:[^\s/@\"']+@(?=[\w\[])")
_BEARER = re.compile(r"(?P<scheme>\bBearer\s+)(?!sha256:)[A-Za-z0-9._~+/=-]+")


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` if it is at most ``limit`` characters, else its start and how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


class _BoundedRepr(reprlib.Repr):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxstring = limit
        self.maxother = limit
        self.maxlong = limit
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = 4


def show(value: object, limit: int = MAX_VALUE) -> str:
    """A bounded repr of ``value`` for an error message (strings keep their quotes)."""
    return clip(_BoundedRepr(limit).repr(value), limit + 20)


def field_name(key: object) -> str:
    """``key`` as a segment of a field path: as written when it looks like a field name, else a
    description (its type and length), so no arbitrary file content reaches a message."""
    if isinstance(key, str) and _FIELD_NAME.fullmatch(key):
        return key
    if isinstance(key, str):
        return f"<a key of {len(key)} characters>"
    return f"<a {type(key).__name__} key>"


def scrub(text: str) -> str:
    """``text`` with credentials replaced by ``***``: the userinfo of every URL, secret query
    parameters (``access_token``, ``token``, ``key``, ``password``) and bearer tokens."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    text = _BARE_USERINFO.sub("***@", text)
    text = _QUERY_SECRET.sub(r"\g<name>***", text)
    return _BEARER.sub(r"\g<scheme>***", text)


def fingerprint(secret: str) -> str:
    """A short digest that identifies ``secret`` (equal secrets, equal fingerprints) without it."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def authorization(header: str | None) -> str | None:
    """An Authorization header with its credential replaced by a fingerprint: ``Bearer sha256:...``."""
    if header is None:
        return None
    scheme, _, credential = header.partition(" ")
    if not credential:
        return fingerprint(header)
    return f"{clip(scheme, 20)} {fingerprint(credential)}"
