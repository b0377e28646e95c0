"""Point-in-time customer features: what was known about every customer at ``as_of``.

When is an event known?
-----------------------
``as_of`` is a naive UTC timestamp and the boundary is inclusive: an event stamped exactly at
``as_of`` is known at ``as_of``; one stamped a nanosecond later is not.

- A customer exists once ``signup_at <= as_of``.
- A booking's *outcome* (status, price, discount) is known only once the visit time has passed:
  history features use bookings with ``scheduled_at <= as_of`` (such bookings always have
  ``created_at <= as_of``, by the data contract). Bookings created by ``as_of`` but scheduled
  later are *upcoming*: they feed ``has_upcoming_booking`` and ``days_to_next_booking`` only;
  their status and price are never read.
- A review counts once ``created_at <= as_of``; an intervention once ``sent_at <= as_of``; a
  barber has left once ``left_at <= as_of``.

Adding, deleting or altering any event that is not known at ``as_of`` therefore never changes
``customer_features(data, as_of)``; ``tests/test_features_pit.py`` checks this property on
random data sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features._common import (
    DAY_NS,
    AsOf,
    FloatArray,
    IdCoder,
    IntArray,
    Segments,
    check_windows,
    days,
    group_count,
    group_sum,
    ns,
    pair_runs,
    ratio,
    sort_by_group_time,
    to_as_of,
)
from barberpro_ml.features.catalog import DEFAULT_WINDOWS, assemble, customer_feature_specs
from barberpro_ml.features.partition import customer_blocks

Columns = dict[str, object]

WORKING_BLOCK_CUSTOMERS = 50_000
"""Customers per internal block of :func:`customer_features` on populations of more than
twice as many: ~600,000 bookings, whose working arrays (a few MiB each) are reused from the
allocator's heap and stay in the caches."""


def _status_codes(bookings: pd.DataFrame) -> tuple[npt.NDArray[np.int8], int, int, int]:
    """Status category codes (int8: a quarter of the memory of int64 on large tables)."""
    status = bookings["status"]
    categories = list(status.cat.categories)
    codes = np.asarray(status.cat.codes.to_numpy(), dtype=np.int8)
    return (codes, categories.index("completed"), categories.index("cancelled"),
            categories.index("no_show"))


def provider_review_totals(reviews: pd.DataFrame, as_of: AsOf) -> pd.DataFrame:
    """Reviews each barber has received from *all* customers by ``as_of``: count and star sum.

    The one input of :func:`customer_features` that reads other customers' events (it makes
    ``main_provider_rating``). Both columns are integer sums, so totals computed on any split
    of the reviews (one per Spark partition, say) add up exactly to the totals of the whole
    table; :mod:`barberpro_ml.spark` computes them that way.

    Parameters
    ----------
    reviews
        The ``reviews`` table (all of it, or any subset of its rows).
    as_of
        The cut-off: reviews with ``created_at <= as_of`` count.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``provider_id`` (ascending; only barbers with a known review):
        ``n_reviews`` and ``rating_sum``, both ``int64``.
    """
    cut = int(to_as_of(as_of).value)
    known = ns(reviews["created_at"]) <= cut
    ids = reviews["provider_id"].to_numpy(dtype=np.int64)[known]
    ratings = reviews["rating"].to_numpy(dtype=np.int64)[known]
    providers, codes = np.unique(ids, return_inverse=True)
    return pd.DataFrame(
        {"n_reviews": np.bincount(codes, minlength=len(providers)).astype(np.int64),
         "rating_sum": np.bincount(codes, weights=ratings, minlength=len(providers)
                                   ).astype(np.int64)},
        index=pd.Index(providers, name="provider_id"))


def _provider_state(data: MarketplaceData, cut: int, review_totals: pd.DataFrame
                    ) -> tuple[IdCoder, IntArray, FloatArray]:
    """Provider coder, whether each provider has left at ``cut``, mean rating so far."""
    providers = data.providers
    coder = IdCoder.from_ids(providers["provider_id"].to_numpy())
    order = coder.encode(providers["provider_id"].to_numpy(), "provider")
    left_ns = ns(providers["left_at"])
    left = providers["left_at"].notna().to_numpy() & (left_ns <= cut)
    has_left = np.zeros(len(coder), dtype=np.int64)
    has_left[order] = left
    codes = coder.encode(review_totals.index.to_numpy(), "provider")
    n = np.zeros(len(coder), dtype=np.int64)
    n[codes] = review_totals["n_reviews"].to_numpy(dtype=np.int64)
    total = np.zeros(len(coder), dtype=np.float64)
    total[codes] = review_totals["rating_sum"].to_numpy(dtype=np.float64)
    return coder, has_left, ratio(total, n)


