"""``gce-plugin apply / get / delete`` as separate processes against a real etcd, with etcdctl
writing and reading the Gloo layout beside them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from gce_plugin.localstack import gce_plugin_command
from gce_plugin.store.local import EtcdCluster
from tests.store.store_testkit import etcdctl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "upstreams"


def cli(cluster: EtcdCluster, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*gce_plugin_command(), *args, "--store", cluster.store_url, "--store-prefix", prefix]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_apply_is_idempotent_and_get_reads_it_back(etcd1: EtcdCluster, prefix: str) -> None:
    first = cli(etcd1, prefix, "apply", "-f", str(EXAMPLES))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["upstream default/web created", "upstream default/api created"]
    again = cli(etcd1, prefix, "apply", "-f", str(EXAMPLES / "upstreams.yaml"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["upstream default/web unchanged", "upstream default/api unchanged"]
    # The values are where Gloo's KV source looks, as solo-kit writes them (proto3 JSON names).
    stored = etcdctl(etcd1, "get", "--print-value-only", f"{prefix}/gloo.solo.io/v1/Upstream/default/web")
    value = yaml.safe_load(stored)
    assert value["metadata"] == {"name": "web", "namespace": "default"}
    assert value["upstreamSpec"]["gce"]["instanceGroupName"] == "web"
    listed = cli(etcd1, prefix, "get", "upstreams", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [
        ("default", "api"),
        ("default", "web"),
    ]
    revision = json.loads(
        etcdctl(etcd1, "get", "-w", "json", f"{prefix}/gloo.solo.io/v1/Upstream/default/web")
    )
    web = next(i for i in items if i["metadata"]["name"] == "web")
    assert web["metadata"]["resourceVersion"] == str(revision["kvs"][0]["mod_revision"])


def test_apply_changes_only_what_changed(etcd1: EtcdCluster, prefix: str, tmp_path: Path) -> None:
    assert cli(etcd1, prefix, "apply", "-f", str(EXAMPLES)).returncode == 0
    edited = (
        (EXAMPLES / "upstreams.yaml")
        .read_text()
        .replace("instanceGroupName: web ", "instanceGroupName: web2 ")
    )
    (tmp_path / "u.yaml").write_text(edited)
    done = cli(etcd1, prefix, "apply", "-f", str(tmp_path / "u.yaml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["upstream default/web configured", "upstream default/api unchanged"]


def test_apply_refuses_a_bad_manifest_with_the_loaders_message_and_writes_nothing(
    etcd1: EtcdCluster, prefix: str, tmp_path: Path
) -> None:
    bad = (
        (EXAMPLES / "upstreams.yaml")
        .read_text()
        .replace("projectId: demo-project\n      # no", "projectID: x\n      # no")
    )
    (tmp_path / "bad.yaml").write_text(bad)
    done = cli(etcd1, prefix, "apply", "-f", str(tmp_path / "bad.yaml"))
    assert done.returncode == 1
    assert (
        f"{tmp_path / 'bad.yaml'}: document 2: spec.upstreamSpec.gce.projectID: unknown field" in done.stderr
    )
    assert etcdctl(etcd1, "get", "--prefix", "--keys-only", f"{prefix}/") == ""


def test_apply_with_a_stale_resource_version_is_a_conflict(
    etcd1: EtcdCluster, prefix: str, tmp_path: Path
) -> None:
    assert cli(etcd1, prefix, "apply", "-f", str(EXAMPLES)).returncode == 0
    doc = yaml.safe_load(cli(etcd1, prefix, "get", "upstreams", "web", "-o", "yaml").stdout)["items"][0]
    (tmp_path / "web.yaml").write_text(yaml.safe_dump(doc))
    etcdctl(etcd1, "put", f"{prefix}/gloo.solo.io/v1/Upstream/default/web", _value("web", "someone-else"))
    done = cli(etcd1, prefix, "apply", "-f", str(tmp_path / "web.yaml"))
    assert done.returncode == 1
    assert "resourceVersion" in done.stderr and "stale" in done.stderr
    stored = etcdctl(etcd1, "get", "--print-value-only", f"{prefix}/gloo.solo.io/v1/Upstream/default/web")
    assert "someone-else" in stored  # the concurrent edit survived


def _value(name: str, group: str, namespace: str = "default") -> str:
    """An Upstream value as Go Gloo writes it in its KV store (solo-kit MarshalYAML)."""
    return (
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"upstreamSpec:\n  gce:\n    instanceGroupName: {group}\n"
        "    instanceGroupRegion: us-central1-a\n    projectId: demo-project\n"
    )


def test_get_reads_etcdctl_writes_and_names_a_bad_key(etcd1: EtcdCluster, prefix: str) -> None:
    etcdctl(
        etcd1, "put", f"{prefix}/gloo.solo.io/v1/Upstream/team-a/from-go", _value("from-go", "g", "team-a")
    )
    bad_key = f"{prefix}/gloo.solo.io/v1/Upstream/team-a/broken"
    etcdctl(etcd1, "put", bad_key, _value("broken", "b", "team-a").replace("projectId", "projectIdd"))
    etcdctl(etcd1, "put", f"{prefix}/gloo.solo.io/v1/Upstream/team-b/other", _value("other", "o", "team-b"))
    table = cli(etcd1, prefix, "get", "upstreams", "-n", "team-a")
    assert table.returncode == 1  # a bad key was found
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "TYPE", "STATUS", "VERSION"]
    assert [line.split()[:4] for line in lines[1:]] == [["team-a", "from-go", "gce", "-"]]
    assert (
        f"error: {bad_key}: upstreamSpec.gce.projectIdd: unknown field (did you mean projectId?)"
        in table.stderr
    )
    everything = cli(etcd1, prefix, "get", "upstreams", "-o", "yaml")
    names = [i["metadata"]["name"] for i in yaml.safe_load(everything.stdout)["items"]]
    assert names == ["from-go", "other"]


def test_a_value_naming_another_upstream_than_its_key_is_rejected(etcd1: EtcdCluster, prefix: str) -> None:
    key = f"{prefix}/gloo.solo.io/v1/Upstream/default/one"
    etcdctl(etcd1, "put", key, _value("two", "g"))
    done = cli(etcd1, prefix, "get", "upstreams")
    assert done.returncode == 1
    assert f"{key}: metadata.name: 'two' does not match the key, which says 'one'" in done.stderr


def test_delete(etcd1: EtcdCluster, prefix: str) -> None:
    assert cli(etcd1, prefix, "apply", "-f", str(EXAMPLES)).returncode == 0
    done = cli(etcd1, prefix, "delete", "upstream", "default/web")
    assert done.returncode == 0 and done.stdout.strip() == "upstream default/web deleted"
    assert etcdctl(etcd1, "get", "--keys-only", f"{prefix}/gloo.solo.io/v1/Upstream/default/web") == ""
    missing = cli(etcd1, prefix, "delete", "upstream", "default/web")
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert cli(etcd1, prefix, "delete", "upstream", "no-slash").returncode == 2


def test_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    from gce_plugin.localstack import free_port

    argv = [*gce_plugin_command(), "get", "upstreams", "--store", f"etcd://127.0.0.1:{free_port()}"]
    done = subprocess.run(
        [*argv, "--store-timeout", "1"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "etcd unreachable" in done.stderr


def test_apply_of_a_directory_uses_the_loaders_duplicate_rule(
    etcd1: EtcdCluster, prefix: str, tmp_path: Path
) -> None:
    text = (EXAMPLES / "upstreams.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text.split("---")[0])  # web again
    done = cli(etcd1, prefix, "apply", "-f", str(tmp_path))
    assert done.returncode == 1
    assert f"{tmp_path / 'b.yaml'}: document 1: metadata.name: duplicate upstream default.web" in done.stderr
    assert etcdctl(etcd1, "get", "--prefix", "--keys-only", f"{prefix}/") == ""


def test_get_shows_the_status_the_leader_published(etcd1: EtcdCluster, prefix: str) -> None:
    import asyncio

    from gce_plugin.api import Status
    from gce_plugin.store.layout import Layout
    from gce_plugin.store.leader import Election, Publisher
    from tests.store.store_testkit import client_for

    assert cli(etcd1, prefix, "apply", "-f", str(EXAMPLES)).returncode == 0

    async def publish() -> None:
        layout = Layout(prefix)
        async with client_for(etcd1) as client:
            election = Election(client, "leader-1", layout=layout, ttl=5)
            lead = await election.campaign()
            rejected = Status(state=Status.Rejected, reason="no such group", reported_by="gce-plugin")
            await Publisher(client, layout).publish_statuses(lead, {("default", "api"): (rejected, "2")})
            await election.resign(lead)

    asyncio.run(publish())
    table = cli(etcd1, prefix, "get", "upstreams")
    rows = {line.split()[1]: line.split()[3] for line in table.stdout.splitlines()[1:]}
    assert rows == {"api": "Rejected", "web": "-"}
    listed = yaml.safe_load(cli(etcd1, prefix, "get", "upstreams", "api", "-o", "yaml").stdout)
    assert listed["items"][0]["status"] == {
        "state": 2,
        "reason": "no such group",
        "reported_by": "gce-plugin",
    }


def test_commands_work_with_a_member_down(etcd3: EtcdCluster) -> None:
    etcd3.kill(0)  # the first member of --store is gone
    done = cli(etcd3, "gloo", "apply", "-f", str(EXAMPLES))
    assert done.returncode == 0, done.stderr
    listed = cli(etcd3, "gloo", "get", "upstreams")
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["api", "web"]
    assert cli(etcd3, "gloo", "delete", "upstream", "default/api").returncode == 0
