"""Implicit-feedback recommenders: known answers on hand-made sets, properties, marketplace uses."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.features import next_service_labels
from barberpro_ml.models.recs import (
    ALSRecommender,
    BaseRecommender,
    BPRRecommender,
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    _base,
    encode_interactions,
    implicit_available,
    top_k,
)
from barberpro_ml.models.recs.marketplace import (
    barber_recommendations,
    booking_interactions,
    booking_interactions_split,
    next_service_recommendations,
    provider_ratings,
)
from requirements import requires
from strategies import as_of_for, future_perturbation, marketplace_data

needs_implicit = requires(implicit_available(), "the 'implicit' package (ALS and BPR)")

NEIGHBOURHOOD_MODELS = [
    pytest.param(lambda: ItemKNNRecommender(shrink=0.0), id="knn-cosine"),
    pytest.param(lambda: ItemKNNRecommender(shrink=5.0), id="knn-cosine-shrunk"),
    pytest.param(lambda: ItemKNNRecommender(weighting="bm25", similarity="cooccurrence"),
                 id="knn-bm25"),
    pytest.param(lambda: ItemKNNRecommender(weighting="tfidf", similarity="cooccurrence"),
                 id="knn-tfidf"),
    pytest.param(lambda: EASERecommender(l2=1.0), id="ease"),
]
ALL_MODELS = [
    pytest.param(PopularityRecommender, id="popularity"),
    pytest.param(lambda: PopularityRecommender(by_group=True, measure="weight"),
                 id="popularity-group"),
    *NEIGHBOURHOOD_MODELS,
    pytest.param(lambda: ALSRecommender(factors=4, iterations=3), id="als",
                 marks=needs_implicit),
    pytest.param(lambda: BPRRecommender(factors=4, iterations=5), id="bpr",
                 marks=needs_implicit),
]


def frame(pairs: list[tuple[Any, Any]], **extra: Any) -> pd.DataFrame:
    data = {"user_id": pd.Series([u for u, _ in pairs], dtype=object),
            "item_id": pd.Series([i for _, i in pairs], dtype=object)}
    return pd.DataFrame({**data, **extra})


def co_booking_set() -> pd.DataFrame:
    """``target`` booked cut and shave. ``beard`` is co-booked with both by many customers,
    ``towel`` only with cut, and ``colour`` is the most popular item but booked alone."""
    pairs: list[tuple[Any, Any]] = [("target", "cut"), ("target", "shave")]
    pairs += [(f"a{i}", item) for i in range(4) for item in ("cut", "shave", "beard")]
    pairs += [(f"b{i}", item) for i in range(3) for item in ("cut", "towel")]
    pairs += [(f"c{i}", "colour") for i in range(12)]
    return frame(pairs)


# --------------------------------------------------------------------------- known answers

@pytest.mark.parametrize("make", NEIGHBOURHOOD_MODELS)
def test_item_co_booked_with_the_whole_history_ranks_first(make: Any) -> None:
    model = make().fit(co_booking_set())
    recs = model.recommend(["target"], k=3)
    assert recs["item_id"].iloc[0] == "beard"
    assert recs["rank"].tolist() == [1, 2, 3]
    assert not recs["item_id"].isin(["cut", "shave"]).any()


def test_popularity_gets_the_co_booking_set_wrong() -> None:
    # the set above is only a test of personalisation if popularity fails it
    recs = PopularityRecommender().fit(co_booking_set()).recommend(["target"], k=1)
    assert recs["item_id"].tolist() == ["colour"]


def test_item_knn_cosine_equals_hand_computed_similarity() -> None:
    # cut: users 1,2,3; beard: users 2,3,4 -> 2 common, cosine = 2 / (sqrt(3 * 3) + shrink)
    data = frame([(1, "cut"), (2, "cut"), (3, "cut"), (2, "beard"), (3, "beard"), (4, "beard")])
    for shrink in (0.0, 3.0):
        sim = ItemKNNRecommender(shrink=shrink).fit(data).similar_items(["cut"], k=1)
        assert sim["similar_item_id"].tolist() == ["beard"]
        assert sim["score"].iloc[0] == pytest.approx(2 / (3 + shrink))


def test_item_knn_keeps_only_n_neighbors() -> None:
    model = ItemKNNRecommender(n_neighbors=1, shrink=0).fit(co_booking_set())
    counts = np.diff(model.similarity_.indptr)
    assert counts.max() == 1
    assert model.similarity_.diagonal().sum() == 0


def test_ease_matches_ridge_regression_without_the_item_itself() -> None:
    # EASE's column j is the ridge regression of item j on every other item (Steck 2019, eq. 8)
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 6)) < 0.4).astype(float)
    rows, cols = np.nonzero(dense)
    model = EASERecommender(l2=2.5).fit(frame(list(zip(rows.tolist(), cols.tolist(),
                                                            strict=True))))
    X = dense[:, model.item_index_.to_numpy().astype(int)]
    for j in range(X.shape[1]):
        others = np.delete(np.arange(X.shape[1]), j)
        A = X[:, others]
        beta = np.linalg.solve(A.T @ A + 2.5 * np.eye(len(others)), A.T @ X[:, j])
        np.testing.assert_allclose(model.coef_[others, j], beta, atol=1e-10)
        assert model.coef_[j, j] == 0


def test_ease_refuses_a_catalogue_above_max_items() -> None:
    with pytest.raises(ValueError, match="max_items"):
        EASERecommender(max_items=3).fit(co_booking_set())


def test_popularity_counts_distinct_users_or_weights() -> None:
    data = frame([(1, "a"), (1, "a"), (1, "a"), (2, "b"), (3, "b")])
    assert PopularityRecommender().fit(data).recommend([9], k=2)["item_id"].tolist() == ["b", "a"]
    by_weight = PopularityRecommender(measure="weight").fit(data)
    assert by_weight.recommend([9], k=2)["item_id"].tolist() == ["b", "a"]  # unknown: users
    assert by_weight.recommend([2], k=2, exclude_seen=False)["item_id"].tolist() == ["a", "b"]


def test_half_life_favours_recent_interactions() -> None:
    old, new = pd.Timestamp("2023-01-01"), pd.Timestamp("2024-01-01")
    data = frame([(1, "old"), (2, "old"), (3, "old"), (4, "new"), (5, "new")],
                 timestamp=[old, old, old, new, new])
    plain = PopularityRecommender(measure="weight").fit(data)
    decayed = PopularityRecommender(measure="weight", half_life_days=30).fit(data)
    assert plain.recommend([1], k=2, exclude_seen=False)["item_id"].iloc[0] == "old"
    assert decayed.recommend([1], k=2, exclude_seen=False)["item_id"].iloc[0] == "new"
    np.testing.assert_allclose(sorted(decayed.user_items_.data),
                               [2.0 ** (-365 / 30)] * 3 + [1.0, 1.0])


# --------------------------------------------------------------------------- ids and fallback

def test_ids_of_any_hashable_type_round_trip() -> None:
    users = [("shop", 1), "u2", 3, frozenset({"x"})]
    items = [("svc", "cut"), 7, "beard", 2.5]
    pairs = [(users[0], items[0]), (users[0], items[1]), (users[1], items[0]),
             (users[1], items[2]), (users[2], items[1]), (users[2], items[3]),
             (users[3], items[2])]
    model = ItemKNNRecommender(shrink=0).fit(frame(pairs))
    recs = model.recommend(users, k=4, exclude_seen=False)
    assert list(pd.unique(recs["user_id"])) == users
    assert set(recs["item_id"]) == set(items)
    assert all(isinstance(u, tuple) for u in recs.loc[recs["user_id"] == users[0], "user_id"])
    sim = model.similar_items([items[0]], k=3)
    assert sim["item_id"].tolist() == [items[0]] * 3
    assert set(sim["similar_item_id"]) == set(items[1:])


def test_integer_and_string_ids_keep_their_dtype() -> None:
    data = pd.DataFrame({"user_id": np.array([10, 10, 11]), "item_id": ["a", "b", "a"]})
    recs = PopularityRecommender().fit(data).recommend(np.array([11]), k=1)
    assert recs["user_id"].dtype == np.int64
    assert recs["item_id"].tolist() == ["b"]
    assert pd.api.types.is_string_dtype(recs["item_id"].dtype)


def test_unknown_users_get_group_popularity_then_global() -> None:
    # north prefers x, south prefers y; globally z is the most popular
    pairs = [(f"n{i}", "x") for i in range(3)] + [(f"s{i}", "y") for i in range(2)]
    pairs += [(f"o{i}", "z") for i in range(4)]
    groups = {**{f"n{i}": "north" for i in range(3)}, **{f"s{i}": "south" for i in range(2)},
              "new_north": "north", "new_east": "east"}
    for make in (ItemKNNRecommender, EASERecommender, PopularityRecommender):
        model = make().fit(frame(pairs), user_groups=groups)
        top = model.recommend(["new_north", "new_east", "stranger"], k=1)
        assert top.set_index("user_id")["item_id"].to_dict() == {
            "new_north": "x", "new_east": "z", "stranger": "z"}
        # a group given at recommend time takes precedence over the fitted mapping
        moved = model.recommend(["new_north", "stranger"], k=1,
                                user_groups=pd.Series({"new_north": "south",
                                                       "stranger": "south"}))
        assert moved["item_id"].tolist() == ["y", "y"]


def test_popularity_by_group_ranks_known_users_by_their_group() -> None:
    pairs = [("n1", "x"), ("n2", "x"), ("n3", "w"), ("o1", "z"), ("o2", "z"), ("o3", "z")]
    groups = {"n1": "north", "n2": "north", "n3": "north"}
    model = PopularityRecommender(by_group=True).fit(frame(pairs), user_groups=groups)
    assert model.recommend(["n3"], k=1)["item_id"].tolist() == ["x"]
    assert model.recommend(["o1"], k=1)["item_id"].tolist() == ["x"]  # o1's own z is seen
    assert PopularityRecommender().fit(frame(pairs)).recommend(["n3"], k=1)[
        "item_id"].tolist() == ["z"]


# --------------------------------------------------------------------------- properties

interaction_sets = st.lists(
    st.tuples(st.integers(0, 7), st.sampled_from(["a", "b", "c", "d", "e", "f"]),
              st.integers(1, 3)),
    min_size=1, max_size=40)


@pytest.mark.parametrize("make", ALL_MODELS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=interaction_sets)
def test_seen_items_never_come_back_and_rankings_are_complete(make: Any,
                                                              rows: list[Any]) -> None:
    data = pd.DataFrame(rows, columns=["user_id", "item_id", "weight"])
    model = make().fit(data)
    users = [*data["user_id"].unique(), 99]
    recs = model.recommend(users, k=10)
    seen = set(zip(data["user_id"], data["item_id"], strict=True))
    assert not set(zip(recs["user_id"], recs["item_id"], strict=True)) & seen
    for user, group in recs.groupby("user_id", sort=False):
        n_seen = len({i for u, i in seen if u == user})
        assert len(group) == model.n_items_ - n_seen
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert (np.diff(group["score"].to_numpy()) <= 0).all()
        assert group["item_id"].is_unique
    full = model.recommend(users, k=10, exclude_seen=False)
    assert (full.groupby("user_id").size() == model.n_items_).all()


@settings(max_examples=60, deadline=None)
@given(scores=st.lists(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, -np.inf]), min_size=6,
                                max_size=6), min_size=1, max_size=5),
       k=st.integers(1, 7))
def test_top_k_equals_a_stable_full_sort(scores: list[list[float]], k: int) -> None:
    array = np.array(scores)
    rows, cols, values, ranks = top_k(array, k)
    for r in range(len(array)):
        order = np.argsort(-array[r], kind="stable")
        expected = [c for c in order if np.isfinite(array[r, c])][:k]
        assert cols[rows == r].tolist() == expected
        assert ranks[rows == r].tolist() == list(range(1, len(expected) + 1))
        np.testing.assert_array_equal(values[rows == r], array[r, expected])


def test_blocks_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    data = co_booking_set()
    model = ItemKNNRecommender().fit(data, user_groups={"target": "g"})
    users = [*data["user_id"].unique(), "new"]
    whole = model.recommend(users, k=3)
    monkeypatch.setattr(_base, "BLOCK_ELEMENTS", 7)  # one user per block
    pd.testing.assert_frame_equal(model.recommend(users, k=3), whole)


def test_ties_rank_the_more_popular_item_first() -> None:
    data = frame([(1, "rare"), (2, "common"), (3, "common"), (4, "mid"), (5, "mid"),
                  (6, "common")])
    recs = ItemKNNRecommender().fit(data).recommend([1], k=2)  # all scores 0 for user 1
    assert recs["item_id"].tolist() == ["common", "mid"]
    assert (recs["score"] == 0).all()


# --------------------------------------------------------------------------- API contract

@pytest.mark.parametrize("make", ALL_MODELS)
def test_clone_pickle_and_repeat_fit_give_the_same_rankings(make: Any) -> None:
    data = co_booking_set()
    model = make().fit(data)
    again = clone(model).fit(data)
    restored = pickle.loads(pickle.dumps(model))
    users = ["target", "a0", "unknown"]
    expected = model.recommend(users, k=3)
    pd.testing.assert_frame_equal(again.recommend(users, k=3), expected)
    pd.testing.assert_frame_equal(restored.recommend(users, k=3), expected)
    assert set(clone(model).get_params()) == set(model.get_params())


def test_unfitted_model_and_bad_arguments_are_refused() -> None:
    with pytest.raises(NotFittedError):
        ItemKNNRecommender().recommend([1])
    model = ItemKNNRecommender().fit(co_booking_set())
    with pytest.raises(ValueError, match="k must be a positive integer"):
        model.recommend(["target"], k=0)
    with pytest.raises(TypeError, match="list-like"):
        model.recommend("target")
    with pytest.raises(ValueError, match=r"not seen at fit \('nope'"):
        model.similar_items(["cut", "nope"])
    for bad, message in [
        (ItemKNNRecommender(similarity="pearson"), "similarity must be"),
        (ItemKNNRecommender(weighting="idf"), "weighting must be"),
        (ItemKNNRecommender(n_neighbors=0), "n_neighbors"),
        (EASERecommender(l2=0.0), "l2 must be"),
        (PopularityRecommender(measure="sales"), "measure must be"),
    ]:
        with pytest.raises(ValueError, match=message):
            bad.fit(co_booking_set())


@pytest.mark.parametrize(("data", "message"), [
    (pd.DataFrame({"user": [1], "item_id": [2]}), r"missing column\(s\) \['user_id'\]"),
    (pd.DataFrame({"user_id": [1, None], "item_id": [2, 3]}), "1 missing value"),
    (pd.DataFrame({"user_id": [1, 2], "item_id": [[2], [3]]}), "unhashable"),
    (pd.DataFrame({"user_id": [1, 2], "item_id": [2, 3], "weight": [1.0, -1.0]}),
     r"finite and > 0; 1 row\(s\)"),
    (pd.DataFrame({"user_id": [1], "item_id": [2], "weight": ["heavy"]}), "must be numeric"),
    (pd.DataFrame({"user_id": pd.Series([], dtype=int), "item_id": pd.Series([], dtype=int)}),
     "no rows"),
])
def test_bad_interactions_are_refused_with_a_clear_message(data: pd.DataFrame,
                                                           message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ItemKNNRecommender().fit(data)


def test_half_life_needs_timestamps() -> None:
    with pytest.raises(ValueError, match="needs a 'timestamp' column"):
        encode_interactions(co_booking_set(), half_life_days=30)


def test_encoding_sums_repeated_pairs_and_orders_items_by_popularity() -> None:
    data = frame([("u", "a"), ("u", "a"), ("v", "b"), ("w", "b")], weight=[1.0, 2.0, 1.0, 1.0])
    enc = encode_interactions(data)
    assert enc.item_index.tolist() == ["b", "a"]
    assert enc.matrix.toarray().tolist() == [[0.0, 3.0], [1.0, 0.0], [1.0, 0.0]]


@needs_implicit
@pytest.mark.parametrize("make", [ALSRecommender, BPRRecommender])
def test_factor_models_learn_the_co_booking_structure(make: type[BaseRecommender]) -> None:
    rng = np.random.default_rng(1)
    # two clusters of items, each user books within one: a rank-2 model must find them
    pairs = [(u, f"{'xy'[u % 2]}{j}") for u in range(200)
             for j in rng.choice(6, size=3, replace=False)]
    data = frame(pairs)
    model = make(factors=2).fit(data)  # type: ignore[call-arg]
    recs = model.recommend(list(range(200)), k=2)
    same_cluster = [item[0] == "xy"[user % 2]
                    for user, item in zip(recs["user_id"], recs["item_id"], strict=True)]
    assert np.mean(same_cluster) > 0.9


# --------------------------------------------------------------------------- marketplace

T0 = pd.Timestamp("2024-01-01")


def hand_marketplace(bookings: list[tuple[int, int, int, int]],
                     customers: list[tuple[int, str]],
                     providers: list[tuple[int, str, str]],
                     reviews: list[tuple[int, int]] = ()) -> MarketplaceData:  # type: ignore[assignment]
    """Bookings ``(customer, provider, service, day)``, all completed; reviews
    ``(booking_number, rating)`` written the day after."""
    services = ("haircut", "beard_trim", "colour")
    rows = [{"booking_id": i, "customer_id": c, "provider_id": p, "service_id": s,
             "created_at": T0 + pd.Timedelta(days=d, hours=-1),
             "scheduled_at": T0 + pd.Timedelta(days=d), "status": "completed",
             "price": 20.0, "discount": 0.0, "tip": 0.0}
            for i, (c, p, s, d) in enumerate(bookings, start=1)]
    booking_frame = pd.DataFrame(rows)
    review_rows = [{"review_id": j, "booking_id": b, "customer_id": rows[b - 1]["customer_id"],
                    "provider_id": rows[b - 1]["provider_id"], "rating": r,
                    "created_at": rows[b - 1]["scheduled_at"] + pd.Timedelta(days=1)}
                   for j, (b, r) in enumerate(reviews, start=1)]
    review_frame = pd.DataFrame(review_rows, columns=["review_id", "booking_id", "customer_id",
                                                      "provider_id", "rating", "created_at"])
    if not review_rows:
        review_frame = review_frame.astype({"review_id": "int64", "booking_id": "int64",
                                            "customer_id": "int64", "provider_id": "int64",
                                            "rating": "int64", "created_at": "datetime64[ns]"})
    return MarketplaceData(
        customers=pd.DataFrame({"customer_id": [c for c, _ in customers],
                                "signup_at": [T0 - pd.Timedelta(days=1)] * len(customers),
                                "acquisition_channel": ["organic"] * len(customers),
                                "neighborhood": [n for _, n in customers]}),
        providers=pd.DataFrame({"provider_id": [p for p, _, _ in providers],
                                "joined_at": [T0 - pd.Timedelta(days=2)] * len(providers),
                                "left_at": pd.Series([pd.NaT] * len(providers),
                                                     dtype="datetime64[ns]"),
                                "neighborhood": [n for _, n, _ in providers],
                                "price_tier": [t for _, _, t in providers]}),
        services=pd.DataFrame({"service_id": [1, 2, 3], "name": list(services),
                               "base_price": 20.0, "duration_min": 30}),
        bookings=booking_frame, reviews=review_frame,
        interventions=pd.DataFrame({
            "intervention_id": pd.Series([], dtype="int64"),
            "customer_id": pd.Series([], dtype="int64"), "campaign": pd.Series([], dtype=str),
            "sent_at": pd.Series([], dtype="datetime64[ns]"),
            "treated": pd.Series([], dtype=bool), "offer": pd.Series([], dtype=str)}))


def test_next_service_cross_sells_the_beard_trim_to_haircut_customers() -> None:
    # customers 1-4 book haircuts and beard trims; customer 5 only haircuts so far
    bookings = [(c, 1, s, d) for c in range(1, 5) for s, d in ((1, c), (2, c + 10))]
    bookings += [(5, 1, 1, 3), (5, 1, 1, 20), (6, 1, 3, 2), (7, 1, 3, 4), (8, 1, 3, 6)]
    data = hand_marketplace(bookings, [(c, "north") for c in range(1, 9)],
                            [(1, "north", "standard")])
    as_of = T0 + pd.Timedelta(days=30)
    cross = next_service_recommendations(data, as_of, [5], k=3, exclude_seen=True)
    assert cross["name"].tolist()[0] == "beard_trim"  # colour is more popular overall
    nxt = next_service_recommendations(data, as_of, [5], k=3)
    assert nxt["name"].tolist()[:2] == ["haircut", "beard_trim"]
    assert nxt["score"].sum() == pytest.approx(1.0)  # a distribution over the 3 services


def test_next_service_probabilities_beat_the_overall_service_shares() -> None:
    # simulated customers draw each visit's service from their own preferences, so the
    # customer's history must predict the next service better than the overall mix does
    data = simulate(SimulationConfig(n_customers=1500, seed=5))
    as_of = pd.Timestamp("2024-06-30")
    labels = next_service_labels(data, as_of, horizon_days=90)
    recs = next_service_recommendations(data, as_of, labels.index, k=10)
    assert (recs.groupby("customer_id")["score"].sum().to_numpy() == pytest.approx(1.0))
    probability = recs.set_index(["customer_id", "service_id"])["score"]
    ours = np.log(probability.reindex(list(zip(labels.index, labels, strict=True))).to_numpy())
    shares = booking_interactions(data, as_of, item="service")["item_id"].value_counts(
        normalize=True)
    overall = np.log(shares.reindex(labels.to_numpy()).to_numpy())
    gain = ours - overall  # paired log-likelihood gain per customer
    assert gain.mean() > 1.96 * gain.std() / np.sqrt(len(gain))


def test_barber_recommendations_respect_area_tier_quality_and_activity() -> None:
    providers = [(1, "north", "standard"), (2, "north", "standard"), (3, "north", "premium"),
                 (4, "south", "standard"), (5, "north", "budget"), (6, "north", "standard")]
    customers = [(c, "north") for c in range(1, 13)] + [(20, "south")]
    bookings = [(c, 1 + c % 2, 1, c) for c in range(1, 11)]  # north books 1 and 2
    bookings += [(11, 3, 1, 5), (12, 5, 1, 6), (20, 4, 1, 2), (11, 6, 1, 7), (12, 6, 1, 8)]
    # barber 6 gets poor reviews: bookings 14 and 15
    data = hand_marketplace(bookings, customers, providers,
                            reviews=[(14, 1), (15, 1), (1, 5), (2, 5)])
    as_of = T0 + pd.Timedelta(days=40)
    recs = barber_recommendations(data, as_of, [1], k=5, prior_reviews=1.0)
    # customer 1 (standard, north) booked barber 2: barber 1 fits; 3 (premium) and 5 (budget)
    # are one tier away; 4 is in a neighborhood north customers never go to; 6 is poorly rated
    assert recs["provider_id"].iloc[0] == 1
    assert not recs["provider_id"].isin([2, 4, 6]).any()
    strict = barber_recommendations(data, as_of, [1], k=5, max_tier_step=0, prior_reviews=1.0)
    assert strict["provider_id"].tolist() == [1]
    ratings = provider_ratings(data, as_of, prior_reviews=1.0)
    assert ratings.loc[6, "rating"] < ratings.loc[1, "rating"]
    assert ratings.loc[6, "n_reviews"] == 2


def test_barber_recommendations_on_simulated_data_only_suggest_active_unseen_barbers() -> None:
    data = simulate(SimulationConfig(n_customers=800, seed=2))
    as_of = pd.Timestamp("2024-03-31")
    recs = barber_recommendations(data, as_of, k=3)
    providers = data.providers.set_index("provider_id").loc[recs["provider_id"]]
    assert (providers["joined_at"] <= as_of).all()
    assert (providers["left_at"].isna() | (providers["left_at"] > as_of)).all()
    seen = booking_interactions(data, as_of)
    pairs = set(zip(seen["user_id"], seen["item_id"], strict=True))
    assert not set(zip(recs["customer_id"], recs["provider_id"], strict=True)) & pairs
    assert (recs.groupby("customer_id").size() <= 3).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(st.data())
def test_marketplace_recommendations_use_only_what_is_known_at_as_of(data: st.DataObject
                                                                     ) -> None:
    market = data.draw(marketplace_data())
    as_of = data.draw(as_of_for(market))
    changed = data.draw(future_perturbation(market, as_of))
    for build in (barber_recommendations, next_service_recommendations):
        outcomes = []
        for m in (market, changed):
            try:
                outcomes.append(build(m, as_of, k=3))
            except ValueError as exc:
                outcomes.append(str(exc))
        if isinstance(outcomes[0], str):
            assert outcomes[0] == outcomes[1]
        else:
            pd.testing.assert_frame_equal(outcomes[0], outcomes[1])


@settings(max_examples=80, deadline=None)
@given(scores=st.integers(0, 30).flatmap(lambda n: st.integers(1, 9).flatmap(
    lambda m: st.lists(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, -np.inf, 0.25]),
                                min_size=m, max_size=m), min_size=n, max_size=n)
    .map(lambda rows, m=m: np.asarray(rows, dtype=np.float64).reshape(-1, m)))),
    k=st.integers(1, 12))
def test_top_k_is_each_rows_best_k_by_score_then_column(scores: np.ndarray, k: int) -> None:
    from barberpro_ml.models.recs._base import top_k

    rows, cols, values, ranks = top_k(scores, k)
    expected = [(r, c, scores[r, c], rank + 1) for r in range(scores.shape[0])
                for rank, (_, c) in enumerate(sorted(
                    (-scores[r, c], c) for c in range(scores.shape[1])
                    if np.isfinite(scores[r, c]))[:k])]
    assert list(zip(rows.tolist(), cols.tolist(), values.tolist(), ranks.tolist(),
                    strict=True)) == expected


def test_interactions_are_in_scheduled_then_booking_id_order_whatever_the_row_order() -> None:
    """The NumPy ordering of the interactions is the stable two-key sort it replaced, on rows
    stored out of order with many ties in ``scheduled_at`` (whole days)."""
    data = simulate(SimulationConfig(n_customers=400, seed=8))
    bookings = data.bookings.assign(scheduled_at=data.bookings["scheduled_at"].dt.floor("D"))
    bookings = bookings.sample(frac=1.0, random_state=3)
    shuffled = MarketplaceData.from_validated(
        customers=data.customers, providers=data.providers, services=data.services,
        bookings=bookings, reviews=data.reviews, interventions=data.interventions)
    as_of = pd.Timestamp("2024-06-30")
    for item, column in (("provider", "provider_id"), ("service", "service_id")):
        got = booking_interactions(shuffled, as_of, item=item)  # type: ignore[arg-type]
        kept = bookings.loc[(bookings["scheduled_at"] <= as_of)
                            & (bookings["status"] == "completed")]
        expected = kept.sort_values(["scheduled_at", "booking_id"], kind="stable")
        assert got["user_id"].tolist() == expected["customer_id"].tolist()
        assert got["item_id"].tolist() == expected[column].tolist()
        assert got["timestamp"].tolist() == expected["scheduled_at"].tolist()
    _, test = booking_interactions_split(shuffled, as_of, 60)
    later = bookings.loc[(bookings["created_at"] > as_of) & (bookings["status"] == "completed")
                         & (bookings["scheduled_at"] <= as_of + pd.Timedelta(days=60))]
    assert test["user_id"].tolist() == later.sort_values(
        ["scheduled_at", "booking_id"], kind="stable")["customer_id"].tolist()
    assert len(test) > 0 and bookings["scheduled_at"].duplicated().any()


def test_out_of_time_split_tests_on_choices_made_after_as_of() -> None:
    data = simulate(SimulationConfig(n_customers=300, seed=4))
    as_of = pd.Timestamp("2024-06-30")
    train, test = booking_interactions_split(data, as_of, 60)
    assert (train["timestamp"] <= as_of).all()
    b = data.bookings.set_index(["customer_id", "scheduled_at"])
    created = b.loc[list(zip(test["user_id"], test["timestamp"], strict=True)), "created_at"]
    assert (created > as_of).all()
    assert (test["timestamp"] <= as_of + pd.Timedelta(days=60)).all()
    with pytest.raises(ValueError, match="data end"):
        booking_interactions_split(data, "2024-12-30", 60)
