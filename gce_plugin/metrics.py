"""Prometheus metrics of the whole process, in one place so names stay consistent.

Everything registers on ``REGISTRY`` (not the global default), so tests and embedding programs can
run several control planes in one process without duplicate-metric errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

# Discovery
DISCOVERY_POLLS = Counter(
    "gce_plugin_discovery_polls",
    "Discovery poll cycles, by plugin and result.",
    ["plugin", "result"],
    registry=REGISTRY,
)
COMPUTE_API_CALLS = Counter(
    "gce_plugin_compute_api_calls",
    "Compute API calls, by method and HTTP status code.",
    ["method", "code"],
    registry=REGISTRY,
)
COMPUTE_API_ERRORS = Counter(
    "gce_plugin_compute_api_errors",
    "Failed Compute API calls (after retries), by method and code.",
    ["method", "code"],
    registry=REGISTRY,
)
UPSTREAM_ENDPOINTS = Gauge(
    "gce_plugin_upstream_endpoints",
    "Endpoints currently known per upstream.",
    ["upstream"],
    registry=REGISTRY,
)
UPSTREAM_DISCOVERY_ERRORS = Counter(
    "gce_plugin_upstream_discovery_errors",
    "Discovery errors per upstream.",
    ["upstream"],
    registry=REGISTRY,
)

# Translation
TRANSLATIONS = Counter(
    "gce_plugin_translations",
    "Translation runs, by kind (full or incremental).",
    ["kind"],
    registry=REGISTRY,
)
UPSTREAMS_REJECTED = Gauge(
    "gce_plugin_upstreams_rejected",
    "Upstreams that currently fail to translate.",
    registry=REGISTRY,
)

# xDS
XDS_CLIENTS = Gauge(
    "gce_plugin_xds_connected_clients",
    "Open xDS streams, by service.",
    ["service"],
    registry=REGISTRY,
)
XDS_PUSHES = Counter(
    "gce_plugin_xds_pushes",
    "DiscoveryResponses sent, by type URL.",
    ["type_url"],
    registry=REGISTRY,
)
XDS_NACKS = Counter(
    "gce_plugin_xds_nacks",
    "Responses rejected by clients (NACKs), by type URL.",
    ["type_url"],
    registry=REGISTRY,
)
XDS_PUSH_LATENCY = Histogram(
    "gce_plugin_xds_push_latency_seconds",
    "From a cache change to the response being written to a stream.",
    ["type_url"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

# Health (gce_plugin/health.py), computed at scrape time from the sources attached to ``HEALTH``.
CONFIG_RELOAD_SUCCESSFUL = Gauge(
    "gce_plugin_config_last_reload_successful",
    "1 if the manifest directory last loaded without errors, 0 if a manifest is rejected (its last "
    "good version is served).",
    registry=REGISTRY,
)
CONFIG_RELOAD_SUCCESS_TIME = Gauge(
    "gce_plugin_config_last_reload_success_timestamp_seconds",
    "Unix time of the last manifest load without errors.",
    registry=REGISTRY,
)

# Replicated control plane (gce_plugin/store/replica.py)
STORE_REACHABLE = Gauge(
    "gce_plugin_store_reachable",
    "1 while the etcd store answers the config watch, 0 while the last good config is served without it.",
    registry=REGISTRY,
)
LEADER = Gauge(
    "gce_plugin_leader",
    "1 while this replica is the leader (it polls discovery and publishes endpoints and statuses).",
    registry=REGISTRY,
)
STORE_WRITES = Counter(
    "gce_plugin_store_writes",
    "Keys the leader put or deleted in the store, by kind (endpoints, statuses).",
    ["kind"],
    registry=REGISTRY,
)
STORE_WRITES_REFUSED = Counter(
    "gce_plugin_store_writes_refused",
    "Leader writes refused by the store because this replica was no longer the leader (fencing).",
    registry=REGISTRY,
)


CONFIG_STALE = Gauge(
    "gce_plugin_config_stale",
    "Manifest files (kind=file) and upstreams (kind=upstream) served from their last accepted version "
    "in the state directory because they failed validation since a restart.",
    ["kind"],
    registry=REGISTRY,
)


class HealthSource(Protocol):
    def ages(self) -> dict[str, tuple[float, bool]]:
        """upstream label -> (seconds since its last successful discovery, failing now)."""

    def stale(self) -> dict[str, float]:
        """upstream label -> when the stale endpoints it is served were saved."""


class HealthCollector(Collector):
    """Per-upstream discovery age, failure and staleness, read from attached sources (a
    ``health.DiscoveryHealth``) at each scrape (an age must grow between polls, which a gauge set at
    poll time would not show)."""

    def __init__(self) -> None:
        self._sources: list[HealthSource] = []

    def attach(self, source: HealthSource) -> None:
        self._sources.append(source)

    def detach(self, source: HealthSource) -> None:
        if source in self._sources:
            self._sources.remove(source)

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        for source in list(self._sources):
            for upstream, (age, failing) in sorted(source.ages().items()):
                families[0].add_metric([upstream], age)
                families[1].add_metric([upstream], 1.0 if failing else 0.0)
            for upstream, saved_at in sorted(source.stale().items()):
                families[2].add_metric([upstream], saved_at)
        yield from families

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "gce_plugin_upstream_discovery_age_seconds",
                "Seconds since the upstream's last successful discovery (since it was added, if never).",
                labels=["upstream"],
            ),
            GaugeMetricFamily(
                "gce_plugin_upstream_discovery_failing",
                "1 while the upstream's latest discovery failed, else 0.",
                labels=["upstream"],
            ),
            GaugeMetricFamily(
                "gce_plugin_upstream_endpoints_stale_saved_timestamp_seconds",
                "Present while the upstream is served endpoints restored from the state directory "
                "(discovery has not succeeded since a restart): Unix time they were saved.",
                labels=["upstream"],
            ),
        ]


HEALTH = HealthCollector()
REGISTRY.register(HEALTH)


# Series labelled by upstream ("namespace.name"): removed when their upstream goes.
PER_UPSTREAM = (UPSTREAM_ENDPOINTS, UPSTREAM_DISCOVERY_ERRORS)


def forget_upstreams(keep: Collection[str]) -> int:
    """Remove the per-upstream series of every upstream not in ``keep`` ("namespace.name"; the
    "*" series of errors about all upstreams stays). Returns how many series went."""
    removed = 0
    for metric in PER_UPSTREAM:
        labelnames = metric._labelnames  # prometheus_client lists label values only privately
        position = labelnames.index("upstream")
        for values in list(metric._metrics):
            if values[position] not in keep and values[position] != "*":
                with contextlib.suppress(KeyError):
                    metric.remove(*values)
                    removed += 1
    return removed
