"""``/api-management``: the service reporting on itself (the seed's API management platform).
Every route needs an API key, whatever ``auth`` is; some need the ``admin`` scope."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from barberpro_ml.service.keys import ApiKey, KeyStore
from barberpro_ml.service.security import AuthMode, require
from barberpro_ml.service.versioning import (
    API_VERSIONS,
    CURRENT_PREFIX,
    DEPRECATED_PATHS,
    Versioning,
)

__all__ = ["SecurityReport", "router"]


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


@router.get("/security", response_model=SecurityReport,
            dependencies=[Depends(require("admin"))])
def security(request: Request) -> SecurityReport:
    """Failed-authentication counts by reason and the keys by last use (admin scope)."""
    store: KeyStore = request.app.state.keys
    every = store.list(include_revoked=True)
    return SecurityReport(auth=request.app.state.auth, failed_auth=store.failures(),
                          keys=[k for k in every if k.revoked_at is None],
                          revoked_keys=sum(k.revoked_at is not None for k in every))
