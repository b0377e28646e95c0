"""The data contract: canonical dtypes, refusals with clear messages, exact persistence."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from barberpro_ml.data import (
    CONTRACT,
    TABLES,
    DataContractError,
    GroundTruth,
    MarketplaceData,
)
from barberpro_ml.errors import InputError

T0 = pd.Timestamp("2024-01-01")


def valid_tables(n_customers: int = 6, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A small, hand-built, contract-valid data set (independent of the simulator)."""
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame({
        "customer_id": np.arange(1, n_customers + 1),
        "signup_at": T0 + pd.to_timedelta(rng.integers(0, 30, n_customers), unit="D"),
        "acquisition_channel": rng.choice(["organic", "paid_social", "referral"], n_customers),
        "neighborhood": rng.choice(["north", "south"], n_customers),
    })
    providers = pd.DataFrame({
        "provider_id": [10, 11, 12],
        "joined_at": [T0 - pd.Timedelta(days=400)] * 3,
        "left_at": [pd.NaT, T0 + pd.Timedelta(days=300), pd.NaT],
        "neighborhood": ["north", "south", "north"],
        "price_tier": ["budget", "standard", "premium"],
    })
    services = pd.DataFrame({
        "service_id": [1, 2],
        "name": ["haircut", "beard trim"],
        "base_price": [30.0, 15.0],
        "duration_min": [30, 15],
    })
    rows = []
    booking_id = 100
    for cid, signup in zip(customers["customer_id"], customers["signup_at"], strict=True):
        for visit in range(4):
            created = signup + pd.Timedelta(days=35 * visit + 1)
            rows.append({
                "booking_id": booking_id, "customer_id": cid,
                "provider_id": int(rng.choice([10, 12])), "service_id": int(rng.choice([1, 2])),
                "created_at": created, "scheduled_at": created + pd.Timedelta(days=3),
                "status": ["completed", "completed", "cancelled", "no_show"][visit],
                "price": 30.0, "discount": 5.0 if visit == 1 else 0.0, "tip": 4.0,
            })
            booking_id += 1
    bookings = pd.DataFrame(rows)
    done = bookings[bookings["status"] == "completed"].head(5)
    reviews = pd.DataFrame({
        "review_id": np.arange(1, len(done) + 1),
        "booking_id": done["booking_id"].to_numpy(),
        "customer_id": done["customer_id"].to_numpy(),
        "provider_id": done["provider_id"].to_numpy(),
        "rating": rng.integers(1, 6, len(done)),
        "created_at": (done["scheduled_at"] + pd.Timedelta(hours=5)).to_numpy(),
    })
    interventions = pd.DataFrame({
        "intervention_id": [1, 2],
        "customer_id": [1, 2],
        "campaign": ["winback-2024-06", "winback-2024-06"],
        "sent_at": [T0 + pd.Timedelta(days=160)] * 2,
        "treated": [True, False],
        "offer": ["20% off", "none"],
    })
    return {"customers": customers, "providers": providers, "services": services,
            "bookings": bookings, "reviews": reviews, "interventions": interventions}


def refusal(tables: dict[str, pd.DataFrame]) -> DataContractError:
    with pytest.raises(DataContractError) as info:
        MarketplaceData(**tables)
    return info.value


def test_valid_data_is_accepted_in_canonical_dtypes() -> None:
    data = MarketplaceData(**valid_tables())
    for table in TABLES:
        frame = getattr(data, table)
        assert list(frame.columns[: len(CONTRACT[table])]) == [s.name for s in CONTRACT[table]]
    assert data.bookings["created_at"].dtype == np.dtype("datetime64[ns]")
    assert data.bookings["status"].dtype == "category"
    assert list(data.bookings["status"].cat.categories) == ["completed", "cancelled", "no_show"]
    assert data.customers["customer_id"].dtype == np.dtype("int64")


