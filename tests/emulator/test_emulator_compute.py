"""Every Compute method the emulator answers, through the real googleapiclient: shapes, paging,
filters and error shapes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from gce_plugin.emulator import Emulator, Fixture, Instance, InstanceGroup, NamedPort, Project
from tests.emulator.emulator_testkit import (
    PROJECT,
    REGION,
    ZONE_A,
    ZONE_B,
    compute_client,
    member_names,
    names,
)


def all_pages(collection: Any, method: str, **kwargs: Any) -> tuple[list[dict[str, Any]], int]:
    """Follow nextPageToken with the client's own ``*_next``; returns (items, pages)."""
    request = getattr(collection, method)(**kwargs)
    items: list[dict[str, Any]] = []
    pages = 0
    while request is not None:
        response = request.execute()
        pages += 1
        items.extend(response.get("items", []))
        request = getattr(collection, f"{method}_next")(request, response)
    return items, pages


def aggregated_pages(collection: Any, key: str, **kwargs: Any) -> tuple[list[tuple[str, str]], int]:
    """aggregatedList across pages -> [(scope, name)] in order, and the page count."""
    request = collection.aggregatedList(**kwargs)
    seen: list[tuple[str, str]] = []
    pages = 0
    while request is not None:
        response = request.execute()
        pages += 1
        for scope, scoped in response["items"].items():
            seen.extend((scope, item["name"]) for item in scoped.get(key, []))
        request = collection.aggregatedList_next(request, response)
    return seen, pages


def http_error(call: Any) -> HttpError:
    with pytest.raises(HttpError) as caught:
        call.execute()
    return caught.value


def reason(error: HttpError) -> str:
    return str(error.error_details[0]["reason"])


# -- instances ------------------------------------------------------------------------------------------


def test_instances_list_returns_the_real_instance_shape(emulator: Emulator, compute: Any) -> None:
    response = compute.instances().list(project=PROJECT, zone=ZONE_A).execute()
    assert response["kind"] == "compute#instanceList"
    assert "nextPageToken" not in response
    assert names(response["items"]) == ["api-1", "web-1", "web-2", "web-3", "web-4"]
    web1 = response["items"][1]
    zone_url = f"{emulator.compute_url}projects/{PROJECT}/zones/{ZONE_A}"
    assert web1["kind"] == "compute#instance"
    assert web1["id"].isdigit()
    assert web1["zone"] == zone_url
    assert web1["selfLink"] == f"{zone_url}/instances/web-1"
    assert web1["status"] == "RUNNING"
    assert web1["labels"] == {"app": "web", "env": "prod"}
    assert web1["creationTimestamp"]
    nic = web1["networkInterfaces"][0]
    assert nic["name"] == "nic0"
    assert nic["networkIP"] == "127.0.0.11"
    assert nic["network"] == f"{emulator.compute_url}projects/{PROJECT}/global/networks/default"
    assert nic["accessConfigs"] == [
        {
            "kind": "compute#accessConfig",
            "type": "ONE_TO_ONE_NAT",
            "name": "External NAT",
            "natIP": "203.0.113.11",
            "networkTier": "PREMIUM",
        }
    ]
    web3 = response["items"][3]
    assert "accessConfigs" not in web3["networkInterfaces"][0]  # no natIP, no access config
    assert response["items"][4]["status"] == "STOPPED"


def test_both_endpoint_forms_reach_the_same_api(emulator: Emulator) -> None:
    # api_endpoint replaces the client's whole base URL: the bare form sends /projects/...,
    # the compute_url form sends /compute/v1/projects/...
    for endpoint in (emulator.url, emulator.compute_url):
        got = (
            compute_client(endpoint).instances().get(project=PROJECT, zone=ZONE_B, instance="api-2").execute()
        )
        assert got["name"] == "api-2"
    paths = [r["path"] for r in emulator.stats()["requests"]]
    assert paths == [f"/compute/v1/projects/{PROJECT}/zones/{ZONE_B}/instances/api-2"] * 2
    assert emulator.calls("instances.get") == 2


def test_instances_get_and_its_404(compute: Any) -> None:
    got = compute.instances().get(project=PROJECT, zone=ZONE_A, instance="web-4").execute()
    assert (got["name"], got["status"]) == ("web-4", "STOPPED")
    error = http_error(compute.instances().get(project=PROJECT, zone=ZONE_A, instance="nope"))
    assert error.status_code == 404
    assert error.reason == f"The resource 'projects/{PROJECT}/zones/{ZONE_A}/instances/nope' was not found"
    assert reason(error) == "notFound"


