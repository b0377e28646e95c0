"""Weekly forecasts as MLflow pyfunc models: (measure, neighborhood, horizon) in, the
forecast with its verified prediction interval out.

A registered ``barberpro-forecast`` version is the forecast made at one origin (the first week
after the training data): :class:`ForecastModel` holds that table
(:attr:`~barberpro_ml.analytics.forecast.WeeklyForecaster.forecast_`), not the candidate
models, so loading it needs neither statsforecast nor the training data, and every consumer
reads the very numbers the gate judged. A retrain makes a new version from a later origin.

A request is a DataFrame with one row per series asked for:

* ``measure`` (required, ``string``): ``net_revenue`` or ``bookings`` (what was forecast);
* ``neighborhood`` (optional, ``string``): a neighborhood, or ``all`` (the default) for the
  marketplace total;
* ``horizon`` (optional, ``long`` in ``1..horizon_weeks``): one week ahead; default: every
  horizon.

The response has one row per (measure, neighborhood, horizon): ``measure, neighborhood, week``
(the Monday starting the forecast week), ``horizon, mean, lower, upper`` (the central interval
at the spec's ``level``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema, TensorSpec
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.errors import InputError
from barberpro_ml.models.forecast_table import FORECAST_COLUMNS, TOTAL, select_forecast
from barberpro_ml.registry.models import (
    CHALLENGER,
    ModelInputError,
    _log_from_code,
    _read_logged,
    register,
)

if TYPE_CHECKING:
    from barberpro_ml.analytics.forecast import WeeklyForecaster

__all__ = ["ForecastModel", "ForecastSpec", "champion_forecast", "log_and_register_forecast",
           "log_forecast"]

_ENTRY = Path(__file__).with_name("_forecast_pyfunc_entry.py")


class ForecastSpec(BaseModel):
    """What :class:`ForecastModel` says about its table (a JSON artifact)."""

    model_config = ConfigDict(frozen=True)
    level: float = Field(gt=0.0, lt=1.0)
    horizon_weeks: int = Field(ge=1)
    measures: list[str]
    neighborhoods: list[str]
    first_week: str
    """The Monday starting horizon 1 (ISO date)."""
    chosen: dict[str, dict[str, str]]
    """Per measure, the candidate and reconciliation chosen on the backtest."""
    backtest_forecasts: int = Field(ge=0)
    """Forecasts on the backtest's evaluation origins (what the gate's coverage is over)."""

    def signature(self) -> ModelSignature:
        """``measure`` required, ``neighborhood`` and ``horizon`` optional."""
        inputs: list[ColSpec | TensorSpec] = [
            ColSpec("string", "measure"), ColSpec("string", "neighborhood", required=False),
            ColSpec("long", "horizon", required=False)]
        outputs: list[ColSpec | TensorSpec] = [
            ColSpec("string", "measure"), ColSpec("string", "neighborhood"),
            ColSpec("datetime", "week"), ColSpec("long", "horizon"),
            ColSpec("double", "mean"), ColSpec("double", "lower"), ColSpec("double", "upper")]
        return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


class ForecastModel(PythonModel):
    """Pyfunc wrapper of one forecast table.

    Parameters
    ----------
    forecast
        :data:`~barberpro_ml.analytics.forecast.FORECAST_COLUMNS` rows; ``None`` when MLflow
        builds the wrapper from the logged artifacts (``load_context`` fills it).
    spec
        Level, horizon, measures, neighborhoods, first forecast week, chosen models.

    Examples
    --------
    >>> wrapper = ForecastModel.from_forecaster(fitted)               # doctest: +SKIP
    >>> wrapper.predict(None, pd.DataFrame({"measure": ["net_revenue"], "horizon": [1]}))
    ...                                                               # doctest: +SKIP
    """

    def __init__(self, forecast: pd.DataFrame | None = None,
                 spec: ForecastSpec | None = None) -> None:
        self.forecast = forecast
        self.spec = spec

    @classmethod
    def from_forecaster(cls, forecaster: WeeklyForecaster) -> ForecastModel:
        """Wrap a fitted :class:`~barberpro_ml.analytics.forecast.WeeklyForecaster`."""
        table = forecaster.predict()
        spec = ForecastSpec(
            level=forecaster.level, horizon_weeks=forecaster.horizon_weeks,
            measures=sorted(table["measure"].unique()),
            neighborhoods=sorted(table["neighborhood"].unique()),
            first_week=f"{table['week'].min():%Y-%m-%d}", chosen=forecaster.chosen_,
            backtest_forecasts=len(forecaster.backtest_))
        return cls(table, spec)

    def load_context(self, context: Any) -> None:
        """Read the table and the spec from the model's artifacts (MLflow calls this)."""
        if self.forecast is not None:
            return
        self.forecast, self.spec = _read_logged(context, "forecast", ForecastSpec)

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """The forecast rows asked for.

        Raises
        ------
        ModelInputError
            No ``measure`` column, an unknown measure or neighborhood, a bad horizon.
        """
        if self.forecast is None or self.spec is None:
            raise RuntimeError("ForecastModel has no forecast: build it with from_forecaster "
                               "or load it with mlflow.pyfunc.load_model")
        frame = model_input if isinstance(model_input, pd.DataFrame) \
            else pd.DataFrame(model_input)
        try:
            out = select_forecast(self.forecast, frame, self.spec.horizon_weeks)
        except InputError as exc:
            raise ModelInputError(str(exc)) from exc
        return out.astype({"measure": str, "neighborhood": str, "horizon": "int64",
                           "mean": "float64", "lower": "float64", "upper": "float64"})


