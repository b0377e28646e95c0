"""Recommenders on the marketplace: interactions from bookings, next services, barbers.

Everything here takes ``(data, as_of)`` and uses only what was known at ``as_of``: bookings
*scheduled* by ``as_of`` (their outcome, completed or not, is then known; a booking made before
``as_of`` for a later visit is not used), reviews written by ``as_of``, barbers who joined by
``as_of`` and had not left.

* :func:`booking_interactions` turns bookings into the ``user_id, item_id, weight, timestamp``
  frame the recommenders fit on (items: barbers or services).
* :func:`booking_interactions_split` is the out-of-time split for ranking evaluation: train on
  the bookings scheduled up to ``as_of``, test on the bookings *made* after ``as_of`` and
  completed within ``horizon_days``.
* :func:`next_service_recommendations`: the service a customer is likely to book next.
* :func:`barber_recommendations`: barbers for a customer, active at ``as_of``, in or near their
  neighborhood, of a rating and price tier that fit them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from sklearn.base import clone

from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.schema import PRICE_TIERS
from barberpro_ml.features._common import AsOf, to_as_of
from barberpro_ml.models.recs._base import BaseRecommender, IntArray, top_k
from barberpro_ml.models.recs.item_knn import ItemKNNRecommender
from barberpro_ml.models.recs.popularity import PopularityRecommender

__all__ = [
    "NextServicePrior",
    "barber_recommendations",
    "booking_interactions",
    "booking_interactions_split",
    "customer_neighborhoods",
    "next_service_prior",
    "next_service_recommendations",
    "provider_ratings",
]

ItemKind = Literal["provider", "service"]
_ITEM_COLUMN = {"provider": "provider_id", "service": "service_id"}
_DAY = pd.Timedelta(days=1)


def _item_column(item: str) -> str:
    try:
        return _ITEM_COLUMN[item]
    except KeyError:
        raise ValueError(f"item must be 'provider' or 'service', got {item!r}") from None


def _check_statuses(statuses: Sequence[str]) -> list[str]:
    unknown = sorted(set(statuses) - {"completed", "cancelled", "no_show"})
    if not statuses or unknown:
        raise ValueError(f"statuses must be a non-empty subset of completed, cancelled, no_show; "
                         f"got {list(statuses)}")
    return list(statuses)


def _in_time_order(bookings: pd.DataFrame, keep: npt.NDArray[np.bool_]) -> IntArray:
    """Positions of the ``keep`` rows by ``(scheduled_at, booking_id)``.

    A fixed order (not the table's row order) so that ties between items, broken by first
    appearance, and sums of floats never depend on how the table happens to be sorted. Two
    stable NumPy passes on the kept rows only give the order of a stable two-key
    ``sort_values``; pandas' multi-key sort factorizes both columns (hashing that grows
    faster than the rows at millions of bookings) and copies every column of the table.
    """
    rows = np.flatnonzero(keep)
    by_id = rows[np.argsort(bookings["booking_id"].to_numpy()[rows], kind="stable")]
    when = bookings["scheduled_at"].to_numpy()[by_id]
    return by_id[np.argsort(when, kind="stable")]


def _frame(bookings: pd.DataFrame, item: str, order: IntArray) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": bookings["customer_id"].to_numpy()[order],
        "item_id": bookings[_item_column(item)].to_numpy()[order],
        "weight": np.ones(len(order)),
        "timestamp": bookings["scheduled_at"].to_numpy()[order],
    })


def booking_interactions(data: MarketplaceData, as_of: AsOf, *, item: ItemKind = "provider",
                         statuses: Sequence[str] = ("completed",)) -> pd.DataFrame:
    """Bookings scheduled up to ``as_of`` as recommender interactions.

    Parameters
    ----------
    data
        The marketplace.
    as_of
        Cut-off (naive UTC): bookings with ``scheduled_at <= as_of`` are used.
    item
        ``"provider"`` (barbers) or ``"service"``.
    statuses
        Booking statuses that count as an interaction (default: completed visits).

    Returns
    -------
    pandas.DataFrame
        ``user_id`` (customer_id), ``item_id`` (provider_id or service_id), ``weight`` (1 per
        booking) and ``timestamp`` (scheduled_at), in booking order.
    """
    stamp = to_as_of(as_of)
    bookings = data.bookings
    keep = (bookings["scheduled_at"] <= stamp) & bookings["status"].isin(
        _check_statuses(statuses))
    return _frame(bookings, item, _in_time_order(bookings, keep.to_numpy(dtype=bool)))


def booking_interactions_split(
    data: MarketplaceData, as_of: AsOf, horizon_days: int, *, item: ItemKind = "provider",
    statuses: Sequence[str] = ("completed",),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-time train/test interactions around ``as_of``.

    ``train`` is :func:`booking_interactions` at ``as_of``; ``test`` holds the bookings created
    after ``as_of`` and scheduled in ``(as_of, as_of + horizon_days]`` with a status in
    ``statuses``: the choices customers made after the cut-off. Bookings made before ``as_of``
    for a later visit are in neither (known at ``as_of`` but not yet an outcome; predicting them
    would be no prediction).

    Raises
    ------
    ValueError
        If the data end before ``as_of + horizon_days`` or ``horizon_days`` is not positive.
    """
    stamp = to_as_of(as_of)
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days < 1:
        raise ValueError(f"horizon_days must be a positive integer, got {horizon_days!r}")
    end = stamp + horizon_days * _DAY
    if data.observation_end < end:
        raise ValueError(f"the data end at {data.observation_end}, before as_of + horizon_days "
                         f"= {end}; choose an earlier as_of or a shorter horizon")
    bookings = data.bookings
    keep = ((bookings["created_at"] > stamp) & (bookings["scheduled_at"] <= end)
            & bookings["status"].isin(_check_statuses(statuses)))
    test = _frame(bookings, item, _in_time_order(bookings, keep.to_numpy(dtype=bool)))
    return booking_interactions(data, stamp, item=item, statuses=statuses), test


