"""Point-in-time correctness: nothing unknown at ``as_of`` reaches the features.

Properties on random data sets (``strategies.py``) and explicit boundary cases: an event
stamped exactly at ``as_of`` is known, one stamped a second later is not.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features import (
    churn_labels,
    customer_features,
    ltv_labels,
    next_service_labels,
    provider_features,
)
from strategies import (
    DAY,
    SECOND,
    A,
    as_of_for,
    events_after,
    future_perturbation,
    known_at,
    marketplace_data,
    one_customer,
    past_perturbation,
)

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])





def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as plain values: their category *lists* come from the whole table.

    A customer who signs up after ``as_of`` from a new neighbourhood adds a category (by
    design, categories are the table's vocabulary, so they match across cut-offs); the values
    of the customers known at ``as_of`` must not change.
    """
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype("object")
    return out


# ---------------------------------------------------------------- properties

@SETTINGS
@given(st.data())
def test_events_after_as_of_never_change_customer_features(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    changed = draw.draw(future_perturbation(data, as_of))
    pd.testing.assert_frame_equal(comparable(customer_features(data, as_of)),
                                  comparable(customer_features(changed, as_of)),
                                  check_exact=True)


@SETTINGS
@given(st.data())
def test_events_after_as_of_never_change_provider_features(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    changed = draw.draw(future_perturbation(data, as_of))
    # Provider sums run in input row order, which the perturbation shuffles: compare to the
    # last few bits only.
    pd.testing.assert_frame_equal(comparable(provider_features(data, as_of)),
                                  comparable(provider_features(changed, as_of)),
                                  rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_features_equal_those_of_the_data_known_at_as_of(draw: st.DataObject) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    truncated = known_at(data, as_of)
    assert not any(mask.any() for mask in events_after(truncated, as_of).values())
    pd.testing.assert_frame_equal(comparable(customer_features(data, as_of)),
                                  comparable(customer_features(truncated, as_of)),
                                  check_exact=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from([30, 90]))
def test_events_after_the_label_period_never_change_labels(draw: st.DataObject,
                                                           horizon: int) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    end = as_of + pd.Timedelta(days=horizon)
    changed = draw.draw(future_perturbation(data, end))
    assume(end <= min(data.observation_end, changed.observation_end))
    for labels in (lambda d: churn_labels(d, as_of, horizon),
                   lambda d: ltv_labels(d, as_of, horizon),
                   lambda d: next_service_labels(d, as_of, horizon)):
        pd.testing.assert_series_equal(labels(data), labels(changed), check_exact=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_past_events_never_change_label_values(draw: st.DataObject) -> None:
    """The past decides who is labelled (churn: who is active), never what the label is."""
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    changed = draw.draw(past_perturbation(data, as_of))
    assume(as_of + 30 * DAY <= min(data.observation_end, changed.observation_end))
    for labels in (lambda d: churn_labels(d, as_of, 30),
                   lambda d: ltv_labels(d, as_of, 30),
                   lambda d: next_service_labels(d, as_of, 30)):
        before, after = labels(data), labels(changed)
        common = before.index.intersection(after.index)
        pd.testing.assert_series_equal(before.loc[common], after.loc[common], check_exact=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_perturbations_do_change_the_data(draw: st.DataObject) -> None:
    """Guard against a vacuous property: the perturbations add what they say they add."""
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    added = draw.draw(future_perturbation(data, as_of, kinds=("add_bookings",)))
    assert len(added.bookings) > len(data.bookings)
    assert added.bookings["created_at"].max() > as_of
    # And features after the new bookings do see them.
    later = added.observation_end
    assert customer_features(added, later)["n_bookings"].sum() + customer_features(
        added, later)["has_upcoming_booking"].sum() > 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.randoms(use_true_random=False))
def test_row_order_does_not_matter(draw: st.DataObject, random: Any) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    shuffled = MarketplaceData(**{
        name: frame.sample(frac=1.0, random_state=random.randrange(2**32))
        for name, frame in data.tables().items()})
    pd.testing.assert_frame_equal(customer_features(data, as_of),
                                  customer_features(shuffled, as_of), check_exact=True)


# ---------------------------------------------------------------- explicit boundaries

def test_signup_exactly_at_as_of_counts() -> None:
    data = one_customer(signup=A)
    assert 1 in customer_features(data, A).index
    assert 1 not in customer_features(data, A - SECOND).index


def test_visit_exactly_at_as_of_is_history_a_second_later_is_upcoming() -> None:
    at = customer_features(one_customer([{"scheduled_at": A, "lead": DAY}]), A).loc[1]
    assert at["n_visits"] == 1 and at["days_since_last_visit"] == 0.0
    assert at["has_upcoming_booking"] == 0
    later = customer_features(one_customer([{"scheduled_at": A + SECOND, "lead": DAY}]), A).loc[1]
    assert later["n_visits"] == 0 and np.isnan(later["days_since_last_visit"])
    assert later["has_upcoming_booking"] == 1
    assert later["days_to_next_booking"] == pytest.approx(1 / 86_400)


def test_booking_created_a_second_after_as_of_is_unknown() -> None:
    data = one_customer([{"scheduled_at": A + DAY, "lead": DAY - SECOND}])
    assert customer_features(data, A).loc[1, "has_upcoming_booking"] == 0
    assert customer_features(data, A + SECOND).loc[1, "has_upcoming_booking"] == 1


def test_upcoming_outcome_is_never_read() -> None:
    visit = {"scheduled_at": A + DAY, "lead": 2 * DAY}
    base = customer_features(one_customer([visit]), A)
    for outcome in ({"status": "no_show"}, {"status": "cancelled", "price": 0.0},
                    {"price": 99.0, "discount": 50.0}):
        changed = one_customer([{**visit, **outcome}])
        pd.testing.assert_frame_equal(base, customer_features(changed, A))


@pytest.mark.parametrize(("window", "offset", "inside"), [
    (30, 30 * DAY, False), (30, 30 * DAY - SECOND, True), (90, 90 * DAY, False),
    (90, 0 * DAY, True)])
def test_window_is_open_at_its_start(window: int, offset: pd.Timedelta, inside: bool) -> None:
    features = customer_features(one_customer([{"scheduled_at": A - offset}]), A, windows=(window,))
    assert features.loc[1, f"visits_{window}d"] == int(inside)


def test_review_exactly_at_as_of_counts() -> None:
    visit = {"scheduled_at": A - DAY}

    def review(at: pd.Timestamp) -> list[dict[str, Any]]:
        return [{"review_id": 1, "booking_id": 100, "customer_id": 1, "provider_id": 7,
                 "rating": 2, "created_at": at}]

    assert customer_features(one_customer([visit], reviews=review(A)), A).loc[1, "n_reviews"] == 1
    late = customer_features(one_customer([visit], reviews=review(A + SECOND)), A).loc[1]
    assert late["n_reviews"] == 0 and np.isnan(late["main_provider_rating"])


def test_intervention_exactly_at_as_of_counts() -> None:
    def campaign(at: pd.Timestamp) -> list[dict[str, Any]]:
        return [{"intervention_id": 1, "customer_id": 1, "campaign": "c", "sent_at": at,
                 "treated": True, "offer": "10% off"}]

    at = customer_features(one_customer(interventions=campaign(A)), A).loc[1]
    assert at["n_offers"] == 1 and at["days_since_last_offer"] == 0.0
    late = customer_features(one_customer(interventions=campaign(A + SECOND)), A).loc[1]
    assert late["n_offers"] == 0 and np.isnan(late["days_since_last_offer"])


def test_barber_leaving_exactly_at_as_of_has_left() -> None:
    visit = [{"scheduled_at": A - 10 * DAY}]
    assert customer_features(one_customer(visit, left_at=A), A).loc[1, "main_provider_left"] == 1.0
    assert customer_features(one_customer(visit, left_at=A + SECOND), A).loc[
        1, "main_provider_left"] == 0.0
    assert provider_features(one_customer(visit, left_at=A), A).loc[7, "has_left"] == 1


def test_barber_joining_exactly_at_as_of_exists() -> None:
    data = one_customer(joined=A)
    assert 7 in provider_features(data, A).index
    assert 7 not in provider_features(data, A - SECOND).index


# ---------------------------------------------------------------- as_of parsing

@pytest.mark.parametrize("value", ["2024-06-01 12:00", dt.datetime(2024, 6, 1, 12),
                                   np.datetime64("2024-06-01T12:00"), A])
def test_as_of_accepts_naive_timestamps(value: Any) -> None:
    data = one_customer([{"scheduled_at": A}])
    pd.testing.assert_frame_equal(customer_features(data, value), customer_features(data, A))


@pytest.mark.parametrize(("value", "message"), [
    (pd.Timestamp("2024-06-01 12:00", tz="UTC"), "naive UTC"),
    (dt.datetime(2024, 6, 1, tzinfo=dt.UTC), "naive UTC"),
    ("2024-06-01T12:00+02:00", "naive UTC"),
    ("not a date", "cannot read"),
    (pd.NaT, "missing"),
    (20240601, "expected a timestamp"),
])
def test_as_of_refuses_ambiguous_values(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        customer_features(one_customer(), value)


def test_tables_changed_after_validation_are_refused() -> None:
    data = one_customer([{"scheduled_at": A - DAY}])
    # Frames are plain pandas objects: nothing stops a caller from editing one in place.
    data.bookings.loc[0, "customer_id"] = 999
    with pytest.raises(ValueError, match=r"1 event\(s\) refer to a customer unknown.*999"):
        customer_features(data, A)
