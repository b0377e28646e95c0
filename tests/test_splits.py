"""Training frames over several cut-offs, and out-of-time splits that refuse leaky layouts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features import (
    LABEL_COLUMNS,
    TimeSplit,
    churn_labels,
    customer_features,
    feature_catalog,
    time_split,
    training_frame,
)

START = pd.Timestamp("2024-01-01")


def regular_customers(n: int = 30, seed: int = 0) -> MarketplaceData:
    """Customers visiting every few weeks for two years, some stopping early (hand-built)."""
    rng = np.random.default_rng(seed)
    rows = []
    for customer in range(n):
        stop = START + pd.Timedelta(days=int(rng.integers(60, 760)))
        t = START + pd.Timedelta(days=int(rng.integers(0, 30)))
        while t < stop:
            rows.append({"booking_id": len(rows), "customer_id": customer, "provider_id": 1,
                         "service_id": 1, "created_at": t - pd.Timedelta(days=2),
                         "scheduled_at": t,
                         "status": rng.choice(["completed", "completed", "cancelled"]),
                         "price": 30.0, "discount": 0.0, "tip": 1.0})
            t += pd.Timedelta(days=int(rng.integers(10, 50)))
    return MarketplaceData(
        customers=pd.DataFrame({
            "customer_id": np.arange(n), "signup_at": START - pd.Timedelta(days=30),
            "acquisition_channel": rng.choice(["organic", "referral"], n),
            "neighborhood": rng.choice(["north", "south"], n)}),
        providers=pd.DataFrame({"provider_id": [1], "joined_at": [START - pd.Timedelta(
            days=365)], "left_at": [pd.NaT], "neighborhood": ["north"],
            "price_tier": ["standard"]}),
        services=pd.DataFrame({"service_id": [1], "name": ["haircut"], "base_price": [30.0],
                               "duration_min": [30]}),
        bookings=pd.DataFrame(rows),
        reviews=pd.DataFrame(columns=["review_id", "booking_id", "customer_id", "provider_id",
                                      "rating", "created_at"]).astype(
            {"created_at": "datetime64[ns]"}),
        interventions=pd.DataFrame(columns=["intervention_id", "customer_id", "campaign",
                                            "sent_at", "treated", "offer"]).astype(
            {"sent_at": "datetime64[ns]", "treated": "bool"}),
    )


DATA = regular_customers()
CUTOFFS = [pd.Timestamp("2024-06-30"), pd.Timestamp("2024-03-31")]


def test_training_frame_stacks_features_and_labels_per_cutoff() -> None:
    frame = training_frame(DATA, CUTOFFS, 90)
    assert frame.index.names == ["as_of", "customer_id"]
    assert frame.index.is_monotonic_increasing
    assert list(frame.columns) == [*feature_catalog()["name"], "churned"]
    for cutoff in CUTOFFS:
        part = frame.xs(cutoff, level="as_of")
        labels = churn_labels(DATA, cutoff, 90)
        pd.testing.assert_series_equal(part["churned"], labels)
        pd.testing.assert_frame_equal(part.drop(columns="churned"),
                                      customer_features(DATA, cutoff).loc[labels.index])
    # Categories are the table's, so stacking keeps the categorical dtype.
    assert isinstance(frame["neighborhood"].dtype, pd.CategoricalDtype)
    assert 0 < frame["churned"].mean() < 1


@pytest.mark.parametrize("label", ["ltv", "next_service"])
def test_training_frame_other_labels(label: Any) -> None:
    frame = training_frame(DATA, CUTOFFS, 60, label=label, windows=(30,))
    assert frame.columns[-1] == LABEL_COLUMNS[label]
    assert "visits_30d" in frame.columns and "visits_90d" not in frame.columns
    assert not frame.empty


def test_time_split_gives_out_of_time_parts() -> None:
    split = time_split(DATA, train_cutoffs=["2024-03-31", "2024-01-31"],
                       validation_cutoffs=["2024-06-30"], test_cutoff="2024-10-01",
                       horizon_days=90)
    assert isinstance(split, TimeSplit)
    assert split.train_cutoffs == (pd.Timestamp("2024-01-31"), pd.Timestamp("2024-03-31"))
    assert split.test_cutoff == pd.Timestamp("2024-10-01")
    last_train_label = max(split.train_cutoffs) + pd.Timedelta(days=90)
    assert last_train_label <= min(split.validation_cutoffs)
    assert set(split.train.index.get_level_values("as_of")) == set(split.train_cutoffs)
    assert set(split.test.index.get_level_values("as_of")) == {split.test_cutoff}
    X, y = split.xy("train")
    assert y.name == "churned" and "churned" not in X.columns and len(X) == len(y)
    with pytest.raises(ValueError, match="part"):
        split.xy("holdout")  # type: ignore[arg-type]


def test_time_split_without_validation() -> None:
    split = time_split(DATA, train_cutoffs=["2024-03-31"], test_cutoff="2024-06-29",
                       horizon_days=90)
    assert split.validation.empty and list(split.validation.columns) == list(
        split.test.columns)


@pytest.mark.parametrize(("layout", "message"), [
    ({"train_cutoffs": ["2024-05-01"], "validation_cutoffs": ["2024-07-01"]},
     "training cut-offs .*2024-05-01.* first validation cut-off.*latest allowed is 2024-04-02"),
    ({"train_cutoffs": ["2024-01-01"], "validation_cutoffs": ["2024-08-01"]},
     "validation cut-offs .*2024-08-01.* test cut-off"),
    ({"train_cutoffs": ["2024-07-15"], "validation_cutoffs": []},
     "training cut-offs .*2024-07-15.* the test cut-off"),
    ({"train_cutoffs": ["2024-12-01"], "validation_cutoffs": []}, "training cut-offs"),
])
def test_time_split_refuses_leaky_layouts(layout: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        time_split(DATA, test_cutoff="2024-10-01", horizon_days=90, **layout)


def test_time_split_refuses_a_test_period_past_the_data() -> None:
    last = DATA.observation_end - pd.Timedelta(days=90)
    time_split(DATA, train_cutoffs=[last - pd.Timedelta(days=90)], test_cutoff=last,
               horizon_days=90)
    with pytest.raises(ValueError, match="last as_of that can be labelled"):
        time_split(DATA, train_cutoffs=["2024-01-01"],
                   test_cutoff=last + pd.Timedelta(seconds=1), horizon_days=90)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"train_cutoffs": []}, "at least one"),
    ({"train_cutoffs": "2024-01-01"}, "sequence of cut-offs"),
    ({"train_cutoffs": ["2024-01-01", "2024-01-01"]}, "duplicate"),
    ({"train_cutoffs": ["2024-01-01"], "label": "revenue"}, "label"),
    ({"train_cutoffs": ["2024-01-01"], "horizon_days": 0}, "horizon_days"),
])
def test_time_split_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"test_cutoff": "2024-10-01", "horizon_days": 90, **kwargs}
    with pytest.raises(ValueError, match=message):
        time_split(DATA, **arguments)
