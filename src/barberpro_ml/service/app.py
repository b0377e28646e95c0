"""The application factory: :func:`create_app`, ``/health``, the offline docs and the
middleware; the routes live in :mod:`barberpro_ml.service.routers`.

Errors are RFC 9457 problems (``application/problem+json``, :mod:`~barberpro_ml.service.problems`),
their status taken from the error's :attr:`~barberpro_ml.errors.BarberproError.http_status` in
one handler; FastAPI's request validation is a 422 problem listing the refused inputs in
``errors``; anything unexpected is a 500 (logged; the process keeps serving)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Any

import fastapi_offline
import mlflow
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from barberpro_ml.data import MarketplaceData
from barberpro_ml.definitions import Definitions
from barberpro_ml.scoring.live import LiveScorer, LiveStatus
from barberpro_ml.scoring.records import FamilyStatus, ModelRef
from barberpro_ml.scoring.scorer import CustomerScorer, SnapshotCacheInfo
from barberpro_ml.service.dependencies import Now
from barberpro_ml.service.evidence import RegisteredEvidence
from barberpro_ml.service.keys import KeyStore
from barberpro_ml.service.observability import (
    Observability,
    count_snapshot_cache,
    metrics_response,
    set_model_versions,
)
from barberpro_ml.service.problems import (
    BodyLimit,
    UtcJSONResponse,
    document_errors,
    install_handlers,
)
from barberpro_ml.service.routers import admin, analytics, api_management, customers, providers
from barberpro_ml.service.security import AUTH_RESPONSES, AuthMode, require
from barberpro_ml.service.versioning import CURRENT_PREFIX, DeprecationHeaders

__all__ = ["DOCS_STATIC", "MAX_BODY_BYTES", "Health", "create_app"]

MAX_BODY_BYTES = 256 * 1024
"""Default cap on a request body (413 above it): a batch of 1,000 ids is about 15 KB."""

DOCS_STATIC = "/static-docs"
"""Where the service serves the Swagger UI and ReDoc assets (no CDN)."""
_DOCS_ASSETS = FilePath(fastapi_offline.__file__).parent / "static"
log = logging.getLogger("barberpro_ml.service")


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
    actions: str = Field(description="Where the retention-offer decisions of the profiles "
                                     "come from: the uplift model served (barberpro-uplift "
                                     "@champion, loaded at start), or the pooled campaign "
                                     "effect rule and why no uplift model is served.")
    snapshot_cache: SnapshotCacheInfo = Field(
        description="This worker's snapshot cache (one snapshot per cut-off): its policy, "
                    "content, hits, misses and evictions since the models were loaded.")


def create_app(scorer: CustomerScorer | LiveScorer, data: MarketplaceData | None = None, *,
               default_as_of: object = None, warm: bool = True, auth: AuthMode = "keys",
               keys: KeyStore | None = None, tracking_uri: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES,
               cors_origins: tuple[str, ...] = (), middleware: bool = True) -> FastAPI:
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
    auth
        ``"keys"``: every route but ``/health`` and the docs needs an API key from ``keys``
        with the route's scope (401 without, 403 outside its scopes). ``"off"``: the customer,
        analytics and provider routes answer without a key; the admin and
        ``/api-management`` routes still need one (the command line allows ``off`` only on a
        loopback interface).
    keys
        The API keys (:class:`~barberpro_ml.service.keys.KeyStore`); required with
        ``auth="keys"``; without one, the routes that need a key answer 401.
    tracking_uri
        The registry the analytics routes read the forecast champion and the pricing
        evidence from (default: the current MLflow tracking URI when the app is made).
    max_body_bytes
        Largest request body accepted; a larger one is answered 413.
    cors_origins
        Origins allowed to call from a browser (CORS); none by default (CORS off).
    middleware
        False: the same routes without any middleware (no request ids, access logs,
        metrics, usage rows, deprecation headers, body cap or timing header), and only with
        ``auth="off"``: what ``benchmarks/bench_service.py`` compares the full service with
        to measure what the middleware, the keys and the limits cost. Not for serving.
    """
    if auth not in ("keys", "off"):
        raise ValueError(f"auth must be 'keys' or 'off', not {auth!r}")
    if not middleware and auth != "off":
        raise ValueError("create_app(middleware=False) is the bare app of the benchmark: it "
                         "needs auth='off' (no keys, no limits)")
    if auth == "keys" and keys is None:
        raise TypeError("create_app(auth='keys') needs keys=KeyStore(<database url>), or "
                        "auth='off' for the customer, analytics and provider routes")
    if isinstance(scorer, LiveScorer):
        if data is not None or default_as_of is not None:
            raise TypeError("create_app(live_scorer): the LiveScorer holds the data and the "
                            "default cut-off; pass neither")
        live = scorer
    else:
        if data is None:
            raise TypeError("create_app(scorer, data): the data to serve are missing")
        live = LiveScorer(scorer, data, default_as_of=default_as_of, warm=warm)
    started = datetime.now(UTC)
    # the scorer's cache events as Prometheus counters (carried over to swapped-in scorers)
    live.current.scorer.on_snapshot_cache = count_snapshot_cache
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
                    "metrics from the registered champion models, and business analytics "
                    "(KPIs, growth, competitive position) from the event data. Numbers are "
                    "computed per request from the event data at `as_of`.",
        docs_url=None, redoc_url=None, lifespan=lifespan,
        default_response_class=UtcJSONResponse,
    )
    app.state.auth = auth
    app.state.keys = keys
    app.state.started_at = started
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization"])
    app.state.live = live
    app.state.evidence = RegisteredEvidence(tracking_uri or mlflow.get_tracking_uri())
    _offline_docs(app)

    install_handlers(app, _log_crash)

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
                      data_loaded_at=now.data_loaded_at, live=live.status(now),
                      actions=scorer.action_source,
                      snapshot_cache=scorer.snapshot_cache_info())

    # every area under /v1, and once more at its seed path, deprecated (versioning.py)
    areas: tuple[tuple[APIRouter, list[Any]], ...] = (
        (customers.router, [Depends(require("customers:read", open_without_auth=True))]),
        (analytics.router, [Depends(require("analytics:read", open_without_auth=True))]),
        (providers.router, [Depends(require("providers:read", open_without_auth=True))]),
        (admin.router, [Depends(require("admin"))]),
        (api_management.router, []))
    for prefix, deprecated in ((CURRENT_PREFIX, None), ("", True)):
        for router, needs in areas:
            app.include_router(router, prefix=prefix, deprecated=deprecated,
                               responses=AUTH_RESPONSES, dependencies=needs)
    if middleware:
        app.add_middleware(DeprecationHeaders)
        app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
        app.add_middleware(Observability, scoring_prefixes=(f"{CURRENT_PREFIX}/customers/",
                                                            "/customers/"),
                           record_usage=None if keys is None else keys.record_usage,
                           usage_in_memory=keys is not None and keys.usage_flush_s > 0)
    set_model_versions(live.current.scorer.models)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus metrics (text format; summed over workers in multiprocess mode)."""
        set_model_versions(live.current.scorer.models)
        return metrics_response(request)
    document_errors(app, needs_models=[
        f"{prefix}{area}" for prefix in (CURRENT_PREFIX, "")
        for area in ("/customer", "/api/analytics", "/providers", "/admin")])

    return app


def _log_crash(request: Request, exc: Exception, *, expected: bool) -> None:
    if expected:  # a library error answered with a 5xx: the service works, a dependency not
        log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
    else:
        log.exception("unexpected error on %s", request.url.path, exc_info=exc)


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
