"""The churn job: out-of-time features and labels, a boosted classifier, honest evaluation.

Reads top to bottom like the data flow::

    event data -> out-of-time features + labels (Definitions: active window, churn horizon)
    -> fit (+ optional Optuna) -> evaluate (bootstrap CIs, slices, backtest, oracle, plots)
    -> the shared skeleton: register @challenger, gate, promote @champion when it passes

Run it with ``barberpro-ml train churn``, ``mlflow run . -e train_churn`` or
``barberpro_ml.jobs.churn.run(load_config())``.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from barberpro_ml.data import MarketplaceData, oracle_churn_probability
from barberpro_ml.evaluation import (
    BacktestSplit,
    evaluate_classifier,
    evaluate_scores,
    paired_bootstrap,
    rolling_origin_backtest,
)
from barberpro_ml.evaluation.plots import log_classification_plots
from barberpro_ml.features import feature_catalog, last_labelable_as_of, time_split
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
from barberpro_ml.models import ChurnClassifier, tune
from barberpro_ml.registry import (
    champion_comparison,
    log_and_register,
    log_feature_catalogue,
    log_report,
)

__all__ = ["ChurnJobConfig", "cutoffs", "load_config", "run"]


class TuneSettings(BaseModel):
    """``tune:``: an Optuna study on the validation cut-off before the final fit."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    n_trials: int = Field(20, ge=1, le=10_000)
    seed: int = Field(0, ge=0)


class OracleSettings(BaseModel):
    """``oracle:``: on simulated data, the best achievable discrimination for the label."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    n_futures: int = Field(200, ge=10, le=100_000)
    """Simulated futures per customer."""
    seed: int = Field(0, ge=0)


class BacktestSettings(BaseModel):
    """``backtest:``: rolling origins, each trained on every earlier training cut-off."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    n_origins: int = Field(3, ge=1, le=100)
    n_bootstrap: int = Field(300, ge=100, le=100_000)


class ChurnEvaluationSettings(EvaluationSettings):
    min_slice_size: int = Field(200, ge=1)
    """Smallest slice reported."""
    tenure_bands_days: list[int] = Field(default_factory=lambda: [0, 90, 365, 730],
                                         min_length=1)
    """Left edges of the tenure slices, in days, increasing from 0."""

    @field_validator("tenure_bands_days")
    @classmethod
    def _increasing(cls, edges: list[int]) -> list[int]:
        if edges[0] != 0 or any(b <= a for a, b in pairwise(edges)):
            raise ValueError(f"must start at 0 and increase, got {edges}")
        return edges


class ChurnJobConfig(TrainingJobConfig):
    """``configs/churn.yaml``: every knob of the churn job.

    The label's horizon and the active window are not here: they are the shared
    :class:`~barberpro_ml.definitions.Definitions` (``definitions.yaml``).
    """

    family = "churn"
    job_name = "churn"

    model_name: str = "barberpro-churn"
    experiment: str = "barberpro-churn"
    n_train_cutoffs: int = Field(4, ge=1, le=60)
    """Training cut-offs, stepping back from the last one."""
    cutoff_spacing_days: int = Field(91, ge=1, le=3650)
    """Days between training cut-offs."""
    model: dict[str, Any] = Field(default_factory=lambda: {
        "estimator": "blend", "n_estimators": 1000, "learning_rate": 0.05, "max_depth": 4,
        "early_stopping_rounds": 50, "calibration": "auto", "random_state": 0, "n_jobs": 2})
    """:class:`~barberpro_ml.models.ChurnClassifier` parameters (unknown names refused)."""
    baseline: dict[str, Any] = Field(default_factory=lambda: {
        "estimator": "logistic", "calibration": "auto", "random_state": 0})
    """The baseline classifier's parameters, evaluated on the same rows."""
    tune: TuneSettings = Field(default_factory=TuneSettings)
    evaluation: ChurnEvaluationSettings = Field(default_factory=ChurnEvaluationSettings)
    oracle: OracleSettings = Field(default_factory=OracleSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)

    _check_model = field_validator("model", "baseline")(estimator_params(ChurnClassifier))


def load_config(path: str | Path | None = None, **overrides: Any) -> ChurnJobConfig:
    """The churn job's config: ``path`` (default: the shipped ``churn.yaml``) + overrides."""
    return load_job_config(ChurnJobConfig, path, overrides)


