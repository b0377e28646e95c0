"""Provider score against the simulator's latent barber quality, and the departure model.

On the default simulation (20,000 customers) for each seed of ``--seeds`` (default 42 1 2 3;
the first seed also gives the top-level keys, as before) at ``--as-of`` (default 2024-12-31):

- Spearman correlation of the provider score (``provider_scores(data, as_of)``, the shipped
  ``configs/providers.yaml``) with each barber's latent ``quality``, with a 95% bootstrap CI
  over barbers; the raw mean rating's correlation on the same resamples and the paired
  difference (score minus raw rating); the same for the shrunk rating alone, for the score with
  the other percentile reference (neighborhood), and for the score with weights refitted on the
  seed's own data (``fit_provider_weights`` at ``--fit-as-of``, on the next 180 days' ratings;
  the latent quality is never used to fit); the share of barbers whose rating-percentile
  interval holds the percentile of their true quality (the intervals' honesty);
- a bound (``truth_chosen_weights_bound``): the best weights on a 0.1 grid judged against the
  latent quality itself, which nothing in the library uses: no weighting of these components
  can track the truth better;
- the same at an early cut-off (``--early``, default 2023-06-30), when barbers have few reviews;
- the shrinkage check: for barbers with fewer than 30 reviews at a month end, the squared error
  of the raw and of the shrunk mean rating against their mean rating of the next 180 days;
- month-to-month stability: Spearman between the scores at consecutive month ends of the last
  year (barbers present at both);
- the departure model (first seed only): the provider-departure job's layout, model and default
  simulation size (``configs/provider_departure.yaml``: 60,000 customers, same seed; override
  with ``--departure-customers``), out-of-time test ROC AUC with its 95% cluster-bootstrap CI
  over barbers and the counts of departures (rows and distinct barbers);
- ``over_seeds``: per seed the score's and the raw rating's Spearman and their paired
  difference with its CI, and the means over seeds.

The score is computed without churn probabilities (no churn champion in a benchmark), so the
customer-churn component is left out (its default weight is 0).

    PYTHONPATH=src:benchmarks python benchmarks/bench_providers.py [--seeds 42 1 2 3 --json x]
                                          [--departure-customers 60000] [--no-departure]
"""

from __future__ import annotations

import argparse
import time
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from _common import emit
from scipy.stats import rankdata, spearmanr

from barberpro_ml.data import SimulationConfig, simulate
from barberpro_ml.evaluation import evaluate_classifier
from barberpro_ml.jobs import provider_departure
from barberpro_ml.models import ChurnClassifier
from barberpro_ml.providers import (
    fit_provider_weights,
    load_score_config,
    measure_components,
    provider_scores,
)
from barberpro_ml.providers.config import COMPONENTS
from barberpro_ml.providers.weights import _spearman_rows, simplex_grid


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b)[0])


def paired(quality: np.ndarray, columns: dict[str, np.ndarray], *, n_boot: int,
           seed: int) -> dict[str, Any]:
    """Spearman of each column with quality, CI over barbers, and differences vs rating_raw."""
    rng = np.random.default_rng(seed)
    n = len(quality)
    reps = {k: [] for k in columns}
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        for k, v in columns.items():
            reps[k].append(_rho(v[i], quality[i]))
    out: dict[str, Any] = {}
    for k, v in columns.items():
        r = np.array(reps[k])
        out[k] = {"spearman": round(_rho(v, quality), 4),
                  "ci": [round(float(np.nanpercentile(r, 2.5)), 4),
                         round(float(np.nanpercentile(r, 97.5)), 4)]}
        if k != "rating_raw":
            d = r - np.array(reps["rating_raw"])
            out[k]["minus_rating_raw"] = round(out[k]["spearman"]
                                               - out["rating_raw"]["spearman"], 4)
            out[k]["minus_rating_raw_ci"] = [round(float(np.nanpercentile(d, 2.5)), 4),
                                             round(float(np.nanpercentile(d, 97.5)), 4)]
    return out


