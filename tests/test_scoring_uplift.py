"""The scorer's recommended action follows the uplift champion when one is verified, and the
pooled-campaign rule otherwise (issue 19, part 3)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.scoring.actions import UpliftDecision, _actions
from conftest import copy_tracking_store, isolated_tracking

SMALL = {"n_estimators": 40, "max_depth": 2, "min_child_weight": 5.0}


@pytest.fixture(scope="module")
def uplift_registry(scoring_registry: Any, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[str]:
    """A copy of the session's registry with a verified ``barberpro-uplift`` champion added
    by the uplift job (a permissive test claim, so the small world's model is promoted)."""
    from barberpro_ml.jobs import uplift

    root = tmp_path_factory.mktemp("uplift-registry")
    uri = copy_tracking_store(scoring_registry.tracking_uri, root)
    (root / "mlruns").mkdir()
    claims = root / "claims.yaml"
    claims.write_text(yaml.safe_dump({"claims": [
        {"id": "test-uplift", "family": "uplift", "metric": "qini", "claimed": -0.5,
         "direction": "at_least", "policy": "point", "source": "test floor"}]}))
    with isolated_tracking(uri, root):
        cfg = uplift.load_config(model=SMALL, oracle_futures=0, claims=str(claims))
        outcome = uplift.run(cfg, data=scoring_registry.data, tracking_uri=uri)
        assert outcome.promoted, outcome.verdicts
    yield uri
    shutil.rmtree(root, ignore_errors=True)


def _retention(frame: pd.DataFrame) -> pd.Series:
    return frame["action"] == "retention_offer"


def test_without_an_uplift_champion_the_pooled_rule_decides(scoring_registry: Any) -> None:
    scorer = CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)
    assert scorer.uplift is None
    assert scorer.action_source.startswith("pooled campaign effect rule")
    assert "barberpro-uplift" in scorer.action_source


def test_the_uplift_champion_decides_who_gets_the_offer(uplift_registry: str,
                                                        scoring_registry: Any,
                                                        tmp_path: Path) -> None:
    data = scoring_registry.data
    scorer = CustomerScorer.from_registry(tracking_uri=uplift_registry)
    assert scorer.uplift is not None and scorer.uplift_ref is not None
    assert scorer.action_source.startswith(
        f"uplift model barberpro-uplift v{scorer.uplift_ref.version}")
    as_of = pd.Timestamp("2024-10-01")
    frame = scorer.score_frame(data, as_of=as_of, reasons=False)
    # the registered model loaded on its own, fed the same point-in-time features
    with isolated_tracking(uplift_registry, tmp_path):
        model = mlflow.pyfunc.load_model("models:/barberpro-uplift@champion")
    names = model.metadata.signature.inputs.input_names()
    features = scorer.snapshot(data, as_of).features.loc[frame.index, names]
    numbers = features.apply(lambda c: c.cat.codes.astype(float).where(c.cat.codes >= 0)
                             if isinstance(c.dtype, pd.CategoricalDtype) else c.astype(float))
    direct = model.predict(numbers)
    visited = frame["n_visits"].to_numpy() > 0
    expected = visited & direct["treat"].to_numpy(dtype=bool)
    np.testing.assert_array_equal(_retention(frame).to_numpy(), expected)
    np.testing.assert_allclose(frame["offer_expected_gain"].to_numpy()[visited],
                               direct["expected_gain"].to_numpy()[visited], rtol=1e-12)
    assert frame.loc[~visited, "offer_expected_gain"].isna().all()
    assert 0 < expected.sum() < visited.sum(), (expected.sum(), visited.sum())
    offered = frame.loc[_retention(frame), "action_text"]
    assert offered.str.contains("barberpro-uplift v").all()
    # the fallback scorer (same models, no uplift) decides by the pooled rule instead
    plain = CustomerScorer.from_registry(tracking_uri=uplift_registry, uplift=None)
    assert plain.uplift is None
    other = plain.score_frame(data, as_of=as_of, reasons=False)
    assert not other["action_text"].str.contains("barberpro-uplift").any()
    # everything but the actions is the same
    same = [c for c in frame.columns if c not in ("action", "action_text",
                                                   "offer_expected_gain")]
    pd.testing.assert_frame_equal(frame[same], other[same])


def test_a_running_service_picks_up_a_new_uplift_champion(uplift_registry: str,
                                                           scoring_registry: Any) -> None:
    """A service started before the uplift model was promoted follows it at the next poll,
    without a restart; the profile families are not reloaded."""
    from barberpro_ml.scoring.live import LiveScorer

    scorer = CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)
    assert scorer.uplift is None
    # the uplift registry is a copy of the scorer's one plus a promoted barberpro-uplift
    live = LiveScorer(scorer, scoring_registry.data, tracking_uri=uplift_registry)
    before = live.current
    attempt = live.poll_models()
    assert attempt is not None and attempt.outcome == "swapped", attempt
    assert set(attempt.swapped) == {"uplift"}
    after = live.current.scorer
    assert after.uplift is not None and after.uplift_ref is not None
    assert after.action_source.startswith(
        f"uplift model barberpro-uplift v{after.uplift_ref.version}")
    assert after.churn is before.scorer.churn and after.recs is before.scorer.recs
    assert live.poll_models() is None  # nothing moved since
    as_of = pd.Timestamp("2024-10-01")
    fresh = CustomerScorer.from_registry(tracking_uri=uplift_registry)
    pd.testing.assert_frame_equal(
        after.score_frame(scoring_registry.data, as_of=as_of, reasons=False),
        fresh.score_frame(scoring_registry.data, as_of=as_of, reasons=False))


def test_actions_with_an_uplift_decision() -> None:
    n = 5
    columns = {
        "n_visits": np.array([0, 3, 3, 3, 3]),
        "churn_probability": np.array([0.5, 0.9, 0.1, 0.9, 0.1]),
        "risk_band": np.array(["medium", "high", "low", "high", "low"], dtype=object),
        "spend_per_visit": np.full(n, 30.0), "usual_gap_days": np.full(n, 30.0),
        "lifecycle_stage": np.array(["new", "at_risk", "active", "lapsed", "active"],
                                    dtype=object),
        "next_service": np.array(["fade"] * n, dtype=object),
        "lifecycle_reason": np.array(["r"] * n, dtype=object)}
    decision = UpliftDecision(uplift=np.array([0.3, 0.2, 0.1, 0.0, 0.0]),
                              expected_gain=np.array([5.0, 4.0, 2.0, -1.0, -3.0]),
                              treat=np.array([True, True, True, False, False]),
                              discount=0.15, label="barberpro-uplift v7")
    out = _actions(columns, None, uplift=decision)
    # no visit: a nudge whatever the model says; treated: the offer with the model's gain,
    # even at low churn risk; not treated: reminder when overdue, else nothing
    assert list(out["action"]) == ["first_booking_nudge", "retention_offer", "retention_offer",
                                   "reminder", "none"]
    np.testing.assert_array_equal(out["offer_expected_gain"], [np.nan, 4.0, 2.0, -1.0, -3.0])
    assert "15% offer" in out["action_text"][1] and "barberpro-uplift v7" in out["action_text"][1]
    assert out["action_text"][3].endswith("an offer does not pay")
    # without it, no campaign effect: no offer at all
    assert "retention_offer" not in set(_actions(columns, None)["action"])