def customer_neighborhoods(data: MarketplaceData) -> pd.Series:
    """``customer_id -> neighborhood`` (a customer attribute, usable as ``user_groups``)."""
    return pd.Series(data.customers["neighborhood"].astype(str).to_numpy(),
                     index=pd.Index(data.customers["customer_id"].to_numpy(), name="customer_id"),
                     name="neighborhood")


def _customers_at(data: MarketplaceData, stamp: pd.Timestamp, customer_ids: Any) -> pd.Index:
    signed_up = data.customers.loc[(data.customers["signup_at"] <= stamp).to_numpy(dtype=bool),
                                   "customer_id"].to_numpy(dtype=np.int64)
    if customer_ids is None:
        everyone: pd.Index = pd.Index(np.sort(signed_up), name="customer_id")
        return everyone
    asked: pd.Index = pd.Index(np.asarray(customer_ids, dtype=np.int64),
                               name="customer_id").unique()
    unknown = asked[~asked.isin(signed_up)]
    if len(unknown):
        raise ValueError(f"customer_ids: {len(unknown)} id(s) are not customers signed up by "
                         f"{stamp} (e.g. {unknown[:5].tolist()})")
    return asked


def _fit(model: BaseRecommender | None, interactions: pd.DataFrame,
         groups: pd.Series) -> BaseRecommender:
    estimator = ItemKNNRecommender() if model is None else clone(model)
    fitted: BaseRecommender = estimator.fit(interactions, user_groups=groups)
    return fitted


@dataclass(frozen=True)
class NextServicePrior:
    """The population-level part of :func:`next_service_recommendations` at one ``as_of``:
    the neighborhoods' service popularity and the item-to-item conditional probabilities
    ``P(s | i)``, fitted on every customer's bookings (:func:`next_service_prior`).

    Given to :func:`next_service_recommendations` with the event tables of *some* customers
    only (a block of a large population), it gives those customers exactly what the whole
    data would.
    """

    as_of: pd.Timestamp
    popularity: PopularityRecommender
    conditional: npt.NDArray[np.float64]
    groups: pd.Series
    names: pd.Series


def next_service_prior(data: MarketplaceData, as_of: AsOf, *,
                       interactions: pd.DataFrame | None = None) -> NextServicePrior:
    """:class:`NextServicePrior` of every customer's completed bookings up to ``as_of``.

    ``interactions``: :func:`booking_interactions` of ``data`` at ``as_of`` with
    ``item="service"``, when the caller has them already (default: computed).

    Raises
    ------
    ValueError
        No completed booking scheduled by ``as_of``.
    """
    stamp = to_as_of(as_of)
    if interactions is None:
        interactions = booking_interactions(data, stamp, item="service")
    return _next_service_prior(data, stamp, interactions)


