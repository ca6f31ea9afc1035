"""The Translator: naming, statuses, rejection, assignments and incremental updates."""

from __future__ import annotations

import time

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from google.protobuf.duration_pb2 import Duration

from gce_plugin import metrics
from gce_plugin.api import (
    ConnectionConfig,
    Endpoint,
    KubeUpstreamSpec,
    Metadata,
    Status,
    Upstream,
    UpstreamSpec,
)
from gce_plugin.plugins.plugin import EndpointsUpdate, Params, UpstreamEndpoints
from gce_plugin.plugins.static.plugin import StaticPlugin
from gce_plugin.translation import REPORTER, Translator
from gce_plugin.translation.endpoints import LB_METADATA_NAMESPACE
from tests.translation.translation_fakes import (
    NOTHING,
    CountingPlugin,
    ExplodingPlugin,
    FakeEdsPlugin,
    answer,
    endpoint,
    gce_upstream,
    only,
    published,
    static_upstream,
)

ACCEPTED = Status(state=Status.Accepted, reported_by=REPORTER)


def make_translator(*extra: CountingPlugin | ExplodingPlugin) -> Translator:
    return Translator([StaticPlugin(), FakeEdsPlugin(), *extra])


def hosts_of(translator: Translator, cluster: str) -> list[str]:
    assignment = translator.result().assignments[cluster]
    return [e.endpoint.address.socket_address.address for e in assignment.endpoints[0].lb_endpoints]


# -- one-shot translation ------------------------------------------------------------------------


def test_translate_names_clusters_like_gloo_and_accepts() -> None:
    upstreams = [gce_upstream("web", "prod"), static_upstream("db", [("10.0.0.5", 5432)], namespace="")]
    result = make_translator().translate(upstreams)
    assert sorted(result.clusters) == ["db", "web_prod"]
    assert result.clusters["web_prod"].type == Cluster.EDS
    assert result.clusters["db"].type == Cluster.STATIC
    assert result.statuses == {("prod", "web"): ACCEPTED, ("", "db"): ACCEPTED}


def test_translate_with_endpoints_builds_assignments_for_eds_clusters_only() -> None:
    upstreams = [gce_upstream("web"), static_upstream("db", [("10.0.0.5", 5432)])]
    endpoints = answer(
        endpoints=(endpoint("web", "10.0.0.2", labels={"zone": "a"}), endpoint("db", "10.0.0.7")),
        resolved=frozenset({("default", "web"), ("default", "db")}),
    )
    result = make_translator().translate(upstreams, endpoints)
    assert sorted(result.assignments) == ["web_default"]
    [lb_endpoint] = result.assignments["web_default"].endpoints[0].lb_endpoints
    assert lb_endpoint.metadata.filter_metadata[LB_METADATA_NAMESPACE].fields["zone"].string_value == "a"


def test_translate_does_not_touch_the_translators_state() -> None:
    translator = make_translator()
    translator.translate([gce_upstream("web")])
    assert translator.result().clusters == {}


def test_invalid_upstream_is_rejected_and_left_out_others_translate() -> None:
    upstreams = [
        gce_upstream("web"),
        static_upstream("empty", []),
        gce_upstream("slow", connection_config=ConnectionConfig(connect_timeout=Duration())),
        Upstream(
            metadata=Metadata(name="kube", namespace="default"),
            upstream_spec=UpstreamSpec(kube=KubeUpstreamSpec()),
        ),
        Upstream(metadata=Metadata(name="none", namespace="default")),
        Upstream(metadata=Metadata(namespace="default"), upstream_spec=UpstreamSpec(gce={})),  # type: ignore[arg-type]
    ]
    result = make_translator().translate(upstreams)
    assert list(result.clusters) == ["web_default"]
    reasons = {key[1]: s.reason for key, s in result.statuses.items() if s.state == Status.Rejected}
    assert reasons == {
        "empty": "static upstream needs at least one host in static.hosts",
        "slow": "connection_config.connect_timeout must be greater than zero",
        "kube": "cluster type STATIC has no endpoints: is upstream type 'kube' supported by a plugin?",
        "none": "upstream_spec has no upstream type",
        "": "metadata.name is empty",
    }
    assert all(s.reported_by == REPORTER for s in result.statuses.values())


