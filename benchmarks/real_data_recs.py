"""The recommenders, default-configured, on MovieLens 100k as shipped inside a PyPI package, beside
the ``implicit`` package's models on the same split, measured in the same run.

Data (read in place, nothing committed): **MovieLens 100k** in RecBole's atomic format,
``recbole/dataset_example/ml-100k/ml-100k.inter`` inside the ``recbole`` wheel (1.2.1 checked):
100,000 ratings of 943 users on 1,682 items, every rating an implicit positive (RecBole's
default for this file: no threshold, no filtering). The file is read from an installed
``recbole`` or straight from its wheel, which ``pip download recbole==1.2.1 --no-deps -d DIR``
fetches without installing anything (``--data DIR/recbole-1.2.1-py3-none-any.whl``).

Protocol: RecBole's own default evaluation (``eval_args``: ``split {'RS': [0.8, 0.1, 0.1]}``,
``group_by: user``, ``order: RO``, ``mode: full``; ``topk: 10``): each user's interactions are
shuffled and split 80/10/10 into train/valid/test with RecBole's counts
(``valid = test = floor(0.1 n)``, at least 1), every model is fitted on train, and every test
user gets a full ranking of the catalogue with their train and valid items left out; recall,
MRR, NDCG, hit and precision @10 as RecBole defines them (recall over all the user's test
items, NDCG's ideal DCG over ``min(k, |R|)``). The split is seeded (``--seeds``); RecBole's own
split used its seed 2020 through PyTorch, so a published figure is comparable up to split noise
(the spread over our seeds shows its size).

Models:

- ours, default-configured: ``EASERecommender()``, ``ItemKNNRecommender()``,
  ``ALSRecommender()`` (each chooses its parameters on a held-out slice of train), and the same
  classes with the old fixed defaults for reference;
- peers, ``implicit`` with its defaults: ``ItemItemRecommender``, ``CosineRecommender``,
  ``BM25Recommender`` (all ``K=20``), ``AlternatingLeastSquares`` (100 factors) and
  ``BayesianPersonalizedRanking`` (100 factors), scored with the train history only, like ours;
- published: RecBole's BPR on this data and protocol, from RecBole's quick-start guide
  (``docs/source/get_started/started/general.rst`` in RUCAIBox/RecBole: embedding 64, early
  stopping on valid MRR@10; test recall@10 0.2523, MRR@10 0.4855, NDCG@10 0.2920,
  hit@10 0.7953, precision@10 0.1962).

Run: ``python benchmarks/real_data_recs.py --data PATH`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from barberpro_ml.evaluation.ranking import per_user_ranking_metrics
from barberpro_ml.models.recs import (
    ALSRecommender,
    BaseRecommender,
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    top_k,
)

INTER = "recbole/dataset_example/ml-100k/ml-100k.inter"
K = 10
METRICS = ("recall", "mrr", "ndcg", "hit", "precision")
PUBLISHED = {  # RecBole quick-start, BPR on ml-100k, RS 8:1:1 by user, full ranking, test
    "model": "RecBole BPR (published)",
    "recall@10": 0.2523, "mrr@10": 0.4855, "ndcg@10": 0.2920, "hit@10": 0.7953,
    "precision@10": 0.1962,
}


def read_ml100k(path: str | None) -> pd.DataFrame:
    """ml-100k.inter from an installed recbole, a recbole wheel, a folder or the file itself."""
    if path is None:
        spec = importlib.util.find_spec("recbole")
        if spec is None or spec.origin is None:
            raise SystemExit("give --data: a recbole wheel (pip download recbole==1.2.1 "
                             "--no-deps -d DIR) or ml-100k.inter; or install recbole")
        path = str(Path(spec.origin).parent.parent / INTER)
    p = Path(path)
    if p.suffix == ".whl":
        with zipfile.ZipFile(p) as wheel:
            raw = wheel.read(INTER)
        source: Any = io.BytesIO(raw)
    elif p.is_dir():
        source = p / INTER if (p / INTER).exists() else p / "ml-100k.inter"
    else:
        source = p
    frame = pd.read_csv(source, sep="\t")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame[["user_id", "item_id", "timestamp"]]


def recbole_split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame,
                                                             pd.DataFrame]:
    """Per-user random 80/10/10 with RecBole's counts (``_calcu_split_ids``)."""
    rng = np.random.default_rng(seed)
    shuffled = frame.iloc[rng.permutation(len(frame))]
    shuffled = shuffled.sort_values("user_id", kind="stable")
    position = shuffled.groupby("user_id").cumcount().to_numpy()
    n = shuffled.groupby("user_id")["item_id"].transform("size").to_numpy()
    test_n = np.floor(0.1 * n).astype(int)
    valid_n = test_n.copy()
    train_n = n - valid_n - test_n
    small = (0.1 * n > 0) & (0.1 * n < 1)  # fewer than 10 rows: test, then valid, get one
    for part_n in (test_n, valid_n):
        bump = small & (train_n > 1)
        part_n += bump
        train_n -= bump
    part = np.where(position < train_n, 0, np.where(position < train_n + valid_n, 1, 2))
    return (shuffled[part == 0].reset_index(drop=True), shuffled[part == 1].reset_index(drop=True),
            shuffled[part == 2].reset_index(drop=True))


