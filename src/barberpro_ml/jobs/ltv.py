"""The lifetime-value job: a Tweedie boosted model beside BG/NBD + Gamma-Gamma and a naive
baseline, evaluated side by side on the same out-of-time customers.

Reads top to bottom like the data flow::

    event data -> out-of-time features + revenue labels (Definitions: ltv_horizon_days,
    revenue) -> fit the Tweedie XGBoost model -> fit BG/NBD + Gamma-Gamma on the bookings up
    to the test cut-off -> naive baseline (past spend extrapolated) -> evaluate the three side
    by side (bootstrap CIs on the same resampled customers, paired differences, decile
    calibration, plots) -> the shared skeleton: register @challenger, gate, promote

Run it with ``barberpro-ml train ltv``, ``mlflow run . -e train_ltv`` or
``barberpro_ml.jobs.ltv.run(load_config())``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import ConfigError, NotEnoughDataError
from barberpro_ml.evaluation import (
    RegressionReport,
    evaluate_ltv,
    plot_decile_calibration,
    plot_predicted_vs_actual,
)
from barberpro_ml.features import (
    feature_catalog,
    last_labelable_as_of,
    ltv_labels,
    time_split,
    training_frame,
)
from barberpro_ml.features.rfm import WEEK_DAYS, completed_transactions, customer_rfm
from barberpro_ml.jobs.base import (
    Candidate,
    EvaluationSettings,
    JobContext,
    JobResult,
    ModelCardText,
    TrainingJobConfig,
    load_job_config,
    run_training_job,
    training_cutoffs,
)
from barberpro_ml.jobs.params import estimator_params
from barberpro_ml.models import (
    BetaGeoModel,
    GammaGammaModel,
    LTVRegressor,
    customer_lifetime_value,
)
from barberpro_ml.registry import (
    champion_comparison,
    log_and_register,
    log_feature_catalogue,
    log_report,
)
from barberpro_ml.registry.models import CLV_PARAMS_ARTIFACT
from barberpro_ml.registry.tracking import metric_key

__all__ = ["LTVJobConfig", "load_config", "run"]

CANDIDATE, PROBABILISTIC, NAIVE = "xgboost", "bgnbd", "naive"
MIN_GAMMA_GAMMA_CUSTOMERS = 20
"""Fewest positive-spend repeat customers the Gamma-Gamma fit is attempted on."""


class ProbabilisticSettings(BaseModel):
    """``probabilistic:``: the BG/NBD + Gamma-Gamma fit."""

    model_config = ConfigDict(extra="forbid")
    penalizer: float = Field(0.0, ge=0.0, le=100.0)
    """L2 penalty on the log parameters (0: the paper's maximum likelihood)."""


class LTVEvaluationSettings(EvaluationSettings):
    n_bins: int = Field(10, ge=2, le=100)
    """Bins of the decile-calibration table."""


class LTVJobConfig(TrainingJobConfig):
    """``configs/ltv.yaml``: every knob of the lifetime-value job.

    The forecast horizon is the shared ``ltv_horizon_days`` of
    :class:`~barberpro_ml.definitions.Definitions`.
    """

    family = "ltv"
    job_name = "ltv"

    model_name: str = "barberpro-ltv"
    experiment: str = "barberpro-ltv"
    train_horizon_days: int | None = Field(182, ge=1, le=3650)
    """Label period of the training rows, in days (None: the full horizon); predictions are
    extended to the horizon by a factor measured on data known at the test cut-off."""
    n_train_cutoffs: int = Field(4, ge=1, le=60)
    """At most this many training cut-offs (fewer when the data are shorter)."""
    cutoff_spacing_days: int = Field(61, ge=1, le=3650)
    min_history_days: int = Field(0, ge=0, le=3650)
    """A training cut-off lies at least this many days after the first event (0: the first
    day may be a cut-off, its customers with no history)."""
    model: dict[str, Any] = Field(default_factory=lambda: {
        "tweedie_variance_power": 1.5, "n_estimators": 1000, "learning_rate": 0.05,
        "max_depth": 4, "early_stopping_rounds": 50, "validation_fraction": 0.2,
        "random_state": 0, "n_jobs": 2})
    """:class:`~barberpro_ml.models.LTVRegressor` parameters (unknown names refused)."""
    probabilistic: ProbabilisticSettings = Field(default_factory=ProbabilisticSettings)
    baseline_window_days: int = Field(365, ge=1, le=3650)
    """The naive baseline's look-back, in days."""
    min_observed_days: int = Field(30, ge=1, le=3650)
    """The naive baseline divides by at least this many days signed up."""
    evaluation: LTVEvaluationSettings = Field(default_factory=LTVEvaluationSettings)

    _check_model = field_validator("model")(estimator_params(LTVRegressor))

    def training_horizon(self, horizon_days: int) -> int:
        """The training rows' label period for a forecast horizon of ``horizon_days``."""
        return self.train_horizon_days or horizon_days


def load_config(path: str | Path | None = None, **overrides: Any) -> LTVJobConfig:
    """The LTV job's config: ``path`` (default: the shipped ``ltv.yaml``) + overrides."""
    return load_job_config(LTVJobConfig, path, overrides)


def cutoffs(data: MarketplaceData, cfg: LTVJobConfig, horizon_days: int
            ) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """Training cut-offs (each label period ends by the test cut-off) and the test cut-off.

    Derived from the data: the test cut-off is the last day whose horizon the data cover;
    training cut-offs step back from ``test - train_horizon_days`` as many as fit after the
    first event plus ``min_history_days`` (at most ``n_train_cutoffs``).
    """
    test = last_labelable_as_of(data, horizon_days).normalize()
    training = cfg.training_horizon(horizon_days)
    last_train = test - pd.Timedelta(days=training)
    first_event = data.bookings["created_at"].min().normalize()
    train = training_cutoffs(
        first_usable=first_event + pd.Timedelta(days=cfg.min_history_days), last=last_train,
        spacing_days=cfg.cutoff_spacing_days, at_most=cfg.n_train_cutoffs,
        data_start=first_event, data_end=data.observation_end,
        days_before_first_cutoff=cfg.min_history_days,
        days_after_last_cutoff=training + horizon_days,
        what=(f"the LTV layout ({cfg.min_history_days} days of history, a {training}-day "
              f"training label period, then a {horizon_days}-day test horizon)"))
    return train, test


def horizon_factor(data: MarketplaceData, test_cut: pd.Timestamp, cfg: LTVJobConfig,
                   horizon_days: int) -> float:
    """Revenue over the full horizon / revenue over the training horizon, measured on the
    customers signed up at ``test_cut - horizon`` (their whole horizon ends by the test
    cut-off, so nothing after it is used); 1 when training rows use the full horizon."""
    if cfg.training_horizon(horizon_days) == horizon_days:
        return 1.0
    c0 = test_cut - pd.Timedelta(days=horizon_days)
    first_event = data.bookings["created_at"].min().normalize()
    if c0 < first_event:
        raise NotEnoughDataError(
            f"train_horizon_days {cfg.training_horizon(horizon_days)} < the horizon "
            f"{horizon_days} needs the horizon-extension factor, measured on the customers of "
            f"{c0:%Y-%m-%d} (test cut-off - horizon), which precedes the data "
            f"({first_event:%Y-%m-%d} to {data.observation_end:%Y-%m-%d}); set "
            "train_horizon_days: null to train on full-horizon labels")
    full = float(ltv_labels(data, c0, horizon_days).sum())
    short = float(ltv_labels(data, c0, cfg.training_horizon(horizon_days)).sum())
    if not (short > 0 and full > 0):
        raise NotEnoughDataError(
            f"cannot measure the horizon-extension factor at {c0:%Y-%m-%d}: the customers "
            f"signed up then have revenue {short:.2f} over "
            f"{cfg.training_horizon(horizon_days)} days and {full:.2f} over {horizon_days}; "
            "set train_horizon_days equal to the definitions' ltv_horizon_days")
    return full / short


def probabilistic_forecast(data: MarketplaceData, as_of: pd.Timestamp, customers: pd.Index,
                           cfg: LTVJobConfig, horizon_days: int
                           ) -> tuple[np.ndarray, dict[str, float], int]:
    """BG/NBD x Gamma-Gamma expected revenue over the horizon (undiscounted, like the label).

    Customers without a completed booking by ``as_of`` are outside the BG/NBD (it starts at
    the first purchase) and are forecast 0. Returns the forecast in ``customers`` order, the
    fitted parameters, and how many customers were forecast 0 for that reason.
    """
    rfm = customer_rfm(data, as_of)
    penalizer = cfg.probabilistic.penalizer
    bgnbd = BetaGeoModel(penalizer=penalizer).fit(rfm)
    # Gamma-Gamma is fitted on repeat customers with a positive mean spend (a Gamma density
    # has no mass at 0); repeat customers who paid nothing on average are left out of the fit
    # and forecast with the model's conditional mean at their observed 0 (shrunk toward 0).
    repeat = rfm["frequency"] > 0
    paying = repeat & (rfm["monetary_value"] > 0)
    if int(paying.sum()) < MIN_GAMMA_GAMMA_CUSTOMERS:
        raise NotEnoughDataError(
            f"only {int(paying.sum())} repeat customers with a positive mean spend by "
            f"{as_of:%Y-%m-%d}; the Gamma-Gamma spend model needs at least "
            f"{MIN_GAMMA_GAMMA_CUSTOMERS}")
    gamma_gamma = GammaGammaModel(penalizer=penalizer).fit(rfm.loc[paying])
    left_out = int((repeat & ~paying).sum())
    if left_out:
        mlflow.log_metric("gamma_gamma_left_out", left_out)
    rfm = rfm.assign(monetary_value=rfm["monetary_value"].clip(lower=0.0))
    clv = customer_lifetime_value(bgnbd, gamma_gamma, rfm,
                                  horizon=horizon_days / WEEK_DAYS, discount_rate=0.0)
    forecast = pd.Series(np.asarray(clv, dtype=float), index=rfm.index).reindex(customers)
    params = {**{f"bgnbd.{k}": v for k, v in bgnbd.params_.as_dict().items()},
              **{f"gamma_gamma.{k}": v for k, v in gamma_gamma.params_.as_dict().items()}}
    return forecast.fillna(0.0).to_numpy(), params, int(forecast.isna().sum())


def naive_forecast(data: MarketplaceData, as_of: pd.Timestamp, customers: pd.Index,
                   cfg: LTVJobConfig, horizon_days: int) -> np.ndarray:
    """Revenue over the past window, per day signed up in it (at least min_observed_days),
    times the horizon."""
    tx = completed_transactions(data, as_of)
    window = pd.Timedelta(days=cfg.baseline_window_days)
    recent = tx.loc[tx["scheduled_at"] > as_of - window]
    past = recent.groupby("customer_id")["spend"].sum().reindex(customers, fill_value=0.0)
    signup = data.customers.set_index("customer_id")["signup_at"].reindex(customers)
    days = ((as_of - signup).dt.total_seconds() / 86_400).to_numpy()
    observed = np.clip(days, cfg.min_observed_days, cfg.baseline_window_days)
    return np.asarray(past.to_numpy() * horizon_days / observed, dtype=float)


def log_side_by_side(report: RegressionReport) -> None:
    """Every model's metrics as ``<model>_<metric>`` (+ CI bounds) and the side-by-side table."""
    for model, metrics in report.models.items():
        for name, est in metrics.items():
            key = metric_key(f"{model}_{name}")
            mlflow.log_metrics({key: est.value, f"{key}_ci_low": est.ci_low,
                                f"{key}_ci_high": est.ci_high})
    mlflow.log_text(report.summary().reset_index().to_csv(index=False),
                    "evaluation/side_by_side.csv")
    calibration = pd.DataFrame([{"model": m, **b.model_dump()}
                                for m, bins in report.calibration.items() for b in bins])
    mlflow.log_text(calibration.to_csv(index=False), "evaluation/decile_calibration.csv")


def summary_line(report: RegressionReport) -> str:
    parts = []
    for model, metrics in report.models.items():
        mae, rho = metrics["mae"], metrics["spearman"]
        agg = metrics["aggregate_error"]
        parts.append(f"{model}: MAE {mae.value:.1f} [{mae.ci_low:.1f}, {mae.ci_high:.1f}], "
                     f"Spearman {rho.value:.3f} [{rho.ci_low:.3f}, {rho.ci_high:.3f}], "
                     f"aggregate {agg.value:+.1%} [{agg.ci_low:+.1%}, {agg.ci_high:+.1%}]")
    return "; ".join(parts)



def _step(ctx: JobContext) -> Candidate:
    cfg: LTVJobConfig = ctx.config
    data = ctx.data
    horizon = ctx.definitions.ltv_horizon_days
    training = cfg.training_horizon(horizon)
    if training > horizon:
        raise ConfigError(f"train_horizon_days ({training}) must not exceed the definitions' "
                          f"ltv_horizon_days ({horizon})", source=str(cfg.source or "ltv config"))
    n_boot, seed = cfg.evaluation.n_bootstrap, cfg.evaluation.seed

    # -- features and labels, out of time
    train_cuts, test_cut = cutoffs(data, cfg, horizon)
    with ctx.stage("features"):
        train_split = time_split(data, train_cutoffs=train_cuts, test_cutoff=test_cut,
                                 horizon_days=training, label="ltv")
        X_train, y_train = train_split.xy("train")
        if training == horizon:
            X_test, y_test = train_split.xy("test")
        else:
            test = training_frame(data, [test_cut], horizon, label="ltv")
            X_test, y_test = test.drop(columns="ltv"), test["ltv"]
        factor = horizon_factor(data, test_cut, cfg, horizon)
    customers = X_test.index.get_level_values("customer_id")
    y = y_test.to_numpy(dtype=float)
    notes: list[str] = []
    log_feature_catalogue(feature_catalog())
    mlflow.log_params({"train_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in train_cuts),
                       "test_cutoff": f"{test_cut:%Y-%m-%d}",
                       "training_label_days": training,
                       "horizon_extension_factor": round(factor, 6),
                       "n_train": len(X_train), "n_test": len(X_test)})

    # -- fit the three forecasts
    with ctx.stage("fit"):
        model = LTVRegressor(**{**cfg.model, "prediction_scale": factor}).fit(X_train, y_train)
    mlflow.log_params({"best_iteration": model.best_iteration_,
                       "validation_size": model.validation_size_})
    with ctx.stage("fit bgnbd and gamma-gamma"):
        p_prob, prob_params, n_unseen = probabilistic_forecast(data, test_cut, customers, cfg,
                                                               horizon)
    mlflow.log_params({k: round(v, 6) for k, v in prob_params.items()})
    clv_params = {"bgnbd": {k.split(".", 1)[1]: v for k, v in prob_params.items()
                            if k.startswith("bgnbd.")},
                  "gamma_gamma": {k.split(".", 1)[1]: v for k, v in prob_params.items()
                                  if k.startswith("gamma_gamma.")},
                  "time_unit_days": WEEK_DAYS, "fitted_at": f"{test_cut:%Y-%m-%d}"}
    # Full precision, registered inside the model (the scorer's probability alive); the run
    # artifact is kept for the record.
    mlflow.log_dict(clv_params, CLV_PARAMS_ARTIFACT)
    predictions = {CANDIDATE: model.predict(X_test), PROBABILISTIC: p_prob,
                   NAIVE: naive_forecast(data, test_cut, customers, cfg, horizon)}

    # -- evaluate side by side on the out-of-time test customers
    with ctx.stage("evaluate"):
        report = evaluate_ltv(y, predictions, n_bootstrap=n_boot, seed=seed, family=cfg.family,
                              candidate=CANDIDATE, baseline=NAIVE,
                              n_bins=cfg.evaluation.n_bins, X=X_test, train=X_train,
                              horizon_days=training)
    if training != horizon:
        c0 = test_cut - pd.Timedelta(days=horizon)
        notes.append(f"{CANDIDATE} trained on {training}-day revenue labels (the data are too "
                     f"short for {horizon}-day training rows with any history), its "
                     f"predictions extended to the horizon by the factor {factor:.3f} measured "
                     f"on the customers of {c0:%Y-%m-%d}")
    if n_unseen:
        unseen = ~customers.isin(completed_transactions(data, test_cut)["customer_id"])
        notes.append(f"{n_unseen:,} test customers ({n_unseen / len(y):.1%}) had no completed "
                     f"booking by the cut-off and get a BG/NBD forecast of 0; they realised "
                     f"{float(y[unseen].mean()):.2f} on average")
    notes.insert(0, summary_line(report))
    report = report.model_copy(update={"notes": [*report.notes, *notes]})
    log_report(report)
    log_side_by_side(report)
    with ctx.stage("plots"):
        mlflow.log_figure(plot_decile_calibration(report), "plots/decile_calibration.png")
        mlflow.log_figure(plot_predicted_vs_actual(y, predictions),
                          "plots/predicted_vs_actual.png")

    def register(tags: dict[str, str]) -> Any:
        return log_and_register(model, X_train, cfg.model_name, output="predict", tags=tags,
                                clv_params=clv_params)[1]

    currency = ctx.definitions.currency
    return Candidate(
        register=register, report=report,
        comparison=champion_comparison(cfg.model_name, X_test, y, predictions[CANDIDATE],
                                       n_bootstrap=n_boot, seed=seed),
        gate_inputs=[(X_test, y, "test")],
        card=ModelCardText(
            description=(f"Expected revenue ({currency}; price - discount of completed "
                         f"bookings) a customer brings in the {horizon} days after the cut-off: "
                         "XGBoost with a Tweedie objective on the point-in-time customer "
                         "features, evaluated beside BG/NBD + Gamma-Gamma and past spend "
                         "extrapolated."),
            data_window={
                "train cut-offs": ", ".join(f"{c:%Y-%m-%d}" for c in train_cuts),
                "test cut-off": f"{test_cut:%Y-%m-%d}",
                "label period": f"{training} days (training), {horizon} days (test)",
                "horizon-extension factor": f"{factor:.4f}",
                "rows (train / test)": f"{len(X_train):,} / {len(X_test):,}"},
            caveats=notes),
        headline=("spearman", "gini", "mae", "mae_minus_naive", "aggregate_error"),
        # the side-by-side line only: the caveats are in the report and the model card
        notes=notes[:1])


def run(config: LTVJobConfig | str | Path | None = None, *,
        data: MarketplaceData | None = None, data_dir: str | Path | None = None,
        tracking_uri: str | None = None) -> JobResult:
    """Train, evaluate, gate, register and (when the gates pass) promote the LTV model.

    Parameters
    ----------
    config
        The job's config, or the path of its YAML (default: the shipped ``ltv.yaml``).
    data, data_dir
        Event data in memory, or a folder of tables (default: the config's).
    tracking_uri
        MLflow tracking URI.

    Returns
    -------
    JobResult
    """
    cfg = config if isinstance(config, LTVJobConfig) else load_config(config)
    return run_training_job(cfg, _step, data=data, data_dir=data_dir, tracking_uri=tracking_uri)
