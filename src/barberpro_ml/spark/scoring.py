"""Batch scoring of every customer on Spark with the registered champions.

Reads like the data flow::

    SparkEvents -> features at as_of (spark.features, with the BG/NBD inputs)
      -> churn probability, lifetime value: mlflow.pyfunc.spark_udf of the verified versions
      -> top barbers: mapInPandas with the loaded recommender (same code as the scorer)
      -> Parquet partitioned by customer_bucket

Why two mechanisms
------------------
Churn and LTV models map one feature row to one number: exactly what
:func:`mlflow.pyfunc.spark_udf` serves (``result_type="double"``; the model is shipped to the
executors by MLflow and its signature checks every batch). The recommender answers one request
row with ``k`` rows (``user_id, item_id, score, rank``), and the scorer then drops barbers who
have left and keeps each customer's best ``n``; a ``spark_udf`` must return one value per input
row, so the barbers are computed by ``mapInPandas`` with the recommender loaded once on the
driver and shipped with the task, through
:func:`~barberpro_ml.scoring.scorer.top_barbers`, the function the single-machine scorer runs.

Every model is resolved on the driver with :func:`~barberpro_ml.scoring.scorer.load_family`
(for ``@champion``: only a verified one) and then used by its version number
(``models:/<name>/<version>``), so an alias moved mid-run cannot mix versions. A family with no
such model is left out with the reason and its columns are null, as in
:meth:`CustomerScorer.score_frame`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from barberpro_ml.errors import InputError, ModelUnavailableError, NotEnoughDataError
from barberpro_ml.features import DEFAULT_WINDOWS
from barberpro_ml.features._common import to_as_of
from barberpro_ml.spark.events import SparkEvents, timestamp_literal, to_contract_frame
from barberpro_ml.spark.features import BUCKET_COLUMN, DEFAULT_BUCKETS, customer_features

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["SCORE_COLUMNS", "SparkScores", "score_customers", "write_scores"]

SCORE_COLUMNS: tuple[str, ...] = ("customer_id", "as_of", "churn_probability",
                                  "expected_value_12m", "recommended_barbers", "barber_scores",
                                  BUCKET_COLUMN)
"""Columns of :func:`score_customers`, as in :meth:`CustomerScorer.score_frame` (plus the
bucket)."""
SPARK_FAMILIES: dict[str, str] = {"churn": "churn_probability", "ltv": "expected_value_12m",
                                  "recs": "recommended_barbers"}


@dataclass(frozen=True)
class SparkScores:
    """The lazy scores of every customer and what produced them."""

    frame: DataFrame
    """Schema: :data:`SCORE_COLUMNS` (nothing has run yet)."""
    as_of: pd.Timestamp
    models: dict[str, str] = field(default_factory=dict)
    """Family -> ``name vN (@alias)`` of every model used."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Family -> why it is not served (its columns are null)."""


