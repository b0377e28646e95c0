"""Versioning: every route under /v1, the seed's unversioned paths as deprecated aliases with
RFC 9745 / RFC 8594 headers from one table, /v1/api-management/versioning, and the /v1 OpenAPI
contract against the committed snapshot (tests/openapi_v1.json), with the comparison's own
unit tests.

Regenerate the snapshot after an intended, compatible change (or a new major version):
``UPDATE_OPENAPI_SNAPSHOT=1 python -m pytest tests/test_service_versioning.py -k snapshot``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import KeyStore, create_app
from barberpro_ml.service.contract import breaking_changes, v1_document
from barberpro_ml.service.versioning import DEPRECATED_PATHS, successor

SNAPSHOT = Path(__file__).parent / "openapi_v1.json"


@pytest.fixture(scope="module")
def keys() -> KeyStore:
    return KeyStore("sqlite://")


@pytest.fixture(scope="module")
def token(keys: KeyStore) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.create('ops', 'admin').token}"}


@pytest.fixture(scope="module")
def client(scoring_registry: Any, keys: KeyStore) -> Iterator[TestClient]:
    scorer = CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)
    with TestClient(create_app(scorer, scoring_registry.data, keys=keys),
                    raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def customer(scoring_registry: Any) -> int:
    return int(scoring_registry.data.customers.sort_values("signup_at")["customer_id"].iloc[10])


# ------------------------------------------------------------------- aliases and headers
def test_v1_and_the_deprecated_alias_answer_the_same(client: TestClient, customer: int,
                                                     token: dict[str, str]) -> None:
    current = client.get(f"/v1/customers/{customer}/profile", headers=token)
    alias = client.get(f"/customers/{customer}/profile", params={"as_of": "2024-06-30"},
                       headers=token)
    assert current.status_code == alias.status_code == 200
    assert "deprecation" not in current.headers and "sunset" not in current.headers
    row = next(r for r in DEPRECATED_PATHS if r.prefix == "/customers")
    since = datetime(row.deprecated_since.year, row.deprecated_since.month,
                     row.deprecated_since.day, tzinfo=UTC)
    assert alias.headers["Deprecation"] == f"@{int(since.timestamp())}"
    sunset = parsedate_to_datetime(alias.headers["Sunset"])
    assert sunset.date() == row.sunset and sunset.tzinfo is not None
    assert alias.headers["Sunset"].endswith(" GMT")
    assert (f'</v1/customers/{customer}/profile?as_of=2024-06-30>; rel="successor-version"'
            in alias.headers["Link"])
    again = client.get(f"/v1/customers/{customer}/profile", params={"as_of": "2024-06-30"},
                       headers=token)
    assert again.json() == alias.json()


def test_errors_on_an_alias_carry_the_headers_too(client: TestClient) -> None:
    for response in (client.get("/customers/987654321/profile"),  # 401: no key
                     client.get("/api/analytics/business-kpis", params={"freq": "x"})):
        assert response.status_code >= 400
        assert response.headers["Deprecation"].startswith("@")
        assert "successor-version" in response.headers["Link"]


def test_every_api_route_is_under_v1_and_each_alias_is_deprecated(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    unversioned = {"/health"}
    for path, operations in paths.items():
        if path in unversioned:
            continue
        found = successor(path)
        if path.startswith("/v1/"):
            assert found is None
            assert not any(op.get("deprecated") for op in operations.values()), path
        else:
            assert found is not None, f"{path} is neither under /v1 nor a deprecated alias"
            assert found[1] in paths, f"{path}'s successor {found[1]} is not served"
            assert all(op.get("deprecated") for op in operations.values()), path


def test_versioning_route_lists_the_table(client: TestClient, token: dict[str, str]) -> None:
    assert client.get("/v1/api-management/versioning").status_code == 401
    body = client.get("/v1/api-management/versioning", headers=token).json()
    assert body["current"] == "/v1"
    assert [v["version"] for v in body["versions"]] == ["v1"]
    assert {r["prefix"]: r["successor"] for r in body["deprecated"]} == \
        {r.prefix: r.successor for r in DEPRECATED_PATHS}
    assert all(r["sunset"] > r["deprecated_since"] for r in body["deprecated"])


# ------------------------------------------------------------------------- the contract
def test_v1_openapi_matches_the_committed_snapshot(client: TestClient) -> None:
    current = v1_document(client.get("/openapi.json").json())
    if os.environ.get("UPDATE_OPENAPI_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    committed = json.loads(SNAPSHOT.read_text())
    problems = breaking_changes(committed, current)
    assert not problems, "incompatible /v1 changes:\n" + "\n".join(problems)


def _doc(response: dict[str, Any], params: list[dict[str, Any]] | None = None,
         body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"parameters": params or [], "responses": {"200": {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/R"}}}}}}
    if body is not None:
        operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return {"paths": {"/v1/r": {"get": operation}}, "components": {"schemas": {"R": response}}}


_BASE = {"type": "object", "required": ["a", "b"], "properties": {
    "a": {"type": "integer"},
    "b": {"type": "array", "items": {"type": "object", "required": ["c"],
                                     "properties": {"c": {"type": "string"}}}},
    "n": {"anyOf": [{"type": "number"}, {"type": "null"}]}}}
_Q = {"name": "k", "in": "query", "required": False, "schema": {"type": "integer"}}


def _edit(path: list[str], value: Any = None, delete: bool = False) -> dict[str, Any]:
    schema = copy.deepcopy(_BASE)
    node: Any = schema
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return schema


@pytest.mark.parametrize(("new", "fragment"), [
    (_doc(_edit(["properties", "a"], delete=True)), "'a' removed"),
    (_doc(_edit(["properties", "b", "items", "properties", "c"], delete=True)),
     "GET /v1/r 200.b[]: response field 'c' removed"),
    (_doc(_edit(["properties", "a"], {"type": "string"})), "type changed"),
    (_doc(_edit(["properties", "a"], {"type": "number"})), "now also number"),
    (_doc(_edit(["properties", "n"], {"anyOf": [{"type": "number"}, {"type": "string"}]})),
     "now also string"),
    (_doc(_edit(["required"], ["a"])), "'b' no longer required"),
    (_doc(_BASE, [_Q, {"name": "z", "in": "query", "required": True,
                       "schema": {"type": "string"}}]), "query parameter 'z' is now required"),
    (_doc(_BASE, [{**_Q, "required": True}]), "'k' is now required"),
    (_doc(_BASE, []), "query parameter 'k' removed"),
    (_doc(_BASE, [{**_Q, "schema": {"type": "boolean"}}]), "no longer accepts integer"),
    (_doc(_BASE, [_Q], {"type": "object", "required": ["ids", "x"],
                        "properties": {"ids": {"type": "array"}, "x": {"type": "string"}}}),
     "field 'x' is now required"),
    ({"paths": {}}, "operation removed"),
])
def test_incompatible_changes_are_reported(new: dict[str, Any], fragment: str) -> None:
    operation = new.get("paths", {}).get("/v1/r", {}).get("get", {})
    old = _doc(_BASE, [_Q], {"type": "object", "required": ["ids"],
                             "properties": {"ids": {"type": "array"}}}
               if "requestBody" in operation else None)
    problems = breaking_changes(old, new)
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize("new", [
    _doc(_edit(["properties", "extra"], {"type": "string"}), [_Q]),  # new response field
    _doc(_BASE, [_Q, {"name": "y", "in": "query", "required": False,
                      "schema": {"type": "string"}}]),  # new optional parameter
    _doc(_edit(["properties", "n"], {"type": "integer"}), [_Q]),  # narrower than number|null
    _doc(_BASE, [{**_Q, "schema": {"type": "number"}}]),  # parameter accepts more
])
def test_additive_changes_are_compatible(new: dict[str, Any]) -> None:
    new["paths"]["/v2/other"] = {"get": {"responses": {}}}
    assert breaking_changes(_doc(_BASE, [_Q]), new) == []


def _response_fields(doc: dict[str, Any]) -> list[tuple[str, str]]:
    schemas = doc["components"].get("schemas", {})
    used = {op["responses"]["200"]["content"]["application/json"]["schema"].get("$ref", "")
            .rsplit("/", 1)[-1]
            for ops in doc["paths"].values() for op in ops.values()
            if "200" in op.get("responses", {})
            and "application/json" in op["responses"]["200"].get("content", {})}
    return sorted((name, field) for name in used if name in schemas
                  for field in schemas[name].get("properties", {}))


_SNAPSHOT_DOC = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {"paths": {},
                                                                          "components": {}}


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(_response_fields(_SNAPSHOT_DOC) or [("", "")]))
def test_removing_any_response_field_of_the_snapshot_is_breaking(
        field: tuple[str, str]) -> None:
    name, prop = field
    if not name:
        pytest.skip("no snapshot yet")
    changed = copy.deepcopy(_SNAPSHOT_DOC)
    del changed["components"]["schemas"][name]["properties"][prop]
    problems = breaking_changes(_SNAPSHOT_DOC, changed)
    assert any(f"response field {prop!r} removed" in p for p in problems), (name, prop)