def against_truth(data: Any, as_of: pd.Timestamp, *, n_boot: int, seed: int,
                  refit: Any = None) -> dict[str, Any]:
    quality = data.truth.tables["providers"].set_index("provider_id")["quality"]
    cfg = load_score_config()
    s = provider_scores(data, as_of, config=cfg)
    other = "neighborhood" if cfg.percentile_within == "marketplace" else "marketplace"
    m = provider_scores(data, as_of, config=cfg.model_copy(
        update={"percentile_within": other}))
    rated = s["rating_raw"].notna()
    q = quality.reindex(s.index).to_numpy()[rated]
    columns = {"rating_raw": s["rating_raw"].to_numpy()[rated],
               "score": s["score"].to_numpy()[rated],
               "rating_shrunk": s["rating_value"].to_numpy()[rated],
               f"score_{other}_percentiles": m["score"].to_numpy()[rated]}
    if refit is not None:
        columns["score_refit"] = provider_scores(data, as_of, config=refit.config(cfg))[
            "score"].to_numpy()[rated]
    # honest intervals: the true quality's percentile (same reference) within the rating's
    true_pct = (quality.reindex(s.index)[rated].rank(method="average") - 0.5) / rated.sum() * 100
    inside = ((s.loc[rated, "rating_low"] <= true_pct) & (true_pct <= s.loc[rated, "rating_high"]))
    # a bound, not a choice: the best weights on a grid judged against the latent quality itself
    # (nothing is fitted or selected with it); no weighting of these components can do better
    comp = [c for c in COMPONENTS if s[c].notna().any()]
    pct = s.loc[rated, comp].fillna(50.0).to_numpy()
    grid = simplex_grid(len(comp), 0.1)
    rho = _spearman_rows(grid @ pct.T, rankdata(q))
    best = int(np.nanargmax(rho))
    bound = {"spearman": round(float(rho[best]), 4),
             "weights": {c: round(float(w), 2) for c, w in zip(comp, grid[best], strict=True)
                         if w > 0}}
    return {"as_of": f"{as_of:%Y-%m-%d}", "n_barbers": int(rated.sum()),
            "truth_chosen_weights_bound": bound,
            "reviews_per_barber_median": float(s["n_reviews"].median()),
            "barbers_under_30_reviews": int((s["n_reviews"] < 30).sum()),
            "rating_interval_holds_true_percentile": round(float(inside.mean()), 3)
            if cfg.percentile_within == "marketplace" else None,
            **paired(q, columns, n_boot=n_boot, seed=seed)}


def stability(data: Any, end: pd.Timestamp, months: int) -> dict[str, Any]:
    stamps = [end - pd.DateOffset(months=k) for k in range(months, -1, -1)]
    scores = [provider_scores(data, t)["score"] for t in stamps]
    rhos = []
    for a, b in pairwise(scores):
        both = a.index.intersection(b.index)
        rhos.append(_rho(a[both].to_numpy(), b[both].to_numpy()))
    return {"months": [f"{t:%Y-%m-%d}" for t in stamps],
            "spearman_consecutive": [round(r, 4) for r in rhos],
            "mean": round(float(np.mean(rhos)), 4), "min": round(float(np.min(rhos)), 4)}


