"""The provider-departure job: will a barber leave the marketplace within the next 90 days?

Reads top to bottom like the data flow::

    event data -> point-in-time provider features at monthly cut-offs (barbers on the platform
    then) + label "left within horizon_days" (the observable ``providers.left_at``)
    -> out-of-time split: training cut-offs whose label periods end before the first test
    cut-off, the last ``n_test_cutoffs`` monthly cut-offs as test
    -> fit a classifier -> evaluate (bootstrap CIs) -> the shared skeleton: register
    @challenger, gate (family ``provider-departure``), promote @champion when it passes

There are few barbers (one per ~150 customers), so there are few departures: the job stacks
many monthly cut-offs (training and test each pooled, test cut-offs after every training label
period) and says how many positive rows and departing barbers each part holds. Rows of the same
barber at neighbouring cut-offs are not independent, so the test intervals come from a cluster
bootstrap over barbers (``evaluate_classifier(groups=...)``), not over rows. The default
simulation for this job is larger than the other jobs' (60,000 customers, about 400 barbers) so
that the test months hold a few dozen departing barbers.

Run it with ``barberpro-ml train provider-departure``, ``mlflow run . -e
train_provider_departure`` or ``barberpro_ml.jobs.provider_departure.run(load_config())``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import NotEnoughDataError
from barberpro_ml.evaluation import evaluate_classifier
from barberpro_ml.features import provider_features
from barberpro_ml.jobs.base import (
    Candidate,
    EvaluationSettings,
    JobContext,
    JobResult,
    ModelCardText,
    SimulationSource,
    TrainingJobConfig,
    as_job_config,
    load_job_config,
    run_training_job,
)
from barberpro_ml.jobs.params import estimator_params
from barberpro_ml.models import ChurnClassifier
from barberpro_ml.registry import champion_comparison, log_and_register, log_report

__all__ = ["LABEL", "ProviderDepartureJobConfig", "departure_frame", "load_config", "run"]

LABEL = "departed"
"""The label column: 1 when the barber's ``left_at`` falls within the horizon."""


class ProviderDepartureJobConfig(TrainingJobConfig):
    """``configs/provider_departure.yaml``: every knob of the provider-departure job."""

    family = "provider-departure"
    job_name = "provider_departure"

    model_name: str = "barberpro-provider-departure"
    experiment: str = "barberpro-provider-departure"
    simulation: SimulationSource = Field(default_factory=lambda: SimulationSource(
        n_customers=60_000, seed=42))
    """Without ``data_dir``: 60,000 customers (about 400 barbers), three times the other jobs'
    default, so that the test months hold a few dozen departing barbers (20,000 give about
    five)."""
    horizon_days: int = Field(90, ge=7, le=730)
    """A barber is labelled as departing when ``left_at`` falls within this many days after
    the cut-off (the issue's 90 days)."""
    cutoff_spacing_days: int = Field(30, ge=7, le=365)
    """Days between cut-offs (training and test)."""
    n_test_cutoffs: int = Field(6, ge=1, le=24)
    """The last cut-offs whose label period the data cover form the test set (six monthly
    cut-offs: departures over about eight months are labelled in the test rows)."""
    min_history_days: int = Field(90, ge=0, le=3650)
    """The first training cut-off comes this long after the first booking."""
    model: dict[str, Any] = Field(default_factory=lambda: {
        "estimator": "logistic", "calibration": "none", "random_state": 0})
    """:class:`~barberpro_ml.models.ChurnClassifier` parameters (a generic tabular
    classifier; unknown names refused). Logistic and uncalibrated: a few dozen positive rows
    cannot support trees or a calibration map."""
    evaluation: EvaluationSettings = Field(default_factory=lambda: EvaluationSettings(
        n_bootstrap=2000))

    _check_model = field_validator("model")(estimator_params(ChurnClassifier))


