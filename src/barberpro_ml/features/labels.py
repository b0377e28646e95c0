"""Labels that look only forward from ``as_of``.

Every label reads bookings scheduled in the label period ``(as_of, as_of + horizon_days]``
(open at ``as_of``: a visit exactly at ``as_of`` is history, known to the features; closed at
the end) and, to choose the population, what was known at ``as_of``. A label therefore
changes only when events after ``as_of`` change, and never when events after
``as_of + horizon_days`` change.

A label needs the data to cover its whole label period, otherwise a customer whose next visit
lies beyond the end of the data would be labelled as churned: every function refuses an
``as_of`` with ``as_of + horizon_days > data.observation_end`` and says which is the last
``as_of`` it could label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.definitions import DEFAULT_DEFINITIONS
from barberpro_ml.errors import InputError
from barberpro_ml.features._common import (
    DAY_NS,
    AsOf,
    BoolArray,
    IdCoder,
    check_horizon,
    group_sum,
    ns,
    sort_by_group_time,
    to_as_of,
)

DEFAULT_ACTIVE_WINDOW_DAYS = DEFAULT_DEFINITIONS.active_window_days
"""The shipped activity window (:class:`~barberpro_ml.definitions.Definitions`)."""


def last_labelable_as_of(data: MarketplaceData, horizon_days: int) -> pd.Timestamp:
    """The latest ``as_of`` whose label period ``(as_of, as_of + horizon]`` the data covers."""
    return data.observation_end - pd.Timedelta(days=check_horizon(horizon_days))


def _check_covered(data: MarketplaceData, stamp: pd.Timestamp, horizon_days: int) -> None:
    end = stamp + pd.Timedelta(days=horizon_days)
    if end > data.observation_end:
        raise InputError(
            f"as_of={stamp} with horizon_days={horizon_days} needs events up to {end}, but the "
            f"data end at {data.observation_end} (data.observation_end); the last as_of that "
            f"can be labelled with this horizon is {last_labelable_as_of(data, horizon_days)}")


def _completed(data: MarketplaceData) -> BoolArray:
    status = data.bookings["status"]
    completed = list(status.cat.categories).index("completed")
    return np.asarray(status.cat.codes.to_numpy() == completed, dtype=bool)


def _signed_up(data: MarketplaceData, cut: int) -> IdCoder:
    customers = data.customers
    return IdCoder.from_ids(
        customers["customer_id"].to_numpy()[ns(customers["signup_at"]) <= cut])


def _in_label_period(data: MarketplaceData, cut: int, horizon_days: int) -> BoolArray:
    scheduled = ns(data.bookings["scheduled_at"])
    return np.asarray(_completed(data) & (scheduled > cut)
                      & (scheduled <= cut + horizon_days * DAY_NS), dtype=bool)


def active_customers(data: MarketplaceData, as_of: AsOf,
                     active_window_days: int = DEFAULT_ACTIVE_WINDOW_DAYS) -> pd.Index:
    """Customers active at ``as_of``: the population of :func:`churn_labels`.

    A customer is active at ``as_of`` when signed up by ``as_of`` with at least one completed
    booking scheduled in ``(as_of - active_window_days, as_of]``. The simulator's churn oracle
    uses exactly this definition.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        The cut-off, a naive UTC timestamp (inclusive).
    active_window_days
        Look-back of the activity rule, in days (default 180).

    Returns
    -------
    pandas.Index
        Sorted ``customer_id`` values, named ``customer_id``.

    Examples
    --------
    >>> active_customers(data, "2024-06-30").size                    # doctest: +SKIP
    """
    stamp = to_as_of(as_of)
    window = check_horizon(active_window_days, "active_window_days")
    cut = int(stamp.value)
    scheduled = ns(data.bookings["scheduled_at"])
    recent = _completed(data) & (scheduled <= cut) & (scheduled > cut - window * DAY_NS)
    ids = np.unique(data.bookings["customer_id"].to_numpy()[recent])
    return pd.Index(ids.astype(np.int64), name="customer_id")


def churn_labels(data: MarketplaceData, as_of: AsOf, horizon_days: int = 90, *,
                 active_window_days: int = DEFAULT_ACTIVE_WINDOW_DAYS) -> pd.Series:
    """Churn label of every customer active at ``as_of``.

    ``churned = 1`` when the customer has no completed booking scheduled in
    ``(as_of, as_of + horizon_days]``, 0 otherwise. Cancelled and no-show bookings do not
    count as a return.

    Parameters
    ----------
    data
        The validated event tables; they must reach ``as_of + horizon_days``.
    as_of
        The cut-off, a naive UTC timestamp.
    horizon_days
        Length of the label period in days (default 90).
    active_window_days
        The activity rule of :func:`active_customers` (default 180).

    Returns
    -------
    pandas.Series
        ``int8`` values named ``churned``, indexed by ``customer_id`` (ascending) over
        :func:`active_customers`.

    Raises
    ------
    ValueError
        If the data end before ``as_of + horizon_days`` (the message gives the last ``as_of``
        that can be labelled), or an argument is invalid.

    Examples
    --------
    >>> y = churn_labels(data, "2024-03-31", horizon_days=90)          # doctest: +SKIP
    >>> y.mean()  # churn rate among active customers                  # doctest: +SKIP
    """
    stamp = to_as_of(as_of)
    horizon = check_horizon(horizon_days)
    _check_covered(data, stamp, horizon)
    cut = int(stamp.value)
    active = active_customers(data, stamp, active_window_days)
    returning = data.bookings["customer_id"].to_numpy()[_in_label_period(data, cut, horizon)]
    churned = ~np.isin(active.to_numpy(), returning)
    return pd.Series(churned.astype(np.int8), index=active, name="churned")


def ltv_labels(data: MarketplaceData, as_of: AsOf, horizon_days: int = 365) -> pd.Series:
    """Revenue each customer brings the marketplace in ``(as_of, as_of + horizon_days]``.

    Revenue is ``price - discount`` summed over completed bookings scheduled in the label
    period. Tips go to the barber, not the marketplace, and are left out.

    Parameters
    ----------
    data
        The validated event tables; they must reach ``as_of + horizon_days``.
    as_of
        The cut-off, a naive UTC timestamp.
    horizon_days
        Length of the label period in days (default 365).

    Returns
    -------
    pandas.Series
        ``float64`` values named ``ltv`` (0.0 for customers with no visit in the period),
        indexed by ``customer_id`` over every customer signed up by ``as_of``.

    Raises
    ------
    ValueError
        If the data end before ``as_of + horizon_days``, or an argument is invalid.
    """
    stamp = to_as_of(as_of)
    horizon = check_horizon(horizon_days)
    _check_covered(data, stamp, horizon)
    cut = int(stamp.value)
    coder = _signed_up(data, cut)
    bookings = data.bookings
    inside = _in_label_period(data, cut, horizon)
    revenue = (bookings["price"].to_numpy() - bookings["discount"].to_numpy())[inside]
    customer_ids = bookings["customer_id"].to_numpy()[inside]
    # Customers who sign up after as_of also book in the period; they are not in the population.
    known = np.isin(customer_ids, coder.ids)
    codes = coder.encode(customer_ids[known], "customer")
    values = group_sum(codes, revenue[known], len(coder))
    return pd.Series(values, index=pd.Index(coder.ids, name="customer_id"), name="ltv")


def next_service_labels(data: MarketplaceData, as_of: AsOf, horizon_days: int = 180
                        ) -> pd.Series:
    """The service of each customer's first completed booking after ``as_of``.

    The first completed booking scheduled in ``(as_of, as_of + horizon_days]`` (ties: the
    lowest ``booking_id``) gives the label. Customers signed up by ``as_of`` with no completed
    booking in the period are left out: their next service is unknown, not "none".

    Parameters
    ----------
    data
        The validated event tables; they must reach ``as_of + horizon_days``.
    as_of
        The cut-off, a naive UTC timestamp.
    horizon_days
        Length of the label period in days (default 180).

    Returns
    -------
    pandas.Series
        ``int64`` ``service_id`` values named ``next_service_id``, indexed by ``customer_id``
        (ascending).

    Raises
    ------
    ValueError
        If the data end before ``as_of + horizon_days``, or an argument is invalid.
    """
    stamp = to_as_of(as_of)
    horizon = check_horizon(horizon_days)
    _check_covered(data, stamp, horizon)
    cut = int(stamp.value)
    coder = _signed_up(data, cut)
    bookings = data.bookings
    inside = _in_label_period(data, cut, horizon)
    customer_ids = bookings["customer_id"].to_numpy()[inside]
    known = np.isin(customer_ids, coder.ids)
    codes = coder.encode(customer_ids[known], "customer")
    order = sort_by_group_time(codes, ns(bookings["scheduled_at"])[inside][known],
                               bookings["booking_id"].to_numpy()[inside][known])
    sorted_codes = codes[order]
    first = np.concatenate(([True], sorted_codes[1:] != sorted_codes[:-1])) if len(
        sorted_codes) else np.zeros(0, dtype=bool)
    services = bookings["service_id"].to_numpy()[inside][known][order][first]
    customers = coder.ids[sorted_codes[first]]
    return pd.Series(services.astype(np.int64),
                     index=pd.Index(customers.astype(np.int64), name="customer_id"),
                     name="next_service_id")


__all__ = [
    "DEFAULT_ACTIVE_WINDOW_DAYS",
    "active_customers",
    "churn_labels",
    "last_labelable_as_of",
    "ltv_labels",
    "next_service_labels",
]
