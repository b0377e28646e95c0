"""The pricing routes through a real HTTP client, with a pricing champion the job trained.

``/api/analytics/revenue-optimization`` shows the claims bound to the verified champion, and
``/providers/{id}/marketplace-optimization`` the revenue change of price changes for one barber
from the champion's elasticities; both agree with the registered pyfunc called directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.registry.pricing_model import champion_pricing
from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import create_app
from conftest import fresh_tracking_store, isolated_tracking

ROUTE = "marketplace-optimization"


@dataclass(frozen=True)
class PricingStore:
    tracking_uri: str
    data: MarketplaceData
    result: Any


@pytest.fixture(scope="module")
def pricing_store(mlflow_template_db: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[PricingStore]:
    """`train pricing` on a small simulated world, in a private store."""
    from barberpro_ml.jobs import pricing

    root = tmp_path_factory.mktemp("pricing-registry")
    uri = fresh_tracking_store(mlflow_template_db, root)
    data = simulate(SimulationConfig(n_customers=8000, seed=5))
    cfg = pricing.load_config(model={**pricing.PricingJobConfig().model, "n_rep": 1,
                                     "scopes": ["pooled", "tier", "service_tier"],
                                     "min_events": 10})
    with isolated_tracking(uri, root):
        result = pricing.run(cfg, data=data, tracking_uri=uri)
    yield PricingStore(tracking_uri=uri, data=data, result=result)


@pytest.fixture(scope="module")
def scorer(scoring_registry: Any) -> CustomerScorer:
    return CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)


@pytest.fixture(scope="module")
def client(scorer: CustomerScorer, pricing_store: PricingStore) -> Iterator[TestClient]:
    app = create_app(scorer, pricing_store.data, warm=False, auth="off",
                     tracking_uri=pricing_store.tracking_uri)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def barber(pricing_store: PricingStore) -> tuple[int, str]:
    """A barber on the platform at the data's end, and their tier."""
    prov = pricing_store.data.providers
    on = prov[prov["left_at"].isna()].sort_values("provider_id")
    row = on.iloc[0]
    return int(row["provider_id"]), str(row["price_tier"])


def test_the_job_promotes_keep_prices_through_the_no_loss_floor(
        pricing_store: PricingStore) -> None:
    result = pricing_store.result
    verdicts = {v.claim_id: v for v in result.gate.claims}
    floor = verdicts["pricing-no-revenue-loss"]
    seed = verdicts["pricing-revenue-increase-seed"]
    assert not seed.passed  # rises of at most 12% cannot add 15% of revenue
    if floor.observed == 0.0 and floor.ci_low == 0.0 and floor.ci_high == 0.0:
        # "keep prices": exactly 0 in every replicate, which meets ">= 0" with equality
        assert floor.passed and "point mass on the threshold" in floor.reason
    else:
        assert floor.passed == (floor.ci_low is not None and floor.ci_low >= 0.0)
    assert result.promoted == result.gate_passed
    assert result.promoted, [(v.claim_id, v.verdict, v.reason) for v in result.gate.claims]


def test_revenue_optimisation_reads_the_champion_s_verdicts(
        client: TestClient, pricing_store: PricingStore) -> None:
    body = client.get("/api/analytics/revenue-optimization").json()
    assert body["evidence_version"] == pricing_store.result.version
    claims = {c["claim_id"]: c for c in body["claims"]}
    bound = {v.claim_id: v for v in pricing_store.result.gate.claims}
    for claim_id in ("pricing-no-revenue-loss", "pricing-revenue-increase-seed"):
        assert claims[claim_id]["status"] == ("supported" if bound[claim_id].passed
                                              else "not supported")
        assert claims[claim_id]["ci_low"] == bound[claim_id].ci_low
        assert claims[claim_id]["reason"] == bound[claim_id].reason
    assert claims["pricing-revenue-increase-seed"]["status"] == "not supported"
    assert claims["pricing-no-revenue-loss"]["status"] == "supported"
    assert body["notes"] == []


