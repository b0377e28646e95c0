"""The analytics routes (``/api/analytics``) through a real HTTP client (FastAPI's TestClient).

Each route's numbers are checked against the analytics library called directly on the same
data and ``as_of``; bad query parameters are 422s naming the bad value and the allowed ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from barberpro_ml.analytics import FUNNEL_STAGES, MEASURES, cohorts, funnel, kpis
from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import create_app
from barberpro_ml.service.routers.analytics import DEFAULT_MEASURES
from service_json import naive

BASE = "/api/analytics"


@pytest.fixture(scope="module")
def scorer(scoring_registry: Any) -> CustomerScorer:
    return CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)


@pytest.fixture(scope="module")
def client(scorer: CustomerScorer, scoring_registry: Any) -> Iterator[TestClient]:
    with TestClient(create_app(scorer, scoring_registry.data, auth="off"),
                    raise_server_exceptions=False) as c:
        yield c


def _json(value: Any) -> Any:
    """What a library value becomes in the answer: NaN is null, numbers stay numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value
    return value.item() if hasattr(value, "item") else value


def _assert_rows_equal(rows: list[dict[str, Any]], table: pd.DataFrame, keys: list[str],
                       measures: list[str]) -> None:
    assert len(rows) == len(table)
    for row, (_, expected) in zip(rows, table.iterrows(), strict=True):
        for key in keys:
            got = row["group"][key]
            want = expected[key]
            if isinstance(want, pd.Timestamp):
                assert naive(got) == want
            else:
                assert got == _json(want)
        for name in measures:
            assert row["values"][name] == _json(expected[name]), (name, row)


def test_business_kpis_default_headline_equals_kpis(client: TestClient, scorer: CustomerScorer,
                                                    scoring_registry: Any) -> None:
    data = scoring_registry.data
    response = client.get(f"{BASE}/business-kpis")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["measures"] == list(DEFAULT_MEASURES)
    assert naive(body["as_of"]) == data.observation_end
    assert body["by"] == [] and body["freq"] is None and body["end"] is None
    expected = kpis(data, list(DEFAULT_MEASURES), as_of=data.observation_end,
                    definitions=scorer.definitions)
    _assert_rows_equal(body["rows"], expected, [], list(DEFAULT_MEASURES))
    for name in DEFAULT_MEASURES:
        spec = body["definitions"][name]
        assert (spec["formula"], spec["unit"], spec["description"]) == (
            MEASURES[name].formula, MEASURES[name].unit, MEASURES[name].description)
    assert body["business_definitions"] == scorer.definitions.model_dump(mode="json")
    row = body["rows"][0]
    assert set(row["intervals"]) == {"average_rating", "cancellation_rate", "no_show_rate"}
    assert body["definitions"]["average_rating"]["interval"].startswith("Student-t")
    assert body["definitions"]["cancellation_rate"]["interval"].startswith("Wilson")
    assert body["definitions"]["average_ticket"]["interval"] is None
    for name, interval in row["intervals"].items():
        assert interval["low"] <= row["values"][name] <= interval["high"], name
    assert row["intervals"]["average_rating"]["low"] == pytest.approx(
        expected["average_rating_ci_low"].iloc[0])
    # the components reconcile the rates
    parts = row["components"]
    assert row["values"]["cancellation_rate"] == pytest.approx(
        parts["cancelled_bookings"] / parts["resolved_bookings"])
    # "active customers" is the number /health reports
    assert row["values"]["active_customers"] == client.get("/health").json()["active_customers"]


