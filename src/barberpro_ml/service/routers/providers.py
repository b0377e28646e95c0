"""Provider (barber) routes: performance, recommendations, growth plan, dashboard, batch
analytics and the customers to contact, from the provider score
(:mod:`barberpro_ml.providers`) at ``as_of``; and the price changes the causal evidence
supports (``/marketplace-optimization``).

The customer-churn component and ``/communication`` use the served churn champion; without
it the score leaves that component out (and says so) and ``/communication`` answers 503.
``/marketplace-optimization`` uses the verified ``barberpro-pricing`` champion (the price
elasticities of :mod:`barberpro_ml.jobs.pricing`, read through
:meth:`~barberpro_ml.service.evidence.RegisteredEvidence.pricing`) and answers 503 with the
reason without one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.errors import InputError, ModelUnavailableError, NotFoundError
from barberpro_ml.models.pricing_table import ALL
from barberpro_ml.providers import (
    COMPONENTS,
    ProviderAction,
    ProviderComponents,
    customers_to_contact,
    load_score_config,
    measure_components,
    provider_actions,
    score_components,
)
from barberpro_ml.providers.actions import ActionSource, MessageType
from barberpro_ml.scoring.live import Served
from barberpro_ml.service.dependencies import AsOf, Now
from barberpro_ml.service.evidence import RegisteredEvidence, ServedPricing

__all__ = ["MAX_PRICE_PROPOSALS", "MAX_PROVIDER_BATCH", "UnknownProviderError", "router"]

MAX_PROVIDER_BATCH = 500
"""The most barbers one ``POST /providers/batch-analytics`` covers."""
MAX_PRICE_PROPOSALS = 20
"""The most price changes one ``GET /providers/{id}/marketplace-optimization`` evaluates."""
_DAYS_PER_MONTH = 365.25 / 12

ProviderId = Annotated[int, Path(ge=1, le=2**62, description="The barber's provider_id.")]


class UnknownProviderError(NotFoundError):
    """A provider id that is not a barber on the platform at the cut-off."""


class ComponentScore(BaseModel):
    """One component of the score: its percentile in the neighborhood and measured value."""

    component: str
    percentile: float | None = Field(description="0-100 among the neighborhood's barbers, 100 "
                                                 "the best; null when left out of the score.")
    percentile_low: float | None
    percentile_high: float | None
    value: float | None = Field(description="Measured value (posterior mean): stars, a share, "
                                            "a log ratio (revenue trend) or a probability.")
    weight: float = Field(description="Effective share of the score (0 when left out).")


class ProviderPerformance(BaseModel):
    """The provider score with its interval and every component."""

    provider_id: int
    as_of: datetime
    neighborhood: str
    price_tier: str
    score: float = Field(description="0-100: the median of the score's posterior draws.")
    score_low: float
    score_high: float
    interval: float = Field(description="Central probability of [score_low, score_high].")
    rank_in_neighborhood: int
    n_in_neighborhood: int
    n_reviews: int
    rating_raw: float | None = Field(description="The plain mean rating (unshrunk).")
    components: list[ComponentScore]
    left_out: list[str] = Field(description="Components left out of the score (customer_churn "
                                            "without a served churn model).")


class ProviderRecommendations(BaseModel):
    provider_id: int
    as_of: datetime
    actions: list[ProviderAction] = Field(description="At most three, by expected gain.")
    pricing: str = Field(description="Where the pricing actions come from.")


class GrowthStep(BaseModel):
    """One component to improve: where the barber stands, the action and its gain."""

    component: str
    percentile: float | None
    value: float | None
    action: ProviderAction | None = Field(description="The action traced to the component, "
                                                      "when its expected gain is positive.")


class GrowthPlan(BaseModel):
    provider_id: int
    as_of: datetime
    score: float
    steps: list[GrowthStep] = Field(description="Every scored component, weakest first.")
    expected_gain_per_month: float = Field(
        description="Sum of the actions' expected gains (their intervals are not added: the "
                    "gains share the barber's volume and are not independent).")


class ProviderKpis(BaseModel):
    """Volumes over the last year (per month) and the last 90 days."""

    bookings_per_month: float
    visits_per_month: float
    revenue_per_visit: float
    revenue_per_month: float
    utilisation_90d: float | None
    customer_base: int = Field(description="Customers whose latest completed visit was with "
                                           "the barber, within the activity window.")


class ProviderDashboard(BaseModel):
    performance: ProviderPerformance
    kpis: ProviderKpis
    top_actions: list[ProviderAction]
    customers_at_risk: int | None = Field(description="At-risk regulars to contact (null "
                                                      "without the churn model).")


class BatchAnalyticsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_ids: list[Annotated[int, Field(ge=1, le=2**62)]] | None = Field(
        None, max_length=MAX_PROVIDER_BATCH,
        description=f"Up to {MAX_PROVIDER_BATCH} barbers; null: every barber on the platform.")
    as_of: datetime | None = None
    skip_unknown: bool = Field(False, description="List unknown ids instead of answering 404.")


class NeighborhoodSummary(BaseModel):
    neighborhood: str
    n_providers: int
    score_median: float
    rating_mean: float | None


class BatchAnalytics(BaseModel):
    as_of: datetime
    providers: list[ProviderPerformance]
    neighborhoods: list[NeighborhoodSummary]
    not_found: list[int]


class CustomerContact(BaseModel):
    customer_id: int
    churn_probability: float
    visits_with_provider: int
    last_visit_at: datetime
    days_since_last_visit: float
    usual_gap_days: float
    last_rating: float | None
    message_type: MessageType
    reason: str


class ProviderCommunication(BaseModel):
    provider_id: int
    as_of: datetime
    min_probability: float
    customers: list[CustomerContact] = Field(description="At-risk regulars, most at risk "
                                                         "first: whom to contact and with "
                                                         "what message (nothing is sent).")


ProposalSource = Literal["recommended", "largest_observed", "requested"]


class PriceEvidence(BaseModel):
    """The elasticity cell a revenue change is computed from (``all``: not restricted)."""

    scope: str = Field(description="pooled, tier or service_tier: the most specific cell "
                                   "the champion estimated for this barber.")
    service: str
    price_tier: str
    neighborhood: str
    n_events: int = Field(description="Price rises the cell was estimated from.")
    elasticity: float
    elasticity_low: float
    elasticity_high: float
    max_price_change: float = Field(description="The largest rise the cell's evidence saw; "
                                                "changes beyond it are refused (422).")


class ServiceRevenueChange(BaseModel):
    """One service's revenue under a provider-wide price change."""

    service: str
    revenue_per_month: float = Field(description="Net revenue of the service's completed "
                                                 "visits per month, over the post window "
                                                 "before as_of.")
    evidence: PriceEvidence
    revenue_change: float = Field(description="Expected relative change of the service's "
                                              "revenue.")
    revenue_change_low: float
    revenue_change_high: float