def _next_service_prior(data: MarketplaceData, stamp: pd.Timestamp,
                        interactions: pd.DataFrame) -> NextServicePrior:
    if interactions.empty:
        raise ValueError(f"no completed booking scheduled by {stamp}: nothing to learn from")
    groups = customer_neighborhoods(data)
    popularity = PopularityRecommender(by_group=True).fit(interactions, user_groups=groups)
    presence = popularity.user_items_.copy()
    presence.data = np.ones_like(presence.data)
    co_booked = np.asarray((presence.T @ presence).toarray(), dtype=np.float64)
    return NextServicePrior(as_of=stamp, popularity=popularity,
                            conditional=co_booked / co_booked.sum(axis=1, keepdims=True),
                            groups=groups,
                            names=data.services.set_index("service_id")["name"])


def next_service_recommendations(
    data: MarketplaceData, as_of: AsOf, customer_ids: Sequence[int] | None = None, k: int = 3,
    *, prior_strength: float = 5.0, half_life_days: float | None = 365.0,
    exclude_seen: bool = False, prior: NextServicePrior | None = None,
) -> pd.DataFrame:
    """The services each customer is most likely to book next.

    The score estimates the probability that the customer's next booking is service ``s``:

        ``p(s | u) = (n_us + beta * q(s | u)) / (n_u + beta)``

    ``n_us`` counts the customer's completed bookings of ``s`` up to ``as_of`` (each weighted
    ``0.5 ** (age / half_life_days)``), ``n_u = sum_s n_us``, ``beta`` = ``prior_strength``, and
    ``q(s | u)`` is a collaborative prior: the average, over the customer's services ``i``
    (weighted like ``n_ui``), of ``P(s | i)``, the share of the (customer, service) pairs of the
    customers who booked ``i`` that are ``s`` (item-to-item conditional probability, [1]_; it
    includes ``s = i``). This is what puts the beard trim in front of a haircut customer who
    never had one, since haircut customers often do. A customer without history gets the
    popularity of services among the customers of their neighborhood
    (:class:`~barberpro_ml.models.recs.PopularityRecommender` with ``by_group=True``). The
    result is additive smoothing towards the prior: a customer with many bookings is predicted
    by their own habits, a new one by the others'.

    Parameters
    ----------
    data, as_of
        The marketplace and the cut-off (bookings scheduled up to ``as_of``).
    customer_ids
        Customers to score (default: every customer signed up by ``as_of``).
    k
        Services per customer.
    prior_strength
        ``beta``, in bookings (> 0).
    half_life_days
        Age at which a booking counts half (None: no decay).
    exclude_seen
        Only services the customer never booked (cross-selling).
    prior
        The population-level part (:func:`next_service_prior` at the same ``as_of``), when
        ``data`` holds only the customers to score (a block of a larger population); by
        default it is fitted on ``data``.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, service_id, name, score, rank``; without ``exclude_seen`` the scores of
        a customer's services sum to one over the catalogue.

    References
    ----------
    .. [1] Deshpande, M. & Karypis, G. (2004). Item-based top-N recommendation algorithms.
       *ACM TOIS* 22(1), 143-177 (conditional-probability-based similarity).

    Examples
    --------
    >>> recs = next_service_recommendations(data, "2024-06-30", k=2)       # doctest: +SKIP
    """
    stamp = to_as_of(as_of)
    if not np.isfinite(prior_strength) or prior_strength <= 0:
        raise ValueError(f"prior_strength must be > 0, got {prior_strength}")
    if half_life_days is not None and not (np.isfinite(half_life_days) and half_life_days > 0):
        raise ValueError(f"half_life_days must be a positive number or None, got "
                         f"{half_life_days}")
    customers = _customers_at(data, stamp, customer_ids)
    interactions = booking_interactions(data, stamp, item="service")
    if prior is None:
        prior = _next_service_prior(data, stamp, interactions)
    elif prior.as_of != stamp:
        raise ValueError(f"the prior was fitted at {prior.as_of}, not at as_of {stamp}")
    popularity, conditional, groups = prior.popularity, prior.conditional, prior.groups
    items = popularity.item_index_
    age_days = (stamp - interactions["timestamp"]).to_numpy() / np.timedelta64(1, "D")
    weight = (np.ones(len(interactions)) if half_life_days is None
              else np.exp2(-age_days / half_life_days))
    rows = _codes(customers, interactions["user_id"])
    keep = rows >= 0
    counts_all = sp.csr_matrix(
        (weight[keep], (rows[keep], _codes(items, interactions["item_id"])[keep])),
        shape=(len(customers), len(items)))
    names = prior.names
    frames = []
    offset = 0
    for users, group_scores, _ in popularity.iter_score_blocks(
            customers, exclude_seen=False, user_groups=groups):
        counts = counts_all[offset:offset + len(users)].toarray()
        offset += len(users)
        n_u = counts.sum(axis=1, keepdims=True)
        has_history = n_u[:, 0] > 0
        q = group_scores / group_scores.sum(axis=1, keepdims=True)
        q[has_history] = (counts[has_history] / n_u[has_history]) @ conditional
        prob = (counts + prior_strength * q) / (n_u + prior_strength)
        if exclude_seen:
            prob[counts > 0] = -np.inf
        r, cols, values, ranks = top_k(prob, k)
        ids = items.to_numpy()[cols]
        frames.append(pd.DataFrame({
            "customer_id": users.to_numpy()[r], "service_id": ids,
            "name": names.reindex(ids).to_numpy(), "score": values, "rank": ranks}))
    return _concat(frames, ["customer_id", "service_id", "name", "score", "rank"])


