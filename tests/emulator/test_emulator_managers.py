"""Managed instance groups in the emulator: the Compute methods through the real googleapiclient
(shapes, PAGELESS vs PAGINATED paging, regional managers, 403 for an unreadable manager), and the
lifecycle (resize, rolling replace, autohealing) on a clock the tests move."""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from gce_plugin.emulator import Emulator, Fixture, FixtureError, NamedPort, Project
from gce_plugin.emulator.fixture import InstanceGroupManager, Timings
from gce_plugin.emulator.state import ComputeState
from gce_plugin.localstack import free_port, http_json
from tests.emulator.emulator_testkit import compute_client, get_backend, member_names, wait_for
from tests.emulator.mig_testkit import MigDriver

MIG_FIXTURE = Path(__file__).resolve().parents[2] / "examples" / "mig-fixture.yaml"
P = "demo-project"
A, B = "us-central1-a", "us-central1-b"
REGION = "us-central1"


@pytest.fixture
def mig() -> Iterator[Emulator]:
    with Emulator(Fixture.load(MIG_FIXTURE)) as running:
        yield running


@pytest.fixture
def compute(mig: Emulator) -> Any:
    return compute_client(mig.url)


def managed(compute: Any, name: str, **scope: str) -> dict[str, Any]:
    resource = compute.instanceGroupManagers() if "zone" in scope else compute.regionInstanceGroupManagers()
    response: dict[str, Any] = resource.listManagedInstances(
        project=P, instanceGroupManager=name, **scope
    ).execute()
    return response


# -- the Compute methods --------------------------------------------------------------------------


def test_manager_get_and_list(compute: Any) -> None:
    shop = compute.instanceGroupManagers().get(project=P, zone=A, instanceGroupManager="shop").execute()
    assert shop["kind"] == "compute#instanceGroupManager"
    assert shop["targetSize"] == 4
    assert shop["listManagedInstancesResults"] == "PAGELESS"
    assert shop["instanceGroup"].endswith(f"/projects/{P}/zones/{A}/instanceGroups/shop")
    assert shop["instanceTemplate"].endswith("/global/instanceTemplates/shop-v1")
    assert shop["namedPorts"] == [{"name": "http", "port": 8090}]
    assert shop["currentActions"]["none"] == 4 and shop["status"]["isStable"] is True
    assert shop["updatePolicy"]["maxSurge"]["fixed"] == 1
    assert shop["autoHealingPolicies"][0]["healthCheck"].endswith("/global/healthChecks/shop-hc")
    listed = compute.instanceGroupManagers().list(project=P, zone=A).execute()
    assert listed["kind"] == "compute#instanceGroupManagerList"
    assert [m["name"] for m in listed["items"]] == ["shop"]
    assert "items" not in compute.instanceGroupManagers().list(project=P, zone=B).execute()
    cart = (
        compute.regionInstanceGroupManagers()
        .get(project=P, region=REGION, instanceGroupManager="cart")
        .execute()
    )
    assert cart["region"].endswith(f"/regions/{REGION}") and "zone" not in cart
    assert cart["listManagedInstancesResults"] == "PAGINATED"
    assert [z["zone"].rsplit("/", 1)[-1] for z in cart["distributionPolicy"]["zones"]] == [A, B]
    assert cart["updatePolicy"]["maxSurge"]["fixed"] == 2  # default: the number of zones


def test_managed_instances_have_the_reference_fields_and_join_instances_by_url(compute: Any) -> None:
    response = managed(compute, "shop", zone=A)
    assert set(response) == {"managedInstances"}  # no kind, no token: PAGELESS
    items = response["managedInstances"]
    assert len(items) == 4
    vms = {vm["selfLink"]: vm for vm in compute.instances().list(project=P, zone=A).execute()["items"]}
    for item in items:
        assert set(item) == {
            "instance",
            "name",
            "id",
            "instanceStatus",
            "currentAction",
            "targetStatus",
            "instanceHealth",
            "version",
        }
        assert item["name"].startswith("shop-") and len(item["name"]) == len("shop-abcd")
        vm = vms[item["instance"]]  # addresses come from instances.list, joined by URL
        assert (vm["name"], vm["id"], vm["status"]) == (item["name"], item["id"], item["instanceStatus"])
        assert vm["networkInterfaces"][0]["networkIP"].startswith("127.0.3.")
        assert item["currentAction"] == "NONE"
        assert [h["detailedHealthState"] for h in item["instanceHealth"]] == ["HEALTHY"]
        assert item["version"]["instanceTemplate"].endswith("/instanceTemplates/shop-v1")
    # The manager's instance group holds the same VMs.
    members = compute.instanceGroups().listInstances(project=P, zone=A, instanceGroup="shop").execute()
    assert sorted(member_names(members["items"])) == sorted(i["name"] for i in items)


