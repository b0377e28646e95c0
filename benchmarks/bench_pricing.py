"""Price elasticity by double machine learning, validated against the simulator's truth.

Usage::

    python benchmarks/bench_pricing.py [--seeds 20] [--first-seed 1] [--customers 20000]
                                       [--scopes pooled tier] [--json F]

For each seed: simulate a world (two years), estimate the elasticity of bookings to providers'
price rises per cell (:class:`~barberpro_ml.providers.pricing.PriceElasticityDML`, the job's
defaults except ``scopes``), compute the true elasticity of the same cells with the simulator's
counterfactual (:func:`~barberpro_ml.providers.pricing.true_elasticity`) and the naive
before/after estimate in the same run. Printed per scope: the 95% CI's coverage of the truth
over seeds (with a Wilson interval), mean bias and RMSE of DML and of the naive estimate, the
naive CI's coverage, mean CI width, the mean truth, the coverage of DoubleML's own interval
from the same fits (its plain cluster sandwich with a normal quantile, which the estimator's
jackknife-t interval replaces), and the runtime; the last row ("all cells")
pools every cell of every seed (cells of one seed share events, so they are not independent).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd
from _common import emit
from scipy import stats

from barberpro_ml.data import SimulationConfig, simulate
from barberpro_ml.jobs.pricing import PricingJobConfig
from barberpro_ml.providers.pricing import PriceElasticityDML, true_elasticity


def _wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def one_seed(seed: int, customers: int, scopes: list[str]) -> pd.DataFrame:
    """Estimates, truth and naive estimates of every cell in one simulated world."""
    t0 = time.perf_counter()
    data = simulate(SimulationConfig(n_customers=customers, seed=seed))
    t1 = time.perf_counter()
    params = {**PricingJobConfig().model, "scopes": scopes}
    est = PriceElasticityDML(**params).fit(data)
    t2 = time.perf_counter()
    truth = true_elasticity(data, est)
    t3 = time.perf_counter()
    keys = ["scope", "service", "price_tier", "neighborhood"]
    plain = est.doubleml_inference_.rename(columns={
        c: f"doubleml_{c}" for c in ("elasticity", "std_error", "ci_low", "ci_high")})
    out = est.elasticities_.merge(truth, on=keys).merge(plain, on=keys)
    return out.assign(seed=seed, simulate_s=t1 - t0, fit_s=t2 - t1, oracle_s=t3 - t2)


def summarise(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Coverage, bias and width per scope and cell."""
    rows = rows.assign(
        covered=(rows["ci_low"] <= rows["true_elasticity"])
        & (rows["true_elasticity"] <= rows["ci_high"]),
        doubleml_covered=(rows["doubleml_ci_low"] <= rows["true_elasticity"])
        & (rows["true_elasticity"] <= rows["doubleml_ci_high"]),
        naive_covered=(rows["naive_ci_low"] <= rows["true_elasticity"])
        & (rows["true_elasticity"] <= rows["naive_ci_high"]),
        error=rows["elasticity"] - rows["true_elasticity"],
        naive_error=rows["naive_elasticity"] - rows["true_elasticity"],
        width=rows["ci_high"] - rows["ci_low"])
    out = []
    groups = [*rows.groupby(["scope", "price_tier"], sort=False),
              (("all cells", "all"), rows)]
    for (scope, tier), g in groups:
        k, n = int(g["covered"].sum()), len(g)
        low, high = _wilson(k, n)
        out.append({
            "scope": scope, "price_tier": tier, "seeds": n, "coverage": k / n,
            "coverage_wilson_95": [round(low, 3), round(high, 3)],
            "mean_truth": float(g["true_elasticity"].mean()),
            "mean_true_ratio": float(g["true_mean_ratio"].mean()),
            "mean_estimate": float(g["elasticity"].mean()),
            "bias": float(g["error"].mean()),
            "bias_se": float(g["error"].std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
            "rmse": float(np.sqrt((g["error"] ** 2).mean())),
            "mean_std_error": float(g["std_error"].mean()),
            "sd_of_estimates": float(g["elasticity"].std(ddof=1)) if n > 1 else float("nan"),
            "mean_ci_width": float(g["width"].mean()),
            "mean_dof": float(g["dof"].mean()),
            "mean_events": float(g["n_events"].mean()),
            "doubleml_coverage": float(g["doubleml_covered"].mean()),
            "doubleml_mean_std_error": float(g["doubleml_std_error"].mean()),
            "naive_bias": float(g["naive_error"].mean()),
            "naive_rmse": float(np.sqrt((g["naive_error"] ** 2).mean())),
            "naive_coverage": float(g["naive_covered"].mean()),
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--scopes", nargs="+", default=["pooled", "tier"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--rows", default=None, help="write every seed x cell row to this CSV")
    args = parser.parse_args()
    start = time.perf_counter()
    frames = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        frame = one_seed(seed, args.customers, args.scopes)
        pooled = frame[frame["scope"] == frame["scope"].iloc[0]].iloc[0]
        print(f"seed {seed}: {pooled['scope']} estimate {pooled['elasticity']:+.3f} "
              f"[{pooled['ci_low']:+.3f}, {pooled['ci_high']:+.3f}] truth "
              f"{pooled['true_elasticity']:+.3f} naive {pooled['naive_elasticity']:+.3f} "
              f"({pooled['n_events']} events; fit {pooled['fit_s']:.1f} s)", flush=True)
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    if args.rows:
        rows.to_csv(args.rows, index=False)
    summary = summarise(rows)
    table = pd.DataFrame(summary)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.drop(columns=["coverage_wilson_95"]).round(3).to_string(index=False))
        print(table[["scope", "price_tier", "seeds", "coverage", "coverage_wilson_95"]]
              .to_string(index=False))
    emit({"customers": args.customers, "seeds": args.seeds, "first_seed": args.first_seed,
          "scopes": args.scopes, "level": PricingJobConfig().model["level"],
          "runtime_s": round(time.perf_counter() - start, 1),
          "mean_fit_s": round(float(rows.groupby("seed")["fit_s"].first().mean()), 2),
          "mean_oracle_s": round(float(rows.groupby("seed")["oracle_s"].first().mean()), 2),
          "summary": summary}, args.json)


if __name__ == "__main__":
    main()
