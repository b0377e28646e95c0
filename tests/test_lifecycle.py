"""Lifecycle stages: hand-built cases per rule, a plain-Python reference, point-in-time.

The hand-built cases use ``strategies.one_customer`` (customer 1; customer 2 signs up after the
cut-off ``A``). With customer 1 the only one with visits, the population cadence is customer
1's own, so ``usual_gap_days`` is their own lower-median gap unless a population is passed.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features import active_customers
from barberpro_ml.features.lifecycle import (
    DEFAULT_GAP_DAYS,
    LIFECYCLE_STAGES,
    lifecycle_journey,
    lifecycle_stages,
    population_median_gap,
)
from strategies import (
    DAY,
    SECOND,
    A,
    as_of_for,
    future_perturbation,
    known_at,
    marketplace_data,
    one_customer,
)

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def sample() -> MarketplaceData:
    return MarketplaceData.load("data/sample")


def visits_every(days: list[float], **booking: Any) -> list[dict[str, Any]]:
    """Completed visits at ``A - d`` days for each d."""
    return [{"scheduled_at": A - d * DAY, **booking} for d in days]


def stage_of(data: MarketplaceData, as_of: pd.Timestamp = A, **kwargs: Any) -> pd.Series:
    return lifecycle_stages(data, as_of, [1], **kwargs).loc[1]


# ---------------------------------------------------------------------------- hand-built rules

def test_active_customer_on_their_rhythm() -> None:
    data = one_customer(visits_every([94, 66, 38, 10]))
    row = stage_of(data)
    assert row["stage"] == "active"
    assert row["n_visits"] == 4
    assert row["usual_gap_days"] == pytest.approx(28.0)
    assert row["days_since_last_visit"] == pytest.approx(10.0)
    assert row["overdue_ratio"] == pytest.approx(10 / 28)
    assert row["days_overdue"] == pytest.approx(-18.0)
    assert row["previous_gap_days"] == pytest.approx(28.0)
    assert row["reason"] == "last visit 10 days ago against a usual 28-day cadence (0.3x)"


@pytest.mark.parametrize(("days_since", "expected"), [
    (41.0, "active"), (42.0, "at_risk"), (83.0, "at_risk"), (84.0, "lapsed"), (179.0, "lapsed")])
def test_overdue_thresholds_scale_with_the_own_cadence(days_since: float, expected: str) -> None:
    # 28-day cadence: at risk from 1.5 x 28 = 42 days, lapsed from 3 x 28 = 84 days.
    data = one_customer(visits_every([days_since + 84, days_since + 56, days_since + 28,
                                      days_since]))
    assert stage_of(data)["stage"] == expected


def test_the_same_absence_is_judged_against_each_customers_cadence() -> None:
    # Both last came 45 days ago; one comes every 20 days, the other every 60.
    fast = one_customer(visits_every([45 + 60, 45 + 40, 45 + 20, 45]))
    slow = one_customer(visits_every([45 + 180, 45 + 120, 45 + 60, 45]))
    fast_row = stage_of(fast, population_gap_days=30.0)
    slow_row = stage_of(slow, population_gap_days=30.0)
    assert fast_row["usual_gap_days"] == pytest.approx((3 * 20 + 2 * 30) / 5)
    assert slow_row["usual_gap_days"] == pytest.approx((3 * 60 + 2 * 30) / 5)
    assert (fast_row["stage"], slow_row["stage"]) == ("at_risk", "active")


@pytest.mark.parametrize(("last", "expected"), [(180.0, "churned"), (200.0, "churned")])
def test_churned_after_the_active_window(last: float, expected: str) -> None:
    data = one_customer(visits_every([last + 20, last]))
    row = stage_of(data)
    assert row["stage"] == expected
    assert row["reason"].startswith("no visit in the last 180 days")


def test_churned_boundary_is_the_active_customers_window() -> None:
    at_edge = one_customer(visits_every([200.0, 180.0]))
    inside = one_customer([{"scheduled_at": A - 200 * DAY},
                           {"scheduled_at": A - 180 * DAY + SECOND}])
    assert stage_of(at_edge)["stage"] == "churned"
    assert 1 not in active_customers(at_edge, A)
    assert stage_of(inside)["stage"] != "churned"
    assert 1 in active_customers(inside, A)


def test_reactivated_after_a_long_break_then_active_again() -> None:
    back = one_customer(visits_every([5 + 120 + 84, 5 + 120 + 56, 5 + 120 + 28, 5 + 120, 5]))
    row = stage_of(back)
    assert row["stage"] == "reactivated"
    assert row["previous_gap_days"] == pytest.approx(120.0)
    # The lower median keeps the cadence at 28 days despite the break.
    assert row["usual_gap_days"] == pytest.approx(28.0)
    assert "after a 120-day break" in row["reason"]
    # One more visit on rhythm: active again.
    later = one_customer(visits_every([5 + 120 + 84, 5 + 120 + 56, 5 + 120 + 28, 5 + 120, 33,
                                       5]))
    assert stage_of(later)["stage"] == "active"


def test_reactivation_is_judged_against_the_cadence_known_before_the_return() -> None:
    # Two visits 120 days apart: before the return, the only cadence known is the population's
    # (28 days), so the 120-day gap was a lapse; the cadence now (shrunk 120) would not say so.
    data = one_customer(visits_every([125, 5]), signup=A - 300 * DAY)
    row = stage_of(data, population_gap_days=28.0)
    assert row["usual_gap_days"] == pytest.approx((120 + 2 * 28) / 3)
    assert row["stage"] == "reactivated"
    assert row["reason"] == "back 5 days ago after a 120-day break against a usual 28-day cadence"


def test_reactivated_after_being_churned_even_with_a_slow_cadence() -> None:
    # Cadence 100 days, so 3x is 300 days; a break longer than the 180-day window (the
    # customer was churned during it) is a reactivation all the same. A break of exactly 180
    # days never made the customer churned: at the instant of the return the visit is known.
    def with_break(gap: pd.Timedelta) -> MarketplaceData:
        last = A - 10 * DAY
        return one_customer([{"scheduled_at": last - gap - 200 * DAY},
                             {"scheduled_at": last - gap - 100 * DAY},
                             {"scheduled_at": last - gap}, {"scheduled_at": last}])

    assert stage_of(with_break(190 * DAY))["stage"] == "reactivated"
    assert stage_of(with_break(180 * DAY + SECOND))["stage"] == "reactivated"
    assert stage_of(with_break(180 * DAY))["stage"] == "active"
    assert stage_of(with_break(170 * DAY))["stage"] == "active"


def test_new_customers() -> None:
    first_visit = one_customer(visits_every([20]), signup=A - 30 * DAY)
    row = stage_of(first_visit)
    assert row["stage"] == "new"
    assert row["reason"] == "first visit 20 days ago, 1 visit(s) so far"
    assert math.isnan(row["previous_gap_days"])
    signed_up = one_customer([], signup=A - 10 * DAY)
    row = stage_of(signed_up, population_gap_days=29.0)
    assert row["stage"] == "new"
    assert row["n_visits"] == 0 and math.isnan(row["days_since_last_visit"])
    assert row["usual_gap_days"] == pytest.approx(29.0)
    assert row["overdue_ratio"] == pytest.approx(10 / 29)
    # A third visit within new_days: no longer new.
    three = one_customer(visits_every([60, 40, 20]), signup=A - 70 * DAY)
    assert stage_of(three)["stage"] == "active"


def test_new_lasts_new_days_from_the_first_visit() -> None:
    for first, expected in ((90 * DAY - SECOND, "new"), (90 * DAY, "active")):
        data = one_customer([{"scheduled_at": A - first}, {"scheduled_at": A - 5 * DAY}],
                            signup=A - 100 * DAY)
        assert stage_of(data)["stage"] == expected


def test_never_visited_customers_slide_from_new_to_churned() -> None:
    stages = [stage_of(one_customer([], signup=A - d * DAY), population_gap_days=30.0)["stage"]
              for d in (10, 44, 45, 89, 90, 179, 180)]
    assert stages == ["new", "new", "at_risk", "at_risk", "lapsed", "lapsed", "churned"]


def test_shrinkage_towards_the_population_cadence() -> None:
    data = one_customer(visits_every([70, 10]))  # one gap of 60 days
    row = stage_of(data, population_gap_days=30.0)
    assert row["usual_gap_days"] == pytest.approx((1 * 60 + 2 * 30) / 3)
    assert stage_of(data, population_gap_days=30.0, prior_gaps=0.0)["usual_gap_days"] == \
        pytest.approx(60.0)
    # Without a population given, it is customer 1's own (the only customer with a gap).
    assert population_median_gap(data, A) == pytest.approx(60.0)
    assert stage_of(data)["usual_gap_days"] == pytest.approx(60.0)


def test_lower_median_cadence() -> None:
    data = one_customer(visits_every([10 + 200 + 28, 10 + 200, 10]))  # gaps 28, 200
    assert stage_of(data, prior_gaps=0.0)["usual_gap_days"] == pytest.approx(28.0)


def test_visit_boundaries_follow_customer_features() -> None:
    at_cut = one_customer(visits_every([30, 0]))
    assert stage_of(at_cut)["days_since_last_visit"] == 0.0
    after = one_customer([{"scheduled_at": A - 30 * DAY}, {"scheduled_at": A + SECOND}])
    assert stage_of(after)["n_visits"] == 1
    cancelled = one_customer([{"scheduled_at": A - 30 * DAY},
                              {"scheduled_at": A - 5 * DAY, "status": "cancelled"}])
    assert stage_of(cancelled)["days_since_last_visit"] == pytest.approx(30.0)


def test_population_cadence_falls_back_without_any_gap() -> None:
    data = one_customer(visits_every([20]))
    assert population_median_gap(data, A) == DEFAULT_GAP_DAYS


# ---------------------------------------------------------------------------- reference

def reference(data: MarketplaceData, as_of: pd.Timestamp, population: float | None = None,
              window: int = 180, new_days: int = 90, at_risk: float = 1.5, lapsed: float = 3.0,
              prior: float = 2.0) -> dict[int, tuple[str, float, float]]:
    """The documented rules, customer by customer in plain Python: (stage, usual, previous)."""
    cut = as_of.value
    b = data.bookings
    done = b[(b["status"] == "completed") & (b["scheduled_at"] <= as_of)]
    visits: dict[int, list[int]] = {}
    for cid, t in zip(done["customer_id"], done["scheduled_at"], strict=True):
        visits.setdefault(int(cid), []).append(pd.Timestamp(t).value)
    for times in visits.values():
        times.sort()

    def low_median(gaps: list[int]) -> int:
        return sorted(gaps)[(len(gaps) - 1) // 2]

    def gaps_of(times: list[int]) -> list[int]:
        secs = [t // 10**9 for t in times]
        return [b2 - a2 for a2, b2 in itertools.pairwise(secs)]

    owns = [low_median(gaps_of(t)) for t in visits.values() if len(t) >= 2]
    if population is None:
        population = float(np.median(owns)) / 86400 if owns else DEFAULT_GAP_DAYS

    def cadence(gaps: list[int]) -> float:
        if not gaps or len(gaps) + prior == 0:
            return max(population, 1.0)
        value = (len(gaps) * low_median(gaps) / 86400 + prior * population) / (len(gaps) + prior)
        return max(value, 1.0)

    out = {}
    day = 86400 * 10**9
    for cid, signup in zip(data.customers["customer_id"], data.customers["signup_at"],
                           strict=True):
        if pd.Timestamp(signup).value > cut:
            continue
        times = visits.get(int(cid), [])
        gaps = gaps_of(times)
        usual = cadence(gaps)
        idle_ns = cut - (times[-1] if times else pd.Timestamp(signup).value)
        ratio = idle_ns / day / usual
        previous = (times[-1] - times[-2]) / day if len(times) >= 2 else math.nan
        if idle_ns >= window * day:
            stage = "churned"
        elif ratio >= lapsed:
            stage = "lapsed"
        elif ratio >= at_risk:
            stage = "at_risk"
        elif len(times) >= 2 and (previous >= lapsed * cadence(gaps[:-1])
                                  or times[-1] - times[-2] > window * day):
            stage = "reactivated"
        elif not times or (cut - times[0] < new_days * day and len(times) < 3):
            stage = "new"
        else:
            stage = "active"
        out[int(cid)] = (stage, usual, previous)
    return out


GAP_DAYS = (28, 0, 1, 7, 14, 21, 25, 28, 30, 30, 35, 45, 60, 90, 120, 200)
IDLE_DAYS = (10, 0, 3, 20, 30, 40, 45, 60, 85, 90, 100, 150, 179, 180, 181, 250)


@st.composite
def visit_histories(draw: st.DrawFn) -> MarketplaceData:
    """A few customers with rhythmic visits, long breaks and cancellations before ``A``.

    Built backwards from the last visit, so every stage occurs (``marketplace_data`` mostly
    yields churned customers): at least one visit when ``n`` is drawn > 0, then earlier
    visits at drawn gaps, signup before the first; one visit after ``A`` sometimes.
    """
    n_customers = draw(st.integers(1, 5))
    customers, bookings = [], []
    for cid in range(1, n_customers + 1):
        n = draw(st.integers(0, 9))
        t = A - draw(st.sampled_from(IDLE_DAYS)) * DAY - draw(st.integers(0, 3)) * SECOND
        times = []
        for _ in range(n):
            times.append(t)
            t = t - draw(st.sampled_from(GAP_DAYS)) * DAY - draw(st.sampled_from(
                [0, 0, 1, 3600])) * SECOND
        if n == 0:
            t = A - draw(st.sampled_from(IDLE_DAYS)) * DAY
        signup = t - draw(st.integers(0, 100 * 24)) * pd.Timedelta(hours=1)
        if draw(st.booleans()):
            times.append(A + draw(st.integers(1, 30 * 24)) * pd.Timedelta(hours=1))
        customers.append({"customer_id": cid, "signup_at": signup,
                          "acquisition_channel": "organic", "neighborhood": "north"})
        for when in times:
            bookings.append({
                "booking_id": len(bookings) + 1, "customer_id": cid, "provider_id": 7,
                "service_id": 3, "created_at": when, "scheduled_at": when,
                "status": draw(st.sampled_from(["completed"] * 5 + ["cancelled", "no_show"])),
                "price": 30.0, "discount": 0.0, "tip": 0.0})
    template = one_customer(joined=A - 4000 * DAY)
    return MarketplaceData(
        customers=pd.DataFrame(customers), providers=template.providers,
        services=template.services,
        bookings=pd.DataFrame(bookings, columns=template.bookings.columns).astype(
            {"created_at": "datetime64[ns]", "scheduled_at": "datetime64[ns]"}),
        reviews=template.reviews, interventions=template.interventions)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(visit_histories(), st.sampled_from([None, 12.5]), st.sampled_from([0.0, 2.0]),
       st.sampled_from([(180, 90, 1.5, 3.0), (60, 30, 1.2, 2.0)]))
def test_stages_match_the_plain_python_reference(data: MarketplaceData,
                                                 population: float | None, prior: float,
                                                 rules: tuple[int, int, float, float]) -> None:
    window, new_days, at_risk, lapsed = rules
    got = lifecycle_stages(data, A, population_gap_days=population, prior_gaps=prior,
                           active_window_days=window, new_days=new_days,
                           at_risk_ratio=at_risk, lapsed_ratio=lapsed)
    expected = reference(data, A, population, window=window, new_days=new_days,
                         at_risk=at_risk, lapsed=lapsed, prior=prior)
    assert got.index.tolist() == sorted(expected)
    for cid, (stage, usual, previous) in expected.items():
        row = got.loc[cid]
        assert row["stage"] == stage, (cid, row.to_dict())
        assert row["usual_gap_days"] == pytest.approx(usual, rel=1e-12)
        assert (math.isnan(previous) and math.isnan(row["previous_gap_days"])) or \
            row["previous_gap_days"] == pytest.approx(previous, rel=1e-12)


@SETTINGS
@given(st.data(), st.sampled_from([None, 12.5]), st.sampled_from([0.0, 2.0]))
def test_stages_match_the_reference_on_random_marketplaces(draw: st.DataObject,
                                                           population: float | None,
                                                           prior: float) -> None:
    data = draw.draw(marketplace_data(max_customers=4, max_bookings=40))
    as_of = draw.draw(as_of_for(data))
    window = draw.draw(st.sampled_from([30, 180]))
    got = lifecycle_stages(data, as_of, population_gap_days=population, prior_gaps=prior,
                           active_window_days=window)
    expected = reference(data, as_of, population, window=window, prior=prior)
    assert got.index.tolist() == sorted(expected)
    for cid, (stage, usual, previous) in expected.items():
        row = got.loc[cid]
        assert row["stage"] == stage, (cid, row.to_dict())
        assert row["usual_gap_days"] == pytest.approx(usual, rel=1e-12)
        assert (math.isnan(previous) and math.isnan(row["previous_gap_days"])) or \
            row["previous_gap_days"] == pytest.approx(previous, rel=1e-12)


@SETTINGS
@given(st.data())
def test_churned_is_the_complement_of_active_customers(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    window = draw.draw(st.sampled_from([30, 180]))
    stages = lifecycle_stages(data, as_of, active_window_days=window)
    visited = stages[stages["n_visits"] > 0]
    active = set(active_customers(data, as_of, window))
    assert set(visited.index[visited["stage"] != "churned"]) == active
    assert active <= set(stages.index[stages["stage"] != "churned"])


def test_churned_agrees_with_active_customers_on_the_sample(sample: MarketplaceData) -> None:
    as_of = pd.Timestamp("2024-06-30")
    stages = lifecycle_stages(sample, as_of)
    active = active_customers(sample, as_of)
    visited = stages[stages["n_visits"] > 0]
    assert set(visited.index[visited["stage"] != "churned"]) == set(active)
    assert set(stages["stage"].unique()) == set(LIFECYCLE_STAGES)  # every stage occurs


# ---------------------------------------------------------------------------- point in time

@SETTINGS
@given(st.data())
def test_events_after_as_of_never_change_the_stages(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    changed = draw.draw(future_perturbation(data, as_of))
    pd.testing.assert_frame_equal(lifecycle_stages(data, as_of),
                                  lifecycle_stages(changed, as_of), check_exact=True)
    pd.testing.assert_frame_equal(lifecycle_stages(data, as_of),
                                  lifecycle_stages(known_at(data, as_of), as_of),
                                  check_exact=True)


@SETTINGS
@given(st.data())
def test_requested_customers_get_the_rows_of_the_full_frame(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    full = lifecycle_stages(data, as_of)
    ids = draw.draw(st.lists(st.sampled_from(full.index.tolist()), unique=True)
                    if len(full) else st.just([]))
    subset = lifecycle_stages(data, as_of, ids)
    assert subset.index.tolist() == ids  # request order
    pd.testing.assert_frame_equal(subset, full.loc[ids], check_exact=True)
    given_population = lifecycle_stages(data, as_of, ids,
                                        population_gap_days=population_median_gap(data, as_of))
    pd.testing.assert_frame_equal(given_population, subset, check_exact=True)


# ---------------------------------------------------------------------------- output and errors

def test_output_columns_and_dtypes(sample: MarketplaceData) -> None:
    stages = lifecycle_stages(sample, "2024-06-30")
    assert list(stages.columns) == ["stage", "n_visits", "days_since_last_visit",
                                    "usual_gap_days", "overdue_ratio", "days_overdue",
                                    "previous_gap_days", "reason"]
    assert list(stages["stage"].cat.categories) == list(LIFECYCLE_STAGES)
    assert stages["n_visits"].dtype == np.int64
    assert stages.index.is_monotonic_increasing and stages.index.name == "customer_id"
    for column in ("usual_gap_days", "overdue_ratio", "days_overdue"):
        assert stages[column].dtype == np.float64 and stages[column].notna().all()
    assert pd.api.types.is_string_dtype(stages["reason"]) and (stages["reason"] != "").all()
    signed_up = sample.customers.loc[sample.customers["signup_at"] <= "2024-06-30"]
    assert len(stages) == len(signed_up)


def test_unknown_and_future_customers_are_refused() -> None:
    data = one_customer(visits_every([10]))
    with pytest.raises(KeyError, match=r"1 unknown \(e\.g\. \[99\]\)"):
        lifecycle_stages(data, A, [1, 99])
    with pytest.raises(KeyError, match=r"1 signed up after as_of \(e\.g\. \[2\]\)"):
        lifecycle_stages(data, A, [2])
    with pytest.raises(KeyError, match="2 of 3"):
        lifecycle_stages(data, A, [1, 2, 99])
    with pytest.raises(KeyError, match="unknown"):
        lifecycle_journey(data, 99, A)


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"at_risk_ratio": 3.0, "lapsed_ratio": 3.0}, "at_risk_ratio"),
    ({"at_risk_ratio": 0.0}, "at_risk_ratio"),
    ({"lapsed_ratio": -1.0}, "lapsed_ratio"),
    ({"prior_gaps": -1.0}, "prior_gaps"),
    ({"active_window_days": 0}, "active_window_days"),
    ({"new_days": 1.5}, "new_days"),
    ({"population_gap_days": float("nan")}, "population_gap_days"),
])
def test_bad_rule_parameters_are_refused(kwargs: dict[str, Any], argument: str) -> None:
    data = one_customer(visits_every([10]))
    with pytest.raises(ValueError, match=argument):
        lifecycle_stages(data, A, **kwargs)


def test_bad_ids_and_cut_offs_are_refused() -> None:
    data = one_customer(visits_every([10]))
    with pytest.raises(ValueError, match="more than once"):
        lifecycle_stages(data, A, [1, 1])
    with pytest.raises(ValueError, match="integer ids"):
        lifecycle_stages(data, A, [1.0])
    with pytest.raises(ValueError, match="timezone"):
        lifecycle_stages(data, pd.Timestamp(A, tz="UTC"))
    with pytest.raises(ValueError, match="step_days"):
        lifecycle_journey(data, 1, A, step_days=0)
    assert lifecycle_stages(data, A, []).empty


# ---------------------------------------------------------------------------- journey

def test_journey_rows_are_stages_at_each_cut_off(sample: MarketplaceData) -> None:
    as_of = pd.Timestamp("2024-12-31")
    population = population_median_gap(sample, as_of)
    stages = lifecycle_stages(sample, as_of)
    # A customer who went through several stages.
    cid = int(stages.index[stages["stage"] == "reactivated"][0])
    journey = lifecycle_journey(sample, cid, as_of, step_days=45)
    signup = sample.customers.set_index("customer_id").loc[cid, "signup_at"]
    assert journey["as_of"].iloc[0] == signup and journey["as_of"].iloc[-1] == as_of
    assert (journey["as_of"].diff().iloc[1:-1] == pd.Timedelta(days=45)).all()
    for row in journey.itertuples():
        expected = lifecycle_stages(sample, row.as_of, [cid],
                                    population_gap_days=population).loc[cid]
        assert row.stage == expected["stage"] and row.reason == expected["reason"]
        assert row.usual_gap_days == expected["usual_gap_days"]
    assert journey.iloc[-1]["stage"] == stages.loc[cid, "stage"]
    changed = journey["stage"].astype(str).ne(journey["stage"].astype(str).shift())
    assert journey["changed"].tolist() == changed.tolist()
    assert journey["changed"].sum() >= 3
    assert list(journey.columns) == ["as_of", "stage", "days_since_last_visit",
                                     "usual_gap_days", "reason", "changed"]
