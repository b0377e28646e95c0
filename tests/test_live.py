"""The service follows the registry and the data: swaps, refusals, failures, admin refresh.

Real registry states, no mocks: each test registers versions of its own churn model (a copy of
the session's churn champion, under a name of its own) and moves ``@champion`` through the
project's own path -- :func:`regate` then :func:`promote` -- or by hand where a test needs an
unverified champion. The load test runs the real app under uvicorn on loopback.
"""

from __future__ import annotations

import functools
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from typer.testing import CliRunner

from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.registry import promote, regate
from barberpro_ml.scoring import CustomerScorer, LiveScorer
from barberpro_ml.service import KeyStore, create_app

SOURCE = "barberpro-churn"


@pytest.fixture(autouse=True)
def tracking(scoring_registry: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point MLflow at the session's registry for one test (restored afterwards)."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", scoring_registry.tracking_uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(scoring_registry.tracking_uri)
    try:
        yield scoring_registry.tracking_uri
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture
def name() -> str:
    """A churn model of the test's own, so that tests never move each other's champions."""
    return f"live-{uuid.uuid4().hex[:8]}-churn"


@pytest.fixture(scope="module")
def customer(scoring_registry: Any) -> int:
    return int(scoring_registry.data.customers.sort_values("signup_at")["customer_id"].iloc[10])


def new_version(registry: Any, name: str, source: str | None = None) -> str:
    """Register the session's churn champion again as a new version of ``name`` (its run and
    tags, not its gate); ``source``: register other files instead."""
    client = MlflowClient(tracking_uri=registry.tracking_uri)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    mv = client.get_model_version_by_alias(SOURCE, "champion")
    tags = {k: v for k, v in mv.tags.items() if not k.startswith("gate.")}
    return str(client.create_model_version(name, source or mv.source, run_id=mv.run_id,
                                           tags=tags).version)


def gate_and_promote(registry: Any, name: str, version: str) -> None:
    """The project's path to @champion: the gate against today's champion, then promote."""
    client = MlflowClient(tracking_uri=registry.tracking_uri)
    bound = regate(name, version, claims_path=registry.root / "claims.yaml", client=client)
    assert bound.passed, bound.result.failures()
    record = promote(name, version, client=client)
    assert record.outcome == "promoted", record.reasons


def live_scorer(registry: Any, name: str, **kwargs: Any) -> LiveScorer:
    scorer = CustomerScorer.from_registry(tracking_uri=registry.tracking_uri,
                                          names={"churn": name})
    return LiveScorer(scorer, kwargs.pop("data", registry.data),
                      tracking_uri=registry.tracking_uri, **kwargs)


# --------------------------------------------------------------------------- polling
def test_a_poll_swaps_in_a_new_verified_champion(scoring_registry: Any, name: str,
                                                 customer: int) -> None:
    v1 = new_version(scoring_registry, name)
    gate_and_promote(scoring_registry, name, v1)
    live = live_scorer(scoring_registry, name)
    assert live.poll_models() is None  # nothing moved
    before = live.current

    v2 = new_version(scoring_registry, name)
    gate_and_promote(scoring_registry, name, v2)
    attempt = live.poll_models()
    assert attempt is not None and attempt.outcome == "swapped", attempt
    assert attempt.swapped == {"churn": v2} and attempt.error is None
    assert attempt.not_swapped == {}
    after = live.current
    assert after.scorer.versions()[name] == v2
    assert after.scorer.models["churn"].verified is True
    # a request holding the old reference finishes on the old model
    assert before.scorer.versions()[name] == v1
    assert before.scorer.profile(before.data, customer)[0].model_versions[name] == v1
    # the families that did not move are the very objects served before, the data too
    assert after.scorer.ltv is before.scorer.ltv and after.scorer.recs is before.scorer.recs
    assert after.data is before.data and after.models_loaded_at > before.models_loaded_at

    with TestClient(create_app(live, auth="off"), raise_server_exceptions=False) as c:
        health = c.get("/health").json()
        assert health["models"]["churn"]["version"] == v2
        assert health["families"]["churn"] == {"family": "churn", "name": name,
                                               "state": "verified", "version": v2,
                                               "reason": None}
        assert health["live"]["last_model_reload"]["outcome"] == "swapped"
        assert health["live"]["not_swapped"] == {}
        profile = c.get(f"/customers/{customer}/profile")
        assert profile.status_code == 200
        assert profile.json()["model_versions"][name] == v2


def test_an_unverified_champion_is_not_swapped_and_health_says_why(
        scoring_registry: Any, name: str, customer: int) -> None:
    v1 = new_version(scoring_registry, name)
    gate_and_promote(scoring_registry, name, v1)
    live = live_scorer(scoring_registry, name)
    v2 = new_version(scoring_registry, name)
    client = MlflowClient(tracking_uri=scoring_registry.tracking_uri)
    client.set_registered_model_alias(name, "champion", v2)  # by hand, round the gate

    attempt = live.poll_models()
    assert attempt is not None and attempt.outcome == "refused", attempt
    assert attempt.swapped == {} and attempt.error is None
    assert f"v{v2} refused" in attempt.not_swapped["churn"]
    assert "outside `promote`" in attempt.not_swapped["churn"]
    assert live.current.scorer.versions()[name] == v1
    with TestClient(create_app(live, auth="off"), raise_server_exceptions=False) as c:
        health = c.get("/health").json()
        assert health["status"] == "ok"
        assert health["models"]["churn"]["version"] == v1
        assert "outside `promote`" in health["live"]["not_swapped"]["churn"]
        assert health["live"]["last_model_reload"]["outcome"] == "refused"
        profile = c.get(f"/customers/{customer}/profile")
        assert profile.status_code == 200 and profile.json()["model_versions"][name] == v1

    # once it goes through the gate and promote, the next poll serves it
    gate_and_promote(scoring_registry, name, v2)
    attempt = live.poll_models()
    assert attempt is not None and attempt.swapped == {"churn": v2}, attempt
    assert live.status().not_swapped == {}


def test_a_load_error_is_reported_and_the_old_model_keeps_serving(
        scoring_registry: Any, name: str, customer: int, tmp_path: Path) -> None:
    v1 = new_version(scoring_registry, name)
    gate_and_promote(scoring_registry, name, v1)
    live = live_scorer(scoring_registry, name)
    # a verified champion whose files are gone from the artifact store
    v2 = new_version(scoring_registry, name, source=str(tmp_path / "deleted-model"))
    gate_and_promote(scoring_registry, name, v2)

    attempt = live.poll_models()
    assert attempt is not None and attempt.outcome == "failed", attempt
    assert attempt.error is not None and attempt.swapped == {}
    assert f"loading {name} v{v2} failed" in attempt.not_swapped["churn"]
    assert live.current.scorer.versions()[name] == v1
    with TestClient(create_app(live, auth="off"), raise_server_exceptions=False) as c:
        health = c.get("/health").json()
        last = health["live"]["last_model_reload"]
        assert last["outcome"] == "failed" and last["error"] == attempt.error
        assert last["started_at"] and last["detail"]
        assert health["models"]["churn"]["version"] == v1
        profile = c.get(f"/customers/{customer}/profile")
        assert profile.status_code == 200 and profile.json()["model_versions"][name] == v1
    # the failure is tried again at the next poll, and stays reported while it lasts
    again = live.poll_models()
    assert again is not None and again.outcome == "failed"


def test_a_champion_whose_definitions_disagree_is_not_swapped_in(
        scoring_registry: Any, name: str) -> None:
    v1 = new_version(scoring_registry, name)
    gate_and_promote(scoring_registry, name, v1)
    live = live_scorer(scoring_registry, name)
    v2 = new_version(scoring_registry, name)
    MlflowClient(tracking_uri=scoring_registry.tracking_uri).set_model_version_tag(
        name, v2, "definitions.active_window_days", "120")
    gate_and_promote(scoring_registry, name, v2)

    attempt = live.poll_models()
    assert attempt is not None and attempt.outcome == "failed", attempt
    assert attempt.error == "InputError"
    assert "active_window_days" in attempt.not_swapped["churn"]
    assert live.current.scorer.versions()[name] == v1


# --------------------------------------------------------------------------- admin refresh
@pytest.fixture(scope="module")
def scorer(scoring_registry: Any) -> CustomerScorer:
    return CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)


