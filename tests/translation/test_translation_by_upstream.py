"""Discovery answers with per-upstream endpoints (``EndpointList.of_upstreams``): the translator skips
an upstream handed the same tuple as last time without reading it, reads every other one, and keeps
the semantics of flat answers (resolved, unresolved, last good, re-added upstreams)."""

from __future__ import annotations

import pytest

from gce_plugin.api import Endpoint, ResourceRef
from gce_plugin.plugins.plugin import EndpointList, UpstreamKey
from gce_plugin.translation import translator as translator_module
from gce_plugin.translation.endpoints import EndpointRecord, endpoint_record
from gce_plugin.translation.translator import Translator
from tests.translation.translation_fakes import FakeEdsPlugin, endpoint, gce_upstream

WEB: UpstreamKey = ("default", "web")
API: UpstreamKey = ("default", "api")


def hosts(translator: Translator, cluster: str) -> list[str]:
    assignment = translator.result().assignments[cluster]
    return sorted(e.endpoint.address.socket_address.address for e in assignment.endpoints[0].lb_endpoints)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The addresses of the endpoint messages the translator reads, from now on."""
    seen: list[str] = []

    def counting(e: Endpoint) -> EndpointRecord:
        seen.append(e.address)
        return endpoint_record(e)

    monkeypatch.setattr(translator_module, "endpoint_record", counting)
    return seen


def translator_for(*names: str) -> Translator:
    translator = Translator([FakeEdsPlugin()])
    translator.set_upstreams([gce_upstream(name) for name in names])
    return translator


def test_an_unchanged_tuple_is_not_read_and_a_changed_one_is(reads: list[str]) -> None:
    translator = translator_for("web", "api")
    web, api = (endpoint("web", "10.0.0.1"),), (endpoint("api", "10.0.0.2"),)
    first = translator.set_endpoints(EndpointList.of_upstreams({WEB: web, API: api}))
    assert first.assignment_upserts.keys() == {"web_default", "api_default"}
    api_assignment = translator.result().assignments["api_default"]
    reads.clear()
    assert not translator.set_endpoints(EndpointList.of_upstreams({WEB: web, API: api})).resources_changed
    assert reads == []
    moved = (endpoint("web", "10.0.0.3"),)
    delta = translator.set_endpoints(EndpointList.of_upstreams({WEB: moved, API: api}))
    assert delta.assignment_upserts.keys() == {"web_default"}
    assert reads == ["10.0.0.3"]
    assert hosts(translator, "web_default") == ["10.0.0.3"]
    assert translator.result().assignments["api_default"] is api_assignment


def test_an_equal_new_tuple_is_read_but_publishes_nothing(reads: list[str]) -> None:
    translator = translator_for("web")
    translator.set_endpoints(EndpointList.of_upstreams({WEB: (endpoint("web", "10.0.0.1"),)}))
    again = translator.set_endpoints(EndpointList.of_upstreams({WEB: (endpoint("web", "10.0.0.1"),)}))
    assert not again.resources_changed
    assert reads == ["10.0.0.1", "10.0.0.1"]


def test_resolved_without_endpoints_is_empty_and_unknown_keeps_its_last_good() -> None:
    translator = translator_for("web", "api")
    web = (endpoint("web", "10.0.0.1"),)
    delta = translator.set_endpoints(EndpointList.of_upstreams({WEB: web}, resolved={WEB, API}))
    assert delta.assignment_upserts.keys() == {"web_default", "api_default"}
    assert hosts(translator, "api_default") == []
    # an answer that does not know web (not resolved, not in by_upstream) leaves it alone
    assert not translator.set_endpoints(EndpointList.of_upstreams({}, resolved={API})).resources_changed
    assert hosts(translator, "web_default") == ["10.0.0.1"]
    # once discovery says it has none, it has none
    delta = translator.set_endpoints(EndpointList.of_upstreams({}, resolved={WEB}))
    assert delta.assignment_upserts.keys() == {"web_default"}
    assert hosts(translator, "web_default") == []


def test_the_same_tuple_is_read_again_after_its_endpoints_were_set_otherwise() -> None:
    translator = translator_for("web")
    web = (endpoint("web", "10.0.0.1"),)
    translator.set_endpoints(EndpointList.of_upstreams({WEB: web}))
    translator.set_upstream_endpoints(WEB, [endpoint("web", "10.0.0.9")])
    delta = translator.set_endpoints(EndpointList.of_upstreams({WEB: web}))
    assert delta.assignment_upserts.keys() == {"web_default"}
    assert hosts(translator, "web_default") == ["10.0.0.1"]
    translator.set_endpoints(EndpointList((endpoint("web", "10.0.0.8"),), {WEB}))  # a flat answer
    translator.set_endpoints(EndpointList.of_upstreams({WEB: web}))
    assert hosts(translator, "web_default") == ["10.0.0.1"]


def test_a_readded_upstream_reads_the_same_tuple_again() -> None:
    translator = translator_for("web")
    web = (endpoint("web", "10.0.0.1"),)
    translator.set_endpoints(EndpointList.of_upstreams({WEB: web}))
    translator.set_upstreams([])
    assert not translator.set_upstreams([gce_upstream("web")]).assignment_upserts  # waits for discovery
    delta = translator.set_endpoints(EndpointList.of_upstreams({WEB: web}))
    assert delta.assignment_upserts.keys() == {"web_default"}


def test_per_upstream_and_flat_answers_translate_alike() -> None:
    upstreams = [gce_upstream(f"us{i}") for i in range(3)]
    by_upstream = {
        ("default", f"us{i}"): tuple(endpoint(f"us{i}", f"10.1.{i}.{j}", labels={"j": "x"}) for j in range(3))
        for i in range(3)
    }
    everything = [e for found in by_upstream.values() for e in found]
    translator = Translator([FakeEdsPlugin()])
    per_upstream = translator.translate(upstreams, EndpointList.of_upstreams(by_upstream))
    flat = translator.translate(upstreams, EndpointList(everything, by_upstream))
    assert per_upstream == flat and len(flat.assignments) == 3


# -- EndpointList -----------------------------------------------------------------------------------


def test_endpoints_of_a_per_upstream_answer_are_sorted_once_each() -> None:
    shared = endpoint("web", "10.0.0.5", name="a-shared")
    shared.upstreams.append(ResourceRef(name="api", namespace="default"))
    web = (endpoint("web", "10.0.0.1", name="z-web"), shared)
    answer = EndpointList.of_upstreams({WEB: web, API: (shared,)})
    assert [e.metadata.name for e in answer.endpoints] == ["a-shared", "z-web"]
    assert answer.endpoints is answer.endpoints  # built once
    assert answer.resolved == frozenset({WEB, API})
    assert answer == EndpointList(endpoints=(shared, web[0]), resolved=frozenset({WEB, API}))
    assert answer != EndpointList(endpoints=(shared, web[0]), resolved=frozenset({WEB}))


def test_a_flat_list_is_as_before() -> None:
    one = endpoint("web", "10.0.0.1")
    flat = EndpointList(endpoints=(one,), resolved=frozenset({WEB}))
    assert flat.endpoints == (one,) and flat.by_upstream is None
    assert flat == EndpointList((one,), frozenset({WEB}))
    assert EndpointList() == EndpointList.of_upstreams({})
    assert EndpointList().resolved == frozenset() and EndpointList().endpoints == ()


def test_an_endpoint_list_is_immutable() -> None:
    answer = EndpointList.of_upstreams({WEB: ()})
    with pytest.raises(AttributeError):
        answer.resolved = frozenset()
    with pytest.raises(AttributeError):
        answer.endpoints = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(answer)
