"""The six event tables as Spark DataFrames, and their rows back as contract pandas frames.

:class:`SparkEvents` holds one Spark DataFrame per table of the data contract
(``data/README.md``), with the contract's columns in these Spark types:

=============  ==========================  ==============================================
contract kind  Spark type                  back in pandas (:func:`to_contract_frame`)
=============  ==========================  ==============================================
id, count,     ``bigint``                  ``int64``
rating
timestamp      ``timestamp_ntz``           ``datetime64[ns]`` (naive UTC)
               (or ``timestamp``, read in
               the session's UTC zone)
money          ``double``                  ``float64``
flag           ``boolean``                 ``bool``
category       ``string``                  ``category`` (``bookings.status``: the fixed
                                           vocabulary; others: the values present)
text           ``string``                  ``str``
=============  ==========================  ==============================================

Validation happens once, where the events are read: :meth:`SparkEvents.from_marketplace`
distributes a validated :class:`~barberpro_ml.data.MarketplaceData` (a folder, CSV files or
PostgreSQL, read by :func:`~barberpro_ml.data.sources.load_source`); tables already in Spark
(a warehouse, Parquet with microsecond timestamps) are checked for their columns and types only
and must satisfy the contract's value and reference rules already. Spark timestamps have
microsecond precision: data with finer timestamps are refused rather than silently truncated.
Parquet written by :meth:`MarketplaceData.save` stores nanoseconds, which Spark cannot read;
distribute such folders through :meth:`SparkEvents.from_marketplace`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.schema import CONTRACT, KNOWN_AT, TABLES, VOCABULARIES, ColumnKind
from barberpro_ml.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

__all__ = ["CUSTOMER_TABLES", "SHARED_TABLES", "SparkEvents", "known_rows", "spark_type",
           "timestamp_literal", "to_contract_frame"]

CUSTOMER_TABLES: tuple[str, ...] = ("customers", "bookings", "reviews", "interventions")
"""Tables whose every row belongs to one customer: split by customer across the cluster."""
SHARED_TABLES: tuple[str, ...] = ("providers", "services")
"""Small tables every customer partition reads whole (barbers, the service catalogue)."""


def spark_type(kind: ColumnKind) -> DataType:
    """The Spark type a contract column of ``kind`` is held in."""
    from pyspark.sql import types as st

    return {"id": st.LongType(), "count": st.LongType(), "rating": st.LongType(),
            "timestamp": st.TimestampNTZType(), "money": st.DoubleType(),
            "flag": st.BooleanType(), "category": st.StringType(),
            "text": st.StringType()}[kind]


def _accepted(kind: ColumnKind) -> tuple[str, ...]:
    return ("timestamp_ntz", "timestamp") if kind == "timestamp" else (
        spark_type(kind).simpleString(),)


@dataclass(frozen=True)
class SparkEvents:
    """The marketplace's event tables as Spark DataFrames (see the module notes for types).

    Parameters
    ----------
    customers, providers, services, bookings, reviews, interventions
        One Spark DataFrame per contract table, with at least the contract's columns. Extra
        columns are ignored.

    Raises
    ------
    InputError
        A table lacks contract columns or holds one in another type (every problem named).
    """

    customers: DataFrame
    providers: DataFrame
    services: DataFrame
    bookings: DataFrame
    reviews: DataFrame
    interventions: DataFrame

    def __post_init__(self) -> None:
        problems = []
        for table in TABLES:
            types = dict(getattr(self, table).dtypes)
            for spec in CONTRACT[table]:
                found = types.get(spec.name)
                if found is None:
                    problems.append(f"{table}.{spec.name}: missing")
                elif found not in _accepted(spec.kind):
                    problems.append(f"{table}.{spec.name}: {found}, expected "
                                    f"{' or '.join(_accepted(spec.kind))}")
        if problems:
            raise InputError(f"Spark event tables do not match the data contract: "
                             f"{'; '.join(problems)}")

    @classmethod
    def from_marketplace(cls, spark: SparkSession, data: MarketplaceData) -> SparkEvents:
        """Distribute validated event tables (their contract columns) to Spark.

        Raises
        ------
        InputError
            A timestamp finer than a microsecond (Spark would truncate it), naming the column.
        """
        frames = {}
        for table in TABLES:
            frames[table] = spark.createDataFrame(_spark_ready(table, getattr(data, table)),
                                                  schema=_schema(table))
        return cls(**frames)

    def tables(self) -> dict[str, DataFrame]:
        """The six DataFrames by name, in contract order, with their contract columns only."""
        return {t: getattr(self, t).select(*[s.name for s in CONTRACT[t]]) for t in TABLES}

    def observation_end(self) -> pd.Timestamp:
        """The latest event time (what :attr:`MarketplaceData.observation_end` reads)."""
        from pyspark.sql import functions as sf

        stamps = []
        for table, column in (("customers", "signup_at"), ("bookings", "created_at"),
                              ("reviews", "created_at"), ("interventions", "sent_at"),
                              ("providers", "joined_at"), ("providers", "left_at")):
            value = getattr(self, table).agg(sf.max(column).alias("m")).collect()[0]["m"]
            if value is not None:
                stamps.append(pd.Timestamp(value))
        if not stamps:
            raise InputError("the Spark event tables are empty: no event to score")
        return max(stamps)


def _schema(table: str) -> StructType:
    from pyspark.sql import types as st

    return st.StructType([st.StructField(s.name, spark_type(s.kind), nullable=s.nullable)
                         for s in CONTRACT[table]])


def _spark_ready(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The contract columns of a canonical table as Spark takes them (categories as text)."""
    out = {}
    for spec in CONTRACT[table]:
        column = frame[spec.name]
        if spec.kind == "timestamp":
            stamps = column.to_numpy(dtype="datetime64[ns]").view(np.int64)
            finer = column.notna().to_numpy() & (stamps % 1000 != 0)
            if finer.any():
                raise InputError(
                    f"{table}.{spec.name}: {int(finer.sum()):,} timestamp(s) finer than a "
                    f"microsecond (e.g. {column[finer].iloc[0]}); Spark keeps microseconds, so "
                    "round them (Series.dt.floor('us')) before using the Spark engine")
        if spec.kind in ("category", "text"):
            values = column.astype(object)
            column = values.where(column.notna(), None)
        out[spec.name] = column.to_numpy()
    return pd.DataFrame(out)


