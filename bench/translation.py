"""Scenario 2, translation: 10,000 gce upstreams with 10 endpoints each (100,000 endpoints; quick:
1,000 upstreams, 10,000 endpoints).

- full: ``Translator.translate(upstreams, answer)``, everything from scratch into Envoy Clusters and
  ClusterLoadAssignments (every upstream of the answer read);
- incremental, the control plane's path: ``Translator.set_endpoints(update)`` on a translator holding
  the full state, where ``update`` is a complete answer as discovery hands it on
  (``EndpointsUpdate.next``: every upstream's endpoints and version, and the one upstream that
  changed named in ``changed``) in which one endpoint of one upstream moved (the delta carries the
  one new assignment). Per changed upstream: the target is <= 0.05 ms at 10,000 upstreams. The
  translator reads only the endpoints whose bytes it has not seen for that upstream, so the same
  measure is also taken with every endpoint of the changed upstream new (reported, no target);
- floor: serializing the same Clusters and ClusterLoadAssignments (``deterministic=True``, as the
  snapshot cache does): what any translation must at least spend to hand the resources on.

All are measured interleaved, ``repetitions`` rounds, and medians reported (incremental: the median
of many single updates per round). Targets: incremental (the control plane's path) <= 1% of full
and <= 0.05 ms per changed upstream; full <= 5x the floor.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence

from bench.fleet import PROJECT, gce_upstream
from bench.report import Report, median, ms
from gce_plugin.api import Endpoint, ResourceRef, Upstream
from gce_plugin.builtin import default_registry
from gce_plugin.plugins.gce.spec import ANNOTATION_PREFIX
from gce_plugin.plugins.plugin import EndpointsUpdate, UpstreamEndpoints
from gce_plugin.translation.translator import Result, Translator

NAME = "translation"
TITLE = "Translation"
ENDPOINTS_PER_UPSTREAM = 10


def make_upstreams(count: int) -> list[Upstream]:
    return [
        gce_upstream(f"svc-{i:05d}", "default", f"ig-{i // 10:04d}", "us-central1-a") for i in range(count)
    ]


def make_endpoint(upstream: Upstream, i: int, n: int, address: str | None = None) -> Endpoint:
    """An endpoint as gce discovery makes it: labels and annotations of its VM."""
    name = f"{upstream.metadata.name}-vm-{n:07d}"
    endpoint = Endpoint(
        upstreams=[ResourceRef(name=upstream.metadata.name, namespace=upstream.metadata.namespace)],
        address=address or f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
        port=8080,
    )
    endpoint.metadata.name = name
    endpoint.metadata.namespace = "gloo-system"
    endpoint.metadata.labels.update({"ig": upstream.upstream_spec.gce.instance_group_name, "env": "prod"})
    endpoint.metadata.annotations.update(
        {
            ANNOTATION_PREFIX + "instance-name": f"vm-{n:07d}",
            ANNOTATION_PREFIX + "zone": "us-central1-a",
            ANNOTATION_PREFIX + "project": PROJECT,
        }
    )
    return endpoint


def make_endpoints(upstreams: Sequence[Upstream]) -> list[tuple[Endpoint, ...]]:
    return [
        tuple(make_endpoint(u, i, i * ENDPOINTS_PER_UPSTREAM + j) for j in range(ENDPOINTS_PER_UPSTREAM))
        for i, u in enumerate(upstreams)
    ]


def serialize(result: Result) -> int:
    size = 0
    for cluster in result.clusters.values():
        size += len(cluster.SerializeToString(deterministic=True))
    for assignment in result.assignments.values():
        size += len(assignment.SerializeToString(deterministic=True))
    return size


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(quick: bool) -> Report:
    count = 1_000 if quick else 10_000
    repetitions = 5 if quick else 7
    updates_per_round = 50
    upstreams = make_upstreams(count)
    per_upstream = make_endpoints(upstreams)
    keys = [(u.metadata.namespace, u.metadata.name) for u in upstreams]
    versions_by_upstream = {k: UpstreamEndpoints.of(eps) for k, eps in zip(keys, per_upstream, strict=True)}
    everything = EndpointsUpdate.first(versions_by_upstream)
    registry = default_registry()
    report = Report(
        NAME,
        TITLE,
        "quick" if quick else "full",
        {"upstreams": count, "endpoints": count * ENDPOINTS_PER_UPSTREAM, "repetitions": repetitions},
    )

    # The incremental translator, holding the full state.
    live = Translator(registry.upstream_plugins())
    live.set_upstreams(upstreams)
    live.set_endpoints(everything)
    target = count // 2
    key = keys[target]
    original = per_upstream[target]
    # Two versions of the target's endpoints, alternated: its last endpoint moves back and forth.
    moved = (*original[:-1], make_endpoint(upstreams[target], target, 0, address="10.250.0.1"))
    versions = (UpstreamEndpoints.of(moved), UpstreamEndpoints.of(original))
    # And of its neighbour's: all its endpoints replaced by others and back.
    other, other_key = target + 1, keys[target + 1]
    renewed = [
        make_endpoint(upstreams[other], other, n)
        for n in range(count * ENDPOINTS_PER_UPSTREAM, (count + 1) * ENDPOINTS_PER_UPSTREAM)
    ]
    all_new = (UpstreamEndpoints.of(renewed), UpstreamEndpoints.of(per_upstream[other]))
    # The same as complete answers, built as discovery builds them: a copy of the previous answer's
    # mapping with the one upstream's new endpoints, and that upstream named as changed.
    answer_s: list[float] = []
    answers: list[EndpointsUpdate] = []
    all_new_answers: list[EndpointsUpdate] = []
    previous = everything
    for k in range(2 * updates_per_round):
        started = time.perf_counter()
        mapping = dict(previous.upstreams)
        mapping[key] = versions[k % 2]
        previous = previous.next(mapping, (key,))
        answer_s.append(time.perf_counter() - started)
        answers.append(previous)
    for k in range(2 * updates_per_round):
        previous = previous.next({**previous.upstreams, other_key: all_new[k % 2]}, (other_key,))
        all_new_answers.append(previous)

    full_s: list[float] = []
    floor_s: list[float] = []
    answer_update_s: list[float] = []
    all_new_s: list[float] = []
    answer_delta_sizes: set[tuple[int, int]] = set()
    result: Result | None = None
    applied = 0
    for _ in range(repetitions):
        gc.collect()
        started = time.perf_counter()
        result = live.translate(upstreams, everything)
        full_s.append(time.perf_counter() - started)
        floor_s.append(timed(lambda: serialize(result)))  # noqa: B023 - called at once
        for _ in range(updates_per_round):
            update = answers[applied % len(answers)]
            applied += 1
            started = time.perf_counter()
            delta = live.set_endpoints(update)
            answer_update_s.append(time.perf_counter() - started)
            answer_delta_sizes.add((len(delta.assignment_upserts), len(delta.cluster_upserts)))
        for k in range(updates_per_round):
            update = all_new_answers[k]
            started = time.perf_counter()
            delta = live.set_endpoints(update)
            all_new_s.append(time.perf_counter() - started)
            answer_delta_sizes.add((len(delta.assignment_upserts), len(delta.cluster_upserts)))
    assert result is not None

    full, floor = median(full_s), median(floor_s)
    answer_update = median(answer_update_s)
    report.metric("full translation (median)", ms(full), "ms")
    report.metric(
        "incremental: set_endpoints(update), one upstream changed (median)", ms(answer_update), "ms"
    )
    report.metric("incremental: set_endpoints / full", 100 * answer_update / full, "%")
    report.metric("incremental: set_endpoints p90", ms(statistics.quantiles(answer_update_s, n=10)[-1]), "ms")
    report.metric(
        "incremental, every endpoint of the changed upstream new (median)", ms(median(all_new_s)), "ms"
    )
    report.metric("building that update in discovery (dict copy, next)", ms(median(answer_s)), "ms")
    report.metric("serialization floor (median)", ms(floor), "ms")
    report.metric("full / floor", full / floor, "x")
    report.metric("serialized size", serialize(result) / 1e6, "MB")
    report.metric("full translation, min..max", f"{ms(min(full_s)):.0f}..{ms(max(full_s)):.0f} ms")
    report.target(
        "incremental per changed upstream (set_endpoints of a complete update) <= 0.05 ms",
        f"{ms(answer_update):.4f} ms",
        "<= 0.05 ms",
        answer_update <= 0.05e-3,
    )
    report.target(
        "incremental (set_endpoints of a complete update) <= 1% of full",
        f"{100 * answer_update / full:.3f}%",
        "<= 1%",
        answer_update <= 0.01 * full,
    )
    report.target("full <= 5x serialization floor", f"{full / floor:.2f}x", "<= 5x", full <= 5 * floor)
    report.check(
        "full translation has every cluster and assignment",
        len(result.clusters) == count and len(result.assignments) == count,
        f"{len(result.clusters)} clusters, {len(result.assignments)} assignments",
    )
    report.check(
        "an incremental update yields exactly the one changed assignment",
        answer_delta_sizes == {(1, 0)},
        f"(assignments, clusters) per update: {sorted(answer_delta_sizes)}",
    )
    report.raw.update(
        {
            "full_s": full_s,
            "floor_s": floor_s,
            "set_endpoints_s": answer_update_s,
            "set_endpoints_all_new_s": all_new_s,
            "answer_build_s": answer_s,
        }
    )
    return report
