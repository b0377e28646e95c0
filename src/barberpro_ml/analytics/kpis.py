"""KPIs as a semantic layer: the catalogue's measures, for any grouping, at any ``as_of``.

``kpis(data, ["net_revenue", "retention"], by=("neighborhood",), freq="month")`` returns one
row per (month, neighborhood) and one column per measure. Every measure is defined once, in
:mod:`barberpro_ml.analytics.catalogue`; this module only evaluates the definitions.

Decisions
---------
**Which time places an event in a period.** Bookings (the count) by ``created_at``: a booking
is made when it is made. Everything about a visit's outcome (visits, cancellations, no-shows,
revenue, discounts, tips, occupied minutes, and the customers counted from visits) by
``scheduled_at``: the appointment is when the money and the chair time are spent, and the
outcome is known only then. Reviews by their ``created_at``, signups by ``signup_at``.
``active_customers`` is a stock at the period's last instant, ``retention_base`` a stock at
its start; ``open_minutes`` is the barbers' time on the platform inside the period.

**``as_of``.** Only what is known at ``as_of`` (inclusive) is read, the rule of
:mod:`barberpro_ml.features.customer`: bookings with ``created_at <= as_of``; outcomes of
bookings with ``scheduled_at <= as_of``; reviews with ``created_at <= as_of``; customers with
``signup_at <= as_of``; a barber's time on the platform up to ``as_of`` (a departure after
``as_of`` is not known yet, and does not matter: the time is cut at ``as_of``). The window is
``[start, end)``, cut at ``as_of``: the last period is partial when ``as_of`` falls inside it.
``start`` defaults to the first signup or barber join known at ``as_of``, ``end`` to just
after ``as_of``, ``as_of`` to :attr:`MarketplaceData.observation_end`. Appending events after
``as_of`` never changes a result (hypothesis-tested).

**Customers** (``Definitions.active_window_days`` = W, 180 days by default). A customer is
*active* at an instant when they have a completed visit in the W days up to it (inclusive), as
:func:`barberpro_ml.features.active_customers`: with no window arguments, ``active_customers``
is exactly that count at ``as_of``. In a period ``[S, E]``: *visiting* = a completed visit in
it; *new* = visiting, first completed visit ever in it; *returning* = visiting, a completed
visit before it (so visiting = new + returning); *reactivated* = returning but not active at
``S`` (lapsed longer than W, then came back); *retention_base* = active at ``S`` (a visit in
``[S - W, S)``); *retained* = retention base who visited in the period; ``retention`` =
retained / base, so it depends on the grain (a monthly retention at ``freq="month"``) and is
NaN without a base (e.g. no ``start``: nobody was active before the first event). Visits
before ``start`` count as history. The lifecycle stage ``reactivated`` of
:mod:`barberpro_ml.features.lifecycle` is a per-customer cadence rule; the KPI counts the
definitions-based lapse. ``Definitions.new_customer_days`` is the length of a lifecycle stage,
not a KPI: a new customer here is one whose first visit falls in the period, so summed over
periods every customer is new exactly once.

**Utilisation**: ``occupied_minutes`` (service durations of completed and no-show bookings: a
no-show holds the chair) over ``open_minutes`` (``open_minutes_per_day`` for each day a barber
was on the platform, default
:data:`~barberpro_ml.features.provider.DEFAULT_OPEN_MINUTES_PER_DAY`, the assumption
``provider_features`` makes too). Its denominator belongs to a barber, so it splits by time
and barber dimensions only.

**Dimensions and joins.** A fact reaches the dimensions of the entities it refers to: a
booking (and its visit, review, tip) its customer, barber and service; a review the booking's
service; a signup only the customer; open time only the barber. ``neighborhood`` is the
barber's shop (where the visit and the revenue happen); ``customer_neighborhood`` the
customer's home. Attributes are the tables' current values (the contract keeps no history of
a barber's tier or neighborhood). A measure asked for by a dimension its facts cannot reach
(signups by barber, utilisation by acquisition channel) is refused with an
:class:`~barberpro_ml.errors.InputError` saying why.

**Distinct counts** (the customer measures) are counted once per group. Split by a customer
attribute (or by time only), the groups partition the customers and the counts sum to the
total. Split by a booking-level dimension (barber, service, their neighborhood or tier) a
customer who visited two neighborhoods is counted in both: the groups reconcile *as sets*
(their union is the total's set), and the sum of the groups can exceed the total. New,
returning and reactivated are properties of the customer in the period (from all their
visits), shared by every group they visited. Retention is judged per group (active with that
barber at the start, visited that barber again): a customer who moved from one barber to
another is retained by the marketplace and by neither barber, so the groups' retained
customers are a subset of the total's.

**Money** is summed in integer cents (each amount rounded to the cent once), so the groups of
any partition add up to the total exactly; values are returned in currency units as the
float nearest to the exact cent amount (``round(value * 100)`` gives the cents back).

**Ratios** are computed from the summed numerator and denominator of each group, never by
averaging rates. ``with_components=True`` adds the components (catalogue measures
themselves) so a reconciliation can be checked: the total's ratio is the sum of the
numerators over the sum of the denominators. A ratio is NaN where its denominator is 0.

**Rows**: one per group in which at least one of the requested measures (or their components)
has an event; absent measures are 0 there. With no grouping, one row, always.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from barberpro_ml.analytics._grid import (
    Grid,
    Grouping,
    earliest_known,
    names,
    parse_grain,
)
from barberpro_ml.analytics.catalogue import DIMENSIONS, MEASURES, Measure
from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.schema import BOOKING_STATUSES
from barberpro_ml.definitions import DEFAULT_DEFINITIONS, Definitions
from barberpro_ml.errors import InputError
from barberpro_ml.features._common import (
    DAY_NS,
    AsOf,
    BoolArray,
    FloatArray,
    IdCoder,
    IntArray,
    ns,
    sort_by_group_time,
    to_as_of,
)
from barberpro_ml.features.provider import DEFAULT_OPEN_MINUTES_PER_DAY

__all__ = ["kpis"]

_EXACT: Final = 2**53
"""Integer sums below this are exact in float64 (``np.bincount`` accumulates in doubles)."""


Values = npt.NDArray[Any]
"""A result column: int64 counts and cents, or float64 minutes and ratios."""


@dataclass(frozen=True)
class _Result:
    keys: IntArray
    values: Values


class _Factorized:
    """Row keys mapped to dense slots once, for several sums over the same rows."""

    def __init__(self, key: IntArray) -> None:
        if len(key) and int(key.max()) - int(key.min()) < 4 * len(key) + 4096:
            low = int(key.min())
            self.inverse = key - low
            span = int(key.max()) - low + 1
            self.keys = np.arange(low, low + span, dtype=np.int64)
        else:
            self.keys, inverse = np.unique(key, return_inverse=True)
            self.inverse = inverse.reshape(-1).astype(np.int64)
        self.n = len(self.keys)

    def sum(self, mask: BoolArray | None, weights: Values | None
            ) -> _Result:
        inv = self.inverse if mask is None else self.inverse[mask]
        count = np.bincount(inv, minlength=self.n)
        seen = count > 0
        if weights is None:
            return _Result(self.keys[seen], count[seen].astype(np.int64))
        w = weights if mask is None else weights[mask]
        if w.dtype.kind == "f":
            return _Result(self.keys[seen], np.bincount(inv, w, self.n)[seen])
        if int(np.abs(w).sum()) < _EXACT:
            total = np.rint(np.bincount(inv, w.astype(np.float64), self.n)).astype(np.int64)
        else:  # beyond 2**53 a double loses cents: add in int64
            total = np.zeros(self.n, dtype=np.int64)
            np.add.at(total, inv, w)
        return _Result(self.keys[seen], total[seen])


def _cents(values: pd.Series, rows: IntArray) -> npt.NDArray[np.int64]:
    return np.rint(values.to_numpy(dtype=np.float64)[rows] * 100.0).astype(np.int64)


_STATUS: Final = {name: i for i, name in enumerate(BOOKING_STATUSES)}


def _status(bookings: pd.DataFrame) -> npt.NDArray[np.int64]:
    """Status of every booking as its index in :data:`BOOKING_STATUSES` (the contract's
    fixed vocabulary, so the codes are the category codes)."""
    status = bookings["status"]
    assert tuple(status.cat.categories) == BOOKING_STATUSES
    return np.asarray(status.cat.codes.to_numpy(), dtype=np.int64)


class _Engine:
    """Evaluates base measures on one window, grouping and ``as_of``."""

    def __init__(self, data: MarketplaceData, grid: Grid, grouping: Grouping, cut: int,
                 definitions: Definitions, open_minutes_per_day: float) -> None:
        self.data, self.grid, self.grouping, self.cut = data, grid, grouping, cut
        self.window_ns = definitions.active_window_days * DAY_NS
        self.open_minutes_per_day = open_minutes_per_day
        self.K = max(grid.n, 1)
        self.results: dict[str, _Result] = {}

    def key(self, g: IntArray, k: IntArray) -> IntArray:
        return g * self.K + k

    # ------------------------------------------------------------------ bookings
    def created(self) -> None:
        b = self.data.bookings
        created = ns(b["created_at"])
        k = self.grid.index(created)
        rows = np.flatnonzero((k >= 0) & (created <= self.cut))
        g = self.grouping.group(b, rows)
        self.results["bookings"] = _Factorized(self.key(g, k[rows])).sum(None, None)

    def outcomes(self, wanted: set[str]) -> None:
        b = self.data.bookings
        scheduled = ns(b["scheduled_at"])
        k = self.grid.index(scheduled)
        rows = np.flatnonzero((k >= 0) & (scheduled <= self.cut))
        fac = _Factorized(self.key(self.grouping.group(b, rows), k[rows]))
        status = _status(b)[rows]
        completed = status == _STATUS["completed"]
        no_show = status == _STATUS["no_show"]
        masks = {"resolved_bookings": None, "completed_visits": completed,
                 "cancelled_bookings": status == _STATUS["cancelled"], "no_shows": no_show}
        for name, mask in masks.items():
            if name in wanted:
                self.results[name] = fac.sum(mask, None)
        price = _cents(b["price"], rows)
        discount = _cents(b["discount"], rows)
        money = {"gross_revenue": ("price",), "discounts": ("discount",),
                 "net_revenue": ("price", "discount"), "tips": ("tip",)}
        for name, parts in money.items():
            if name in wanted:
                amount = (price - discount if parts == ("price", "discount")
                          else _cents(b[parts[0]], rows))
                self.results[name] = fac.sum(completed, amount)
        if "occupied_minutes" in wanted:
            services = self.data.services
            coder = IdCoder.from_ids(services["service_id"].to_numpy())
            duration = np.zeros(len(coder), dtype=np.int64)
            duration[coder.encode(services["service_id"].to_numpy(), "service")] = (
                services["duration_min"].to_numpy())
            minutes = duration[coder.encode(b["service_id"].to_numpy()[rows], "service")]
            self.results["occupied_minutes"] = fac.sum(completed | no_show, minutes)

    # ------------------------------------------------------------------ other facts
    def reviews(self, wanted: set[str]) -> None:
        r = self.data.reviews
        created = ns(r["created_at"])
        k = self.grid.index(created)
        rows = np.flatnonzero((k >= 0) & (created <= self.cut))
        codes: dict[str, IntArray] = {}
        if "service" in self.grouping.levels:
            b = self.data.bookings
            booking = IdCoder.from_ids(b["booking_id"].to_numpy())
            service = np.empty(len(booking), dtype=np.int64)
            service[booking.encode(b["booking_id"].to_numpy(), "booking")] = (
                self.grouping.coder("service").encode(b["service_id"].to_numpy(), "service"))
            codes["service"] = service[booking.encode(r["booking_id"].to_numpy()[rows],
                                                      "booking")]
        fac = _Factorized(self.key(self.grouping.group(r, rows, codes), k[rows]))
        rating = r["rating"].to_numpy()[rows].astype(np.int64)
        for name, weights in (("reviews", None), ("rating_points", rating),
                              ("rating_squares", rating * rating)):
            if name in wanted:
                self.results[name] = fac.sum(None, weights)

    def signups(self) -> None:
        c = self.data.customers
        signup = ns(c["signup_at"])
        k = self.grid.index(signup)
        rows = np.flatnonzero((k >= 0) & (signup <= self.cut))
        g = self.grouping.group(c, rows)
        self.results["signups"] = _Factorized(self.key(g, k[rows])).sum(None, None)

    def open_minutes(self) -> None:
        p = self.data.providers
        joined = ns(p["joined_at"])
        left = np.where(p["left_at"].notna().to_numpy(), ns(p["left_at"]),
                        np.iinfo(np.int64).max)
        since = np.maximum(joined, self.grid.lo)
        until = np.minimum(left, self.grid.hi)
        rows = np.flatnonzero((joined <= self.cut) & (until > since))
        if self.grid.empty or len(rows) == 0:
            self.results["open_minutes"] = _Result(np.empty(0, dtype=np.int64), np.empty(0))
            return
        since, until = since[rows], until[rows]
        first, last = self.grid.index(since), self.grid.index(until - 1)
        span = last - first + 1
        owner = np.repeat(np.arange(len(rows)), span)
        k = np.repeat(first, span) + (np.arange(len(owner)) - np.repeat(np.cumsum(span) - span,
                                                                          span))
        overlap = (np.minimum(until[owner], self.grid.ends[k])
                   - np.maximum(since[owner], self.grid.starts[k]))
        minutes = overlap.astype(np.float64) / DAY_NS * self.open_minutes_per_day
        g = self.grouping.group(p, rows[owner])
        self.results["open_minutes"] = _Factorized(self.key(g, k)).sum(None, minutes)

    # ------------------------------------------------------------------ customers
    def customers(self, wanted: set[str]) -> None:
        b = self.data.bookings
        scheduled = ns(b["scheduled_at"])
        rows = np.flatnonzero((_status(b) == _STATUS["completed"]) & (scheduled <= self.cut))
        if self.grid.n == 0 or len(rows) == 0:
            for name in wanted:
                self.results[name] = _Result(np.empty(0, dtype=np.int64),
                                             np.empty(0, dtype=np.int64))
            return
        t = scheduled[rows]
        bid = b["booking_id"].to_numpy()[rows]
        cust = self.grouping.coder("customer").encode(b["customer_id"].to_numpy()[rows],
                                                      "customer")
        g = self.grouping.group(b, rows, {"customer": cust})
        k = self.grid.index(t)
        S = self.grid.starts
        W = self.window_ns

        # Per (customer, group) pair: its first visit in each period, and its previous visit.
        if self.grouping.levels <= {"customer"}:
            pair = cust  # the group is the customer's own: pairs are customers
        elif (len(cust) == 0
              or int(cust.max()) * self.grouping.size + self.grouping.size < 2**31):
            pair = cust * self.grouping.size + g  # small enough for the fast packed sort
        else:
            _, inverse = np.unique(cust * self.grouping.size + g, return_inverse=True)
            pair = inverse.reshape(-1).astype(np.int64)
        perm = sort_by_group_time(pair, t, bid)
        ps, ts, ks = pair[perm], t[perm], k[perm]
        same = np.r_[False, ps[1:] == ps[:-1]]
        prev_t = np.r_[np.int64(0), ts[:-1]]
        first = (ks >= 0) & (~same | np.r_[True, ks[1:] != ks[:-1]])
        retained = first & same & (prev_t >= S[np.maximum(ks, 0)] - W)
        at = perm[first]
        fac = _Factorized(self.key(g[at], k[at]))

        # The customer's status in each period (from all their visits known at as_of), shared
        # by every group they visited in it.
        is_new = reactivated = np.zeros(0, dtype=bool)
        if wanted & {"new_customers", "returning_customers", "reactivated_customers"}:
            perm_c = perm if pair is cust else sort_by_group_time(cust, t, bid)
            cs, ts_c, ks_c = cust[perm_c], t[perm_c], k[perm_c]
            same_c = np.r_[False, cs[1:] == cs[:-1]]
            prev_c = np.r_[np.int64(0), ts_c[:-1]]
            run_start = ~same_c | np.r_[True, ks_c[1:] != ks_c[:-1]]
            run = np.cumsum(run_start) - 1
            starts_at = np.flatnonzero(run_start)
            lapsed = same_c & (ks_c >= 0) & (prev_c < S[np.maximum(ks_c, 0)] - W)
            is_new = np.empty(len(t), dtype=bool)
            is_new[perm_c] = (~same_c)[starts_at][run]
            reactivated = np.empty(len(t), dtype=bool)
            reactivated[perm_c] = lapsed[starts_at][run]
            is_new, reactivated = is_new[at], reactivated[at]
        parts: dict[str, BoolArray | None] = {
            "visiting_customers": None, "new_customers": is_new,
            "returning_customers": ~is_new, "reactivated_customers": reactivated,
            "retained_customers": retained[first]}
        for name, mask in parts.items():
            if name in wanted:
                self.results[name] = self._nonzero(fac.sum(mask, None))
        gs = g[perm]
        if "active_customers" in wanted:
            E = self.grid.ends - 1
            low = np.searchsorted(E, ts, "left")
            high = np.searchsorted(E, ts + W, "left") - 1
            self.results["active_customers"] = self._stock(ps, gs, low, high)
        if "retention_base" in wanted:
            low = np.searchsorted(S, ts, "right")
            high = np.searchsorted(S, ts + W, "right") - 1
            self.results["retention_base"] = self._stock(ps, gs, low, high)

    @staticmethod
    def _nonzero(result: _Result) -> _Result:
        keep = result.values != 0
        return _Result(result.keys[keep], result.values[keep])

    def _stock(self, pair: IntArray, g: IntArray, low: IntArray, high: IntArray) -> _Result:
        """Distinct pairs per (group, period) from each visit's range of periods ``[low,
        high]`` (rows sorted by pair then time, so both bounds rise within a pair)."""
        if self.grid.empty:
            return _Result(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
        ok = low <= high
        pair, g, low, high = pair[ok], g[ok], low[ok], high[ok]
        if len(pair) == 0:
            return _Result(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
        # Merge each pair's overlapping or touching ranges: then a pair is in a period at most
        # once, and +1 / -1 at each merged range's ends counts distinct pairs.
        new = np.r_[True, (pair[1:] != pair[:-1]) | (low[1:] > high[:-1] + 1)]
        begin = np.flatnonzero(new)
        finish = np.r_[begin[1:], len(pair)] - 1
        radix = self.K + 1
        keys = np.concatenate((g[begin] * radix + low[begin],
                               g[begin] * radix + high[finish] + 1))
        delta = np.r_[np.ones(len(begin), dtype=np.int64), -np.ones(len(begin), dtype=np.int64)]
        ukeys, inverse = np.unique(keys, return_inverse=True)
        level = np.cumsum(np.bincount(inverse.reshape(-1), delta.astype(np.float64),
                                      len(ukeys))).round().astype(np.int64)
        live = np.flatnonzero(level > 0)  # never the last key of a group: it returns to 0
        period = ukeys % radix
        length = period[live + 1] - period[live]
        cell = np.repeat(ukeys[live] // radix * self.K + period[live], length)
        cell += np.arange(len(cell)) - np.repeat(np.cumsum(length) - length, length)
        return _Result(cell, np.repeat(level[live], length))


def _check_levels(measure: Measure, grouping: Grouping) -> None:
    for dim in grouping.dims:
        level = DIMENSIONS[dim].level
        if level not in measure.levels:
            reach = ", ".join(sorted(measure.levels))
            raise InputError(
                f"measure {measure.name!r} cannot be split by {dim!r}: its events carry no "
                f"{level} ({measure.formula}); it splits by time and {reach} dimensions")


def _window(data: MarketplaceData, start: AsOf | None, end: AsOf | None, as_of: AsOf | None
            ) -> tuple[int, int, int]:
    cut = int((to_as_of(as_of) if as_of is not None else data.observation_end).value)
    lo = int(to_as_of(start, "start").value) if start is not None else None
    stop = int(to_as_of(end, "end").value) if end is not None else None
    if lo is not None and stop is not None and lo > stop:
        raise InputError(f"start ({pd.Timestamp(lo)}) is after end ({pd.Timestamp(stop)}); "
                         "the window is [start, end)")
    hi = cut + 1 if stop is None else min(stop, cut + 1)
    if lo is None:
        first = earliest_known(data, cut)
        lo = hi if first is None else first
    return lo, hi, cut


def kpis(data: MarketplaceData, measures: str | Sequence[str], by: str | Sequence[str] = (),
         start: AsOf | None = None, end: AsOf | None = None, freq: str | None = None,
         as_of: AsOf | None = None, *, with_components: bool = False,
         definitions: Definitions = DEFAULT_DEFINITIONS,
         open_minutes_per_day: float = DEFAULT_OPEN_MINUTES_PER_DAY,
         confidence: float = 0.95) -> pd.DataFrame:
    """Catalogue measures by any dimensions, from the events known at ``as_of``.

    The rules (timestamps, ``as_of``, customers, joins, distinct counts, money, ratios) are in
    the module docstring; the measures and dimensions in
    :data:`~barberpro_ml.analytics.MEASURES` and :data:`~barberpro_ml.analytics.DIMENSIONS`.

    Parameters
    ----------
    data
        The validated event tables.
    measures
        A measure name or a sequence of them (the result's columns, in this order).
    by
        Dimension names: ``neighborhood``, ``price_tier``, ``provider_id``, ``service_id``,
        ``acquisition_channel``, ``customer_neighborhood``, or a time grain (``day``,
        ``week``, ``month``); ``()`` for the total.
    start, end
        The window ``[start, end)`` (naive UTC). Defaults: the first event known at
        ``as_of``; just after ``as_of``.
    freq
        A time grain (``day``/``D``, ``week``/``W``, ``month``/``M``): the same as putting
        it first in ``by``.
    as_of
        Only events known at this time (inclusive) are read. Default: the data's last event.
    with_components
        Also return every ratio's numerator and denominator (catalogue measures).
    definitions
        The shared business definitions (active window).
    open_minutes_per_day
        Bookable minutes per barber per day, the denominator of utilisation.
    confidence
        Level of the ``average_rating`` interval.

    Returns
    -------
    pandas.DataFrame
        One row per group (dimension columns first, in ``by`` order, the time grain as the
        period's start), one column per measure; ``average_rating`` comes with
        ``average_rating_ci_low`` / ``_ci_high`` (a Student-t interval, NaN under two
        reviews). Counts and minutes of appointments are int64; money, open minutes and
        ratios float64.

    Raises
    ------
    InputError
        An unknown measure, dimension or grain (the valid ones are listed), a measure its
        dimension cannot split, ``start`` after ``end``, an unreadable time.

    Examples
    --------
    >>> kpis(data, ["net_revenue", "completed_visits"], by="neighborhood",
    ...      freq="month", as_of="2024-06-30")                            # doctest: +SKIP
    >>> kpis(data, "retention", freq="month", with_components=True)    # doctest: +SKIP
    """
    wanted = names(measures, "measures", MEASURES)
    if not wanted:
        raise InputError(f"measures: give at least one; valid: {', '.join(MEASURES)}")
    dims = names(by, "by", DIMENSIONS)
    grain = parse_grain(freq)
    times = [d for d in dims if DIMENSIONS[d].level == "time"]
    if len(times) + (grain is not None) > 1:
        given = [*times, *([f"freq={freq!r}"] if grain else [])]
        raise InputError(f"by/freq: one time grain at most, got {', '.join(given)}")
    if grain is not None:
        dims = (grain, *dims)
    elif times:
        grain = times[0]
    if not isinstance(with_components, bool):
        raise InputError(f"with_components: expected True or False, got {with_components!r}")
    if not np.isfinite(open_minutes_per_day) or open_minutes_per_day <= 0:
        raise InputError(f"open_minutes_per_day: expected a positive number of minutes, got "
                         f"{open_minutes_per_day!r}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    lo, hi, cut = _window(data, start, end, as_of)
    grid = Grid.build(grain, lo, hi)
    grouping = Grouping(data, tuple(d for d in dims if DIMENSIONS[d].level != "time"))
    for name in wanted:
        _check_levels(MEASURES[name], grouping)

    base = {p for name in wanted for p in (MEASURES[name].components or (name,))}
    if "average_rating" in wanted:
        base.add("rating_squares")
    engine = _Engine(data, grid, grouping, cut, definitions, float(open_minutes_per_day))
    if "bookings" in base:
        engine.created()
    if base & _OUTCOMES:
        engine.outcomes(base & _OUTCOMES)
    if base & _REVIEWS:
        engine.reviews(base & _REVIEWS)
    if "signups" in base:
        engine.signups()
    if "open_minutes" in base:
        engine.open_minutes()
    if base & _CUSTOMERS:
        engine.customers(base & _CUSTOMERS)
    return _assemble(engine, wanted, base, dims, with_components, confidence)


_OUTCOMES: Final = frozenset({"resolved_bookings", "completed_visits", "cancelled_bookings",
                              "no_shows", "gross_revenue", "discounts", "net_revenue", "tips",
                              "occupied_minutes"})
_REVIEWS: Final = frozenset({"reviews", "rating_points", "rating_squares"})
_CUSTOMERS: Final = frozenset({"visiting_customers", "new_customers", "returning_customers",
                               "reactivated_customers", "active_customers", "retention_base",
                               "retained_customers"})


def _assemble(engine: _Engine, wanted: tuple[str, ...], base: set[str], dims: tuple[str, ...],
              with_components: bool, confidence: float) -> pd.DataFrame:
    results = engine.results
    if not dims:
        keys = np.zeros(1, dtype=np.int64)
    else:
        keys = np.unique(np.concatenate([results[m].keys for m in base]))
    dense: dict[str, Values] = {}
    for name in base:
        r = results[name]
        slot = np.searchsorted(keys, r.keys)
        column = np.zeros(len(keys), dtype=r.values.dtype)
        column[slot] = r.values
        dense[name] = np.asarray(column)

    columns: dict[str, object] = {}
    g, k = keys // engine.K, keys % engine.K
    labels = engine.grouping.decode(g)
    for dim in dims:
        if DIMENSIONS[dim].level == "time":
            columns[dim] = pd.to_datetime(engine.grid.labels[k]).as_unit("ns")
        else:
            columns[dim] = labels[dim]

    def value(name: str) -> Values:
        measure = MEASURES[name]
        if measure.kind == "ratio":
            assert measure.numerator is not None and measure.denominator is not None
            num, den = dense[measure.numerator], dense[measure.denominator]
            out = np.full(len(keys), np.nan)
            np.divide(num.astype(np.float64), den, out=out, where=den > 0)
            return out / 100.0 if MEASURES[measure.numerator].unit == "money" else out
        if measure.unit == "money":
            return dense[name] / 100.0
        return dense[name]

    for name in wanted:
        columns[name] = value(name)
        if name == "average_rating":
            low, high = _rating_interval(dense["reviews"], dense["rating_points"],
                                         dense["rating_squares"], confidence)
            columns["average_rating_ci_low"], columns["average_rating_ci_high"] = low, high
    if with_components:
        extra = [m for m in MEASURES if m in base and m not in wanted
                 and any(m in MEASURES[w].components for w in wanted)]
        for name in extra:
            columns[name] = value(name)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(keys)))


def _rating_interval(n: Values, points: Values, squares: Values, confidence: float
                     ) -> tuple[FloatArray, FloatArray]:
    """Student-t interval of the mean rating from the counts, sums and sums of squares.

    ``mean +- t_{(1+c)/2, n-1} s / sqrt(n)`` with ``s^2 = (sum x^2 - n mean^2) / (n - 1)``
    [1]_, clipped to the 1..5 scale; NaN under two reviews.

    .. [1] Student (1908). The probable error of a mean. *Biometrika* 6, 1-25.
    """
    from scipy.stats import t as student

    count = np.asarray(n, dtype=np.float64)
    low = np.full(len(count), np.nan)
    high = np.full(len(count), np.nan)
    ok = count >= 2
    if ok.any():
        c = count[ok]
        mean = np.asarray(points, dtype=np.float64)[ok] / c
        var = np.maximum(np.asarray(squares, dtype=np.float64)[ok] - c * mean**2, 0.0) / (c - 1)
        half = student.ppf(0.5 + confidence / 2, c - 1) * np.sqrt(var / c)
        low[ok] = np.clip(mean - half, 1.0, 5.0)
        high[ok] = np.clip(mean + half, 1.0, 5.0)
    return low, high
