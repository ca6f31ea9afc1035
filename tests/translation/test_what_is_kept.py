"""What the control plane keeps after a discovery answer (issue 12): no gloo ``Endpoint`` and no
``ClusterLoadAssignment`` message outlives translation; an upstream's endpoints are kept as their
serialized bytes, the cache keeps each resource once, as bytes, and decodes on demand."""

from __future__ import annotations

import gc

from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from gce_plugin.api import Endpoint
from gce_plugin.plugins import plugin as plugin_module
from gce_plugin.plugins.plugin import EndpointsUpdate, UpstreamEndpoints
from gce_plugin.translation.translator import Translator
from gce_plugin.xds import ENDPOINT_TYPE, SnapshotCache
from tests.translation.translation_fakes import FakeEdsPlugin, endpoint, gce_upstream

WEB = ("default", "web")


def live(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def test_upstream_endpoints_keep_bytes_not_messages() -> None:
    endpoints = [endpoint("web", "10.0.0.2"), endpoint("web", "10.0.0.1")]
    found = UpstreamEndpoints.of(endpoints)
    assert found.count == 2
    assert not any(isinstance(v, Endpoint) for v in vars(found).values())
    decoded = found.decode()
    assert sorted(e.address for e in decoded) == ["10.0.0.1", "10.0.0.2"]
    assert [e.SerializeToString(deterministic=True) for e in decoded] == list(found.serialized_endpoints())
    # The version digests exactly the kept bytes: equal bytes, equal version.
    assert UpstreamEndpoints.of(reversed(endpoints)) == found


def test_the_translator_and_the_cache_keep_no_messages_of_an_answer() -> None:
    names = [f"web{i}" for i in range(300)]
    translator = Translator([FakeEdsPlugin()])
    cache = SnapshotCache()
    translator.set_upstreams([gce_upstream(name) for name in names])
    before_endpoints, before_assignments = live(Endpoint), live(ClusterLoadAssignment)
    found = {
        ("default", name): UpstreamEndpoints.of(endpoint(name, f"10.0.{i}.{j}") for j in range(1, 11))
        for i, name in enumerate(names)
    }
    delta = translator.set_endpoints(EndpointsUpdate.first(found))
    cache.update_resources(ENDPOINT_TYPE, delta.assignment_upserts)
    del delta
    # 3,000 endpoints answered: only the bounded memo of the last few made or decoded is alive.
    assert 0 < live(Endpoint) - before_endpoints <= plugin_module._MAX_DECODED_ENDPOINTS < 3000
    assert live(ClusterLoadAssignment) == before_assignments
    served = cache.resources(ENDPOINT_TYPE)["web0_default"]
    assert isinstance(served, ClusterLoadAssignment) and len(served.endpoints[0].lb_endpoints) == 10
