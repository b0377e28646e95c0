"""The scoring API against a registry holding a champion of every family.

The central property: a profile's numbers are the registered models' numbers. Each family's
model is loaded again directly (``mlflow.pyfunc.load_model("models:/<name>@champion")``) and
fed the same point-in-time features; the profile must agree exactly.
"""

from __future__ import annotations

import itertools
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
from barberpro_ml.definitions import Definitions
from barberpro_ml.errors import InputError, ModelUnavailableError
from barberpro_ml.features import active_customers, customer_features, rfm_features
from barberpro_ml.models import BetaGeoModel, BetaGeoParams
from barberpro_ml.registry.models import CLV_PARAMS_ARTIFACT, FeatureColumn
from barberpro_ml.scoring import (
    CustomerProfile,
    CustomerScorer,
    FeatureSchemaError,
    UnknownCustomerError,
    churn_reasons,
    segment_summary,
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
    X = pd.concat([X, rfm_features(data, as_of, X.index)], axis=1)  # the LTV inputs
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

    # probability alive: the BG/NBD registered inside the LTV model, on the customer's RFM
    params = ltv.unwrap_python_model().spec.clv_params
    assert params is not None, "the LTV job registers its BG/NBD with the model"
    run_id = scorer.models["ltv"].run_id
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/{CLV_PARAMS_ARTIFACT}")["bgnbd"] == \
        params.bgnbd  # the same numbers as the run artifact of older versions
    bgnbd = BetaGeoModel()
    bgnbd.params_ = BetaGeoParams(**params.bgnbd)
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


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.floats(allow_infinity=False), st.sampled_from(
    [-0.0, 0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 0.125, 0.995, 0.005, float("nan")])),
    min_size=0, max_size=60))
def test_reason_numbers_read_as_python_formats_each_value(values: list[float]) -> None:
    from barberpro_ml.scoring.reasons import _int_text, _one_decimal, _pct_text

    array = np.asarray(values, dtype=np.float64)
    for phrase, fmt in ((_int_text, "{:.0f}"), (_pct_text, "{:.0%}"), (_one_decimal, "{:.1f}")):
        assert phrase(array).tolist() == [fmt.format(v) if v == v else "" for v in values]


def test_churn_reasons_of_a_block_equal_each_row_phrased_alone(scoring_registry: Any) -> None:
    """The block path (each group phrased once for every row naming it, texts gathered back by
    position) gives every row what phrasing that row alone gives, on real features."""
    data = scoring_registry.data
    features = customer_features(data, data.observation_end - pd.Timedelta(days=20))
    rng = np.random.default_rng(5)
    shap = pd.DataFrame(rng.normal(size=features.shape) * rng.uniform(0, 2, features.shape[1]),
                        index=features.index, columns=features.columns)
    block = churn_reasons(shap, features, k=4)
    rows = rng.choice(len(features), size=60, replace=False)
    alone = pd.concat([churn_reasons(shap.iloc[[i]], features.iloc[[i]], k=4) for i in rows])
    pd.testing.assert_frame_equal(block.iloc[rows], alone, check_exact=True)
    assert block["reason_1_group"].nunique() > 3  # the sample covers several groups


