"""``/api-management``: the service reporting on itself (the seed's API management platform).
Every route needs an API key, whatever ``auth`` is; some need the ``admin`` scope."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from barberpro_ml.service.keys import ApiKey, KeyStore, Scope
from barberpro_ml.service.security import AuthMode, require
from barberpro_ml.service.versioning import (
    API_VERSIONS,
    CURRENT_PREFIX,
    DEPRECATED_PATHS,
    Versioning,
)

__all__ = ["PartnerUsage", "Partnerships", "SecurityReport", "router"]


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
