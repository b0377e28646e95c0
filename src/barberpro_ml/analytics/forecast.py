"""Weekly forecasts of net revenue and bookings whose prediction intervals are verified.

The data flow, top to bottom::

    events -> weekly_series (complete weeks, per neighborhood + the total)
           -> rolling-origin backtest of every candidate (statsforecast AutoETS, AutoARIMA,
              seasonal naive; a global gradient-boosting model with the quantile loss)
           -> reconciliation (bottom-up, MinT-shrink) so neighborhoods sum to the total
           -> pick (candidate, reconciliation) per measure on the selection origins (MASE)
           -> conformal intervals: |error| / scale, finite-sample rank ceil((n + 1) level)
           -> evaluation origins: coverage, sharpness, MASE vs seasonal naive (block CIs)
           -> the forecast from the last complete week, h = 1..horizon_weeks

**Rolling origins.** An origin ``t`` is the first week a forecast does not see; it is made
from weeks ``< t`` and predicts weeks ``t .. t + H - 1`` (horizon 1..H). Origins run from
``min_train_weeks`` to the last one whose whole horizon is observed. The first
``selection_share`` of them (at least ``H``) are **selection origins**: the candidate and the
reconciliation of each measure are picked there by MASE. The rest are **evaluation origins**:
what the gate judges. Nothing about an evaluation origin is chosen by looking at it.

**Conformal intervals** [1]_ [2]_. The nonconformity score of a forecast is ``|y - mean| /
scale`` (``scale``: the series' in-sample mean absolute one-step change at the origin, so
neighborhoods of different size share one calibration). At an evaluation origin ``t`` and
horizon ``h``, the calibration scores are those of every earlier origin ``s`` whose
target is already observed (``s + h <= t``), over all series of the measure; the interval's
half-width is the score of rank ``ceil((n + 1) * level)`` among those ``n``, times the scale.
For exchangeable scores that interval covers with probability at least ``level``; the backtest
measures whether that holds on a time series. Evaluation starts at the first origin where every
horizon has enough scores for a finite rank (``n >= level / (1 - level)``). The final forecast
is calibrated on every backtest origin.

**Reconciliation** [3]_. Per measure the hierarchy is one level deep: the total is the sum of
the neighborhoods. Bottom-up forecasts the neighborhoods and sums them; MinT-shrink combines
all base forecasts with ``S (S' W^-1 S)^-1 S' W^-1`` where ``W`` is the shrunk covariance
(Schäfer & Strimmer) of the one-step base errors on the selection origins. Either way the
reconciled neighborhood forecasts sum to the total exactly; intervals are calibrated on the
reconciled forecasts.

**Candidates.** ``seasonal_naive`` (last year's week; last week when the training window is
shorter than a year), ``yoy_scaled`` (last year's weeks, smoothed over three weeks, times the
ratio of the last 13 weeks to the same weeks a year earlier: the planner's "same period last
year plus growth"), ``auto_ets`` and ``auto_arima`` (statsforecast [4]_, with the yearly
season when the shortest training window holds two years, else without), and
``quantile_gbm``: one scikit-learn ``HistGradientBoostingRegressor`` with the quantile loss at
the median, fitted across the measure's series on level-scaled lags, the same week last year,
the week of the year and the horizon (a global model: neighborhoods share what they have in
common). Every candidate's intervals come from the same conformal step.

References
----------
.. [1] Vovk, V., Gammerman, A., & Shafer, G. (2005). Algorithmic Learning in a Random World.
.. [2] Stankeviciute, K., Alaa, A. M., & van der Schaar, M. (2021). Conformal time-series
   forecasting. NeurIPS.
.. [3] Wickramasuriya, S. L., Athanasopoulos, G., & Hyndman, R. J. (2019). Optimal forecast
   reconciliation for hierarchical and grouped time series through trace minimization.
   Journal of the American Statistical Association, 114(526), 804-819.
.. [4] Garza, F., Mergenthaler Canseco, M., Challú, C., & Olivares, K. G. (2022).
   StatsForecast: lightning fast forecasting with statistical and econometric models.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from barberpro_ml.analytics.kpis import kpis
from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.cutoff import AsOf, to_as_of
from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.evaluation.forecast import interval_forecast_report
from barberpro_ml.evaluation.overlap import check_overlap
from barberpro_ml.evaluation.report import EvaluationReport
from barberpro_ml.models.forecast_table import FORECAST_COLUMNS, TOTAL, select_forecast

__all__ = [
    "CANDIDATES",
    "FORECAST_COLUMNS",
    "FORECAST_MEASURES",
    "RECONCILIATIONS",
    "TOTAL",
    "WeeklyForecaster",
    "conformal_rank",
    "mint_shrink_weights",
    "select_forecast",
    "weekly_series",
]

FloatArray = npt.NDArray[np.float64]

#: The measures forecast by default (catalogue names: sums over weeks, so they reconcile).
FORECAST_MEASURES: Final = ("net_revenue", "bookings")
#: Candidate forecasters, by name.
CANDIDATES: Final = ("seasonal_naive", "yoy_scaled", "auto_ets", "auto_arima",
                      "quantile_gbm")
#: Reconciliation methods, by name.
RECONCILIATIONS: Final = ("bottom_up", "mint_shrink")
_SEASON: Final = 52
_WEEK = pd.Timedelta(days=7)


# --------------------------------------------------------------------------- the series
def weekly_series(data: MarketplaceData, as_of: AsOf | None = None, *,
                  measures: Sequence[str] = FORECAST_MEASURES) -> pd.DataFrame:
    """Complete weeks of each measure per neighborhood and in total, known at ``as_of``.

    Parameters
    ----------
    data
        The event tables.
    as_of
        Cut-off (default: the data's last event); only events known then count, and only
        weeks (Monday to Sunday) that ended by then and began on or after the data's first
        scheduled visit and first booking are kept (a partial week would look like a drop).
    measures
        Catalogue measures that are sums over events (``net_revenue``, ``bookings``,
        ``completed_visits``...), so that neighborhoods sum to the total.

    Returns
    -------
    pandas.DataFrame
        ``measure, neighborhood, week, y`` (``neighborhood`` = :data:`TOTAL` for the total;
        ``week`` the Monday starting it), every week present for every series.

    Examples
    --------
    >>> series = weekly_series(data)                                  # doctest: +SKIP
    >>> series.query("neighborhood == 'all' and measure == 'bookings'").tail(2)  # doctest: +SKIP
    """
    from barberpro_ml.analytics.catalogue import MEASURES

    for m in measures:
        spec = MEASURES.get(m)
        if spec is None:
            raise InputError(f"weekly_series: unknown measure {m!r}; forecastable measures "
                             f"are sums, e.g. {list(FORECAST_MEASURES)}")
        if spec.kind not in ("count", "sum"):
            raise InputError(f"weekly_series: measure {m!r} is a {spec.kind}, not a sum over "
                             "events; its neighborhoods would not add up to the total")
    cut = to_as_of(as_of) if as_of is not None else data.observation_end
    frame = kpis(data, list(measures), by="neighborhood", freq="week", as_of=cut)
    neighborhoods = [str(n) for n in data.providers["neighborhood"].dropna().unique()]
    if TOTAL in neighborhoods:
        raise InputError(f"weekly_series: a neighborhood is named {TOTAL!r}, the name the "
                         "forecasts reserve for the marketplace total; rename it")
    known = data.bookings[data.bookings["created_at"] <= cut]
    if known.empty:
        raise NotEnoughDataError(f"weekly_series: no booking was known at {cut}")
    first = max(known["created_at"].min(), known["scheduled_at"].min())
    first_week = _monday(first)
    if first_week < first:          # the week began before the data did: incomplete
        first_week += _WEEK
    last_week = _monday(cut - _WEEK)  # the last Monday whose week ended by the cut-off
    if last_week < first_week:
        raise NotEnoughDataError(f"weekly_series: no complete week between the data's start "
                                 f"{first} and the cut-off {cut}")
    weeks = pd.date_range(first_week, last_week, freq="7D")
    frame["neighborhood"] = frame["neighborhood"].astype(str)
    grid = pd.MultiIndex.from_product([weeks, sorted(neighborhoods)],
                                      names=["week", "neighborhood"])
    wide = frame.set_index(["week", "neighborhood"])[list(measures)].reindex(grid,
                                                                              fill_value=0)
    long = wide.reset_index().melt(id_vars=["week", "neighborhood"], var_name="measure",
                                   value_name="y")
    total = long.groupby(["measure", "week"], sort=True)["y"].sum().reset_index()
    total["neighborhood"] = TOTAL
    out: pd.DataFrame = pd.concat([total, long], ignore_index=True)
    out["y"] = out["y"].astype(np.float64)
    return out[["measure", "neighborhood", "week", "y"]].sort_values(
        ["measure", "neighborhood", "week"], ignore_index=True)


def _monday(stamp: pd.Timestamp) -> pd.Timestamp:
    """Midnight of the Monday starting ``stamp``'s week."""
    day = stamp.normalize()
    return day - pd.Timedelta(days=day.weekday())


# --------------------------------------------------------------------------- maths
def conformal_rank(n: int, level: float) -> int | None:
    """The 1-based rank ``ceil((n + 1) * level)`` of the conformal quantile, or None if > n.

    Examples
    --------
    >>> conformal_rank(9, 0.89), conformal_rank(8, 0.89)
    (9, None)
    """
    rank = math.ceil((n + 1) * level - 1e-12)
    return rank if rank <= n else None


def _conformal_quantile(scores: FloatArray, level: float) -> float:
    rank = conformal_rank(scores.size, level)
    if rank is None:
        return math.inf
    return float(np.partition(scores, rank - 1)[rank - 1])


def mint_shrink_weights(residuals: FloatArray) -> FloatArray:
    """MinT-shrink reconciliation matrix ``S (S' W^-1 S)^-1 S' W^-1`` for total + bottoms.

    Parameters
    ----------
    residuals
        One-step base forecast errors, shape ``(n_obs, 1 + n_bottom)``; column 0 the total.

    Returns
    -------
    numpy.ndarray
        ``(1 + n_bottom, 1 + n_bottom)``: reconciled = matrix @ base.

    Notes
    -----
    ``W`` is the sample covariance shrunk towards its diagonal with the Schäfer-Strimmer
    intensity, as in Wickramasuriya et al. (2019).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> P = mint_shrink_weights(rng.normal(size=(30, 4)))
    >>> bool(np.allclose((P @ [10.0, 2, 3, 4])[0], (P @ [10.0, 2, 3, 4])[1:].sum()))
    True
    """
    e = np.asarray(residuals, dtype=np.float64)
    n_obs, n_series = e.shape
    n_bottom = n_series - 1
    S = np.vstack([np.ones((1, n_bottom)), np.eye(n_bottom)])
    centred = e - e.mean(axis=0)
    sd = np.sqrt((centred ** 2).mean(axis=0))
    sd = np.where(sd > 0, sd, 1.0)
    if n_obs >= 2:
        cov = centred.T @ centred / n_obs
        std = centred / sd
        corr = std.T @ std / n_obs
        # Schäfer & Strimmer (2005): intensity from the variance of the correlations.
        w = std[:, :, None] * std[:, None, :]
        var_r = n_obs / (n_obs - 1) ** 3 * ((w - w.mean(axis=0)) ** 2).sum(axis=0)
        off = ~np.eye(n_series, dtype=bool)
        denom = float((corr[off] ** 2).sum())
        lam = 1.0 if denom == 0 else float(np.clip(var_r[off].sum() / denom, 0.0, 1.0))
        W = lam * np.diag(np.diag(cov)) + (1 - lam) * cov
    else:
        W = np.diag(sd ** 2)
    W += np.eye(n_series) * 1e-9 * max(float(np.trace(W)) / n_series, 1e-12)
    Winv = np.linalg.inv(W)
    G = np.linalg.solve(S.T @ Winv @ S, S.T @ Winv)
    return np.asarray(S @ G, dtype=np.float64)


def _bottom_up_weights(n_series: int) -> FloatArray:
    n_bottom = n_series - 1
    P = np.zeros((n_series, n_series))
    P[0, 1:] = 1.0
    P[1:, 1:] = np.eye(n_bottom)
    return P


def _scales(y: FloatArray, origins: Sequence[int]) -> FloatArray:
    """``(n_origins, n_series)``: mean |one-step change| of each series before each origin."""
    diffs = np.abs(np.diff(y, axis=1))                       # (S, T-1)
    cum = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(diffs, axis=1)], axis=1)
    out = np.empty((len(origins), y.shape[0]))
    for i, t in enumerate(origins):
        mean_change = cum[:, t - 1] / max(t - 1, 1)
        level = np.abs(y[:, :t]).mean(axis=1)
        out[i] = np.where(mean_change > 0, mean_change, np.where(level > 0, level, 1.0))
    return out


