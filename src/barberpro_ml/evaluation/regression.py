"""Lifetime-value evaluation: several models side by side on the same held-out customers.

:func:`evaluate_ltv` scores every model's predicted revenue against the realised revenue of the
label period with

- ``mae`` and ``rmse`` (currency units; RMSE is dominated by the few big spenders),
- ``spearman``: rank correlation (mid-ranks for ties) of predicted and realised revenue,
- ``gini``: the normalised Gini of the ordered Lorenz curve [1]_ [2]_, ``Cov(y, F(p)) /
  Cov(y, F(y))`` with ``F`` the mid-rank; 1 when the model orders customers exactly as their
  revenue does, 0 for a random order, in ``[-1, 1]`` (the rearrangement inequality); it reads
  as "which share of the best achievable concentration of revenue in the top-ranked customers
  the model reaches", the question a budget targeted by predicted value asks,
- ``aggregate_error``: ``sum(p) / sum(y) - 1``, the relative error of the forecast total
  (what finance plans on);

each with a percentile bootstrap interval [3]_. Every model is scored on the *same* resamples
of customers, so ``<metric>_minus_<other>`` (candidate minus other model, replicate by
replicate) is a paired difference whose interval the gates can read directly.

Layout of the report (:class:`RegressionReport`): ``metrics`` holds the candidate model's
metrics under their plain names (``mae``, ``gini``, ...) and the paired differences
``<metric>_minus_<other>`` against every other model; ``baselines`` holds the metrics of the
model named as the naive baseline; ``models`` holds every model's metrics side by side (the
candidate's too), ``calibration`` every model's decile table; :meth:`RegressionReport.summary`
gives the side-by-side table.

References
----------
.. [1] Lerman, R. I. & Yitzhaki, S. (1984). A note on the calculation and interpretation of the
   Gini index. *Economics Letters* 15, 363-368 (Gini as a covariance with the rank).
.. [2] Frees, E. W., Meyers, G. & Cummings, A. D. (2011). Summarizing insurance scores using a
   Gini index. *JASA* 106(495), 1085-1098 (the ordered Lorenz curve of a score).
.. [3] Efron, B. & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import rankdata

from barberpro_ml.evaluation.bootstrap import PairedDifference, estimate, resample_indices
from barberpro_ml.evaluation.overlap import overlap_of
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate

__all__ = [
    "REGRESSION_METRICS",
    "DecileBin",
    "RegressionReport",
    "evaluate_ltv",
    "plot_decile_calibration",
    "plot_predicted_vs_actual",
    "regression_metrics",
]

FloatArray = npt.NDArray[np.float64]

REGRESSION_METRICS: dict[str, bool] = {
    "mae": False, "rmse": False, "spearman": True, "gini": True, "aggregate_error": False,
}
"""Metric name -> higher is better. ``aggregate_error`` is signed: closer to 0 is better; its
direction here only orients paired differences (read it as an absolute value)."""


def _rows_cov(a: FloatArray, b: FloatArray) -> FloatArray:
    return np.asarray(np.mean((a - a.mean(axis=-1, keepdims=True))
                              * (b - b.mean(axis=-1, keepdims=True)), axis=-1))


def _safe_divide(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)
    return np.asarray(out, dtype=np.float64)


def regression_metrics(y: npt.ArrayLike, p: npt.ArrayLike, *,
                       y_ranks: npt.ArrayLike | None = None) -> dict[str, FloatArray]:
    """Every metric of :data:`REGRESSION_METRICS`, row-wise over 2-D inputs.

    Parameters
    ----------
    y, p
        Realised and predicted values, shape ``(n,)`` or ``(resamples, n)``.
    y_ranks
        Mid-ranks of ``y`` along the last axis, when already computed (shared by models).

    Returns
    -------
    dict of str to ndarray
        One value per row (a 0-d array for 1-D input). Spearman and Gini are NaN when ``y``
        (or ``p``, for Spearman) is constant; ``aggregate_error`` when ``y`` sums to 0.

    Examples
    --------
    >>> m = regression_metrics([0.0, 10.0, 30.0], [5.0, 5.0, 20.0])
    >>> float(m["mae"]), float(m["aggregate_error"]), float(m["gini"])
    (6.666666666666667, -0.25, 0.8333333333333334)
    """
    y_arr = np.asarray(y, dtype=np.float64)
    p_arr = np.asarray(p, dtype=np.float64)
    ry = (np.asarray(y_ranks, dtype=np.float64) if y_ranks is not None
          else rankdata(y_arr, axis=-1))
    rp = rankdata(p_arr, axis=-1)
    error = p_arr - y_arr
    cov_y_rp = _rows_cov(y_arr, rp)
    spearman = _safe_divide(_rows_cov(ry, rp), np.sqrt(_rows_cov(ry, ry) * _rows_cov(rp, rp)))
    return {
        "mae": np.asarray(np.mean(np.abs(error), axis=-1)),
        "rmse": np.asarray(np.sqrt(np.mean(error**2, axis=-1))),
        "spearman": spearman,
        "gini": _safe_divide(cov_y_rp, _rows_cov(y_arr, ry)),
        "aggregate_error": _safe_divide(p_arr.sum(axis=-1), y_arr.sum(axis=-1)) - 1.0,
    }


class DecileBin(BaseModel):
    """One bin of the decile calibration table: customers ranked by predicted value."""

    model_config = ConfigDict(frozen=True)

    decile: int
    n: int
    mean_predicted: float
    mean_actual: float
    min_predicted: float
    max_predicted: float


class RegressionReport(EvaluationReport):
    """The evaluation of several value predictions on the same customers.

    Attributes
    ----------
    candidate
        The model whose metrics are ``metrics`` (the one gated and registered).
    baseline_name
        The model whose metrics are ``baselines`` (the naive rule), if any.
    models
        Every model's metrics (keys of :data:`REGRESSION_METRICS`), side by side.
    differences
        For every other model, ``metric(candidate) - metric(other)`` on the same resamples.
    calibration
        Every model's decile table.
    total_actual
        Realised revenue of all evaluated customers.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["regression"] = "regression"
    candidate: str
    baseline_name: str | None = None
    confidence: float = 0.95
    models: dict[str, dict[str, MetricEstimate]]
    differences: dict[str, dict[str, PairedDifference]] = Field(default_factory=dict)
    calibration: dict[str, list[DecileBin]] = Field(default_factory=dict)
    total_actual: float = 0.0

    def summary(self) -> pd.DataFrame:
        """Models side by side: one row per (model, metric), value and interval, and the
        candidate's paired difference from that model."""
        rows = []
        for model, metrics in self.models.items():
            for name, est in metrics.items():
                diff = self.differences.get(model, {}).get(name)
                rows.append({"model": model, "metric": name, "value": est.value,
                             "ci_low": est.ci_low, "ci_high": est.ci_high,
                             "candidate_minus_model": diff.value if diff else np.nan,
                             "difference_ci_low": diff.ci_low if diff else np.nan,
                             "difference_ci_high": diff.ci_high if diff else np.nan})
        return pd.DataFrame(rows).set_index(["model", "metric"])


