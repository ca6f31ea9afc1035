"""The ``gce`` upstream plugin: a gce upstream becomes an EDS cluster whose endpoints (the RUNNING VMs
of its instance group; for a managed group, with each VM's health) come from
``discovery.GceDiscovery`` over ADS."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from envoy.config.cluster.v3.cluster_pb2 import Cluster

from gce_plugin.api import Upstream
from gce_plugin.envoy_config.sources import eds_over_ads
from gce_plugin.plugins.gce.compute import ComputeClient
from gce_plugin.plugins.gce.credentials import CredentialsError, load_credentials
from gce_plugin.plugins.gce.discovery import GceDiscovery
from gce_plugin.plugins.gce.settings import GceSettings
from gce_plugin.plugins.gce.spec import is_gce, parse_target
from gce_plugin.plugins.plugin import DiscoveryError, Params, UpstreamPlugin
from gce_plugin.plugins.refresh import PollingPlugin, PollResult

log = logging.getLogger(__name__)


def new_discovery(settings: GceSettings) -> GceDiscovery:
    """A discovery on the real client for ``settings``; CredentialsError when none can be had."""
    endpoint = settings.endpoint()
    loaded = load_credentials(settings.credentials_file, endpoint)
    log.info("compute credentials from %s", loaded.source)
    client = ComputeClient(loaded.credentials, endpoint=endpoint, timeout=settings.api_timeout)
    return GceDiscovery(client, honour_health=settings.mig_health)


class GcePlugin(UpstreamPlugin, PollingPlugin):
    name = "gce"

    def __init__(self, settings: GceSettings | None = None) -> None:
        self._settings = settings or GceSettings()
        self._discovery: GceDiscovery | None = None
        # discovery() runs in threads: a cancelled watch's lookup may overlap the next watch's.
        self._discovery_lock = threading.Lock()

    def process_upstream(self, params: Params, upstream: Upstream, cluster: Cluster) -> None:
        if not is_gce(upstream):
            return
        parse_target(upstream)  # ValueError with the reason when the spec is invalid
        eds_over_ads(cluster)

    def discovery(self) -> GceDiscovery:
        """The plugin's discovery (made on first use from the settings, then kept: it holds the
        group location cache); CredentialsError when no credentials can be had."""
        with self._discovery_lock:
            if self._discovery is None:
                self._discovery = new_discovery(self._settings)
            return self._discovery

    def close(self) -> None:
        """Stop the discovery's thread pool (a later watch makes a new discovery)."""
        with self._discovery_lock:
            discovery, self._discovery = self._discovery, None
        if discovery is not None:
            discovery.close()

    def handles(self, upstream: Upstream) -> bool:
        return is_gce(upstream)

    async def poll(self, write_namespace: str, upstreams: Sequence[Upstream]) -> PollResult:
        try:
            # In a thread: google.auth.default() may block for seconds probing a metadata server.
            discovery = await asyncio.to_thread(self.discovery)
        except CredentialsError as exc:  # e.g. a bad credentials file: retried next interval
            raise DiscoveryError(f"gce: no credentials: {exc}") from None
        return await discovery.poll_once(write_namespace, upstreams)
