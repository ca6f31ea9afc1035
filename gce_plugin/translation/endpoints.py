"""Discovered endpoints -> Envoy ``ClusterLoadAssignment``s (EDS resources).

Endpoints are reduced to plain, hashable records first: grouping, sorting and change detection then
work on tuples, and a ClusterLoadAssignment is only built for an upstream whose records changed.
Records are sorted and de-duplicated, so the same endpoints in any order give byte-identical output.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
from collections.abc import Iterable, Iterator

from envoy.config.core.v3.base_pb2 import Metadata as EnvoyMetadata
from envoy.config.core.v3.health_check_pb2 import HealthStatus
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from gce_plugin.api import Endpoint
from gce_plugin.envoy_config.addresses import is_ip
from gce_plugin.plugins.plugin import HEALTH_STATUS_ANNOTATION

log = logging.getLogger(__name__)

# (address, port, labels sorted by key, HealthStatus value)
Labels = tuple[tuple[str, str], ...]
EndpointRecord = tuple[str, int, Labels, int]
# The filter metadata namespace Envoy's subset load balancer matches endpoint labels in.
LB_METADATA_NAMESPACE = "envoy.lb"


def endpoint_record(endpoint: Endpoint) -> EndpointRecord:
    metadata = endpoint.metadata
    labels = metadata.labels
    annotations = metadata.annotations
    health = annotations.get(HEALTH_STATUS_ANNOTATION) if annotations else None
    # Indexing by sorted keys is cheaper than the map's items() view, which iterates in Python.
    return (
        endpoint.address,
        endpoint.port,
        tuple([(k, labels[k]) for k in sorted(labels)]) if labels else (),
        health_status(health) if health else HealthStatus.UNKNOWN,
    )


@functools.lru_cache(maxsize=64)
def health_status(name: str) -> int:
    """The ``HealthStatus`` of a ``HEALTH_STATUS_ANNOTATION`` value; a value Envoy does not know is
    ``UNKNOWN`` (routable, as an endpoint without the annotation), with a warning once per value."""
    try:
        return int(HealthStatus.Value(name))
    except ValueError:
        log.warning(
            "endpoint annotation %s=%r is not an Envoy HealthStatus (%s): taken as UNKNOWN",
            HEALTH_STATUS_ANNOTATION,
            name,
            ", ".join(HealthStatus.keys()),
        )
        return int(HealthStatus.UNKNOWN)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building many small objects that cannot form cycles: with 100k
    endpoints its repeated passes over the survivors cost about a third of the grouping (and an
    eighth of a full translation). Nests: an inner pause leaves the GC to the outer one."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def canonical(records: Iterable[EndpointRecord]) -> tuple[EndpointRecord, ...]:
    """Sorted, without duplicates: the form records are compared and translated in."""
    return tuple(sorted(set(records)))


def build_assignment(
    cluster_name: str, records: tuple[EndpointRecord, ...], upstream: str = ""
) -> ClusterLoadAssignment:
    """One locality with an LbEndpoint per record; labels go to ``metadata.filter_metadata["envoy.lb"]``.

    Records Envoy would reject (EDS needs an IP address and a port in 1..65535) are left out with a
    warning, so one bad endpoint never gets the whole EDS response NACKed.
    """
    assignment = ClusterLoadAssignment(cluster_name=cluster_name)
    add = assignment.endpoints.add().lb_endpoints.add
    for address, port, labels, health in records:
        if not 0 < port < 65536 or not is_ip(address):
            log.warning(
                "skipping endpoint %r port %d: EDS needs an IP address and a port in 1..65535",
                address,
                port,
                extra={"upstream": upstream},
            )
            continue
        lb_endpoint = add()
        socket_address = lb_endpoint.endpoint.address.socket_address
        socket_address.address = address
        socket_address.port_value = port
        if labels:
            lb_endpoint.metadata.CopyFrom(_lb_metadata(labels))
        if health:
            lb_endpoint.health_status = health
    return assignment


@functools.lru_cache(maxsize=4096)
def _lb_metadata(labels: Labels) -> EnvoyMetadata:
    # Endpoints of a group mostly share their labels: build each distinct set once, then copy it (in C).
    # Callers only copy from the result, never change it.
    metadata = EnvoyMetadata()
    fields = metadata.filter_metadata[LB_METADATA_NAMESPACE].fields
    for key, value in labels:
        fields[key].string_value = value
    return metadata
