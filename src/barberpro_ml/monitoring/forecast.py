"""The forecast champion's health at a date: its intervals against the weeks that came.

A registered ``barberpro-forecast`` version is one forecast table made at one origin
(:class:`~barberpro_ml.registry.forecast_model.ForecastModel`), so the two questions of
:func:`~barberpro_ml.monitoring.check_model` take this form:

* **matured-label performance**: every forecast week that has ended by ``as_of`` is compared
  with what the marketplace then did (:func:`~barberpro_ml.analytics.forecast.weekly_series`,
  the series the forecaster was fit on): the share of (measure, neighborhood, week) rows inside
  their interval is the matured ``coverage``, with a bootstrap interval over *weeks* (the
  series of one week share its events, so rows are not independent). It is tested against the
  gate's coverage figure by :func:`~barberpro_ml.monitoring.degradation_test` with the margin of
  :data:`~barberpro_ml.monitoring.checks.DEFAULT_MARGINS` (``coverage``: 0.05); the paired
  difference with seasonal naive needs the backtest's scales and is named as not re-measured;
* **drift**: a forecast has no inputs but the series it forecasts, whose level is exactly what
  it predicts; the realised weekly values of the matured weeks against the same number of
  weeks before the origin are reported (PSI and Kolmogorov-Smirnov, ``weekly_value``) as
  *trending*: shown, never counted. The matured errors are the check.

A forecast table ends ``horizon_weeks`` after its origin: after that nothing new matures, and
the note says to retrain (a new version from a later origin).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from barberpro_ml.analytics.forecast import weekly_series
from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import InputError
from barberpro_ml.evaluation.bootstrap import estimate
from barberpro_ml.monitoring.checks import (
    GateFigure,
    ModelHealth,
    MonitorSettings,
    _drift_row,
    judge_performance,
    monitoring_date,
    verdict,
)
from barberpro_ml.monitoring.drift import column_drift

__all__ = ["check_forecast"]

_WEEK = pd.Timedelta(days=7)


def _weekly_coverage(rows: pd.DataFrame, n_bootstrap: int, seed: int) -> tuple[float, Any]:
    """Coverage of the matured rows and its replicates, resampling whole weeks."""
    inside = ((rows["lower"] <= rows["y"]) & (rows["y"] <= rows["upper"])).to_numpy(float)
    codes, weeks = pd.factorize(rows["week"])
    hits = np.bincount(codes, weights=inside, minlength=len(weeks))
    counts = np.bincount(codes, minlength=len(weeks)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(weeks), size=(n_bootstrap, len(weeks)))
    replicates = hits[draws].sum(axis=1) / counts[draws].sum(axis=1)
    return float(inside.mean()), replicates


def check_forecast(forecast: pd.DataFrame, data: MarketplaceData, as_of: object, *,
                   gates: list[GateFigure] | None = None,
                   settings: MonitorSettings | None = None, model_name: str | None = None,
                   version: str | None = None) -> ModelHealth:
    """The forecast champion's health at ``as_of`` (see the module docstring).

    Parameters
    ----------
    forecast
        The version's forecast table: ``measure, neighborhood, week, horizon, mean, lower,
        upper`` (a :class:`~barberpro_ml.registry.forecast_model.ForecastModel`'s
        ``forecast``).
    data
        Event data reaching at least ``as_of``.
    as_of
        The monitoring date: the forecast weeks ended by then are the matured labels.
    gates
        The gate's figures for the version (``coverage``; without them coverage is reported,
        not tested).
    settings
        The statistical settings (default: :class:`MonitorSettings`).

    Returns
    -------
    ModelHealth

    Raises
    ------
    InputError
        ``as_of`` after the data, a table without its columns, or no forecast week ended by
        ``as_of`` (the note says from when it can be monitored).

    Examples
    --------
    >>> wrapper, version = champion_forecast()                          # doctest: +SKIP
    >>> check_forecast(wrapper.forecast, data, "2025-03-31").verdict    # doctest: +SKIP
    'ok'
    """
    settings = settings or MonitorSettings()
    now = monitoring_date(as_of, data)
    needed = ["measure", "neighborhood", "week", "mean", "lower", "upper"]
    missing = [c for c in needed if c not in forecast.columns]
    if missing:
        raise InputError(f"forecast table: missing column(s) {missing}; expected {needed}")
    table = forecast.assign(week=pd.to_datetime(forecast["week"]),
                            neighborhood=forecast["neighborhood"].astype(str))
    origin = table["week"].min()
    last_week = table["week"].max()
    ended = table[table["week"] + _WEEK <= now]
    if ended.empty:
        raise InputError(
            f"as_of {now:%Y-%m-%d}: no week of the forecast made at {origin:%Y-%m-%d} has "
            f"ended yet; monitor from {origin + _WEEK:%Y-%m-%d}")
    actual = weekly_series(data, now, measures=sorted(table["measure"].unique()))
    rows = ended.merge(actual, on=["measure", "neighborhood", "week"], how="inner",
                       validate="one_to_one")
    lost = len(ended) - len(rows)
    notes = []
    if lost:
        notes.append(f"{lost} ended forecast row(s) have no realised week in the data (a "
                     "neighborhood or measure the data no longer have): left out")
    if rows.empty:
        raise InputError(f"forecast table: none of its {len(ended)} ended rows matches a "
                         "realised (measure, neighborhood, week) of the data; is it this "
                         "marketplace's forecast?")
    value, replicates = _weekly_coverage(rows, settings.n_bootstrap, settings.seed)
    metrics = {"coverage": estimate("coverage", value, replicates)}
    n_weeks = rows["week"].nunique()
    performance, note = judge_performance(metrics, list(gates or []), "coverage", origin,
                                          len(rows), settings)
    notes.insert(0, note)
    notes.append(f"{n_weeks} of the forecast's {table['week'].nunique()} weeks have ended "
                 f"({len(rows)} rows; interval over weeks)")
    if last_week + _WEEK <= now:
        notes.append(f"every week of this forecast has ended ({last_week + _WEEK:%Y-%m-%d}): "
                     "nothing more will mature; retrain for a forecast from a later origin")

    # -- drift, reported only: the realised weekly values before the origin and since
    history = weekly_series(data, origin, measures=sorted(table["measure"].unique()))
    before = history[history["week"] >= origin - n_weeks * _WEEK]
    kind, psi_value, test, statistic, p = column_drift(
        before["y"].reset_index(drop=True), rows["y"].reset_index(drop=True),
        n_bins=settings.n_bins)
    score = _drift_row({"column": "weekly_value", "kind": kind, "psi": psi_value, "test": test,
                        "statistic": statistic, "p_value": p, "p_adjusted": p,
                        "drifted": bool(psi_value >= settings.psi_threshold
                                        and p < settings.alpha_drift),
                        "trending": True})
    result, reasons = verdict(performance, [], score)
    return ModelHealth(
        family="forecast", model_name=model_name, version=version, as_of=f"{now:%Y-%m-%d}",
        reference_as_of=f"{origin:%Y-%m-%d}", n_reference=len(before), n_current=len(rows),
        performance=performance, performance_note="; ".join(n for n in notes if n),
        features=[], score=score, verdict=result, reasons=reasons, settings=settings)
