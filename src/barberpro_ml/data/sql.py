"""The event tables in PostgreSQL: DDL from the contract, all-or-nothing writes, ``as_of`` reads.

Production mode keeps the marketplace's events in PostgreSQL (SQLAlchemy 2 Core for the
schema and the queries, psycopg 3 for the bulk transfers). Three operations:

- :func:`init_db` creates the contract's tables (:func:`contract_metadata`: primary keys,
  foreign keys, CHECK constraints for the value rules a single row can break, indexes on the
  columns a cut-off filters on), idempotently.
- :func:`write_sql` (``data.to_sql(url)``) writes a data set in **one transaction** with
  ``COPY ... FROM STDIN``: a failure anywhere (a refused row in the last table, a lost
  connection) leaves the previous contents as they were.
- :func:`read_sql` (``MarketplaceData.from_sql(url, as_of=...)``) streams the tables with
  ``COPY (SELECT ...) TO STDOUT`` through pyarrow's incremental CSV reader (memory bounded by
  one block, not by the result set), restores the dtypes of the Parquet path and validates
  with the same function, so the same data give the same frames, errors and
  :meth:`~barberpro_ml.data.MarketplaceData.digest`.

What ``as_of`` transfers
------------------------
``as_of`` is pushed into the SQL: only rows known at ``as_of`` leave the server. Known means
the contract's "known at" column (:data:`~barberpro_ml.data.schema.KNOWN_AT`) is ``<= as_of``,
inclusive, as in the feature builders:

=============  ===========================================================================
table          rows transferred
=============  ===========================================================================
customers      ``signup_at <= as_of``
providers      ``joined_at <= as_of``; ``left_at`` only when ``left_at <= as_of`` (NULL
               otherwise: a departure after ``as_of`` is not known at ``as_of``)
services       all (the catalogue has no time)
bookings       ``created_at <= as_of``, every column as stored. An *upcoming* booking
               (``scheduled_at > as_of``) carries its stored outcome (status, price,
               discount, tip): the contract has no "pending" status to put there, and the
               feature builders read only the ``scheduled_at`` of upcoming bookings
reviews        ``created_at <= as_of``
interventions  ``sent_at <= as_of``
=============  ===========================================================================

The result is therefore what an export at ``as_of`` would have held (the rows referred to
are always among those transferred: the contract's time order guarantees it), and the
features of ``from_sql(url, as_of=t)`` at ``t`` equal those of the full data at ``t``. One
difference remains by construction: a categorical column's categories are the labels of the
rows transferred, so a label first used after ``as_of`` (a new neighbourhood) is not among
them, as with any data set validated at ``as_of``.

Row order and categories
------------------------
Rows come back in id order (tables have no other order). The order of each categorical
column's categories is recorded by :func:`write_sql` in ``barberpro_categories`` and
restored on reading (labels it does not list follow, sorted), so a data set written and read
back is :meth:`~barberpro_ml.data.MarketplaceData.equals` to the original. The data set's
name (its identity in the registry, see :func:`~barberpro_ml.data.sources.load_source`) is
kept in ``barberpro_data_set``. Both tables are optional when reading: events written by
other services read the same way.

URLs
----
Any ``postgresql://``, ``postgresql+<driver>://`` or ``postgres://`` URL; the driver is always
psycopg 3. A ``schema`` query parameter (``...?schema=events``) names the schema, as the
``schema`` argument does; libpq parameters such as ``passfile`` pass through. Passwords are
never shown in messages.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.schema import SchemaItem

from barberpro_ml.data.cutoff import AsOf, to_as_of
from barberpro_ml.data.schema import (
    CONTRACT,
    FOREIGN_KEYS,
    KNOWN_AT,
    TABLES,
    VOCABULARIES,
    ColumnSpec,
    id_column,
)
from barberpro_ml.data.validation import MAX_EXAMPLES, ContractViolation, DataContractError
from barberpro_ml.errors import InputError

if TYPE_CHECKING:
    from barberpro_ml.data.container import MarketplaceData

__all__ = [
    "CATEGORIES_TABLE",
    "DATA_SET_TABLE",
    "DatabaseLocation",
    "InitReport",
    "SqlReadReport",
    "SqlWriteReport",
    "contract_metadata",
    "init_db",
    "is_database_url",
    "parse_database_url",
    "read_sql",
    "write_sql",
]

DATA_SET_TABLE: Final = "barberpro_data_set"
"""One row: the data set's name (nullable), contract version and when it was written."""
CATEGORIES_TABLE: Final = "barberpro_categories"
"""The order of each categorical column's categories, as written."""
CONTRACT_VERSION: Final = 1