def test_business_kpis_by_dimensions_and_month_equal_kpis(
        client: TestClient, scorer: CustomerScorer, scoring_registry: Any) -> None:
    data = scoring_registry.data
    params = {"measures": "net_revenue,average_rating,retention", "by": "neighborhood,price_tier",
              "freq": "month", "start": "2024-01-01", "end": "2024-07-01",
              "as_of": "2024-09-30"}
    response = client.get(f"{BASE}/business-kpis", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    measures = ["net_revenue", "average_rating", "retention"]
    expected = kpis(data, measures, by=("neighborhood", "price_tier"), start="2024-01-01",
                    end="2024-07-01", freq="month", as_of="2024-09-30",
                    definitions=scorer.definitions)
    _assert_rows_equal(body["rows"], expected, ["month", "neighborhood", "price_tier"], measures)
    assert naive(body["start"]) == pd.Timestamp("2024-01-01")
    assert naive(body["end"]) == pd.Timestamp("2024-07-01")
    assert set(body["dimensions"]) == {"month", "neighborhood", "price_tier"}
    assert {"retained_customers", "retention_base", "reviews"} <= set(body["definitions"])
    # repeated parameters mean the same as comma-separated ones
    repeated = client.get(f"{BASE}/business-kpis", params=[
        ("measures", "net_revenue"), ("measures", "average_rating,retention"),
        ("by", "neighborhood"), ("by", "price_tier"), ("freq", "M"),
        ("start", "2024-01-01"), ("end", "2024-07-01"), ("as_of", "2024-09-30")])
    assert repeated.json()["rows"] == body["rows"]


def test_an_empty_group_ratio_is_null_not_nan(client: TestClient, scorer: CustomerScorer,
                                              scoring_registry: Any) -> None:
    data = scoring_registry.data
    params = {"measures": "bookings,average_ticket,cancellation_rate", "by": "provider_id",
              "freq": "day", "start": "2024-12-01"}
    expected = kpis(data, ["bookings", "average_ticket", "cancellation_rate"],
                    by="provider_id", freq="day", start="2024-12-01",
                    definitions=scorer.definitions)
    assert expected["average_ticket"].isna().any()  # what this test is about
    response = client.get(f"{BASE}/business-kpis", params=params)
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    _assert_rows_equal(rows, expected, ["day", "provider_id"],
                       ["bookings", "average_ticket", "cancellation_rate"])
    empty = [r for r in rows if r["values"]["cancellation_rate"] is None]
    assert empty and all(r["intervals"]["cancellation_rate"] == {"low": None, "high": None}
                         for r in empty)


def test_growth_analytics_equals_funnel_and_cohorts(client: TestClient, scorer: CustomerScorer,
                                                    scoring_registry: Any) -> None:
    data = scoring_registry.data
    response = client.get(f"{BASE}/growth-analytics", params={"as_of": "2024-10-15"})
    assert response.status_code == 200, response.text
    body = response.json()
    as_of = pd.Timestamp("2024-10-15")
    assert naive(body["as_of"]) == as_of
    total = funnel(data, as_of, by=None, definitions=scorer.definitions)
    assert [s["stage"] for s in body["funnel"]] == list(FUNNEL_STAGES)
    assert [s["customers"] for s in body["funnel"]] == total["customers"].tolist()
    assert [s["base"] for s in body["funnel"]] == total["base"].tolist()
    by_channel = funnel(data, as_of, by="acquisition_channel", definitions=scorer.definitions)
    for group in body["funnel_by_channel"]:
        expected = by_channel[by_channel["acquisition_channel"] == group["acquisition_channel"]]
        assert [s["customers"] for s in group["stages"]] == expected["customers"].tolist()
        assert [s["not_yet_judged"] for s in group["stages"]] == \
            expected["not_yet_judged"].tolist()
        for stage, (_, row) in zip(group["stages"], expected.iterrows(), strict=True):
            assert stage["conversion"] == _json(row["conversion"])
            assert stage["conversion_ci"]["low"] == _json(row["conversion_ci_low"])
    assert {g["acquisition_channel"] for g in body["funnel_by_channel"]} == set(
        by_channel["acquisition_channel"].astype(str))
    assert sum(g["stages"][0]["customers"] for g in body["funnel_by_channel"]) == \
        body["funnel"][0]["customers"]

    retention = cohorts(data, as_of, metric="retention")
    revenue = cohorts(data, as_of, metric="revenue_per_customer")
    cells = body["cohorts"]
    assert len(cells) == len(retention) == len(revenue)
    assert [c["retention"] for c in cells] == retention["retention"].tolist()
    assert [c["revenue_per_customer"] for c in cells] == \
        revenue["revenue_per_customer"].tolist()
    assert [c["months_since_signup"] for c in cells] == \
        retention["periods_since_signup"].tolist()
    assert set(body["definitions"]["stages"]) == set(FUNNEL_STAGES)
    assert body["definitions"]["retention_horizon_days"] == \
        scorer.definitions.churn_horizon_days


def test_competitive_intelligence_shares_reconcile(client: TestClient, scorer: CustomerScorer,
                                                   scoring_registry: Any) -> None:
    data = scoring_registry.data
    response = client.get(f"{BASE}/competitive-intelligence")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "own" in body["scope"] and "no external competitors" in body["scope"]
    market = body["marketplace"]
    for part, dim in (("neighborhoods", "neighborhood"), ("price_tiers", "price_tier")):
        rows = body[part]
        assert {r["segment"] for r in rows} == {str(v) for v in data.providers[dim].unique()}
        assert sum(r["share_of_bookings"] for r in rows) == pytest.approx(1.0, abs=1e-9)
        assert sum(r["share_of_net_revenue"] for r in rows) == pytest.approx(1.0, abs=1e-9)
        assert sum(r["bookings"] for r in rows) == market["bookings"]
        for r in rows:
            assert r["price_position"] == pytest.approx(
                r["average_ticket"] / market["average_ticket"])
        # the same numbers as /business-kpis by that dimension
        kpi_rows = client.get(f"{BASE}/business-kpis", params={
            "measures": "bookings,net_revenue", "by": dim}).json()["rows"]
        assert {r["group"][dim]: r["values"]["bookings"] for r in kpi_rows} == \
            {r["segment"]: r["bookings"] for r in rows if r["bookings"]}
    periods = body["growth_periods"]
    assert periods["freq"] == "month"
    end = data.observation_end
    assert naive(periods["last_period_end"]) == end.to_period("M").start_time
    growth = kpis(data, "bookings", by="price_tier", freq="month",
                  start=naive(periods["previous_period_start"]),
                  end=naive(periods["last_period_end"]),
                  definitions=scorer.definitions)
    for r in body["price_tiers"]:
        mine = growth[growth["price_tier"] == r["segment"]].set_index("month")["bookings"]
        last = int(mine.get(naive(periods["last_period_start"]), 0))
        previous = int(mine.get(naive(periods["previous_period_start"]), 0))
        assert (r["last_period_bookings"], r["previous_period_bookings"]) == (last, previous)
        assert r["bookings_growth"] == pytest.approx(last / previous - 1)
    weekly = client.get(f"{BASE}/competitive-intelligence", params={"freq": "week"}).json()
    start = naive(weekly["growth_periods"]["last_period_start"])
    assert start.dayofweek == 0  # ISO weeks start on Monday
    shares = ("segment", "share_of_bookings", "share_of_net_revenue", "price_position")
    assert [[r[k] for k in shares] for r in weekly["neighborhoods"]] == \
        [[r[k] for k in shares] for r in body["neighborhoods"]]  # freq moves growth only


@pytest.mark.parametrize(("route", "params", "loc", "fragments"), [
    ("business-kpis", {"measures": "bookings,revenue_magic"}, "measures",
     ["'revenue_magic'", "net_revenue", "average_rating"]),
    ("business-kpis", {"by": "zodiac"}, "by", ["'zodiac'", "neighborhood", "price_tier"]),
    ("business-kpis", {"by": "month"}, "by", ["'month'", "freq=month"]),
    ("business-kpis", {"measures": "signups", "by": "neighborhood"}, "by",
     ["'signups'", "'neighborhood'", "acquisition_channel"]),
    ("business-kpis", {"freq": "fortnight"}, "freq", ["'fortnight'", "day", "week", "month"]),
    ("business-kpis", {"start": "2024-06-01", "end": "2024-01-01"}, "start",
     ["2024-06-01", "2024-01-01", "after end"]),
    ("business-kpis", {"as_of": "2031-01-01"}, "as_of", ["2031-01-01", "last event"]),
    ("growth-analytics", {"as_of": "2019-01-01"}, "as_of", ["2019-01-01", "first signup"]),
    ("competitive-intelligence", {"freq": "quarter"}, "freq", ["'quarter'", "month"]),
    ("competitive-intelligence", {"start": "2024-06-01", "end": "2024-01-01"}, "start",
     ["after end"]),
    ("business-kpis", {"as_of": "yesterday-ish"}, "as_of", []),
])
def test_bad_query_parameters_are_422_naming_the_value(client: TestClient, route: str,
                                                       params: dict[str, str], loc: str,
                                                       fragments: list[str]) -> None:
    response = client.get(f"{BASE}/{route}", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert isinstance(errors, list) and errors[0]["loc"] == ["query", loc]
    for fragment in fragments:
        assert fragment in errors[0]["msg"], (fragment, errors[0]["msg"])


def test_openapi_lists_the_analytics_routes_with_their_models(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    models = {"business-kpis": "BusinessKpis", "growth-analytics": "GrowthAnalytics",
              "competitive-intelligence": "CompetitiveIntelligence",
              "financial-intelligence": "FinancialIntelligence",
              "revenue-optimization": "RevenueOptimization"}
    for route, model in models.items():
        operation = spec["paths"][f"{BASE}/{route}"]["get"]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"] == f"#/components/schemas/{model}"
        assert model in spec["components"]["schemas"]
        if route not in ("financial-intelligence", "revenue-optimization"):
            assert "as_of" in {p["name"] for p in operation["parameters"]}
    params = {p["name"] for p in spec["paths"][f"{BASE}/business-kpis"]["get"]["parameters"]}
    assert {"measures", "by", "start", "end", "freq", "as_of"} <= params
    # every route of the service, old and new, documents its answer with a response model
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
            assert "$ref" in schema, (method, path, schema)


# --------------------------------------------------------------------------- forecast, pricing
def test_financial_intelligence_without_a_forecast_champion_is_503_naming_it(
        client: TestClient) -> None:
    r = client.get(f"{BASE}/financial-intelligence")
    assert r.status_code == 503
    assert "no barberpro-forecast@champion" in r.json()["detail"]
    schema = client.get("/openapi.json").json()["paths"][f"{BASE}/financial-intelligence"]
    assert "503" in schema["get"]["responses"]


def test_revenue_optimisation_shows_the_seed_claim_untested_without_evidence(
        client: TestClient) -> None:
    r = client.get(f"{BASE}/revenue-optimization")
    assert r.status_code == 200, r.text
    body = r.json()
    claims = {c["claim_id"]: c for c in body["claims"]}
    seed = claims["pricing-revenue-increase-seed"]
    assert seed["claimed"] == 0.15 and "15-25%" in seed["source"] and not seed["blocking"]
    for claim in claims.values():       # never supported without evidence
        assert claim["status"] == "untested" and claim["observed"] is None
        assert "no barberpro-pricing@champion" in claim["reason"]
    assert body["evidence_version"] is None and body["as_of"]
