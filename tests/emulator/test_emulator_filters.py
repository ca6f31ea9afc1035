"""The list-filter parser on plain resources (the API-level filter tests are in test_emulator_compute)."""

from __future__ import annotations

from typing import Any

import pytest

from gce_plugin.emulator.filters import FilterError, parse_filter

FIELDS = frozenset({"name", "status", "labels", "networkInterfaces", "id", "canIpForward"})

RESOURCES: list[dict[str, Any]] = [
    {"name": "web-1", "status": "RUNNING", "labels": {"env": "prod"}, "id": "11", "canIpForward": False,
     "networkInterfaces": [{"networkIP": "10.0.0.1"}, {"networkIP": "10.9.0.1"}]},
    {"name": "web-2", "status": "TERMINATED", "labels": {"env": "dev team"}, "id": "9", "canIpForward": True,
     "networkInterfaces": [{"networkIP": "10.0.0.2", "accessConfigs": [{"natIP": "1.2.3.4"}]}]},
    {"name": "db (primary)", "status": "RUNNING", "id": "100", "canIpForward": False,
     "networkInterfaces": []},
]  # fmt: skip


def matching(expression: str) -> list[str]:
    predicate = parse_filter(expression, FIELDS)
    assert predicate is not None
    return [r["name"] for r in RESOURCES if predicate(r)]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("status = RUNNING", ["web-1", "db (primary)"]),
        ("status=RUNNING", ["web-1", "db (primary)"]),
        ("status = 'RUNNING'", ["web-1", "db (primary)"]),
        ("status != RUNNING", ["web-2"]),
        ("labels.env = prod", ["web-1"]),
        ('labels.env = "dev team"', ["web-2"]),
        ("labels.env != prod", ["web-2", "db (primary)"]),  # no label is not equal
        ("labels.env:*", ["web-1", "web-2"]),
        ("labels:env", ["web-1", "web-2"]),
        ("canIpForward = true", ["web-2"]),
        ("id > 10", ["web-1", "db (primary)"]),  # numbers compare as numbers
        ("id <= 11", ["web-1", "web-2"]),
        ("networkInterfaces.networkIP = 10.9.0.1", ["web-1"]),  # any element of a list
        ("networkInterfaces.accessConfigs.natIP:*", ["web-2"]),
        ("(status = RUNNING) (labels.env = prod)", ["web-1"]),
        ("(status = RUNNING) AND (labels.env = prod)", ["web-1"]),
        ("status = RUNNING labels.env = prod", ["web-1"]),
        ("(name = web-2) OR (labels.env = prod)", ["web-1", "web-2"]),
        # OR binds tighter than AND (AIP-160): RUNNING AND (web-2 OR prod)
        ("(status = RUNNING) AND (name = web-2) OR (labels.env = prod)", ["web-1"]),
        ("((status = RUNNING) OR (name = web-2)) (id < 50)", ["web-1", "web-2"]),
        ("name eq web-1", ["web-1"]),
        ("name eq web", []),  # the regex must match the whole field
        ("name eq web-.*", ["web-1", "web-2"]),
        ("name ne web-.*", ["db (primary)"]),
        ('name eq "web-[2-9]"', ["web-2"]),
        ("name eq db (primary)", []),  # unquoted at top level: the rest is one regex, ( ) a group
        (r"name eq db \(primary\)", ["db (primary)"]),
        ("(name eq db.*) (status eq RUNNING)", ["db (primary)"]),
        ("(name eq (web|db)-1) (status eq RUNNING)", ["web-1"]),  # balanced parens stay in the regex
        ("labels.env eq dev.*", ["web-2"]),
    ],
)
def test_filters(expression: str, expected: list[str]) -> None:
    assert matching(expression) == expected


def test_an_empty_filter_is_no_filter() -> None:
    assert parse_filter("", FIELDS) is None
    assert parse_filter("   ", FIELDS) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("status", "expected an operator"),
        ("status =", "missing value"),
        ("status = (RUNNING)", "missing value"),
        ("(status = RUNNING", "missing ')'"),
        ("status = RUNNING)", "unexpected"),
        ("zone = x", "invalid field name 'zone'"),
        ("= RUNNING", "expected a field name"),
        ("status = 'RUNNING", "unterminated"),
        ("(status = RUNNING) (name eq web)", "cannot be mixed"),
        ("name eq [", "invalid regular expression"),
        ("(name eq )", "missing value"),
        ("-status = RUNNING", "expected a field name"),
    ],
)
def test_bad_filters(expression: str, message: str) -> None:
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_filter(expression, FIELDS)