def test_an_unmanaged_group_of_the_same_name_in_another_zone_is_another_group(compute: Any) -> None:
    members = compute.instanceGroups().listInstances(project=P, zone=B, instanceGroup="shop").execute()
    assert member_names(members["items"]) == ["shop-legacy"]
    with pytest.raises(HttpError) as caught:
        compute.instanceGroupManagers().get(project=P, zone=B, instanceGroupManager="shop").execute()
    assert caught.value.status_code == 404


def test_pageless_ignores_max_results_and_answers_more_than_500() -> None:
    big = InstanceGroupManager("big", zone=A, target_size=600)
    with Emulator(Fixture([Project(P, instance_group_managers=[big])])) as emulator:
        compute = compute_client(emulator.url)
        response = (
            compute.instanceGroupManagers()
            .listManagedInstances(
                project=P, zone=A, instanceGroupManager="big", maxResults=10, pageToken="ignored"
            )
            .execute()
        )
        assert len(response["managedInstances"]) == 600
        assert "nextPageToken" not in response
        assert "instanceHealth" not in response["managedInstances"][0]  # no health check
        assert emulator.calls("instanceGroupManagers.listManagedInstances") == 1


def test_paginated_pages_with_max_results(compute: Any) -> None:
    resource = compute.regionInstanceGroupManagers()
    request = resource.listManagedInstances(
        project=P, region=REGION, instanceGroupManager="cart", maxResults=2
    )
    pages = []
    while request is not None:
        response = request.execute()
        pages.append([i["name"] for i in response["managedInstances"]])
        request = resource.listManagedInstances_next(request, response)
    assert [len(p) for p in pages] == [2, 1]
    everything = managed(compute, "cart", region=REGION)["managedInstances"]
    assert [n for page in pages for n in page] == [i["name"] for i in everything]
    # A regional group spreads its VMs over its zones.
    zones = sorted(i["instance"].split("/zones/")[1].split("/")[0] for i in everything)
    assert zones == [A, A, B]
    with pytest.raises(HttpError) as caught:
        resource.listManagedInstances(
            project=P, region=REGION, instanceGroupManager="cart", pageToken="forged"
        ).execute()
    assert caught.value.status_code == 400


def test_a_manager_the_caller_cannot_read_is_a_403_but_its_group_is_not() -> None:
    hidden = InstanceGroupManager("hidden", zone=A, target_size=2, caller_can_read=False)
    with Emulator(Fixture([Project(P, instance_group_managers=[hidden])])) as emulator:
        compute = compute_client(emulator.url)
        for call in (
            compute.instanceGroupManagers().get(project=P, zone=A, instanceGroupManager="hidden"),
            compute.instanceGroupManagers().listManagedInstances(
                project=P, zone=A, instanceGroupManager="hidden"
            ),
        ):
            with pytest.raises(HttpError) as caught:
                call.execute()
            assert caught.value.status_code == 403
            assert caught.value.error_details[0]["reason"] == "forbidden"
            assert "compute.instanceGroupManagers.get" in caught.value.reason
        members = compute.instanceGroups().listInstances(project=P, zone=A, instanceGroup="hidden").execute()
        assert len(members["items"]) == 2


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"zones": {A: {"instanceGroups": [{"name": "m"}], "instanceGroupManagers": [{"name": "m"}]}}},
            "exists",
        ),
        ({"zones": {A: {"instanceGroupManagers": [{"name": "m", "zones": [A]}]}}}, "regional"),
        (
            {"zones": {A: {"instanceGroupManagers": [{"name": "m", "listManagedInstancesResults": "X"}]}}},
            "PAGELESS",
        ),
        ({"zones": {A: {"instanceGroupManagers": [{"name": "m", "targetSize": -1}]}}}, "targetSize"),
        ({"zones": {A: {"instanceGroupManagers": [{"name": "m", "timings": {"deleting": -1}}]}}}, "deleting"),
        ({"zones": {A: {"instanceGroupManagers": [{"name": "m", "networkIPRange": "x"}]}}}, "CIDR"),
        (
            {"regions": {REGION: {"instanceGroupManagers": [{"name": "m", "zones": ["europe-west1-b"]}]}}},
            "region",
        ),
        (
            {"zones": {A: {"instanceGroupManagers": [{"name": "m", "updatePolicy": {"maxSurge": 1}}]}}},
            "mapping",
        ),
    ],
)
def test_bad_manager_fixtures_are_refused(body: dict[str, Any], error: str) -> None:
    with pytest.raises(FixtureError, match=error):
        Fixture.from_dict({"projects": {P: body}})


