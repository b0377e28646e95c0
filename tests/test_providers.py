"""Provider excellence: the score and its components, the actions, the departure job and the
/providers routes (through a real HTTP client)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from barberpro_ml.config import shipped_config
from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.errors import ConfigError, NotEnoughDataError
from barberpro_ml.providers import (
    COMPONENTS,
    ProviderScoreConfig,
    load_score_config,
    measure_components,
    provider_actions,
    provider_scores,
    score_components,
)
from barberpro_ml.providers.components import cluster_design_effect, empirical_bayes_normal
from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import create_app
from strategies import as_of_for, future_perturbation, marketplace_data

AS_OF = pd.Timestamp("2024-12-31")


@pytest.fixture(scope="module")
def world() -> MarketplaceData:
    return simulate(SimulationConfig(n_customers=6000, seed=7))


@pytest.fixture(scope="module")
def scores(world: MarketplaceData) -> pd.DataFrame:
    return provider_scores(world, AS_OF)


# --------------------------------------------------------------------------- config
def test_shipped_config_equals_the_defaults() -> None:
    assert load_score_config() == ProviderScoreConfig()
    assert shipped_config("providers.yaml").is_file()


def test_weights_must_sum_to_one(tmp_path: Path) -> None:
    bad = tmp_path / "providers.yaml"
    bad.write_text(yaml.safe_dump({"weights": {"rating": 0.9}}))
    with pytest.raises(ConfigError, match="sum to 1"):
        load_score_config(bad)


# --------------------------------------------------------------------------- the score
def test_score_columns_ranges_and_interval(scores: pd.DataFrame, world: MarketplaceData) -> None:
    for column in ("score", "score_low", "score_high", *COMPONENTS):
        assert column in scores.columns
    known = scores[["score", "score_low", "score_high"]]
    assert ((known >= 0) & (known <= 100)).all().all()
    assert (scores["score_low"] <= scores["score"]).all()
    assert (scores["score"] <= scores["score_high"]).all()
    # every barber on the platform at as_of, nobody else
    p = world.providers
    on = p.loc[(p["joined_at"] <= AS_OF) & ~(p["left_at"] <= AS_OF), "provider_id"]
    assert sorted(scores.index) == sorted(on)
    # without churn probabilities the component is left out and its weight spread
    assert scores.attrs["dropped_components"] == ["customer_churn"]
    assert scores["customer_churn"].isna().all()
    assert sum(scores.attrs["weights"].values()) == pytest.approx(1.0)


def test_few_reviews_give_a_wider_interval_than_many(scores: pd.DataFrame) -> None:
    width = scores["rating_high"] - scores["rating_low"]
    few = scores["n_reviews"] <= scores["n_reviews"].quantile(0.1)
    many = scores["n_reviews"] >= scores["n_reviews"].quantile(0.9)
    assert width[few].mean() > width[many].mean()


def test_rating_is_shrunk_towards_the_neighborhood_mean(scores: pd.DataFrame) -> None:
    rated = scores.dropna(subset=["rating_raw"])
    raw_gap = (rated["rating_raw"] - rated["rating_prior"]).abs()
    shrunk_gap = (rated["rating_value"] - rated["rating_prior"]).abs()
    assert (shrunk_gap <= raw_gap + 1e-12).all()
    # the fewer the reviews, the larger the share of the gap removed
    removed = 1 - shrunk_gap / raw_gap.where(raw_gap > 0)
    assert spearmanr(rated["n_reviews"], removed, nan_policy="omit")[0] < -0.5


def test_empirical_bayes_normal_pulls_a_small_unit_to_its_group() -> None:
    # two groups; unit 0 has 3 ratings of 5 in a group averaging ~4
    rng = np.random.default_rng(0)
    counts = np.array([3.0, 400, 400, 400, 400])
    means = np.array([5.0, 4.0, 4.2, 3.8, 4.1])
    sums = counts * means
    sq = counts * (means**2 + 0.5**2)
    groups = np.array([0, 0, 0, 1, 1])
    mean, sd, prior, tau, sigma = empirical_bayes_normal(sums, sq, counts, groups)
    assert prior[0] < mean[0] < 5.0 and sd[0] > sd[1]
    assert abs(mean[1] - 4.0) < 0.01 and sigma == pytest.approx(0.5, rel=0.05)
    del rng, tau


def test_a_barber_with_five_reviews_cannot_top_the_neighborhood_on_noise(
        world: MarketplaceData) -> None:
    """Give a new barber five perfect reviews: the shrunk rating stays below the raw 5.0,
    and the barber does not outrank the best-rated barber with many reviews."""
    scores = provider_scores(world, AS_OF)
    hood = scores["neighborhood"].value_counts().index[0]
    peers = scores.loc[scores["neighborhood"] == hood]
    best = peers.loc[peers["n_reviews"] >= 100, "rating_value"].idxmax()
    new_id = int(world.providers["provider_id"].max()) + 1
    template = world.providers.loc[world.providers["provider_id"] == best].iloc[0]
    providers = pd.concat([world.providers, pd.DataFrame([{
        **template.to_dict(), "provider_id": new_id,
        "joined_at": AS_OF - pd.Timedelta(days=60), "left_at": pd.NaT}])], ignore_index=True)
    cust = world.customers["customer_id"].to_numpy()[:5]
    bookings = world.bookings
    base = bookings.iloc[:5].copy()
    base["booking_id"] = bookings["booking_id"].max() + 1 + np.arange(5)
    base["customer_id"] = cust
    base["provider_id"] = new_id
    base["created_at"] = AS_OF - pd.Timedelta(days=40) + pd.to_timedelta(np.arange(5), "D")
    base["scheduled_at"] = base["created_at"] + pd.Timedelta(hours=2)
    base["status"] = pd.Categorical(["completed"] * 5,
                                    categories=bookings["status"].cat.categories)
    reviews = pd.DataFrame({
        "review_id": world.reviews["review_id"].max() + 1 + np.arange(5),
        "booking_id": base["booking_id"].to_numpy(), "customer_id": cust,
        "provider_id": new_id, "rating": 5,
        "created_at": base["scheduled_at"].to_numpy() + np.timedelta64(18, "h")})
    tables = world.tables()
    tables["providers"] = providers
    tables["bookings"] = pd.concat([bookings, base], ignore_index=True)
    tables["reviews"] = pd.concat([world.reviews, reviews.astype(
        world.reviews.dtypes.to_dict())], ignore_index=True)
    changed = MarketplaceData(**tables)
    after = provider_scores(changed, AS_OF)
    assert after.loc[new_id, "rating_raw"] == 5.0
    assert after.loc[new_id, "rating_value"] < after.loc[best, "rating_value"]
    assert after.loc[new_id, "rating"] < after.loc[best, "rating"]
    assert (after.loc[new_id, "score_high"] - after.loc[new_id, "score_low"]
            > after.loc[best, "score_high"] - after.loc[best, "score_low"])


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_events_after_as_of_never_change_the_score(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    changed = draw.draw(future_perturbation(data, as_of))
    try:
        before = provider_scores(data, as_of)
    except NotEnoughDataError:
        assume(False)
        return
    after = provider_scores(changed, as_of)
    pd.testing.assert_frame_equal(before.astype({"neighborhood": object, "price_tier": object}),
                                  after.astype({"neighborhood": object, "price_tier": object}),
                                  rtol=1e-9, atol=1e-9)


def test_two_visits_at_the_same_time_do_not_make_the_score_depend_on_row_order(
        world: MarketplaceData) -> None:
    """A customer with two completed visits at the same moment (two barbers): whose customer
    base they count in must not depend on the order of the booking rows, which events added
    after ``as_of`` change (found by the hypothesis test above)."""
    bookings = world.bookings
    done = bookings[(bookings["status"] == "completed")
                    & (bookings["scheduled_at"] <= pd.Timestamp(AS_OF))
                    & (bookings["scheduled_at"] > pd.Timestamp(AS_OF) - pd.Timedelta(days=60))]
    # a customer's latest visit known at AS_OF, twinned with another barber at the same time
    known = bookings[(bookings["status"] == "completed")
                     & (bookings["scheduled_at"] <= pd.Timestamp(AS_OF))]
    latest = known.sort_values("scheduled_at").groupby("customer_id").tail(1)
    visit = latest[latest["booking_id"].isin(done["booking_id"])].iloc[0]
    other = next(p for p in world.providers["provider_id"] if p != visit["provider_id"])
    twin = visit.copy()
    twin["booking_id"] = bookings["booking_id"].max() + 1
    twin["provider_id"] = other
    tables = {name: getattr(world, name) for name in
              ("customers", "providers", "services", "reviews", "interventions")}
    rows = pd.concat([bookings, twin.to_frame().T.astype(bookings.dtypes)], ignore_index=True)
    expected = provider_scores(MarketplaceData.from_validated(bookings=rows, **tables), AS_OF)
    for seed in range(6):
        shuffled = rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        got = provider_scores(MarketplaceData.from_validated(bookings=shuffled, **tables), AS_OF)
        pd.testing.assert_series_equal(got["n_customer_base"], expected["n_customer_base"])
        pd.testing.assert_frame_equal(got, expected, rtol=1e-9, atol=1e-9)


def test_churn_probabilities_enter_as_a_component(world: MarketplaceData) -> None:
    ids = world.customers["customer_id"]
    p = pd.Series(np.random.default_rng(0).uniform(0, 1, len(ids)), index=ids.to_numpy())
    scores = provider_scores(world, AS_OF, churn_probability=p)
    assert scores.attrs["dropped_components"] == []
    assert scores["customer_churn"].notna().any()
    assert ((scores["customer_churn_value"] >= 0) & (scores["customer_churn_value"] <= 1)
            ).dropna().all()


def test_spearman_with_true_quality_on_a_small_simulation(scores: pd.DataFrame,
                                                          world: MarketplaceData) -> None:
    assert world.truth is not None
    quality = world.truth.tables["providers"].set_index("provider_id")["quality"]
    rho = spearmanr(scores["score"], quality.reindex(scores.index))[0]
    assert rho >= 0.7, rho  # 6,000 customers: ~40 barbers; the default world is the benchmark


# --------------------------------------------------------------------------- actions
def test_actions_are_at_most_three_positive_and_traced(world: MarketplaceData) -> None:
    cfg = load_score_config()
    comp = measure_components(world, AS_OF, cfg)
    table = score_components(comp, cfg)
    actions = provider_actions(comp, table)
    assert actions
    by: dict[int, list[Any]] = {}
    for a in actions:
        by.setdefault(a.provider_id, []).append(a)
        assert a.component in COMPONENTS
        assert a.gain_low <= a.gain_per_month <= a.gain_high and a.gain_per_month > 0
    for mine in by.values():
        assert len(mine) <= 3
        gains = [a.gain_per_month for a in mine]
        assert gains == sorted(gains, reverse=True)


def test_pricing_actions_plug_in_and_rank_with_the_rest(world: MarketplaceData) -> None:
    from barberpro_ml.providers import ProviderAction

    cfg = load_score_config()
    comp = measure_components(world, AS_OF, cfg)
    table = score_components(comp, cfg)
    pid = int(table.index[0])

    def pricing(_c: Any, _s: pd.DataFrame) -> list[ProviderAction]:
        return [ProviderAction(
            provider_id=pid, action="price_change", title="+5% on fades", detail="test",
            component="pricing", current_value=35, target_value=36.75, change_per_month=0,
            change_unit="$", gain_per_month=1e6, gain_low=1, gain_high=2e6, interval=0.9,
            assumption="test")]

    actions = provider_actions(comp, table, provider_ids=[pid], pricing=pricing)
    assert actions[0].action == "price_change" and len(actions) <= 3


# --------------------------------------------------------------------------- departure job
@pytest.mark.slow
def test_departure_job_registers_and_gates(mlflow_store: Any, tmp_path: Path) -> None:
    from barberpro_ml.jobs import provider_departure
    from barberpro_ml.registry import alias_version

    data = simulate(SimulationConfig(n_customers=8000, seed=3))
    claims = tmp_path / "claims.yaml"
    claims.write_text(yaml.safe_dump({"claims": [
        {"id": "test-departure", "family": "provider-departure", "metric": "roc_auc",
         "claimed": 0.5, "direction": "at_least", "policy": "ci", "source": "test"}]}))
    cfg = provider_departure.load_config(claims=str(claims), n_test_cutoffs=8)
    result = provider_departure.run(cfg, data=data)
    assert result.version == "1" and result.family == "provider-departure"
    assert result.gate is not None
    assert {c.check_id for c in result.gate.claims} >= {"test-departure", "test-overlap"}
    # promoted exactly when the gate passed, through the one door
    assert result.promoted == result.gate_passed
    assert (alias_version("barberpro-provider-departure", "champion") is not None) == \
        result.promoted


# --------------------------------------------------------------------------- routes
@pytest.fixture(scope="module")
def client(scoring_registry: Any) -> Iterator[TestClient]:
    scorer = CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)
    app = create_app(scorer, scoring_registry.data, auth="off")
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def barber(client: TestClient) -> int:
    rows = client.post("/providers/batch-analytics", json={}).json()["providers"]
    return int(max(rows, key=lambda r: r["n_reviews"])["provider_id"])


def test_performance_route(client: TestClient, barber: int) -> None:
    r = client.get(f"/providers/{barber}/performance")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["score_low"] <= body["score"] <= body["score_high"]
    assert [c["component"] for c in body["components"]] == list(COMPONENTS)
    assert body["left_out"] == []  # the churn champion is served


@pytest.mark.parametrize("route", ["performance", "recommendations", "growth-plan",
                                   "dashboard", "communication"])
def test_every_provider_route_answers_and_404s(client: TestClient, barber: int,
                                               route: str) -> None:
    ok = client.get(f"/providers/{barber}/{route}")
    assert ok.status_code == 200, ok.text
    missing = client.get(f"/providers/999999/{route}")
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    assert client.get(f"/providers/abc/{route}").status_code == 422
    assert client.get(f"/providers/{barber}/{route}?as_of=yesterday").status_code == 422


def test_recommendations_and_growth_plan(client: TestClient, barber: int) -> None:
    recs = client.get(f"/providers/{barber}/recommendations").json()
    assert len(recs["actions"]) <= 3 and "pricing" in recs["pricing"]
    plan = client.get(f"/providers/{barber}/growth-plan").json()
    assert plan["steps"] and plan["expected_gain_per_month"] >= 0


def test_communication_lists_at_risk_regulars(client: TestClient, barber: int) -> None:
    body = client.get(f"/providers/{barber}/communication",
                      params={"min_probability": 0.0}).json()
    assert body["min_probability"] == 0.0
    for c in body["customers"]:
        assert c["visits_with_provider"] >= 2
        assert c["message_type"] in ("service_recovery", "win_back", "rebooking_reminder")
    probs = [c["churn_probability"] for c in body["customers"]]
    assert probs == sorted(probs, reverse=True)
    assert client.get(f"/providers/{barber}/communication",
                      params={"min_probability": 2}).status_code == 422


def test_batch_analytics(client: TestClient, barber: int) -> None:
    r = client.post("/providers/batch-analytics", json={"provider_ids": [barber, 999999],
                                                        "skip_unknown": True})
    assert r.status_code == 200
    assert [p["provider_id"] for p in r.json()["providers"]] == [barber]
    assert r.json()["not_found"] == [999999]
    assert client.post("/providers/batch-analytics",
                       json={"provider_ids": [barber, 999999]}).status_code == 404
    assert client.post("/providers/batch-analytics",
                       json={"provider_ids": [0]}).status_code == 422
    assert client.post("/providers/batch-analytics",
                       json={"provider_ids": [barber], "bogus": 1}).status_code == 422


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(1, 5), min_size=2, max_size=40),
       units=st.data(), copies=st.integers(1, 4))
def test_design_effect_is_one_for_singletons_and_k_for_k_identical_copies(
        values: list[int], units: st.DataObject, copies: int) -> None:
    unit = units.draw(st.lists(st.integers(0, 3), min_size=len(values), max_size=len(values)))
    r = pd.Series(values, dtype=float)
    u = pd.Series(unit)
    assume(float(((r - r.groupby(u).transform("mean")) ** 2).sum()) > 0)
    # every observation its own cluster: independence
    assert cluster_design_effect(r, u, pd.Series(range(len(r)))) == pytest.approx(1.0)
    # each observation repeated `copies` times by the same customer: worth one observation
    rep = pd.Series(np.repeat(values, copies), dtype=float)
    assert cluster_design_effect(rep, pd.Series(np.repeat(unit, copies)),
                                 pd.Series(np.repeat(np.arange(len(r)), copies))
                                 ) == pytest.approx(float(copies))


def test_a_design_effect_widens_the_rating_posterior_where_reviews_dominate() -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(5, 200, 30).astype(float)
    truth = rng.normal(4.5, 0.2, 30)
    sums = truth * counts + rng.normal(0, 0.6, 30) * np.sqrt(counts)
    sq = sums**2 / counts + 0.36 * (counts - 1)
    groups = np.zeros(30, dtype=np.int64)
    m1, sd1, prior, *_ = empirical_bayes_normal(sums, sq, counts, groups)
    m2, sd2, *_ = empirical_bayes_normal(sums, sq, counts, groups, design_effect=2.0)
    # where the reviews dominate the prior, the interval widens by about sqrt(2)
    many = counts >= 100
    assert many.sum() >= 5
    assert (sd2[many] / sd1[many] > 1.2).all() and (sd2[many] / sd1[many] < 1.45).all()
    raw = sums / counts
    for m in (m1, m2):  # always between the prior and the raw mean
        assert (np.abs(m - prior) <= np.abs(raw - prior) + 1e-12).all()
        assert ((m - prior) * (raw - prior) >= -1e-12).all()