# Each corruption: (table, column it must be blamed on, function that breaks a copy).
def _set(table: str, column: str, value: Any, row: int = 0):  # type: ignore[no-untyped-def]
    def corrupt(t: dict[str, pd.DataFrame]) -> None:
        frame = t[table].copy()
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[row], column] = value
        t[table] = frame
    return corrupt


def _drop(table: str, column: str):  # type: ignore[no-untyped-def]
    def corrupt(t: dict[str, pd.DataFrame]) -> None:
        t[table] = t[table].drop(columns=[column])
    return corrupt


def _duplicate_id(table: str):  # type: ignore[no-untyped-def]
    def corrupt(t: dict[str, pd.DataFrame]) -> None:
        frame = t[table].copy()
        key = CONTRACT[table][0].name
        frame.loc[frame.index[-1], key] = frame[key].iloc[0]
        t[table] = frame
    return corrupt


CORRUPTIONS = {
    "negative price": ("bookings", "price", _set("bookings", "price", -1.0)),
    "rating 7": ("reviews", "rating", _set("reviews", "rating", 7)),
    "rating 0": ("reviews", "rating", _set("reviews", "rating", 0)),
    "fractional rating": ("reviews", "rating", _set("reviews", "rating", 4.5)),
    "unknown status": ("bookings", "status", _set("bookings", "status", "maybe")),
    "unknown price tier": ("providers", "price_tier", _set("providers", "price_tier", "luxury")),
    "text in a money column": ("bookings", "tip", _set("bookings", "tip", "lots")),
    "unparseable timestamp": ("customers", "signup_at", _set("customers", "signup_at", "soon")),
    "missing signup": ("customers", "signup_at", _set("customers", "signup_at", None)),
    "missing channel": ("customers", "acquisition_channel",
                        _set("customers", "acquisition_channel", None)),
    "booking for unknown customer": ("bookings", "customer_id",
                                     _set("bookings", "customer_id", 999)),
    "booking with unknown service": ("bookings", "service_id", _set("bookings", "service_id", 9)),
    "review of unknown booking": ("reviews", "booking_id", _set("reviews", "booking_id", 1)),
    "scheduled before created": ("bookings", "scheduled_at",
                                 _set("bookings", "scheduled_at", T0 - pd.Timedelta(days=900))),
    "booking before signup": ("bookings", "created_at",
                              _set("bookings", "created_at", T0 - pd.Timedelta(days=10))),
    "discount above price": ("bookings", "discount", _set("bookings", "discount", 99.0)),
    "duplicate booking id": ("bookings", "booking_id", _duplicate_id("bookings")),
    "duplicate customer id": ("customers", "customer_id", _duplicate_id("customers")),
    "missing column": ("bookings", "tip", _drop("bookings", "tip")),
    "provider left before joining": ("providers", "left_at",
                                     _set("providers", "left_at", T0 - pd.Timedelta(days=999))),
    "intervention before signup": ("interventions", "sent_at",
                                   _set("interventions", "sent_at", T0 - pd.Timedelta(days=9))),
    "non-boolean treated": ("interventions", "treated", _set("interventions", "treated", "yes")),
    "negative duration": ("services", "duration_min", _set("services", "duration_min", -5)),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_class_of_bad_input_is_refused_naming_table_and_column(name: str) -> None:
    table, column, corrupt = CORRUPTIONS[name]
    tables = valid_tables()
    corrupt(tables)
    error = refusal(tables)
    blamed = {(v.table, v.column) for v in error.violations}
    assert (table, column) in blamed, str(error)
    message = str(error)
    assert f"{table}.{column}" in message
    violation = next(v for v in error.violations if (v.table, v.column) == (table, column))
    assert violation.count is None if name == "missing column" else violation.count >= 1
    assert len(violation.examples) <= 5


def test_review_of_a_cancelled_booking_is_refused() -> None:
    tables = valid_tables()
    cancelled = tables["bookings"][tables["bookings"]["status"] == "cancelled"].iloc[0]
    reviews = tables["reviews"].copy()
    reviews.loc[0, ["booking_id", "customer_id", "provider_id"]] = [
        cancelled["booking_id"], cancelled["customer_id"], cancelled["provider_id"]]
    reviews.loc[0, "created_at"] = cancelled["scheduled_at"] + pd.Timedelta(hours=1)
    tables["reviews"] = reviews
    error = refusal(tables)
    assert any(v.check == "reviews a completed booking" for v in error.violations)


def test_timezone_aware_timestamps_are_refused() -> None:
    tables = valid_tables()
    tables["customers"] = tables["customers"].assign(
        signup_at=tables["customers"]["signup_at"].dt.tz_localize("UTC"))
    error = refusal(tables)
    assert "timezone-naive" in str(error)


def test_all_violations_are_reported_together_with_counts_and_examples() -> None:
    tables = valid_tables()
    bookings = tables["bookings"].copy()
    bookings.loc[bookings.index[:7], "price"] = -2.0
    tables["bookings"] = bookings
    CORRUPTIONS["rating 7"][2](tables)
    error = refusal(tables)
    price = next(v for v in error.violations if v.column == "price")
    assert price.count == 7
    assert len(price.examples) == 5
    assert "booking_id=" in price.examples[0]
    assert {v.table for v in error.violations} == {"bookings", "reviews"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(CORRUPTIONS)),
    row=st.integers(min_value=0, max_value=100),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_random_corruptions_are_refused(name: str, row: int, seed: int) -> None:
    """A corruption at a random row of a random valid data set is always refused."""
    table, column, _ = CORRUPTIONS[name]
    tables = valid_tables(seed=seed)
    if name == "missing column":
        corrupt = _drop(table, column)
    elif name.startswith("duplicate"):
        corrupt = _duplicate_id(table)
    else:
        value = {
            "negative price": -0.01, "rating 7": 7, "rating 0": 0, "fractional rating": 2.5,
            "unknown status": "maybe", "unknown price tier": "luxury",
            "text in a money column": "lots", "unparseable timestamp": "soon",
            "missing signup": None, "missing channel": None,
            "booking for unknown customer": 10_000 + row,
            "booking with unknown service": 77, "review of unknown booking": 5,
            "scheduled before created": T0 - pd.Timedelta(days=900),
            "booking before signup": T0 - pd.Timedelta(days=1),
            "discount above price": 1e6, "provider left before joining":
                T0 - pd.Timedelta(days=999),
            "intervention before signup": T0 - pd.Timedelta(days=1),
            "non-boolean treated": "yes", "negative duration": -1,
        }[name]
        corrupt = _set(table, column, value, row % len(tables[table]))
    corrupt(tables)
    error = refusal(tables)
    assert any((v.table, v.column) == (table, column) for v in error.violations), str(error)


# --------------------------------------------------------------------------- persistence

def test_save_load_round_trip_is_exact_including_truth(tmp_path: Path) -> None:
    truth = GroundTruth(
        tables={"customers": pd.DataFrame({"customer_id": [1, 2], "cadence_days": [21.5, 40.0],
                                           "inactive_at": [pd.NaT, T0]})},
        meta={"seed": 3, "note": "hand-built"},
    )
    data = MarketplaceData(**valid_tables(), truth=truth)
    data.save(tmp_path / "d")
    loaded = MarketplaceData.load(tmp_path / "d")
    assert loaded.equals(data)
    assert loaded.digest() == data.digest()
    assert loaded.truth is not None
    pd.testing.assert_frame_equal(loaded.truth.customers, truth.customers)
    assert dict(loaded.truth.meta) == {"seed": 3, "note": "hand-built"}


def test_csv_folder_loads_to_the_same_data(tmp_path: Path) -> None:
    data = MarketplaceData(**valid_tables())
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in data.tables().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    loaded = MarketplaceData.load(folder)
    assert loaded.equals(data)


def test_bad_csv_is_refused_as_a_whole(tmp_path: Path) -> None:
    data = MarketplaceData(**valid_tables())
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in data.tables().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    text = (folder / "reviews.csv").read_text().splitlines()
    header = text[0].split(",")
    cells = text[1].split(",")
    cells[header.index("rating")] = "9"
    text[1] = ",".join(cells)
    (folder / "reviews.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DataContractError, match=r"reviews\.rating"):
        MarketplaceData.load(folder)


def test_missing_table_file_is_named(tmp_path: Path) -> None:
    MarketplaceData(**valid_tables()).save(tmp_path / "d")
    (tmp_path / "d" / "reviews.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="reviews"):
        MarketplaceData.load(tmp_path / "d")


def test_failed_save_leaves_previous_content(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    first = MarketplaceData(**valid_tables(seed=1))
    first.save(tmp_path / "d")
    second = MarketplaceData(**valid_tables(seed=2))
    calls = {"n": 0}
    original = pd.DataFrame.to_parquet

    def flaky(self: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", flaky)
    with pytest.raises(OSError, match="disk full"):
        second.save(tmp_path / "d")
    monkeypatch.undo()
    assert MarketplaceData.load(tmp_path / "d").equals(first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_committed_sample_is_valid_and_is_what_the_simulator_writes() -> None:
    from barberpro_ml.data import SimulationConfig, simulate

    folder = Path(__file__).resolve().parents[1] / "data" / "sample"
    sample = MarketplaceData.load(folder)
    regenerated = simulate(SimulationConfig(n_customers=3000, seed=7))
    assert sample.equals(regenerated), (
        "data/sample is stale: regenerate it with "
        "`barberpro-ml simulate --customers 3000 --seed 7 --out data/sample`")
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 5 * 2**20


# --------------------------------------------------------------------------- counts and ranges

def test_a_missing_column_is_called_missing_not_a_row_count() -> None:
    tables = valid_tables()
    tables["bookings"] = tables["bookings"].drop(columns=["tip"])
    error = refusal(tables)
    violation = next(v for v in error.violations if v.column == "tip")
    assert violation.count is None
    line = violation.describe()
    assert "bookings.tip" in line and "missing" in line
    assert "row" not in line.split("columns present")[0], line


def test_a_whole_column_of_the_wrong_type_counts_every_row() -> None:
    tables = valid_tables(n_customers=9)
    n = len(tables["bookings"])
    tables["bookings"] = tables["bookings"].assign(
        created_at=np.arange(n, dtype="int64"))
    tables["customers"] = tables["customers"].assign(
        signup_at=tables["customers"]["signup_at"].dt.tz_localize("UTC"))
    error = refusal(tables)
    created = next(v for v in error.violations if v.column == "created_at")
    signup = next(v for v in error.violations if v.column == "signup_at")
    assert (created.count, signup.count) == (n, 9)
    assert f"failed for {n} rows" in str(error) and "failed for 9 rows" in str(error)
    assert len(created.examples) == 5


def test_a_boolean_id_column_counts_every_row() -> None:
    tables = valid_tables()
    tables["services"] = tables["services"].assign(service_id=[True, False])
    error = refusal(tables)
    violation = next(v for v in error.violations if v.column == "service_id")
    assert violation.count == 2


@pytest.mark.parametrize("value, shown", [
    (1e20, "1e+20"), (float(2**63), "9.223372036854776e+18"), (-1e19, "-1e+19"),
    ("100000000000000000000", "100000000000000000000"),
    (2**64 - 1, "18446744073709551615"), (2**63, "9223372036854775808"),
])
def test_ids_beyond_int64_are_refused_showing_the_value_given(value: Any, shown: str) -> None:
    tables = valid_tables()
    _set("customers", "customer_id", value, row=2)(tables)
    error = refusal(tables)
    violation = next(v for v in error.violations if (v.table, v.column) == (
        "customers", "customer_id"))
    assert violation.count == 1
    assert shown in str(error), str(error)
    assert "-9223372036854775808" not in str(error)
    assert "int64" in violation.check or "range" in violation.check


def test_an_unsigned_id_column_beyond_int64_is_refused() -> None:
    tables = valid_tables()
    ids = tables["customers"]["customer_id"].to_numpy().astype("uint64")
    ids[0] = np.uint64(2**64 - 1)
    tables["customers"] = tables["customers"].assign(customer_id=ids)
    error = refusal(tables)
    assert "18446744073709551615" in str(error)
    assert "-1" not in str(error).split("customers.customer_id")[1].split("\n")[0]


def test_huge_ids_in_a_csv_are_refused_showing_the_value(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in valid_tables().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    text = (folder / "services.csv").read_text().splitlines()
    text[1] = "100000000000000000000" + text[1][text[1].index(","):]
    (folder / "services.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DataContractError, match=r"services\.service_id") as info:
        MarketplaceData.load(folder)
    assert "100000000000000000000" in str(info.value)


@pytest.mark.parametrize("value", [
    "0001-01-01", "9999-12-31", datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59),
    pd.Timestamp("1500-06-01").as_unit("s"), np.datetime64("2500-01-01", "D"),
])
def test_timestamps_beyond_the_nanosecond_range_are_refused(value: Any) -> None:
    tables = valid_tables()
    _set("customers", "signup_at", value, row=1)(tables)
    error = refusal(tables)
    violation = next(v for v in error.violations if (v.table, v.column) == (
        "customers", "signup_at"))
    assert violation.count == 1
    assert "1677-09-21" in violation.check and "2262-04-11" in violation.check


def test_a_non_nanosecond_timestamp_column_beyond_the_range_is_refused() -> None:
    tables = valid_tables()
    stamps = tables["bookings"]["scheduled_at"].astype("datetime64[s]").to_numpy().copy()
    stamps[[0, 3]] = np.datetime64("3000-01-01T00:00:00", "s")
    tables["bookings"] = tables["bookings"].assign(scheduled_at=stamps)
    error = refusal(tables)
    violation = next(v for v in error.violations if v.column == "scheduled_at")
    assert violation.count == 2
    assert "3000-01-01" in str(error)


def test_timestamps_beyond_the_range_in_a_csv_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in valid_tables().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    text = (folder / "interventions.csv").read_text().replace(
        "2024-06-09", "9999-12-31")
    (folder / "interventions.csv").write_text(text)
    with pytest.raises(DataContractError, match=r"interventions\.sent_at") as info:
        MarketplaceData.load(folder)
    assert "9999-12-31" in str(info.value)


# --------------------------------------------------------------------------- broken files

def _saved(tmp_path: Path, truth: bool = False) -> Path:
    ground = GroundTruth(tables={"customers": pd.DataFrame({"customer_id": [1, 2]})},
                         meta={"seed": 1}) if truth else None
    return MarketplaceData(**valid_tables(), truth=ground).save(tmp_path / "d")


@pytest.mark.parametrize("manifest, problem", [
    ('{"truth": ["customers"]}', "truth"),
    ('{"truth": "yes"}', "truth"),
    ('{"truth": {"tables": "customers"}}', "tables"),
    ('{"truth": {"tables": [1, 2]}}', "tables"),
    ('{"truth": {"tables": ["../customers"]}}', "tables"),
    ('{"truth": {"tables": ["customers"], "meta": [1]}}', "meta"),
    ('{"truth": {"tables": ["nowhere"]}}', "nowhere"),
    ('{"truth": {}}', "tables"),
    ("[1, 2, 3]", "object"),
    ('"truth"', "object"),
    ("{not json", "JSON"),
    ("", "JSON"),
    ("\xff\xfe", "JSON"),
])
def test_a_broken_manifest_is_one_input_error_naming_the_file(
        tmp_path: Path, manifest: str, problem: str) -> None:
    folder = _saved(tmp_path, truth=True)
    (folder / "manifest.json").write_bytes(manifest.encode("latin-1"))
    with pytest.raises(InputError) as info:
        MarketplaceData.load(folder)
    message = str(info.value)
    assert str(folder / "manifest.json") in message
    assert problem in message
    assert "\n" not in message


def test_a_manifest_without_truth_or_with_null_truth_loads(tmp_path: Path) -> None:
    folder = _saved(tmp_path, truth=True)
    (folder / "manifest.json").write_text('{"truth": null}')
    assert MarketplaceData.load(folder).truth is None
    (folder / "manifest.json").write_text('{"contract_version": 1}')
    assert MarketplaceData.load(folder).truth is None


def test_an_unreadable_truth_table_names_the_file(tmp_path: Path) -> None:
    folder = _saved(tmp_path, truth=True)
    (folder / "truth" / "customers.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"truth/customers\.parquet"):
        MarketplaceData.load(folder)


@pytest.mark.parametrize("content", ["", "\n", "\n\n  \n"])
def test_an_empty_csv_is_refused_naming_the_file(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in valid_tables().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / "services.csv").write_text(content)
    with pytest.raises(DataContractError) as info:
        MarketplaceData.load(folder)
    message = str(info.value)
    assert str(folder / "services.csv") in message
    assert "empty" in message
    assert [v.table for v in info.value.violations] == ["services"]


def test_a_header_only_csv_is_an_empty_table(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in valid_tables().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / "interventions.csv").write_text(
        ",".join(s.name for s in CONTRACT["interventions"]) + "\n")
    data = MarketplaceData.load(folder)
    assert len(data.interventions) == 0
    assert data.interventions["sent_at"].dtype == np.dtype("datetime64[ns]")


@pytest.mark.parametrize("content", [b"", b"PAR1", b"garbage that is not parquet"])
def test_an_empty_or_corrupt_parquet_file_is_refused_naming_the_file(
        tmp_path: Path, content: bytes) -> None:
    folder = _saved(tmp_path)
    (folder / "reviews.parquet").write_bytes(content)
    with pytest.raises(DataContractError) as info:
        MarketplaceData.load(folder)
    assert str(folder / "reviews.parquet") in str(info.value)
    assert [v.table for v in info.value.violations] == ["reviews"]


def test_an_undecodable_csv_is_refused_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in valid_tables().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / "customers.csv").write_bytes(b"customer_id,signup_at\n\xff\xfe\x00,1\n")
    with pytest.raises(DataContractError) as info:
        MarketplaceData.load(folder)
    assert str(folder / "customers.csv") in str(info.value)


@pytest.mark.parametrize("table, column", [("services", "service_id"),
                                           ("bookings", "price"), ("reviews", "rating")])
def test_complex_numbers_are_refused_not_cut_to_their_real_part(table: str,
                                                                column: str) -> None:
    tables = valid_tables()
    _set(table, column, 2 + 3j, row=1)(tables)
    error = refusal(tables)
    violation = next(v for v in error.violations if (v.table, v.column) == (table, column))
    assert violation.count == 1 and "(2+3j)" in violation.examples


def test_duplicate_column_names_are_refused() -> None:
    tables = valid_tables()
    tables["bookings"] = pd.concat([tables["bookings"], tables["bookings"][["price"]]], axis=1)
    error = refusal(tables)
    violation = next(v for v in error.violations if v.table == "bookings")
    assert violation.column == "price" and violation.count is None
    assert "2 columns are named 'price'" in str(error)


def test_an_empty_table_of_any_dtypes_is_an_empty_canonical_table() -> None:
    tables = valid_tables()
    empty = tables["interventions"].iloc[0:0]
    tables["interventions"] = empty.assign(
        intervention_id=empty["intervention_id"].astype("bool"),
        sent_at=empty["sent_at"].dt.tz_localize("UTC"),
        treated=empty["treated"].astype("float64"))
    data = MarketplaceData(**tables)
    assert len(data.interventions) == 0
    assert data.interventions["intervention_id"].dtype == np.dtype("int64")
    assert data.interventions["sent_at"].dtype == np.dtype("datetime64[ns]")
    assert data.interventions["treated"].dtype == np.dtype("bool")
