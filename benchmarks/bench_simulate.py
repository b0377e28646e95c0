"""Benchmark the marketplace simulator: bookings generated per second and peak memory.

Each size runs in its own subprocess, so its peak resident memory is its own (read with
``os.wait4``, the per-child ``getrusage``). Beside the simulator's time, the same subprocess
measures a floor: the time numpy's default generator takes just to draw as many uniforms as
the simulator drew, reported as a ratio. Contract validation (``MarketplaceData``
construction) is timed separately: it belongs to the data contract, not the generator.

Usage::

    .venv/bin/python benchmarks/bench_simulate.py                    # 10k, 100k, 1M customers
    .venv/bin/python benchmarks/bench_simulate.py --sizes 2000 20000 # CI-size run
    .venv/bin/python benchmarks/bench_simulate.py --describe         # realism statistics

Results are printed as a table and written to ``benchmarks/results/bench_simulate.json``.
The target is 1M customers over two years in under 2 minutes and 8 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def worker(n_customers: int, seed: int) -> dict[str, Any]:
    """Simulate ``n_customers`` over the default two years; time each stage."""
    import numpy as np

    from barberpro_ml.data import MarketplaceData, SimulationConfig
    from barberpro_ml.data._sim_engine import Engine, TableRecorder
    from barberpro_ml.data._sim_world import build_world
    from barberpro_ml.data.simulation import _assemble

    config = SimulationConfig(n_customers=n_customers, seed=seed)
    t0 = time.perf_counter()
    world = build_world(config)
    recorder = TableRecorder()
    engine = Engine.for_world(world, recorder)
    t1 = time.perf_counter()
    engine.run(world.end)
    t2 = time.perf_counter()
    tables, truth = _assemble(world, engine, recorder)
    t3 = time.perf_counter()
    rss_before_validation = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = MarketplaceData(**tables, truth=truth)
    t4 = time.perf_counter()

    draws = engine.draws
    rng = np.random.default_rng(seed)
    chunk = 10_000_000
    r0 = time.perf_counter()
    for start in range(0, draws, chunk):
        rng.random(min(chunk, draws - start))
    numpy_seconds = time.perf_counter() - r0

    bookings = len(data.bookings)
    simulate_seconds = t3 - t0
    return {
        "customers": n_customers,
        "providers": len(data.providers),
        "bookings": bookings,
        "reviews": len(data.reviews),
        "interventions": len(data.interventions),
        "uniform_draws": draws,
        "world_seconds": round(t1 - t0, 3),
        "events_seconds": round(t2 - t1, 3),
        "assemble_seconds": round(t3 - t2, 3),
        "simulate_seconds": round(simulate_seconds, 3),
        "validate_seconds": round(t4 - t3, 3),
        "total_seconds": round(t4 - t0, 3),
        "bookings_per_second": round(bookings / simulate_seconds),
        "numpy_draw_seconds": round(numpy_seconds, 3),
        "ratio_to_numpy_draws": round(simulate_seconds / max(numpy_seconds, 1e-9), 1),
        "peak_rss_before_validation_mib": round(rss_before_validation / 1024),
    }


def describe(n_customers: int | None, seed: int | None) -> dict[str, Any]:
    """Realism statistics of one simulation (the figures quoted in data/simulation.md)."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from barberpro_ml.data import (
        SimulationConfig,
        oracle_churn_probability,
        oracle_offer_effect,
        simulate,
    )

    updates = {k: v for k, v in (("n_customers", n_customers), ("seed", seed)) if v is not None}
    config = SimulationConfig().model_copy(update=updates)
    data = simulate(config)
    assert data.truth is not None
    day = pd.Timedelta(days=1)
    b = data.bookings
    done = b[(b["status"] == "completed").to_numpy()].sort_values(["customer_id",
                                                                    "scheduled_at"])
    truth = data.truth.customers.set_index("customer_id")
    inactive = truth["inactive_at"]
    gap = done.groupby("customer_id")["scheduled_at"].diff().dt.total_seconds() / 86_400
    stats: dict[str, Any] = {"config": {"n_customers": config.n_customers, "seed": config.seed},
                             "rows": data.summary()}
    stats["status_share"] = b["status"].value_counts(normalize=True).round(4).to_dict()
    stats["visit_gap_days_q05_q25_q50_q75_q95"] = gap.quantile(
        [0.05, 0.25, 0.5, 0.75, 0.95]).round(1).tolist()
    stats["cadence_days_q05_q50_q95"] = truth["cadence_days"].quantile(
        [0.05, 0.5, 0.95]).round(1).tolist()
    stats["mean_rating"] = round(float(data.reviews["rating"].mean()), 3)
    stats["rating_share"] = data.reviews["rating"].value_counts(
        normalize=True).sort_index().round(4).to_dict()
    stats["reviews_per_completed_visit"] = round(len(data.reviews) / len(done), 3)
    stats["completed_with_discount"] = round(float((done["discount"] > 0).mean()), 4)
    stats["completed_with_tip"] = round(float((done["tip"] > 0).mean()), 4)
    stats["mean_price_completed"] = round(float(done["price"].mean()), 2)
    lead = (b["scheduled_at"] - b["created_at"]).dt.total_seconds() / 86_400
    stats["lead_days_q10_q50_q90"] = lead.quantile([0.1, 0.5, 0.9]).round(2).tolist()
    weekday = done["scheduled_at"].dt.day_of_week.value_counts(normalize=True).sort_index()
    stats["completed_share_by_weekday_mon_to_sun"] = weekday.reindex(range(7),
                                                                     fill_value=0).round(3).tolist()

    def active_at(as_of: pd.Timestamp) -> Any:
        at = done["scheduled_at"]
        return np.unique(done.loc[(at > as_of - 180 * day) & (at <= as_of), "customer_id"])

    yearly = {}
    for offset in (180, 365):
        as_of = pd.Timestamp(config.start) + offset * day
        active = active_at(as_of)
        alive = active[~(inactive.reindex(active) <= as_of).to_numpy()]
        yearly[str(as_of.date())] = {
            "active": len(active),
            "already_inactive_share": round(1 - len(alive) / len(active), 3),
            "alive_inactive_within_365d": round(float(
                (inactive.reindex(alive) <= as_of + 365 * day).mean()), 3)}
    stats["yearly_churn"] = yearly
    first = done.groupby("customer_id")["scheduled_at"].agg(["min", "size"])
    new = first[~truth["initial_base"].reindex(first.index).to_numpy()
                & (first["min"] <= pd.Timestamp(config.end) - 240 * day).to_numpy()]
    stats["new_customers_one_visit_only"] = round(float((new["size"] == 1).mean()), 3)

    per_month = done.groupby(done["scheduled_at"].dt.to_period("M")).size()
    per_day = per_month / per_month.index.days_in_month
    stats["visits_per_day_vs_neighbour_months"] = {
        m: round(float(per_day[m] / per_day[[a, z]].mean()), 3)
        for m, a, z in (("2023-12", "2023-11", "2024-01"), ("2024-06", "2024-05", "2024-07"))}
    stats["providers_left_share"] = round(float(data.providers["left_at"].notna().mean()), 3)
    changes = data.truth["price_changes"]
    in_period = changes[(changes["changed_at"] >= pd.Timestamp(config.start))
                        & (changes["changed_at"] < pd.Timestamp(config.end))]
    years = (pd.Timestamp(config.end) - pd.Timestamp(config.start)) / (365.25 * day)
    stats["price_changes_per_provider_year"] = round(len(in_period) / len(data.providers)
                                                     / years, 2)

    iv = data.interventions.merge(data.truth["interventions"],
                                  on=["intervention_id", "customer_id", "treated"])
    iv["churned_in_window"] = (inactive.reindex(iv["customer_id"]).to_numpy()
                               <= (iv["sent_at"] + config.offers.window_days * day).to_numpy())
    act = iv[iv["active_at_sent"]]
    stats["campaigns"] = {
        "targeted_per_campaign": round(len(iv) / max(len(config.campaigns), 1)),
        "active_at_sent_share": round(float(iv["active_at_sent"].mean()), 3),
        "churn_in_window_active_control": round(float(
            act.loc[~act["treated"], "churned_in_window"].mean()), 4),
        "churn_in_window_active_treated": round(float(
            act.loc[act["treated"], "churned_in_window"].mean()), 4),
        "mean_hazard_ratio_treated": round(float(np.exp(
            act.loc[act["treated"], "log_hazard_ratio"]).mean()), 3)}

    as_of = pd.Timestamp("2024-04-01")
    active = active_at(as_of)
    returned = done.loc[(done["scheduled_at"] > as_of)
                        & (done["scheduled_at"] <= as_of + 90 * day), "customer_id"]
    y = (~np.isin(active, returned)).astype(int)
    t0 = time.perf_counter()
    p_all = oracle_churn_probability(data, as_of, 90, n_futures=200)
    oracle_seconds = time.perf_counter() - t0
    p = p_all.reindex(active)
    last = done[done["scheduled_at"] <= as_of].groupby("customer_id")["scheduled_at"].max()
    recency = (as_of - last.reindex(active)).dt.total_seconds()
    stats["churn_label_2024_04_01_h90"] = {
        "active": len(active), "label_rate": round(float(y.mean()), 3),
        "mean_oracle": round(float(p.mean()), 3),
        "auc_oracle": round(float(roc_auc_score(y, p)), 3),
        "auc_recency": round(float(roc_auc_score(y, recency)), 3),
        "oracle_customers": len(p_all), "oracle_seconds_200_futures": round(oracle_seconds, 1)}

    campaign = config.campaigns[2].name if len(config.campaigns) > 2 else None
    if campaign is not None:
        t0 = time.perf_counter()
        effect = oracle_offer_effect(data, campaign, 90, n_futures=200)
        seconds = time.perf_counter() - t0
        active_at_sent = data.truth["interventions"].set_index("intervention_id").loc[
            effect.index, "active_at_sent"].to_numpy()
        stats["offer_effect"] = {
            "campaign": campaign, "rows": len(effect),
            "active_at_sent": int(active_at_sent.sum()),
            "mean_effect_all": round(float(effect["effect"].mean()), 4),
            "mean_effect_active": round(float(effect.loc[active_at_sent, "effect"].mean()), 4),
            "seconds_200_futures": round(seconds, 1)}
    return stats




