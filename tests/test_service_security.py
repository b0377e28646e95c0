"""API keys and the service's security through a real HTTP client: 401/403 paths, scopes per
router, ``auth="off"`` on the open routes only, keys hashed at rest, the security report
without secrets, body size cap, CORS off by default, and the ``keys`` / ``serve`` commands."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from barberpro_ml.cli.main import app as cli
from barberpro_ml.errors import InputError, NotFoundError
from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import AuthenticationError, KeyStore, create_app
from barberpro_ml.service.keys import parse_scopes


@pytest.fixture(scope="module")
def scorer(scoring_registry: Any) -> CustomerScorer:
    return CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)


@pytest.fixture(scope="module")
def customer(scoring_registry: Any) -> int:
    return int(scoring_registry.data.customers.sort_values("signup_at")["customer_id"].iloc[10])


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return KeyStore(f"sqlite:///{tmp_path_factory.mktemp('keys') / 'service.db'}")


@pytest.fixture(scope="module")
def tokens(keys: KeyStore) -> dict[str, str]:
    return {name: keys.create(name, scopes).token for name, scopes in (
        ("customers-only", "customers:read"), ("analyst", "analytics:read"),
        ("ops", "admin"), ("to-revoke", "customers:read,providers:read"))}


@pytest.fixture(scope="module")
def client(scorer: CustomerScorer, scoring_registry: Any, keys: KeyStore
           ) -> Iterator[TestClient]:
    app = create_app(scorer, scoring_registry.data, keys=keys, max_body_bytes=2048)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_key_or_a_bad_key_is_401_with_www_authenticate(client: TestClient, customer: int,
                                                          tokens: dict[str, str]) -> None:
    good = tokens["customers-only"]
    wrong_secret = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for headers, fragment in (({}, "missing API key"),
                              (bearer("not-a-key"), "malformed"),
                              ({"Authorization": f"Basic {good}"}, "missing API key"),
                              (bearer("bpk_0123456789abcdef." + "x" * 43), "unknown"),
                              (bearer(wrong_secret), "wrong secret")):
        response = client.get(f"/customers/{customer}/profile", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert fragment in response.json()["detail"]
        assert good not in response.text and wrong_secret not in response.text


def test_scopes_per_router(client: TestClient, customer: int, tokens: dict[str, str]) -> None:
    ok = client.get(f"/customers/{customer}/profile", headers=bearer(tokens["customers-only"]))
    assert ok.status_code == 200, ok.text
    for path in ("/api/analytics/business-kpis", "/admin/refresh",
                 "/api-management/security"):
        method = client.post if path.startswith("/admin") else client.get
        refused = method(path, headers=bearer(tokens["customers-only"]))
        assert refused.status_code == 403, (path, refused.text)
        assert "customers:read" in refused.json()["detail"]
    analyst = client.get("/api/analytics/business-kpis", headers=bearer(tokens["analyst"]))
    assert analyst.status_code == 200, analyst.text
    assert client.get(f"/customers/{customer}/profile",
                      headers=bearer(tokens["analyst"])).status_code == 403
    for path in (f"/customers/{customer}/profile", "/api/analytics/business-kpis",
                 "/api-management/security"):  # admin grants every scope
        assert client.get(path, headers=bearer(tokens["ops"])).status_code == 200, path
    assert client.get("/health").status_code == 200  # liveness needs no key
    assert client.get("/openapi.json").status_code == 200


def test_a_revoked_key_is_refused_from_the_next_request(client: TestClient, keys: KeyStore,
                                                        customer: int,
                                                        tokens: dict[str, str]) -> None:
    path = f"/customers/{customer}/profile"
    assert client.get(path, headers=bearer(tokens["to-revoke"])).status_code == 200
    keys.revoke("to-revoke")
    refused = client.get(path, headers=bearer(tokens["to-revoke"]))
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]


def test_security_report_counts_failures_and_lists_keys_without_secrets(
        client: TestClient, keys: KeyStore, customer: int, tokens: dict[str, str]) -> None:
    before = keys.failures()
    keys.revoke(keys.create("revoked-for-the-report", "customers:read").key.key_id)
    client.get(f"/customers/{customer}/profile")
    client.get(f"/customers/{customer}/profile", headers=bearer(tokens["analyst"]))
    report = client.get("/api-management/security", headers=bearer(tokens["ops"]))
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["failed_auth"]["missing"] == before.get("missing", 0) + 1
    assert body["failed_auth"]["forbidden"] == before.get("forbidden", 0) + 1
    names = [k["name"] for k in body["keys"]]
    assert "ops" in names and "revoked-for-the-report" not in names
    assert body["revoked_keys"] >= 1
    used = [k for k in body["keys"] if k["last_used_at"] is not None]
    assert used and names[:len(used)] == [k["name"] for k in used]  # used keys first
    for token in tokens.values():
        secret = token.split(".")[1]
        assert secret not in report.text
    assert not {"salt", "secret_hash", "token"} & set(body["keys"][0])


def test_keys_are_hashed_at_rest_with_a_salt_per_key(tmp_path: Path) -> None:
    db = tmp_path / "service.db"
    store = KeyStore(f"sqlite:///{db}")
    a, b = store.create("a", "customers:read"), store.create("b", "customers:read")
    raw = db.read_bytes()
    for issued in (a, b):
        assert issued.token.split(".")[1].encode() not in raw
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT salt, secret_hash FROM api_keys").fetchall()
    con.close()
    assert len({salt for salt, _ in rows}) == 2 and len({h for _, h in rows}) == 2
    assert KeyStore(f"sqlite:///{db}").authenticate(a.token).name == "a"  # another process


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0, 42), char=st.sampled_from("AZaz09_-"))
def test_any_changed_secret_is_refused(position: int, char: str) -> None:
    store = _property_store()
    prefix, secret = _PROPERTY_TOKEN.split(".")
    forged = secret[:position] + char + secret[position + 1:]
    if forged == secret:
        assert store.authenticate(_PROPERTY_TOKEN).name == "p"
        return
    with pytest.raises(AuthenticationError, match="wrong secret"):
        store.authenticate(f"{prefix}.{forged}")


_PROPERTY_STORE: list[KeyStore] = []
_PROPERTY_TOKEN = ""


def _property_store() -> KeyStore:
    global _PROPERTY_TOKEN
    if not _PROPERTY_STORE:
        _PROPERTY_STORE.append(KeyStore("sqlite://"))
        _PROPERTY_TOKEN = _PROPERTY_STORE[0].create("p", "admin").token
    return _PROPERTY_STORE[0]


def test_bad_names_scopes_and_revocations_are_refused_clearly() -> None:
    store = KeyStore("sqlite://")
    with pytest.raises(InputError, match=r"unknown scope.*zodiac.*valid scopes"):
        store.create("x", "customers:read,zodiac")
    with pytest.raises(InputError, match="no scope"):
        parse_scopes(" , ")
    with pytest.raises(InputError, match="bad key name"):
        store.create("has space", "admin")
    store.create("x", "admin")
    with pytest.raises(InputError, match="active key named 'x'"):
        store.create("x", "admin")
    with pytest.raises(NotFoundError, match="no active key"):
        store.revoke("nobody")
    assert parse_scopes("admin,customers:read") == ("customers:read", "admin")


def test_auth_off_opens_only_the_customer_analytics_and_provider_routes(
        scorer: CustomerScorer, scoring_registry: Any, keys: KeyStore, customer: int,
        tokens: dict[str, str]) -> None:
    app = create_app(scorer, scoring_registry.data, auth="off", keys=keys, warm=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get(f"/customers/{customer}/profile").status_code == 200
        assert c.get("/api/analytics/business-kpis").status_code == 200
        assert c.get("/api-management/security").status_code == 401
        assert c.post("/admin/refresh").status_code == 401
        assert c.get("/api-management/security",
                     headers=bearer(tokens["ops"])).json()["auth"] == "off"
    with pytest.raises(TypeError, match="needs keys=KeyStore"):
        create_app(scorer, scoring_registry.data)


def test_bodies_above_the_cap_are_413_and_cors_is_off_by_default(
        client: TestClient, tokens: dict[str, str], customer: int) -> None:
    big = {"customer_ids": [customer] * 1000}  # >= 4 KB > the 2048-byte cap
    response = client.post("/customers/batch-profile", json=big,
                           headers=bearer(tokens["ops"]))
    assert response.status_code == 413, response.text[:300]
    small = client.post("/customers/batch-profile", json={"customer_ids": [customer]},
                        headers=bearer(tokens["ops"]))
    assert small.status_code == 200
    cors = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in cors.headers


def test_cors_origins_when_given(scorer: CustomerScorer, scoring_registry: Any) -> None:
    app = create_app(scorer, scoring_registry.data, auth="off", warm=False,
                     cors_origins=("https://app.example",))
    with TestClient(app) as c:
        allowed = c.get("/health", headers={"Origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = c.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_keys_commands_show_the_token_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'service.db'}"
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create", "--name", "partner-x", "--scopes",
                               "customers:read,analytics:read", "--db", db])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert KeyStore(db).authenticate(token).scopes == ["customers:read", "analytics:read"]
    listed = runner.invoke(cli, ["keys", "list", "--db", db])
    assert listed.exit_code == 0 and "partner-x" in listed.output
    assert token.split(".")[1] not in listed.output
    bad = runner.invoke(cli, ["keys", "create", "--name", "y", "--scopes", "root", "--db", db])
    assert bad.exit_code == 2 and "unknown scope" in bad.output
    assert runner.invoke(cli, ["keys", "revoke", "partner-x", "--db", db]).exit_code == 0
    with pytest.raises(AuthenticationError, match="revoked"):
        KeyStore(db).authenticate(token)
    assert runner.invoke(cli, ["keys", "revoke", "partner-x", "--db", db]).exit_code == 4


def test_serve_refuses_auth_off_on_a_public_interface() -> None:
    result = CliRunner().invoke(cli, ["serve", "--auth", "off", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "only on a loopback interface" in result.output


# ------------------------------------------------------------------- rate limits, quotas
def test_token_bucket_and_daily_quota_in_the_store() -> None:
    store = KeyStore("sqlite://")
    key = store.create("k", "admin", rate_per_s=2.0, burst=3).key
    t0 = 1_800_000_000.0
    assert [store.consume(key, t0).allowed for _ in range(4)] == [True, True, True, False]
    refused = store.consume(key, t0)
    assert refused.reason == "rate" and refused.retry_after == pytest.approx(0.5)
    assert store.consume(key, t0 + 0.5).allowed  # one token back after 1/rate s
    assert not store.consume(key, t0 + 0.5).allowed
    assert [store.consume(key, t0 + 100 + i).allowed for i in range(5)] == [True] * 5
    quota = store.create("q", "admin", burst=100, quota_per_day=2).key
    day = 86400 * (t0 // 86400) + 3600  # 01:00 UTC
    assert [store.consume(quota, day + i).allowed for i in range(3)] == [True, True, False]
    over = store.consume(quota, day + 3)
    assert over.reason == "quota" and over.retry_after == pytest.approx(86400 - 3600 - 3)
    assert store.consume(quota, day + 86400).allowed  # the next UTC day
    with pytest.raises(InputError, match="bad limits"):
        store.create("z", "admin", rate_per_s=0)


def test_over_the_rate_is_429_with_retry_after(scorer: CustomerScorer,
                                               scoring_registry: Any) -> None:
    store = KeyStore("sqlite://")
    token = store.create("slow", "admin", rate_per_s=0.01, burst=2).token
    with TestClient(create_app(scorer, scoring_registry.data, keys=store, warm=False),
                    raise_server_exceptions=False) as c:
        answers = [c.get("/v1/api-management/versioning", headers=bearer(token))
                   for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        refused = answers[2]
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["Retry-After"]) <= 100
        assert "0.01 requests/s" in refused.json()["detail"]
        spec = c.get("/openapi.json").json()
        assert "429" in spec["paths"]["/v1/customers/{customer_id}/profile"]["get"]["responses"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_bucket_is_shared_by_two_uvicorn_workers(scoring_registry: Any, tmp_path: Path,
                                                    backend: str,
                                                    request: pytest.FixtureRequest) -> None:
    if backend == "postgresql":  # production mode: the keys in a PostgreSQL database
        cluster = request.getfixturevalue("postgres_cluster")
        cluster.create_database(name := f"service_workers_{os.getpid()}")
        db = cluster.url(name)
    else:
        db = f"sqlite:///{tmp_path / 'service.db'}"
    token = KeyStore(db).create("partner", "customers:read", rate_per_s=0.001, burst=10).token
    port = _free_port()
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    log = tmp_path / "uvicorn.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": scoring_registry.tracking_uri,
           "BARBERPRO_TEST_DATA": str(scoring_registry.data_dir), "BARBERPRO_SERVICE_DB": db,
           "PROMETHEUS_MULTIPROC_DIR": str(metrics),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service_factory:app", "--factory", "--workers", "2",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, workers = time.monotonic() + 180, 0
        while workers < 2 and time.monotonic() < deadline:  # both up, each having answered
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                httpx.get(f"{base}/health", timeout=5)
            except httpx.HTTPError:
                time.sleep(1)
                continue
            workers = len({p.name.split("_")[-1] for p in metrics.glob("counter_*.db")})
        assert workers == 2, log.read_text()[-3000:]
        statuses = [httpx.get(f"{base}/v1/api-management/versioning", timeout=30,
                              headers={"Authorization": f"Bearer {token}"}).status_code
                    for _ in range(30)]  # a new connection each: spread over the workers
        assert statuses.count(200) == 10 and statuses.count(429) == 20, statuses
        # both workers count usage in the same table (each writes just after answering)
        key_id = token.split(".")[0].removeprefix("bpk_")
        route, counted = "/v1/api-management/versioning", {}
        for _ in range(50):
            counted = {r.status_class: r.requests for r in KeyStore(db).usage()
                       if r.key_id == key_id and r.route == route}
            if sum(counted.values()) >= 30:
                break
            time.sleep(0.1)
        assert counted == {"2xx": 10, "4xx": 20}, counted
    finally:
        process.terminate()
        process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_partnerships_show_own_usage_or_all_for_admin(scorer: CustomerScorer,
                                                      scoring_registry: Any) -> None:
    store = KeyStore("sqlite://")
    partner = store.create("partner-x", "customers:read", quota_per_day=5).token
    other = store.create("partner-y", "analytics:read").token
    ops = store.create("ops", "admin").token
    with TestClient(create_app(scorer, scoring_registry.data, keys=store, warm=False),
                    raise_server_exceptions=False) as c:
        path = "/v1/api-management/partnerships"
        assert c.get(path).status_code == 401
        first = c.get(path, headers=bearer(partner)).json()["partners"]
        assert [p["name"] for p in first] == ["partner-x"]
        assert first[0]["used_today"] == 1 and first[0]["remaining_today"] == 4
        again = c.get(path, headers=bearer(partner)).json()["partners"][0]
        assert again["used_today"] == 2 and again["remaining_today"] == 3
        c.get(path, headers=bearer(other))
        every = {p["name"]: p for p in c.get(path, headers=bearer(ops)).json()["partners"]}
        assert set(every) == {"partner-x", "partner-y", "ops"}
        assert every["partner-x"]["used_today"] == 2
        assert every["partner-y"]["remaining_today"] is None
        assert every["partner-y"]["used_today"] == 1
        assert not any(token.split(".")[1] in c.get(path, headers=bearer(ops)).text
                       for token in (partner, other, ops))


def test_a_serving_store_trusts_a_verified_key_for_its_cache_period(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    admin = KeyStore(url)  # `keys revoke` in another process
    token = admin.create("cached", "customers:read").token
    serving = KeyStore(url, key_cache_s=3600.0)
    uncached = KeyStore(url)
    assert serving.authenticate(token).name == "cached"
    with pytest.raises(AuthenticationError, match="wrong secret"):  # a trusted id, wrong secret
        serving.authenticate(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    assert uncached.authenticate(token).name == "cached"
    admin.revoke("cached")
    # another process's revocation: refused at once without a cache, after the period with one
    with pytest.raises(AuthenticationError, match="revoked"):
        uncached.authenticate(token)
    assert serving.authenticate(token).name == "cached"
    # a wrong secret for a trusted key id is checked against the database (revoked by now)
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationError, match="revoked"):
        serving.authenticate(wrong)
    # revoked in the serving process itself: refused from the next request
    second = admin.create("cached-2", "customers:read").token
    assert serving.authenticate(second).name == "cached-2"
    serving.revoke("cached-2")
    with pytest.raises(AuthenticationError, match="revoked"):
        serving.authenticate(second)
    expired = KeyStore(url, key_cache_s=0.05)
    third = admin.create("cached-3", "customers:read").token
    assert expired.authenticate(third).name == "cached-3"
    admin.revoke("cached-3")
    time.sleep(0.1)
    with pytest.raises(AuthenticationError, match="revoked"):
        expired.authenticate(third)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gaps=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=40),
       rate=st.floats(0.5, 20.0), burst=st.integers(1, 6),
       quota=st.one_of(st.none(), st.integers(1, 30)))
def test_the_sqlite_fast_path_decides_as_the_general_update(
        tmp_path_factory: pytest.TempPathFactory, gaps: list[float], rate: float, burst: int,
        quota: int | None) -> None:
    folder = tmp_path_factory.mktemp("bucket")
    on_file = KeyStore(f"sqlite:///{folder / 'service.db'}")  # one statement on sqlite3
    in_memory = KeyStore("sqlite://")  # SQLAlchemy's conditional UPDATE
    assert on_file._sqlite_file is not None and in_memory._sqlite_file is None
    keys = [store.create("k", "customers:read", rate_per_s=rate, burst=burst,
                         quota_per_day=quota).key for store in (on_file, in_memory)]
    stamp = 1_800_000_000.0 - 20.0  # crosses a UTC midnight: the quota's new day
    for gap in gaps:
        stamp += gap
        fast, general = on_file.consume(keys[0], stamp), in_memory.consume(keys[1], stamp)
        assert fast.allowed == general.allowed
        if not fast.allowed:
            assert fast.reason == general.reason
            assert fast.retry_after == pytest.approx(general.retry_after)


def test_the_bucket_on_a_sqlite_file_never_over_grants_under_threads(tmp_path: Path) -> None:
    import threading

    url = f"sqlite:///{tmp_path / 'service.db'}"
    key = KeyStore(url).create("busy", "customers:read", rate_per_s=1e-6, burst=37).key
    stores = [KeyStore(url) for _ in range(2)]  # two "workers"
    granted: list[bool] = []
    lock = threading.Lock()

    def hammer(store: KeyStore) -> None:
        for _ in range(10):
            allowed = store.consume(key).allowed
            with lock:
                granted.append(allowed)

    threads = [threading.Thread(target=hammer, args=(stores[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 80 and sum(granted) == 37
