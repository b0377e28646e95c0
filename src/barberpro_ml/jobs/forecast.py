"""The forecast job: weekly net revenue and bookings, 1..13 weeks ahead, with intervals whose
coverage the gate verifies.

Reads top to bottom like the data flow::

    event data -> complete weeks per neighborhood and in total (analytics.weekly_series)
    -> rolling-origin backtest of every candidate, reconciliation, pick on the selection
       origins, conformal intervals (analytics.forecast.WeeklyForecaster)
    -> evaluate on the evaluation origins: coverage, width, Winkler, MASE vs seasonal naive,
       block-bootstrap intervals over origins (evaluation.forecast)
    -> the shared skeleton: register @challenger, gate, promote @champion when it passes

The registered model is the forecast from the last complete week (a table the pyfunc
serves: :mod:`barberpro_ml.registry.forecast_model`). The gate's blocking claim is the seed's
"89% confidence intervals": the empirical coverage's interval must contain 0.89.

Run it with ``barberpro-ml train forecast``, ``mlflow run . -e train_forecast`` or
``barberpro_ml.jobs.forecast.run(load_config())``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from matplotlib.figure import Figure
from pydantic import Field, field_validator

from barberpro_ml.analytics.forecast import TOTAL, WeeklyForecaster, weekly_series
from barberpro_ml.data import MarketplaceData
from barberpro_ml.jobs.base import (
    Candidate,
    EvaluationSettings,
    JobContext,
    JobResult,
    ModelCardText,
    TrainingJobConfig,
    as_job_config,
    load_job_config,
    run_training_job,
)
from barberpro_ml.jobs.params import estimator_params
from barberpro_ml.registry import log_and_register_forecast, log_report

__all__ = ["ForecastJobConfig", "fan_chart", "load_config", "run"]


class ForecastJobConfig(TrainingJobConfig):
    """``configs/forecast.yaml``: every knob of the forecast job."""

    family = "forecast"
    job_name = "forecast"

    model_name: str = "barberpro-forecast"
    experiment: str = "barberpro-forecast"
    measures: list[str] = Field(default_factory=lambda: ["net_revenue", "bookings"],
                                min_length=1)
    """Catalogue measures to forecast (sums over events)."""
    model: dict[str, Any] = Field(default_factory=lambda: {
        "level": 0.89, "horizon_weeks": 13,
        "candidates": ["seasonal_naive", "yoy_scaled", "auto_ets", "auto_arima",
                       "quantile_gbm"],
        "reconciliations": ["bottom_up", "mint_shrink"], "min_train_weeks": 52,
        "selection_share": 0.3333, "refit_every": 4, "random_state": 0})
    """:class:`~barberpro_ml.analytics.forecast.WeeklyForecaster` parameters."""
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)

    _check_model = field_validator("model")(estimator_params(WeeklyForecaster))


def load_config(path: str | Path | None = None, **overrides: Any) -> ForecastJobConfig:
    """The forecast job's config: ``path`` (default: the shipped ``forecast.yaml``) +
    overrides."""
    return load_job_config(ForecastJobConfig, path, overrides)


def fan_chart(history: pd.DataFrame, forecast: pd.DataFrame, *, measure: str,
              neighborhood: str = TOTAL, level: float, title: str | None = None,
              backtest: pd.DataFrame | None = None, weeks_shown: int = 78) -> Figure:
    """History, the forecast and its interval for one series (a fan chart).

    Parameters
    ----------
    history
        :func:`~barberpro_ml.analytics.forecast.weekly_series` rows.
    forecast
        :attr:`~barberpro_ml.analytics.forecast.WeeklyForecaster.forecast_` rows.
    measure, neighborhood
        The series drawn.
    level
        The interval's level (for the legend).
    title
        The figure's title (default: the series' name).
    backtest
        Optional evaluation rows; their one-week-ahead intervals are drawn lightly, with the
        realised values, so a reader sees the coverage the gate measured.
    weeks_shown
        Weeks of history drawn.
    """
    h = history[(history["measure"] == measure) & (history["neighborhood"] == neighborhood)]
    h = h.sort_values("week").tail(weeks_shown)
    f = forecast[(forecast["measure"] == measure) & (forecast["neighborhood"] == neighborhood)]
    f = f.sort_values("week")
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(h["week"], h["y"], color="#333333", lw=1.2, label="observed")
    if backtest is not None and not backtest.empty:
        b = backtest[(backtest["measure"] == measure)
                     & (backtest["neighborhood"] == neighborhood)
                     & (backtest["horizon"] == 1)].sort_values("week")
        if not b.empty:
            ax.fill_between(b["week"], b["lower"], b["upper"], color="#9ecae1", alpha=0.5,
                            step="mid", label=f"backtest {level:.0%} interval, 1 week ahead")
    ax.fill_between(f["week"], f["lower"], f["upper"], color="#3182bd", alpha=0.35,
                    label=f"{level:.0%} prediction interval")
    ax.plot(f["week"], f["mean"], color="#08519c", lw=1.6, label="forecast")
    ax.set_title(title or f"{measure} — {neighborhood}")
    ax.set_xlabel("week")
    ax.set_ylabel(measure)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _coverage_by_horizon(backtest: pd.DataFrame) -> pd.DataFrame:
    inside = (backtest["lower"] <= backtest["y"]) & (backtest["y"] <= backtest["upper"])
    return (backtest.assign(inside=inside)
            .groupby(["measure", "horizon"], as_index=False)
            .agg(coverage=("inside", "mean"), forecasts=("inside", "size")))


def _step(ctx: JobContext) -> Candidate:
    cfg: ForecastJobConfig = ctx.config
    data = ctx.data
    as_of = data.observation_end
    with ctx.stage("features"):
        series = weekly_series(data, as_of, measures=cfg.measures)
    forecaster = WeeklyForecaster(**cfg.model)
    with ctx.stage("fit"):
        forecaster.fit(series)
    weeks = series["week"]
    mlflow.log_params({"as_of": f"{as_of:%Y-%m-%d %H:%M}",
                       "first_week": f"{weeks.min():%Y-%m-%d}",
                       "last_week": f"{weeks.max():%Y-%m-%d}",
                       "n_weeks": int(weeks.nunique()),
                       "n_series": int(series.groupby(["measure", "neighborhood"]).ngroups),
                       **{f"chosen_{m}": f"{c['candidate']}+{c['reconciliation']}"
                          for m, c in forecaster.chosen_.items()}})
    with ctx.stage("evaluate"):
        report = forecaster.evaluate(n_bootstrap=cfg.evaluation.n_bootstrap,
                                     seed=cfg.evaluation.seed)
    log_report(report)
    backtest = forecaster.backtest_
    mlflow.log_text(forecaster.selection_.to_csv(index=False), "forecast/selection.csv")
    mlflow.log_text(backtest.to_csv(index=False), "forecast/backtest.csv")
    mlflow.log_text(forecaster.forecast_.to_csv(index=False), "forecast/forecast.csv")
    mlflow.log_text(forecaster.calibration_.to_csv(index=False), "forecast/calibration.csv")
    mlflow.log_text(_coverage_by_horizon(backtest).to_csv(index=False),
                    "forecast/coverage_by_horizon.csv")
    level = float(forecaster.level)
    for measure in cfg.measures:
        fig = fan_chart(series, forecaster.forecast_, measure=measure, level=level,
                        backtest=backtest)
        mlflow.log_figure(fig, f"plots/fan_chart_{measure}.png")
        plt.close(fig)

    def register(tags: dict[str, str]) -> Any:
        return log_and_register_forecast(forecaster, cfg.model_name, tags=tags)[1]

    coverage = report.metrics["coverage"]
    return Candidate(
        register=register, report=report, comparison=None,
        card=ModelCardText(
            description=(
                f"Weekly {', '.join(cfg.measures)} per neighborhood and in total, "
                f"1..{forecaster.horizon_weeks} weeks after {weeks.max():%Y-%m-%d}, with "
                f"{level:.0%} conformal prediction intervals. Neighborhood forecasts sum to "
                f"the total. The model is the forecast table: request rows of measure, "
                f"neighborhood ('{TOTAL}' = total) and horizon."),
            data_window={"weeks": f"{weeks.min():%Y-%m-%d} to {weeks.max():%Y-%m-%d}",
                         "as of": f"{as_of:%Y-%m-%d %H:%M}",
                         "chosen": "; ".join(f"{m}: {c['candidate']} + {c['reconciliation']}"
                                             for m, c in forecaster.chosen_.items()),
                         "evaluation forecasts": f"{report.n:,}"},
            caveats=report.notes),
        headline=("coverage", "mean_scaled_width", "mase", "mase_minus_seasonal_naive"),
        notes=[f"coverage {coverage.value:.3f} [{coverage.ci_low:.3f}, {coverage.ci_high:.3f}] "
               f"at level {level:g}", *report.notes[1:3]])


def run(config: ForecastJobConfig | str | Path | None = None, *,
        data: MarketplaceData | None = None, data_dir: str | Path | None = None,
        tracking_uri: str | None = None) -> JobResult:
    """Backtest, evaluate (verified coverage), gate, register and promote the forecast.

    ``config``, ``data``, ``data_dir``, ``tracking_uri`` and the result: as
    :func:`~barberpro_ml.jobs.base.run_training_job` (``config`` may also be the path of a
    YAML, or None for the shipped ``forecast.yaml``).
    """
    cfg = as_job_config(ForecastJobConfig, config)
    return run_training_job(cfg, _step, data=data, data_dir=data_dir, tracking_uri=tracking_uri)
