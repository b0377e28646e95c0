"""Point-in-time customer features on Spark, by the single-machine feature code itself.

:func:`customer_features` splits the customers into ``n_buckets`` buckets
(``customer_bucket = customer_id mod n_buckets``), sends each bucket's rows of the four
per-customer tables to one ``groupBy(...).applyInPandas`` call, and there runs
:func:`barberpro_ml.features.customer_features` (and, for scoring,
:func:`~barberpro_ml.features.rfm_features`) on a :class:`~barberpro_ml.data.MarketplaceData`
of the bucket's customers plus the shared barber and service tables. There is no second
implementation of any feature.

What a customer partition cannot see
------------------------------------
Every customer feature reads that customer's own rows, the barbers table and the service
catalogue, except one: ``main_provider_rating`` averages the usual barber's reviews over *all*
customers. Its input, :func:`~barberpro_ml.features.provider_review_totals` (reviews and star
sum per barber at ``as_of``), is computed by the same function on every partition of the
reviews and summed per barber (integer sums: exact in any order), then handed to every bucket
with the shared tables. The other population-level quantities of the library (RFM quantile
edges, the population's median gap of the lifecycle stages, barber popularity) are not
customer features; the models that use them carry them fitted.

Results equal :func:`barberpro_ml.features.customer_features` on the whole data: the tests
compare every column at two cut-offs (to 1e-9; the sums within a customer run over the same
rows in the same order, since each bucket sorts its rows by id).

Types
-----
The output schema (:func:`feature_schema`) is derived from the feature catalogue:
``float64`` -> ``double``, ``int64`` -> ``bigint``, ``int8`` -> ``tinyint``, ``category`` ->
``string`` (the category's label as text, as :meth:`FeatureSchema.to_request` sends it to a
model: ``main_service`` ``3`` becomes ``"3"``; null where the pandas value is missing), plus
``customer_id`` (``bigint``) and ``customer_bucket`` (``int``). :func:`collect_features`
brings a (small) result back as the single-machine frame, categoricals as plain strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.schema import CONTRACT
from barberpro_ml.features import (
    DEFAULT_WINDOWS,
    RFM_FEATURES,
    customer_feature_specs,
    provider_review_totals,
    rfm_features,
)
from barberpro_ml.features import (
    customer_features as single_machine_features,
)
from barberpro_ml.features._common import check_windows, to_as_of
from barberpro_ml.spark.events import (
    CUSTOMER_TABLES,
    SparkEvents,
    known_rows,
    spark_type,
    to_contract_frame,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

__all__ = ["BUCKET_COLUMN", "DEFAULT_BUCKETS", "collect_features", "customer_features",
           "feature_schema"]

BUCKET_COLUMN = "customer_bucket"
"""``customer_id mod n_buckets``: the unit of work and the Parquet partition column."""
DEFAULT_BUCKETS = 64
"""Buckets per run: enough to spread the work over a cluster's cores; each holds thousands of
customers at marketplace scale, so the per-call overhead of ``applyInPandas`` is paid rarely."""

_TABLE = "_table"
_SPARK_DTYPES = {"float64": "double", "int64": "bigint", "int8": "tinyint", "category": "string"}


def feature_schema(windows: Sequence[int] = DEFAULT_WINDOWS, *, rfm: bool = False
                   ) -> StructType:
    """The Spark schema of :func:`customer_features`, derived from the feature catalogue.

    ``customer_id`` and ``customer_bucket`` first, then every catalogue column in catalogue
    order (types in the module notes), then the :data:`~barberpro_ml.features.RFM_FEATURES`
    (``double``) when ``rfm``.
    """
    from pyspark.sql import types as st

    fields = [st.StructField("customer_id", st.LongType(), False),
              st.StructField(BUCKET_COLUMN, st.IntegerType(), False)]
    for spec in customer_feature_specs(windows):
        fields.append(st.StructField(spec.name, st._parse_datatype_string(
            _SPARK_DTYPES[spec.dtype]), True))
    if rfm:
        fields += [st.StructField(name, st.DoubleType(), True) for name in RFM_FEATURES]
    return st.StructType(fields)


@dataclass(frozen=True)
class _Shared:
    """What every bucket reads whole: shipped once per task with the function."""

    as_of: pd.Timestamp
    windows: tuple[int, ...]
    rfm: bool
    providers: pd.DataFrame
    services: pd.DataFrame
    review_totals: pd.DataFrame

    def features(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The features of one bucket's customers (``rows``: their tagged event rows)."""
        tables = {t: to_contract_frame(t, rows.loc[rows[_TABLE].to_numpy() == t])
                  for t in CUSTOMER_TABLES}
        data = MarketplaceData.from_validated(
            customers=tables["customers"], providers=self.providers, services=self.services,
            bookings=tables["bookings"], reviews=tables["reviews"],
            interventions=tables["interventions"])
        frame = single_machine_features(data, self.as_of, windows=self.windows,
                                        provider_reviews=self.review_totals)
        if self.rfm:
            frame = pd.concat([frame, rfm_features(data, self.as_of, frame.index)], axis=1)
        out = frame.reset_index()
        out.insert(1, BUCKET_COLUMN, rows[BUCKET_COLUMN].iloc[0] if len(rows) else 0)
        for name in out.columns:
            if isinstance(out[name].dtype, pd.CategoricalDtype):
                values = out[name].astype(object)
                out[name] = values.where(out[name].isna(), values.map(str)).where(
                    out[name].notna(), None)
        return out


