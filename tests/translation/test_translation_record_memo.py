"""Repeated discovery answers: endpoint messages carried over from the previous answer (the same
objects, as gce discovery hands unchanged endpoints on) are not read again, and every new or
replaced message is."""

from __future__ import annotations

from gce_plugin.api import Endpoint, ResourceRef
from gce_plugin.plugins.plugin import EndpointList
from gce_plugin.translation.endpoints import RecordMemo
from gce_plugin.translation.translator import Translator
from tests.translation.translation_fakes import FakeEdsPlugin, endpoint, gce_upstream


def answer(*endpoints: Endpoint) -> EndpointList:
    resolved = frozenset((r.namespace, r.name) for e in endpoints for r in e.upstreams)
    return EndpointList(endpoints=tuple(endpoints), resolved=resolved)


def ports(translator: Translator, cluster: str) -> list[int]:
    assignment = translator.result().assignments[cluster]
    return sorted(
        lb.endpoint.address.socket_address.port_value
        for loc in assignment.endpoints
        for lb in loc.lb_endpoints
    )


def test_the_same_answer_again_changes_nothing() -> None:
    translator = Translator([FakeEdsPlugin()])
    translator.set_upstreams([gce_upstream("web"), gce_upstream("api")])
    endpoints = (endpoint("web", "10.0.0.1"), endpoint("api", "10.0.0.2"))
    assert translator.set_endpoints(answer(*endpoints)).assignment_upserts.keys() == {
        "web_default",
        "api_default",
    }
    assert not translator.set_endpoints(answer(*endpoints)).resources_changed


def test_a_replaced_message_is_read_and_the_kept_ones_are_not_rebuilt() -> None:
    translator = Translator([FakeEdsPlugin()])
    translator.set_upstreams([gce_upstream("web"), gce_upstream("api")])
    web, api = endpoint("web", "10.0.0.1", 8080), endpoint("api", "10.0.0.2")
    translator.set_endpoints(answer(web, api))
    api_assignment = translator.result().assignments["api_default"]
    delta = translator.set_endpoints(answer(endpoint("web", "10.0.0.1", 9090), api))
    assert delta.assignment_upserts.keys() == {"web_default"}
    assert ports(translator, "web_default") == [9090]
    assert translator.result().assignments["api_default"] is api_assignment


def test_memo_follows_every_ref_and_forgets_what_went_away() -> None:
    memo = RecordMemo()
    shared = endpoint("web", "10.0.0.9")
    shared.upstreams.append(ResourceRef(name="api", namespace="default"))
    alone = endpoint("web", "10.0.0.1")
    groups = memo.group([shared, alone])
    assert sorted(groups[("default", "web")]) == [("10.0.0.1", 8080, ()), ("10.0.0.9", 8080, ())]
    assert groups[("default", "api")] == [("10.0.0.9", 8080, ())]
    again = memo.group([shared])
    assert dict(again) == {
        ("default", "web"): [("10.0.0.9", 8080, ())],
        ("default", "api"): [("10.0.0.9", 8080, ())],
    }
    assert len(memo._known) == 1  # the dropped endpoint is no longer held


def test_full_translation_is_unaffected_by_earlier_answers() -> None:
    translator = Translator([FakeEdsPlugin()])
    upstreams = [gce_upstream("web")]
    translator.set_upstreams(upstreams)
    translator.set_endpoints(answer(endpoint("web", "10.0.0.1")))
    result = translator.translate(upstreams, answer(endpoint("web", "10.0.0.1", 7000)))
    assert [
        lb.endpoint.address.socket_address.port_value
        for loc in result.assignments["web_default"].endpoints
        for lb in loc.lb_endpoints
    ] == [7000]