def test_a_plugin_bug_rejects_only_that_upstream() -> None:
    result = make_translator(ExplodingPlugin()).translate([gce_upstream("boom"), gce_upstream("fine")])
    assert list(result.clusters) == ["fine_default"]
    status = result.statuses["default", "boom"]
    assert status.state == Status.Rejected
    assert status.reason == "internal error in plugin exploding: KeyError('missing')"


def test_cluster_name_collision_rejects_the_later_upstream() -> None:
    # name "a_b" without namespace and name "a" in namespace "b" are both cluster "a_b"
    first = gce_upstream("a_b", namespace="")
    second = gce_upstream("a", namespace="b")
    translator = make_translator()
    translator.set_upstreams([second, first])
    result = translator.result()
    assert list(result.clusters) == ["a_b"]
    assert result.statuses["", "a_b"] == ACCEPTED
    assert result.statuses["b", "a"].reason == "cluster name 'a_b' is already used by upstream .a_b"
    # once the owner is gone the other one gets the name
    delta = translator.set_upstreams([second])
    assert delta.cluster_removals == set() and list(delta.cluster_upserts) == ["a_b"]
    assert delta.statuses == {("b", "a"): ACCEPTED}


# -- incremental: upstreams ----------------------------------------------------------------------


def test_set_upstreams_retranslates_only_changed_upstreams() -> None:
    counting = CountingPlugin()
    translator = make_translator(counting)
    upstreams = [gce_upstream(f"us{i}") for i in range(5)]
    first = translator.set_upstreams(upstreams)
    assert sorted(first.cluster_upserts) == [f"us{i}_default" for i in range(5)]
    assert len(counting.seen) == 5

    counting.seen.clear()
    changed = gce_upstream("us3", connection_config=ConnectionConfig(connect_timeout=Duration(seconds=1)))
    delta = translator.set_upstreams([*upstreams[:3], changed, upstreams[4]])
    assert counting.seen == [("default", "us3")]
    assert list(delta.cluster_upserts) == ["us3_default"]
    assert delta.cluster_upserts["us3_default"].connect_timeout == Duration(seconds=1)
    assert not delta.cluster_removals and not delta.statuses


def test_status_only_change_translates_but_publishes_nothing() -> None:
    translator = make_translator()
    upstream = gce_upstream("web")
    translator.set_upstreams([upstream])
    reported = Upstream()
    reported.CopyFrom(upstream)
    reported.status.CopyFrom(ACCEPTED)
    assert published(translator.set_upstreams([reported])) == NOTHING
    reported.metadata.resource_version = "2"  # written back: translated again, same cluster
    delta = translator.set_upstreams([reported])
    assert published(delta) == NOTHING and not delta.statuses


def test_removed_upstream_removes_cluster_and_assignment() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream("web"), gce_upstream("api")])
    translator.set_endpoints(answer((endpoint("web", "10.0.0.1"),), frozenset({("default", "web")})))
    delta = translator.set_upstreams([gce_upstream("api")])
    assert delta.cluster_removals == {"web_default"}
    assert delta.assignment_removals == {"web_default"}
    assert sorted(translator.result().clusters) == ["api_default"]
    assert ("default", "web") not in translator.result().statuses


