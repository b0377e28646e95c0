"""The customer-intelligence HTTP service (FastAPI) over the scoring API.

``create_app(scorer, data)`` serves the seed document's customer routes from a
:class:`~barberpro_ml.scoring.CustomerScorer` and a loaded
:class:`~barberpro_ml.data.MarketplaceData`; ``barberpro-ml serve`` runs it with uvicorn.

=================================  ====================================================
Route                              Returns
=================================  ====================================================
``GET /health``                    status, the loaded model versions, the data's extent
``GET /customers/{id}/profile``    :class:`CustomerProfile`
``GET /customers/{id}/recommendations``  next services and barbers
``POST /customers/batch-profile``  profiles of up to ``MAX_BATCH`` customers
``GET /customer-segments``         the segment table (``by=rfm|cluster|lifecycle``)
``GET /customers/{id}/journey``    lifecycle stage over time, transitions, visits
``GET /customer-success/metrics``  :class:`SuccessMetrics` (incl. the seed's 46.3% claim)
=================================  ====================================================

Every route takes an optional ``as_of`` (ISO date or time, naive UTC; default: the data's last
event). Errors are JSON ``{"detail": ...}``: 422 for invalid input (FastAPI's validation names
the field; ours names the problem: an ``as_of`` after the data, a time zone, an oversized batch),
404 for an unknown customer (naming the ids), 500 for anything unexpected (logged; the process
keeps serving). OpenAPI docs at ``/docs``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features._common import to_as_of
from barberpro_ml.scoring.insights import (
    SegmentKind,
    SuccessMetrics,
    customer_journey,
    segment_summary,
    success_metrics,
)
from barberpro_ml.scoring.records import CustomerProfile, CustomerRecommendations, ModelRef
from barberpro_ml.scoring.scorer import CustomerScorer, FeatureSchemaError
from barberpro_ml.scoring.snapshot import UnknownCustomerError

__all__ = ["MAX_BATCH", "BatchProfileRequest", "create_app"]

MAX_BATCH = 1000
log = logging.getLogger("barberpro_ml.service")

CustomerId = Annotated[int, Path(ge=1, le=2**62, description="The customer's id.")]
AsOf = Annotated[datetime | None, Query(
    description="Cut-off (ISO 8601, naive UTC); default: the data's last event.")]


class BatchProfileRequest(BaseModel):
    """Customers to profile in one call."""

    model_config = ConfigDict(extra="forbid")

    customer_ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} customer ids.")
    as_of: datetime | None = None
    skip_unknown: bool = Field(False, description="Profile the known ids and list the unknown "
                                                  "ones instead of answering 404.")


class BatchProfileResponse(BaseModel):
    profiles: list[CustomerProfile]
    not_found: list[int]


class Health(BaseModel):
    status: str
    models: dict[str, ModelRef]
    customers: int
    data_start: datetime
    data_end: datetime
    default_as_of: datetime
    started_at: datetime


def _not_found(exc: UnknownCustomerError) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(exc),
                                                  "unknown_ids": exc.missing[:100]})


def create_app(scorer: CustomerScorer, data: MarketplaceData, *,
               default_as_of: object = None, warm: bool = True) -> FastAPI:
    """The FastAPI application serving ``scorer`` over ``data``.

    Parameters
    ----------
    scorer
        Loaded models (:meth:`CustomerScorer.from_registry`).
    data
        The event tables the profiles are computed from.
    default_as_of
        The cut-off when a request gives none (default: the data's last event).
    warm
        Build the default cut-off's snapshot now, so the first request is as fast as the
        rest and a feature-schema mismatch stops the service at start, not at request time.
    """
    default = data.observation_end if default_as_of is None else to_as_of(default_as_of)
    started = datetime.now()
    if warm:
        scorer.snapshot(data, default)

    app = FastAPI(
        title="barberpro_ml customer intelligence",
        version="1",
        description="Profiles, recommendations, segments, journeys and customer-success "
                    "metrics from the registered champion models. Numbers are computed per "
                    "request from the event data at `as_of`.",
    )

    def when(as_of: datetime | None) -> pd.Timestamp:
        return default if as_of is None else pd.Timestamp(as_of)

    @app.exception_handler(UnknownCustomerError)
    async def unknown(_: Request, exc: UnknownCustomerError) -> JSONResponse:
        return _not_found(exc)

    @app.exception_handler(FeatureSchemaError)
    async def mismatch(_: Request, exc: FeatureSchemaError) -> JSONResponse:
        log.error("feature schema mismatch: %s", exc)
        return JSONResponse(status_code=500, content={"detail": str(exc)})

    @app.exception_handler(ValueError)
    async def invalid(_: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(status_code=500, content={
            "detail": f"internal error ({type(exc).__name__}); the service keeps running"})

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Status, the registered model versions loaded, and the data served."""
        start = data.customers["signup_at"].min()
        return Health(status="ok", models=scorer.models, customers=len(data.customers),
                      data_start=start.to_pydatetime(),
                      data_end=data.observation_end.to_pydatetime(),
                      default_as_of=default.to_pydatetime(), started_at=started)

    @app.get("/customers/{customer_id}/profile", response_model=CustomerProfile,
             tags=["customers"])
    def profile(customer_id: CustomerId, as_of: AsOf = None) -> CustomerProfile:
        """Churn risk with reasons, value, segment, lifecycle, suggestions and an action."""
        return scorer.profile(data, customer_id, when(as_of))[0]

    @app.get("/customers/{customer_id}/recommendations",
             response_model=CustomerRecommendations, tags=["customers"])
    def recommendations(customer_id: CustomerId, as_of: AsOf = None,
                        k: Annotated[int, Query(ge=1, le=20)] = 5) -> CustomerRecommendations:
        """Next services and ``k`` barbers still working at ``as_of``."""
        return scorer.recommendations(data, customer_id, when(as_of), k_barbers=k)

    @app.post("/customers/batch-profile", response_model=BatchProfileResponse,
              tags=["customers"])
    def batch_profile(request: Annotated[BatchProfileRequest, Body()]) -> Any:
        """Profiles of 1 to 1000 customers, in request order."""
        ids = list(dict.fromkeys(request.customer_ids))
        stamp = when(request.as_of)
        try:
            profiles = scorer.profile_batch(data, ids, stamp)
            return BatchProfileResponse(profiles=profiles, not_found=[])
        except UnknownCustomerError as exc:
            if not request.skip_unknown:
                return _not_found(exc)
            missing = set(exc.missing)
            known = [i for i in ids if i not in missing]
            profiles = scorer.profile_batch(data, known, stamp) if known else []
            return BatchProfileResponse(profiles=profiles,
                                        not_found=[i for i in ids if i in missing])

    @app.get("/customer-segments", tags=["population"])
    def segments(as_of: AsOf = None, by: SegmentKind = "rfm") -> dict[str, Any]:
        """Segment table: size, share, behaviour, mean churn risk and 12-month value."""
        table = segment_summary(scorer, data, when(as_of), by=by)
        rows = table.reset_index().astype(object).where(table.reset_index().notna(), None)
        return {"as_of": when(as_of).to_pydatetime(), "by": by,
                "segments": rows.to_dict("records"), "model_versions": scorer.versions()}

    @app.get("/customers/{customer_id}/journey", tags=["customers"])
    def journey(customer_id: CustomerId, as_of: AsOf = None,
                step_days: Annotated[int, Query(ge=1, le=365)] = 30) -> dict[str, Any]:
        """Lifecycle stage every ``step_days`` since signup, transitions and visits."""
        return customer_journey(scorer, data, customer_id, when(as_of), step_days=step_days)

    @app.get("/customer-success/metrics", response_model=SuccessMetrics, tags=["population"])
    def success(as_of: AsOf = None) -> SuccessMetrics:
        """Lifecycle counts, realised and predicted churn, value at risk, campaign effects."""
        return success_metrics(scorer, data, when(as_of))

    @app.middleware("http")
    async def timing(request: Request, call_next: Any) -> Any:
        start = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Process-Time-Ms"] = f"{(time.perf_counter() - start) * 1e3:.2f}"
        return response

    return app