def customer_features(data: MarketplaceData, as_of: AsOf, *,
                      windows: Sequence[int] = DEFAULT_WINDOWS,
                      provider_reviews: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features of every customer signed up by ``as_of``, from events known at ``as_of``.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        The cut-off: a naive UTC timestamp (str, datetime or Timestamp; timezone-aware values
        are refused). Inclusive: events stamped exactly at ``as_of`` are known.
    windows
        Look-back windows in days for the windowed frequency and spend features; a window of
        ``w`` days is ``(as_of - w days, as_of]``.
    provider_reviews
        :func:`provider_review_totals` of *every* customer's reviews at ``as_of``, the one
        population-level input (``main_provider_rating`` averages a barber's reviews over all
        customers). Default: computed from ``data.reviews``. Give it when ``data`` holds only
        some customers' events (a Spark partition: :mod:`barberpro_ml.spark`), so that each
        customer's features are those of the whole data set.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (ascending), one row per customer with
        ``signup_at <= as_of``; columns, dtypes and the cases where a value is NaN are listed by
        :func:`barberpro_ml.features.feature_catalog` (same ``windows``). NaN appears only
        where a value is undefined (e.g. the gap statistics of a customer with fewer than two
        visits). ``acquisition_channel``, ``neighborhood`` and ``main_service`` are categoricals
        whose categories come from the whole customers (services) table, so they are identical
        for every cut-off.

    Raises
    ------
    ValueError
        If ``as_of`` is not a naive timestamp or ``windows`` are not positive integers.

    Notes
    -----
    The computation is a few sorts and ``np.bincount`` passes over the bookings, whatever the
    number of customers; ``benchmarks/bench_features.py`` measures it. Populations of more
    than twice :data:`WORKING_BLOCK_CUSTOMERS` customers go through in blocks of that many
    (:func:`~barberpro_ml.features.customer_blocks`, the review totals computed once), so that
    the working arrays stay small: the same rows, a cost linear in the bookings.

    Examples
    --------
    >>> features = customer_features(data, "2024-06-30")                 # doctest: +SKIP
    >>> features.loc[42, ["n_visits", "days_since_last_visit"]]           # doctest: +SKIP
    """
    stamp = to_as_of(as_of)
    ws = check_windows(windows)
    cut = int(stamp.value)
    if provider_reviews is None:
        provider_reviews = provider_review_totals(data.reviews, stamp)
    n_customers = int(np.count_nonzero(ns(data.customers["signup_at"]) <= cut))
    if n_customers > 2 * WORKING_BLOCK_CUSTOMERS:
        # Large populations go through in blocks of customers whose working arrays stay
        # small: one pass over the whole tables makes every temporary fresh memory from the
        # kernel (page faults) and every gather a cache miss, costs that grew faster than
        # the rows. The blocks run the code below; their rows are the whole run's.
        return pd.concat([_features(block, cut, ws, provider_reviews)
                          for block in customer_blocks(data, stamp, WORKING_BLOCK_CUSTOMERS)])
    return _features(data, cut, ws, provider_reviews)


def _features(data: MarketplaceData, cut: int, ws: tuple[int, ...],
              provider_reviews: pd.DataFrame) -> pd.DataFrame:
    """:func:`customer_features` of every customer of ``data`` in one pass."""
    customers = data.customers
    kept = customers.loc[ns(customers["signup_at"]) <= cut]
    kept_ids = kept["customer_id"].to_numpy()
    row_order = np.argsort(kept_ids, kind="stable")
    coder = IdCoder.from_ids(kept_ids)

    cols: Columns = {"tenure_days": days(cut - ns(kept["signup_at"])[row_order])}
    for name in ("acquisition_channel", "neighborhood"):
        cols[name] = kept[name].array.take(row_order)
    # One helper per table or topic: their large temporaries are freed as each returns.
    cols |= _booking_features(data, coder, cut)
    cols |= _visit_features(data, coder, cut, ws, provider_reviews)
    cols |= _review_features(data, coder, cut)
    cols |= _campaign_features(data, coder, cut)
    return assemble(pd.Index(coder.ids, name="customer_id"), cols, customer_feature_specs(ws))


def _booking_features(data: MarketplaceData, coder: IdCoder, cut: int) -> Columns:
    """Outcomes of past bookings of any status, and upcoming bookings."""
    n = len(coder)
    bookings = data.bookings
    created = ns(bookings["created_at"])
    scheduled = ns(bookings["scheduled_at"])
    status, _, cancelled, no_show = _status_codes(bookings)
    customer_ids = bookings["customer_id"].to_numpy()
    past = np.flatnonzero((scheduled <= cut) & (created <= cut))
    code = coder.encode(customer_ids[past], "customer")
    status = status[past]
    n_bookings = group_count(code, n)
    cols: Columns = {
        "n_bookings": n_bookings,
        "cancel_rate": ratio(group_count(code[status == cancelled], n), n_bookings),
        "no_show_rate": ratio(group_count(code[status == no_show], n), n_bookings),
    }
    upcoming = np.flatnonzero((created <= cut) & (scheduled > cut))
    code = coder.encode(customer_ids[upcoming], "customer")
    next_time = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(next_time, code, scheduled[upcoming])
    has_upcoming = group_count(code, n) > 0
    cols["has_upcoming_booking"] = has_upcoming.astype(np.int8)
    cols["days_to_next_booking"] = np.where(has_upcoming, days(next_time - cut), np.nan)
    return cols


def _visit_features(data: MarketplaceData, coder: IdCoder, cut: int,
                    windows: tuple[int, ...], review_totals: pd.DataFrame) -> Columns:
    """Everything derived from completed visits: RFM, gaps, usual barber, prices, services."""
    n = len(coder)
    bookings = data.bookings
    scheduled = ns(bookings["scheduled_at"])
    status, completed, _, _ = _status_codes(bookings)
    visit_rows = np.flatnonzero((scheduled <= cut) & (status == completed))
    visit_code = coder.encode(bookings["customer_id"].to_numpy()[visit_rows], "customer")
    order = sort_by_group_time(visit_code, scheduled[visit_rows],
                               bookings["booking_id"].to_numpy()[visit_rows])
    rows = visit_rows[order]
    v_code = visit_code[order]
    del visit_rows, visit_code, order
    v_time = scheduled[rows]
    v_price = bookings["price"].to_numpy()[rows]
    v_discount = bookings["discount"].to_numpy()[rows]
    v_spend = v_price - v_discount
    segments = Segments.from_sorted_codes(v_code, n)
    n_visits = segments.counts
    has_visit = n_visits > 0

    cols: Columns = {"n_visits": n_visits}
    recency = np.where(has_visit, days(cut - segments.last(v_time, 0)), np.nan)
    cols["days_since_last_visit"] = recency
    cols["days_since_first_visit"] = np.where(has_visit, days(cut - segments.first(v_time, 0)),
                                              np.nan)
    age = cut - v_time
    for w in windows:
        inside = age < w * DAY_NS
        cols[f"visits_{w}d"] = group_count(v_code[inside], n)
        cols[f"spend_{w}d"] = group_sum(v_code[inside], v_spend[inside], n)
    del age
    spend_total = group_sum(v_code, v_spend, n)
    cols["spend_total"] = spend_total
    cols["spend_per_visit"] = ratio(spend_total, n_visits)

    same = v_code[1:] == v_code[:-1]
    gap_code = v_code[1:][same]
    gap = days(np.diff(v_time)[same])
    del same, v_time
    n_gaps = np.maximum(n_visits - 1, 0)
    gap_mean = ratio(group_sum(gap_code, gap, n), n_gaps)
    # Two passes (mean, then squared deviations) rather than E[g^2] - E[g]^2, which can go
    # slightly negative by cancellation and turn into a NaN under the square root.
    deviation = gap - gap_mean[gap_code]
    gap_std = np.sqrt(ratio(group_sum(gap_code, deviation * deviation, n), n_gaps))
    del gap_code, gap, deviation
    cols["gap_mean_days"] = gap_mean
    cols["gap_std_days"] = gap_std
    cols["gap_cv"] = ratio(gap_std, gap_mean)
    cols["days_overdue"] = recency - gap_mean

    provider_coder, provider_left, provider_rating = _provider_state(data, cut, review_totals)
    rank = segments.rank(v_code)
    v_provider = provider_coder.encode(bookings["provider_id"].to_numpy()[rows], "provider")
    by_provider = pair_runs(v_code, rank, v_provider, len(provider_coder))
    del v_provider
    main_provider, main_provider_visits = by_provider.mode(n)
    del by_provider
    known_main = main_provider >= 0
    cols["main_provider_share"] = ratio(main_provider_visits, n_visits)
    main_left = np.full(n, np.nan)
    main_left[known_main] = provider_left[main_provider[known_main]]
    main_rating = np.full(n, np.nan)
    main_rating[known_main] = provider_rating[main_provider[known_main]]
    cols["main_provider_left"] = main_left
    cols["main_provider_rating"] = main_rating

    service_coder = IdCoder.from_ids(data.services["service_id"].to_numpy())
    v_service = service_coder.encode(bookings["service_id"].to_numpy()[rows], "service")
    by_service = pair_runs(v_code, rank, v_service, len(service_coder))
    del v_service
    earlier_price = np.where(rank == (n_visits[v_code] - 1), 0.0, v_price)
    pair_earlier_sum = by_service.sum(earlier_price)
    del earlier_price, rank
    # The pair holding the customer's last visit is the one whose most recent rank is the
    # customer's last rank; its other rows are the earlier visits for that service.
    last_pair = by_service.last_rank == (n_visits[by_service.group] - 1)
    earlier_mean = np.full(n, np.nan)
    earlier_mean[by_service.group[last_pair]] = ratio(pair_earlier_sum[last_pair],
                                                      by_service.count[last_pair] - 1)
    cols["last_price_change"] = segments.last(v_price, np.nan) - earlier_mean
    cols["discount_share"] = ratio(group_count(v_code[v_discount > 0], n), n_visits)
    cols["discount_total"] = group_sum(v_code, v_discount, n)
    cols["n_services_used"] = group_count(by_service.group, n)
    main_service, main_service_visits = by_service.mode(n)
    cols["main_service"] = pd.Categorical.from_codes(main_service,
                                                     categories=pd.Index(service_coder.ids))
    cols["main_service_share"] = ratio(main_service_visits, n_visits)
    return cols


def _review_features(data: MarketplaceData, coder: IdCoder, cut: int) -> Columns:
    """Ratings the customer gave, from reviews written by ``as_of``."""
    n = len(coder)
    reviews = data.reviews
    created = ns(reviews["created_at"])
    known = np.flatnonzero(created <= cut)
    code = coder.encode(reviews["customer_id"].to_numpy()[known], "customer")
    order = sort_by_group_time(code, created[known], reviews["review_id"].to_numpy()[known])
    code = code[order]
    rating = reviews["rating"].to_numpy()[known[order]].astype(np.float64)
    segments = Segments.from_sorted_codes(code, n)
    n_reviews = segments.counts
    rating_sum = group_sum(code, rating, n)
    rating_last = segments.last(rating, np.nan)
    return {
        "n_reviews": n_reviews,
        "rating_mean": ratio(rating_sum, n_reviews),
        "rating_last": rating_last,
        "rating_trend": rating_last - ratio(rating_sum - np.nan_to_num(rating_last),
                                            n_reviews - 1),
    }


def _campaign_features(data: MarketplaceData, coder: IdCoder, cut: int) -> Columns:
    """Retention campaigns the customer was part of, from interventions sent by ``as_of``."""
    n = len(coder)
    interventions = data.interventions
    sent = ns(interventions["sent_at"])
    known = np.flatnonzero(sent <= cut)
    code = coder.encode(interventions["customer_id"].to_numpy()[known], "customer")
    order = sort_by_group_time(code, sent[known],
                               interventions["intervention_id"].to_numpy()[known])
    rows = known[order]
    code = code[order]
    time = sent[rows]
    treated = interventions["treated"].to_numpy()[rows].astype(bool)
    segments = Segments.from_sorted_codes(code, n)
    last_offer = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_offer, code[treated], time[treated])
    n_offers = group_count(code[treated], n)
    return {
        "n_interventions": segments.counts,
        "n_offers": n_offers,
        "days_since_last_intervention": np.where(
            segments.counts > 0, days(cut - segments.last(time, 0)), np.nan),
        "last_intervention_treated": segments.last(treated.astype(np.float64), np.nan),
        "days_since_last_offer": np.where(n_offers > 0, days(cut - last_offer), np.nan),
    }
