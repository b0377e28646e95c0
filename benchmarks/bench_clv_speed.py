"""BG/NBD and Gamma-Gamma fits on unique customer profiles, ours against lifetimes 0.11.3.

The data: the full CDNOW cohort (23,570 customers, ``CDNOW_master.txt`` read from the
installed lifetimes package, calibration period to 1997-09-30, time in weeks = days / 7),
summarised with :func:`barberpro_ml.features.rfm_summary`; then recency and T are moved by
uniform noise of up to half a day each way (recency kept in ``(0, T]``, 0 for customers
without repeat purchases) and the mean spend by ~1% log-normal noise, so that no two
customers share a profile: collapsing duplicates cannot help either implementation. The
200,000-customer set resamples the cohort with replacement before jittering.

Both implementations are timed in the same process, alternating ours / lifetimes for each
repeat (``--repeats``, default 5), after one untimed warm-up fit each; the table reports the
median seconds, lifetimes' median over ours, the passes over the data each fit made (ours:
``n_evaluations_``, likelihood-and-gradient plus Hessian passes; lifetimes: calls of its
``_negative_log_likelihood`` during ``fit``, counted in a separate untimed fit, including the
ones autograd makes for its Hessian) and the largest relative difference between the two
fitted parameter vectors. The Gamma-Gamma fits use the repeat customers with a positive mean
spend (the cohort has one at $0, which our model refuses by name).

    python benchmarks/bench_clv_speed.py [--sizes 23570 200000] [--repeats 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from barberpro_ml.features import rfm_summary
from barberpro_ml.models import BetaGeoModel, GammaGammaModel

HERE = Path(__file__).resolve().parent


def cdnow_cohort() -> pd.DataFrame:
    """The full CDNOW cohort's calibration summary (to 1997-09-30), in weeks."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("lifetimes 0.11.3 is needed (pip install -e '.[dev]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    frame = pd.read_csv(path, sep=r"\s+", header=None, skiprows=1, dtype={"date": str},
                        names=["customer_id", "date", "n_cds", "spend"])
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return rfm_summary(frame, "customer_id", "date", "spend",
                       observation_period_end="1997-09-30", freq="D", time_scaler=7)


def unique_profiles(cohort: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` customers (the cohort itself when ``n`` is its size, else resampled) with
    recency, T and spend jittered so that every ``(frequency, recency, T)`` is distinct."""
    rng = np.random.default_rng(seed)
    rows = (cohort if n == len(cohort)
            else cohort.iloc[rng.integers(0, len(cohort), n)])
    x = rows["frequency"].to_numpy(dtype=float)
    T = rows["T"].to_numpy(dtype=float) + rng.uniform(-0.5, 0.5, n) / 7
    t_x = np.where(x > 0, np.clip(rows["recency"].to_numpy(dtype=float)
                                  + rng.uniform(-0.5, 0.5, n) / 7, 1e-3, T), 0.0)
    m = rows["monetary_value"].to_numpy(dtype=float) * np.exp(rng.normal(0.0, 0.01, n))
    data = pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "monetary_value": m})
    duplicated = int(data.duplicated(["frequency", "recency", "T"]).sum())
    if duplicated:
        raise SystemExit(f"{duplicated} duplicate profiles after jittering; change --seed")
    return data


def repeat_buyers(data: pd.DataFrame) -> pd.DataFrame:
    return data[(data["frequency"] > 0) & (data["monetary_value"] > 0)]


@contextmanager
def counting(cls: Any) -> Iterator[list[int]]:
    """Count calls of ``cls._negative_log_likelihood`` (a staticmethod autograd traces)."""
    original = cls.__dict__["_negative_log_likelihood"]
    calls = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original.__func__(*args, **kwargs)

    cls._negative_log_likelihood = staticmethod(counted)
    try:
        yield calls
    finally:
        cls._negative_log_likelihood = original


def timed(fit: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fit()
    return time.perf_counter() - start, result


def max_relative_difference(ours: dict[str, float], theirs: pd.Series) -> float:
    return max(abs(value - float(theirs[name])) / abs(float(theirs[name]))
               for name, value in ours.items())


def compare(model: str, data: pd.DataFrame, repeats: int) -> dict[str, Any]:
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    if model == "BG/NBD":
        def ours() -> Any:
            return BetaGeoModel().fit(data)

        def theirs() -> Any:
            return BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])

        peer: Any = BetaGeoFitter
    else:
        def ours() -> Any:
            return GammaGammaModel().fit(data)

        def theirs() -> Any:
            return GammaGammaFitter().fit(data["frequency"], data["monetary_value"])

        peer = GammaGammaFitter
    ours()
    theirs()  # warm-up
    our_times, their_times = [], []
    for _ in range(repeats):  # alternating, in this one process
        seconds, fitted = timed(ours)
        our_times.append(seconds)
        seconds, peer_fitted = timed(theirs)
        their_times.append(seconds)
    with counting(peer) as calls:
        theirs()
    our_s, their_s = statistics.median(our_times), statistics.median(their_times)
    return {
        "model": model, "customers": len(data), "profiles": fitted.n_profiles_,
        "ours_median_s": our_s, "lifetimes_median_s": their_s,
        "lifetimes_over_ours": their_s / our_s,
        "ours_evaluations": fitted.n_evaluations_, "lifetimes_evaluations": calls[0],
        "max_relative_parameter_difference": max_relative_difference(
            fitted.params_.as_dict(), peer_fitted.params_),
        "ours_optimizer": fitted.optimizer_,
        "ours_s": our_times, "lifetimes_s": their_times,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[23_570, 200_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_clv_speed.json")
    args = parser.parse_args()
    cohort = cdnow_cohort()
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifetimes' FutureWarnings
        for n in args.sizes:
            data = unique_profiles(cohort, n, args.seed)
            for model, subset in (("BG/NBD", data), ("Gamma-Gamma", repeat_buyers(data))):
                row = compare(model, subset, args.repeats)
                row["data_customers"] = n
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items()
                                  if k not in ("ours_s", "lifetimes_s")}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    table = pd.DataFrame(rows)[["model", "data_customers", "customers", "ours_median_s",
                                "lifetimes_median_s", "lifetimes_over_ours",
                                "ours_evaluations", "lifetimes_evaluations",
                                "max_relative_parameter_difference"]]
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