_URL_PATTERN: Final = re.compile(r"^postgres(?:ql)?(?:\+[A-Za-z0-9_]+)?://")
_BLOCK_BYTES: Final = 4 << 20
"""Bytes of CSV per block: what a read holds beyond its result (and per COPY write)."""


# --------------------------------------------------------------------------------- URLs
def is_database_url(source: object) -> bool:
    """Whether ``source`` is a PostgreSQL URL (``postgresql[+driver]://...``), not a folder."""
    return isinstance(source, str | URL) and bool(_URL_PATTERN.match(str(source)))


@dataclass(frozen=True)
class DatabaseLocation:
    """Where event tables live: a PostgreSQL URL (driver: psycopg) and an optional schema."""

    url: URL
    schema: str | None

    @property
    def database(self) -> str:
        return self.url.database or ""

    def describe(self) -> str:
        """The URL without its password or query parameters, and the schema."""
        shown = self.url.set(drivername="postgresql", query={}).render_as_string(
            hide_password=True)
        return shown + (f" (schema {self.schema})" if self.schema else "")

    def default_name(self) -> str:
        """The data-set name when none was recorded: ``database`` or ``database.schema``."""
        return f"{self.database}.{self.schema}" if self.schema else self.database


def parse_database_url(url: str | URL, schema: str | None = None) -> DatabaseLocation:
    """Read a PostgreSQL URL and schema (argument or ``?schema=`` in the URL).

    Raises
    ------
    InputError
        Not a URL, not PostgreSQL, or two different schemas given.
    """
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
    if not is_database_url(text):
        raise InputError(f"not a PostgreSQL URL: {_mask(text)!r}; expected "
                         "postgresql://USER@HOST:PORT/DATABASE (a folder of tables is given "
                         "as a path)")
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://"):]
    try:
        parsed = make_url(text)
    except sa.exc.ArgumentError as exc:
        raise InputError(f"cannot read the database URL {_mask(text)!r}: {exc}") from None
    in_url = parsed.query.get("schema")
    if isinstance(in_url, tuple):
        raise InputError(f"{_mask(text)}: give the schema once (?schema=NAME)")
    if schema and in_url and schema != in_url:
        raise InputError(f"two schemas given: {schema!r} and ?schema={in_url} in the URL")
    if not parsed.database:
        raise InputError(f"{_mask(text)}: the URL names no database "
                         "(postgresql://USER@HOST:PORT/DATABASE)")
    return DatabaseLocation(
        url=parsed.difference_update_query(["schema"]).set(drivername="postgresql+psycopg"),
        schema=schema or in_url or None)


def _mask(text: str) -> str:
    """A URL as text with any password replaced (user:PASSWORD@ or ?password=...)."""
    text = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", text)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", text)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    # psycopg's own exception, when SQLAlchemy wrapped it: its message without SQLAlchemy's
    # statement dump and background link
    inner = getattr(exc, "orig", None) or exc
    text = " ".join(str(inner).split()) or type(inner).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def _connection(location: DatabaseLocation, *, read_only: bool = False
                ) -> Iterator[Connection]:
    """A connection in a transaction: committed when the block ends, rolled back on error.

    Reads run REPEATABLE READ and READ ONLY: the six tables are one consistent snapshot even
    while other services append events.
    """
    engine = sa.create_engine(location.url, poolclass=sa.pool.NullPool)
    try:
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise InputError(f"cannot connect to {location.describe()}: {_one_line(exc)}"
                             ) from None
        with conn:
            if read_only:
                conn = conn.execution_options(isolation_level="REPEATABLE READ",
                                              postgresql_readonly=True)
            with conn.begin():
                # how values are written as text in COPY: ISO timestamps, shortest exact floats
                conn.execute(sa.text("SET LOCAL DateStyle = 'ISO, YMD'"))
                conn.execute(sa.text("SET LOCAL TimeZone = 'UTC'"))
                conn.execute(sa.text("SET LOCAL extra_float_digits = 1"))
                yield conn
    finally:
        engine.dispose()


def _driver(conn: Connection) -> Any:
    """The psycopg connection under ``conn`` (same transaction), for COPY."""
    return conn.connection.driver_connection


# --------------------------------------------------------------------------------- DDL
_SQL_TYPES: Final[dict[str, Any]] = {
    "id": sa.BigInteger(), "timestamp": sa.DateTime(timezone=False), "money": sa.Double(),
    "count": sa.BigInteger(), "rating": sa.SmallInteger(), "flag": sa.Boolean(),
    "category": sa.Text(), "text": sa.Text(),
}
"""PostgreSQL type of each kind of contract column."""


