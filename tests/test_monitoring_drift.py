"""Drift statistics of barberpro_ml.monitoring: PSI, the two-sample tests, BH and Holm, and the
one-sided degradation test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from barberpro_ml.errors import InputError
from barberpro_ml.monitoring import (
    DriftRow,
    GateFigure,
    MaturedPerformance,
    benjamini_hochberg,
    degradation_test,
    feature_drift,
    holm,
    psi,
    verdict,
)

samples = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=5, max_size=300)
p_lists = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=60)


# ------------------------------------------------------------------------------------- PSI
@given(samples)
def test_psi_of_a_sample_against_itself_is_zero(x: list[float]) -> None:
    assert psi(x, x) == 0.0
    assert psi(x, list(reversed(x))) == 0.0  # order of rows does not matter


@given(samples, samples)
def test_psi_is_non_negative_and_finite(x: list[float], y: list[float]) -> None:
    value = psi(x, y)
    assert value >= 0.0
    assert np.isfinite(value)


@given(st.integers(0, 10_000), st.floats(0.25, 1.0))
@settings(max_examples=30, deadline=None)
def test_psi_grows_with_a_location_shift(seed: int, step: float) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=2000)
    values = [psi(ref, ref + k * step) for k in range(4)]
    assert values[0] == 0.0
    assert values == sorted(values)
    assert values[3] > values[1] > 0.0
    # an independent sample of the same distribution stays below a one-step shift of it
    assert psi(ref, rng.normal(size=2000)) < values[1]


integer_samples = st.lists(st.integers(-10_000, 10_000), min_size=5, max_size=300)


@given(integer_samples, integer_samples, st.sampled_from([0.25, 0.5, 2.0, 8.0]),
       st.integers(-1000, 1000))
def test_psi_does_not_depend_on_the_scale_of_the_column(x: list[int], y: list[int],
                                                        a: float, b: int) -> None:
    # quantile bins of the reference: an increasing affine map moves the edges with the data
    # (integers and powers of two: the map is exact in floating point)
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    assert psi(a * xs + b, a * ys + b) == pytest.approx(psi(xs, ys), abs=1e-9)


def test_psi_of_categories_counts_new_and_missing_levels() -> None:
    same = pd.Series(["a", "b", None, "a"])
    assert psi(same, same.sample(frac=1, random_state=0)) == 0.0
    assert psi(["a"] * 50 + ["b"] * 50, ["a"] * 50 + ["c"] * 50) > 1.0  # b vanished, c new
    # a share that moved by hand: 0.5/0.5 -> 0.25/0.75
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi(["a", "b"] * 10, ["a"] * 5 + ["b"] * 15) == pytest.approx(expected)


def test_psi_refuses_empty_samples_and_one_bin() -> None:
    with pytest.raises(InputError, match="reference: 0 rows"):
        psi([], [1.0])
    with pytest.raises(InputError, match="n_bins"):
        psi([1.0, 2.0], [1.0], n_bins=1)


# --------------------------------------------------------------------- multiple testing
def _bh_reference(p: np.ndarray, q: float) -> set[int]:
    """Benjamini-Hochberg's step-up rule, as written in the paper."""
    order = np.argsort(p)
    m = len(p)
    passing = [k for k in range(1, m + 1) if p[order[k - 1]] <= k * q / m]
    return set(order[: max(passing)].tolist()) if passing else set()


def _holm_reference(p: np.ndarray, alpha: float) -> set[int]:
    """Holm's step-down rule: reject in order while p_(k) <= alpha / (m - k + 1)."""
    order = np.argsort(p, kind="stable")
    m = len(p)
    rejected: set[int] = set()
    for k, i in enumerate(order):
        if p[i] > alpha / (m - k):
            break
        rejected.add(int(i))
    return rejected