def test_instances_list_pages_with_max_results(compute: Any, emulator: Emulator) -> None:
    items, pages = all_pages(compute.instances(), "list", project=PROJECT, zone=ZONE_A, maxResults=2)
    assert names(items) == ["api-1", "web-1", "web-2", "web-3", "web-4"]
    assert pages == 3  # 2 + 2 + 1, and no token after the last page
    assert emulator.calls("instances.list") == 3


def test_an_empty_zone_lists_no_items(compute: Any) -> None:
    response = compute.instances().list(project=PROJECT, zone="us-central1-f").execute()
    assert response["kind"] == "compute#instanceList"
    assert "items" not in response  # as the real API: absent, not []


def test_instances_aggregated_list_groups_by_zone_and_pages_across_zones(compute: Any) -> None:
    response = compute.instances().aggregatedList(project=PROJECT).execute()
    assert response["kind"] == "compute#instanceAggregatedList"
    assert names(response["items"][f"zones/{ZONE_A}"]["instances"]) == [
        "api-1",
        "web-1",
        "web-2",
        "web-3",
        "web-4",
    ]
    assert names(response["items"][f"zones/{ZONE_B}"]["instances"]) == ["api-2"]

    seen, pages = aggregated_pages(compute.instances(), "instances", project=PROJECT, maxResults=4)
    assert pages == 2
    assert seen == [(f"zones/{ZONE_A}", n) for n in ["api-1", "web-1", "web-2", "web-3", "web-4"]] + [
        (f"zones/{ZONE_B}", "api-2")
    ]
    first = compute.instances().aggregatedList(project=PROJECT, maxResults=4).execute()
    assert first["items"][f"zones/{ZONE_B}"]["warning"]["code"] == "NO_RESULTS_ON_PAGE"


# -- filters ------------------------------------------------------------------------------------------

FILTERS = [
    ("status = RUNNING", ["api-1", "web-1", "web-2", "web-3", "api-2"]),
    ("status eq RUNNING", ["api-1", "web-1", "web-2", "web-3", "api-2"]),
    ("status != RUNNING", ["web-4"]),
    ('name eq "web-1"', ["web-1"]),
    ("name eq web-[12]", ["web-1", "web-2"]),
    ("name eq web", []),  # regexes match the whole field
    ("name ne .*-1", ["web-2", "web-3", "web-4", "api-2"]),
    ('labels.env = "prod"', ["api-1", "web-1", "web-2", "web-4", "api-2"]),
    ("labels.env eq canary", ["web-3"]),
    ('(status = "RUNNING") (labels.env = "prod")', ["api-1", "web-1", "web-2", "api-2"]),
    ("(status = RUNNING) AND (labels.app = web)", ["web-1", "web-2", "web-3"]),
    ("(status eq RUNNING) (labels.app eq web)", ["web-1", "web-2", "web-3"]),
    ("(name = web-1) OR (name = api-2)", ["web-1", "api-2"]),
    ("labels.env:*", ["api-1", "web-1", "web-2", "web-3", "web-4", "api-2"]),
    ("networkInterfaces.accessConfigs.natIP:*", ["web-1", "web-2"]),
    ('networkInterfaces.networkIP = "127.0.0.22"', ["api-2"]),
]


@pytest.mark.parametrize(("expression", "expected"), FILTERS)
def test_aggregated_list_filters(compute: Any, expression: str, expected: list[str]) -> None:
    seen, _ = aggregated_pages(compute.instances(), "instances", project=PROJECT, filter=expression)
    assert [name for _, name in seen] == expected


def test_instances_list_filters_with_paging(compute: Any) -> None:
    items, pages = all_pages(
        compute.instances(), "list", project=PROJECT, zone=ZONE_A, filter="status = RUNNING", maxResults=2
    )
    assert names(items) == ["api-1", "web-1", "web-2", "web-3"]
    assert pages == 2


