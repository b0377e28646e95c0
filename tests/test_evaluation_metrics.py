"""Vectorised weighted metrics and the bootstrap machinery, checked against scikit-learn and
against direct computations on explicitly resampled rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

from barberpro_ml.evaluation import (
    CLASSIFICATION_METRICS,
    BinaryScores,
    bootstrap_metric,
    paired_bootstrap,
    resample_counts,
    resample_indices,
)
from barberpro_ml.evaluation.metrics import check_binary_scores, equal_mass_bins


@st.composite
def labelled_scores(draw: st.DrawFn, min_size: int = 2, max_size: int = 80
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Labels with both classes and probabilities on a coarse grid (so with many ties)."""
    n = draw(st.integers(min_size, max_size))
    y = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    y[0], y[-1] = 0, 1
    grid = draw(st.sampled_from([4, 10, 1000]))
    p = draw(arrays(np.int64, n, elements=st.integers(0, grid))) / grid
    return y, p.astype(float)


def _point(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    computed = BinaryScores(y, p, threshold=threshold).compute(np.ones((1, len(y))))
    return {k: float(v[0]) for k, v in computed.items()}


@settings(max_examples=80, deadline=None)
@given(labelled_scores(), st.sampled_from([0.3, 0.5, 0.7]))
def test_point_metrics_equal_scikit_learn(data: tuple[np.ndarray, np.ndarray], t: float) -> None:
    y, p = data
    got = _point(y, p, t)
    predicted = (p > t).astype(int)
    expected = {
        "roc_auc": skm.roc_auc_score(y, p),
        "pr_auc": skm.average_precision_score(y, p),
        "accuracy": skm.accuracy_score(y, predicted),
        "accuracy_at_0_5": skm.accuracy_score(y, (p > 0.5).astype(int)),
        "balanced_accuracy": skm.balanced_accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted, zero_division=0),
        "recall": skm.recall_score(y, predicted),
        "f1": skm.f1_score(y, predicted, zero_division=0),
        "brier": skm.brier_score_loss(y, p),
        "log_loss": skm.log_loss(y, p),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert set(got) == set(CLASSIFICATION_METRICS)


@settings(max_examples=60, deadline=None)
@given(labelled_scores(), st.data())
def test_count_weights_equal_metrics_of_the_repeated_rows(
    data: tuple[np.ndarray, np.ndarray], draw: st.DataObject
) -> None:
    y, p = data
    counts = draw.draw(arrays(np.int64, len(y), elements=st.integers(0, 3)))
    y_rep, p_rep = np.repeat(y, counts), np.repeat(p, counts)
    weighted = BinaryScores(y, p).compute(counts[None, :].astype(float))
    both_classes = len(np.unique(y_rep)) == 2
    if both_classes:
        assert weighted["roc_auc"][0] == pytest.approx(skm.roc_auc_score(y_rep, p_rep))
        assert weighted["pr_auc"][0] == pytest.approx(skm.average_precision_score(y_rep, p_rep))
    else:
        assert np.isnan(weighted["roc_auc"][0])
    if len(y_rep):
        assert weighted["accuracy"][0] == pytest.approx(np.mean((p_rep > 0.5) == y_rep))
        assert weighted["brier"][0] == pytest.approx(np.mean((p_rep - y_rep) ** 2))


def test_ece_is_the_equal_mass_binned_calibration_gap() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 5, 30_000)
    y = (rng.random(p.size) < p).astype(int)
    calibrated = _point(y, p)["ece"]
    shifted = _point(y, np.clip(p + 0.1, 0, 1))["ece"]
    assert calibrated < 0.01
    assert shifted == pytest.approx(0.1, abs=0.01)
    bins, _ = equal_mass_bins(p, 15)
    direct = sum(
        abs(y[bins == b].mean() - p[bins == b].mean()) * np.mean(bins == b) for b in range(15)
    )
    assert calibrated == pytest.approx(direct)
    assert np.bincount(bins).min() >= p.size // 15 - 1  # equal mass


def test_lift_top_decile_is_the_churn_rate_of_the_top_tenth() -> None:
    rng = np.random.default_rng(1)
    p = rng.permutation(1000) / 1000  # no ties, n divisible by 10
    y = (rng.random(1000) < p).astype(int)
    top = np.argsort(-p)[:100]
    assert _point(y, p)["lift_top_decile"] == pytest.approx(y[top].mean() / y.mean())
    # a constant score ranks nobody first: the top decile is an average tenth
    assert _point(y, np.full(1000, 0.3))["lift_top_decile"] == pytest.approx(1.0)