# -- the lifecycle, on a clock the test moves --------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


TIMINGS = Timings(creating=1.0, verifying=1.0, deleting=2.0, autoheal=3.0)


def make_state(
    size: int = 4, surge: int | None = 1, unavailable: int | None = 0, health_check: str | None = "hc"
) -> tuple[ComputeState, Clock]:
    spec = InstanceGroupManager(
        "m",
        zone=A,
        target_size=size,
        health_check=health_check,
        max_surge=surge,
        max_unavailable=unavailable,
        timings=TIMINGS,
    )
    clock = Clock()
    return ComputeState(Fixture([Project(P, instance_group_managers=[spec])]), clock=clock), clock


def snapshot(state: ComputeState) -> dict[str, tuple[str, str | None, bool]]:
    """name -> (currentAction, health, whether the VM exists in instances.list's index)."""
    with state.lock:
        project = state.project(P)
        manager = project.manager(f"zones/{A}", "m")
        return {v.name: (v.action, v.health, project.has_vm(v.zone, v.name)) for v in manager.vms.values()}


def advance(state: ComputeState, clock: Clock, seconds: float, step: float = 0.1) -> None:
    end = clock.now + seconds
    while clock.now < end - 1e-9:
        clock.now += step
        state.tick()


def test_scale_out_creates_verifies_then_serves() -> None:
    state, clock = make_state()
    before = set(snapshot(state))
    state.resize_manager(P, f"zones/{A}", "m", 5)
    (new,) = set(snapshot(state)) - before
    assert snapshot(state)[new] == ("CREATING", None, False)  # no VM yet
    advance(state, clock, 1.0)
    assert snapshot(state)[new] == ("VERIFYING", "UNKNOWN", True)
    assert state.vm_serving(P, A, new) is False
    advance(state, clock, 1.0)
    assert snapshot(state)[new] == ("NONE", "HEALTHY", True)
    assert state.vm_serving(P, A, new) is True


def test_scale_in_deletes_with_a_deleting_window() -> None:
    state, clock = make_state()
    state.resize_manager(P, f"zones/{A}", "m", 2)
    deleting = {n for n, s in snapshot(state).items() if s[0] == "DELETING"}
    assert len(deleting) == 2
    for name in deleting:
        assert snapshot(state)[name][2] is True  # still RUNNING through the window
        assert state.vm_serving(P, A, name) is False
    advance(state, clock, 1.9)
    assert {n for n, s in snapshot(state).items() if s[0] == "DELETING"} == deleting
    advance(state, clock, 0.2)
    assert len(snapshot(state)) == 2 and not deleting & set(snapshot(state))
    with state.lock:
        assert all(not state.project(P).has_vm(A, n) for n in deleting)


@pytest.mark.parametrize(("surge", "unavailable"), [(1, 0), (0, 1), (2, 1), (4, 4)])
def test_rolling_replace_stays_within_surge_and_unavailability(surge: int, unavailable: int) -> None:
    state, clock = make_state(size=4, surge=surge, unavailable=unavailable)
    old = set(snapshot(state))
    state.rolling_replace(P, f"zones/{A}", "m")
    saw_deleting = False
    for _ in range(600):
        snap = snapshot(state)
        live = [s for s in snap.values() if s[0] != "DELETING"]
        available = [s for s in live if s[0] == "NONE" and s[1] == "HEALTHY"]
        assert len(live) <= 4 + surge
        assert len(available) >= 4 - unavailable
        saw_deleting |= any(s[0] == "DELETING" for s in snap.values())
        if (
            not old & set(snap)
            and all(s == ("NONE", "HEALTHY", True) for s in snap.values())
            and len(snap) == 4
        ):
            break
        advance(state, clock, 0.1)
    else:
        raise AssertionError(f"the rolling replace did not finish: {snapshot(state)}")
    assert saw_deleting
    with state.lock:
        manager = state.project(P).manager(f"zones/{A}", "m")
        assert manager.template == "template-1-v2"
        assert {v.version for v in manager.vms.values()} == {"template-1-v2"}


