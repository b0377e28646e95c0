"""Population views over the scored customers: segment tables, customer-success metrics, journeys.

These back the service's ``/customer-segments``, ``/customer-success/metrics`` and
``/customers/{id}/journey`` routes, and work the same from a notebook. Each is computed from the
scorer's numbers for every customer at ``as_of`` (:meth:`CustomerScorer.population`, cached per
cut-off) and from the event data, never from stored claims.

The customer-success metrics put the seed document's "46.3% churn reduction" beside what the
randomised campaigns measured (:func:`barberpro_ml.evaluation.campaign_effects`): the claim is
*supported* only when the lower bound of the measured relative reduction's 95% interval reaches
it, *refused* otherwise -- the same rule the promotion gates apply to the seed's accuracy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from barberpro_ml.data import MarketplaceData
from barberpro_ml.evaluation.uplift import OfferEffect, campaign_effects
from barberpro_ml.features import churn_labels
from barberpro_ml.features.lifecycle import LIFECYCLE_STAGES, lifecycle_journey
from barberpro_ml.models.segments import segment_profiles
from barberpro_ml.scoring.scorer import CustomerScorer

__all__ = [
    "SEED_CHURN_REDUCTION",
    "ClaimCheck",
    "SuccessMetrics",
    "customer_journey",
    "segment_summary",
    "success_metrics",
]

SEED_CHURN_REDUCTION = 0.463
"""The seed document's claim: "46.3% churn reduction through proactive interventions"."""

SegmentKind = Literal["rfm", "cluster", "lifecycle"]
_SEGMENT_COLUMNS: dict[str, str] = {"rfm": "rfm_segment", "cluster": "cluster_name",
                                    "lifecycle": "lifecycle_stage"}


def segment_summary(scorer: CustomerScorer, data: MarketplaceData, as_of: object = None,
                    by: SegmentKind = "rfm") -> pd.DataFrame:
    """One row per segment: size, share, behaviour and the models' mean churn risk and value.

    Parameters
    ----------
    scorer, data, as_of
        The scorer, the event data and the cut-off (default: the data's last event).
    by
        ``rfm`` (named RFM segments), ``cluster`` (behavioural clusters) or ``lifecycle``.

    Returns
    -------
    pandas.DataFrame
        :func:`barberpro_ml.models.segments.segment_profiles` of the chosen grouping, with the
        mean ``churn_probability`` and ``expected_value_12m`` of each segment.
    """
    if by not in _SEGMENT_COLUMNS:
        raise ValueError(f"by must be one of {sorted(_SEGMENT_COLUMNS)}, got {by!r}")
    scored = scorer.population(data, as_of)
    features = scorer.snapshot(data, as_of).features.loc[scored.index]
    return segment_profiles(
        features, scored[_SEGMENT_COLUMNS[by]].astype(str).rename(by),
        extra={"churn_probability": scored["churn_probability"],
               "expected_value_12m": scored["expected_value_12m"]})


class ClaimCheck(BaseModel):
    """A claimed number beside the measurement, with the verdict."""

    model_config = ConfigDict(frozen=True)

    claim: str
    claimed: float
    measured: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: Literal["supported", "refused", "not measurable"]
    reason: str


class SuccessMetrics(BaseModel):
    """Customer-success metrics at ``as_of`` (all measured, none stored)."""

    model_config = ConfigDict(frozen=True)

    as_of: datetime
    customers: int
    lifecycle: dict[str, int]
    active_customers: int
    churn_rate_last_90d: float | None
    churn_rate_last_90d_note: str
    mean_churn_probability_active: float
    high_risk_customers: int
    expected_value_12m_active: float
    revenue_at_risk_12m: float
    actions: dict[str, int]
    campaigns: list[OfferEffect]
    churn_reduction_claim: ClaimCheck
    model_versions: dict[str, str]


