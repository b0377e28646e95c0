"""KPIs: every measure against a plain-pandas reference written here, exact reconciliation of
partitions, distinct counts as sets, point-in-time invariance and the error messages.

The reference (``ref_*``) is deliberately naive: filters, merges and ``groupby`` over the
event tables, Decimal money, a Python loop over periods for the stock measures. It shares no
code with :mod:`barberpro_ml.analytics`.
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from barberpro_ml.analytics import (
    DIMENSIONS,
    FUNNEL_STAGES,
    MEASURES,
    catalogue_markdown,
    cohorts,
    funnel,
    funnel_members,
    kpis,
)
from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.errors import InputError
from barberpro_ml.features import active_customers
from strategies import T0, as_of_for, future_perturbation, marketplace_data

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
W = pd.Timedelta(days=180)
NS = pd.Timedelta(1, "ns")
OPEN_MINUTES = 480.0
PANDAS_FREQ = {"day": "D", "week": "W-SUN", "month": "M"}
NON_TIME = [d for d, spec in DIMENSIONS.items() if spec.level != "time"]
LEVEL = {d: spec.level for d, spec in DIMENSIONS.items()}
BASE = [m for m, spec in MEASURES.items() if spec.kind != "ratio"]
ADDITIVE = [m for m, spec in MEASURES.items() if spec.kind in {"count", "sum"}]
DISTINCT = [m for m, spec in MEASURES.items() if spec.kind == "distinct"]
MONEY = {m for m, spec in MEASURES.items() if spec.unit == "money"}


# ---------------------------------------------------------------- the plain-pandas reference

class Query:
    """One query's window and grouping, as the reference understands the documentation."""

    def __init__(self, data: MarketplaceData, by: tuple[str, ...], freq: str | None,
                 start: pd.Timestamp | None, end: pd.Timestamp | None,
                 as_of: pd.Timestamp) -> None:
        self.data, self.by, self.freq, self.as_of = data, by, freq, as_of
        firsts = pd.concat([data.customers["signup_at"], data.providers["joined_at"]])
        known = firsts[firsts <= as_of]
        self.hi = as_of + NS if end is None else min(end, as_of + NS)
        self.lo = start if start is not None else (known.min() if len(known) else self.hi)
        self.dims = [d for d in by if LEVEL[d] != "time"]
        self.keys = ([freq] if freq else []) + self.dims
        self.sets: dict[str, dict[tuple[Any, ...], set[int]]] = {}

    def period(self, times: pd.Series) -> pd.Series:
        assert self.freq is not None
        return times.dt.to_period(PANDAS_FREQ[self.freq]).dt.start_time

    def periods(self) -> list[tuple[Any, pd.Timestamp, pd.Timestamp]]:
        """(label, clipped start, clipped end) of every period of the window."""
        if self.hi <= self.lo:
            return [] if self.freq else [(None, self.lo, self.lo)]
        if self.freq is None:
            return [(None, self.lo, self.hi)]
        first = pd.Period(self.lo, PANDAS_FREQ[self.freq])
        last = pd.Period(self.hi - NS, PANDAS_FREQ[self.freq])
        out = []
        p = first
        while p <= last:
            out.append((p.start_time, max(p.start_time, self.lo),
                        min((p + 1).start_time, self.hi)))
            p += 1
        return out

    @functools.cached_property
    def facts(self) -> pd.DataFrame:
        """Bookings with every dimension attribute of their customer, barber and service."""
        d = self.data
        b = d.bookings.merge(
            d.providers[["provider_id", "neighborhood", "price_tier"]], on="provider_id")
        return b.merge(d.customers[["customer_id", "acquisition_channel", "neighborhood"]]
                       .rename(columns={"neighborhood": "customer_neighborhood"}),
                       on="customer_id").merge(
            d.services[["service_id", "duration_min"]], on="service_id")

    def in_window(self, frame: pd.DataFrame, column: str) -> pd.DataFrame:
        t = frame[column]
        out = frame[(t >= self.lo) & (t < self.hi) & (t <= self.as_of)].copy()
        if self.freq:
            out[self.freq] = self.period(out[column])
        return out

    def group(self, frame: pd.DataFrame, value: str | None, how: str) -> pd.Series:
        if not self.keys:
            frame = frame.assign(_all=0)
            keys = ["_all"]
        else:
            keys = self.keys
        for k in keys:
            if isinstance(frame[k].dtype, pd.CategoricalDtype):
                frame[k] = frame[k].astype("object")
        grouped = frame.groupby(keys, observed=True, dropna=False)
        if how == "size":
            return grouped.size()
        if how == "nunique":
            return grouped[value].nunique()
        return grouped[value].sum()


