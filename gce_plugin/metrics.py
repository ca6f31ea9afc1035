"""Prometheus metrics of the whole process, in one place so names stay consistent.

Everything registers on ``REGISTRY`` (not the global default), so tests and embedding programs can
run several control planes in one process without duplicate-metric errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
