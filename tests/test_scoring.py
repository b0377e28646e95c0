"""The scoring API against a registry holding a champion of every family.

The central property: a profile's numbers are the registered models' numbers. Each family's
model is loaded again directly (``mlflow.pyfunc.load_model("models:/<name>@champion")``) and
fed the same point-in-time features; the profile must agree exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from barberpro_ml.cli import app
from barberpro_ml.features import customer_features
from barberpro_ml.models import BetaGeoModel, BetaGeoParams
from barberpro_ml.registry.models import CLV_PARAMS_ARTIFACT, FeatureColumn
from barberpro_ml.scoring import (
    CustomerProfile,
    CustomerScorer,
    FeatureSchemaError,
    UnknownCustomerError,
    churn_reasons,
)
from barberpro_ml.scoring.actions import OfferPolicy, recommend_actions


@pytest.fixture(scope="module")
def scorer(scoring_registry: Any) -> CustomerScorer:
    return CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)


def champion(registry: Any, name: str) -> Any:
    mlflow.set_tracking_uri(registry.tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{name}@champion")


def test_loads_every_champion_once_and_reports_versions(scorer: CustomerScorer,
                                                       scoring_registry: Any) -> None:
    assert scorer.versions() == scoring_registry.versions
    assert set(scorer.models) == {"churn", "ltv", "recs", "segments"}
    assert all(ref.alias == "champion" and ref.run_id for ref in scorer.models.values())


def test_profile_numbers_equal_the_registered_models_loaded_directly(
        scorer: CustomerScorer, scoring_registry: Any) -> None:
    data = scoring_registry.data
    as_of = data.observation_end - pd.Timedelta(days=20)
    X = customer_features(data, as_of)
    ids = [int(i) for i in X.index[::97][:12]]
    profiles = scorer.profile_batch(data, ids, as_of)
    assert [p.customer_id for p in profiles] == ids
    rows = X.loc[ids]

    churn = champion(scoring_registry, "barberpro-churn")
    spec = churn.unwrap_python_model().spec.features
    expected_churn = churn.predict(spec.to_request(rows))
    np.testing.assert_array_equal([p.churn.probability for p in profiles], expected_churn)

    ltv = champion(scoring_registry, "barberpro-ltv")
    spec = ltv.unwrap_python_model().spec.features
    np.testing.assert_array_equal([p.value.expected_12m for p in profiles],
                                  ltv.predict(spec.to_request(rows)))

    segments = champion(scoring_registry, "barberpro-segments")
    spec = segments.unwrap_python_model().spec.features
    np.testing.assert_array_equal([p.segment.cluster for p in profiles],
                                  segments.predict(spec.to_request(rows)))

    recs = champion(scoring_registry, "barberpro-recs")
    request = pd.DataFrame({"user_id": np.array(ids, dtype=np.int64),
                            "k": np.full(len(ids), 50, dtype=np.int64),
                            "neighborhood": data.customers.set_index("customer_id")
                            .loc[ids, "neighborhood"].astype(str).to_numpy()})
    top = recs.predict(request)
    providers = data.providers.set_index("provider_id")
    working = set(providers.index[(providers["joined_at"] <= as_of)
                                  & (providers["left_at"].isna()
                                     | (providers["left_at"] > as_of))])
    for p in profiles:
        mine = top.loc[(top["user_id"] == p.customer_id) & top["item_id"].isin(working)]
        assert [b.provider_id for b in p.barbers] == mine["item_id"].head(3).tolist()
        assert [b.score for b in p.barbers] == mine["score"].head(3).tolist()

    # probability alive: the BG/NBD of the LTV champion's run, on the customer's RFM
    run_id = scorer.models["ltv"].run_id
    params = mlflow.artifacts.load_dict(f"runs:/{run_id}/{CLV_PARAMS_ARTIFACT}")
    bgnbd = BetaGeoModel()
    bgnbd.params_ = BetaGeoParams(**params["bgnbd"])
    snap = scorer.snapshot(data, as_of)
    for p in profiles:
        if p.lifecycle.n_visits == 0:
            assert p.value.probability_alive is None
        else:
            r = snap.rfm.loc[p.customer_id]
            assert p.value.probability_alive == pytest.approx(
                float(bgnbd.probability_alive(r["frequency"], r["recency"], r["T"])), abs=1e-12)


def test_profiles_are_valid_json_records_with_reasons_in_words(scorer: CustomerScorer,
                                                               scoring_registry: Any) -> None:
    data = scoring_registry.data
    snap = scorer.snapshot(data)
    overdue = snap.features.loc[(snap.features["days_overdue"] > 5)
                                & (snap.features["gap_mean_days"] > 0)]
    customer = int(overdue.index[0])
    profile = scorer.profile(data, customer)[0]
    again = CustomerProfile.model_validate_json(profile.model_dump_json())
    assert again == profile
    assert 0 <= profile.churn.probability <= 1
    assert len(profile.churn.reasons) == scorer.n_reasons
    impacts = [abs(r.impact) for r in profile.churn.reasons]
    assert impacts == sorted(impacts, reverse=True)
    rhythm = [r for r in profile.churn.reasons if r.group == "visit_rhythm"]
    if rhythm:  # phrased from the customer's own numbers
        row = overdue.loc[customer]
        assert f"{row['days_overdue']:.0f} days overdue" in rhythm[0].text
        assert f"usual {row['gap_mean_days']:.0f}-day cadence" in rhythm[0].text
    assert profile.model_versions == scorer.versions()
    assert profile.lifecycle.stage == str(snap.lifecycle.loc[customer, "stage"])


def test_unknown_and_future_customers_are_refused_by_name(scorer: CustomerScorer,
                                                          scoring_registry: Any) -> None:
    data = scoring_registry.data
    known = int(data.customers["customer_id"].iloc[0])
    with pytest.raises(UnknownCustomerError, match="999999999"):
        scorer.profile_batch(data, [known, 999_999_999])
    late = data.customers.sort_values("signup_at").iloc[-1]
    before = late["signup_at"] - pd.Timedelta(days=1)
    with pytest.raises(UnknownCustomerError, match=str(int(late["customer_id"]))):
        scorer.profile(data, int(late["customer_id"]), before)
    with pytest.raises(ValueError, match="after the data's last event"):
        scorer.profile(data, known, data.observation_end + pd.Timedelta(days=1))
    with pytest.raises(TypeError, match="integers"):
        scorer.score_frame(data, None, ["a"])  # type: ignore[list-item]


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(1, 40), seed=st.integers(0, 10_000))
def test_score_frame_does_not_depend_on_chunking_or_order(scorer: CustomerScorer,
                                                          scoring_registry: Any, chunk: int,
                                                          seed: int) -> None:
    data = scoring_registry.data
    snap = scorer.snapshot(data)
    rng = np.random.default_rng(seed)
    ids = rng.choice(snap.features.index.to_numpy(), size=60, replace=False)
    whole = scorer.score_frame(data, None, ids)
    chunked = scorer.score_frame(data, None, ids[::-1], chunk_size=chunk)
    assert list(whole.index) == list(ids)
    pd.testing.assert_frame_equal(whole, chunked.loc[whole.index])


def test_feature_schema_mismatch_is_refused_naming_model_and_columns(
        scorer: CustomerScorer, scoring_registry: Any) -> None:
    spec = scorer.churn.spec
    assert spec is not None
    extra = spec.features.model_copy(update={"columns": [
        *spec.features.columns, FeatureColumn(name="loyalty_points", kind="double")]})
    broken = type(scorer.churn)(scorer.churn.estimator,
                                spec.model_copy(update={"features": extra}))
    other = CustomerScorer(churn=broken, ltv=scorer.ltv, recs=scorer.recs,
                           segments=scorer.segments, bgnbd=scorer.bgnbd, models=scorer.models)
    with pytest.raises(FeatureSchemaError, match="loyalty_points") as info:
        other.snapshot(scoring_registry.data)
    assert "barberpro-churn v" in str(info.value)

    retyped = spec.features.model_copy(update={"columns": [
        c if c.name != "n_visits" else FeatureColumn(name="n_visits", kind="datetime")
        for c in spec.features.columns]})
    broken = type(scorer.churn)(scorer.churn.estimator,
                                spec.model_copy(update={"features": retyped}))
    other = CustomerScorer(churn=broken, ltv=scorer.ltv, recs=scorer.recs,
                           segments=scorer.segments, bgnbd=scorer.bgnbd, models=scorer.models)
    with pytest.raises(FeatureSchemaError, match="n_visits"):
        other.snapshot(scoring_registry.data)


def test_recommendations_list_working_barbers_and_likely_services(
        scorer: CustomerScorer, scoring_registry: Any) -> None:
    data = scoring_registry.data
    customer = int(scorer.snapshot(data).features.query("n_visits > 3").index[0])
    recs = scorer.recommendations(data, customer, k_barbers=5)
    assert 1 <= len(recs.next_services) <= 3
    probabilities = [s.probability for s in recs.next_services]
    assert probabilities == sorted(probabilities, reverse=True)
    assert [b.rank for b in recs.barbers] == list(range(1, len(recs.barbers) + 1))
    left = set(data.providers.loc[data.providers["left_at"].notna(), "provider_id"])
    assert not left & {b.provider_id for b in recs.barbers}
    with pytest.raises(ValueError, match="k_barbers"):
        scorer.recommendations(data, customer, k_barbers=0)


def test_churn_reasons_group_shap_values_and_rank_by_size() -> None:
    features = pd.DataFrame({"days_since_last_visit": [49.0, 3.0], "gap_mean_days": [28.0, 30.0],
                             "tenure_days": [400.0, 50.0], "cancel_rate": [0.5, 0.0],
                             "no_show_rate": [0.0, 0.0], "mystery": [1.0, 2.0]},
                            index=pd.Index([7, 8], name="customer_id"))
    shap = pd.DataFrame({"days_since_last_visit": [1.0, -0.2], "gap_mean_days": [0.5, -0.3],
                         "tenure_days": [0.1, 0.05], "cancel_rate": [-0.9, 0.0],
                         "no_show_rate": [0.0, 0.0], "mystery": [0.2, 0.6], "bias": [3.0, 3.0]},
                        index=features.index)
    out = churn_reasons(shap, features, k=3)
    assert out.loc[7, "reason_1_group"] == "visit_rhythm"
    assert out.loc[7, "reason_1_impact"] == pytest.approx(1.5)
    assert out.loc[7, "reason_1"] == "21 days overdue against a usual 28-day cadence"
    assert out.loc[7, "reason_2_group"] == "reliability"
    assert out.loc[7, "reason_2"] == "50% of bookings cancelled, 0% no-shows"
    assert out.loc[8, "reason_1_group"] == "mystery"  # a feature outside every group
    assert out.loc[8, "reason_2"] == "last visit 3 days ago, within a usual 30-day cadence"
    with pytest.raises(ValueError, match="same index"):
        churn_reasons(shap, features.iloc[:1])


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-5, 5), min_size=6, max_size=6), k=st.integers(1, 6))
def test_reason_impacts_are_group_sums_in_decreasing_size(values: list[float], k: int) -> None:
    columns = ["days_since_last_visit", "gap_mean_days", "visits_90d", "n_visits",
               "cancel_rate", "tenure_days"]
    features = pd.DataFrame([[10.0, 20.0, 1.0, 3.0, 0.1, 100.0]], columns=columns)
    shap = pd.DataFrame([values], columns=columns)
    out = churn_reasons(shap, features, k=k)
    impacts = [out.loc[0, f"reason_{i}_impact"] for i in range(1, min(k, 4) + 1)]
    assert [abs(v) for v in impacts] == sorted((abs(v) for v in impacts), reverse=True)
    groups = {"visit_rhythm": values[0] + values[1], "visit_frequency": values[2] + values[3],
              "reliability": values[4], "tenure": values[5]}
    for i in range(1, min(k, 4) + 1):
        assert out.loc[0, f"reason_{i}_impact"] == pytest.approx(
            groups[out.loc[0, f"reason_{i}_group"]])


def _action_frame(**columns: Any) -> pd.DataFrame:
    base = {"churn_probability": [0.8], "risk_band": ["high"], "lifecycle_stage": ["at_risk"],
            "n_visits": [10], "spend_per_visit": [40.0], "usual_gap_days": [30.0],
            "lifecycle_reason": ["overdue"], "next_service": ["haircut"]}
    return pd.DataFrame({**base, **columns})


def test_actions_offer_only_where_a_measured_effect_pays(scorer: CustomerScorer,
                                                         scoring_registry: Any) -> None:
    from barberpro_ml.evaluation.report import MetricEstimate
    from barberpro_ml.evaluation.uplift import offer_pays

    effect = scorer.snapshot(scoring_registry.data).offer_effect
    fake = None
    if effect is not None:
        fake = effect.model_copy(update={"relative_reduction": MetricEstimate(
            name="relative_reduction", value=0.3, ci_low=0.2, ci_high=0.4)})
    frame = _action_frame()
    if fake is not None:
        out = recommend_actions(frame, fake, OfferPolicy())
        gain, _ = offer_pays(0.8, 0.2, 40.0 * 365 / 30, 0.2 * 40.0)
        assert out.loc[0, "action"] == "retention_offer"
        assert out.loc[0, "offer_expected_gain"] == pytest.approx(float(gain[()]))
        low_risk = recommend_actions(_action_frame(churn_probability=[0.01], risk_band=["low"],
                                                   lifecycle_stage=["active"]), fake)
        assert low_risk.loc[0, "action"] == "none"
        no_effect = fake.model_copy(update={"relative_reduction": MetricEstimate(
            name="relative_reduction", value=0.05, ci_low=-0.02, ci_high=0.1)})
        out = recommend_actions(frame, no_effect)
        assert out.loc[0, "action"] == "reminder" and "no clear effect" in \
            out.loc[0, "action_text"]
    out = recommend_actions(frame, None, effect_note="no campaign yet")
    assert out.loc[0, "action"] == "reminder" and np.isnan(out.loc[0, "offer_expected_gain"])
    nudge = recommend_actions(_action_frame(n_visits=[0], spend_per_visit=[np.nan]), fake)
    assert nudge.loc[0, "action"] == "first_booking_nudge"


def test_cli_score_writes_every_customer_as_parquet(scoring_registry: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", scoring_registry.tracking_uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    as_of = "2024-06-30"
    out = tmp_path / "profiles.parquet"
    result = CliRunner().invoke(app, ["score", "--as-of", as_of, "--out", str(out), "--data",
                                      str(scoring_registry.data_dir)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    signed_up = (scoring_registry.data.customers["signup_at"] <= pd.Timestamp(as_of)).sum()
    assert len(frame) == signed_up
    assert frame["churn_probability"].between(0, 1).all()
    assert frame["reason_1"].str.len().gt(0).all()
    assert isinstance(frame["recommended_barbers"].iloc[0], np.ndarray | list)
    missing = CliRunner().invoke(app, ["score", "--out", str(out), "--data",
                                       str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "barberpro-ml pipeline" in missing.output
    assert json.dumps(frame.columns.tolist())  # plain column names
