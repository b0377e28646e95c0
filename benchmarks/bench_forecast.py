"""The forecast's numbers: backtest coverage and accuracy on the default simulated marketplace,
coverage against fresh simulated futures, and the fit's cost.

Usage::

    python benchmarks/bench_forecast.py [--seeds 101 202 303] [--customers 6000] [--json F]

1. **Default world** (20,000 customers, seed 42, two years; what ``barberpro-ml train forecast``
   fits): every candidate, the choice per measure, the gate's coverage with its block-bootstrap
   interval, width, Winkler, MASE and MASE minus seasonal naive, the gate's verdicts, and the fit
   time. The same data with 50% intervals, judged against the 89% claim (refused).
2. **Fresh futures** (the truth): for each seed a world simulated to 2025-10-15, forecast from
   cut-offs in January, April and July 2025 with the data known then, and compared with the
   13 weeks the simulator then produced: coverage per cut-off and overall.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pandas as pd
from _common import emit

from barberpro_ml.analytics.forecast import WeeklyForecaster, weekly_series
from barberpro_ml.config import shipped_config
from barberpro_ml.data import SimulationConfig, simulate
from barberpro_ml.gates import check, load_claims

CUTS = ("2025-01-01", "2025-04-02", "2025-07-02")
CHEAP = ("seasonal_naive", "yoy_scaled", "auto_ets")


def default_world(result: dict[str, Any]) -> None:
    series = weekly_series(simulate())
    claims = load_claims(shipped_config("claims.yaml"), "forecast")
    started = time.perf_counter()
    fitted = WeeklyForecaster().fit(series)
    result["fit_seconds_all_candidates"] = round(time.perf_counter() - started, 1)
    report = fitted.evaluate()
    result["chosen"] = fitted.chosen_
    result["selection_mase"] = {f"{r.measure}/{r.candidate}/{r.reconciliation}": round(r.mase, 3)
                                for r in fitted.selection_.itertuples()}
    result["evaluation_forecasts"] = report.n
    result["metrics"] = {name: [round(m.value, 4), round(m.ci_low, 4), round(m.ci_high, 4)]
                         for name, m in report.metrics.items()}
    gate = check(report, claims)
    result["verdicts"] = {v.claim_id: v.verdict for v in gate.claims}
    narrow = WeeklyForecaster(level=0.5).fit(series).evaluate()
    verdict = next(v for v in check(narrow, claims).claims
                   if v.claim_id == "forecast-coverage-89")
    result["narrow_50pct_interval"] = {"coverage": round(narrow.metrics["coverage"].value, 4),
                                       "verdict": verdict.verdict}


def fresh_futures(result: dict[str, Any], seeds: list[int], customers: int) -> None:
    base = SimulationConfig.from_yaml(shipped_config("simulation.yaml"))
    rows = []
    for seed in seeds:
        world = simulate(base.model_copy(update={
            "seed": seed, "n_customers": customers,
            "end": pd.Timestamp("2025-10-15").to_pydatetime()}))
        future = weekly_series(world)
        for cut in CUTS:
            for name, candidates in (("all", None), ("cheap", CHEAP)):
                kwargs = {} if candidates is None else {"candidates": candidates}
                fc = WeeklyForecaster(**kwargs).fit(
                    weekly_series(world, pd.Timestamp(cut))).forecast_
                joined = fc.merge(future, on=["measure", "neighborhood", "week"])
                inside = (joined["lower"] <= joined["y"]) & (joined["y"] <= joined["upper"])
                rows.append({"seed": seed, "cut": cut, "candidates": name,
                             "coverage": float(inside.mean()), "n": len(joined)})
    frame = pd.DataFrame(rows)
    result["fresh_futures"] = {
        "by_cut": frame.groupby(["candidates", "cut"])["coverage"].mean().round(3)
        .unstack(0).to_dict(),
        "overall": frame.groupby("candidates")["coverage"].mean().round(3).to_dict(),
        "forecasts": int(frame["n"].sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 202, 303])
    parser.add_argument("--customers", type=int, default=6000)
    parser.add_argument("--json")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    default_world(result)
    fresh_futures(result, args.seeds, args.customers)
    emit(result, args.json)


if __name__ == "__main__":
    main()