def test_scoring_in_blocks_equals_scoring_the_whole_population(
        scorer: CustomerScorer, scoring_registry: Any) -> None:
    """Blocks of customers (a size that does not divide the population, and a tiny one), each
    with its own snapshot and the population inputs computed once, give every customer the
    row the whole snapshot gives, exactly."""
    from barberpro_ml.scoring.snapshot import build_snapshot, customer_blocks, population_inputs

    data = scoring_registry.data
    as_of = data.observation_end - pd.Timedelta(days=20)
    whole = scorer.score_frame(data, as_of)
    seen: list[int] = []
    blocked = pd.concat(scorer.score_blocks(data, as_of, block_customers=383, chunk_size=100,
                                            progress=lambda done, total: seen.append(done)))
    assert len(whole) % 383 != 0 and seen[-1] == len(whole) and len(seen) > 1
    pd.testing.assert_frame_equal(blocked, whole, check_exact=True)
    for size in (len(whole), len(whole) + 1):  # one block: the data's own tables
        (one,) = scorer.score_blocks(data, as_of, block_customers=size)
        pd.testing.assert_frame_equal(one, whole, check_exact=True)

    # a tiny block: the snapshot's every table equals the whole snapshot's rows
    population = population_inputs(data, as_of, definitions=scorer.definitions)
    full = build_snapshot(data, as_of, definitions=scorer.definitions)
    blocks = customer_blocks(data, as_of, 7)
    for block in [next(blocks) for _ in range(3)]:
        part = build_snapshot(block, as_of, definitions=scorer.definitions,
                              population=population)
        ids = part.features.index
        assert len(ids) == 7
        pd.testing.assert_frame_equal(part.features, full.features.loc[ids], check_exact=True)
        pd.testing.assert_frame_equal(part.lifecycle, full.lifecycle.loc[ids],
                                      check_exact=True)
        nxt = full.next_services.loc[full.next_services["customer_id"].isin(ids)]
        pd.testing.assert_frame_equal(part.next_services.reset_index(drop=True),
                                      nxt.reset_index(drop=True), check_exact=True)
    sizes = [len(b.customers) for b in customer_blocks(data, as_of, 1000)]
    assert sum(sizes) == len(whole) and sizes[-1] == len(whole) % 1000
    with pytest.raises(InputError, match="block_customers"):
        next(scorer.score_blocks(data, as_of, block_customers=0))


