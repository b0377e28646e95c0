"""Event tables in PostgreSQL (barberpro_ml.data.sql), against a real server.

Every test gets its own database on the session's cluster (``postgres_cluster``); nothing is
mocked. What is checked: a data set written and read back is identical (dtypes, category
order, digest); ``as_of`` is pushed into the SQL (only the rows known at ``as_of`` are
transferred, and the features computed from them equal those of the full data); a write is
all or nothing; the DDL refuses bad rows; errors name what is wrong; the command line reads
and writes databases wherever it takes a folder.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from barberpro_ml.cli import app
from barberpro_ml.data import DataContractError, MarketplaceData, SimulationConfig, simulate
from barberpro_ml.data.schema import KNOWN_AT, TABLES, id_column
from barberpro_ml.data.sql import init_db, parse_database_url, read_sql
from barberpro_ml.errors import InputError
from barberpro_ml.features import customer_features, provider_features
from barberpro_ml.infra.postgres import free_port
from strategies import as_of_for, known_at, marketplace_data

_numbers = itertools.count()


@pytest.fixture(scope="module")
def small() -> MarketplaceData:
    """A simulated marketplace, small enough to write in a fraction of a second."""
    return simulate(SimulationConfig(n_customers=300, seed=3))


@pytest.fixture(scope="module")
def events_database(postgres_cluster: Any) -> str:
    """A database for this module's tests (each works in a schema of its own)."""
    name = f"events_{os.getpid()}"
    postgres_cluster.create_database(name)
    return name


@pytest.fixture
def database(postgres_cluster: Any, events_database: str) -> Iterator[str]:
    """The URL of a fresh, empty schema of its own, as the connection's search path.

    (A schema rather than a database per test: each new database copies a template of
    several MB that the cluster then flushes to disk when it stops.)
    """
    schema = f"t{next(_numbers)}"
    conninfo = postgres_cluster.conninfo(events_database)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    yield f"{postgres_cluster.url(events_database)}&options=-csearch_path%3D{schema}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[arg-type]


def by_id(data: MarketplaceData) -> MarketplaceData:
    """The same data set with every table's rows in id order (how a database returns them)."""
    return MarketplaceData(**{name: frame.sort_values(id_column(name), ignore_index=True)
                              for name, frame in data.tables().items()}, truth=None)


def assert_identical(a: MarketplaceData, b: MarketplaceData) -> None:
    """Same values, dtypes, column order and category order in every table; same digest."""
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True,
                                      check_categorical=True)
        for column, dtype in getattr(a, name).dtypes.items():
            if isinstance(dtype, pd.CategoricalDtype):
                assert list(dtype.categories) == list(
                    getattr(b, name)[column].cat.categories), (name, column)
    assert a.equals(b) and a.digest() == b.digest()


def sql(url: str, statement: str) -> None:
    """Run one statement with psycopg directly, as another service writing events would."""
    location = parse_database_url(url)
    with psycopg.connect(location.url.set(drivername="postgresql").render_as_string(
            hide_password=False)) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- round trips
def test_a_data_set_written_and_read_back_is_identical(small: MarketplaceData,
                                                       database: str) -> None:
    written = small.to_sql(database, name="shop")
    assert written.rows == small.summary()
    back, report = read_sql(database)
    assert_identical(back, small)
    assert report.rows == small.summary() and report.name == "shop"
    assert back.truth is None
    assert MarketplaceData.from_sql(database).equals(small)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=marketplace_data())
def test_random_marketplaces_round_trip_whatever_their_row_order(data: MarketplaceData,
                                                                 database: str) -> None:
    # rows in random order, sparse ids up to 10**9, zero prices, departures, empty tables
    data.to_sql(database, if_exists="replace")
    back = MarketplaceData.from_sql(database)
    assert back.digest() == data.digest()
    assert_identical(back, by_id(data))


TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
               max_size=12)
"""Any text PostgreSQL can hold (not NUL): quotes, commas, newlines, backslashes, ""."""


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tips=st.lists(st.floats(0, 1e300, allow_nan=False, allow_subnormal=True), min_size=5,
                     max_size=5),
       micros=st.lists(st.integers(0, 10**6 - 1), min_size=5, max_size=5),
       names=st.lists(TEXT, min_size=7, max_size=7),
       channels=st.lists(TEXT, min_size=5, max_size=5, unique=True))
