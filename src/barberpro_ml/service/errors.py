"""The service's own errors (answered as problems by :mod:`~barberpro_ml.service.problems`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from barberpro_ml.errors import BarberproError

__all__ = ["AuthenticationError", "RateLimitedError", "ScopeError"]


class AuthenticationError(BarberproError):
    """A route that needs an API key called without one, or with one that is malformed,
    unknown, revoked or wrong."""

    http_status = 401
    http_headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": "Bearer"}


class ScopeError(BarberproError):
    """A valid API key called a route outside its scopes."""

    http_status = 403


class RateLimitedError(BarberproError):
    """A key over its request rate or its daily quota (answered with ``Retry-After``)."""

    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