# --------------------------------------------------------------------------- score job in blocks
def _written_whole(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """What the score job wrote before it streamed: the whole frame, one ``to_parquet``."""
    from barberpro_ml.jobs.score import write_parquet_atomically

    write_parquet_atomically(frame, path)
    return pd.read_parquet(path)


@pytest.mark.parametrize(("block_customers", "days_before_end"), [(383, 20), (7, 560)])
def test_the_score_job_streams_blocks_into_the_file_the_whole_frame_gives(
        scorer: CustomerScorer, scoring_registry: Any, tmp_path: Path, block_customers: int,
        days_before_end: int) -> None:
    """Blocks that do not divide the population (and 7-customer blocks, at an earlier cut-off
    to keep them few), appended to one Parquet file under the declared schema, read back as
    exactly the file of ``score_frame`` written whole; the summary is counted block by block."""
    from barberpro_ml.jobs import score as score_job

    data = scoring_registry.data
    as_of = data.observation_end - pd.Timedelta(days=days_before_end)
    whole = scorer.score_frame(data, as_of)
    assert len(whole) % block_customers != 0 and len(whole) > 3 * block_customers
    expected = _written_whole(whole, tmp_path / "whole.parquet")
    seen: list[tuple[int, int]] = []
    cfg = score_job.ScoreConfig(out=str(tmp_path / "out" / "blocked.parquet"), as_of=as_of,
                                block_customers=block_customers, chunk_size=50)
    result = score_job.run(cfg, data=data, scorer=scorer,
                           progress=lambda done, total: seen.append((done, total)))
    got = pd.read_parquet(result.path)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert len(seen) == -(-len(whole) // block_customers) and seen[-1] == (len(whole),) * 2
    assert result.n_profiles == len(whole) and result.as_of == as_of.to_pydatetime()
    assert result.actions == whole["action"].value_counts().to_dict()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["blocked.parquet"]


def test_a_column_null_in_some_blocks_keeps_its_declared_type(
        scorer: CustomerScorer, scoring_registry: Any, tmp_path: Path) -> None:
    """Slices of a scored frame where columns are all null (a string, a nullable int, a
    list), and a scorer missing three families (their columns null in every block): the
    streamed file equals the whole frame's."""
    from barberpro_ml.jobs.score import write_parquet_blocks

    data = scoring_registry.data
    whole = scorer.score_frame(data, data.observation_end - pd.Timedelta(days=20))
    # block 1 (30 rows): a string, a nullable int, a list and an int column all null, which
    # are filled in the other blocks
    first = whole.index[-30:]
    frame = pd.concat([whole.loc[first], whole.drop(index=first)]).astype({"r_score": float})
    frame.loc[first, ["reason_1", "next_service_id", "recommended_barbers"]] = None
    frame.loc[first, "r_score"] = np.nan
    assert frame.iloc[:30][["next_service_id", "reason_1", "r_score"]].isna().all().all()
    assert frame.iloc[30:][["next_service_id", "reason_1", "r_score"]].notna().any().all()
    blocks = [frame.iloc[:30], frame.iloc[30:31], frame.iloc[31:]]
    path = tmp_path / "blocks.parquet"
    assert write_parquet_blocks(iter(blocks), scorer.frame_schema(), path) == len(frame)
    expected = _written_whole(frame, tmp_path / "whole.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected, check_exact=True)

    three_missing = _partial(scorer, "churn", "recs", "segments")
    as_of = data.observation_end - pd.Timedelta(days=20)
    expected = _written_whole(three_missing.score_frame(data, as_of),
                              tmp_path / "partial-whole.parquet")
    assert expected["r_score"].isna().all() and expected["recommended_barbers"].isna().all()
    written = write_parquet_blocks(three_missing.score_blocks(data, as_of, block_customers=999),
                                   three_missing.frame_schema(), path)
    assert written == len(expected)
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected, check_exact=True)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, 400), max_size=6))
def test_any_split_into_blocks_writes_the_same_file(
        scorer: CustomerScorer, scoring_registry: Any, tmp_path: Path, cuts: list[int]) -> None:
    from barberpro_ml.jobs.score import write_parquet_blocks

    data = scoring_registry.data
    frame = scorer.score_frame(data, data.observation_end - pd.Timedelta(days=500))
    frame = frame.iloc[:400]
    bounds = [0, *sorted(cuts), len(frame)]
    blocks = [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]
    path = tmp_path / "split.parquet"
    write_parquet_blocks(blocks, scorer.frame_schema(), path)
    expected = _written_whole(frame, tmp_path / "split-whole.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected, check_exact=True)


def test_a_block_off_the_declared_schema_is_refused_and_leaves_no_file(
        scorer: CustomerScorer, scoring_registry: Any, tmp_path: Path) -> None:
    from barberpro_ml.jobs.score import write_parquet_blocks

    data = scoring_registry.data
    frame = scorer.score_frame(data, data.observation_end - pd.Timedelta(days=500)).iloc[:20]
    path = tmp_path / "p.parquet"
    extra = frame.assign(surprise=1.0)
    with pytest.raises(ValueError, match=r"surprise.*FRAME_COLUMN_TYPES"):
        write_parquet_blocks([frame.iloc[:10], extra.iloc[10:]], scorer.frame_schema(), path)
    wrong = frame.astype({"n_visits": object})
    wrong.iloc[0, wrong.columns.get_loc("n_visits")] = "many"
    with pytest.raises(ValueError, match="does not fit the declared schema"):
        write_parquet_blocks([wrong], scorer.frame_schema(), path)
    assert list(tmp_path.iterdir()) == []
    assert scorer.frame_columns() == frame.columns.tolist()
    assert scorer.frame_columns(reasons=False) == scorer.score_frame(
        data, data.observation_end - pd.Timedelta(days=500), reasons=False).columns.tolist()


def test_cli_score_block_customers(scoring_registry: Any, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from barberpro_ml.jobs.score import ScoreConfig
    from barberpro_ml.scoring.scorer import BLOCK_CUSTOMERS

    assert ScoreConfig().block_customers == BLOCK_CUSTOMERS
    monkeypatch.setenv("MLFLOW_TRACKING_URI", scoring_registry.tracking_uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    base = ["score", "--as-of", "2024-06-30", "--data", str(scoring_registry.data_dir),
            "--no-reasons"]
    files = {}
    for blocks in ("250", None):
        out = tmp_path / f"profiles-{blocks}.parquet"
        args = [*base, "--out", str(out), *(["--block-customers", blocks] if blocks else [])]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        files[blocks] = pd.read_parquet(out)
    assert len(files["250"]) > 250
    pd.testing.assert_frame_equal(files["250"], files[None], check_exact=True)
    spark = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "s"), "--engine", "spark",
                                     "--block-customers", "9"])
    assert spark.exit_code != 0 and "--buckets" in spark.output
    zero = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "z"),
                                    "--block-customers", "0"])
    assert zero.exit_code == 2


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