def _column_checks(table: str, spec: ColumnSpec) -> list[tuple[str, str, str]]:
    """``(constraint name, SQL condition, what it means)`` for one contract column."""
    c = spec.name
    vocabulary = VOCABULARIES.get((table, c))
    checks = {
        "id": [(f"{table}_{c}_non_negative", f"{c} >= 0", "non-negative id")],
        "money": [(f"{table}_{c}_non_negative", f"{c} >= 0 AND {c} < 'Infinity'::float8",
                   "non-negative and finite")],
        "count": [(f"{table}_{c}_positive", f"{c} > 0", "positive")],
        "rating": [(f"{table}_{c}_1_to_5", f"{c} BETWEEN 1 AND 5", "rating in 1..5")],
    }.get(spec.kind, [])
    if vocabulary is not None:
        labels = ", ".join(f"'{v}'" for v in vocabulary)
        checks.append((f"{table}_{c}_vocabulary", f"{c} IN ({labels})",
                       f"one of {list(vocabulary)}"))
    return checks


_ROW_CHECKS: Final[dict[str, list[tuple[str, str, str]]]] = {
    "providers": [("providers_left_after_joining", "left_at IS NULL OR left_at >= joined_at",
                   "left_at >= joined_at")],
    "bookings": [("bookings_scheduled_after_created", "scheduled_at >= created_at",
                  "scheduled_at >= created_at"),
                 ("bookings_discount_at_most_price", "discount <= price", "discount <= price")],
}
"""The cross-column rules of :func:`~barberpro_ml.data.validation.check_relations` that one
row can break, as CHECK constraints."""

_UNIQUE: Final[dict[str, list[tuple[str, tuple[str, ...], str]]]] = {
    "reviews": [("reviews_one_per_booking", ("booking_id",), "at most one review per booking")],
    "interventions": [("interventions_once_per_campaign", ("campaign", "customer_id"),
                       "at most once per campaign")],
}


def constraint_meanings() -> dict[str, str]:
    """``constraint name -> "table.column: rule"`` for every named constraint of the DDL."""
    out: dict[str, str] = {}
    for table in TABLES:
        out[f"{table}_pkey"] = f"{table}.{id_column(table)}: unique"
        for spec in CONTRACT[table]:
            for name, _, meaning in _column_checks(table, spec):
                out[name] = f"{table}.{spec.name}: {meaning}"
        for name, _, meaning in _ROW_CHECKS.get(table, []):
            out[name] = f"{table}: {meaning}"
        for name, columns, meaning in _UNIQUE.get(table, []):
            out[name] = f"{table}.{columns[-1]}: {meaning}"
    for table, column, parent in FOREIGN_KEYS:
        out[f"{table}_{column}_fkey"] = f"{table}.{column}: refers to a known {parent} row"
    return out


def contract_metadata(schema: str | None = None) -> sa.MetaData:
    """The contract's tables as SQLAlchemy Core metadata (in ``schema``, default: the
    connection's current schema), derived from :data:`~barberpro_ml.data.schema.CONTRACT`.

    Per table: the contract's columns (NOT NULL unless nullable), the id column as primary
    key, foreign keys (:data:`~barberpro_ml.data.schema.FOREIGN_KEYS`), CHECK constraints for
    ids, money, counts, ratings and closed vocabularies and for the single-row time and price
    rules, and an index on the "known at" column
    (:data:`~barberpro_ml.data.schema.KNOWN_AT`). Plus :data:`DATA_SET_TABLE` and
    :data:`CATEGORIES_TABLE`. The rules that span rows of several tables (a review after its
    visit, matching its booking's customer) are left to validation on reading.
    """
    metadata = sa.MetaData(schema=schema)
    built: dict[str, sa.Table] = {}
    for table in TABLES:
        columns = [sa.Column(spec.name, _SQL_TYPES[spec.kind], nullable=spec.nullable,
                             primary_key=spec.unique, comment=spec.description)
                   for spec in CONTRACT[table]]
        constraints: list[SchemaItem] = [sa.PrimaryKeyConstraint(id_column(table),
                                                                    name=f"{table}_pkey")]
        for spec in CONTRACT[table]:
            constraints += [sa.CheckConstraint(condition, name=name)
                            for name, condition, _ in _column_checks(table, spec)]
        constraints += [sa.CheckConstraint(condition, name=name)
                        for name, condition, _ in _ROW_CHECKS.get(table, [])]
        constraints += [sa.UniqueConstraint(*cols, name=name)
                        for name, cols, _ in _UNIQUE.get(table, [])]
        constraints += [
            sa.ForeignKeyConstraint([column], [built[parent].c[id_column(parent)]],
                                    name=f"{table}_{column}_fkey")
            for child, column, parent in FOREIGN_KEYS if child == table]
        known_at = KNOWN_AT[table]
        if known_at is not None:
            constraints.append(sa.Index(f"{table}_{known_at}_idx", known_at))
        built[table] = sa.Table(table, metadata, *columns, *constraints)
    sa.Table(DATA_SET_TABLE, metadata,
             sa.Column("name", sa.Text, nullable=True),
             sa.Column("contract_version", sa.Integer, nullable=False),
             sa.Column("written_at", sa.DateTime(timezone=False), nullable=False))
    sa.Table(CATEGORIES_TABLE, metadata,
             sa.Column("table_name", sa.Text, primary_key=True),
             sa.Column("column_name", sa.Text, primary_key=True),
             sa.Column("position", sa.Integer, primary_key=True),
             sa.Column("label", sa.Text, nullable=False))
    return metadata


