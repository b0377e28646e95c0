"""Recommenders that choose their own hyper-parameters on held-out interactions at fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from barberpro_ml.models.recs import (
    ALSRecommender,
    EASERecommender,
    ItemKNNRecommender,
    implicit_available,
)
from barberpro_ml.models.recs._tuning import (
    MIN_HOLDOUT_USERS,
    coordinate_search,
    hold_out,
    log_grid,
)


def paired_catalogue(n_users: int = 400, seed: int = 0) -> pd.DataFrame:
    """Items come in pairs bought together (a_j with b_j), on top of a few very popular items.

    The held-out half of a pair is predicted exactly by its partner, which only a weakly
    regularised EASE isolates: a large ``l2`` shrinks EASE towards co-occurrence counts, where
    the popular items co-occur with everything and crowd the partner out.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        for pair in rng.choice(40, size=3, replace=False):
            rows += [(user, f"a{pair}"), (user, f"b{pair}")]
        p = np.linspace(1.0, 0.2, 12)
        for item in rng.choice(12, size=6, replace=False, p=p / p.sum()):
            rows.append((user, f"pop{item}"))
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_ease_picks_the_small_l2_the_data_call_for() -> None:
    frame = paired_catalogue()
    model = EASERecommender().fit(frame)
    scores = model.search_scores_.set_index("l2")["ndcg@10"]
    # the known answer: the weakest regularisation of the grid beats the strongest clearly ...
    assert scores.loc[min(scores.index)] > scores.loc[max(scores.index)] + 0.05
    # ... and the choice is the best point scored, below the scale of the Gram diagonal
    assert model.chosen_params_["l2"] == scores.idxmax()
    diagonal = frame.groupby("item_id").size().mean()
    assert model.chosen_params_["l2"] < diagonal
    assert set(model.search_grid_) == {"l2"}
    assert len(model.search_scores_) == len(model.search_grid_["l2"])
    assert "chose" in model.search_note_


def test_item_knn_search_records_the_grid_and_chooses_its_best_point() -> None:
    frame = paired_catalogue(n_users=200)
    model = ItemKNNRecommender().fit(frame)
    n_items = frame["item_id"].nunique()
    assert set(model.search_grid_) == {"similarity", "n_neighbors", "shrink", "weighting"}
    assert max(model.search_grid_["n_neighbors"]) <= n_items - 1  # capped by the catalogue
    best = model.search_scores_.loc[model.search_scores_["ndcg@10"].idxmax()]
    assert {k: best[k] for k in ("similarity", "n_neighbors", "shrink", "weighting")} == \
        model.chosen_params_
    # the partner is the one neighbour that matters: refitting with the choice reproduces it
    ranked = model.similar_items(["a3"], k=1)["similar_item_id"].tolist()
    assert ranked == ["b3"]


def test_explicit_parameters_skip_the_search() -> None:
    frame = paired_catalogue(n_users=100)
    ease = EASERecommender(l2=5.0).fit(frame)
    assert ease.search_grid_ == {} and ease.search_scores_.empty
    assert ease.chosen_params_ == {"l2": 5.0}
    assert "no search" in ease.search_note_
    knn = ItemKNNRecommender(n_neighbors=7, shrink=2.0, similarity="cosine",
                             weighting="tfidf").fit(frame)
    assert knn.search_grid_ == {} and knn.chosen_params_ == {
        "similarity": "cosine", "n_neighbors": 7, "shrink": 2.0, "weighting": "tfidf"}
    assert int(np.diff(knn.similarity_.indptr).max()) <= 7
    # one given, the others searched; shrink is moot beside a given co-occurrence
    partial = ItemKNNRecommender(similarity="cooccurrence", weighting="binary").fit(frame)
    assert set(partial.search_grid_) == {"n_neighbors"}
    assert partial.chosen_params_["similarity"] == "cooccurrence"
    # get_params is left alone: the choice lives in chosen_params_ only
    assert partial.get_params()["n_neighbors"] is None