def test_invalid_edit_keeps_serving_the_last_accepted_cluster() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream("web")])
    translator.set_endpoints(answer((endpoint("web", "10.0.0.1"),), frozenset({("default", "web")})))
    bad = gce_upstream("web", connection_config=ConnectionConfig(connect_timeout=Duration(seconds=-1)))
    delta = translator.set_upstreams([bad])
    assert published(delta) == NOTHING
    status = delta.statuses["default", "web"]
    assert status.state == Status.Rejected
    assert status.reason.endswith("(still serving the last accepted version)")
    assert "web_default" in translator.result().clusters
    assert "web_default" in translator.result().assignments
    # fixing it accepts again
    assert translator.set_upstreams([gce_upstream("web")]).statuses == {("default", "web"): ACCEPTED}


def test_rejected_metric_counts_current_rejections() -> None:
    translator = make_translator()
    translator.set_upstreams([static_upstream("a", []), static_upstream("b", []), gce_upstream("c")])
    assert metrics.REGISTRY.get_sample_value("gce_plugin_upstreams_rejected") == 2
    translator.set_upstreams([gce_upstream("c")])
    assert metrics.REGISTRY.get_sample_value("gce_plugin_upstreams_rejected") == 0


def test_translation_runs_are_counted_by_kind() -> None:
    def count(kind: str) -> float:
        return metrics.REGISTRY.get_sample_value("gce_plugin_translations_total", {"kind": kind}) or 0.0

    full, incremental = count("full"), count("incremental")
    translator = make_translator()
    translator.translate([gce_upstream("web")])
    translator.set_upstreams([gce_upstream("web")])
    translator.set_endpoints(only(("default", "web"), []))
    assert (count("full") - full, count("incremental") - incremental) == (1, 2)


def test_switching_away_from_eds_withdraws_the_assignment() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream("web")])
    translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.1")]))
    delta = translator.set_upstreams([static_upstream("web", [("10.0.0.1", 80)])])
    assert delta.assignment_removals == {"web_default"}
    assert delta.cluster_upserts["web_default"].type == Cluster.STATIC


# -- incremental: endpoints ----------------------------------------------------------------------


def test_unresolved_upstream_gets_no_assignment_resolved_empty_gets_an_empty_one() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream("web"), gce_upstream("api")])
    delta = translator.set_endpoints(answer((), frozenset({("default", "api")})))
    assert list(delta.assignment_upserts) == ["api_default"]
    assert not delta.assignment_upserts["api_default"].endpoints[0].lb_endpoints
    assert "web_default" not in translator.result().assignments


def test_failed_or_unfinished_discovery_never_replaces_good_endpoints() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream("web")])
    translator.set_endpoints(answer((endpoint("web", "10.0.0.1"),), frozenset({("default", "web")})))
    # a later answer that does not know "web" (not resolved, no endpoints) leaves it alone
    delta = translator.set_endpoints(answer((), frozenset()))
    assert published(delta) == NOTHING
    assert hosts_of(translator, "web_default") == ["10.0.0.1"]
    # once discovery says it has none, it has none
    delta = translator.set_endpoints(answer((), frozenset({("default", "web")})))
    assert list(delta.assignment_upserts) == ["web_default"]
    assert hosts_of(translator, "web_default") == []


def test_set_endpoints_rebuilds_only_changed_upstreams() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream(f"us{i}") for i in range(4)])
    resolved = frozenset(("default", f"us{i}") for i in range(4))
    endpoints = [endpoint(f"us{i}", f"10.0.{i}.{j}") for i in range(4) for j in range(3)]
    first = translator.set_endpoints(answer(tuple(endpoints), resolved))
    assert len(first.assignment_upserts) == 4
    reordered = list(reversed(endpoints))
    assert published(translator.set_endpoints(answer(tuple(reordered), resolved))) == NOTHING
    reordered[0] = endpoint("us3", "10.0.3.99")
    delta = translator.set_endpoints(answer(tuple(reordered), resolved))
    assert list(delta.assignment_upserts) == ["us3_default"]
    assert hosts_of(translator, "us3_default") == ["10.0.3.0", "10.0.3.1", "10.0.3.99"]


