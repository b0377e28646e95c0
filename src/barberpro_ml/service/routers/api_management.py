"""``/api-management``: the service reporting on itself (the seed's API management platform).
Every route needs an API key, whatever ``auth`` is; some need the ``admin`` scope."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, Field

from barberpro_ml.errors import BarberproError
from barberpro_ml.gates import ClaimVerdict
from barberpro_ml.scoring.live import LiveScorer
from barberpro_ml.service.evidence import RegisteredEvidence
from barberpro_ml.service.keys import ApiKey, KeyStore, Scope, UsageRow
from barberpro_ml.service.quality import QualityAssurance, read_quality
from barberpro_ml.service.security import AuthMode, require
from barberpro_ml.service.versioning import (
    API_VERSIONS,
    CURRENT_PREFIX,
    DEPRECATED_PATHS,
    Versioning,
    successor,
)

__all__ = ["ERROR_RATE_DEGRADED", "Dashboard", "Documentation", "FamilyHealth",
           "HealthReport", "PartnerUsage", "Partnerships", "QualityAssurance", "SecurityReport",
           "UsageAnalytics", "router"]

ERROR_RATE_DEGRADED = 0.01
"""Share of today's answers that are server errors (5xx) above which the health report says
``degraded`` (an operating threshold, not a measured figure)."""


class SecurityReport(BaseModel):
    """Authentication state of the service: no secret, no hash, no token."""

    auth: AuthMode = Field(description="'keys', or 'off' when the customer, analytics and "
                                       "provider routes answer without a key (loopback).")
    failed_auth: dict[str, int] = Field(
        description="Refused calls since the database was made, by reason: missing, "
                    "malformed, unknown, revoked, wrong_secret (401) and forbidden (403).")
    keys: list[ApiKey] = Field(description="Active keys, most recently used first.")
    revoked_keys: int


router = APIRouter(prefix="/api-management", tags=["api-management"])


@router.get("/versioning", response_model=Versioning, dependencies=[Depends(require(None))])
def versioning() -> Versioning:
    """The API's versions, the deprecated unversioned paths, their successors and sunset
    dates (any valid key)."""
    return Versioning(current=CURRENT_PREFIX, versions=list(API_VERSIONS),
                      deprecated=list(DEPRECATED_PATHS))


class PartnerUsage(BaseModel):
    """A partner (a named key holder): scopes, limits and today's use of the quota."""

    key_id: str
    name: str
    scopes: list[Scope]
    rate_per_s: float
    burst: int
    quota_per_day: int | None
    used_today: int = Field(description="Requests let through this UTC day (those refused "
                                        "with 401, 403 or 429 are not counted).")
    remaining_today: int | None = Field(description="Null without a quota.")
    last_used_at: datetime | None


class Partnerships(BaseModel):
    """``GET /v1/api-management/partnerships``."""

    partners: list[PartnerUsage] = Field(description="The caller's own key; every active key "
                                                     "for an admin key.")


@router.get("/partnerships", response_model=Partnerships,
            dependencies=[Depends(require(None))])
def partnerships(request: Request) -> Partnerships:
    """Partners, their scopes, limits and quota state: your own key, or all for admin."""
    store: KeyStore = request.app.state.keys
    caller: ApiKey = request.state.caller
    keys = store.list() if "admin" in caller.scopes else [store.get(caller.key_id)]
    used = store.used_today(k.key_id for k in keys)
    return Partnerships(partners=[PartnerUsage(
        key_id=k.key_id, name=k.name, scopes=k.scopes, rate_per_s=k.rate_per_s,
        burst=k.burst, quota_per_day=k.quota_per_day, used_today=used.get(k.key_id, 0),
        remaining_today=None if k.quota_per_day is None
        else max(0, k.quota_per_day - used.get(k.key_id, 0)),
        last_used_at=k.last_used_at) for k in keys])


@router.get("/security", response_model=SecurityReport,
            dependencies=[Depends(require("admin"))])
def security(request: Request) -> SecurityReport:
    """Failed-authentication counts by reason and the keys by last use (admin scope)."""
    store: KeyStore = request.app.state.keys
    every = store.list(include_revoked=True)
    return SecurityReport(auth=request.app.state.auth, failed_auth=store.failures(),
                          keys=[k for k in every if k.revoked_at is None],
                          revoked_keys=sum(k.revoked_at is not None for k in every))


