"""Rolling-origin (out-of-time) backtest: refit at each cut-off, test on what came after.

A single out-of-time test window can be lucky. A rolling-origin evaluation [1]_ repeats
"train on everything known at ``as_of``, test on the window after it" for several cut-offs and
reports each origin's metrics with their bootstrap CIs, so drift and instability show up as a
trend or as intervals that do not overlap.

The splits are built by the caller (the features stage knows how to build point-in-time
features and labels for a cut-off); this module only fits, scores and tabulates, for any
model factory.

References
----------
.. [1] Tashman, L. J. (2000). Out-of-sample tests of forecasting accuracy: an analysis and
   review. *International Journal of Forecasting* 16, 437-450.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any, NamedTuple

import pandas as pd
from pydantic import BaseModel, ConfigDict

from barberpro_ml.evaluation.classification import evaluate_classifier
from barberpro_ml.evaluation.metrics import CLASSIFICATION_METRICS
from barberpro_ml.evaluation.report import MetricEstimate

__all__ = ["BacktestReport", "BacktestRow", "BacktestSplit", "rolling_origin_backtest"]


class BacktestSplit(NamedTuple):
    """One origin: train on rows known at ``as_of``, test on the window after it.

    A plain tuple ``(X_train, y_train, X_test, y_test, as_of)`` is accepted wherever a
    split is expected; ``X_valid``/``y_valid`` (optional) are passed to ``fit`` as keywords.
    """

    X_train: Any
    y_train: Any
    X_test: Any
    y_test: Any
    as_of: Any
    X_valid: Any = None
    y_valid: Any = None


class BacktestRow(BaseModel):
    """Metrics of the model refitted at one origin."""

    model_config = ConfigDict(frozen=True)

    as_of: datetime
    n_train: int
    n_test: int
    positive_rate: float
    threshold: float
    metrics: dict[str, MetricEstimate]
    baselines: dict[str, MetricEstimate]


class BacktestReport(BaseModel):
    """One :class:`BacktestRow` per origin, in time order."""

    model_config = ConfigDict(frozen=True)

    family: str
    metrics: list[str]
    n_bootstrap: int
    seed: int
    rows: list[BacktestRow]

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per (origin, metric) with value, CI and baseline value."""
        records = [
            {
                "as_of": row.as_of, "metric": name, "value": m.value, "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "baseline": row.baselines[name].value if name in row.baselines else float("nan"),
                "n_test": row.n_test, "positive_rate": row.positive_rate,
            }
            for row in self.rows
            for name, m in row.metrics.items()
        ]
        return pd.DataFrame.from_records(records)


def rolling_origin_backtest(
    make_model: Callable[[], Any],
    splits: Iterable[BacktestSplit | Sequence[Any]],
    *,
    metrics: Sequence[str] = ("roc_auc", "pr_auc", "accuracy", "brier", "ece"),
    n_bootstrap: int = 500,
    seed: int = 0,
    family: str = "churn",
    keep_replicates: bool = False,
) -> BacktestReport:
    """Refit a fresh model at every origin and evaluate it on that origin's test window.

    Parameters
    ----------
    make_model
        Returns a new, unfitted classifier (e.g. ``lambda: ChurnClassifier(random_state=0)``).
    splits
        :class:`BacktestSplit` objects or tuples ``(X_train, y_train, X_test, y_test, as_of)``
        with strictly increasing ``as_of``.
    metrics
        Metrics kept per origin (names of ``CLASSIFICATION_METRICS``).
    n_bootstrap, seed
        Resamples per origin; origin ``i`` uses the seed ``seed + i``.
    family
        Model family recorded in the report.
    keep_replicates
        Keep the bootstrap replicates of each origin's metrics.

    Returns
    -------
    BacktestReport

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression  # doctest: +SKIP
    >>> report = rolling_origin_backtest(LogisticRegression, splits)  # doctest: +SKIP
    >>> report.to_frame().pivot(index="as_of", columns="metric", values="value")  # doctest: +SKIP
    """
    unknown = [m for m in metrics if m not in CLASSIFICATION_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(CLASSIFICATION_METRICS)}")
    prepared = [s if isinstance(s, BacktestSplit) else BacktestSplit(*s) for s in splits]
    if not prepared:
        raise ValueError("no splits: pass at least one (X_train, y_train, X_test, y_test, as_of)")
    origins = [pd.Timestamp(s.as_of) for s in prepared]
    out_of_order = [
        f"{a.date()} -> {b.date()}" for a, b in pairwise(origins) if b <= a
    ]
    if out_of_order:
        raise ValueError(
            f"as_of must be strictly increasing (origins in time order); got {out_of_order}"
        )
    rows = []
    for i, (split, as_of) in enumerate(zip(prepared, origins, strict=True)):
        model = make_model()
        if split.X_valid is not None:
            model.fit(split.X_train, split.y_train, X_valid=split.X_valid, y_valid=split.y_valid)
        else:
            model.fit(split.X_train, split.y_train)
        report = evaluate_classifier(
            model, split.X_test, split.y_test, n_bootstrap=n_bootstrap, seed=seed + i,
            family=family,
        )

        def kept(estimate: MetricEstimate) -> MetricEstimate:
            return estimate if keep_replicates else estimate.model_copy(update={"replicates": []})

        rows.append(BacktestRow(
            as_of=as_of.to_pydatetime(),
            n_train=len(split.X_train),
            n_test=report.n,
            positive_rate=report.positive_rate,
            threshold=report.threshold,
            metrics={m: kept(report.metrics[m]) for m in metrics if m in report.metrics},
            baselines={m: kept(report.baselines[m]) for m in metrics if m in report.baselines},
        ))
    return BacktestReport(family=family, metrics=list(metrics), n_bootstrap=n_bootstrap,
                          seed=seed, rows=rows)