def cutoffs(data: MarketplaceData, cfg: ChurnJobConfig, horizon_days: int,
            active_window_days: int) -> tuple[list[pd.Timestamp], pd.Timestamp, pd.Timestamp]:
    """Train, validation and test cut-offs, each one label period after the previous part.

    The test cut-off is the last day whose label period the data cover; the training cut-offs
    step back from one label period before validation, ``cutoff_spacing_days`` apart, as many
    as the data hold after one activity window (at most ``n_train_cutoffs``).

    Raises
    ------
    NotEnoughDataError
        The data are too short for the layout (names the dates and what to lower).
    """
    horizon = pd.Timedelta(days=horizon_days)
    test = last_labelable_as_of(data, horizon_days).normalize()
    validation = test - horizon
    last_train = validation - horizon
    start = data.bookings["scheduled_at"].min()
    train = training_cutoffs(
        first_usable=start + pd.Timedelta(days=active_window_days), last=last_train,
        spacing_days=cfg.cutoff_spacing_days, at_most=cfg.n_train_cutoffs, data_start=start,
        data_end=data.observation_end, days_before_first_cutoff=active_window_days,
        days_after_last_cutoff=3 * horizon_days,
        what=(f"the churn layout (a {active_window_days}-day activity window, then training, "
              f"validation and test label periods of {horizon_days} days each)"))
    return train, validation, test


def slice_frame(X: pd.DataFrame, edges: list[int]) -> pd.DataFrame:
    """Slice dimensions of the test rows: channel, neighborhood and tenure band."""
    bins = [*edges, np.inf]
    labels = [f"{lo}-{hi}d" if np.isfinite(hi) else f"{lo}d+"
              for lo, hi in pairwise(bins)]
    return pd.DataFrame({
        "acquisition_channel": X["acquisition_channel"].astype("str"),
        "neighborhood": X["neighborhood"].astype("str"),
        "tenure_band": pd.cut(X["tenure_days"], bins=bins, labels=labels, right=False)
        .astype("str"),
    }, index=X.index)


def _step(ctx: JobContext) -> Candidate:
    cfg: ChurnJobConfig = ctx.config
    data, defs = ctx.data, ctx.definitions
    horizon, window = defs.churn_horizon_days, defs.active_window_days
    ev = cfg.evaluation

    # -- features and labels, out of time
    train_cuts, valid_cut, test_cut = cutoffs(data, cfg, horizon, window)
    with ctx.stage("features"):
        split = time_split(data, train_cutoffs=train_cuts, validation_cutoffs=[valid_cut],
                           test_cutoff=test_cut, horizon_days=horizon,
                           active_window_days=window, label="churn")
    X_train, y_train = split.xy("train")
    X_valid, y_valid = split.xy("validation")
    X_test, y_test = split.xy("test")
    log_feature_catalogue(feature_catalog())
    mlflow.log_params({"train_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in train_cuts),
                       "validation_cutoff": f"{valid_cut:%Y-%m-%d}",
                       "test_cutoff": f"{test_cut:%Y-%m-%d}", "n_train": len(X_train),
                       "n_validation": len(X_valid), "n_test": len(X_test)})

    # -- fit
    params = dict(cfg.model)
    if cfg.tune.enabled:
        best, _study = tune(X_train, y_train, X_valid, y_valid, n_trials=cfg.tune.n_trials,
                            seed=cfg.tune.seed, base_params=params)
        params.update(best)
        mlflow.log_params({f"tuned.{k}": v for k, v in best.items()})
    with ctx.stage("fit"):
        model = ChurnClassifier(**params).fit(X_train, y_train, X_valid=X_valid,
                                              y_valid=y_valid)
    with ctx.stage("fit baseline"):
        baseline = ChurnClassifier(**cfg.baseline).fit(X_train, y_train, X_valid=X_valid,
                                                       y_valid=y_valid)
    mlflow.log_params({"best_iteration": model.best_iteration_,
                       "blend_weight_chosen": model.blend_weight_,
                       "calibration_chosen": model.calibration_,
                       "threshold_chosen": round(float(model.threshold_), 4)})

    # -- evaluate on the out-of-time test rows
    slices = slice_frame(X_test, ev.tenure_bands_days)
    with ctx.stage("evaluate"):
        report = evaluate_classifier(model, X_test, y_test, n_bootstrap=ev.n_bootstrap,
                                     seed=ev.seed, slices=slices,
                                     min_slice_size=ev.min_slice_size, family="churn",
                                     train=X_train, horizon_days=horizon)
    log_report(report)
    baseline_report = evaluate_classifier(baseline, X_test, y_test, n_bootstrap=ev.n_bootstrap,
                                          seed=ev.seed, family="churn")
    # Only as an artifact and prefixed metrics: log_report would overwrite the model's.
    mlflow.log_text(baseline_report.model_dump_json(indent=2),
                    "evaluation/baseline_logistic_report.json")
    for name in ("roc_auc", "accuracy", "brier", "ece", "rms_calibration_error"):
        est = baseline_report.metrics[name]
        mlflow.log_metrics({f"logistic_{name}": est.value,
                            f"logistic_{name}_ci_low": est.ci_low,
                            f"logistic_{name}_ci_high": est.ci_high})
    p_test = model.predict_proba(X_test)[:, 1]
    caveats: list[str] = []
    notes: list[str] = []
    if cfg.oracle.enabled and data.truth is not None:
        with ctx.stage("oracle"):
            p_oracle = oracle_churn_probability(
                data, test_cut, horizon, n_futures=cfg.oracle.n_futures,
                seed=cfg.oracle.seed).reindex(
                    X_test.index.get_level_values("customer_id")).to_numpy()
        oracle_report = evaluate_scores(y_test.to_numpy(), p_oracle, n_bootstrap=ev.n_bootstrap,
                                        seed=ev.seed, family="churn-oracle")
        gap = paired_bootstrap(y_test.to_numpy(), p_test, p_oracle, "roc_auc",
                               n_bootstrap=ev.n_bootstrap, seed=ev.seed)
        ratio = report.metrics["roc_auc"].value / oracle_report.metrics["roc_auc"].value
        mlflow.log_metrics({"oracle_roc_auc": oracle_report.metrics["roc_auc"].value,
                            "oracle_accuracy": oracle_report.metrics["accuracy"].value,
                            "roc_auc_ratio_to_oracle": ratio,
                            "roc_auc_minus_oracle": gap.value,
                            "roc_auc_minus_oracle_ci_low": gap.ci_low,
                            "roc_auc_minus_oracle_ci_high": gap.ci_high})
        oracle_line = (f"ROC AUC is {ratio:.3f} of the oracle's "
                       f"{oracle_report.metrics['roc_auc'].value:.3f} (difference "
                       f"{gap.value:+.3f} [{gap.ci_low:+.3f}, {gap.ci_high:+.3f}])")
        notes.append(oracle_line)
        caveats.append("Simulated data: " + oracle_line + "; the oracle knows each "
                       "customer's latent state and is the ceiling for this label.")
    if cfg.backtest.enabled:
        _backtest(ctx, split.train, train_cuts, params, horizon)
    with ctx.stage("plots"):
        log_classification_plots(model, X_test, y_test, report)

    def register(tags: dict[str, str]) -> Any:
        return log_and_register(model, X_train, cfg.model_name, tags=tags)[1]

    return Candidate(
        register=register, report=report,
        comparison=champion_comparison(cfg.model_name, X_test, y_test, p_test,
                                       n_bootstrap=ev.n_bootstrap, seed=ev.seed),
        gate_inputs=[(X_test, y_test, "test")],
        card=ModelCardText(
            description="Probability that a customer active at the cut-off (a completed visit "
                        f"in the last {window} days) makes no completed booking in the next "
                        f"{horizon} days.",
            data_window={
                "train cut-offs": ", ".join(f"{c:%Y-%m-%d}" for c in train_cuts),
                "validation cut-off": f"{valid_cut:%Y-%m-%d}",
                "test cut-off": f"{test_cut:%Y-%m-%d}",
                "label period": f"{horizon} days after each cut-off",
                "rows (train / validation / test)":
                    f"{len(X_train):,} / {len(X_valid):,} / {len(X_test):,}"},
            caveats=caveats),
        headline=("roc_auc", "accuracy", "ece", "rms_calibration_error"), notes=notes)