def test_label_change_is_an_endpoint_change() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream("web")])
    translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.1", labels={"v": "1"})]))
    delta = translator.set_endpoints(
        only(("default", "web"), [endpoint("web", "10.0.0.1", labels={"v": "2"})])
    )
    assert list(delta.assignment_upserts) == ["web_default"]


def test_endpoints_before_their_upstream_are_kept_until_it_arrives() -> None:
    translator = make_translator()
    assert (
        published(translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.1")])))
        == NOTHING
    )
    delta = translator.set_upstreams([gce_upstream("web")])
    assert list(delta.assignment_upserts) == ["web_default"]
    assert hosts_of(translator, "web_default") == ["10.0.0.1"]


def test_readded_upstream_waits_for_fresh_discovery() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream("web")])
    translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.1")]))
    translator.set_upstreams([])
    delta = translator.set_upstreams([gce_upstream("web")])
    assert list(delta.cluster_upserts) == ["web_default"] and not delta.assignment_upserts


def test_a_new_spec_waits_for_discovery_of_it_and_keeps_serving_meanwhile() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream("web")])
    translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.1")]))
    repointed = gce_upstream("web")
    repointed.upstream_spec.gce.instance_group_name = "web-v2"
    delta = translator.set_upstreams([repointed])
    # Nothing is withdrawn or emptied by the edit itself ...
    assert not delta.assignment_upserts and not delta.assignment_removals
    assert hosts_of(translator, "web_default") == ["10.0.0.1"]
    # ... and an answer that does not know the upstream yet does not bring the old endpoints back.
    translator.set_upstreams([gce_upstream("web")])
    delta = translator.set_endpoints(answer((), frozenset()))
    assert published(delta) == NOTHING
    delta = translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.2")]))
    assert hosts_of(translator, "web_default") == ["10.0.0.2"]


def test_gce_to_static_and_back_does_not_republish_old_endpoints() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream("web")])
    translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.1")]))
    translator.set_upstreams([static_upstream("web", [("10.9.9.9", 80)])])
    delta = translator.set_upstreams([gce_upstream("web")])
    assert list(delta.cluster_upserts) == ["web_default"] and not delta.assignment_upserts
    assert "web_default" not in translator.result().assignments


def test_identical_inputs_give_byte_identical_output() -> None:
    def run(order: int) -> list[bytes]:
        upstreams = [gce_upstream(f"us{i}") for i in range(3)][::order]
        endpoints = tuple(
            endpoint(f"us{i}", f"10.1.{i}.{j}", labels={"j": str(j)}) for i in range(3) for j in range(4)
        )
        resolved = frozenset(("default", f"us{i}") for i in range(3))
        result = make_translator().translate(upstreams, answer(endpoints[::order], resolved))
        resources = [*result.clusters.values(), *result.assignments.values()]
        return sorted(r.SerializeToString(deterministic=True) for r in resources)

    assert run(1) == run(-1)