def test_a_regional_group_spreads_over_its_zones_through_resize_and_rolling_replace() -> None:
    spec = InstanceGroupManager("r", region=REGION, zones=[A, B], target_size=2, timings=TIMINGS)
    clock = Clock()
    state = ComputeState(Fixture([Project(P, instance_group_managers=[spec])]), clock=clock)
    scope = f"regions/{REGION}"

    def zones() -> list[str]:
        with state.lock:
            return sorted(v.zone for v in state.project(P).manager(scope, "r").vms.values())

    assert zones() == [A, B]
    state.resize_manager(P, scope, "r", 4)
    assert zones() == [A, A, B, B]
    advance(state, clock, 1.1)
    with state.lock:
        manager = state.project(P).manager(scope, "r")
        assert manager.max_surge == manager.max_unavailable == 2  # the defaults: the number of zones
    state.rolling_replace(P, scope, "r")
    advance(state, clock, 20.0)
    with state.lock:
        manager = state.project(P).manager(scope, "r")
        assert {(v.action, v.version) for v in manager.vms.values()} == {("NONE", "template-1-v2")}
    assert zones() == [A, A, B, B]


def test_a_rolling_replace_replaces_an_unhealthy_vm_first() -> None:
    state, _ = make_state(size=4, surge=1, unavailable=0)
    sick = sorted(snapshot(state))[2]
    state.set_health(P, A, sick, "UNHEALTHY")
    state.rolling_replace(P, f"zones/{A}", "m")
    snap = snapshot(state)
    assert [n for n, s in snap.items() if s[0] == "DELETING"] == [sick]  # costs no availability
    assert sum(s[0] == "CREATING" for s in snap.values()) == 2  # its replacement, and the surge


def test_rolling_replace_needs_surge_or_unavailability() -> None:
    state, _ = make_state()
    with pytest.raises(Exception, match="maxSurge"):
        state.rolling_replace(P, f"zones/{A}", "m", max_surge=0, max_unavailable=0)


def test_autohealing_recreates_an_unhealthy_vm_under_its_name() -> None:
    state, clock = make_state()
    name = sorted(snapshot(state))[0]
    state.set_health(P, A, name, "UNHEALTHY")
    assert snapshot(state)[name] == ("NONE", "UNHEALTHY", True)
    assert state.vm_serving(P, A, name) is False
    advance(state, clock, 2.9)
    assert snapshot(state)[name][0] == "NONE"  # not before timings.autoheal
    advance(state, clock, 0.2)
    assert snapshot(state)[name] == ("RECREATING", "UNHEALTHY", True)
    advance(state, clock, 2.0)
    assert snapshot(state)[name] == ("CREATING", None, False)
    advance(state, clock, 1.0)
    assert snapshot(state)[name] == ("VERIFYING", "UNKNOWN", True)
    advance(state, clock, 1.0)
    assert snapshot(state)[name] == ("NONE", "HEALTHY", True)
    assert len(snapshot(state)) == 4


def test_a_vm_healthy_again_before_autohealing_is_kept() -> None:
    state, clock = make_state()
    name = sorted(snapshot(state))[0]
    state.set_health(P, A, name, "TIMEOUT")
    advance(state, clock, 2.0)
    state.set_health(P, A, name, "HEALTHY")
    advance(state, clock, 5.0)
    assert snapshot(state)[name] == ("NONE", "HEALTHY", True)


def test_with_grace_a_failing_vm_keeps_serving_for_a_while() -> None:
    spec = InstanceGroupManager(
        "m", zone=A, target_size=2, health_check="hc", timings=Timings(deleting=3.0, autoheal=9.0, grace=1.0)
    )
    clock = Clock()
    state = ComputeState(Fixture([Project(P, instance_group_managers=[spec])]), clock=clock)
    state.resize_manager(P, f"zones/{A}", "m", 1)
    doomed = next(n for n, s in snapshot(state).items() if s[0] == "DELETING")
    sick = next(n for n in snapshot(state) if n != doomed)
    assert state.vm_serving(P, A, doomed) is True  # the guest has not been told yet
    advance(state, clock, 0.5)
    state.set_health(P, A, sick, "UNHEALTHY")
    assert state.vm_serving(P, A, sick) is True  # the app has not noticed yet
    advance(state, clock, 0.6)
    assert state.vm_serving(P, A, doomed) is False
    assert state.vm_serving(P, A, sick) is True
    advance(state, clock, 0.5)
    assert state.vm_serving(P, A, sick) is False
    state.set_health(P, A, sick, "HEALTHY")
    assert state.vm_serving(P, A, sick) is True