def ref_base(q: Query, measure: str) -> pd.Series:
    """The reference value of a non-ratio measure per observed group (money in Decimal)."""
    facts = q.facts
    if measure == "bookings":
        return q.group(q.in_window(facts, "created_at"), None, "size")
    outcome = q.in_window(facts, "scheduled_at")
    status = outcome["status"].astype("object")
    done = outcome[status == "completed"].copy()
    counts = {"resolved_bookings": outcome, "completed_visits": done,
              "cancelled_bookings": outcome[status == "cancelled"],
              "no_shows": outcome[status == "no_show"]}
    if measure in counts:
        return q.group(counts[measure], None, "size")
    if measure in MONEY:  # each amount to the cent once, then exact Decimal sums
        amounts = {name: done[name].map(cent) for name in ("price", "discount", "tip")}
        done["_money"] = {"gross_revenue": amounts["price"], "discounts": amounts["discount"],
                          "net_revenue": amounts["price"] - amounts["discount"],
                          "tips": amounts["tip"]}[measure]
        return q.group(done, "_money", "sum")
    if measure == "occupied_minutes":
        return q.group(outcome[status.isin(["completed", "no_show"])], "duration_min", "sum")
    if measure == "signups":
        c = q.data.customers.rename(columns={"neighborhood": "customer_neighborhood"})
        return q.group(q.in_window(c, "signup_at"), None, "size")
    if measure in {"reviews", "rating_points", "rating_squares"}:
        r = q.data.reviews.merge(facts[["booking_id", "service_id", "neighborhood",
                                        "price_tier", "acquisition_channel",
                                        "customer_neighborhood"]], on="booking_id")
        r = q.in_window(r, "created_at")
        r["_sq"] = r["rating"] ** 2
        return q.group(r, {"reviews": None, "rating_points": "rating",
                           "rating_squares": "_sq"}[measure],
                       "size" if measure == "reviews" else "sum")
    if measure == "open_minutes":
        return ref_open_minutes(q)
    return ref_customers(q, facts, measure)


def cent(amount: float) -> Decimal:
    return Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def ref_open_minutes(q: Query) -> pd.Series:
    rows = []
    for _, p in q.data.providers.iterrows():
        if p["joined_at"] > q.as_of:
            continue
        left = p["left_at"] if pd.notna(p["left_at"]) else pd.Timestamp.max
        for label, s, e in q.periods():
            overlap = min(left, e) - max(p["joined_at"], s)
            if overlap > pd.Timedelta(0):
                row = {k: p[k] for k in q.dims}
                if q.freq:
                    row[q.freq] = label
                row["_m"] = overlap / pd.Timedelta(days=1) * OPEN_MINUTES
                rows.append(row)
    frame = pd.DataFrame(rows, columns=[*q.keys, "_m"])
    return q.group(frame, "_m", "sum")


def ref_customers(q: Query, facts: pd.DataFrame, measure: str) -> pd.Series:
    sets = ref_customer_sets(q, facts, measure)
    if not q.keys:
        return pd.Series([len(v) for v in sets.values()], index=pd.Index([0] * len(sets)),
                         dtype="int64")
    index = (pd.MultiIndex.from_tuples(list(sets), names=q.keys) if len(q.keys) > 1
             else pd.Index([k[0] for k in sets], name=q.keys[0]))
    return pd.Series([len(v) for v in sets.values()], index=index, dtype="int64")


