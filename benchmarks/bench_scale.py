"""How scoring cost grows with the number of customers: time and memory per stage, and the
growth exponent ``k`` of each stage (cost proportional to ``n^k``).

For each size ``n`` (``--sizes``, default ``10000,100000``) on the single-machine path:

1. **generate**: a contract-valid marketplace of ``n`` customers
   (:func:`bench_features.synthetic`, ~12 bookings each over two years);
2. **features**: :func:`~barberpro_ml.features.customer_features` at the data's end (the
   whole frame);
   **features_blocks**: the same features streamed by
   :func:`~barberpro_ml.features.customer_feature_blocks` (``--feature-block-customers`` per
   block, each block dropped once computed, as a Parquet writer would): its peak memory is a
   block's, not the population's;
3. **snapshot**: :meth:`CustomerScorer.snapshot`, every per-customer input of scoring
   (features, lifecycle, next services...);
4. **score**: :meth:`CustomerScorer.score_frame` without reasons;
5. **score + reasons**: the same with the churn reasons in words (TreeSHAP of the churn model,
   grouped and phrased);
6. **score + reasons, direct TreeSHAP** (``--direct-up-to``, sizes up to 100,000 by default):
   the same with the one-call XGBoost ``pred_contribs`` the scorer used before, for the ratio
   measured in the same run. Its output is checked equal to stage 5's.

The churn model (the scorer's only family here) is trained once, before the sizes, on
``--train-rows`` customers of a separate 20,000-customer marketplace (labels 120 days before
its end), so every size is scored by the same trees; its per-tree slices for TreeSHAP
(built once per fitted model) are built then too, and timed apart.

Memory is the **peak resident set size above the stage's starting RSS**, sampled every 5 ms
from ``/proc/self/statm`` by a thread (Linux): it includes XGBoost's and NumPy's native
allocations (tracemalloc would miss the former and slow the Python parts); memory freed by
earlier stages and reused is not counted, so it is a lower bound of what the stage needs.

The exponent of a stage is the log-log slope of its time between consecutive sizes,
``log(t2/t1) / log(n2/n1)``: 1 is linear, below 1 means fixed costs still dominate. It is
given for the wall time and for the process's CPU time (all its threads,
``time.process_time``): on a machine shared with other work the wall time of a long stage
stretches with the load of the moment, its CPU time much less.

With ``--spark`` (pyspark 4 and Java needed), for the sizes up to ``--spark-up-to`` the same
data go through :mod:`barberpro_ml.spark` on ``--master`` (``local[2]`` by default), in
``--buckets`` customer buckets:

7. **spark_events**: the event tables handed to Spark (``SparkEvents.from_marketplace``);
8. **spark_features**: the features with the BG/NBD inputs, computed by ``applyInPandas``
   (the single-machine feature code per bucket) into Spark's ``noop`` sink;
9. **spark_score**: churn, LTV and barbers of every customer with the champions of
   ``--tracking-uri`` (``mlflow.pyfunc.spark_udf``), written as bucketed Parquet.

Those stages are timed only (their work runs in the JVM and in Spark's Python workers, outside
this process's RSS).

    python benchmarks/bench_scale.py [--sizes 10000,100000,1000000] [--json out.json]
                                     [--spark --tracking-uri sqlite:///mlflow.db]
                                     [--spark-up-to 1000000 --driver-memory 6g]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from _common import PeakRss, emit  # benchmarks/ is on sys.path when run as a script
from bench_features import synthetic

from barberpro_ml.features import churn_labels, customer_feature_blocks, customer_features
from barberpro_ml.models import ChurnClassifier, _boosted
from barberpro_ml.registry.models import EstimatorModel
from barberpro_ml.scoring import CustomerScorer


def stage(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run ``fn`` once: its result, seconds, CPU seconds of the process (all its threads) and
    peak RSS growth (MiB)."""
    with PeakRss() as mem:
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    return out, {"s": seconds, "cpu_s": cpu_s,
                 "peak_rss_growth_mib": (mem.peak - mem.start) / 2**20,
                 "peak_rss_mib": mem.peak / 2**20}


