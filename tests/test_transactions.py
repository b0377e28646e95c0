"""A plain transaction log becomes a valid data set: the documented rules, clear refusals, and
a property over any valid log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from barberpro_ml.cli import app
from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.transactions import import_transactions
from barberpro_ml.errors import InputError


def test_same_day_purchases_are_one_visit_and_refund_days_earn_nothing() -> None:
    log = pd.DataFrame({
        "cust": [7, 7, 7, 9, 9],
        "ts": ["2024-01-02 10:00", "2024-01-02 15:00", "2024-02-01 09:00",
               "2024-01-05 11:00", "2024-01-05 12:00"],
        "paid": [20.0, 5.0, 30.0, 10.0, -15.0],
    })
    data, report = import_transactions(log, customer_id="cust", timestamp="ts", amount="paid")
    b = data.bookings.sort_values(["customer_id", "scheduled_at"]).reset_index(drop=True)
    assert b["customer_id"].tolist() == [7, 7, 9]
    assert b["price"].tolist() == [25.0, 30.0, 0.0]  # summed; a net refund day earns 0
    assert b["scheduled_at"].iloc[0] == pd.Timestamp("2024-01-02 10:00")
    assert (b["status"] == "completed").all() and (b["discount"] == 0).all()
    assert report.merged_same_day == 2 and report.non_positive_days == 1
    c = data.customers.set_index("customer_id")
    assert c.loc[7, "signup_at"] == pd.Timestamp("2024-01-02 10:00")
    assert data.summary()["providers"] == 1 and data.summary()["services"] == 1


def test_time_zones_are_converted_to_naive_utc_and_formats_are_honoured() -> None:
    log = pd.DataFrame({"c": ["001", "002"], "t": ["2024-06-30T02:00:00+02:00",
                                                   "2024-06-30T00:30:00Z"], "a": ["5", "6"]})
    data = MarketplaceData.from_transactions(log, customer_id="c", timestamp="t", amount="a")
    assert sorted(data.bookings["scheduled_at"]) == [pd.Timestamp("2024-06-30 00:00"),
                                                    pd.Timestamp("2024-06-30 00:30")]
    assert sorted(data.customers["customer_id"]) == [1, 2]
    dated = pd.DataFrame({"c": [1], "d": ["19970101"], "a": [11.77]})
    one = MarketplaceData.from_transactions(dated, customer_id="c", timestamp="d", amount="a",
                                            timestamp_format="%Y%m%d")
    assert one.bookings["scheduled_at"].iloc[0] == pd.Timestamp("1997-01-01")


def test_optional_provider_service_and_status_columns_are_used() -> None:
    log = pd.DataFrame({"c": [1, 1, 2], "t": ["2024-01-01", "2024-01-01", "2024-01-03"],
                        "a": [10, 20, 30], "p": [4, 5, 4], "s": [1, 1, 2],
                        "st": ["completed", "Cancelled", "no_show"]})
    data = MarketplaceData.from_transactions(log, customer_id="c", timestamp="t", amount="a",
                                             provider_id="p", service_id="s", status="st")
    assert sorted(data.providers["provider_id"]) == [4, 5]
    assert sorted(data.services["service_id"]) == [1, 2]
    b = data.bookings.set_index("provider_id").sort_index()
    assert b["status"].astype(str).tolist() == ["completed", "no_show", "cancelled"]
    assert b.loc[5, "price"] == 0.0  # a cancelled booking charged nothing


def test_problems_are_one_error_naming_column_count_and_examples() -> None:
    log = pd.DataFrame({"c": [1, "x", 2.5], "t": ["2024-01-01", "soon", "2024-01-02"],
                        "a": [1.0, np.inf, None]})
    with pytest.raises(InputError) as caught:
        import_transactions(log, customer_id="c", timestamp="t", amount="a")
    text = str(caught.value)
    assert "column 'c': 2 row(s) are not non-negative integer ids (e.g. 'x', 2.5)" in text
    assert "column 't': 1 row(s) are not timestamps (e.g. 'soon')" in text
    assert "column 'a': 2 row(s) are not finite amounts" in text
    with pytest.raises(InputError, match=r"missing column\(s\) \['amount'\]"):
        import_transactions(log, customer_id="c", timestamp="t", amount="amount")


logs = st.lists(
    st.tuples(st.integers(0, 50), st.integers(0, 3 * 365 * 24),
              st.floats(-100, 1000, allow_nan=False), st.integers(0, 3)),
    min_size=1, max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=logs, with_provider=st.booleans())
def test_any_valid_log_imports_into_a_valid_data_set(rows: list[tuple[int, int, float, int]],
                                                     with_provider: bool) -> None:
    log = pd.DataFrame(rows, columns=["c", "hour", "a", "p"])
    log["t"] = pd.Timestamp("2022-01-01") + pd.to_timedelta(log["hour"], unit="h")
    data, report = import_transactions(log, customer_id="c", timestamp="t", amount="a",
                                       provider_id="p" if with_provider else None)
    keys = ["c", log["t"].dt.normalize()] + (["p"] if with_provider else [])
    days = log.groupby(keys)["a"].sum()
    assert len(data.bookings) == len(days) == report.visits
    assert data.bookings["price"].sum() == pytest.approx(days.clip(lower=0).sum())
    assert set(data.customers["customer_id"]) == set(log["c"])
    # it round-trips through the contract like any other data set
    again = MarketplaceData(**data.tables())
    assert again.equals(data)


runner = CliRunner()


def test_cli_imports_a_csv_and_trains_on_it_by_folder(tmp_path: Path) -> None:
    log = pd.DataFrame({"customer": [1, 2, 1], "when": ["2024-01-01", "2024-01-02",
                                                        "2024-02-01"], "amount": [5, 6, 7]})
    csv = tmp_path / "log.csv"
    log.to_csv(csv, index=False)
    result = runner.invoke(app, ["import", "transactions", str(csv), "--customer-col",
                                 "customer", "--timestamp-col", "when", "--amount-col",
                                 "amount", "--out", str(tmp_path / "shop"), "--name", "shop"])
    assert result.exit_code == 0, result.output
    loaded = MarketplaceData.load(tmp_path / "shop")
    assert loaded.summary()["bookings"] == 3
    assert '"name": "shop"' in (tmp_path / "shop" / "manifest.json").read_text()
    bad = runner.invoke(app, ["import", "transactions", str(csv), "--customer-col", "client",
                              "--timestamp-col", "when", "--amount-col", "amount", "--out",
                              str(tmp_path / "x")])
    assert bad.exit_code == 2 and "missing column(s) ['client']" in bad.output
    assert not (tmp_path / "x").exists()


def test_recs_on_a_log_without_providers_names_the_shortfall(mlflow_store: object,
                                                             tmp_path: Path) -> None:
    from barberpro_ml.errors import NotEnoughDataError
    from barberpro_ml.jobs import recs

    rng = np.random.default_rng(0)
    n = 3000
    log = pd.DataFrame({"c": rng.integers(1, 300, n),
                        "t": pd.Timestamp("2022-01-01") + pd.to_timedelta(
                            rng.integers(0, 700 * 24, n), unit="h"),
                        "a": rng.gamma(2.0, 15.0, n)})
    data = MarketplaceData.from_transactions(log, customer_id="c", timestamp="t", amount="a")
    with pytest.raises(NotEnoughDataError, match=r"1 provider with completed bookings.*nothing "
                                                 r"to recommend"):
        recs.run(data=data)
