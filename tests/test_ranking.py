"""Ranking evaluation: hand-computed metrics, sklearn as an oracle for NDCG, bootstrap pairing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.metrics import ndcg_score

from barberpro_ml.evaluation.ranking import (
    RANKING_METRICS,
    RankingReport,
    evaluate_recommender,
    paired_ranking_difference,
    per_user_ranking_metrics,
    ranking_metric_names,
    select_on_validation,
)
from barberpro_ml.models.recs import EASERecommender, ItemKNNRecommender, PopularityRecommender


def interactions(pairs: list[tuple[object, object]]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["user_id", "item_id"])


# --------------------------------------------------------------------------- per-user metrics

def test_metrics_equal_hand_computed_values() -> None:
    # user 0: ranks 1..4 = hit, miss, hit, miss; 3 relevant items in all
    # user 1: ranks 1..4 = miss, miss, miss, hit; 1 relevant item
    hits = [[True, False, True, False], [False, False, False, True]]
    m = per_user_ranking_metrics(hits, [3, 1], k=(2, 4))
    log2 = np.log2
    expected = {
        "precision@2": [1 / 2, 0.0], "precision@4": [2 / 4, 1 / 4],
        "recall@2": [1 / 3, 0.0], "recall@4": [2 / 3, 1.0],
        "ndcg@2": [1.0 / (1 + 1 / log2(3)), 0.0],
        "ndcg@4": [(1 + 1 / log2(4)) / (1 + 1 / log2(3) + 1 / log2(4)), (1 / log2(5)) / 1.0],
        "mrr@2": [1.0, 0.0], "mrr@4": [1.0, 1 / 4],
        "hit@2": [1.0, 0.0], "hit@4": [1.0, 1.0],
        # AP@k = sum_i P@i * h_i / min(k, |R|)
        "map@2": [(1 / 1) / 2, 0.0], "map@4": [(1 / 1 + 2 / 3) / 3, (1 / 4) / 1],
    }
    assert set(m) == set(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(m[name], values, err_msg=name)


def test_ndcg_agrees_with_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items = 40, 12
    scores = rng.random((n_users, n_items))  # distinct scores: no tie conventions involved
    relevance = rng.random((n_users, n_items)) < 0.25
    relevance[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    order = np.argsort(-scores, axis=1)
    hits = np.take_along_axis(relevance, order, axis=1)
    for k in (1, 3, 5, 12):
        ours = per_user_ranking_metrics(hits, relevance.sum(axis=1), k)[f"ndcg@{k}"]
        theirs = [ndcg_score(relevance[[u]], scores[[u]], k=k) for u in range(n_users)]
        np.testing.assert_allclose(ours, theirs)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.booleans(), min_size=8, max_size=8), min_size=n, max_size=n),
    st.lists(st.integers(0, 6), min_size=n, max_size=n))))
def test_metric_bounds_and_orderings(case: tuple[list[list[bool]], list[int]]) -> None:
    hits_list, extra = case
    hits = np.array(hits_list)
    n_rel = hits.sum(axis=1) + np.array(extra) + (hits.sum(axis=1) + np.array(extra) == 0)
    m = per_user_ranking_metrics(hits, n_rel, k=(1, 3, 8))
    for values in m.values():
        assert ((values >= 0) & (values <= 1 + 1e-12)).all()
    for k in (1, 3, 8):
        assert (m[f"mrr@{k}"] <= m[f"hit@{k}"]).all()
        assert (m[f"precision@{k}"] <= m[f"hit@{k}"]).all()
        assert (m[f"ndcg@{k}"] <= m[f"hit@{k}"] + 1e-12).all()
    for name in ("recall", "hit", "mrr"):
        assert (m[f"{name}@1"] <= m[f"{name}@3"] + 1e-12).all()
        assert (m[f"{name}@3"] <= m[f"{name}@8"] + 1e-12).all()


def test_a_perfect_ranking_scores_one() -> None:
    hits = np.array([[True, True, False], [True, False, False]])
    m = per_user_ranking_metrics(hits, [2, 1], k=3)
    for name in ("ndcg@3", "map@3", "hit@3", "mrr@3", "recall@3"):
        np.testing.assert_allclose(m[name], 1.0, err_msg=name)
    # more relevant items than k: a full top-k still has AP and NDCG of 1, recall k/|R|
    m = per_user_ranking_metrics([[True, True]], [5], k=2)
    assert m["map@2"][0] == m["ndcg@2"][0] == 1.0
    assert m["recall@2"][0] == pytest.approx(2 / 5)


def test_bad_metric_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="fewer than k"):
        per_user_ranking_metrics([[True]], [1], k=2)
    with pytest.raises(ValueError, match="n_relevant must be"):
        per_user_ranking_metrics([[True, True]], [1], k=2)
    with pytest.raises(ValueError, match="positive integers"):
        per_user_ranking_metrics([[True]], [1], k=0)


# --------------------------------------------------------------------------- evaluate_recommender

def popularity_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    # popularity a (4 users) > b (3) > c (2) > d (1)
    train = interactions([("p1", "a"), ("p2", "a"), ("p3", "a"), ("p4", "a"),
                          ("p1", "b"), ("p2", "b"), ("p3", "b"), ("p1", "c"), ("p2", "c"),
                          ("p1", "d"), ("u", "a")])
    # u: training item a is excluded, ranking b, c, d; relevant c (rank 2) and e (unknown)
    # v: never seen, ranking a, b, c, d; relevant d (rank 4)
    # p4 books a again (seen: not relevant) -> p4 is not evaluated
    test = interactions([("u", "c"), ("u", "e"), ("v", "d"), ("p4", "a")])
    return train, test


def test_evaluation_of_popularity_matches_hand_computed_values() -> None:
    train, test = popularity_case()
    model = PopularityRecommender().fit(train)
    report = evaluate_recommender(model, train, test, k=(1, 2, 4), n_bootstrap=0,
                                  baseline=None)
    assert isinstance(report, RankingReport)
    assert report.kind == "ranking" and report.n == 2 and report.n_cold_users == 1
    per_user = report.per_user
    assert per_user is not None
    assert per_user.index.tolist() == ["u", "v"]
    assert per_user["n_relevant"].tolist() == [2, 1]
    u, v = per_user.loc["u"], per_user.loc["v"]
    assert u["hit@1"] == 0 and u["hit@2"] == 1 and u["mrr@4"] == pytest.approx(1 / 2)
    assert u["recall@2"] == pytest.approx(1 / 2)  # e is unknown to the model: still relevant
    assert u["ndcg@2"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert u["map@4"] == pytest.approx((1 / 2) / 2)
    assert v["mrr@4"] == pytest.approx(1 / 4) and v["precision@4"] == pytest.approx(1 / 4)
    assert report.metric("hit@2").value == pytest.approx(0.5)
    # coverage: top-1 lists are {b} and {a}; top-2 add c; top-4 cover all four items
    assert report.metric("coverage@1").value == pytest.approx(2 / 4)
    assert report.metric("coverage@2").value == pytest.approx(3 / 4)
    assert report.metric("coverage@4").value == pytest.approx(1.0)
    assert sorted(report.metrics) == sorted(ranking_metric_names((1, 2, 4)))


def test_training_items_are_left_out_of_rankings_only_when_asked() -> None:
    train, test = popularity_case()
    model = PopularityRecommender().fit(train)
    kept = evaluate_recommender(model, train, test, k=1, n_bootstrap=0, baseline=None,
                                exclude_seen=False)
    assert kept.per_user is not None
    assert kept.per_user.loc["p4", "hit@1"] == 1  # p4 rebooked a, the most popular item
    assert kept.n == 3


def test_report_has_baseline_and_paired_differences_on_the_same_resamples() -> None:
    rng = np.random.default_rng(0)
    # two clusters of items; the test item is from the user's own cluster
    train_rows, test_rows = [], []
    for user in range(120):
        cluster = "xy"[user % 2]
        items = rng.choice(5, size=4, replace=False)
        train_rows += [(user, f"{cluster}{i}") for i in items[:3]]
        test_rows.append((user, f"{cluster}{items[3]}"))
    train_rows += [(1000 + i, "z") for i in range(80)]  # a popular item nobody above wants
    train, test = interactions(train_rows), interactions(test_rows)
    model = ItemKNNRecommender().fit(train)
    report = evaluate_recommender(model, train, test, k=(5, 10), n_bootstrap=300, seed=4)
    ndcg, base, diff = (report.metrics["ndcg@10"], report.baselines["ndcg@10"],
                        report.differences["ndcg@10"])
    assert report.baseline_name == "PopularityRecommender"
    assert diff.value == pytest.approx(ndcg.value - base.value)
    np.testing.assert_allclose(diff.replicate_array(),
                               ndcg.replicate_array() - base.replicate_array())
    assert diff.ci_low > 0  # the gate's rule: the model beats popularity
    assert ndcg.ci_low <= ndcg.value <= ndcg.ci_high and len(ndcg.replicates) == 300
    assert report.per_user is not None and report.baseline_per_user is not None
    again = paired_ranking_difference(report.per_user["ndcg@10"],
                                      report.baseline_per_user["ndcg@10"], n_bootstrap=300,
                                      seed=4, name="ndcg@10")
    np.testing.assert_allclose(again.replicate_array(), diff.replicate_array())
    summary = report.summary()
    assert summary.loc["ndcg@10", "difference_ci_low"] == pytest.approx(diff.ci_low)
    # serialisable without the per-user tables
    dumped = report.model_dump(mode="json")
    assert "per_user" not in dumped and dumped["metrics"]["ndcg@10"]["value"] == ndcg.value
    levels = {s.level: s.n for s in report.slices}
    assert levels == {"warm": 120}


def test_paired_difference_aligns_series_and_is_centred_on_zero_for_equal_models() -> None:
    a = pd.Series([1.0, 0.0, 0.5, 0.25], index=["u1", "u2", "u3", "u4"])
    shuffled = a.iloc[[2, 0, 3, 1]]
    same = paired_ranking_difference(a, shuffled, n_bootstrap=50)
    assert same.value == 0 and same.ci_low == 0 and same.ci_high == 0
    with pytest.raises(ValueError, match="same users"):
        paired_ranking_difference(a, a.rename(index={"u1": "x"}))


def test_evaluation_refuses_unfitted_models_and_empty_tests() -> None:
    train, test = popularity_case()
    with pytest.raises(NotFittedError):
        evaluate_recommender(PopularityRecommender(), train, test)
    model = PopularityRecommender().fit(train)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_recommender(model, train, interactions([("p4", "a")]))
    with pytest.raises(ValueError, match="missing column"):
        evaluate_recommender(model, train, test.rename(columns={"item_id": "item"}))


def test_select_on_validation_keeps_the_best_value() -> None:
    rng = np.random.default_rng(2)
    rows = [(u, f"{'xy'[u % 2]}{i}") for u in range(60)
            for i in rng.choice(5, size=3, replace=False)]
    rows += [(500 + i, "z") for i in range(30)]
    frame = interactions(rows)
    last = frame.groupby("user_id").tail(1)
    train = frame.drop(last.index)
    search = select_on_validation(EASERecommender(), train, last, "l2", [0.1, 10.0, 1e6],
                                  metric="ndcg@5")
    table = search.table.set_index("l2")["ndcg@5"]
    assert search.best_value == table.idxmax()
    assert search.model.get_params()["l2"] == search.best_value
    assert set(RANKING_METRICS) <= {m.split("@")[0] for m in ranking_metric_names(5)}
    with pytest.raises(ValueError, match="metric must look like"):
        select_on_validation(EASERecommender(), train, last, "l2", [1.0], metric="auc")
