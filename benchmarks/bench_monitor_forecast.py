"""Monitoring the forecast champion: false alarms in quiet periods, detection of market shocks.

For each seed, the marketplaces of ``bench_monitor.py`` (quiet, a price rise of every barber,
an exodus of barbers, the shock at ``--shock-at``; the same marketplace before it) are built.
A :class:`~barberpro_ml.analytics.forecast.WeeklyForecaster` with the forecast job's settings
(``configs/forecast.yaml``'s ``model``; ``--candidates`` to use fewer) is fitted on the quiet
weekly series known at ``--origin`` and its gate figure is the backtest's coverage with its
interval (what the job's gate reads). The same forecast table is then monitored
(:func:`barberpro_ml.monitoring.check_forecast`) at each ``--dates`` on every marketplace. A
quiet check that is not ``ok`` is a false alarm; a shocked one that is not ``ok`` a detection
(Wilson 95% intervals; the checks of one seed share the forecast).

    PYTHONPATH=src:benchmarks python benchmarks/bench_monitor_forecast.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import pandas as pd
from _common import emit
from bench_monitor import rate, scenario

from barberpro_ml.analytics.forecast import WeeklyForecaster, weekly_series
from barberpro_ml.jobs.forecast import load_config
from barberpro_ml.monitoring import GateFigure, MonitorSettings, check_forecast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--shock-at", default="2024-07-01")
    parser.add_argument("--origin", default="2024-07-01",
                        help="the forecast's training data end (its first week follows)")
    parser.add_argument("--dates", default="2024-08-01,2024-10-01")
    parser.add_argument("--candidates", default=None,
                        help="comma-separated candidates (default: the forecast job's)")
    parser.add_argument("--n-bootstrap", type=int, default=500)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    model = dict(load_config().model)
    if args.candidates:
        model["candidates"] = args.candidates.split(",")
    settings = MonitorSettings()
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        worlds = {name: scenario(name, seed, args.customers, args.shock_at, 0.25, 0.35)
                  for name in ("quiet", "price_rise", "exodus")}
        forecaster = WeeklyForecaster(**model).fit(
            weekly_series(worlds["quiet"], pd.Timestamp(args.origin)))
        cov = forecaster.evaluate(n_bootstrap=args.n_bootstrap, seed=0).metrics["coverage"]
        gates = [GateFigure(metric="coverage", value=cov.value, ci_low=cov.ci_low,
                            ci_high=cov.ci_high)]
        table = forecaster.predict()
        for name, data in worlds.items():
            for at in args.dates.split(","):
                h = check_forecast(table, data, at, gates=gates, settings=settings)
                (perf,) = h.performance
                rows.append({"seed": seed, "scenario": name, "as_of": at,
                             "verdict": h.verdict, "gate_coverage": round(cov.value, 4),
                             "coverage": round(perf.value, 4),
                             "ci": [round(perf.ci_low, 4), round(perf.ci_high, 4)],
                             "p_holm": None if perf.p_holm is None
                             else float(f"{perf.p_holm:.3g}"),
                             "rows": int(h.n_current), "series_psi": round(h.score.psi, 3)})
                print(rows[-1], flush=True)
    table_rows = pd.DataFrame(rows)
    result: dict[str, Any] = {"seeds": args.seeds, "first_seed": args.first_seed,
                              "customers": args.customers, "origin": args.origin,
                              "dates": args.dates, "candidates": model["candidates"],
                              "seconds": round(time.perf_counter() - started, 1)}
    for name, part in table_rows.groupby("scenario"):
        key = "false_alarm" if name == "quiet" else f"detection_{name}"
        result[key] = rate(int((part.verdict != "ok").sum()), len(part))
        for at, sub in part.groupby("as_of"):
            result[f"{key}_{at}"] = rate(int((sub.verdict != "ok").sum()), len(sub))
    result["median_coverage"] = {f"{k[0]} {k[1]}": float(v.median()) for k, v in
                                 table_rows.groupby(["scenario", "as_of"]).coverage}
    emit(result, args.json)


if __name__ == "__main__":
    main()
