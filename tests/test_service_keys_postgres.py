"""The service's key store on a real PostgreSQL (production mode): keys created, listed,
authenticated and revoked; the token bucket, the daily quota and the usage counters exact
under concurrent threads and processes (no over-grant, nothing lost); the schema created once
when workers start together; the ``keys`` commands with ``--db postgresql://...``.

Every test gets a fresh database on the session's cluster (``postgres_cluster``); nothing is
mocked. The two-uvicorn-worker test on PostgreSQL is the PostgreSQL case of
``test_the_bucket_is_shared_by_two_uvicorn_workers`` in tests/test_service_security.py.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from barberpro_ml.cli.main import app as cli
from barberpro_ml.errors import InfraError, InputError
from barberpro_ml.service import AuthenticationError, KeyStore

_numbers = itertools.count()


@pytest.fixture
def service_db(postgres_cluster: Any) -> str:
    """The URL of a fresh, empty database of its own (driver psycopg, password by passfile)."""
    name = f"service_{os.getpid()}_{next(_numbers)}"
    postgres_cluster.create_database(name)
    return str(postgres_cluster.url(name))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}


def _together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` in ``n`` threads released at once; their results (or exceptions)."""
    barrier, results = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as error:  # returned to the test, which checks it
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_keys_are_created_listed_authenticated_and_revoked(service_db: str) -> None:
    store = KeyStore(service_db)
    assert store.engine.dialect.name == "postgresql"
    before = datetime.now(UTC).replace(tzinfo=None)
    partner = store.create("partner-x", "customers:read,analytics:read", quota_per_day=100)
    ops = store.create("ops", "admin", rate_per_s=5.0, burst=7)
    # another process (a second store) sees the same rows, with naive UTC timestamps
    other = KeyStore(service_db)
    key = other.authenticate(partner.token)
    assert (key.name, key.scopes, key.quota_per_day) == (
        "partner-x", ["customers:read", "analytics:read"], 100)
    assert key.created_at.tzinfo is None
    assert before - timedelta(seconds=1) <= key.created_at <= datetime.now(UTC).replace(
        tzinfo=None)
    assert (other.authenticate(ops.token).rate_per_s, other.get(ops.key.key_id).burst) == (5.0, 7)
    listed = other.list()
    assert {k.name for k in listed} == {"ops", "partner-x"}
    assert all(k.last_used_at is not None for k in listed)  # both used
    with pytest.raises(InputError, match="active key named 'ops' exists"):
        store.create("ops", "admin")
    # secrets are stored as salted hashes only
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT salt, secret_hash FROM api_keys")).all()
    assert len({bytes(s) for s, _ in stored}) == 2
    assert all(partner.token.split(".")[1].encode() not in bytes(h) for _, h in stored)
    wrong = partner.token[:-1] + ("A" if partner.token[-1] != "A" else "B")
    with pytest.raises(AuthenticationError, match="wrong secret"):
        other.authenticate(wrong)
    revoked = store.revoke("partner-x")
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationError, match="revoked"):
        other.authenticate(partner.token)  # at once, in the other process's store too
    assert [k.name for k in other.list()] == ["ops"]
    assert {k.name for k in other.list(include_revoked=True)} == {"ops", "partner-x"}
    assert store.create("partner-x", "customers:read").key.revoked_at is None  # name reusable
    assert other.failures() == {"wrong_secret": 1, "revoked": 1}


_BUCKET_WORKER = """
import json, sys, threading, time
from barberpro_ml.service import KeyStore
url, token, threads, calls, start = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
store = KeyStore(url)
key = store.authenticate(token)
granted, refused, barrier = [], [], threading.Barrier(int(threads))
def run():
    barrier.wait()
    time.sleep(max(0.0, start - time.time()))
    for _ in range(int(calls)):
        got = store.consume(key)
        (granted if got.allowed else refused).append(got.reason)
ts = [threading.Thread(target=run) for _ in range(int(threads))]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps({"granted": len(granted), "refused": refused}))
"""