@dataclass(frozen=True)
class InitReport:
    """What :func:`init_db` found and created."""

    location: str
    created: tuple[str, ...]
    existing: tuple[str, ...]


def _create(conn: Connection, metadata: sa.MetaData, location: DatabaseLocation) -> InitReport:
    """Create the schema and whatever table is missing; check the existing ones' columns."""
    if location.schema:
        conn.execute(sa.schema.CreateSchema(location.schema, if_not_exists=True))
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names(schema=location.schema))
    problems = []
    for table in metadata.sorted_tables:
        if table.name not in present:
            continue
        found = {c["name"] for c in inspector.get_columns(table.name, schema=location.schema)}
        missing = [c.name for c in table.columns if c.name not in found]
        if missing:
            problems.append(f"{table.name} lacks {', '.join(missing)}")
    if problems:
        raise InputError(f"{location.describe()}: tables exist with other columns than the "
                         f"contract's ({'; '.join(problems)}); they were not created by "
                         "barberpro-ml: use another database or schema")
    metadata.create_all(conn, checkfirst=True)
    names = [t.name for t in metadata.sorted_tables]
    return InitReport(location=location.describe(),
                      created=tuple(n for n in names if n not in present),
                      existing=tuple(n for n in names if n in present))


def init_db(url: str | URL, *, schema: str | None = None) -> InitReport:
    """Create the contract's tables (see :func:`contract_metadata`) where they are missing.

    Idempotent: existing tables are left as they are (their columns are checked). The schema
    is created when named and missing. Everything happens in one transaction.

    Raises
    ------
    InputError
        The server cannot be reached, or a table of that name exists with other columns.
    """
    location = parse_database_url(url, schema)
    with _connection(location) as conn:
        try:
            return _create(conn, contract_metadata(location.schema), location)
        except sa.exc.DBAPIError as exc:
            raise InputError(f"{location.describe()}: creating the tables failed: "
                             f"{_one_line(exc)}") from None


# --------------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class SqlWriteReport:
    """What :func:`write_sql` wrote: rows per table and how long the transaction took."""

    location: str
    rows: dict[str, int]
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return sum(self.rows.values()) / self.seconds if self.seconds > 0 else float("nan")


def _to_arrow(table: str, frame: pd.DataFrame) -> pa.Table:
    """The contract columns of ``frame`` as Arrow, in the form COPY's CSV reads exactly."""
    specs = CONTRACT[table]
    extra = [str(c) for c in frame.columns if c not in {s.name for s in specs}]
    if extra:
        raise InputError(f"{table}: extra column(s) {', '.join(extra)} have no place in the "
                         "PostgreSQL tables (the contract's columns only); drop them first")
    columns = []
    for spec in specs:
        values = frame[spec.name]
        if spec.kind == "timestamp":
            ticks = values.to_numpy(dtype="datetime64[ns]").view(np.int64)
            finer = values[~values.isna().to_numpy() & (ticks % 1000 != 0)]
            if len(finer):
                shown = "; ".join(str(v) for v in finer.head(MAX_EXAMPLES))
                raise InputError(
                    f"{table}.{spec.name}: {len(finer)} timestamp(s) have nanoseconds, which "
                    f"PostgreSQL timestamps (microseconds) cannot hold (examples: {shown}); "
                    "round them first, e.g. .dt.floor('us')")
            array = pa.array(values.to_numpy(dtype="datetime64[ns]").astype("datetime64[us]"),
                             mask=values.isna().to_numpy())
        elif spec.kind == "category":
            array = pa.array(values).cast(pa.string())
        elif spec.kind == "text":
            array = pa.array(values, type=pa.string())
        else:
            array = pa.array(values.to_numpy())
        columns.append(array)
    return pa.table(columns, names=[s.name for s in specs])


