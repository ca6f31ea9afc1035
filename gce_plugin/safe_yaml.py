"""Bounded reading and YAML parsing of manifest files: a hostile or careless file costs bounded memory
and time, and is refused with a reason that quotes none of its content.

- ``read_file``: refuses a path that leaves the manifest directory (a symlink to ``/etc/shadow`` is
  refused by its resolved path, before it is opened), anything but a regular file, and a file larger
  than ``max_bytes`` (it reads at most ``max_bytes + 1`` bytes, whatever the file claims).
- ``BoundedLoader``: a ``yaml.SafeLoader`` that checks each composed document before building any
  Python object from it. YAML aliases may add at most ``MAX_ALIAS_NODES`` nodes to a document (a
  519-byte "billion laughs" document would expand to billions; the allowance is shared by all the
  documents of a file), and a document may use at most
  ``MAX_ALIASES`` aliases. The check walks each distinct node once, so it costs what the file's size
  does, never what the expansion would.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from gce_plugin import paths

# Default for ``run --max-manifest-bytes``: ~10,000 upstreams in kubectl's YAML form.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
# Nodes that aliases may add to one file, beyond those written in it.
MAX_ALIAS_NODES = 10_000
# Alias references in one document.
MAX_ALIASES = 1_000


class LimitError(ValueError):
    """A file or document over a limit, or outside the directory; the message names no content."""


def read_file(path: Path, root: Path | None, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of the manifest at ``path``. Raises LimitError (outside ``root``, not a regular file,
    over ``max_bytes``) or OSError."""
    real = Path(os.path.realpath(path))
    if root is not None:
        reason = paths.outside_roots(str(real), [os.path.realpath(root)])
        if reason is not None:
            raise LimitError(f"refused: it resolves to {paths.show(str(real))}, {reason}")
    # O_NONBLOCK: a FIFO put in place of the file must not block the reader.
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise LimitError("refused: not a regular file")
        if info.st_size > max_bytes:
            raise LimitError(_too_large(info.st_size, max_bytes))
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew between fstat and read
        raise LimitError(_too_large(len(data), max_bytes))
    return data


def _too_large(size: int, max_bytes: int) -> str:
    return f"file is {size} bytes, more than the limit of {max_bytes} (run --max-manifest-bytes)"


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose documents are checked for alias expansion before they are constructed. The
    allowance is per file (one loader reads one file): many small documents cannot add up to a bomb."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            used = getattr(self, "_alias_nodes", 0)
            self._alias_nodes = used + check_expansion(node, MAX_ALIAS_NODES - used)
        return node


def check_expansion(root: yaml.Node, allowance: int = MAX_ALIAS_NODES) -> int:
    """The nodes aliases add to ``root``; LimitError when more than ``allowance``, or when it uses
    more than MAX_ALIASES aliases. Iterative, and each distinct node is visited once: the composed
    graph shares aliased nodes."""
    expanded: dict[int, int] = {}  # id(node) -> nodes it expands to
    distinct = 0
    references = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            expanded[key] = 1 + sum(expanded[id(child)] for child in _children(node))
            continue
        if key in expanded:
            references += 1  # a node seen before: an alias
            if references > MAX_ALIASES:
                raise LimitError(f"YAML document uses more than {MAX_ALIASES} aliases")
            continue
        expanded[key] = 0  # placeholder until its children are counted
        distinct += 1
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    total = expanded[id(root)]
    if total - distinct > allowance:
        raise LimitError(
            f"YAML aliases expand this document from {distinct} to {total} nodes; at most "
            f"{MAX_ALIAS_NODES} more are allowed per file ({max(allowance, 0)} left for this document)"
        )
    return total - distinct


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
