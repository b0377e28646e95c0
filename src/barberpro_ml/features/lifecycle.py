"""Lifecycle stage of every customer at ``as_of``, judged against the customer's own cadence.

Stages
------
``new``, ``active``, ``at_risk``, ``lapsed``, ``churned``, ``reactivated``
(:data:`LIFECYCLE_STAGES`). The rules look at *completed* visits known at ``as_of`` (booking
``status == "completed"`` and ``scheduled_at <= as_of``: the boundary of
:mod:`barberpro_ml.features.customer`, inclusive) and at the signup time; nothing after
``as_of`` is read, so appending events after ``as_of`` never changes a stage.

Cadence: why the customer's own rhythm
--------------------------------------
A fixed "no visit for 45 days" rule calls a monthly customer at risk a fortnight too late and
a six-weekly customer at risk a week too early. Each customer is instead measured against their
*usual gap* between visits, ``usual_gap_days``:

- ``own`` is the customer's *lower median* gap between consecutive completed visits (with an
  even number of gaps, the smaller middle one). A median, because one long break (a lapse the
  customer came back from) must not redefine their rhythm; the *lower* median because with two
  gaps an ordinary median is their mean, and ``[28, 200]`` would give a 114-day "cadence".
- ``population`` (:func:`population_median_gap`) is the median of ``own`` over every customer
  with at least two visits at ``as_of`` - the typical customer's cadence. It is a median over
  customers rather than over all gaps pooled because pooled gaps
  over-represent the most frequent visitors: on the default simulation at 2024-06-30 the pooled
  median is 26.2 days against 29.1 for the typical customer, and the prior is meant for a
  customer whose own rhythm is unknown, i.e. a typical customer.
- The two are combined by shrinkage with ``prior_gaps`` pseudo-gaps [1]_::

      usual_gap_days = (n_gaps * own + prior_gaps * population) / (n_gaps + prior_gaps)

  so two visits say little and twenty say a lot; customers with fewer than two visits get
  ``population``. The result is at least one day (two bookings on one day are a double
  booking, not a rhythm). If no customer has two visits yet, ``population`` is
  :data:`DEFAULT_GAP_DAYS`.

``overdue_ratio`` is the time since the last visit (since signup for a customer who never
visited) divided by ``usual_gap_days``; ``days_overdue`` is the same time minus
``usual_gap_days`` (negative: not yet due).

Rules, first match wins
-----------------------
1. ``churned``: no completed visit in ``(as_of - active_window_days, as_of]``, or never
   visited and signed up at least ``active_window_days`` ago. For customers who have visited,
   this is exactly the complement of :func:`barberpro_ml.features.active_customers`, so
   "churned" here is "outside the churn model's population" there.
2. ``lapsed``: ``overdue_ratio >= lapsed_ratio`` (three usual gaps without a visit).
3. ``at_risk``: ``overdue_ratio >= at_risk_ratio`` (half a gap late).
4. ``reactivated``: the gap before the last visit was itself a lapse - at least
   ``lapsed_ratio`` times the cadence known before that visit (the same shrunk lower median,
   over the earlier gaps only), or longer than ``active_window_days`` (the customer was churned
   during it) - and the customer is not overdue now. It lasts until the next visit on rhythm.
5. ``new``: never visited (and not yet overdue), or the first visit lies within ``new_days``
   and there are fewer than three visits.
6. ``active``: on rhythm.

The population cadence is the only quantity that looks beyond the customer. It is computed
over *all* customers known at ``as_of`` even when ``customer_ids`` restricts the output, so a
customer's stage never depends on who else was asked about; pass ``population_gap_days``
(from :func:`population_median_gap`, once per snapshot) to skip recomputing it per call.

References
----------
.. [1] Gelman, A., Carlin, J. B., Stern, H. S., Dunson, D. B., Vehtari, A. & Rubin, D. B.
   (2013). *Bayesian Data Analysis*, 3rd ed., ch. 2 (a posterior mean as a precision-weighted
   average of the data and the prior, with the prior worth a number of pseudo-observations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.definitions import DEFAULT_DEFINITIONS
from barberpro_ml.errors import InputError, NotFoundError
from barberpro_ml.features._common import (
    DAY_NS,
    AsOf,
    BoolArray,
    FloatArray,
    IdCoder,
    IntArray,
    Segments,
    days,
    ns,
    sort_by_group_time,
    to_as_of,
)

__all__ = [
    "DEFAULT_GAP_DAYS",
    "LIFECYCLE_STAGES",
    "lifecycle_journey",
    "lifecycle_stages",
    "population_median_gap",
]

LIFECYCLE_STAGES: tuple[str, ...] = ("new", "active", "at_risk", "lapsed", "churned",
                                     "reactivated")
"""The stages, in the order of the ``stage`` categories."""

DEFAULT_GAP_DAYS: Final = 30.0
"""Population cadence used only while no customer has two visits (a monthly haircut)."""

MIN_GAP_DAYS: Final = 1.0
"""Floor of ``usual_gap_days``."""

_NEW, _ACTIVE, _AT_RISK, _LAPSED, _CHURNED, _REACTIVATED = range(6)
_SECOND: Final = 10**9
_GAP_BITS: Final = 35  # gaps in whole seconds: 2**35 s is about 1,089 years
_MAX_EXAMPLES: Final = 5
_COLUMNS: Final = ("stage", "n_visits", "days_since_last_visit", "usual_gap_days",
                   "overdue_ratio", "days_overdue", "previous_gap_days", "reason")


@dataclass(frozen=True)
class _Rules:
    active_window_days: int
    new_days: int
    at_risk_ratio: float
    lapsed_ratio: float
    prior_gaps: float


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) <= 0:
        raise InputError(f"{name}: expected a positive integer number of days, got {value!r}")
    return int(value)


def _real(value: object, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name}: expected a finite number {bound}, got {value!r}")
    return number


def _check_rules(active_window_days: int, new_days: int, at_risk_ratio: float,
                 lapsed_ratio: float, prior_gaps: float) -> _Rules:
    rules = _Rules(
        active_window_days=_positive_int(active_window_days, "active_window_days"),
        new_days=_positive_int(new_days, "new_days"),
        at_risk_ratio=_real(at_risk_ratio, "at_risk_ratio"),
        lapsed_ratio=_real(lapsed_ratio, "lapsed_ratio"),
        prior_gaps=_real(prior_gaps, "prior_gaps", allow_zero=True),
    )
    if rules.at_risk_ratio >= rules.lapsed_ratio:
        raise InputError(f"at_risk_ratio ({at_risk_ratio!r}) must be below lapsed_ratio "
                         f"({lapsed_ratio!r}): a customer is at risk before being lapsed")
    return rules


def _check_population_gap(value: float | None) -> float | None:
    return None if value is None else _real(value, "population_gap_days")


def _completed(bookings: pd.DataFrame) -> BoolArray:
    status = bookings["status"]
    completed = list(status.cat.categories).index("completed")
    return np.asarray(status.cat.codes.to_numpy() == completed, dtype=bool)


# ---------------------------------------------------------------------------- gap statistics

@dataclass(frozen=True)
class _Gaps:
    """Per group: gap count, lower-median gap, and lower-median gap before the last visit.

    Gaps are in whole seconds of the visit times truncated to the second, so that every code
    path (all customers, a few customers, the population cadence alone) computes bit-identical
    cadences whatever order the visits were sorted in.
    """

    n_gaps: IntArray
    own_s: IntArray       # valid where n_gaps >= 1
    before_last_s: IntArray  # valid where n_gaps >= 2


def _gap_stats(code_sorted: IntArray, seconds_sorted: IntArray, n_groups: int, *,
               before_last: bool = True) -> _Gaps:
    """Gap order statistics of visits sorted by ``(group, time)``.

    ``before_last=False`` skips the cadence before the last visit (left at 0), which the
    population cadence does not need.
    """
    same = code_sorted[1:] == code_sorted[:-1]
    gap_code = code_sorted[1:][same]
    gap = np.diff(seconds_sorted)[same]
    n_gaps = np.bincount(gap_code, minlength=n_groups).astype(np.int64)
    own = np.zeros(n_groups, dtype=np.int64)
    before = np.zeros(n_groups, dtype=np.int64)
    if len(gap) == 0:
        return _Gaps(n_gaps, own, before)
    ends = np.cumsum(n_gaps)
    starts = ends - n_gaps
    has = n_gaps > 0
    if int(gap_code.max()) < 2 ** (63 - _GAP_BITS) and int(gap.max()) < 2**_GAP_BITS:
        key = (gap_code << _GAP_BITS) | gap
        key.sort()
        by_length = key & ((1 << _GAP_BITS) - 1)
    else:  # groups or gaps too large to pack: the same order by a slower two-key sort
        by_length = gap[np.lexsort((gap, gap_code))]
    k = n_gaps[has]
    own[has] = by_length[starts[has] + (k - 1) // 2]
    if not before_last:
        return _Gaps(n_gaps, own, before)
    # Rank, within its group's sorted run, of the last gap in time order (first copy of its
    # value): the number of the group's gaps shorter than it.
    last_gap = np.zeros(n_groups, dtype=np.int64)
    last_gap[has] = gap[ends[has] - 1]
    shorter = gap < last_gap[gap_code]
    rank_of_last = np.bincount(gap_code[shorter], minlength=n_groups).astype(np.int64)
    two = n_gaps >= 2
    k = n_gaps[two]
    # Dropping the last gap from the sorted run: any copy of its value leaves the same
    # multiset, so the first copy's rank r serves; reduced index j maps to j, or j+1 from r on.
    r = rank_of_last[two]
    j = (k - 2) // 2
    before[two] = by_length[starts[two] + j + (j >= r)]
    return _Gaps(n_gaps, own, before)


def _population_from_gaps(gaps: _Gaps) -> float:
    """Median over customers of their own lower-median gap, in days (NaN if nobody has one)."""
    own = gaps.own_s[gaps.n_gaps > 0]
    if len(own) == 0:
        return math.nan
    return float(np.median(own.astype(np.float64))) * _SECOND / DAY_NS


def _population_at(data: MarketplaceData, cut: int) -> float:
    bookings = data.bookings
    scheduled = ns(bookings["scheduled_at"])
    keep = _completed(bookings) & (scheduled <= cut)
    ids = bookings["customer_id"].to_numpy()[keep]
    seconds = scheduled[keep] // _SECOND
    if len(ids) == 0:
        return DEFAULT_GAP_DAYS
    # Compact ids serve as group codes directly; sparse ones are renumbered (by a hash, as
    # only the grouping matters here), so no array is sized by the largest id.
    if int(ids.min()) >= 0 and int(ids.max()) <= 4 * len(ids) + 1024:
        codes = ids.astype(np.int64)
    else:
        codes = pd.factorize(ids)[0].astype(np.int64)
    n_groups = int(codes.max()) + 1
    rel = seconds - int(seconds.min())
    if int(rel.max()) < 2**_GAP_BITS and n_groups < 2 ** (63 - _GAP_BITS):
        key = (codes << _GAP_BITS) | rel
        key.sort()
        code_sorted, seconds_sorted = key >> _GAP_BITS, key & ((1 << _GAP_BITS) - 1)
    else:
        order = np.lexsort((rel, codes))
        code_sorted, seconds_sorted = codes[order], rel[order]
    value = _population_from_gaps(_gap_stats(code_sorted, seconds_sorted, n_groups,
                                             before_last=False))
    return DEFAULT_GAP_DAYS if math.isnan(value) else value


def population_median_gap(data: MarketplaceData, as_of: AsOf) -> float:
    """The typical customer's cadence at ``as_of``: the prior of ``usual_gap_days``.

    The median, over customers with at least two completed visits by ``as_of``, of each one's
    lower-median gap between consecutive visits (whole seconds); :data:`DEFAULT_GAP_DAYS` when
    nobody has two visits yet.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        The cut-off, a naive UTC timestamp (inclusive).

    Returns
    -------
    float
        Days.

    Examples
    --------
    >>> gap = population_median_gap(data, "2024-06-30")                   # doctest: +SKIP
    >>> lifecycle_stages(data, "2024-06-30", [42], population_gap_days=gap)  # doctest: +SKIP
    """
    return _population_at(data, int(to_as_of(as_of).value))


# ---------------------------------------------------------------------------- the rules

def _stages(code: IntArray, time: IntArray, n_groups: int, cut: IntArray, signup: IntArray,
            population: float | None, rules: _Rules) -> dict[str, object]:
    """Stage columns of ``n_groups`` customers from their visits sorted by ``(group, time)``.

    ``cut`` and ``signup`` are per group, so one call can also evaluate one customer at many
    cut-offs (each cut-off a group: see :func:`lifecycle_journey`).
    """
    segments = Segments.from_sorted_codes(code, n_groups)
    n_visits = segments.counts
    has_visit = n_visits > 0
    last = segments.last(time, 0)
    first = segments.first(time, 0)
    two = n_visits >= 2
    previous = np.zeros(n_groups, dtype=np.int64)
    previous[two] = time[segments.ends[two] - 2]

    gaps = _gap_stats(code, time // _SECOND, n_groups)
    if population is None:
        population = _population_from_gaps(gaps)
        if math.isnan(population):
            population = DEFAULT_GAP_DAYS
    sec_days = _SECOND / DAY_NS

    def shrunk(n: IntArray, own_s: IntArray) -> FloatArray:
        n_f = n.astype(np.float64)
        weight = n_f + rules.prior_gaps
        value = np.full(len(n), population, dtype=np.float64)
        ok = weight > 0
        value[ok] = (n_f[ok] * own_s[ok] * sec_days + rules.prior_gaps * population) / weight[ok]
        return np.maximum(value, MIN_GAP_DAYS)

    usual = shrunk(gaps.n_gaps, gaps.own_s)
    before = shrunk(np.maximum(gaps.n_gaps - 1, 0), gaps.before_last_s)

    idle_ns = cut - np.where(has_visit, last, signup)
    idle = days(idle_ns)
    ratio = idle / usual
    recency = np.where(has_visit, idle, np.nan)
    previous_gap = np.where(two, days(last - previous), np.nan)

    window_ns = rules.active_window_days * DAY_NS
    churned = idle_ns >= window_ns
    lapsed = ratio >= rules.lapsed_ratio
    at_risk = ratio >= rules.at_risk_ratio
    came_back = two & ((previous_gap >= rules.lapsed_ratio * before)
                       | (last - previous > window_ns))
    new = ~has_visit | ((cut - first < rules.new_days * DAY_NS) & (n_visits < 3))
    stage = np.select([churned, lapsed, at_risk, came_back, new],
                      [_CHURNED, _LAPSED, _AT_RISK, _REACTIVATED, _NEW], _ACTIVE).astype(np.int8)

    return {
        "stage": pd.Categorical.from_codes(stage, categories=pd.Index(LIFECYCLE_STAGES)),
        "n_visits": n_visits,
        "days_since_last_visit": recency,
        "usual_gap_days": usual,
        "overdue_ratio": ratio,
        "days_overdue": idle - usual,
        "previous_gap_days": previous_gap,
        "reason": _reasons(stage, has_visit, idle, usual, ratio, previous_gap, before,
                           days(cut - first), n_visits, rules),
    }


# ---------------------------------------------------------------------------- reasons

_TEMPLATES: Final = (
    "no visit in the last {w} days (last visit {a} days ago)",                  # 0 churned
    "signed up {a} days ago and never visited",                                  # 1 churned
    "last visit {a} days ago against a usual {b}-day cadence ({r}x)",            # 2 rhythm
    "signed up {a} days ago, no visit yet; a typical customer visits every {b} days ({r}x)",
    "back {a} days ago after a {b}-day break against a usual {c}-day cadence",   # 4 reactivated
    "first visit {a} days ago, {b} visit(s) so far",                             # 5 new
    "signed up {a} days ago, no visit yet",                                      # 6 new
)


def _reasons(stage: npt.NDArray[np.int8], has_visit: BoolArray, idle: FloatArray,
             usual: FloatArray, ratio: FloatArray, previous_gap: FloatArray,
             before: FloatArray, since_first: FloatArray, n_visits: IntArray,
             rules: _Rules) -> pd.Series:
    """One sentence per customer, formatted once per distinct sentence.

    Days are whole days elapsed (floor), cadences rounded to the day, ratios floored to one
    decimal so a displayed "1.5x" never belongs to a customer below a 1.5 threshold.
    """
    n = len(stage)
    template = np.where(has_visit, 2, 3)
    template[stage == _CHURNED] = np.where(has_visit, 0, 1)[stage == _CHURNED]
    template[stage == _REACTIVATED] = 4
    template[stage == _NEW] = np.where(has_visit, 5, 6)[stage == _NEW]

    def whole(x: FloatArray, rounder: np.ufunc) -> IntArray:
        return np.asarray(np.clip(rounder(np.nan_to_num(x)), 0, 2**19 - 1), dtype=np.int64)

    a = whole(idle, np.floor)
    b = whole(usual, np.rint)
    c = whole(ratio * 10, np.floor)
    reactivated = template == 4
    b[reactivated] = whole(previous_gap[reactivated], np.floor)
    c[reactivated] = whole(before[reactivated], np.rint)
    is_new = template == 5
    a[is_new] = whole(since_first[is_new], np.floor)
    b[is_new] = n_visits[is_new]
    key = (template.astype(np.int64) << 60) | (a << 40) | (b << 20) | c
    unique, inverse = np.unique(key, return_inverse=True)
    texts = []
    for k in unique.tolist():
        t, ka, kb, kc = k >> 60, (k >> 40) & 0xFFFFF, (k >> 20) & 0xFFFFF, k & 0xFFFFF
        texts.append(_TEMPLATES[t].format(w=rules.active_window_days, a=ka, b=kb,
                                          c=kc, r=f"{kc // 10}.{kc % 10}"))
    if n == 0:
        return pd.Series([], dtype="str")
    return pd.Series(pd.array(texts, dtype="str")).take(inverse.reshape(-1)).reset_index(
        drop=True)


# ---------------------------------------------------------------------------- public API

def _requested_ids(customer_ids: Sequence[int] | npt.ArrayLike) -> IntArray:
    ids = np.asarray(customer_ids)
    if ids.ndim != 1:
        raise InputError(f"customer_ids: expected a one-dimensional sequence of ids, got "
                         f"shape {ids.shape}")
    if len(ids) and (ids.dtype.kind not in "iu"):
        raise InputError(f"customer_ids: expected integer ids, got dtype {ids.dtype} "
                         f"(e.g. {ids[:_MAX_EXAMPLES].tolist()})")
    ids = ids.astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        values, counts = np.unique(ids, return_counts=True)
        dupes = values[counts > 1]
        raise InputError(f"customer_ids: {len(dupes)} id(s) requested more than once "
                         f"(e.g. {dupes[:_MAX_EXAMPLES].tolist()}); each row of the result is "
                         "one customer")
    return ids


class UnknownCustomersError(NotFoundError, KeyError):
    """Customer ids that are not customers at ``as_of``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _locate(data: MarketplaceData, ids: IntArray, stamp: pd.Timestamp) -> IntArray:
    """Signup times (ns) of ``ids`` in request order; KeyError naming those not known."""
    customers = data.customers
    all_ids = customers["customer_id"].to_numpy()
    order = np.argsort(ids, kind="stable")
    rows = np.flatnonzero(np.isin(all_ids, ids))
    slot = order[np.searchsorted(ids, all_ids[rows], sorter=order)]
    signup = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
    signup[slot] = ns(customers["signup_at"])[rows]
    found = np.zeros(len(ids), dtype=bool)
    found[slot] = True
    late = found & (signup > stamp.value)
    if (~found).any() or late.any():
        parts = []
        if (~found).any():
            parts.append(f"{int((~found).sum())} unknown (e.g. "
                         f"{ids[~found][:_MAX_EXAMPLES].tolist()})")
        if late.any():
            parts.append(f"{int(late.sum())} signed up after as_of (e.g. "
                         f"{ids[late][:_MAX_EXAMPLES].tolist()})")
        raise UnknownCustomersError(
            f"customer_ids: {int((~found).sum() + late.sum())} of {len(ids)} id(s) are not "
            f"customers at as_of={stamp}: " + "; ".join(parts))
    return signup


