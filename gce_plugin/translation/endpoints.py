"""Discovered endpoints -> Envoy ``ClusterLoadAssignment``s (EDS resources).

Endpoints are reduced to plain, hashable records first: grouping, sorting and change detection then
work on tuples, and a ClusterLoadAssignment is only built for an upstream whose records changed.
Records are sorted and de-duplicated, so the same endpoints in any order give byte-identical output.
An upstream's records are kept with the answer they were read from (``KnownEndpoints``), so when its
endpoints change only the endpoints not seen before are decoded and read.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from envoy.config.core.v3.health_check_pb2 import HealthStatus
from envoy.config.endpoint.v3.endpoint_components_pb2 import LbEndpoint
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from gce_plugin.api import Endpoint
from gce_plugin.envoy_config.addresses import is_ip
from gce_plugin.plugins.plugin import HEALTH_STATUS_ANNOTATION, UpstreamEndpoints

log = logging.getLogger(__name__)

# (address, port, labels sorted by key, HealthStatus value)
Labels = tuple[tuple[str, str], ...]
EndpointRecord = tuple[str, int, Labels, int]
# The filter metadata namespace Envoy's subset load balancer matches endpoint labels in.
LB_METADATA_NAMESPACE = "envoy.lb"
# Looked up once: the enum wrapper's attribute lookup is Python code (~1.5 us), once per endpoint.
_UNKNOWN = int(HealthStatus.UNKNOWN)


def endpoint_record(endpoint: Endpoint) -> EndpointRecord:
    metadata = endpoint.metadata
    labels = metadata.labels
    annotations = metadata.annotations
    health = annotations.get(HEALTH_STATUS_ANNOTATION) if annotations else None
    # Indexing by sorted keys is cheaper than the map's items() view, which iterates in Python.
    found = tuple([(k, labels[k]) for k in sorted(labels)]) if labels else ()
    return (
        endpoint.address,
        endpoint.port,
        _shared_labels(found),
        health_status(health) if health else _UNKNOWN,
    )


# Label sets seen, so that the records kept per endpoint share one tuple per distinct set (the
# endpoints of a group mostly have the same labels): bounded, cleared when full.
_LABEL_SETS: dict[Labels, Labels] = {}
_MAX_LABEL_SETS = 4096


def _shared_labels(labels: Labels) -> Labels:
    shared = _LABEL_SETS.get(labels)
    if shared is None:
        if len(_LABEL_SETS) >= _MAX_LABEL_SETS:
            _LABEL_SETS.clear()
        shared = _LABEL_SETS[labels] = labels
    return shared


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
    """Sorted, without duplicates: the form records are compared and translated in. A tuple already
    in that form is returned as is, so what is kept in both forms is kept once."""
    ordered = tuple(sorted(set(records)))
    return records if isinstance(records, tuple) and records == ordered else ordered


@dataclass(frozen=True, slots=True)
class KnownEndpoints:
    """One upstream's endpoints as translation knows them: discovery's answer itself (compact bytes,
    the very object discovery keeps, not a copy) and each endpoint's record, in the answer's order."""

    found: UpstreamEndpoints
    records: tuple[EndpointRecord, ...]

    @classmethod
    def read(cls, found: UpstreamEndpoints, previous: KnownEndpoints | None = None) -> KnownEndpoints:
        """The records of ``found``. Only endpoints ``previous`` did not have byte for byte are decoded
        and read: a change of one endpoint costs one decode, not one per endpoint of the upstream."""
        if previous is None:
            # Through the decode memo, as before KnownEndpoints: decoding a first answer's 100,000
            # endpoints one by one (each freed at once) left the control plane ~20-50 MiB higher
            # once 100 clients had joined (bench footprint; bench/RESULTS.md), though it keeps less.
            return cls(found, tuple(endpoint_record(e) for e in found.endpoints))
        known = dict(zip(previous.found.serialized_endpoints(), previous.records, strict=True))
        get = known.get
        records = []
        for data in found.serialized_endpoints():
            record = get(data)
            records.append(endpoint_record(Endpoint.FromString(data)) if record is None else record)
        return cls(found, tuple(records))


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
        if labels or health:
            lb_endpoint.CopyFrom(_lb_endpoint_template(labels, health))
        socket_address = lb_endpoint.endpoint.address.socket_address
        socket_address.address = address
        socket_address.port_value = port
    return assignment


@functools.lru_cache(maxsize=4096)
def _lb_endpoint_template(labels: Labels, health: int) -> LbEndpoint:
    # Endpoints of a group mostly share their labels and health: build each distinct pair once, then
    # copy it (in C) and add the address. Callers only copy from the result, never change it.
    template = LbEndpoint(health_status=health)
    if labels:
        fields = template.metadata.filter_metadata[LB_METADATA_NAMESPACE].fields
        for key, value in labels:
            fields[key].string_value = value
    return template
