"""The HTTP service through a real HTTP client (FastAPI's TestClient) and on loopback.

Covers every route, bad input (422 naming the problem), unknown customers (404 naming the
ids), a crash inside a route (500, and the next request is served), the numbers equal to the
scoring API's, and the registered models serving unchanged through ``mlflow models serve``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.scoring.service import MAX_BATCH, create_app


@pytest.fixture(scope="module")
def scorer(scoring_registry: Any) -> CustomerScorer:
    return CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)


@pytest.fixture(scope="module")
def client(scorer: CustomerScorer, scoring_registry: Any) -> Iterator[TestClient]:
    app = create_app(scorer, scoring_registry.data)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def customer(scoring_registry: Any) -> int:
    customers = scoring_registry.data.customers
    return int(customers.sort_values("signup_at")["customer_id"].iloc[10])


def test_health_reports_the_loaded_model_versions(client: TestClient,
                                                  scoring_registry: Any) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert {ref["name"]: ref["version"] for ref in body["models"].values()} == \
        scoring_registry.versions
    assert body["customers"] == len(scoring_registry.data.customers)
    assert pd.Timestamp(body["data_end"]) == scoring_registry.data.observation_end


def test_profile_equals_the_scoring_api(client: TestClient, scorer: CustomerScorer,
                                        scoring_registry: Any, customer: int) -> None:
    response = client.get(f"/customers/{customer}/profile")
    assert response.status_code == 200, response.text
    assert "X-Process-Time-Ms" in response.headers
    expected = scorer.profile(scoring_registry.data, customer)[0]
    assert response.json() == expected.model_dump(mode="json")
    earlier = client.get(f"/customers/{customer}/profile", params={"as_of": "2024-06-30"})
    assert earlier.status_code == 200
    assert earlier.json()["as_of"].startswith("2024-06-30")
    assert earlier.json() == scorer.profile(scoring_registry.data, customer,
                                            "2024-06-30")[0].model_dump(mode="json")


@pytest.mark.parametrize(("path", "params", "fragment"), [
    ("/customers/abc/profile", {}, "customer_id"),
    ("/customers/-4/profile", {}, "greater than or equal to 1"),
    ("/customers/{c}/profile", {"as_of": "yesterday-ish"}, "as_of"),
    ("/customers/{c}/profile", {"as_of": "2031-01-01"}, "after the data's last event"),
    ("/customers/{c}/profile", {"as_of": "2019-01-01"}, "first signup"),
    ("/customers/{c}/recommendations", {"k": 0}, "k"),
    ("/customers/{c}/journey", {"step_days": 0}, "step_days"),
    ("/customer-segments", {"by": "zodiac"}, "by"),
])
def test_invalid_input_is_a_422_naming_the_problem(client: TestClient, customer: int,
                                                   path: str, params: dict[str, Any],
                                                   fragment: str) -> None:
    response = client.get(path.format(c=customer), params=params)
    assert response.status_code == 422, response.text
    assert fragment in response.text


def test_unknown_customer_is_a_404_naming_the_id(client: TestClient) -> None:
    for path in ("/customers/987654321/profile", "/customers/987654321/recommendations",
                 "/customers/987654321/journey"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.text)
        assert "987654321" in response.json()["detail"]


def test_batch_profile_in_request_order_with_limits(client: TestClient, scorer: CustomerScorer,
                                                    scoring_registry: Any) -> None:
    ids = [int(i) for i in scorer.snapshot(scoring_registry.data).features.index[:150]][::-1]
    response = client.post("/customers/batch-profile", json={"customer_ids": ids})
    assert response.status_code == 200, response.text
    profiles = response.json()["profiles"]
    assert [p["customer_id"] for p in profiles] == ids
    direct = scorer.profile_batch(scoring_registry.data, ids)
    assert [p["churn"]["probability"] for p in profiles] == \
        [p.churn.probability for p in direct]

    unknown = client.post("/customers/batch-profile", json={"customer_ids": [ids[0], 987654]})
    assert unknown.status_code == 404 and unknown.json()["unknown_ids"] == [987654]
    partial = client.post("/customers/batch-profile",
                          json={"customer_ids": [ids[0], 987654], "skip_unknown": True})
    assert partial.status_code == 200
    assert partial.json()["not_found"] == [987654]
    assert [p["customer_id"] for p in partial.json()["profiles"]] == [ids[0]]

    for bad in ({"customer_ids": []}, {"customer_ids": list(range(1, MAX_BATCH + 2))},
                {"customer_ids": ["x"]}, {"ids": [1]}, {"customer_ids": [1], "as_of": "soon"}):
        response = client.post("/customers/batch-profile", json=bad)
        assert response.status_code == 422, (bad, response.text)
    assert client.post("/customers/batch-profile", content=b"{not json").status_code == 422


def test_recommendations_journey_segments_and_success_metrics(
        client: TestClient, customer: int, scoring_registry: Any) -> None:
    recs = client.get(f"/customers/{customer}/recommendations", params={"k": 4}).json()
    assert recs["customer_id"] == customer and len(recs["barbers"]) <= 4

    journey = client.get(f"/customers/{customer}/journey").json()
    assert journey["stage"] == journey["stages"][-1]["stage"]
    assert all(row["changed"] for row in journey["transitions"])
    visits = journey["visits"]
    assert [v["scheduled_at"] for v in visits] == sorted(v["scheduled_at"] for v in visits)

    for by in ("rfm", "cluster", "lifecycle"):
        body = client.get("/customer-segments", params={"by": by}).json()
        shares = [s["share"] for s in body["segments"]]
        assert sum(shares) == pytest.approx(1.0)
        assert all(0 <= s["churn_probability_mean"] <= 1 for s in body["segments"])

    metrics = client.get("/customer-success/metrics").json()
    assert sum(metrics["lifecycle"].values()) == metrics["customers"]
    claim = metrics["churn_reduction_claim"]
    assert claim["claimed"] == pytest.approx(0.463)
    assert claim["verdict"] in {"supported", "refused", "not measurable"}
    if claim["measured"] is not None:
        assert claim["ci_low"] <= claim["measured"] <= claim["ci_high"]
        assert (claim["verdict"] == "supported") == (claim["ci_low"] >= 0.463)


def test_openapi_docs_list_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/health", "/customers/{customer_id}/profile",
            "/customers/{customer_id}/recommendations", "/customers/batch-profile",
            "/customer-segments", "/customers/{customer_id}/journey",
            "/customer-success/metrics"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_a_crash_inside_a_route_is_a_500_and_the_service_keeps_serving(
        scorer: CustomerScorer, scoring_registry: Any, customer: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(scorer, scoring_registry.data)
    with TestClient(app, raise_server_exceptions=False) as c:
        def boom(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("disk on fire")

        with monkeypatch.context() as m:
            m.setattr(scorer, "profile", boom)
            response = c.get(f"/customers/{customer}/profile")
        assert response.status_code == 500
        assert "RuntimeError" in response.json()["detail"]
        assert c.get(f"/customers/{customer}/profile").status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: "
                                 f"{process.stdout.read().decode() if process.stdout else ''}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not come up in {timeout} s")


def test_barberpro_serve_answers_over_loopback(scoring_registry: Any, customer: int) -> None:
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": scoring_registry.tracking_uri,
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "barberpro_ml.cli", "serve", "--data",
         str(scoring_registry.data_dir), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/health", process)
        response = httpx.get(f"http://127.0.0.1:{port}/customers/{customer}/profile",
                             timeout=30.0)
        assert response.status_code == 200
        assert response.json()["customer_id"] == customer
        assert httpx.get(f"http://127.0.0.1:{port}/customers/987654321/profile",
                         timeout=30.0).status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=30)


def _request(scorer: CustomerScorer, family: str, rows: pd.DataFrame,
             neighborhoods: pd.Series) -> tuple[pd.DataFrame, Any]:
    """The JSON-ready request for a family's pyfunc and what the in-process wrapper returns."""
    if family == "recs":
        request = pd.DataFrame({"user_id": rows.index.to_numpy(dtype=np.int64),
                                "k": np.full(len(rows), 3, dtype=np.int64),
                                "neighborhood": neighborhoods.reindex(rows.index).to_numpy()})
        return request, scorer.recs.predict(None, request)
    wrapper = scorer.segments if family == "segments" else scorer.churn
    assert wrapper.spec is not None
    return wrapper.spec.features.to_request(rows), wrapper.predict(None, rows)