def test_health_needs_a_managed_vm_and_a_health_check() -> None:
    state, _ = make_state(health_check=None)
    name = sorted(snapshot(state))[0]
    with pytest.raises(Exception, match="no autohealing health check"):
        state.set_health(P, A, name, "UNHEALTHY")
    with pytest.raises(Exception, match="detailedHealthState"):
        state.set_health(P, A, name, "SICK")


def test_deleting_a_managed_vm_by_hand_makes_the_group_create_it_again() -> None:
    state, clock = make_state(health_check=None)
    name = sorted(snapshot(state))[0]
    state.remove_instance(P, A, name)
    assert snapshot(state)[name] == ("CREATING", None, False)
    advance(state, clock, 1.0)
    assert snapshot(state)[name] == ("NONE", None, True)  # no health check: no VERIFYING


# -- the admin API over HTTP ----------------------------------------------------------------------


def admin(emulator: Emulator, verb: str, path: str, body: Any = None) -> Any:
    return http_json(verb, f"{emulator.url}admin/projects/{P}/{path}", body)


def test_admin_http_drives_a_group(mig: Emulator, compute: Any) -> None:
    result = admin(mig, "POST", f"zones/{A}/instanceGroupManagers/shop/resize", {"size": 5})
    assert result["targetSize"] == 5 and result["currentActions"]["creating"] == 1
    items = admin(mig, "GET", f"zones/{A}/instanceGroupManagers/shop")["managedInstances"]
    assert sorted(i["currentAction"] for i in items) == ["CREATING", "NONE", "NONE", "NONE", "NONE"]
    name = next(i["name"] for i in items if i["currentAction"] == "NONE")
    health = admin(mig, "POST", f"zones/{A}/instances/{name}/setHealth", {"detailedHealthState": "UNHEALTHY"})
    assert health == {"name": name, "currentAction": "NONE", "detailedHealthState": "UNHEALTHY"}
    item = next(i for i in managed(compute, "shop", zone=A)["managedInstances"] if i["name"] == name)
    assert item["instanceHealth"][0]["detailedHealthState"] == "UNHEALTHY"
    rolling = admin(
        mig, "POST", f"zones/{A}/instanceGroupManagers/shop/rollingReplace", {"maxUnavailable": 1}
    )
    assert rolling["instanceTemplate"].endswith("/shop-v2")
    assert rolling["updatePolicy"]["maxUnavailable"]["fixed"] == 1


@pytest.mark.parametrize(
    ("verb", "path", "body", "status"),
    [
        ("POST", f"zones/{A}/instanceGroupManagers/shop/resize", {"size": "x"}, 400),
        ("POST", f"zones/{A}/instanceGroupManagers/shop/resize", {"size": -1}, 400),
        ("POST", f"zones/{A}/instanceGroupManagers/nope/resize", {"size": 1}, 404),
        (
            "POST",
            f"zones/{A}/instanceGroupManagers/shop/rollingReplace",
            {"maxSurge": 0, "maxUnavailable": 0},
            400,
        ),
        ("POST", f"zones/{B}/instances/shop-legacy/setHealth", {"detailedHealthState": "UNHEALTHY"}, 400),
        ("POST", f"zones/{B}/instances/nope/setHealth", {"detailedHealthState": "UNHEALTHY"}, 404),
    ],
)
def test_bad_admin_requests(mig: Emulator, verb: str, path: str, body: Any, status: int) -> None:

    with pytest.raises(urllib.error.HTTPError) as caught:
        admin(mig, verb, path, body)
    assert caught.value.code == status


def test_reset_restores_the_groups(mig: Emulator, compute: Any) -> None:
    before = [i["name"] for i in managed(compute, "shop", zone=A)["managedInstances"]]
    mig.resize_group_manager(P, "shop", 1, zone=A)
    mig.reset()
    assert [i["name"] for i in managed(compute, "shop", zone=A)["managedInstances"]] == before