def test_money_microseconds_and_text_survive_exactly(small: MarketplaceData, database: str,
                                                     tips: list[float], micros: list[int],
                                                     names: list[str], channels: list[str]
                                                     ) -> None:
    tables = small.tables()
    bookings, reviews = tables["bookings"].copy(), tables["reviews"].copy()
    bookings.loc[:4, "tip"] = tips
    reviews.loc[:4, "created_at"] += pd.to_timedelta(micros, unit="us")
    services = tables["services"].assign(name=names)
    customers = tables["customers"].copy()
    customers["acquisition_channel"] = customers["acquisition_channel"].cat.rename_categories(
        channels)
    data = MarketplaceData(**{**tables, "bookings": bookings, "reviews": reviews,
                              "services": services, "customers": customers}, truth=None)
    data.to_sql(database, if_exists="replace")
    assert_identical(MarketplaceData.from_sql(database), data)


def test_nanoseconds_and_extra_columns_are_refused_before_writing(small: MarketplaceData,
                                                                  database: str) -> None:
    tables = small.tables()
    reviews = tables["reviews"].copy()
    reviews.loc[:2, "created_at"] += pd.Timedelta(nanoseconds=7)
    finer = MarketplaceData(**{**tables, "reviews": reviews}, truth=None)
    with pytest.raises(InputError, match=r"reviews\.created_at: 3 timestamp\(s\) have "
                                         r"nanoseconds.*floor\('us'\)"):
        finer.to_sql(database)
    wider = MarketplaceData(**{**tables, "services": tables["services"].assign(colour="red")},
                            truth=None)
    with pytest.raises(InputError, match=r"services: extra column.*colour"):
        wider.to_sql(database)
    with pytest.raises(InputError, match="missing table"):  # nothing was created
        MarketplaceData.from_sql(database)


# --------------------------------------------------------------------------- as_of pushdown
@pytest.fixture(scope="module")
def year() -> MarketplaceData:
    """Two years of a 1,500-customer marketplace whose barbers leave often (half a year's
    rate), so that some on the platform at the test's as_of leave after it."""
    config = SimulationConfig(n_customers=1500, seed=5)
    return simulate(config.model_copy(update={"providers": config.providers.model_copy(
        update={"departure_rate_per_year": 0.5})}))