def shrinkage_check(data: Any, *, horizon_days: int = 180, max_reviews: int = 30,
                    n_boot: int = 1000) -> dict[str, Any]:
    """Is the rating's shrinkage right for barbers with few reviews? At every month end from
    the third month to ``horizon_days`` before the end, for each barber with 1 to
    ``max_reviews - 1`` reviews: squared error of the raw and of the shrunk mean rating
    against the barber's mean rating over the next ``horizon_days`` (at least 10 later
    reviews), an observable check (Efron & Morris); bootstrap over barbers."""
    end = data.reviews["created_at"].max()
    start = data.bookings["scheduled_at"].min() + pd.DateOffset(months=2)
    stamps = pd.date_range(start, end - pd.Timedelta(days=horizon_days), freq="ME")
    rows = []
    for t in stamps:
        comps = measure_components(data, t, load_score_config().model_copy(
            update={"n_draws": 50}))
        f = comps.providers
        few = f.index[(f["n_reviews"] > 0) & (f["n_reviews"] < max_reviews)]
        if len(few) == 0:
            continue
        rv = data.reviews
        later = rv.loc[(rv["created_at"] > t) & (rv["created_at"] <= t + pd.Timedelta(
            days=horizon_days)) & rv["provider_id"].isin(few)]
        g = later.groupby("provider_id")["rating"]
        ok = g.size()[g.size() >= 10].index
        value = pd.Series(comps.values["rating"], index=f.index)
        for pid in ok:
            rows.append({"provider_id": pid, "n_reviews": int(f.loc[pid, "n_reviews"]),
                         "raw": f.loc[pid, "rating_raw"], "shrunk": value[pid],
                         "later": float(g.mean()[pid])})
    cases = pd.DataFrame(rows)
    if cases.empty:
        return {"cases": 0}
    cases["se_raw"] = (cases["raw"] - cases["later"]) ** 2
    cases["se_shrunk"] = (cases["shrunk"] - cases["later"]) ** 2
    by = cases.groupby("provider_id")[["se_raw", "se_shrunk"]].agg(["sum", "count"])
    ids = by.index.to_numpy()
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(n_boot):
        pick = by.loc[rng.choice(ids, len(ids))]
        n = pick[("se_raw", "count")].sum()
        diffs.append((pick[("se_shrunk", "sum")].sum() - pick[("se_raw", "sum")].sum()) / n)
    return {"cases": len(cases), "barbers": len(ids),
            "median_reviews": float(cases["n_reviews"].median()),
            "mse_raw": round(float(cases["se_raw"].mean()), 4),
            "mse_shrunk": round(float(cases["se_shrunk"].mean()), 4),
            "shrunk_minus_raw": round(float(cases["se_shrunk"].mean()
                                            - cases["se_raw"].mean()), 4),
            "shrunk_minus_raw_ci": [round(float(np.percentile(diffs, 2.5)), 4),
                                    round(float(np.percentile(diffs, 97.5)), 4)]}


def departure(data: Any, n_boot: int) -> dict[str, Any]:
    cfg = provider_departure.load_config()
    train_cuts, test_cuts = provider_departure.cutoffs(data, cfg)
    train = provider_departure.departure_frame(data, train_cuts, cfg.horizon_days)
    test = provider_departure.departure_frame(data, test_cuts, cfg.horizon_days)
    label = provider_departure.LABEL
    model = ChurnClassifier(**cfg.model).fit(train.drop(columns=label), train[label])
    report = evaluate_classifier(model, test.drop(columns=label), test[label],
                                 n_bootstrap=n_boot, seed=0, family=cfg.family,
                                 train=train.drop(columns=label), horizon_days=cfg.horizon_days,
                                 groups=test.index.get_level_values("provider_id"))
    auc = report.metrics["roc_auc"]

    def barbers(frame: pd.DataFrame) -> int:
        return int(frame.index.get_level_values("provider_id")[frame[label] == 1].nunique())

    return {"customers": len(data.customers),
            "train_rows": len(train), "train_departures": int(train[label].sum()),
            "train_departing_barbers": barbers(train),
            "test_rows": len(test), "test_departures": int(test[label].sum()),
            "test_departing_barbers": barbers(test),
            "test_cutoffs": [f"{c:%Y-%m-%d}" for c in test_cuts],
            "roc_auc": round(auc.value, 4), "roc_auc_ci": [round(auc.ci_low, 4),
                                                          round(auc.ci_high, 4)]}