@given(p_lists, st.sampled_from([0.01, 0.05, 0.1, 0.2]))
def test_benjamini_hochberg_rejects_what_the_step_up_rule_rejects(p: list[float], q: float
                                                                  ) -> None:
    arr = np.asarray(p)
    adjusted = benjamini_hochberg(arr)
    assert set(np.flatnonzero(adjusted <= q).tolist()) == _bh_reference(arr, q)
    assert np.all(adjusted >= arr - 1e-12)
    assert np.all(adjusted <= 1.0)


@given(p_lists, st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_rejects_what_the_step_down_rule_rejects(p: list[float], alpha: float) -> None:
    arr = np.asarray(p)
    # ties at the boundary are decided the same way by both when they are strict
    assert set(np.flatnonzero(holm(arr) <= alpha).tolist()) == _holm_reference(arr, alpha)


@given(p_lists)
@settings(max_examples=15, deadline=None)  # statsmodels takes about a second per call here
def test_adjusted_p_values_match_statsmodels(p: list[float]) -> None:
    arr = np.asarray(p)
    np.testing.assert_allclose(benjamini_hochberg(arr), multipletests(arr, method="fdr_bh")[1],
                               atol=1e-12)
    np.testing.assert_allclose(holm(arr), multipletests(arr, method="holm")[1], atol=1e-12)


def test_nan_p_values_are_left_out_of_the_correction() -> None:
    adjusted = benjamini_hochberg([0.01, np.nan, 0.02])
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.02, 0.02])


# ------------------------------------------------------------------------ feature drift
def test_feature_drift_flags_a_shifted_column_only() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    ref = pd.DataFrame({"same": rng.normal(size=n), "shifted": rng.normal(size=n),
                        "channel": pd.Categorical(rng.choice(["a", "b"], n))})
    cur = pd.DataFrame({"same": rng.normal(size=n), "shifted": rng.normal(1.0, size=n),
                        "channel": pd.Categorical(rng.choice(["a", "b"], n, p=[0.5, 0.5]))})
    table = feature_drift(ref, cur).set_index("column")
    assert table.loc["shifted", "drifted"]
    assert not table.loc["same", "drifted"]
    assert not table.loc["channel", "drifted"]
    assert table.loc["channel", "test"] == "chi2"
    assert table.loc["same", "test"] == "ks"


def test_feature_drift_needs_significance_not_only_a_large_psi() -> None:
    # ten rows each side: a large PSI from noise alone, which the test does not confirm
    ref = pd.DataFrame({"x": [0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9]})
    cur = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]})
    row = feature_drift(ref, cur).iloc[0]
    assert row["psi"] >= 0.25
    assert not row["drifted"]


def test_feature_drift_names_missing_columns() -> None:
    ref = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(InputError, match=r"missing from the current frame, e.g. \['a'\]"):
        feature_drift(ref, pd.DataFrame({"b": [1.0]}))


# -------------------------------------------------------------------- degradation test
def _gate(direction: str = "at_least") -> GateFigure:
    return GateFigure(metric="roc_auc", direction=direction,  # type: ignore[arg-type]
                      value=0.80, ci_low=0.78, ci_high=0.82)


def test_degradation_test_is_one_sided_in_the_claims_direction() -> None:
    reps = np.random.default_rng(0).normal(0.0, 0.01, 1000)
    _, _, worse = degradation_test(0.74, reps + 0.74, _gate())
    _, _, better = degradation_test(0.86, reps + 0.86, _gate())
    assert worse < 1e-3 < 0.999 < better
    # at_most: higher is worse
    _, _, higher = degradation_test(0.86, reps + 0.86, _gate("at_most"))
    assert higher < 1e-3


def test_the_margin_tolerates_a_small_loss() -> None:
    reps = np.random.default_rng(0).normal(0.77, 0.002, 1000)
    assert degradation_test(0.77, reps, _gate())[2] < 0.01
    assert degradation_test(0.77, reps, _gate(), margin=0.05)[2] > 0.5


