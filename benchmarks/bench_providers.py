"""Provider score against the simulator's latent barber quality, and the departure model.

On the default simulation (20,000 customers, seed 42) at ``--as-of`` (default 2024-12-31):

- Spearman correlation of the provider score (``provider_scores(data, as_of)``, the shipped
  ``configs/providers.yaml``) with each barber's latent ``quality``, with a 95% bootstrap CI
  over barbers; the raw mean rating's correlation on the same resamples and the paired
  difference (score minus raw rating); the same for the shrunk rating alone and for the score
  with marketplace-wide percentiles;
- the same at an early cut-off (``--early``, default 2023-06-30), when barbers have few reviews;
- month-to-month stability: Spearman between the scores at consecutive month ends of the last
  year (barbers present at both);
- the departure model: the provider-departure job's layout, model and default simulation
  size (``configs/provider_departure.yaml``: 60,000 customers, same seed; override with
  ``--departure-customers``), out-of-time test ROC AUC with its 95% cluster-bootstrap CI over
  barbers and the counts of departures (rows and distinct barbers).

The score is computed without churn probabilities (no churn champion in a benchmark), so the
customer-churn component is left out and its weight spread over the others.

    python benchmarks/bench_providers.py [--customers 20000 --seed 42 --json out.json]
                                         [--departure-customers 60000]
"""

from __future__ import annotations

import argparse
import time
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from _common import emit
from scipy.stats import spearmanr

from barberpro_ml.data import SimulationConfig, simulate
from barberpro_ml.evaluation import evaluate_classifier
from barberpro_ml.jobs import provider_departure
from barberpro_ml.models import ChurnClassifier
from barberpro_ml.providers import load_score_config, provider_scores


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


def against_truth(data: Any, as_of: pd.Timestamp, *, n_boot: int, seed: int) -> dict[str, Any]:
    quality = data.truth.tables["providers"].set_index("provider_id")["quality"]
    cfg = load_score_config()
    s = provider_scores(data, as_of, config=cfg)
    m = provider_scores(data, as_of, config=cfg.model_copy(
        update={"percentile_within": "marketplace"}))
    rated = s["rating_raw"].notna()
    q = quality.reindex(s.index).to_numpy()[rated]
    return {"as_of": f"{as_of:%Y-%m-%d}", "n_barbers": int(rated.sum()),
            "reviews_per_barber_median": float(s["n_reviews"].median()),
            "barbers_under_30_reviews": int((s["n_reviews"] < 30).sum()),
            **paired(q, {"rating_raw": s["rating_raw"].to_numpy()[rated],
                         "score": s["score"].to_numpy()[rated],
                         "rating_shrunk": s["rating_value"].to_numpy()[rated],
                         "score_marketplace_percentiles": m["score"].to_numpy()[rated]},
                     n_boot=n_boot, seed=seed)}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2024-12-31")
    parser.add_argument("--early", default="2023-06-30")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--departure-customers", type=int, default=None,
                        help="default: the departure job's simulation size")
    parser.add_argument("--json")
    args = parser.parse_args()
    start = time.perf_counter()
    data = simulate(SimulationConfig(n_customers=args.customers, seed=args.seed))
    as_of = pd.Timestamp(args.as_of)
    t0 = time.perf_counter()
    provider_scores(data, as_of)
    score_seconds = time.perf_counter() - t0
    result = {
        "customers": args.customers, "seed": args.seed,
        "score_seconds": round(score_seconds, 3),
        "truth": against_truth(data, as_of, n_boot=args.bootstrap, seed=0),
        "truth_early": against_truth(data, pd.Timestamp(args.early), n_boot=args.bootstrap,
                                     seed=0),
        "stability": stability(data, as_of, args.months),
    }
    n_departure = (args.departure_customers
                   or provider_departure.load_config().simulation.n_customers
                   or SimulationConfig().n_customers)
    departure_data = (data if n_departure == args.customers else
                      simulate(SimulationConfig(n_customers=n_departure, seed=args.seed)))
    result["departure"] = departure(departure_data, max(args.bootstrap, 2000))
    result["seconds"] = round(time.perf_counter() - start, 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