def _copy_in(cursor: Any, target: str, arrow: pa.Table) -> None:
    """``COPY target FROM STDIN`` the rows of ``arrow`` as CSV, one block at a time."""
    names = ", ".join(arrow.column_names)
    options = pa_csv.WriteOptions(include_header=False)
    rows_per_block = max(1, _BLOCK_BYTES // max(1, arrow.nbytes // max(1, arrow.num_rows)))
    with cursor.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT csv)") as copy:
        for batch in arrow.to_batches(max_chunksize=rows_per_block):
            sink = io.BytesIO()
            pa_csv.write_csv(batch, sink, options)
            copy.write(sink.getbuffer())


def _refused(exc: Exception, table: str, location: DatabaseLocation) -> InputError:
    """A PostgreSQL error while writing ``table``, as one message naming the rule broken."""
    what = f"writing {table} to {location.describe()} failed"
    exc = getattr(exc, "orig", None) or exc  # psycopg's error, when SQLAlchemy wrapped it
    if isinstance(exc, psycopg.Error):
        diag = exc.diag
        rule = constraint_meanings().get(diag.constraint_name or "", diag.constraint_name)
        detail = " ".join((diag.message_detail or "").split())
        primary = " ".join((diag.message_primary or str(exc)).split())
        message = f"{what}: {primary}" + (f" ({rule})" if rule else "") + (
            f"; {detail}" if detail else "")
    else:
        message = f"{what}: {_one_line(exc)}"
    return InputError(message + "; nothing was written (the transaction was rolled back)")


def write_sql(data: MarketplaceData, url: str | URL, *, schema: str | None = None,
              if_exists: Literal["fail", "replace"] = "fail", name: str | None = None
              ) -> SqlWriteReport:
    """Write the six tables to PostgreSQL in one transaction (see the module docstring).

    The tables are created when missing (as :func:`init_db`). With ``if_exists="fail"`` a
    database already holding events is refused; ``"replace"`` empties the tables (``TRUNCATE``,
    inside the same transaction) and writes the new rows. A refused row, a lost connection or
    an interruption anywhere rolls everything back: readers see the old contents or the new,
    never a mix.

    Parameters
    ----------
    data
        The data set. Its contract columns are written (extra columns are refused: they have
        no place in the tables); timestamps must fit microseconds (PostgreSQL's resolution).
    url, schema
        Where (see :func:`parse_database_url`).
    if_exists
        ``"fail"`` or ``"replace"``.
    name
        The data set's name, recorded in :data:`DATA_SET_TABLE` (its identity in the
        registry when read back; default: none recorded, the database's name is used).

    Raises
    ------
    InputError
        Unreachable server, existing events with ``if_exists="fail"``, extra columns,
        sub-microsecond timestamps, or a row PostgreSQL refused (naming table, rule and row).
    """
    if if_exists not in ("fail", "replace"):
        raise InputError(f"if_exists must be 'fail' or 'replace', got {if_exists!r}")
    location = parse_database_url(url, schema)
    arrows = {table: _to_arrow(table, frame) for table, frame in data.tables().items()}
    metadata = contract_metadata(location.schema)
    start = time.perf_counter()
    with _connection(location) as conn:
        try:
            _create(conn, metadata, location)
            tables = [metadata.tables[_key(t, location.schema)] for t in TABLES]
            holding = [t.name for t in tables
                       if conn.execute(sa.select(sa.exists().select_from(t))).scalar()]
        except sa.exc.DBAPIError as exc:
            raise InputError(f"{location.describe()}: {_one_line(exc)}") from None
        if holding and if_exists == "fail":
            raise InputError(f"{location.describe()} already holds events (in "
                             f"{', '.join(holding)}); replace them with if_exists='replace' "
                             "(--replace on the command line), or use another database or "
                             "schema")
        preparer = conn.dialect.identifier_preparer
        every = [*tables, metadata.tables[_key(DATA_SET_TABLE, location.schema)],
                 metadata.tables[_key(CATEGORIES_TABLE, location.schema)]]
        conn.execute(sa.text("TRUNCATE TABLE " + ", ".join(preparer.format_table(t)
                                                             for t in every)))
        _bulk_load(conn, tables, arrows, location)
        conn.execute(metadata.tables[_key(DATA_SET_TABLE, location.schema)].insert(), {
            "name": name, "contract_version": CONTRACT_VERSION,
            "written_at": pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime()})
        categories = [
            {"table_name": table, "column_name": spec.name, "position": i, "label": str(label)}
            for table, frame in data.tables().items() for spec in CONTRACT[table]
            if spec.kind == "category"
            for i, label in enumerate(frame[spec.name].cat.categories)]
        if categories:
            conn.execute(metadata.tables[_key(CATEGORIES_TABLE, location.schema)].insert(),
                         categories)
    return SqlWriteReport(location=location.describe(), rows=data.summary(),
                          seconds=time.perf_counter() - start)


