"""Monitoring champions: detection of market shocks and false alarms in quiet periods.

For each seed, one simulated marketplace over 3.5 years (2022-01-01 to 2025-07-01) is drawn
three times with the same seed: quiet, with a price rise of every barber, and with an exodus
of barbers, both at ``--shock-at``. The shock's random draws have their own stream, so the
three are the same marketplace before the shock. A churn model is trained exactly as the churn
job lays out its cut-offs, with the data known at ``2024-01-01`` (the deployment date): test
cut-off = deployment - 90 days, validation one horizon earlier, three training cut-offs 91
days apart before that; the gate's figures are the test cut-off's ROC AUC, accuracy and RMS
calibration error with bootstrap CIs (the unsliced churn claims). The same model is then
monitored (:func:`barberpro_ml.monitoring.check_model`) at each ``--quiet-dates`` on the quiet
marketplace and at each ``--shock-dates`` on the shocked ones.

With the same data, the recommendations champion is an item-kNN recommender fitted as the
recommendations job lays it out at the deployment date (bookings before deployment - 90 days;
its gate figures NDCG@10 and recall@10 on the 90 days after, bootstrap CIs), monitored by
:func:`barberpro_ml.monitoring.check_recommender` at the same dates (``recs_*`` in the output).

A quiet check that is not ``ok`` is a false alarm; a shock check that is not ``ok`` is a
detection. Rates are given with Wilson 95% intervals (checks of one seed share the model and
the marketplace, so the intervals are optimistic about independence).

Usage::

    .venv/bin/python benchmarks/bench_monitor.py                       # 10 seeds, 10,000 customers
    .venv/bin/python benchmarks/bench_monitor.py --seeds 2 --customers 2000   # quick look

Prints a table per check and the rates as JSON (``--json`` writes them to a file too).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit

from barberpro_ml.data import SimulationConfig, simulate
from barberpro_ml.definitions import Definitions
from barberpro_ml.evaluation import evaluate_recommender, evaluate_scores
from barberpro_ml.evaluation.proportions import wilson_interval
from barberpro_ml.features import training_frame, with_rfm_features
from barberpro_ml.models import ChurnClassifier
from barberpro_ml.models.recs import (
    ItemKNNRecommender,
    booking_interactions_split,
    customer_neighborhoods,
)
from barberpro_ml.monitoring import (
    GateFigure,
    ModelHealth,
    MonitorSettings,
    check_model,
    check_recommender,
)

START, END = "2022-01-01", "2025-07-01"
RECS_HORIZON = 90
DEPLOYED = pd.Timestamp("2024-01-01")
CLAIMS = (("roc_auc", "at_least"), ("accuracy", "at_least"),
          ("rms_calibration_error", "at_most"))


def scenario(name: str, seed: int, customers: int, shock_at: str, price_rise: float,
             exodus: float) -> Any:
    shocks: list[dict[str, Any]] = []
    if name == "price_rise":
        shocks = [{"at": shock_at, "price_rise": price_rise}]
    elif name == "exodus":
        shocks = [{"at": shock_at, "provider_exodus": exodus}]
    return simulate(SimulationConfig(n_customers=customers, seed=seed, start=START, end=END,
                                     shocks=shocks))


def train(data: Any, defs: Definitions, n_bootstrap: int) -> dict[str, Any]:
    """The churn job's layout at DEPLOYED, a small boosted model, the gate's figures."""
    h = pd.Timedelta(days=defs.churn_horizon_days)
    test = DEPLOYED - h
    valid = test - h
    cuts = [valid - h - pd.Timedelta(days=91 * k) for k in (2, 1, 0)]

    def xy(at: list[pd.Timestamp]) -> tuple[pd.DataFrame, pd.Series]:
        f = with_rfm_features(data, training_frame(
            data, at, defs.churn_horizon_days, label="churn",
            active_window_days=defs.active_window_days))
        return f.drop(columns="churned"), f["churned"]

    X_tr, y_tr = xy(cuts)
    X_va, y_va = xy([valid])
    X_te, y_te = xy([test])
    model = ChurnClassifier(n_estimators=200, learning_rate=0.1, max_depth=4,
                            early_stopping_rounds=30, random_state=0, n_jobs=1)
    model.fit(X_tr, y_tr, X_valid=X_va, y_valid=y_va)
    report = evaluate_scores(y_te.to_numpy(), model.predict_proba(X_te)[:, 1],
                             n_bootstrap=n_bootstrap, seed=0)
    gates = [GateFigure(metric=m, direction=d, value=report.metrics[m].value,  # type: ignore[arg-type]
                        ci_low=report.metrics[m].ci_low, ci_high=report.metrics[m].ci_high)
             for m, d in CLAIMS]
    # the recommendations job's layout at DEPLOYED: fit before its test cut-off, judged after
    recs_test = DEPLOYED - pd.Timedelta(days=RECS_HORIZON)
    groups = customer_neighborhoods(data)
    r_train, r_test = booking_interactions_split(data, recs_test, RECS_HORIZON)
    recommender = ItemKNNRecommender().fit(r_train, user_groups=groups)
    ranking = evaluate_recommender(recommender, r_train, r_test, k=10, n_bootstrap=n_bootstrap,
                                   seed=0, baseline=None, user_groups=groups)
    recs_gates = [GateFigure(metric=m, value=ranking.metrics[m].value,
                             ci_low=ranking.metrics[m].ci_low, ci_high=ranking.metrics[m].ci_high)
                  for m in ("ndcg@10", "recall@10")]
    return {"model": model, "columns": list(X_tr.columns), "gates": gates,
            "reference": cuts[-1], "trend_from": cuts[0], "trend_to": test,
            "recommender": recommender, "recs_gates": recs_gates, "recs_test": recs_test}


def check(fit: dict[str, Any], data: Any, at: str, defs: Definitions,
          settings: MonitorSettings | None = None) -> ModelHealth:
    model = fit["model"]
    return check_model(lambda X: model.predict_proba(X)[:, 1], "churn", data, at,
                       reference_as_of=fit["reference"], definitions=defs,
                       input_columns=fit["columns"], gates=fit["gates"],
                       trend_from=fit["trend_from"], trend_to=fit["trend_to"],
                       settings=settings)


def check_recs(fit: dict[str, Any], data: Any, at: str,
               settings: MonitorSettings | None = None) -> ModelHealth:
    return check_recommender(fit["recommender"], data, at, reference_as_of=fit["recs_test"],
                             horizon_days=RECS_HORIZON, gates=fit["recs_gates"],
                             settings=settings)


def recs_line(h: ModelHealth) -> dict[str, Any]:
    perf = {m.metric: m for m in h.performance}
    ndcg = perf.get("ndcg@10")
    booked = next(r for r in h.features if r.column == "booked_barber")
    return {"recs_verdict": h.verdict,
            "recs_ndcg": None if ndcg is None else round(ndcg.value, 4),
            "recs_ndcg_p_holm": None if ndcg is None or ndcg.p_holm is None
            else float(f"{ndcg.p_holm:.3g}"),
            "recs_booked_psi": round(booked.psi, 3),
            "recs_booked_turnover_psi": None if booked.trend_psi is None
            else round(booked.trend_psi, 3),
            "recs_expected_loss": None if ndcg is None else round(ndcg.expected_loss, 4),
            "recs_refit_difference": None if ndcg is None or ndcg.refit_difference is None
            else round(ndcg.refit_difference, 4),
            "recs_expected_refit_gap": None if ndcg is None else round(ndcg.expected_refit_gap, 4),
            "recs_gate_degraded": None if ndcg is None else ndcg.gate_degraded,
            "recs_top_psi": round(h.score.psi, 3)}


def line(seed: int, name: str, at: str, h: ModelHealth) -> dict[str, Any]:
    perf = {m.metric: m for m in h.performance}
    auc, cal = perf.get("roc_auc"), perf.get("rms_calibration_error")
    flagged = [r.column for r in h.features if r.counts]
    explained = [r.column for r in h.features if r.drifted and not r.trending and r.explained_by]
    return {"seed": seed, "scenario": name, "as_of": at, "verdict": h.verdict,
            "auc": None if auc is None else round(auc.value, 4),
            "auc_p_holm": None if auc is None or auc.p_holm is None else float(f"{auc.p_holm:.3g}"),
            "rms_cal": None if cal is None else round(cal.value, 4),
            "rms_cal_p_holm": None if cal is None or cal.p_holm is None
            else float(f"{cal.p_holm:.3g}"),
            "score_psi": round(h.score.psi, 3),
            "n_trending": sum(r.trending for r in h.features),
            "drifted_inputs": ",".join(flagged[:4]),
            "explained_inputs": ",".join(explained[:4])}


def rate(hits: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(hits, n)
    return {"hits": hits, "n": n, "rate": round(hits / n, 4) if n else None,
            "wilson95": [round(float(lo), 4), round(float(hi), 4)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--shock-at", default="2024-07-01")
    parser.add_argument("--price-rise", type=float, default=0.25)
    parser.add_argument("--exodus", type=float, default=0.35)
    parser.add_argument("--quiet-dates", default="2024-04-01,2024-07-01,2024-10-01,2025-01-01")
    parser.add_argument("--shock-dates", default="2024-10-01,2025-01-01")
    parser.add_argument("--n-bootstrap", type=int, default=300)
    parser.add_argument("--trend-threshold", type=float, default=None,
                        help="MonitorSettings.trend_threshold (default: the library's)")
    parser.add_argument("--count-actions", action="store_true",
                        help="MonitorSettings(explain_actions=False): count inputs moved by "
                             "recorded campaigns like any other (the rule before)")
    parser.add_argument("--turnover-anchors", type=int, default=None,
                        help="MonitorSettings.turnover_anchors (0: the recommendations rule "
                             "before turnover was measured; default: the library's)")
    parser.add_argument("--turnover-factor", type=float, default=None,
                        help="MonitorSettings.turnover_factor (default: the library's)")
    parser.add_argument("--no-refit-check", action="store_true",
                        help="MonitorSettings(refit_check=False): a recommendations loss against "
                             "the gate counts without comparing with a refitted copy (the rule "
                             "before)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    defs = Definitions()
    chosen: dict[str, Any] = {"explain_actions": not args.count_actions}
    if args.trend_threshold is not None:
        chosen["trend_threshold"] = args.trend_threshold
    if args.turnover_anchors is not None:
        chosen["turnover_anchors"] = args.turnover_anchors
    if args.no_refit_check:
        chosen["refit_check"] = False
    if args.turnover_factor is not None:
        chosen["turnover_factor"] = args.turnover_factor
    settings = MonitorSettings(**chosen)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        quiet = scenario("quiet", seed, args.customers, args.shock_at, 0, 0)
        fit = train(quiet, defs, args.n_bootstrap)
        for at in args.quiet_dates.split(","):
            rows.append(line(seed, "quiet", at, check(fit, quiet, at, defs, settings))
                        | recs_line(check_recs(fit, quiet, at, settings)))
            print(rows[-1], flush=True)
        for name in ("price_rise", "exodus"):
            shocked = scenario(name, seed, args.customers, args.shock_at, args.price_rise,
                               args.exodus)
            for at in args.shock_dates.split(","):
                rows.append(line(seed, name, at, check(fit, shocked, at, defs, settings))
                            | recs_line(check_recs(fit, shocked, at, settings)))
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    result: dict[str, Any] = {
        "seeds": args.seeds, "first_seed": args.first_seed, "customers": args.customers,
        "shock_at": args.shock_at, "price_rise": args.price_rise, "exodus": args.exodus,
        "trend_threshold": settings.trend_threshold,
        "explain_actions": settings.explain_actions,
        "turnover_anchors": settings.turnover_anchors,
        "turnover_factor": settings.turnover_factor,
        "refit_check": settings.refit_check,
        "seconds": round(time.perf_counter() - started, 1)}
    quiet_rows = table[table.scenario == "quiet"]
    result["false_alarm"] = rate(int((quiet_rows.verdict != "ok").sum()), len(quiet_rows))
    for name in ("price_rise", "exodus"):
        part = table[table.scenario == name]
        result[f"detection_{name}"] = rate(int((part.verdict != "ok").sum()), len(part))
        for at, sub in part.groupby("as_of"):
            result[f"detection_{name}_{at}"] = rate(int((sub.verdict != "ok").sum()), len(sub))
    result["verdicts"] = {f"{k[0]} {k[1]}": int(v) for k, v in
                          table.groupby(["scenario", "verdict"]).size().items()}
    # the recommendations champion, judged on the same marketplaces and dates
    result["recs_false_alarm"] = rate(int((quiet_rows.recs_verdict != "ok").sum()),
                                      len(quiet_rows))
    for name in ("price_rise", "exodus"):
        part = table[table.scenario == name]
        result[f"recs_detection_{name}"] = rate(int((part.recs_verdict != "ok").sum()),
                                                len(part))
        for at, sub in part.groupby("as_of"):
            result[f"recs_detection_{name}_{at}"] = rate(
                int((sub.recs_verdict != "ok").sum()), len(sub))
    result["recs_verdicts"] = {f"{k[0]} {k[1]}": int(v) for k, v in
                               table.groupby(["scenario", "recs_verdict"]).size().items()}
    result["median_score_psi"] = {k: float(np.median(v)) for k, v in
                                  table.groupby("scenario").score_psi}
    emit(result, args.json)


if __name__ == "__main__":
    main()
