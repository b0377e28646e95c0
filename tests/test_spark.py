"""The Spark path equals the single-machine path (issue 16): features and scores on local[2].

One Spark session for the module (``local[2]``, loopback, 2g driver), on the scoring registry's
2,500 simulated customers: the features of :mod:`barberpro_ml.spark` equal
:func:`~barberpro_ml.features.customer_features` in every column at two cut-offs, and the
churn probability, lifetime value and top barbers equal :meth:`CustomerScorer.score_frame` of
the same model versions exactly. Without pyspark or Java the tests skip locally and fail in CI.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from barberpro_ml.cli import app
from barberpro_ml.features import customer_features, feature_catalog
from barberpro_ml.scoring import CustomerScorer
from requirements import missing

N_BUCKETS = 4


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if importlib.util.find_spec("pyspark") is None:
        missing("pyspark (pip install 'barberpro_ml[spark]')")
    if shutil.which("java") is None:
        missing("a Java 17+ runtime for Spark (Debian: openjdk-17-jre-headless)")
    from barberpro_ml.spark import spark_session

    session = spark_session("local[2]", app_name="barberpro-ml-tests", driver_memory="2g")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def events(spark: Any, scoring_registry: Any) -> Any:
    from barberpro_ml.spark import SparkEvents

    return SparkEvents.from_marketplace(spark, scoring_registry.data)


def as_strings(column: pd.Series) -> np.ndarray:
    """A categorical feature as the Spark path returns it: labels as text, None if missing."""
    return np.array([None if pd.isna(v) else str(v) for v in column.astype(object)],
                    dtype=object)


@pytest.mark.parametrize("as_of", ["2023-09-30", "2024-06-30 12:00:00"])
def test_features_equal_the_single_machine_features(events: Any, scoring_registry: Any,
                                                    as_of: str) -> None:
    from barberpro_ml.spark import collect_features
    from barberpro_ml.spark import customer_features as spark_features

    expected = customer_features(scoring_registry.data, as_of)
    got = collect_features(spark_features(events, as_of, n_buckets=N_BUCKETS))
    assert got.index.equals(expected.index) and len(got) > 500
    assert list(got.columns) == list(expected.columns)
    assert expected["main_provider_rating"].notna().sum() > 100  # the population input is used
    for name in expected.columns:
        want = expected[name]
        if isinstance(want.dtype, pd.CategoricalDtype):
            np.testing.assert_array_equal(got[name].to_numpy(dtype=object), as_strings(want),
                                          err_msg=name)
        else:
            assert got[name].dtype == want.dtype, name
            np.testing.assert_allclose(got[name].to_numpy(np.float64),
                                       want.to_numpy(np.float64), rtol=0, atol=1e-9,
                                       err_msg=name)


def test_feature_schema_is_derived_from_the_catalogue(spark: Any) -> None:
    from barberpro_ml.spark import feature_schema

    schema = feature_schema((7, 30))
    catalog = feature_catalog((7, 30))
    assert schema.names == ["customer_id", "customer_bucket", *catalog["name"]]
    kinds = {"float64": "double", "int64": "bigint", "int8": "tinyint", "category": "string"}
    assert [f.dataType.simpleString() for f in schema.fields[2:]] == [
        kinds[d] for d in catalog["dtype"]]


def test_scores_equal_the_single_machine_scores_of_the_same_versions(
        events: Any, scoring_registry: Any) -> None:
    from barberpro_ml.spark import SCORE_COLUMNS, score_customers

    data = scoring_registry.data
    as_of = data.observation_end - pd.Timedelta(days=20)
    scores = score_customers(events, as_of, tracking_uri=scoring_registry.tracking_uri,
                             n_buckets=N_BUCKETS)
    names = {"churn": "barberpro-churn", "ltv": "barberpro-ltv", "recs": "barberpro-recs"}
    assert scores.models == {f: f"{n} v{scoring_registry.versions[n]} (@champion)"
                             for f, n in names.items()}
    got = scores.frame.toPandas().sort_values("customer_id").set_index("customer_id")
    assert list(got.columns) == [c for c in SCORE_COLUMNS if c != "customer_id"]
    scorer = CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)
    expected = scorer.score_frame(data, as_of, reasons=False)
    assert got.index.equals(expected.index)
    assert (got["customer_bucket"] == got.index % N_BUCKETS).all()
    assert (got["as_of"] == as_of).all()
    for column in ("churn_probability", "expected_value_12m"):
        np.testing.assert_array_equal(got[column].to_numpy(), expected[column].to_numpy(),
                                      err_msg=column)
    for column in ("recommended_barbers", "barber_scores"):
        assert [list(v) for v in got[column]] == [list(v) for v in expected[column]], column
    assert sum(len(v) for v in got["recommended_barbers"]) > len(got)


def test_cli_scores_on_spark_into_parquet_partitioned_by_bucket(
        spark: Any, scoring_registry: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", scoring_registry.tracking_uri)
    out = tmp_path / "scores"
    args = ["score", "--engine", "spark", "--master", "local[2]", "--buckets", str(N_BUCKETS),
            "--as-of", "2024-06-30", "--out", str(out), "--data", str(scoring_registry.data_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        f"customer_bucket={b}" for b in range(N_BUCKETS)]
    frame = pd.read_parquet(out)
    signed_up = (scoring_registry.data.customers["signup_at"] <= pd.Timestamp("2024-06-30")).sum()
    assert len(frame) == signed_up == frame["customer_id"].nunique()
    assert frame["churn_probability"].between(0, 1).all()
    again = CliRunner().invoke(app, args)  # an existing output is refused, not overwritten
    assert again.exit_code == 2 and "exists already" in again.output
    assert spark.sparkContext._jsc is not None  # the test's session was not stopped


def test_cli_names_the_extra_when_pyspark_is_missing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # what find_spec reports when absent
    result = CliRunner().invoke(app, ["score", "--engine", "spark", "--out",
                                      str(tmp_path / "s"), "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "pip install 'barberpro_ml[spark]'" in result.output
    assert "Traceback" not in result.output
