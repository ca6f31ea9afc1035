"""Scenario 6, rollouts through a real Envoy: a rolling replace of a managed instance group under
continuous traffic, with the health mapping on and off side by side in one run.

One emulator process (``--serve-backends``: every VM a real HTTP server that answers 503 while it is
torn down, unhealthy or not yet verified, and stops listening once gone) and, per mode, a
``gce-plugin run --refresh 1 --mig-health on|off`` process and an Envoy bootstrapped by
``gce-plugin bootstrap`` (retry policy included). Both Envoys route to the same group, so both see
the very same rollout. Requests go through each Envoy without pause at a bounded rate, first for a
baseline window, then while every VM of the group is replaced. Reported per mode: requests, failed
requests, p99 latency during the rollout and the p99 it adds over the baseline.

Full: a 20-VM group (maxSurge 2, maxUnavailable 0). Quick: 4 VMs. The harness (``RolloutRig``) is
also what tests/e2e/test_mig_rollout.py drives resizes and autohealing with.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.report import Report, percentile
from gce_plugin.demo import own_block
from gce_plugin.localstack import (
    Envoy,
    LocalStack,
    Process,
    free_port,
    http_get,
    http_json,
    start_control_plane,
    wait_for,
)

NAME = "rollout"
TITLE = "Rolling replace through a real Envoy: health mapping on vs off"
PROJECT = "demo-project"
ZONE = "us-central1-a"
GROUP = "shop"
CLUSTER = "shop_default"
PORT = 8080
REFRESH = 1.0
MODES = ("on", "off")
# A poll learns of a change up to one refresh (+10% jitter) late, then translation, the push and
# Envoy applying it. `grace` (how long a failing VM's app keeps answering 200) is set above that:
# the group records DELETING, and the health check reports an app as failing, before the VM's
# service starts refusing. `deleting` is longer still, so the draining window shows in /clusters.
# `autoheal` (how long a VM stays UNHEALTHY before it is recreated) spans two refreshes, so a poll
# always sees it and Envoy shows the host as failed_eds_health (one refresh missed it under load).
TIMINGS = {"creating": 0.3, "verifying": 0.8, "deleting": 4.5, "autoheal": 2.0, "grace": 3.0}
MANIFEST = f"""\
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {{name: {GROUP}, namespace: default}}
spec:
  upstreamSpec:
    gce: {{instanceGroupName: {GROUP}, instanceGroupRegion: {ZONE}, projectId: {PROJECT}}}
