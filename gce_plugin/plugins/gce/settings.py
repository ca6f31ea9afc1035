"""The gce plugin's own settings, handed to ``GcePlugin`` when the registry is assembled
(``gce_plugin.builtin``). Imports nothing but the standard library, so the CLI's option parents can
name the environment variable without importing the plugin."""

from __future__ import annotations

import os
from dataclasses import dataclass

# Used when GceSettings.compute_endpoint is unset, so every command honours it.
COMPUTE_ENDPOINT_ENV = "GCE_PLUGIN_COMPUTE_ENDPOINT"


@dataclass(frozen=True)
class GceSettings:
    # Compute API root override, e.g. "http://127.0.0.1:8085/" for the emulator.
    compute_endpoint: str | None = None
    # Path to a service-account or authorized-user JSON file.
    credentials_file: str | None = None
    # Per-call timeout for cloud APIs, in seconds: one slow call never blocks a poll forever.
    api_timeout: float = 10.0
    # Managed instance groups: each VM's state (currentAction, health) decides its endpoint's health
    # (docs/managed-instance-groups.md). False: every RUNNING member is an endpoint of unknown health.
    mig_health: bool = True

    def endpoint(self) -> str | None:
        """The Compute API root: the setting, else the environment variable, else None (the real API)."""
        return self.compute_endpoint or os.environ.get(COMPUTE_ENDPOINT_ENV) or None