def log_forecast(forecaster: WeeklyForecaster, *, name: str = "model", ship_code: bool = True,
                 extra_pip_requirements: list[str] | None = None) -> ModelInfo:
    """Log a fitted forecaster's forecast as an MLflow pyfunc model (in the active run).

    Returns
    -------
    mlflow.models.model.ModelInfo
    """
    wrapper = ForecastModel.from_forecaster(forecaster)
    assert wrapper.spec is not None and wrapper.forecast is not None
    measure = wrapper.spec.measures[0]
    example = pd.DataFrame({"measure": [measure, measure],
                            "neighborhood": [TOTAL, wrapper.spec.neighborhoods[0]],
                            "horizon": pd.array([1, 1], dtype="int64")})
    wrapper.predict(None, example)
    table = wrapper.forecast[list(FORECAST_COLUMNS)].reset_index(drop=True)
    return _log_from_code(
        _ENTRY, ForecastModel, name=name, model=("forecast", "forecast.pkl", table),
        spec=("spec", "forecast_spec.json", wrapper.spec), signature=wrapper.spec.signature(),
        example=example, ship_code=ship_code, extra_pip_requirements=extra_pip_requirements)


def log_and_register_forecast(forecaster: WeeklyForecaster, name: str, *,
                              alias: str | None = CHALLENGER,
                              tags: dict[str, str] | None = None,
                              **log_kwargs: Any) -> tuple[ModelInfo, ModelVersion]:
    """:func:`log_forecast` then :func:`~barberpro_ml.registry.register`."""
    info = log_forecast(forecaster, **log_kwargs)
    return info, register(info.model_uri, name, alias=alias, tags=tags)


def champion_forecast(name: str = "barberpro-forecast", *, alias: str = "champion",
                      tracking_uri: str | None = None) -> tuple[ForecastModel, str]:
    """The forecast model behind ``name@alias`` (in the store at ``tracking_uri``, default:
    the current one) and its version.

    Raises
    ------
    ModelUnavailableError
        No such alias, or the version is not a forecast model.
    """
    from barberpro_ml.errors import ModelUnavailableError
    from barberpro_ml.registry.promotion import load_champion

    try:
        model, mv = load_champion(name, alias=alias, tracking_uri=tracking_uri)
    except LookupError as exc:
        raise ModelUnavailableError(str(exc)) from None
    wrapper = model.unwrap_python_model()  # type: ignore[no-untyped-call]
    if not isinstance(wrapper, ForecastModel) or wrapper.spec is None:
        raise ModelUnavailableError(f"{name} v{mv.version} is not a forecast model "
                                    f"({type(wrapper).__name__})")
    return wrapper, str(mv.version)