@pytest.mark.parametrize(
    "expression",
    [
        "status",  # no operator
        "status = ",  # no value
        "(status = RUNNING",  # unbalanced
        "bogusField = 1",  # not an Instance field
        "(status = RUNNING) (name eq web-1)",  # the two dialects mixed
        "name eq web-(",  # bad regex
        "NOT status = RUNNING",
    ],
)
def test_unsupported_filters_are_400_invalid(compute: Any, expression: str) -> None:
    error = http_error(compute.instances().list(project=PROJECT, zone=ZONE_A, filter=expression))
    assert error.status_code == 400
    assert reason(error) == "invalid"
    assert error.reason.startswith("Invalid value for field 'filter'")


# -- instance groups ------------------------------------------------------------------------------------


def test_zonal_group_get(emulator: Emulator, compute: Any) -> None:
    group = compute.instanceGroups().get(project=PROJECT, zone=ZONE_A, instanceGroup="web").execute()
    zone_url = f"{emulator.compute_url}projects/{PROJECT}/zones/{ZONE_A}"
    assert group["kind"] == "compute#instanceGroup"
    assert group["id"].isdigit()
    assert group["name"] == "web"
    assert group["zone"] == zone_url
    assert "region" not in group
    assert group["selfLink"] == f"{zone_url}/instanceGroups/web"
    assert group["namedPorts"] == [{"name": "http", "port": 8080}]
    assert group["size"] == 4
    assert group["network"].endswith(f"projects/{PROJECT}/global/networks/default")


def test_regional_group_get(emulator: Emulator, compute: Any) -> None:
    group = compute.regionInstanceGroups().get(project=PROJECT, region=REGION, instanceGroup="api").execute()
    region_url = f"{emulator.compute_url}projects/{PROJECT}/regions/{REGION}"
    assert group["kind"] == "compute#instanceGroup"
    assert group["region"] == region_url
    assert "zone" not in group
    assert group["selfLink"] == f"{region_url}/instanceGroups/api"
    assert (group["size"], group["namedPorts"]) == (2, [{"name": "http", "port": 8081}])


def test_missing_groups_are_404_in_the_real_shape(compute: Any) -> None:
    error = http_error(compute.instanceGroups().get(project=PROJECT, zone=ZONE_B, instanceGroup="web"))
    assert error.status_code == 404
    assert (
        error.reason == f"The resource 'projects/{PROJECT}/zones/{ZONE_B}/instanceGroups/web' was not found"
    )
    assert error.error_details == [{"message": error.reason, "domain": "global", "reason": "notFound"}]
    error = http_error(
        compute.regionInstanceGroups().get(project=PROJECT, region="europe-west1", instanceGroup="x")
    )
    assert error.status_code == 404
    error = http_error(
        compute.instanceGroups().listInstances(project=PROJECT, zone=ZONE_A, instanceGroup="x")
    )
    assert error.status_code == 404
    error = http_error(
        compute.instanceGroups().get(project="other-project", zone=ZONE_A, instanceGroup="web")
    )
    assert (error.status_code, error.reason) == (404, "The resource 'projects/other-project' was not found")


def test_group_lists_and_name_filters(compute: Any) -> None:
    zonal = compute.instanceGroups().list(project=PROJECT, zone=ZONE_A).execute()
    assert zonal["kind"] == "compute#instanceGroupList"
    assert names(zonal["items"]) == ["web"]
    regional = compute.regionInstanceGroups().list(project=PROJECT, region=REGION).execute()
    assert regional["kind"] == "compute#regionInstanceGroupList"
    assert names(regional["items"]) == ["api"]
    for expression in ('name eq "web"', "name eq web", 'name = "web"'):
        listed = compute.instanceGroups().list(project=PROJECT, zone=ZONE_A, filter=expression).execute()
        assert names(listed["items"]) == ["web"]
    none = compute.instanceGroups().list(project=PROJECT, zone=ZONE_A, filter='name eq "we"').execute()
    assert "items" not in none


def test_group_aggregated_list_covers_zonal_and_regional_groups(compute: Any) -> None:
    response = compute.instanceGroups().aggregatedList(project=PROJECT).execute()
    assert response["kind"] == "compute#instanceGroupAggregatedList"
    assert names(response["items"][f"zones/{ZONE_A}"]["instanceGroups"]) == ["web"]
    assert names(response["items"][f"regions/{REGION}"]["instanceGroups"]) == ["api"]
    assert response["items"][f"zones/{ZONE_B}"]["warning"]["code"] == "NO_RESULTS_ON_PAGE"
    seen, _ = aggregated_pages(
        compute.instanceGroups(), "instanceGroups", project=PROJECT, filter='name eq "api"'
    )
    assert seen == [(f"regions/{REGION}", "api")]
    seen, pages = aggregated_pages(compute.instanceGroups(), "instanceGroups", project=PROJECT, maxResults=1)
    assert (seen, pages) == ([(f"regions/{REGION}", "api"), (f"zones/{ZONE_A}", "web")], 2)


