"""A set of plugins. Translation runs every ``UpstreamPlugin``; discovery runs every ``DiscoveryPlugin``
(Gloo's ``registry.Plugins`` plus the discovery plugins found from it). Which plugins are built in
is decided at the top, in ``gce_plugin.builtin``."""

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