def _bulk_load(conn: Connection, tables: list[sa.Table], arrows: Mapping[str, pa.Table],
               location: DatabaseLocation) -> None:
    """COPY into the emptied ``tables`` with their foreign keys and ``as_of`` indexes set aside,
    then put them back, all in the caller's transaction.

    Checking every key once per table after loading (one join), and building each index once,
    is about 3x faster than a foreign-key trigger and an index insertion per row (1.7M rows:
    31 s -> 10 s here); a violated key is refused when it is put back, rolling everything
    back. Only constraints and indexes that exist under the contract's names are touched.
    """
    schema = location.schema or _current_schema(conn, location)
    constraints = set(conn.execute(sa.text(
        "SELECT c.conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = :schema"), {"schema": schema}).scalars())
    indexes = set(conn.execute(sa.text(
        "SELECT indexname FROM pg_indexes WHERE schemaname = :schema"),
        {"schema": schema}).scalars())
    keys = [c for t in tables for c in sorted(t.foreign_key_constraints, key=lambda c: str(c.name))
            if c.name in constraints]
    built = [i for t in tables for i in sorted(t.indexes, key=lambda i: str(i.name))
             if i.name in indexes]
    for key in keys:
        conn.execute(sa.schema.DropConstraint(key))
    for index in built:
        conn.execute(sa.schema.DropIndex(index))
    preparer = conn.dialect.identifier_preparer
    with _driver(conn).cursor() as cursor:
        for table in tables:
            try:
                _copy_in(cursor, preparer.format_table(table), arrows[table.name])
            except Exception as exc:
                raise _refused(exc, table.name, location) from None
    for index in built:
        conn.execute(sa.schema.CreateIndex(index))
    for key in keys:
        # (AddConstraint marks the constraint as added separately in this metadata, which
        # is built for this one write)
        try:
            conn.execute(sa.schema.AddConstraint(key))
        except sa.exc.DBAPIError as exc:
            raise _refused(exc, str(key.table.name), location) from None


def _current_schema(conn: Connection, location: DatabaseLocation) -> str:
    """The schema unqualified names resolve to (the first existing one on the search path)."""
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
    if schema is None:
        raise InputError(f"{location.describe()}: no schema of the search path exists; name "
                         "one with ?schema=NAME (barberpro-ml db init URL --schema NAME "
                         "creates it)")
    return str(schema)


def _key(table: str, schema: str | None) -> str:
    return f"{schema}.{table}" if schema else table


# --------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class SqlReadReport:
    """What :func:`read_sql` transferred: rows and CSV bytes per table, as received."""

    location: str
    as_of: pd.Timestamp | None
    name: str
    """The data set's name: the one recorded by :func:`write_sql`, else
    :meth:`DatabaseLocation.default_name`."""
    rows: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return sum(self.rows.values()) / self.seconds if self.seconds > 0 else float("nan")


_INTEGER_TYPES: Final = {"bigint", "integer", "smallint"}
_TEXT_TYPES: Final = {"text", "character varying", "character"}


def _arrow_type(spec: ColumnSpec, sql_type: str) -> pa.DataType:
    """How to read a column from CSV: typed when the SQL type is one that converts exactly,
    else as text, which validation then parses or refuses exactly as for a CSV file."""
    kind = spec.kind
    if kind in ("id", "count", "rating") and sql_type in _INTEGER_TYPES:
        return pa.int64()
    if kind == "money" and sql_type in {"double precision", "real", *_INTEGER_TYPES}:
        return pa.float64()
    if kind == "timestamp" and sql_type == "timestamp without time zone":
        return pa.timestamp("us")
    if kind == "flag" and sql_type == "boolean":
        return pa.bool_()
    if kind == "category":
        return pa.dictionary(pa.int32(), pa.string())
    return pa.string()