# -- usage analytics ---------------------------------------------------------------------------
class UsageTotals(BaseModel):
    """Requests and how they were answered, over some usage rows."""

    requests: int
    client_errors: int = Field(description="Answers 4xx (refused keys, bad input, 404...).")
    server_errors: int = Field(description="Answers 5xx.")
    error_rate: float | None = Field(description="server_errors / requests; null without "
                                                 "requests.")
    mean_latency_ms: float | None = Field(description="Null without requests.")


class RouteUsage(UsageTotals):
    route: str


class KeyUsage(UsageTotals):
    key_id: str = Field(description="A key id, or 'anonymous'.")
    name: str | None = Field(description="The key holder; null for 'anonymous'.")


class UsageAnalytics(BaseModel):
    """``GET /v1/api-management/analytics``."""

    since: date = Field(description="First UTC day counted (today is the last).")
    days: int
    total: UsageTotals
    by_route: list[RouteUsage] = Field(description="Most requested first.")
    by_key: list[KeyUsage] = Field(description="Most requests first.")
    rows: list[UsageRow] = Field(description="Per UTC day, key, route and status class.")


def _totals(rows: Iterable[UsageRow]) -> UsageTotals:
    rows = list(rows)
    n = sum(r.requests for r in rows)
    latency = sum(r.latency_s for r in rows)
    return UsageTotals(
        requests=n, client_errors=sum(r.requests for r in rows if r.status_class == "4xx"),
        server_errors=(errors := sum(r.requests for r in rows if r.status_class == "5xx")),
        error_rate=errors / n if n else None,
        mean_latency_ms=round(latency / n * 1e3, 3) if n else None)


def _analytics(store: KeyStore, days: int, key_id: str | None) -> UsageAnalytics:
    rows = store.usage(days, key_id=key_id)
    names = {k.key_id: k.name for k in store.list(include_revoked=True)}
    by_route: dict[str, list[UsageRow]] = {}
    by_key: dict[str, list[UsageRow]] = {}
    for row in rows:
        by_route.setdefault(row.route, []).append(row)
        by_key.setdefault(row.key_id, []).append(row)
    routes = [RouteUsage(route=r, **_totals(g).model_dump()) for r, g in by_route.items()]
    keys = [KeyUsage(key_id=k, name=names.get(k), **_totals(g).model_dump())
            for k, g in by_key.items()]
    today = datetime.now(UTC).date()
    return UsageAnalytics(
        since=date.fromordinal(today.toordinal() - days + 1), days=days, total=_totals(rows),
        by_route=sorted(routes, key=lambda u: (-u.requests, u.route)),
        by_key=sorted(keys, key=lambda u: (-u.requests, u.key_id)), rows=rows)


Days = Annotated[int, Query(ge=1, le=366, description="UTC days counted, today included.")]


@router.get("/analytics", response_model=UsageAnalytics, dependencies=[Depends(require(None))])
def analytics(request: Request, days: Days = 1) -> UsageAnalytics:
    """Requests, errors and latency per route and per key over the last ``days`` UTC days,
    counted across every worker process in the service's database: your own key's, or
    every key's (and anonymous calls) for admin. A request is counted once answered, so
    this one is not in its own answer."""
    caller: ApiKey = request.state.caller
    return _analytics(request.app.state.keys, days,
                      None if "admin" in caller.scopes else caller.key_id)


# -- health report -----------------------------------------------------------------------------
class VerdictSummary(BaseModel):
    """One claim's verdict as bound to the served version by its gate."""

    check_id: str
    verdict: str
    blocking: bool
    claimed: float
    observed: float | None
    ci_low: float | None
    ci_high: float | None

    @classmethod
    def of(cls, v: ClaimVerdict) -> VerdictSummary:
        return cls(check_id=v.check_id, verdict=v.verdict, blocking=v.blocking,
                   claimed=v.claimed, observed=v.observed, ci_low=v.ci_low, ci_high=v.ci_high)


