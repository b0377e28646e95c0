"""Benchmark: :func:`barberpro_ml.evaluation.check_overlap` on a churn-shaped frame.

Builds a training frame of ``--rows`` rows (default 1M) indexed by ``(as_of, customer_id)``
with ``--columns`` feature columns of mixed dtypes (integers, floats with NaN, a string and a
categorical column), and a test frame of ``--test-rows`` rows at a later cut-off, 5% of them
copied from the training rows. Prints the wall time (best of ``--repeat``) and rows per second
(training plus test rows compared), and checks that exactly the copied rows were found.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_overlap.py
    PYTHONPATH=src .venv/bin/python benchmarks/bench_overlap.py --rows 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd

from barberpro_ml.evaluation import check_overlap


def churn_frame(n: int, n_columns: int, as_of: str, seed: int, first_id: int = 0
                ) -> pd.DataFrame:
    """Rows like a training frame's: ``(as_of, customer_id)`` index, mixed feature dtypes."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for j in range(n_columns - 2):
        if j % 2:
            values = rng.gamma(2.0, 20.0, n).round(2)
            values[rng.random(n) < 0.05] = np.nan
            columns[f"f{j}"] = values
        else:
            columns[f"f{j}"] = rng.integers(0, 50, n)
    columns["channel"] = rng.choice(["organic", "paid_social", "referral", "partner"], n)
    columns["neighborhood"] = pd.Categorical(rng.choice([f"n{i}" for i in range(40)], n))
    index = pd.MultiIndex.from_arrays(
        [np.full(n, np.datetime64(as_of, "ns")), np.arange(first_id, first_id + n)],
        names=["as_of", "customer_id"])
    return pd.DataFrame(columns, index=index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--test-rows", type=int, default=200_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    train = churn_frame(args.rows, args.columns, "2024-01-01", seed=0)
    copied = args.test_rows // 20
    test = pd.concat([churn_frame(args.test_rows - copied, args.columns, "2024-06-01", seed=1,
                                  first_id=10 * args.rows),
                      train.iloc[np.arange(copied) * (args.rows // max(copied, 1))]])
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        report = check_overlap(train, test, ["customer_id"], ["as_of"], horizon_days=90)
        times.append(time.perf_counter() - start)
    assert report.test_rows_in_train == copied, report.describe()
    best = min(times)
    n = len(train) + len(test)
    print(f"check_overlap: {len(train):,} training + {len(test):,} test rows, "
          f"{args.columns} columns + 2 index levels ({platform.python_version()}, "
          f"pandas {pd.__version__})")
    print(f"best of {args.repeat}: {best:.2f} s, {n / best:,.0f} rows per second "
          f"(all runs: {', '.join(f'{t:.2f}' for t in times)} s)")
    print(f"found: {report.describe()}; verdict {report.verdict}")


if __name__ == "__main__":
    main()
