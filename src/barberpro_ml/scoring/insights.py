"""Population views over the scored customers: segment tables, customer-success metrics, journeys.

These back the service's ``/customer-segments``, ``/customer-success/metrics`` and
``/customers/{id}/journey`` routes, and work the same from a notebook. Each is computed from the
scorer's numbers for every customer at ``as_of`` (:meth:`CustomerScorer.population`, cached per
cut-off) and from the event data, never from stored claims.

The customer-success metrics put the seed document's "46.3% churn reduction" beside what the
randomised campaigns measured (:func:`barberpro_ml.evaluation.campaign_effects`): the claim is
*supported* only when the lower bound of the measured relative reduction's 95% interval reaches
it, *refused* otherwise -- the same rule the promotion gates apply to the seed's accuracy.

Every view uses the scorer's :class:`~barberpro_ml.definitions.Definitions` (those of the
served models): "active customers" is always :attr:`CustomerSnapshot.n_active` (a completed
visit within ``active_window_days``), realised churn and campaign effects use
``churn_horizon_days``. A view that needs a model family that is not served either leaves the
numbers of that family null (``unavailable`` says why) or, when nothing is left to show (a
segment table by RFM segment or cluster without the segments model), raises
:class:`~barberpro_ml.errors.ModelUnavailableError`. At an ``as_of`` before any completed
visit the views answer "no activity yet" (zero active customers, null means, a note) rather
than fail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from barberpro_ml.config import shipped_config
from barberpro_ml.data import MarketplaceData
from barberpro_ml.definitions import Definitions
from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.evaluation.report import MetricEstimate
from barberpro_ml.evaluation.uplift import OfferEffect, campaign_effects
from barberpro_ml.features import churn_labels
from barberpro_ml.features.lifecycle import LIFECYCLE_STAGES, lifecycle_journey
from barberpro_ml.gates import Claim, ClaimSet, load_claims
from barberpro_ml.models.segments import segment_profiles
from barberpro_ml.scoring.scorer import CustomerScorer

__all__ = [
    "SEED_CLAIM_ID",
    "CampaignEffect",
    "ClaimCheck",
    "EstimateSummary",
    "SuccessMetrics",
    "customer_journey",
    "segment_summary",
    "success_metrics",
]

SEED_CLAIM_ID = "interventions-churn-reduction-seed"
"""The claims-file id of the seed document's "46.3% churn reduction through proactive
interventions" (``configs/claims.yaml``, family ``interventions``)."""

SegmentKind = Literal["rfm", "cluster", "lifecycle"]
_SEGMENT_COLUMNS: dict[str, str] = {"rfm": "rfm_segment", "cluster": "cluster_name",
                                    "lifecycle": "lifecycle_stage"}
_SEGMENT_FAMILY: dict[str, str | None] = {"rfm": "segments", "cluster": "segments",
                                          "lifecycle": None}


def segment_summary(scorer: CustomerScorer, data: MarketplaceData, as_of: object = None,
                    by: SegmentKind = "rfm") -> pd.DataFrame:
    """One row per segment: size, share, behaviour and the models' mean churn risk and value.

    Parameters
    ----------
    scorer, data, as_of
        The scorer, the event data and the cut-off (default: the data's last event).
    by
        ``rfm`` (named RFM segments), ``cluster`` (behavioural clusters) -- both need the
        segments model -- or ``lifecycle`` (from the data alone).

    Returns
    -------
    pandas.DataFrame
        :func:`barberpro_ml.models.segments.segment_profiles` of the chosen grouping, with the
        mean ``churn_probability`` and ``expected_value_12m`` of each segment (NaN when that
        model is not served) and ``n_active`` (active customers, :attr:`CustomerSnapshot.active`;
        they sum to :meth:`CustomerScorer.active_customers`).

    Raises
    ------
    InputError
        An unknown ``by``.
    ModelUnavailableError
        ``by`` is ``rfm`` or ``cluster`` and the segments model is not served.
    """
    if by not in _SEGMENT_COLUMNS:
        raise InputError(f"by must be one of {sorted(_SEGMENT_COLUMNS)}, got {by!r}")
    family = _SEGMENT_FAMILY[by]
    if family is not None:
        scorer.require(family, f"the segment table by {by}")
    scored = scorer.population(data, as_of)
    snap = scorer.snapshot(data, as_of)
    features = snap.features.loc[scored.index]
    active = pd.Series(snap.active.astype(np.int64), index=snap.features.index)
    table = segment_profiles(
        features, scored[_SEGMENT_COLUMNS[by]].astype(str).rename(by),
        extra={"churn_probability": scored["churn_probability"].astype(np.float64),
               "expected_value_12m": scored["expected_value_12m"].astype(np.float64),
               "active": active})
    table.insert(2, "n_active", (table.pop("active_mean") * table["n_customers"]).round()
                 .astype(np.int64))
    return table