# --------------------------------------------------------------------------- degrade, don't die
def _partial(scorer: CustomerScorer, *missing: str, **kwargs: Any) -> CustomerScorer:
    from barberpro_ml.scoring.records import FamilyStatus

    kept = {f: getattr(scorer, f) for f in ("churn", "ltv", "recs", "segments")
            if f not in missing}
    status = {f: FamilyStatus(family=f, name=f"barberpro-{f}", state="missing",
                              reason=f"no @champion of barberpro-{f}: its gate failed")
              for f in missing}
    return CustomerScorer(**kept, **{"bgnbd": scorer.bgnbd, **kwargs},
                          models={f: r for f, r in scorer.models.items() if f not in missing},
                          status=status)


def test_a_missing_family_leaves_its_fields_null_with_the_reason(
        scorer: CustomerScorer, scoring_registry: Any) -> None:
    data = scoring_registry.data
    ids = [int(i) for i in scorer.snapshot(data).features.query("n_visits > 2").index[:20]]
    full = scorer.profile_batch(data, ids)
    no_ltv = _partial(scorer, "ltv").profile_batch(data, ids)
    for a, b in zip(full, no_ltv, strict=True):
        assert b.value is None and "barberpro-ltv" in b.unavailable["value"]
        assert (b.churn, b.segment, b.barbers, b.action, b.lifecycle) == \
            (a.churn, a.segment, a.barbers, a.action, a.lifecycle)
    no_churn = _partial(scorer, "churn").profile_batch(data, ids)
    for a, b in zip(full, no_churn, strict=True):
        assert b.churn is None and "barberpro-churn" in b.unavailable["churn"]
        assert b.action.kind != "retention_offer" and b.action.expected_gain is None
        assert "no churn model" in b.action.text or b.action.kind in ("none",
                                                                      "first_booking_nudge")
        assert "action" in b.unavailable
        assert b.value == a.value and b.segment == a.segment
        if a.lifecycle.stage in ("at_risk", "lapsed"):
            assert b.action.kind == "reminder"
    only_recs = _partial(scorer, "churn", "ltv", "segments").profile_batch(data, ids)
    assert all(p.barbers == q.barbers and p.churn is None and p.value is None
               and p.segment is None for p, q in zip(only_recs, full, strict=True))


def test_score_frame_writes_null_columns_for_a_missing_family(scorer: CustomerScorer,
                                                              scoring_registry: Any) -> None:
    data = scoring_registry.data
    frame = _partial(scorer, "segments", "churn").score_frame(data, None)
    full = scorer.score_frame(data, None)
    assert list(frame.columns) == list(full.columns)
    assert frame["cluster"].isna().all() and frame["rfm_segment"].isna().all()
    assert frame["churn_probability"].isna().all() and frame["reason_1"].isna().all()
    np.testing.assert_array_equal(frame["expected_value_12m"], full["expected_value_12m"])
    assert frame["recommended_barbers"].map(len).tolist() == \
        full["recommended_barbers"].map(len).tolist()
    with pytest.raises(ModelUnavailableError, match="segments"):
        segment_summary(_partial(scorer, "segments"), data, by="cluster")
    with pytest.raises(ModelUnavailableError, match="recs"):
        _partial(scorer, "recs").recommendations(data, int(frame.index[0]))
    with pytest.raises(ModelUnavailableError, match="no model family"):
        _partial(scorer, "churn", "ltv", "recs", "segments")


