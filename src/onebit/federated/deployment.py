"""Flower's deployment engine on this machine: one SuperLink and N SuperNodes on 127.0.0.1.

:class:`LocalDeployment` starts ``flower-superlink`` and one ``flower-supernode`` per client
(``--node-config partition-id=K``), writes the Flower app (a ``pyproject.toml`` naming
:mod:`onebit.federated.apps`'s ``server_app`` and ``client_app``) into the run folder, submits
the run with ``flwr run`` and waits for the ServerApp's ``history.json`` to say it finished.
The ServerApp and ClientApps then run in processes Flower itself starts (its SuperExec
launches ``flwr-serverapp`` and one ``flwr-clientapp`` per message).

- **Loopback only.** Every server binds 127.0.0.1 (``--host 127.0.0.1``; SuperNodes reach the
  SuperLink at ``127.0.0.1:PORT``); Flower's legacy gRPC listeners stay off. Ports are picked
  free by the OS unless given; a given port that is in use is one clear error before anything
  starts.
- **Nothing leaves.** Telemetry (``FLWR_TELEMETRY_ENABLED=0``), the update check
  (``FLWR_DISABLE_UPDATE_CHECK=1``) and runtime dependency installation
  (``--disable-runtime-dependency-installation``) are off; ``FLWR_HOME`` is a folder of the run.
- **Nothing stays.** Every process the deployment starts carries a marker in its environment
  (``ONEBIT_FEDERATION=<id>``), inherited by the processes Flower spawns; stopping (at the end,
  on an error, on Ctrl-C: ``with LocalDeployment(...)`` or :meth:`LocalDeployment.stop`) sends
  SIGTERM to all of them, then SIGKILL to any left after a grace period, and reaps them.
  :func:`marked_processes` lists what is still alive (Linux ``/proc``), which the tests use.

Process logs go to ``RUN_DIR/logs/``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from onebit.atomic import atomic_write_text
from onebit.errors import ConfigError
from onebit.federated.dependency import require_flower
from onebit.federated.workspace import RUN_DIR_KEY, Workspace

__all__ = ["MARKER", "LocalDeployment", "check_port_free", "free_port", "marked_processes"]

log = logging.getLogger(__name__)

MARKER = "ONEBIT_FEDERATION"
HOST = "127.0.0.1"
APP_MODULE = "onebit_fedhybnn_app"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def check_port_free(port: int) -> None:
    """A ConfigError in one line if ``port`` on 127.0.0.1 is taken or invalid."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"a port must be an integer from 1 to 65535, got {port!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as exc:
            why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ConfigError(f"port {port} on {HOST} is {why}; choose another --port or leave it out to let "
                              "onebit pick a free one") from None


def marked_processes(marker: str) -> list[int]:
    """Pids of live (not zombie) processes whose environment has ``ONEBIT_FEDERATION=marker`` (Linux)."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def _flower_bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"the Flower command {name!r} is not on PATH; pip install 'onebit[federated]'")
    return found


class LocalDeployment:
    """A SuperLink and ``clients`` SuperNodes on 127.0.0.1 for the run folder ``run_dir``.

    ``port``: the SuperLink's port (default: a free one); ``startup_timeout``: seconds to wait for
    the SuperLink to accept connections; ``timeout``: seconds the whole run may take.
    """

    def __init__(self, run_dir: str | os.PathLike, *, port: int | None = None, startup_timeout: float = 60.0,
                 timeout: float = 3600.0, grace: float = 5.0) -> None:
        self.ws = Workspace(run_dir)
        self.run_dir = self.ws.dir.resolve()
        self.clients = self.ws.config.clients
        if port is not None:
            check_port_free(port)
        self.port = port
        self.startup_timeout, self.timeout, self.grace = startup_timeout, timeout, grace
        self.marker = uuid.uuid4().hex
        self.superlink: subprocess.Popen[bytes] | None = None
        self.supernodes: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []
        self.killed: set[int] = set()

    # ------------------------------------------------------------------ environment

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLWR_INTERNAL_GRPC")}
        home = self.run_dir / "flower_home"
        env.update({MARKER: self.marker, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0",
                    "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
                    "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
                    "GRPC_VERBOSITY": "error"})
        return env

    def _write_app(self) -> Path:
        app = self.run_dir / "flower_app"
        app.mkdir(parents=True, exist_ok=True)
        atomic_write_text(app / f"{APP_MODULE}.py",
                          '"""The FedHyBNN Flower app: onebit.federated.apps\' ServerApp and ClientApp."""\n\n'
                          "from onebit.federated.apps import client_app, server_app\n\n"
                          '__all__ = ["client_app", "server_app"]\n')
        atomic_write_text(app / "pyproject.toml", "\n".join([
            "[build-system]", 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', "",
            "[project]", 'name = "onebit-fedhybnn"', 'version = "1.0.0"',
            'description = "FedHyBNN: federated training of a HyBNN head (onebit)"', "dependencies = []", "",
            "[tool.flwr.app]", 'publisher = "onebit"', "",
            "[tool.flwr.app.components]", f'serverapp = "{APP_MODULE}:server_app"',
            f'clientapp = "{APP_MODULE}:client_app"', "",
            "[tool.flwr.app.config]", f"{RUN_DIR_KEY} = {json.dumps(str(self.run_dir))}", ""]))
        home = self.run_dir / "flower_home"
        home.mkdir(parents=True, exist_ok=True)
        atomic_write_text(home / "config.toml", "\n".join([
            "[superlink]", 'default = "onebit"', "", "[superlink.onebit]", f'address = "{HOST}:{self.port}"',
            "insecure = true", ""]))
        return app

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(out)
        # Its own session: a Ctrl-C in the terminal reaches onebit, which then stops the processes in order.
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self._env(), cwd=self.run_dir, start_new_session=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalDeployment:
        """Start the SuperLink, wait until it accepts connections, start the SuperNodes."""
        require_flower()
        try:
            if self.port is None:
                self.port = free_port()
            node_ports = [free_port() for _ in range(self.clients)]
            self._write_app()
            self.superlink = self._spawn("superlink", [
                _flower_bin("flower-superlink"), "--insecure", "--host", HOST, "--port", str(self.port),
                "--disable-runtime-dependency-installation"])
            self._wait_listening()
            for k in range(self.clients):
                self.supernodes.append(self._spawn(f"supernode_{k}", [
                    _flower_bin("flower-supernode"), "--insecure", "--superlink", f"{HOST}:{self.port}",
                    "--host", HOST, "--port", str(node_ports[k]),
                    "--node-config", f"partition-id={k} num-partitions={self.clients}"]))
            log.info("Flower deployment: SuperLink on %s:%d, %d SuperNodes (logs in %s)", HOST, self.port,
                     self.clients, self.run_dir / "logs")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.superlink is not None and self.superlink.poll() is not None:
                raise ConfigError(f"the SuperLink exited at start (status {self.superlink.returncode}); see "
                                  f"{self.run_dir / 'logs' / 'superlink.log'}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                if s.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.2)
        raise ConfigError(f"the SuperLink did not listen on {HOST}:{self.port} within {self.startup_timeout:g} s")

    def run(self) -> dict[str, Any]:
        """Submit the app with ``flwr run``, wait for the ServerApp to finish; returns ``history.json``."""
        app = self._write_app()
        history_path = self.run_dir / "history.json"
        history_path.unlink(missing_ok=True)
        proc = subprocess.run([_flower_bin("flwr"), "run", str(app), "onebit", "--format", "json"],
                              capture_output=True, env=self._env(), cwd=self.run_dir, timeout=self.startup_timeout)
        (self.run_dir / "logs" / "flwr_run.log").write_bytes(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise ConfigError(f"flwr run failed (status {proc.returncode}): {tail[0]}")
        disconnects = {f["client"]: f["round"] for f in self.ws.config.faults if f["kind"] == "disconnect"}
        deadline = time.monotonic() + self.timeout
        seen_events = 0
        while True:
            history = _read_json(history_path)
            if history is not None:
                for event in history.get("events", [])[seen_events:]:
                    log.warning("%s", event)
                seen_events = len(history.get("events", []))
                started = int(history.get("round_started", 0))
                for client, rnd in disconnects.items():
                    if started >= rnd and client not in self.killed:
                        self.kill_supernode(client)
                if history.get("status") == "finished":
                    return history
                if history.get("status") == "failed":
                    raise ConfigError(f"the ServerApp failed: {history.get('error')}; see "
                                      f"{self.run_dir / 'server.log'} and {self.run_dir / 'logs'}")
            if self.superlink is not None and self.superlink.poll() is not None:
                raise ConfigError(f"the SuperLink exited (status {self.superlink.returncode}) during the run; see "
                                  f"{self.run_dir / 'logs' / 'superlink.log'}")
            if time.monotonic() > deadline:
                raise ConfigError(f"the federated run did not finish within {self.timeout:g} s")
            time.sleep(0.5)

    def kill_supernode(self, client: int) -> None:
        """SIGKILL client ``client``'s SuperNode and everything it started (an injected disconnect)."""
        node = self.supernodes[client]
        victims = [node.pid, *self._descendants(node.pid)]
        log.warning("fault injection: killing the SuperNode of client %d (pids %s)", client, victims)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        node.wait()
        self.killed.add(client)

    @staticmethod
    def _descendants(pid: int) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        out, todo = [], [pid]
        while todo:
            for child in children.get(todo.pop(), []):
                out.append(child)
                todo.append(child)
        return out

    def stop(self) -> None:
        """Stop every process this deployment started (and those Flower started for it): SIGTERM, a
        grace period, SIGKILL; reap them."""
        own = [p for p in [self.superlink, *self.supernodes] if p is not None]
        for p in reversed(own):  # SuperNodes first, then the SuperLink
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for pid in marked_processes(self.marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and (any(p.poll() is None for p in own) or marked_processes(self.marker)):
            time.sleep(0.1)
        for pid in marked_processes(self.marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for p in own:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=self.grace)
        for f in self._logs:
            f.close()
        self._logs.clear()
        left = marked_processes(self.marker)
        if left:
            log.warning("processes of the deployment still alive after SIGKILL: %s", left)
        else:
            log.info("Flower deployment stopped: no process left")

    def __enter__(self) -> LocalDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
