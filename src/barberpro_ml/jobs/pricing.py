"""The pricing job: the price elasticity of bookings from the providers' own price rises, and
the revenue change of the price rises that evidence supports.

Reads top to bottom like the data flow::

    event data + price-change schedule -> price-rise events with clean windows, event x service
    panel (providers._elasticity_data)
    -> elasticity per cell by double machine learning, with the naive before/after beside it
       (providers.pricing.PriceElasticityDML)
    -> per price tier, the rise (up to the largest one observed) whose revenue change has the
       highest lower bound; none when no rise has a positive lower bound
    -> evaluate: revenue_increase = revenue-weighted change over the tiers, its replicates drawn
       from the elasticities' normal distributions (DML's asymptotics)
    -> the shared skeleton: register @challenger, gate (the seed's 15-25% and the no-loss floor),
       promote @champion when it passes

The registered model is the elasticity table (:mod:`barberpro_ml.registry.pricing_model`):
request rows of price tier (and service) with a proposed price change, get the expected
revenue change with its interval.

Run it with ``barberpro-ml train pricing``, ``mlflow run . -e train_pricing`` or
``barberpro_ml.jobs.pricing.run(load_config())``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from barberpro_ml.data import MarketplaceData
from barberpro_ml.evaluation.bootstrap import percentile_interval
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate
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
from barberpro_ml.models.pricing_table import ALL, best_supported_change, revenue_change
from barberpro_ml.providers.pricing import PriceElasticityDML
from barberpro_ml.registry import log_report
from barberpro_ml.registry.pricing_model import log_and_register_pricing

__all__ = ["PricingJobConfig", "load_config", "recommend", "revenue_evaluation", "run"]


class PricingJobConfig(TrainingJobConfig):
    """``configs/pricing.yaml``: every knob of the pricing job."""

    family = "pricing"
    job_name = "pricing"

    model_name: str = "barberpro-pricing"
    experiment: str = "barberpro-pricing"
    revenue_weeks: int = Field(13, ge=1, le=104)
    """Weeks before the data's end whose revenue per tier weighs the tiers' changes."""
    grid_step: float = Field(0.005, gt=0.0, le=0.05)
    """Spacing of the price changes searched for the best supported one."""
    model: dict[str, Any] = Field(default_factory=lambda: {
        "pre_weeks": 13, "post_weeks": 13,
        "scopes": ["pooled", "tier", "neighborhood", "service_tier"], "min_events": 20,
        "n_folds": 5, "n_rep": 3, "max_iter": 100, "learning_rate": 0.05, "max_depth": 2,
        "min_samples_leaf": 8, "level": 0.95, "random_state": 0})
    """:class:`~barberpro_ml.providers.pricing.PriceElasticityDML` parameters."""
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)

    _check_model = field_validator("model")(estimator_params(PriceElasticityDML))


def load_config(path: str | Path | None = None, **overrides: Any) -> PricingJobConfig:
    """The pricing job's config: ``path`` (default: the shipped ``pricing.yaml``) +
    overrides."""
    return load_job_config(PricingJobConfig, path, overrides)


def tier_revenue(data: MarketplaceData, weeks: int) -> pd.Series:
    """Net revenue (price - discount of completed visits) per price tier in the last ``weeks``."""
    b = data.bookings
    since = data.observation_end - pd.Timedelta(weeks=weeks)
    done = b[(b["status"] == "completed") & (b["scheduled_at"] >= since)]
    tier = done["provider_id"].map(data.providers.set_index("provider_id")["price_tier"])
    revenue: pd.Series = (done["price"] - done["discount"]).groupby(tier.astype(str)).sum()
    return revenue


def recommend(elasticities: pd.DataFrame, revenue: pd.Series, *, level: float,
              grid_step: float) -> pd.DataFrame:
    """Per price tier, the best supported rise (:func:`best_supported_change`).

    Tiers without an estimated elasticity keep their prices (``price_change`` 0). The rise is
    searched up to the largest step the tier's events saw. Columns: ``price_tier``,
    ``revenue_share``, ``elasticity``, ``std_error``, ``dof``, ``price_change``,
    ``revenue_change``,
    ``ci_low``, ``ci_high``, ``estimated``.
    """
    share = revenue / revenue.sum()
    rows = []
    for tier, w in share.items():
        hit = elasticities[(elasticities["scope"] == "tier")
                           & (elasticities["price_tier"] == tier)]
        if hit.empty:
            rows.append({"price_tier": tier, "revenue_share": float(w), "elasticity": np.nan,
                         "std_error": np.nan, "dof": np.nan, "price_change": 0.0,
                         "revenue_change": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                         "estimated": False})
            continue
        r = hit.iloc[0]
        best = best_supported_change(float(r["elasticity"]), float(r["std_error"]),
                                     max_change=float(r["max_step"]) - 1.0, level=level,
                                     grid_step=grid_step, dof=float(r["dof"]))
        rows.append({"price_tier": tier, "revenue_share": float(w),
                     "elasticity": float(r["elasticity"]), "std_error": float(r["std_error"]),
                     "dof": float(r["dof"]), **best, "estimated": True})
    return pd.DataFrame(rows)


def revenue_evaluation(recommended: pd.DataFrame, *, n_draws: int, seed: int,
                       level: float, n_events: int) -> EvaluationReport:
    """``revenue_increase`` of the recommended changes, with replicates from the elasticities.

    The value is ``sum_k w_k [(1 + dp_k) ** (1 + eps_k) - 1]`` with the point elasticities;
    each replicate redraws every estimated tier's elasticity from ``eps_k + se_k T_k``, ``T_k``
    Student's t with the tier's ``dof`` (normal without one), the distribution its interval
    is built on (the tiers are fitted on disjoint providers, so independently). A tier that
    keeps its prices changes revenue by exactly 0 in every replicate.
    """
    rng = np.random.default_rng(seed)
    w = recommended["revenue_share"].to_numpy(float)
    dp = recommended["price_change"].to_numpy(float)
    eps = np.nan_to_num(recommended["elasticity"].to_numpy(float))
    se = np.nan_to_num(recommended["std_error"].to_numpy(float))
    dof = recommended["dof"].to_numpy(float) if "dof" in recommended else np.full(eps.size,
                                                                                  np.nan)
    value = float(w @ revenue_change(dp, eps))
    shocks = np.column_stack([
        rng.standard_t(d, n_draws) if np.isfinite(d) else rng.standard_normal(n_draws)
        for d in dof]) if eps.size else np.zeros((n_draws, 0))
    draws = eps[None, :] + se[None, :] * shocks
    replicates = revenue_change(dp[None, :], draws) @ w
    low, high = percentile_interval(replicates, level)
    est = MetricEstimate(name="revenue_increase", value=value, ci_low=float(low),
                         ci_high=float(high), confidence=level, higher_is_better=True,
                         replicates=[float(x) for x in replicates])
    changes = ", ".join(f"{t} {c:+.1%}" for t, c in zip(recommended["price_tier"], dp,
                                                         strict=True))
    return EvaluationReport(
        family="pricing", kind="causal", n=n_events, metrics={"revenue_increase": est},
        n_bootstrap=n_draws, seed=seed,
        notes=[f"recommended price changes: {changes}",
               "replicates: the tiers' elasticities drawn from the Student-t distributions "
               "of their DML intervals (cluster jackknife, G - 1 degrees of freedom), not a "
               "resampling of events",
               "revenue change over the post window after a rise, at constant elasticity; "
               "rises beyond the largest one observed are not evidence and are not searched"])


def _step(ctx: JobContext) -> Candidate:
    cfg: PricingJobConfig = ctx.config
    data = ctx.data
    est = PriceElasticityDML(**cfg.model)
    with ctx.stage("fit"):
        est.fit(data)
    table = est.elasticities_
    level = float(est.level)
    revenue = tier_revenue(data, cfg.revenue_weeks)
    recommended = recommend(table, revenue, level=level, grid_step=cfg.grid_step)
    with ctx.stage("evaluate"):
        report = revenue_evaluation(recommended, n_draws=cfg.evaluation.n_bootstrap,
                                    seed=cfg.evaluation.seed, level=level,
                                    n_events=len(est.events_))
    log_report(report)
    pooled = table[table["scope"] == "pooled"]
    mlflow.log_params({"n_events": len(est.events_), "n_cells": len(table),
                       "n_skipped_cells": len(est.skipped_)})
    if not pooled.empty:
        p = pooled.iloc[0]
        mlflow.log_metrics({"elasticity_pooled": float(p["elasticity"]),
                            "elasticity_pooled_ci_low": float(p["ci_low"]),
                            "elasticity_pooled_ci_high": float(p["ci_high"]),
                            "naive_elasticity_pooled": float(p["naive_elasticity"])})
    mlflow.log_text(table.to_csv(index=False), "pricing/elasticities.csv")
    mlflow.log_text(est.skipped_.to_csv(index=False), "pricing/skipped_cells.csv")
    mlflow.log_text(est.events_.to_csv(index=False), "pricing/events.csv")
    mlflow.log_text(recommended.to_csv(index=False), "pricing/recommended.csv")

    def register(tags: dict[str, str]) -> Any:
        return log_and_register_pricing(table, recommended, cfg.model_name, level=level,
                                        pre_weeks=est.pre_weeks, post_weeks=est.post_weeks,
                                        tags=tags)[1]

    increase = report.metrics["revenue_increase"]
    first, last = est.events_["changed_at"].min(), est.events_["changed_at"].max()
    window = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}" if len(est.events_) else "none"
    pooled_text = (f"pooled elasticity {pooled.iloc[0]['elasticity']:+.3f} "
                   f"[{pooled.iloc[0]['ci_low']:+.3f}, {pooled.iloc[0]['ci_high']:+.3f}], "
                   f"naive before/after {pooled.iloc[0]['naive_elasticity']:+.3f}"
                   if not pooled.empty else "no pooled elasticity")
    return Candidate(
        register=register, report=report, comparison=None,
        card=ModelCardText(
            description=(
                "Elasticity of completed visits to a provider's price rise over the "
                f"{est.post_weeks} weeks after it, per cell (pooled, price tier, "
                "neighborhood, service x tier), by double machine learning on the price "
                "rises in the data, with the revenue change of a proposed rise and its "
                f"{level:.0%} interval. Request rows of price_tier (service, neighborhood: "
                f"'{ALL}' by default) and price_change."),
            data_window={"price rises": f"{len(est.events_)} ({window})",
                         "cells estimated": f"{len(table)} (skipped {len(est.skipped_)})",
                         "elasticity": pooled_text},
            caveats=report.notes),
        headline=("revenue_increase",),
        notes=[f"revenue_increase {increase.value:+.4f} [{increase.ci_low:+.4f}, "
               f"{increase.ci_high:+.4f}]", pooled_text, report.notes[0]])


def run(config: PricingJobConfig | str | Path | None = None, *,
        data: MarketplaceData | None = None, data_dir: str | Path | None = None,
        tracking_uri: str | None = None) -> JobResult:
    """Estimate elasticities, evaluate the supported price rises, gate, register, promote.

    ``config``, ``data``, ``data_dir``, ``tracking_uri`` and the result: as
    :func:`~barberpro_ml.jobs.base.run_training_job` (``config`` may also be the path of a
    YAML, or None for the shipped ``pricing.yaml``).
    """
    cfg = as_job_config(PricingJobConfig, config)
    return run_training_job(cfg, _step, data=data, data_dir=data_dir, tracking_uri=tracking_uri)
