"""Train, evaluate, gate, register and (when the gates pass) promote the churn model.

Reads top to bottom like the data flow::

    event data -> out-of-time features + labels -> fit (+ optional Optuna) -> evaluate
    (bootstrap CIs, slices, backtest, oracle, plots) -> gates -> register @challenger
    -> promote @champion only when the blocking gates pass

Run it as ``python experiments/train_churn.py --config configs/churn.yaml``, through
``barberpro-ml train churn`` or ``mlflow run . -e train_churn``. Exit status 3 when a blocking
gate fails (for CI training runs).
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from itertools import pairwise
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

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
from barberpro_ml.gates import check, load_claims
from barberpro_ml.models import ChurnClassifier, tune
from barberpro_ml.registry import (
    champion_comparison,
    log_and_register,
    log_config,
    log_feature_catalogue,
    log_gate_result,
    log_lineage,
    log_model_card,
    log_report,
    model_card,
)
from barberpro_ml.registry.binding import TAG_FAMILY, current_champion, log_gate_inputs
from barberpro_ml.registry.jobs import (
    SimulationSource,
    gate_and_promote,
    load_or_simulate,
    resolve_path,
    script_main,
    start_job_tracking,
    timed_stage,
)
from barberpro_ml.registry.outcome import TrainingOutcome, headline_metrics, verdict_lines

ROOT = Path(__file__).resolve().parents[1]


def stage(name: str) -> AbstractContextManager[None]:
    return timed_stage("churn", name)


class Toggle(BaseModel):
    model_config = ConfigDict(extra="allow")
    enabled: bool = True


class ChurnJobConfig(BaseModel):
    """``configs/churn.yaml``: every knob of the churn job."""

    model_config = ConfigDict(extra="forbid")
    family: str = "churn"
    model_name: str = "barberpro-churn"
    experiment: str = "barberpro-churn"
    data_dir: str | None = None
    simulation: SimulationSource = Field(default_factory=SimulationSource)
    horizon_days: int = Field(90, gt=0)
    active_window_days: int = Field(180, gt=0)
    n_train_cutoffs: int = Field(4, ge=1)
    cutoff_spacing_days: int = Field(91, gt=0)
    model: dict[str, Any] = Field(default_factory=dict)
    baseline: dict[str, Any] = Field(default_factory=lambda: {"estimator": "logistic"})
    tune: Toggle = Field(default_factory=lambda: Toggle(enabled=False))
    evaluation: dict[str, Any] = Field(default_factory=dict)
    oracle: Toggle = Field(default_factory=Toggle)
    backtest: Toggle = Field(default_factory=Toggle)
    claims: str = "configs/claims.yaml"
    promote: bool = True

    @classmethod
    def from_yaml(cls, path: str | Path) -> ChurnJobConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text()) or {})


def resolve(path: str) -> Path:
    return resolve_path(path, ROOT)


def load_data(cfg: ChurnJobConfig, data_dir: str | Path | None) -> MarketplaceData:
    return load_or_simulate(data_dir or cfg.data_dir, cfg.simulation, ROOT)


def cutoffs(data: MarketplaceData, cfg: ChurnJobConfig
            ) -> tuple[list[pd.Timestamp], pd.Timestamp, pd.Timestamp]:
    """Train, validation and test cut-offs, each one label period after the previous part."""
    horizon = pd.Timedelta(days=cfg.horizon_days)
    test = last_labelable_as_of(data, cfg.horizon_days).normalize()
    validation = test - horizon
    last_train = validation - horizon
    spacing = pd.Timedelta(days=cfg.cutoff_spacing_days)
    train = [last_train - i * spacing for i in range(cfg.n_train_cutoffs)][::-1]
    first_known = data.bookings["scheduled_at"].min() + pd.Timedelta(days=cfg.active_window_days)
    if train[0] < first_known:
        raise ValueError(
            f"the data ({first_known - pd.Timedelta(days=cfg.active_window_days):%Y-%m-%d} to "
            f"{data.observation_end:%Y-%m-%d}) is too short for {cfg.n_train_cutoffs} training "
            f"cut-offs {cfg.cutoff_spacing_days} days apart plus validation and test periods of "
            f"{cfg.horizon_days} days; the first cut-off {train[0]:%Y-%m-%d} precedes "
            f"{first_known:%Y-%m-%d}. Lower n_train_cutoffs or cutoff_spacing_days.")
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


def run(config: str | Path = "configs/churn.yaml", *, data: MarketplaceData | None = None,
        data_dir: str | Path | None = None, tracking_uri: str | None = None,
        tune_trials: int | None = None) -> TrainingOutcome:
    """The whole churn job; returns what the pipeline summary shows."""
    cfg = ChurnJobConfig.from_yaml(resolve(str(config)))
    if tune_trials is not None:
        cfg = cfg.model_copy(update={"tune": Toggle(enabled=tune_trials > 0, n_trials=tune_trials,
                                                     seed=cfg.tune.model_extra.get("seed", 0)
                                                     if cfg.tune.model_extra else 0)})
    nested = start_job_tracking(tracking_uri, cfg.experiment)
    if data is None:
        with stage("load data"):
            data = load_data(cfg, data_dir)

    # -- features and labels, out of time
    train_cuts, valid_cut, test_cut = cutoffs(data, cfg)
    with stage("features"):
        split = time_split(data, train_cutoffs=train_cuts, validation_cutoffs=[valid_cut],
                           test_cutoff=test_cut, horizon_days=cfg.horizon_days,
                           active_window_days=cfg.active_window_days, label="churn")
    X_train, y_train = split.xy("train")
    X_valid, y_valid = split.xy("validation")
    X_test, y_test = split.xy("test")
    ev = {"n_bootstrap": 1000, "seed": 0, "min_slice_size": 200,
          "tenure_bands_days": [0, 90, 365, 730], **cfg.evaluation}

    with mlflow.start_run(run_name=f"churn-{test_cut:%Y-%m-%d}", nested=nested) as run:
        log_config(cfg.model_dump())
        log_lineage(data=data, features=split.train)
        log_feature_catalogue(feature_catalog())
        mlflow.log_params({"train_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in train_cuts),
                           "validation_cutoff": f"{valid_cut:%Y-%m-%d}",
                           "test_cutoff": f"{test_cut:%Y-%m-%d}", "n_train": len(X_train),
                           "n_validation": len(X_valid), "n_test": len(X_test)})

        # -- fit
        params = dict(cfg.model)
        if cfg.tune.enabled:
            extra = cfg.tune.model_extra or {}
            best, _study = tune(X_train, y_train, X_valid, y_valid,
                                n_trials=int(extra.get("n_trials", 20)),
                                seed=int(extra.get("seed", 0)), base_params=params)
            params.update(best)
            mlflow.log_params({f"tuned.{k}": v for k, v in best.items()})
        with stage("fit"):
            model = ChurnClassifier(**params).fit(X_train, y_train, X_valid=X_valid,
                                                  y_valid=y_valid)
        with stage("fit baseline"):
            baseline = ChurnClassifier(**cfg.baseline).fit(X_train, y_train, X_valid=X_valid,
                                                           y_valid=y_valid)
        mlflow.log_params({"best_iteration": model.best_iteration_,
                           "calibration_chosen": model.calibration_,
                           "threshold_chosen": round(float(model.threshold_), 4)})

        # -- evaluate on the out-of-time test rows
        slices = slice_frame(X_test, list(ev["tenure_bands_days"]))
        with stage("evaluate"):
            report = evaluate_classifier(model, X_test, y_test, n_bootstrap=ev["n_bootstrap"],
                                         seed=ev["seed"], slices=slices,
                                         min_slice_size=ev["min_slice_size"], family="churn",
                                         train=X_train, horizon_days=cfg.horizon_days)
        log_report(report)
        baseline_report = evaluate_classifier(baseline, X_test, y_test,
                                              n_bootstrap=ev["n_bootstrap"], seed=ev["seed"],
                                              family="churn")
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
        oracle_line = None
        if cfg.oracle.enabled and data.truth is not None:
            extra = cfg.oracle.model_extra or {}
            with stage("oracle"):
                p_oracle = oracle_churn_probability(
                    data, test_cut, cfg.horizon_days, n_futures=int(extra.get("n_futures", 200)),
                    seed=int(extra.get("seed", 0))).reindex(X_test.index).to_numpy()
            oracle_report = evaluate_scores(y_test.to_numpy(), p_oracle, n_bootstrap=ev[
                "n_bootstrap"], seed=ev["seed"], family="churn-oracle")
            gap = paired_bootstrap(y_test.to_numpy(), p_test, p_oracle, "roc_auc",
                                   n_bootstrap=ev["n_bootstrap"], seed=ev["seed"])
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
            caveats.append("Simulated data: " + oracle_line + "; the oracle knows each "
                           "customer's latent state and is the ceiling for this label.")
        if cfg.backtest.enabled:
            extra = cfg.backtest.model_extra or {}
            n_origins = min(int(extra.get("n_origins", 3)), len(train_cuts) - 1)
            origins = []
            for k in range(len(train_cuts) - n_origins, len(train_cuts)):
                tr = split.train.loc[split.train.index.get_level_values("as_of") < train_cuts[k]
                                     - pd.Timedelta(days=cfg.horizon_days - 1)]
                te = split.train.loc[split.train.index.get_level_values("as_of") == train_cuts[k]]
                if tr.empty or te.empty:
                    continue
                origins.append(BacktestSplit(tr.drop(columns="churned"), tr["churned"],
                                             te.drop(columns="churned"), te["churned"],
                                             train_cuts[k]))
            if origins:
                with stage("backtest"):
                    backtest = rolling_origin_backtest(
                        lambda: ChurnClassifier(**params), origins,
                        n_bootstrap=int(extra.get("n_bootstrap", 300)), seed=ev["seed"])
                mlflow.log_text(backtest.to_frame().to_csv(index=False),
                                "evaluation/backtest.csv")
        with stage("plots"):
            log_classification_plots(model, X_test, y_test, report)

        # -- register as challenger, gate, promote
        with stage("register"):
            _info, version = log_and_register(model, X_train, cfg.model_name,
                                              tags={TAG_FAMILY: "churn"})
        log_gate_inputs(X_test, y_test, run_id=run.info.run_id)
        champion_before = current_champion(cfg.model_name)
        comparison = champion_comparison(cfg.model_name, X_test, y_test, p_test,
                                         n_bootstrap=ev["n_bootstrap"], seed=ev["seed"])
        claims = load_claims(resolve(cfg.claims), family="churn")
        gate = check(report, claims, comparison)
        log_gate_result(gate)
        log_model_card(model_card(
            report, model_name=cfg.model_name, version=str(version.version),
            description="Probability that a customer active at the cut-off (a completed visit "
                        f"in the last {cfg.active_window_days} days) makes no completed booking "
                        f"in the next {cfg.horizon_days} days.",
            data_window={
                "train cut-offs": ", ".join(f"{c:%Y-%m-%d}" for c in train_cuts),
                "validation cut-off": f"{valid_cut:%Y-%m-%d}",
                "test cut-off": f"{test_cut:%Y-%m-%d}",
                "label period": f"{cfg.horizon_days} days after each cut-off",
                "rows (train / validation / test)":
                    f"{len(X_train):,} / {len(X_valid):,} / {len(X_test):,}"},
            gate_result=gate, caveats=caveats))
        promoted, champion = gate_and_promote(cfg.promote, cfg.model_name, version.version,
                                              gate, claims, champion_version=champion_before)
    return TrainingOutcome(
        family="churn", run_id=run.info.run_id, model_name=cfg.model_name,
        version=str(version.version), gate_passed=gate.passed, promoted=promoted,
        champion_version=champion,
        headline=headline_metrics(report, ("roc_auc", "accuracy", "ece",
                                           "rms_calibration_error")),
        verdicts=verdict_lines(gate),
        gate=gate, notes=[oracle_line] if oracle_line else [],
    )


def main(argv: list[str] | None = None) -> int:
    return script_main(run, "configs/churn.yaml", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