def lifecycle_stages(data: MarketplaceData, as_of: AsOf,
                     customer_ids: Sequence[int] | npt.ArrayLike | None = None, *,
                     active_window_days: int = DEFAULT_DEFINITIONS.active_window_days,
                     new_days: int = DEFAULT_DEFINITIONS.new_customer_days,
                     at_risk_ratio: float = 1.5, lapsed_ratio: float = 3.0,
                     prior_gaps: float = 2.0,
                     population_gap_days: float | None = None) -> pd.DataFrame:
    """Lifecycle stage of customers at ``as_of`` from their own visit rhythm.

    The rules and their reasoning are in the module docstring
    (:mod:`barberpro_ml.features.lifecycle`).

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        The cut-off, a naive UTC timestamp (inclusive).
    customer_ids
        Customers to describe, each signed up by ``as_of``; ``None`` for all of them. Only
        their bookings are read (plus the population cadence, unless given).
    active_window_days
        No completed visit for this many days means ``churned`` (default: the shipped
        :class:`~barberpro_ml.definitions.Definitions`, as
        :func:`barberpro_ml.features.active_customers`).
    new_days
        A first visit this recent (with fewer than three visits) means ``new``.
    at_risk_ratio, lapsed_ratio
        Thresholds on ``overdue_ratio``; ``0 < at_risk_ratio < lapsed_ratio``.
    prior_gaps
        Weight, in pseudo-gaps, of the population cadence in ``usual_gap_days`` (>= 0).
    population_gap_days
        The population cadence, if already known (:func:`population_median_gap` at the same
        ``as_of``); computed over all customers when ``None``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id``: ascending for all customers, in request order when
        ``customer_ids`` is given. Columns: ``stage`` (categorical with the categories
        :data:`LIFECYCLE_STAGES`, unordered: the stages are not a scale), ``n_visits``
        (int64), ``days_since_last_visit`` (NaN without a visit), ``usual_gap_days``,
        ``overdue_ratio``, ``days_overdue`` (both measured from signup without a visit, so
        never NaN), ``previous_gap_days`` (the gap before the last visit; NaN with fewer
        than two visits), all float64, and ``reason`` (str, one sentence).

    Raises
    ------
    KeyError
        If a requested id is unknown or signed up after ``as_of`` (how many, examples).
    ValueError
        Bad ``as_of``, duplicate or non-integer ids, or bad rule parameters (naming the
        argument).

    Examples
    --------
    >>> stages = lifecycle_stages(data, "2024-06-30")                   # doctest: +SKIP
    >>> stages["stage"].value_counts()                                  # doctest: +SKIP
    >>> lifecycle_stages(data, "2024-06-30", [42]).loc[42, "reason"]    # doctest: +SKIP
    'last visit 41 days ago against a usual 28-day cadence (1.4x)'
    """
    stamp = to_as_of(as_of)
    rules = _check_rules(active_window_days, new_days, at_risk_ratio, lapsed_ratio,
                         prior_gaps)
    population = _check_population_gap(population_gap_days)
    cut = int(stamp.value)
    bookings = data.bookings
    if customer_ids is None:
        customers = data.customers
        signup_all = ns(customers["signup_at"])
        kept = signup_all <= cut
        coder = IdCoder.from_ids(customers["customer_id"].to_numpy()[kept])
        signup = np.empty(len(coder), dtype=np.int64)
        signup[coder.encode(customers["customer_id"].to_numpy()[kept], "customer")] = (
            signup_all[kept])
        index_ids = coder.ids
        scheduled = ns(bookings["scheduled_at"])
        rows = np.flatnonzero(_completed(bookings) & (scheduled <= cut))
        code = coder.encode(bookings["customer_id"].to_numpy()[rows], "customer")
    else:
        index_ids = _requested_ids(customer_ids)
        signup = _locate(data, index_ids, stamp)
        if population is None:
            population = _population_at(data, cut)
        b_ids = bookings["customer_id"].to_numpy()
        rows = np.flatnonzero(np.isin(b_ids, index_ids))
        sub = bookings["status"].cat.codes.to_numpy()[rows] == list(
            bookings["status"].cat.categories).index("completed")
        rows = rows[sub & (ns(bookings["scheduled_at"])[rows] <= cut)]
        order = np.argsort(index_ids, kind="stable")
        code = order[np.searchsorted(index_ids, b_ids[rows], sorter=order)].astype(np.int64)
    time = ns(bookings["scheduled_at"])[rows]
    perm = sort_by_group_time(code, time, bookings["booking_id"].to_numpy()[rows])
    n = len(index_ids)
    cols = _stages(code[perm], time[perm], n, np.full(n, cut, dtype=np.int64), signup,
                   population, rules)
    index = pd.Index(np.asarray(index_ids, dtype=np.int64), name="customer_id")
    frame = pd.DataFrame({name: cols[name] for name in _COLUMNS[:-1]}, index=index)
    reason = cols["reason"]
    assert isinstance(reason, pd.Series)
    frame["reason"] = reason.set_axis(index)
    return frame


