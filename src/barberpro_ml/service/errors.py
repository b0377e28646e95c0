"""The service's own errors and the JSON answer to a library error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi.responses import JSONResponse

from barberpro_ml.errors import BarberproError
from barberpro_ml.scoring.snapshot import UnknownCustomerError

__all__ = ["AdminDisabledError", "AdminTokenError", "error_response"]


class AdminDisabledError(BarberproError):
    """The admin routes were called on a service started without an admin token."""

    http_status = 403


class AdminTokenError(BarberproError):
    """An admin route called without the right bearer token."""

    http_status = 401
    http_headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": "Bearer"}


def error_response(exc: BarberproError) -> JSONResponse:
    """The JSON answer to a :class:`BarberproError`: its ``http_status``, the message."""
    content: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
    if isinstance(exc, UnknownCustomerError):
        content["unknown_ids"] = exc.missing[:100]
    return JSONResponse(status_code=exc.http_status, content=content,
                        headers=dict(exc.http_headers) or None)
