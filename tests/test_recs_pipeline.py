"""End to end: the recommender as a registered pyfunc, the recs job and ``train recs``."""

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
from barberpro_ml.jobs import JOBS
from barberpro_ml.models.recs import ItemKNNRecommender
from barberpro_ml.registry import (
    ModelInputError,
    RecommenderModel,
    alias_version,
    log_and_register_recommender,
)
from barberpro_ml.registry.tracking import metric_key

# Two neighborhoods; in "north" item 20 is the most booked barber, in "south" item 30.
INTERACTIONS = pd.DataFrame({
    "user_id": np.array([1, 1, 2, 2, 3, 3, 4, 5, 5, 6, 6, 7], dtype=np.int64),
    "item_id": np.array([10, 20, 10, 20, 20, 11, 20, 30, 31, 30, 10, 30], dtype=np.int64),
})
GROUPS = pd.Series({1: "north", 2: "north", 3: "north", 4: "north", 5: "south", 6: "south",
                    7: "south", 99: "south"})


def fitted() -> ItemKNNRecommender:
    return ItemKNNRecommender(shrink=0.0).fit(INTERACTIONS, user_groups=GROUPS)


def most_booked(group: str, users_groups: pd.Series) -> list[int]:
    """Items by number of distinct users of the group, computed without the library."""
    members = users_groups[users_groups == group].index
    counts = INTERACTIONS[INTERACTIONS["user_id"].isin(members)].drop_duplicates() \
        .groupby("item_id").size()
    return counts[counts == counts.max()].index.tolist()


def test_pyfunc_round_trip_matches_memory_and_refuses_bad_input(mlflow_store: Any) -> None:
    model = fitted()
    with mlflow.start_run():
        info, version = log_and_register_recommender(model, "barberpro-recs")
    assert alias_version("barberpro-recs", "challenger") == str(version.version)
    assert info.signature is not None
    inputs = {c.name: (c.type.name, c.required) for c in info.signature.inputs.inputs}
    assert inputs == {"user_id": ("long", True), "k": ("long", False),
                      "neighborhood": ("string", False)}
    outputs = [c.name for c in info.signature.outputs.inputs]
    assert outputs == ["user_id", "item_id", "score", "rank"]

    loaded = mlflow.pyfunc.load_model("models:/barberpro-recs@challenger")
    request = pd.DataFrame({"user_id": np.array([3, 6, 1], dtype=np.int64),
                            "k": np.array([2, 2, 2], dtype=np.int64)})
    served = loaded.predict(request)
    expected = model.recommend([3, 6, 1], k=2)
    assert served["user_id"].tolist() == expected["user_id"].tolist()
    assert served["item_id"].tolist() == expected["item_id"].tolist()
    np.testing.assert_allclose(served["score"].to_numpy(), expected["score"].to_numpy())
    assert served["rank"].tolist() == expected["rank"].tolist()
    assert served["item_id"].dtype == np.int64
    # seen barbers never come back
    seen = set(map(tuple, INTERACTIONS[["user_id", "item_id"]].to_numpy().tolist()))
    assert not any((u, i) in seen for u, i in zip(served["user_id"], served["item_id"],
                                                  strict=True))

    # k per row; an unknown user gets the most booked barber of the neighborhood sent with
    # the request (here "north"), whatever the fit-time mapping says.
    cold = loaded.predict(pd.DataFrame({"user_id": np.array([500, 1], dtype=np.int64),
                                        "k": np.array([1, 3], dtype=np.int64),
                                        "neighborhood": ["north", "north"]}))
    assert cold.groupby("user_id").size().to_dict() == {500: 1, 1: 3}  # 3 unseen left
    top_cold = cold.loc[cold["user_id"] == 500, "item_id"].iloc[0]
    assert top_cold in most_booked("north", GROUPS)
    # a user known only to the fit-time mapping (99 -> south) gets south's favourite
    south = loaded.predict(pd.DataFrame({"user_id": np.array([99], dtype=np.int64)}))
    assert south["item_id"].iloc[0] in most_booked("south", GROUPS)
    assert len(south) == min(10, model.n_items_)  # default k

    wrapper = loaded.unwrap_python_model()
    assert isinstance(wrapper, RecommenderModel)
    with pytest.raises(Exception, match="user_id"):
        loaded.predict(pd.DataFrame({"customer": np.array([1], dtype=np.int64)}))
    with pytest.raises(ModelInputError, match="user_id"):
        wrapper.predict(None, pd.DataFrame({"user_id": ["a", "b"]}))
    with pytest.raises(ModelInputError, match="'k' must be an integer in"):
        wrapper.predict(None, pd.DataFrame({"user_id": [1], "k": [0]}))
    with pytest.raises(ModelInputError, match="missing"):
        wrapper.predict(None, pd.DataFrame({"user_id": [1.0, np.nan]}))


