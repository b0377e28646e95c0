"""evaluate_scores / evaluate_classifier: the report's keys, baselines, intervals, slices,
serialisation and refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from barberpro_ml.evaluation import (
    BASELINE_METRICS,
    CLASSIFICATION_METRICS,
    ClassificationReport,
    EvaluationReport,
    evaluate_classifier,
    evaluate_scores,
)


def churn_scores(n: int, seed: int = 0, rate_shift: float = -1.5) -> tuple[np.ndarray, np.ndarray]:
    """True churn probabilities (a minority class) and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p = expit(rate_shift + rng.normal(0, 1.2, n))
    return (rng.random(n) < p).astype(np.int64), p


def test_report_has_every_metric_with_an_interval_and_its_replicates() -> None:
    y, p = churn_scores(3000)
    report = evaluate_scores(y, p, threshold=0.4, n_bootstrap=300, seed=1)
    assert isinstance(report, EvaluationReport) and report.kind == "classification"
    assert list(report.metrics) == list(CLASSIFICATION_METRICS)
    assert set(report.baselines) == set(BASELINE_METRICS)
    for name, m in report.metrics.items():
        assert m.ci_low <= m.value <= m.ci_high or name == "ece", name
        assert len(m.replicates) == 300
    assert report.threshold == 0.4 and report.n == 3000
    assert report.metrics["accuracy"].value == pytest.approx(np.mean((p > 0.4) == y))
    assert report.metrics["accuracy_at_0_5"].value == pytest.approx(np.mean((p > 0.5) == y))
    cm = report.confusion_matrix
    assert cm.tn + cm.fp + cm.fn + cm.tp == 3000 and cm.tp + cm.fn == y.sum()
    assert report.positive_rate == pytest.approx(y.mean())
    assert sum(b.count for b in report.calibration_bins) == 3000


def test_baselines_are_nobody_churns_and_chance() -> None:
    y, p = churn_scores(2000, seed=2)
    assert y.mean() < 0.5
    report = evaluate_scores(y, p, n_bootstrap=200, seed=0)
    majority = report.baselines["accuracy"]
    assert majority.value == pytest.approx(1 - y.mean())
    assert majority.ci_low < majority.value < majority.ci_high
    assert report.baselines["roc_auc"].value == 0.5
    assert report.baselines["pr_auc"].value == pytest.approx(y.mean())
    # same resamples: model and baseline replicates are paired row by row
    model = np.asarray(report.metrics["accuracy"].replicates)
    base = np.asarray(majority.replicates)
    assert np.corrcoef(model, base)[0, 1] > 0.3


def test_oracle_probabilities_are_calibrated_and_shuffled_ones_are_not_better_than_chance() -> None:
    y, p = churn_scores(20_000, seed=3)
    oracle = evaluate_scores(y, p, n_bootstrap=200)
    assert oracle.metrics["ece"].ci_low < 0.02
    shuffled = evaluate_scores(y, np.random.default_rng(0).permutation(p), n_bootstrap=200)
    auc = shuffled.metrics["roc_auc"]
    assert auc.ci_low < 0.5 < auc.ci_high


def test_report_round_trips_through_json() -> None:
    y, p = churn_scores(800, seed=4)
    slices = pd.DataFrame({"channel": np.where(np.arange(800) % 3 == 0, "paid", "organic")})
    report = evaluate_scores(y, p, n_bootstrap=50, slices=slices)
    again = ClassificationReport.model_validate_json(report.model_dump_json())
    assert again == report
    assert again.slices[0].small in (True, False)


def test_slices_have_sizes_their_own_metrics_and_small_ones_are_flagged() -> None:
    y, p = churn_scores(4000, seed=5)
    rng = np.random.default_rng(0)
    slices = pd.DataFrame({
        "channel": rng.choice(["organic", "paid_social", "referral"], 4000, p=[0.6, 0.36, 0.04]),
        "tenure_band": pd.Categorical(rng.choice(["<3m", "3-12m", ">12m", None], 4000)),
    })
    report = evaluate_scores(y, p, n_bootstrap=100, slices=slices, min_slice_size=300)
    by_dimension: dict[str, int] = {}
    for s in report.slices:
        by_dimension[s.dimension] = by_dimension.get(s.dimension, 0) + s.n
        rows = (slices[s.dimension].astype(object).fillna("<missing>") == s.level).to_numpy()
        assert s.n == rows.sum() and s.positives == y[rows].sum()
        assert s.small == (s.n < 300)
        direct = evaluate_scores(y[rows], p[rows], n_bootstrap=0)
        assert s.metrics["roc_auc"].value == pytest.approx(direct.metrics["roc_auc"].value)
    assert by_dimension == {"channel": 4000, "tenure_band": 4000}
    levels = {(s.dimension, s.level) for s in report.slices}
    assert ("tenure_band", "<missing>") in levels
    referral = next(s for s in report.slices if s.level == "referral")
    assert referral.small


