"""A replicated control plane on loopback, as separate processes: an etcd cluster, the Compute
emulator, ``gce-plugin run --store`` replicas and Envoy(s) bootstrapped to all replicas.

The emulator and Envoy parts are ``LocalStack``'s (gce_plugin/localstack.py); the etcd members are
``EtcdCluster``'s (gce_plugin/store/local.py). Used by the replicated end-to-end tests, the bench and
``make run-cluster`` (gce_plugin/demo_cluster.py).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gce_plugin.localstack import (
    LocalStack,
    Process,
    free_port,
    gce_plugin_command,
    http_get,
    start_control_plane,
)
from gce_plugin.store.local import EtcdCluster


@dataclass
class Replica:
    index: int
    xds_port: int
    metrics_port: int
    process: Process | None = None

    @property
    def name(self) -> str:
        return f"replica-{self.index}"

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def admin(self, path: str) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.metrics_port}/{path.lstrip('/')}")

    def metrics(self) -> dict[str, float]:
        """Its Prometheus samples, ``name{labels}`` -> value; empty when it does not answer."""
        status, body = self.admin("metrics")
        samples: dict[str, float] = {}
        for line in body.splitlines() if status == 200 else ():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    samples[name] = float(value)
                except ValueError:
                    continue
        return samples

    def metric(self, name: str) -> float:
        """One sample, or the sum of a family's samples (``name{...}``); 0 when absent."""
        return sum(v for k, v in self.metrics().items() if k == name or k.startswith(name + "{"))

    def is_leader(self) -> bool:
        return self.alive() and self.metric("gce_plugin_leader") == 1


class ReplicatedStack(LocalStack):
    """``members`` etcd members, the emulator, ``replicas`` replicas and one Envoy connected to all
    replicas; everything is stopped by ``close()``."""

    def __init__(
        self,
        fixture: str | Path,
        routes: Sequence[tuple[str, str]] = (),
        *,
        replicas: int = 3,
        members: int = 3,
        refresh: float = 1.0,
        lease_ttl: int = 3,
        work_dir: Path | None = None,
    ) -> None:
        super().__init__(fixture, "", routes=routes, refresh=refresh, work_dir=work_dir)
        self.lease_ttl = lease_ttl
        (self.work_dir / "etcd").mkdir(exist_ok=True)
        self.etcd = EtcdCluster(members, work_dir=self.work_dir / "etcd")
        self.replicas = [Replica(i, free_port(), free_port()) for i in range(replicas)]

    # -- parts --------------------------------------------------------------------------------------

    def start_replica(self, index: int, timeout: float = 30.0) -> Replica:
        replica = self.replicas[index]
        if replica.process is not None:
            replica.process.stop()
        replica.process = start_control_plane(
            None,
            self.emulator_url,
            self.work_dir,
            refresh=self.refresh,
            xds_port=replica.xds_port,
            metrics_port=replica.metrics_port,
            extra_args=["--store", self.etcd.store_url, "--lease-ttl", str(self.lease_ttl)],
            timeout=timeout,
            name=replica.name,
        )
        return replica

    def kill_replica(self, index: int, sig: int = signal.SIGKILL) -> None:
        process = self.replicas[index].process
        assert process is not None
        process.kill(sig)

    def leader(self) -> Replica | None:
        leaders = [r for r in self.replicas if r.is_leader()]
        return leaders[0] if len(leaders) == 1 else None

    def xds_ports(self) -> list[int]:
        return [r.xds_port for r in self.replicas]

    def gce_plugin(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """A ``gce-plugin`` command against this stack's store (apply, get, delete)."""
        return subprocess.run(
            [*gce_plugin_command(), *args, "--store", self.etcd.store_url],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def etcdctl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        alive = [m.endpoint for m in self.etcd.members if m.alive()]
        return subprocess.run(
            self.etcd.etcdctl(*args, endpoints=alive or None),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def start_control_planes(self) -> None:
        self.etcd.start()
        for index in range(len(self.replicas)):
            self.start_replica(index)

    def close(self) -> None:
        for envoy in self.envoys:
            envoy.process.stop()
        self.envoys.clear()
        for replica in self.replicas:
            if replica.process is not None:
                replica.process.stop()
        self.etcd.close()
        super().close()

    def processes(self) -> list[Process]:
        return super().processes() + [r.process for r in self.replicas if r.process is not None]

    def logs(self) -> str:
        return self.etcd.logs() + "\n" + super().logs()
