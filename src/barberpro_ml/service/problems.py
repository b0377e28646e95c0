"""One error schema for every error, documented on every route, and timestamps with ``Z``.

Every error answer is an RFC 9457 problem, ``application/problem+json``::

    {"type": "urn:barberpro-ml:error:UnknownCustomerError", "title": "Not Found",
     "status": 404, "detail": "unknown customer_id: 987654321 ...",
     "instance": "/v1/customers/987654321/profile", "error": "UnknownCustomerError"}

with ``errors`` (each ``loc``, ``msg``, ``type``) for request validation (FastAPI's own 422 and
ours alike) and ``unknown_ids`` for unknown customers. :func:`document_errors` rewrites the
OpenAPI document once, so that every operation lists every status it can answer with that
schema: 401/403 where a key is checked, 404 where the route names it, 413 on bodies, 422 where
there is input, 503 where served models or data are needed, 500 everywhere.

Timestamps: the data contract's timestamps are naive UTC; answers write them with ``Z``
(:class:`UtcJSONResponse`), as the ``date-time`` format of the OpenAPI document requires.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from barberpro_ml.errors import BarberproError
from barberpro_ml.scoring.snapshot import UnknownCustomerError
from barberpro_ml.service.errors import RateLimitedError

__all__ = ["PROBLEM_MEDIA_TYPE", "BodyLimit", "Problem", "UtcJSONResponse", "ValidationItem",
           "document_errors", "problem_response"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_NAIVE_TIMESTAMP = re.compile(rb'"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)"')


class UtcJSONResponse(JSONResponse):
    """JSON with the naive UTC timestamps written with ``Z`` (a JSON string that is exactly
    an ISO 8601 date-time without offset; one regular-expression pass over the body)."""

    def render(self, content: Any) -> bytes:
        return _NAIVE_TIMESTAMP.sub(rb'"\1Z"', super().render(content))


class ValidationItem(BaseModel):
    """One refused input: where (``["query", "as_of"]``), what is wrong, the error type."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details)."""

    type: str = Field(description="urn:barberpro-ml:error:<error>, or about:blank.")
    title: str = Field(description="The HTTP status phrase.")
    status: int
    detail: str = Field(description="What was wrong, where, and what to do.")
    instance: str = Field(description="The request path.")
    error: str = Field(description="The error's type (UnknownCustomerError, ...).")
    errors: list[ValidationItem] | None = Field(
        None, description="Refused inputs, for 422 request validation.")
    unknown_ids: list[int] | None = Field(None, description="For 404 on unknown customers.")


def problem_response(status: int, detail: str, error: str, instance: str, *,
                     errors: Sequence[ValidationItem] | None = None,
                     unknown_ids: Sequence[int] | None = None,
                     headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The ``application/problem+json`` answer."""
    body = Problem(type=f"urn:barberpro-ml:error:{error}" if error else "about:blank",
                   title=HTTPStatus(status).phrase, status=status, detail=detail,
                   instance=instance, error=error,
                   errors=list(errors) if errors is not None else None,
                   unknown_ids=list(unknown_ids) if unknown_ids is not None else None)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        headers=dict(headers) if headers else None,
                        media_type=PROBLEM_MEDIA_TYPE)


def library_problem(exc: BarberproError, instance: str) -> JSONResponse:
    """The problem answer to a library error: its ``http_status`` and message."""
    unknown = exc.missing[:100] if isinstance(exc, UnknownCustomerError) else None
    headers = dict(exc.http_headers)
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(int(exc.retry_after))
    return problem_response(exc.http_status, str(exc), type(exc).__name__, instance,
                            unknown_ids=unknown, headers=headers)


def validation_problem(exc: RequestValidationError, instance: str) -> JSONResponse:
    """FastAPI's request validation (and ours, raised the same way) as one problem."""
    items = [ValidationItem(loc=[str(p) if not isinstance(p, int) else p
                                 for p in e.get("loc", ())],
                            msg=str(e.get("msg", "")), type=str(e.get("type", "")))
             for e in jsonable_encoder(exc.errors())]
    detail = "; ".join(f"{'.'.join(map(str, i.loc))}: {i.msg}" for i in items) \
        or "invalid request"
    return problem_response(422, detail, "RequestValidationError", instance, errors=items)


def http_problem(exc: HTTPException, instance: str) -> JSONResponse:
    """Starlette's own errors (no such route, method not allowed, body too large)."""
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(exc.status_code, detail, "", instance, headers=exc.headers)


def install_handlers(app: FastAPI, on_crash: Any) -> None:
    """Every error answered as a problem; ``on_crash(request, exc)`` logs the unexpected."""

    @app.exception_handler(BarberproError)
    async def refused(request: Request, exc: BarberproError) -> JSONResponse:
        if exc.http_status >= 500:
            on_crash(request, exc, expected=True)
        return library_problem(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(exc, request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return http_problem(exc, request.url.path)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        on_crash(request, exc, expected=False)
        return problem_response(500, f"internal error ({type(exc).__name__}); the service "
                                     "keeps running", "InternalError", request.url.path)


_DESCRIPTIONS = {
    "401": "No API key, or a malformed, unknown, revoked or wrong one.",
    "403": "The API key lacks the scope this route needs.",
    "404": "Something the request names does not exist.",
    "429": "The API key is over its rate or daily quota (Retry-After says when to retry).",
    "413": "The request body is larger than the service accepts.",
    "422": "Invalid input: the problem names each refused value (errors).",
    "500": "Unexpected error (a bug, logged); the service keeps serving.",
    "503": "A model family or data this route needs is not served (the detail says which "
           "and why).",
}


def document_errors(app: FastAPI, *, needs_models: Sequence[str]) -> None:
    """Make ``app.openapi()`` document every error status of every operation with
    :class:`Problem` as ``application/problem+json``.

    Parameters
    ----------
    needs_models
        Path prefixes whose routes answer 503 when a model family or the data are missing.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem.pop("$defs", {}))
        schemas["Problem"] = problem
        ref = {"$ref": "#/components/schemas/Problem"}
        for path, operations in spec.get("paths", {}).items():
            for op in operations.values():
                responses = op.setdefault("responses", {})
                statuses = {s for s in responses if s.startswith(("4", "5"))} | {"500"}
                if op.get("security"):
                    statuses |= {"401", "403", "429"}
                if op.get("parameters") or op.get("requestBody"):
                    statuses.add("422")
                if op.get("requestBody"):
                    statuses.add("413")
                if any(path.startswith(p) for p in needs_models):
                    statuses.add("503")
                for status in sorted(statuses):
                    before = responses.get(status, {})
                    responses[status] = {
                        "description": before.get("description") or _DESCRIPTIONS[status],
                        "content": {PROBLEM_MEDIA_TYPE: {"schema": ref}}}
        for unused in ("HTTPValidationError", "ValidationError"):
            if unused in schemas and f"/schemas/{unused}'" not in str(spec):
                del schemas[unused]
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


class BodyLimit:
    """ASGI middleware refusing request bodies above ``max_bytes`` with a 413 problem: at
    once from ``Content-Length``, or while reading a body sent without one."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = (f"the request body is larger than the {self.max_bytes:,} bytes this "
                  "service accepts; send fewer ids per call")
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            response = problem_response(413, detail, "", scope["path"])
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, detail)
            return message

        await self.app(scope, counted, send)