def train_scorer(train_rows: int, seed: int) -> tuple[CustomerScorer, dict[str, Any]]:
    """A scorer serving only a churn model trained on ``train_rows`` customers."""
    data = synthetic(20_000, seed + 1)
    as_of = data.observation_end - pd.Timedelta(days=120)
    X = customer_features(data, as_of)
    y = churn_labels(data, as_of)
    X = X.loc[y.index]
    take = np.random.default_rng(seed).choice(len(X), size=min(train_rows, len(X)),
                                              replace=False)
    start = time.perf_counter()
    model = ChurnClassifier(n_estimators=200, random_state=seed, n_jobs=2).fit(
        X.iloc[take], y.iloc[take])
    fit_s = time.perf_counter() - start
    scorer = CustomerScorer(churn=EstimatorModel.from_estimator(model, X.iloc[take]), n_jobs=2)
    # the per-tree slices are built once per fitted model: built here, timed apart, so the
    # first size does not carry them
    start = time.perf_counter()
    model._pattern_shap()
    build_s = time.perf_counter() - start
    return scorer, {"train_rows": len(take), "fit_s": fit_s, "pattern_shap_build_s": build_s,
                    "trees": model._rounds()[1], "blend_weight": model.blend_weight_}


def _stream(blocks: Any) -> int:
    """Consume blocks one at a time, keeping none: the customers seen."""
    return sum(len(block) for block in blocks)


def run_size(scorer: CustomerScorer, n: int, seed: int, direct: bool,
             feature_block: int = 100_000) -> dict[str, Any]:
    out: dict[str, Any] = {"customers": n}
    data, out["generate"] = stage(lambda: synthetic(n, seed))
    out["bookings"] = len(data.bookings)
    whole, out["features"] = stage(lambda: customer_features(data, data.observation_end))
    n_whole = len(whole)
    del whole
    streamed, out["features_blocks"] = stage(lambda: _stream(customer_feature_blocks(
        data, data.observation_end, block_customers=feature_block)))
    assert streamed == n_whole
    _, out["snapshot"] = stage(lambda: scorer.snapshot(data))
    _, out["score"] = stage(lambda: scorer.score_frame(data, reasons=False))
    scored, out["score_reasons"] = stage(lambda: scorer.score_frame(data, reasons=True))
    if direct:
        saved = _boosted.PATTERN_SHAP_MIN_ROWS
        _boosted.PATTERN_SHAP_MIN_ROWS = 2**62  # the one-call path, as before
        try:
            old, out["score_reasons_direct"] = stage(
                lambda: scorer.score_frame(data, reasons=True))
        finally:
            _boosted.PATTERN_SHAP_MIN_ROWS = saved
        pd.testing.assert_frame_equal(scored, old, check_exact=True)
        out["direct_equal"] = True
    return out


