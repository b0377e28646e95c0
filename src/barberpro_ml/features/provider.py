"""Point-in-time provider (barber) features for provider-level models.

The same "when is an event known" rules as :mod:`barberpro_ml.features.customer` apply: a
barber exists once ``joined_at <= as_of`` and has left once ``left_at <= as_of``; booking
outcomes are read only for bookings scheduled at or before ``as_of``; reviews count once
``created_at <= as_of``. Utilisation needs an opening-hours assumption the data does not hold,
so it is a parameter (``open_minutes_per_day``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features._common import (
    DAY_NS,
    AsOf,
    BoolArray,
    FloatArray,
    IdCoder,
    IntArray,
    check_windows,
    days,
    group_count,
    group_sum,
    ns,
    ratio,
    to_as_of,
)
from barberpro_ml.features.catalog import DEFAULT_WINDOWS, assemble, provider_feature_specs

DEFAULT_OPEN_MINUTES_PER_DAY: Final = 480.0
"""Bookable minutes per barber per day (an 8-hour day): the assumption behind every
utilisation figure (``utilization_30d`` here, ``provider_utilisation`` in the analytics), which
the data does not record."""


def _distinct_pairs(provider: IntArray, customer: IntArray, n_customers: int) -> IntArray:
    """Sorted distinct ``provider * n_customers + customer`` keys."""
    key = np.sort(provider * n_customers + customer)
    if len(key) == 0:
        return key
    return key[np.concatenate(([True], key[1:] != key[:-1]))]


def _mean_by(codes: IntArray, values: FloatArray, mask: BoolArray, n: int) -> FloatArray:
    return ratio(group_sum(codes[mask], values[mask], n), group_count(codes[mask], n))


def provider_features(data: MarketplaceData, as_of: AsOf, *,
                      windows: Sequence[int] = DEFAULT_WINDOWS,
                      open_minutes_per_day: float = DEFAULT_OPEN_MINUTES_PER_DAY) -> pd.DataFrame:
    """Features of every barber who had joined by ``as_of``, from events known at ``as_of``.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        The cut-off, a naive UTC timestamp; inclusive (see :func:`customer_features`).
    windows
        Look-back windows in days for the windowed visit and revenue counts.
    open_minutes_per_day
        Bookable minutes per day on the platform, the denominator of ``utilization_30d``
        (default :data:`DEFAULT_OPEN_MINUTES_PER_DAY`, an 8-hour day: an assumption, not
        something the data records).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``provider_id`` (ascending), one row per barber with ``joined_at <= as_of``,
        including those who have since left (``has_left == 1``). Columns are listed by
        :func:`barberpro_ml.features.provider_feature_catalog`.

    Raises
    ------
    ValueError
        If ``as_of``, ``windows`` or ``open_minutes_per_day`` are invalid.

    Examples
    --------
    >>> provider_features(data, "2024-06-30")["utilization_30d"].describe()  # doctest: +SKIP
    """
    stamp = to_as_of(as_of)
    ws = check_windows(windows)
    if not np.isfinite(open_minutes_per_day) or open_minutes_per_day <= 0:
        raise ValueError(f"open_minutes_per_day: expected a positive number of minutes, got "
                         f"{open_minutes_per_day!r}")
    cut = int(stamp.value)

    providers = data.providers
    joined_ns = ns(providers["joined_at"])
    kept = providers.loc[joined_ns <= cut]
    kept_ids = kept["provider_id"].to_numpy()
    row_order = np.argsort(kept_ids, kind="stable")
    coder = IdCoder.from_ids(kept_ids)
    n = len(coder)
    cols: dict[str, object] = {}

    joined = ns(kept["joined_at"])[row_order]
    left_ns = ns(kept["left_at"])[row_order]
    left = kept["left_at"].notna().to_numpy()[row_order] & (left_ns <= cut)
    cols["tenure_days"] = days(cut - joined)
    cols["has_left"] = left.astype(np.int8)
    for name in ("neighborhood", "price_tier"):
        cols[name] = kept[name].array.take(row_order)

    bookings = data.bookings
    created = ns(bookings["created_at"])
    scheduled = ns(bookings["scheduled_at"])
    past = (scheduled <= cut) & (created <= cut)
    status_categories = list(bookings["status"].cat.categories)
    status = np.asarray(bookings["status"].cat.codes.to_numpy(), dtype=np.int8)[past]
    code = coder.encode(bookings["provider_id"].to_numpy()[past], "provider")
    age = cut - scheduled[past]
    price = bookings["price"].to_numpy()[past]
    revenue = price - bookings["discount"].to_numpy()[past]
    completed = status == status_categories.index("completed")
    cancelled = status == status_categories.index("cancelled")
    no_show = status == status_categories.index("no_show")

    for w in ws:
        inside = completed & (age < w * DAY_NS)
        cols[f"visits_{w}d"] = group_count(code[inside], n)
        cols[f"revenue_{w}d"] = group_sum(code[inside], revenue[inside], n)

    services = data.services
    service_coder = IdCoder.from_ids(services["service_id"].to_numpy())
    duration = np.zeros(len(service_coder))
    duration[service_coder.encode(services["service_id"].to_numpy(), "service")] = services[
        "duration_min"].to_numpy()
    base_price = np.zeros(len(service_coder))
    base_price[service_coder.encode(services["service_id"].to_numpy(), "service")] = services[
        "base_price"].to_numpy()
    service = service_coder.encode(bookings["service_id"].to_numpy()[past], "service")

    last_30 = age < 30 * DAY_NS
    occupied = last_30 & (completed | no_show)
    booked_minutes = group_sum(code[occupied], duration[service[occupied]], n)
    window_start = cut - 30 * DAY_NS
    on_from = np.maximum(joined, window_start)
    on_until = np.where(left, left_ns, cut)
    on_days = days(np.maximum(on_until - on_from, 0))
    cols["booked_minutes_30d"] = booked_minutes
    cols["utilization_30d"] = ratio(booked_minutes, open_minutes_per_day * on_days)

    reviews = data.reviews
    review_time = ns(reviews["created_at"])
    review_known = review_time <= cut
    r_code = coder.encode(reviews["provider_id"].to_numpy()[review_known], "provider")
    r_rating = reviews["rating"].to_numpy()[review_known].astype(np.float64)
    r_recent = (cut - review_time[review_known]) < 90 * DAY_NS
    n_reviews = group_count(r_code, n)
    cols["n_reviews"] = n_reviews
    cols["rating_mean"] = ratio(group_sum(r_code, r_rating, n), n_reviews)
    cols["rating_mean_90d"] = _mean_by(r_code, r_rating, r_recent, n)

    last_365 = age < 365 * DAY_NS
    n_365 = group_count(code[last_365], n)
    cols["cancel_rate_365d"] = ratio(group_count(code[last_365 & cancelled], n), n_365)
    cols["no_show_rate_365d"] = ratio(group_count(code[last_365 & no_show], n), n_365)

    customer_coder = IdCoder.from_ids(data.customers["customer_id"].to_numpy())
    customer = customer_coder.encode(bookings["customer_id"].to_numpy()[past], "customer")
    n_customers = max(len(customer_coder), 1)
    recent = completed & (age < 90 * DAY_NS)
    before = completed & (age >= 90 * DAY_NS) & (age < 180 * DAY_NS)
    recent_pairs = _distinct_pairs(code[recent], customer[recent], n_customers)
    before_pairs = _distinct_pairs(code[before], customer[before], n_customers)
    position = np.searchsorted(recent_pairs, before_pairs)
    came_back = np.zeros(len(before_pairs), dtype=bool)
    found = position < len(recent_pairs)
    came_back[found] = recent_pairs[position[found]] == before_pairs[found]
    before_provider = before_pairs // n_customers
    cols["customers_90d"] = group_count(recent_pairs // n_customers, n)
    cols["customer_retention_90d"] = ratio(
        group_count(before_provider[came_back], n), group_count(before_provider, n))

    revenue_recent = group_sum(code[recent], revenue[recent], n)
    revenue_before = group_sum(code[before], revenue[before], n)
    cols["revenue_trend_90d"] = np.log1p(revenue_recent) - np.log1p(revenue_before)

    priced = base_price[service] > 0
    index = np.zeros(len(price))
    np.divide(price, base_price[service], out=index, where=priced)
    price_index_recent = _mean_by(code, index, recent & priced, n)
    price_index_before = _mean_by(code, index, before & priced, n)
    cols["price_index_90d"] = price_index_recent
    cols["price_index_change_90d"] = price_index_recent - price_index_before

    upcoming = (created <= cut) & (scheduled > cut)
    cols["upcoming_bookings"] = group_count(
        coder.encode(bookings["provider_id"].to_numpy()[upcoming], "provider"), n)

    return assemble(pd.Index(coder.ids, name="provider_id"), cols, provider_feature_specs(ws))