def one_seed(args: argparse.Namespace, seed: int, *, with_departure: bool) -> dict[str, Any]:
    data = simulate(SimulationConfig(n_customers=args.customers, seed=seed))
    as_of = pd.Timestamp(args.as_of)
    t0 = time.perf_counter()
    provider_scores(data, as_of)
    score_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    refit = fit_provider_weights(data, args.fit_as_of)
    fit_seconds = time.perf_counter() - t0
    result: dict[str, Any] = {
        "customers": args.customers, "seed": seed,
        "score_seconds": round(score_seconds, 3), "fit_seconds": round(fit_seconds, 1),
        "refit": refit.summary(),
        "truth": against_truth(data, as_of, n_boot=args.bootstrap, seed=0, refit=refit),
        "truth_early": against_truth(data, pd.Timestamp(args.early), n_boot=args.bootstrap,
                                     seed=0),
        "stability": stability(data, as_of, args.months),
        "shrinkage": shrinkage_check(data, n_boot=args.bootstrap),
    }
    if with_departure:
        n_departure = (args.departure_customers
                       or provider_departure.load_config().simulation.n_customers
                       or SimulationConfig().n_customers)
        departure_data = (data if n_departure == args.customers else
                          simulate(SimulationConfig(n_customers=n_departure, seed=seed)))
        result["departure"] = departure(departure_data, max(args.bootstrap, 2000))
    return result


def over_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per seed and on average: score and raw rating vs quality, and their difference."""
    rows = []
    for r in runs:
        t = r["truth"]
        rows.append({"seed": r["seed"], "score": t["score"]["spearman"],
                     "score_ci": t["score"]["ci"], "rating_raw": t["rating_raw"]["spearman"],
                     "rating_raw_ci": t["rating_raw"]["ci"],
                     "difference": t["score"]["minus_rating_raw"],
                     "difference_ci": t["score"]["minus_rating_raw_ci"],
                     "refit_difference": t.get("score_refit", {}).get("minus_rating_raw"),
                     "refit_difference_ci": t.get("score_refit", {}).get(
                         "minus_rating_raw_ci"),
                     "early_difference": r["truth_early"]["score"]["minus_rating_raw"],
                     "early_difference_ci": r["truth_early"]["score"]["minus_rating_raw_ci"],
                     "stability_mean": r["stability"]["mean"],
                     "shrinkage_mse_raw": r["shrinkage"].get("mse_raw"),
                     "shrinkage_mse_shrunk": r["shrinkage"].get("mse_shrunk")})

    def mean(key: str) -> float:
        return round(float(np.mean([row[key] for row in rows])), 4)

    return {"per_seed": rows,
            "mean": {k: mean(k) for k in ("score", "rating_raw", "difference",
                                          "refit_difference", "early_difference",
                                          "stability_mean")},
            "seeds_score_at_least_0_8": sum(row["score"] >= 0.8 for row in rows),
            "seeds_difference_ci_above_0": sum(row["difference_ci"][0] > 0 for row in rows),
            "seeds_difference_ci_below_0": sum(row["difference_ci"][1] < 0 for row in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3])
    parser.add_argument("--as-of", default="2024-12-31")
    parser.add_argument("--fit-as-of", default="2024-06-30")
    parser.add_argument("--early", default="2023-06-30")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--no-departure", action="store_true")
    parser.add_argument("--departure-customers", type=int, default=None,
                        help="default: the departure job's simulation size")
    parser.add_argument("--json")
    args = parser.parse_args()
    start = time.perf_counter()
    runs = [one_seed(args, seed, with_departure=(k == 0 and not args.no_departure))
            for k, seed in enumerate(args.seeds)]
    result = {**runs[0], "seeds": args.seeds, "over_seeds": over_seeds(runs),
              "other_seeds": runs[1:]}
    result["seconds"] = round(time.perf_counter() - start, 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
