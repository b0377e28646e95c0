"""Request ids, JSON logs and Prometheus metrics, through a real HTTP client, and the metrics
summed over two uvicorn worker processes on loopback."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import KeyStore, create_app
from barberpro_ml.service.observability import JsonFormatter

PROFILE = "/v1/customers/{customer_id}/profile"


@pytest.fixture(scope="module")
def keys() -> KeyStore:
    return KeyStore("sqlite://")


@pytest.fixture(scope="module")
def token(keys: KeyStore) -> str:
    return keys.create("partner", "customers:read").token


@pytest.fixture(scope="module")
def client(scoring_registry: Any, keys: KeyStore) -> Iterator[TestClient]:
    scorer = CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)
    with TestClient(create_app(scorer, scoring_registry.data, keys=keys),
                    raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def customer(scoring_registry: Any) -> int:
    return int(scoring_registry.data.customers.sort_values("signup_at")["customer_id"].iloc[10])


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``name``'s samples in a Prometheus exposition: sorted labels -> value."""
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}


def count(text: str, name: str, **labels: str) -> float:
    return sum(v for k, v in samples(text, name).items()
               if all((key, value) in k for key, value in labels.items()))


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-123.x_Y"}) \
        .headers["X-Request-ID"] == "abc-123.x_Y"
    made = {client.get("/health", headers=h).headers["X-Request-ID"]
            for h in ({}, {"X-Request-ID": "has space"}, {"X-Request-ID": "x" * 129},
                      {"X-Request-ID": "<script>"})}
    assert len(made) == 4 and all(len(r) == 32 and int(r, 16) >= 0 for r in made)
    assert client.get("/v1/no-such").headers["X-Request-ID"]  # errors carry it too


def test_metrics_count_requests_by_route_template_and_status(
        client: TestClient, customer: int, token: str) -> None:
    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    key = {"Authorization": f"Bearer {token}"}
    for _ in range(3):
        assert client.get(f"/v1/customers/{customer}/profile", headers=key).status_code == 200
    assert client.get("/v1/customers/987654321/profile", headers=key).status_code == 404
    assert client.get(f"/v1/customers/{customer}/profile").status_code == 401
    after = client.get("/metrics").text
    total = "barberpro_http_requests_total"
    for status, n in (("200", 3), ("404", 1), ("401", 1)):
        grew = count(after, total, route=PROFILE, status=status) - \
            count(before.text, total, route=PROFILE, status=status)
        assert grew == n, (status, grew)
    assert not any(str(customer) in dict(k).get("route", "") for k in samples(after, total))
    hist = "barberpro_http_request_duration_seconds_count"
    assert count(after, hist, route=PROFILE) - count(before.text, hist, route=PROFILE) == 5
    assert count(after, "barberpro_scoring_duration_seconds_count", route=PROFILE) >= 5
    versions = samples(after, "barberpro_model_version_info")
    assert {dict(k)["family"] for k in versions} >= {"churn", "ltv", "recs", "segments"}
    assert all(v == 1 for v in versions.values())


def test_logs_are_json_with_the_request_id_and_no_key(client: TestClient, customer: int,
                                                      token: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    service_log = logging.getLogger("barberpro_ml.service")
    service_log.addHandler(handler)
    level = service_log.level
    service_log.setLevel(logging.INFO)
    try:
        client.get(f"/v1/customers/{customer}/profile", headers={
            "X-Request-ID": "trace-42", "Authorization": f"Bearer {token}"})
    finally:
        service_log.removeHandler(handler)
        service_log.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [r for r in lines if r["logger"] == "barberpro_ml.service.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "trace-42" and line["route"] == PROFILE
    assert line["status"] == 200 and line["duration_ms"] > 0 and line["ts"].endswith("Z")
    assert line["key_id"] == token[4:20]
    assert token.split(".")[1] not in stream.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_are_summed_over_two_uvicorn_workers(scoring_registry: Any,
                                                     tmp_path: Path) -> None:
    port = _free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": scoring_registry.tracking_uri,
           "BARBERPRO_TEST_DATA": str(scoring_registry.data_dir),
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service_factory:app", "--factory", "--workers", "2",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "uvicorn.log").open("wb"),
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        ready = 0
        while ready < 2 and time.monotonic() < deadline:  # both workers up: all files written
            assert process.poll() is None, (tmp_path / "uvicorn.log").read_text()[-3000:]
            try:
                httpx.get(f"{base}/openapi.json", timeout=5)
            except httpx.HTTPError:
                time.sleep(1)
                continue
            ready = len({p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")})
            time.sleep(0.5)
        assert ready == 2, (tmp_path / "uvicorn.log").read_text()[-3000:]
        n = 60
        for _ in range(n):  # a new connection each: the kernel spreads them over the workers
            answer = httpx.get(f"{base}/health", timeout=30)
            assert answer.status_code == 200, (tmp_path / "uvicorn.log").read_text()[-3000:]
        seen = set()
        for _ in range(6):
            text = httpx.get(f"{base}/metrics", timeout=30).text
            seen.add(count(text, "barberpro_http_requests_total", route="/health",
                           status="200"))
        assert seen == {n}, seen  # every worker answers the sum of both
        pids = {p.name.split("_")[-1] for p in metrics_dir.glob("histogram_*.db")}
        assert len(pids) == 2, pids
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_dead_workers_served_versions_leave_metrics_and_its_counts_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that died (uvicorn restarts it) must not go on reporting the model versions it
    served; its request counts are still the service's."""
    import subprocess
    import sys

    from starlette.requests import Request

    from barberpro_ml.service.observability import forget_dead_workers, metrics_response

    script = (
        "from prometheus_client import Counter, Gauge\n"
        "Gauge('barberpro_model_version_info', 'x', ['family', 'name', 'version'],\n"
        "      multiprocess_mode='liveall').labels('churn', 'barberpro-churn', '7').set(1)\n"
        "Counter('barberpro_http_requests', 'x', ['route', 'method', 'status'])"
        ".labels('/health', 'GET', '200').inc(3)\n"
        "import os; print(os.getpid())\n")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    dead = int(subprocess.run([sys.executable, "-c", script], env=env, check=True,
                              capture_output=True, text=True).stdout)
    assert (tmp_path / f"gauge_liveall_{dead}.db").exists()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body = metrics_response(Request({"type": "http", "method": "GET", "path": "/metrics",
                                     "headers": []})).body.decode()
    assert 'version="7"' not in body, body
    assert 'barberpro_http_requests_total{method="GET",route="/health",status="200"} 3.0' in body
    assert not (tmp_path / f"gauge_liveall_{dead}.db").exists()
    assert forget_dead_workers(tmp_path) == []  # nothing left to forget
