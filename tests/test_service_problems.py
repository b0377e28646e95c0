"""One error schema (RFC 9457 problems), every status documented, timestamps with Z, and the
whole /v1 OpenAPI surface fuzzed by schemathesis: no 5xx on any generated input, and every
answer conforming to the document (status, content type, schema, headers).

The fuzzing is bounded (``FUZZ_EXAMPLES`` examples per operation, default 8; CI runs it as part
of the suite): ``FUZZ_EXAMPLES=50 python -m pytest tests/test_service_problems.py -k fuzz``
runs it harder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import KeyStore, create_app

PROBLEM = "application/problem+json"
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))


@pytest.fixture(scope="module")
def keys() -> KeyStore:
    return KeyStore("sqlite://")


@pytest.fixture(scope="module")
def admin(keys: KeyStore) -> dict[str, str]:
    token = keys.create("ops", "admin", rate_per_s=1e6, burst=10**6).token  # fuzzing: no 429
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def app(scoring_registry: Any, keys: KeyStore) -> FastAPI:
    scorer = CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)
    return create_app(scorer, scoring_registry.data, keys=keys, max_body_bytes=64 * 1024)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def customer(scoring_registry: Any) -> int:
    return int(scoring_registry.data.customers.sort_values("signup_at")["customer_id"].iloc[10])


def _is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["type"].startswith(("urn:barberpro-ml:error:", "about:blank"))
    assert body["instance"] == response.request.url.path
    return body


def test_every_error_is_a_problem(client: TestClient, admin: dict[str, str],
                                  customer: int) -> None:
    v1 = "/v1/customers"
    _is_problem(client.get(f"{v1}/{customer}/profile"), 401)
    assert _is_problem(client.get("/v1/api-management/security", headers={
        "Authorization": "Bearer bpk_0123456789abcdef." + "x" * 43}), 401)["error"] == \
        "AuthenticationError"
    unknown = _is_problem(client.get(f"{v1}/987654321/profile", headers=admin), 404)
    assert unknown["unknown_ids"] == [987654321] and "987654321" in unknown["detail"]
    _is_problem(client.get("/v1/no-such-route", headers=admin), 404)
    fastapi_422 = _is_problem(client.get(f"{v1}/abc/profile", headers=admin), 422)
    assert fastapi_422["errors"][0]["loc"] == ["path", "customer_id"]
    assert "customer_id" in fastapi_422["detail"]
    ours = _is_problem(client.get(f"{v1}/{customer}/profile", params={"as_of": "2031-01-01"},
                                  headers=admin), 422)
    assert "after the data's last event" in ours["detail"]
    analytics = _is_problem(client.get("/v1/api/analytics/business-kpis",
                                       params={"freq": "fortnight"}, headers=admin), 422)
    assert analytics["errors"][0]["loc"] == ["query", "freq"]
    _is_problem(client.post(f"{v1}/batch-profile", headers=admin,
                            content=b'{"customer_ids": [' + b"1," * 40000 + b"1]}"), 413)
    _is_problem(client.post("/v1/admin/refresh", headers=admin), 409)  # data in memory


def test_a_crash_is_a_problem_too(app: FastAPI, client: TestClient, admin: dict[str, str],
                                  customer: int, monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = app.state.live.current.scorer

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as m:
        m.setattr(scorer, "profile", boom)
        body = _is_problem(client.get(f"/v1/customers/{customer}/profile", headers=admin),
                           500)
    assert "RuntimeError" in body["detail"] and "disk on fire" not in body["detail"]


def test_the_openapi_document_lists_every_error_with_the_problem_schema(
        client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert {"type", "title", "status", "detail", "instance"} <= \
        set(spec["components"]["schemas"]["Problem"]["required"])
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            errors = {s for s in responses if s[0] in "45"}
            assert "500" in errors, (method, path)
            if op.get("security"):
                assert {"401", "403"} <= errors, (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in errors, (method, path)
            for status in errors:
                assert list(responses[status]["content"]) == [PROBLEM], (method, path, status)
    profile = spec["paths"]["/v1/customers/{customer_id}/profile"]["get"]["responses"]
    assert {"401", "403", "404", "422", "500", "503"} <= set(profile)
    assert "413" in spec["paths"]["/v1/customers/batch-profile"]["post"]["responses"]


def test_timestamps_carry_z(client: TestClient, admin: dict[str, str], customer: int) -> None:
    health = client.get("/health").json()
    for field in ("data_start", "data_end", "default_as_of", "started_at", "data_loaded_at"):
        assert health[field].endswith(("Z", "+00:00")), (field, health[field])
    profile = client.get(f"/v1/customers/{customer}/profile", params={"as_of": "2024-06-30"},
                         headers=admin).json()
    assert profile["as_of"] == "2024-06-30T00:00:00Z"


def no_crash(ctx: Any, response: Any, case: Any) -> None:
    """No 5xx, except the documented 503 of a route whose model family is not served (a
    state of the deployment, not of the input: the test registry has no forecast model)."""
    if response.status_code < 500:
        return
    if response.status_code == 503 and \
            response.json().get("error") == "ModelUnavailableError":
        return
    raise AssertionError(f"server error {response.status_code}: {response.text[:500]}")


@pytest.mark.fuzz
def test_fuzz_the_openapi_surface(app: FastAPI, client: TestClient,
                                  admin: dict[str, str]) -> None:
    """Every /v1 operation and /health: generated inputs (FUZZ_EXAMPLES each) with an admin
    key; no crash (:func:`no_crash`), and status, content type, body and headers as documented."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(
        path_regex=r"^/(v1/|health$)")
    checks = [no_crash, status_code_conformance, content_type_conformance,
              response_schema_conformance, response_headers_conformance]
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            case.call_and_validate(headers=admin, checks=checks)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