def test_marketplace_optimisation_matches_the_champion_model(
        client: TestClient, pricing_store: PricingStore, barber: tuple[int, str]) -> None:
    provider_id, tier = barber
    r = client.get(f"/providers/{provider_id}/{ROUTE}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["provider_id"] == provider_id and body["price_tier"] == tier
    assert body["evidence_version"] == pricing_store.result.version
    assert {c["claim_id"] for c in body["claims"]} >= {"pricing-no-revenue-loss",
                                                       "pricing-revenue-increase-seed"}
    model, version = champion_pricing(tracking_uri=pricing_store.tracking_uri)
    assert version == pricing_store.result.version and model.spec is not None
    first = body["proposals"][0]
    assert first["source"] == "recommended"
    # the recommendation is the job's own for the barber's tier
    job = {r["price_tier"]: r["price_change"] for r in model.spec.recommended}
    assert first["price_change"] == pytest.approx(job.get(tier, 0.0))
    for p in body["proposals"]:
        ev = p["evidence"]
        assert ev["scope"] in ("tier", "pooled")
        assert ev["elasticity_low"] <= ev["elasticity"] <= ev["elasticity_high"]
        assert 0.0 <= p["price_change"] <= ev["max_price_change"] + 1e-9
        # the numbers are the registered model's, called directly on the same cell
        direct = model.predict(None, pd.DataFrame({
            "price_change": [p["price_change"]], "price_tier": [ev["price_tier"]]})).iloc[0]
        assert direct["elasticity"] == pytest.approx(ev["elasticity"])
        for key in ("revenue_change", "revenue_change_low", "revenue_change_high"):
            assert p[key] == pytest.approx(float(direct[key]), abs=1e-9)
        assert p["revenue_change_low"] <= p["revenue_change"] <= p["revenue_change_high"]
        assert p["supported"] == (p["revenue_change_low"] > 0)
        assert p["revenue_per_month_change"] == pytest.approx(
            p["revenue_change"] * body["revenue_per_month"], abs=0.02)
        assert {s["service"] for s in p["services"]} == set(
            pricing_store.data.services["name"].astype(str))
        assert sum(s["revenue_per_month"] for s in p["services"]) == pytest.approx(
            body["revenue_per_month"], abs=0.1)
        if p["price_change"] == 0.0:
            assert p["revenue_change"] == p["revenue_change_low"] == 0.0
    keep = body["proposals"][0]["price_change"] == 0.0
    assert ("keep prices" in body["recommendation"]) == keep


def test_marketplace_optimisation_evaluates_requested_changes_and_refuses_bad_ones(
        client: TestClient, barber: tuple[int, str]) -> None:
    provider_id, _ = barber
    body = client.get(f"/providers/{provider_id}/{ROUTE}",
                      params={"price_change": [0.0, 0.03]}).json()
    assert [p["price_change"] for p in body["proposals"]] == [0.0, 0.03]
    assert {p["source"] for p in body["proposals"]} == {"requested"}
    assert client.get(f"/providers/999999/{ROUTE}").status_code == 404
    assert "999999" in client.get(f"/providers/999999/{ROUTE}").json()["detail"]
    for bad in ({"price_change": "abc"}, {"price_change": -0.05}, {"price_change": 1.5},
                {"price_change": 0.6}, {"as_of": "yesterday"}):
        r = client.get(f"/providers/{provider_id}/{ROUTE}", params=bad)
        assert r.status_code == 422, (bad, r.text)
    assert client.get(f"/providers/abc/{ROUTE}").status_code == 422
    many = client.get(f"/providers/{provider_id}/{ROUTE}",
                      params={"price_change": [0.01] * 21})
    assert many.status_code == 422


def test_marketplace_optimisation_without_a_verified_champion_is_503(
        scorer: CustomerScorer, pricing_store: PricingStore, mlflow_template_db: Path,
        tmp_path: Path, barber: tuple[int, str]) -> None:
    empty = fresh_tracking_store(mlflow_template_db, tmp_path)
    app = create_app(scorer, pricing_store.data, warm=False, auth="off", tracking_uri=empty)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get(f"/providers/{barber[0]}/{ROUTE}")
        assert r.status_code == 503
        assert "no barberpro-pricing@champion" in r.json()["detail"]
        assert c.get(f"/providers/999999/{ROUTE}").status_code == 404
    spec = app.openapi()["paths"][f"/providers/{{provider_id}}/{ROUTE}"]["get"]
    assert spec["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "MarketplaceOptimization")


def test_recommendations_rank_the_supported_price_rise_or_say_why_there_is_none(
        client: TestClient, pricing_store: PricingStore, scorer: CustomerScorer,
        mlflow_template_db: Path, tmp_path: Path, barber: tuple[int, str]) -> None:
    """/recommendations includes a ``raise_prices`` action exactly when the champion's
    recommended rise for the barber's tier has a revenue change whose lower bound is above 0
    (what /marketplace-optimization says), and names the champion or why there is none."""
    provider_id, tier = barber
    body = client.get(f"/v1/providers/{provider_id}/recommendations").json()
    optimisation = client.get(f"/v1/providers/{provider_id}/{ROUTE}").json()
    recommended = next(p for p in optimisation["proposals"] if p["source"] == "recommended")
    pricing_actions = [a for a in body["actions"] if a["action"] == "raise_prices"]
    supported = recommended["price_change"] > 0 and recommended["supported"]
    assert len(pricing_actions) == int(supported)
    if supported:
        (action,) = pricing_actions
        assert action["gain_per_month"] == recommended["revenue_per_month_change"]
        assert action["gain_low"] == recommended["revenue_per_month_change_low"] > 0
    else:
        assert body["pricing"].startswith("No pricing action")
        assert f"the {tier} tier" in body["pricing"]
    assert len(body["actions"]) <= 3
    # without a champion the other actions are answered, and the reason is given
    empty = fresh_tracking_store(mlflow_template_db, tmp_path)
    app = create_app(scorer, pricing_store.data, warm=False, auth="off", tracking_uri=empty)
    with TestClient(app, raise_server_exceptions=False) as c:
        alone = c.get(f"/v1/providers/{provider_id}/recommendations")
    assert alone.status_code == 200
    assert "no barberpro-pricing@champion" in alone.json()["pricing"]
    others = [a for a in body["actions"] if a["action"] != "raise_prices"]
    assert alone.json()["actions"][:len(others)] == others  # a price rise may take a slot
