"""RFM scores, named segments, stable behavioural clusters and segment profiles."""

from __future__ import annotations

import math
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import silhouette_score

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features import customer_features
from barberpro_ml.models.segments import (
    DEFAULT_CLUSTER_FEATURES,
    NO_VISITS_CLUSTER,
    RFM_SEGMENTS,
    CustomerSegmenter,
    RFMEdges,
    _silhouettes,
    cluster_agreement,
    rfm_edges,
    rfm_scores,
    segment_profiles,
)

AS_OF = "2024-06-30"
LATER = "2024-07-30"  # a monthly retrain


@pytest.fixture(scope="module")
def sample() -> MarketplaceData:
    return MarketplaceData.load("data/sample")


@pytest.fixture(scope="module", name="X")
def features_at_as_of(sample: MarketplaceData) -> pd.DataFrame:
    return customer_features(sample, AS_OF)


@pytest.fixture(scope="module", name="X_later")
def features_a_month_later(sample: MarketplaceData) -> pd.DataFrame:
    return customer_features(sample, LATER)


@pytest.fixture(scope="module")
def fitted(X: pd.DataFrame) -> CustomerSegmenter:
    return CustomerSegmenter().fit(X)


def rfm_frame(recency: Any, visits: Any, spend: Any) -> pd.DataFrame:
    return pd.DataFrame({"days_since_last_visit": np.asarray(recency, dtype=float),
                         "n_visits": np.asarray(visits, dtype=np.int64),
                         "spend_per_visit": np.asarray(spend, dtype=float)},
                        index=pd.Index(np.arange(len(recency)), name="customer_id"))


def midrank_score(values: pd.Series, n_q: int, higher_is_better: bool = True) -> np.ndarray:
    """Independent oracle: 1 + floor(n_q * (average rank - 1/2) / n), capped at n_q."""
    ranks = (values if higher_is_better else -values).rank(method="average")
    p = (ranks - 0.5) / len(values)
    return np.minimum(1 + np.floor(n_q * p + 1e-9), n_q).astype(np.int64).to_numpy()


# ---------------------------------------------------------------------------- RFM

@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=60),
       st.lists(st.sampled_from([12.0, 20.0, 20.0, 35.5]), min_size=60, max_size=60),
       st.integers(2, 7))
def test_scores_are_midrank_quantiles_and_ties_share_a_score(visits: list[int],
                                                             spend: list[float],
                                                             n_q: int) -> None:
    n = len(visits)
    recency = [float(3 * v % 7) for v in visits]
    frame = rfm_frame(recency, np.asarray(visits) + 1, spend[:n])
    scores = rfm_scores(frame, n_quantiles=n_q)
    f = scores["f_score"].to_numpy()
    np.testing.assert_array_equal(f, midrank_score(frame["n_visits"], n_q))
    np.testing.assert_array_equal(scores["m_score"],
                                  midrank_score(frame["spend_per_visit"], n_q))
    np.testing.assert_array_equal(scores["r_score"],
                                  midrank_score(frame["days_since_last_visit"], n_q, False))
    # Ties never split, scores never go down as the value goes up.
    for value in np.unique(visits):
        assert len(np.unique(f[np.asarray(visits) == value])) == 1
    order = np.argsort(visits, kind="stable")
    assert (np.diff(f[order]) >= 0).all()
    assert ((f >= 1) & (f <= n_q)).all()


def test_heavily_tied_frequency_keeps_one_score_per_count() -> None:
    # 60% of customers with exactly one visit: one score for all of them, not split by
    # row order as pd.qcut-by-rank would; counts above get the higher scores.
    visits = [1] * 60 + [2] * 20 + [3] * 10 + [5] * 10
    frame = rfm_frame(np.linspace(1, 100, 100), visits, np.full(100, 30.0))
    f = rfm_scores(frame)["f_score"]
    assert f[:60].nunique() == 1 and f.iloc[0] == 2  # mid-rank 0.3 -> score 2
    assert f.iloc[60] == 4 and f.iloc[80] == 5 and f.iloc[-1] == 5
    edges = rfm_edges(frame)
    assert edges.frequency == (1.0, 2.0, 2.0, 3.0)  # 2 spans two quintiles: score 3 skipped
    new = rfm_scores(rfm_frame([1.0, 1.0, 1.0], [1, 4, 0], [30.0] * 3), edges)["f_score"]
    assert new.tolist() == [2, 5, 1]


