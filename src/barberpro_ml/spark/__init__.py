"""The Spark path (optional extra ``barberpro_ml[spark]``): the same features and scores,
beyond one machine.

- :func:`customer_features`: point-in-time customer features of a :class:`SparkEvents`, by the
  single-machine feature code run per customer bucket (``groupBy().applyInPandas``);
- :func:`score_customers` / :func:`write_scores`: churn probability and lifetime value of every
  customer through :func:`mlflow.pyfunc.spark_udf` of the verified champions, and their top
  barbers, written as Parquet partitioned by customer bucket;
- :func:`spark_session`: a session on any master URL.

The results equal the single-machine ones for the same data and ``as_of`` (``tests/test_spark.py``
runs both on ``local[2]``). Importing this package without ``pyspark`` raises
:class:`SparkUnavailableError` naming ``pip install 'barberpro_ml[spark]'``.
"""

from barberpro_ml.spark._session import (
    DEFAULT_MASTER,
    SparkUnavailableError,
    require_pyspark,
    spark_session,
)

require_pyspark()

from barberpro_ml.spark.events import SparkEvents  # noqa: E402
from barberpro_ml.spark.features import (  # noqa: E402
    BUCKET_COLUMN,
    DEFAULT_BUCKETS,
    collect_features,
    customer_features,
    feature_schema,
)
from barberpro_ml.spark.scoring import (  # noqa: E402
    SCORE_COLUMNS,
    SparkScores,
    score_customers,
    write_scores,
)

__all__ = [
    "BUCKET_COLUMN",
    "DEFAULT_BUCKETS",
    "DEFAULT_MASTER",
    "SCORE_COLUMNS",
    "SparkEvents",
    "SparkScores",
    "SparkUnavailableError",
    "collect_features",
    "customer_features",
    "feature_schema",
    "require_pyspark",
    "score_customers",
    "spark_session",
    "write_scores",
]