def test_the_bucket_never_over_grants_to_concurrent_processes(service_db: str) -> None:
    burst = 37
    # refill 0.001/s: the run's few seconds add a hundredth of a token, never a whole one
    token = KeyStore(service_db).create("hot", "customers:read", rate_per_s=0.001,
                                        burst=burst).token
    start = time.time() + 4  # every process is up and waiting before the first call
    processes = [subprocess.Popen(
        [sys.executable, "-c", _BUCKET_WORKER, service_db, token, "4", "10", str(start)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err[-2000:] for _, err in outputs]
    answers = [json.loads(out) for out, _ in outputs]
    # 4 processes x 4 threads x 10 calls = 160 attempts on a key's first row, raced
    assert sum(a["granted"] for a in answers) == burst
    refused = [r for a in answers for r in a["refused"]]
    assert len(refused) == 160 - burst and set(refused) == {"rate"}
    with KeyStore(service_db).engine.connect() as conn:
        tokens = conn.execute(sa.text("SELECT tokens FROM rate_limits")).scalar_one()
    assert 0 <= tokens < 1


def test_the_daily_quota_is_exact_under_concurrent_workers(service_db: str) -> None:
    key = KeyStore(service_db).create("q", "analytics:read", burst=1000,
                                      quota_per_day=7).key
    stores = [KeyStore(service_db) for _ in range(8)]
    noon = 86400 * 20_800 + 43_200.0  # a fixed UTC noon
    answers = [a for per_thread in _together(
        8, lambda i: [stores[i].consume(key, noon + j / 100) for j in range(3)])
        for a in per_thread]
    assert sum(a.allowed for a in answers) == 7
    refused = [a for a in answers if not a.allowed]
    assert {a.reason for a in refused} == {"quota"}
    assert all(43_000 < a.retry_after <= 43_200 for a in refused)  # until UTC midnight
    assert stores[0].used_today([key.key_id], now=noon) == {key.key_id: 7}
    assert stores[1].consume(key, noon + 86_400).allowed  # a new UTC day
    assert stores[1].used_today([key.key_id], now=noon + 86_400) == {key.key_id: 1}


def test_usage_and_failures_are_counted_exactly_by_concurrent_writers(service_db: str) -> None:
    stores = [KeyStore(service_db) for _ in range(8)]
    now = 86400 * 20_800 + 600.0

    def write(i: int) -> None:
        for j in range(25):
            stores[i].record_usage("abcdef0123456789", "/v1/x", 200 + 300 * (j % 2), 0.01,
                                   now=now)
            stores[i].record_failure("missing")

    assert _together(8, write) == [None] * 8
    rows = {r.status_class: r for r in stores[0].usage(now=now)}
    assert {c: r.requests for c, r in rows.items()} == {"2xx": 104, "5xx": 96}
    assert sum(r.latency_s for r in rows.values()) == pytest.approx(2.0)
    assert stores[0].failures() == {"missing": 200}


_STARTER = """
import sys, time
from barberpro_ml.service import KeyStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
KeyStore(sys.argv[1])
"""


def test_workers_starting_together_on_an_empty_database_all_start(service_db: str) -> None:
    start = time.time() + 4
    processes = [subprocess.Popen([sys.executable, "-c", _STARTER, service_db, str(start)],
                                  env=_env(), stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, [e[-1500:] for e in errors if e]
    with sa.create_engine(service_db).connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert tables == {"api_keys", "rate_limits", "api_usage", "auth_failures"}


def test_two_concurrent_creates_of_one_name_make_one_active_key(service_db: str) -> None:
    stores = [KeyStore(service_db) for _ in range(6)]
    made = _together(6, lambda i: stores[i].create("partner-y", "providers:read"))
    assert sum(not isinstance(m, Exception) for m in made) == 1
    assert all("active key named 'partner-y' exists" in str(m)
               for m in made if isinstance(m, Exception)), made
    assert [k.name for k in stores[0].list()] == ["partner-y"]


def test_keys_commands_take_a_postgresql_url(service_db: str) -> None:
    plain = service_db.replace("postgresql+psycopg://", "postgresql://")  # no driver named
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create", "--name", "partner-z", "--scopes",
                               "customers:read", "--quota-per-day", "50", "--db", plain])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert KeyStore(service_db).authenticate(token).quota_per_day == 50
    listed = runner.invoke(cli, ["keys", "list", "--db", plain])
    assert listed.exit_code == 0 and "partner-z" in listed.output
    assert token.split(".")[1] not in listed.output
    assert runner.invoke(cli, ["keys", "revoke", "partner-z", "--db", plain]).exit_code == 0
    with pytest.raises(AuthenticationError, match="revoked"):
        KeyStore(service_db).authenticate(token)


def test_an_unreachable_database_is_a_clear_error_without_the_password(
        postgres_cluster: Any) -> None:
    url = f"postgresql://barberpro:hunter2@127.0.0.1:{postgres_cluster.port}/no_such_db"
    with pytest.raises(InfraError, match="cannot be opened") as caught:
        KeyStore(url)
    assert "hunter2" not in str(caught.value) and "BARBERPRO_SERVICE_DB" in str(caught.value)
    result = CliRunner().invoke(cli, ["keys", "list", "--db", url])
    assert result.exit_code == 4 and "hunter2" not in result.output


@pytest.mark.parametrize("url", ["mysql://u:hunter2@db.example/service", "oracle://x@y/z",
                                 "no url at all hunter2", "postgresql://u:hunter2@h:port/db"])
def test_a_database_other_than_sqlite_or_postgresql_is_refused(url: str) -> None:
    with pytest.raises(InputError, match=r"SQLite or PostgreSQL|not a SQLAlchemy URL") as caught:
        KeyStore(url)
    assert "hunter2" not in str(caught.value) and "BARBERPRO_SERVICE_DB" in str(caught.value)
