"""--serve-backends: each RUNNING loopback VM is a real HTTP server that follows the VM's state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gce_plugin.emulator import Emulator, Fixture, Instance, InstanceGroup, NamedPort, Project
from gce_plugin.localstack import free_port
from tests.emulator.emulator_testkit import get_backend, wait_for

ZONE = "us-central1-a"
# 127.0.0.0/8 is all loopback on Linux; an address of our own keeps clear of the demo's 127.0.0.1x.
IP_1, IP_2, IP_3 = "127.7.0.1", "127.7.0.2", "127.7.0.3"


@pytest.fixture
def ports() -> tuple[int, int]:
    return free_port(IP_1), free_port(IP_2)


@pytest.fixture
def served(ports: tuple[int, int]) -> Iterator[Emulator]:
    group_port, own_port = ports
    fixture = Fixture(
        [
            Project(
                "p",
                instances=[
                    Instance("b-1", zone=ZONE, network_ip=IP_1),
                    Instance("b-2", zone=ZONE, network_ip=IP_2, port=own_port),
                    Instance("b-3", zone=ZONE, network_ip=IP_3, status="STOPPED"),
                    Instance("remote", zone=ZONE, network_ip="10.1.2.3", port=own_port),
                ],
                instance_groups=[
                    InstanceGroup(
                        "g", zone=ZONE, named_ports=[NamedPort("http", group_port)], instances=["b-1", "b-3"]
                    )
                ],
            )
        ]
    )
    with Emulator(fixture, serve_backends=True) as emulator:
        yield emulator


def test_running_loopback_vms_answer_on_their_port(served: Emulator, ports: tuple[int, int]) -> None:
    group_port, own_port = ports
    assert get_backend(IP_1, group_port, "/any/path") == (
        200,
        "hello from b-1\n",
        "b-1",
    )  # the group's named port
    assert get_backend(IP_2, own_port) == (200, "hello from b-2\n", "b-2")  # its own port
    assert get_backend(IP_3, group_port) is None  # STOPPED: nothing listens
    assert served.backends() == {"b-1": f"{IP_1}:{group_port}", "b-2": f"{IP_2}:{own_port}"}  # not 10.1.2.3


def test_stopping_and_starting_a_vm_closes_and_reopens_its_backend(
    served: Emulator, ports: tuple[int, int]
) -> None:
    group_port, _ = ports
    served.stop_instance("p", ZONE, "b-1")
    wait_for(lambda: get_backend(IP_1, group_port) is None)
    served.start_instance("p", ZONE, "b-1")
    assert wait_for(lambda: get_backend(IP_1, group_port)) == (200, "hello from b-1\n", "b-1")
    served.start_instance("p", ZONE, "b-3")
    assert wait_for(lambda: get_backend(IP_3, group_port)) == (200, "hello from b-3\n", "b-3")


def test_adding_and_removing_vms(served: Emulator, ports: tuple[int, int]) -> None:
    group_port, _ = ports
    served.add_instance("p", {"name": "b-4", "networkIP": "127.7.0.4"}, ["g"], zone=ZONE)
    assert wait_for(lambda: get_backend("127.7.0.4", group_port)) == (200, "hello from b-4\n", "b-4")
    served.remove_instance("p", ZONE, "b-4")
    wait_for(lambda: get_backend("127.7.0.4", group_port) is None)
    served.remove_group_members("p", "g", ["b-1"], zone=ZONE)  # no group, no port: no backend
    wait_for(lambda: get_backend(IP_1, group_port) is None)


def test_stopping_the_emulator_stops_every_backend(ports: tuple[int, int]) -> None:
    _, own_port = ports
    fixture = Fixture([Project("p", instances=[Instance("solo", zone=ZONE, network_ip=IP_2, port=own_port)])])
    emulator = Emulator(fixture, serve_backends=True).start()
    try:
        assert get_backend(IP_2, own_port) == (200, "hello from solo\n", "solo")
    finally:
        emulator.stop()
    assert get_backend(IP_2, own_port) is None
    assert emulator.backends() == {}
