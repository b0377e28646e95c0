"""The vectorised features agree with a plain-Python reference written from the catalogue.

The reference loops over customers (providers) and re-derives every column from the
documented definitions, without numpy kernels, sorting tricks or shared helpers; the two are
compared on small random data sets at random cut-offs (often exactly at an event time).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features import (
    customer_features,
    feature_catalog,
    provider_feature_catalog,
    provider_features,
)
from strategies import as_of_for, marketplace_data

NAN = float("nan")
DAY = pd.Timedelta(days=1)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _days(delta: pd.Timedelta) -> float:
    return delta / DAY


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else NAN


def _mode_recent(items: list[Any]) -> tuple[Any, int]:
    """Most frequent item of a time-ordered list; ties go to the one seen last."""
    counts = Counter(items)
    last_seen = {item: i for i, item in enumerate(items)}
    best = max(counts, key=lambda item: (counts[item], last_seen[item]))
    return best, counts[best]


def reference_customer_features(data: MarketplaceData, as_of: pd.Timestamp,
                                windows: tuple[int, ...]) -> dict[int, dict[str, Any]]:
    bookings = [b._asdict() for b in data.bookings.itertuples(index=False)]
    reviews = [r._asdict() for r in data.reviews.itertuples(index=False)
               if r.created_at <= as_of]
    interventions = [i._asdict() for i in data.interventions.itertuples(index=False)
                     if i.sent_at <= as_of]
    providers = {p.provider_id: p for p in data.providers.itertuples(index=False)}
    provider_ratings: dict[int, list[int]] = {}
    for r in reviews:
        provider_ratings.setdefault(r["provider_id"], []).append(r["rating"])

    out: dict[int, dict[str, Any]] = {}
    for c in data.customers.itertuples(index=False):
        if c.signup_at > as_of:
            continue
        f: dict[str, Any] = {"tenure_days": _days(as_of - c.signup_at),
                             "acquisition_channel": c.acquisition_channel,
                             "neighborhood": c.neighborhood}
        mine = [b for b in bookings if b["customer_id"] == c.customer_id]
        past = [b for b in mine if b["scheduled_at"] <= as_of]
        visits = sorted((b for b in past if b["status"] == "completed"),
                        key=lambda b: (b["scheduled_at"], b["booking_id"]))
        n = len(visits)
        f["n_visits"] = n
        f["n_bookings"] = len(past)
        f["days_since_last_visit"] = _days(as_of - visits[-1]["scheduled_at"]) if n else NAN
        f["days_since_first_visit"] = _days(as_of - visits[0]["scheduled_at"]) if n else NAN
        for w in windows:
            inside = [v for v in visits if v["scheduled_at"] > as_of - w * DAY]
            f[f"visits_{w}d"] = len(inside)
            f[f"spend_{w}d"] = sum(v["price"] - v["discount"] for v in inside)
        f["spend_total"] = sum(v["price"] - v["discount"] for v in visits)
        f["spend_per_visit"] = f["spend_total"] / n if n else NAN
        gaps = [_days(b["scheduled_at"] - a["scheduled_at"])
                for a, b in itertools.pairwise(visits)]
        f["gap_mean_days"] = _mean(gaps)
        f["gap_std_days"] = statistics.pstdev(gaps) if gaps else NAN
        f["gap_cv"] = (f["gap_std_days"] / f["gap_mean_days"]
                       if gaps and f["gap_mean_days"] > 0 else NAN)
        f["days_overdue"] = (f["days_since_last_visit"] - f["gap_mean_days"]) if gaps else NAN
        statuses = [b["status"] for b in past]
        f["cancel_rate"] = statuses.count("cancelled") / len(past) if past else NAN
        f["no_show_rate"] = statuses.count("no_show") / len(past) if past else NAN

        given = sorted((r for r in reviews if r["customer_id"] == c.customer_id),
                       key=lambda r: (r["created_at"], r["review_id"]))
        ratings = [float(r["rating"]) for r in given]
        f["n_reviews"] = len(given)
        f["rating_mean"] = _mean(ratings)
        f["rating_last"] = ratings[-1] if ratings else NAN
        f["rating_trend"] = ratings[-1] - _mean(ratings[:-1]) if len(ratings) >= 2 else NAN

        if n:
            main, count = _mode_recent([v["provider_id"] for v in visits])
            left_at = providers[main].left_at
            f["main_provider_share"] = count / n
            f["main_provider_left"] = float(pd.notna(left_at) and left_at <= as_of)
            f["main_provider_rating"] = _mean([float(x) for x in provider_ratings.get(main, [])])
            last = visits[-1]
            earlier = [v["price"] for v in visits[:-1] if v["service_id"] == last["service_id"]]
            f["last_price_change"] = last["price"] - _mean(earlier) if earlier else NAN
            f["discount_share"] = sum(v["discount"] > 0 for v in visits) / n
            service, service_count = _mode_recent([v["service_id"] for v in visits])
            f["main_service"] = service
            f["main_service_share"] = service_count / n
        else:
            for name in ("main_provider_share", "main_provider_left", "main_provider_rating",
                         "last_price_change", "discount_share", "main_service",
                         "main_service_share"):
                f[name] = NAN
        f["discount_total"] = sum(v["discount"] for v in visits)
        f["n_services_used"] = len({v["service_id"] for v in visits})

        campaigns = sorted((i for i in interventions if i["customer_id"] == c.customer_id),
                           key=lambda i: (i["sent_at"], i["intervention_id"]))
        offers = [i for i in campaigns if i["treated"]]
        f["n_interventions"] = len(campaigns)
        f["n_offers"] = len(offers)
        f["days_since_last_intervention"] = (_days(as_of - campaigns[-1]["sent_at"])
                                             if campaigns else NAN)
        f["last_intervention_treated"] = float(campaigns[-1]["treated"]) if campaigns else NAN
        f["days_since_last_offer"] = (_days(as_of - max(i["sent_at"] for i in offers))
                                      if offers else NAN)
        ahead = [b["scheduled_at"] for b in mine
                 if b["created_at"] <= as_of < b["scheduled_at"]]
        f["has_upcoming_booking"] = int(bool(ahead))
        f["days_to_next_booking"] = _days(min(ahead) - as_of) if ahead else NAN
        out[int(c.customer_id)] = f
    return out


def reference_provider_features(data: MarketplaceData, as_of: pd.Timestamp,
                                windows: tuple[int, ...], open_minutes: float = 480.0
                                ) -> dict[int, dict[str, Any]]:
    services = {s.service_id: s for s in data.services.itertuples(index=False)}
    bookings = [b._asdict() for b in data.bookings.itertuples(index=False)]
    reviews = [r._asdict() for r in data.reviews.itertuples(index=False)
               if r.created_at <= as_of]
    out: dict[int, dict[str, Any]] = {}
    for p in data.providers.itertuples(index=False):
        if p.joined_at > as_of:
            continue
        left = bool(pd.notna(p.left_at) and p.left_at <= as_of)
        f: dict[str, Any] = {"tenure_days": _days(as_of - p.joined_at), "has_left": int(left),
                             "neighborhood": p.neighborhood, "price_tier": p.price_tier}
        mine = [b for b in bookings if b["provider_id"] == p.provider_id]
        past = [b for b in mine if b["scheduled_at"] <= as_of]
        visits = [b for b in past if b["status"] == "completed"]

        def within(rows: list[dict[str, Any]], newest: int, oldest: int = 0
                   ) -> list[dict[str, Any]]:
            """Rows scheduled in (as_of - newest days, as_of - oldest days]."""
            return [b for b in rows if as_of - newest * DAY < b["scheduled_at"]
                    <= as_of - oldest * DAY]

        for w in windows:
            f[f"visits_{w}d"] = len(within(visits, w))
            f[f"revenue_{w}d"] = sum(b["price"] - b["discount"] for b in within(visits, w))
        occupied = [b for b in within(past, 30) if b["status"] in ("completed", "no_show")]
        minutes = float(sum(services[b["service_id"]].duration_min for b in occupied))
        start = max(p.joined_at, as_of - 30 * DAY)
        end = p.left_at if left else as_of
        on_days = max(_days(end - start), 0.0)
        f["booked_minutes_30d"] = minutes
        f["utilization_30d"] = minutes / (open_minutes * on_days) if on_days > 0 else NAN
        received = [float(r["rating"]) for r in reviews if r["provider_id"] == p.provider_id]
        recent = [float(r["rating"]) for r in reviews if r["provider_id"] == p.provider_id
                  and r["created_at"] > as_of - 90 * DAY]
        f["n_reviews"] = len(received)
        f["rating_mean"] = _mean(received)
        f["rating_mean_90d"] = _mean(recent)
        year = within(past, 365)
        f["cancel_rate_365d"] = (sum(b["status"] == "cancelled" for b in year) / len(year)
                                 if year else NAN)
        f["no_show_rate_365d"] = (sum(b["status"] == "no_show" for b in year) / len(year)
                                  if year else NAN)
        now = {b["customer_id"] for b in within(visits, 90)}
        before = {b["customer_id"] for b in within(visits, 180, 90)}
        f["customers_90d"] = len(now)
        f["customer_retention_90d"] = len(before & now) / len(before) if before else NAN
        revenue_now = sum(b["price"] - b["discount"] for b in within(visits, 90))
        revenue_before = sum(b["price"] - b["discount"] for b in within(visits, 180, 90))
        f["revenue_trend_90d"] = math.log(1 + revenue_now) - math.log(1 + revenue_before)

        def price_index(rows: list[dict[str, Any]]) -> float:
            return _mean([b["price"] / services[b["service_id"]].base_price for b in rows
                          if services[b["service_id"]].base_price > 0])

        f["price_index_90d"] = price_index(within(visits, 90))
        f["price_index_change_90d"] = f["price_index_90d"] - price_index(within(visits, 180, 90))
        f["upcoming_bookings"] = sum(b["created_at"] <= as_of < b["scheduled_at"] for b in mine)
        out[int(p.provider_id)] = f
    return out


def assert_matches_reference(frame: pd.DataFrame, reference: dict[int, dict[str, Any]]
                             ) -> None:
    assert list(frame.index) == sorted(reference)
    for column in frame.columns:
        expected = [reference[i][column] for i in frame.index]
        actual = frame[column]
        if isinstance(actual.dtype, pd.CategoricalDtype):
            got = [None if pd.isna(v) else v for v in actual.tolist()]
            want = [None if isinstance(v, float) and math.isnan(v) else v for v in expected]
            assert got == want, column
        else:
            np.testing.assert_allclose(actual.to_numpy(dtype=float),
                                       np.asarray(expected, dtype=float),
                                       rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=column)


WINDOWS = st.sampled_from([(30, 90, 365), (7,), (1, 60)])


@SETTINGS
@given(st.data(), WINDOWS)
def test_customer_features_match_the_reference(data_strategy: st.DataObject,
                                               windows: tuple[int, ...]) -> None:
    data = data_strategy.draw(marketplace_data())
    as_of = data_strategy.draw(as_of_for(data))
    frame = customer_features(data, as_of, windows=windows)
    assert_matches_reference(frame, reference_customer_features(data, as_of, windows))


@SETTINGS
@given(st.data(), WINDOWS)
def test_provider_features_match_the_reference(data_strategy: st.DataObject,
                                               windows: tuple[int, ...]) -> None:
    data = data_strategy.draw(marketplace_data())
    as_of = data_strategy.draw(as_of_for(data))
    frame = provider_features(data, as_of, windows=windows)
    assert_matches_reference(frame, reference_provider_features(data, as_of, windows))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), WINDOWS)
def test_columns_and_dtypes_are_the_catalogue(data_strategy: st.DataObject,
                                              windows: tuple[int, ...]) -> None:
    data = data_strategy.draw(marketplace_data())
    as_of = data_strategy.draw(as_of_for(data))
    for frame, catalog in ((customer_features(data, as_of, windows=windows),
                            feature_catalog(windows)),
                           (provider_features(data, as_of, windows=windows),
                            provider_feature_catalog(windows))):
        assert list(frame.columns) == catalog["name"].tolist()
        assert [str(t) for t in frame.dtypes] == catalog["dtype"].tolist()
        # A column the catalogue says is never missing has no NaN, whatever the data.
        never_missing = catalog.loc[catalog["nan_when"] == "", "name"].tolist()
        assert not frame[never_missing].isna().any().any()


def test_catalogue_describes_every_feature_once() -> None:
    for catalog in (feature_catalog(), provider_feature_catalog()):
        assert catalog["name"].is_unique
        assert (catalog["description"].str.len() > 10).all()
        windowed = catalog.dropna(subset=["window"])
        assert all(f"{w}d" in name for name, w in zip(windowed["name"], windowed["window"],
                                                        strict=True))
    assert {"visits_7d", "spend_7d"} <= set(feature_catalog((7,))["name"])
    assert "visits_30d" not in set(feature_catalog((7,))["name"])


@pytest.mark.parametrize("windows", [(), (0,), (-5,), (30, 30), (1.5,)])
def test_bad_windows_are_refused(windows: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError, match="windows"):
        feature_catalog(windows)
