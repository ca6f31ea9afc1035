"""The file-path policy: a path this process opens, or makes Envoy open, must lie under an allowed root.

One function, ``outside_roots``, decides for both: manifest files (their resolved path must stay in
the manifest directory) and every path a translated cluster hands to Envoy (``sslConfig`` files, SDS
token files, any ``DataSource.filename``: see ``translation/file_policy.py``). Paths on the proxy's
host cannot be resolved here, so the check is lexical and strict: absolute, normalized (``..`` is
refused, not folded), no NUL, and under one of the roots.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable

from gce_plugin.redact import clip

# Where a manifest may point Envoy without any ``run --allow-file-root``: the proxy's CA bundles and
# the conventional mount point for certificates handed to Envoy.
DEFAULT_FILE_ROOTS: tuple[str, ...] = ("/etc/ssl/certs", "/etc/envoy/tls")


def outside_roots(path: str, roots: Iterable[str]) -> str | None:
    """None when ``path`` lies under one of ``roots``; else why not (for an error message)."""
    if "\x00" in path:
        return "contains a NUL character"
    if not path.startswith("/"):
        return "is not an absolute path"
    if ".." in path.split("/"):
        return "contains '..'"
    normal = posixpath.normpath(path)
    allowed = [posixpath.normpath(root) for root in roots if root.startswith("/")]
    for root in allowed:
        if root == "/" or normal == root or normal.startswith(root.rstrip("/") + "/"):
            return None
    where = ", ".join(allowed) if allowed else "none configured"
    return f"is not under an allowed directory ({where})"


def show(path: str) -> str:
    """A path for a message, bounded."""
    return repr(clip(path, 120))


def normalize_roots(roots: Iterable[str]) -> tuple[str, ...]:
    """Roots as given on the command line: absolute, normalized. Raises ValueError."""
    result = []
    for root in roots:
        if not os.path.isabs(root):
            raise ValueError(f"allowed file root {root!r} is not an absolute path")
        result.append(posixpath.normpath(root))
    return tuple(result)