def ref_customer_sets(q: Query, facts: pd.DataFrame, measure: str
                      ) -> dict[tuple[Any, ...], set[int]]:
    """Distinct customers, period by period, as sets (the documented definitions)."""
    if measure not in q.sets:
        q.sets.update(_ref_all_customer_sets(q, facts))
    return q.sets[measure]


def _ref_all_customer_sets(q: Query, facts: pd.DataFrame
                           ) -> dict[str, dict[tuple[Any, ...], set[int]]]:
    visits = facts[(facts["status"].astype("object") == "completed")
                   & (facts["scheduled_at"] <= q.as_of)]
    first_visit = visits.groupby("customer_id")["scheduled_at"].min()
    out: dict[str, dict[tuple[Any, ...], set[int]]] = {m: {} for m in DISTINCT}
    keys = [tuple(row) for row in visits[q.dims].astype("object").to_numpy()]
    customer = visits["customer_id"].to_numpy()

    def groups(mask: pd.Series) -> dict[tuple[Any, ...], set[int]]:
        sets: dict[tuple[Any, ...], set[int]] = {}
        for i in np.flatnonzero(mask.to_numpy()):
            sets.setdefault(keys[i], set()).add(int(customer[i]))
        return sets

    for label, s, e in q.periods():
        if e <= s:
            continue
        t = visits["scheduled_at"]
        inside = groups((t >= s) & (t < e))
        before = groups((t >= s - W) & (t < s))
        any_before = set(visits.loc[(t >= s - W) & (t < s), "customer_id"])
        last = e - NS
        active = groups((t > last - W) & (t <= last))
        for key in set(inside) | set(before) | set(active):
            here = inside.get(key, set())
            values = {
                "visiting_customers": here,
                "new_customers": {c for c in here if first_visit[c] >= s},
                "returning_customers": {c for c in here if first_visit[c] < s},
                "reactivated_customers": {c for c in here
                                          if first_visit[c] < s and c not in any_before},
                "retention_base": before.get(key, set()),
                "retained_customers": here & before.get(key, set()),
                "active_customers": active.get(key, set()),
            }
            for m, value in values.items():
                if value:
                    out[m][((label,) if q.freq else ()) + key] = value
    return out


def library(data: MarketplaceData, measures: list[str], q: Query, **kw: Any) -> pd.DataFrame:
    out = kpis(data, measures, by=q.by, freq=q.freq, as_of=q.as_of,
               start=kw.pop("start", None), end=kw.pop("end", None), **kw)
    for k in q.keys:
        if isinstance(out[k].dtype, pd.CategoricalDtype):
            out[k] = out[k].astype("object")
    return out.set_index(q.keys) if q.keys else out.set_index(pd.Index([0] * len(out)))


def aligned(lib: pd.Series, ref: pd.Series) -> tuple[pd.Series, pd.Series]:
    index = lib.index.union(ref.index) if len(ref) else lib.index
    return lib.reindex(index, fill_value=0), ref.reindex(index, fill_value=0)


# ---------------------------------------------------------------- strategies

@st.composite
def queries(draw: st.DrawFn) -> tuple[MarketplaceData, Query, dict[str, Any]]:
    data = draw(marketplace_data(max_customers=6, max_bookings=30))
    as_of = draw(as_of_for(data))
    dims = tuple(draw(st.lists(st.sampled_from(NON_TIME), max_size=2, unique=True)))
    freq = draw(st.sampled_from([None, None, "day", "week", "month"]))
    window: dict[str, Any] = {}
    if draw(st.booleans()):
        window["start"] = T0 + pd.Timedelta(days=draw(st.integers(-30, 300)),
                                            hours=draw(st.sampled_from([0, 9])))
    if draw(st.booleans()):
        low = window.get("start", T0 - pd.Timedelta(days=60))
        window["end"] = low + pd.Timedelta(days=draw(st.integers(0, 400)))
    q = Query(data, dims, freq, window.get("start"), window.get("end"), as_of)
    return data, q, window


def splittable(measure: str, q: Query) -> bool:
    return all(LEVEL[d] in MEASURES[measure].levels for d in q.dims)


