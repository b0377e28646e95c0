"""Benchmark: KPIs by month x neighborhood for a large marketplace, beside a plain pandas
groupby and (when ``duckdb`` is importable) DuckDB SQL computing the same measures.

The shared measures are ``completed_visits``, ``net_revenue`` (integer cents), the ratios
``average_ticket`` and ``cancellation_rate`` (from summed numerators and denominators) and the
distinct count ``visiting_customers``, attributed to the month of ``scheduled_at`` and the
barber's neighborhood, for bookings known at ``as_of``. All three answers are checked equal
(cents and counts exactly) before anything is timed. The whole catalogue by month x
neighborhood (every measure a barber-level dimension can split, including active customers,
retention and utilisation) is timed too.

Usage::

    .venv/bin/python benchmarks/bench_kpis.py                         # 200,000 customers
    .venv/bin/python benchmarks/bench_kpis.py --customers 1000000 --source synthetic

``pip install duckdb`` (or ``pip install -e '.[bench]'``) adds the DuckDB column; it is not a
dependency of the library. The issue's target is 1M customers / 10M bookings.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from _common import emit, marketplace  # benchmarks/ is on sys.path when run as a script

from barberpro_ml.analytics import MEASURES, kpis
from barberpro_ml.data import MarketplaceData

SHARED = ["completed_visits", "net_revenue", "average_ticket", "cancellation_rate",
          "visiting_customers"]


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    out, result = [], None
    for _ in range(repeats):
        begin = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - begin)
    return out, result


def with_pandas(data: MarketplaceData, as_of: pd.Timestamp) -> pd.DataFrame:
    """The shared measures with a plain pandas groupby (what an analyst would write)."""
    b = data.bookings
    b = b[b["scheduled_at"] <= as_of]
    neighborhood = data.providers.set_index("provider_id")["neighborhood"]
    completed = (b["status"] == "completed").to_numpy()
    cents = (np.rint(b["price"].to_numpy() * 100) - np.rint(b["discount"].to_numpy() * 100))
    frame = pd.DataFrame({
        "month": b["scheduled_at"].to_numpy().astype("datetime64[M]").astype("datetime64[ns]"),
        "neighborhood": neighborhood.reindex(b["provider_id"].to_numpy()).to_numpy(),
        "completed_visits": completed.astype(np.int64),
        "net_cents": np.where(completed, cents, 0).astype(np.int64),
        "cancelled_bookings": (b["status"] == "cancelled").to_numpy().astype(np.int64),
        "resolved_bookings": np.ones(len(b), dtype=np.int64),
        "visitor": np.where(completed, b["customer_id"].to_numpy(), -1),
    })
    out = frame.groupby(["month", "neighborhood"], observed=True).agg(
        completed_visits=("completed_visits", "sum"), net_cents=("net_cents", "sum"),
        cancelled_bookings=("cancelled_bookings", "sum"),
        resolved_bookings=("resolved_bookings", "sum"))
    visitors = frame[frame["visitor"] >= 0].groupby(["month", "neighborhood"], observed=True)[
        "visitor"].nunique()
    out["visiting_customers"] = visitors.reindex(out.index, fill_value=0)
    out["net_revenue"] = out["net_cents"] / 100
    out["average_ticket"] = out["net_cents"] / out["completed_visits"] / 100
    out["cancellation_rate"] = out["cancelled_bookings"] / out["resolved_bookings"]
    return out.reset_index()


def with_duckdb(data: MarketplaceData, as_of: pd.Timestamp) -> pd.DataFrame | None:
    try:
        import duckdb
    except ImportError:
        return None
    con = duckdb.connect()
    con.register("bookings", data.bookings)
    con.register("providers", data.providers)
    out = con.execute("""
        SELECT date_trunc('month', b.scheduled_at) AS month,
               p.neighborhood::VARCHAR AS neighborhood,
               count(*) FILTER (WHERE b.status = 'completed') AS completed_visits,
               sum(CASE WHEN b.status = 'completed'
                        THEN round(b.price * 100)::BIGINT - round(b.discount * 100)::BIGINT
                        ELSE 0 END) AS net_cents,
               count(*) FILTER (WHERE b.status = 'cancelled') AS cancelled_bookings,
               count(*) AS resolved_bookings,
               count(DISTINCT b.customer_id) FILTER (WHERE b.status = 'completed')
                   AS visiting_customers
        FROM bookings b JOIN providers p USING (provider_id)
        WHERE b.scheduled_at <= ?
        GROUP BY ALL
    """, [as_of.to_pydatetime()]).df()
    con.close()
    out["net_revenue"] = out["net_cents"] / 100
    out["average_ticket"] = out["net_cents"] / out["completed_visits"] / 100
    out["cancellation_rate"] = out["cancelled_bookings"] / out["resolved_bookings"]
    return out


def check_same(ours: pd.DataFrame, theirs: pd.DataFrame, name: str) -> None:
    a = ours.assign(neighborhood=ours["neighborhood"].astype(str)).set_index(
        ["month", "neighborhood"]).sort_index()
    b = theirs.assign(neighborhood=theirs["neighborhood"].astype(str),
                      month=pd.to_datetime(theirs["month"]).astype("datetime64[ns]")).set_index(
        ["month", "neighborhood"]).sort_index()
    assert a.index.equals(b.index), f"{name}: different groups"
    for m in ("completed_visits", "visiting_customers"):
        assert (a[m].to_numpy() == b[m].to_numpy()).all(), f"{name}: {m} differs"
    assert ((a["net_revenue"] * 100).round().astype(np.int64).to_numpy()
            == b["net_cents"].astype(np.int64).to_numpy()).all(), f"{name}: cents differ"
    for m in ("average_ticket", "cancellation_rate"):
        np.testing.assert_allclose(a[m].to_numpy(float), b[m].to_numpy(float), rtol=1e-12,
                                   err_msg=f"{name}: {m}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--source", choices=["simulate", "synthetic"], default="simulate")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    begin = time.perf_counter()
    data = marketplace(args.source, args.customers, args.seed)
    build_s = time.perf_counter() - begin
    as_of = data.observation_end
    print(f"data: {data!r} built in {build_s:.1f} s; as_of={as_of}", flush=True)

    def ours() -> pd.DataFrame:
        return kpis(data, SHARED, by="neighborhood", freq="month", as_of=as_of)

    catalogue = [m for m, spec in MEASURES.items() if "provider" in spec.levels]
    lib_s, lib = timed(ours, args.repeats)
    pandas_s, ref = timed(lambda: with_pandas(data, as_of), args.repeats)
    check_same(lib, ref, "pandas")
    duck = with_duckdb(data, as_of)
    duck_s: list[float] = []
    if duck is not None:
        check_same(lib, duck, "duckdb")
        duck_s, _ = timed(lambda: with_duckdb(data, as_of), args.repeats)
    all_s, table = timed(lambda: kpis(data, catalogue, by="neighborhood", freq="month",
                                      as_of=as_of), args.repeats)
    additive_s, _ = timed(lambda: kpis(data, ["completed_visits", "net_revenue",
                                              "average_ticket", "cancellation_rate"],
                                       by="neighborhood", freq="month", as_of=as_of),
                          args.repeats)
    n = len(data.bookings)
    result = {
        "source": args.source, "customers": len(data.customers), "bookings": n,
        "groups": len(lib), "as_of": str(as_of), "build_seconds": round(build_s, 1),
        "shared_measures": SHARED,
        "kpis_seconds": [round(s, 3) for s in lib_s],
        "kpis_additive_and_ratios_only_seconds": [round(s, 3) for s in additive_s],
        "pandas_groupby_seconds": [round(s, 3) for s in pandas_s],
        "duckdb_seconds": [round(s, 3) for s in duck_s] or "duckdb not importable",
        "kpis_bookings_per_second": round(n / min(lib_s)),
        "whole_catalogue_measures": len(catalogue),
        "whole_catalogue_seconds": [round(s, 3) for s in all_s],
        "whole_catalogue_median_seconds": round(statistics.median(all_s), 3),
        "results_equal": "kpis = pandas" + (" = duckdb" if duck is not None else ""),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "pandas": pd.__version__,
    }
    emit(result, args.json)
    print(table.tail(3).T.to_string())
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