def lifecycle_journey(data: MarketplaceData, customer_id: int, as_of: AsOf, *,
                      step_days: int = 30,
                      active_window_days: int = DEFAULT_DEFINITIONS.active_window_days,
                      new_days: int = DEFAULT_DEFINITIONS.new_customer_days,
                      at_risk_ratio: float = 1.5, lapsed_ratio: float = 3.0,
                      prior_gaps: float = 2.0,
                      population_gap_days: float | None = None) -> pd.DataFrame:
    """One customer's lifecycle stage every ``step_days`` from signup to ``as_of``.

    Each row applies :func:`lifecycle_stages` to the customer's visits known at that row's
    cut-off. The population cadence is the one at ``as_of`` for every row (or
    ``population_gap_days``): computing it at every step would cost a pass over all bookings
    per row, and it barely moves (29.0 to 29.1 days on the default simulation between
    2023-06-30 and 2024-12-31). So the last row equals ``lifecycle_stages(data, as_of,
    [customer_id])`` and every row equals ``lifecycle_stages`` at its cut-off given the same
    ``population_gap_days``.

    Parameters
    ----------
    data
        The validated event tables.
    customer_id
        The customer; signed up by ``as_of``.
    as_of
        The last cut-off, a naive UTC timestamp (inclusive).
    step_days
        Days between rows, counted from the signup time.
    active_window_days, new_days, at_risk_ratio, lapsed_ratio, prior_gaps, population_gap_days
        As in :func:`lifecycle_stages`.

    Returns
    -------
    pandas.DataFrame
        One row per cut-off (signup, signup + step, ..., and ``as_of``), columns ``as_of``
        (datetime64[ns]), ``stage``, ``days_since_last_visit``, ``usual_gap_days``,
        ``reason`` (as in :func:`lifecycle_stages`) and ``changed`` (bool: the stage differs
        from the row before; True on the first row, where the customer enters a stage).

    Raises
    ------
    KeyError
        If the customer is unknown or signed up after ``as_of``.
    ValueError
        Bad ``as_of``, ``step_days`` or rule parameters.

    Examples
    --------
    >>> journey = lifecycle_journey(data, 42, "2024-12-31")             # doctest: +SKIP
    >>> journey.loc[journey["changed"], ["as_of", "stage", "reason"]]   # doctest: +SKIP
    """
    stamp = to_as_of(as_of)
    step = _positive_int(step_days, "step_days")
    rules = _check_rules(active_window_days, new_days, at_risk_ratio, lapsed_ratio,
                         prior_gaps)
    population = _check_population_gap(population_gap_days)
    if isinstance(customer_id, bool) or not isinstance(customer_id, int | np.integer):
        raise InputError(f"customer_id: expected an integer id, got {customer_id!r}")
    cut = int(stamp.value)
    signup = int(_locate(data, np.array([customer_id], dtype=np.int64), stamp)[0])
    if population is None:
        population = _population_at(data, cut)

    bookings = data.bookings
    rows = np.flatnonzero(bookings["customer_id"].to_numpy() == customer_id)
    rows = rows[_completed(bookings)[rows] & (ns(bookings["scheduled_at"])[rows] <= cut)]
    time = ns(bookings["scheduled_at"])[rows]
    order = np.lexsort((bookings["booking_id"].to_numpy()[rows], time))
    time = time[order]

    cuts = np.arange(signup, cut, step * DAY_NS, dtype=np.int64)
    cuts = np.append(cuts, np.int64(cut))
    n_steps = len(cuts)
    # Step k sees the visits up to its cut-off: a prefix of the time-sorted visits.
    known = np.searchsorted(time, cuts, side="right").astype(np.int64)
    code = np.repeat(np.arange(n_steps, dtype=np.int64), known)
    offsets = np.cumsum(known) - known
    position = np.arange(len(code), dtype=np.int64) - np.repeat(offsets, known)
    cols = _stages(code, time[position], n_steps, cuts,
                   np.full(n_steps, signup, dtype=np.int64), population, rules)
    stage = cols["stage"]
    assert isinstance(stage, pd.Categorical)
    codes = np.asarray(stage.codes)
    changed = np.ones(n_steps, dtype=bool)
    changed[1:] = codes[1:] != codes[:-1]
    reason = cols["reason"]
    assert isinstance(reason, pd.Series)
    return pd.DataFrame({
        "as_of": pd.to_datetime(cuts).as_unit("ns"),
        "stage": stage,
        "days_since_last_visit": cols["days_since_last_visit"],
        "usual_gap_days": cols["usual_gap_days"],
        "reason": reason.to_numpy(),
        "changed": changed,
    })
