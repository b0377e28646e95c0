"""Pricing: the price-rise panel, the oracle, the DML elasticity against the simulator's truth,
revenue at another price, the registered pricing model and the job."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.models.pricing_table import (
    ELASTICITY_COLUMNS,
    best_supported_change,
    revenue_change,
    revenue_change_interval,
)
from barberpro_ml.providers._elasticity_data import (
    event_panel,
    oracle_event_effects,
    price_rise_events,
)
from barberpro_ml.providers.pricing import PriceElasticityDML, price_changes_of, true_elasticity
from barberpro_ml.registry.models import ModelInputError
from barberpro_ml.registry.pricing_model import PricingModel, PricingSpec


@pytest.fixture(scope="module")
def world() -> MarketplaceData:
    return simulate(SimulationConfig(n_customers=8000, seed=5))


# --------------------------------------------------------------------------- revenue maths
def test_revenue_change_is_the_constant_elasticity_formula() -> None:
    assert revenue_change(0.10, -1.0) == pytest.approx(0.0)
    assert revenue_change(0.10, 0.0) == pytest.approx(0.10)
    assert revenue_change(0.10, -0.5) == pytest.approx(1.1 ** 0.5 - 1)
    with pytest.raises(ValueError, match="above -1"):
        revenue_change(-1.0, 0.0)


def test_interval_maps_the_elasticity_interval_and_the_mean_matches_draws() -> None:
    mean, low, high = revenue_change_interval(0.08, -0.4, 0.3, 0.95)
    z = 1.959963984540054
    assert low == pytest.approx(1.08 ** (1 - 0.4 - z * 0.3) - 1)
    assert high == pytest.approx(1.08 ** (1 - 0.4 + z * 0.3) - 1)
    draws = np.random.default_rng(0).normal(-0.4, 0.3, 400_000)
    assert mean == pytest.approx(float(np.mean(1.08 ** (1 + draws) - 1)), abs=2e-4)


def test_best_supported_change_is_the_highest_lower_bound_or_none() -> None:
    # a precise, inelastic cell: the largest rise has the highest lower bound
    best = best_supported_change(-0.2, 0.05, max_change=0.12)
    assert best["price_change"] == pytest.approx(0.12)
    assert best["ci_low"] == pytest.approx(1.12 ** (1 - 0.2 - 1.959963984540054 * 0.05) - 1)
    # an imprecise cell: no rise has a positive lower bound, so prices stay
    none = best_supported_change(-0.2, 2.0, max_change=0.12)
    assert none == {"price_change": 0.0, "revenue_change": 0.0, "ci_low": 0.0, "ci_high": 0.0}


# --------------------------------------------------------------------------- panel and oracle
def test_events_have_clean_windows_and_the_panel_counts_match_the_bookings(
        world: MarketplaceData) -> None:
    pc = price_changes_of(world)
    events = price_rise_events(world, pc, pre_weeks=13, post_weeks=13)
    assert len(events) > 10 and (events["step"] > 1).all()
    panel = event_panel(world, events, pre_weeks=13, post_weeks=13)
    assert len(panel) == len(events) * len(world.services)
    e = events.iloc[0]
    b = world.bookings
    own = b[(b["provider_id"] == e["provider_id"]) & (b["status"] == "completed")
            & (b["scheduled_at"] >= e["changed_at"])
            & (b["scheduled_at"] < e["changed_at"] + pd.Timedelta(weeks=13))]
    assert panel.loc[panel["event_id"] == e["event_id"], "bookings_post"].sum() == len(own)


def test_oracle_reproduces_the_data_when_nothing_is_removed(world: MarketplaceData) -> None:
    events = price_rise_events(world, price_changes_of(world), pre_weeks=13, post_weeks=13)
    same = oracle_event_effects(world, events.assign(step=1.0), post_weeks=13)
    assert (same["true_effect"] == 0.0).all()
    effects = oracle_event_effects(world, events, post_weeks=13)
    # a rise never brings customers: fewer or equal visits on average, some strictly fewer
    per_event = effects.groupby("event_id")["true_effect"].sum()
    assert per_event.mean() < 0


def test_estimator_fits_cells_and_refuses_bad_parameters(world: MarketplaceData) -> None:
    est = PriceElasticityDML(scopes=("pooled", "tier"), min_events=10, n_rep=1).fit(world)
    table = est.elasticities_
    assert list(table.columns) == list(ELASTICITY_COLUMNS)
    assert "pooled" in set(table["scope"])
    row = est.elasticity()
    assert row["ci_low"] < row["elasticity"] < row["ci_high"]
    with pytest.raises(ValueError, match="scopes"):
        PriceElasticityDML(scopes=("city",)).fit(world)
    with pytest.raises(KeyError, match="no elasticity"):
        est.elasticity(price_tier="luxury")


def test_pricing_model_serves_revenue_changes_and_refuses_extrapolation() -> None:
    table = pd.DataFrame([{
        "scope": "tier", "service": "all", "price_tier": "standard", "neighborhood": "all",
        "n_events": 40, "n_providers": 30, "elasticity": -0.3, "std_error": 0.2,
        "ci_low": -0.69, "ci_high": 0.09, "naive_elasticity": 0.4, "naive_ci_low": 0.0,
        "naive_ci_high": 0.8, "min_step": 1.03, "max_step": 1.12}])
    model = PricingModel(table, PricingSpec(level=0.95, pre_weeks=13, post_weeks=13,
                                            recommended=[]))
    out = model.predict(None, pd.DataFrame({"price_tier": ["standard"],
                                            "price_change": [0.05]}))
    mean, low, _high = revenue_change_interval(0.05, -0.3, 0.2, 0.95)
    assert out.loc[0, "revenue_change"] == pytest.approx(float(mean))
    assert out.loc[0, "revenue_change_low"] == pytest.approx(float(low))
    with pytest.raises(ModelInputError, match="outside the rises"):
        model.predict(None, pd.DataFrame({"price_tier": ["standard"], "price_change": [0.2]}))
    with pytest.raises(ModelInputError, match="no elasticity"):
        model.predict(None, pd.DataFrame({"price_tier": ["premium"], "price_change": [0.05]}))


def test_pricing_job_registers_and_judges_the_revenue_claims(
        mlflow_store: object, world: MarketplaceData) -> None:
    from barberpro_ml.jobs import pricing

    cfg = pricing.load_config(model={**pricing.PricingJobConfig().model, "n_rep": 1,
                                     "scopes": ["pooled", "tier"], "min_events": 10})
    result = pricing.run(cfg, data=world)
    verdicts = {v.claim_id: v for v in result.gate.claims} if result.gate else {}
    assert "pricing-no-revenue-loss" in verdicts and "pricing-revenue-increase-seed" in verdicts
    # rises of at most 12% cannot add 15% revenue: the seed's claim is refused
    assert not verdicts["pricing-revenue-increase-seed"].passed


# --------------------------------------------------------------------------- against the truth
@pytest.mark.slow
def test_dml_is_closer_to_the_truth_than_naive_before_after_over_seeds() -> None:
    covered, dml_error, naive_error = 0, [], []
    for seed in (1, 2, 3):
        data = simulate(SimulationConfig(n_customers=20_000, seed=seed))
        est = PriceElasticityDML(scopes=("pooled",)).fit(data)
        truth = true_elasticity(data, est).iloc[0]["true_elasticity"]
        row = est.elasticities_.iloc[0]
        covered += int(row["ci_low"] <= truth <= row["ci_high"])
        dml_error.append(row["elasticity"] - truth)
        naive_error.append(row["naive_elasticity"] - truth)
    assert covered >= 2
    # the naive estimate attributes the drift across the rise to the price: biased upward
    assert abs(np.mean(naive_error)) > abs(np.mean(dml_error)) or np.mean(naive_error) > 0.2


# --------------------------------------------------------------------------- small-sample inference
def _brute_force_jackknife(a: np.ndarray, b: np.ndarray, clusters: np.ndarray) -> float:
    """The delete-one-cluster jackknife variance of sum(b) / sum(a), by refitting."""
    labels = np.unique(clusters)
    loo = np.array([b[clusters != g].sum() / a[clusters != g].sum() for g in labels])
    return float((labels.size - 1) / labels.size * np.sum((loo - loo.mean()) ** 2))


def test_cluster_jackknife_matches_a_brute_force_reference_and_uses_t() -> None:
    from scipy import stats

    from barberpro_ml.providers.pricing import cluster_jackknife_inference

    rng = np.random.default_rng(3)
    clusters = rng.integers(0, 15, 90)
    v = rng.normal(size=(90, 3))
    u = -0.4 * v + rng.normal(size=(90, 3))
    out = cluster_jackknife_inference(-v * v, v * u, clusters, 0.9)
    thetas = (v * u).sum(0) / (v * v).sum(0)
    theta = float(np.median(thetas))
    var = np.median([_brute_force_jackknife(v[:, s] ** 2, v[:, s] * u[:, s], clusters)
                     + (thetas[s] - theta) ** 2 for s in range(3)])
    g = np.unique(clusters).size
    assert out["elasticity"] == pytest.approx(theta)
    assert out["std_error"] == pytest.approx(np.sqrt(var))
    assert out["dof"] == g - 1
    q = stats.t.ppf(0.95, g - 1)
    assert out["ci_high"] - out["elasticity"] == pytest.approx(q * out["std_error"])
    with pytest.raises(ValueError, match="two clusters"):
        cluster_jackknife_inference(-v * v, v * u, np.zeros(90), 0.95)


def test_jackknife_t_interval_covers_with_few_clusters_where_the_sandwich_falls_short() -> None:
    """Few clusters of unequal size with a heavy-tailed treatment: the plain cluster sandwich
    with a normal quantile under-covers, the jackknife with t(G - 1) does not (Cameron and
    Miller 2015, section VI)."""
    from barberpro_ml.providers.pricing import cluster_jackknife_inference

    rng = np.random.default_rng(0)
    theta, n_sim, covered_jk, covered_sandwich = -0.5, 600, 0, 0
    for _ in range(n_sim):
        sizes = rng.integers(1, 8, 12)
        clusters = np.repeat(np.arange(12), sizes)
        shock = rng.normal(size=12)[clusters]
        v = rng.standard_t(3, clusters.size)
        u = theta * v + shock + rng.normal(size=clusters.size)
        out = cluster_jackknife_inference(-v * v, v * u, clusters, 0.95)
        covered_jk += out["ci_low"] <= theta <= out["ci_high"]
        est = (v @ u) / (v @ v)
        score = pd.Series(v * (u - est * v)).groupby(clusters).sum().to_numpy()
        se = np.sqrt(12 / 11 * score @ score) / (v @ v)
        covered_sandwich += abs(est - theta) <= 1.959964 * se
    assert covered_jk / n_sim >= 0.93
    assert covered_jk > covered_sandwich
