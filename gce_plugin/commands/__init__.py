"""The ``gce-plugin`` commands, one module each (see gce_plugin/cli.py)."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[Sequence[str]], gap: str = "  ") -> str:
    """``rows`` (the header first) as left-aligned columns ``gap`` apart, one line each."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        gap.join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )
