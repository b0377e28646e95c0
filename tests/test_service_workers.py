"""``barberpro-ml serve --workers N`` and its environment hand-over
(:mod:`barberpro_ml.service.worker`): a real two-worker server on loopback, bounded in time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from barberpro_ml.errors import InputError
from barberpro_ml.service.worker import ServeSettings, is_loopback, reset_metrics_dir
from conftest import wait_for_ok


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pids(folder: Path, pattern: str) -> set[str]:
    return {p.stem.split("_")[-1] for p in folder.glob(pattern)}


def _requests_total(text: str, route: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == "barberpro_http_requests_total" and s.labels["route"] == route)


def _interrupt(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C the server, as an operator would; kill its process group if it hangs."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_serve_with_two_workers_answers_from_both_and_stops(scoring_registry: Any,
                                                             tmp_path: Path) -> None:
    port = _free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_99999999.db").write_bytes(b"left by an earlier run")
    log = tmp_path / "serve.log"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("BARBERPRO_SERVE_DATA", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "barberpro_ml.cli", "serve", "--workers", "2",
         "--host", "127.0.0.1", "--port", str(port), "--auth", "off",
         "--data", str(scoring_registry.data_dir),
         "--tracking-uri", scoring_registry.tracking_uri, "--poll-interval", "0",
         "--db", f"sqlite:///{tmp_path / 'service.db'}", "--snapshot-cache", "7"],
        env=env, cwd=tmp_path, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while len(_pids(metrics_dir, "gauge_liveall_*.db")) < 2:  # both apps built
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert "99999999" not in _pids(metrics_dir, "*.db")  # the stale file was cleared
        workers = _pids(metrics_dir, "gauge_liveall_*.db")
        n = 0
        while _pids(metrics_dir, "counter_*.db") != workers:  # each worker has answered
            assert n < 200, (_pids(metrics_dir, "counter_*.db"), workers)
            health = httpx.get(f"{base}/health", timeout=30)  # a new connection each
            assert health.status_code == 200, log.read_text()[-3000:]
            assert health.json()["snapshot_cache"]["max_entries"] == 7
            n += 1
        customer = int(scoring_registry.data.customers["customer_id"].iloc[0])
        profile = httpx.get(f"{base}/v1/customers/{customer}/profile", timeout=30)
        assert profile.status_code == 200, profile.text
        assert profile.json()["customer_id"] == customer
        text = httpx.get(f"{base}/metrics", timeout=30).text
        assert _requests_total(text, "/health") == n  # summed over both workers
    finally:
        _interrupt(process)
    assert process.returncode == 0, log.read_text()[-3000:]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/health", timeout=5)


def test_serve_removes_the_metrics_folder_it_made_when_it_stops(scoring_registry: Any,
                                                                 tmp_path: Path) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR, ``serve --workers`` makes its own folder for the
    samples, and takes it away at exit: nothing of the run is left in the temporary
    directory."""
    port = _free_port()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    log = tmp_path / "serve.log"
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": os.pathsep.join(sys.path)}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "BARBERPRO_SERVE_DATA"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "barberpro_ml.cli", "serve", "--workers", "2",
         "--host", "127.0.0.1", "--port", str(port), "--auth", "off",
         "--data", str(scoring_registry.data_dir),
         "--tracking-uri", scoring_registry.tracking_uri, "--poll-interval", "0",
         "--db", f"sqlite:///{tmp_path / 'service.db'}"],
        env=env, cwd=tmp_path, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        wait_for_ok(f"http://127.0.0.1:{port}/health", process, timeout=240, log=log)
        made = list(scratch.glob("barberpro-prometheus-*"))
        assert len(made) == 1 and list(made[0].glob("*.db")), made
    finally:
        _interrupt(process)
    assert process.returncode == 0, log.read_text()[-3000:]
    assert list(scratch.iterdir()) == []


