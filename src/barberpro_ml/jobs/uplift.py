"""The uplift job: who a retention offer works on, the targeting policy with money, and the
seed's churn-reduction claims, judged on held-out randomised campaigns.

Reads top to bottom like the data flow::

    event data -> one row per targeted customer of every closed campaign: features one second
       before sent_at, arm, churn outcome; sample-ratio check of every campaign
       (interventions.campaign_frame: a broken split is refused)
    -> T-, X-, DR- and proportional (churn risk x a pooled reduction) learners fit on the
       earlier campaigns, the best Qini on the validation campaign chosen, refit, judged on
       the last campaign(s) (interventions.evaluate); when the proportional learner wins,
       the blocking "beats churn risk" claim fails by construction: it *is* churn risk
    -> Qini/AUUC vs churn-risk targeting (paired), the policy's IPW/DR profit, the relative
       churn reduction among its treated customers (the seed's 46.3%, "retention 40%+")
    -> the shared skeleton: register @challenger, gate, promote @champion when it passes

On simulated data the job also computes the true effects of the test campaign's offers
(:func:`barberpro_ml.data.oracle_offer_effect`) and reports the model's true Qini and the
policy's true profit over the oracle's. Run it with ``barberpro-ml train uplift``,
``mlflow run . -e train_uplift`` or ``barberpro_ml.jobs.uplift.run(load_config())``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import mlflow
from pydantic import Field

from barberpro_ml.data import MarketplaceData
from barberpro_ml.interventions.campaigns import DEFAULT_SRM_ALPHA, campaign_frame
from barberpro_ml.interventions.evaluate import (
    evaluate_targeting,
    split_campaigns,
    true_effects,
    uplift_report,
)
from barberpro_ml.interventions.model import UpliftSpec, log_and_register_uplift
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
from barberpro_ml.registry import log_report

__all__ = ["UpliftJobConfig", "load_config", "run"]

LearnerName = Literal["t", "x", "dr", "proportional"]
_LEARNERS: tuple[LearnerName, ...] = ("t", "x", "dr", "proportional")


class UpliftJobConfig(TrainingJobConfig):
    """``configs/uplift.yaml``: every knob of the uplift job."""

    family = "uplift"
    job_name = "uplift"

    model_name: str = "barberpro-uplift"
    experiment: str = "barberpro-uplift"
    horizon_days: int = Field(90, ge=7, le=365)
    """Outcome window after an offer is sent (churned: no completed visit in it)."""
    learners: list[LearnerName] = Field(default_factory=lambda: list(_LEARNERS), min_length=1)
    """Candidate learners; the one with the best validation Qini is kept."""
    model: dict[str, Any] = Field(default_factory=lambda: {
        "n_estimators": 200, "max_depth": 3, "learning_rate": 0.05, "min_child_weight": 20.0,
        "subsample": 0.8})
    """XGBoost base-learner parameters shared by the candidates."""
    treat_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    """The campaigns' designed treated share: the known propensity and the split the
    sample-ratio check tests."""
    srm_alpha: float = Field(DEFAULT_SRM_ALPHA, gt=0.0, lt=0.5)
    discount: float = Field(0.2, ge=0.0, le=1.0)
    """The offer's discount on the next visit (its cost)."""
    policy_confidence: float | None = Field(None, gt=0.0, lt=1.0)
    """None: the policy treats when calibrated uplift x value > cost (the rule of issue 19). A
    share, e.g. 0.9: only when the uplift that share of the calibration's bootstrap replicates
    exceed pays the cost (:func:`~barberpro_ml.interventions.policy.cautious_uplift`): no offer
    where the evidence does not say it pays (README, "Retention interventions")."""
    n_test_campaigns: int = Field(1, ge=1, le=10)
    oracle_futures: int = Field(200, ge=0, le=10_000)
    """Paired futures per test row for the true effects on simulated data (0: skip)."""
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)


def load_config(path: str | Path | None = None, **overrides: Any) -> UpliftJobConfig:
    """The uplift job's config: ``path`` (default: the shipped ``uplift.yaml``) + overrides."""
    return load_job_config(UpliftJobConfig, path, overrides)