# ---------------------------------------------------------------- properties

@SETTINGS
@given(queries())
def test_every_measure_equals_the_plain_pandas_reference(case: tuple[Any, Query, Any]) -> None:
    data, q, window = case
    measures = [m for m in MEASURES if splittable(m, q)]
    out = library(data, measures, q, with_components=True, **window)
    for m in measures:
        spec = MEASURES[m]
        if spec.kind == "ratio":
            assert spec.numerator and spec.denominator
            num, den = (ref_base(q, c).reindex(out.index, fill_value=0).astype(float)
                        for c in (spec.numerator, spec.denominator))
            expected = (num / den).where(den > 0)
            got = out[m]
            np.testing.assert_allclose(got.to_numpy(dtype=float),
                                       expected.to_numpy(dtype=float), rtol=1e-12,
                                       err_msg=m)
            continue
        got, ref = aligned(out[m], ref_base(q, m))
        if m in MONEY:
            cents = (got * 100).round().astype("int64")
            assert (cents == (ref.map(Decimal) * 100).astype("int64")).all(), m
        elif m == "open_minutes":
            np.testing.assert_allclose(got.to_numpy(float), ref.to_numpy(float), rtol=1e-9)
        else:
            assert (got.astype("int64") == ref.astype("int64")).all(), (m, got, ref)


@SETTINGS
@given(queries())
def test_additive_partitions_sum_to_the_total_exactly(case: tuple[Any, Query, Any]) -> None:
    data, q, window = case
    measures = [m for m in ADDITIVE if splittable(m, q)]
    ratios = [m for m in MEASURES if MEASURES[m].kind == "ratio" and splittable(m, q)]
    total = kpis(data, measures + ratios, as_of=q.as_of, with_components=True, **window)
    parts = kpis(data, measures + ratios, by=q.by, freq=q.freq, as_of=q.as_of,
                 with_components=True, **window)
    for m in measures:
        if m in MONEY:  # to the cent
            assert (parts[m] * 100).round().astype("int64").sum() == round(total[m][0] * 100), m
        elif m == "open_minutes":
            assert parts[m].sum() == pytest.approx(total[m][0], rel=1e-12, abs=1e-9)
        else:
            assert parts[m].sum() == total[m][0], m
    for m in ratios:  # the total's ratio is the summed numerator over the summed denominator
        spec = MEASURES[m]
        assert spec.numerator and spec.denominator
        if MEASURES[spec.numerator].kind == "distinct":
            continue  # retention's parts are distinct counts: they reconcile as sets (below)
        num, den = parts[spec.numerator].sum(), parts[spec.denominator].sum()
        if den > 0:
            assert total[m][0] == pytest.approx(num / den, rel=1e-12), m
        else:
            assert np.isnan(total[m][0])


@SETTINGS
@given(queries())
def test_distinct_counts_reconcile_as_sets(case: tuple[Any, Query, Any]) -> None:
    """By customer attributes (or time only) the groups partition the customers and sum to
    the total; by booking-level dimensions a customer can sit in several groups, so the sum
    is at least the total and the total's set is the union of the groups' sets. Retention is
    judged per group (active with that barber, back with that barber): there the groups'
    union is a subset of the marketplace's retained customers."""
    data, q, window = case
    total_q = Query(data, (), q.freq, window.get("start"), window.get("end"), q.as_of)
    facts = q.facts
    out = kpis(data, DISTINCT, by=q.by, freq=q.freq, as_of=q.as_of, **window)
    total = kpis(data, DISTINCT, freq=q.freq, as_of=q.as_of, **window)
    customer_level = all(LEVEL[d] == "customer" for d in q.dims)
    keys = [q.freq] if q.freq else []
    for m in DISTINCT:
        by_period = out.groupby(keys)[m].sum() if keys else pd.Series([out[m].sum()])
        whole = total.set_index(keys)[m] if keys else total[m]
        by_period, whole = aligned(by_period, whole)
        per_group = m == "retained_customers" and not customer_level
        if customer_level:
            assert (by_period == whole).all(), m
        elif not per_group:
            assert (by_period >= whole).all(), m
        # the total's set is the union of the groups' sets (the reference's, period by period)
        groups, whole_sets = ref_customer_sets(q, facts, m), ref_customer_sets(total_q, facts, m)
        for period_key, members in whole_sets.items():
            union = set().union(*(v for k, v in groups.items()
                                  if k[:len(period_key)] == period_key))
            assert union <= members if per_group else union == members, m
        lib_total = total.set_index(keys)[m] if keys else total[m]
        assert sorted(lib_total[lib_total > 0].tolist()) == sorted(
            len(v) for v in whole_sets.values()), m
    # identities inside every group
    assert (out["visiting_customers"] == out["new_customers"]
            + out["returning_customers"]).all()
    assert (out["reactivated_customers"] <= out["returning_customers"]).all()
    assert (out["retained_customers"] <= out["retention_base"]).all()
    assert (out["retained_customers"] <= out["visiting_customers"]).all()
    if customer_level:  # visitors were new, lapsed and back, or active at the start
        assert (out["new_customers"] + out["reactivated_customers"]
                + out["retained_customers"] == out["visiting_customers"]).all()


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype("object")
    return out


