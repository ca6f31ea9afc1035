"""The admin API (Python methods and /admin/ over HTTP): changing VMs and groups, faults, stats."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from gce_plugin.emulator import Emulator, Instance
from gce_plugin.emulator.errors import ApiError
from tests.emulator.emulator_testkit import (
    PROJECT,
    REGION,
    ZONE_A,
    ZONE_B,
    compute_client,
    member_names,
    names,
)


def admin(emulator: Emulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{emulator.url}admin/{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def running_members(compute: Any, group: str = "web") -> list[str]:
    response = (
        compute.instanceGroups()
        .listInstances(project=PROJECT, zone=ZONE_A, instanceGroup=group, body={"instanceState": "RUNNING"})
        .execute()
    )
    items: list[dict[str, Any]] = response.get("items", [])
    return member_names(items)


def zone_names(compute: Any, zone: str = ZONE_A) -> list[str]:
    items: list[dict[str, Any]] = (
        compute.instances().list(project=PROJECT, zone=zone).execute().get("items", [])
    )
    return names(items)


# -- changing the fleet ---------------------------------------------------------------------------------


def test_add_stop_start_remove_instance_in_python(emulator: Emulator, compute: Any) -> None:
    added = emulator.add_instance(
        PROJECT,
        Instance("web-5", zone=ZONE_A, network_ip="127.0.0.15", labels={"env": "prod"}),
        groups=["web"],
    )
    assert added["selfLink"].endswith(f"/zones/{ZONE_A}/instances/web-5")
    assert running_members(compute) == ["web-1", "web-2", "web-3", "web-5"]
    group = compute.instanceGroups().get(project=PROJECT, zone=ZONE_A, instanceGroup="web").execute()
    assert group["size"] == 5

    stopped = emulator.stop_instance(PROJECT, ZONE_A, "web-1")
    assert stopped["status"] == "TERMINATED"  # how the real API reports a stopped VM
    assert running_members(compute) == ["web-2", "web-3", "web-5"]
    emulator.start_instance(PROJECT, ZONE_A, "web-1")
    assert running_members(compute) == ["web-1", "web-2", "web-3", "web-5"]

    emulator.remove_instance(PROJECT, ZONE_A, "web-5")
    assert running_members(compute) == ["web-1", "web-2", "web-3"]
    assert "web-5" not in zone_names(compute)
    group = compute.instanceGroups().get(project=PROJECT, zone=ZONE_A, instanceGroup="web").execute()
    assert group["size"] == 4


def test_instances_without_a_network_ip_get_a_free_one(emulator: Emulator, compute: Any) -> None:
    first = emulator.add_instance(PROJECT, {"name": "auto-1"}, zone=ZONE_B)
    second = emulator.add_instance(PROJECT, {"name": "auto-2"}, zone=ZONE_B)
    ips = [vm["networkInterfaces"][0]["networkIP"] for vm in (first, second)]
    assert ips == ["10.128.0.2", "10.128.0.3"]


def test_regional_membership_resolves_the_zone(emulator: Emulator, compute: Any) -> None:
    emulator.add_instance(PROJECT, Instance("api-3", zone=ZONE_B), groups=["api"])  # the region's group
    regional = compute.regionInstanceGroups()
    listed = regional.listInstances(project=PROJECT, region=REGION, instanceGroup="api", body={}).execute()
    assert member_names(listed["items"]) == ["api-1", "api-2", "api-3"]
    emulator.remove_group_members(PROJECT, "api", ["us-central1-a/api-1"], region=REGION)
    listed = regional.listInstances(project=PROJECT, region=REGION, instanceGroup="api", body={}).execute()
    assert member_names(listed["items"]) == ["api-2", "api-3"]
    assert "api-1" in zone_names(compute)  # leaving a group does not delete the VM


def test_group_lifecycle_and_named_ports(emulator: Emulator, compute: Any) -> None:
    emulator.add_group(
        PROJECT, {"name": "canary", "namedPorts": ["http:9090"], "instances": ["web-3"]}, zone=ZONE_A
    )
    assert running_members(compute, "canary") == ["web-3"]
    emulator.add_group_members(PROJECT, "canary", ["web-1"], zone=ZONE_A)
    assert running_members(compute, "canary") == ["web-1", "web-3"]
    emulator.set_named_ports(PROJECT, "canary", ["http:9191", {"name": "admin", "port": 9192}], zone=ZONE_A)
    group = compute.instanceGroups().get(project=PROJECT, zone=ZONE_A, instanceGroup="canary").execute()
    assert group["namedPorts"] == [{"name": "http", "port": 9191}, {"name": "admin", "port": 9192}]
    emulator.delete_group(PROJECT, "canary", zone=ZONE_A)
    with pytest.raises(HttpError) as caught:
        compute.instanceGroups().get(project=PROJECT, zone=ZONE_A, instanceGroup="canary").execute()
    assert caught.value.status_code == 404
    assert "web-1" in zone_names(compute)


def test_bad_admin_input_is_refused_and_changes_nothing(emulator: Emulator, compute: Any) -> None:
    with pytest.raises(ApiError, match="already exists"):
        emulator.add_instance(PROJECT, Instance("web-1", zone=ZONE_A))
    with pytest.raises(ApiError, match="status"):
        emulator.set_instance_status(PROJECT, ZONE_A, "web-1", "SLEEPING")
    with pytest.raises(ApiError, match="not in the group's zone"):
        emulator.add_group_members(PROJECT, "web", ["us-central1-b/api-2"], zone=ZONE_A)
    with pytest.raises(ApiError, match="was not found"):
        emulator.add_instance(PROJECT, Instance("web-9", zone=ZONE_A), groups=["no-such-group"])
    assert zone_names(compute) == ["api-1", "web-1", "web-2", "web-3", "web-4"]
    assert running_members(compute) == ["web-1", "web-2", "web-3"]


def test_admin_http_changes_the_fleet(emulator: Emulator, compute: Any) -> None:
    base = f"projects/{PROJECT}/zones/{ZONE_A}"
    status, added = admin(
        emulator, "POST", f"{base}/instances", {"name": "web-6", "networkIP": "127.0.0.16", "groups": ["web"]}
    )
    assert status == 200
    assert added["networkInterfaces"][0]["networkIP"] == "127.0.0.16"
    assert running_members(compute) == ["web-1", "web-2", "web-3", "web-6"]
    assert admin(emulator, "POST", f"{base}/instances/web-6/stop")[0] == 200
    assert running_members(compute) == ["web-1", "web-2", "web-3"]
    assert admin(emulator, "POST", f"{base}/instances/web-6/start")[0] == 200
    assert admin(emulator, "POST", f"{base}/instances/web-6/setLabels", {"labels": {"env": "blue"}})[0] == 200
    vm = compute.instances().get(project=PROJECT, zone=ZONE_A, instance="web-6").execute()
    assert (vm["status"], vm["labels"]) == ("RUNNING", {"env": "blue"})
    status, _ = admin(
        emulator, "POST", f"{base}/instanceGroups/web/removeInstances", {"instances": ["web-6"]}
    )
    assert status == 200
    assert running_members(compute) == ["web-1", "web-2", "web-3"]
    assert admin(emulator, "DELETE", f"{base}/instances/web-6")[0] == 200
    status, body = admin(emulator, "DELETE", f"{base}/instances/web-6")
    assert (status, body["error"]["errors"][0]["reason"]) == (404, "notFound")
    assert admin(emulator, "DELETE", f"projects/{PROJECT}/regions/{REGION}/instanceGroups/api")[0] == 200
    assert admin(emulator, "POST", f"{base}/instances", {"name": "x", "nat_ip": "1.2.3.4"})[0] == 400
    assert admin(emulator, "GET", "nothing")[0] == 404
    assert admin(emulator, "GET", "stats/reset")[0] == 405


def test_reset_restores_the_fixture(emulator: Emulator, compute: Any) -> None:
    emulator.remove_instance(PROJECT, ZONE_A, "web-1")
    emulator.inject_fault("instances.list", status=500)
    emulator.reset()
    assert emulator.faults() == []
    assert zone_names(compute) == ["api-1", "web-1", "web-2", "web-3", "web-4"]
    assert emulator.stats()["counts"] == {"instances.list": 1}


# -- faults ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "rateLimitExceeded"), (403, "rateLimitExceeded"), (503, "backendError"), (500, "backendError")],
)
def test_injected_errors_have_the_real_shape_and_count(
    emulator: Emulator, compute: Any, status: int, reason: str
) -> None:
    emulator.inject_fault("instanceGroups.listInstances", status=status, count=2)
    for _ in range(2):
        with pytest.raises(HttpError) as caught:
            running_members(compute)
        assert caught.value.status_code == status
        assert caught.value.error_details[0]["reason"] == reason
        assert caught.value.error_details[0]["domain"] == "global"
    assert running_members(compute) == ["web-1", "web-2", "web-3"]  # the third call passes
    assert emulator.faults() == []
    assert emulator.calls("instanceGroups.listInstances") == 3
    assert emulator.stats()["statuses"] == {str(status): 2, "200": 1}


def test_a_fault_without_count_lasts_until_cleared(emulator: Emulator, compute: Any) -> None:
    fault_id = emulator.inject_fault("instances.get", status=503, reason="backendError", message="try later")
    for _ in range(3):
        with pytest.raises(HttpError) as caught:
            compute.instances().get(project=PROJECT, zone=ZONE_A, instance="web-1").execute()
        assert caught.value.reason == "try later"
    assert emulator.faults()[0]["hits"] == 3
    assert emulator.clear_faults(fault_id) == 1
    assert (
        compute.instances().get(project=PROJECT, zone=ZONE_A, instance="web-1").execute()["name"] == "web-1"
    )


def test_faults_match_by_path_and_verb(emulator: Emulator, compute: Any) -> None:
    emulator.inject_fault(path=r"/regions/.*/instanceGroups/api", verb="POST", status=429)
    regional = compute.regionInstanceGroups()
    with pytest.raises(HttpError):
        regional.listInstances(project=PROJECT, region=REGION, instanceGroup="api", body={}).execute()
    assert (
        regional.get(project=PROJECT, region=REGION, instanceGroup="api").execute()["name"] == "api"
    )  # a GET
    assert running_members(compute) == ["web-1", "web-2", "web-3"]  # another path


def test_a_delay_fault_slows_the_answer(emulator: Emulator, compute: Any) -> None:
    # The delay is long beside an undelayed call even on a loaded machine (a 0.3 s delay left a
    # plain call too little room there); count=1 is also read back: the fault is used up.
    emulator.inject_fault("zones.get", status=0, delay=1.0, count=1)
    started = time.monotonic()
    assert (
        compute.zones().get(project=PROJECT, zone=ZONE_A).execute()["name"] == ZONE_A
    )  # delayed, not failed
    assert time.monotonic() - started >= 1.0
    assert emulator.faults() == []  # count=1: used up by the first
    started = time.monotonic()
    compute.zones().get(project=PROJECT, zone=ZONE_A).execute()
    assert time.monotonic() - started < 1.0  # only the first was delayed


def test_a_delayed_error_fault(emulator: Emulator, compute: Any) -> None:
    emulator.inject_fault("regions.get", status=503, delay=0.2, count=1)
    started = time.monotonic()
    with pytest.raises(HttpError) as caught:
        compute.regions().get(project=PROJECT, region=REGION).execute()
    assert caught.value.status_code == 503
    assert time.monotonic() - started >= 0.2


def test_faults_over_admin_http(emulator: Emulator, compute: Any) -> None:
    status, body = admin(
        emulator, "POST", "faults", {"method": "instances.aggregatedList", "status": 429, "count": 1}
    )
    assert status == 200
    assert admin(emulator, "GET", "faults")[1]["faults"][0]["id"] == body["id"]
    with pytest.raises(HttpError) as caught:
        compute.instances().aggregatedList(project=PROJECT).execute()
    assert caught.value.status_code == 429
    assert admin(emulator, "GET", "faults")[1] == {"faults": []}
    admin(emulator, "POST", "faults", {"method": "instances.aggregatedList"})
    assert admin(emulator, "DELETE", "faults")[1] == {"cleared": 1}
    assert (
        compute.instances().aggregatedList(project=PROJECT).execute()["kind"]
        == "compute#instanceAggregatedList"
    )
    assert admin(emulator, "POST", "faults", {"status": 500})[0] == 400  # matches nothing
    assert admin(emulator, "POST", "faults", {"method": "x", "colour": "red"})[0] == 400
    status, body = admin(emulator, "POST", "faults", {"method": "instance.list"})  # a typo never matches
    assert (status, body["error"]["message"].split(":")[0]) == (400, "fault method 'instance.list'")
    with pytest.raises(ApiError, match="delay"):
        emulator.inject_fault("instances.list", delay=-1)


# -- stats ------------------------------------------------------------------------------------------------


def test_stats_count_exactly_under_concurrency(emulator: Emulator) -> None:
    threads, calls = 8, 25
    failures: list[BaseException] = []

    def worker() -> None:
        compute = compute_client(emulator.url)  # httplib2 is not thread-safe: one client per thread
        groups, instances = compute.instanceGroups(), compute.instances()
        try:
            for _ in range(calls):
                groups.get(project=PROJECT, zone=ZONE_A, instanceGroup="web").execute()
                instances.list(project=PROJECT, zone=ZONE_B).execute()
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert failures == []
    stats = emulator.stats()
    assert stats["counts"] == {"instanceGroups.get": threads * calls, "instances.list": threads * calls}
    assert stats["total"] == 2 * threads * calls


def test_stats_over_http_and_reset(emulator: Emulator, compute: Any) -> None:
    compute.instances().list(project=PROJECT, zone=ZONE_A).execute()
    compute.regionInstanceGroups().get(project=PROJECT, region=REGION, instanceGroup="api").execute()
    status, stats = admin(emulator, "GET", "stats")
    assert status == 200
    assert stats["counts"] == {"instances.list": 1, "regionInstanceGroups.get": 1}
    assert stats["total"] == 2
    assert [r["method"] for r in stats["requests"]] == ["instances.list", "regionInstanceGroups.get"]
    assert admin(emulator, "POST", "stats/reset")[0] == 200
    assert admin(emulator, "GET", "stats")[1]["counts"] == {}
    assert emulator.stats()["total"] == 0
