"""Fitting the provider score's weights on a later observable signal
(:func:`barberpro_ml.providers.fit_provider_weights`) and how the score uses weights."""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.errors import ConfigError, InputError, NotEnoughDataError
from barberpro_ml.providers import (
    COMPONENTS,
    ComponentWeights,
    ProviderScoreWeights,
    WeightFitConfig,
    fit_provider_weights,
    load_score_config,
    provider_scores,
)
from barberpro_ml.providers.weights import choose_weights, later_signal, simplex_grid
from strategies import known_at

FIT_AS_OF = pd.Timestamp("2024-06-30")
AS_OF = pd.Timestamp("2024-12-31")
FAST = WeightFitConfig(n_bootstrap=30)


@pytest.fixture(scope="module")
def world() -> MarketplaceData:
    return simulate(SimulationConfig(n_customers=6000, seed=7))


@pytest.fixture(scope="module")
def fitted(world: MarketplaceData) -> ProviderScoreWeights:
    return fit_provider_weights(world, FIT_AS_OF, fit=FAST)


# --------------------------------------------------------------------------- the grid
@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), units=st.sampled_from([2, 4, 5, 10]), floor=st.integers(0, 2))
def test_simplex_grid_rows_are_every_admissible_weight_vector(n: int, units: int,
                                                              floor: int) -> None:
    step = 1 / units
    if floor * n > units:
        with pytest.raises(InputError, match="exceeds 1"):
            simplex_grid(n, step, floor * step)
        return
    grid = simplex_grid(n, step, floor * step)
    assert grid.shape == (comb(units - floor * n + n - 1, n - 1), n)
    assert np.allclose(grid.sum(axis=1), 1.0)
    assert (grid >= floor * step - 1e-12).all()
    assert np.allclose(grid / step, np.round(grid / step))
    assert len(np.unique(grid.round(9), axis=0)) == len(grid)


def test_simplex_grid_refuses_a_step_that_does_not_divide_one(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="grid_step must divide 1"):
        simplex_grid(3, 0.3)
    bad = tmp_path / "providers.yaml"
    bad.write_text(yaml.safe_dump({"fit": {"grid_step": 0.3}}))
    with pytest.raises(ConfigError, match="grid_step must divide 1"):
        load_score_config(bad)


# --------------------------------------------------------------------------- the selection
def _uniform(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 100, (n, k))


def test_a_planted_mix_of_two_components_is_recovered() -> None:
    pct = _uniform(300, 3, 0)
    y = 0.6 * pct[:, 0] + 0.4 * pct[:, 1] + np.random.default_rng(1).normal(0, 2, 300)
    ref, name, w, oob = choose_weights({"marketplace": pct}, y, ["a", "b", "c"], FAST)
    assert name == "fitted" and ref == "marketplace"
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[0] == pytest.approx(0.6, abs=0.1) and w[1] == pytest.approx(0.4, abs=0.1)
    assert w[2] <= 0.05
    assert oob["marketplace/fitted"]["mean"] > oob["marketplace/a"]["mean"]


def test_noise_components_get_no_weight_when_one_component_carries_the_signal() -> None:
    pct = _uniform(120, 4, 2)
    y = pct[:, 2] + np.random.default_rng(3).normal(0, 25, 120)
    _, name, w, oob = choose_weights({"marketplace": pct}, y, ["a", "b", "c", "d"], FAST)
    # the fitted mix chases the noise on 120 barbers; out of bag, "c" alone does better
    assert oob["marketplace/c"]["mean"] >= oob["marketplace/fitted"]["mean"]
    assert name == "c" and w.tolist() == [0.0, 0.0, 1.0, 0.0]


def test_the_percentile_reference_where_the_signal_lives_is_chosen() -> None:
    hood, market = _uniform(150, 2, 4), _uniform(150, 2, 5)
    y = market[:, 1] + np.random.default_rng(6).normal(0, 5, 150)
    ref, _, w, _ = choose_weights({"neighborhood": hood, "marketplace": market}, y,
                                  ["a", "b"], FAST)
    assert ref == "marketplace" and w[1] >= 0.9


def test_a_minimum_weight_is_kept_for_every_component() -> None:
    pct = _uniform(100, 3, 7)
    y = pct[:, 0]
    _, name, w, oob = choose_weights({"marketplace": pct}, y, ["a", "b", "c"],
                                     FAST.model_copy(update={"min_weight": 0.1}))
    assert name == "fitted" and set(oob) == {"marketplace/fitted"}
    assert (w >= 0.1 - 1e-12).all() and w.sum() == pytest.approx(1.0)
    assert w[0] == pytest.approx(0.8)