# -- --serve-backends and the driver phase 2's rollout test uses -------------------------------------


@pytest.fixture
def served_mig() -> Iterator[tuple[Emulator, int]]:
    port = free_port("127.8.0.1")
    spec = InstanceGroupManager(
        "shop",
        zone=A,
        target_size=2,
        named_ports=[NamedPort("http", port)],
        health_check="hc",
        max_surge=1,
        max_unavailable=0,
        network_ip_range="127.8.0.0/24",
        timings=Timings(creating=0.2, verifying=0.3, deleting=0.8, autoheal=0.5),
    )
    with Emulator(Fixture([Project(P, instance_group_managers=[spec])]), serve_backends=True) as emulator:
        yield emulator, port


def refused(address: tuple[str, int]) -> bool:
    try:
        return get_backend(*address) is None
    except ConnectionResetError:  # accepted just as the listener closed
        return False


def backend_of(emulator: Emulator, name: str) -> tuple[str, int]:
    ip, _, port = emulator.backends()[name].partition(":")
    return ip, int(port)


def test_backends_answer_503_while_unhealthy_or_torn_down_and_stop_when_gone(
    served_mig: tuple[Emulator, int],
) -> None:
    emulator, port = served_mig
    mig = MigDriver(emulator.url, P, "shop", zone=A)
    names = sorted(mig.states())
    assert set(emulator.backends()) == set(names)
    first, second = (backend_of(emulator, n) for n in names)
    assert first[1] == port
    assert get_backend(*first) == (200, f"hello from {names[0]}\n", names[0])

    mig.set_health(names[0], "UNHEALTHY")
    assert get_backend(*first) == (503, f"{names[0]} is not serving\n", names[0])
    mig.set_health(names[0], "HEALTHY")
    assert get_backend(*first)[0] == 200  # type: ignore[index]

    mig.resize(1)
    doomed = next(n for n, s in mig.states().items() if s[0] == "DELETING")
    address = backend_of(emulator, doomed)
    assert get_backend(*address)[0] == 503  # type: ignore[index]  # shutting down, still listening
    wait_for(lambda: refused(address), timeout=10)  # gone: nothing listens
    assert doomed not in mig.states() and len(emulator.backends()) == 1
    assert {first, second} - {address}


def test_the_driver_runs_a_rolling_replace_a_resize_and_an_autoheal(served_mig: tuple[Emulator, int]) -> None:
    emulator, _ = served_mig
    mig = MigDriver(emulator.url, P, "shop", zone=A)
    before = set(mig.states())
    with mig.watch() as seen:
        mig.rolling_replace()
        after = mig.wait_settled(timeout=20, size=2)
    assert not before & set(after)
    assert {"DELETING", "CREATING", "VERIFYING", "NONE"} <= seen.actions()
    assert set(emulator.backends()) == set(after)

    with mig.watch() as seen:
        mig.resize(3)
        mig.wait_settled(timeout=20, size=3)
        mig.resize(1)
        mig.wait_settled(timeout=20, size=1)
    assert {"CREATING", "VERIFYING", "DELETING"} <= seen.actions()

    with mig.watch() as seen:
        name = mig.autoheal()
        wait_for(lambda: "RECREATING" in seen.actions(), timeout=10)
        mig.wait_settled(timeout=20, size=1)
    states = seen.states_of(name)
    assert states[0][:2] == ("NONE", "HEALTHY")
    actions = [s[0] for s in states]
    assert actions.index("RECREATING") < actions.index("VERIFYING")
    assert ("NONE", "UNHEALTHY", "RUNNING") in states and states[-1] == ("NONE", "HEALTHY", "RUNNING")


def test_list_managed_instances_takes_no_body_and_orders_by_name_only(mig: Emulator) -> None:

    path = f"{mig.compute_url}projects/{P}/zones/{A}/instanceGroupManagers/shop/listManagedInstances"
    assert len(http_json("POST", path)["managedInstances"]) == 4
    with pytest.raises(urllib.error.HTTPError) as caught:
        http_json("POST", path, {"instanceState": "ALL"})
    assert caught.value.code == 400
    assert "Unknown name" in json.loads(caught.value.read())["error"]["message"]
    with pytest.raises(urllib.error.HTTPError) as caught:
        http_json("POST", path + "?orderBy=creationTimestamp")
    assert caught.value.code == 400
    assert mig.calls("instanceGroupManagers.listManagedInstances") == 3