class _CopyStream(io.RawIOBase):
    """The rows of a ``COPY ... TO STDOUT`` (one message each) as a byte stream."""

    def __init__(self, first: memoryview, rows: Iterator[memoryview]) -> None:
        self._rows = rows
        self._pending = memoryview(bytes(first))
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        size = len(out)
        filled = min(size, len(self._pending))
        out[:filled] = self._pending[:filled]
        self._pending = self._pending[filled:]
        if filled < size:
            # a plain loop: this runs once per row, the cost that bounds a read's throughput
            for row in self._rows:
                end = filled + len(row)
                if end >= size:
                    take = size - filled
                    out[filled:] = row[:take]
                    self._pending = memoryview(bytes(row[take:]))
                    filled = size
                    break
                out[filled:end] = row
                filled = end
        self.bytes += filled
        return filled


def _copy_out(cursor: Any, query: str, params: Mapping[str, Any],
              types: dict[str, pa.DataType]) -> tuple[pa.Table, int]:
    """Stream ``COPY (query) TO STDOUT`` into an Arrow table; also the CSV bytes received."""
    names = list(types)
    schema = pa.schema([(n, t) for n, t in types.items()])
    with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)", params) as copy:
        rows: Iterator[memoryview] = iter(copy)
        first = next(rows, None)
        if first is None:
            return schema.empty_table(), 0
        stream = _CopyStream(first, rows)
        reader = pa_csv.open_csv(
            io.BufferedReader(stream, 1 << 16),
            read_options=pa_csv.ReadOptions(column_names=names, block_size=_BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, true_values=["t"], false_values=["f"],
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False))
        batches = list(reader)
    return pa.Table.from_batches(batches, schema=schema), stream.bytes