def _matrix(frame: pd.DataFrame, users: pd.Index, items: pd.Index) -> sp.csr_matrix:
    u = users.get_indexer(frame["user_id"])
    i = items.get_indexer(frame["item_id"])
    m = sp.csr_matrix((np.ones(len(u)), (u, i)), shape=(len(users), len(items)))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def evaluate(scores: np.ndarray, seen: sp.csr_matrix, test: sp.csr_matrix) -> dict[str, float]:
    """RecBole's full-ranking metrics @10 over the users with a test item."""
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    s = np.array(scores[users], dtype=np.float64)
    mask = seen[users].tocoo()
    s[mask.row, mask.col] = -np.inf
    rows, cols, _, ranks = top_k(s, K)
    relevant = test[users].toarray() > 0
    hits = np.zeros((len(users), K), dtype=bool)
    hits[rows, ranks - 1] = relevant[rows, cols]
    per_user = per_user_ranking_metrics(hits, relevant.sum(axis=1), K)
    return {f"{m}@{K}": float(per_user[f"{m}@{K}"].mean()) for m in METRICS}


def ours(model: BaseRecommender, train: pd.DataFrame, users: pd.Index,
         items: pd.Index) -> tuple[np.ndarray, str]:
    # RecBole's protocol holds out at random, so our models' internal hold-out is random too
    # (the numeric timestamps of the file are not passed; a datetime column would make it by time)
    model.fit(train[["user_id", "item_id"]])
    scores = np.full((len(users), len(items)), -np.inf)
    cols = items.get_indexer(model.item_index_)
    for block, block_scores, _ in model.iter_score_blocks(users, exclude_seen=False):
        rows = users.get_indexer(block)
        scores[np.ix_(rows, cols)] = block_scores
    chosen = getattr(model, "chosen_params_", {})
    return scores, ", ".join(f"{k}={v}" for k, v in chosen.items())


