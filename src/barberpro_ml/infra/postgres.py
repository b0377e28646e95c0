"""A PostgreSQL cluster in a project folder, started and stopped by this package.

:class:`LocalPostgres` runs Debian's (or any) PostgreSQL server binaries on this machine:
``initdb`` into ``<folder>/data`` on first use, a generated password in ``<folder>/password``
(and a libpq ``<folder>/pgpass`` file) with 0600 permissions, then ``pg_ctl start`` listening
on 127.0.0.1 only, on a free port, with its Unix socket inside the folder. Clients connect with
``passfile=<folder>/pgpass`` in the URL, so no password is ever printed or put on a command
line.

PostgreSQL refuses to run as root. When this process is root, the server runs as the
``postgres`` system user (created by Debian's ``postgresql`` package): the folder is handed to
that user and every parent directory must be traversable by it (a clear error says which is
not).

Binaries are found on ``PATH`` (``initdb``, ``pg_ctl``), else in the newest
``/usr/lib/postgresql/<version>/bin``; missing, the error says how to install them
(``apt-get install -y postgresql``).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from barberpro_ml.errors import InfraError
from barberpro_ml.infra._process import (
    LocalComponent,
    free_port,
    pid_alive,
    port_answers,
)

__all__ = [
    "LocalPostgres",
    "PostgresStatus",
    "find_postgres_bin",
    "free_port",
]

SERVER_USER_WHEN_ROOT = "postgres"
"""The system user the server runs as when this process is root."""
DEFAULT_USER = "barberpro"
"""The cluster's superuser (and the owner of the databases this package creates)."""