def load_config(path: str | Path | None = None, **overrides: Any) -> ProviderDepartureJobConfig:
    """The job's config: ``path`` (default: the shipped ``provider_departure.yaml``) +
    overrides."""
    return load_job_config(ProviderDepartureJobConfig, path, overrides)


def departure_frame(data: MarketplaceData, cutoffs: list[pd.Timestamp],
                    horizon_days: int) -> pd.DataFrame:
    """Provider features at each cut-off (barbers on the platform then) with the label.

    Returns
    -------
    pandas.DataFrame
        Index ``(provider_id, as_of)``; the columns of
        :func:`~barberpro_ml.features.provider_features` except ``has_left`` (always 0
        here), and :data:`LABEL`.
    """
    left = data.providers.set_index("provider_id")["left_at"]
    parts = []
    for cut in cutoffs:
        f = provider_features(data, cut)
        f = f.loc[f["has_left"] == 0].drop(columns="has_left")
        left_at = left.reindex(f.index)
        f[LABEL] = ((left_at > cut) & (left_at <= cut + pd.Timedelta(days=horizon_days))
                    ).astype(np.int8).to_numpy()
        f.index = pd.MultiIndex.from_arrays(
            [f.index, pd.DatetimeIndex([cut] * len(f))], names=["provider_id", "as_of"])
        parts.append(f)
    return pd.concat(parts)


def cutoffs(data: MarketplaceData, cfg: ProviderDepartureJobConfig
            ) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """Training and test cut-offs: the test cut-offs end at the last day whose label period
    the data cover; training cut-offs step back from one label period before the first.

    Raises
    ------
    NotEnoughDataError
        Not one training cut-off fits (names the dates and what to lower).
    """
    horizon = pd.Timedelta(days=cfg.horizon_days)
    step = pd.Timedelta(days=cfg.cutoff_spacing_days)
    last = (data.observation_end - horizon).normalize()
    test = sorted(last - i * step for i in range(cfg.n_test_cutoffs))
    start = data.bookings["scheduled_at"].min().normalize()
    first_usable = start + pd.Timedelta(days=cfg.min_history_days)
    train: list[pd.Timestamp] = []
    cut = test[0] - horizon
    while cut >= first_usable:
        train.append(cut)
        cut -= step
    if not train:
        raise NotEnoughDataError(
            f"bookings/providers: the data run from {start:%Y-%m-%d} to "
            f"{data.observation_end:%Y-%m-%d}; the provider-departure layout needs "
            f"{cfg.min_history_days} days of history, then training label periods of "
            f"{cfg.horizon_days} days before the first test cut-off {test[0]:%Y-%m-%d}: no "
            "training cut-off fits. Lower n_test_cutoffs, horizon_days or min_history_days.")
    return sorted(train), test