def provider_ratings(data: MarketplaceData, as_of: AsOf, *, prior_reviews: float = 5.0
                     ) -> pd.DataFrame:
    """Each barber's mean rating from reviews written by ``as_of``, shrunk to the overall mean.

    ``rating = (sum of ratings + m * overall mean) / (n_reviews + m)`` with ``m`` =
    ``prior_reviews``: a Bayesian average, so that one 5-star review does not outrank a long
    4.8 record. Barbers without reviews get the overall mean.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``provider_id`` (every provider): ``rating``, ``n_reviews``.
    """
    stamp = to_as_of(as_of)
    if not np.isfinite(prior_reviews) or prior_reviews < 0:
        raise ValueError(f"prior_reviews must be >= 0, got {prior_reviews}")
    reviews = data.reviews.loc[(data.reviews["created_at"] <= stamp).to_numpy(dtype=bool)]
    providers = pd.Index(data.providers["provider_id"].to_numpy(), name="provider_id")
    grouped = reviews.groupby("provider_id")["rating"]
    total = grouped.sum().reindex(providers, fill_value=0).to_numpy(dtype=np.float64)
    count = grouped.size().reindex(providers, fill_value=0).to_numpy(dtype=np.float64)
    overall = float(reviews["rating"].mean()) if len(reviews) else float("nan")
    if len(reviews) == 0:
        rating = np.full(len(providers), np.nan)
    else:
        rating = (total + prior_reviews * overall) / np.maximum(count + prior_reviews, 1e-12)
    return pd.DataFrame({"rating": rating, "n_reviews": count.astype(np.int64)},
                        index=providers)


def _nearby(data: MarketplaceData, interactions: pd.DataFrame, nearby_share: float
            ) -> tuple[pd.Index, npt.NDArray[np.bool_]]:
    """Neighborhoods and ``near[a, b]``: b is a's own, or gets >= nearby_share of a's bookings.

    The contract has no map, so "near" is learned from where customers actually go.
    """
    names = pd.Index(sorted(set(data.customers["neighborhood"].astype(str))
                            | set(data.providers["neighborhood"].astype(str))))
    home = customer_neighborhoods(data).reindex(interactions["user_id"].to_numpy())
    shop = data.providers.set_index("provider_id")["neighborhood"].astype(str).reindex(
        interactions["item_id"].to_numpy())
    a = _codes(names, home)
    b = _codes(names, shop)
    flows = np.zeros((len(names), len(names)))
    np.add.at(flows, (a, b), 1.0)
    share = flows / np.maximum(flows.sum(axis=1, keepdims=True), 1.0)
    near = (share >= nearby_share) | np.eye(len(names), dtype=bool)
    return names, near


