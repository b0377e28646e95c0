"""The caller's identity: API keys sent as ``Authorization: Bearer <key>``, scopes per router.

Every router is included with :func:`require` of its scope (``customers:read``,
``analytics:read``, ``providers:read``, ``admin``). Without a key the answer is 401 (with
``WWW-Authenticate: Bearer``), with a key outside its scopes 403; a key with ``admin`` may
call every route. A service created with ``auth="off"`` lets the customer, analytics and
provider routes answer without a key (a key that is sent is still checked); the admin and
``/api-management`` routes always need one. ``/health``, ``/docs`` and the OpenAPI document
need none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from barberpro_ml.service.errors import AuthenticationError, RateLimitedError, ScopeError
from barberpro_ml.service.keys import ApiKey, KeyStore, Scope

__all__ = ["AUTH_RESPONSES", "AuthMode", "Caller", "require"]

AuthMode = Literal["keys", "off"]
"""``keys``: every route but ``/health`` and the docs needs an API key; ``off``: the customer,
analytics and provider routes answer without one (loopback demos only)."""

_bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                     description="An API key from `barberpro-ml keys create`, sent as "
                                 "'Authorization: Bearer bpk_<key id>.<secret>'.")


class Caller(BaseModel):
    """Who is calling: their key, or nobody (``key`` None) on a route open with auth off."""

    key: ApiKey | None


AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "No API key, or a malformed, unknown, revoked or wrong one."},
    403: {"description": "The API key lacks the scope this route needs."},
    429: {"description": "The API key is over its rate or daily quota (Retry-After says "
                         "when to retry)."},
}
"""The statuses :func:`require` adds to a route's documented responses."""


def require(scope: Scope | None, *, open_without_auth: bool = False
            ) -> Callable[..., Caller]:
    """The dependency checking that the caller holds ``scope``.

    Parameters
    ----------
    scope
        What the route needs; None: any valid key.
    open_without_auth
        Let a request without a key through when the app was created with ``auth="off"``.
    """

    def caller(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
        store: KeyStore | None = request.app.state.keys
        if credentials is None and open_without_auth and request.app.state.auth == "off":
            request.state.caller = None
            return Caller(key=None)
        if store is None:
            raise AuthenticationError(
                "this service has no key store, so routes that need an API key refuse every "
                "call; start it with one (`barberpro-ml serve --db <url>`)")
        if credentials is None:
            store.record_failure("missing")
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <key>' with a key from "
                "`barberpro-ml keys create --name <holder> --scopes <scopes>`")
        key = store.authenticate(credentials.credentials)
        request.state.caller = key
        if scope is not None and not key.allows(scope):
            store.record_failure("forbidden")
            raise ScopeError(f"the API key {key.key_id} ({key.name}) has the scopes "
                             f"{', '.join(key.scopes)}; this route needs {scope}")
        allowance = store.consume(key)
        if not allowance.allowed:
            wait = max(1, math.ceil(allowance.retry_after))
            what = (f"its quota of {key.quota_per_day} requests per UTC day"
                    if allowance.reason == "quota"
                    else f"its rate of {key.rate_per_s:g} requests/s (burst {key.burst})")
            raise RateLimitedError(f"the API key {key.key_id} ({key.name}) is over {what}; "
                                   f"retry after {wait} s", retry_after=wait)
        return Caller(key=key)

    return caller