# --------------------------------------------------------------------------- candidates
BaseForecasts = Callable[[FloatArray, pd.DatetimeIndex, list[int], int], FloatArray]


def _season_for(train_len: int) -> int:
    return _SEASON if train_len >= 2 * _SEASON else 1


def _statsforecast(kind: str, refit: int) -> BaseForecasts:
    def run(y: FloatArray, weeks: pd.DatetimeIndex, origins: list[int], H: int) -> FloatArray:
        from statsforecast import StatsForecast
        from statsforecast.models import AutoARIMA, AutoETS, Naive, SeasonalNaive

        S, _ = y.shape
        season = _season_for(min(origins))
        models: list[Any]
        if kind == "seasonal_naive":
            models = [SeasonalNaive(season_length=_SEASON) if min(origins) >= _SEASON
                      else Naive()]
        elif kind == "auto_ets":
            models = [AutoETS(season_length=season)]
        else:
            models = [AutoARIMA(season_length=season)]
        out = np.empty((len(origins), S, H))
        ids = np.array([f"{s:05d}" for s in range(S)])   # sort order = series order

        def frame(t: int) -> pd.DataFrame:
            return pd.DataFrame({"unique_id": np.repeat(ids, t),
                                 "ds": np.tile(weeks[:t].to_numpy(), S),
                                 "y": y[:, :t].reshape(-1)})

        def values(fc: pd.DataFrame) -> FloatArray:
            col = next(c for c in fc.columns if c not in ("unique_id", "ds", "cutoff", "y"))
            return fc[col].to_numpy(dtype=np.float64)

        sf = StatsForecast(models=models, freq="7D", n_jobs=1)
        backtest = [t for t in origins if t + H <= y.shape[1]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if backtest:
                # Consecutive origins with their whole horizon observed: statsforecast's
                # rolling cross-validation, re-estimating every `refit` windows and carrying
                # the fitted model forward over the new weeks in between.
                if backtest != list(range(backtest[0], backtest[-1] + 1)):
                    raise ValueError("backtest origins must be consecutive weeks")
                cv = sf.cross_validation(df=frame(backtest[-1] + H), h=H,
                                         n_windows=len(backtest), step_size=1,
                                         refit=refit)
                cv = cv.sort_values(["cutoff", "unique_id", "ds"])
                out[:len(backtest)] = values(cv).reshape(len(backtest), S, H)
            for i, t in enumerate(origins[len(backtest):], start=len(backtest)):
                fc = sf.forecast(df=frame(t), h=H).sort_values(["unique_id", "ds"])
                out[i] = values(fc).reshape(S, H)
        return out
    return run


def _yoy_scaled(y: FloatArray, weeks: pd.DatetimeIndex, origins: list[int], H: int
                ) -> FloatArray:
    """Last year's weeks (3-week centred mean) times the recent year-over-year ratio.

    ``mean(y[t-13:t]) / mean(y[t-65:t-52])``: the last 13 weeks against the same weeks a year
    earlier (fewer when the history is shorter; 1 without any). Before a year of history: the
    mean of the last 4 weeks.
    """
    S = y.shape[0]
    out = np.empty((len(origins), S, H))
    for i, t in enumerate(origins):
        if t < _SEASON + 1:
            out[i] = y[:, max(0, t - 4):t].mean(axis=1)[:, None]
            continue
        k = min(13, t - _SEASON)
        recent = y[:, t - k:t].sum(axis=1)
        before = y[:, t - k - _SEASON:t - _SEASON].sum(axis=1)
        ratio = np.where(before > 0, recent / np.where(before > 0, before, 1.0), 1.0)
        for h in range(1, H + 1):
            centre = t + h - 1 - _SEASON
            window = y[:, max(0, centre - 1):min(centre + 2, t)]
            out[i, :, h - 1] = window.mean(axis=1) * ratio
    return out


def _gbm_features(y: FloatArray, weeks: pd.DatetimeIndex, t: int, H: int
                  ) -> tuple[FloatArray, FloatArray]:
    """Rows (series x horizon) of features at origin ``t``, and each row's level scale."""
    S = y.shape[0]
    lags = 13
    recent = y[:, max(0, t - lags):t]
    level = recent.mean(axis=1)
    level = np.where(level > 0, level, 1.0)
    lag_block = np.full((S, lags), np.nan)
    take = min(lags, t)
    lag_block[:, :take] = y[:, t - take:t][:, ::-1] / level[:, None]
    rows = []
    for h in range(1, H + 1):
        target = t + h - 1
        # Before a year of history, last year's week is taken as the recent level (1 in
        # these level-scaled units), so early origins still train the model.
        last_year = y[:, target - _SEASON] / level if 0 <= target - _SEASON < y.shape[1] \
            else np.ones(S)
        woy = weeks[target].isocalendar()[1] if target < len(weeks) \
            else (weeks[-1] + _WEEK * (target - len(weeks) + 1)).isocalendar()[1]
        angle = 2 * np.pi * woy / 52.18
        rows.append(np.column_stack([
            lag_block, last_year, np.full(S, np.sin(angle)), np.full(S, np.cos(angle)),
            np.full(S, float(h))]))
    X = np.stack(rows, axis=1).reshape(S * H, -1)               # series-major
    return X, np.repeat(level, H)


def _quantile_gbm(random_state: int, refit_every: int) -> BaseForecasts:
    def run(y: FloatArray, weeks: pd.DatetimeIndex, origins: list[int], H: int) -> FloatArray:
        from sklearn.ensemble import HistGradientBoostingRegressor

        S = y.shape[0]
        extended = pd.DatetimeIndex(weeks.append(pd.date_range(weeks[-1] + _WEEK, periods=H,
                                                               freq="7D")))
        out = np.empty((len(origins), S, H))
        model: HistGradientBoostingRegressor | None = None
        fitted_at = -10 ** 9
        for i, t in enumerate(origins):
            if model is None or t - fitted_at >= refit_every:
                Xs, ys = [], []
                for s in range(14, t):                     # training origins before t
                    X, level = _gbm_features(y, extended, s, H)
                    targets = np.full((S, H), np.nan)
                    span = min(H, t - s)                   # targets observed before t
                    targets[:, :span] = y[:, s:s + span]
                    flat = targets.reshape(-1) / level
                    keep = np.isfinite(flat)
                    Xs.append(X[keep])
                    ys.append(flat[keep])
                model = HistGradientBoostingRegressor(
                    loss="quantile", quantile=0.5, max_iter=200, learning_rate=0.05,
                    max_leaf_nodes=15, min_samples_leaf=20, random_state=random_state)
                model.fit(np.vstack(Xs), np.concatenate(ys))
                fitted_at = t
            X, level = _gbm_features(y, extended, t, H)
            out[i] = (model.predict(X) * level).reshape(S, H)
        return out
    return run


# --------------------------------------------------------------------------- the forecaster
class WeeklyForecaster(BaseEstimator):  # type: ignore[misc]
    """Weekly forecasts per neighborhood and in total, with conformal intervals checked on a
    rolling-origin backtest (the method is in the module docstring).

    Parameters
    ----------
    level
        Central level of the prediction intervals (0.89: the seed's "89% confidence
        intervals").
    horizon_weeks
        Weeks ahead (1..H).
    candidates
        Candidate forecasters among :data:`CANDIDATES`.
    reconciliations
        Reconciliation methods among :data:`RECONCILIATIONS`.
    min_train_weeks
        Weeks before the first origin (52: seasonal naive has last year's week).
    selection_share
        Share of the origins (at least ``horizon_weeks``) used to pick the candidate and the
        reconciliation; the rest are evaluated.
    refit_every
        Candidates are re-estimated every this many origins of the backtest and carried
        forward over the new weeks in between (statsforecast's ``refit``; the gradient-boosting
        model is refitted on all earlier targets). The final forecast is always a fresh fit.
    random_state
        Seed of the gradient-boosting candidate.

    Attributes
    ----------
    chosen_ : dict
        Per measure: ``{"candidate": ..., "reconciliation": ...}``.
    selection_ : pandas.DataFrame
        MASE of every (measure, candidate, reconciliation) on the selection origins.
    backtest_ : pandas.DataFrame
        Every evaluation forecast of the chosen models: ``measure, neighborhood, origin,
        horizon, week, y, mean, lower, upper, scale, seasonal_naive``.
    forecast_ : pandas.DataFrame
        The forecast from the last complete week: :data:`FORECAST_COLUMNS`.
    history_ : pandas.DataFrame
        The series fitted (:func:`weekly_series`'s frame).
    calibration_ : pandas.DataFrame
        The final conformal half-widths (in scale units) per measure and horizon, with the
        number of scores behind each.

    Examples
    --------
    >>> series = weekly_series(data)                                   # doctest: +SKIP
    >>> fc = WeeklyForecaster(level=0.89).fit(series)                   # doctest: +SKIP
    >>> fc.forecast_.query("neighborhood == 'all'").head()              # doctest: +SKIP
    >>> report = fc.evaluate()                                          # doctest: +SKIP
    """

    def __init__(self, level: float = 0.89, horizon_weeks: int = 13,
                 candidates: Sequence[str] = CANDIDATES,
                 reconciliations: Sequence[str] = RECONCILIATIONS,
                 min_train_weeks: int = 52, selection_share: float = 1 / 3,
                 refit_every: int = 4, random_state: int = 0) -> None:
        self.level = level
        self.horizon_weeks = horizon_weeks
        self.candidates = candidates
        self.reconciliations = reconciliations
        self.min_train_weeks = min_train_weeks
        self.selection_share = selection_share
        self.refit_every = refit_every
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        problems = []
        if not 0.5 <= self.level < 1.0:
            problems.append(f"level must be in [0.5, 1), got {self.level}")
        if not 1 <= self.horizon_weeks <= 52:
            problems.append(f"horizon_weeks must be in 1..52, got {self.horizon_weeks}")
        unknown = sorted(set(self.candidates) - set(CANDIDATES))
        if unknown or not self.candidates:
            problems.append(f"candidates must be a non-empty subset of {list(CANDIDATES)}, "
                            f"got {list(self.candidates)}")
        unknown = sorted(set(self.reconciliations) - set(RECONCILIATIONS))
        if unknown or not self.reconciliations:
            problems.append(f"reconciliations must be a non-empty subset of "
                            f"{list(RECONCILIATIONS)}, got {list(self.reconciliations)}")
        if self.min_train_weeks < 8:
            problems.append(f"min_train_weeks must be >= 8, got {self.min_train_weeks}")
        if not 0.0 < self.selection_share < 1.0:
            problems.append(f"selection_share must be in (0, 1), got {self.selection_share}")
        if self.refit_every < 1:
            problems.append(f"refit_every must be >= 1, got {self.refit_every}")
        if problems:
            raise InputError("WeeklyForecaster: " + "; ".join(problems))

    @staticmethod
    def _check_series(series: pd.DataFrame) -> None:
        need = ["measure", "neighborhood", "week", "y"]
        missing = [c for c in need if c not in series.columns]
        if missing:
            raise InputError(f"WeeklyForecaster.fit: the series lack column(s) {missing} "
                             f"(have {list(series.columns)}); build them with weekly_series")
        bad = ~np.isfinite(series["y"].to_numpy(dtype=np.float64))
        if bad.any():
            raise InputError(f"WeeklyForecaster.fit: column 'y' has {int(bad.sum()):,} "
                             "missing or infinite value(s)")
        if not (series["neighborhood"] == TOTAL).any():
            raise InputError(f"WeeklyForecaster.fit: no {TOTAL!r} (total) series")

    def _layout(self, T: int, n_series: int) -> tuple[list[int], int, int]:
        """Origins, number of selection origins, first evaluation origin's index."""
        H = self.horizon_weeks
        origins = list(range(self.min_train_weeks, T - H + 1))
        n_sel = max(H, math.ceil(self.selection_share * len(origins)))
        # Every horizon needs enough earlier scores for a finite conformal rank: n scores with
        # (n + 1) level <= n. Origin s calibrates horizon h at origin t when s + h <= t, so
        # at the i-th origin horizon H has (i - H + 1) earlier origins of n_series scores.
        scores_needed = math.ceil(self.level / (1.0 - self.level) - 1e-12)
        first_eval = max(n_sel, H - 1 + math.ceil(scores_needed / n_series))
        if len(origins) - first_eval < 1:
            weeks_needed = self.min_train_weeks + first_eval + H
            raise NotEnoughDataError(
                f"forecast: {T} complete weeks, but the backtest needs at least "
                f"{weeks_needed} ({self.min_train_weeks} weeks of training before the first "
                f"origin, {first_eval} selection origins, then one evaluation origin with "
                f"its {H}-week horizon); shorten horizon_weeks or min_train_weeks, or wait "
                f"for {weeks_needed - T} more week(s) of data")
        return origins, n_sel, first_eval

    # ------------------------------------------------------------------ fit
    def fit(self, series: pd.DataFrame) -> WeeklyForecaster:
        """Backtest every candidate, pick per measure, calibrate, forecast from the end.

        Parameters
        ----------
        series
            :func:`weekly_series`'s frame (``measure, neighborhood, week, y``).

        Returns
        -------
        WeeklyForecaster
            ``self``, fitted.
        """
        self._check_params()
        self._check_series(series)
        H = self.horizon_weeks
        selections, backtests, forecasts, calibrations = [], [], [], []
        self.chosen_: dict[str, dict[str, str]] = {}
        for measure, frame in series.groupby("measure", sort=True):
            wide = frame.pivot(index="neighborhood", columns="week", values="y")
            names = [TOTAL, *sorted(n for n in wide.index if n != TOTAL)]
            wide = wide.loc[names]
            if wide.isna().any().any():
                raise InputError(f"WeeklyForecaster.fit: measure {measure!r} has gaps (a week "
                                 "missing for some series); weekly_series gives every week")
            y = wide.to_numpy(dtype=np.float64)
            weeks = pd.DatetimeIndex(wide.columns)
            T = y.shape[1]
            origins, n_sel, first_eval = self._layout(T, y.shape[0])
            all_origins = [*origins, T]                 # T: the final forecast
            scales = _scales(y, all_origins)            # (O+1, S)
            base = {name: self._candidate(name)(y, weeks, all_origins, H)
                    for name in self.candidates}
            snaive = base.get("seasonal_naive")
            if snaive is None:
                snaive = self._candidate("seasonal_naive")(y, weeks, all_origins, H)
            actual = np.full((len(all_origins), y.shape[0], H), np.nan)
            for i, t in enumerate(all_origins):
                span = min(H, T - t)
                actual[i, :, :span] = y[:, t:t + span]
            sel = slice(0, n_sel)
            rows = []
            best: tuple[float, str, str, FloatArray] | None = None
            for cand, fc in base.items():
                residual_1 = (actual[sel, :, 0] - fc[sel, :, 0])     # one-step, selection
                for rec in self.reconciliations:
                    P = _bottom_up_weights(y.shape[0]) if rec == "bottom_up" \
                        else mint_shrink_weights(residual_1)
                    rec_fc = np.einsum("ij,ojh->oih", P, fc)
                    err = np.abs(actual[sel] - rec_fc[sel]) / scales[sel, :, None]
                    mase = float(np.nanmean(err))
                    rows.append({"measure": measure, "candidate": cand,
                                 "reconciliation": rec, "mase": mase})
                    if best is None or mase < best[0]:
                        best = (mase, cand, rec, rec_fc)
            assert best is not None
            _, cand, rec, chosen = best
            self.chosen_[str(measure)] = {"candidate": cand, "reconciliation": rec}
            selections.extend(rows)

            # Conformal scores of every origin (NaN where the target is not observed).
            scores = np.abs(actual - chosen) / scales[:, :, None]     # (O+1, S, H)
            half = np.full((len(all_origins), H), np.nan)
            counts = np.zeros((len(all_origins), H), dtype=np.int64)
            origin_arr = np.asarray(all_origins)
            for i, t in enumerate(all_origins):
                if i < first_eval and t != T:
                    continue
                for h in range(1, H + 1):
                    usable = np.flatnonzero((origin_arr + h <= t) & (np.arange(len(
                        all_origins)) < len(origins)))
                    pool = scores[usable, :, h - 1].reshape(-1)
                    pool = pool[np.isfinite(pool)]
                    half[i, h - 1] = _conformal_quantile(pool, self.level)
                    counts[i, h - 1] = pool.size
            lower = chosen - half[:, None, :] * scales[:, :, None]
            upper = chosen + half[:, None, :] * scales[:, :, None]

            for i in range(first_eval, len(origins)):
                t = origins[i]
                for s_idx, name in enumerate(names):
                    for h in range(1, H + 1):
                        backtests.append((measure, name, weeks[t], h, weeks[t + h - 1],
                                          actual[i, s_idx, h - 1], chosen[i, s_idx, h - 1],
                                          lower[i, s_idx, h - 1], upper[i, s_idx, h - 1],
                                          scales[i, s_idx], snaive[i, s_idx, h - 1]))
            last = len(all_origins) - 1
            future = pd.date_range(weeks[-1] + _WEEK, periods=H, freq="7D")
            for s_idx, name in enumerate(names):
                for h in range(1, H + 1):
                    forecasts.append((measure, name, future[h - 1], h,
                                      chosen[last, s_idx, h - 1], lower[last, s_idx, h - 1],
                                      upper[last, s_idx, h - 1]))
            for h in range(1, H + 1):
                calibrations.append({"measure": measure, "horizon": h,
                                     "half_width_scaled": half[last, h - 1],
                                     "n_scores": int(counts[last, h - 1])})
            if not np.isfinite(half[first_eval:]).all():  # pragma: no cover - by _layout
                raise NotEnoughDataError("forecast: too few calibration scores")

        self.selection_ = pd.DataFrame(selections)
        self.backtest_ = pd.DataFrame(backtests, columns=[
            "measure", "neighborhood", "origin", "horizon", "week", "y", "mean", "lower",
            "upper", "scale", "seasonal_naive"])
        self.forecast_ = pd.DataFrame(forecasts, columns=list(FORECAST_COLUMNS))
        self.calibration_ = pd.DataFrame(calibrations)
        self.history_ = series[["measure", "neighborhood", "week", "y"]].copy()
        return self

    def _candidate(self, name: str) -> BaseForecasts:
        if name == "quantile_gbm":
            return _quantile_gbm(self.random_state, self.refit_every)
        if name == "yoy_scaled":
            return _yoy_scaled
        return _statsforecast(name, self.refit_every)

    # ------------------------------------------------------------------ use
    def predict(self, request: pd.DataFrame | None = None) -> pd.DataFrame:
        """The forecast rows asked for (all of :attr:`forecast_` when ``request`` is None).

        Parameters
        ----------
        request
            Rows with ``measure`` and optionally ``neighborhood`` (default :data:`TOTAL`) and
            ``horizon`` (default: every horizon).

        Raises
        ------
        InputError
            An unknown measure or neighborhood, or a horizon outside ``1..horizon_weeks``.
        """
        check_is_fitted(self, "forecast_")
        return select_forecast(self.forecast_, request, self.horizon_weeks)

    def evaluate(self, *, n_bootstrap: int = 1000, seed: int = 0) -> EvaluationReport:
        """The gate's report: coverage, sharpness and MASE vs seasonal naive on the
        evaluation origins (:func:`~barberpro_ml.evaluation.forecast.interval_forecast_report`),
        with the rolling-origin overlap check (no target week inside its own training data).
        """
        check_is_fitted(self, "backtest_")
        bt = self.backtest_
        # Overlap tripwire: a forecast's training rows are the weeks before its origin.
        test = bt[["measure", "neighborhood", "origin", "week"]]
        history = self.history_
        train_parts = []
        for origin in bt["origin"].unique():
            seen = history[history["week"] < origin][["measure", "neighborhood", "week"]]
            train_parts.append(seen.assign(origin=origin))
        train = pd.concat(train_parts, ignore_index=True)[test.columns]
        overlap = check_overlap(train, test, ["measure", "neighborhood"], ["origin"])
        notes = [f"{m}: {c['candidate']} + {c['reconciliation']} (chosen on the selection "
                 f"origins by MASE)" for m, c in self.chosen_.items()]
        for m, part in bt.groupby("measure"):
            inside = ((part["lower"] <= part["y"]) & (part["y"] <= part["upper"])).mean()
            notes.append(f"{m}: coverage {inside:.3f} at level {self.level:g}, mean width "
                         f"{(part['upper'] - part['lower']).mean():,.1f} (in the measure's "
                         "units, all series)")
        return interval_forecast_report(
            bt, level=self.level, reference="seasonal_naive", n_bootstrap=n_bootstrap,
            seed=seed, block_length=self.horizon_weeks, overlap=overlap, notes=notes)

