"""Discovery answers (``EndpointsUpdate``): the translator reads only the upstreams an answer says
changed, skips one whose version it has already applied, and keeps the semantics of complete answers
(known, unknown, last good, re-added upstreams)."""

from __future__ import annotations

import dataclasses

import pytest

from gce_plugin.api import Endpoint, ResourceRef
from gce_plugin.plugins.plugin import NO_ENDPOINTS, EndpointsUpdate, UpstreamEndpoints, UpstreamKey
from gce_plugin.translation import endpoints as endpoints_module
from gce_plugin.translation.endpoints import EndpointRecord, endpoint_record
from gce_plugin.translation.translator import Translator
from tests.translation.translation_fakes import (
    NOTHING,
    FakeEdsPlugin,
    answer,
    endpoint,
    gce_upstream,
    published,
)

WEB: UpstreamKey = ("default", "web")
API: UpstreamKey = ("default", "api")


def hosts(translator: Translator, cluster: str) -> list[str]:
    assignment = translator.result().assignments[cluster]
    return sorted(e.endpoint.address.socket_address.address for e in assignment.endpoints[0].lb_endpoints)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The addresses of the endpoint messages the translator reads (decodes and makes records of),
    from now on."""
    seen: list[str] = []

    def counting(e: Endpoint) -> EndpointRecord:
        seen.append(e.address)
        return endpoint_record(e)

    monkeypatch.setattr(endpoints_module, "endpoint_record", counting)
    return seen


def translator_for(*names: str) -> Translator:
    translator = Translator([FakeEdsPlugin()])
    translator.set_upstreams([gce_upstream(name) for name in names])
    return translator


def of(*addresses: str, upstream: str = "web") -> UpstreamEndpoints:
    return UpstreamEndpoints.of(endpoint(upstream, a) for a in addresses)


def test_only_changed_upstreams_are_read(reads: list[str]) -> None:
    translator = translator_for("web", "api")
    first = EndpointsUpdate.first({WEB: of("10.0.0.1"), API: of("10.0.0.2", upstream="api")})
    delta = translator.set_endpoints(first)
    assert delta.assignment_upserts.keys() == {"web_default", "api_default"}
    api_assignment = translator.result().assignments["api_default"]
    reads.clear()
    unchanged = first.next(dict(first.upstreams))
    assert unchanged.changed == frozenset() and unchanged.removed == frozenset()
    assert published(translator.set_endpoints(unchanged)) == NOTHING
    assert reads == []
    moved = unchanged.next({**unchanged.upstreams, WEB: of("10.0.0.3")})
    assert moved.changed == {WEB}
    delta = translator.set_endpoints(moved)
    assert delta.assignment_upserts.keys() == {"web_default"}
    assert reads == ["10.0.0.3"]
    assert hosts(translator, "web_default") == ["10.0.0.3"]
    assert translator.result().assignments["api_default"] is api_assignment


def test_of_a_changed_upstream_only_the_endpoints_that_changed_are_read(reads: list[str]) -> None:
    translator = translator_for("web")
    first = EndpointsUpdate.first({WEB: of("10.0.0.1", "10.0.0.2", "10.0.0.3")})
    translator.set_endpoints(first)
    assert sorted(reads) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    reads.clear()
    # One endpoint moves, one leaves, one arrives: the two new ones are read, the kept one is not.
    moved = first.next({WEB: of("10.0.0.1", "10.0.0.9", "10.0.0.4")})
    delta = translator.set_endpoints(moved)
    assert sorted(reads) == ["10.0.0.4", "10.0.0.9"]
    assert hosts(translator, "web_default") == ["10.0.0.1", "10.0.0.4", "10.0.0.9"]
    assert delta.assignment_upserts["web_default"] == translator.result().assignments["web_default"]
    # The same address under another name: other bytes, so read again.
    reads.clear()
    renamed = UpstreamEndpoints.of([endpoint("web", "10.0.0.1", name="other")])
    translator.set_endpoints(moved.next({WEB: renamed}))
    assert reads == ["10.0.0.1"] and hosts(translator, "web_default") == ["10.0.0.1"]


def test_a_version_already_applied_is_not_read_again(reads: list[str]) -> None:
    translator = translator_for("web")
    translator.set_endpoints(EndpointsUpdate.first({WEB: of("10.0.0.1")}))
    # A new watch (e.g. after a restart) answers everything as changed: equal versions are skipped.
    again = translator.set_endpoints(EndpointsUpdate.first({WEB: of("10.0.0.1")}))
    assert published(again) == NOTHING
    assert reads == ["10.0.0.1"]


def test_a_version_is_the_content_whatever_the_order_or_objects() -> None:
    a, b = endpoint("web", "10.0.0.1"), endpoint("web", "10.0.0.2")
    assert UpstreamEndpoints.of([a, b]).version == UpstreamEndpoints.of([b, a]).version
    copy = Endpoint()
    copy.CopyFrom(a)
    assert UpstreamEndpoints.of([copy, b]) == UpstreamEndpoints.of([a, b])
    relabelled = endpoint("web", "10.0.0.1", labels={"v": "2"})
    assert UpstreamEndpoints.of([relabelled, b]).version != UpstreamEndpoints.of([a, b]).version
    assert UpstreamEndpoints.of(()) == NO_ENDPOINTS


def test_known_without_endpoints_is_empty_and_unknown_keeps_its_last_good() -> None:
    translator = translator_for("web", "api")
    delta = translator.set_endpoints(EndpointsUpdate.first({WEB: of("10.0.0.1"), API: NO_ENDPOINTS}))
    assert delta.assignment_upserts.keys() == {"web_default", "api_default"}
    assert hosts(translator, "api_default") == []
    # an answer that does not know web leaves it alone, and so does one that no longer answers for it
    assert published(translator.set_endpoints(EndpointsUpdate.first({API: NO_ENDPOINTS}))) == NOTHING
    assert published(translator.set_endpoints(EndpointsUpdate({}, removed=frozenset({WEB})))) == NOTHING
    assert hosts(translator, "web_default") == ["10.0.0.1"]
    # once discovery says it has none, it has none
    delta = translator.set_endpoints(EndpointsUpdate.first({WEB: NO_ENDPOINTS}))
    assert delta.assignment_upserts.keys() == {"web_default"}
    assert hosts(translator, "web_default") == []


def test_a_readded_upstream_reads_the_same_version_again() -> None:
    translator = translator_for("web")
    translator.set_endpoints(EndpointsUpdate.first({WEB: of("10.0.0.1")}))
    translator.set_upstreams([])
    assert not translator.set_upstreams([gce_upstream("web")]).assignment_upserts  # waits for discovery
    delta = translator.set_endpoints(EndpointsUpdate.first({WEB: of("10.0.0.1")}))
    assert delta.assignment_upserts.keys() == {"web_default"}


def test_full_translation_reads_every_upstream_of_an_answer() -> None:
    upstreams = [gce_upstream(f"us{i}") for i in range(3)]
    everything = [endpoint(f"us{i}", f"10.1.{i}.{j}", labels={"j": "x"}) for i in range(3) for j in range(3)]
    first = answer(everything)
    later = first.next(dict(first.upstreams))  # says nothing changed
    translator = Translator([FakeEdsPlugin()])
    assert translator.translate(upstreams, later) == translator.translate(upstreams, first)
    assert len(translator.translate(upstreams, later).assignments) == 3


# -- EndpointsUpdate ----------------------------------------------------------------------------


def test_next_names_what_changed_and_what_left() -> None:
    first = EndpointsUpdate.first({WEB: of("10.0.0.1"), API: NO_ENDPOINTS})
    assert first.changed == {WEB, API} and first.removed == frozenset()
    second = first.next({WEB: of("10.0.0.1"), ("default", "new"): NO_ENDPOINTS})
    assert second.changed == {("default", "new")} and second.removed == {API}
    assert second.resolved == {WEB, ("default", "new")}
    told = second.next({WEB: of("10.0.0.1")}, changed=[WEB])  # a caller that knows says so
    assert told.changed == {WEB} and told.removed == {("default", "new")}


def test_an_inconsistent_update_is_refused() -> None:
    with pytest.raises(ValueError, match="changed upstreams without endpoints"):
        EndpointsUpdate({}, changed=frozenset({WEB}))
    with pytest.raises(ValueError, match="removed upstreams with endpoints"):
        EndpointsUpdate({WEB: NO_ENDPOINTS}, removed=frozenset({WEB}))


def test_endpoints_of_an_answer_are_sorted_once_each() -> None:
    shared = endpoint("web", "10.0.0.5", name="a-shared")
    shared.upstreams.append(ResourceRef(name="api", namespace="default"))
    web = endpoint("web", "10.0.0.1", name="z-web")
    update = EndpointsUpdate.first(
        {WEB: UpstreamEndpoints.of([web, shared]), API: UpstreamEndpoints.of([shared])}
    )
    assert [e.metadata.name for e in update.endpoints] == ["a-shared", "z-web"]
    assert update.resolved == frozenset({WEB, API})
    assert EndpointsUpdate().endpoints == () and EndpointsUpdate().resolved == frozenset()


def test_an_update_is_immutable() -> None:
    update = EndpointsUpdate.first({WEB: NO_ENDPOINTS})
    with pytest.raises(dataclasses.FrozenInstanceError):
        update.changed = frozenset()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        NO_ENDPOINTS.version = ""  # type: ignore[misc]