def implicit_peer(name: str, X: sp.csr_matrix) -> np.ndarray:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import (
        BM25Recommender,
        CosineRecommender,
        ItemItemRecommender,
    )

    X32 = X.astype(np.float32).tocsr()
    with threadpool_limits(limits=1, user_api="blas"):
        if name in ("ItemItemRecommender", "CosineRecommender", "BM25Recommender"):
            knn = {"ItemItemRecommender": ItemItemRecommender, "CosineRecommender":
                   CosineRecommender, "BM25Recommender": BM25Recommender}[name]()
            knn.fit(X.tocsr(), show_progress=False)  # the KNN models take float64
            return np.asarray((X @ knn.similarity).toarray(), dtype=np.float64)
        if name == "AlternatingLeastSquares":
            mf: Any = AlternatingLeastSquares(random_state=0, num_threads=1)
        else:
            mf = BayesianPersonalizedRanking(random_state=0, num_threads=1)
        mf.fit(X32, show_progress=False)
        return np.asarray(mf.user_factors @ mf.item_factors.T, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None,
                        help="recbole wheel, folder or ml-100k.inter (default: installed recbole)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-als", action="store_true", help="skip the factor models")
    args = parser.parse_args()
    frame = read_ml100k(args.data)
    print(f"ml-100k: {len(frame):,} interactions, {frame['user_id'].nunique():,} users, "
          f"{frame['item_id'].nunique():,} items; RecBole RS 8:1:1 by user, full ranking, "
          f"@{K}; seeds {args.seeds}\n")
    users = pd.Index(np.sort(frame["user_id"].unique()))
    items = pd.Index(np.sort(frame["item_id"].unique()))
    ours_models: dict[str, Callable[[], BaseRecommender]] = {
        "EASE (ours, default)": EASERecommender,
        "EASE (ours, old fixed l2=100)": lambda: EASERecommender(l2=100.0),
        "ItemKNN (ours, default)": ItemKNNRecommender,
        "ItemKNN (ours, old fixed 50/10/cosine)": lambda: ItemKNNRecommender(
            n_neighbors=50, shrink=10.0, similarity="cosine", weighting="binary"),
        "Popularity (ours)": PopularityRecommender,
    }
    peers = ["ItemItemRecommender", "CosineRecommender", "BM25Recommender"]
    if not args.no_als:
        ours_models["ALS (ours, default)"] = lambda: ALSRecommender(iterations=15)
        ours_models["ALS (ours, old fixed 32/0.05)"] = lambda: ALSRecommender(
            factors=32, regularization=0.05, iterations=15)
        peers += ["AlternatingLeastSquares", "BayesianPersonalizedRanking"]
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        train, valid, test = recbole_split(frame, seed)
        X = _matrix(train, users, items)
        seen = (X + _matrix(valid, users, items)).tocsr()
        T = _matrix(test, users, items)
        for label, make in ours_models.items():
            start = time.perf_counter()
            scores, chosen = ours(make(), train, users, items)
            rows.append({"model": label, "seed": seed, **evaluate(scores, seen, T),
                         "fit_s": time.perf_counter() - start, "chosen": chosen})
        for name in peers:
            start = time.perf_counter()
            scores = implicit_peer(name, X)
            rows.append({"model": f"implicit {name} (default)", "seed": seed,
                         **evaluate(scores, seen, T), "fit_s": time.perf_counter() - start,
                         "chosen": ""})
    table = pd.DataFrame(rows)
    metric_cols = [f"{m}@{K}" for m in METRICS]
    summary = table.groupby("model", sort=False)[[*metric_cols, "fit_s"]].mean()
    summary["ndcg_sd"] = table.groupby("model", sort=False)["ndcg@10"].std()
    summary.loc[PUBLISHED["model"]] = {c: PUBLISHED[c] for c in metric_cols}
    pd.set_option("display.width", 200)
    print("mean over seeds (fit_s: fit + scoring seconds per seed; ndcg_sd across seeds)")
    print(summary.round(4).to_string())
    print("\nchosen parameters per seed")
    chosen = table.loc[table["chosen"] != "", ["model", "seed", "chosen"]]
    print(chosen.to_string(index=False))
    print("\nratios, same run (mean NDCG@10 / mean NDCG@10)")
    ndcg = summary["ndcg@10"]
    pairs = [("EASE (ours, default)", "implicit BM25Recommender (default)"),
             ("ItemKNN (ours, default)", "implicit ItemItemRecommender (default)"),
             ("ItemKNN (ours, default)", "implicit CosineRecommender (default)"),
             ("ItemKNN (ours, default)", "implicit BM25Recommender (default)"),
             ("EASE (ours, default)", "EASE (ours, old fixed l2=100)"),
             ("ItemKNN (ours, default)", "ItemKNN (ours, old fixed 50/10/cosine)"),
             ("ALS (ours, default)", "implicit AlternatingLeastSquares (default)"),
             ("ALS (ours, default)", "ALS (ours, old fixed 32/0.05)"),
             ("EASE (ours, default)", PUBLISHED["model"]),
             ("ItemKNN (ours, default)", PUBLISHED["model"])]
    for a, b in pairs:
        if a in ndcg.index and b in ndcg.index:
            print(f"  {a} / {b}: {ndcg[a] / ndcg[b]:.3f}")


if __name__ == "__main__":
    main()
