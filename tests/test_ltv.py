"""LTVRegressor (Tweedie XGBoost) and the LTV evaluation (evaluate_ltv, its metrics and plots)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from scipy.stats import spearmanr
from sklearn.base import clone

from barberpro_ml.evaluation import (
    evaluate_ltv,
    plot_decile_calibration,
    plot_predicted_vs_actual,
    regression_metrics,
)
from barberpro_ml.models import LTVRegressor, UnseenCategoryWarning


def revenue_frame(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Visits drive revenue; the channel multiplies it (a categorical effect)."""
    rng = np.random.default_rng(seed)
    channel = pd.Categorical(rng.choice(["organic", "paid", "referral"], n))
    visits = rng.poisson(3, n).astype(float)
    visits[rng.random(n) < 0.05] = np.nan
    rate = np.nan_to_num(visits, nan=3.0) * np.asarray(
        pd.Series(channel).map({"organic": 1.0, "paid": 0.3, "referral": 2.0}), dtype=float)
    y = rng.poisson(rate) * 30.0
    return pd.DataFrame({"visits": visits, "channel": channel}), y


def small_model(**params: object) -> LTVRegressor:
    return LTVRegressor(**{"n_estimators": 200, "random_state": 0, "n_jobs": 1, **params})


# ------------------------------------------------------------------------------ the model
def test_clone_get_params_and_pickle_round_trip() -> None:
    X, y = revenue_frame()
    model = small_model(tweedie_variance_power=1.3).fit(X, y)
    cloned = clone(model)
    assert cloned.get_params() == model.get_params()
    assert not hasattr(cloned, "estimator_")
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert list(model.feature_names_in_) == ["visits", "channel"]


def test_predictions_are_non_negative_and_track_the_mean() -> None:
    X, y = revenue_frame(seed=1)
    model = small_model().fit(X, y)
    p = model.predict(X)
    assert (p >= 0).all() and np.isfinite(p).all()
    # Tweedie with a log link keeps the total close to the observed total in-sample
    assert abs(p.sum() / y.sum() - 1) < 0.1


def test_categorical_column_is_learned_and_unseen_levels_warn() -> None:
    X, y = revenue_frame(n=1500, seed=2)
    model = small_model().fit(X, y)
    assert model.categories_["channel"] == ["organic", "paid", "referral"]
    probe = pd.DataFrame({"visits": [3.0, 3.0, 3.0],
                          "channel": pd.Categorical(["paid", "organic", "referral"])})
    paid, organic, referral = model.predict(probe)
    assert paid < organic < referral
    unseen = pd.DataFrame({"visits": [3.0], "channel": pd.Categorical(["walk-in"])})
    with pytest.warns(UnseenCategoryWarning, match="walk-in"):
        assert model.predict(unseen)[0] >= 0


def test_early_stopping_on_given_validation_rows_and_on_a_held_out_fraction() -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"noise": rng.normal(size=800)})
    y = rng.gamma(1.0, 50.0, 800) * (rng.random(800) < 0.6)  # unrelated to X
    stopped = small_model(n_estimators=2000, early_stopping_rounds=10, learning_rate=0.3,
                          max_depth=6).fit(X[:600], y[:600], X_valid=X[600:], y_valid=y[600:])
    assert stopped.validation_size_ == 200
    assert stopped.n_estimators_ < 2000
    assert stopped.n_estimators_ == stopped.best_iteration_ + 1 + 10
    held_out = small_model(n_estimators=2000, early_stopping_rounds=10, learning_rate=0.3,
                           validation_fraction=0.25).fit(X, y)
    assert held_out.validation_size_ == 200
    assert held_out.n_estimators_ < 2000
    full = small_model(n_estimators=30, early_stopping_rounds=None).fit(X, y)
    assert full.n_estimators_ == 30 and full.best_iteration_ == 29


def test_prediction_scale_multiplies_predictions() -> None:
    X, y = revenue_frame(seed=4)
    one = small_model().fit(X, y)
    two = small_model(prediction_scale=1.8).fit(X, y)
    np.testing.assert_allclose(two.predict(X), 1.8 * one.predict(X), rtol=1e-6)


def test_bad_input_is_refused_with_a_clear_message() -> None:
    X, y = revenue_frame(n=100)
    with pytest.raises(ValueError, match="negative value"):
        small_model().fit(X, np.r_[-1.0, y[1:]])
    with pytest.raises(ValueError, match="missing or infinite"):
        small_model().fit(X, np.r_[np.nan, y[1:]])
    with pytest.raises(ValueError, match="0 on all"):
        small_model().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="tweedie_variance_power"):
        small_model(tweedie_variance_power=2.5).fit(X, y)
    with pytest.raises(ValueError, match="both X_valid and y_valid"):
        small_model().fit(X, y, X_valid=X)


# --------------------------------------------------------------------------- the metrics
def test_metrics_match_hand_computed_values() -> None:
    y = np.array([0.0, 10.0, 30.0])
    p = np.array([5.0, 5.0, 20.0])
    m = {k: float(v) for k, v in regression_metrics(y, p).items()}
    assert m["mae"] == pytest.approx(20 / 3)                 # |5| + |-5| + |-10|
    assert m["rmse"] == pytest.approx(np.sqrt(150 / 3))
    assert m["aggregate_error"] == pytest.approx(30 / 40 - 1)
    # mid-ranks: y -> (1, 2, 3), p -> (1.5, 1.5, 3); cov(y, F(p)) = 25/3, cov(y, F(y)) = 10
    assert m["gini"] == pytest.approx((25 / 3) / 10)
    assert m["spearman"] == pytest.approx(0.5 / np.sqrt(2 / 3 * 0.5))
    assert m["spearman"] == pytest.approx(spearmanr(y, p).statistic)