def test_as_of_is_pushed_down_and_features_equal_the_parquet_paths(
        year: MarketplaceData, database: str, tmp_path: Path) -> None:
    full = MarketplaceData.load(year.save(tmp_path / "events"))   # the Parquet path
    as_of = pd.Timestamp("2024-03-31 18:00:00")
    year.to_sql(database)
    part, report = read_sql(database, as_of=as_of)

    # only the rows known at as_of crossed the wire, counted as they arrived
    known = {name: int((frame[KNOWN_AT[name]] <= as_of).sum()) if KNOWN_AT[name] else
             len(frame) for name, frame in full.tables().items()}
    assert report.rows == known
    for name in ("customers", "bookings", "reviews", "interventions"):
        assert report.rows[name] < len(getattr(full, name)), name
    assert 0 < sum(report.rows.values()) < 0.75 * sum(full.summary().values())

    # exactly what an export at as_of holds: a departure after as_of is not known
    left = full.providers["left_at"]
    assert ((left > as_of) & (full.providers["joined_at"] <= as_of)).any()  # the case is here
    assert not (part.providers["left_at"] > as_of).any()
    assert_identical(part, known_at(full, as_of))

    # the features: byte for byte, categories included
    for column in ("acquisition_channel", "neighborhood"):  # every label is used by as_of
        assert set(part.customers[column]) == set(full.customers[column])
    expected, got = customer_features(full, as_of), customer_features(part, as_of)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert (pd.util.hash_pandas_object(got).to_numpy().tobytes()
            == pd.util.hash_pandas_object(expected).to_numpy().tobytes())
    pd.testing.assert_frame_equal(provider_features(part, as_of),
                                  provider_features(full, as_of), check_exact=True)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as plain values (as in test_features_pit: a category list is the
    vocabulary of the rows present, which an as_of read has fewer of)."""
    return frame.astype({c: "object" for c, t in frame.dtypes.items()
                         if isinstance(t, pd.CategoricalDtype)})


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(draw=st.data())
def test_an_as_of_read_is_the_data_known_at_as_of(draw: st.DataObject, database: str) -> None:
    data = draw.draw(marketplace_data())
    as_of = draw.draw(as_of_for(data))
    data.to_sql(database, if_exists="replace")
    part, report = read_sql(database, as_of=as_of)
    expected = known_at(data, as_of)
    assert report.rows == expected.summary()
    assert_identical(part, by_id(expected))
    pd.testing.assert_frame_equal(comparable(customer_features(part, as_of)),
                                  comparable(customer_features(data, as_of)), check_exact=True)


# --------------------------------------------------------------------------- all or nothing
def test_a_write_that_fails_midway_leaves_the_previous_contents(small: MarketplaceData,
                                                                database: str) -> None:
    small.to_sql(database, name="first")
    other = simulate(SimulationConfig(n_customers=200, seed=4))
    # a bad row in a late table, after customers, providers, services and bookings were copied
    other.reviews.loc[len(other.reviews) - 1, "rating"] = 7
    with pytest.raises(InputError) as refused:
        other.to_sql(database, if_exists="replace", name="second")
    message = str(refused.value)
    assert "writing reviews" in message and "reviews.rating: rating in 1..5" in message
    assert "nothing was written" in message and "Failing row" in message
    back, report = read_sql(database)
    assert_identical(back, small)
    assert report.name == "first"


def test_a_dangling_reference_is_refused_when_the_keys_are_put_back(small: MarketplaceData,
                                                                     database: str) -> None:
    small.to_sql(database, name="first")
    other = simulate(SimulationConfig(n_customers=200, seed=4))
    other.bookings.loc[3, "customer_id"] = 10**6  # no such customer
    with pytest.raises(InputError, match=r"bookings\.customer_id: refers to a known customers "
                                         r"row.*\(customer_id\)=\(1000000\).*nothing was "
                                         r"written"):
        other.to_sql(database, if_exists="replace")
    assert_identical(MarketplaceData.from_sql(database), small)


def test_existing_events_are_kept_unless_replaced(small: MarketplaceData, database: str) -> None:
    small.to_sql(database)
    other = simulate(SimulationConfig(n_customers=100, seed=9))
    with pytest.raises(InputError, match=r"already holds events .*if_exists='replace'"):
        other.to_sql(database)
    assert MarketplaceData.from_sql(database).equals(small)
    other.to_sql(database, if_exists="replace")
    assert MarketplaceData.from_sql(database).equals(other)


@pytest.mark.parametrize(("statement", "constraint"), [
    ("UPDATE reviews SET rating = 7 WHERE review_id = 1", "reviews_rating_1_to_5"),
    ("UPDATE bookings SET tip = -1 WHERE booking_id = 1", "bookings_tip_non_negative"),
    ("UPDATE bookings SET price = 'NaN' WHERE booking_id = 1", "bookings_price_non_negative"),
    ("UPDATE bookings SET tip = 'Infinity' WHERE booking_id = 1", "bookings_tip_non_negative"),
    ("UPDATE bookings SET status = 'pending' WHERE booking_id = 1", "bookings_status_vocabulary"),
    ("UPDATE bookings SET discount = price + 1 WHERE booking_id = 1",
     "bookings_discount_at_most_price"),
    ("UPDATE bookings SET scheduled_at = created_at - interval '1 hour' WHERE booking_id = 1",
     "bookings_scheduled_after_created"),
    ("UPDATE services SET duration_min = 0 WHERE service_id = 1", "services_duration_min_positive"),
    ("UPDATE bookings SET customer_id = 999999 WHERE booking_id = 1", "bookings_customer_id_fkey"),
    ("INSERT INTO reviews SELECT 999999, booking_id, customer_id, provider_id, 5, created_at "
     "FROM reviews WHERE review_id = 1", "reviews_one_per_booking"),
    ("UPDATE providers SET left_at = joined_at - interval '1 day' WHERE provider_id = 1",
     "providers_left_after_joining"),
    ("DELETE FROM customers WHERE customer_id = (SELECT customer_id FROM bookings LIMIT 1)",
     "bookings_customer_id_fkey"),
])
def test_the_tables_refuse_rows_that_break_the_contract(small: MarketplaceData, database: str,
                                                        statement: str, constraint: str) -> None:
    small.to_sql(database)
    with pytest.raises(psycopg.errors.IntegrityError, match=constraint):
        sql(database, statement)
    assert MarketplaceData.from_sql(database).equals(small)


# --------------------------------------------------------------------------- db init
def test_db_init_is_idempotent_and_declares_keys_checks_and_indexes(database: str) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["db", "init", database, "--schema", "events"])
    assert first.exit_code == 0, first.output
    assert "created 8 table(s)" in first.output and "0 already there" in first.output
    again = runner.invoke(app, ["db", "init", database, "--schema", "events"])
    assert again.exit_code == 0, again.output
    assert "created 0 table(s) (none); 8 already there" in again.output

    engine = sa.create_engine(parse_database_url(database).url)
    try:
        inspector = sa.inspect(engine)
        for table in TABLES:
            assert inspector.get_pk_constraint(table, schema="events")[
                "constrained_columns"] == [id_column(table)]
            if KNOWN_AT[table]:
                indexed = [ix["column_names"] for ix in inspector.get_indexes(table,
                                                                             schema="events")]
                assert [KNOWN_AT[table]] in indexed, table
        references = {(fk["constrained_columns"][0], fk["referred_table"])
                      for fk in inspector.get_foreign_keys("reviews", schema="events")}
        assert references == {("booking_id", "bookings"), ("customer_id", "customers"),
                              ("provider_id", "providers")}
        checks = {c["name"] for c in inspector.get_check_constraints("bookings",
                                                                     schema="events")}
        assert {"bookings_status_vocabulary", "bookings_price_non_negative",
                "bookings_discount_at_most_price"} <= checks
    finally:
        engine.dispose()
    # an empty database reads as an empty, valid data set
    empty = MarketplaceData.from_sql(database, schema="events")
    assert sum(empty.summary().values()) == 0


def test_db_init_refuses_a_table_of_the_same_name_with_other_columns(database: str) -> None:
    sql(database, "CREATE TABLE customers (id integer)")
    with pytest.raises(InputError, match=r"customers lacks customer_id, signup_at"):
        init_db(database)


# --------------------------------------------------------------------------- clear errors
def test_unreachable_servers_and_unknown_databases_are_one_clear_error(
        postgres_cluster: Any) -> None:
    closed = "postgresql://someone:sekret@127.0.0.1:1/events"
    with pytest.raises(InputError, match=r"cannot connect to postgresql://someone:\*\*\*@"
                                         r"127\.0\.0\.1:1/events: .*refused") as refused:
        MarketplaceData.from_sql(closed)
    assert "sekret" not in str(refused.value)
    for hidden in ("postgresql://me@127.0.0.1:1/events?password=sekret",
                   "mysql://me:sekret@host/events?password=sekret"):
        with pytest.raises(InputError) as refused:
            MarketplaceData.from_sql(hidden)
        assert "sekret" not in str(refused.value)
    nowhere = postgres_cluster.url("no_such_database")
    with pytest.raises(InputError, match='database "no_such_database" does not exist'):
        MarketplaceData.from_sql(nowhere)
    with pytest.raises(InputError, match="not a PostgreSQL URL"):
        MarketplaceData.from_sql("mysql://me@host/db")
    with pytest.raises(InputError, match="schema 'nope' does not exist"):
        MarketplaceData.from_sql(postgres_cluster.url("postgres"), schema="nope")


def test_missing_tables_and_columns_are_named(small: MarketplaceData, database: str) -> None:
    with pytest.raises(InputError, match=r"missing table\(s\) customers, providers, services, "
                                         r"bookings, reviews, interventions .*db init"):
        MarketplaceData.from_sql(database)
    small.to_sql(database)
    sql(database, "ALTER TABLE bookings DROP COLUMN tip")
    with pytest.raises(DataContractError, match=r"bookings\.tip: required column is missing"):
        MarketplaceData.from_sql(database)


def test_content_errors_are_the_parquet_paths_errors(small: MarketplaceData, database: str,
                                                     tmp_path: Path) -> None:
    # rules no single row can break (a review before its visit, a visit after the barber
    # left) are left to validation: refused on reading, exactly as from a folder
    small.to_sql(database)
    sql(database, "UPDATE reviews SET created_at = '2019-01-01' WHERE review_id IN (1, 2)")
    tables = small.tables()
    reviews = tables["reviews"].copy()
    reviews.loc[reviews["review_id"].isin([1, 2]), "created_at"] = pd.Timestamp("2019-01-01")
    folder = tmp_path / "bad"
    folder.mkdir()
    for name, frame in {**tables, "reviews": reviews}.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    with pytest.raises(DataContractError) as from_parquet:
        MarketplaceData.load(folder)
    with pytest.raises(DataContractError) as from_sql:
        MarketplaceData.from_sql(database)
    assert str(from_sql.value) == str(from_parquet.value)
    assert "reviews.created_at: 'not before the visit' failed for 2 rows" in str(from_sql.value)


def test_a_column_of_another_type_is_parsed_or_refused_by_validation(small: MarketplaceData,
                                                                     database: str) -> None:
    small.to_sql(database)
    sql(database, "ALTER TABLE services DROP CONSTRAINT services_base_price_non_negative, "
                  "ALTER COLUMN base_price TYPE text")
    assert MarketplaceData.from_sql(database).equals(small)   # text that holds numbers reads
    sql(database, "UPDATE services SET base_price = 'free' WHERE service_id = 1")
    with pytest.raises(DataContractError, match=r"services\.base_price: 'numeric values' "
                                                r"failed for 1 row; examples: 'free'"):
        MarketplaceData.from_sql(database)


# --------------------------------------------------------------------------- command line
def one_line_error(result: Any) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def test_the_command_line_reads_databases_wherever_it_reads_folders(
        postgres_cluster: Any, database: str, tmp_path: Path) -> None:
    runner = CliRunner()
    closed = "postgresql://me@127.0.0.1:1/events"
    for command in (["validate", closed], ["train", "segments", "--data", closed],
                    ["train", "churn", "--data", closed], ["pipeline", "--data", closed],
                    ["score", "--data", closed, "--out", str(tmp_path / "p.parquet")],
                    ["serve", "--data", closed, "--port", str(free_port())]):
        line = one_line_error(runner.invoke(app, command))
        assert "cannot connect to postgresql://me@127.0.0.1:1/events" in line, command
    line = one_line_error(runner.invoke(app, ["validate", database]))
    assert "missing table(s)" in line and "barberpro-ml db init" in line
    line = one_line_error(runner.invoke(app, ["simulate", "--customers", "50"]))
    assert "--out DIR, --to-sql URL, or both" in line


def test_simulate_to_sql_then_train_on_the_database(mlflow_store: Any, database: str,
                                                    tmp_path: Path) -> None:
    import mlflow
    import yaml

    runner = CliRunner()
    folder = tmp_path / "shop"
    made = runner.invoke(app, ["simulate", "--customers", "400", "--seed", "2", "--out",
                               str(folder), "--to-sql", database])
    assert made.exit_code == 0, made.output
    again = runner.invoke(app, ["simulate", "--customers", "400", "--seed", "2",
                                "--to-sql", database])
    assert "already holds events" in one_line_error(again) and "--replace" in again.output

    valid = runner.invoke(app, ["validate", database])
    assert valid.exit_code == 0 and "valid (data set shop)" in valid.output, valid.output

    config = tmp_path / "segments.yaml"
    config.write_text(yaml.safe_dump({"model": {"k_values": [3, 4]},
                                      "evaluation": {"n_bootstrap": 1000, "seed": 0}}))
    tags = []
    for source in (database, str(folder)):
        trained = runner.invoke(app, ["train", "segments", "--config", str(config),
                                      "--data", source])
        assert trained.exit_code == 0, trained.output
        run = mlflow.search_runs(experiment_names=["barberpro-segments"],
                                 order_by=["start_time DESC"], max_results=1,
                                 output_format="list")[0]
        tags.append({k: v for k, v in run.data.tags.items() if k.startswith("data_set.")})
    # the same tables, read from PostgreSQL or from Parquet: the same identity
    assert tags[0] == tags[1]
    assert tags[0]["data_set.name"] == "shop"
    assert tags[0]["data_set.digest"] == MarketplaceData.load(folder).digest()


def test_a_schema_in_the_url_is_the_schema_option(small: MarketplaceData, database: str) -> None:
    small.to_sql(database, schema="events")
    via_query = f"{database}&schema=events" if "?" in database else f"{database}?schema=events"
    back, report = read_sql(via_query)
    assert back.equals(small) and report.location.endswith("(schema events)")
    assert report.name == f"{parse_database_url(database).database}.events"
    assert np.all(report.bytes["bookings"] > 0)


def test_a_search_path_without_an_existing_schema_is_a_clear_error(postgres_cluster: Any,
                                                                   events_database: str) -> None:
    url = f"{postgres_cluster.url(events_database)}&options=-csearch_path%3Dnowhere"
    with pytest.raises(InputError, match="no schema of the search path exists"):
        MarketplaceData.from_sql(url)