class PriceProposal(BaseModel):
    """A provider-wide relative price change and the revenue it is expected to bring."""

    price_change: float = Field(description="Relative change of all the barber's prices "
                                            "(0.05 = +5%).")
    source: ProposalSource
    evidence: PriceEvidence
    revenue_change: float = Field(description="Expected relative change of the barber's "
                                              "revenue (the mean under the elasticity's "
                                              "sampling distribution).")
    revenue_change_low: float
    revenue_change_high: float
    revenue_per_month_change: float = Field(description="revenue_change x revenue_per_month.")
    revenue_per_month_change_low: float
    revenue_per_month_change_high: float
    supported: bool = Field(description="Whether the evidence supports a gain: the interval's "
                                        "lower bound is above 0.")
    services: list[ServiceRevenueChange]


class PricingClaimStatus(BaseModel):
    """A pricing claim's verdict bound to the champion that the answer comes from."""

    claim_id: str
    verdict: str
    blocking: bool
    reason: str


class MarketplaceOptimization(BaseModel):
    """``GET /providers/{provider_id}/marketplace-optimization``."""

    provider_id: int
    as_of: datetime
    neighborhood: str
    price_tier: str
    evidence_model: str
    evidence_version: str
    level: float = Field(description="Central probability of every interval.")
    revenue_per_month: float = Field(description="The barber's net revenue per month over the "
                                                 "post window before as_of.")
    recommendation: str = Field(description="The evidence-based change for the barber's tier "
                                            "in words.")
    proposals: list[PriceProposal] = Field(description="The recommended change, the largest "
                                                       "rise the evidence saw, or the "
                                                       "requested changes.")
    claims: list[PricingClaimStatus]
    notes: list[str]


