"""The per-instance rules of discovery: spec validation, port, address, labels, endpoint names."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.config_source_pb2 import ApiVersion

from gce_plugin.api import StaticHost, Upstream
from gce_plugin.plugins.gce.plugin import GcePlugin
from gce_plugin.plugins.gce.spec import (
    DEFAULT_PORT,
    Target,
    endpoint_name,
    is_zone,
    matches,
    parse_target,
    region_of,
    select_address,
    select_port,
    url_path,
    zone_of_instance,
)
from gce_plugin.plugins.plugin import Params
from tests.plugins.gce.gce_helpers import gce_upstream


def target(**kw: Any) -> Target:
    return parse_target(gce_upstream(**kw))


def test_zones_and_regions_are_told_apart_by_form() -> None:
    assert is_zone("us-central1-a") and is_zone("northamerica-northeast1-c")
    assert not is_zone("us-central1") and not is_zone("europe-west4")
    assert region_of("us-central1-a") == "us-central1"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"instance_group_name": ""}, "instanceGroupName required"),
        ({"projectId": ""}, "projectId required"),
        ({"instance_group_region": ""}, "instanceGroupRegion required"),
        ({"instance_group_name": "", "projectId": ""}, "instanceGroupName, projectId required"),
        ({"instance_group_region": "US Central"}, "neither a region"),
        ({"port": 70000}, "port 70000 out of range"),
    ],
)
def test_invalid_specs_are_rejected_with_the_reason(spec: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        target(**spec)


def test_port_explicit_then_named_then_http_then_80() -> None:
    named = [("http", 8080), ("admin", 9000)]
    assert select_port(target(port=1234, port_name="admin"), named) == 1234
    assert select_port(target(port_name="admin"), named) == 9000
    assert select_port(target(), named) == 8080
    assert select_port(target(), [("admin", 9000)]) == DEFAULT_PORT == 80
    assert select_port(target(), [("http", 1), ("http", 2)]) == 1  # the first of duplicates
    with pytest.raises(ValueError, match=r"no named port 'grpc' \(named ports: admin, http\)"):
        select_port(target(port_name="grpc"), named)


def test_address_internal_or_external_or_none() -> None:
    vm = {"networkInterfaces": [{"networkIP": "10.0.0.2", "accessConfigs": [{"natIP": "34.1.2.3"}]}, {}]}
    assert select_address(vm, external=False) == "10.0.0.2"
    assert select_address(vm, external=True) == "34.1.2.3"
    no_nat = {"networkInterfaces": [{"networkIP": "10.0.0.3", "accessConfigs": [{"name": "External NAT"}]}]}
    assert select_address(no_nat, external=True) is None
    assert select_address({"networkInterfaces": [{"networkIP": "10.0.0.4"}]}, external=True) is None
    assert select_address({}, external=False) is None


def test_label_selector_needs_every_pair() -> None:
    vm = {"labels": {"env": "prod", "tier": "web"}}
    assert matches(vm, [])
    assert matches(vm, [("env", "prod")])
    assert matches(vm, [("env", "prod"), ("tier", "web")])
    assert not matches(vm, [("env", "prod"), ("tier", "api")])
    assert not matches({}, [("env", "prod")])


def test_endpoint_names_are_readable_unique_and_stable() -> None:
    a = endpoint_name(("default", "web"), "p", "us-central1-a", "vm-1")
    assert a == endpoint_name(("default", "web"), "p", "us-central1-a", "vm-1")
    assert a.startswith("web-vm-1-") and len(a) == len("web-vm-1-") + 8
    others = {
        endpoint_name(("other", "web"), "p", "us-central1-a", "vm-1"),  # same name, other namespace
        endpoint_name(("default", "web"), "p", "us-central1-b", "vm-1"),  # same VM name, other zone
        endpoint_name(("default", "web-vm"), "p", "us-central1-a", "1"),  # same readable part
    }
    assert a not in others and len(others) == 3
    assert endpoint_name(("default", "Web_Tier"), "p", "z", "vm").startswith("web-tier-vm-")


def test_instance_urls_are_compared_from_projects_on() -> None:
    a = "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/vm-1"
    b = "http://127.0.0.1:9/compute/v1/projects/p/zones/us-central1-a/instances/vm-1"
    assert url_path(a) == url_path(b) == "projects/p/zones/us-central1-a/instances/vm-1"
    assert zone_of_instance(a) == ("p", "us-central1-a")
    assert zone_of_instance("nonsense") == ("", "")


def test_process_upstream_makes_an_ads_eds_cluster() -> None:
    cluster = Cluster(name="web_default")
    cluster.eds_cluster_config.service_name = "stale"
    GcePlugin().process_upstream(Params(), gce_upstream(), cluster)
    assert cluster.type == Cluster.EDS
    source = cluster.eds_cluster_config.eds_config
    assert source.WhichOneof("config_source_specifier") == "ads"
    assert source.resource_api_version == ApiVersion.V3
    assert cluster.eds_cluster_config.service_name == ""


def test_process_upstream_rejects_invalid_and_ignores_other_types() -> None:
    with pytest.raises(ValueError, match="projectId required"):
        GcePlugin().process_upstream(Params(), gce_upstream(projectId=""), Cluster(name="x"))
    static = Upstream()
    static.upstream_spec.static.hosts.append(StaticHost(addr="127.0.0.1", port=80))
    cluster = Cluster(name="s", type=Cluster.STATIC)
    GcePlugin().process_upstream(Params(), static, cluster)
    assert cluster == Cluster(name="s", type=Cluster.STATIC)
