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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from barberpro_ml.features import active_customers
from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import MAX_BATCH, create_app
from conftest import wait_for_ok
from service_json import naive, zulu


@pytest.fixture(scope="module")
def scorer(scoring_registry: Any) -> CustomerScorer:
    return CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)


@pytest.fixture(scope="module")
def client(scorer: CustomerScorer, scoring_registry: Any) -> Iterator[TestClient]:
    app = create_app(scorer, scoring_registry.data, auth="off")
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
    assert naive(body["data_end"]) == scoring_registry.data.observation_end


def test_profile_equals_the_scoring_api(client: TestClient, scorer: CustomerScorer,
                                        scoring_registry: Any, customer: int) -> None:
    response = client.get(f"/customers/{customer}/profile")
    assert response.status_code == 200, response.text
    assert "X-Process-Time-Ms" in response.headers
    expected = scorer.profile(scoring_registry.data, customer)[0]
    assert response.json() == zulu(expected.model_dump(mode="json"))
    assert response.json()["as_of"].endswith("Z")  # naive UTC written with its zone
    earlier = client.get(f"/customers/{customer}/profile", params={"as_of": "2024-06-30"})
    assert earlier.status_code == 200
    assert earlier.json()["as_of"].startswith("2024-06-30")
    assert earlier.json() == zulu(scorer.profile(scoring_registry.data, customer,
                                                 "2024-06-30")[0].model_dump(mode="json"))


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
    app = create_app(scorer, scoring_registry.data, auth="off")
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