def test_gini_is_one_for_the_true_order_and_minus_one_for_the_reverse() -> None:
    y = np.array([0.0, 0, 5, 10, 40, 100])
    assert float(regression_metrics(y, np.sqrt(y))["gini"]) == pytest.approx(1.0)
    assert float(regression_metrics(y, -y)["gini"]) == pytest.approx(-1.0)
    # a constant forecast ranks nobody: Gini 0
    assert float(regression_metrics(y, np.ones(6))["gini"]) == pytest.approx(0.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e4), st.floats(0, 1e4)), min_size=2, max_size=40))
def test_metric_bounds(pairs: list[tuple[float, float]]) -> None:
    y, p = (np.array(v) for v in zip(*pairs, strict=True))
    m = {k: float(v) for k, v in regression_metrics(y, p).items()}
    assert m["mae"] >= 0 and m["rmse"] >= m["mae"] - 1e-9
    if np.isfinite(m["gini"]):
        assert -1 - 1e-9 <= m["gini"] <= 1 + 1e-9
    if np.isfinite(m["spearman"]):
        assert -1 - 1e-9 <= m["spearman"] <= 1 + 1e-9
        assert m["spearman"] == pytest.approx(spearmanr(y, p).statistic, abs=1e-9)
    if y.sum() > 0:
        assert m["aggregate_error"] >= -1


# ------------------------------------------------------------------------ the evaluation
def test_report_side_by_side_with_paired_differences_on_the_same_resamples() -> None:
    rng = np.random.default_rng(5)
    y = rng.gamma(0.8, 100, 400) * (rng.random(400) < 0.7)
    good = y * rng.lognormal(0, 0.3, 400) + 5
    naive = np.full(400, y.mean())
    report = evaluate_ltv(y, {"model": good, "copy": good.copy(), "naive": naive},
                          n_bootstrap=300, seed=1)
    assert report.kind == "regression" and report.candidate == "model"
    assert report.baseline_name == "naive"
    direct = regression_metrics(y, good)
    for name, est in report.models["model"].items():
        assert report.metrics[name] == est
        assert est.value == pytest.approx(float(direct[name]))
        assert est.ci_low <= est.value <= est.ci_high
        assert len(est.replicates) == 300
        assert report.baselines[name] == report.models["naive"][name]
    diff = report.metrics["mae_minus_naive"]
    assert diff.value == pytest.approx(report.models["model"]["mae"].value
                                       - report.models["naive"]["mae"].value)
    np.testing.assert_allclose(
        diff.replicate_array(),
        report.models["model"]["mae"].replicate_array()
        - report.models["naive"]["mae"].replicate_array())
    assert diff.ci_high < 0  # clearly better than a constant
    # identical predictions: every paired replicate is exactly 0
    assert set(report.metrics["gini_minus_copy"].replicates) == {0.0}
    summary = report.summary()
    assert summary.loc[("naive", "mae"), "candidate_minus_model"] == pytest.approx(diff.value)
    assert len(summary) == 3 * 5


def test_decile_calibration_table() -> None:
    rng = np.random.default_rng(6)
    y = rng.gamma(1.0, 50, 1003)
    p = y + rng.normal(0, 10, 1003).clip(-y)
    report = evaluate_ltv(y, {"model": p, "zeros": np.zeros(1003)}, n_bootstrap=0)
    bins = report.calibration["model"]
    assert [b.decile for b in bins] == list(range(1, 11))
    assert sum(b.n for b in bins) == 1003 and {b.n for b in bins} <= {100, 101}
    assert sum(b.n * b.mean_actual for b in bins) == pytest.approx(y.sum())
    means = [b.mean_predicted for b in bins]
    assert means == sorted(means)
    # a constant forecast is split into equal-count bins in row order, not lumped into one
    assert len(report.calibration["zeros"]) == 10
    assert report.metric("mae").ci_low == report.metric("mae").value  # no resamples


def test_evaluate_ltv_refuses_bad_input() -> None:
    y = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="3 rows but y has"):
        evaluate_ltv([1.0, 2.0], {"m": y})
    with pytest.raises(ValueError, match=r"predictions\['m'\] has 1 missing"):
        evaluate_ltv(y, {"m": [1.0, np.nan, 2.0]})
    with pytest.raises(ValueError, match="candidate 'x'"):
        evaluate_ltv(y, {"m": y}, candidate="x")
    with pytest.raises(ValueError, match="at least one model"):
        evaluate_ltv(y, {})


def test_plots_are_figures() -> None:
    rng = np.random.default_rng(7)
    y = rng.gamma(1.0, 50, 300)
    preds = {"model": y * 1.1, "naive": np.full(300, y.mean())}
    report = evaluate_ltv(y, preds, n_bootstrap=20)
    calibration = plot_decile_calibration(report)
    scatter = plot_predicted_vs_actual(y, preds, max_points=100)
    assert isinstance(calibration, Figure) and isinstance(scatter, Figure)
    assert len(scatter.axes) == 2
    assert len(calibration.axes[0].lines) == 3  # two models and the diagonal