def test_metrics_undefined_on_a_resample_are_nan() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    only_negatives = np.array([[2.0, 2.0, 0.0, 0.0]])
    out = BinaryScores(y, p).compute(only_negatives)
    for name in ("roc_auc", "pr_auc", "recall", "balanced_accuracy", "lift_top_decile"):
        assert np.isnan(out[name][0]), name
    assert out["accuracy"][0] == 1.0


def test_bad_scores_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"2 score\(s\) are not probabilities"):
        check_binary_scores([0, 1, 1], [0.2, 1.3, -0.1])
    with pytest.raises(ValueError, match="3 rows but the scores have 2"):
        check_binary_scores([0, 1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="1 missing label"):
        check_binary_scores(np.array([0.0, np.nan, 1.0]), [0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="binary"):
        check_binary_scores([0, 1, 2], [0.2, 0.3, 0.4])
    y01, _ = check_binary_scores(np.array(["stay", "churn", "stay"]), [0.1, 0.9, 0.2])
    assert y01.tolist() == [1, 0, 1]  # the larger label ("stay") is the positive class


# ------------------------------------------------------------------------------ bootstrap
def test_resamples_do_not_depend_on_chunking() -> None:
    small = np.concatenate(list(resample_indices(37, 50, seed=5, chunk_elements=100)))
    large = np.concatenate(list(resample_indices(37, 50, seed=5, chunk_elements=10**6)))
    np.testing.assert_array_equal(small, large)
    counts = np.concatenate(list(resample_counts(37, 50, seed=5, chunk_elements=100)))
    assert counts.shape == (50, 37)
    assert (counts.sum(axis=1) == 37).all()
    np.testing.assert_array_equal(counts[7], np.bincount(small[7], minlength=37))


def test_interval_narrows_as_the_test_set_grows() -> None:
    rng = np.random.default_rng(2)

    def width(n: int) -> float:
        p = rng.uniform(size=n)
        y = (rng.random(n) < p).astype(int)
        est = paired_bootstrap(y, p, np.full(n, 0.5), "roc_auc", n_bootstrap=300, seed=0)
        return est.ci_high - est.ci_low

    assert width(8000) < 0.7 * width(2000)


def test_paired_difference_of_a_scorer_with_itself_is_exactly_zero() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(size=500)
    y = (rng.random(500) < p).astype(int)
    diff = paired_bootstrap(y, p, p, "log_loss", n_bootstrap=200, seed=1)
    assert diff.value == 0 and diff.ci_low == 0 and diff.ci_high == 0
    assert diff.higher_is_better is False and diff.metric == "log_loss"


def test_named_and_callable_paths_use_the_same_resamples() -> None:
    rng = np.random.default_rng(4)
    p_a = rng.uniform(size=300)
    y = (rng.random(300) < p_a).astype(int)
    p_b = np.clip(p_a + rng.normal(0, 0.3, 300), 0, 1)
    named = paired_bootstrap(y, p_a, p_b, "roc_auc", n_bootstrap=100, seed=9)
    generic = paired_bootstrap(y, p_a, p_b, skm.roc_auc_score, n_bootstrap=100, seed=9)
    np.testing.assert_allclose(named.replicates, generic.replicates, rtol=1e-9)
    assert named.value_a == pytest.approx(skm.roc_auc_score(y, p_a))
    assert named.ci_low > 0  # the noisy copy is significantly worse


def test_bootstrap_metric_matches_the_paired_path_for_one_scorer() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(size=400)
    y = (rng.random(400) < p).astype(int)
    one = bootstrap_metric(skm.brier_score_loss, y, p, n_bootstrap=100, seed=2,
                           higher_is_better=False)
    paired = paired_bootstrap(y, p, np.zeros(400), skm.brier_score_loss, n_bootstrap=100,
                              seed=2)
    zero_brier = np.array([y[r].mean() for block in resample_indices(400, 100, 2)
                           for r in block])
    np.testing.assert_allclose(np.asarray(paired.replicates) + zero_brier, one.replicates)
    assert one.ci_low <= one.value <= one.ci_high


def test_unknown_metric_names_are_listed() -> None:
    with pytest.raises(ValueError, match="roc_auc"):
        paired_bootstrap([0, 1], [0.1, 0.9], [0.2, 0.8], "auc")
