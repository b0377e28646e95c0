"""``/admin``: operations on the running service, behind a bearer token."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from barberpro_ml.scoring.live import LiveScorer, ReloadAttempt
from barberpro_ml.service.errors import AdminDisabledError, AdminTokenError

__all__ = ["ADMIN_TOKEN_ENV", "admin_router"]

ADMIN_TOKEN_ENV = "BARBERPRO_ADMIN_TOKEN"
"""The environment variable holding the bearer token of the ``/admin`` routes."""

_bearer = HTTPBearer(auto_error=False, description=f"The value of {ADMIN_TOKEN_ENV}.")


def admin_router(token: str | None) -> APIRouter:
    """``/admin``: operations on the running service, behind a bearer token.

    Parameters
    ----------
    token
        The bearer token the routes require; None or empty: they answer 403 saying how to
        enable them.
    """

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
