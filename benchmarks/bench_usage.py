"""Benchmark: the per-request cost of counting usage in the service's database.

Two measurements on a SQLite file in a temporary folder (WAL, as the service opens it):

- ``record_usage``: one :meth:`KeyStore.record_usage` call (the atomic ``UPDATE``; an
  ``INSERT`` for a row's first request), over 20 (key, route) rows;
- ``request``: a request through the :class:`Observability` middleware (one trivial route,
  in-process ASGI client) with and without the usage row; the difference is what a request
  pays (the write runs in a worker thread after the answer is sent, so this is time the
  request's task is held, not time the caller waits).

Usage::

    .venv/bin/python benchmarks/bench_usage.py                 # 2,000 calls / requests
    .venv/bin/python benchmarks/bench_usage.py --n 500 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
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


def bench_record(store: KeyStore, n: int) -> dict[str, float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        store.record_usage(f"key{i % 4}", f"/v1/route/{i % 5}", 200, 0.01)
        times.append(time.perf_counter() - start)
    return _quantiles(times)


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = KeyStore(f"sqlite:///{Path(folder) / 'service.db'}")
        record = bench_record(store, args.n)
        without = asyncio.run(bench_requests(None, args.n))
        with_usage = asyncio.run(bench_requests(store, args.n))
        counted = sum(r.requests for r in store.usage() if r.route == "/v1/ping")
    assert counted == args.n + 50, counted
    emit({"n": args.n, "python": platform.python_version(), "database": "sqlite file (WAL)",
          "record_usage": record, "request_without_usage": without,
          "request_with_usage": with_usage,
          "added_mean_us": round(with_usage["mean_us"] - without["mean_us"], 1)}, args.json)


if __name__ == "__main__":
    main()
