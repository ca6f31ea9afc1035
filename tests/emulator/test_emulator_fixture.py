"""The fixture model and its YAML loader: what the example holds, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gce_plugin.emulator import Emulator, Fixture, FixtureError, Instance, InstanceGroup, NamedPort, Project
from gce_plugin.emulator.fixture import region_of, stable_id
from tests.emulator.emulator_testkit import EXAMPLE_FIXTURE


def test_the_example_fixture_is_the_demo_fleet() -> None:
    fixture = Fixture.load(EXAMPLE_FIXTURE)
    [project] = fixture.projects
    assert project.name == "demo-project"
    groups = {g.name: g for g in project.instance_groups}
    web, api = groups["web"], groups["api"]
    assert (web.zone, web.region, web.named_ports) == ("us-central1-a", None, [NamedPort("http", 8080)])
    vms = {i.name: i for i in project.instances}
    assert [vms[m].status for m in web.instances].count("RUNNING") == 3
    assert [vms[m].status for m in web.instances].count("STOPPED") == 1
    assert (api.zone, api.region, api.named_ports) == (None, "us-central1", [NamedPort("http", 8081)])
    assert {vms[m.split("/")[1]].zone for m in api.instances} == {"us-central1-a", "us-central1-b"}
    ips = [i.network_ip for i in project.instances]
    assert len(set(ips)) == len(ips)
    assert all(ip is not None and ip.startswith("127.0.0.") and int(ip.rsplit(".")[-1]) >= 11 for ip in ips)
    assert any(i.nat_ip for i in project.instances)
    assert {i.labels.get("env") for i in project.instances} == {"prod", "canary"}


def test_a_fixture_built_in_code_needs_no_yaml() -> None:
    fixture = Fixture(
        [
            Project(
                "p",
                instances=[Instance("vm-1", zone="europe-west1-b"), Instance("vm-2", zone="europe-west1-c")],
                instance_groups=[
                    InstanceGroup("g", region="europe-west1", instances=["vm-1", "europe-west1-c/vm-2"])
                ],
                zones=["europe-west1-d"],
            )
        ]
    )
    fixture.check()
    assert fixture.projects[0].all_zones() == ["europe-west1-b", "europe-west1-c", "europe-west1-d"]
    emulator = Emulator(fixture)  # builds the state; not started
    assert emulator.state.project("p").regions() == {
        "europe-west1": ["europe-west1-b", "europe-west1-c", "europe-west1-d"]
    }


def test_ids_are_stable_and_regions_derive_from_zones() -> None:
    assert stable_id("p", "z", "instances", "a") == stable_id("p", "z", "instances", "a")
    assert stable_id("p", "z", "instances", "a") != stable_id("p", "z", "instances", "b")
    assert len(str(stable_id("x"))) == 19
    assert region_of("us-central1-a") == "us-central1"
    assert region_of("northamerica-northeast2-c") == "northamerica-northeast2"


def test_short_and_long_named_ports_and_explicit_ids() -> None:
    fixture = Fixture.from_dict(
        {
            "projects": {
                "p": {
                    "zones": {
                        "us-east1-b": {
                            "instances": [{"name": "a", "id": 42, "labels": {"on": True, "n": 3}}],
                            "instanceGroups": [
                                {"name": "g", "namedPorts": ["http:80", {"name": "grpc", "port": 9000}]}
                            ],
                        },
                        "us-east1-c": None,
                    }
                }
            }
        }
    )
    [project] = fixture.projects
    assert project.instances[0].id == 42
    assert project.instances[0].labels == {"on": "true", "n": "3"}
    assert project.instance_groups[0].named_ports == [NamedPort("http", 80), NamedPort("grpc", 9000)]
    assert project.zones == ["us-east1-b", "us-east1-c"]


def zone(instances: list[Any], groups: list[Any] | None = None, name: str = "us-east1-b") -> dict[str, Any]:
    body: dict[str, Any] = {"instances": instances}
    if groups is not None:
        body["instanceGroups"] = groups
    return {"projects": {"p": {"zones": {name: body}}}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"project": {}}, "fixture: unknown key 'project'"),
        (
            zone([{"name": "a", "nat_ip": "1.2.3.4"}]),
            "projects.p.zones.us-east1-b.instances[0]: unknown key 'nat_ip'",
        ),
        (zone([{"status": "RUNNING"}]), "instances[0]: missing 'name'"),
        (zone([{"name": "Bad_Name"}]), "instance name 'Bad_Name'"),
        (zone([{"name": "a", "status": "ASLEEP"}]), "status 'ASLEEP'"),
        (zone([{"name": "a", "networkIP": "10.0.0.300"}]), "networkIP '10.0.0.300'"),
        (zone([{"name": "a", "port": 70000}]), "port 70000"),
        (zone([{"name": "a"}, {"name": "a"}]), "duplicate instance 'a'"),
        (zone([{"name": "a"}], name="central"), "zone 'central'"),
        (zone([], [{"name": "g", "instances": ["ghost"]}]), "member 'ghost': no such instance in us-east1-b"),
        (zone([], [{"name": "g", "namedPorts": ["http"]}]), "'http': want NAME:PORT"),
        (zone([], [{"name": "g", "namedPorts": [{"name": "http"}]}]), "missing 'port'"),
        (zone([{"name": "a"}], [{"name": "g", "instances": "a"}]), "instances: want a list"),
        ({"projects": {"p": {"zones": [], "regions": {}}}}, "projects.p.zones: want a mapping"),
        ({"projects": {"Bad Project": {}}}, "project id 'Bad Project' is not valid"),
        ({"projects": {"p": {"zones": {"us-east1-b": []}}}}, "projects.p.zones.us-east1-b: want a mapping"),
        (zone([{"name": "a", "labels": ["x"]}]), "labels ['x']"),
        ([], "fixture: want a mapping"),
    ],
)
def test_bad_fixtures_name_the_spot(data: Any, message: str) -> None:
    with pytest.raises(FixtureError) as caught:
        Fixture.from_dict(data)
    assert message in str(caught.value)


def test_regional_group_member_rules() -> None:
    def fixture(members: list[str]) -> dict[str, Any]:
        return {
            "projects": {
                "p": {
                    "zones": {
                        "us-east1-b": {"instances": [{"name": "a"}, {"name": "twin"}]},
                        "us-east1-c": {"instances": [{"name": "twin"}]},
                        "europe-west1-b": {"instances": [{"name": "far"}]},
                    },
                    "regions": {"us-east1": {"instanceGroups": [{"name": "g", "instances": members}]}},
                }
            }
        }

    assert Fixture.from_dict(fixture(["a", "us-east1-c/twin"])).projects[0].instance_groups[0].instances
    with pytest.raises(FixtureError, match="ambiguous"):
        Fixture.from_dict(fixture(["twin"]))
    with pytest.raises(FixtureError, match="no such instance"):
        Fixture.from_dict(fixture(["far"]))
    with pytest.raises(FixtureError, match="not in the group's region"):
        Fixture.from_dict(fixture(["europe-west1-b/far"]))


def test_a_zonal_group_cannot_hold_another_zones_vm() -> None:
    project = Project(
        "p",
        instances=[Instance("a", zone="us-east1-c")],
        instance_groups=[InstanceGroup("g", zone="us-east1-b", instances=["us-east1-c/a"])],
    )
    with pytest.raises(FixtureError, match="not in the group's zone"):
        Fixture([project]).check()


def test_load_reports_the_file(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match=r"missing\.yaml"):
        Fixture.load(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("projects: [unclosed\n")
    with pytest.raises(FixtureError, match=r"broken\.yaml: not valid YAML"):
        Fixture.load(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert Fixture.load(empty).projects == []