def _step(ctx: JobContext) -> Candidate:
    cfg: ProviderDepartureJobConfig = ctx.config
    data, ev = ctx.data, cfg.evaluation
    train_cuts, test_cuts = cutoffs(data, cfg)
    with ctx.stage("features"):
        train = departure_frame(data, train_cuts, cfg.horizon_days)
        test = departure_frame(data, test_cuts, cfg.horizon_days)
    X_train, y_train = train.drop(columns=LABEL), train[LABEL]
    X_test, y_test = test.drop(columns=LABEL), test[LABEL]
    for part, y in (("train", y_train), ("test", y_test)):
        if y.nunique() < 2:
            raise NotEnoughDataError(
                f"providers.left_at: the {part} rows ({len(y)} barber-months) hold "
                f"{int(y.sum())} departures within {cfg.horizon_days} days; both classes "
                "are needed. Use more data, a longer horizon or more test cut-offs.")
    mlflow.log_params({"train_cutoffs": f"{train_cuts[0]:%Y-%m-%d}..{train_cuts[-1]:%Y-%m-%d}"
                                        f" ({len(train_cuts)})",
                       "test_cutoffs": ",".join(f"{c:%Y-%m-%d}" for c in test_cuts),
                       "n_train": len(X_train), "n_test": len(X_test),
                       "n_train_departures": int(y_train.sum()),
                       "n_test_departures": int(y_test.sum()),
                       "n_train_departing_barbers": _departing(y_train),
                       "n_test_departing_barbers": _departing(y_test)})
    with ctx.stage("fit"):
        model = ChurnClassifier(**cfg.model).fit(X_train, y_train)
    with ctx.stage("evaluate"):
        report = evaluate_classifier(model, X_test, y_test, n_bootstrap=ev.n_bootstrap,
                                     seed=ev.seed, family=cfg.family, train=X_train,
                                     horizon_days=cfg.horizon_days,
                                     groups=X_test.index.get_level_values("provider_id"))
    log_report(report)
    p_test = model.predict_proba(X_test)[:, 1]
    auc = report.metrics["roc_auc"]
    notes = [f"{int(y_test.sum())} barber-months labelled as departing ({_departing(y_test)} "
             f"barbers) among {len(y_test)} test barber-months ({len(test_cuts)} cut-offs); "
             f"ROC AUC {auc.value:.3f} [{auc.ci_low:.3f}, {auc.ci_high:.3f}] (cluster "
             "bootstrap over barbers)"]
    caveats = [f"Few positives: {_departing(y_train)} departing barbers in training "
               f"({int(y_train.sum())} barber-months) and {_departing(y_test)} in test "
               f"({int(y_test.sum())}); the test intervals resample barbers, not rows, so "
               "they are wide. The comparison with the champion resamples rows (optimistic).",
               ]
    if data.truth is not None:
        caveats.append("Simulated data: a barber's hazard of leaving rises with low latent "
                       "quality and low expected demand for their chair, and a barber winds "
                       "down over the weeks before leaving (fewer free slots, more "
                       "cancellations): data/simulation.md. What is learnable here is what "
                       "that simulator put in, not evidence about real barbers.")

    def register(tags: dict[str, str]) -> Any:
        return log_and_register(model, X_train, cfg.model_name, tags=tags)[1]

    return Candidate(
        register=register, report=report,
        comparison=champion_comparison(cfg.model_name, X_test, y_test, p_test,
                                       n_bootstrap=ev.n_bootstrap, seed=ev.seed),
        gate_inputs=[(X_test, y_test, "test")],
        card=ModelCardText(
            description=f"Probability that a barber on the platform at the cut-off leaves it "
                        f"(providers.left_at) within the next {cfg.horizon_days} days.",
            data_window={
                "train cut-offs": f"{train_cuts[0]:%Y-%m-%d} to {train_cuts[-1]:%Y-%m-%d}, "
                                  f"every {cfg.cutoff_spacing_days} days",
                "test cut-offs": ", ".join(f"{c:%Y-%m-%d}" for c in test_cuts),
                "label period": f"{cfg.horizon_days} days after each cut-off",
                "rows (train / test)": f"{len(X_train):,} / {len(X_test):,}",
                "departures (train / test)": f"{int(y_train.sum())} / {int(y_test.sum())}"},
            caveats=caveats),
        headline=("roc_auc", "brier"), notes=notes)


def _departing(y: pd.Series) -> int:
    """Distinct barbers with at least one positive row."""
    return int(y.index.get_level_values("provider_id")[y.to_numpy() == 1].nunique())


def run(config: ProviderDepartureJobConfig | str | Path | None = None, *,
        data: MarketplaceData | None = None, data_dir: str | Path | None = None,
        tracking_uri: str | None = None) -> JobResult:
    """Train, evaluate, gate, register and (when the gates pass) promote the departure model.

    Arguments and result as :func:`~barberpro_ml.jobs.base.run_training_job`.
    """
    cfg = as_job_config(ProviderDepartureJobConfig, config)
    return run_training_job(cfg, _step, data=data, data_dir=data_dir, tracking_uri=tracking_uri)
