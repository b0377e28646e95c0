"""Signup cohorts and the acquisition funnel, from the events known at ``as_of``.

Cohorts
-------
:func:`cohorts` puts every customer signed up by ``as_of`` in the period (month by default)
of their ``signup_at`` and follows each cohort period by period: ``retention`` is the share
of the cohort with a completed visit in the period ``periods_since_signup`` after the signup
period (the catalogue's ``visiting_customers``, by ``scheduled_at``), ``revenue_per_customer``
the cohort's ``net_revenue`` in that period (``Definitions.revenue``, exact to the cent)
divided by the cohort's size. A cell is reported only once its period has ended by ``as_of``
(a half-finished month would read as a drop), so a cohort appears once its signup period has
ended, and the triangle's diagonal moves with ``as_of``.

Funnel
------
:func:`funnel` follows each customer through five nested stages:

1. ``signed_up`` (``signup_at <= as_of``),
2. ``first_booking`` (a booking with ``created_at <= as_of``, any status),
3. ``first_visit`` (a completed booking with ``scheduled_at <= as_of``),
4. ``second_visit`` (a second one),
5. ``retained``: the second visit came within ``Definitions.churn_horizon_days`` (H, 90) of
   the first - the churn label's "not churned" read at the first visit. It can be judged
   only when ``first visit + H <= as_of``: customers whose first visit is more recent
   (which includes everyone who signed up less than H days before ``as_of``) are left out of
   this stage *and of its base* (``not_yet_judged``), because counting those already back
   while dropping those not yet back would bias the rate upwards.

Each stage is a subset of the one before, so the counts never increase. ``conversion`` is
``customers / base`` with ``base`` the previous stage's customers (for ``retained``, those of
them who can be judged), with a Wilson interval
(:func:`barberpro_ml.evaluation.wilson_interval`). Stages 2-4 count what happened by
``as_of``: a customer who signed up yesterday has had little time to book, which
:func:`cohorts` (by time since signup) shows and the funnel does not correct.
:func:`funnel_members` gives every customer's stages and the one exclusive state
(``furthest_stage``) they are in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
import pandas as pd

from barberpro_ml.analytics._grid import names, parse_grain, period_codes, period_starts
from barberpro_ml.analytics.catalogue import DIMENSIONS, TIME_GRAINS
from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.schema import BOOKING_STATUSES
from barberpro_ml.definitions import DEFAULT_DEFINITIONS, Definitions
from barberpro_ml.errors import InputError
from barberpro_ml.evaluation.proportions import wilson_interval
from barberpro_ml.features._common import DAY_NS, AsOf, IdCoder, ns, to_as_of

__all__ = ["COHORT_METRICS", "COHORT_METRIC_DEFINITIONS", "FUNNEL_STAGES",
           "FUNNEL_STAGE_DEFINITIONS", "cohorts", "funnel", "funnel_members"]

COHORT_METRICS: Final = ("retention", "revenue_per_customer")
FUNNEL_STAGES: Final = ("signed_up", "first_booking", "first_visit", "second_visit",
                        "retained")
"""The funnel's stages, in order; each is a subset of the one before."""

FUNNEL_STAGE_DEFINITIONS: Final[dict[str, str]] = {
    "signed_up": "customers with signup_at <= as_of",
    "first_booking": "of those, customers with a booking (any status) created by as_of",
    "first_visit": "of those, customers with a completed booking scheduled by as_of",
    "second_visit": "of those, customers with a second completed booking scheduled by as_of",
    "retained": "of those whose first visit + Definitions.churn_horizon_days <= as_of (the "
                "others are not_yet_judged and left out of the base), customers whose second "
                "visit came within churn_horizon_days of the first",
}
"""Each funnel stage in words (the rules of the module docstring); ``conversion`` of a stage is
its customers over its ``base``, the previous stage's customers that can be judged."""

COHORT_METRIC_DEFINITIONS: Final[dict[str, str]] = {
    "cohort": "the calendar period (month by default) of the customers' signup_at",
    "customers": "customers in the cohort (signed up by as_of)",
    "retention": "visiting_customers / customers: share of the cohort with a completed visit "
                 "in the period periods_since_signup after the signup period (Wilson CI)",
    "revenue_per_customer": "net_revenue of the cohort's completed visits in that period "
                            "(price - discount, tips excluded) / customers",
}
"""What a cohort cell says; a cell appears once its period has ended by ``as_of``."""

