"""The segments job end to end: a first run, then a retrain that keeps the champion's ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import yaml

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features import customer_features
from barberpro_ml.jobs import JOBS
from barberpro_ml.registry import alias_version


@pytest.fixture(scope="module")
def sample() -> MarketplaceData:
    return MarketplaceData.load(Path(__file__).resolve().parents[1] / "data" / "sample")


def config(tmp_path: Path, **model: Any) -> Path:
    path = tmp_path / "segments.yaml"
    path.write_text(yaml.safe_dump({"model": {"k_values": [3, 4], **model},
                                    "evaluation": {"n_bootstrap": 1000, "seed": 0}}))
    return path


def test_retrain_is_gated_on_keeping_the_champions_cluster_ids(mlflow_store: Any,
                                                                 tmp_path: Path,
                                                                 sample: MarketplaceData) -> None:
    job = JOBS["segments"]
    first = job.run(config(tmp_path), data=sample)
    assert first.promoted and alias_version("barberpro-segments") == first.version
    assert "no champion yet" in first.notes[0]
    stability = next(m for m in first.headline if m.name == "id_stability")
    assert 0.8 <= stability.ci_low <= stability.value <= stability.ci_high <= 1

    # a retrain with another seed: matched to the champion, so the ids mean the same
    second = job.run(config(tmp_path, random_state=7), data=sample)
    assert second.version == str(int(first.version) + 1)
    assert f"the champion v{first.version}" in second.notes[0]
    X = customer_features(sample, sample.observation_end.normalize())
    v1 = mlflow.pyfunc.load_model(f"models:/barberpro-segments/{first.version}")
    v2 = mlflow.pyfunc.load_model(f"models:/barberpro-segments/{second.version}")
    spec = v1.unwrap_python_model().spec.features
    a, b = v1.predict(spec.to_request(X)), v2.predict(spec.to_request(X))
    assert np.mean(a == b) >= 0.8
    reported = next(m for m in second.headline if m.name == "id_stability").value
    assert reported == pytest.approx(np.mean(a[b >= 0] == b[b >= 0]))

    # other cluster features cannot be matched: ids start afresh, and the run says so
    third = job.run(config(tmp_path, cluster_features=["visits_365d", "spend_per_visit",
                                                       "days_since_last_visit"]), data=sample)
    notes = mlflow.artifacts.load_dict(f"runs:/{third.run_id}/evaluation/report.json")["notes"]
    assert any(f"champion v{second.version} clusters other features" in n and
               "ids start afresh" in n for n in notes), notes
    assert "no champion yet" in third.notes[0]
