"""Upstream configs from etcd: etcdctl writes in the Gloo layout served, a bad value reported with
its key while the last good version is kept, in this process and after a restart (history)."""

from __future__ import annotations

import asyncio
import contextlib

from gce_plugin.store.layout import Layout
from gce_plugin.store.local import EtcdCluster
from gce_plugin.store.watch import UpstreamConfig, UpstreamWatch
from tests.store.store_testkit import client_for, etcdctl, eventually
from tests.store.test_store_cli import _value


async def _first(watch: UpstreamWatch) -> UpstreamConfig:
    async for config in watch.configs():
        return config
    raise AssertionError("no config")


def test_bad_edit_keeps_the_last_good_version_and_names_the_key(etcd1: EtcdCluster, prefix: str) -> None:
    key = f"{prefix}/gloo.solo.io/v1/Upstream/default/web"
    etcdctl(etcd1, "put", key, _value("web", "good-group"))
    etcdctl(etcd1, "put", f"{prefix}/gloo.solo.io/v1/Upstream/default/api", _value("api", "api"))

    async def scenario() -> None:
        watch = UpstreamWatch(client_for(etcd1), Layout(prefix))
        configs: list[UpstreamConfig] = []

        async def consume() -> None:
            async for config in watch.configs():
                configs.append(config)

        task = asyncio.create_task(consume())
        try:

            async def listed() -> bool:
                return bool(configs) and set(configs[-1].upstreams) == {
                    ("default", "web"),
                    ("default", "api"),
                }

            await eventually("both upstreams", listed)
            assert not configs[-1].errors
            etcdctl(etcd1, "put", key, "upstreamSpec: [not, a, mapping]\n")

            async def reported() -> bool:
                return bool(configs[-1].errors)

            await eventually("the bad edit reported", reported)
            latest = configs[-1]
            assert str(latest.errors[("default", "web")]).startswith(
                f"{key}: upstreamSpec: expected a mapping"
            )
            assert latest.stale == {("default", "web")}
            kept = latest.upstreams[("default", "web")]
            assert kept.upstream_spec.gce.instance_group_name == "good-group"
            assert set(latest.upstreams) == {("default", "web"), ("default", "api")}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await watch.client.close()

        # A process that starts now, with the bad value in place, serves the last good version
        # from the key's history.
        restarted = UpstreamWatch(client_for(etcd1), Layout(prefix))
        try:
            config = await _first(restarted)
        finally:
            await restarted.client.close()
        assert config.stale == {("default", "web")}
        assert config.upstreams[("default", "web")].upstream_spec.gce.instance_group_name == "good-group"

        # Deleting a bad upstream removes it: last good is not kept for what is gone.
        etcdctl(etcd1, "del", key)
        again = UpstreamWatch(client_for(etcd1), Layout(prefix))
        try:
            config = await _first(again)
        finally:
            await again.client.close()
        assert set(config.upstreams) == {("default", "api")} and not config.errors

    asyncio.run(scenario())


def test_resource_version_is_the_mod_revision(etcd1: EtcdCluster, prefix: str) -> None:
    key = f"{prefix}/gloo.solo.io/v1/Upstream/default/web"
    # A stale resourceVersion inside the value (solo-kit writes one) is not believed.
    etcdctl(
        etcd1,
        "put",
        key,
        _value("web", "g").replace("namespace: default", "namespace: default\n  resourceVersion: '1'"),
    )

    async def scenario() -> None:
        watch = UpstreamWatch(client_for(etcd1), Layout(prefix))
        try:
            config = await _first(watch)
            reply = await watch.client.range(key.encode())
        finally:
            await watch.client.close()
        assert config.upstreams[("default", "web")].metadata.resource_version == str(
            reply.kvs[0].mod_revision
        )

    asyncio.run(scenario())
