"""Drive and watch a managed instance group of a running emulator through its admin API: for the
emulator's own tests and for rollout end-to-end tests (an emulator process started by LocalStack
works the same: ``MigDriver(stack.emulator_url, "demo-project", "shop", zone="us-central1-a")``).

    mig = MigDriver(emulator.url, PROJECT, "shop", zone=ZONE_A)
    with mig.watch() as seen:
        mig.rolling_replace()                 # or mig.resize(2), mig.autoheal()
        mig.wait_settled(timeout=30)
    assert seen.actions() >= {"DELETING", "CREATING", "VERIFYING"}
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gce_plugin.localstack import http_json, wait_for

State = tuple[str, str | None, str | None]  # (currentAction, detailedHealthState, instanceStatus)


@dataclass
class Seen:
    """Every distinct state each VM was seen in, in order, with when (monotonic seconds)."""

    history: dict[str, list[tuple[float, State]]] = field(default_factory=dict)

    def add(self, name: str, state: State, at: float) -> None:
        states = self.history.setdefault(name, [])
        if not states or states[-1][1] != state:
            states.append((at, state))

    def actions(self) -> set[str]:
        return {state[0] for states in self.history.values() for _, state in states}

    def health_states(self) -> set[str]:
        return {s[1] for states in self.history.values() for _, s in states if s[1] is not None}

    def states_of(self, name: str) -> list[State]:
        return [state for _, state in self.history.get(name, [])]


class MigDriver:
    def __init__(
        self,
        emulator_url: str,
        project: str,
        name: str,
        *,
        zone: str | None = None,
        region: str | None = None,
    ) -> None:
        if (zone is None) == (region is None):
            raise ValueError("name exactly one of zone and region")
        self.admin = f"{emulator_url.rstrip('/')}/admin/projects/{project}"
        scope = f"zones/{zone}" if zone else f"regions/{region}"
        self.manager = f"{self.admin}/{scope}/instanceGroupManagers/{name}"

    # -- observe ----------------------------------------------------------------------------------

    def instances(self) -> list[dict[str, Any]]:
        """listManagedInstances' items (every one, whatever the group's paging)."""
        items: list[dict[str, Any]] = http_json("GET", self.manager)["managedInstances"]
        return items

    def states(self) -> dict[str, State]:
        return {item["name"]: state_of(item) for item in self.instances()}

    def settled(self, size: int | None = None) -> bool:
        """No action on any VM, every one healthy (or without a health check), all from one template,
        and ``size`` of them when given."""
        items = self.instances()
        templates = {item.get("version", {}).get("instanceTemplate") for item in items}
        return (
            (size is None or len(items) == size)
            and len(templates) <= 1
            and all(
                item["currentAction"] == "NONE" and state_of(item)[1] in (None, "HEALTHY") for item in items
            )
        )

    def wait_settled(self, timeout: float = 30.0, size: int | None = None) -> dict[str, State]:
        wait_for(f"{self.manager} to settle", lambda: self.settled(size), timeout=timeout, interval=0.1)
        return self.states()

    @contextlib.contextmanager
    def watch(self, interval: float = 0.05) -> Iterator[Seen]:
        """Poll the group in the background, recording every state each VM passes through."""
        seen = Seen()
        stop = threading.Event()

        def once() -> None:
            now = time.monotonic()
            with contextlib.suppress(OSError):
                for name, state in self.states().items():
                    seen.add(name, state, now)

        def poll() -> None:
            while not stop.wait(interval):
                once()

        once()  # the states before anything the caller does next
        thread = threading.Thread(target=poll, name="mig-watch", daemon=True)
        thread.start()
        try:
            yield seen
        finally:
            stop.set()
            thread.join(5)
            once()  # and the states the caller left the group in

    # -- drive ------------------------------------------------------------------------------------

    def rolling_replace(
        self,
        instance_template: str | None = None,
        max_surge: int | None = None,
        max_unavailable: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if instance_template is not None:
            body["instanceTemplate"] = instance_template
        if max_surge is not None:
            body["maxSurge"] = max_surge
        if max_unavailable is not None:
            body["maxUnavailable"] = max_unavailable
        result: dict[str, Any] = http_json("POST", f"{self.manager}/rollingReplace", body)
        return result

    def resize(self, size: int) -> dict[str, Any]:
        result: dict[str, Any] = http_json("POST", f"{self.manager}/resize", {"size": size})
        return result

    def set_health(self, name: str, state: str) -> dict[str, Any]:
        zone = next(i for i in self.instances() if i["name"] == name)["instance"].split("/zones/")[1]
        path = f"{self.admin}/zones/{zone.split('/')[0]}/instances/{name}/setHealth"
        result: dict[str, Any] = http_json("POST", path, {"detailedHealthState": state})
        return result

    def autoheal(self, name: str | None = None) -> str:
        """Mark a VM (default: the first settled one) UNHEALTHY; the group recreates it after its
        ``timings.autoheal``. Returns the VM's name."""
        if name is None:
            name = next(n for n, s in sorted(self.states().items()) if s[0] == "NONE")
        self.set_health(name, "UNHEALTHY")
        return name


def state_of(item: dict[str, Any]) -> State:
    health = item.get("instanceHealth") or [{}]
    return item["currentAction"], health[0].get("detailedHealthState"), item.get("instanceStatus")