def test_degradation_test_holds_its_level_under_the_null() -> None:
    # matured value and gate value drawn from the same sampling distribution
    rng = np.random.default_rng(5)
    se = 0.01
    rejections = 0
    trials = 2000
    for _ in range(trials):
        gate_value, now = rng.normal(0.8, se, 2)
        gate = GateFigure(metric="roc_auc", value=gate_value, ci_low=gate_value - 1.96 * se,
                          ci_high=gate_value + 1.96 * se)
        reps = rng.normal(now, se, 400)
        rejections += degradation_test(now, reps, gate)[2] < 0.05
    assert rejections / trials == pytest.approx(0.05, abs=0.02)


def _row(column: str, psi_value: float, drifted: bool, trending: bool = False) -> DriftRow:
    return DriftRow(column=column, kind="numeric", psi=psi_value, test="ks", statistic=0.1,
                    p_value=0.0, p_adjusted=0.0, drifted=drifted, trending=trending)


def test_verdict_order_degraded_then_drifted_then_ok() -> None:
    quiet = _row("score", 0.01, False)
    perf = MaturedPerformance(metric="roc_auc", predicted_at="2024-01-01", n=100, value=0.7,
                              ci_low=0.68, ci_high=0.72, gate=_gate(), margin=0.0,
                              p_value=1e-6, p_holm=1e-6, degraded=True)
    assert verdict([perf], [_row("x", 1.0, True)], quiet)[0] == "degraded"
    assert verdict([], [_row("x", 1.0, True)], quiet)[0] == "drifted"
    assert verdict([], [_row("x", 1.0, True, trending=True)], quiet)[0] == "ok"
    assert verdict([], [], _row("score", 0.5, True))[0] == "drifted"
    assert verdict([], [_row("x", 0.01, False)], quiet) == ("ok", [])


def test_an_input_explained_by_recorded_actions_is_reported_not_counted() -> None:
    quiet = _row("score", 0.01, False)
    moved = _row("discount_share", 0.6, True).model_copy(
        update={"explained_by": "1 retention campaign(s) sent between ..."})
    assert not moved.counts and _row("x", 0.6, True).counts
    assert verdict([], [moved], quiet) == ("ok", [])
    status, reasons = verdict([], [moved, _row("spend_90d", 0.4, True)], quiet)
    assert status == "drifted" and "spend_90d" in reasons[0] and "discount" not in reasons[0]


def test_scheduled_explanations_name_the_campaigns_sent_in_the_window() -> None:
    from barberpro_ml.data import SimulationConfig, simulate
    from barberpro_ml.features import feature_catalog
    from barberpro_ml.monitoring import scheduled_explanations

    data = simulate(SimulationConfig(n_customers=300, seed=3))
    sent = data.interventions.groupby("campaign", observed=True)["sent_at"].min().sort_values()
    assert len(sent) >= 2
    first, second = sent.iloc[0], sent.iloc[1]
    moved = set(feature_catalog().query("moved_by == 'interventions'")["name"])
    assert {"discount_share", "n_offers", "days_since_last_offer"} <= moved
    columns = ["discount_share", "n_offers", "visits_90d", "spend_90d", "unknown_column"]
    # a window holding the first campaign only: the campaign columns, with its name
    got = scheduled_explanations(data, columns, first - pd.Timedelta(days=1),
                                 second - pd.Timedelta(days=1))
    assert set(got) == {"discount_share", "n_offers"}
    assert str(sent.index[0]) in got["discount_share"] and str(sent.index[1]) not in got[
        "discount_share"]
    assert got["discount_share"].startswith("1 retention campaign")
    # a window between campaigns, or ending just before one: nothing is explained
    assert scheduled_explanations(data, columns, first, second - pd.Timedelta(seconds=1)) == {}
    # both campaigns: counted and named
    both = scheduled_explanations(data, columns, first - pd.Timedelta(days=1), second)
    assert both["n_offers"].startswith("2 retention campaign")
