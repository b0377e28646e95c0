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
from typing import Any, Literal

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
from barberpro_ml.evaluation.regression import regression_metrics
from barberpro_ml.features import (
    DEFAULT_WINDOWS,
    feature_catalog,
    last_labelable_as_of,
    ltv_labels,
    training_frame,
    with_rfm_features,
)
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
    training_cutoffs,
)
from barberpro_ml.jobs.params import estimator_params
from barberpro_ml.models import (
    BlendedLTV,
    LTVRegressor,
    NaiveLTV,
    ProbabilisticLTV,
)
from barberpro_ml.models.clv import ConvergenceError
from barberpro_ml.registry import (
    champion_comparison,
    log_and_register,
    log_feature_catalogue,
    log_report,
)
from barberpro_ml.registry.models import CLV_PARAMS_ARTIFACT
from barberpro_ml.registry.tracking import metric_key

__all__ = ["LTVJobConfig", "load_config", "run"]

CandidateName = Literal["xgboost", "bgnbd", "blend", "naive"]
CANDIDATE_NAMES: tuple[CandidateName, ...] = ("xgboost", "bgnbd", "blend", "naive")
SELECTED, BOOSTED, PROBABILISTIC, BLEND, NAIVE = "selected", "xgboost", "bgnbd", "blend", "naive"
BLEND_WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 11))
"""Weights of xgboost in the blend tried on validation (bgnbd gets the rest)."""


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
    candidates: list[CandidateName] = Field(
        default_factory=lambda: list(CANDIDATE_NAMES), min_length=1)
    """The forecasts the job chooses among on validation (``blend``: a convex combination of
    xgboost and bgnbd, its weight chosen on validation too)."""
    select_metric: Literal["mae", "rmse"] = "mae"
    """The validation metric that chooses the registered model (lower is better)."""
    default_candidate: CandidateName = "xgboost"
    """Registered when the data are too short to validate any candidate (the note says so)."""
    min_validation_history_days: int = Field(90, ge=1, le=3650)
    """The validation cut-off (test cut-off - horizon) must lie this long after the first
    event, else nothing is validated and ``default_candidate`` is registered."""

    _check_model = field_validator("model")(estimator_params(LTVRegressor))

    @field_validator("baseline_window_days")
    @classmethod
    def _a_feature_window(cls, days: int) -> int:
        if days not in DEFAULT_WINDOWS:
            raise ValueError(f"must be one of the feature windows {list(DEFAULT_WINDOWS)} "
                             f"(the naive forecast reads spend_<days>d), got {days}")
        return days

    def training_horizon(self, horizon_days: int) -> int:
        """The training rows' label period for a forecast horizon of ``horizon_days``."""
        return self.train_horizon_days or horizon_days


def load_config(path: str | Path | None = None, **overrides: Any) -> LTVJobConfig:
    """The LTV job's config: ``path`` (default: the shipped ``ltv.yaml``) + overrides."""
    return load_job_config(LTVJobConfig, path, overrides)


def cutoffs(data: MarketplaceData, cfg: LTVJobConfig, horizon_days: int
            ) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """Training cut-offs before the test cut-off (the last day whose horizon the data cover),
    and the test cut-off."""
    test = last_labelable_as_of(data, horizon_days).normalize()
    return cutoffs_before(data, cfg, test, horizon_days)


def cutoffs_before(data: MarketplaceData, cfg: LTVJobConfig, test: pd.Timestamp,
                   horizon_days: int) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """Training cut-offs (each label period ends by the test cut-off) and the test cut-off.

    Derived from the data: the test cut-off is the last day whose horizon the data cover;
    training cut-offs step back from ``test - train_horizon_days`` as many as fit after the
    first event plus ``min_history_days`` (at most ``n_train_cutoffs``).
    """
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


_CANNOT = (NotEnoughDataError, ConvergenceError, FloatingPointError)
"""What makes a candidate unavailable at a cut-off (too little data, a fit that diverges):
recorded with the reason, never a crash."""