def test_a_single_customer_is_scored_against_the_training_population(
        X: pd.DataFrame) -> None:
    edges = rfm_edges(X)
    full = rfm_scores(X, edges)
    for cid in X.index[[0, 10, 500, 2000]]:
        one = rfm_scores(X.loc[[cid]], edges)
        pd.testing.assert_frame_equal(one, full.loc[[cid]])
    assert edges.n_customers == int(X["days_since_last_visit"].notna().sum())


def test_customers_without_a_visit_score_zero(X: pd.DataFrame) -> None:
    scores = rfm_scores(X)
    none = X["days_since_last_visit"].isna().to_numpy()
    assert none.any()
    assert (scores.loc[none, ["r_score", "f_score", "m_score"]] == 0).all().all()
    assert (scores.loc[none, "rfm_segment"] == "no_visits").all()
    assert (scores.loc[~none, ["r_score", "f_score", "m_score"]] >= 1).all().all()
    assert list(scores["rfm_segment"].cat.categories) == list(RFM_SEGMENTS)
    # Every named segment is populated on the sample data.
    assert set(scores["rfm_segment"].unique()) == set(RFM_SEGMENTS)


@pytest.mark.parametrize(("r", "f", "segment"), [
    (5, 5, "champions"), (5, 1, "new"), (4, 1, "promising"), (4, 4, "loyal"),
    (3, 3, "needs_attention"), (3, 1, "about_to_sleep"), (2, 3, "at_risk"),
    (1, 5, "cannot_lose"), (2, 2, "hibernating"), (1, 1, "lost"), (5, 3, "potential_loyalists"),
])
def test_segment_grid(r: int, f: int, segment: str) -> None:
    # Edges that put recency 5 - r + 0.5 and visits f at scores r and f.
    edges = RFMEdges(recency=(4.0, 3.0, 2.0, 1.0), frequency=(2.0, 3.0, 4.0, 5.0),
                     monetary=(1.0, 2.0, 3.0, 4.0), n_quantiles=5, n_customers=1)
    scores = rfm_scores(rfm_frame([5 - r + 0.5], [f], [1.0]), edges)
    assert (scores["r_score"].iloc[0], scores["f_score"].iloc[0]) == (r, f)
    assert scores["rfm_segment"].iloc[0] == segment


