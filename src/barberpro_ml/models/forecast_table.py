"""A forecast table and the rows a request asks of it: what a registered forecast serves.

Light on purpose (pandas, numpy and the package's errors only): the registered
``barberpro-forecast`` pyfunc (:mod:`barberpro_ml.registry.forecast_model`) imports this and
nothing of the forecasting machinery (:mod:`barberpro_ml.analytics.forecast`, statsforecast),
so a consumer loads the model with few requirements.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from barberpro_ml.errors import InputError

__all__ = ["FORECAST_COLUMNS", "TOTAL", "select_forecast"]

#: The ``neighborhood`` value of the marketplace total.
TOTAL: Final = "all"
#: Columns of a forecast table
#: (``WeeklyForecaster.forecast_`` of :mod:`barberpro_ml.analytics.forecast`).
FORECAST_COLUMNS: Final = ("measure", "neighborhood", "week", "horizon", "mean", "lower",
                           "upper")


def select_forecast(forecast: pd.DataFrame, request: pd.DataFrame | None,
                    horizon_weeks: int) -> pd.DataFrame:
    """The rows of a forecast table (:data:`FORECAST_COLUMNS`) a request asks for.

    Parameters
    ----------
    forecast
        :attr:`WeeklyForecaster.forecast_` (or the table a registered forecast model holds).
    request
        Rows with ``measure`` and optionally ``neighborhood`` (default :data:`TOTAL`) and
        ``horizon`` (default: every horizon); None: the whole table.
    horizon_weeks
        The largest horizon the table holds.

    Raises
    ------
    InputError
        An unknown measure or neighborhood, or a horizon outside ``1..horizon_weeks``; one
        message naming every problem.
    """
    if request is None:
        return forecast.copy()
    if "measure" not in request.columns:
        raise InputError(f"forecast request: missing column 'measure' (got "
                         f"{list(request.columns)})")
    req = request.copy()
    if "neighborhood" not in req.columns:
        req["neighborhood"] = TOTAL
    req["neighborhood"] = req["neighborhood"].fillna(TOTAL).astype(str)
    req["measure"] = req["measure"].astype(str)
    problems = []
    unknown = sorted(set(req["measure"]) - set(forecast["measure"]))
    if unknown:
        problems.append(f"unknown measure(s) {unknown} (known: "
                        f"{sorted(forecast['measure'].unique())})")
    unknown = sorted(set(req["neighborhood"]) - set(forecast["neighborhood"]))
    if unknown:
        problems.append(f"unknown neighborhood(s) {unknown[:5]} (known: "
                        f"{sorted(forecast['neighborhood'].unique())})")
    if "horizon" in req.columns:
        h = pd.to_numeric(req["horizon"], errors="coerce")
        bad = h.isna() | (h < 1) | (h > horizon_weeks) | (h != h.round())
        if bad.any():
            problems.append(f"horizon must be an integer in 1..{horizon_weeks}, got "
                            f"{req['horizon'][bad].head(3).tolist()}")
        else:
            req["horizon"] = h.astype(np.int64)
    if problems:
        raise InputError("forecast request refused: " + "; ".join(problems))
    keys = ["measure", "neighborhood"] + (["horizon"] if "horizon" in req.columns else [])
    wanted = req[keys].drop_duplicates()
    out: pd.DataFrame = wanted.merge(forecast, on=keys, how="left")[list(FORECAST_COLUMNS)]
    return out.reset_index(drop=True)
