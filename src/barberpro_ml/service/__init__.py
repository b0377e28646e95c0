"""Stage after ``scoring`` and ``analytics``: the HTTP service (FastAPI) over the scoring API.

``create_app(scorer, data)`` serves the seed document's customer routes from a
:class:`~barberpro_ml.scoring.CustomerScorer` and a loaded
:class:`~barberpro_ml.data.MarketplaceData`; ``create_app(live)`` from a
:class:`~barberpro_ml.scoring.live.LiveScorer`, which swaps in a new verified champion or
refreshed event data while the service runs (a fixed scorer and data are wrapped in one that
never reloads). ``barberpro-ml serve`` runs it with uvicorn, following the registry; with
``--workers N``, N processes each build the app of :mod:`~barberpro_ml.service.worker` from
environment variables the command sets (keys, limits and usage shared through the database,
Prometheus samples through a fresh ``PROMETHEUS_MULTIPROC_DIR``).

Layout (FastAPI's "bigger applications"): :mod:`~barberpro_ml.service.app` (the factory, the
error handlers, ``/health``, the offline docs, the middleware),
:mod:`~barberpro_ml.service.dependencies` (the served models and data of a request, the
``as_of`` parameter), :mod:`~barberpro_ml.service.errors`, the caller's identity
(:mod:`~barberpro_ml.service.security`, :mod:`~barberpro_ml.service.keys`), and one router per
area in :mod:`~barberpro_ml.service.routers`: ``customers``, ``analytics``, ``providers``,
``api_management``, ``admin``.

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
``POST /admin/refresh``            reload the event data now (admin key), the attempt
``GET /api-management/security``   failed-auth counts, keys by last use (admin key)
``GET /api-management/versioning`` versions, deprecated paths, sunset dates (any key)
``GET /api-management/partnerships`` partners' limits and quota use (own key; all: admin)
``GET /api/analytics/...``         business KPIs, growth, competitive position
                                   (:mod:`~barberpro_ml.service.routers.analytics`)
=================================  ====================================================

Versions (:mod:`~barberpro_ml.service.versioning`): every route above lives under ``/v1``
(``/v1/customers/{id}/profile``, ``/v1/api/analytics/business-kpis``, ...); the unversioned
paths are deprecated aliases answering the same, with ``Deprecation``, ``Sunset`` and a
``Link`` to the successor, all from one table (``GET /v1/api-management/versioning``).
``/health`` and the docs are not versioned. The ``/v1`` OpenAPI document is checked against a
committed snapshot (:func:`~barberpro_ml.service.contract.breaking_changes`).

Swaps: every route takes the served models and data once, at the start of the request (the
``served_now`` dependency), so a request in flight finishes on what it started with while a
reload swaps in new ones; ``/health`` reports the data's last event (``data_end``, the data's
``as_of``), when the data and the models were loaded, each family's served version, and the
last reload attempts with their outcome and error (``live``).

Keys (:mod:`~barberpro_ml.service.keys`, :mod:`~barberpro_ml.service.security`): every route
but ``/health`` and the docs needs an API key, ``Authorization: Bearer bpk_<id>.<secret>``,
made by ``barberpro-ml keys create --name partner-x --scopes customers:read,analytics:read``
and kept hashed (scrypt, a salt per key) in the service's database (a SQLite file by default,
any SQLAlchemy URL such as PostgreSQL in production mode). Each router needs its scope
(``customers:read``, ``analytics:read``, ``providers:read``; ``admin`` for ``/admin`` and
``/api-management/security``, and it grants every other scope): 401 with
``WWW-Authenticate: Bearer`` without a valid key, 403 outside its scopes.
``create_app(..., auth="off")`` (``serve --auth off``, on a loopback interface only) opens
the customer, analytics and provider routes without a key. Request bodies above
``max_body_bytes`` are refused with 413; CORS is off unless ``cors_origins`` are given. Each
key has a token bucket (rate, burst) and an optional daily quota, kept in the same database
and taken atomically per request (correct across workers): over either, 429 with
``Retry-After``. Request ids, JSON logs and Prometheus ``/metrics``:
:mod:`~barberpro_ml.service.observability`.

Admin: ``POST /admin/refresh`` reloads the event data from their source and rebuilds the
default snapshot synchronously (the answer is the :class:`ReloadAttempt`; requests meanwhile
are served from the old data); it needs a key with the ``admin`` scope.

Every route takes an optional ``as_of`` (ISO 8601 date or time; naive means UTC, ``Z`` or an
offset is converted to naive UTC; default: the data's last event); answers write timestamps
in UTC with ``Z``. Errors are RFC 9457 problems (``application/problem+json``: ``type``,
``title``, ``status``, ``detail``, ``instance``, ``error`` <type>, and ``errors`` for request
validation; :mod:`~barberpro_ml.service.problems`), every status documented in the OpenAPI
document, their status taken from the error's
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

from barberpro_ml.service.app import DOCS_STATIC, MAX_BODY_BYTES, Health, create_app
from barberpro_ml.service.dependencies import Now, served_now
from barberpro_ml.service.errors import AuthenticationError, ScopeError
from barberpro_ml.service.keys import SCOPES, SERVICE_DB_ENV, ApiKey, IssuedKey, KeyStore
from barberpro_ml.service.routers.customers import (
    MAX_BATCH,
    BatchProfileRequest,
    BatchProfileResponse,
)

__all__ = ["DOCS_STATIC", "MAX_BATCH", "MAX_BODY_BYTES", "SCOPES", "SERVICE_DB_ENV", "ApiKey",
           "AuthenticationError", "BatchProfileRequest", "BatchProfileResponse", "Health",
           "IssuedKey", "KeyStore", "Now", "ScopeError", "create_app", "served_now"]
