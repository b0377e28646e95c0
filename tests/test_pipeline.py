"""End to end: the churn job and the command line, on a small simulated marketplace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from barberpro_ml.cli import app
from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.errors import NotEnoughDataError
from barberpro_ml.jobs import JOBS
from barberpro_ml.registry import alias_version, promotion_log

SMALL_JOB = {
    "simulation": {"n_customers": 3000, "seed": 5},
    "n_train_cutoffs": 2,
    "model": {"n_estimators": 80, "learning_rate": 0.1, "random_state": 0, "n_jobs": 1},
    "evaluation": {"n_bootstrap": 1000, "seed": 0, "min_slice_size": 100},
    "oracle": {"enabled": True, "n_futures": 20},
    "backtest": {"enabled": False},
}


@pytest.fixture(scope="module")
def small_data() -> MarketplaceData:
    return simulate(SimulationConfig(n_customers=3000, seed=5))


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump({**SMALL_JOB, **overrides}))
    return path


def test_churn_job_logs_registers_gates_and_promotes(mlflow_store: Any, tmp_path: Path,
                                                     small_data: MarketplaceData) -> None:
    job = JOBS["churn"]
    outcome = job.run(write_config(tmp_path), data=small_data)
    client = MlflowClient()
    run = client.get_run(outcome.run_id)

    # The logged headline metrics are the candidate's, equal to its report artifact.
    report = json.loads(mlflow.artifacts.load_text(
        f"runs:/{outcome.run_id}/evaluation/report.json"))
    for name in ("roc_auc", "accuracy", "ece"):
        assert run.data.metrics[name] == pytest.approx(report["metrics"][name]["value"])
        assert run.data.metrics[f"{name}_ci_low"] <= run.data.metrics[name] \
            <= run.data.metrics[f"{name}_ci_high"]
    assert 0 < run.data.metrics["roc_auc_ratio_to_oracle"] <= 1.05
    assert run.data.tags["barberpro.data_digest"] == small_data.digest()

    artifacts = {f.path for f in client.list_artifacts(outcome.run_id)}
    assert {"model_card.md", "gates", "evaluation", "plots", "config.yaml"} <= artifacts
    plots = {Path(f.path).name for f in client.list_artifacts(outcome.run_id, "plots")}
    assert any("roc" in p for p in plots) and any("shap" in p for p in plots)
    card = mlflow.artifacts.load_text(f"runs:/{outcome.run_id}/model_card.md")
    assert "churn-accuracy-seed" in card

    # The seed's claim is judged and, whatever its verdict, only the floors decide promotion.
    assert outcome.gate is not None
    seed_row = next(c for c in outcome.gate.claims if c.claim_id == "churn-accuracy-seed")
    assert not seed_row.blocking and seed_row.baseline is not None
    # the out-of-time test rows (another as_of) repeat no training row
    overlap_row = next(c for c in outcome.gate.claims if c.claim_id == "test-overlap")
    assert overlap_row.verdict == "pass" and overlap_row.observed == 0
    assert outcome.gate_passed == all(c.passed for c in outcome.gate.claims if c.blocking)
    assert outcome.promoted == outcome.gate_passed
    champion = alias_version("barberpro-churn")
    assert champion == (outcome.version if outcome.promoted else None)

    # A second run compares itself with the champion on the same test rows.
    second = job.run(write_config(tmp_path), data=small_data)
    assert second.version == str(int(outcome.version) + 1)
    assert second.gate is not None
    if outcome.promoted:
        assert second.gate.champion.champion_version == outcome.version
        assert second.gate.champion.difference is not None
        assert len(promotion_log("barberpro-churn")) == 1 + int(second.promoted)


def test_job_refuses_data_too_short_for_its_layout(mlflow_store: Any, tmp_path: Path,
                                                   small_data: MarketplaceData) -> None:
    job = JOBS["churn"]
    # fewer training cut-offs than asked fit: the job uses those that do
    result = job.run(write_config(tmp_path, n_train_cutoffs=12), data=small_data)
    assert 1 <= len(MlflowClient().get_run(result.run_id).data.params["train_cutoffs"]
                    .split(",")) < 12
    # a year of data cannot hold the 180-day window and three 90-day label periods
    year = simulate(SimulationConfig(n_customers=500, seed=5, end="2024-01-01"))
    with pytest.raises(NotEnoughDataError, match=r"12 months of data \(2023-01-0\d to "
                                                 r"2023-12-31.*needs at least 450 days"):
        job.run(write_config(tmp_path), data=year)


runner = CliRunner()


def test_cli_simulate_then_validate(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", "--customers", "300", "--seed", "1",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert MarketplaceData.load(out).summary()["customers"] == 300
    result = runner.invoke(app, ["validate", str(out)])
    assert result.exit_code == 0 and "valid" in result.output


def test_cli_user_errors_are_one_message_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "no data folder" in result.output and "Traceback" not in result.output

    folder = tmp_path / "bad"
    simulate(SimulationConfig(n_customers=200, seed=2)).save(folder)
    import pandas as pd

    reviews = pd.read_parquet(folder / "reviews.parquet")
    reviews.loc[reviews.index[:3], "rating"] = 7
    reviews.to_parquet(folder / "reviews.parquet", index=False)
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2
    assert "reviews.rating" in result.output and "3 rows" in result.output


def test_cli_train_churn_exits_3_when_a_blocking_gate_fails(
        mlflow_store: Any, tmp_path: Path, small_data: MarketplaceData) -> None:
    data_dir = tmp_path / "data"
    small_data.save(data_dir)
    claims = tmp_path / "claims.yaml"
    claims.write_text(yaml.safe_dump({"claims": [{
        "id": "impossible", "family": "churn", "metric": "roc_auc", "claimed": 0.999,
        "direction": "at_least", "source": "test: above what any model reaches"}]}))
    config = write_config(tmp_path, claims=str(claims))
    result = runner.invoke(app, ["train", "churn", "--config", str(config),
                                 "--data", str(data_dir)], env={"COLUMNS": "250"})
    assert result.exit_code == 3, result.output
    assert "impossible" in result.output
    assert alias_version("barberpro-churn") is None
