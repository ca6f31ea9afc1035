"""The managed-instance -> Envoy health mapping, row by row as docs/managed-instance-groups.md writes it,
and checked against the enums of the Compute v1 discovery document google-api-python-client bundles
and against Envoy's HealthStatus."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import googleapiclient
import pytest
from envoy.config.core.v3 import health_check_pb2

from gce_plugin.plugins.gce.health import (
    KNOWN_ACTIONS,
    KNOWN_HEALTH_STATES,
    EndpointHealth,
    ManagedState,
    endpoint_health,
)

H = EndpointHealth
DOC = Path(__file__).resolve().parents[3] / "docs" / "managed-instance-groups.md"
DISCOVERY = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "compute.v1.json"


def enum_of(schema: str, field: str) -> set[str]:
    document: dict[str, Any] = json.loads(DISCOVERY.read_text())
    return set(document["schemas"][schema]["properties"][field]["enum"])


INSTANCE_STATUSES = sorted(enum_of("ManagedInstance", "instanceStatus"))
ACTIONS = sorted(enum_of("ManagedInstance", "currentAction"))
HEALTH_STATES = sorted(enum_of("ManagedInstanceInstanceHealth", "detailedHealthState"))

# (instanceStatus, currentAction, detailedHealthStates) -> expected; the docs table, row by row.
TEARDOWN = ["ABANDONING", "DELETING", "RECREATING", "RESTARTING", "STOPPING", "SUSPENDING"]
NOT_YET = ["CREATING", "CREATING_WITHOUT_RETRIES", "RESUMING", "STARTING"]
STEADY = ["NONE", "REFRESHING", None]
HEALTH_ROWS = [
    ((), H.UNKNOWN),
    (("HEALTHY",), H.HEALTHY),
    (("UNHEALTHY",), H.UNHEALTHY),
    (("DRAINING",), H.DRAINING),
    (("TIMEOUT",), H.TIMEOUT),
    (("UNKNOWN",), H.UNKNOWN),
]


def health(status: str | None, action: str | None = "NONE", *states: str) -> EndpointHealth:
    return endpoint_health(ManagedState(status, action, tuple(states)))


def test_the_tables_inputs_are_exactly_the_apis_enums() -> None:
    """A value the API adds (or drops) must show up here and get a row."""
    assert set(KNOWN_ACTIONS) == set(ACTIONS)
    assert set(KNOWN_HEALTH_STATES) == set(HEALTH_STATES)
    assert set(TEARDOWN) | set(NOT_YET) | {"NONE", "REFRESHING", "VERIFYING"} == set(ACTIONS)
    assert "RUNNING" in INSTANCE_STATUSES


def test_every_output_is_an_envoy_health_status() -> None:
    envoy_names = set(health_check_pb2.HealthStatus.keys())
    for value in EndpointHealth:
        if value.is_endpoint:
            assert value.value in envoy_names
    assert H.NOT_AN_ENDPOINT.value not in envoy_names


@pytest.mark.parametrize("status", [s for s in INSTANCE_STATUSES if s != "RUNNING"] + [None])
@pytest.mark.parametrize("action", ["NONE", "DELETING", "VERIFYING"])
def test_a_vm_that_is_not_running_is_not_an_endpoint(status: str | None, action: str) -> None:
    assert health(status, action, "HEALTHY") is H.NOT_AN_ENDPOINT


@pytest.mark.parametrize("action", TEARDOWN)
@pytest.mark.parametrize("states", [(), ("HEALTHY",), ("UNHEALTHY",)])
def test_an_action_that_tears_the_vm_down_drains_it(action: str, states: tuple[str, ...]) -> None:
    assert health("RUNNING", action, *states) is H.DRAINING


@pytest.mark.parametrize("action", NOT_YET)
def test_a_vm_not_yet_serving_is_not_an_endpoint(action: str) -> None:
    assert health("RUNNING", action, "HEALTHY") is H.NOT_AN_ENDPOINT
    assert health("RUNNING", action) is H.NOT_AN_ENDPOINT


@pytest.mark.parametrize(
    ("states", "want"),
    [
        (("HEALTHY",), H.HEALTHY),
        ((), H.NOT_AN_ENDPOINT),
        (("UNKNOWN",), H.NOT_AN_ENDPOINT),
        (("UNHEALTHY",), H.NOT_AN_ENDPOINT),
        (("TIMEOUT",), H.NOT_AN_ENDPOINT),
        (("DRAINING",), H.NOT_AN_ENDPOINT),
    ],
)
def test_verifying_is_an_endpoint_only_once_healthy(states: tuple[str, ...], want: EndpointHealth) -> None:
    assert health("RUNNING", "VERIFYING", *states) is want


@pytest.mark.parametrize("action", STEADY)
@pytest.mark.parametrize(("states", "want"), HEALTH_ROWS)
def test_a_steady_vm_gets_its_health_checks_state(
    action: str | None, states: tuple[str, ...], want: EndpointHealth
) -> None:
    assert health("RUNNING", action, *states) is want


def test_an_action_newer_than_the_table_leaves_it_to_health() -> None:
    assert health("RUNNING", "HIBERNATING", "HEALTHY") is H.HEALTHY
    assert health("RUNNING", "HIBERNATING", "UNHEALTHY") is H.UNHEALTHY


def test_with_several_health_checks_the_worst_state_wins() -> None:
    assert health("RUNNING", "NONE", "HEALTHY", "UNHEALTHY") is H.UNHEALTHY
    assert health("RUNNING", "NONE", "TIMEOUT", "UNHEALTHY") is H.UNHEALTHY
    assert health("RUNNING", "NONE", "DRAINING", "TIMEOUT") is H.TIMEOUT
    assert health("RUNNING", "NONE", "HEALTHY", "DRAINING") is H.DRAINING
    assert health("RUNNING", "NONE", "HEALTHY", "UNKNOWN") is H.UNKNOWN
    assert health("RUNNING", "NONE", "HEALTHY", "SOMETHING_NEW") is H.HEALTHY
    assert health("RUNNING", "NONE", "SOMETHING_NEW") is H.UNKNOWN


@pytest.mark.parametrize("action", ACTIONS)
def test_with_the_mapping_off_only_running_counts(action: str) -> None:
    for status in INSTANCE_STATUSES:
        got = endpoint_health(ManagedState(status, action, ("UNHEALTHY",)), honour_health=False)
        assert got is (H.UNKNOWN if status == "RUNNING" else H.NOT_AN_ENDPOINT)


def test_from_api_reads_a_managed_instance_item() -> None:
    item = {
        "instance": "https://compute.googleapis.com/compute/v1/projects/p/zones/z/instances/web-ab12",
        "name": "web-ab12",
        "id": "123",
        "instanceStatus": "RUNNING",
        "currentAction": "NONE",
        "instanceHealth": [
            {"healthCheck": "https://.../global/healthChecks/hc", "detailedHealthState": "HEALTHY"}
        ],
        "version": {"instanceTemplate": "https://.../instanceTemplates/t1"},
    }
    assert ManagedState.from_api(item) == ManagedState("RUNNING", "NONE", ("HEALTHY",))
    assert endpoint_health(ManagedState.from_api(item)) is H.HEALTHY
    # Being created: no VM yet, so no instanceStatus and no id.
    creating = {"instance": item["instance"], "name": "web-ab12", "currentAction": "CREATING"}
    assert ManagedState.from_api(creating) == ManagedState(None, "CREATING", ())
    assert endpoint_health(ManagedState.from_api(creating)) is H.NOT_AN_ENDPOINT
    # Malformed fields read as absent.
    odd = {"instanceStatus": 5, "currentAction": ["x"], "instanceHealth": [{"detailedHealthState": 1}, "x"]}
    assert ManagedState.from_api(odd) == ManagedState(None, None, ())


def doc_table() -> list[tuple[str, str, str, str]]:
    """The rows of the mapping table in docs/managed-instance-groups.md."""
    text = DOC.read_text()
    section = text.split("<!-- mapping-table -->")[1]
    rows = []
    for line in section.strip().splitlines():
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].startswith(("instanceStatus", "---")):
            continue
        rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


def expand(cell: str, universe: list[str]) -> list[str | None]:
    """A table cell -> the values it stands for: ``any``, ``any other``, ``(absent)`` or a list."""
    if cell in ("any", "any other"):
        return [*universe, None]
    values: list[str | None] = []
    for part in re.split(r",\s*", cell.replace("`", "")):
        values.append(None if part in ("(absent)", "(none)") else part)
    return values


def test_the_docs_table_is_what_the_code_does() -> None:
    rows = doc_table()
    assert len(rows) >= 6
    for status_cell, action_cell, health_cell, want_cell in rows:
        want = EndpointHealth[want_cell.replace("`", "").split()[0]]
        statuses = (
            [s for s in INSTANCE_STATUSES if s != "RUNNING"] + [None]
            if status_cell == "not `RUNNING`"
            else ["RUNNING"]
        )
        actions = expand(action_cell, ACTIONS) if action_cell != "any other" else ["NONE", "REFRESHING", None]
        health_sets: list[tuple[str, ...]] = [
            () if h is None else (h,) for h in expand(health_cell, HEALTH_STATES)
        ]
        for status in statuses:
            for action in actions:
                for states in health_sets:
                    got = endpoint_health(ManagedState(status, action, states))
                    assert got is want, (status, action, states, got, want)