def _backtest(ctx: JobContext, train: pd.DataFrame, train_cuts: list[pd.Timestamp],
              params: dict[str, Any], horizon: int) -> None:
    cfg: ChurnJobConfig = ctx.config
    n_origins = min(cfg.backtest.n_origins, len(train_cuts) - 1)
    origins = []
    as_of = train.index.get_level_values("as_of")
    for k in range(len(train_cuts) - n_origins, len(train_cuts)):
        tr = train.loc[as_of < train_cuts[k] - pd.Timedelta(days=horizon - 1)]
        te = train.loc[as_of == train_cuts[k]]
        if tr.empty or te.empty:
            continue
        origins.append(BacktestSplit(tr.drop(columns="churned"), tr["churned"],
                                     te.drop(columns="churned"), te["churned"], train_cuts[k]))
    if origins:
        with ctx.stage("backtest"):
            backtest = rolling_origin_backtest(
                lambda: ChurnClassifier(**params), origins,
                n_bootstrap=cfg.backtest.n_bootstrap, seed=cfg.evaluation.seed)
        mlflow.log_text(backtest.to_frame().to_csv(index=False), "evaluation/backtest.csv")


def run(config: ChurnJobConfig | str | Path | None = None, *,
        data: MarketplaceData | None = None, data_dir: str | Path | None = None,
        tracking_uri: str | None = None, tune_trials: int | None = None) -> JobResult:
    """Train, evaluate, gate, register and (when the gates pass) promote the churn model.

    ``config``, ``data``, ``data_dir``, ``tracking_uri`` and the result: as
    :func:`~barberpro_ml.jobs.base.run_training_job` (``config`` may also be the path of a
    YAML, or None for the shipped ``churn.yaml``).

    Parameters
    ----------
    tune_trials
        Run an Optuna study with this many trials first (0: no study).
    """
    cfg = as_job_config(ChurnJobConfig, config)
    if tune_trials is not None:
        cfg = cfg.model_copy(update={"tune": cfg.tune.model_copy(
            update={"enabled": tune_trials > 0, "n_trials": max(tune_trials, 1)})})
    return run_training_job(cfg, _step, data=data, data_dir=data_dir, tracking_uri=tracking_uri)

