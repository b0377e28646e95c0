"""Train, evaluate, gate, register and (when the gates pass) promote the lifetime-value model.

Reads top to bottom like the data flow::

    event data -> out-of-time features + revenue labels -> fit the Tweedie XGBoost model
    -> fit BG/NBD + Gamma-Gamma on the bookings up to the test cut-off -> naive baseline (past
    spend extrapolated) -> evaluate the three side by side (bootstrap CIs on the same
    resampled customers, paired differences, decile calibration, plots) -> gates
    -> register @challenger -> promote @champion only when the blocking gates pass

Run it as ``python experiments/train_ltv.py --config configs/ltv.yaml``, through
``barberpro-ml train ltv`` or ``mlflow run . -e train_ltv``. Exit status 3 when a blocking
gate fails (for CI training runs).
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from barberpro_ml.data import MarketplaceData
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
from barberpro_ml.gates import check, load_claims
from barberpro_ml.models import (
    BetaGeoModel,
    GammaGammaModel,
    LTVRegressor,
    customer_lifetime_value,
)
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
from barberpro_ml.registry.models import CLV_PARAMS_ARTIFACT
from barberpro_ml.registry.outcome import TrainingOutcome, headline_metrics, verdict_lines
from barberpro_ml.registry.tracking import metric_key

ROOT = Path(__file__).resolve().parents[1]
CANDIDATE, PROBABILISTIC, NAIVE = "xgboost", "bgnbd", "naive"


def stage(name: str) -> AbstractContextManager[None]:
    return timed_stage("ltv", name)


class LTVJobConfig(BaseModel):
    """``configs/ltv.yaml``: every knob of the lifetime-value job."""

    model_config = ConfigDict(extra="forbid")
    family: str = "ltv"
    model_name: str = "barberpro-ltv"
    experiment: str = "barberpro-ltv"
    data_dir: str | None = None
    simulation: SimulationSource = Field(default_factory=SimulationSource)
    horizon_days: int = Field(365, gt=0)
    train_horizon_days: int | None = Field(None, gt=0)
    n_train_cutoffs: int = Field(4, ge=1)
    cutoff_spacing_days: int = Field(61, gt=0)
    model: dict[str, Any] = Field(default_factory=dict)
    probabilistic: dict[str, Any] = Field(default_factory=dict)
    baseline_window_days: int = Field(365, gt=0)
    min_observed_days: int = Field(30, gt=0)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    claims: str = "configs/claims.yaml"
    promote: bool = True

    @model_validator(mode="after")
    def _train_horizon(self) -> LTVJobConfig:
        if self.train_horizon_days is not None and self.train_horizon_days > self.horizon_days:
            raise ValueError(f"train_horizon_days ({self.train_horizon_days}) must not exceed "
                             f"horizon_days ({self.horizon_days})")
        return self

    @property
    def training_horizon(self) -> int:
        return self.train_horizon_days or self.horizon_days

    @classmethod
    def from_yaml(cls, path: str | Path) -> LTVJobConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text()) or {})


def resolve(path: str) -> Path:
    return resolve_path(path, ROOT)


def load_data(cfg: LTVJobConfig, data_dir: str | Path | None) -> MarketplaceData:
    return load_or_simulate(data_dir or cfg.data_dir, cfg.simulation, ROOT)


def cutoffs(data: MarketplaceData, cfg: LTVJobConfig) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """Training cut-offs (each label period ends by the test cut-off) and the test cut-off."""
    test = last_labelable_as_of(data, cfg.horizon_days).normalize()
    last_train = test - pd.Timedelta(days=cfg.training_horizon)
    train = [last_train - i * pd.Timedelta(days=cfg.cutoff_spacing_days)
             for i in range(cfg.n_train_cutoffs)][::-1]
    first_event = data.bookings["created_at"].min().normalize()
    if train[0] < first_event:
        raise ValueError(
            f"the data ({first_event:%Y-%m-%d} to {data.observation_end:%Y-%m-%d}) are too "
            f"short for {cfg.n_train_cutoffs} training cut-offs {cfg.cutoff_spacing_days} days "
            f"apart with {cfg.training_horizon}-day labels before the test cut-off "
            f"{test:%Y-%m-%d} (first cut-off {train[0]:%Y-%m-%d}); lower n_train_cutoffs, "
            "cutoff_spacing_days or train_horizon_days")
    return train, test


def horizon_factor(data: MarketplaceData, test_cut: pd.Timestamp, cfg: LTVJobConfig) -> float:
    """Revenue over the full horizon / revenue over the training horizon, measured on the
    customers signed up at ``test_cut - horizon`` (their whole horizon ends by the test
    cut-off, so nothing after it is used); 1 when training rows use the full horizon."""
    if cfg.training_horizon == cfg.horizon_days:
        return 1.0
    c0 = test_cut - pd.Timedelta(days=cfg.horizon_days)
    full = float(ltv_labels(data, c0, cfg.horizon_days).sum())
    short = float(ltv_labels(data, c0, cfg.training_horizon).sum())
    if not (short > 0 and full > 0):
        raise ValueError(f"cannot measure the horizon-extension factor at {c0:%Y-%m-%d}: the "
                         f"customers signed up then have revenue {short:.2f} over "
                         f"{cfg.training_horizon} days and {full:.2f} over {cfg.horizon_days}; "
                         "set train_horizon_days equal to horizon_days")
    return full / short


def probabilistic_forecast(data: MarketplaceData, as_of: pd.Timestamp, customers: pd.Index,
                           cfg: LTVJobConfig) -> tuple[np.ndarray, dict[str, float], int]:
    """BG/NBD x Gamma-Gamma expected revenue over the horizon (undiscounted, like the label).

    Customers without a completed booking by ``as_of`` are outside the BG/NBD (it starts at
    the first purchase) and are forecast 0. Returns the forecast in ``customers`` order, the
    fitted parameters, and how many customers were forecast 0 for that reason.
    """
    rfm = customer_rfm(data, as_of)
    penalizer = float(cfg.probabilistic.get("penalizer", 0.0))
    bgnbd = BetaGeoModel(penalizer=penalizer).fit(rfm)
    gamma_gamma = GammaGammaModel(penalizer=penalizer).fit(rfm.loc[rfm["frequency"] > 0])
    clv = customer_lifetime_value(bgnbd, gamma_gamma, rfm,
                                  horizon=cfg.horizon_days / WEEK_DAYS, discount_rate=0.0)
    forecast = pd.Series(np.asarray(clv, dtype=float), index=rfm.index).reindex(customers)
    params = {**{f"bgnbd.{k}": v for k, v in bgnbd.params_.as_dict().items()},
              **{f"gamma_gamma.{k}": v for k, v in gamma_gamma.params_.as_dict().items()}}
    return forecast.fillna(0.0).to_numpy(), params, int(forecast.isna().sum())


def naive_forecast(data: MarketplaceData, as_of: pd.Timestamp, customers: pd.Index,
                   cfg: LTVJobConfig) -> np.ndarray:
    """Revenue over the past window, per day signed up in it (at least min_observed_days),
    times the horizon."""
    tx = completed_transactions(data, as_of)
    window = pd.Timedelta(days=cfg.baseline_window_days)
    recent = tx.loc[tx["scheduled_at"] > as_of - window]
    past = recent.groupby("customer_id")["spend"].sum().reindex(customers, fill_value=0.0)
    signup = data.customers.set_index("customer_id")["signup_at"].reindex(customers)
    days = ((as_of - signup).dt.total_seconds() / 86_400).to_numpy()
    observed = np.clip(days, cfg.min_observed_days, cfg.baseline_window_days)
    return np.asarray(past.to_numpy() * cfg.horizon_days / observed, dtype=float)


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


def run(config: str | Path = "configs/ltv.yaml", *, data: MarketplaceData | None = None,
        data_dir: str | Path | None = None, tracking_uri: str | None = None,
        **ignored: Any) -> TrainingOutcome:
    """The whole lifetime-value job; returns what the pipeline summary shows.

    Keyword arguments meant for other families (``tune_trials``...) are accepted and ignored.
    """
    cfg = LTVJobConfig.from_yaml(resolve(str(config)))
    nested = start_job_tracking(tracking_uri, cfg.experiment)
    if data is None:
        with stage("load data"):
            data = load_data(cfg, data_dir)
    ev = {"n_bootstrap": 1000, "seed": 0, "n_bins": 10, **cfg.evaluation}
    n_boot, seed = int(ev["n_bootstrap"]), int(ev["seed"])

    # -- features and labels, out of time
    train_cuts, test_cut = cutoffs(data, cfg)
    with stage("features"):
        train_split = time_split(data, train_cutoffs=train_cuts, test_cutoff=test_cut,
                                 horizon_days=cfg.training_horizon, label="ltv")
        X_train, y_train = train_split.xy("train")
        if cfg.training_horizon == cfg.horizon_days:
            X_test, y_test = train_split.xy("test")
        else:
            test = training_frame(data, [test_cut], cfg.horizon_days, label="ltv")
            X_test, y_test = test.drop(columns="ltv"), test["ltv"]
        factor = horizon_factor(data, test_cut, cfg)
    customers = X_test.index.get_level_values("customer_id")
    y = y_test.to_numpy(dtype=float)
    notes: list[str] = []

    with mlflow.start_run(run_name=f"ltv-{test_cut:%Y-%m-%d}", nested=nested) as run:
        log_config(cfg.model_dump())
        log_lineage(data=data, features=train_split.train)
        log_feature_catalogue(feature_catalog())
        mlflow.log_params({"train_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in train_cuts),
                           "test_cutoff": f"{test_cut:%Y-%m-%d}",
                           "train_horizon_days": cfg.training_horizon,
                           "horizon_extension_factor": round(factor, 6),
                           "n_train": len(X_train), "n_test": len(X_test)})

        # -- fit the three forecasts
        with stage("fit"):
            model = LTVRegressor(**{**cfg.model, "prediction_scale": factor}).fit(
                X_train, y_train)
        mlflow.log_params({"best_iteration": model.best_iteration_,
                           "validation_size": model.validation_size_})
        with stage("fit bgnbd and gamma-gamma"):
            p_prob, prob_params, n_unseen = probabilistic_forecast(data, test_cut, customers,
                                                                   cfg)
        mlflow.log_params({k: round(v, 6) for k, v in prob_params.items()})
        # Full-precision parameters for the scoring API's probability alive: registered inside
        # the model below; the run artifact is what versions registered before that carry.
        clv_params = {"bgnbd": {k.split(".", 1)[1]: v for k, v in prob_params.items()
                                if k.startswith("bgnbd.")},
                      "gamma_gamma": {k.split(".", 1)[1]: v for k, v in prob_params.items()
                                      if k.startswith("gamma_gamma.")},
                      "time_unit_days": WEEK_DAYS, "fitted_at": f"{test_cut:%Y-%m-%d}"}
        mlflow.log_dict(clv_params, CLV_PARAMS_ARTIFACT)
        predictions = {CANDIDATE: model.predict(X_test), PROBABILISTIC: p_prob,
                       NAIVE: naive_forecast(data, test_cut, customers, cfg)}

        # -- evaluate side by side on the out-of-time test customers
        with stage("evaluate"):
            report = evaluate_ltv(y, predictions, n_bootstrap=n_boot, seed=seed,
                                  family=cfg.family, candidate=CANDIDATE, baseline=NAIVE,
                                  n_bins=int(ev["n_bins"]), X=X_test, train=X_train,
                                  horizon_days=cfg.training_horizon)
        if cfg.training_horizon != cfg.horizon_days:
            c0 = test_cut - pd.Timedelta(days=cfg.horizon_days)
            notes.append(f"{CANDIDATE} trained on {cfg.training_horizon}-day revenue labels "
                         f"(the data are too short for {cfg.horizon_days}-day training rows "
                         "with any history), its predictions extended to the horizon by the "
                         f"factor {factor:.3f} measured on the customers of {c0:%Y-%m-%d}")
        if n_unseen:
            unseen = ~customers.isin(completed_transactions(data, test_cut)["customer_id"])
            notes.append(f"{n_unseen:,} test customers ({n_unseen / len(y):.1%}) had no completed "
                         f"booking by the cut-off and get a BG/NBD forecast of 0; they realised "
                         f"{float(y[unseen].mean()):.2f} on average")
        notes.insert(0, summary_line(report))
        report = report.model_copy(update={"notes": [*report.notes, *notes]})
        log_report(report)
        log_side_by_side(report)
        with stage("plots"):
            mlflow.log_figure(plot_decile_calibration(report), "plots/decile_calibration.png")
            mlflow.log_figure(plot_predicted_vs_actual(y, predictions),
                              "plots/predicted_vs_actual.png")

        # -- register as challenger, gate, promote
        with stage("register"):
            # the BG/NBD travels inside the registered model (the scorer's probability alive)
            _info, version = log_and_register(model, X_train, cfg.model_name, output="predict",
                                              tags={TAG_FAMILY: cfg.family},
                                              clv_params=clv_params)
        log_gate_inputs(X_test, y, run_id=run.info.run_id)
        champion_before = current_champion(cfg.model_name)
        comparison = champion_comparison(cfg.model_name, X_test, y, predictions[CANDIDATE],
                                         n_bootstrap=n_boot, seed=seed)
        claims = load_claims(resolve(cfg.claims), family=cfg.family)
        gate = check(report, claims, comparison)
        log_gate_result(gate)
        log_model_card(model_card(
            report, model_name=cfg.model_name, version=str(version.version),
            description=(f"Expected revenue (price - discount of completed bookings) a customer "
                         f"brings in the {cfg.horizon_days} days after the cut-off: XGBoost "
                         f"with a Tweedie objective on the point-in-time customer features, "
                         f"evaluated beside BG/NBD + Gamma-Gamma and past spend extrapolated."),
            data_window={
                "train cut-offs": ", ".join(f"{c:%Y-%m-%d}" for c in train_cuts),
                "test cut-off": f"{test_cut:%Y-%m-%d}",
                "label period": f"{cfg.training_horizon} days (training), "
                                f"{cfg.horizon_days} days (test)",
                "horizon-extension factor": f"{factor:.4f}",
                "rows (train / test)": f"{len(X_train):,} / {len(X_test):,}"},
            gate_result=gate, caveats=notes))
        promoted, champion = gate_and_promote(cfg.promote, cfg.model_name, version.version,
                                              gate, claims, champion_version=champion_before)
    return TrainingOutcome(
        family=cfg.family, run_id=run.info.run_id, model_name=cfg.model_name,
        version=str(version.version), gate_passed=gate.passed, promoted=promoted,
        champion_version=champion,
        headline=headline_metrics(report, ("spearman", "gini", "mae", "mae_minus_naive",
                                   "aggregate_error")),
        verdicts=verdict_lines(gate),
        # the side-by-side line only: the caveats are in the report and the model card
        gate=gate, notes=notes[:1],
    )


def main(argv: list[str] | None = None) -> int:
    return script_main(run, "configs/ltv.yaml", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