def _to_frame(table: str, arrow: pa.Table, order: Mapping[str, list[str]]) -> pd.DataFrame:
    """The Arrow table as pandas, rows in id order, categories in their recorded order."""
    frame: pd.DataFrame = arrow.to_pandas()
    for spec in CONTRACT[table]:
        column = frame[spec.name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            labels = set(column.cat.categories)
            recorded = [c for c in order.get(spec.name, []) if c in labels]
            rest = sorted(labels - set(recorded))
            frame[spec.name] = column.cat.reorder_categories(recorded + rest)
    key = frame[id_column(table)]
    if pd.api.types.is_integer_dtype(key.dtype) and not key.is_monotonic_increasing:
        frame = frame.sort_values(id_column(table), kind="stable", ignore_index=True)
    return frame


def _select(table: sa.Table, cut: pd.Timestamp | None) -> sa.Select[Any]:
    """The contract columns of ``table`` known at ``cut`` (see the module docstring)."""
    name = table.name
    columns: list[Any] = [table.c[spec.name] for spec in CONTRACT[name]]
    known_at = KNOWN_AT[name]
    if cut is None:
        return sa.select(*columns)
    as_of = sa.bindparam("as_of", cut.to_pydatetime(), type_=sa.DateTime())
    if name == "providers":
        columns = [sa.case((table.c.left_at <= as_of, table.c.left_at), else_=sa.null()
                           ).label("left_at") if c.name == "left_at" else c for c in columns]
    query = sa.select(*columns)
    return query if known_at is None else query.where(table.c[known_at] <= as_of)


def _inspect(conn: Connection, location: DatabaseLocation
             ) -> tuple[str, dict[str, dict[str, str]]]:
    """The schema read from and ``table -> column -> SQL type`` of the tables there."""
    schema = location.schema or _current_schema(conn, location)
    if location.schema and not conn.execute(
            sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first():
        raise InputError(f"{location.describe()}: the schema {schema!r} does not exist; "
                         f"create the tables with: barberpro-ml db init URL --schema {schema}")
    rows = conn.execute(sa.text(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = :schema AND table_name = ANY(:tables)"),
        {"schema": schema, "tables": [*TABLES, DATA_SET_TABLE, CATEGORIES_TABLE]})
    found: dict[str, dict[str, str]] = {}
    for table_name, column_name, data_type in rows:
        found.setdefault(str(table_name), {})[str(column_name)] = str(data_type)
    return schema, found


def _read_metadata(conn: Connection, tables: Mapping[str, dict[str, str]],
                   metadata: sa.MetaData, schema: str) -> tuple[str | None, dict[str, Any]]:
    """The recorded data-set name and category orders (empty when not recorded)."""
    name = None
    if {"name"} <= set(tables.get(DATA_SET_TABLE, {})):
        t = metadata.tables[_key(DATA_SET_TABLE, schema)]
        recorded = conn.execute(sa.select(t.c.name).limit(1)).scalar()
        name = str(recorded) if recorded else None
    order: dict[str, dict[str, list[str]]] = {}
    if {"table_name", "column_name", "position", "label"} <= set(tables.get(CATEGORIES_TABLE,
                                                                           {})):
        t = metadata.tables[_key(CATEGORIES_TABLE, schema)]
        for table, column, label in conn.execute(
                sa.select(t.c.table_name, t.c.column_name, t.c.label).order_by(
                    t.c.table_name, t.c.column_name, t.c.position)):
            order.setdefault(str(table), {}).setdefault(str(column), []).append(str(label))
    return name, order


def read_sql(url: str | URL, *, as_of: AsOf | None = None, schema: str | None = None
             ) -> tuple[MarketplaceData, SqlReadReport]:
    """Read and validate the six tables, only the rows known at ``as_of`` (when given).

    See the module docstring for what ``as_of`` transfers per table, row order and
    categories. All tables are read in one REPEATABLE READ transaction (one snapshot).

    Parameters
    ----------
    url, schema
        Where (see :func:`parse_database_url`).
    as_of
        Cut-off, a naive UTC timestamp (inclusive); ``None`` reads everything.

    Returns
    -------
    tuple of MarketplaceData and SqlReadReport
        The validated data (no ground truth) and what was transferred.

    Raises
    ------
    InputError
        Unreachable server or unknown database or schema; a contract table missing
        (the message lists what the schema holds).
    DataContractError
        Missing columns (before any row is read), or content breaking the contract: the same
        error, with the same violations, as :meth:`MarketplaceData.load` gives for the same
        tables in Parquet.
    """
    from barberpro_ml.data.container import MarketplaceData

    location = parse_database_url(url, schema)
    stamp = None if as_of is None else to_as_of(as_of)
    # stored timestamps are whole microseconds: t <= as_of exactly when t <= floor(as_of)
    cut = None if stamp is None else stamp.floor("us")
    start = time.perf_counter()
    frames: dict[str, pd.DataFrame] = {}
    rows: dict[str, int] = {}
    sizes: dict[str, int] = {}
    with _connection(location, read_only=True) as conn:
        try:
            schema_name, found = _inspect(conn, location)
        except sa.exc.DBAPIError as exc:
            raise InputError(f"{location.describe()}: {_one_line(exc)}") from None
        missing = [t for t in TABLES if t not in found]
        if missing:
            present = sorted(found) or ["no tables"]
            raise InputError(
                f"{location.describe()}: missing table(s) {', '.join(missing)} in schema "
                f"{schema_name!r} (found: {', '.join(present)}); create them with: "
                "barberpro-ml db init URL" + (f" --schema {schema_name}" if location.schema
                                             else ""))
        absent = [ContractViolation(
            t, s.name, "required column is missing", None,
            (f"columns present: {', '.join(found[t])}",))
            for t in TABLES for s in CONTRACT[t] if s.name not in found[t]]
        if absent:
            raise DataContractError(absent)
        metadata = contract_metadata(schema_name)
        name, order = _read_metadata(conn, found, metadata, schema_name)
        for table in TABLES:
            query = _select(metadata.tables[_key(table, schema_name)], cut).compile(
                dialect=conn.dialect)
            types = {s.name: _arrow_type(s, found[table][s.name]) for s in CONTRACT[table]}
            try:
                with _driver(conn).cursor() as cursor:
                    arrow, sizes[table] = _copy_out(cursor, str(query), query.params, types)
            except pa.ArrowInvalid as exc:
                raise InputError(f"{location.describe()}: a value of table {table} cannot be "
                                 f"read as its contract type: {_one_line(exc)}") from None
            except psycopg.Error as exc:
                raise InputError(f"{location.describe()}: reading {table} failed: "
                                 f"{_one_line(exc)}") from None
            rows[table] = arrow.num_rows
            frames[table] = _to_frame(table, arrow, order.get(table, {}))
            del arrow
    report = SqlReadReport(location=location.describe(), as_of=stamp,
                           name=name or location.default_name(), rows=rows, bytes=sizes,
                           seconds=time.perf_counter() - start)
    try:
        data = MarketplaceData(**frames, truth=None)
    except DataContractError as exc:
        raise DataContractError(exc.violations) from None
    return data, report