def _features_at(data: MarketplaceData, cut: pd.Timestamp, horizon: int
                 ) -> tuple[pd.DataFrame, np.ndarray]:
    """Every customer signed up by ``cut``: features (+ RFM columns) and revenue over the
    next ``horizon`` days."""
    frame = with_rfm_features(data, training_frame(data, [cut], horizon, label="ltv"))
    return frame.drop(columns="ltv"), frame["ltv"].to_numpy(dtype=float)


def fit_boosted(data: MarketplaceData, cfg: LTVJobConfig, cut: pd.Timestamp, horizon: int
                ) -> tuple[LTVRegressor, pd.DataFrame, list[pd.Timestamp], float]:
    """The boosted model as it forecasts from ``cut``: trained on cut-offs whose labels end by
    ``cut`` (derived from the data), extended to the horizon by the factor measured at ``cut -
    horizon``. Returns the model, its training rows, their cut-offs and the factor."""
    training = cfg.training_horizon(horizon)
    train_cuts, _ = cutoffs_before(data, cfg, cut, horizon)
    rows = with_rfm_features(data, training_frame(data, train_cuts, training, label="ltv"))
    factor = horizon_factor(data, cut, cfg, horizon)
    model = LTVRegressor(**{**cfg.model, "prediction_scale": factor}).fit(
        rows.drop(columns="ltv"), rows["ltv"])
    return model, rows.drop(columns="ltv"), train_cuts, factor


def _validate(ctx: JobContext, test_cut: pd.Timestamp, horizon: int
              ) -> tuple[str, float | None, pd.DataFrame, list[str]]:
    """Every candidate forecast from ``test_cut - horizon`` and judged on the revenue up to
    ``test_cut``; the winner by ``select_metric``, the blend weight, the table and notes."""
    cfg: LTVJobConfig = ctx.config
    data = ctx.data
    val_cut = test_cut - pd.Timedelta(days=horizon)
    first = data.bookings["created_at"].min().normalize()
    if val_cut < first + pd.Timedelta(days=cfg.min_validation_history_days):
        note = (f"no validation: the validation cut-off {val_cut:%Y-%m-%d} (test cut-off - "
                f"{horizon} days) lies less than {cfg.min_validation_history_days} days after "
                f"the first event {first:%Y-%m-%d}; registering the default candidate "
                f"{cfg.default_candidate!r} (the gate still judges it on the test period)")
        return cfg.default_candidate, None, pd.DataFrame(), [note]
    X_val, y_val = _features_at(data, val_cut, horizon)
    preds: dict[str, np.ndarray] = {}
    reasons: dict[str, str] = {}
    for name in cfg.candidates:
        try:
            if name == NAIVE:
                preds[name] = _naive(cfg, horizon).fit(X_val).predict(X_val)
            elif name == PROBABILISTIC:
                preds[name] = _probabilistic(cfg, horizon).fit(X_val).predict(X_val)
            elif name == BOOSTED:
                model, *_ = fit_boosted(data, cfg, val_cut, horizon)
                preds[name] = model.predict(X_val)
        except _CANNOT as exc:
            reasons[name] = str(exc)
    weight: float | None = None
    if BLEND in cfg.candidates:
        if BOOSTED in preds and PROBABILISTIC in preds:
            scores = {w: regression_metrics(y_val, w * preds[BOOSTED] + (1 - w)
                                            * preds[PROBABILISTIC])[cfg.select_metric]
                      for w in BLEND_WEIGHTS}
            weight = min(scores, key=lambda w: (scores[w], abs(w - 0.5)))
            preds[BLEND] = weight * preds[BOOSTED] + (1 - weight) * preds[PROBABILISTIC]
        else:
            reasons[BLEND] = "needs both xgboost and bgnbd on validation"
    rows = []
    for name in cfg.candidates:
        row: dict[str, Any] = {"candidate": name, "available": name in preds,
                               "reason": reasons.get(name, "")}
        if name in preds:
            row.update(regression_metrics(y_val, preds[name]))
        if name == BLEND and weight is not None:
            row["xgboost_weight"] = weight
        rows.append(row)
    table = pd.DataFrame(rows)
    if not preds:
        raise NotEnoughDataError("no LTV candidate could forecast from the validation cut-off "
                                 f"{val_cut:%Y-%m-%d}: " + "; ".join(
                                     f"{k}: {v}" for k, v in reasons.items()))
    winner = min(preds, key=lambda n: (regression_metrics(y_val, preds[n])[cfg.select_metric],
                                       list(cfg.candidates).index(n)))  # type: ignore[arg-type]
    chosen = table.set_index("candidate").loc[winner]
    notes = [f"chosen on validation ({val_cut:%Y-%m-%d} + {horizon} days, {len(y_val):,} "
             f"customers) by {cfg.select_metric}: {winner} ({cfg.select_metric} "
             f"{chosen[cfg.select_metric]:.2f}" + (f", xgboost weight {weight:.1f}"
                                                  if winner == BLEND else "") + "); "
             + ", ".join(f"{r['candidate']} {r[cfg.select_metric]:.2f}"
                         for r in rows if r["available"] and r["candidate"] != winner)
             + "".join(f"; {k} not validated: {v}" for k, v in reasons.items())]
    return winner, weight, table, notes


