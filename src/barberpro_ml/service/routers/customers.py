"""Customer and population routes: profiles, recommendations, batches, segment tables,
journeys and customer-success metrics, from the served champion models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.scoring.insights import (
    SegmentKind,
    SuccessMetrics,
    customer_journey,
    segment_summary,
    success_metrics,
)
from barberpro_ml.scoring.records import CustomerProfile, CustomerRecommendations
from barberpro_ml.scoring.snapshot import UnknownCustomerError
from barberpro_ml.service.dependencies import AsOf, Now

__all__ = ["MAX_BATCH", "BatchProfileRequest", "BatchProfileResponse", "CustomerJourney",
           "JourneyVisit", "SegmentTable", "router"]

MAX_BATCH = 1000
"""The most customers one ``POST /customers/batch-profile`` profiles."""

CustomerId = Annotated[int, Path(ge=1, le=2**62, description="The customer's id.")]


class BatchProfileRequest(BaseModel):
    """Customers to profile in one call."""

    model_config = ConfigDict(extra="forbid")

    customer_ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(
        min_length=1, max_length=MAX_BATCH,
        description=f"1 to {MAX_BATCH} customer ids; a repeated id gets its profile at each of "
                    "its positions.")
    as_of: datetime | None = None
    skip_unknown: bool = Field(False, description="Profile the known ids and list the unknown "
                                                  "ones instead of answering 404.")


class BatchProfileResponse(BaseModel):
    profiles: list[CustomerProfile]
    not_found: list[int]


class SegmentTable(BaseModel):
    """The segment table of ``GET /customer-segments``."""

    as_of: datetime
    by: SegmentKind
    active_customers: int = Field(description="Customers active at as_of (the definitions' "
                                              "activity window): the same number on every "
                                              "route.")
    segments: list[dict[str, Any]] = Field(
        description="One row per segment: its key, n_customers, share, n_active, behaviour, "
                    "churn_probability_mean and expected_value_12m_mean (null without the "
                    "model), as segment_summary returns them.")
    unavailable: dict[str, str] = Field(description="Family -> why its columns are null.")
    model_versions: dict[str, str] = Field(description="Registered model -> version served.")


class JourneyVisit(BaseModel):
    """A completed visit known at ``as_of``."""

    scheduled_at: datetime
    service_id: int
    service: str
    provider_id: int
    spend: float = Field(description="price - discount.")


class CustomerJourney(BaseModel):
    """One customer's lifecycle over time and their visits."""

    customer_id: int
    as_of: datetime
    stage: str = Field(description="The lifecycle stage at as_of.")
    stage_reason: str
    stages: list[dict[str, Any]] = Field(description="The stage every step_days since "
                                                     "signup (lifecycle_journey's rows).")
    transitions: list[dict[str, Any]] = Field(description="The rows of stages where the "
                                                          "stage changed.")
    visits: list[JourneyVisit]


router = APIRouter()


_UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown customer at as_of (named in the detail and unknown_ids)."}}


@router.get("/customers/{customer_id}/profile", response_model=CustomerProfile,
            tags=["customers"], responses=_UNKNOWN)
def profile(now: Now, customer_id: CustomerId, as_of: AsOf = None) -> CustomerProfile:
    """Churn risk with reasons, value, segment, lifecycle, suggestions and an action."""
    return now.scorer.profile(now.data, customer_id, now.cutoff(as_of))[0]


@router.get("/customers/{customer_id}/recommendations",
            response_model=CustomerRecommendations, tags=["customers"], responses=_UNKNOWN)
def recommendations(now: Now, customer_id: CustomerId, as_of: AsOf = None,
                    k: Annotated[int, Query(ge=1, le=20)] = 5) -> CustomerRecommendations:
    """Next services and ``k`` barbers still working at ``as_of`` (503 without the
    recommendations model)."""
    return now.scorer.recommendations(now.data, customer_id, now.cutoff(as_of),
                                      k_barbers=k)


@router.post("/customers/batch-profile", response_model=BatchProfileResponse,
             tags=["customers"], responses=_UNKNOWN)
def batch_profile(now: Now, request: Annotated[BatchProfileRequest, Body()]) -> Any:
    """Profiles of 1 to 1000 customers, in request order (a repeated id at each of its
    positions)."""
    scorer, data = now.scorer, now.data
    ids = request.customer_ids
    stamp = now.cutoff(request.as_of)
    try:
        profiles = scorer.profile_batch(data, ids, stamp)
        return BatchProfileResponse(profiles=profiles, not_found=[])
    except UnknownCustomerError as exc:
        if not request.skip_unknown:
            raise
        missing = set(exc.missing)
        known = [i for i in ids if i not in missing]
        profiles = scorer.profile_batch(data, known, stamp) if known else []
        return BatchProfileResponse(
            profiles=profiles, not_found=list(dict.fromkeys(i for i in ids if i in missing)))


@router.get("/customer-segments", response_model=SegmentTable, tags=["population"])
def segments(now: Now, as_of: AsOf = None, by: SegmentKind = "rfm") -> dict[str, Any]:
    """Segment table: size, share, active customers, behaviour, mean churn risk and
    12-month value (``by=rfm|cluster`` answer 503 without the segments model)."""
    scorer, data = now.scorer, now.data
    stamp = now.cutoff(as_of)
    table = segment_summary(scorer, data, stamp, by=by)
    rows = table.reset_index().astype(object).where(table.reset_index().notna(), None)
    return {"as_of": scorer.snapshot(data, stamp).as_of.to_pydatetime(), "by": by,
            "active_customers": scorer.active_customers(data, stamp),
            "segments": rows.to_dict("records"),
            "unavailable": {f: r for f, r in scorer.unavailable.items()
                            if f in ("churn", "ltv")},
            "model_versions": scorer.versions()}


@router.get("/customers/{customer_id}/journey", response_model=CustomerJourney,
            tags=["customers"], responses=_UNKNOWN)
def journey(now: Now, customer_id: CustomerId, as_of: AsOf = None,
            step_days: Annotated[int, Query(ge=1, le=365)] = 30) -> dict[str, Any]:
    """Lifecycle stage every ``step_days`` since signup, transitions and visits."""
    return customer_journey(now.scorer, now.data, customer_id, now.cutoff(as_of),
                            step_days=step_days)


@router.get("/customer-success/metrics", response_model=SuccessMetrics, tags=["population"])
def success(now: Now, as_of: AsOf = None) -> SuccessMetrics:
    """Lifecycle counts, realised and predicted churn, value at risk, campaign effects."""
    return success_metrics(now.scorer, now.data, now.cutoff(as_of))
