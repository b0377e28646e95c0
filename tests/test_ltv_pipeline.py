"""End to end: the LTV job (three forecasts side by side, gates, registry) and ``train ltv``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from barberpro_ml.cli import app
from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.features import training_frame
from barberpro_ml.jobs import JOBS
from barberpro_ml.models import LTVRegressor
from barberpro_ml.registry import ModelInputError, alias_version, log_and_register
from barberpro_ml.registry.tracking import metric_key

SMALL_JOB = {"simulation": {"n_customers": 3000, "seed": 5}, "train_horizon_days": 182,
             "model": {"n_estimators": 300, "random_state": 0, "n_jobs": 1},
             "evaluation": {"n_bootstrap": 1000, "seed": 0}}
LTV_CLAIMS = {"ltv-spearman-floor", "ltv-aggregate-error-ceiling", "ltv-aggregate-error-floor",
              "ltv-mae-beats-naive", "ltv-mae-beats-bgnbd"}


@pytest.fixture(scope="module")
def small_data() -> MarketplaceData:
    return simulate(SimulationConfig(n_customers=3000, seed=5))


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    path = tmp_path / "ltv.yaml"
    path.write_text(yaml.safe_dump({**SMALL_JOB, **overrides}))
    return path


def claims_file(tmp_path: Path, metric: str, claimed: float, direction: str) -> Path:
    path = tmp_path / f"claims-{metric}.yaml"
    path.write_text(yaml.safe_dump({
        "settings": {"non_inferiority": {"ltv": {"metric": "mae", "margin": 2.0}}},
        "claims": [{"id": "test-claim", "family": "ltv", "metric": metric,
                    "claimed": claimed, "direction": direction, "source": "test"}]}))
    return path


def test_pyfunc_round_trip_matches_memory_and_refuses_bad_input(mlflow_store: Any) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"visits_365d": rng.poisson(4, 300).astype(np.int64),
                      "spend_365d": rng.gamma(2.0, 60.0, 300),
                      "neighborhood": pd.Categorical(rng.choice(["north", "south"], 300))})
    y = rng.poisson(X["visits_365d"].to_numpy()) * 35.0
    model = LTVRegressor(n_estimators=50, random_state=0, n_jobs=1,
                         prediction_scale=1.5).fit(X, y)
    with mlflow.start_run():
        info, version = log_and_register(model, X, "barberpro-ltv", output="predict")
    assert info.signature is not None
    assert [c.name for c in info.signature.outputs.inputs] == ["prediction"]
    loaded = mlflow.pyfunc.load_model("models:/barberpro-ltv@challenger")
    # a service sends categories as strings (the signature's type)
    request = loaded.unwrap_python_model().spec.features.to_request(X.head(20))
    assert request["neighborhood"].tolist() == X["neighborhood"].head(20).astype(str).tolist()
    np.testing.assert_allclose(loaded.predict(request), model.predict(X.head(20)))
    assert alias_version("barberpro-ltv", "challenger") == str(version.version)
    with pytest.raises((ModelInputError, mlflow.exceptions.MlflowException), match="spend_365d"):
        loaded.predict(request.drop(columns="spend_365d").head(3))


def test_ltv_job_logs_the_report_gates_and_promotes_only_when_passed(
        mlflow_store: Any, tmp_path: Path, small_data: MarketplaceData) -> None:
    job = JOBS["ltv"]
    outcome = job.run(write_config(tmp_path), data=small_data)
    client = MlflowClient()
    run = client.get_run(outcome.run_id)
    report = json.loads(mlflow.artifacts.load_text(
        f"runs:/{outcome.run_id}/evaluation/report.json"))
    # the report's candidate is the model chosen on validation, under the name "selected";
    # two years of data leave no room for a validation horizon of 365 days: the default
    assert report["kind"] == "regression" and report["candidate"] == "selected"
    assert run.data.params["chosen_candidate"] == "xgboost"
    for name in ("mae", "rmse", "spearman", "gini", "aggregate_error", "mae_minus_naive",
                 "mae_minus_bgnbd"):
        key = metric_key(name)
        assert run.data.metrics[key] == pytest.approx(report["metrics"][name]["value"])
        assert run.data.metrics[f"{key}_ci_low"] <= run.data.metrics[key] \
            <= run.data.metrics[f"{key}_ci_high"]
    # every candidate side by side, each with its interval, on the same customers
    assert set(report["models"]) == {"selected", "xgboost", "bgnbd", "blend", "naive"}
    assert report["models"]["selected"] == report["models"]["xgboost"]
    for model, metrics in report["models"].items():
        for name, est in metrics.items():
            assert run.data.metrics[metric_key(f"{model}_{name}")] == pytest.approx(est["value"])
    assert report["metrics"]["mae_minus_naive"]["value"] == pytest.approx(
        report["models"]["xgboost"]["mae"]["value"] - report["models"]["naive"]["mae"]["value"])

    # the test labels are the realised 365-day revenue at the logged test cut-off
    test_cut = pd.Timestamp(run.data.params["test_cutoff"])
    labels = training_frame(small_data, [test_cut], 365, label="ltv")["ltv"]
    assert report["n"] == len(labels)
    assert report["total_actual"] == pytest.approx(float(labels.sum()))
    # every training label period ends by the test cut-off
    train_cuts = [pd.Timestamp(c) for c in run.data.params["train_cutoffs"].split(",")]
    horizon = int(run.data.params["training_label_days"])
    assert max(train_cuts) + pd.Timedelta(days=horizon) <= test_cut

    artifacts = {f.path for f in client.list_artifacts(outcome.run_id, "plots")}
    assert {"plots/decile_calibration.png", "plots/predicted_vs_actual.png"} <= artifacts
    top = {f.path for f in client.list_artifacts(outcome.run_id)}
    assert {"model_card.md", "gates", "evaluation", "config.yaml"} <= top

    assert outcome.gate is not None
    rows = {c.claim_id: c for c in outcome.gate.claims}
    assert set(rows) == LTV_CLAIMS | {"test-overlap"}
    # out-of-time test customers: at another cut-off than every training row
    assert rows["test-overlap"].verdict == "pass" and rows["test-overlap"].observed == 0
    assert not rows["ltv-mae-beats-bgnbd"].blocking and rows["ltv-mae-beats-naive"].blocking
    blocking_ok = all(c.verdict == "pass" for c in outcome.gate.claims if c.blocking)
    assert outcome.gate_passed == (blocking_ok and outcome.gate.champion.passed)
    assert outcome.promoted == outcome.gate_passed
    assert alias_version("barberpro-ltv") == (outcome.version if outcome.promoted else None)
    assert run.data.tags["gate.passed"] == str(outcome.gate_passed).lower()

    # A supported claim: promoted; the next run is compared with that champion by MAE on its
    # own test customers, and the same model on the same data differs by exactly 0.
    passing = write_config(tmp_path, claims=str(claims_file(
        tmp_path, "mae_minus_naive", 0.0, "at_most")))
    first = job.run(passing, data=small_data)
    assert first.gate_passed and first.promoted
    second = job.run(passing, data=small_data)
    assert second.gate is not None
    assert second.gate.champion.champion_version == first.version
    assert second.gate.champion.metric == "mae"
    assert second.gate.champion.difference == pytest.approx(0.0, abs=1e-9)
    assert second.promoted


def test_cli_train_ltv_exits_3_when_a_blocking_claim_fails(
        mlflow_store: Any, tmp_path: Path, small_data: MarketplaceData) -> None:
    data_dir = tmp_path / "data"
    small_data.save(data_dir)
    config = write_config(tmp_path, claims=str(claims_file(tmp_path, "spearman", 0.999,
                                                           "at_least")))
    result = CliRunner().invoke(app, ["train", "ltv", "--config", str(config),
                                      "--data", str(data_dir)], env={"COLUMNS": "250"})
    assert result.exit_code == 3, result.output
    assert "test-claim" in result.output
    assert alias_version("barberpro-ltv") is None
    assert alias_version("barberpro-ltv", "challenger") == "1"