"""
_FLAG = re.compile(rf"^{CLUSTER}::([\d.]+:\d+)::health_flags::(\S+)$", re.M)


def fixture(block: str, size: int, max_surge: int) -> dict[str, Any]:
    """One managed group with a health check, its VMs on the loopback block ``block`` (``127.A.B.``)."""
    shop = {
        "name": GROUP,
        "targetSize": size,
        "namedPorts": [f"http:{PORT}"],
        "instanceTemplate": "shop-v1",
        "autoHealingPolicies": [{"healthCheck": "shop-hc"}],
        "updatePolicy": {"maxSurge": {"fixed": max_surge}, "maxUnavailable": {"fixed": 0}},
        "networkIPRange": f"{block}0/24",
        "timings": TIMINGS,
    }
    return {"projects": {PROJECT: {"zones": {ZONE: {"instanceGroupManagers": [shop]}}}}}


# --- traffic -------------------------------------------------------------------------------------


@dataclass
class Requests:
    """What a load generator saw: every answer by status ("200", "503", "error:..."), latencies of
    each request (seconds) in order, and Envoy's health flags per host on the way."""

    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    flags: dict[str, set[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    @property
    def failed(self) -> int:
        return self.total - self.codes.get("200", 0)

    def flags_seen(self) -> set[str]:
        return {flag for flags in self.flags.values() for flag in flags}


class Load:
    """Requests through one Envoy without pause (at most ``rate`` a second, over keep-alive
    connections, as a client would), and its admin ``/clusters`` health flags, until stopped."""

    def __init__(self, envoy: Envoy, rate: float = 120.0, workers: int = 2) -> None:
        self._envoy = envoy
        self._interval = workers / rate
        self._workers = workers
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.seen = Requests()

    def start(self) -> Load:
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(self._workers)]
        self._threads.append(threading.Thread(target=self._watch, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Requests:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        return self.seen

    def take(self) -> Requests:
        """What was seen so far; starts afresh."""
        with self._lock:
            seen, self.seen = self.seen, Requests()
        return seen

    def _send(self) -> None:
        conn: http.client.HTTPConnection | None = None
        due = time.monotonic()
        while not self._stop.is_set():
            due += self._interval
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self._envoy.listen_port, timeout=5)
            started = time.monotonic()
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                code = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                code = f"error:{type(exc).__name__}"
                conn.close()
                conn = None
            took = time.monotonic() - started
            with self._lock:
                self.seen.codes[code] += 1
                self.seen.latencies.append(took)
            self._stop.wait(max(0.0, due - time.monotonic()))
        if conn is not None:
            conn.close()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            status, body = self._envoy.admin("clusters")
            if status != 200:
                continue
            with self._lock:
                for host, flags in _FLAG.findall(body):
                    self.seen.flags.setdefault(host, set()).add(flags)


# --- the rig -------------------------------------------------------------------------------------


class RolloutRig:
    """The emulator, and per mapping mode a control plane and an Envoy; all stopped on exit."""

    def __init__(self, size: int, max_surge: int = 1, modes: tuple[str, ...] = MODES) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="gce-plugin-rollout-"))
        self.block = own_block()
        (self.work / "fixture.yaml").write_text(yaml.safe_dump(fixture(self.block, size, max_surge)))
        config = self.work / "upstreams"
        config.mkdir()
        (config / "upstreams.yaml").write_text(MANIFEST)
        self.size = size
        self.modes = modes
        self.stack = LocalStack(self.work / "fixture.yaml", config, refresh=REFRESH, work_dir=self.work)
        self.control_planes: dict[str, Process] = {}
        self.envoys: dict[str, Envoy] = {}

    @property
    def manager(self) -> str:
        return f"{self.stack.emulator_url}admin/projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/{GROUP}"

    def __enter__(self) -> RolloutRig:
        try:
            self.stack.start_emulator()
            for mode in self.modes:
                xds = free_port()
                self.control_planes[mode] = start_control_plane(
                    self.stack.config_dir,
                    self.stack.emulator_url,
                    self.work,
                    refresh=REFRESH,
                    xds_port=xds,
                    metrics_port=free_port(),
                    extra_args=["--mig-health", mode, "--log-level", "warning"],
                )
                self.envoys[mode] = Envoy(
                    self.work, xds, [("/", f"default.{GROUP}")], f"envoy-{mode}", bootstrap_cli=True
                )
                self.stack.envoys.append(self.envoys[mode])
            for mode, envoy in self.envoys.items():
                envoy.wait_ready()
                wait_for(
                    f"Envoy ({mode}) to have the group's {self.size} VMs",
                    lambda e=envoy: len(e.cluster_hosts(CLUSTER)) == self.size,  # type: ignore[misc]
                    timeout=60,
                )
                wait_for(f"a 200 through Envoy ({mode})", lambda e=envoy: http_get(e.url)[0] == 200)  # type: ignore[misc]
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self.control_planes.values():
            process.stop()
        self.control_planes.clear()
        self.stack.close()  # Envoys and the emulator
        shutil.rmtree(self.work, ignore_errors=True)

    @contextlib.contextmanager
    def traffic(self, rate: float = 120.0) -> Iterator[dict[str, Load]]:
        """Requests through every Envoy without pause while the block runs."""
        loads = {mode: Load(envoy, rate).start() for mode, envoy in self.envoys.items()}
        try:
            yield loads
        finally:
            for load in loads.values():
                load.stop()

    # -- driving the group (the emulator's admin API) --

    def managed_instances(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = http_json("GET", self.manager)["managedInstances"]
        return items

    def settled(self, size: int) -> bool:
        items = self.managed_instances()
        return (
            len(items) == size
            and len({i.get("version", {}).get("instanceTemplate") for i in items}) == 1
            and all(i["currentAction"] == "NONE" for i in items)
            and all(
                h.get("detailedHealthState") == "HEALTHY" for i in items for h in i.get("instanceHealth", [])
            )
        )

    def wait_settled(self, size: int, timeout: float = 120.0) -> None:
        wait_for(
            f"the group to settle at {size} VMs", lambda: self.settled(size), timeout=timeout, interval=0.1
        )

    def rolling_replace(self) -> None:
        http_json("POST", f"{self.manager}/rollingReplace", {})


# --- the scenario --------------------------------------------------------------------------------


def run(quick: bool) -> Report:
    size, surge = (4, 1) if quick else (20, 2)
    rate = 100.0
    report = Report(
        NAME,
        TITLE,
        "quick" if quick else "full",
        {
            "vms": size,
            "max_surge": surge,
            "max_unavailable": 0,
            "refresh_s": REFRESH,
            "rate_per_s": rate,
            **TIMINGS,
        },
    )
    with RolloutRig(size, surge) as rig, rig.traffic(rate) as loads:
        time.sleep(1.0)
        for load in loads.values():
            load.take()  # connections warming up: not the baseline
        time.sleep(3.0)  # the baseline: steady traffic before the rollout
        baseline = {mode: load.take() for mode, load in loads.items()}
        started = time.monotonic()
        rig.rolling_replace()
        rig.wait_settled(size, timeout=60 if quick else 200)
        # VMs the rollout deleted are gone once their DELETING window ends.
        wait_for("the replaced VMs to be gone", lambda: len(rig.managed_instances()) == size)
        took = time.monotonic() - started
        during = {mode: load.take() for mode, load in loads.items()}
    report.metric("rollout", took, "s")
    for mode in MODES:
        base, seen = baseline[mode], during[mode]
        p99, base_p99 = 1000 * percentile(seen.latencies, 99), 1000 * percentile(base.latencies, 99)
        report.metric(f"mapping {mode}: requests / failed", f"{seen.total} / {seen.failed}")
        report.metric(
            f"mapping {mode}: answers", ", ".join(f"{c}: {n}" for c, n in sorted(seen.codes.items()))
        )
        report.metric(
            f"mapping {mode}: p99 during rollout / added over baseline",
            f"{p99:.1f} / {p99 - base_p99:+.1f} ms",
        )
        report.raw[mode] = {
            "codes": dict(seen.codes),
            "baseline_p99_ms": base_p99,
            "p99_ms": p99,
            "flags": sorted(seen.flags_seen()),
        }
    on, off = during["on"], during["off"]
    report.check(
        "mapping on: no failed request during the rollout", on.failed == 0, f"{on.failed} of {on.total}"
    )
    report.check(
        "mapping on: Envoy showed draining hosts on the way",
        any("eds_status_draining" in f for f in on.flags_seen()),
        ", ".join(sorted(on.flags_seen())),
    )
    report.note(
        f"mapping off failed {off.failed} of {off.total} requests (503s of DELETING and VERIFYING VMs): "
        "the retry policy alone does not cover answers; the mapping does"
    )
    return report
