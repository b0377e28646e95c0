"""``create_app(middleware=False)``: the benchmark's bare app answers what the full app answers,
without the middleware's headers, and only with auth off."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import KeyStore, create_app


@pytest.fixture(scope="module")
def scorer(scoring_registry: Any) -> CustomerScorer:
    return CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)


def test_bare_app_answers_the_same_without_the_middleware(scorer: CustomerScorer,
                                                          scoring_registry: Any) -> None:
    data = scoring_registry.data
    store = KeyStore("sqlite://")
    token = store.create("partner", "customers:read").token
    ids = [int(i) for i in data.customers["customer_id"].iloc[[0, 7, 42]]]
    with TestClient(create_app(scorer, data, keys=store)) as full, \
            TestClient(create_app(scorer, data, auth="off", middleware=False)) as bare:
        for customer in ids:
            path = f"/v1/customers/{customer}/profile"
            a = full.get(path, headers={"Authorization": f"Bearer {token}"})
            b = bare.get(path)
            assert a.status_code == b.status_code == 200
            assert a.json() == b.json()
            assert "x-request-id" in a.headers and "x-process-time-ms" in a.headers
            assert "x-request-id" not in b.headers and "x-process-time-ms" not in b.headers
        old = bare.get(f"/customers/{ids[0]}/profile")  # no deprecation headers either
        assert old.status_code == 200 and "deprecation" not in old.headers
        assert full.get(f"/customers/{ids[0]}/profile", headers={
            "Authorization": f"Bearer {token}"}).headers["deprecation"].startswith("@")
    assert sum(r.requests for r in store.usage()) == len(ids) + 1  # only the full app counts


def test_bare_app_needs_auth_off(scorer: CustomerScorer, scoring_registry: Any) -> None:
    with pytest.raises(ValueError, match="auth='off'"):
        create_app(scorer, scoring_registry.data, keys=KeyStore("sqlite://"),
                   middleware=False)
