"""The built-in plugins, assembled at the top: the control plane and the commands use them; no plugin
and no stage below imports this module. Translation runs every ``UpstreamPlugin`` in this order;
discovery runs every ``DiscoveryPlugin``."""

from __future__ import annotations

from gce_plugin.plugins.gce.plugin import GcePlugin
from gce_plugin.plugins.gce.settings import GceSettings
from gce_plugin.plugins.registry import Registry
from gce_plugin.plugins.static.plugin import StaticPlugin


def default_registry(gce: GceSettings | None = None) -> Registry:
    """The built-in plugins, in translation order, each given its own settings."""
    return Registry([StaticPlugin(), GcePlugin(gce)])
