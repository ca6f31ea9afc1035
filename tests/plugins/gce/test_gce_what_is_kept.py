"""What gce discovery keeps between polls (issue 12): no listed JSON and no Endpoint message, only a
hash per group of what its join read and the compact endpoints of each upstream."""

from __future__ import annotations

from gce_plugin.plugins.gce.discovery import GceDiscovery
from tests.plugins.gce.gce_helpers import gce_upstream, poll


def test_discovery_keeps_a_hash_per_group_not_the_listed_json(discovery: GceDiscovery) -> None:
    poll(discovery, gce_upstream("web"))
    assert discovery._group_inputs and all(type(v) is int for v in discovery._group_inputs.values())
    for joined in discovery._joined.values():
        assert type(joined.found.serialized) is bytes
