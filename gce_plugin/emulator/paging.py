"""List paging: ``maxResults`` and opaque page tokens.

A token records the sort key of the last item returned, so the next page starts right after it
(a bisect, not a rescan) and stays correct when items are added or removed between pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from gce_plugin.emulator.errors import ApiError, invalid_field

MAX_RESULTS = 500  # the real API's default and ceiling

T = TypeVar("T")
Key = tuple[str, ...]


def max_results(query: dict[str, str]) -> int:
    """``maxResults`` from the query: 0 or absent mean 500; above 500 is capped at 500."""
    raw = query.get("maxResults", "")
    if not raw:
        return MAX_RESULTS
    try:
        value = int(raw)
    except ValueError:
        raise invalid_field("maxResults", raw, "Must be an integer.") from None
    if value < 0:
        raise invalid_field("maxResults", raw, "Must be greater than or equal to 0.")
    return min(value, MAX_RESULTS) or MAX_RESULTS


def encode_token(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_token(token: str, width: int) -> Key | None:
    """The key a ``pageToken`` resumes after (None without a token); a forged token is a 400."""
    if not token:
        return None
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        data = None
    if not isinstance(data, list) or len(data) != width or not all(isinstance(p, str) for p in data):
        raise ApiError(400, f"Invalid value for field 'pageToken': '{token}'. Invalid page token.", "invalid")
    return tuple(data)


def take_page(
    items: Iterator[tuple[Key, T]], limit: int, keep: Callable[[T], bool] | None
) -> tuple[list[tuple[Key, T]], str | None]:
    """Up to ``limit`` kept items from a sorted stream, and a next-page token only when another kept
    item follows (so the last page never comes with a token to an empty page)."""
    page: list[tuple[Key, T]] = []
    for key, item in items:
        if keep is not None and not keep(item):
            continue
        if len(page) == limit:
            return page, encode_token(page[-1][0])
        page.append((key, item))
    return page, None
