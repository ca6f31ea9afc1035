"""Which plugins exist. Translation runs every ``UpstreamPlugin``; discovery runs every
``DiscoveryPlugin`` (Gloo's ``registry.Plugins`` plus the discovery plugins found from it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gce_plugin.plugins.plugin import DiscoveryPlugin, InitParams, Plugin, UpstreamPlugin


class Registry:
    def __init__(self, plugins: Iterable[Plugin]) -> None:
        self._plugins = list(plugins)

    @property
    def plugins(self) -> Sequence[Plugin]:
        return tuple(self._plugins)

    def init(self, params: InitParams) -> None:
        for plugin in self._plugins:
            plugin.init(params)

    def close(self) -> None:
        for plugin in self._plugins:
            plugin.close()

    def upstream_plugins(self) -> list[UpstreamPlugin]:
        return [p for p in self._plugins if isinstance(p, UpstreamPlugin)]

    def discovery_plugins(self) -> list[DiscoveryPlugin]:
        return [p for p in self._plugins if isinstance(p, DiscoveryPlugin)]


def default_registry() -> Registry:
    """The built-in plugins, in translation order."""
    from gce_plugin.plugins.gce.plugin import GcePlugin
    from gce_plugin.plugins.static.plugin import StaticPlugin

    return Registry([StaticPlugin(), GcePlugin()])
