"""Time the Spark feature path on local[2] against the single-machine features.

    python benchmarks/bench_spark.py [--customers 2500] [--buckets 4] [--rounds 3]

Simulates the test data set (2,500 customers, seed 11: what ``tests/test_spark.py`` scores),
starts one ``local[2]`` session (timed), distributes the events, then times
``barberpro_ml.spark.customer_features`` (collected to the driver) and
``barberpro_ml.features.customer_features`` at the same ``as_of``, median of ``--rounds``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from barberpro_ml.data import SimulationConfig, simulate
from barberpro_ml.features import customer_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--buckets", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()

    from barberpro_ml import spark as bspark

    data = simulate(SimulationConfig(n_customers=args.customers, seed=args.seed))
    as_of = data.observation_end
    start = time.perf_counter()
    session = bspark.spark_session(args.master)
    started = time.perf_counter() - start
    start = time.perf_counter()
    events = bspark.SparkEvents.from_marketplace(session, data)
    distributed = time.perf_counter() - start
    spark_times, local_times = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        got = bspark.collect_features(bspark.customer_features(events, as_of,
                                                               n_buckets=args.buckets))
        spark_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        expected = customer_features(data, as_of)
        local_times.append(time.perf_counter() - start)
    session.stop()
    assert len(got) == len(expected)
    print(f"{len(expected):,} customers, {len(data.bookings):,} bookings, as_of {as_of}, "
          f"{args.master}, {args.buckets} buckets")
    print(f"session start {started:.1f} s; events to Spark {distributed:.1f} s")
    print(f"features on Spark: median {statistics.median(spark_times):.2f} s "
          f"(rounds {', '.join(f'{t:.2f}' for t in spark_times)})")
    print(f"features on one machine: median {statistics.median(local_times) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