def test_admin_refresh_needs_an_admin_key_then_swaps_the_data(
        scoring_registry: Any, scorer: CustomerScorer, tmp_path: Path) -> None:
    folder = tmp_path / "events"
    simulate(SimulationConfig(n_customers=300, seed=3)).save(folder)
    load = functools.partial(MarketplaceData.load, folder)
    live = LiveScorer(scorer, load(), load_data=load, data_source=str(folder))
    full = scoring_registry.data
    newcomer = int(full.customers["customer_id"].max())
    old_end = live.current.data.observation_end

    with TestClient(create_app(live, auth="off"), raise_server_exceptions=False) as c:
        off = c.post("/admin/refresh")  # no key store: no key can pass, even with auth off
        assert off.status_code == 401, off.text
        assert "no key store" in off.json()["detail"]

    keys = KeyStore(f"sqlite:///{tmp_path / 'service.db'}")
    partner = keys.create("partner", "customers:read,analytics:read,providers:read").token
    with TestClient(create_app(live, auth="off", keys=keys),
                    raise_server_exceptions=False) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": "Basic Y29ycmVjdDpob3JzZQ=="}):
            refused = c.post("/admin/refresh", headers=headers)
            assert refused.status_code == 401, (headers, refused.text)
            assert refused.headers["WWW-Authenticate"] == "Bearer"
            assert refused.json()["error"] == "AuthenticationError"
        forbidden = c.post("/admin/refresh", headers={"Authorization": f"Bearer {partner}"})
        assert forbidden.status_code == 403 and "admin" in forbidden.json()["detail"]
        assert live.current.data.observation_end == old_end

        full.save(folder)  # the source now holds newer events
        assert c.get(f"/customers/{newcomer}/profile").status_code == 404
        loaded_before = c.get("/health").json()["data_loaded_at"]
        right = {"Authorization": f"Bearer {keys.create('ops', 'admin').token}"}
        done = c.post("/admin/refresh", headers=right)
        assert done.status_code == 200, done.text
        assert done.json()["outcome"] == "swapped" and done.json()["kind"] == "data"
        health = c.get("/health").json()
        assert health["data_end"] == full.observation_end.isoformat() + "Z"
        assert health["default_as_of"] == full.observation_end.isoformat() + "Z"
        assert health["customers"] == len(full.customers)
        assert health["data_loaded_at"] > loaded_before
        assert health["live"]["last_data_refresh"]["outcome"] == "swapped"
        assert health["live"]["data_source"] == str(folder)
        assert c.get(f"/customers/{newcomer}/profile").status_code == 200

        shutil.rmtree(folder)  # a source that fails: the error's status, the data kept
        broken = c.post("/admin/refresh", headers=right)
        assert broken.status_code == 422, broken.text
        assert "no data folder" in broken.json()["detail"]
        health = c.get("/health").json()
        assert health["customers"] == len(full.customers)
        assert health["live"]["last_data_refresh"]["outcome"] == "failed"
        assert health["live"]["last_data_refresh"]["error"] == "InputNotFoundError"
        assert c.get(f"/customers/{newcomer}/profile").status_code == 200