def _naive(cfg: LTVJobConfig, horizon: int) -> NaiveLTV:
    return NaiveLTV(horizon_days=horizon, window_days=cfg.baseline_window_days,
                    min_observed_days=cfg.min_observed_days)


def _probabilistic(cfg: LTVJobConfig, horizon: int) -> ProbabilisticLTV:
    return ProbabilisticLTV(horizon_days=horizon, penalizer=cfg.probabilistic.penalizer)


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
    test_cut = last_labelable_as_of(data, horizon).normalize()
    log_feature_catalogue(feature_catalog())

    # -- choose on validation: every candidate forecasts from one horizon before the test
    with ctx.stage("validate candidates"):
        winner, weight, validation, notes = _validate(ctx, test_cut, horizon)
    if not validation.empty:
        mlflow.log_text(validation.to_csv(index=False), "evaluation/validation.csv")
    mlflow.log_params({"chosen_candidate": winner, "select_metric": cfg.select_metric,
                       **({"blend_xgboost_weight": weight} if weight is not None else {})})

    # -- every candidate refitted up to the test cut-off, judged on the test period
    with ctx.stage("features"):
        X_test, y = _features_at(data, test_cut, horizon)
    fitted: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    X_train = X_test.iloc[:0]
    with ctx.stage("fit"):
        try:
            fitted[BOOSTED], X_train, train_cuts, factor = fit_boosted(data, cfg, test_cut,
                                                                       horizon)
            mlflow.log_params({"train_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in train_cuts),
                               "training_label_days": training,
                               "horizon_extension_factor": round(factor, 6),
                               "best_iteration": fitted[BOOSTED].best_iteration_,
                               "n_train": len(X_train)})
        except _CANNOT as exc:
            unavailable[BOOSTED] = str(exc)
        try:
            fitted[PROBABILISTIC] = _probabilistic(cfg, horizon).fit(X_test)
        except _CANNOT as exc:
            unavailable[PROBABILISTIC] = str(exc)
        fitted[NAIVE] = _naive(cfg, horizon).fit(X_test)
        if BOOSTED in fitted and PROBABILISTIC in fitted:
            w = weight if weight is not None else 0.5
            fitted[BLEND] = BlendedLTV([fitted[BOOSTED], fitted[PROBABILISTIC]],
                                       [w, 1.0 - w]).fit(X_test)
    if winner not in fitted:
        raise NotEnoughDataError(f"the chosen LTV candidate {winner!r} cannot be fitted at the "
                                 f"test cut-off {test_cut:%Y-%m-%d}: {unavailable.get(winner)}")
    model = fitted[winner]
    clv_params = None
    if PROBABILISTIC in fitted:
        prob = fitted[PROBABILISTIC]
        clv_params = {**prob.clv_params(), "fitted_at": f"{test_cut:%Y-%m-%d}"}
        mlflow.log_params({f"bgnbd.{k}": round(v, 6) for k, v in clv_params["bgnbd"].items()})
        mlflow.log_params({f"gamma_gamma.{k}": round(v, 6)
                           for k, v in clv_params["gamma_gamma"].items()})
        mlflow.log_dict(clv_params, CLV_PARAMS_ARTIFACT)
        if prob.n_left_out_:
            notes.append(f"Gamma-Gamma fitted without {prob.n_left_out_:,} repeat customers "
                         "whose mean spend is 0 or less (forecast at their observed 0)")
    mlflow.log_params({"test_cutoff": f"{test_cut:%Y-%m-%d}", "n_test": len(X_test)})
    predictions = {SELECTED: model.predict(X_test),
                   **{name: m.predict(X_test) for name, m in fitted.items()}}

    # -- evaluate side by side on the out-of-time test customers
    with ctx.stage("evaluate"):
        report = evaluate_ltv(y, predictions, n_bootstrap=n_boot, seed=seed, family=cfg.family,
                              candidate=SELECTED, baseline=NAIVE,
                              n_bins=cfg.evaluation.n_bins, X=X_test, train=X_train,
                              horizon_days=training)
    unseen = X_test["rfm_age_weeks"].to_numpy() == 0
    if unseen.any():
        notes.append(f"{int(unseen.sum()):,} test customers ({unseen.mean():.1%}) had no "
                     f"completed booking by the cut-off (bgnbd forecasts them 0); they realised "
                     f"{float(y[unseen].mean()):.2f} on average")
    for name, why in unavailable.items():
        notes.append(f"{name} not fitted at the test cut-off: {why}")
    notes.insert(0, summary_line(report))
    report = report.model_copy(update={"notes": [*report.notes, *notes]})
    log_report(report)
    log_side_by_side(report)
    with ctx.stage("plots"):
        mlflow.log_figure(plot_decile_calibration(report), "plots/decile_calibration.png")
        mlflow.log_figure(plot_predicted_vs_actual(y, predictions),
                          "plots/predicted_vs_actual.png")

    def register(tags: dict[str, str]) -> Any:
        return log_and_register(model, X_test, cfg.model_name, output="predict", tags=tags,
                                clv_params=clv_params)[1]

    currency = ctx.definitions.currency
    return Candidate(
        register=register, report=report,
        comparison=champion_comparison(cfg.model_name, X_test, y, predictions[SELECTED],
                                       n_bootstrap=n_boot, seed=seed),
        gate_inputs=[(X_test, y, "test")],
        card=ModelCardText(
            description=(f"Expected revenue ({currency}; price - discount of completed "
                         f"bookings) a customer brings in the {horizon} days after the cut-off, "
                         f"by the candidate chosen on validation: {winner} (among "
                         f"{', '.join(cfg.candidates)}; xgboost: a Tweedie boosted model on the "
                         "point-in-time features and the BG/NBD inputs; bgnbd: BG/NBD x "
                         "Gamma-Gamma; blend: a convex combination of the two; naive: past "
                         "spend extrapolated)."),
            data_window={
                "validation cut-off": f"{test_cut - pd.Timedelta(days=horizon):%Y-%m-%d}",
                "test cut-off": f"{test_cut:%Y-%m-%d}",
                "horizon": f"{horizon} days",
                "chosen": winner,
                "rows (train / test)": f"{len(X_train):,} / {len(X_test):,}"},
            caveats=notes),
        headline=("spearman", "gini", "mae", "mae_minus_naive", "aggregate_error"),
        notes=notes[:2])

def run(config: LTVJobConfig | str | Path | None = None, *,
        data: MarketplaceData | None = None, data_dir: str | Path | None = None,
        tracking_uri: str | None = None) -> JobResult:
    """Train, evaluate, gate, register and (when the gates pass) promote the LTV model.

    ``config``, ``data``, ``data_dir``, ``tracking_uri`` and the result: as
    :func:`~barberpro_ml.jobs.base.run_training_job` (``config`` may also be the path of a
    YAML, or None for the shipped ``ltv.yaml``).
    """
    cfg = as_job_config(LTVJobConfig, config)
    return run_training_job(cfg, _step, data=data, data_dir=data_dir, tracking_uri=tracking_uri)
