"""Benchmark: point-in-time customer features for a large marketplace at one ``as_of``.

Reports wall time, bookings per second, peak memory and the ratio to the floor, one
``np.bincount`` over the same booking rows (no feature computation can scan the bookings
faster than that), all measured in the same run on the same data.

Usage::

    .venv/bin/python benchmarks/bench_features.py                         # 1M customers
    .venv/bin/python benchmarks/bench_features.py --customers 100000 --source synthetic

``--source simulate`` (the default) uses :func:`barberpro_ml.data.simulate`;
``--source synthetic`` builds a contract-valid data set with a vectorised generator here, which
is much faster to create (the features do not care where the data came from).
The target is at least 2 million bookings per second on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from _common import emit, marketplace  # benchmarks/ is on sys.path when run as a script

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features import customer_features, provider_features


def synthetic(n_customers: int, seed: int = 0) -> MarketplaceData:
    """A contract-valid marketplace: ~12 bookings per customer over two years, vectorised."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2023-01-01T00:00", "s")
    span = 730 * 86_400
    n_providers = max(n_customers // 150, 2)
    customers = pd.DataFrame({
        "customer_id": rng.permutation(n_customers).astype(np.int64) + 1,
        "signup_at": start + rng.integers(-365 * 86_400, span // 2, n_customers),
        "acquisition_channel": rng.choice(["organic", "paid_social", "referral", "partner"],
                                          n_customers),
        "neighborhood": rng.choice([f"hood-{i}" for i in range(12)], n_customers),
    })
    joined = start - rng.integers(400, 2000, n_providers) * 86_400
    left = np.where(rng.random(n_providers) < 0.15,
                    start + rng.integers(30 * 86_400, span, n_providers),
                    np.datetime64("NaT", "s"))
    providers = pd.DataFrame({
        "provider_id": np.arange(1, n_providers + 1), "joined_at": joined,
        "left_at": left.astype("datetime64[s]"),
        "neighborhood": rng.choice([f"hood-{i}" for i in range(12)], n_providers),
        "price_tier": rng.choice(["budget", "standard", "premium"], n_providers),
    })
    base = np.array([30.0, 15.0, 40.0, 25.0, 55.0, 20.0])
    services = pd.DataFrame({"service_id": np.arange(1, 7),
                             "name": ["cut", "trim", "cut+trim", "kids", "color", "shave"],
                             "base_price": base, "duration_min": [30, 15, 45, 20, 60, 20]})

    visits = rng.poisson(12, n_customers)
    owner = np.repeat(np.arange(n_customers), visits)
    signup = customers["signup_at"].to_numpy().astype("datetime64[s]").astype(np.int64)
    gaps = rng.exponential(35 * 86_400, len(owner)).astype(np.int64) + 3600
    # Cumulative gaps within each customer: a global cumsum minus the total before its run.
    total = np.cumsum(gaps)
    before = np.concatenate(([0], total))[np.cumsum(visits) - visits]
    offset = np.repeat(before, visits)
    scheduled = signup[owner] + (total - offset)
    keep = scheduled < start.astype(np.int64) + span
    owner, scheduled = owner[keep], scheduled[keep]
    n = len(owner)
    main_provider = rng.integers(1, n_providers + 1, n_customers)
    provider = np.where(rng.random(n) < 0.8, main_provider[owner],
                        rng.integers(1, n_providers + 1, n))
    lead = rng.integers(0, 14 * 86_400, n)
    created = np.maximum(scheduled - lead, signup[owner])
    status = rng.choice(np.array(["completed", "cancelled", "no_show"]), n, p=[0.85, 0.1, 0.05])
    left_at = providers["left_at"].to_numpy().astype("datetime64[s]")[provider - 1]
    joined_at = providers["joined_at"].to_numpy().astype("datetime64[s]")[provider - 1]
    gone = ~np.isnat(left_at) & (scheduled > left_at.astype(np.int64))
    status = np.where(gone & (status == "completed"), "cancelled", status)
    created = np.maximum(created, joined_at.astype(np.int64))
    scheduled = np.maximum(scheduled, created)
    service = rng.integers(1, 7, n)
    price = np.round(base[service - 1] * rng.choice([0.9, 1.0, 1.2], n), 2)
    discount = np.where(rng.random(n) < 0.1, np.round(price * 0.2, 2), 0.0)
    bookings = pd.DataFrame({
        "booking_id": np.arange(1, n + 1), "customer_id": customers["customer_id"].to_numpy()[
            owner], "provider_id": provider, "service_id": service,
        "created_at": created.astype("datetime64[s]"),
        "scheduled_at": scheduled.astype("datetime64[s]"), "status": status,
        "price": price, "discount": discount, "tip": np.where(status == "completed", 3.0, 0.0),
    })
    done = np.flatnonzero((status == "completed") & (rng.random(n) < 0.3))
    reviews = pd.DataFrame({
        "review_id": np.arange(1, len(done) + 1), "booking_id": bookings["booking_id"].to_numpy()[
            done], "customer_id": bookings["customer_id"].to_numpy()[done],
        "provider_id": provider[done], "rating": rng.integers(1, 6, len(done)),
        "created_at": (scheduled[done] + rng.integers(0, 5 * 86_400, len(done))).astype(
            "datetime64[s]"),
    })
    chosen = rng.choice(n_customers, n_customers // 5, replace=False)
    treated = rng.random(len(chosen)) < 0.5
    interventions = pd.DataFrame({
        "intervention_id": np.arange(1, len(chosen) + 1),
        "customer_id": customers["customer_id"].to_numpy()[chosen],
        "campaign": "winback", "sent_at": (np.maximum(signup[chosen], start.astype(np.int64))
                                           + 200 * 86_400).astype("datetime64[s]"),
        "treated": treated, "offer": np.where(treated, "20% off", "none"),
    })
    return MarketplaceData(customers=customers, providers=providers, services=services,
                           bookings=bookings, reviews=reviews, interventions=interventions)


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        out.append(time.perf_counter() - begin)
    return out


def peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak memory allocated while ``fn`` runs (numpy and pandas buffers are traced)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return int(peak - before)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--source", choices=["simulate", "synthetic"], default="simulate")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    begin = time.perf_counter()
    data = marketplace(args.source, args.customers, args.seed)
    build_s = time.perf_counter() - begin
    as_of = (data.observation_end - pd.Timedelta(days=180)).floor("D")
    n_bookings = len(data.bookings)
    print(f"data: {data!r} built in {build_s:.1f} s; as_of={as_of}", flush=True)

    # The floor: one pass over the same booking rows, the cheapest possible scan.
    customer_ids = data.bookings["customer_id"].to_numpy()
    floor_s = timed(lambda: np.bincount(customer_ids), args.repeats * 3)
    features_s = timed(lambda: customer_features(data, as_of), args.repeats)
    providers_s = timed(lambda: provider_features(data, as_of), args.repeats)
    peak = peak_bytes(lambda: customer_features(data, as_of))
    best, floor = min(features_s), min(floor_s)
    result = {
        "source": args.source, "customers": len(data.customers), "bookings": n_bookings,
        "as_of": str(as_of), "build_seconds": round(build_s, 1),
        "customer_features_seconds": [round(s, 3) for s in features_s],
        "customer_features_median_seconds": round(statistics.median(features_s), 3),
        "bookings_per_second": round(n_bookings / best),
        "floor_bincount_seconds": round(floor, 4),
        "ratio_to_floor": round(best / floor, 1),
        "peak_traced_mb_customer_features": round(peak / 2**20),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "provider_features_seconds": [round(s, 3) for s in providers_s],
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "pandas": pd.__version__,
    }
    emit(result, args.json)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
