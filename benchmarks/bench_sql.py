"""Benchmark: event tables in PostgreSQL against the same tables in Parquet.

Starts a private PostgreSQL cluster (:class:`~barberpro_ml.infra.postgres.LocalPostgres`, in a
temporary folder under /tmp that the ``postgres`` user can reach when this runs as root),
simulates a marketplace, and measures in the same run on the same data:

- write: ``data.to_sql(url)`` (one transaction, ``COPY`` from CSV blocks, keys, foreign keys,
  checks and indexes maintained), rows/s;
- read everything: ``MarketplaceData.from_sql(url)`` against ``MarketplaceData.load(folder)``
  (both validate the tables the same way; the validation alone is timed too);
- read at ``as_of``: ``read_sql(url, as_of=t)`` transfers only the rows known at ``t``; the
  Parquet path has no pushdown and reads every row.

Ratios are SQL time / Parquet time from the same run (the server shares the machine's cores
with the client). Usage::

    .venv/bin/python benchmarks/bench_sql.py                      # 100,000 customers
    .venv/bin/python benchmarks/bench_sql.py --customers 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from _common import emit  # benchmarks/ is on sys.path when run as a script

from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.data.sql import read_sql
from barberpro_ml.infra.postgres import LocalPostgres


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Wall times of ``repeats`` calls, and the last call's result."""
    seconds, result = [], None
    for _ in range(repeats):
        begin = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - begin)
    return seconds, result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--as-of-days-before-end", type=int, default=365,
                        help="as_of = the data's last event minus this many days")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="barberpro-bench-sql-", dir="/tmp"))
    root.chmod(0o755)  # the server runs as the postgres user when this is root
    cluster = LocalPostgres(root / "postgres")
    try:
        cluster.start()
        cluster.create_database("bench")
        url = cluster.url("bench")

        begin = time.perf_counter()
        data = simulate(SimulationConfig(n_customers=args.customers, seed=args.seed))
        print(f"data: {data!r} in {time.perf_counter() - begin:.1f} s", flush=True)
        rows = sum(data.summary().values())
        folder = data.save(root / "parquet")
        tables = data.tables()

        write_s, _ = timed(lambda: data.to_sql(url, if_exists="replace"), args.repeats)
        parquet_s, from_parquet = timed(lambda: MarketplaceData.load(folder), args.repeats)
        validate_s, _ = timed(lambda: MarketplaceData(**tables, truth=None), args.repeats)
        sql_s, (from_sql, full_report) = timed(lambda: read_sql(url), args.repeats)
        assert from_sql.equals(from_parquet) and from_sql.digest() == data.digest()

        as_of = (data.observation_end - pd.Timedelta(days=args.as_of_days_before_end)
                 ).floor("D")
        as_of_s, (_, as_of_report) = timed(lambda: read_sql(url, as_of=as_of), args.repeats)
        as_of_rows = sum(as_of_report.rows.values())

        best = {"write": min(write_s), "parquet": min(parquet_s), "validate": min(validate_s),
                "sql": min(sql_s), "sql_as_of": min(as_of_s)}
        result = {
            "customers": args.customers, "rows": data.summary(), "rows_total": rows,
            "write_seconds": [round(s, 2) for s in write_s],
            "write_rows_per_second": round(rows / best["write"]),
            "read_parquet_seconds": [round(s, 2) for s in parquet_s],
            "read_parquet_rows_per_second": round(rows / best["parquet"]),
            "validation_only_seconds": [round(s, 2) for s in validate_s],
            "read_sql_seconds": [round(s, 2) for s in sql_s],
            "read_sql_rows_per_second": round(rows / best["sql"]),
            "read_sql_csv_megabytes": round(sum(full_report.bytes.values()) / 1e6, 1),
            "ratio_sql_to_parquet_read_time": round(best["sql"] / best["parquet"], 2),
            "read_sql_transfer_only_rows_per_second": round(
                rows / max(best["sql"] - best["validate"], 1e-9)),
            "as_of": str(as_of), "as_of_rows_transferred": as_of_report.rows,
            "as_of_share_of_rows": round(as_of_rows / rows, 3),
            "read_sql_as_of_seconds": [round(s, 2) for s in as_of_s],
            "read_sql_as_of_rows_per_second": round(as_of_rows / best["sql_as_of"]),
            "ratio_sql_as_of_to_parquet_read_time": round(best["sql_as_of"] / best["parquet"], 2),
            "ratio_sql_as_of_to_sql_full_read_time": round(best["sql_as_of"] / best["sql"], 2),
            "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "pandas": pd.__version__,
        }
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    emit(result, args.json)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