def test_data_given_in_memory_cannot_be_refreshed(scoring_registry: Any,
                                                   scorer: CustomerScorer) -> None:
    keys = KeyStore("sqlite://")
    token = keys.create("ops", "admin").token
    with TestClient(create_app(scorer, scoring_registry.data, keys=keys),
                    raise_server_exceptions=False) as c:
        response = c.post("/admin/refresh", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 409
        assert response.json()["error"] == "NoDataSourceError"
        assert c.get("/health").json()["live"]["poll_interval_s"] == 0


def test_serve_refuses_a_negative_interval() -> None:
    from barberpro_ml.cli.main import app

    for option in ("--poll-interval", "--data-refresh-interval"):
        result = CliRunner().invoke(app, ["serve", option, "-1"])
        assert result.exit_code == 2 and option in result.output, result.output


# --------------------------------------------------------------------------- under load
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_a_champion_swap_under_load_on_loopback_loses_no_request(
        scoring_registry: Any, name: str) -> None:
    """4 clients ask for profiles while a new champion is promoted; every answer is a 200 and
    the answers move to the new version (bounded: at most 4,000 requests in at most 15 s)."""
    import uvicorn

    v1 = new_version(scoring_registry, name)
    gate_and_promote(scoring_registry, name, v1)
    live = live_scorer(scoring_registry, name, poll_interval=0.25)
    ids = [int(i) for i in live.current.scorer.snapshot(scoring_registry.data)
           .features.index[:500]]
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(live, auth="off"), host="127.0.0.1",
                                           port=port, log_level="warning"))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and serving.is_alive(), "server did not start"
        time.sleep(0.05)

    answers: list[tuple[float, float, int, str | None]] = []  # start, end, status, version
    lock = threading.Lock()
    stop = threading.Event()
    max_requests = 4000

    def hammer(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30.0) as client:
            i = k
            while not stop.is_set():
                start = time.monotonic()
                try:
                    response = client.get(f"/customers/{ids[i % len(ids)]}/profile")
                    status = response.status_code
                    version = (response.json()["model_versions"].get(name)
                               if status == 200 else response.text[:200])
                except httpx.HTTPError as exc:  # a dropped connection counts as a failure
                    status, version = -1, repr(exc)
                with lock:
                    answers.append((start, time.monotonic(), status, version))
                    if len(answers) >= max_requests:
                        stop.set()
                i += 4

    clients = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    first_new: float | None = None
    try:
        began = time.monotonic()
        for thread in clients:
            thread.start()
        time.sleep(2.0)  # on the old model
        v2 = new_version(scoring_registry, name)
        gate_and_promote(scoring_registry, name, v2)
        promoted = time.monotonic()
        while first_new is None and time.monotonic() < began + 13 and not stop.is_set():
            time.sleep(0.05)
            with lock:
                first_new = min((end for _, end, _, v in answers if v == v2), default=None)
        stop.wait(min(2.0, max(0.0, began + 15 - time.monotonic())))  # and on the new one
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
        server.should_exit = True
        serving.join(timeout=30)

    failures = [a for a in answers if a[2] != 200]
    assert not failures, failures[:5]
    assert {v for *_, v in answers} <= {v1, v2}
    assert first_new is not None, f"no answer carried v{v2} within 15 s of its promotion"
    # every request that started after an answer came from the new model ran on it
    assert all(v == v2 for start, _, _, v in answers if start > first_new)
    old = sum(v == v1 for *_, v in answers)
    took = sorted(end - start for start, end, *_ in answers)
    reload = live.status().last_model_reload
    assert reload is not None and reload.outcome == "swapped"
    print(f"\nswap under load: {len(answers)} requests by 4 clients in "
          f"{max(end for _, end, *_ in answers) - began:.1f} s, {len(failures)} failed; {old} "
          f"answered by v{v1}, {len(answers) - old} by v{v2}; first v{v2} answer "
          f"{first_new - promoted:.2f} s after promote() returned (poll every 0.25 s; verify + "
          f"load + snapshot {reload.seconds:.2f} s in the background); latency p50 "
          f"{took[len(took) // 2] * 1e3:.0f} ms, max {took[-1] * 1e3:.0f} ms")