class FamilyHealth(BaseModel):
    """A model family: the version served, the registry's champion and its verification, and
    the gate verdicts bound to the served version."""

    family: str
    name: str = Field(description="Registered model name.")
    state: Literal["verified", "loaded", "unverified", "missing", "unknown"] = Field(
        description="As in /health for the customer models; for forecast and pricing (read "
                    "per request from the registry): verified or unverified champion, or "
                    "missing; 'unknown' when the registry could not be read.")
    served_version: str | None
    champion_version: str | None = Field(description="The registry's @champion now (it may "
                                                     "be newer than the one served until the "
                                                     "next reload).")
    verified: bool = Field(description="The @champion checks out: passing gate result bound "
                                       "to it and a promotion-log entry.")
    promoted_at: datetime | None
    problems: list[str] = Field(description="Why not served, not verified, or why the bound "
                                            "verdicts could not be read.")
    evidence_error: str | None = Field(
        default=None, description="Why the registry could not be read for this family (the "
                                  "tracking server down, the version deleted...).")
    verdicts: list[VerdictSummary]


class DataFreshness(BaseModel):
    """The event data the service answers from."""

    last_event: datetime = Field(description="The data's as_of: their last event.")
    age_hours: float = Field(description="Hours from the last event to now.")
    loaded_at: datetime
    customers: int


class ErrorRates(UsageTotals):
    """Today's answers (UTC), all keys and routes, all workers."""

    day: date


class HealthReport(BaseModel):
    """``GET /v1/api-management/health-report``."""

    status: Literal["ok", "degraded"]
    reasons: list[str] = Field(description="Why degraded (empty when ok).")
    alive: bool = Field(description="The process answers (always true in an answer).")
    checked_at: datetime
    started_at: datetime
    families: list[FamilyHealth]
    data: DataFreshness
    errors: ErrorRates


def _family(evidence: RegisteredEvidence, family: str, name: str, served: str | None,
            state: str | None, reason: str | None) -> FamilyHealth:
    try:
        found = evidence.gate_evidence(name, served)
    except (BarberproError, MlflowException, OSError) as exc:
        return FamilyHealth(family=family, name=name, state=state or "unknown",
                            served_version=served, champion_version=None, verified=False,
                            promoted_at=None, problems=[reason] if reason else [],
                            evidence_error=f"{type(exc).__name__}: {exc}", verdicts=[])
    check = found.verification
    if state is None:  # read from the registry per request: its champion is what is served
        state = "missing" if found.champion is None else \
            "verified" if check.verified else "unverified"
        served = found.champion if check.verified else None
    problems = ([reason] if reason else []) + \
        ([] if check.verified or found.champion is None else list(check.problems)) + \
        [p for p in found.problems if found.champion is not None or served is not None]
    return FamilyHealth(family=family, name=name, state=state,
                        served_version=served, champion_version=found.champion,
                        verified=check.verified, promoted_at=check.promoted_at,
                        problems=problems,
                        verdicts=[VerdictSummary.of(v) for v in found.verdicts])


def _health(request: Request) -> HealthReport:
    live: LiveScorer = request.app.state.live
    now = live.current
    evidence: RegisteredEvidence = request.app.state.evidence
    families = [_family(evidence, f, s.name, s.version if s.served else None, s.state, s.reason)
                for f, s in now.scorer.status.items()]
    families += [_family(evidence, f, name, None, None, None)
                 for f, name in (("forecast", evidence.forecast_model),
                                 ("pricing", evidence.pricing_model))]
    checked = datetime.now(UTC)
    today = request.app.state.keys.usage(1)
    errors = ErrorRates(day=checked.date(), **_totals(today).model_dump())
    reasons = [f"{f.family} ({f.name}) is {f.state}: " + "; ".join(f.problems)
               for f in families
               if f.state in ("unverified", "unknown")
               or (f.family in now.scorer.status and f.state == "missing")]
    reasons += [f"{f.family} ({f.name}): gate evidence not readable: {f.evidence_error}"
                for f in families if f.evidence_error and f.state != "unknown"]
    if errors.error_rate is not None and errors.error_rate > ERROR_RATE_DEGRADED:
        reasons.append(f"{errors.server_errors} of today's {errors.requests} answers were "
                       f"server errors ({errors.error_rate:.1%} > {ERROR_RATE_DEGRADED:.0%})")
    last = now.data.observation_end.to_pydatetime().replace(tzinfo=UTC)
    return HealthReport(
        status="degraded" if reasons else "ok", reasons=reasons, alive=True,
        checked_at=checked, started_at=request.app.state.started_at, families=families,
        data=DataFreshness(last_event=last, age_hours=round(
            (checked - last).total_seconds() / 3600, 2), loaded_at=now.data_loaded_at,
            customers=len(now.data.customers)),
        errors=errors)


