"""``/v1/api-management/{analytics,health-report,dashboard,documentation}`` through a real HTTP
client, and the usage table they read: counts per (day, key, route, status class), exact
whatever the order or the number of writers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

from barberpro_ml.errors import InputError
from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import KeyStore, create_app
from barberpro_ml.service.evidence import RegisteredEvidence

MGMT = "/v1/api-management"
PROFILE = "/v1/customers/{customer_id}/profile"


@pytest.fixture(scope="module")
def scorer(scoring_registry: Any) -> CustomerScorer:
    return CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)


@pytest.fixture
def store() -> KeyStore:
    return KeyStore("sqlite://")


@pytest.fixture
def client(scorer: CustomerScorer, scoring_registry: Any, store: KeyStore
           ) -> Iterator[TestClient]:
    app = create_app(scorer, scoring_registry.data, keys=store, warm=False,
                     tracking_uri=scoring_registry.tracking_uri)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_needs_a_key_and_the_reports_need_admin(client: TestClient,
                                                            store: KeyStore) -> None:
    partner = store.create("partner", "customers:read").token
    for route in ("analytics", "health-report", "dashboard", "documentation"):
        assert client.get(f"{MGMT}/{route}").status_code == 401, route
    for route in ("health-report", "dashboard"):
        assert client.get(f"{MGMT}/{route}", headers=bearer(partner)).status_code == 403
    for route in ("analytics", "documentation"):
        assert client.get(f"{MGMT}/{route}", headers=bearer(partner)).status_code == 200


def test_analytics_counts_per_route_key_and_status(client: TestClient, store: KeyStore,
                                                   scoring_registry: Any) -> None:
    partner = store.create("partner", "customers:read")
    other = store.create("other", "customers:read")
    ops = store.create("ops", "admin")
    known = int(scoring_registry.data.customers["customer_id"].iloc[3])
    unknown = int(scoring_registry.data.customers["customer_id"].max()) + 1000
    made: Counter[tuple[str, str, str]] = Counter()
    for customer, token in ((known, partner), (known, partner), (unknown, partner),
                            (known, other), (known, None)):
        answer = client.get(f"/v1/customers/{customer}/profile",
                            headers=bearer(token.token) if token else {})
        key_id = token.key.key_id if token else "anonymous"
        made[key_id, PROFILE, f"{answer.status_code // 100}xx"] += 1
    assert made[partner.key.key_id, PROFILE, "4xx"] == 1  # the unknown customer
    assert made["anonymous", PROFILE, "4xx"] == 1

    own = client.get(f"{MGMT}/analytics", headers=bearer(partner.token)).json()
    assert {r["key_id"] for r in own["rows"]} == {partner.key.key_id}
    assert {(r["key_id"], r["route"], r["status_class"]): r["requests"]
            for r in own["rows"]} == {k: n for k, n in made.items()
                                      if k[0] == partner.key.key_id}
    assert own["total"]["requests"] == 3 and own["total"]["client_errors"] == 1
    assert own["total"]["mean_latency_ms"] > 0

    every = client.get(f"{MGMT}/analytics", headers=bearer(ops.token)).json()
    seen = {(r["key_id"], r["route"], r["status_class"]): r["requests"] for r in every["rows"]}
    # the partner's own analytics call is counted too, once answered
    assert seen.pop((partner.key.key_id, f"{MGMT}/analytics", "2xx")) == 1
    assert seen == dict(made)
    by_key = {k["key_id"]: k for k in every["by_key"]}
    assert by_key[other.key.key_id]["name"] == "other"
    assert by_key["anonymous"]["name"] is None
    assert by_key["anonymous"]["client_errors"] == 1
    by_route = {r["route"]: r for r in every["by_route"]}
    assert by_route[PROFILE]["requests"] == sum(made.values())
    assert every["total"]["server_errors"] == 0 and every["total"]["error_rate"] == 0
    assert client.get(f"{MGMT}/analytics?days=0", headers=bearer(ops.token)).status_code == 422


def test_health_report_families_verdicts_freshness_and_errors(
        client: TestClient, store: KeyStore, scoring_registry: Any) -> None:
    ops = store.create("ops", "admin").token
    report = client.get(f"{MGMT}/health-report", headers=bearer(ops)).json()
    assert report["status"] == "ok", report["reasons"]
    assert report["alive"] is True and report["reasons"] == []
    families = {f["family"]: f for f in report["families"]}
    health = client.get("/health").json()
    for family, ref in health["models"].items():
        line = families[family]
        assert line["state"] == "verified" and line["verified"] is True
        assert line["served_version"] == line["champion_version"] == ref["version"]
        verdicts = {v["check_id"]: v for v in line["verdicts"]}
        assert verdicts[f"test-{family}"]["verdict"] == "pass"  # the claim its gate bound
        assert not any(v["verdict"] == "fail" and v["blocking"] for v in verdicts.values())
        assert line["promoted_at"] is not None
    for family in ("forecast", "pricing"):  # none registered here: reported, not degrading
        assert families[family]["state"] == "missing"
        assert families[family]["served_version"] is None
    assert report["data"]["last_event"].startswith(health["data_end"][:19])
    assert report["data"]["customers"] == len(scoring_registry.data.customers)
    assert report["data"]["age_hours"] > 0
    assert report["errors"]["server_errors"] == 0

    # another worker's 5xx answers land in the same table and turn the report degraded
    for _ in range(3):
        store.record_usage(None, PROFILE, 503, 0.01)
    worse = client.get(f"{MGMT}/health-report", headers=bearer(ops)).json()
    assert worse["status"] == "degraded"
    assert worse["errors"]["server_errors"] == 3
    assert worse["errors"]["error_rate"] == pytest.approx(3 / worse["errors"]["requests"])
    assert any("server errors" in r for r in worse["reasons"])


def test_an_unverified_champion_degrades_the_report(
        client: TestClient, store: KeyStore, scoring_registry: Any) -> None:
    """A ``@champion`` set by hand (no gate, no promotion log) is reported with why."""
    registry = MlflowClient(tracking_uri=scoring_registry.tracking_uri,
                            registry_uri=scoring_registry.tracking_uri)
    name = "test-hand-moved-forecast"
    source = registry.get_model_version(*next(iter(scoring_registry.versions.items())))
    if not registry.search_registered_models(f"name = '{name}'"):
        registry.create_registered_model(name)
        artifacts = registry.get_run(source.run_id).info.artifact_uri
        version = registry.create_model_version(name, f"{artifacts}/model",
                                                run_id=source.run_id)
        registry.set_registered_model_alias(name, "champion", version.version)
    app: Any = client.app
    app.state.evidence = RegisteredEvidence(scoring_registry.tracking_uri,
                                            forecast_model=name)
    ops = store.create("ops", "admin").token
    report = client.get(f"{MGMT}/health-report", headers=bearer(ops)).json()
    forecast = {f["family"]: f for f in report["families"]}["forecast"]
    assert forecast["state"] == "unverified" and forecast["verified"] is False
    assert forecast["served_version"] is None and forecast["champion_version"] is not None
    assert forecast["problems"]
    assert report["status"] == "degraded"
    assert any(r.startswith(f"forecast ({name}) is unverified") for r in report["reasons"])


def test_documentation_links_answer_offline(client: TestClient, store: KeyStore) -> None:
    token = store.create("partner", "analytics:read").token
    docs = client.get(f"{MGMT}/documentation", headers=bearer(token)).json()
    assert docs["openapi"] == "/openapi.json"
    assert client.get(docs["openapi"]).json()["info"]["version"] == "1"
    for page, asset in ((docs["swagger_ui"], "swagger-ui-bundle.js"),
                        (docs["redoc"], "redoc.standalone.js")):
        html = client.get(page).text
        assert f"{docs['assets']}/{asset}" in html and "cdn" not in html.lower()
        assert client.get(f"{docs['assets']}/{asset}").status_code == 200
    assert docs["versioning"] == client.get(f"{MGMT}/versioning",
                                            headers=bearer(token)).json()


def test_dashboard_agrees_with_the_reports(client: TestClient, store: KeyStore) -> None:
    ops = store.create("ops", "admin").token
    store.revoke(store.create("gone", "customers:read").key.key_id)
    client.get(f"{MGMT}/analytics", headers=bearer("bpk_0123456789abcdef." + "x" * 43))
    client.get("/api-management/versioning", headers=bearer(ops))  # a deprecated path
    health = client.get(f"{MGMT}/health-report", headers=bearer(ops)).json()
    usage = client.get(f"{MGMT}/analytics", headers=bearer(ops)).json()
    board = client.get(f"{MGMT}/dashboard", headers=bearer(ops)).json()
    assert board["status"] == health["status"]
    assert [(f["family"], f["state"], f["served_version"]) for f in board["families"]] == [
        (f["family"], f["state"], f["served_version"]) for f in health["families"]]
    assert board["today"]["requests"] == usage["total"]["requests"] + 1  # + that call
    assert board["deprecated_path_requests"] == 1
    assert board["active_keys"] == 1 and board["revoked_keys"] == 1
    assert board["failed_auth"] == store.failures()["unknown"] == 1
    assert len(board["top_routes"]) <= 5
    assert board["documentation"]["openapi"] == "/openapi.json"


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["k1", "k2", None]),
                          st.sampled_from(["/v1/a", "/v1/b/{x}", "unmatched"]),
                          st.sampled_from([200, 204, 401, 404, 429, 500, 503]),
                          st.floats(0, 2)), max_size=40))
def test_usage_rows_sum_what_was_recorded(calls: list[tuple[str | None, str, int, float]]
                                          ) -> None:
    store = KeyStore("sqlite://")
    for key_id, route, status, seconds in calls:
        store.record_usage(key_id, route, status, seconds, now=1_800_000_000)
    rows = store.usage(1, now=1_800_000_000)
    expected = Counter((k or "anonymous", r, f"{s // 100}xx") for k, r, s, _ in calls)
    assert {(r.key_id, r.route, r.status_class): r.requests for r in rows} == dict(expected)
    assert sum(r.latency_s for r in rows) == pytest.approx(sum(c[3] for c in calls))
    assert store.usage(1, now=1_800_000_000 + 86_400) == []  # the next UTC day
    assert len(store.usage(2, now=1_800_000_000 + 86_400)) == len(expected)


def test_usage_is_exact_with_concurrent_writers(tmp_path: Path) -> None:
    """Two stores on one file (as two worker processes have), four threads each."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    stores, n = [KeyStore(url), KeyStore(url)], 50

    def hammer(store: KeyStore, status: int) -> None:
        for _ in range(n):
            store.record_usage("k", "/v1/x", status, 0.001)

    threads = [threading.Thread(target=hammer, args=(s, status))
               for s in stores for status in (200, 200, 404, 500)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = {r.status_class: r.requests for r in KeyStore(url).usage()}
    assert got == {"2xx": 4 * n, "4xx": 2 * n, "5xx": 2 * n}


def test_a_registry_without_the_served_versions_degrades_the_report(
        client: TestClient, store: KeyStore, tmp_path: Path) -> None:
    """The served models stay served; the report says their evidence cannot be read."""
    app: Any = client.app
    app.state.evidence = RegisteredEvidence(f"sqlite:///{tmp_path / 'other.db'}")
    ops = store.create("ops", "admin").token
    answer = client.get(f"{MGMT}/health-report", headers=bearer(ops))
    assert answer.status_code == 200, answer.text
    report = answer.json()
    served = [f for f in report["families"] if f["served_version"] is not None]
    assert served and all(f["state"] == "verified" and f["evidence_error"] for f in served)
    assert report["status"] == "degraded"
    assert sum("gate evidence not readable" in r for r in report["reasons"]) == len(served)


def test_a_serving_store_counts_usage_in_memory_and_writes_it_exactly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    buffered, reader = KeyStore(url, usage_flush_s=3600.0), KeyStore(url)
    for status in (200, 200, 200, 404, 500):
        buffered.record_usage("k", "/v1/x", status, 0.25)
    assert reader.usage() == []  # nothing written yet: counted in memory
    assert {r.status_class: r.requests for r in buffered.usage()} == {
        "2xx": 3, "4xx": 1, "5xx": 1}  # its own reads write first
    buffered.record_usage("k", "/v1/x", 200, 0.25)
    buffered.flush_usage()
    rows = {r.status_class: r for r in reader.usage()}
    assert rows["2xx"].requests == 4 and rows["2xx"].latency_s == pytest.approx(1.0)
    # with a short period the background thread writes without being asked
    quick = KeyStore(url, usage_flush_s=0.05)
    quick.record_usage("k", "/v1/y", 200, 0.1)
    for _ in range(100):
        if any(r.route == "/v1/y" for r in reader.usage()):
            break
        time.sleep(0.05)
    assert [r.requests for r in reader.usage() if r.route == "/v1/y"] == [1]
    with pytest.raises(InputError, match="usage_flush_s"):
        KeyStore(url, usage_flush_s=-1)