def customer_features(events: SparkEvents, as_of: object, *,
                      windows: Sequence[int] = DEFAULT_WINDOWS,
                      n_buckets: int = DEFAULT_BUCKETS, rfm: bool = False) -> DataFrame:
    """Features of every customer signed up by ``as_of``, computed on Spark.

    Parameters
    ----------
    events
        The event tables on Spark.
    as_of
        The cut-off (naive UTC; inclusive), as for
        :func:`barberpro_ml.features.customer_features`.
    windows
        Look-back windows in days.
    n_buckets
        Customer buckets (``customer_id mod n_buckets``), one ``applyInPandas`` call each.
    rfm
        Also the BG/NBD inputs :data:`~barberpro_ml.features.RFM_FEATURES` (what the LTV
        model reads; :mod:`barberpro_ml.spark.scoring` asks for them).

    Returns
    -------
    pyspark.sql.DataFrame
        One row per customer, schema :func:`feature_schema`; lazy (nothing runs until an
        action), except for the small shared inputs, collected here: the barbers, the services
        and the review totals per barber.

    Raises
    ------
    InputError
        ``as_of`` unreadable, bad ``windows``, or ``n_buckets < 1``.
    """
    from pyspark.sql import functions as sf

    stamp = to_as_of(as_of, to_utc=True)
    ws = check_windows(windows)
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, int) or n_buckets < 1:
        from barberpro_ml.errors import InputError

        raise InputError(f"n_buckets must be a positive integer, got {n_buckets!r}")
    shared = _Shared(as_of=stamp, windows=ws, rfm=rfm,
                     providers=to_contract_frame("providers", events.providers.toPandas()),
                     services=to_contract_frame("services", events.services.toPandas()),
                     review_totals=review_totals(events, stamp))
    tagged = _tagged_rows(events, stamp, n_buckets)

    def features(rows: pd.DataFrame) -> pd.DataFrame:
        # a plain function: pyspark counts a bound method's `self` as a (key) argument
        return shared.features(rows)

    return tagged.groupBy(BUCKET_COLUMN).applyInPandas(
        features, schema=feature_schema(ws, rfm=rfm)).withColumn(
        BUCKET_COLUMN, sf.col(BUCKET_COLUMN).cast("int"))


def review_totals(events: SparkEvents, as_of: pd.Timestamp) -> pd.DataFrame:
    """:func:`~barberpro_ml.features.provider_review_totals` of all reviews at ``as_of``: the
    function on each partition of the reviews, the partial sums added per barber."""
    from pyspark.sql import functions as sf

    def partial(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            rows = to_contract_frame("reviews", batch)
            yield provider_review_totals(rows, as_of).reset_index()

    totals = (known_rows(events, "reviews", as_of)
              .mapInPandas(partial, "provider_id long, n_reviews long, rating_sum long")
              .groupBy("provider_id")
              .agg(sf.sum("n_reviews").alias("n_reviews"), sf.sum("rating_sum").alias("rating_sum"))
              .toPandas())
    return (totals.astype("int64").sort_values("provider_id", ignore_index=True)
            .set_index("provider_id"))


def _tagged_rows(events: SparkEvents, as_of: pd.Timestamp, n_buckets: int) -> DataFrame:
    """The four per-customer tables' rows known at ``as_of`` in one DataFrame: every contract
    column of any of them (0 in a table's integer columns it lacks, null otherwise, so that ids
    stay exact ``bigint``), the table's name and the customer's bucket."""
    from pyspark.sql import functions as sf

    columns: dict[str, object] = {}
    for table in CUSTOMER_TABLES:
        for spec in CONTRACT[table]:
            columns.setdefault(spec.name, spec.kind)
    parts = []
    for table in CUSTOMER_TABLES:
        own = {s.name for s in CONTRACT[table]}
        rows = known_rows(events, table, as_of)
        selected = []
        for name, kind in columns.items():
            dtype = spark_type(kind)  # type: ignore[arg-type]
            if name in own:
                selected.append(sf.col(name).cast(dtype).alias(name))
            else:
                empty = 0 if kind in ("id", "count", "rating") else None
                selected.append(sf.lit(empty).cast(dtype).alias(name))
        parts.append(rows.select(
            *selected, sf.lit(table).alias(_TABLE),
            sf.pmod(sf.col("customer_id"), sf.lit(n_buckets)).cast("int").alias(BUCKET_COLUMN)))
    tagged = parts[0]
    for part in parts[1:]:
        tagged = tagged.unionByName(part)
    return tagged


def collect_features(features: DataFrame) -> pd.DataFrame:
    """A Spark feature result as the single-machine frame: indexed by ``customer_id``
    (ascending), without the bucket column; categorical features come back as plain strings
    (``None`` where missing), integer features in their catalogue widths. Collects to the
    driver: for checks and small runs."""
    frame = features.drop(BUCKET_COLUMN).toPandas()
    return frame.sort_values("customer_id", ignore_index=True).set_index("customer_id")