def _check_inputs(y: Any, predictions: Mapping[str, Any]) -> tuple[FloatArray,
                                                                    dict[str, FloatArray]]:
    y_arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if y_arr.size < 2:
        raise ValueError(f"evaluate_ltv needs at least 2 customers, got {y_arr.size}")
    if not predictions:
        raise ValueError("predictions: pass at least one model, e.g. {'xgboost': p}")
    out: dict[str, FloatArray] = {}
    for name, values in {"y": y_arr, **{str(k): v for k, v in predictions.items()}}.items():
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size != y_arr.size:
            raise ValueError(f"predictions[{name!r}] has {arr.size} rows but y has "
                             f"{y_arr.size}; every model must score the same customers")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            where = "y" if name == "y" else f"predictions[{name!r}]"
            raise ValueError(f"{where} has {bad.size} missing or infinite value(s), e.g. at "
                             f"rows {bad[:5].tolist()}")
        if name != "y":
            out[name] = arr
    return y_arr, out


def _decile_table(y: FloatArray, p: FloatArray, n_bins: int) -> list[DecileBin]:
    # Equal-count bins by predicted rank; ties (many zero forecasts) are split in row order
    # so that every bin has n / n_bins customers.
    order = np.argsort(p, kind="stable")
    bins = np.empty(len(p), dtype=np.int64)
    bins[order] = np.arange(len(p)) * n_bins // len(p)
    count = np.bincount(bins, minlength=n_bins)
    mean_p = np.bincount(bins, weights=p, minlength=n_bins) / np.maximum(count, 1)
    mean_y = np.bincount(bins, weights=y, minlength=n_bins) / np.maximum(count, 1)
    lowest = np.full(n_bins, np.inf)
    highest = np.full(n_bins, -np.inf)
    np.minimum.at(lowest, bins, p)
    np.maximum.at(highest, bins, p)
    return [DecileBin(decile=int(b) + 1, n=int(count[b]), mean_predicted=float(mean_p[b]),
                      mean_actual=float(mean_y[b]), min_predicted=float(lowest[b]),
                      max_predicted=float(highest[b]))
            for b in range(n_bins) if count[b] > 0]