def score_customers(events: SparkEvents, as_of: object = None, *,
                    tracking_uri: str | None = None, alias: str = "champion",
                    names: dict[str, str] | None = None, n_buckets: int = DEFAULT_BUCKETS,
                    n_barbers: int = 3) -> SparkScores:
    """Churn probability, lifetime value and top barbers of every customer at ``as_of``.

    Parameters
    ----------
    events
        The event tables on Spark.
    as_of
        Cut-off (naive UTC, or with a zone: converted); default: the data's last event.
    tracking_uri
        The MLflow registry (default: the current tracking URI).
    alias
        Registry alias to resolve (``@champion`` only when verified).
    names
        Registered model name per family (default
        :data:`~barberpro_ml.scoring.scorer.DEFAULT_MODEL_NAMES`).
    n_buckets
        Customer buckets (the unit of work and of the Parquet partitions).
    n_barbers
        Barbers per customer.

    Returns
    -------
    SparkScores
        The lazy frame and the versions used. Equal to the same columns of
        :meth:`CustomerScorer.score_frame` for the same data, ``as_of`` and versions.

    Raises
    ------
    InputError
        ``as_of`` after the data's last event.
    NotEnoughDataError
        No customer signed up by ``as_of``.
    ModelUnavailableError
        None of churn, LTV and recs can be served.
    """
    import mlflow
    from pyspark.sql import functions as sf
    from pyspark.sql import types as st

    from barberpro_ml.registry.models import EstimatorModel
    from barberpro_ml.registry.recs_model import RecommenderModel
    from barberpro_ml.scoring.scorer import (
        DEFAULT_MODEL_NAMES,
        LoadedFamily,
        load_family,
        top_barbers,
    )
    from barberpro_ml.scoring.snapshot import working_providers

    uri = tracking_uri or mlflow.get_tracking_uri()
    end = events.observation_end()
    stamp = end if as_of is None else to_as_of(as_of, to_utc=True)
    if stamp > end:
        raise InputError(f"as_of {stamp} is after the data's last event ({end}); the data "
                         "cannot say what a customer looks like then")
    if events.customers.where(sf.col("signup_at") <= timestamp_literal(stamp)).isEmpty():
        raise NotEnoughDataError(f"no customer had signed up by as_of {stamp}")

    names = {**DEFAULT_MODEL_NAMES, **(names or {})}
    loaded: dict[str, LoadedFamily] = {}
    unavailable: dict[str, str] = {}
    for family in SPARK_FAMILIES:
        try:
            loaded[family] = load_family(family, names[family], alias=alias, tracking_uri=uri)
        except ModelUnavailableError as exc:  # UnverifiedChampionError is one
            unavailable[family] = str(exc)
    if not loaded:
        raise ModelUnavailableError("no model family can be served on Spark: "
                                    + "; ".join(f"{f}: {r}" for f, r in unavailable.items()))

    spark = events.customers.sparkSession
    scored = customer_features(events, stamp, windows=DEFAULT_WINDOWS, n_buckets=n_buckets,
                               rfm=True)
    for family in ("churn", "ltv"):
        column = SPARK_FAMILIES[family]
        if family not in loaded:
            scored = scored.withColumn(column, sf.lit(None).cast("double"))
            continue
        model = loaded[family].model
        assert isinstance(model, EstimatorModel) and model.spec is not None
        mlflow.set_tracking_uri(uri)
        udf = mlflow.pyfunc.spark_udf(
            spark, f"models:/{loaded[family].ref.name}/{loaded[family].ref.version}",
            result_type="double", env_manager="local")
        scored = scored.withColumn(column, udf(sf.struct(*model.spec.features.names)))

    recs = loaded["recs"].model if "recs" in loaded else None
    assert recs is None or isinstance(recs, RecommenderModel)
    working = working_providers(to_contract_frame("providers", events.providers.toPandas()),
                                stamp)

    def barbers(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            ids = batch["customer_id"].to_numpy(dtype=np.int64)
            if recs is None:
                items: list[list[int]] | None = None
                scores: list[list[float]] | None = None
            else:
                items, scores = top_barbers(recs, ids, batch["neighborhood"].to_numpy(
                    dtype=object), working, n_barbers)
            yield pd.DataFrame({
                "customer_id": ids, "churn_probability": batch["churn_probability"],
                "expected_value_12m": batch["expected_value_12m"],
                "recommended_barbers": items if items is not None else [None] * len(ids),
                "barber_scores": scores if scores is not None else [None] * len(ids),
                BUCKET_COLUMN: batch[BUCKET_COLUMN]})

    schema = st.StructType([
        st.StructField("customer_id", st.LongType(), False),
        st.StructField("churn_probability", st.DoubleType(), True),
        st.StructField("expected_value_12m", st.DoubleType(), True),
        st.StructField("recommended_barbers", st.ArrayType(st.LongType(), False), True),
        st.StructField("barber_scores", st.ArrayType(st.DoubleType(), False), True),
        st.StructField(BUCKET_COLUMN, st.IntegerType(), False)])
    frame = (scored.select("customer_id", "neighborhood", "churn_probability",
                           "expected_value_12m", BUCKET_COLUMN)
             .mapInPandas(barbers, schema)
             .withColumn("as_of", timestamp_literal(stamp))
             .select(*SCORE_COLUMNS))
    models = {family: f"{found.ref.name} v{found.ref.version} (@{found.ref.alias})"
              for family, found in loaded.items()}
    return SparkScores(frame=frame, as_of=stamp, models=models, unavailable=unavailable)


def write_scores(scores: SparkScores, path: str) -> int:
    """Write the scores as Parquet partitioned by ``customer_bucket``; return the row count.

    A local path (no URI scheme) is written beside its target and moved into place at the
    end, so a reader never sees half the partitions and a failure leaves nothing behind; any
    other URI (``hdfs://``, ``s3a://``...) is written by Spark's own committer. An existing
    output is refused (Spark's ``errorifexists``).

    Raises
    ------
    InputError
        The output exists already.
    """
    local = "://" not in path
    target = Path(path)
    if local and target.exists():
        raise InputError(f"--out {path} exists already; give a new folder for the partitioned "
                         "Parquet (or remove the old one)")
    staging = target.with_name(f".{target.name}.partial") if local else None
    where = str(staging) if staging is not None else path
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        scores.frame.write.mode("errorifexists").partitionBy(BUCKET_COLUMN).parquet(where)
        if staging is not None:
            staging.rename(target)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    spark = scores.frame.sparkSession
    return int(spark.read.parquet(path).count())