@pytest.mark.parametrize(("family", "name"), [("segments", "barberpro-segments"),
                                              ("recs", "barberpro-recs")])
def test_registered_models_serve_unchanged_through_mlflow_models_serve(
        scoring_registry: Any, scorer: CustomerScorer, family: str, name: str) -> None:
    port = _free_port()
    bin_dir = Path(sys.executable).parent  # mlflow runs `uvicorn` from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": scoring_registry.tracking_uri,
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
           "PATH": str(bin_dir) + os.pathsep + os.environ.get("PATH", "")}
    mlflow_cli = str(bin_dir / "mlflow")
    process = subprocess.Popen(
        [mlflow_cli, "models", "serve", "-m", f"models:/{name}@champion",
         "--env-manager", "local", "--port", str(port), "--host", "127.0.0.1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/ping", process)
        snap = scorer.snapshot(scoring_registry.data)
        request, expected = _request(scorer, family, snap.features.iloc[:20], snap.neighborhoods)
        # pandas writes missing values as null (JSON has no NaN); the server reads them back
        body = '{"dataframe_split": ' + request.to_json(orient="split", index=False) + "}"
        response = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=30.0,
                              content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        served = response.json()["predictions"]
        if family == "recs":
            served_frame = pd.DataFrame(served)[list(expected.columns)]
            pd.testing.assert_frame_equal(served_frame, expected, check_dtype=False)
        else:
            np.testing.assert_array_equal(np.asarray(served, dtype=float), expected)
    finally:
        process.terminate()
        process.wait(timeout=30)