def find_postgres_bin(versions_root: Path = Path("/usr/lib/postgresql")) -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: on ``PATH``, else the newest
    ``<versions_root>/<version>/bin`` (Debian's layout).

    Raises
    ------
    InfraError
        Not installed: names the command that installs it.
    """
    on_path = shutil.which("pg_ctl")
    if on_path is not None and shutil.which("initdb") is not None:
        return Path(on_path).resolve().parent
    versions = sorted(versions_root.glob("*/bin/pg_ctl"),
                      key=lambda p: _version_key(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    raise InfraError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under "
        "/usr/lib/postgresql/*/bin; install them with: apt-get update && apt-get install -y "
        "postgresql")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


@dataclass(frozen=True)
class PostgresStatus:
    """What :meth:`LocalPostgres.status` found."""

    initialised: bool
    running: bool
    pid: int | None
    port: int | None

    def describe(self) -> str:
        if not self.initialised:
            return "PostgreSQL: not initialised"
        if not self.running:
            return "PostgreSQL: stopped"
        return f"PostgreSQL: running (pid {self.pid}, 127.0.0.1:{self.port})"


class LocalPostgres(LocalComponent):
    """A PostgreSQL cluster living in ``folder`` (see the module docstring).

    Parameters
    ----------
    folder
        The cluster's folder (created when missing): ``data/``, ``run/`` (socket),
        ``server.log``, ``password``, ``pgpass``, ``state.json``.
    user
        The cluster's superuser name.

    Examples
    --------
    >>> pg = LocalPostgres(".barberpro/infra/postgres")           # doctest: +SKIP
    >>> pg.start()                                                # doctest: +SKIP
    >>> pg.create_database("events")                              # doctest: +SKIP
    >>> pg.url("events")                                          # doctest: +SKIP
    'postgresql+psycopg://barberpro@127.0.0.1:54021/events?passfile=...'
    >>> pg.stop()                                                 # doctest: +SKIP
    """

    def __init__(self, folder: str | os.PathLike[str], *, user: str = DEFAULT_USER) -> None:
        super().__init__(folder)
        self.user = user

    # ------------------------------------------------------------------------------ paths
    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "run"

    @property
    def password_file(self) -> Path:
        return self.folder / "password"

    @property
    def passfile(self) -> Path:
        return self.folder / "pgpass"

    # ------------------------------------------------------------------------------ state
    @property
    def port(self) -> int | None:
        port = self._state().get("port")
        return int(port) if port is not None else None

    def password(self) -> str:
        """The generated password (read from its 0600 file)."""
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise InfraError(f"no PostgreSQL password at {self.password_file}: is the cluster "
                             "initialised? (barberpro-ml infra up)") from error

    def url(self, database: str = "postgres", *, driver: str = "psycopg") -> str:
        """A SQLAlchemy URL to ``database`` on the running cluster (password via passfile)."""
        port = self.port
        if port is None:
            raise InfraError(f"the PostgreSQL cluster in {self.folder} has never been started")
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return (f"{scheme}://{quote(self.user)}@127.0.0.1:{port}/{quote(database)}"
                f"?passfile={quote(str(self.passfile))}")

    def conninfo(self, database: str = "postgres") -> str:
        """A libpq connection string to ``database`` (for psycopg directly)."""
        return (f"host=127.0.0.1 port={self.port} dbname={database} user={self.user} "
                f"password={self.password()}")

    # --------------------------------------------------------------------------- running
    def _server_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SERVER_USER_WHEN_ROOT)
        except KeyError as error:
            raise InfraError(
                "running as root, and PostgreSQL refuses to run as root; the system user "
                f"{SERVER_USER_WHEN_ROOT!r} (created by Debian's postgresql package) does not "
                "exist: install the package or run as a normal user") from error
        return SERVER_USER_WHEN_ROOT

    def _run(self, args: list[str], *, what: str, timeout: float = 120) -> str:
        user = self._server_user()
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                                  user=user, cwd=self.folder, check=False)
        except subprocess.TimeoutExpired as error:
            raise InfraError(f"{what} did not finish within {timeout:.0f} s; see "
                             f"{self.log_file}") from error
        if done.returncode != 0:
            raise InfraError(f"{what} failed (exit {done.returncode}): "
                             f"{(done.stderr or done.stdout).strip()[-800:]}")
        return done.stdout

    def _hand_over(self, *paths: Path) -> None:
        """Root only: give the server's files to the server user, and check it can reach
        them through every parent directory."""
        user = self._server_user()
        if user is None:
            return
        self.check_reachable()
        entry = pwd.getpwnam(user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def check_reachable(self) -> None:
        """Root only: refuse, before anything is created, a folder the server user cannot
        reach (an existing parent directory others may not enter)."""
        user = self._server_user()
        if user is None:
            return
        for parent in self.folder.parents:
            if not parent.exists():
                continue  # created by us, with the umask's (traversable) mode
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise InfraError(
                    f"the PostgreSQL server runs as {user!r} (this process is root), which "
                    f"cannot enter {parent} (mode {oct(mode & 0o777)}): put the infra folder "
                    "somewhere every user can traverse (e.g. under /srv or /tmp), or run as a "
                    "normal user")

    def initialise(self) -> bool:
        """``initdb`` the cluster with a generated password; returns False when it exists."""
        if (self.data_dir / "PG_VERSION").exists():
            return False
        bin_dir = find_postgres_bin()
        self.check_reachable()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        password = secrets.token_urlsafe(24)
        _write_private(self.password_file, password + "\n")
        # the server user reads the password once, from a file only it can read
        pwfile = self.folder / ".initdb-password"
        _write_private(pwfile, password + "\n")
        self._hand_over(self.data_dir, self.socket_dir, pwfile)
        try:
            self._run([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                       f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                       "--locale=C", "--no-instructions"], what="initdb")
        finally:
            pwfile.unlink(missing_ok=True)
        return True

    def status(self) -> PostgresStatus:
        """Whether the cluster exists and the server this package started is running."""
        initialised = (self.data_dir / "PG_VERSION").exists()
        recorded = self._state().get("pid")
        pid = int(recorded) if recorded else None
        running = pid is not None and pid_alive(pid) and self._postmaster_pid() == pid
        return PostgresStatus(initialised=initialised, running=running,
                              pid=pid if running else None,
                              port=self.port if running else None)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self, port: int | None = None, *, timeout: float = 60) -> PostgresStatus:
        """Initialise if needed and start the server on ``port`` (default: a free one).

        Raises
        ------
        InfraError
            Already running (started by this package: stop it first), the port is taken, or
            the server did not come up (the log's tail is in the message).
        """
        now = self.status()
        if now.running:
            raise InfraError(f"PostgreSQL in {self.folder} is already running (pid {now.pid}, "
                             f"port {now.port}); stop it first")
        self.initialise()
        port = free_port() if port is None else port
        if port_answers("127.0.0.1", port):
            raise InfraError(f"port {port} on 127.0.0.1 is already in use; choose another")
        _write_private(self.passfile, f"127.0.0.1:{port}:*:{self.user}:{self.password()}\n")
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                   f"-c unix_socket_directories={self.socket_dir}")
        self.log_file.touch()
        self._hand_over(self.log_file)
        self._run([str(find_postgres_bin() / "pg_ctl"), "-D", str(self.data_dir), "-l",
                   str(self.log_file), "-w", "-t", str(int(timeout)), "-o", options, "start"],
                  what="pg_ctl start", timeout=timeout + 10)
        pid = self._postmaster_pid()
        if pid is None:
            raise InfraError(f"PostgreSQL started but wrote no postmaster.pid; see {self.log_file}")
        self._write_state(pid=pid, port=port, user=self.user)
        return self.status()

    def stop(self, *, timeout: float = 60) -> bool:
        """Stop the server this package started (by its recorded pid); False if not running.

        Raises
        ------
        InfraError
            A different server owns the data folder than the one recorded (not touched).
        """
        pid = self._state().get("pid")
        if not pid or not pid_alive(int(pid)):
            return False
        if self._postmaster_pid() != pid:
            raise InfraError(f"process {pid} recorded for {self.data_dir} is not its running "
                             "server; not stopping anything")
        self._run([str(find_postgres_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                   "-w", "-t", str(int(timeout)), "stop"], what="pg_ctl stop",
                  timeout=timeout + 10)
        deadline = time.monotonic() + timeout
        while pid_alive(int(pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._write_state(pid=None)
        return True

    def create_database(self, name: str) -> bool:
        """Create database ``name`` owned by the cluster's user; False when it exists."""
        import psycopg

        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise InfraError(f"database name {name!r} must be lower-case letters, digits and "
                             "underscores, starting with a letter or underscore")
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (name,)).fetchone()
            if exists:
                return False
            conn.execute(f'CREATE DATABASE "{name}"')  # name checked above
        return True


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), never wider, even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