def test_slice_seeds_do_not_depend_on_other_slices() -> None:
    y, p = churn_scores(1500, seed=6)
    channel = pd.Series(np.where(np.arange(1500) % 2 == 0, "a", "b"), name="channel")
    alone = evaluate_scores(y, p, n_bootstrap=50, slices=channel.to_frame())
    more = evaluate_scores(y, p, n_bootstrap=50,
                           slices=pd.DataFrame({"channel": channel, "other": "x"}))
    first = next(s for s in more.slices if s.dimension == "channel" and s.level == "a")
    assert first == alone.slices[0]


def test_slice_refusals_say_what_is_wrong() -> None:
    y, p = churn_scores(500, seed=7)
    with pytest.raises(ValueError, match="slices has 499 rows"):
        evaluate_scores(y, p, slices=pd.DataFrame({"c": ["a"] * 499}))
    with pytest.raises(ValueError, match="'days' has 500 levels"):
        evaluate_scores(y, p, n_bootstrap=0, slices=pd.DataFrame({"days": np.arange(500)}))
    y_series = pd.Series(y, index=np.arange(500) + 1000)
    with pytest.raises(ValueError, match="different indexes"):
        evaluate_scores(y_series, p, slices=pd.DataFrame({"c": ["a"] * 500}))


def test_a_single_class_cannot_be_evaluated() -> None:
    with pytest.raises(ValueError, match="only one class"):
        evaluate_scores(np.zeros(50), np.full(50, 0.2))


def test_evaluate_classifier_uses_the_models_classes_and_threshold() -> None:
    rng = np.random.default_rng(8)
    X = pd.DataFrame({"x": rng.normal(size=1500)}, index=np.arange(1500) + 10)
    labels = np.where(rng.random(1500) < expit(2 * X["x"] - 1), "churned", "active")
    model = LogisticRegression().fit(X, labels)
    report = evaluate_classifier(model, X, labels, n_bootstrap=50)
    assert report.threshold == 0.5
    p = model.predict_proba(X)[:, 1]
    assert report.metrics["roc_auc"].value == pytest.approx(
        evaluate_scores(labels == "churned", p, n_bootstrap=0).metrics["roc_auc"].value)
    model.threshold_ = 0.3  # what a ChurnClassifier carries
    assert evaluate_classifier(model, X, labels, n_bootstrap=0).threshold == 0.3
    assert evaluate_classifier(model, X, labels, threshold=0.6, n_bootstrap=0).threshold == 0.6
    slices = pd.DataFrame({"half": np.where(X["x"] > 0, "high", "low")}, index=X.index)
    assert len(evaluate_classifier(model, X, labels, n_bootstrap=0, slices=slices).slices) == 2
    with pytest.raises(ValueError, match="does not know"):
        evaluate_classifier(model, X, np.where(labels == "active", "lost", labels))


# --------------------------------------------------------------------------- cluster bootstrap

def _scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    return (rng.uniform(size=n) < p).astype(int), p


def test_singleton_groups_are_the_row_bootstrap() -> None:
    y, p = _scores(300, 0)
    rows = evaluate_scores(y, p, n_bootstrap=200, seed=3)
    single = evaluate_scores(y, p, n_bootstrap=200, seed=3, groups=np.arange(300) * 7)
    for name in ("roc_auc", "brier", "log_loss"):
        assert single.metrics[name].replicates == rows.metrics[name].replicates
    assert any("cluster bootstrap over 300 groups" in n for n in single.notes)


@given(k=st.integers(2, 5), seed=st.integers(0, 10_000))
@settings(max_examples=10, deadline=None)
def test_cluster_bootstrap_of_copies_matches_the_originals(k: int, seed: int) -> None:
    """k identical rows per unit: resampling units gives the originals' interval (AUC is
    invariant to weighting every row alike), resampling rows pretends to k times the data."""
    y, p = _scores(120, seed)
    original = evaluate_scores(y, p, n_bootstrap=300, seed=1).metrics["roc_auc"]
    y_k, p_k, unit = np.repeat(y, k), np.repeat(p, k), np.repeat(np.arange(120), k)
    clustered = evaluate_scores(y_k, p_k, n_bootstrap=300, seed=1, groups=unit).metrics[
        "roc_auc"]
    naive = evaluate_scores(y_k, p_k, n_bootstrap=300, seed=1).metrics["roc_auc"]
    assert clustered.value == pytest.approx(original.value)
    assert np.allclose(clustered.replicates, original.replicates)
    assert (naive.ci_high - naive.ci_low) < (clustered.ci_high - clustered.ci_low)


def test_bad_groups_are_refused() -> None:
    y, p = _scores(50, 1)
    with pytest.raises(ValueError, match="groups has 49 labels but the evaluation set has 50"):
        evaluate_scores(y, p, n_bootstrap=10, groups=np.arange(49))
    labels = np.arange(50, dtype=float)
    labels[[3, 8]] = np.nan
    with pytest.raises(ValueError, match="2 of 50 rows have no group label"):
        evaluate_scores(y, p, n_bootstrap=10, groups=labels)