def test_same_seed_same_choice() -> None:
    frame = paired_catalogue(n_users=150, seed=3)
    first = ItemKNNRecommender(random_state=7).fit(frame)
    second = ItemKNNRecommender(random_state=7).fit(frame)
    assert first.chosen_params_ == second.chosen_params_
    pd.testing.assert_frame_equal(first.search_scores_, second.search_scores_)
    a, b = EASERecommender().fit(frame), EASERecommender().fit(frame)
    np.testing.assert_array_equal(a.coef_, b.coef_)


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": ["cut", "beard", "cut", "beard", "cut"]}),
    pd.DataFrame({"user_id": range(50), "item_id": ["cut"] * 25 + ["beard"] * 25}),  # 1 each
], ids=["five-rows", "one-item-per-user"])
def test_tiny_data_falls_back_to_the_documented_defaults(frame: pd.DataFrame) -> None:
    ease = EASERecommender().fit(frame)
    assert ease.chosen_params_ == {"l2": 100.0}
    knn = ItemKNNRecommender().fit(frame)
    assert knn.chosen_params_ == {"similarity": "cosine", "n_neighbors": 50, "shrink": 10.0,
                                  "weighting": "binary"}
    for model in (ease, knn):
        assert "too little data" in model.search_note_
        assert model.search_grid_ == {} and model.search_scores_.empty
        assert len(model.recommend([1], k=1)) <= 1


def test_time_hold_out_keeps_the_earliest_and_holds_out_the_latest() -> None:
    users = np.repeat(np.arange(MIN_HOLDOUT_USERS + 2), 5)
    items = np.tile(np.arange(5), MIN_HOLDOUT_USERS + 2)
    # each user's timestamps run backwards over the item ids: item 0 is the latest
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(10 - items, unit="D")
    frame = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": days})
    held = hold_out(frame)
    assert held is not None and held.mode == "time"
    # 20% of 5 rows = 1 row per user: the latest, item 0, which no one kept
    assert held.n_relevant.tolist() == [1] * len(held.rows)
    assert held.X.shape[1] == 4 and held.relevant.nnz == 0
    without_time = hold_out(frame.drop(columns="timestamp"), seed=0)
    assert without_time is not None and without_time.mode == "random"
    model = EASERecommender().fit(frame)
    assert "last by timestamp" in model.search_note_


def test_coordinate_search_finds_the_best_point_and_scores_each_once() -> None:
    calls: list[tuple[int, str]] = []

    def score(point: dict[str, object]) -> float:
        calls.append((int(point["a"]), str(point["b"])))  # type: ignore[call-overload]
        return -abs(int(point["a"]) - 3) + (0.5 if point["b"] == "y" else 0.0)  # type: ignore[call-overload]

    best, records = coordinate_search(score, {"a": [1, 2, 3, 4], "b": ["x", "y"]},
                                      {"a": 1, "b": "x"})
    assert best == {"a": 3, "b": "y"}
    assert len(calls) == len(set(calls)) == len(records)


def test_log_grid_rounds_to_three_significant_digits() -> None:
    assert log_grid(47.3, [-1, 0, 1]) == [4.73, 47.3, 473.0]


@pytest.mark.skipif(not implicit_available(), reason="needs the implicit package")
def test_als_chooses_factors_and_regularization() -> None:
    frame = paired_catalogue(n_users=120)
    model = ALSRecommender(iterations=3).fit(frame)
    assert set(model.search_grid_) == {"factors", "regularization"}
    n_items = frame["item_id"].nunique()
    assert max(model.search_grid_["factors"]) <= n_items
    assert model.item_factors_.shape[1] == model.chosen_params_["factors"]
    given = ALSRecommender(factors=4, regularization=0.1, iterations=2).fit(frame)
    assert given.search_grid_ == {}
