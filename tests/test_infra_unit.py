"""The infra commands' refusals and safety rules, without starting anything real.

(`tests/test_infra.py` starts the real PostgreSQL and MLflow server.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from barberpro_ml.errors import InfraError
from barberpro_ml.infra import LocalMlflowServer, LocalPostgres, status
from barberpro_ml.infra import postgres as pg


def test_missing_postgresql_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setattr(pg.shutil, "which", lambda name: None)
    with pytest.raises(InfraError, match="apt-get install -y postgresql"):
        pg.find_postgres_bin(tmp_path / "no-postgresql-here")
    # Debian's layout, newest version first
    for version in ("9.6", "15", "13"):
        (tmp_path / "lib" / version / "bin").mkdir(parents=True)
        (tmp_path / "lib" / version / "bin" / "pg_ctl").touch()
    assert pg.find_postgres_bin(tmp_path / "lib") == tmp_path / "lib" / "15" / "bin"


def test_a_recorded_pid_that_is_not_our_server_is_never_signalled(tmp_path: Path) -> None:
    # a live process that is not an MLflow server (pid reused after a crash, say)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = tmp_path / "mlflow"
        folder.mkdir()
        (folder / "state.json").write_text(json.dumps({"pid": bystander.pid, "port": 1}))
        server = LocalMlflowServer(folder)
        assert not server.status().running
        assert server.stop() is False
        assert bystander.poll() is None  # still alive: not ours, not touched
    finally:
        bystander.kill()
        bystander.wait()


def test_a_recorded_postgres_pid_that_does_not_own_the_data_folder_is_refused(
        tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cluster = LocalPostgres(tmp_path / "postgres")
        cluster.data_dir.mkdir(parents=True)
        (cluster.data_dir / "PG_VERSION").write_text("15\n")
        (cluster.data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n")
        cluster.state_file.write_text(json.dumps({"pid": bystander.pid, "port": 5432}))
        assert not cluster.status().running
        with pytest.raises(InfraError, match="not its running server; not stopping"):
            cluster.stop()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_busy_port_is_refused_by_name(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InfraError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalMlflowServer(tmp_path / "mlflow").start("sqlite:///x.db", port=port)


def test_status_of_nothing_and_down_of_nothing(tmp_path: Path) -> None:
    from barberpro_ml.infra import down

    now = status(tmp_path / "infra")
    assert not now.up and now.exports() == ""
    assert "not initialised" in now.postgres.describe()
    assert not down(tmp_path / "infra").up  # nothing to stop is not an error


def test_cli_status_exits_1_when_down(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "barberpro_ml.cli", "infra", "status", "--dir",
                           str(tmp_path / "infra")], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 1
    assert "PostgreSQL: not initialised" in done.stderr
    assert "MLflow server: stopped" in done.stderr


def test_secret_files_are_private_from_the_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old")
    path.chmod(0o644)
    pg._write_private(path, "new\n")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "new\n"


def test_database_names_are_checked_before_any_sql(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="lower-case letters"):
        LocalPostgres(tmp_path).create_database('x"; DROP DATABASE mlflow; --')


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another user")
def test_a_folder_the_server_user_cannot_reach_is_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    from barberpro_ml.infra import up

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(InfraError, match=r"cannot enter .*private \(mode 0o700\)"):
        up(private / "infra")
    assert list(private.iterdir()) == []  # nothing half-written