class EstimateSummary(BaseModel):
    """An estimate with its confidence interval (the bootstrap replicates left out)."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: float
    ci_low: float
    ci_high: float
    confidence: float

    @classmethod
    def of(cls, estimate: MetricEstimate | None) -> EstimateSummary | None:
        if estimate is None:
            return None
        return cls(name=estimate.name, value=estimate.value, ci_low=estimate.ci_low,
                   ci_high=estimate.ci_high, confidence=estimate.confidence)


class CampaignEffect(BaseModel):
    """:class:`~barberpro_ml.evaluation.uplift.OfferEffect` as the service reports it: the
    estimates as value and interval, without their bootstrap replicates (which made a metrics
    response hundreds of kilobytes)."""

    model_config = ConfigDict(frozen=True)

    campaign: str
    offer: str | None
    campaigns: list[str]
    n_treated: int
    n_control: int
    churned_treated: int
    churned_control: int
    churn_treated: float | None
    churn_control: float | None
    absolute_reduction: EstimateSummary | None
    relative_reduction: EstimateSummary | None
    sent_from: datetime
    sent_to: datetime
    window_end: datetime
    horizon_days: int
    n_bootstrap: int
    notes: list[str]

    @classmethod
    def of(cls, effect: OfferEffect) -> CampaignEffect:
        fields = effect.model_dump(include=set(cls.model_fields) - {
            "absolute_reduction", "relative_reduction"})
        return cls(**fields, absolute_reduction=EstimateSummary.of(effect.absolute_reduction),
                   relative_reduction=EstimateSummary.of(effect.relative_reduction))


class ClaimCheck(BaseModel):
    """A claimed number beside the measurement, with the verdict."""

    model_config = ConfigDict(frozen=True)

    claim_id: str
    claim: str
    blocking: bool
    claimed: float
    measured: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: Literal["supported", "refused", "not measurable"]
    reason: str


class SuccessMetrics(BaseModel):
    """Customer-success metrics at ``as_of`` (all measured, none stored).

    Numbers that need a model family that is not served are null, listed in ``unavailable``
    (``churn``: mean churn probability, high-risk count, revenue at risk; ``ltv``: expected
    value, revenue at risk). Means over no active customer are null.
    """

    model_config = ConfigDict(frozen=True)

    as_of: datetime
    definitions: Definitions
    customers: int
    lifecycle: dict[str, int]
    active_customers: int
    first_visit: datetime | None
    realised_churn_rate: float | None
    realised_churn_note: str
    mean_churn_probability_active: float | None
    high_risk_customers: int | None
    expected_value_12m_active: float | None
    revenue_at_risk_12m: float | None
    actions: dict[str, int]
    campaigns: list[CampaignEffect]
    churn_reduction_claim: ClaimCheck
    """The seed document's claim (:data:`SEED_CLAIM_ID`) against the pooled campaigns."""
    intervention_claims: list[ClaimCheck]
    """Every ``interventions`` claim of the claims file, judged the same way."""
    notes: list[str]
    unavailable: dict[str, str]
    model_versions: dict[str, str]