@router.get("/health-report", response_model=HealthReport,
            dependencies=[Depends(require("admin"))])
def health_report(request: Request) -> HealthReport:
    """Liveness; per model family the version served, the registry's champion, its
    verification and the gate verdicts bound to it; the data's last event and age; today's
    error rate over all workers; ``degraded`` with the reasons when a customer model is not
    served, a champion does not verify, the registry cannot be read, or over 1% of today's
    answers are 5xx (admin)."""
    return _health(request)


# -- documentation -----------------------------------------------------------------------------
class Documentation(BaseModel):
    """``GET /v1/api-management/documentation``: where the API is described (all served by
    this service; no CDN)."""

    openapi: str = Field(description="The OpenAPI 3 document (JSON).")
    swagger_ui: str
    redoc: str
    assets: str = Field(description="Where the docs' JavaScript and CSS are served from.")
    versioning: Versioning


def _documentation(request: Request) -> Documentation:
    from barberpro_ml.service.app import DOCS_STATIC  # the app module imports this one

    root = request.scope.get("root_path", "")
    return Documentation(openapi=f"{root}{request.app.openapi_url}", swagger_ui=f"{root}/docs",
                         redoc=f"{root}/redoc", assets=f"{root}{DOCS_STATIC}",
                         versioning=versioning())


@router.get("/documentation", response_model=Documentation,
            dependencies=[Depends(require(None))])
def documentation(request: Request) -> Documentation:
    """Links to the OpenAPI document, Swagger UI and ReDoc (served offline), and the
    versioning table (any valid key)."""
    return _documentation(request)


@router.get("/quality-assurance", response_model=QualityAssurance,
            dependencies=[Depends(require(None))])
def quality_assurance() -> QualityAssurance:
    """The last test run's counts, duration, time and git commit, and coverage, as recorded by
    `make test` (the file named by BARBERPRO_QA_RECORD, else .barberpro/quality-assurance.json
    under the service's working directory); `unknown` when there is no record (any valid
    key)."""
    return read_quality()


# -- dashboard ---------------------------------------------------------------------------------
class FamilyLine(BaseModel):
    family: str
    state: str
    served_version: str | None
    failed_claims: int = Field(description="Bound verdicts 'fail' of the served version.")


class Dashboard(BaseModel):
    """``GET /v1/api-management/dashboard``: one screen of the reports above."""

    status: Literal["ok", "degraded"]
    reasons: list[str]
    families: list[FamilyLine]
    data_last_event: datetime
    data_age_hours: float
    today: UsageTotals
    top_routes: list[RouteUsage] = Field(description="Today's five most requested routes.")
    deprecated_path_requests: int = Field(description="Today's requests on the unversioned "
                                                      "(deprecated) paths.")
    active_keys: int
    revoked_keys: int
    failed_auth: int = Field(description="Refused authentications and authorisations since "
                                         "the database was made.")
    documentation: Documentation


@router.get("/dashboard", response_model=Dashboard, dependencies=[Depends(require("admin"))])
def dashboard(request: Request) -> Dashboard:
    """The health report, today's usage, keys and refusals in one answer (admin)."""
    store: KeyStore = request.app.state.keys
    health = _health(request)
    usage = _analytics(store, 1, None)
    every = store.list(include_revoked=True)
    return Dashboard(
        status=health.status, reasons=health.reasons,
        families=[FamilyLine(family=f.family, state=f.state, served_version=f.served_version,
                             failed_claims=sum(v.verdict == "fail" for v in f.verdicts))
                  for f in health.families],
        data_last_event=health.data.last_event, data_age_hours=health.data.age_hours,
        today=usage.total, top_routes=usage.by_route[:5],
        deprecated_path_requests=sum(r.requests for r in usage.by_route
                                     if not r.route.startswith(CURRENT_PREFIX + "/")
                                     and successor(r.route) is not None),
        active_keys=sum(k.revoked_at is None for k in every),
        revoked_keys=sum(k.revoked_at is not None for k in every),
        failed_auth=sum(store.failures().values()), documentation=_documentation(request))
