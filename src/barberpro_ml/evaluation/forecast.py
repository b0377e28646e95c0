"""Evaluation of interval forecasts from a rolling-origin backtest.

Every row of a backtest is one forecast: a series, the origin it was made at (the first week
it did not see), its horizon, the realised value ``y``, the point forecast and the central
prediction interval ``[lower, upper]`` at a nominal ``level``. This module turns those rows
into the metrics a forecast gate needs, each with a bootstrap interval that respects the
dependence of overlapping windows:

- ``coverage``: the share of realised values inside their interval; for calibrated
  intervals, close to ``level``.
- ``mean_scaled_width``: the interval's width over the series' scale (sharpness; smaller is
  better at the same coverage).
- ``winkler_scaled``: the Winkler (interval) score [1]_ over the series' scale, width plus
  ``2 / alpha`` times the distance by which the value falls outside (``alpha = 1 - level``):
  it rewards sharp intervals and punishes misses; smaller is better.
- ``mase``: mean absolute error over the series' scale [2]_ (the in-sample mean absolute
  one-step naive error at the origin, so the scale uses only what the forecaster saw);
  ``mase_<reference>`` the same for a reference forecast (seasonal naive) on the same rows,
  and ``mase_minus_<reference>`` their paired difference (below 0: the model is better).

Forecasts made at consecutive origins share targets (origin ``t`` at horizon ``h`` and origin
``t + 1`` at horizon ``h - 1`` predict the same week), so rows are not independent and a row
bootstrap would give intervals far too narrow. The intervals here come from a **circular
block bootstrap over origins** [3]_: blocks of ``block_length`` consecutive origins (default:
the largest horizon, the span over which two origins' forecasts overlap) are drawn with
replacement, every row of a drawn origin comes along, and each replicate's metric is its
ratio of summed numerators to summed row counts.

References
----------
.. [1] Winkler, R. L. (1972). A decision-theoretic approach to interval estimation. Journal
   of the American Statistical Association, 67(337), 187-191.
.. [2] Hyndman, R. J., & Koehler, A. B. (2006). Another look at measures of forecast
   accuracy. International Journal of Forecasting, 22(4), 679-688.
.. [3] Politis, D. N., & Romano, J. P. (1992). A circular block-resampling procedure for
   stationary data. Exploring the Limits of Bootstrap, 263-270.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

from barberpro_ml.evaluation.bootstrap import estimate
from barberpro_ml.evaluation.overlap import OverlapReport
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate

__all__ = ["BACKTEST_COLUMNS", "block_bootstrap_origins", "interval_forecast_report",
           "winkler_score"]

FloatArray = npt.NDArray[np.float64]

#: Columns :func:`interval_forecast_report` reads from a backtest frame.
BACKTEST_COLUMNS = ("origin", "horizon", "y", "mean", "lower", "upper", "scale")


def winkler_score(y: FloatArray, lower: FloatArray, upper: FloatArray, level: float
                  ) -> FloatArray:
    """Winkler's interval score of each row: width plus ``2 / (1 - level)`` times the miss.

    Examples
    --------
    >>> winkler_score(np.array([5.0, 12.0]), np.array([0.0, 0.0]), np.array([10.0, 10.0]),
    ...               0.9).round(6).tolist()
    [10.0, 50.0]
    """
    alpha = 1.0 - level
    below = np.clip(lower - y, 0.0, None)
    above = np.clip(y - upper, 0.0, None)
    return np.asarray((upper - lower) + (2.0 / alpha) * (below + above), dtype=np.float64)


def block_bootstrap_origins(n_origins: int, n_bootstrap: int, block_length: int, seed: int
                            ) -> npt.NDArray[np.int64]:
    """Origin indices of ``n_bootstrap`` circular block-bootstrap resamples, shape ``(B, n)``.

    Each resample strings together blocks of ``block_length`` consecutive origins (wrapping
    around the end) starting at uniformly drawn origins, cut to ``n_origins``.

    Examples
    --------
    >>> block_bootstrap_origins(5, 2, 2, seed=0).shape
    (2, 5)
    """
    if n_origins < 1:
        raise ValueError("block_bootstrap_origins: no origins to resample")
    length = max(1, min(block_length, n_origins))
    n_blocks = math.ceil(n_origins / length)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_origins, size=(n_bootstrap, n_blocks))
    offsets = np.arange(length)
    idx = (starts[:, :, None] + offsets[None, None, :]) % n_origins
    return idx.reshape(n_bootstrap, n_blocks * length)[:, :n_origins].astype(np.int64)


def interval_forecast_report(
    backtest: pd.DataFrame, *, level: float, reference: str | None = "seasonal_naive",
    n_bootstrap: int = 1000, seed: int = 0, block_length: int | None = None,
    family: str = "forecast", overlap: OverlapReport | None = None,
    notes: list[str] | None = None,
) -> EvaluationReport:
    """Coverage, sharpness and accuracy of a backtest's interval forecasts, with block CIs.

    Parameters
    ----------
    backtest
        One row per forecast with :data:`BACKTEST_COLUMNS` (``origin`` any sortable key;
        ``scale`` > 0, the series' scale at that origin) and, when ``reference`` is given, a
        ``<reference>`` column holding the reference forecast of the same rows.
    level
        The intervals' nominal central level (0.89: 89% intervals).
    reference
        Column of a reference point forecast for ``mase_<reference>`` and
        ``mase_minus_<reference>``; None: no comparison.
    n_bootstrap, seed
        Circular block-bootstrap replicates over origins and their seed.
    block_length
        Origins per block; default: the largest horizon in the backtest.
    family, overlap, notes
        Passed to the :class:`~barberpro_ml.evaluation.report.EvaluationReport`.

    Returns
    -------
    EvaluationReport
        ``kind="forecast"``, ``n`` = rows; metrics ``coverage``, ``mean_scaled_width``,
        ``winkler_scaled``, ``mase`` (+ reference metrics), each with its bootstrap replicates.

    Raises
    ------
    ValueError
        A missing column, no rows, a non-finite value or a scale that is not positive.

    Examples
    --------
    >>> bt = pd.DataFrame({"origin": [0, 0, 1, 1], "horizon": [1, 2, 1, 2],
    ...                    "y": [10.0, 11, 12, 9], "mean": [10.0, 10, 11, 10],
    ...                    "lower": [8.0, 8, 9, 8], "upper": [12.0, 12, 13, 12],
    ...                    "scale": [1.0, 1, 1, 1]})
    >>> interval_forecast_report(bt, level=0.9, reference=None, n_bootstrap=100
    ...                          ).metrics["coverage"].value
    1.0
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval_forecast_report: level must be in (0, 1), got {level}")
    wanted = [*BACKTEST_COLUMNS, *([reference] if reference else [])]
    missing = [c for c in wanted if c not in backtest.columns]
    if missing:
        raise ValueError(f"interval_forecast_report: the backtest lacks column(s) {missing} "
                         f"(has {list(backtest.columns)})")
    if backtest.empty:
        raise ValueError("interval_forecast_report: the backtest has no rows")
    values = {c: backtest[c].to_numpy(dtype=np.float64) for c in wanted if c != "origin"}
    for name, column in values.items():
        bad = ~np.isfinite(column)
        if bad.any():
            raise ValueError(f"interval_forecast_report: column {name!r} has "
                             f"{int(bad.sum()):,} non-finite value(s), e.g. at rows "
                             f"{np.flatnonzero(bad)[:3].tolist()}")
    if (values["scale"] <= 0).any():
        raise ValueError("interval_forecast_report: every scale must be > 0")
    y, scale = values["y"], values["scale"]
    per_row: dict[str, FloatArray] = {
        "coverage": ((values["lower"] <= y) & (y <= values["upper"])).astype(np.float64),
        "mean_scaled_width": (values["upper"] - values["lower"]) / scale,
        "winkler_scaled": winkler_score(y, values["lower"], values["upper"], level) / scale,
        "mase": np.abs(y - values["mean"]) / scale,
    }
    if reference:
        per_row[f"mase_{reference}"] = np.abs(y - values[reference]) / scale
        per_row[f"mase_minus_{reference}"] = per_row["mase"] - per_row[f"mase_{reference}"]

    # Per-origin sums: a replicate's metric is sum(numerators) / sum(rows) of its origins.
    codes, origins = pd.factorize(backtest["origin"], sort=True)
    n_origins = len(origins)
    counts = np.bincount(codes, minlength=n_origins).astype(np.float64)
    length = block_length or int(backtest["horizon"].max())
    draws = block_bootstrap_origins(n_origins, n_bootstrap, length, seed) if n_bootstrap \
        else np.empty((0, n_origins), dtype=np.int64)
    drawn_counts = counts[draws].sum(axis=1)
    lower_is_better = {"mean_scaled_width", "winkler_scaled", "mase"}
    metrics: dict[str, MetricEstimate] = {}
    for name, row_values in per_row.items():
        sums = np.bincount(codes, weights=row_values, minlength=n_origins)
        replicates = sums[draws].sum(axis=1) / drawn_counts
        higher = name not in lower_is_better and not name.startswith("mase")
        metrics[name] = estimate(name, float(row_values.mean()), replicates,
                                 higher_is_better=higher)
    all_notes = [f"{len(backtest):,} forecasts from {n_origins} origins; intervals from a "
                 f"circular block bootstrap over origins (blocks of {min(length, n_origins)} "
                 f"origins, the span over which forecasts share targets)", *(notes or [])]
    return EvaluationReport(family=family, kind="forecast", n=len(backtest), metrics=metrics,
                            n_bootstrap=n_bootstrap, seed=seed, overlap=overlap,
                            notes=all_notes)