def evaluate_ltv(
    y: npt.ArrayLike,
    predictions: Mapping[str, npt.ArrayLike],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    family: str = "ltv",
    candidate: str | None = None,
    baseline: str | None = None,
    confidence: float = 0.95,
    n_bins: int = 10,
    keep_replicates: bool = True,
    X: pd.DataFrame | None = None,
    train: pd.DataFrame | None = None,
    horizon_days: int | None = None,
) -> RegressionReport:
    """Evaluate value predictions of several models on the same held-out customers.

    Parameters
    ----------
    y
        Realised value of each customer over the label period (e.g. :func:`ltv_labels`).
    predictions
        Model name -> predicted value of the same customers, in the same order.
    n_bootstrap, seed, confidence
        Percentile bootstrap over customers: resamples (shared by every model), seed, level.
    family
        Model family recorded in the report.
    candidate
        The model reported under ``metrics`` (default: the first of ``predictions``).
    baseline
        The model reported under ``baselines`` (default: the last of ``predictions`` when
        there are several, else none).
    n_bins
        Bins of the calibration table (10: deciles).
    keep_replicates
        Keep the replicates in the report (the gates need them).
    X, train, horizon_days
        The evaluated customers' features (ids as columns or index levels), the training rows
        and the label period: the report's ``overlap`` records how many evaluated rows repeat
        training rows (see :func:`~barberpro_ml.evaluation.evaluate_scores`). Without
        ``train`` the report has no overlap record and the gates refuse it.

    Returns
    -------
    RegressionReport

    Raises
    ------
    ValueError
        Fewer than 2 customers, no model, a length mismatch, non-finite values, or an unknown
        ``candidate`` / ``baseline`` name.

    Examples
    --------
    >>> y = np.array([0.0, 0, 10, 50, 100])
    >>> report = evaluate_ltv(y, {"model": [1.0, 2, 12, 40, 90], "naive": np.zeros(5)},
    ...                       n_bootstrap=50)
    >>> report.metric("mae").value, report.baselines["mae"].value
    (5.0, 32.0)
    >>> report.metric("mae_minus_naive").value
    -27.0
    """
    y_arr, preds = _check_inputs(y, predictions)
    names = list(preds)
    candidate = names[0] if candidate is None else candidate
    if baseline is None and len(names) > 1:
        baseline = names[-1]
    for role, name in (("candidate", candidate), ("baseline", baseline)):
        if name is not None and name not in preds:
            raise ValueError(f"{role} {name!r} is not among the predictions {names}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    overlap = overlap_of(train, X, len(y_arr), horizon_days=horizon_days)

    points = {m: {k: float(v) for k, v in regression_metrics(y_arr, p).items()}
              for m, p in preds.items()}
    chunks: dict[str, dict[str, list[FloatArray]]] = {
        m: {k: [] for k in REGRESSION_METRICS} for m in names}
    for block in resample_indices(len(y_arr), n_bootstrap, seed):
        y_b = y_arr[block]
        ry = rankdata(y_b, axis=-1)
        for m, p in preds.items():
            for k, v in regression_metrics(y_b, p[block], y_ranks=ry).items():
                chunks[m][k].append(np.atleast_1d(v))
    replicates = {m: {k: (np.concatenate(v) if v else np.empty(0)) for k, v in d.items()}
                  for m, d in chunks.items()}

    def est(name: str, value: float, reps: FloatArray, higher: bool) -> MetricEstimate:
        return estimate(name, value, reps, confidence=confidence, higher_is_better=higher,
                        keep_replicates=keep_replicates)

    models = {m: {k: est(k, points[m][k], replicates[m][k], REGRESSION_METRICS[k])
                  for k in REGRESSION_METRICS} for m in names}
    differences: dict[str, dict[str, PairedDifference]] = {}
    for other in names:
        if other == candidate:
            continue
        differences[other] = {}
        for k, higher in REGRESSION_METRICS.items():
            base = est(f"{k}_minus_{other}", points[candidate][k] - points[other][k],
                       replicates[candidate][k] - replicates[other][k], higher)
            differences[other][k] = PairedDifference(
                **base.model_dump(), metric=k, value_a=points[candidate][k],
                value_b=points[other][k], n_bootstrap=n_bootstrap, seed=seed)
    metrics: dict[str, MetricEstimate] = dict(models[candidate])
    for diffs in differences.values():
        metrics.update({d.name: d for d in diffs.values()})
    total = float(y_arr.sum())
    notes = [f"{len(y_arr):,} customers; realised revenue {total:,.2f} in all, "
             f"{float(np.mean(y_arr > 0)):.1%} with any"]
    return RegressionReport(
        family=family, n=len(y_arr), metrics=metrics,
        baselines=dict(models[baseline]) if baseline is not None else {},
        n_bootstrap=n_bootstrap, seed=seed, notes=notes, candidate=candidate,
        baseline_name=baseline, confidence=confidence, models=models,
        differences=differences,
        calibration={m: _decile_table(y_arr, p, n_bins) for m, p in preds.items()},
        total_actual=total, overlap=overlap,
    )


_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def plot_decile_calibration(report: RegressionReport) -> Figure:
    """Mean predicted against mean realised value per predicted decile, every model.

    A calibrated model's points lie on the diagonal; points spread along it mean the model
    also separates low from high value customers.
    """
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    top = 0.0
    for colour, (model, bins) in zip(_COLOURS * 4, report.calibration.items(), strict=False):
        pred = [b.mean_predicted for b in bins]
        actual = [b.mean_actual for b in bins]
        top = max(top, *pred, *actual)
        gini = report.models[model]["gini"]
        ax.plot(pred, actual, "o-", color=colour,
                label=f"{model} (Gini {gini.value:.3f} [{gini.ci_low:.3f}, {gini.ci_high:.3f}])")
    ax.plot([0, top], [0, top], ls="--", color="#999999", label="perfectly calibrated")
    ax.set(xlabel="mean predicted value in the decile", ylabel="mean realised value",
           title=f"Decile calibration ({report.n:,} customers)")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def plot_predicted_vs_actual(y: npt.ArrayLike, predictions: Mapping[str, npt.ArrayLike], *,
                             max_points: int = 5000, seed: int = 0) -> Figure:
    """Predicted against realised value per customer, one panel per model (symlog axes).

    At most ``max_points`` customers (a seeded random subset) are drawn.
    """
    y_arr, preds = _check_inputs(y, predictions)
    rng = np.random.default_rng(seed)
    rows = (rng.choice(len(y_arr), size=max_points, replace=False)
            if len(y_arr) > max_points else np.arange(len(y_arr)))
    fig = Figure(figsize=(4.5 * len(preds), 4.5))
    axes = np.atleast_1d(fig.subplots(1, len(preds), sharey=True))
    top = max(float(y_arr.max()), *(float(p.max()) for p in preds.values()), 1.0)
    for ax, colour, (model, p) in zip(axes, _COLOURS * 4, preds.items(), strict=False):
        ax.scatter(p[rows], y_arr[rows], s=4, alpha=0.3, color=colour)
        ax.plot([0, top], [0, top], ls="--", color="#999999")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_yscale("symlog", linthresh=10)
        ax.set(xlabel=f"predicted ({model})", title=model)
    axes[0].set_ylabel("realised value")
    fig.tight_layout()
    return fig