def _step(ctx: JobContext) -> Candidate:
    cfg: UpliftJobConfig = ctx.config
    data = ctx.data
    with ctx.stage("features"):
        frame = campaign_frame(data, horizon_days=cfg.horizon_days,
                               treat_fraction=cfg.treat_fraction, srm_alpha=cfg.srm_alpha)
    mlflow.log_dict({"campaigns": frame.attrs["srm"]}, "uplift/sample_ratio_check.json")
    truth = None
    if data.truth is not None and cfg.oracle_futures > 0:
        test = split_campaigns(frame, cfg.n_test_campaigns)[2]
        with ctx.stage("true effects"):
            truth = true_effects(data, frame[frame["campaign"].isin(test)],
                                 horizon_days=cfg.horizon_days, n_futures=cfg.oracle_futures,
                                 seed=cfg.evaluation.seed)
    with ctx.stage("fit and evaluate"):
        result = evaluate_targeting(
            frame, learners=cfg.learners, learner_params=cfg.model, discount=cfg.discount,
            true_effect=truth, n_test=cfg.n_test_campaigns, horizon_days=cfg.horizon_days,
            n_bootstrap=cfg.evaluation.n_bootstrap, seed=cfg.evaluation.seed,
            policy_confidence=cfg.policy_confidence)
    report = uplift_report(result)
    log_report(report)
    mlflow.log_params({"learner": result.learner, "n_rows": len(frame),
                       **{f"campaigns_{k}": ",".join(v) for k, v in result.campaigns.items()}})
    mlflow.log_metrics({f"validation_qini_{k}": v for k, v in result.validation_qini.items()})
    mlflow.log_metrics({k: v for k, v in result.metrics.items() if v == v})
    mlflow.log_text(result.qini.to_csv(), "uplift/qini.csv")
    mlflow.log_text(result.profit.to_csv(), "uplift/profit_curve.csv")
    spec = UpliftSpec(learner=result.learner, features=result.features,
                      discount=cfg.discount, redemption=result.redemption,
                      horizon_days=cfg.horizon_days, calibration=result.calibration,
                      policy_confidence=result.policy_confidence,
                      calibration_replicates=result.calibration_replicates)
    example = frame[result.features]

    def register(tags: dict[str, str]) -> Any:
        return log_and_register_uplift(result.model, spec, example, cfg.model_name,
                                       tags=tags)[1]

    qini = report.metrics["qini"]
    sent = frame["sent_at"]
    return Candidate(
        register=register, report=report, comparison=None,
        card=ModelCardText(
            description=(
                f"Who a retention offer works on: a {result.learner.upper()}-learner on "
                f"XGBoost estimating each customer's churn reduction from the offer "
                f"({cfg.horizon_days}-day window), and the policy that sends it when uplift "
                "x value of retention (past-365-day spend) > expected offer cost. Request "
                "rows of customer features (numbers); the response gives uplift, value, "
                "cost, expected_gain and treat."),
            data_window={"campaigns": ", ".join(sorted(frame["campaign"].unique())),
                         "sent": f"{sent.min():%Y-%m-%d} to {sent.max():%Y-%m-%d}",
                         "test": ", ".join(result.campaigns["test"]),
                         "targeted rows": f"{len(frame):,}"},
            caveats=report.notes),
        headline=("qini", "qini_minus_churn_risk", "policy_gain_dr",
                  "relative_churn_reduction"),
        notes=[f"qini {qini.value:+.4f} [{qini.ci_low:+.4f}, {qini.ci_high:+.4f}]",
               *report.notes[:1]])


def run(config: UpliftJobConfig | str | Path | None = None, *,
        data: MarketplaceData | None = None, data_dir: str | Path | None = None,
        tracking_uri: str | None = None) -> JobResult:
    """Fit, choose and evaluate the uplift learners and the policy; gate, register, promote.

    ``config``, ``data``, ``data_dir``, ``tracking_uri`` and the result: as
    :func:`~barberpro_ml.jobs.base.run_training_job` (``config`` may also be the path of a
    YAML, or None for the shipped ``uplift.yaml``).
    """
    cfg = as_job_config(UpliftJobConfig, config)
    return run_training_job(cfg, _step, data=data, data_dir=data_dir, tracking_uri=tracking_uri)