# --------------------------------------------------------------------------- on the simulator
def test_fit_on_a_simulation_gives_valid_weights_and_a_usable_config(
        fitted: ProviderScoreWeights, world: MarketplaceData) -> None:
    weights = fitted.weights.as_dict()
    assert set(weights) == set(COMPONENTS)
    assert all(v >= 0 for v in weights.values()) and sum(weights.values()) == pytest.approx(1)
    # no churn probabilities: that component is not measured and cannot get a share
    assert weights["customer_churn"] == 0.0
    # the ratings are the direct measure of what the later ratings measure again
    assert max(weights, key=lambda c: weights[c]) == "rating"
    assert fitted.n_barbers >= 10 and fitted.percentile_within in ("neighborhood", "marketplace")
    best = max(fitted.oob_spearman.values(), key=lambda v: v["mean"])["mean"]
    assert best == fitted.oob_spearman[f"{fitted.percentile_within}/{fitted.chosen}"]["mean"]
    assert 0.3 < best <= 1.0
    scores = provider_scores(world, AS_OF, config=fitted.config())
    assert scores.attrs["percentile_within"] == fitted.percentile_within
    assert scores["score"].between(0, 100).all()


def test_the_fit_reads_nothing_beyond_its_horizon(fitted: ProviderScoreWeights,
                                                 world: MarketplaceData) -> None:
    end = FIT_AS_OF + pd.Timedelta(days=FAST.horizon_days + 1)
    again = fit_provider_weights(known_at(world, end), FIT_AS_OF, fit=FAST)
    assert again.weights == fitted.weights and again.oob_spearman == fitted.oob_spearman


def test_the_later_signal_counts_only_the_window(world: MarketplaceData) -> None:
    ids = pd.Index(world.providers["provider_id"].sort_values())
    signal = later_signal(world, FIT_AS_OF, 90, ids)
    rv = world.reviews
    inside = rv.loc[(rv["created_at"] > FIT_AS_OF)
                    & (rv["created_at"] <= FIT_AS_OF + pd.Timedelta(days=90))]
    expected = inside.groupby("provider_id").size().reindex(ids, fill_value=0)
    assert (signal["n_reviews"].to_numpy() == expected.to_numpy()).all()
    rated = signal["rating"].dropna()
    assert rated.between(1, 5).all() and signal["retention"].dropna().between(0, 1).all()


def test_too_little_data_after_the_cut_off_is_refused(world: MarketplaceData) -> None:
    with pytest.raises(NotEnoughDataError, match=r"2024-11-30 \+ 180 days"):
        fit_provider_weights(world, "2024-11-30", fit=FAST)


# --------------------------------------------------------------------------- weights in the score
def test_the_score_is_exactly_its_weighted_components(world: MarketplaceData) -> None:
    cfg = load_score_config()
    only = {c: 0.0 for c in COMPONENTS}
    for component in ("rating", "retention"):
        weights = ComponentWeights(**{**only, component: 1.0})
        scores = provider_scores(world, AS_OF, config=cfg.model_copy(
            update={"weights": weights, "n_draws": 60}))
        assert np.allclose(scores["score"], scores[component])
        # weight 0 still leaves every measured component in its columns
        for other in ("no_show", "utilisation"):
            assert scores[other].notna().all()
        assert scores.attrs["weights"] == {component: 1.0}


@pytest.mark.slow
def test_the_shipped_weights_are_the_ones_the_fit_selects_on_the_default_world() -> None:
    """configs/providers.yaml holds fit_provider_weights' choice on the default simulation
    (benchmarks/fit_provider_weights.py); a change to either must update both."""
    cfg = load_score_config()
    chosen = fit_provider_weights(simulate(SimulationConfig()), FIT_AS_OF, config=cfg)
    assert chosen.weights == cfg.weights
    assert chosen.percentile_within == cfg.percentile_within


def test_without_any_review_the_rating_only_score_says_it_knows_nothing(
        world: MarketplaceData) -> None:
    tables = world.tables()
    tables["reviews"] = world.reviews.iloc[:0]
    scores = provider_scores(MarketplaceData(**tables), AS_OF)
    assert "rating" in scores.attrs["dropped_components"] and scores.attrs["weights"] == {}
    assert scores["score"].between(35, 65).all()
    assert (scores["score_low"] < 15).all() and (scores["score_high"] > 85).all()
