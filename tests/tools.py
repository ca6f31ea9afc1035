"""System tools some tests drive (Debian packages that .ci/run installs): found, or the test is
skipped on a developer's machine, and fails under CI (CI=true), where a skip would hide a gap."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(*names: str, package: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    message = f"needs `{names[0]}` (Debian package {package}; .ci/run installs it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + ", and CI must not skip it")
    pytest.skip(message)