def test_barberpro_serve_answers_over_loopback(scoring_registry: Any, customer: int,
                                               tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": scoring_registry.tracking_uri,
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
           "BARBERPRO_SERVICE_DB": f"sqlite:///{tmp_path / 'service.db'}"}
    made = subprocess.run([sys.executable, "-m", "barberpro_ml.cli", "keys", "create", "--name",
                           "partner-x", "--scopes", "customers:read"], env=env,
                          capture_output=True, text=True, check=True)
    key = {"Authorization": f"Bearer {made.stdout.strip()}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "barberpro_ml.cli", "serve", "--data",
         str(scoring_registry.data_dir), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_ok(f"http://127.0.0.1:{port}/health", process)
        url = f"http://127.0.0.1:{port}/customers/{customer}/profile"
        assert httpx.get(url, timeout=30.0).status_code == 401
        response = httpx.get(url, headers=key, timeout=30.0)
        assert response.status_code == 200
        assert response.json()["customer_id"] == customer
        assert httpx.get(f"http://127.0.0.1:{port}/customers/987654321/profile", headers=key,
                         timeout=30.0).status_code == 404
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "API keys in sqlite:///" in output and made.stdout.strip() not in output


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
        wait_for_ok(f"http://127.0.0.1:{port}/ping", process)
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


# --------------------------------------------------------------------------- degraded service
def _without(scorer: CustomerScorer, *families: str) -> CustomerScorer:
    """The same models less ``families``, reported missing as a failed gate would leave them."""
    from barberpro_ml.scoring.records import FamilyStatus

    kept = {f: getattr(scorer, f) for f in ("churn", "ltv", "recs", "segments")
            if f not in families}
    status = {f: FamilyStatus(family=f, name=f"barberpro-{f}", state="unverified",
                              version="7", reason=f"no verified @champion of barberpro-{f}: "
                                                  "its gate result failed")
              for f in families}
    return CustomerScorer(**kept, bgnbd=scorer.bgnbd,
                          models={f: r for f, r in scorer.models.items() if f not in families},
                          status=status, definitions=scorer.definitions)


def test_degraded_service_answers_what_it_can_and_503_for_the_rest(
        scorer: CustomerScorer, scoring_registry: Any, customer: int) -> None:
    app = create_app(_without(scorer, "recs", "segments"), scoring_registry.data,
                     auth="off")
    with TestClient(app, raise_server_exceptions=False) as c:
        health = c.get("/health").json()
        assert health["status"] == "degraded"
        assert health["families"]["churn"]["state"] == "verified"
        assert health["families"]["churn"]["version"] == scorer.models["churn"].version
        assert health["families"]["recs"]["state"] == "unverified"
        assert "gate result failed" in health["families"]["recs"]["reason"]
        assert set(health["models"]) == {"churn", "ltv"}

        profile = c.get(f"/customers/{customer}/profile")
        assert profile.status_code == 200, profile.text
        body = profile.json()
        assert body["barbers"] is None and body["segment"] is None
        assert body["churn"] is not None and body["value"] is not None
        assert "barberpro-recs" in body["unavailable"]["barbers"]
        assert "barberpro-segments" in body["unavailable"]["segment"]
        full = scorer.profile(scoring_registry.data, customer)[0]
        assert body["churn"] == full.model_dump(mode="json")["churn"]

        recs = c.get(f"/customers/{customer}/recommendations")
        assert recs.status_code == 503
        assert recs.json()["error"] == "ModelUnavailableError"
        assert "recs" in recs.json()["detail"] and "gate result failed" in recs.json()["detail"]
        for by in ("rfm", "cluster"):
            response = c.get("/customer-segments", params={"by": by})
            assert response.status_code == 503 and "segments" in response.json()["detail"]
        assert c.get("/customer-segments", params={"by": "lifecycle"}).status_code == 200
        assert c.get(f"/customers/{customer}/journey").status_code == 200
        assert c.get("/customer-success/metrics").status_code == 200
        batch = c.post("/customers/batch-profile", json={"customer_ids": [customer]})
        assert batch.status_code == 200 and batch.json()["profiles"][0]["barbers"] is None


def test_metrics_without_churn_model_are_null_with_the_reason(
        scorer: CustomerScorer, scoring_registry: Any, customer: int) -> None:
    app = create_app(_without(scorer, "churn"), scoring_registry.data, auth="off")
    with TestClient(app, raise_server_exceptions=False) as c:
        metrics = c.get("/customer-success/metrics").json()
        assert metrics["mean_churn_probability_active"] is None
        assert metrics["revenue_at_risk_12m"] is None
        assert metrics["expected_value_12m_active"] is not None
        assert "barberpro-churn" in metrics["unavailable"]["churn"]
        assert "retention_offer" not in metrics["actions"]
        profile = c.get(f"/customers/{customer}/profile").json()
        assert profile["churn"] is None
        assert profile["action"]["expected_gain"] is None
        assert "barberpro-churn" in profile["unavailable"]["action"]
        table = c.get("/customer-segments", params={"by": "cluster"}).json()
        assert all(row["churn_probability_mean"] is None for row in table["segments"])


def test_active_customers_are_one_number_on_every_route(client: TestClient,
                                                        scorer: CustomerScorer,
                                                        scoring_registry: Any) -> None:
    data = scoring_registry.data
    health = client.get("/health").json()
    metrics = client.get("/customer-success/metrics").json()
    expected = len(scorer.snapshot(data).features.index.intersection(active_customers(
        data, data.observation_end, scorer.definitions.active_window_days)))
    assert health["active_customers"] == metrics["active_customers"] == expected
    for by in ("rfm", "cluster", "lifecycle"):
        table = client.get("/customer-segments", params={"by": by}).json()
        assert table["active_customers"] == expected
        assert sum(row["n_active"] for row in table["segments"]) == expected
    lifecycle = client.get("/customer-segments", params={"by": "lifecycle"}).json()
    churned = [row for row in lifecycle["segments"] if row["lifecycle"] == "churned"]
    assert not churned or churned[0]["n_active"] == 0


# --------------------------------------------------------------------------- rough edges
def test_docs_work_offline(client: TestClient) -> None:
    import re

    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", response.text)
        urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", response.text)
        assert urls, response.text
        assert not [u for u in urls if "://" in u or u.startswith("//")], urls
        for url in urls:
            assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("stamp", ["2024-06-30T02:00:00+02:00", "2024-06-30T00:00:00Z",
                                   "2024-06-29T20:00:00-04:00"])
def test_as_of_with_a_zone_is_read_as_naive_utc(client: TestClient, customer: int,
                                                stamp: str) -> None:
    naive = client.get(f"/customers/{customer}/profile", params={"as_of": "2024-06-30"}).json()
    zoned = client.get(f"/customers/{customer}/profile", params={"as_of": stamp})
    assert zoned.status_code == 200, zoned.text
    assert zoned.json() == naive
    batch = client.post("/customers/batch-profile",
                        json={"customer_ids": [customer], "as_of": stamp})
    assert batch.json()["profiles"][0] == naive


def test_metrics_report_estimates_without_bootstrap_replicates(client: TestClient) -> None:
    response = client.get("/customer-success/metrics")
    assert response.status_code == 200
    assert len(response.content) < 20_000, len(response.content)
    assert "replicates" not in response.text
    body = response.json()
    assert body["campaigns"], "the simulation runs campaigns; some must have closed"
    for campaign in body["campaigns"]:
        for key in ("absolute_reduction", "relative_reduction"):
            est = campaign[key]
            if est is not None:
                assert {"value", "ci_low", "ci_high"} <= set(est)
                assert est["ci_low"] <= est["value"] <= est["ci_high"]


def test_batch_keeps_duplicates_in_request_order(client: TestClient, scorer: CustomerScorer,
                                                 scoring_registry: Any) -> None:
    ids = [int(i) for i in scorer.snapshot(scoring_registry.data).features.index[:3]]
    request = [ids[0], ids[1], ids[0], ids[2], ids[0]]
    response = client.post("/customers/batch-profile", json={"customer_ids": request})
    assert response.status_code == 200, response.text
    profiles = response.json()["profiles"]
    assert [p["customer_id"] for p in profiles] == request
    assert profiles[0] == profiles[2] == profiles[4]
    partial = client.post("/customers/batch-profile", json={
        "customer_ids": [ids[0], 987654, ids[0], 987654], "skip_unknown": True}).json()
    assert [p["customer_id"] for p in partial["profiles"]] == [ids[0], ids[0]]
    assert partial["not_found"] == [987654]


def test_errors_map_to_their_http_status(scorer: CustomerScorer, scoring_registry: Any,
                                         customer: int) -> None:
    from barberpro_ml.registry.models import FeatureColumn

    spec = scorer.churn.spec  # type: ignore[union-attr]
    assert spec is not None
    extra = spec.features.model_copy(update={"columns": [
        *spec.features.columns, FeatureColumn(name="loyalty_points", kind="double")]})
    broken = type(scorer.churn)(scorer.churn.estimator,  # type: ignore[union-attr]
                                spec.model_copy(update={"features": extra}))
    other = CustomerScorer(churn=broken, ltv=scorer.ltv, recs=scorer.recs,
                           segments=scorer.segments, bgnbd=scorer.bgnbd, models=scorer.models)
    app = create_app(other, scoring_registry.data, warm=False, auth="off")
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.get(f"/customers/{customer}/profile")
        assert response.status_code == 503
        assert response.json()["error"] == "FeatureSchemaError"
        assert "loyalty_points" in response.json()["detail"]


# --------------------------------------------------------------------------- early as_of
@pytest.fixture(scope="module")
def early(scorer: CustomerScorer) -> Iterator[tuple[TestClient, Any]]:
    """The served models over a small simulated marketplace of its own."""
    from barberpro_ml.data import SimulationConfig, simulate

    data = simulate(SimulationConfig(n_customers=300, seed=3))
    with TestClient(create_app(scorer, data, auth="off"), raise_server_exceptions=False) as c:
        yield c, data


def _every_route(c: TestClient, customer: int, as_of: str) -> dict[str, httpx.Response]:
    return {
        "profile": c.get(f"/customers/{customer}/profile", params={"as_of": as_of}),
        "recommendations": c.get(f"/customers/{customer}/recommendations",
                                 params={"as_of": as_of}),
        "journey": c.get(f"/customers/{customer}/journey", params={"as_of": as_of}),
        "batch": c.post("/customers/batch-profile",
                        json={"customer_ids": [customer, customer], "as_of": as_of}),
        **{f"segments-{by}": c.get("/customer-segments", params={"as_of": as_of, "by": by})
           for by in ("rfm", "cluster", "lifecycle")},
        "metrics": c.get("/customer-success/metrics", params={"as_of": as_of}),
    }


def test_every_route_answers_before_the_first_barber_and_the_first_visit(
        early: tuple[TestClient, Any]) -> None:
    c, data = early
    first = data.customers.sort_values("signup_at").iloc[0]
    customer = int(first["customer_id"])
    joined = data.providers["joined_at"].min()
    visits = data.bookings.loc[data.bookings["status"] == "completed", "scheduled_at"]
    first_visit = visits.min()
    assert first["signup_at"] < joined < first_visit  # the simulation's shape, relied on here
    before_barbers = first["signup_at"] + (joined - first["signup_at"]) / 2
    before_visits = joined + (first_visit - joined) / 2
    for stamp in (before_barbers, before_visits):
        as_of = f"{stamp:%Y-%m-%dT%H:%M:%S}"
        answers = _every_route(c, customer, as_of)
        for route, response in answers.items():
            assert response.status_code == 200, (as_of, route, response.text)
        profile = answers["profile"].json()
        assert profile["lifecycle"]["n_visits"] == 0
        assert profile["next_service"] is None
        if stamp < joined:  # no barber working yet: nothing to suggest, and no crash
            assert profile["barbers"] == []
            assert answers["recommendations"].json()["barbers"] == []
        assert profile["action"]["kind"] == "first_booking_nudge"
        assert [p["customer_id"] for p in answers["batch"].json()["profiles"]] == \
            [customer, customer]
        metrics = answers["metrics"].json()
        assert metrics["active_customers"] == 0
        assert metrics["mean_churn_probability_active"] is None
        assert metrics["first_visit"] is None
        assert any("no activity yet" in note and str(first_visit.date()) in note
                   for note in metrics["notes"])
        health = c.get("/health").json()
        assert naive(health["data_start"]) <= stamp <= naive(health["data_end"])
    before = f"{first['signup_at'] - pd.Timedelta(days=1):%Y-%m-%d}"
    refused = c.get("/customer-success/metrics", params={"as_of": before})
    assert refused.status_code == 422
    assert before in refused.json()["detail"] and "first signup" in refused.json()["detail"]


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0.0, 1.0))
def test_no_as_of_in_the_advertised_range_gets_an_internal_error(
        early: tuple[TestClient, Any], fraction: float) -> None:
    c, data = early
    health = c.get("/health").json()
    start, end = naive(health["data_start"]), naive(health["data_end"])
    stamp = (start + (end - start) * fraction).floor("s")
    customer = int(data.customers.sort_values("signup_at")["customer_id"].iloc[0])
    for route, response in _every_route(c, customer, f"{stamp:%Y-%m-%dT%H:%M:%S}").items():
        assert response.status_code == 200, (stamp, route, response.text)