def success_metrics(scorer: CustomerScorer, data: MarketplaceData, as_of: object = None, *,
                    n_bootstrap: int = 1000, seed: int = 0,
                    claims: ClaimSet | None = None) -> SuccessMetrics:
    """Customer-success metrics at ``as_of``, under the scorer's definitions.

    - lifecycle stage counts; active customers (:attr:`CustomerSnapshot.n_active`: a
      completed visit within ``active_window_days``, the number every route reports);
    - realised churn of the last complete window: the share of customers active at
      ``as_of - churn_horizon_days`` with no completed visit by ``as_of`` (the churn label's
      definition, fully observed);
    - the churn model's mean probability and high-risk count over active customers, their
      predicted value and the value at risk (``sum p x value``), each null when its model is
      not served (``unavailable``) or there is no active customer;
    - the recommended actions' counts;
    - every campaign's measured effect (value and interval) and the pooled one, and every
      ``interventions`` claim of ``claims`` (default: the shipped ``claims.yaml``; the seed's
      46.3% among them) checked against it.

    Before the first completed visit every count is zero, the means are null and ``notes``
    says there is no activity yet.
    """
    definitions = scorer.definitions
    horizon = definitions.churn_horizon_days
    scored = scorer.population(data, as_of)
    snap = scorer.snapshot(data, as_of)
    mask = snap.active
    stages = scored["lifecycle_stage"].value_counts()
    previous = snap.as_of - pd.Timedelta(days=horizon)
    notes: list[str] = []
    if snap.first_visit is None:
        first = _first_completed(data)
        notes.append(f"no activity yet: no completed visit by as_of {snap.as_of}"
                     + (f" (the first is at {first})" if first is not None else ""))
    labels = churn_labels(data, previous, horizon,
                          active_window_days=definitions.active_window_days)
    churn_rate = float(labels.mean()) if len(labels) else None
    note = (f"customers active at {previous:%Y-%m-%d} without a completed visit by "
            f"{snap.as_of:%Y-%m-%d} ({len(labels):,} customers)")
    if not len(labels):
        note = f"not measurable: no customer was active at {previous:%Y-%m-%d}"
    reason = ""
    try:
        effects = campaign_effects(data, snap.as_of, horizon_days=horizon,
                                   n_bootstrap=n_bootstrap, seed=seed)
    except NotEnoughDataError as exc:
        effects = []
        reason = str(exc)
    unavailable = {f: r for f, r in scorer.unavailable.items() if f in ("churn", "ltv")}
    any_active = bool(mask.any())
    p = scored["churn_probability"].to_numpy(dtype=np.float64)[mask]
    value = scored["expected_value_12m"].to_numpy(dtype=np.float64)[mask]
    has_churn, has_ltv = "churn" not in unavailable, "ltv" not in unavailable
    pooled = effects[-1] if effects else None
    if claims is None:
        claims = load_claims(shipped_config("claims.yaml"), family="interventions")
    checks = [_check_claim(c, pooled, reason) for c in claims.for_family("interventions")]
    seed_check = next((c for c in checks if c.claim_id == SEED_CLAIM_ID), None)
    if seed_check is None:
        raise InputError(f"the claims file {claims.path} has no claim {SEED_CLAIM_ID!r} "
                         "(family interventions)")
    return SuccessMetrics(
        as_of=snap.as_of.to_pydatetime(), definitions=definitions, customers=len(scored),
        lifecycle={s: int(stages.get(s, 0)) for s in LIFECYCLE_STAGES},
        active_customers=snap.n_active,
        first_visit=None if snap.first_visit is None else snap.first_visit.to_pydatetime(),
        realised_churn_rate=churn_rate, realised_churn_note=note,
        mean_churn_probability_active=float(p.mean()) if has_churn and any_active else None,
        high_risk_customers=int((scored["risk_band"].to_numpy()[mask] == "high").sum())
        if has_churn else None,
        expected_value_12m_active=float(value.sum()) if has_ltv else None,
        revenue_at_risk_12m=float((p * value).sum()) if has_churn and has_ltv else None,
        actions={str(k): int(v) for k, v in scored["action"].value_counts().items()},
        campaigns=[CampaignEffect.of(e) for e in effects],
        churn_reduction_claim=seed_check, intervention_claims=checks,
        notes=notes, unavailable=unavailable,
        model_versions=scorer.versions())


def _first_completed(data: MarketplaceData) -> pd.Timestamp | None:
    b = data.bookings
    done = b.loc[(b["status"] == "completed").to_numpy(), "scheduled_at"]
    return done.min() if len(done) else None


def _check_claim(claim: Claim, pooled: OfferEffect | None, why_missing: str) -> ClaimCheck:
    """One ``interventions`` claim against the pooled campaigns: supported when the interval's
    bound on the claim's side (or the point estimate, ``policy: point``) clears it."""
    text = (f"{claim.metric} {'>=' if claim.direction == 'at_least' else '<='} "
            f"{claim.claimed:g} ({claim.source.split(':')[0]})")
    head = {"claim_id": claim.id, "claim": text, "blocking": claim.blocking,
            "claimed": claim.claimed}
    est = None if pooled is None else getattr(pooled, claim.metric, None)
    if pooled is None or est is None:
        return ClaimCheck(**head, measured=None, ci_low=None, ci_high=None,
                          verdict="not measurable",
                          reason=why_missing or "; ".join(pooled.notes if pooled else []))
    if claim.direction == "at_least":
        bound = est.value if claim.policy == "point" else est.ci_low
        supported = bound >= claim.claimed
    else:
        bound = est.value if claim.policy == "point" else est.ci_high
        supported = bound <= claim.claimed
    return ClaimCheck(
        **head, measured=est.value, ci_low=est.ci_low,
        ci_high=est.ci_high, verdict="supported" if supported else "refused",
        reason=(f"the randomised campaigns ({', '.join(pooled.campaigns)}) measured a relative "
                f"churn reduction of {est.value:.1%} [{est.ci_low:.1%}, {est.ci_high:.1%}]; "
                + ("its bound reaches the claim" if supported
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
    definitions = scorer.definitions
    journey = lifecycle_journey(data, customer_id, snap.as_of, step_days=step_days,
                                population_gap_days=snap.population_gap_days,
                                active_window_days=definitions.active_window_days,
                                new_days=definitions.new_customer_days)
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