@SETTINGS
@given(st.data())
def test_events_after_as_of_never_change_kpis(draw: st.DataObject) -> None:
    data, q, window = draw.draw(queries())
    changed = draw.draw(future_perturbation(data, q.as_of))
    measures = [m for m in MEASURES if splittable(m, q)]
    before = kpis(data, measures, by=q.by, freq=q.freq, as_of=q.as_of, **window)
    after = kpis(changed, measures, by=q.by, freq=q.freq, as_of=q.as_of, **window)
    pd.testing.assert_frame_equal(comparable(before), comparable(after), check_exact=False,
                                  rtol=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_active_customers_is_the_features_definition(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    got = kpis(data, "active_customers", as_of=as_of)["active_customers"][0]
    assert got == len(active_customers(data, as_of))


# ---------------------------------------------------------------- a realistic data set

@pytest.fixture(scope="module")
def simulated() -> MarketplaceData:
    return simulate(SimulationConfig(n_customers=600, seed=4))


def test_monthly_net_revenue_by_neighborhood_matches_a_groupby(simulated: MarketplaceData
                                                                ) -> None:
    as_of = pd.Timestamp("2024-09-15 12:00")
    out = kpis(simulated, ["net_revenue", "completed_visits", "average_ticket"],
               by="neighborhood", freq="month", as_of=as_of, with_components=True)
    b = simulated.bookings.merge(simulated.providers[["provider_id", "neighborhood"]],
                                 on="provider_id")
    done = b[(b["status"] == "completed") & (b["scheduled_at"] <= as_of)].copy()
    done["month"] = done["scheduled_at"].dt.to_period("M").dt.start_time
    done["cents"] = ((done["price"] - done["discount"]) * 100).round().astype("int64")
    ref = done.groupby(["month", "neighborhood"], observed=True)["cents"].sum()
    got = out.set_index(["month", "neighborhood"])["net_revenue"]
    assert ((got * 100).round().astype("int64").sort_index() == ref.sort_index()).all()
    assert out["month"].max() == pd.Timestamp("2024-09-01")  # the partial month at as_of
    ticket = out["net_revenue"].sum() / out["completed_visits"].sum()
    assert kpis(simulated, "average_ticket", as_of=as_of)["average_ticket"][0] == (
        pytest.approx(ticket, rel=1e-12))


def test_rates_and_rating_interval_on_simulated_data(simulated: MarketplaceData) -> None:
    out = kpis(simulated, ["cancellation_rate", "no_show_rate", "retention",
                           "provider_utilisation", "average_rating"], freq="month",
               start="2023-07-01", end="2025-01-01")
    for m in ("cancellation_rate", "no_show_rate", "retention", "provider_utilisation"):
        assert out[m].between(0, 1).all(), m
    assert (out["average_rating_ci_low"] <= out["average_rating"]).all()
    assert (out["average_rating"] <= out["average_rating_ci_high"]).all()
    assert out["month"].tolist() == list(pd.date_range("2023-07-01", "2024-12-01", freq="MS"))


# ---------------------------------------------------------------- catalogue and errors

def test_catalogue_is_complete_and_the_readme_shows_it() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert catalogue_markdown() in readme
    for m in MEASURES.values():
        assert m.unit and m.formula and m.description and "\n" not in m.description
    required = {"bookings", "completed_visits", "gross_revenue", "discounts", "tips",
                "net_revenue", "average_ticket", "cancellation_rate", "no_show_rate",
                "active_customers", "new_customers", "returning_customers",
                "reactivated_customers", "retention", "provider_utilisation",
                "average_rating"}
    assert required <= set(MEASURES)
    assert {"day", "week", "month", "neighborhood", "provider_id", "service_id",
            "acquisition_channel", "price_tier"} <= set(DIMENSIONS)


@pytest.fixture(scope="module")
def tiny() -> MarketplaceData:
    return simulate(SimulationConfig(n_customers=40, seed=1))


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"measures": ["revenue"]}, ["'revenue'", "net_revenue", "bookings"]),
    ({"measures": ["bookings"], "by": ["city"]}, ["'city'", "neighborhood", "price_tier"]),
    ({"measures": ["bookings"], "freq": "Q"}, ["'Q'", "day", "week", "month"]),
    ({"measures": ["bookings"], "start": "2024-05-01", "end": "2024-04-01"},
     ["start", "after end", "2024-05-01"]),
    ({"measures": ["signups"], "by": "provider_id"}, ["'signups'", "'provider_id'"]),
    ({"measures": ["provider_utilisation"], "by": "acquisition_channel"},
     ["'provider_utilisation'", "'acquisition_channel'", "provider"]),
    ({"measures": ["bookings", "bookings"]}, ["'bookings'", "more than once"]),
    ({"measures": []}, ["at least one"]),
    ({"measures": ["bookings"], "by": ["month"], "freq": "week"}, ["one time grain"]),
    ({"measures": ["bookings"], "as_of": "not a time"}, ["as_of", "not a time"]),
    ({"measures": 3}, ["measures", "int"]),
])
def test_bad_requests_are_refused_with_what_was_wrong(tiny: MarketplaceData,
                                                      kwargs: dict[str, Any],
                                                      words: list[str]) -> None:
    with pytest.raises(InputError) as info:
        kpis(tiny, **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_time_grain_in_by_is_the_same_as_freq(tiny: MarketplaceData) -> None:
    a = kpis(tiny, ["bookings", "net_revenue"], by=("month", "neighborhood"))
    b = kpis(tiny, ["bookings", "net_revenue"], by="neighborhood", freq="M")
    pd.testing.assert_frame_equal(a, b)


def test_a_window_after_as_of_is_empty(tiny: MarketplaceData) -> None:
    out = kpis(tiny, ["bookings", "active_customers", "open_minutes"], start="2030-01-01",
               as_of="2024-01-01")
    assert out[["bookings", "active_customers", "open_minutes"]].iloc[0].tolist() == [0, 0, 0]
    assert len(kpis(tiny, "bookings", freq="day", start="2030-01-01", as_of="2024-01-01")) == 0


def test_wilson_interval_agrees_with_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    from barberpro_ml.evaluation import wilson_interval

    k, n = np.array([0, 1, 7, 30, 50]), np.array([5, 20, 9, 30, 400])
    low, high = wilson_interval(k, n, 0.9)
    ref_low, ref_high = proportion_confint(k, n, alpha=0.1, method="wilson")
    np.testing.assert_allclose(low, ref_low, atol=1e-12)
    np.testing.assert_allclose(high, ref_high, atol=1e-12)


# ---------------------------------------------------------------- cohorts and funnel

def ref_funnel_members(data: MarketplaceData, as_of: pd.Timestamp, horizon_days: int = 90
                       ) -> pd.DataFrame:
    c = data.customers[data.customers["signup_at"] <= as_of].set_index("customer_id")
    b = data.bookings
    booked = b[b["created_at"] <= as_of].groupby("customer_id")["created_at"].min()
    visits = b[(b["status"].astype("object") == "completed") & (b["scheduled_at"] <= as_of)]
    visits = visits.sort_values(["customer_id", "scheduled_at", "booking_id"])
    first = visits.groupby("customer_id")["scheduled_at"].nth(0)
    first = pd.Series(first.to_numpy(), index=visits.loc[first.index, "customer_id"])
    second = visits.groupby("customer_id")["scheduled_at"].nth(1)
    second = pd.Series(second.to_numpy(), index=visits.loc[second.index, "customer_id"])
    out = pd.DataFrame(index=c.index.sort_values())
    out["signed_up"] = True
    out["first_booking"] = out.index.isin(booked.index)
    out["first_visit"] = out.index.isin(first.index)
    out["second_visit"] = out.index.isin(second.index)
    f = first.reindex(out.index)
    judged = f + pd.Timedelta(days=horizon_days) <= as_of
    out["retained"] = (judged & (second.reindex(out.index) - f
                                 <= pd.Timedelta(days=horizon_days))).fillna(False)
    out["retention_judged"] = judged.fillna(False)
    return out


@SETTINGS
@given(st.data())
def test_funnel_matches_reference_nested_and_exclusive(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data(max_customers=8, max_bookings=30))
    as_of = draw.draw(as_of_for(data))
    by = draw.draw(st.sampled_from([None, "acquisition_channel", ("month",),
                                    ("customer_neighborhood", "week")]))
    members = funnel_members(data, as_of)
    ref = ref_funnel_members(data, as_of)
    stages = list(FUNNEL_STAGES)
    pd.testing.assert_frame_equal(members[[*stages, "retention_judged"]],
                                  ref[[*stages, "retention_judged"]].astype(bool),
                                  check_names=False)
    flags = members[stages].to_numpy()
    assert (flags[:, 1:] <= flags[:, :-1]).all()  # nested: a stage implies the one before
    assert (members["retained"] <= members["retention_judged"]).all()
    # one exclusive state per customer: the furthest stage, and the flags up to it
    reached = flags.sum(axis=1)
    assert (members["furthest_stage"].cat.codes.to_numpy() == reached - 1).all()

    out = funnel(data, as_of, by=by)
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    groups = out.groupby(keys, observed=True) if keys else [((), out)]
    for _, group in groups:
        counts = group.sort_values("stage")["customers"].to_numpy()
        assert (np.diff(counts) <= 0).all()  # never increasing
        rows = group[group["stage"] != "signed_up"]
        assert (rows["customers"] <= rows["base"]).all()
        ok = rows["base"] > 0
        assert np.allclose(rows.loc[ok, "conversion"], rows.loc[ok, "customers"]
                           / rows.loc[ok, "base"])
        assert (rows.loc[ok, "conversion_ci_low"] <= rows.loc[ok, "conversion"] + 1e-12).all()
        assert (rows.loc[ok, "conversion"] <= rows.loc[ok, "conversion_ci_high"] + 1e-12).all()
    total = funnel(data, as_of, by=None).set_index("stage")
    assert total["customers"].tolist() == [int(ref[s].sum()) for s in stages]
    retained = total.loc["retained"]
    assert retained["base"] == int((ref["second_visit"] & ref["retention_judged"]).sum())
    assert retained["not_yet_judged"] == int((ref["second_visit"]
                                              & ~ref["retention_judged"]).sum())


def test_a_recent_first_visit_is_not_yet_judged() -> None:
    from strategies import DAY, A, one_customer

    recent = one_customer([{"scheduled_at": A - 30 * DAY}, {"scheduled_at": A - 20 * DAY}])
    row = funnel_members(recent, A).loc[1]
    assert row["second_visit"] and not row["retention_judged"] and not row["retained"]
    stage = funnel(recent, A, by=None).set_index("stage").loc["retained"]
    assert (stage["customers"], stage["base"], stage["not_yet_judged"]) == (0, 0, 1)
    assert np.isnan(stage["conversion"])
    old = one_customer([{"scheduled_at": A - 200 * DAY}, {"scheduled_at": A - 150 * DAY}])
    assert funnel_members(old, A).loc[1, "retained"]
    late = one_customer([{"scheduled_at": A - 200 * DAY}, {"scheduled_at": A - 100 * DAY}])
    row = funnel_members(late, A).loc[1]
    assert row["retention_judged"] and row["second_visit"] and not row["retained"]


@SETTINGS
@given(st.data())
def test_cohorts_match_a_plain_pandas_reference(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data(max_customers=8, max_bookings=30))
    as_of = draw.draw(as_of_for(data))
    freq = draw.draw(st.sampled_from(["month", "week"]))
    alias = PANDAS_FREQ[freq]
    c = data.customers[data.customers["signup_at"] <= as_of].copy()
    c["cohort"] = c["signup_at"].dt.to_period(alias)

    def complete(period: pd.Period) -> bool:
        return (period + 1).start_time - NS <= as_of

    c = c[c["cohort"].map(complete).astype(bool)]
    sizes = c.groupby("cohort").size()
    b = data.bookings
    v = b[(b["status"].astype("object") == "completed") & (b["scheduled_at"] <= as_of)]
    v = v.merge(c[["customer_id", "cohort"]], on="customer_id")
    v["period"] = v["scheduled_at"].dt.to_period(alias)
    v = v[v["period"].map(complete).astype(bool)]
    v["since"] = [(p - q).n for p, q in zip(v["period"], v["cohort"], strict=True)]
    v["cents"] = [int(cent(p) * 100) - int(cent(d) * 100)
                  for p, d in zip(v["price"], v["discount"], strict=True)]
    visitors = v.groupby(["cohort", "since"])["customer_id"].nunique()
    cents = v.groupby(["cohort", "since"])["cents"].sum()
    last = pd.Period(as_of + NS, alias) - 1
    cells = [(q, m) for q in sizes.index for m in range((last - q).n + 1)]

    retention = cohorts(data, as_of, freq=freq)
    revenue = cohorts(data, as_of, metric="revenue_per_customer", freq=freq)
    got = list(zip(retention["cohort"], retention["periods_since_signup"], strict=True))
    assert got == [(q.start_time, m) for q, m in cells]
    for (q, m), row in zip(cells, retention.itertuples(), strict=True):
        assert row.customers == sizes[q]
        assert row.visiting_customers == visitors.get((q, m), 0)
        assert row.retention == pytest.approx(visitors.get((q, m), 0) / sizes[q])
        assert row.retention_ci_low <= row.retention <= row.retention_ci_high
    for (q, m), row in zip(cells, revenue.itertuples(), strict=True):
        assert round(row.net_revenue * 100) == cents.get((q, m), 0)
        assert row.revenue_per_customer == pytest.approx(cents.get((q, m), 0) / 100 / sizes[q])


@SETTINGS
@given(st.data())
def test_events_after_as_of_never_change_cohorts_or_funnel(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data(max_customers=8, max_bookings=30))
    as_of = draw.draw(as_of_for(data))
    changed = draw.draw(future_perturbation(data, as_of))
    for metric in ("retention", "revenue_per_customer"):
        pd.testing.assert_frame_equal(cohorts(data, as_of, metric=metric),
                                      cohorts(changed, as_of, metric=metric))
    pd.testing.assert_frame_equal(comparable(funnel(data, as_of)),
                                  comparable(funnel(changed, as_of)))
    pd.testing.assert_frame_equal(comparable(funnel_members(data, as_of)),
                                  comparable(funnel_members(changed, as_of)))


def test_cohort_and_funnel_errors_name_the_bad_value(tiny: MarketplaceData) -> None:
    with pytest.raises(InputError, match=r"'ltv'.*retention, revenue_per_customer"):
        cohorts(tiny, metric="ltv")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"'Q'.*day, week, month"):
        cohorts(tiny, freq="Q")
    with pytest.raises(InputError, match=r"'neighborhood'.*acquisition_channel"):
        funnel(tiny, by="neighborhood")
