"""Rolling-origin backtest over out-of-time cut-offs, generic over the model factory."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from barberpro_ml.evaluation import BacktestSplit, rolling_origin_backtest
from barberpro_ml.models import ChurnClassifier


def drifting_splits(n_origins: int, n: int = 600, seed: int = 0) -> list[BacktestSplit]:
    """Cut-offs a month apart; the signal weakens over time (the test windows get harder)."""
    rng = np.random.default_rng(seed)
    splits = []
    for i in range(n_origins):
        strength = 2.0 - 0.6 * i

        def draw(size: int, strength: float = strength) -> tuple[pd.DataFrame, np.ndarray]:
            X = pd.DataFrame({"visits": rng.normal(size=size),
                              "channel": rng.choice(["organic", "paid"], size)})
            y = (rng.random(size) < expit(-1 + strength * X["visits"])).astype(int)
            return X, y

        X_train, y_train = draw(n)
        X_test, y_test = draw(n // 2)
        splits.append(BacktestSplit(X_train, y_train, X_test, y_test,
                                    pd.Timestamp("2024-01-01") + pd.DateOffset(months=i)))
    return splits


def test_one_row_per_origin_with_intervals_and_the_drift_visible() -> None:
    splits = drifting_splits(3)
    report = rolling_origin_backtest(
        lambda: ChurnClassifier(n_estimators=30, random_state=0, n_jobs=1), splits,
        n_bootstrap=100,
    )
    assert [r.as_of for r in report.rows] == [s.as_of.to_pydatetime() for s in splits]
    assert all(r.n_test == 300 and r.n_train == 600 for r in report.rows)
    aucs = [r.metrics["roc_auc"].value for r in report.rows]
    assert aucs[0] > aucs[-1]  # the weakening signal shows as a trend
    assert report.rows[0].metrics["roc_auc"].ci_low > report.rows[-1].metrics["roc_auc"].ci_high
    frame = report.to_frame()
    assert len(frame) == 3 * len(report.metrics)
    accuracy = frame[frame["metric"] == "accuracy"]
    assert accuracy["baseline"].notna().all()  # majority-class accuracy beside it
    assert report.rows[0].metrics["roc_auc"].replicates == []  # not kept by default


def test_plain_tuples_and_any_sklearn_classifier_work() -> None:
    splits = [tuple(s)[:5] for s in drifting_splits(2, seed=1)]
    numeric = [(a[["visits"]], b, c[["visits"]], d, e) for a, b, c, d, e in splits]
    report = rolling_origin_backtest(LogisticRegression, numeric, metrics=["roc_auc"],
                                     n_bootstrap=20, keep_replicates=True)
    assert len(report.rows) == 2 and list(report.rows[0].metrics) == ["roc_auc"]
    assert len(report.rows[0].metrics["roc_auc"].replicates) == 20


def test_validation_rows_are_passed_to_fit() -> None:
    seen: dict[str, Any] = {}

    class Recorder(LogisticRegression):  # type: ignore[misc]
        def fit(self, X: Any, y: Any, X_valid: Any = None, y_valid: Any = None) -> Any:
            seen["valid_rows"] = None if X_valid is None else len(X_valid)
            return super().fit(X[["visits"]], y)

        def predict_proba(self, X: Any) -> Any:
            return super().predict_proba(X[["visits"]])

    split = drifting_splits(1, seed=2)[0]._replace(
        X_valid=drifting_splits(1, seed=3)[0].X_test, y_valid=drifting_splits(1, seed=3)[0].y_test)
    rolling_origin_backtest(Recorder, [split], n_bootstrap=0)
    assert seen["valid_rows"] == 300


def test_origins_out_of_time_order_are_refused() -> None:
    splits = drifting_splits(2)
    with pytest.raises(ValueError, match="strictly increasing"):
        rolling_origin_backtest(LogisticRegression, splits[::-1], n_bootstrap=0)
    with pytest.raises(ValueError, match="unknown metrics"):
        rolling_origin_backtest(LogisticRegression, splits, metrics=["auc"])
