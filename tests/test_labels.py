"""Forward-looking labels: definitions, boundaries, refusals, and a plain-Python reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features import (
    active_customers,
    churn_labels,
    last_labelable_as_of,
    ltv_labels,
    next_service_labels,
)
from strategies import DAY, SECOND, A, as_of_for, marketplace_data, one_customer


def _period(data: MarketplaceData, as_of: pd.Timestamp, horizon: int) -> list[Any]:
    """Completed bookings scheduled in (as_of, as_of + horizon], as plain records."""
    return [b for b in data.bookings.itertuples(index=False) if b.status == "completed"
            and as_of < b.scheduled_at <= as_of + horizon * DAY]


def reference_churn(data: MarketplaceData, as_of: pd.Timestamp, horizon: int,
                    window: int = 180) -> dict[int, int]:
    active = {b.customer_id for b in data.bookings.itertuples(index=False)
              if b.status == "completed" and as_of - window * DAY < b.scheduled_at <= as_of}
    returning = {b.customer_id for b in _period(data, as_of, horizon)}
    return {c: int(c not in returning) for c in sorted(active)}


def reference_ltv(data: MarketplaceData, as_of: pd.Timestamp, horizon: int) -> dict[int, float]:
    out = {c.customer_id: 0.0 for c in data.customers.itertuples(index=False)
           if c.signup_at <= as_of}
    for b in _period(data, as_of, horizon):
        if b.customer_id in out:
            out[b.customer_id] += b.price - b.discount
    return dict(sorted(out.items()))


def reference_next_service(data: MarketplaceData, as_of: pd.Timestamp, horizon: int
                           ) -> dict[int, int]:
    signed_up = {c.customer_id for c in data.customers.itertuples(index=False)
                 if c.signup_at <= as_of}
    first: dict[int, Any] = {}
    for b in _period(data, as_of, horizon):
        if b.customer_id in signed_up:
            best = first.get(b.customer_id)
            if best is None or (b.scheduled_at, b.booking_id) < (best.scheduled_at,
                                                                   best.booking_id):
                first[b.customer_id] = b
    return {c: int(first[c].service_id) for c in sorted(first)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from([1, 30, 90]))
def test_labels_match_the_reference(draw: st.DataObject, horizon: int) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    if as_of > last_labelable_as_of(data, horizon) and draw.draw(st.booleans()):
        # Half the time, move a too-late cut-off back into the labelable range.
        as_of = last_labelable_as_of(data, horizon) - draw.draw(
            st.sampled_from([0, 1, 20, 100])) * DAY
    if as_of + horizon * DAY > data.observation_end:
        with pytest.raises(ValueError, match="last as_of that can be labelled"):
            churn_labels(data, as_of, horizon)
        return
    churn = churn_labels(data, as_of, horizon)
    assert churn.to_dict() == reference_churn(data, as_of, horizon)
    assert churn.dtype == np.int8 and churn.name == "churned"
    assert list(churn.index) == list(active_customers(data, as_of))
    ltv = ltv_labels(data, as_of, horizon)
    expected = reference_ltv(data, as_of, horizon)
    assert list(ltv.index) == list(expected)
    np.testing.assert_allclose(ltv.to_numpy(), list(expected.values()), rtol=1e-12)
    assert ltv.name == "ltv" and ltv.dtype == np.float64
    nxt = next_service_labels(data, as_of, horizon)
    assert nxt.to_dict() == reference_next_service(data, as_of, horizon)
    assert nxt.name == "next_service_id" and nxt.dtype == np.int64


def test_churn_boundaries() -> None:
    history = {"scheduled_at": A - 10 * DAY}

    def churned(*later: dict[str, Any], horizon: int = 90) -> int:
        labels = churn_labels(one_customer([history, *later]), A, horizon)
        return int(labels.loc[1])

    assert churned() == 1
    assert churned({"scheduled_at": A, "lead": DAY}) == 1  # at as_of: history, not future
    assert churned({"scheduled_at": A + SECOND}) == 0
    assert churned({"scheduled_at": A + 90 * DAY}) == 0
    assert churned({"scheduled_at": A + 90 * DAY + SECOND}) == 1
    assert churned({"scheduled_at": A + 5 * DAY, "status": "cancelled"}) == 1
    assert churned({"scheduled_at": A + 5 * DAY, "status": "no_show"}) == 1


def test_active_window_is_open_at_its_start() -> None:
    assert list(active_customers(one_customer([{"scheduled_at": A - 180 * DAY}]), A)) == []
    data = one_customer([{"scheduled_at": A - 180 * DAY + SECOND}])
    assert list(active_customers(data, A)) == [1]
    assert list(active_customers(data, A, active_window_days=30)) == []
    assert list(active_customers(one_customer([{"scheduled_at": A,
                                                "status": "no_show"}]), A)) == []


def test_ltv_is_price_minus_discount_without_tips() -> None:
    data = one_customer([
        {"scheduled_at": A + DAY, "price": 40.0, "discount": 10.0, "tip": 8.0},
        {"scheduled_at": A + 2 * DAY, "price": 25.0, "status": "cancelled"},
        {"scheduled_at": A, "price": 99.0},  # at as_of: before the period
    ])
    ltv = ltv_labels(data, A, 365)
    assert ltv.loc[1] == 30.0
    assert 2 not in ltv.index  # signs up after as_of
    assert ltv_labels(one_customer(), A, 365).loc[1] == 0.0


def test_next_service_ties_go_to_the_lowest_booking_id() -> None:
    # Booking ids follow list order (100, 101, ...): the first listed wins a tie.
    tie = [{"scheduled_at": A + DAY, "service_id": 4}, {"scheduled_at": A + DAY}]
    assert next_service_labels(one_customer(tie), A).to_dict() == {1: 4}
    assert next_service_labels(one_customer(tie[::-1]), A).to_dict() == {1: 3}
    later = [{"scheduled_at": A + 2 * DAY, "service_id": 4}, {"scheduled_at": A + DAY}]
    assert next_service_labels(one_customer(later), A).to_dict() == {1: 3}
    assert next_service_labels(one_customer(), A).empty


@pytest.mark.parametrize("labels", [churn_labels, ltv_labels, next_service_labels])
def test_labels_refuse_a_period_past_the_data(labels: Any) -> None:
    data = one_customer([{"scheduled_at": A}])
    end = data.observation_end
    latest = last_labelable_as_of(data, 30)
    assert latest == end - 30 * DAY
    labels(data, latest, 30)
    with pytest.raises(ValueError, match=str(latest)) as info:
        labels(data, latest + SECOND, 30)
    assert "observation_end" in str(info.value)


@pytest.mark.parametrize("horizon", [0, -3, 1.5, True])
def test_bad_horizons_are_refused(horizon: Any) -> None:
    with pytest.raises(ValueError, match="horizon_days"):
        churn_labels(one_customer(), A, horizon)
