"""An ``mlflow server`` process started and stopped by this package.

:class:`LocalMlflowServer` runs ``python -m mlflow server`` (the MLflow installed beside this
package) on 127.0.0.1 with the given backend store (PostgreSQL in production mode) and a local
artifact folder served through the server (``--serve-artifacts``: clients upload and download
artifacts over HTTP, ``mlflow-artifacts:/`` URIs, and never need the folder's path). The
server runs in its own session (process group), so stopping it stops its workers too; its pid
and port are recorded in ``state.json`` and ``stop`` signals only that recorded process, after
checking it still is an MLflow server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from barberpro_ml.errors import InfraError
from barberpro_ml.infra._process import (
    LocalComponent,
    free_port,
    pid_alive,
    port_answers,
    process_command,
)

__all__ = ["LocalMlflowServer", "MlflowServerStatus"]


@dataclass(frozen=True)
class MlflowServerStatus:
    """What :meth:`LocalMlflowServer.status` found."""

    running: bool
    pid: int | None
    port: int | None

    @property
    def tracking_uri(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.running and self.port else None

    def describe(self) -> str:
        if not self.running:
            return "MLflow server: stopped"
        return f"MLflow server: running (pid {self.pid}, {self.tracking_uri})"


class LocalMlflowServer(LocalComponent):
    """An MLflow tracking server whose files live in ``folder``.

    Parameters
    ----------
    folder
        Holds ``artifacts/`` (the proxied artifact store), ``server.log`` and ``state.json``.
    """

    @property
    def artifacts_dir(self) -> Path:
        return self.folder / "artifacts"

    def _recorded_server(self) -> int | None:
        """The recorded pid, if that process is alive and still an MLflow server."""
        pid = self._state().get("pid")
        if not pid or not pid_alive(int(pid)):
            return None
        command = process_command(int(pid))
        if "mlflow" not in command or "server" not in command:
            return None  # the pid was reused by something else: not ours
        return int(pid)

    def status(self) -> MlflowServerStatus:
        pid = self._recorded_server()
        port = self._state().get("port")
        return MlflowServerStatus(running=pid is not None, pid=pid,
                                  port=int(port) if pid is not None and port else None)

    def start(self, backend_store_uri: str, *, port: int | None = None, workers: int = 2,
              timeout: float = 120) -> MlflowServerStatus:
        """Start the server and wait until ``/health`` answers.

        Raises
        ------
        InfraError
            Already running, the port is taken, or the server exited / did not answer in
            ``timeout`` seconds (the log's tail is in the message).
        """
        now = self.status()
        if now.running:
            raise InfraError(f"the MLflow server in {self.folder} is already running (pid "
                             f"{now.pid}, {now.tracking_uri}); stop it first")
        port = free_port() if port is None else port
        if port_answers("127.0.0.1", port):
            raise InfraError(f"port {port} on 127.0.0.1 is already in use; choose another")
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "mlflow", "server",
                   "--backend-store-uri", backend_store_uri,
                   "--serve-artifacts", "--artifacts-destination", str(self.artifacts_dir),
                   "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        # MLflow's server-side job runner (huey consumers, one process per queue, ~250 MB
        # each) serves GenAI evaluation jobs this package never submits: off
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI", None)  # the server is the store; it must not be a client
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=self.folder, env=env,
                                       start_new_session=True)
        self._write_state(pid=process.pid, port=port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._write_state(pid=None)
                raise InfraError(f"the MLflow server exited with status {process.returncode} "
                                 f"while starting; last lines of {self.log_file}:\n"
                                 f"{_tail(self.log_file)}")
            if _healthy(port):
                return self.status()
            time.sleep(0.25)
        self.stop()
        raise InfraError(f"the MLflow server did not answer on 127.0.0.1:{port} within "
                         f"{timeout:.0f} s; last lines of {self.log_file}:\n"
                         f"{_tail(self.log_file)}")

    def stop(self, *, timeout: float = 30) -> bool:
        """Stop the recorded server and its workers; False when it was not running."""
        pid = self._recorded_server()
        if pid is None:
            self._write_state(pid=None)
            return False
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)  # its own session: the group is the server and workers
            except ProcessLookupError:
                break
            deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
            while time.monotonic() < deadline and _group_alive(pid):
                time.sleep(0.1)
            if not _group_alive(pid):
                break
        self._write_state(pid=None)
        return True


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