@pytest.mark.timeout(120)
def test_one_upstream_endpoint_update_costs_a_tiny_fraction_of_full_translation() -> None:
    count = 1000
    upstreams = [gce_upstream(f"us{i}") for i in range(count)]
    endpoints = tuple(
        endpoint(f"us{i}", f"10.{i // 250}.{i % 250}.{j}", labels={"zone": "z"})
        for i in range(count)
        for j in range(10)
    )
    endpoint_list = answer(endpoints, frozenset(("default", f"us{i}") for i in range(count)))
    translator = make_translator()
    started = time.perf_counter()
    translator.set_upstreams(upstreams)
    translator.set_endpoints(endpoint_list)
    full = time.perf_counter() - started

    incremental = []
    for round_ in range(5):
        new = [endpoint("us500", f"10.200.0.{round_ * 10 + j}") for j in range(10)]
        started = time.perf_counter()
        delta = translator.set_endpoints(only(("default", "us500"), new))
        incremental.append(time.perf_counter() - started)
        assert list(delta.assignment_upserts) == ["us500_default"]
    assert min(incremental) < full / 100

    # The same through a complete answer that says only us500 changed, as discovery hands them on.
    by_upstream: dict[tuple[str, str], list[Endpoint]] = {}
    for e in endpoints:
        by_upstream.setdefault((e.upstreams[0].namespace, e.upstreams[0].name), []).append(e)
    previous = EndpointsUpdate.first({k: UpstreamEndpoints.of(v) for k, v in by_upstream.items()})
    translator.set_endpoints(previous)
    answers = []
    for round_ in range(5):
        moved = UpstreamEndpoints.of(endpoint("us500", f"10.201.0.{round_ * 10 + j}") for j in range(10))
        previous = previous.next({**previous.upstreams, ("default", "us500"): moved}, [("default", "us500")])
        answers.append(previous)
    incremental = []
    for endpoint_list in answers:
        started = time.perf_counter()
        delta = translator.set_endpoints(endpoint_list)
        incremental.append(time.perf_counter() - started)
        assert list(delta.assignment_upserts) == ["us500_default"]
    assert min(incremental) < full / 100


class ServiceNamePlugin(CountingPlugin):
    """Gives gce clusters an EDS service_name, as a plugin may."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def process_upstream(self, params: Params, upstream: Upstream, cluster: Cluster) -> None:
        if cluster.type == Cluster.EDS:
            cluster.eds_cluster_config.service_name = self.service_name


def test_assignment_is_named_by_the_eds_service_name_when_there_is_one() -> None:
    plugin = ServiceNamePlugin("web-svc")
    translator = make_translator(plugin)
    translator.set_upstreams([gce_upstream("web")])
    delta = translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.1")]))
    assert list(delta.assignment_upserts) == ["web-svc"]
    plugin.service_name = "web-svc-2"
    delta = translator.set_upstreams([gce_upstream("web", use_http2=True)])
    assert list(delta.assignment_upserts) == ["web-svc-2"]
    assert delta.assignment_removals == {"web-svc"}


# -- the EDS warming rule -------------------------------------------------------------------------


def test_an_eds_cluster_without_endpoints_is_held_until_discovery_answers() -> None:
    translator = make_translator()
    delta = translator.set_upstreams(
        [gce_upstream("web"), gce_upstream("api"), static_upstream("db", [("10.0.0.5", 5432)])]
    )
    assert delta.held == frozenset({"web_default", "api_default"})
    assert translator.set_upstreams([gce_upstream("web"), gce_upstream("api")]).held is None  # unchanged
    delta = translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.1")]))
    assert delta.held == frozenset({"api_default"}) and list(delta.assignment_upserts) == ["web_default"]
    delta = translator.set_upstreams([gce_upstream("web")])
    assert delta.held == frozenset()
    assert translator.held() == frozenset()


def test_a_repointed_upstream_keeps_its_assignment_and_is_not_held() -> None:
    translator = make_translator()
    translator.set_upstreams([gce_upstream("web")])
    translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.1")]))
    repointed = gce_upstream("web")
    repointed.upstream_spec.gce.instance_group_name = "web-v2"
    delta = translator.set_upstreams([repointed])
    assert delta.held is None and translator.held() == frozenset()


def test_a_new_service_name_without_endpoints_is_held() -> None:
    plugin = ServiceNamePlugin("web-svc")
    translator = make_translator(plugin)
    translator.set_upstreams([gce_upstream("web")])
    assert translator.held() == {"web-svc"}
    translator.set_endpoints(only(("default", "web"), [endpoint("web", "10.0.0.1")]))
    assert translator.held() == frozenset()
    translator.set_upstreams([])
    plugin.service_name = "web-svc-2"
    translator.set_upstreams([gce_upstream("web")])
    assert translator.held() == {"web-svc-2"}
