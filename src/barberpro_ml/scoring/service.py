"""The customer-intelligence HTTP service (FastAPI) over the scoring API.

``create_app(scorer, data)`` serves the seed document's customer routes from a
:class:`~barberpro_ml.scoring.CustomerScorer` and a loaded
:class:`~barberpro_ml.data.MarketplaceData`; ``create_app(live)`` from a
:class:`~barberpro_ml.scoring.live.LiveScorer`, which swaps in a new verified champion or
refreshed event data while the service runs (a fixed scorer and data are wrapped in one that
never reloads). ``barberpro-ml serve`` runs it with uvicorn, following the registry.

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
``POST /admin/refresh``            reload the event data now (bearer token), the attempt
=================================  ====================================================

Swaps: every route takes the served models and data once, at the start of the request (the
``served_now`` dependency), so a request in flight finishes on what it started with while a
reload swaps in new ones; ``/health`` reports the data's last event (``data_end``, the data's
``as_of``), when the data and the models were loaded, each family's served version, and the
last reload attempts with their outcome and error (``live``).

Admin: ``POST /admin/refresh`` reloads the event data from their source and rebuilds the
default snapshot synchronously (the answer is the :class:`ReloadAttempt`; requests meanwhile
are served from the old data). It needs ``Authorization: Bearer <token>`` with the token in
the environment variable ``BARBERPRO_ADMIN_TOKEN`` when the app was created; without one the
route answers 403 saying how to enable it, a missing or wrong token gets 401 with
``WWW-Authenticate: Bearer``.

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

import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, ClassVar

import fastapi_offline
from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.data import MarketplaceData
from barberpro_ml.definitions import Definitions
from barberpro_ml.errors import BarberproError
from barberpro_ml.scoring.insights import (
    SegmentKind,
    SuccessMetrics,
    customer_journey,
    segment_summary,
    success_metrics,
)
from barberpro_ml.scoring.live import LiveScorer, LiveStatus, ReloadAttempt, Served
from barberpro_ml.scoring.records import (
    CustomerProfile,
    CustomerRecommendations,
    FamilyStatus,
    ModelRef,
)
from barberpro_ml.scoring.scorer import CustomerScorer
from barberpro_ml.scoring.snapshot import UnknownCustomerError

__all__ = ["ADMIN_TOKEN_ENV", "DOCS_STATIC", "MAX_BATCH", "AdminDisabledError",
           "AdminTokenError", "BatchProfileRequest", "create_app", "served_now"]

MAX_BATCH = 1000
DOCS_STATIC = "/static-docs"
"""Where the service serves the Swagger UI and ReDoc assets (no CDN)."""
_DOCS_ASSETS = FilePath(fastapi_offline.__file__).parent / "static"
log = logging.getLogger("barberpro_ml.service")
ADMIN_TOKEN_ENV = "BARBERPRO_ADMIN_TOKEN"
"""The environment variable holding the bearer token of the ``/admin`` routes."""

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
    models: dict[str, ModelRef] = Field(description="Family -> the version served.")
    families: dict[str, FamilyStatus]
    definitions: Definitions
    customers: int
    active_customers: int
    data_start: datetime
    data_end: datetime = Field(description="The data's as_of: their last event.")
    default_as_of: datetime
    started_at: datetime
    data_loaded_at: datetime
    live: LiveStatus = Field(description="Registry polling and data refresh: intervals, the "
                                         "last attempts (time, outcome, error), and why a "
                                         "version the registry points to is not served.")


class AdminDisabledError(BarberproError):
    """The admin routes were called on a service started without an admin token."""

    http_status = 403


class AdminTokenError(BarberproError):
    """An admin route called without the right bearer token."""

    http_status = 401
    http_headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": "Bearer"}


_bearer = HTTPBearer(auto_error=False, description=f"The value of {ADMIN_TOKEN_ENV}.")


async def served_now(request: Request) -> Served:
    """The models and data a request answers from: taken once, at its start, so a swap
    never changes them under a request in flight. (``async``: taken on the event loop, with
    no trip through the thread pool; the lock is only ever held for an assignment.)"""
    live: LiveScorer = request.app.state.live
    return live.current


Now = Annotated[Served, Depends(served_now)]


def _error_response(exc: BarberproError) -> JSONResponse:
    """The JSON answer to a :class:`BarberproError`: its ``http_status``, the message."""
    content: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
    if isinstance(exc, UnknownCustomerError):
        content["unknown_ids"] = exc.missing[:100]
    return JSONResponse(status_code=exc.http_status, content=content,
                        headers=dict(exc.http_headers) or None)


def _admin_router(token: str | None) -> APIRouter:
    """``/admin``: operations on the running service, behind a bearer token."""

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                          Depends(_bearer)]) -> None:
        if not token:
            raise AdminDisabledError(
                f"the admin routes are disabled: no admin token is configured; set the "
                f"environment variable {ADMIN_TOKEN_ENV} to a secret when starting the service, "
                "then call with 'Authorization: Bearer <that secret>'")
        if credentials is None:
            raise AdminTokenError("missing bearer token: call with 'Authorization: Bearer "
                                  f"<token>', the value of {ADMIN_TOKEN_ENV}")
        if not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise AdminTokenError(f"wrong bearer token: it must equal {ADMIN_TOKEN_ENV} of the "
                                  "service")

    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(authorised)],
                       responses={401: {"description": "Missing or wrong bearer token."},
                                  403: {"description": f"Admin routes off: {ADMIN_TOKEN_ENV} "
                                                       "is not set."}})

    @router.post("/refresh", response_model=ReloadAttempt)
    def refresh(request: Request) -> ReloadAttempt:
        """Reload the event data from their source and swap them in (synchronous: the
        answer comes once the new data and their default snapshot are ready; requests are
        served from the old data meanwhile). An error answers with its status; the old data
        keep serving (``/health`` reports the attempt)."""
        live: LiveScorer = request.app.state.live
        return live.refresh_data(raise_errors=True)

    return router


def create_app(scorer: CustomerScorer | LiveScorer, data: MarketplaceData | None = None, *,
               default_as_of: object = None, warm: bool = True,
               admin_token: str | None = None) -> FastAPI:
    """The FastAPI application serving ``scorer`` over ``data``.

    Parameters
    ----------
    scorer
        Loaded models (:meth:`CustomerScorer.from_registry`), served as they are; or a
        :class:`~barberpro_ml.scoring.live.LiveScorer` holding models and data that it swaps
        while the app runs (its background reloads start and stop with the app).
    data
        The event tables the profiles are computed from (not with a ``LiveScorer``, which
        holds its own).
    default_as_of
        The cut-off when a request gives none (default: the data's last event; not with a
        ``LiveScorer``).
    warm
        Build the default cut-off's snapshot now, so the first request is as fast as the
        rest and a feature-schema mismatch stops the service at start, not at request time
        (a ``LiveScorer`` does so when it is made).
    admin_token
        Bearer token of the ``/admin`` routes; default: the environment variable
        :data:`ADMIN_TOKEN_ENV`; empty or unset: the admin routes answer 403.
    """
    if isinstance(scorer, LiveScorer):
        if data is not None or default_as_of is not None:
            raise TypeError("create_app(live_scorer): the LiveScorer holds the data and the "
                            "default cut-off; pass neither")
        live = scorer
    else:
        if data is None:
            raise TypeError("create_app(scorer, data): the data to serve are missing")
        live = LiveScorer(scorer, data, default_as_of=default_as_of, warm=warm)
    token = admin_token if admin_token is not None else os.environ.get(ADMIN_TOKEN_ENV)
    started = datetime.now(UTC)
    for family, reason in live.current.scorer.unavailable.items():
        log.warning("serving without the %s model: %s", family, reason)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        live.start()
        try:
            yield
        finally:
            live.stop()

    app = FastAPI(
        title="barberpro_ml customer intelligence",
        version="1",
        description="Profiles, recommendations, segments, journeys and customer-success "
                    "metrics from the registered champion models. Numbers are computed per "
                    "request from the event data at `as_of`.",
        docs_url=None, redoc_url=None, lifespan=lifespan,
    )
    app.state.live = live
    _offline_docs(app)
    app.include_router(_admin_router(token))

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
    def health(now: Now) -> Health:
        """Status, each model family's state (version served, or why not), the definitions,
        the data served (``active_customers`` at the default cut-off) and the reloads."""
        scorer, data = now.scorer, now.data
        start = data.customers["signup_at"].min()
        return Health(status="degraded" if scorer.unavailable else "ok", models=scorer.models,
                      families=scorer.status, definitions=scorer.definitions,
                      customers=len(data.customers),
                      active_customers=scorer.active_customers(data, now.default_as_of),
                      data_start=start.to_pydatetime(),
                      data_end=data.observation_end.to_pydatetime(),
                      default_as_of=now.default_as_of.to_pydatetime(), started_at=started,
                      data_loaded_at=now.data_loaded_at, live=live.status(now))

    @app.get("/customers/{customer_id}/profile", response_model=CustomerProfile,
             tags=["customers"])
    def profile(now: Now, customer_id: CustomerId, as_of: AsOf = None) -> CustomerProfile:
        """Churn risk with reasons, value, segment, lifecycle, suggestions and an action."""
        return now.scorer.profile(now.data, customer_id, now.cutoff(as_of))[0]

    @app.get("/customers/{customer_id}/recommendations",
             response_model=CustomerRecommendations, tags=["customers"])
    def recommendations(now: Now, customer_id: CustomerId, as_of: AsOf = None,
                        k: Annotated[int, Query(ge=1, le=20)] = 5) -> CustomerRecommendations:
        """Next services and ``k`` barbers still working at ``as_of`` (503 without the
        recommendations model)."""
        return now.scorer.recommendations(now.data, customer_id, now.cutoff(as_of),
                                          k_barbers=k)

    @app.post("/customers/batch-profile", response_model=BatchProfileResponse,
              tags=["customers"])
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
                return _error_response(exc)
            missing = set(exc.missing)
            known = [i for i in ids if i not in missing]
            profiles = scorer.profile_batch(data, known, stamp) if known else []
            return BatchProfileResponse(
                profiles=profiles, not_found=list(dict.fromkeys(i for i in ids if i in missing)))

    @app.get("/customer-segments", tags=["population"])
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

    @app.get("/customers/{customer_id}/journey", tags=["customers"])
    def journey(now: Now, customer_id: CustomerId, as_of: AsOf = None,
                step_days: Annotated[int, Query(ge=1, le=365)] = 30) -> dict[str, Any]:
        """Lifecycle stage every ``step_days`` since signup, transitions and visits."""
        return customer_journey(now.scorer, now.data, customer_id, now.cutoff(as_of),
                                step_days=step_days)

    @app.get("/customer-success/metrics", response_model=SuccessMetrics, tags=["population"])
    def success(now: Now, as_of: AsOf = None) -> SuccessMetrics:
        """Lifecycle counts, realised and predicted churn, value at risk, campaign effects."""
        return success_metrics(now.scorer, now.data, now.cutoff(as_of))

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
