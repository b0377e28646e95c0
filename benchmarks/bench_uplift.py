"""Uplift targeting against the simulator's truth: oracle-relative Qini and policy profit.

Usage::

    python benchmarks/bench_uplift.py [--seeds 3] [--first-seed 0] [--customers 20000]
                                      [--futures 200] [--bootstrap 500] [--json F]
                                      [--set SECTION.FIELD=VALUE ...] [--bound]

For each seed: simulate the default world (or with ``--set section.field=value`` overrides of
the simulation config, e.g. ``--set offers.winback_rate=0.5`` for offers that also bring back
lapsed customers), build the campaign table
(:func:`~barberpro_ml.interventions.campaign_frame`), compute the true churn reduction of every
test row's offer (:func:`~barberpro_ml.data.oracle_offer_effect`, ``--futures`` paired futures
each), and run :func:`~barberpro_ml.interventions.evaluate.evaluate_targeting` (learner chosen
on the validation campaign, judged on the last campaign). Printed per seed and averaged: the
chosen learner; the realised Qini of the model, churn-risk targeting and the oracle with 95%
intervals; the paired difference model minus churn risk; the **true** Qini (cumulative true
effects, noise-free) of the model over the oracle's (goal >= 0.7); the policy's IPW and DR
profit per test customer with intervals, its true profit and the oracle policy's (goal >= 0.8
of it); the relative churn reduction among the policy's treated customers (the seed's 46.3%).
With ``--bound``: the observable bound, the true Qini over the oracle's of a regression fitted
on the training campaigns' *true* effects with the same features (how far any learner of these
features could get; the library never uses it).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd
import yaml
from _common import emit
from pydantic import ValidationError
from xgboost import XGBRegressor

from barberpro_ml.data import SimulationConfig, simulate
from barberpro_ml.interventions import campaign_frame, qini_report
from barberpro_ml.interventions.evaluate import evaluate_targeting, split_campaigns, true_effects

KEYS = ("qini", "qini_low", "qini_high", "qini_minus_churn_risk", "qini_minus_churn_risk_low",
        "qini_minus_churn_risk_high", "true_qini", "oracle_true_qini", "qini_to_oracle",
        "policy_gain_ipw", "policy_gain_ipw_low", "policy_gain_ipw_high", "policy_gain_dr",
        "policy_gain_dr_low", "policy_gain_dr_high", "policy_true_gain",
        "oracle_policy_true_gain", "policy_to_oracle", "share_treated", "oracle_share_treated",
        "relative_churn_reduction", "relative_churn_reduction_low",
        "relative_churn_reduction_high", "retention_improvement", "calibration_intercept",
        "calibration_slope", "n_test")


def world(seed: int, customers: int, overrides: list[str]) -> SimulationConfig:
    """The default world at ``seed``, with ``section.field=value`` overrides (``--set``)."""
    config = SimulationConfig(n_customers=customers, seed=seed).model_dump()
    for item in overrides:
        key, sep, value = item.partition("=")
        path = key.strip().split(".")
        if not sep or not all(path):
            raise SystemExit(f"--set {item!r}: expected section.field=value")
        node = config
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                raise SystemExit(f"--set {item!r}: {part!r} is not a section of the "
                                 f"simulation config")
            node = node[part]
        if path[-1] not in node:
            raise SystemExit(f"--set {item!r}: unknown field {path[-1]!r}")
        node[path[-1]] = yaml.safe_load(value)
    try:
        return SimulationConfig.model_validate(config)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SystemExit(f"--set {' '.join(overrides)}: {problems}") from None


def observable_bound(frame: pd.DataFrame, truth: pd.Series, seed: int) -> float:
    """True Qini, over the oracle's, of a regression fitted on the training campaigns' TRUE
    effects (which no learner has) with the learners' features and base-learner settings:
    about the best any function of these features can rank the test campaign. A bound the
    library never uses, like ``bench_providers``' truth-chosen weights."""
    features = list(frame.attrs.get("features") or frame.columns[6:])
    train_c, valid_c, test_c = split_campaigns(frame)
    fit = frame[frame["campaign"].isin(train_c + valid_c)]
    test = frame[frame["campaign"].isin(test_c)]
    model = XGBRegressor(n_estimators=200, max_depth=3, learning_rate=0.05,
                         min_child_weight=20.0, subsample=0.8, random_state=seed, n_jobs=1)
    model.fit(fit[features].to_numpy(np.float64), truth.reindex(fit.index).to_numpy())
    true_test = truth.reindex(test.index).to_numpy()
    table = qini_report({"bound": model.predict(test[features].to_numpy(np.float64)),
                         "oracle": true_test}, test["treated"], test["churned"],
                        true_effect=true_test, n_bootstrap=0, seed=seed)
    return float(table.loc["bound", "true_qini"] / table.loc["oracle", "true_qini"])


