"""Benchmark: the per-request cost of counting usage and of the rate limit in the service's
database.

Measurements on a SQLite file in a temporary folder (WAL, as the service opens it), or on the
database ``--db`` names (PostgreSQL in production mode; rows of a fresh key and route, so an
existing database is fine):

- ``record_usage``: one :meth:`KeyStore.record_usage` call (the atomic ``UPDATE``; an
  ``INSERT`` for a row's first request), over 20 (key, route) rows;
- ``request``: a request through the :class:`Observability` middleware (one trivial route,
  in-process ASGI client) with and without the usage row; the difference is what a request
  pays (the write runs in a worker thread after the answer is sent, so this is time the
  request's task is held, not time the caller waits);
- ``consume``: one :meth:`KeyStore.consume` call (the token bucket and daily quota: one
  conditional ``UPDATE``), one caller;
- ``consume_concurrent``: ``--threads`` callers, each with its own store (connection pool), as
  worker processes would be, taking from one key's bucket: requests let through per second.

Usage::

    .venv/bin/python benchmarks/bench_usage.py                 # 2,000 calls / requests
    .venv/bin/python benchmarks/bench_usage.py --n 500 --json out.json
    .venv/bin/python benchmarks/bench_usage.py --db "$BARBERPRO_SERVICE_DB"   # after infra up
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from barberpro_ml.service.keys import KeyStore
from barberpro_ml.service.observability import Observability

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit


def _quantiles(seconds: list[float]) -> dict[str, float]:
    us = sorted(s * 1e6 for s in seconds)
    return {"mean_us": round(statistics.fmean(us), 1), "p50_us": round(us[len(us) // 2], 1),
            "p95_us": round(us[int(len(us) * 0.95)], 1)}


def bench_record(store: KeyStore, n: int, tag: str) -> dict[str, float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        store.record_usage(f"key{i % 4}", f"/v1/route/{tag}/{i % 5}", 200, 0.01)
        times.append(time.perf_counter() - start)
    return _quantiles(times)


def bench_consume(store: KeyStore, n: int) -> dict[str, float]:
    key = store.create(f"bench-{secrets.token_hex(4)}", "admin", rate_per_s=1e6,
                       burst=10**9).key
    times = []
    for _ in range(n):
        start = time.perf_counter()
        allowed = store.consume(key).allowed
        times.append(time.perf_counter() - start)
        assert allowed
    return _quantiles(times)


def bench_consume_concurrent(url: str, threads: int, n: int) -> dict[str, float]:
    """``threads`` callers with a store each, ``n`` calls each, on one key's bucket."""
    stores = [KeyStore(url) for _ in range(threads)]
    key = stores[0].create(f"bench-{secrets.token_hex(4)}", "admin", rate_per_s=1e6,
                           burst=10**9).key
    granted = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def run(i: int) -> None:
        barrier.wait()
        granted[i] = sum(stores[i].consume(key).allowed for _ in range(n))

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    assert sum(granted) == threads * n, granted
    return {"threads": threads, "calls": threads * n,
            "granted_per_s": round(threads * n / wall, 1)}


def _app(store: KeyStore | None) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "ok"}

    app.add_middleware(Observability,
                       record_usage=None if store is None else store.record_usage)
    return app


async def bench_requests(store: KeyStore | None, n: int) -> dict[str, float]:
    transport = httpx.ASGITransport(app=_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(50):  # warm up
            await client.get("/v1/ping")
        times = []
        for _ in range(n):
            start = time.perf_counter()
            answer = await client.get("/v1/ping")
            times.append(time.perf_counter() - start)
            assert answer.status_code == 200
    return _quantiles(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--json", default=None)
    parser.add_argument("--db", default=None,
                        help="SQLAlchemy URL of the service's database; default: a SQLite "
                             "file in a temporary folder")
    parser.add_argument("--threads", type=int, default=4,
                        help="concurrent callers of the bucket")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.db or f"sqlite:///{Path(folder) / 'service.db'}"
        store = KeyStore(url)
        record = bench_record(store, args.n, secrets.token_hex(4))
        consume = bench_consume(store, args.n)
        concurrent = bench_consume_concurrent(url, args.threads, max(1, args.n // args.threads))
        without = asyncio.run(bench_requests(None, args.n))
        before = sum(r.requests for r in store.usage() if r.route == "/v1/ping")
        with_usage = asyncio.run(bench_requests(store, args.n))
        counted = sum(r.requests for r in store.usage() if r.route == "/v1/ping") - before
    assert counted == args.n + 50, counted
    emit({"n": args.n, "python": platform.python_version(),
          "database": "sqlite file (WAL)" if args.db is None else store.engine.dialect.name,
          "record_usage": record, "consume": consume, "consume_concurrent": concurrent,
          "request_without_usage": without, "request_with_usage": with_usage,
          "added_mean_us": round(with_usage["mean_us"] - without["mean_us"], 1)}, args.json)


if __name__ == "__main__":
    main()
