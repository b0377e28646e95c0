"""Growth exponent of ``customer_features`` (and of the scoring snapshot) between two sizes,
measured by alternating calls in one process, with the user and system CPU of each call.

The system CPU is where a one-pass run over millions of bookings lost its linearity (the
kernel mapping and zeroing fresh memory for every row-sized temporary); it varies with the
machine's load, so the calls alternate between the sizes and the medians are compared.

To compare two versions of the code in the same conditions, run it twice, one after the
other, with ``PYTHONPATH`` pointing at each checkout's ``src``:

    PYTHONPATH=/path/to/old/src python benchmarks/bench_features_growth.py
    PYTHONPATH=src python benchmarks/bench_features_growth.py [--snapshot]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import os
import resource
import statistics
import time
from typing import Any

from bench_features import synthetic  # benchmarks/ is on sys.path when run as a script

import barberpro_ml
from barberpro_ml.features import customer_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snapshot", action="store_true",
                        help="time scoring's build_snapshot instead of customer_features")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(f"code: {barberpro_ml.__file__}")
    if args.snapshot:
        from barberpro_ml.scoring.snapshot import build_snapshot

        def work(data: Any) -> Any:
            return build_snapshot(data, data.observation_end)
    else:
        def work(data: Any) -> Any:
            return customer_features(data, data.observation_end)
    datas = {n: synthetic(n, args.seed) for n in sizes}
    for data in datas.values():
        work(data)  # warm-up: imports, first-touch of the tables
    cpu: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(args.repeats):
        for n, data in datas.items():
            gc.collect()
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.process_time()
            work(data)
            cpu[n].append(time.process_time() - start)
            after = resource.getrusage(resource.RUSAGE_SELF)
            print(f"{n:>10,} customers: CPU {cpu[n][-1]:.3f} s (user "
                  f"{after.ru_utime - before.ru_utime:.3f}, system "
                  f"{after.ru_stime - before.ru_stime:.3f})", flush=True)
    medians = {n: statistics.median(v) for n, v in cpu.items()}
    for a, b in itertools.pairwise(sizes):
        k = math.log(medians[b] / medians[a]) / math.log(b / a)
        k_min = math.log(min(cpu[b]) / min(cpu[a])) / math.log(b / a)
        print(f"{a:,} -> {b:,}: median CPU {medians[a]:.3f} s -> {medians[b]:.3f} s, "
              f"k = {k:.2f} (of the fastest calls: {k_min:.2f})")
    print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