def success_metrics(scorer: CustomerScorer, data: MarketplaceData, as_of: object = None, *,
                    horizon_days: int = 90, n_bootstrap: int = 1000, seed: int = 0
                    ) -> SuccessMetrics:
    """Customer-success metrics at ``as_of``.

    - lifecycle stage counts; active customers (every stage but ``churned``);
    - realised churn of the last complete window: the share of customers active at
      ``as_of - horizon_days`` with no completed visit by ``as_of`` (the churn label's
      definition, fully observed);
    - the churn model's mean probability and high-risk count over active customers, their
      predicted 12-month value and the value at risk (``sum p x value``);
    - the recommended actions' counts;
    - every campaign's measured effect and the pooled one, and the seed's 46.3% claim checked
      against it.
    """
    scored = scorer.population(data, as_of)
    snap = scorer.snapshot(data, as_of)
    active = scored["lifecycle_stage"] != "churned"
    stages = scored["lifecycle_stage"].value_counts()
    previous = snap.as_of - pd.Timedelta(days=horizon_days)
    churn_rate: float | None = None
    note = (f"customers active at {previous:%Y-%m-%d} without a completed visit by "
            f"{snap.as_of:%Y-%m-%d}")
    try:
        labels = churn_labels(data, previous, horizon_days)
        churn_rate = float(labels.mean()) if len(labels) else None
        note += f" ({len(labels):,} customers)"
    except ValueError as exc:
        note = f"not measurable: {exc}"
    reason = ""
    try:
        effects = campaign_effects(data, snap.as_of, horizon_days=horizon_days,
                                   n_bootstrap=n_bootstrap, seed=seed)
    except ValueError as exc:
        effects = []
        reason = str(exc)
    p = scored["churn_probability"].to_numpy()
    value = scored["expected_value_12m"].to_numpy()
    mask = active.to_numpy()
    pooled = effects[-1] if effects else None
    return SuccessMetrics(
        as_of=snap.as_of.to_pydatetime(), customers=len(scored),
        lifecycle={s: int(stages.get(s, 0)) for s in LIFECYCLE_STAGES},
        active_customers=int(mask.sum()), churn_rate_last_90d=churn_rate,
        churn_rate_last_90d_note=note,
        mean_churn_probability_active=float(p[mask].mean()) if mask.any() else 0.0,
        high_risk_customers=int((scored["risk_band"].to_numpy()[mask] == "high").sum()),
        expected_value_12m_active=float(value[mask].sum()),
        revenue_at_risk_12m=float((p[mask] * value[mask]).sum()),
        actions={str(k): int(v) for k, v in scored["action"].value_counts().items()},
        campaigns=effects,
        churn_reduction_claim=_check_claim(pooled, reason),
        model_versions=scorer.versions())


def _check_claim(pooled: OfferEffect | None, why_missing: str) -> ClaimCheck:
    claim = "46.3% churn reduction through proactive interventions (seed document)"
    if pooled is None or pooled.relative_reduction is None:
        return ClaimCheck(claim=claim, claimed=SEED_CHURN_REDUCTION, measured=None,
                          ci_low=None, ci_high=None, verdict="not measurable",
                          reason=why_missing or "; ".join(pooled.notes if pooled else []))
    est = pooled.relative_reduction
    supported = est.ci_low >= SEED_CHURN_REDUCTION
    return ClaimCheck(
        claim=claim, claimed=SEED_CHURN_REDUCTION, measured=est.value, ci_low=est.ci_low,
        ci_high=est.ci_high, verdict="supported" if supported else "refused",
        reason=(f"the randomised campaigns ({', '.join(pooled.campaigns)}) measured a relative "
                f"churn reduction of {est.value:.1%} [{est.ci_low:.1%}, {est.ci_high:.1%}]; "
                + ("its lower bound reaches the claim" if supported
                   else "the claim lies outside what they support")))


def customer_journey(scorer: CustomerScorer, data: MarketplaceData, customer_id: int,
                     as_of: object = None, *, step_days: int = 30) -> dict[str, Any]:
    """One customer's lifecycle over time and their visits.

    Returns
    -------
    dict
        ``customer_id``, ``as_of``, ``stage`` (now), ``stages`` (the stage every
        ``step_days`` since signup, :func:`lifecycle_journey`), ``transitions`` (the rows where
        the stage changed) and ``visits`` (completed visits known at ``as_of``: when, service,
        barber, spend).

    Raises
    ------
    UnknownCustomerError
        When ``customer_id`` is not a customer at ``as_of``.
    """
    snap = scorer.snapshot(data, as_of)
    snap.positions([customer_id])  # raises UnknownCustomerError, like the other routes
    life = snap.lifecycle
    journey = lifecycle_journey(data, customer_id, snap.as_of, step_days=step_days,
                                population_gap_days=snap.population_gap_days)
    b = data.bookings
    mine = b.loc[(b["customer_id"] == customer_id).to_numpy()
                 & (b["scheduled_at"] <= snap.as_of).to_numpy()
                 & (b["status"] == "completed").to_numpy()]
    names = data.services.set_index("service_id")["name"]
    visits = pd.DataFrame({
        "scheduled_at": mine["scheduled_at"].to_numpy(),
        "service_id": mine["service_id"].to_numpy(),
        "service": names.reindex(mine["service_id"].to_numpy()).astype(str).to_numpy(),
        "provider_id": mine["provider_id"].to_numpy(),
        "spend": (mine["price"] - mine["discount"]).to_numpy(dtype=np.float64),
    }).sort_values("scheduled_at", kind="stable")
    records = _records(journey)
    return {
        "customer_id": int(customer_id), "as_of": snap.as_of.to_pydatetime(),
        "stage": str(life.loc[customer_id, "stage"]),
        "stage_reason": str(life.loc[customer_id, "reason"]),
        "stages": records,
        "transitions": [r for r in records if r["changed"]],
        "visits": _records(visits),
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: timestamps as datetimes, NaN as None."""
    out = frame.astype(object).where(frame.notna(), None)
    rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()}
                                  for r in out.to_dict("records")]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                row[key] = value.to_pydatetime()
            elif isinstance(value, np.generic):
                row[key] = value.item()
    return rows
