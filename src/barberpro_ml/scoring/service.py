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

Every route takes an optional ``as_of`` (ISO 8601 date or time; naive means UTC, ``Z`` or an
offset is converted to naive UTC; default: the data's last event). Errors are JSON
``{"detail": ..., "error": <type>}``, their status taken from the error's
:attr:`~barberpro_ml.errors.BarberproError.http_status` in one handler: 422 for invalid input
(FastAPI's validation names the field; ours names the problem: an ``as_of`` after the data or
before the first signup, an oversized batch), 404 for an unknown customer (naming the ids, also
in ``unknown_ids``), 503 for a route that needs a model family that is not served (naming it and
why) or a model the data do not fit, 500 for anything unexpected (a bug: logged; the process
keeps serving).

Degraded service: the app serves whatever families the scorer has. ``/health`` lists each
family's state (``verified`` version, ``missing`` or ``unverified`` with the reason); profiles
carry null fields with the reason for a missing family; only the routes that cannot answer
without one refuse with 503 (recommendations without recs, segment tables by RFM segment or
cluster without segments).

OpenAPI docs at ``/docs`` (Swagger UI) and ``/redoc``, their scripts and styles served by the
service itself (``/static-docs``, from the ``fastapi-offline`` package): they work without
internet access.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

import fastapi_offline
import pandas as pd
from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.data import MarketplaceData
from barberpro_ml.definitions import Definitions
from barberpro_ml.errors import BarberproError
from barberpro_ml.features._common import to_as_of
from barberpro_ml.scoring.insights import (
    SegmentKind,
    SuccessMetrics,
    customer_journey,
    segment_summary,
    success_metrics,
)
from barberpro_ml.scoring.records import (
    CustomerProfile,
    CustomerRecommendations,
    FamilyStatus,
    ModelRef,
)
from barberpro_ml.scoring.scorer import CustomerScorer
from barberpro_ml.scoring.snapshot import UnknownCustomerError

__all__ = ["DOCS_STATIC", "MAX_BATCH", "BatchProfileRequest", "create_app"]

MAX_BATCH = 1000
DOCS_STATIC = "/static-docs"
"""Where the service serves the Swagger UI and ReDoc assets (no CDN)."""
_DOCS_ASSETS = FilePath(fastapi_offline.__file__).parent / "static"
log = logging.getLogger("barberpro_ml.service")

CustomerId = Annotated[int, Path(ge=1, le=2**62, description="The customer's id.")]
AsOf = Annotated[datetime | None, Query(
    description="Cut-off (ISO 8601, naive UTC); default: the data's last event.")]


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


class Health(BaseModel):
    """``status``: ``ok`` when every family is served, ``degraded`` otherwise."""

    status: str
    models: dict[str, ModelRef]
    families: dict[str, FamilyStatus]
    definitions: Definitions
    customers: int
    active_customers: int
    data_start: datetime
    data_end: datetime
    default_as_of: datetime
    started_at: datetime


def _error_response(exc: BarberproError) -> JSONResponse:
    """The JSON answer to a :class:`BarberproError`: its ``http_status``, the message."""
    content: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
    if isinstance(exc, UnknownCustomerError):
        content["unknown_ids"] = exc.missing[:100]
    return JSONResponse(status_code=exc.http_status, content=content)


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
    default = (data.observation_end if default_as_of is None
               else to_as_of(default_as_of, "default_as_of", to_utc=True))
    started = datetime.now()
    if warm:
        scorer.snapshot(data, default)
    for family, reason in scorer.unavailable.items():
        log.warning("serving without the %s model: %s", family, reason)

    app = FastAPI(
        title="barberpro_ml customer intelligence",
        version="1",
        description="Profiles, recommendations, segments, journeys and customer-success "
                    "metrics from the registered champion models. Numbers are computed per "
                    "request from the event data at `as_of`.",
        docs_url=None, redoc_url=None,
    )
    _offline_docs(app)

    def when(as_of: datetime | None) -> pd.Timestamp:
        return default if as_of is None else to_as_of(as_of, to_utc=True)

    @app.exception_handler(BarberproError)
    async def refused(request: Request, exc: BarberproError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
        return _error_response(exc)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(status_code=500, content={
            "detail": f"internal error ({type(exc).__name__}); the service keeps running"})

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Status, each model family's state (version served, or why not), the definitions
        and the data served (``active_customers`` at the default cut-off)."""
        start = data.customers["signup_at"].min()
        return Health(status="degraded" if scorer.unavailable else "ok", models=scorer.models,
                      families=scorer.status, definitions=scorer.definitions,
                      customers=len(data.customers),
                      active_customers=scorer.active_customers(data, default),
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
        """Next services and ``k`` barbers still working at ``as_of`` (503 without the
        recommendations model)."""
        return scorer.recommendations(data, customer_id, when(as_of), k_barbers=k)

    @app.post("/customers/batch-profile", response_model=BatchProfileResponse,
              tags=["customers"])
    def batch_profile(request: Annotated[BatchProfileRequest, Body()]) -> Any:
        """Profiles of 1 to 1000 customers, in request order (a repeated id at each of its
        positions)."""
        ids = request.customer_ids
        stamp = when(request.as_of)
        try:
            profiles = scorer.profile_batch(data, ids, stamp)
            return BatchProfileResponse(profiles=profiles, not_found=[])
        except UnknownCustomerError as exc:
            if not request.skip_unknown:
                return _error_response(exc)
            missing = set(exc.missing)
            known = [i for i in ids if i not in missing]
            profiles = scorer.profile_batch(data, known, stamp) if known else []
            return BatchProfileResponse(
                profiles=profiles, not_found=list(dict.fromkeys(i for i in ids if i in missing)))

    @app.get("/customer-segments", tags=["population"])
    def segments(as_of: AsOf = None, by: SegmentKind = "rfm") -> dict[str, Any]:
        """Segment table: size, share, active customers, behaviour, mean churn risk and
        12-month value (``by=rfm|cluster`` answer 503 without the segments model)."""
        stamp = when(as_of)
        table = segment_summary(scorer, data, stamp, by=by)
        rows = table.reset_index().astype(object).where(table.reset_index().notna(), None)
        return {"as_of": scorer.snapshot(data, stamp).as_of.to_pydatetime(), "by": by,
                "active_customers": scorer.active_customers(data, stamp),
                "segments": rows.to_dict("records"),
                "unavailable": {f: r for f, r in scorer.unavailable.items()
                                if f in ("churn", "ltv")},
                "model_versions": scorer.versions()}

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


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` with their assets served locally (FastAPI's documented recipe
    for self-hosting the docs' JavaScript and CSS; the files ship with ``fastapi-offline``)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=_DOCS_ASSETS), name="static-docs")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon.png")

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png", with_google_fonts=False)