def test_zonal_list_instances_by_state(emulator: Emulator, compute: Any) -> None:
    groups = compute.instanceGroups()
    running = groups.listInstances(
        project=PROJECT, zone=ZONE_A, instanceGroup="web", body={"instanceState": "RUNNING"}
    ).execute()
    assert running["kind"] == "compute#instanceGroupsListInstances"
    assert member_names(running["items"]) == ["web-1", "web-2", "web-3"]
    web1 = compute.instances().get(project=PROJECT, zone=ZONE_A, instance="web-1").execute()
    assert running["items"][0] == {
        "instance": web1["selfLink"],
        "status": "RUNNING",
        "namedPorts": [{"name": "http", "port": 8080}],
    }
    everything = groups.listInstances(
        project=PROJECT, zone=ZONE_A, instanceGroup="web", body={"instanceState": "ALL"}
    )
    assert member_names(everything.execute()["items"]) == ["web-1", "web-2", "web-3", "web-4"]
    no_body = groups.listInstances(project=PROJECT, zone=ZONE_A, instanceGroup="web").execute()
    assert len(no_body["items"]) == 4  # the real default is ALL


def test_list_instances_pages(emulator: Emulator, compute: Any) -> None:
    items, pages = all_pages(
        compute.instanceGroups(),
        "listInstances",
        project=PROJECT,
        zone=ZONE_A,
        instanceGroup="web",
        body={"instanceState": "ALL"},
        maxResults=1,
    )
    assert (member_names(items), pages) == (["web-1", "web-2", "web-3", "web-4"], 4)
    assert emulator.calls("instanceGroups.listInstances") == 4
    items, pages = all_pages(
        compute.instanceGroups(),
        "listInstances",
        project=PROJECT,
        zone=ZONE_A,
        instanceGroup="web",
        body={"instanceState": "RUNNING"},
        maxResults=2,
    )
    assert (member_names(items), pages) == (["web-1", "web-2", "web-3"], 2)


def test_regional_list_instances_spans_zones_and_honours_port_name(compute: Any) -> None:
    groups = compute.regionInstanceGroups()
    response = groups.listInstances(
        project=PROJECT, region=REGION, instanceGroup="api", body={"instanceState": "RUNNING"}
    ).execute()
    assert response["kind"] == "compute#regionInstanceGroupsListInstances"
    assert [item["instance"].split("/zones/")[1] for item in response["items"]] == [
        f"{ZONE_A}/instances/api-1",
        f"{ZONE_B}/instances/api-2",
    ]
    assert all(item["namedPorts"] == [{"name": "http", "port": 8081}] for item in response["items"])
    other = groups.listInstances(
        project=PROJECT, region=REGION, instanceGroup="api", body={"instanceState": "ALL", "portName": "grpc"}
    ).execute()
    assert all("namedPorts" not in item for item in other["items"])
    items, pages = all_pages(
        groups, "listInstances", project=PROJECT, region=REGION, instanceGroup="api", body={}, maxResults=1
    )
    assert (member_names(items), pages) == (["api-1", "api-2"], 2)


def test_list_instances_rejects_bad_requests(compute: Any) -> None:
    groups = compute.instanceGroups()
    error = http_error(
        groups.listInstances(
            project=PROJECT, zone=ZONE_A, instanceGroup="web", body={"instanceState": "SOME"}
        )
    )
    assert (error.status_code, reason(error)) == (400, "invalid")
    error = http_error(
        groups.listInstances(project=PROJECT, zone=ZONE_A, instanceGroup="web", body={"portName": "x"})
    )
    assert error.status_code == 400  # portName exists only on the regional request


# -- regions and zones ------------------------------------------------------------------------------------