def one_seed(seed: int, customers: int, futures: int, n_bootstrap: int,
             overrides: list[str] | None = None, bound: bool = False,
             policy_confidence: float | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    data = simulate(world(seed, customers, overrides or []))
    frame = campaign_frame(data)
    test = split_campaigns(frame)[2]
    rows = frame if bound else frame[frame["campaign"].isin(test)]
    truth = true_effects(data, rows, n_futures=futures)
    result = evaluate_targeting(frame, true_effect=truth.reindex(
        frame.index[frame["campaign"].isin(test)]), n_bootstrap=n_bootstrap, seed=seed,
        policy_confidence=policy_confidence)
    row: dict[str, Any] = {"seed": seed, "learner": result.learner,
                           "validation_qini": {k: round(v, 5)
                                               for k, v in result.validation_qini.items()}}
    row |= {k: round(float(result.metrics.get(k, np.nan)), 5) for k in KEYS}
    for name in ("churn_risk", "oracle", "random"):
        q = result.qini.loc[name]
        row[f"{name}_qini"] = [round(float(q["qini"]), 5), round(float(q["qini_low"]), 5),
                               round(float(q["qini_high"]), 5)]
    q = result.qini
    if "true_qini" in q.columns and q.loc["oracle", "true_qini"] > 0:
        # the same noise-free yardstick for the churn-risk baseline
        row["churn_risk_qini_to_oracle"] = round(float(q.loc["churn_risk", "true_qini"]
                                                       / q.loc["oracle", "true_qini"]), 5)
    if bound:
        row["observable_bound_to_oracle"] = round(observable_bound(frame, truth, seed), 5)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--futures", type=int, default=200)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--policy-confidence", type=float, default=None,
                        help="evaluate_targeting(policy_confidence=...): treat only where this "
                             "share of the calibration's replicates says the offer pays")
    parser.add_argument("--json", default=None)
    parser.add_argument("--bound", action="store_true",
                        help="also the observable bound: a regression on the training "
                             "campaigns' true effects (true effects of every campaign: slower)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a field of the simulation config (repeatable), e.g. "
                             "customers.responsiveness_mean=1.5")
    args = parser.parse_args()
    if args.policy_confidence is not None and not 0 < args.policy_confidence < 1:
        parser.error(f"--policy-confidence: expected a share in (0, 1), got "
                     f"{args.policy_confidence}")
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rows.append(one_seed(seed, args.customers, args.futures, args.bootstrap,
                             args.set, args.bound, args.policy_confidence))
        print(rows[-1], flush=True)
    summary = {k: round(float(np.nanmean([r.get(k, np.nan) for r in rows])), 5)
               for k in ("qini_to_oracle", "churn_risk_qini_to_oracle",
                         "observable_bound_to_oracle", "policy_to_oracle",
                         "qini_minus_churn_risk", "policy_true_gain", "oracle_policy_true_gain",
                         "relative_churn_reduction")}
    summary["beats_churn_risk_ci_above_zero"] = sum(r["qini_minus_churn_risk_low"] > 0
                                                    for r in rows)
    summary["qini_to_oracle_at_least_0.7"] = sum(r["qini_to_oracle"] >= 0.7 for r in rows)
    summary["policy_to_oracle_at_least_0.8"] = sum(r["policy_to_oracle"] >= 0.8 for r in rows)
    emit({"customers": args.customers, "overrides": args.set, "seeds": len(rows),
          "policy_confidence": args.policy_confidence,
          "futures": args.futures, "bootstrap": args.bootstrap, "mean": summary,
          "per_seed": rows}, args.json)


if __name__ == "__main__":
    main()