def test_the_seed_churn_reduction_claim_is_read_from_the_claims_file(
        scorer: CustomerScorer, scoring_registry: Any, tmp_path: Path) -> None:
    import yaml

    from barberpro_ml.config import shipped_config
    from barberpro_ml.gates import load_claims
    from barberpro_ml.scoring.insights import SEED_CLAIM_ID, success_metrics

    shipped = success_metrics(scorer, scoring_registry.data, n_bootstrap=200)
    assert shipped.churn_reduction_claim.claim_id == SEED_CLAIM_ID
    assert shipped.churn_reduction_claim.claimed == 0.463  # configs/claims.yaml
    assert {c.claim_id for c in shipped.intervention_claims} == {
        c.id for c in load_claims(shipped_config("claims.yaml"), family="interventions")}
    raw = yaml.safe_load(shipped_config("claims.yaml").read_text())
    for claim in raw["claims"]:
        if claim["id"] == SEED_CLAIM_ID:
            claim["claimed"] = -0.5  # a claim any measured effect supports
    edited = tmp_path / "claims.yaml"
    edited.write_text(yaml.safe_dump(raw))
    changed = success_metrics(scorer, scoring_registry.data, n_bootstrap=200,
                              claims=load_claims(edited))
    assert changed.churn_reduction_claim.claimed == -0.5
    if changed.churn_reduction_claim.measured is not None:
        assert changed.churn_reduction_claim.verdict == "supported"