def test_a_worker_that_cannot_start_stops_the_server_with_its_reason(scoring_registry: Any,
                                                                     tmp_path: Path) -> None:
    """No champion in the registry: each worker fails to build its app. Instead of uvicorn
    restarting the workers forever with tracebacks, the server stops, the command prints the
    reason once and exits with the error's status, and its temporary folders are gone."""
    from barberpro_ml.errors import ModelUnavailableError

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": os.pathsep.join(sys.path)}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "BARBERPRO_SERVE_DATA"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "barberpro_ml.cli", "serve", "--workers", "2",
         "--host", "127.0.0.1", "--port", str(_free_port()), "--auth", "off",
         "--data", str(scoring_registry.data_dir),
         "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}", "--poll-interval", "0",
         "--db", f"sqlite:///{tmp_path / 'service.db'}"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode == ModelUnavailableError.exit_code, output[-3000:]
    assert "error (ModelUnavailableError): a worker could not start" in output
    assert "no @champion of barberpro-churn" in output
    assert "Traceback" not in output, output
    assert list(scratch.iterdir()) == []


def test_serve_refuses_auth_off_with_workers_off_loopback(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from barberpro_ml.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--workers", "2", "--host", "0.0.0.0",
                                      "--auth", "off", "--data", str(tmp_path)])
    assert result.exit_code != 0
    assert "loopback" in result.output


@given(data=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                    max_size=40),
       auth=st.sampled_from(["keys", "off"]),
       as_of=st.none() | st.datetimes(min_value=datetime(2000, 1, 1),
                                      max_value=datetime(2100, 1, 1)),
       poll=st.floats(0, 1e6), cache=st.integers(1, 10_000),
       mib=st.none() | st.floats(0.01, 1e6))
def test_settings_survive_the_environment(data: str, auth: str, as_of: datetime | None,
                                          poll: float, cache: int, mib: float | None) -> None:
    settings = ServeSettings(data=data, auth=auth, as_of=as_of, poll_interval=poll,
                             snapshot_cache=cache, snapshot_cache_mib=mib)
    assert ServeSettings.from_env(settings.to_env()) == settings


def test_bad_settings_in_the_environment_name_the_variable() -> None:
    with pytest.raises(InputError, match="BARBERPRO_SERVE_DATA"):
        ServeSettings.from_env({})
    with pytest.raises(InputError, match="BARBERPRO_SERVE_SNAPSHOT_CACHE"):
        ServeSettings.from_env({"BARBERPRO_SERVE_DATA": "x",
                                "BARBERPRO_SERVE_SNAPSHOT_CACHE": "0"})


def test_worker_refuses_auth_off_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    from barberpro_ml.service.worker import app

    monkeypatch.setenv("BARBERPRO_SERVE_DATA", "nowhere")
    monkeypatch.setenv("BARBERPRO_SERVE_AUTH", "off")
    monkeypatch.setenv("BARBERPRO_SERVE_HOST", "10.1.2.3")
    with pytest.raises(InputError, match="loopback"):
        app()


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("10.0.0.1", False), ("example.com", False)])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_reset_metrics_dir_empties_only_samples(tmp_path: Path) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("kept")
    reset_metrics_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert reset_metrics_dir(tmp_path / "new").is_dir()


def test_a_workers_start_failure_comes_back_as_the_librarys_error(tmp_path: Path) -> None:
    import json

    from barberpro_ml.errors import InfraError, ModelUnavailableError
    from barberpro_ml.service.worker import read_start_failure

    path = tmp_path / "worker-failure.json"
    assert read_start_failure(path) is None
    path.write_text(json.dumps({"kind": "ModelUnavailableError", "message": "no @champion"}))
    error = read_start_failure(path)
    assert isinstance(error, ModelUnavailableError) and "no @champion" in str(error)
    # anything else (a bug, a broken component) stops the server as an infrastructure error
    path.write_text(json.dumps({"kind": "OperationalError", "message": "disk I/O error"}))
    error = read_start_failure(path)
    assert type(error) is InfraError
    assert "OperationalError: disk I/O error" in str(error)
