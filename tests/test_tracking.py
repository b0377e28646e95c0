"""Tracking helpers and the model card: what a training run leaves behind in MLflow."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from pydantic import BaseModel

import barberpro_ml
from barberpro_ml.data import SimulationConfig, simulate
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate, SliceReport
from barberpro_ml.gates import ChampionComparison, Claim, check
from barberpro_ml.registry import (
    configure_tracking,
    feature_catalogue,
    flatten_params,
    frame_digest,
    git_commit,
    log_config,
    log_feature_catalogue,
    log_gate_result,
    log_lineage,
    log_model_card,
    log_report,
    model_card,
)


def scores(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    return y, 1 / (1 + np.exp(-(2.0 * y - 1.4 + rng.normal(0, 1, n))))


@pytest.fixture
def report(make_report: Any) -> EvaluationReport:
    y, p = scores()
    channel = np.where(np.arange(len(y)) % 10 == 0, "referral|friend", "organic")
    return make_report(y, p, metrics=("accuracy", "roc_auc", "brier"),
                       slices={"acquisition_channel": channel})


def _artifact(run_id: str, path: str) -> str:
    return mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")


# --------------------------------------------------------------------------- configure
def test_configure_tracking_precedence(mlflow_store: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = f"sqlite:///{tmp_path / 'explicit.db'}"
    assert configure_tracking(explicit) == explicit == mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert configure_tracking() == "http://tracking.example:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    default = configure_tracking()
    assert default == f"sqlite:///{(tmp_path / 'mlflow.db').resolve().as_posix()}"
    assert mlflow.get_tracking_uri() == default


# --------------------------------------------------------------------------- report, metrics
def test_log_report_writes_metrics_with_ci_bounds_and_the_report(mlflow_store: Any,
                                                                 report: EvaluationReport) -> None:
    with mlflow.start_run() as run:
        uri = log_report(report)
    metrics = MlflowClient().get_run(run.info.run_id).data.metrics
    for name, est in report.metrics.items():
        assert metrics[name] == pytest.approx(est.value)
        assert metrics[f"{name}_ci_low"] == pytest.approx(est.ci_low)
        assert metrics[f"{name}_ci_high"] == pytest.approx(est.ci_high)
    assert metrics["baseline_accuracy"] == pytest.approx(report.baselines["accuracy"].value)
    assert metrics["n_eval"] == report.n
    # Slice levels with characters MLflow refuses in metric names are made safe.
    assert metrics["slice.acquisition_channel.referral_friend.n"] == 150
    assert uri.endswith("evaluation/report.json")
    assert EvaluationReport.model_validate_json(mlflow.artifacts.load_text(uri)) == report


def test_helpers_refuse_to_run_outside_a_run(mlflow_store: Any,
                                             report: EvaluationReport) -> None:
    with pytest.raises(RuntimeError, match=r"inside `with mlflow.start_run\(\):`"):
        log_report(report)


def test_log_gate_result_tags_the_run(mlflow_store: Any, report: EvaluationReport) -> None:
    claims = [Claim(id="auc", family="churn", metric="roc_auc", claimed=0.99,
                    direction="at_least", source="test")]
    result = check(report, claims)
    with mlflow.start_run() as run:
        log_gate_result(result)
    tags = MlflowClient().get_run(run.info.run_id).data.tags
    assert tags["gate.passed"] == "false" and tags["gate.auc"] == "fail"
    assert tags["gate.champion"] == "pass"
    assert "does not clear" in _artifact(run.info.run_id, "gates/gate_result.txt")
    table = pd.read_csv(mlflow.artifacts.download_artifacts(
        f"runs:/{run.info.run_id}/gates/verdicts.csv"))
    assert list(table["check"]) == ["auc", "test-overlap", "champion"]


# --------------------------------------------------------------------------- config, lineage
class _Cfg(BaseModel):
    seed: int = 7
    model: dict[str, Any] = {"max_depth": 4, "eta": 0.1, "features": ["a", "b"]}


def test_log_config_as_yaml_and_flat_params(mlflow_store: Any) -> None:
    with mlflow.start_run() as run:
        log_config(_Cfg())
    assert yaml.safe_load(_artifact(run.info.run_id, "config.yaml")) == _Cfg().model_dump()
    params = MlflowClient().get_run(run.info.run_id).data.params
    assert params == {"seed": "7", "model.max_depth": "4", "model.eta": "0.1",
                      "model.features": '["a", "b"]'}


def test_flatten_params_truncates_values_mlflow_would_refuse() -> None:
    flat = flatten_params({"long": "x" * 10_000})
    assert len(flat["long"]) <= 6000 and flat["long"].endswith("chars; see config.yaml)")


def test_lineage_tags(mlflow_store: Any) -> None:
    data = simulate(SimulationConfig(n_customers=30, seed=3))
    features = pd.DataFrame({"a": [1.0, 2.0], "b": pd.Categorical(["x", "y"])})
    with mlflow.start_run() as run:
        written = log_lineage(data=data, features=features)
    tags = MlflowClient().get_run(run.info.run_id).data.tags
    assert tags["barberpro.data_digest"] == data.digest()
    assert tags["barberpro.feature_digest"] == frame_digest(features)
    assert tags["barberpro.package_version"] == barberpro_ml.__version__
    assert tags["barberpro.git_commit"] == written["barberpro.git_commit"]


def test_frame_digest_follows_content() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": pd.Categorical(["x", "y", "x"])},
                         index=[10, 11, 12])
    assert frame_digest(frame) == frame_digest(frame.copy())
    assert frame_digest(frame) != frame_digest(frame.assign(a=[1.0, 2.0, 3.5]))
    assert frame_digest(frame) != frame_digest(frame.iloc[::-1])
    assert frame_digest(frame) != frame_digest(frame.astype({"a": "float32"}))
    assert frame_digest(frame) != frame_digest(frame.set_axis([10, 11, 13]))


def test_git_commit_inside_and_outside_a_checkout(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == (None, None)
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    (repo / "f.txt").write_text("1")
    for cmd in (["git", "init", "-q"], ["git", "add", "f.txt"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, env=env,
                          capture_output=True, text=True).stdout.strip()
    assert git_commit(repo) == (head, False)
    (repo / "f.txt").write_text("2")
    assert git_commit(repo) == (head, True)


# --------------------------------------------------------------------------- catalogue, card
def test_feature_catalogue() -> None:
    features = pd.DataFrame({"visits": [1, 2, np.nan, 4.0],
                             "channel": pd.Categorical(["a", "b", "a", None])})
    catalogue = feature_catalogue(features, {"visits": "completed visits in 90 days"})
    row = catalogue.set_index("feature").loc["visits"]
    assert row["missing_share"] == 0.25 and row["n_unique"] == 3
    assert row["min"] == "1.0" and row["max"] == "4.0"
    assert row["description"] == "completed visits in 90 days"
    assert catalogue.set_index("feature").loc["channel", "dtype"] == "category"


def test_log_feature_catalogue_and_model_card(mlflow_store: Any,
                                              report: EvaluationReport) -> None:
    features = pd.DataFrame({"visits": [1.0, 2.0]})
    text = model_card(report, model_name="barberpro-churn", version="3")
    with mlflow.start_run() as run:
        log_feature_catalogue(feature_catalogue(features))
        uri = log_model_card(text)
    catalogue = pd.read_csv(mlflow.artifacts.download_artifacts(
        f"runs:/{run.info.run_id}/features/catalogue.csv"))
    assert list(catalogue["feature"]) == ["visits"]
    assert mlflow.artifacts.load_text(uri) == text
    with mlflow.start_run(), pytest.raises(ValueError, match="catalogue is empty"):
        log_feature_catalogue(feature_catalogue(features).iloc[:0])


def test_model_card_content(report: EvaluationReport) -> None:
    y, p = scores()
    worse = np.clip(p + np.random.default_rng(1).normal(0, 0.3, len(p)), 0, 1)
    claims = [Claim(id="churn-accuracy-seed", family="churn", metric="accuracy",
                    claimed=0.941, direction="at_least", source="seed")]
    gate = check(report, claims, ChampionComparison(
        y_true=y, challenger=worse, champion=p, metric="roc_auc", margin=0.01,
        champion_version="2"))
    card = model_card(report, model_name="barberpro-churn", version="3",
                      description="Probability that a customer books nothing in 60 days.",
                      data_window={"test as_of": "2024-09-01", "horizon_days": 60},
                      gate_result=gate, lineage={"barberpro.git_commit": None},
                      caveats=["Simulated data."])
    acc, base = report.metrics["accuracy"], report.baselines["accuracy"]
    assert card.startswith("# Model card: barberpro-churn (version 3)")
    assert "Gate: **FAILED**" in card
    assert f"| accuracy | higher | {acc.value:.4f} | [{acc.ci_low:.4f}, {acc.ci_high:.4f}] | " \
           f"{base.value:.4f} |" in card
    assert "| horizon_days | 60 |" in card
    assert "### by acquisition_channel" in card
    assert "referral\\|friend" in card  # a pipe inside a cell does not break the table
    assert "| churn-accuracy-seed |" in card and "| champion |" in card
    assert "promotion refused" in card
    assert "- Simulated data." in card and "The gate refused this model" in card


def test_model_card_caveats_for_a_model_no_better_than_the_baseline() -> None:
    est = MetricEstimate(name="accuracy", value=0.9, ci_low=0.88, ci_high=0.92)
    report = EvaluationReport(
        family="churn", kind="classification", n=500, metrics={"accuracy": est},
        baselines={"accuracy": MetricEstimate(name="accuracy", value=0.9, ci_low=0.88,
                                              ci_high=0.92)},
        slices=[SliceReport(dimension="neighborhood", level="north", n=40,
                            metrics={"accuracy": est})])
    card = model_card(report, model_name="m")
    assert "not clearly above the majority-class baseline" in card
    assert "fewer than 100 rows" in card and "neighborhood=north (40)" in card
    assert "Not gated." in card and "## Data window\n\nNot recorded." in card
