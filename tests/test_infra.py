"""Production mode, for real: `barberpro-ml infra up` starts PostgreSQL and an MLflow server,
the project's commands run against the server unchanged, and `infra down` leaves nothing running.

Everything goes through the command line in subprocesses, as a user would drive it, in empty
working folders (so a stray local ``mlflow.db`` would show). Skips locally when PostgreSQL is
not installed; fails in CI (tests/requirements.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from conftest import postgres_installed, traversable_tmp_dir
from requirements import missing

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "barberpro_ml.cli"]


@dataclass(frozen=True)
class Infra:
    folder: Path
    tracking_uri: str
    events_url: str

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        # this interpreter's scripts first (`mlflow models serve` execs `uvicorn` from PATH)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def pids(self) -> list[int]:
        out = []
        for part in ("postgres", "mlflow"):
            state = json.loads((self.folder / part / "state.json").read_text())
            if state.get("pid"):
                out.append(int(state["pid"]))
        return out


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout, check=False)


def exports(stdout: str) -> dict[str, str]:
    found = {}
    for line in stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            found[key] = value.strip("'")
    return found


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> httpx.Response:
    """GET ``url`` once ``process`` (a server starting) answers; fails if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=10)
        except httpx.TransportError:
            if process.poll() is not None:
                err = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"the server exited with {process.returncode}: {err[-3000:]}")
            time.sleep(0.5)
    pytest.fail(f"no answer from {url} within {timeout:.0f} s")


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture(scope="module")
def infra() -> Iterator[Infra]:
    if not postgres_installed():
        missing("PostgreSQL server binaries (apt-get install -y postgresql)")
    folder = traversable_tmp_dir("barberpro-infra-")
    up = cli("infra", "up", "--dir", str(folder), timeout=300)
    assert up.returncode == 0, up.stderr
    found = exports(up.stdout)
    stack = Infra(folder, found["MLFLOW_TRACKING_URI"], found["BARBERPRO_EVENTS_URL"])
    pids = stack.pids()
    try:
        yield stack
    finally:
        down = cli("infra", "down", "--dir", str(folder), timeout=300)
        try:
            assert down.returncode == 0, down.stderr
            deadline = time.monotonic() + 30
            while any(alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not any(alive(p) for p in pids), "infra down left a process running"
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def test_up_is_idempotent_and_keeps_the_password_private(infra: Infra) -> None:
    pids = infra.pids()
    again = cli("infra", "up", "--dir", str(infra.folder))
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stderr
    assert infra.pids() == pids  # nothing started twice
    assert exports(again.stdout)["MLFLOW_TRACKING_URI"] == infra.tracking_uri
    for secret in ("password", "pgpass"):
        assert (infra.folder / "postgres" / secret).stat().st_mode & 0o777 == 0o600
    password = (infra.folder / "postgres" / "password").read_text().strip()
    assert password not in again.stdout + again.stderr  # the URL carries a passfile instead
    status = cli("infra", "status", "--dir", str(infra.folder))
    assert status.returncode == 0 and "running" in status.stderr
    assert httpx.get(f"{infra.tracking_uri}/health", timeout=10).status_code == 200


def _runs_in_postgres(infra: Infra) -> int:
    import psycopg

    from barberpro_ml.infra import LocalPostgres

    with psycopg.connect(LocalPostgres(infra.folder / "postgres").conninfo("mlflow")) as conn:
        row = conn.execute("SELECT count(*) FROM runs").fetchone()
    assert row is not None
    return int(row[0])


def test_the_service_database_is_exported_and_holds_the_keys(infra: Infra,
                                                             tmp_path: Path) -> None:
    from barberpro_ml.service import KeyStore

    status = cli("infra", "status", "--dir", str(infra.folder))
    url = exports(status.stdout)["BARBERPRO_SERVICE_DB"]
    assert url.startswith("postgresql+psycopg://") and url.split("?")[0].endswith("/service")
    # the exported variable is the `keys` commands' (and `serve`'s) default database
    env = {**infra.env(), "BARBERPRO_SERVICE_DB": url}
    made = cli("keys", "create", "--name", "partner-x", "--scopes", "customers:read",
               env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert KeyStore(url).authenticate(made.stdout.strip()).name == "partner-x"
    assert not list(tmp_path.glob("*.db"))  # no SQLite file beside


def test_the_pipeline_score_and_serving_run_against_the_server(infra: Infra,
                                                               tmp_path: Path) -> None:
    from mlflow import MlflowClient

    before = _runs_in_postgres(infra)
    env = infra.env()
    run = cli("pipeline", "--customers", "2000", "--families", "churn,segments", env=env,
              cwd=tmp_path)
    assert run.returncode in (0, 3), run.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    assert _runs_in_postgres(infra) > before  # the runs are in PostgreSQL
    client = MlflowClient(tracking_uri=infra.tracking_uri)
    champion = client.get_model_version_by_alias("barberpro-churn", "champion")
    # artifacts went through the server (proxied), into the infra folder
    assert champion.source and client.get_run(champion.run_id).info.artifact_uri.startswith(
        "mlflow-artifacts:")
    assert any((infra.folder / "mlflow" / "artifacts").iterdir())

    scored = cli("score", "--out", str(tmp_path / "profiles.parquet"), env=env, cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert (tmp_path / "profiles.parquet").stat().st_size > 0

    # gate and promote through the server: the champion re-gated against itself, then a
    # promotion of the version that already holds the alias
    gated = cli("gate", "--model", "barberpro-churn", "--version", champion.version, env=env,
                cwd=tmp_path)
    assert gated.returncode in (0, 3), gated.stderr[-3000:]
    assert f"v{champion.version}: gate recorded" in gated.stdout
    promoted = cli("promote", "--model", "barberpro-churn", "--version", champion.version,
                   env=env, cwd=tmp_path)
    assert promoted.returncode in (0, 2, 3), promoted.stderr[-3000:]
    assert client.get_model_version_by_alias("barberpro-churn", "champion").version == \
        champion.version

    # the service, loading its champions from the server
    from barberpro_ml.infra.postgres import free_port

    port = free_port()
    service = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/health", service)
        assert health.status_code == 200
        assert "churn" in json.dumps(health.json())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=30)

    # `mlflow models serve` straight from the registry on the server
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m",
         "models:/barberpro-churn@champion", "--env-manager", "local", "-h", "127.0.0.1",
         "-p", str(port)], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    try:
        import mlflow

        mlflow.set_tracking_uri(infra.tracking_uri)
        info = mlflow.models.get_model_info("models:/barberpro-churn@champion")
        example = mlflow.models.Model.load(
            "models:/barberpro-churn@champion").load_input_example(
            mlflow.artifacts.download_artifacts("models:/barberpro-churn@champion"))
        assert info.signature is not None and example is not None
        payload = {"dataframe_split": json.loads(example.to_json(orient="split",
                                                                 date_format="iso"))}
        deadline = time.monotonic() + 180
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json=payload,
                                    timeout=10)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read().decode()[-3000:] \
                    if server.stderr else "mlflow models serve exited"
                time.sleep(1)
        assert answer is not None and answer.status_code == 200, answer
        predictions = answer.json()["predictions"]
        assert len(predictions) == len(example)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_two_pipelines_at_once_lose_nothing_and_one_wins_the_race(infra: Infra,
                                                                   tmp_path: Path) -> None:
    """Two pipelines on the same data set at the same time, against the same server: both
    runs and both registered versions arrive, both promotion attempts are logged, and of the
    attempts that saw the same champion at most one moved it (compare-and-set)."""
    import mlflow
    from mlflow import MlflowClient

    from barberpro_ml.registry.promotion import promotion_log

    name = "barberpro-segments"
    client = MlflowClient(tracking_uri=infra.tracking_uri)
    mlflow.set_tracking_uri(infra.tracking_uri)

    def versions() -> set[str]:
        try:
            return {mv.version for mv in client.search_model_versions(f"name = '{name}'")}
        except mlflow.exceptions.MlflowException:
            return set()

    def attempts() -> pd.DataFrame:
        return promotion_log(name, include_refused=True, client=client)

    versions_before = versions()
    log_before = set(attempts()["log_run_id"])
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    env = infra.env()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(
            lambda folder: cli("pipeline", "--customers", "1500", "--families", "segments",
                               env=env, cwd=folder), folders))
    for result in results:
        assert result.returncode in (0, 3), result.stderr[-3000:]

    new_versions = versions() - versions_before
    assert len(new_versions) == 2  # no lost run or registration
    log = attempts()
    new_attempts = log[~log["log_run_id"].isin(log_before)]
    # one logged attempt per new version: no lost promotion-log row
    assert sorted(new_attempts["version"]) == sorted(new_versions)
    promoted = new_attempts[new_attempts["outcome"] == "promoted"]
    # of the attempts that saw the same champion, at most one moved it
    assert not promoted["previous_champion"].fillna("none").duplicated().any(), new_attempts
    champion = client.get_model_version_by_alias(name, "champion").version
    if len(promoted):
        assert champion == promoted.sort_values("at")["version"].iloc[-1]
