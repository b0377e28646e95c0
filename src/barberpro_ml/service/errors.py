"""The service's own errors and the JSON answer to a library error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi.responses import JSONResponse

from barberpro_ml.errors import BarberproError
from barberpro_ml.scoring.snapshot import UnknownCustomerError

__all__ = ["AuthenticationError", "ScopeError", "error_response"]


class AuthenticationError(BarberproError):
    """A route that needs an API key called without one, or with one that is malformed,
    unknown, revoked or wrong."""

    http_status = 401
    http_headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": "Bearer"}


class ScopeError(BarberproError):
    """A valid API key called a route outside its scopes."""

    http_status = 403


def error_response(exc: BarberproError) -> JSONResponse:
    """The JSON answer to a :class:`BarberproError`: its ``http_status``, the message."""
    content: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
    if isinstance(exc, UnknownCustomerError):
        content["unknown_ids"] = exc.missing[:100]
    return JSONResponse(status_code=exc.http_status, content=content,
                        headers=dict(exc.http_headers) or None)
