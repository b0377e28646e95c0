"""Process and state-file helpers shared by the local components (PostgreSQL, MLflow server).

Each component records the pid and port of what it started in a ``state.json``; stopping
checks that record against the live process first, so a reused pid is never signalled.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

__all__ = ["LocalComponent", "free_port", "pid_alive", "port_answers", "process_command",
           "read_state", "update_state"]


def read_state(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` ({} when missing or unreadable)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def update_state(path: Path, **values: Any) -> None:
    """Merge ``values`` into the JSON object in ``path``, replacing the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**read_state(path), **values}, indent=2), encoding="utf-8")
    tmp.replace(path)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def process_command(pid: int) -> str:
    """The command line of ``pid`` ("" when unknown)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        return ""


class LocalComponent:
    """A process this package starts, whose files live in ``folder``: ``server.log`` and the
    ``state.json`` recording what was started (pid, port)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).absolute()

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    def _state(self) -> dict[str, Any]:
        return read_state(self.state_file)

    def _write_state(self, **values: Any) -> None:
        update_state(self.state_file, **values)