def test_probability_alive_is_null_with_the_reason_without_bgnbd_parameters(
        scorer: CustomerScorer, scoring_registry: Any) -> None:
    from barberpro_ml.registry.models import EstimatorModel
    from barberpro_ml.scoring.scorer import _ltv_bgnbd

    assert scorer.ltv is not None and scorer.ltv.spec is not None
    older = EstimatorModel(scorer.ltv.estimator,
                           scorer.ltv.spec.model_copy(update={"clv_params": None}))
    ref = scorer.models["ltv"]
    fallback, note = _ltv_bgnbd(older, ref, scoring_registry.tracking_uri)
    assert fallback is not None and note == ""  # read from the run artifact
    assert fallback.params_ == scorer.bgnbd.params_  # type: ignore[union-attr]
    none, note = _ltv_bgnbd(older, ref.model_copy(update={"run_id": None}),
                            scoring_registry.tracking_uri)
    assert none is None and "no BG/NBD parameters" in note
    data = scoring_registry.data
    customer = int(scorer.snapshot(data).features.query("n_visits > 2").index[0])
    profile = _partial(scorer, bgnbd=None, bgnbd_note=note).profile(data, customer)[0]
    assert profile.value is not None and profile.value.probability_alive is None
    assert profile.value.expected_12m == scorer.profile(data, customer)[0].value.expected_12m  \
        # type: ignore[union-attr]
    assert "no BG/NBD parameters" in profile.unavailable["value.probability_alive"]


def test_profile_batch_keeps_duplicates_in_order(scorer: CustomerScorer,
                                                 scoring_registry: Any) -> None:
    data = scoring_registry.data
    a, b = (int(i) for i in scorer.snapshot(data).features.index[:2])
    profiles = scorer.profile_batch(data, [b, a, b, b])
    assert [p.customer_id for p in profiles] == [b, a, b, b]
    assert profiles[0] == profiles[2] == profiles[3] == scorer.profile(data, b)[0]
    frame = scorer.score_frame(data, None, [a, a])
    assert list(frame.index) == [a, a]


# --------------------------------------------------------------------------- registry states
def _copy_version(registry: Any, source: str, name: str, alias: str,
                  tags: dict[str, str] | None = None) -> str:
    """Register the champion of ``source`` again as ``name`` with ``alias`` set by hand."""
    from barberpro_ml.registry.promotion import _global_uris

    client = mlflow.MlflowClient(tracking_uri=registry.tracking_uri)
    mv = client.get_model_version_by_alias(source, "champion")
    # MLflow looks a ``models:/m-...`` source up in the *global* tracking store, whatever the
    # client was given: point it at this registry (else the test depends on which ran first)
    with _global_uris(registry.tracking_uri, registry.tracking_uri):
        copy = client.create_model_version(name, mv.source, run_id=mv.run_id, tags=tags)
    client.set_registered_model_alias(name, alias, copy.version)
    return str(copy.version)


