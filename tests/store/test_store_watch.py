"""The revision watch against real etcd clusters: complete states, resume after a member is
killed, re-list after compaction, "unreachable" while no member answers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from gce_plugin.store.local import EtcdCluster
from gce_plugin.store.watch import Health, PrefixState, PrefixWatch
from tests.store.store_testkit import client_for, eventually


class Recorder:
    """Consumes a PrefixWatch in a task; keeps every state and health change."""

    def __init__(self, watch: PrefixWatch) -> None:
        self.watch = watch
        self.states: list[PrefixState] = []
        self.health: list[Health] = []
        watch.on_health = self.health.append
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for state in self.watch.states():
            self.states.append(state)

    def keys(self) -> set[bytes]:
        return set(self.states[-1].entries) if self.states else set()

    async def has(self, *keys: bytes) -> bool:
        return set(keys) <= self.keys()

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def recording(watch: PrefixWatch) -> AsyncIterator[Recorder]:
    recorder = Recorder(watch)
    try:
        yield recorder
    finally:
        await recorder.stop()
        await watch.client.close()


def test_watch_yields_complete_states_in_revision_order(etcd1: EtcdCluster, prefix: str) -> None:
    async def scenario() -> None:
        async with client_for(etcd1) as writer:
            await writer.put(f"{prefix}/a".encode(), b"1")
            async with recording(PrefixWatch(client_for(etcd1), f"{prefix}/".encode())) as rec:
                await eventually("first state", lambda: rec.has(f"{prefix}/a".encode()))
                assert rec.states[0].changed is None  # the list
                await writer.put(f"{prefix}/b".encode(), b"2")
                await writer.delete(f"{prefix}/a".encode())
                await writer.put(f"{prefix}x".encode(), b"not under the prefix")
                b = f"{prefix}/b".encode()
                await eventually("delete seen", lambda: _equals(rec, {b}))
                revisions = [s.revision for s in rec.states]
                assert revisions == sorted(revisions)
                assert rec.states[-1].entries[b].value == b"2"
                assert rec.watch.health.reachable

    asyncio.run(scenario())


async def _equals(rec: Recorder, keys: set[bytes]) -> bool:
    return rec.keys() == keys


def test_watch_survives_kill_9_of_its_member_without_losing_an_event(etcd3: EtcdCluster) -> None:
    async def scenario() -> None:
        # The watcher talks to member 0 first; the writer never does.
        async with client_for(etcd3, [1, 2]) as writer:
            await writer.put(b"w/0", b"0")
            async with recording(PrefixWatch(client_for(etcd3), b"w/")) as rec:
                await eventually("first state", lambda: rec.has(b"w/0"))
                assert rec.watch.client.current_endpoint == etcd3.endpoints[0]
                etcd3.kill(0)
                for i in range(1, 6):
                    await writer.put(f"w/{i}".encode(), str(i).encode())
                wanted = {f"w/{i}".encode() for i in range(6)}
                await eventually("events after the kill", lambda: _equals(rec, wanted))
                assert rec.watch.resumes >= 1 and rec.watch.relists == 1  # resumed, not re-listed
                assert rec.watch.client.current_endpoint != etcd3.endpoints[0]
                # Never an empty or shrinking view: each state holds at least the keys before it.
                for before, after in zip(rec.states, rec.states[1:], strict=False):
                    assert set(before.entries) <= set(after.entries)
                # Every put after the list seen exactly once across the break (a resume from the
                # wrong revision would replay w/0 or skip one).
                seen = [key for s in rec.states[1:] for key in sorted(s.changed or ())]
                assert seen == [f"w/{i}".encode() for i in range(1, 6)]
                assert any(not h.reachable for h in rec.health) and rec.watch.health.reachable

    asyncio.run(scenario())


def test_watch_lists_again_after_compaction_and_reports_unreachable_meanwhile(etcd3: EtcdCluster) -> None:
    async def scenario() -> None:
        async with client_for(etcd3, [1, 2]) as writer:
            await writer.put(b"c/keep", b"1")
            await writer.put(b"c/gone", b"1")
            # This watcher can only reach member 0.
            async with recording(
                PrefixWatch(client_for(etcd3, [0], timeout=1.0), b"c/", max_retry=0.5)
            ) as rec:
                await eventually("first state", lambda: rec.has(b"c/keep", b"c/gone"))
                etcd3.kill(0)

                async def unreachable() -> bool:
                    return not rec.watch.health.reachable

                await eventually("unreachable reported", unreachable)
                await writer.delete(b"c/gone")
                await writer.put(b"c/new", b"2")
                reply = await writer.put(b"c/new", b"3")
                await writer.compact(reply.header.revision)
                states_while_down = len(rec.states)
                etcd3.start_member(0)
                await eventually("re-listed state", lambda: _equals(rec, {b"c/keep", b"c/new"}), timeout=30)
                assert rec.watch.relists == 2
                assert rec.states[-1].changed is None
                assert rec.states[-1].entries[b"c/new"].value == b"3"
                # Nothing was yielded while etcd was unreachable.
                assert all(set(s.entries) >= {b"c/keep"} for s in rec.states[:states_while_down])
                assert rec.watch.health.reachable

    asyncio.run(scenario())


def test_a_member_cut_off_from_quorum_ends_the_watch(etcd3: EtcdCluster) -> None:
    """Two members down: the third has no leader; the watch on it must not go silently stale."""

    async def scenario() -> None:
        async with recording(PrefixWatch(client_for(etcd3, [2], timeout=1.0), b"q/", max_retry=0.5)) as rec:
            await eventually("listed", lambda: _listed(rec))
            etcd3.kill(0)
            etcd3.kill(1, signal.SIGSTOP)
            try:

                async def unreachable() -> bool:
                    return not rec.watch.health.reachable

                await eventually("unreachable reported", unreachable, timeout=30)
            finally:
                etcd3.kill(1, signal.SIGCONT)
            etcd3.start_member(0)
            async with client_for(etcd3, [0, 1]) as writer:
                await eventually("quorum back", lambda: _put(writer, b"q/back"), timeout=30)
            await eventually("caught up", lambda: rec.has(b"q/back"), timeout=30)

    asyncio.run(scenario())


async def _listed(rec: Recorder) -> bool:
    return bool(rec.states)


async def _put(client: object, key: bytes) -> bool:
    from gce_plugin.store.client import EtcdClient, EtcdUnavailable

    assert isinstance(client, EtcdClient)
    try:
        await client.put(key, b"1")
    except EtcdUnavailable:
        return False
    return True