SMALL_JOB = {
    "simulation": {"n_customers": 3000, "seed": 5},
    "candidates": {
        "neighborhood_popularity": {"class": "PopularityRecommender",
                                    "params": {"by_group": True}},
        "item_knn": {"class": "ItemKNNRecommender", "params": {"shrink": 10.0},
                     "search": {"param": "n_neighbors", "values": [10, 50]}},
        "ease": {"class": "EASERecommender", "params": {"l2": 100.0}},
    },
    "evaluation": {"n_bootstrap": 1000, "seed": 0},
}


@pytest.fixture(scope="module")
def small_data() -> MarketplaceData:
    return simulate(SimulationConfig(n_customers=3000, seed=5))


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    path = tmp_path / "recs.yaml"
    path.write_text(yaml.safe_dump({**SMALL_JOB, **overrides}))
    return path


def claims_file(tmp_path: Path, metric: str, claimed: float) -> Path:
    path = tmp_path / f"claims-{metric.replace('@', '_')}.yaml"
    path.write_text(yaml.safe_dump({
        "settings": {"non_inferiority": {"recs": {"metric": "mean", "margin": 0.01}}},
        "claims": [{"id": "test-claim", "family": "recs", "metric": metric,
                    "claimed": claimed, "direction": "at_least",
                    "source": "test"}]}))
    return path


def test_recs_job_logs_gates_and_promotes_only_when_passed(
        mlflow_store: Any, tmp_path: Path, small_data: MarketplaceData) -> None:
    job = JOBS["recs"]
    outcome = job.run(write_config(tmp_path), data=small_data)
    client = MlflowClient()
    run = client.get_run(outcome.run_id)
    report = json.loads(mlflow.artifacts.load_text(
        f"runs:/{outcome.run_id}/evaluation/report.json"))
    for name in ("ndcg@10", "recall@10", "hit@10", "ndcg@10_minus_baseline",
                 "ndcg@10_minus_global_popularity"):
        key = metric_key(name)
        assert run.data.metrics[key] == pytest.approx(report["metrics"][name]["value"])
        assert run.data.metrics[f"{key}_ci_low"] <= run.data.metrics[key] \
            <= run.data.metrics[f"{key}_ci_high"]
    # the gated difference is the model's NDCG@10 minus the neighborhood baseline's
    assert report["metrics"]["ndcg@10_minus_baseline"]["value"] == pytest.approx(
        report["metrics"]["ndcg@10"]["value"] - report["baselines"]["ndcg@10"]["value"])
    assert run.data.params["chosen_candidate"] in SMALL_JOB["candidates"]
    artifacts = {f.path for f in client.list_artifacts(outcome.run_id)}
    assert {"model_card.md", "gates", "evaluation", "config.yaml"} <= artifacts

    assert outcome.gate is not None
    rows = {c.claim_id: c for c in outcome.gate.claims}
    gate_row = rows["recs-ndcg10-beats-popularity"]
    audit_row = rows["recs-ndcg10-beats-neighborhood-popularity"]
    assert gate_row.blocking and gate_row.metric == "ndcg@10_minus_global_popularity"
    assert not audit_row.blocking and audit_row.metric == "ndcg@10_minus_baseline"
    # test bookings are scheduled after the cut-off: none repeats a training interaction
    assert rows["test-overlap"].verdict == "pass" and rows["test-overlap"].observed == 0
    assert outcome.gate_passed == (gate_row.verdict == "pass" and outcome.gate.champion.passed)
    assert outcome.promoted == outcome.gate_passed
    assert alias_version("barberpro-recs") == (outcome.version if outcome.promoted else None)
    assert run.data.tags["gate.passed"] == str(outcome.gate_passed).lower()

    # A claim the model supports (it beats global popularity): promoted; the next run is
    # compared with that champion on its own test customers.
    passing = write_config(tmp_path, claims=str(claims_file(
        tmp_path, "ndcg@10_minus_global_popularity", 0.0)))
    first = job.run(passing, data=small_data)
    assert first.gate_passed and first.promoted
    assert alias_version("barberpro-recs") == first.version
    second = job.run(passing, data=small_data)
    assert second.gate is not None
    assert second.gate.champion.champion_version == first.version
    # same data, same model: no difference from the champion
    assert second.gate.champion.difference == pytest.approx(0.0, abs=1e-12)
    assert second.promoted


def test_cli_train_recs_exits_3_when_a_blocking_claim_fails(
        mlflow_store: Any, tmp_path: Path, small_data: MarketplaceData) -> None:
    data_dir = tmp_path / "data"
    small_data.save(data_dir)
    config = write_config(tmp_path, claims=str(claims_file(tmp_path, "ndcg@10", 0.999)))
    result = CliRunner().invoke(app, ["train", "recs", "--config", str(config),
                                      "--data", str(data_dir)], env={"COLUMNS": "250"})
    assert result.exit_code == 3, result.output
    assert "test-claim" in result.output
    assert alias_version("barberpro-recs") is None
    assert alias_version("barberpro-recs", "challenger") == "1"