def test_rfm_refuses_bad_input(X: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['n_visits'\]"):
        rfm_scores(X.drop(columns="n_visits"))
    broken = X.copy()
    visited = broken.index[broken["days_since_last_visit"].notna()][:3]
    broken.loc[visited, "spend_per_visit"] = np.nan
    with pytest.raises(ValueError, match=r"3 customer\(s\) with a visit .* 'spend_per_visit'"):
        rfm_scores(broken)
    with pytest.raises(ValueError, match="none of the"):
        rfm_scores(X[X["days_since_last_visit"].isna()])
    with pytest.raises(ValueError, match="n_quantiles"):
        rfm_scores(X, n_quantiles=1)


# ---------------------------------------------------------------------------- clusters

def test_fit_transform_predict(fitted: CustomerSegmenter, X: pd.DataFrame) -> None:
    out = fitted.transform(X)
    assert list(out.columns) == ["r_score", "f_score", "m_score", "rfm_segment", "cluster",
                                 "cluster_name"]
    assert out.index.equals(X.index)
    np.testing.assert_array_equal(out["cluster"], fitted.predict(X))
    assert fitted.n_clusters_ in (3, 4, 5, 6, 7, 8)
    assert set(fitted.selection_scores_) == {3, 4, 5, 6, 7, 8}
    best = max(fitted.selection_scores_.values())
    assert fitted.selection_scores_[fitted.n_clusters_] == best
    none = X["days_since_last_visit"].isna().to_numpy()
    assert (out.loc[none, "cluster"] == NO_VISITS_CLUSTER).all()
    assert (out.loc[none, "cluster_name"] == "no_visits").all()
    assert set(out.loc[~none, "cluster"]) == set(fitted.cluster_ids_.tolist())
    names = list(fitted.cluster_names_.values())
    assert len(set(names)) == len(names) == fitted.n_clusters_ + 1
    assert (out["cluster_name"].astype(str)
            == out["cluster"].map(fitted.cluster_names_)).all()
    # Ids without previous: 0..k-1 by size, largest first.
    sizes = [fitted.cluster_sizes_[i] for i in range(fitted.n_clusters_)]
    assert sorted(fitted.cluster_ids_.tolist()) == list(range(fitted.n_clusters_))
    assert sizes == sorted(sizes, reverse=True)
    assert sum(fitted.cluster_sizes_.values()) == len(X)
    pd.testing.assert_frame_equal(fitted.transform(X), out)


def test_clusters_get_descriptive_names(fitted: CustomerSegmenter) -> None:
    # The largest cluster's name must reflect its centroid: e.g. "frequent" when its mean
    # yearly visits are above the population's.
    centers = fitted.cluster_centers_
    frequent = int(centers["visits_365d"].idxmax())
    assert "frequent" in fitted.cluster_names_[frequent]
    assert "infrequent" not in fitted.cluster_names_[frequent]


def test_colliding_cluster_names_get_their_id(fitted: CustomerSegmenter) -> None:
    model = cloudpickle.loads(cloudpickle.dumps(fitted))
    centers = np.zeros((len(model.cluster_ids_), len(model.cluster_features)))
    centers[:, 0] = 2.0  # every centroid far above the mean on visits_365d only
    model._name_clusters(centers)
    names = [model.cluster_names_[i] for i in sorted(model.cluster_ids_.tolist())]
    assert names[0] == "frequent"
    assert names[1:] == [f"frequent ({i})" for i in sorted(model.cluster_ids_.tolist())[1:]]
    assert model.cluster_names_[NO_VISITS_CLUSTER] == "no_visits"


def test_single_rows_and_extra_columns(fitted: CustomerSegmenter, X: pd.DataFrame) -> None:
    full = fitted.predict(X)
    for i in (0, 7, 1234):
        assert fitted.predict(X.iloc[[i]])[0] == full[i]
    only_needed = X[list(dict.fromkeys([*DEFAULT_CLUSTER_FEATURES, "days_since_last_visit",
                                        "n_visits", "spend_per_visit"]))]
    np.testing.assert_array_equal(fitted.predict(only_needed), full)


def test_retrain_keeps_cluster_ids(fitted: CustomerSegmenter, X: pd.DataFrame,
                                   X_later: pd.DataFrame) -> None:
    """Measured on data/sample, 2024-06-30 -> 2024-07-30: 0.954 of customers keep their id
    (0.954 for each of the retrain seeds 1-5)."""
    def raw(model: CustomerSegmenter, ids: np.ndarray) -> np.ndarray:
        position = {int(c): i for i, c in enumerate(model.cluster_ids_)}
        return np.array([position[int(c)] for c in ids])

    common = X.index.intersection(X_later.index)
    before = fitted.predict(X.loc[common])
    stable_shares, raw_shares = [], []
    for seed in range(1, 6):
        later = CustomerSegmenter(random_state=seed).fit(X_later, previous=fitted)
        after = later.predict(X_later.loc[common])
        visited = (before >= 0) & (after >= 0)
        stable = cluster_agreement(before[visited], after[visited])
        assert set(later.matched_to_previous_) == set(later.cluster_ids_.tolist())
        assert all(old in (new, None) for new, old in later.matched_to_previous_.items())
        # The raw k-means labels (internal cluster order) of the same two fits say little: a
        # different seed may permute them, which is what the matching undoes.
        raw_agreement = cluster_agreement(raw(fitted, before[visited]),
                                          raw(later, after[visited]))
        assert raw_agreement["adjusted_rand"] == pytest.approx(stable["adjusted_rand"])
        stable_shares.append(stable["matched_share"])
        raw_shares.append(raw_agreement["matched_share"])
    assert min(stable_shares) >= 0.85
    # some seed permutes the raw labels (with three clusters a swap of the two smaller ones
    # still leaves the largest in place, so not every seed does, and not below one half)
    assert min(raw_shares) < min(stable_shares) - 0.3, (raw_shares, stable_shares)


def test_matching_survives_a_change_in_cluster_sizes(fitted: CustomerSegmenter,
                                                     X: pd.DataFrame,
                                                     X_later: pd.DataFrame) -> None:
    """Ids by size alone break when sizes reorder; matched ids do not.

    Most of the largest cluster (id 0) is left out of the retrain, so it is no longer the
    largest: measured 0.935 of customers keep their id with matching, 0.196 without. The
    number of clusters is held at the first fit's: a retrain choosing another k gives fresh
    ids to the new clusters (``test_new_clusters_get_fresh_ids``), which is not what this
    checks.
    """
    rng = np.random.default_rng(0)
    keep = (fitted.predict(X_later) != 0) | (rng.random(len(X_later)) < 0.2)
    shrunk = X_later[keep]
    k = (fitted.n_clusters_,)
    matched = CustomerSegmenter(random_state=1, k_values=k).fit(shrunk, previous=fitted)
    by_size = CustomerSegmenter(random_state=1, k_values=k).fit(shrunk)
    common = X.index.intersection(shrunk.index)
    before = fitted.predict(X.loc[common])
    with_matching = matched.predict(shrunk.loc[common])
    without = by_size.predict(shrunk.loc[common])
    visited = (before >= 0) & (with_matching >= 0)
    assert cluster_agreement(before[visited], with_matching[visited])["matched_share"] >= 0.8
    assert cluster_agreement(before[visited], without[visited])["matched_share"] < 0.5


def test_new_clusters_get_fresh_ids(fitted: CustomerSegmenter, X_later: pd.DataFrame) -> None:
    more = CustomerSegmenter(k_values=(fitted.n_clusters_ + 2,)).fit(X_later, previous=fitted)
    kept = [i for i, old in more.matched_to_previous_.items() if old is not None]
    fresh = [i for i, old in more.matched_to_previous_.items() if old is None]
    assert sorted(kept) == sorted(fitted.cluster_ids_.tolist())
    assert sorted(fresh) == [fitted.next_cluster_id_, fitted.next_cluster_id_ + 1]
    # Fewer clusters: ids that disappear are never reused by a later retrain.
    fewer = CustomerSegmenter(k_values=(2,)).fit(X_later, previous=more)
    again = CustomerSegmenter(k_values=(fitted.n_clusters_ + 2,)).fit(X_later, previous=fewer)
    new_ids = [i for i, old in again.matched_to_previous_.items() if old is None]
    assert min(new_ids) >= more.next_cluster_id_


def test_same_seed_same_ids(X: pd.DataFrame, fitted: CustomerSegmenter) -> None:
    np.testing.assert_array_equal(CustomerSegmenter().fit(X).predict(X), fitted.predict(X))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_row_order_does_not_change_any_customers_cluster(random: Any) -> None:
    frame = _small_frame()
    base = CustomerSegmenter(k_values=(2, 3), max_selection_rows=200).fit(frame)
    shuffled = frame.sample(frac=1.0, random_state=random.randrange(2**32))
    refit = CustomerSegmenter(k_values=(2, 3), max_selection_rows=200).fit(shuffled)
    pd.testing.assert_series_equal(
        pd.Series(refit.predict(shuffled), index=shuffled.index).sort_index(),
        pd.Series(base.predict(frame), index=frame.index))


_SMALL: dict[str, pd.DataFrame] = {}


def _small_frame() -> pd.DataFrame:
    if "X" not in _SMALL:
        full = customer_features(MarketplaceData.load("data/sample"), AS_OF)
        _SMALL["X"] = full.iloc[::6]
    return _SMALL["X"]


def test_gaussian_mixture(X: pd.DataFrame) -> None:
    small = X.iloc[::3]
    gmm = CustomerSegmenter(method="gmm", k_values=(2, 3, 4)).fit(small)
    assert gmm.selection_scores_[gmm.n_clusters_] == min(gmm.selection_scores_.values())
    labels = gmm.predict(small)
    assert set(labels[labels >= 0]) == set(gmm.cluster_ids_.tolist())
    again = CustomerSegmenter(method="gmm", k_values=(2, 3, 4), random_state=3).fit(
        X.iloc[1::3], previous=gmm)
    assert any(old is not None for old in again.matched_to_previous_.values())


def test_pickle_and_pyfunc_round_trip(fitted: CustomerSegmenter, X: pd.DataFrame) -> None:
    from barberpro_ml.registry.models import EstimatorModel

    restored = cloudpickle.loads(cloudpickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    pd.testing.assert_frame_equal(restored.transform(X), fitted.transform(X))
    # What registry.log_model(segmenter, X, output="predict") does before logging.
    wrapper = EstimatorModel.from_estimator(restored, X, output="predict")
    assert wrapper.spec is not None
    request = wrapper.spec.features.example(X, 20)
    np.testing.assert_array_equal(wrapper.predict(None, request),
                                  fitted.predict(X.head(20)).astype(float))


def test_segmenter_refuses_bad_input(X: pd.DataFrame, fitted: CustomerSegmenter) -> None:
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['gap_mean_days'"):
        CustomerSegmenter().fit(X.drop(columns=["gap_mean_days", "cancel_rate"]))
    with pytest.raises(ValueError, match="lacks column"):
        fitted.predict(X.drop(columns="discount_share"))
    with pytest.raises(ValueError, match="method must be"):
        CustomerSegmenter(method="dbscan").fit(X)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k_values"):
        CustomerSegmenter(k_values=(1, 3)).fit(X)
    with pytest.raises(ValueError, match="must be numeric"):
        CustomerSegmenter(cluster_features=("neighborhood",)).fit(X)
    with pytest.raises(ValueError, match="different spaces"):
        CustomerSegmenter(cluster_features=("visits_365d", "spend_per_visit")).fit(
            X, previous=fitted)
    with pytest.raises(NotFittedError):
        CustomerSegmenter().predict(X)
    broken = X.copy()
    broken.iloc[:2, broken.columns.get_loc("cancel_rate")] = np.inf
    with pytest.raises(ValueError, match="infinite value in 'cancel_rate'"):
        fitted.predict(broken)


def test_estimator_conventions(fitted: CustomerSegmenter) -> None:
    params = fitted.get_params()
    assert params["method"] == "kmeans" and params["k_values"] == (3, 4, 5, 6, 7, 8)
    fresh = clone(fitted)
    with pytest.raises(NotFittedError):
        fresh.predict(pd.DataFrame())


def test_silhouette_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    Z = np.concatenate([rng.normal(0, 1, (150, 3)), rng.normal(4, 1, (150, 3))])
    labelings = [np.repeat([0, 1], 150), rng.integers(0, 3, 300), np.arange(300) % 4]
    ours = _silhouettes(Z, labelings)
    for value, labels in zip(ours, labelings, strict=True):
        assert value == pytest.approx(silhouette_score(Z, labels), abs=1e-5)


# ---------------------------------------------------------------------------- reports

def test_segment_profiles(X: pd.DataFrame, fitted: CustomerSegmenter) -> None:
    segments = fitted.transform(X)["rfm_segment"]
    extra = pd.Series(np.linspace(0, 1, len(X)), index=X.index).iloc[::-1]  # other order
    profile = segment_profiles(X, segments, extra={"churn_probability": extra})
    assert profile.index.name == "rfm_segment"
    assert profile["n_customers"].sum() == len(X)
    assert profile["share"].sum() == pytest.approx(1.0)
    assert profile["n_customers"].is_monotonic_decreasing
    champions = X[segments == "champions"]
    row = profile.loc["champions"]
    assert row["n_customers"] == len(champions)
    assert row["visits_365d_mean"] == pytest.approx(champions["visits_365d"].mean())
    assert row["spend_per_visit_median"] == pytest.approx(
        champions["spend_per_visit"].median())
    assert row["churn_probability_mean"] == pytest.approx(extra.loc[champions.index].mean())
    assert math.isnan(profile.loc["no_visits", "days_since_last_visit_mean"])
    with pytest.raises(ValueError, match=r"no value for 1 of X's"):
        segment_profiles(X, segments, extra={"churn_probability": extra.iloc[1:]})
    with pytest.raises(ValueError, match="lacks column"):
        segment_profiles(X.drop(columns="tenure_days"), segments)


def test_cluster_agreement() -> None:
    assert cluster_agreement([0, 0, 1, 1], [1, 1, 0, 0]) == {"adjusted_rand": 1.0,
                                                             "matched_share": 0.0}
    assert cluster_agreement([0, 1, 2], [0, 1, 2])["matched_share"] == 1.0
    with pytest.raises(ValueError, match="same length"):
        cluster_agreement([0, 1], [0])
