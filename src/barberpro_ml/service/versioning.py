"""API versions and the deprecated unversioned paths, from one table.

Every route of the API lives under ``/v1``. The seed's unversioned paths (``/customers/...``,
``/api/analytics/...``, ...) still answer, the same as their ``/v1`` successor, with
``Deprecation: @<unix seconds>`` (RFC 9745), ``Sunset: <HTTP-date>`` (RFC 8594) and
``Link: <successor>; rel="successor-version"`` on every answer, errors included; they are
marked ``deprecated`` in the OpenAPI document. :data:`DEPRECATED_PATHS` is the one table the
headers, the OpenAPI flags and ``GET /v1/api-management/versioning`` are made from.
``/health``, ``/metrics``, the docs and the OpenAPI document are not part of the versioned API.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.utils import format_datetime

from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_VERSIONS", "CURRENT_PREFIX", "DEPRECATED_PATHS", "ApiVersion",
           "DeprecatedPath", "DeprecationHeaders", "Versioning", "successor"]

CURRENT_PREFIX = "/v1"
"""Where the current version of every route lives."""


class ApiVersion(BaseModel):
    """A version of the API."""

    version: str
    prefix: str
    status: str = Field(description="'current', 'deprecated' or 'retired'.")
    released: date


class DeprecatedPath(BaseModel):
    """Unversioned paths starting with ``prefix`` answer as ``successor`` + the rest, until
    ``sunset``."""

    prefix: str
    successor: str
    deprecated_since: date
    sunset: date


API_VERSIONS: tuple[ApiVersion, ...] = (
    ApiVersion(version="v1", prefix=CURRENT_PREFIX, status="current",
               released=date(2026, 12, 7)),
)
_SINCE, _SUNSET = date(2026, 12, 7), date(2027, 6, 30)  # six months' notice
DEPRECATED_PATHS: tuple[DeprecatedPath, ...] = tuple(
    DeprecatedPath(prefix=p, successor=CURRENT_PREFIX + p, deprecated_since=_SINCE,
                   sunset=_SUNSET)
    for p in ("/customers", "/customer-segments", "/customer-success", "/api/analytics",
              "/providers", "/admin", "/api-management"))
"""The seed's unversioned paths, each answering as its ``/v1`` successor until its sunset."""


class Versioning(BaseModel):
    """``GET /v1/api-management/versioning``."""

    current: str
    versions: list[ApiVersion]
    deprecated: list[DeprecatedPath] = Field(description="Unversioned path prefixes, their "
                                                         "successors and sunset dates.")


def successor(path: str) -> tuple[DeprecatedPath, str] | None:
    """The table's row for a deprecated ``path`` and the path of its successor, else None."""
    for row in DEPRECATED_PATHS:
        if path == row.prefix or path.startswith(row.prefix + "/"):
            return row, row.successor + path[len(row.prefix):]
    return None


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


class DeprecationHeaders:
    """ASGI middleware adding ``Deprecation``, ``Sunset`` and ``Link`` to every answer on a
    deprecated path (a prefix test per request; nothing else is touched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = successor(scope["path"]) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        row, target = found
        query = scope.get("query_string", b"").decode("latin-1")
        link = f'<{target}{"?" + query if query else ""}>; rel="successor-version", ' \
               f'<{CURRENT_PREFIX}/api-management/versioning>; rel="deprecation"'
        sunset = datetime(row.sunset.year, row.sunset.month, row.sunset.day, 23, 59, 59,
                          tzinfo=UTC)
        extra = [(b"deprecation", f"@{_epoch(row.deprecated_since)}".encode()),
                 (b"sunset", format_datetime(sunset, usegmt=True).encode()),
                 (b"link", link.encode("latin-1"))]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