_STAGE_DTYPE: Final = pd.CategoricalDtype(list(FUNNEL_STAGES), ordered=True)
_CUSTOMER_DIMS: Final = tuple(d for d, spec in DIMENSIONS.items() if spec.level == "customer")
_NAT: Final = np.iinfo(np.int64).min


def _cut(data: MarketplaceData, as_of: AsOf | None) -> int:
    return int((to_as_of(as_of) if as_of is not None else data.observation_end).value)


def _completed_visits(data: MarketplaceData, cut: int) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Row positions, times and booking ids of completed visits scheduled by ``cut``."""
    b = data.bookings
    scheduled = ns(b["scheduled_at"])
    done = b["status"].cat.codes.to_numpy() == list(b["status"].cat.categories).index(
        BOOKING_STATUSES[0])
    rows = np.flatnonzero(done & (scheduled <= cut))
    return rows, scheduled[rows], b["booking_id"].to_numpy()[rows]


def cohorts(data: MarketplaceData, as_of: AsOf | None = None,
            metric: Literal["retention", "revenue_per_customer"] = "retention",
            freq: str = "M", *, confidence: float = 0.95) -> pd.DataFrame:
    """Signup cohorts x periods since signup (the rules are in the module docstring).

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        Only events known at this time (inclusive) count; default the data's last event.
    metric
        ``retention`` or ``revenue_per_customer``.
    freq
        Cohort and period grain: ``month``/``M`` (default), ``week``/``W`` or ``day``/``D``.
    confidence
        Level of the retention interval.

    Returns
    -------
    pandas.DataFrame
        One row per (cohort, periods since signup) whose period has ended by ``as_of``:
        ``cohort`` (the signup period's start), ``periods_since_signup`` (0 = the signup
        period), ``customers`` (the cohort's size), then for ``retention``
        ``visiting_customers``, ``retention``, ``retention_ci_low``, ``retention_ci_high``
        (Wilson), for ``revenue_per_customer`` ``net_revenue`` and
        ``revenue_per_customer``. ``.pivot(index="cohort", columns="periods_since_signup",
        values=metric)`` gives the usual triangle.

    Raises
    ------
    InputError
        Unknown metric or grain, an unreadable ``as_of``.

    Examples
    --------
    >>> table = cohorts(data, as_of="2024-12-31")                     # doctest: +SKIP
    >>> table.pivot(index="cohort", columns="periods_since_signup",
    ...             values="retention")                                # doctest: +SKIP
    """
    if metric not in COHORT_METRICS:
        raise InputError(f"metric: unknown {metric!r}; valid: {', '.join(COHORT_METRICS)}")
    grain = parse_grain(freq)
    assert grain is not None
    cut = _cut(data, as_of)
    last = int(period_codes(np.array([cut + 1], dtype=np.int64), grain)[0]) - 1

    c = data.customers
    signup = ns(c["signup_at"])
    known = signup <= cut
    cohort_all = period_codes(signup, grain)
    kept = known & (cohort_all <= last)
    coder = IdCoder.from_ids(c["customer_id"].to_numpy()[kept])
    cohort_of = np.empty(len(coder), dtype=np.int64)
    cohort_of[coder.encode(c["customer_id"].to_numpy()[kept], "customer")] = cohort_all[kept]
    if len(coder) == 0:
        return _empty_cohorts(metric)
    first = int(cohort_of.min())
    sizes = np.bincount(cohort_of - first)
    cohort_codes = np.flatnonzero(sizes) + first

    rows, t, _ = _completed_visits(data, cut)
    b = data.bookings
    ids = b["customer_id"].to_numpy()[rows]
    mine = np.isin(ids, coder.ids)
    rows, t, ids = rows[mine], t[mine], ids[mine]
    cust = coder.encode(ids, "customer")
    period = period_codes(t, grain)
    inside = period <= last
    rows, cust, period = rows[inside], cust[inside], period[inside]
    offset = period - cohort_of[cust]
    span = last - first + 1
    cell = (cohort_of[cust] - first) * span + offset
    if metric == "retention":
        pair = np.unique(cust * span + offset)
        values = np.bincount((cohort_of[pair // span] - first) * span + pair % span,
                             minlength=span * span).astype(np.int64)
    else:
        cents = (np.rint(b["price"].to_numpy()[rows] * 100).astype(np.int64)
                 - np.rint(b["discount"].to_numpy()[rows] * 100).astype(np.int64))
        values = np.rint(np.bincount(cell, cents.astype(np.float64), span * span)
                         ).astype(np.int64)

    n_cells = last - cohort_codes + 1
    cohort_rep = np.repeat(cohort_codes, n_cells)
    since = np.arange(len(cohort_rep)) - np.repeat(np.cumsum(n_cells) - n_cells, n_cells)
    size = sizes[cohort_rep - first]
    value = values[(cohort_rep - first) * span + since]
    out = pd.DataFrame({
        "cohort": pd.to_datetime(period_starts(cohort_rep, grain)).as_unit("ns"),
        "periods_since_signup": since.astype(np.int64),
        "customers": size.astype(np.int64),
    })
    if metric == "retention":
        low, high = wilson_interval(value, size, confidence)
        out["visiting_customers"] = value
        out["retention"] = value / size
        out["retention_ci_low"], out["retention_ci_high"] = low, high
    else:
        out["net_revenue"] = value / 100.0
        out["revenue_per_customer"] = value / size / 100.0
    return out


def _empty_cohorts(metric: str) -> pd.DataFrame:
    columns = (["visiting_customers", "retention", "retention_ci_low", "retention_ci_high"]
               if metric == "retention" else ["net_revenue", "revenue_per_customer"])
    out = pd.DataFrame({"cohort": pd.Series([], dtype="datetime64[ns]"),
                        "periods_since_signup": pd.Series([], dtype="int64"),
                        "customers": pd.Series([], dtype="int64")})
    for name in columns:
        out[name] = pd.Series([], dtype="int64" if name == "visiting_customers" else "float64")
    return out


def funnel_members(data: MarketplaceData, as_of: AsOf | None = None, *,
                   definitions: Definitions = DEFAULT_DEFINITIONS) -> pd.DataFrame:
    """Every customer signed up by ``as_of``: the funnel stages reached (module docstring).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (ascending): ``signup_at``, ``acquisition_channel``,
        ``customer_neighborhood``, ``first_booking_at``, ``first_visit_at``,
        ``second_visit_at`` (NaT when not reached by ``as_of``), one bool column per stage of
        :data:`FUNNEL_STAGES`, ``retention_judged`` (``first visit + churn_horizon_days <=
        as_of``) and ``furthest_stage`` (categorical, the last stage reached: the customer's
        one exclusive state).
    """
    cut = _cut(data, as_of)
    horizon = definitions.churn_horizon_days * DAY_NS
    c = data.customers
    known = np.flatnonzero(ns(c["signup_at"]) <= cut)
    order = known[np.argsort(c["customer_id"].to_numpy()[known], kind="stable")]
    coder = IdCoder.from_ids(c["customer_id"].to_numpy()[order])
    n = len(coder)

    b = data.bookings
    created = ns(b["created_at"])
    made = np.flatnonzero(created <= cut)
    first_booking = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_booking, coder.encode(b["customer_id"].to_numpy()[made], "customer"),
                  created[made])

    rows, t, bid = _completed_visits(data, cut)
    cust = coder.encode(b["customer_id"].to_numpy()[rows], "customer")
    perm = np.lexsort((bid, t, cust))
    cust, t = cust[perm], t[perm]
    rank = np.arange(len(cust)) - np.searchsorted(cust, cust, "left")
    first_visit = np.full(n, _NAT, dtype=np.int64)
    second_visit = np.full(n, _NAT, dtype=np.int64)
    first_visit[cust[rank == 0]] = t[rank == 0]
    second_visit[cust[rank == 1]] = t[rank == 1]

    has_booking = first_booking <= cut
    has_first = first_visit != _NAT
    has_second = second_visit != _NAT
    judged = has_first & (first_visit <= cut - horizon)
    retained = judged & has_second & (second_visit - first_visit <= horizon)
    stages = np.column_stack([np.ones(n, dtype=bool), has_booking, has_first, has_second,
                              retained])
    furthest = stages.sum(axis=1) - 1  # nested, so the count of stages is the last one + 1

    def stamp(values: np.ndarray, present: np.ndarray) -> pd.Series:
        out = pd.Series(pd.to_datetime(np.where(present, values, 0)).as_unit("ns"))
        return out.where(present)

    out = pd.DataFrame({
        "signup_at": c["signup_at"].to_numpy()[order],
        "acquisition_channel": c["acquisition_channel"].array.take(order),
        "customer_neighborhood": c["neighborhood"].array.take(order),
        "first_booking_at": stamp(first_booking, has_booking),
        "first_visit_at": stamp(first_visit, has_first),
        "second_visit_at": stamp(second_visit, has_second),
    }, index=pd.Index(coder.ids, name="customer_id"))
    for i, stage in enumerate(FUNNEL_STAGES):
        out[stage] = stages[:, i]
    out["retention_judged"] = judged
    out["furthest_stage"] = pd.Categorical.from_codes(furthest, dtype=_STAGE_DTYPE)
    return out


def funnel(data: MarketplaceData, as_of: AsOf | None = None,
           by: str | Sequence[str] | None = "acquisition_channel", *,
           definitions: Definitions = DEFAULT_DEFINITIONS,
           confidence: float = 0.95) -> pd.DataFrame:
    """Signup -> first booking -> first visit -> second visit -> retained, per group.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        Only events known at this time (inclusive) count; default the data's last event.
    by
        Customer dimensions (``acquisition_channel``, ``customer_neighborhood``) and/or a time
        grain (``day``, ``week``, ``month``: the signup period); None or ``()`` for all
        customers.
    definitions
        ``churn_horizon_days`` is the retention horizon.
    confidence
        Level of the Wilson intervals.

    Returns
    -------
    pandas.DataFrame
        One row per (group, stage): the ``by`` columns, ``stage`` (ordered categorical),
        ``customers``, ``base`` (the previous stage's customers that can be judged; the
        signups themselves for ``signed_up``), ``conversion`` (``customers / base``, NaN for
        ``signed_up``), ``conversion_ci_low`` / ``_ci_high`` and ``not_yet_judged``
        (previous-stage customers left out of the base, ``retained`` only).

    Raises
    ------
    InputError
        An unknown or non-customer dimension (the valid ones are listed), an unreadable
        ``as_of``.
    """
    valid = (*_CUSTOMER_DIMS, *TIME_GRAINS)
    dims = names(() if by is None else by, "by", valid)
    grains = [d for d in dims if d in TIME_GRAINS]
    if len(grains) > 1:
        raise InputError(f"by: one time grain at most, got {', '.join(grains)}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    members = funnel_members(data, as_of, definitions=definitions)
    frame = members.reset_index()
    keys: list[str] = []
    for d in dims:
        if d in TIME_GRAINS:
            codes = period_codes(ns(frame["signup_at"]), d)
            frame[d] = pd.to_datetime(period_starts(codes, d)).as_unit("ns")
        keys.append(d)
    frame["retained_base"] = frame["second_visit"] & frame["retention_judged"]
    counts = [*FUNNEL_STAGES, "retained_base"]
    if keys:
        table = frame.groupby(keys, observed=True, sort=True)[counts].sum()
    else:
        table = frame[counts].sum().to_frame().T
    parts = []
    for i, stage in enumerate(FUNNEL_STAGES):
        customers = table[stage].to_numpy(dtype=np.int64)
        if i == 0:
            base = customers
        elif stage == "retained":
            base = table["retained_base"].to_numpy(dtype=np.int64)
        else:
            base = table[FUNNEL_STAGES[i - 1]].to_numpy(dtype=np.int64)
        previous = table[FUNNEL_STAGES[max(i - 1, 0)]].to_numpy(dtype=np.int64)
        low, high = wilson_interval(customers, base, confidence)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(base > 0, customers / np.maximum(base, 1), np.nan)
        part = pd.DataFrame({
            "stage": pd.Categorical.from_codes(np.full(len(table), i), dtype=_STAGE_DTYPE),
            "customers": customers, "base": base,
            "conversion": rate if i else np.full(len(table), np.nan),
            "conversion_ci_low": low if i else np.full(len(table), np.nan),
            "conversion_ci_high": high if i else np.full(len(table), np.nan),
            "not_yet_judged": previous - base if stage == "retained"
            else np.zeros(len(table), dtype=np.int64),
        })
        if keys:
            index = table.index.to_frame(index=False)
            part = pd.concat([index, part], axis=1)
        part["_order"] = np.arange(len(table)) * len(FUNNEL_STAGES) + i
        parts.append(part)
    out = pd.concat(parts, ignore_index=True).sort_values("_order", kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)