def barber_recommendations(
    data: MarketplaceData, as_of: AsOf, customer_ids: Sequence[int] | None = None, k: int = 5,
    *, model: BaseRecommender | None = None, exclude_seen: bool = True,
    nearby_share: float = 0.05, max_tier_step: int = 1, quality_tolerance: float = 0.3,
    min_rating: float | None = None, prior_reviews: float = 5.0,
) -> pd.DataFrame:
    """Barbers to suggest to each customer at ``as_of``.

    A barber is eligible for a customer when, at ``as_of``, he is active (joined, not left),
    works in the customer's neighborhood or a nearby one (one that receives at least
    ``nearby_share`` of the bookings of customers living in the customer's neighborhood), his
    price tier is within ``max_tier_step`` tiers of the customer's usual tier (the rounded mean
    tier of their completed bookings; any tier for a customer without history), and his shrunk
    mean rating (:func:`provider_ratings`) is at least the mean rating of the barbers the
    customer booked minus ``quality_tolerance`` (the overall mean minus it for a new customer),
    and at least ``min_rating`` if given. Eligible barbers are ranked by a recommender fitted on
    customer x barber bookings (default
    :class:`~barberpro_ml.models.recs.ItemKNNRecommender`; new customers get the popularity of
    barbers in their neighborhood). Barbers never booked by ``as_of`` are unknown to the
    recommender and not suggested.

    Parameters
    ----------
    data, as_of
        The marketplace and the cut-off.
    customer_ids
        Customers to serve (default: everyone signed up by ``as_of``).
    k
        Barbers per customer (fewer when fewer are eligible).
    model
        Recommender to clone and fit on the bookings up to ``as_of``.
    exclude_seen
        Leave out barbers the customer already booked (discovery); False includes them.
    nearby_share, max_tier_step, quality_tolerance, min_rating, prior_reviews
        The eligibility rules above.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, provider_id, score, rank, neighborhood, price_tier, rating, n_reviews``.
    """
    stamp = to_as_of(as_of)
    if not 0 <= nearby_share <= 1:
        raise ValueError(f"nearby_share must be in [0, 1], got {nearby_share}")
    if max_tier_step < 0:
        raise ValueError(f"max_tier_step must be >= 0, got {max_tier_step}")
    customers = _customers_at(data, stamp, customer_ids)
    interactions = booking_interactions(data, stamp, item="provider")
    if interactions.empty:
        raise ValueError(f"no completed booking scheduled by {stamp}: nothing to learn from")
    groups = customer_neighborhoods(data)
    fitted = _fit(model, interactions, groups)
    items = fitted.item_index_

    providers = data.providers.set_index("provider_id").reindex(items.to_numpy())
    ratings = provider_ratings(data, stamp, prior_reviews=prior_reviews).reindex(items.to_numpy())
    rating = ratings["rating"].to_numpy(dtype=np.float64)
    left = providers["left_at"]
    active = ((providers["joined_at"] <= stamp) & (left.isna() | (left > stamp))).to_numpy(bool)
    tier_of = {name: i for i, name in enumerate(PRICE_TIERS)}
    item_tier = providers["price_tier"].astype(str).map(tier_of).to_numpy(dtype=np.float64)
    names, near = _nearby(data, interactions, nearby_share)
    item_area = _codes(names, providers["neighborhood"].astype(str))

    history = pd.DataFrame({"user_id": interactions["user_id"],
                            "tier": item_tier[_codes(items, interactions["item_id"])],
                            "rating": rating[_codes(items, interactions["item_id"])]})
    usual = history.groupby("user_id")[["tier", "rating"]].mean()
    overall = float(np.nanmean(rating)) if np.isfinite(rating).any() else float("nan")
    frames = []
    for users, scores, _ in fitted.iter_score_blocks(customers, exclude_seen=exclude_seen,
                                                     user_groups=groups):
        profile = usual.reindex(users)
        tier = np.rint(profile["tier"].to_numpy(dtype=np.float64))
        floor = np.nan_to_num(profile["rating"].to_numpy(dtype=np.float64), nan=overall)
        floor = floor - quality_tolerance
        if min_rating is not None:
            floor = np.maximum(floor, min_rating)
        area = _codes(names, groups.reindex(users))
        eligible = np.broadcast_to(active, scores.shape).copy()
        eligible &= np.where(area[:, None] >= 0, near[area][:, item_area], True)
        eligible &= np.isnan(tier)[:, None] | (
            np.abs(tier[:, None] - item_tier[None, :]) <= max_tier_step)
        # without any review by as_of there is no quality to compare: the rule is skipped
        eligible &= (np.isnan(rating)[None, :] | np.isnan(floor)[:, None]
                     | (rating[None, :] >= floor[:, None]))
        scores[~eligible] = -np.inf
        rows, cols, values, ranks = top_k(scores, k)
        frames.append(pd.DataFrame({
            "customer_id": users.to_numpy()[rows], "provider_id": items.to_numpy()[cols],
            "score": values, "rank": ranks,
            "neighborhood": providers["neighborhood"].astype(str).to_numpy()[cols],
            "price_tier": providers["price_tier"].astype(str).to_numpy()[cols],
            "rating": rating[cols], "n_reviews": ratings["n_reviews"].to_numpy()[cols]}))
    return _concat(frames, ["customer_id", "provider_id", "score", "rank", "neighborhood",
                            "price_tier", "rating", "n_reviews"])


def _codes(index: pd.Index, values: Any) -> npt.NDArray[np.intp]:
    """Position of each value in ``index`` (-1 when absent)."""
    return np.asarray(index.get_indexer(pd.Index(np.asarray(values))), dtype=np.intp)


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(frames, ignore_index=True)
