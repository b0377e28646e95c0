"""BG/NBD and Gamma-Gamma fit times, ours beside lifetimes 0.11.3, measured in the same run.

Sizes: the CDNOW 1/10 sample (2,357 customers), the full CDNOW cohort (23,570 customers,
``CDNOW_master.txt`` read from the installed Lifetimes wheel without importing its code) and
synthetic BG/NBD customers (1M by default). Calibration period ends 1997-09-30 for CDNOW; time
in weeks (days / 7). Each fit is timed ``--repeats`` times and the best kept.

    python benchmarks/bench_ltv.py [--synthetic 1000000] [--repeats 3] [--skip-lifetimes]

lifetimes is a dev dependency (``pip install -e ".[dev]"``); its fit on 1M customers takes
minutes, so it is timed there only with ``--lifetimes-on-synthetic``. pymc-marketing is not
timed: it needs PyMC/PyTensor, which this benchmark does not install.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from barberpro_ml.features import rfm_summary
from barberpro_ml.models import BetaGeoModel, GammaGammaModel

HERE = Path(__file__).resolve().parent


def cdnow(path: Path, n_columns: int) -> pd.DataFrame:
    names = (["customer_id", "date", "n_cds", "spend"] if n_columns == 4
             else ["household", "customer_id", "date", "n_cds", "spend"])
    frame = pd.read_csv(path, sep=r"\s+", header=None, names=names, dtype={"date": str},
                        skiprows=1 if n_columns == 4 else 0)
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    summary = rfm_summary(frame, "customer_id", "date", "spend",
                          observation_period_end="1997-09-30", freq="D", time_scaler=7)
    return summary


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """Customers drawn from the BG/NBD generative model (CDNOW-like parameters), 52 weeks."""
    rng = np.random.default_rng(seed)
    T = np.floor(rng.uniform(1, 52, n) * 7) / 7
    rate = rng.gamma(0.25, 1 / 4.4, n)
    dropout = rng.beta(0.8, 2.4, n)
    times = np.cumsum(rng.exponential(1 / np.maximum(rate[:, None], 1e-9), (n, 48)), axis=1)
    x = np.minimum((times <= T[:, None]).sum(1), rng.geometric(dropout) - 1)
    tx = np.where(x > 0, times[np.arange(n), np.maximum(x - 1, 0)], 0.0)
    spend = np.where(x > 0, rng.gamma(6.25, 1 / rng.gamma(3.74, 1 / 15.44, n)), 0.0)
    return pd.DataFrame({"frequency": x, "recency": np.floor(tx * 7) / 7, "T": T,
                         "monetary_value": spend})


def repeat_buyers(rfm: pd.DataFrame) -> pd.DataFrame:
    """Repeat customers with a positive mean spend: the full CDNOW cohort has one at $0, which
    our Gamma-Gamma refuses by name (tested); the benchmark times the fit, so it drops it."""
    return rfm[(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def lifetimes_fitters() -> dict[str, Callable[[pd.DataFrame], Any]] | None:
    if importlib.util.find_spec("lifetimes") is None:
        return None
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    def bg(r: pd.DataFrame) -> Any:
        return BetaGeoFitter().fit(r["frequency"], r["recency"], r["T"])

    def gg(r: pd.DataFrame) -> Any:
        repeat = repeat_buyers(r)
        return GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])

    return {"bgnbd": bg, "gamma_gamma": gg}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-lifetimes", action="store_true")
    parser.add_argument("--lifetimes-on-synthetic", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_ltv.json")
    args = parser.parse_args()

    data: dict[str, pd.DataFrame] = {
        "cdnow_sample": cdnow(HERE.parent / "tests" / "data" / "CDNOW_sample.txt", 5)}
    spec = importlib.util.find_spec("lifetimes")
    if spec is not None and spec.submodule_search_locations:
        master = Path(next(iter(spec.submodule_search_locations))) / "datasets" / \
            "CDNOW_master.txt"
        data["cdnow_master"] = cdnow(master, 4)
    data[f"synthetic_{args.synthetic}"] = synthetic(args.synthetic)
    peers = None if args.skip_lifetimes else lifetimes_fitters()

    ours: dict[str, Callable[[pd.DataFrame], Any]] = {
        "bgnbd": lambda r: BetaGeoModel().fit(r),
        "gamma_gamma": lambda r: GammaGammaModel().fit(repeat_buyers(r)),
    }
    rows = []
    for name, rfm in data.items():
        for model, fit in ours.items():
            row: dict[str, Any] = {"data": name, "customers": len(rfm), "model": model,
                                   "ours_s": best_time(lambda f=fit, r=rfm: f(r), args.repeats)}
            on_synthetic = name.startswith("synthetic")
            if peers is not None and (not on_synthetic or args.lifetimes_on_synthetic):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    row["lifetimes_s"] = best_time(lambda f=peers[model], r=rfm: f(r),
                                                   1 if on_synthetic else args.repeats)
                row["lifetimes_over_ours"] = row["lifetimes_s"] / row["ours_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