def run_size(n_customers: int, seed: int) -> dict[str, Any]:
    """Run one size in a subprocess and add its peak memory."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", str(n_customers), "--seed", str(seed)],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker for {n_customers} customers failed "
                           f"(exit {proc.returncode})")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_mib"] = round(usage.ru_maxrss / 1024)  # Linux reports KiB
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                        help="customer counts to simulate (two years each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_simulate.json")
    parser.add_argument("--describe", action="store_true",
                        help="print realism statistics of the default config instead "
                             "(--customers/--describe-seed override its size and seed)")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--describe-seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.seed)))
        return 0
    if args.describe:
        print(json.dumps(describe(args.customers, args.describe_seed), indent=2, default=str))
        return 0

    results = [run_size(n, args.seed) for n in args.sizes]
    header = (f"{'customers':>10} {'bookings':>11} {'simulate s':>10} {'bookings/s':>11} "
              f"{'x numpy':>8} {'validate s':>10} {'total s':>8} {'peak MiB':>9}")
    print(header)
    for r in results:
        print(f"{r['customers']:>10,} {r['bookings']:>11,} {r['simulate_seconds']:>10.1f} "
              f"{r['bookings_per_second']:>11,} {r['ratio_to_numpy_draws']:>8.1f} "
              f"{r['validate_seconds']:>10.1f} {r['total_seconds']:>8.1f} "
              f"{r['peak_rss_mib']:>9,}")
    machine = {"python": platform.python_version(), "machine": platform.machine(),
               "cpus": os.cpu_count(), "note": "shared machine: other jobs may run alongside"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