def test_regions_and_zones(emulator: Emulator, compute: Any) -> None:
    region = compute.regions().get(project=PROJECT, region=REGION).execute()
    base = f"{emulator.compute_url}projects/{PROJECT}"
    assert region["kind"] == "compute#region"
    assert (region["name"], region["status"]) == (REGION, "UP")
    assert region["zones"] == [f"{base}/zones/{ZONE_A}", f"{base}/zones/{ZONE_B}"]
    assert region["selfLink"] == f"{base}/regions/{REGION}"
    zone = compute.zones().get(project=PROJECT, zone=ZONE_B).execute()
    assert (zone["kind"], zone["name"], zone["status"]) == ("compute#zone", ZONE_B, "UP")
    assert zone["region"] == f"{base}/regions/{REGION}"
    assert names(compute.zones().list(project=PROJECT).execute()["items"]) == [ZONE_A, ZONE_B]
    assert names(compute.regions().list(project=PROJECT).execute()["items"]) == [REGION]
    assert http_error(compute.regions().get(project=PROJECT, region="asia-east1")).status_code == 404
    assert http_error(compute.zones().get(project=PROJECT, zone="us-central1-f")).status_code == 404


# -- paging parameters and unknown paths ---------------------------------------------------------------------


def test_bad_paging_parameters(compute: Any) -> None:
    error = http_error(compute.instances().list(project=PROJECT, zone=ZONE_A, pageToken="not-a-token"))
    assert (error.status_code, reason(error)) == (400, "invalid")
    error = http_error(
        compute.instances().list(project=PROJECT, zone=ZONE_A, orderBy="creationTimestamp desc")
    )
    assert error.status_code == 400
    error = http_error(compute.instances().list(project=PROJECT, zone="nowhere"))
    assert (error.status_code, error.reason) == (
        400,
        "Invalid value for field 'zone': 'nowhere'. Unknown zone.",
    )


def get_json(url: str, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_unknown_paths_and_verbs_are_404_json(emulator: Emulator) -> None:
    for url, method in [
        (f"{emulator.compute_url}projects/{PROJECT}/zones/{ZONE_A}/disks", "GET"),
        (f"{emulator.url}nothing/here", "GET"),
        (f"{emulator.compute_url}projects/{PROJECT}/zones/{ZONE_A}/instances", "POST"),
    ]:
        status, body = get_json(url, method)
        assert status == 404
        assert body["error"]["code"] == 404
        assert body["error"]["errors"][0]["reason"] == "notFound"
    assert emulator.stats()["total"] == 0
    assert emulator.stats()["unmatched"] == 3


# -- scale ------------------------------------------------------------------------------------------------


def big_fixture(instances: int = 5000, groups: int = 50) -> Fixture:
    zones = [f"us-east1-{z}" for z in "bcd"] + [f"europe-west1-{z}" for z in "bc"]
    vms = [
        Instance(f"vm-{i:05d}", zone=zones[i % len(zones)], labels={"shard": str(i % 7)})
        for i in range(instances)
    ]
    per_group = instances // groups
    instance_groups = []
    for g in range(groups):
        members = vms[g * per_group : (g + 1) * per_group]
        zone = members[0].zone
        region = zone.rsplit("-", 1)[0]
        in_region = [f"{vm.zone}/{vm.name}" for vm in members if vm.zone.startswith(region)]
        instance_groups.append(
            InstanceGroup(
                f"group-{g:02d}", region=region, named_ports=[NamedPort("http", 8080)], instances=in_region
            )
        )
    return Fixture([Project("big-project", instances=vms, instance_groups=instance_groups)])


def test_five_thousand_instances_page_exactly_once_each() -> None:
    with Emulator(big_fixture()) as emulator:
        compute = compute_client(emulator.url)
        seen, pages = aggregated_pages(
            compute.instances(), "instances", project="big-project", maxResults=1000
        )
        assert pages == 10  # maxResults above 500 is capped at 500
        assert len(seen) == len(set(seen)) == 5000
        filtered, _ = aggregated_pages(
            compute.instances(), "instances", project="big-project", filter="labels.shard = 3"
        )
        assert len(filtered) == len([i for i in range(5000) if i % 7 == 3])
        regional = compute.regionInstanceGroups()
        items, pages = all_pages(
            regional,
            "listInstances",
            project="big-project",
            region="us-east1",
            instanceGroup="group-00",
            body={},
        )
        assert pages == 1
        assert len(items) == len(set(member_names(items))) > 0
        groups, _ = aggregated_pages(compute.instanceGroups(), "instanceGroups", project="big-project")
        assert len(groups) == 50