def to_contract_frame(table: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` (as Spark hands them to pandas) in the contract's canonical dtypes,
    sorted by the table's id: the same frame whichever order the cluster delivered them in."""
    out: dict[str, object] = {}
    for spec in CONTRACT[table]:
        column = rows[spec.name]
        if spec.kind in ("id", "count", "rating"):
            out[spec.name] = column.to_numpy(dtype=np.int64)
        elif spec.kind == "timestamp":
            out[spec.name] = pd.to_datetime(column).astype("datetime64[ns]").to_numpy()
        elif spec.kind == "money":
            out[spec.name] = column.to_numpy(dtype=np.float64)
        elif spec.kind == "flag":
            out[spec.name] = column.to_numpy(dtype=bool)
        elif spec.kind == "category":
            vocabulary = VOCABULARIES.get((table, spec.name))
            categories = (list(vocabulary) if vocabulary is not None
                          else sorted(column.dropna().astype(str).unique().tolist()))
            out[spec.name] = pd.Categorical(column.astype(object), categories=categories)
        else:
            out[spec.name] = column.astype("str").to_numpy()
    frame = pd.DataFrame(out)
    key = CONTRACT[table][0].name
    return frame.sort_values(key, kind="stable", ignore_index=True)


def known_rows(events: SparkEvents, table: str, as_of: pd.Timestamp) -> DataFrame:
    """The contract columns of ``table``'s rows known at ``as_of`` (``KNOWN_AT`` column
    ``<= as_of``); the feature code reads nothing else, so later rows need not travel."""
    from pyspark.sql import functions as sf

    frame = events.tables()[table]
    column = KNOWN_AT[table]
    if column is None:
        return frame
    return frame.where(sf.col(column) <= timestamp_literal(as_of))


def timestamp_literal(stamp: pd.Timestamp) -> Column:
    """A naive UTC timestamp as a Spark ``timestamp_ntz`` literal, zone-free (a Python
    ``datetime`` literal would be read in the driver's local zone). Floored to the microsecond,
    Spark's precision; the events are microsecond-aligned, so no comparison changes."""
    from pyspark.sql import functions as sf

    text = stamp.floor("us").strftime("%Y-%m-%d %H:%M:%S.%f")
    return sf.lit(text).cast("timestamp_ntz")