def run_spark(session: Any, n: int, seed: int, tracking_uri: str, buckets: int,
              out_dir: str) -> dict[str, Any]:
    """The Spark stages of one size on ``session``: the events handed to Spark, the features
    (``barberpro_ml.spark.customer_features``, written to Spark's ``noop`` sink: computed,
    not collected), and the scores of the registered champions (``score_customers``, written
    as bucketed Parquet). Only time: the work runs in the JVM and its Python workers, outside
    this process's RSS."""
    from barberpro_ml import spark as bspark

    out: dict[str, Any] = {"customers": n}
    data = synthetic(n, seed)
    as_of = data.observation_end

    def timed(fn: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        return result, {"s": time.perf_counter() - start,
                        "driver_cpu_s": time.process_time() - cpu, "cpu_s": None,
                        "peak_rss_growth_mib": None}

    events, out["spark_events"] = timed(
        lambda: bspark.SparkEvents.from_marketplace(session, data))
    _, out["spark_features"] = timed(
        lambda: bspark.customer_features(events, as_of, n_buckets=buckets, rfm=True)
        .write.format("noop").mode("overwrite").save())
    written, out["spark_score"] = timed(lambda: bspark.write_scores(
        bspark.score_customers(events, as_of, tracking_uri=tracking_uri, n_buckets=buckets),
        f"{out_dir}/scores-{n}"))
    assert written == int((data.customers["signup_at"] <= as_of).sum())
    return out


STAGES = ("generate", "features", "features_blocks", "snapshot", "score", "score_reasons",
          "score_reasons_direct",
          "spark_events", "spark_features", "spark_score")


def exponents(results: list[dict[str, Any]], key: str = "s"
              ) -> dict[str, list[float | None]]:
    """Log-log slope of each stage's time (``key``: ``s`` wall, ``cpu_s`` CPU) between
    consecutive sizes."""
    out: dict[str, list[float | None]] = {}
    for name in STAGES:
        slopes: list[float | None] = []
        for a, b in itertools.pairwise(results):
            if name in a and name in b and a[name][key] and b[name][key]:
                slopes.append(math.log(b[name][key] / a[name][key])
                              / math.log(b["customers"] / a["customers"]))
            else:
                slopes.append(None)
        out[name] = slopes
    return out


def table(results: list[dict[str, Any]], slopes: dict[str, list[float | None]],
          cpu_slopes: dict[str, list[float | None]]) -> str:
    sizes = [r["customers"] for r in results]
    pairs = ", ".join(f"{a:,}->{b:,}" for a, b in itertools.pairwise(sizes))
    head = ("| stage | " + " | ".join(f"{n:,}: s (CPU s) / MiB" for n in sizes)
            + f" | k wall {pairs} | k CPU |")
    lines = [head, "|" + "---|" * (len(sizes) + 3)]

    def cell(r: dict[str, Any], name: str) -> str:
        if name not in r:
            return ""
        got = r[name]
        cpu = "" if got["cpu_s"] is None else f" ({got['cpu_s']:.2f})"
        mem = "n/a" if got["peak_rss_growth_mib"] is None else \
            f"{got['peak_rss_growth_mib']:.0f}"
        return f"{got['s']:.2f}{cpu} / {mem}"

    for name in STAGES:
        if not any(name in r for r in results):
            continue
        ks = ", ".join("" if k is None else f"{k:.2f}" for k in slopes[name])
        kc = ", ".join("" if k is None else f"{k:.2f}" for k in cpu_slopes[name])
        lines.append(f"| {name} | " + " | ".join(cell(r, name) for r in results)
                     + f" | {ks} | {kc} |")
    lines.append("| customers/s with reasons | " + " | ".join(
        f"{r['customers'] / r['score_reasons']['s']:,.0f}" for r in results) + " | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--direct-up-to", type=int, default=100_000,
                        help="also time the one-call TreeSHAP path up to this size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--spark", action="store_true",
                        help="also the Spark path (features, scores of the registered "
                             "champions) on --master, sizes up to --spark-up-to")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--spark-up-to", type=int, default=100_000)
    parser.add_argument("--spark-from", type=int, default=0,
                        help="the Spark stages only for sizes from this one")
    parser.add_argument("--feature-block-customers", type=int, default=100_000,
                        help="customers per block of the features_blocks stage")
    parser.add_argument("--buckets", type=int, default=8)
    parser.add_argument("--driver-memory", default="2g",
                        help="spark.driver.memory: with a local master the driver JVM holds "
                             "the executors too (1M customers' events need more than 2g)")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI",
                                                                 "sqlite:///mlflow.db"),
                        help="the registry whose champions --spark scores with")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    scorer, model = train_scorer(args.train_rows, args.seed)
    results = [run_size(scorer, n, args.seed, n <= args.direct_up_to,
                        args.feature_block_customers) for n in sizes]
    if args.spark:
        import tempfile

        from barberpro_ml import spark as bspark

        start = time.perf_counter()
        session = bspark.spark_session(args.master, driver_memory=args.driver_memory)
        model["spark_session_start_s"] = time.perf_counter() - start
        with tempfile.TemporaryDirectory(prefix="bench-scale-spark-") as tmp:
            for r in results:
                if args.spark_from <= r["customers"] <= args.spark_up_to:
                    r.update(run_spark(session, r["customers"], args.seed, args.tracking_uri,
                                       args.buckets, tmp))
        session.stop()
    slopes, cpu_slopes = exponents(results), exponents(results, "cpu_s")
    emit({"model": model, "sizes": results, "exponents": slopes, "cpu_exponents": cpu_slopes,
          "load_average": os.getloadavg()}, args.json)
    print()
    print(table(results, slopes, cpu_slopes))
    print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
