"""Scoring API latency and throughput, each beside the registered pyfunc models called one by one.

Measured in one run, against the champions of the tracking store (``make demo`` first, or
``--tracking-uri``) and the event tables the pipeline wrote (``data/generated/pipeline``):

1. **one profile, in process**: ``CustomerScorer.profile(data, id)``, p50/p99 over ``--requests``
   random customers, beside the *reference*: the four registered models loaded with
   ``mlflow.pyfunc.load_model`` and called one after another on the same customer's features
   (churn, LTV, segments, recommendations; features already built, so the reference does less
   than a profile: no reasons, lifecycle, next service, action).
2. **a batch of 100, in process**: ``profile_batch`` beside the same four pyfunc calls on 100 rows.
3. **the same two over HTTP**: ``barberpro-ml serve``'s app under uvicorn on loopback,
   ``GET /customers/{id}/profile`` and ``POST /customers/batch-profile`` with a keep-alive client.
4. **score_frame throughput** on a simulated marketplace of ``--customers`` (1M by default):
   customers per second of ``score_frame`` (with and without reasons) beside the four pyfunc
   models on the same feature rows in chunks. The snapshot (features, lifecycle, next services,
   campaign effects for every customer) is timed separately. The process's peak resident set
   size while scoring with reasons (data, snapshot and all) is sampled every 5 ms. Beside
   each time, the process's CPU seconds (all threads): on a machine shared with other work
   the wall time stretches, the CPU time much less.

The first call at a new ``as_of`` builds the snapshot; it is reported as the cold start and left
out of the percentiles, which are warm: what a service sees once running.

5. with ``--blocks N``, first of all: ``score_blocks`` in blocks of ``N`` customers with
   reasons, each block written to Parquet, timed with its peak RSS (no whole snapshot exists
   yet in the process).

    python benchmarks/bench_scoring.py [--requests 300] [--customers 1000000] [--skip-http]
                                       [--blocks 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow
import numpy as np
import pandas as pd
from _common import PeakRss, rss  # benchmarks/ is on sys.path when run as a script

from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.scoring import CustomerScorer

ROOT = Path(__file__).resolve().parents[1]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "n": len(ms)}


def timed(calls: list[Callable[[], Any]]) -> list[float]:
    out = []
    for call in calls:
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


class Reference:
    """The registered models loaded as plain pyfunc models, called one by one."""

    def __init__(self, scorer: CustomerScorer) -> None:
        self.models = {family: mlflow.pyfunc.load_model(f"models:/{ref.name}/{ref.version}")
                       for family, ref in scorer.models.items()}
        self.scorer = scorer

    def __call__(self, features: pd.DataFrame, neighborhoods: pd.Series) -> None:
        for family in ("churn", "ltv", "segments"):
            model = self.models[family]
            spec = model.unwrap_python_model().spec.features
            model.predict(spec.to_request(features))
        ids = features.index.to_numpy(dtype=np.int64)
        self.models["recs"].predict(pd.DataFrame({
            "user_id": ids, "k": np.full(len(ids), 8, dtype=np.int64),
            "neighborhood": neighborhoods.reindex(features.index).to_numpy()}))


def in_process(scorer: CustomerScorer, data: MarketplaceData, reference: Reference,
               n_requests: int, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    snap = scorer.snapshot(data)
    cold = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    ids = rng.choice(snap.features.index.to_numpy(), size=n_requests, replace=True)
    batches = [rng.choice(snap.features.index.to_numpy(), size=100, replace=False)
               for _ in range(max(n_requests // 3, 20))]
    # warm-up (imports, first allocations, caches) of every path timed below
    scorer.profile(data, int(ids[0]))
    scorer.profile_batch(data, [int(i) for i in batches[0]])
    reference(snap.features.loc[[ids[0]]], snap.neighborhoods)
    reference(snap.features.loc[batches[0]], snap.neighborhoods)
    one = timed([lambda i=int(i): scorer.profile(data, i) for i in ids])
    one_ref = timed([lambda i=int(i): reference(snap.features.loc[[i]], snap.neighborhoods)
                     for i in ids])
    batch = timed([lambda b=b: scorer.profile_batch(data, [int(i) for i in b])
                   for b in batches])
    batch_ref = timed([lambda b=b: reference(snap.features.loc[b], snap.neighborhoods)
                       for b in batches])
    return {"customers": len(snap.features), "cold_snapshot_s": cold,
            "one_profile": percentiles(one), "one_reference": percentiles(one_ref),
            "batch_100": percentiles(batch), "batch_100_reference": percentiles(batch_ref)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def over_http(scorer: CustomerScorer, data: MarketplaceData, n_requests: int,
              seed: int) -> dict[str, Any]:
    import httpx
    import uvicorn

    from barberpro_ml.service import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(scorer, data, auth="off"), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60.0) as client:
            for _ in range(200):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            snap = scorer.snapshot(data)
            rng = np.random.default_rng(seed + 1)
            ids = rng.choice(snap.features.index.to_numpy(), size=n_requests, replace=True)
            batches = [rng.choice(snap.features.index.to_numpy(), size=100, replace=False)
                       for _ in range(max(n_requests // 3, 20))]
            client.get(f"/customers/{int(ids[0])}/profile")
            client.post("/customers/batch-profile",
                        json={"customer_ids": [int(i) for i in batches[0]]})
            one = timed([lambda i=int(i): client.get(f"/customers/{i}/profile")
                         .raise_for_status() for i in ids])
            batch = timed([lambda b=b: client.post(
                "/customers/batch-profile", json={"customer_ids": [int(i) for i in b]})
                .raise_for_status() for b in batches])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return {"one_profile": percentiles(one), "batch_100": percentiles(batch)}


def blocked(scorer: CustomerScorer, data: MarketplaceData, block_customers: int,
            chunk: int) -> dict[str, Any]:
    """``score_blocks`` with reasons, each block written to Parquet as it comes (what a batch
    job does), before any whole snapshot exists in the process: time and peak RSS."""
    import tempfile

    rows = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench-blocks-") as tmp, PeakRss() as memory:
        for i, frame in enumerate(scorer.score_blocks(data, block_customers=block_customers,
                                                      chunk_size=chunk)):
            frame.to_parquet(Path(tmp) / f"block-{i:05d}.parquet")
            rows += len(frame)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"block_customers": block_customers, "customers": rows, "s": seconds, "cpu_s": cpu,
            "customers_per_s": rows / seconds, "peak_rss_gib": memory.peak / 2**30,
            "rss_growth_gib": (memory.peak - memory.start) / 2**30}


def throughput(n_customers: int, chunk: int, blocks: int | None = None) -> dict[str, Any]:
    # Batch scoring uses every core for the boosted models and their SHAP values (as
    # `barberpro-ml score` does); online requests use one thread (the scorer's default).
    scorer = CustomerScorer.from_registry(n_jobs=-1)
    cfg = SimulationConfig.from_yaml(ROOT / "configs" / "simulation.yaml")
    cfg = SimulationConfig.model_validate({**cfg.model_dump(), "n_customers": n_customers,
                                           "seed": 7})
    start = time.perf_counter()
    data = simulate(cfg)
    simulated = time.perf_counter() - start
    data_rss_gib = rss() / 2**30  # the process with the data loaded
    # the churn model's per-tree slices for TreeSHAP are built once per loaded model: built
    # here and timed apart, so that neither scoring run below carries them
    start = time.perf_counter()
    churn = scorer.churn.estimator if scorer.churn is not None else None
    if churn is not None and hasattr(churn, "_pattern_shap"):
        churn._pattern_shap()
    treeshap_build = time.perf_counter() - start
    in_blocks = blocked(scorer, data, blocks, chunk) if blocks else None
    start, cpu0 = time.perf_counter(), time.process_time()
    snap = scorer.snapshot(data)
    snapshot, snapshot_cpu = time.perf_counter() - start, time.process_time() - cpu0
    n = len(snap.features)
    start, cpu0 = time.perf_counter(), time.process_time()
    scorer.score_frame(data, reasons=False, chunk_size=chunk)
    no_reasons, no_reasons_cpu = time.perf_counter() - start, time.process_time() - cpu0
    start, cpu0 = time.perf_counter(), time.process_time()
    with PeakRss() as memory:
        scored = scorer.score_frame(data, reasons=True, chunk_size=chunk)
    with_reasons, with_reasons_cpu = time.perf_counter() - start, time.process_time() - cpu0
    reference = Reference(scorer)
    start = time.perf_counter()
    for lo in range(0, n, chunk):
        reference(snap.features.iloc[lo:lo + chunk], snap.neighborhoods)
    pyfunc = time.perf_counter() - start
    return {"customers": n, "bookings": len(data.bookings), "simulate_s": simulated,
            "snapshot_s": snapshot, "score_frame_s": with_reasons,
            "score_frame_no_reasons_s": no_reasons, "pyfunc_one_by_one_s": pyfunc,
            "customers_per_s": n / with_reasons,
            "customers_per_s_no_reasons": n / no_reasons,
            "pyfunc_customers_per_s": n / pyfunc, "columns": len(scored.columns),
            "score_frame_peak_rss_gib": memory.peak / 2**30,
            "score_frame_rss_growth_gib": (memory.peak - memory.start) / 2**30,
            "snapshot_cpu_s": snapshot_cpu, "score_frame_cpu_s": with_reasons_cpu,
            "score_frame_no_reasons_cpu_s": no_reasons_cpu, "load_average": os.getloadavg(),
            "rss_with_data_gib": data_rss_gib, "blocks": in_blocks,
            "treeshap_build_s": treeshap_build}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "generated" / "pipeline"))
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI",
                                                                 "sqlite:///mlflow.db"))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--blocks", type=int, default=None,
                        help="also score in blocks of this many customers (score_blocks), "
                             "first, and report its peak RSS")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    mlflow.set_tracking_uri(args.tracking_uri)
    start = time.perf_counter()
    scorer = CustomerScorer.from_registry()
    loaded = time.perf_counter() - start
    data = MarketplaceData.load(args.data)
    reference = Reference(scorer)
    results: dict[str, Any] = {"versions": scorer.versions(), "load_models_s": loaded,
                               "in_process": in_process(scorer, data, reference, args.requests,
                                                        args.seed)}
    if not args.skip_http:
        results["http"] = over_http(scorer, data, args.requests, args.seed)
    if not args.skip_throughput:
        results["throughput"] = throughput(args.customers, args.chunk, args.blocks)
    print(json.dumps(results, indent=2))
    ip = results["in_process"]
    print(f"\none profile in process: p50 {ip['one_profile']['p50_ms']:.1f} ms, "
          f"p99 {ip['one_profile']['p99_ms']:.1f} ms (four pyfunc models one by one: p50 "
          f"{ip['one_reference']['p50_ms']:.1f}, p99 {ip['one_reference']['p99_ms']:.1f} ms)")
    print(f"batch of 100 in process: p50 {ip['batch_100']['p50_ms']:.1f} ms, p99 "
          f"{ip['batch_100']['p99_ms']:.1f} ms (pyfunc one by one: p50 "
          f"{ip['batch_100_reference']['p50_ms']:.1f}, p99 "
          f"{ip['batch_100_reference']['p99_ms']:.1f} ms)")
    if "http" in results:
        h = results["http"]
        print(f"over HTTP: one profile p50 {h['one_profile']['p50_ms']:.1f} / p99 "
              f"{h['one_profile']['p99_ms']:.1f} ms; batch of 100 p50 "
              f"{h['batch_100']['p50_ms']:.1f} / p99 {h['batch_100']['p99_ms']:.1f} ms")
    if "throughput" in results:
        t = results["throughput"]
        print(f"score_frame on {t['customers']:,} customers: {t['customers_per_s']:,.0f}/s with "
              f"reasons, {t['customers_per_s_no_reasons']:,.0f}/s without (snapshot "
              f"{t['snapshot_s']:.1f} s); pyfunc models one by one "
              f"{t['pyfunc_customers_per_s']:,.0f}/s; peak RSS while scoring with reasons "
              f"{t['score_frame_peak_rss_gib']:.2f} GiB (process), "
              f"{t['score_frame_rss_growth_gib']:.2f} GiB above its start")
        if t["blocks"]:
            b = t["blocks"]
            print(f"score_blocks of {b['block_customers']:,} with reasons, written to Parquet: "
                  f"{b['customers_per_s']:,.0f}/s ({b['s']:.1f} s); peak RSS "
                  f"{b['peak_rss_gib']:.2f} GiB (process with its data: "
                  f"{t['rss_with_data_gib']:.2f} GiB before)")


if __name__ == "__main__":
    main()