router = APIRouter(prefix="/providers", tags=["providers"],
                   responses={404: {"description": "Unknown provider at as_of"}})


def _churn(now: Served, stamp: pd.Timestamp) -> pd.Series | None:
    if "churn" in now.scorer.unavailable:
        return None
    return now.scorer.population(now.data, stamp)["churn_probability"]


def _scored(now: Served, as_of: datetime | None
            ) -> tuple[pd.Timestamp, ProviderComponents, pd.DataFrame, pd.Series | None]:
    stamp = now.cutoff(as_of)
    cfg = load_score_config()
    churn = _churn(now, stamp)
    components = measure_components(now.data, stamp, cfg, churn)
    return stamp, components, score_components(components, cfg), churn


def _check(scores: pd.DataFrame, provider_id: int, stamp: pd.Timestamp) -> None:
    if provider_id not in scores.index:
        raise UnknownProviderError(
            f"providers: no barber {provider_id} on the platform at {stamp:%Y-%m-%d %H:%M:%S} "
            f"(unknown, not yet joined or already left; {len(scores)} barbers are)")


def _row(frame: pd.DataFrame, provider_id: int) -> dict[str, Any]:
    return {str(k): v for k, v in frame.loc[provider_id].items()}


def _opt(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def _performance(scores: pd.DataFrame, provider_id: int, stamp: pd.Timestamp
                 ) -> ProviderPerformance:
    row = _row(scores, provider_id)
    weights: dict[str, float] = scores.attrs["weights"]
    return ProviderPerformance(
        provider_id=int(provider_id), as_of=stamp.to_pydatetime(),
        neighborhood=str(row["neighborhood"]), price_tier=str(row["price_tier"]),
        score=float(row["score"]), score_low=float(row["score_low"]),
        score_high=float(row["score_high"]), interval=float(scores.attrs["interval"]),
        rank_in_neighborhood=int(row["rank_in_neighborhood"]),
        n_in_neighborhood=int(row["n_in_neighborhood"]), n_reviews=int(row["n_reviews"]),
        rating_raw=_opt(row["rating_raw"]),
        components=[ComponentScore(component=c, percentile=_opt(row[c]),
                                   percentile_low=_opt(row[f"{c}_low"]),
                                   percentile_high=_opt(row[f"{c}_high"]),
                                   value=_opt(row[f"{c}_value"]), weight=weights.get(c, 0.0))
                    for c in COMPONENTS],
        left_out=list(scores.attrs["dropped_components"]))


def _pricing_actions(request: Request, now: Served, provider_id: int, stamp: pd.Timestamp
                     ) -> tuple[ActionSource | None, str]:
    """The price change the verified pricing champion supports for the barber's tier, as an
    action ranked with the others, and a sentence saying where pricing stands.

    The action is offered only when the tier's recommended rise has a revenue change whose
    lower bound is above 0 (the same evidence as ``/marketplace-optimization``); without a
    verified champion the other actions are answered alone and the sentence says why.
    """
    evidence: RegisteredEvidence = request.app.state.evidence
    try:
        pricing = evidence.pricing()
    except ModelUnavailableError as exc:
        return None, f"No pricing action: {exc}"
    spec = pricing.model.spec
    assert spec is not None
    provider = _on_platform(now, provider_id, stamp)
    tier = str(provider["price_tier"])
    recommended = next((r for r in spec.recommended if str(r.get("price_tier")) == tier), None)
    rise = float(recommended["price_change"]) if recommended else 0.0
    source = f"{evidence.pricing_model} v{pricing.version}"
    if rise <= 0:
        return None, (f"No pricing action: for the {tier} tier no rise the evidence covers has "
                      f"a revenue change whose lower bound is above 0 ({source}; details: "
                      "GET /v1/providers/{id}/marketplace-optimization).")
    per_service = _revenue_per_service(now, provider_id, stamp, spec.post_weeks)
    proposal = _proposal(pricing, tier, rise, "recommended", per_service)
    if not proposal.supported:
        return None, (f"No pricing action: the {tier} tier's recommended rise of {rise:.1%} "
                      f"is not supported for this barber ({source}).")
    cell = proposal.evidence
    action = ProviderAction(
        provider_id=int(provider_id), action="raise_prices",
        title=f"Raise prices by {rise:.1%}",
        detail=(f"A {rise:.1%} rise on every service: revenue {proposal.revenue_change:+.1%} "
                f"[{proposal.revenue_change_low:+.1%}, {proposal.revenue_change_high:+.1%}] "
                f"from the {cell.scope} price elasticity {cell.elasticity:+.2f} "
                f"[{cell.elasticity_low:+.2f}, {cell.elasticity_high:+.2f}] "
                f"({cell.n_events} price rises)."),
        component="price_elasticity", current_value=0.0, target_value=rise,
        change_per_month=rise, change_unit="relative price change",
        gain_per_month=proposal.revenue_per_month_change,
        gain_low=proposal.revenue_per_month_change_low,
        gain_high=proposal.revenue_per_month_change_high, interval=float(spec.level),
        assumption=("Revenue over the weeks after a rise at constant elasticity, on your "
                    "completed visits of the last weeks; causal evidence from other barbers' "
                    "price rises (double machine learning)."))
    return (lambda _components, _scores: [action]), (
        f"Pricing from the verified {source} champion (included when supported).")


@router.get("/{provider_id}/performance", response_model=ProviderPerformance)
def performance(now: Now, provider_id: ProviderId, as_of: AsOf = None) -> ProviderPerformance:
    """The 0-100 provider score with its interval, rank in the neighborhood and components."""
    stamp, _, scores, _ = _scored(now, as_of)
    _check(scores, provider_id, stamp)
    return _performance(scores, provider_id, stamp)


@router.get("/{provider_id}/recommendations", response_model=ProviderRecommendations)
def recommendations(request: Request, now: Now, provider_id: ProviderId, as_of: AsOf = None
                    ) -> ProviderRecommendations:
    """At most three actions ranked by expected monthly gain, with intervals, each traced to
    a measured component; a price rise is among them when the verified pricing champion
    supports one for the barber's tier (the sentence in ``pricing`` says where pricing
    stands)."""
    stamp, components, scores, _ = _scored(now, as_of)
    _check(scores, provider_id, stamp)
    source, note = _pricing_actions(request, now, provider_id, stamp)
    return ProviderRecommendations(
        provider_id=provider_id, as_of=stamp.to_pydatetime(),
        actions=provider_actions(components, scores, provider_ids=[provider_id],
                                 pricing=source),
        pricing=note)


def _on_platform(now: Served, provider_id: int, stamp: pd.Timestamp) -> dict[str, Any]:
    """The provider's row when the barber is on the platform at ``stamp``; else 404."""
    prov = now.data.providers
    on = (prov["joined_at"] <= stamp) & ~(prov["left_at"].notna() & (prov["left_at"] <= stamp))
    hit = prov[on & (prov["provider_id"] == provider_id)]
    if hit.empty:
        raise UnknownProviderError(
            f"providers: no barber {provider_id} on the platform at {stamp:%Y-%m-%d %H:%M:%S} "
            f"(unknown, not yet joined or already left; {int(on.sum())} barbers are)")
    return {str(k): v for k, v in hit.iloc[0].items()}


def _revenue_per_service(now: Served, provider_id: int, stamp: pd.Timestamp,
                         weeks: int) -> pd.Series:
    """Net revenue per month of each service, completed visits known at ``stamp``."""
    b = now.data.bookings
    since = stamp - pd.Timedelta(weeks=weeks)
    done = b[(b["provider_id"] == provider_id) & (b["status"] == "completed")
             & (b["scheduled_at"] >= since) & (b["scheduled_at"] < stamp)
             & (b["created_at"] <= stamp)]
    names = now.data.services.set_index("service_id")["name"].astype(str)
    per_month = (done["price"] - done["discount"]).groupby(
        done["service_id"].map(names)).sum() / (7.0 * weeks / _DAYS_PER_MONTH)
    return per_month.reindex(names.to_numpy(), fill_value=0.0).astype(float)


def _cell(pricing: ServedPricing, *, price_tier: str, service: str = ALL) -> PriceEvidence:
    """The most specific estimated cell: service x tier, then tier, then pooled."""
    table = pricing.model.table
    assert table is not None
    for tier, svc in ((price_tier, service), (price_tier, ALL), (ALL, ALL)):
        hit = table[(table["price_tier"] == tier) & (table["service"] == svc)
                    & (table["neighborhood"] == ALL)]
        if not hit.empty:
            r = hit.iloc[0]
            return PriceEvidence(scope=str(r["scope"]), service=svc, price_tier=tier,
                                 neighborhood=ALL, n_events=int(r["n_events"]),
                                 elasticity=float(r["elasticity"]),
                                 elasticity_low=float(r["ci_low"]),
                                 elasticity_high=float(r["ci_high"]),
                                 max_price_change=float(r["max_step"]) - 1.0)
    raise ModelUnavailableError(f"the pricing champion v{pricing.version} has no elasticity "
                                f"for the {price_tier} tier nor a pooled one")


def _revenue_change(pricing: ServedPricing, cell: PriceEvidence, dp: float
                    ) -> tuple[float, float, float]:
    """(mean, low, high) from the champion pyfunc (which refuses changes beyond the evidence,
    a ModelInputError, answered 422)."""
    out = pricing.model.predict(None, pd.DataFrame({
        "price_change": [dp], "price_tier": [cell.price_tier], "service": [cell.service],
        "neighborhood": [cell.neighborhood]}))
    r = out.iloc[0]
    return (float(r["revenue_change"]), float(r["revenue_change_low"]),
            float(r["revenue_change_high"]))


def _proposal(pricing: ServedPricing, tier: str, dp: float, source: ProposalSource,
              per_service: pd.Series) -> PriceProposal:
    cell = _cell(pricing, price_tier=tier)
    mean, low, high = _revenue_change(pricing, cell, dp)
    total = float(per_service.sum())
    services = []
    for service, revenue in per_service.items():
        svc_cell = _cell(pricing, price_tier=tier, service=str(service))
        if dp > svc_cell.max_price_change + 1e-9:
            svc_cell = cell  # the service's own cell saw smaller rises: the tier's evidence
        s_mean, s_low, s_high = _revenue_change(pricing, svc_cell, dp)
        services.append(ServiceRevenueChange(
            service=str(service), revenue_per_month=round(float(revenue), 2),
            evidence=svc_cell, revenue_change=s_mean, revenue_change_low=s_low,
            revenue_change_high=s_high))
    return PriceProposal(
        price_change=dp, source=source,
        evidence=cell, revenue_change=mean, revenue_change_low=low,
        revenue_change_high=high, revenue_per_month_change=round(mean * total, 2),
        revenue_per_month_change_low=round(low * total, 2),
        revenue_per_month_change_high=round(high * total, 2), supported=low > 0.0,
        services=services)


@router.get("/{provider_id}/marketplace-optimization", response_model=MarketplaceOptimization,
            responses={503: {"description": "No verified barberpro-pricing champion to serve "
                                            "(the reason is in the answer)."}})
def marketplace_optimization(
        request: Request, now: Now, provider_id: ProviderId, as_of: AsOf = None,
        price_change: Annotated[list[float] | None, Query(
            max_length=MAX_PRICE_PROPOSALS,
            description="Provider-wide relative price changes to evaluate (0.05 = +5%), each "
                        "within the rises the evidence saw; default: the recommended change "
                        "for the barber's tier and the largest rise observed.")] = None,
        ) -> MarketplaceOptimization:
    """The price changes the causal evidence supports for the barber: the expected revenue
    change of each with its interval, for the whole barber and per service, from the verified
    pricing champion's elasticities; 503 (with the reason) without a verified champion."""
    stamp = now.cutoff(as_of)
    provider = _on_platform(now, provider_id, stamp)
    for dp in price_change or []:
        if not (np.isfinite(dp) and 0.0 <= dp < 1.0):
            raise InputError(f"price_change: {dp!r} is not a rise in [0, 1) (0.05 = +5%); the "
                             "evidence is about price rises only")
    evidence: RegisteredEvidence = request.app.state.evidence
    pricing = evidence.pricing()
    spec = pricing.model.spec
    assert spec is not None
    tier = str(provider["price_tier"])
    per_service = _revenue_per_service(now, provider_id, stamp, spec.post_weeks)
    recommended = next((r for r in spec.recommended if str(r.get("price_tier")) == tier), None)
    rec_change = float(recommended["price_change"]) if recommended else 0.0
    tier_cell = _cell(pricing, price_tier=tier)
    asked: list[tuple[float, ProposalSource]]
    if price_change:
        asked = [(float(dp), "requested") for dp in price_change]
    else:
        asked = [(rec_change, "recommended")]
        if tier_cell.max_price_change > rec_change:
            asked.append((round(tier_cell.max_price_change, 4), "largest_observed"))
    proposals = [_proposal(pricing, tier, dp, source, per_service) for dp, source in asked]
    if rec_change > 0:
        words = (f"raise prices by {rec_change:.1%}: the largest lower bound of the revenue "
                 f"change among the rises the {tier} tier's evidence covers")
    else:
        words = (f"keep prices: no rise the {tier} tier's evidence covers has a revenue change "
                 "whose lower bound is above 0")
    notes = [f"elasticities from the {evidence.pricing_model} v{pricing.version} champion "
             f"(double machine learning on the providers' price rises, {spec.level:.0%} "
             "intervals); revenue over the post window after a rise, at constant elasticity",
             "a service's change uses its service x tier elasticity where one was estimated "
             "(bookings of that service when all the barber's prices rise), else the tier's"]
    if tier_cell.scope == "pooled":
        notes.append(f"no elasticity for the {tier} tier (too few price rises): the pooled "
                     "one is used")
    return MarketplaceOptimization(
        provider_id=provider_id, as_of=stamp.to_pydatetime(),
        neighborhood=str(provider["neighborhood"]), price_tier=tier,
        evidence_model=evidence.pricing_model, evidence_version=pricing.version,
        level=spec.level, revenue_per_month=round(float(per_service.sum()), 2),
        recommendation=words, proposals=proposals,
        claims=[PricingClaimStatus(claim_id=v.claim_id, verdict=v.verdict,
                                   blocking=v.blocking, reason=v.reason)
                for v in pricing.verdicts],
        notes=notes)


@router.get("/{provider_id}/growth-plan", response_model=GrowthPlan)
def growth_plan(now: Now, provider_id: ProviderId, as_of: AsOf = None) -> GrowthPlan:
    """Every scored component, weakest first, with the action that addresses it and its
    expected monthly gain."""
    stamp, components, scores, _ = _scored(now, as_of)
    _check(scores, provider_id, stamp)
    row = _row(scores, provider_id)
    actions = {a.component: a for a in provider_actions(
        components, scores, provider_ids=[provider_id], max_actions=len(COMPONENTS))}
    scored = [c for c in COMPONENTS if c not in scores.attrs["dropped_components"]]
    steps = sorted((GrowthStep(component=c, percentile=_opt(row[c]),
                               value=_opt(row[f"{c}_value"]), action=actions.get(c))
                    for c in scored), key=lambda s: (s.percentile is None, s.percentile))
    return GrowthPlan(provider_id=provider_id, as_of=stamp.to_pydatetime(),
                      score=float(row["score"]), steps=steps,
                      expected_gain_per_month=round(sum(a.gain_per_month
                                                        for a in actions.values()), 2))


@router.get("/{provider_id}/dashboard", response_model=ProviderDashboard)
def dashboard(now: Now, provider_id: ProviderId, as_of: AsOf = None) -> ProviderDashboard:
    """Score, volumes, the top actions and how many regulars are at risk."""
    stamp, components, scores, churn = _scored(now, as_of)
    _check(scores, provider_id, stamp)
    p = _row(components.providers, provider_id)
    at_risk = None
    if churn is not None:
        at_risk = len(customers_to_contact(now.data, stamp, provider_id, churn,
                                           min_probability=_risk_threshold(now)))
    return ProviderDashboard(
        performance=_performance(scores, provider_id, stamp),
        kpis=ProviderKpis(
            bookings_per_month=round(float(p["bookings_per_month"]), 2),
            visits_per_month=round(float(p["visits_per_month"]), 2),
            revenue_per_visit=round(float(p["revenue_per_visit"]), 2),
            revenue_per_month=round(float(p["visits_per_month"] * p["revenue_per_visit"]), 2),
            utilisation_90d=_opt(scores.loc[provider_id, "utilisation_value"]),
            customer_base=int(p["n_customer_base"])),
        top_actions=provider_actions(components, scores, provider_ids=[provider_id]),
        customers_at_risk=at_risk)


@router.post("/batch-analytics", response_model=BatchAnalytics)
def batch_analytics(now: Now, request: Annotated[BatchAnalyticsRequest, Body()]
                    ) -> BatchAnalytics:
    """Scores of many barbers (default: all) and a summary per neighborhood."""
    stamp, _, scores, _ = _scored(now, request.as_of)
    ids = list(scores.index) if request.provider_ids is None else request.provider_ids
    missing = list(dict.fromkeys(i for i in ids if i not in scores.index))
    if missing and not request.skip_unknown:
        raise UnknownProviderError(
            f"providers: {len(missing)} ids are not barbers on the platform at "
            f"{stamp:%Y-%m-%d %H:%M:%S}, e.g. {missing[:5]}; pass skip_unknown to list them")
    known = [i for i in ids if i in scores.index]
    by = scores.groupby("neighborhood")
    hoods = [NeighborhoodSummary(neighborhood=str(name), n_providers=len(g),
                                 score_median=float(np.median(g["score"])),
                                 rating_mean=_opt(g["rating_raw"].mean()))
             for name, g in by]
    return BatchAnalytics(as_of=stamp.to_pydatetime(),
                          providers=[_performance(scores, i, stamp) for i in known],
                          neighborhoods=hoods, not_found=missing)


def _risk_threshold(now: Served) -> float:
    """The churn probability where the scorer's ``medium`` risk band starts."""
    return float(now.scorer.risk_bands[0])


@router.get("/{provider_id}/communication", response_model=ProviderCommunication)
def communication(now: Now, provider_id: ProviderId, as_of: AsOf = None,
                  min_probability: Annotated[float | None, Query(
                      ge=0, le=1, description="Churn probability from which a regular is at "
                                              "risk; default: the scorer's medium band.")]
                  = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100
                  ) -> ProviderCommunication:
    """The barber's at-risk regulars to contact, with their churn probability and the message
    type (service recovery, win-back or rebooking reminder); a list, not a sender. 503
    without the churn model."""
    stamp = now.cutoff(as_of)
    now.scorer.require("churn", "the customers to contact")
    churn = _churn(now, stamp)
    assert churn is not None
    on_platform = measure_components(now.data, stamp, load_score_config()).providers
    if provider_id not in on_platform.index:
        raise UnknownProviderError(
            f"providers: no barber {provider_id} on the platform at {stamp:%Y-%m-%d %H:%M:%S}")
    threshold = _risk_threshold(now) if min_probability is None else min_probability
    table = customers_to_contact(now.data, stamp, provider_id, churn,
                                 min_probability=threshold, limit=limit)
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    return ProviderCommunication(provider_id=provider_id, as_of=stamp.to_pydatetime(),
                                 min_probability=threshold,
                                 customers=[CustomerContact.model_validate(r) for r in rows])