def test_from_registry_serves_the_verified_families_and_reports_the_others(
        scoring_registry: Any) -> None:
    client = mlflow.MlflowClient(tracking_uri=scoring_registry.tracking_uri)
    if not client.search_registered_models(filter_string="name = 'hand-set-ltv'"):
        client.create_registered_model("hand-set-ltv")
        _copy_version(scoring_registry, "barberpro-ltv", "hand-set-ltv", "champion")
    scorer = CustomerScorer.from_registry(
        tracking_uri=scoring_registry.tracking_uri,
        names={"ltv": "hand-set-ltv", "recs": "never-trained-recs"})
    assert set(scorer.models) == {"churn", "segments"}
    assert scorer.status["churn"].state == "verified"
    assert scorer.status["ltv"].state == "unverified"
    assert "hand-set-ltv" in (scorer.status["ltv"].reason or "")
    assert scorer.status["recs"].state == "missing"
    assert "barberpro-ml train recs" in (scorer.status["recs"].reason or "")
    profile = scorer.profile(scoring_registry.data,
                             int(scoring_registry.data.customers["customer_id"].iloc[0]))[0]
    assert profile.value is None and profile.barbers is None and profile.churn is not None
    with pytest.raises(ModelUnavailableError, match="never-trained"):
        CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri, names={
            f: f"never-trained-{f}" for f in ("churn", "ltv", "recs", "segments")})


def test_definitions_come_from_the_served_versions_tags(scoring_registry: Any) -> None:
    client = mlflow.MlflowClient(tracking_uri=scoring_registry.tracking_uri)
    shorter = Definitions(active_window_days=120, new_customer_days=60)
    names = {"churn": "defs-churn", "ltv": "defs-ltv", "recs": "defs-none-recs",
             "segments": "defs-none-segments"}
    versions = {}
    for family in ("churn", "ltv"):
        if not client.search_registered_models(filter_string=f"name = '{names[family]}'"):
            client.create_registered_model(names[family])
        versions[family] = _copy_version(scoring_registry, f"barberpro-{family}",
                                         names[family], "challenger", shorter.as_tags())
    scorer = CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri,
                                          alias="challenger", names=names)
    assert scorer.definitions == shorter
    data = scoring_registry.data
    snap = scorer.snapshot(data)
    since = snap.features["days_since_last_visit"]
    between = since[(since > 125) & (since < 175)].index
    assert len(between), "the data have customers last seen 125-175 days ago"
    profiles = scorer.profile_batch(data, [int(i) for i in between[:5]])
    default = CustomerScorer(churn=scorer.churn, ltv=scorer.ltv, bgnbd=scorer.bgnbd)
    for p, q in zip(profiles, default.profile_batch(data, [int(i) for i in between[:5]]),
                    strict=True):
        assert p.churn is not None and not p.churn.in_model_population
        assert q.churn is not None and q.churn.in_model_population
        assert p.lifecycle.stage == "churned" and "last 120 days" in p.lifecycle.reason
    assert scorer.active_customers(data) == len(
        active_customers(data, data.observation_end, 120).intersection(snap.features.index))

    client.set_model_version_tag(names["ltv"], versions["ltv"],
                                 "definitions.active_window_days", "150")
    with pytest.raises(InputError, match="active_window_days") as info:
        CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri,
                                     alias="challenger", names=names)
    assert f"defs-churn v{versions['churn']}" in str(info.value)
    assert f"defs-ltv v{versions['ltv']}" in str(info.value)


def test_cli_score_writes_null_columns_for_a_missing_family(
        scoring_registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from barberpro_ml.scoring import scorer as scorer_module

    monkeypatch.setenv("MLFLOW_TRACKING_URI", scoring_registry.tracking_uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.setitem(scorer_module.DEFAULT_MODEL_NAMES, "ltv", "never-trained-ltv")
    out = tmp_path / "profiles.parquet"
    args = ["score", "--out", str(out), "--data", str(scoring_registry.data_dir),
            "--no-reasons"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "null columns" in result.output and "expected_value_12m" in result.output
    frame = pd.read_parquet(out)
    assert frame["expected_value_12m"].isna().all()
    assert frame["churn_probability"].notna().all()
    for family in ("churn", "recs", "segments"):
        monkeypatch.setitem(scorer_module.DEFAULT_MODEL_NAMES, family, f"never-trained-{family}")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 4, result.output
    assert "never-trained" in result.output
