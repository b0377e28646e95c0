"""Registry: pyfunc round trip, refused requests, gated promotion, promotion log, no half state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest.mock
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from barberpro_ml.evaluation.overlap import check_overlap
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate
from barberpro_ml.gates import check, load_claims
from barberpro_ml.registry import (
    CHAMPION,
    BoundGateResult,
    EstimatorModel,
    FeatureSchema,
    ModelInputError,
    PromotionError,
    PromotionRecord,
    alias_version,
    champion_comparison,
    current_champion,
    load_champion,
    log_and_register,
    log_model,
    promote,
    promotion_log,
    record_gate,
    register,
)

NAME = "barberpro-churn"


# --------------------------------------------------------------------------- data and models
def churn_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "visits_90d": rng.poisson(3, n).astype("int64"),
        "spend_90d": rng.gamma(2.0, 30.0, n),
        "days_since_last": rng.exponential(30.0, n),
        "acquisition_channel": pd.Categorical(rng.choice(["organic", "paid_social", "referral"],
                                                         n)),
        "has_favourite_barber": rng.random(n) < 0.4,
    })
    logit = -1.0 + 0.04 * X["days_since_last"] - 0.3 * X["visits_90d"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def fitted() -> tuple[HistGradientBoostingClassifier, pd.DataFrame, np.ndarray]:
    X, y = churn_frame()
    model = HistGradientBoostingClassifier(max_iter=30, categorical_features="from_dtype",
                                           random_state=0).fit(X, y)
    return model, X, y


CLAIMS = {"claims": [{"id": "churn-roc-auc-floor", "family": "churn", "metric": "roc_auc",
                      "claimed": 0.75, "direction": "at_least", "source": "test floor"}]}


def roc_auc_report(value: float) -> EvaluationReport:
    """A churn report whose 2,000 ROC AUC replicates centre on ``value``."""
    reps = np.random.default_rng(0).normal(value, 0.01, 2000)
    lo, hi = np.quantile(reps, [0.025, 0.975])
    held_out = check_overlap(pd.DataFrame({"row_id": np.arange(5000, 15000)}),
                             pd.DataFrame({"row_id": np.arange(5000)}))
    return EvaluationReport(family="churn", kind="classification", n=5000, n_bootstrap=2000,
                            overlap=held_out, metrics={"roc_auc": MetricEstimate(
                                name="roc_auc", value=value, ci_low=float(lo),
                                ci_high=float(hi), replicates=reps.tolist())})


def gate_and_promote(version: str, passed: bool = True, *, actor: str | None = None,
                     client: MlflowClient | None = None) -> PromotionRecord:
    """Log a report in the version's run, bind its gate result, then promote."""
    client = client or MlflowClient()
    mv = client.get_model_version(NAME, version)
    report = roc_auc_report(0.9 if passed else 0.6)
    client.log_text(mv.run_id, report.model_dump_json(indent=2), "evaluation/report.json")
    path = Path.cwd() / "claims.yaml"
    path.write_text(yaml.safe_dump(CLAIMS))
    claims = load_claims(path, family="churn")
    record_gate(NAME, version, check(report, claims), claims,
                champion_version=current_champion(NAME, client), client=client)
    return promote(NAME, version, actor=actor, client=client)


def fake_versions(client: MlflowClient, k: int, tmp_path: Path) -> list[str]:
    """Registry versions (each from its own run) without a model behind them: promotion
    does not load models."""
    client.create_registered_model(NAME)
    experiment = client.get_experiment_by_name("Default")
    assert experiment is not None
    runs = [client.create_run(experiment.experiment_id).info.run_id for _ in range(k)]
    return [str(client.create_model_version(NAME, source=str(tmp_path / f"m{i}"),
                                            run_id=run).version)
            for i, run in enumerate(runs)]


def gate_tags(client: MlflowClient, version: str) -> dict[str, str]:
    tags = client.get_model_version(NAME, version).tags
    return {k: v for k, v in tags.items() if k.startswith("gate.")}


# --------------------------------------------------------------------------- round trip
def test_round_trip_through_the_registry_in_a_fresh_process(mlflow_store: Any,
                                                            tmp_path: Path) -> None:
    from barberpro_ml.models import ChurnClassifier

    X, y = churn_frame()
    model = ChurnClassifier(n_estimators=30, random_state=0, n_jobs=1).fit(X, y)
    with mlflow.start_run() as run:
        info, version = log_and_register(model, X, NAME)
    assert version.aliases == ["challenger"] and version.run_id == run.info.run_id

    signature = mlflow.models.get_model_info(info.model_uri).signature
    inputs = {c["name"]: c["type"] for c in signature.inputs.to_dict()}
    assert inputs == {"visits_90d": "long", "spend_90d": "double", "days_since_last": "double",
                      "acquisition_channel": "string", "has_favourite_barber": "boolean"}
    assert signature.outputs.input_names() == ["probability"]

    gate_and_promote(str(version.version))
    assert alias_version(NAME, CHAMPION) == str(version.version)

    request = FeatureSchema.from_frame(X).to_request(X)
    request_path, out_path = tmp_path / "request.parquet", tmp_path / "scores.npy"
    request.to_parquet(request_path)
    script = (
        "import sys, numpy as np, pandas as pd, mlflow\n"
        f"model = mlflow.pyfunc.load_model('models:/{NAME}@champion')\n"
        "scores = model.predict(pd.read_parquet(sys.argv[1]))\n"
        "np.save(sys.argv[2], np.asarray(scores, dtype=float))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(request_path), str(out_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.load(out_path), model.predict_proba(X)[:, 1], rtol=0,
                               atol=1e-12)

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with unittest.mock.patch.object(tempfile, "tempdir", str(downloads)):
        loaded, mv = load_champion(NAME)
    assert str(mv.version) == str(version.version)
    # the downloaded files are gone once the model is loaded, and it still predicts
    assert list(downloads.iterdir()) == []
    np.testing.assert_allclose(loaded.predict(request), model.predict_proba(X)[:, 1], atol=1e-12)


def test_requests_with_a_missing_column_or_wrong_type_are_refused(mlflow_store: Any,
                                                                  fitted: Any) -> None:
    model, X, _ = fitted
    with mlflow.start_run():
        info = log_model(model, X)
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    request = FeatureSchema.from_frame(X).to_request(X.head(5))

    with pytest.raises(MlflowException, match=r"missing inputs \['spend_90d'\]"):
        loaded.predict(request.drop(columns=["spend_90d"]))
    with pytest.raises(MlflowException, match="column spend_90d"):
        loaded.predict(request.assign(spend_90d=["a", "b", "c", "d", "e"]))

    wrapper = EstimatorModel.from_estimator(model, X)
    with pytest.raises(ModelInputError, match=r"missing column\(s\) \['spend_90d'\]"):
        wrapper.predict(None, request.drop(columns=["spend_90d"]))
    with pytest.raises(ModelInputError, match="column 'spend_90d' must be double"):
        wrapper.predict(None, request.assign(spend_90d=["a", "b", "c", "d", "e"]))
    # The same rows, correctly typed, score identically through both paths.
    np.testing.assert_allclose(loaded.predict(request), wrapper.predict(None, request))


def test_regressor_output_for_other_families(mlflow_store: Any) -> None:
    X, _ = churn_frame(300, seed=1)
    value = 20 * X["visits_90d"] + X["spend_90d"]
    model = HistGradientBoostingRegressor(max_iter=20, categorical_features="from_dtype").fit(
        X, value)
    with mlflow.start_run():
        info = log_model(model, X, output="predict", output_name="ltv")
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    request = FeatureSchema.from_frame(X).to_request(X)
    np.testing.assert_allclose(loaded.predict(request), model.predict(X))
    assert loaded.metadata.get_output_schema().input_names() == ["ltv"]


def test_log_model_refuses_unfitted_or_non_binary_estimators() -> None:
    X, y = churn_frame(60)
    with pytest.raises(ValueError, match="not fitted"):
        EstimatorModel.from_estimator(HistGradientBoostingClassifier(), X)
    three = HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype").fit(
        X, np.arange(60) % 3)
    with pytest.raises(ValueError, match="binary classifier; the estimator has 3 classes"):
        EstimatorModel.from_estimator(three, X)
    with pytest.raises(TypeError, match="predict_proba"):
        EstimatorModel.from_estimator(HistGradientBoostingRegressor().fit(X, y), X)


# --------------------------------------------------------------------------- feature schema
def test_feature_schema_refuses_wrong_types_naming_every_column() -> None:
    X, _ = churn_frame(20)
    schema = FeatureSchema.from_frame(X)
    bad = X.assign(visits_90d=X["visits_90d"] + 0.5, acquisition_channel=np.arange(20),
                   has_favourite_barber=np.arange(20)).drop(columns=["spend_90d"])
    with pytest.raises(ModelInputError) as err:
        schema.prepare(bad)
    message = str(err.value)
    for expected in ["missing column(s) ['spend_90d']", "'visits_90d' must be long",
                     "non-integral", "'acquisition_channel' must be string",
                     "'has_favourite_barber' must be boolean"]:
        assert expected in message
    with pytest.raises(ModelInputError, match="without missing values, got 1 missing"):
        schema.prepare(X.assign(visits_90d=[np.nan] + [1.0] * 19))
    with pytest.raises(ModelInputError, match="'spend_90d' must be double, got bool"):
        schema.prepare(X.assign(spend_90d=True))


def test_feature_schema_converts_json_like_requests_back_to_training_dtypes() -> None:
    X, _ = churn_frame(20)
    schema = FeatureSchema.from_frame(X)
    as_json = pd.DataFrame(X.to_dict(orient="records")).assign(
        visits_90d=lambda d: d["visits_90d"].astype(float),  # integers sent as 3.0
        acquisition_channel=lambda d: d["acquisition_channel"].astype(str),
        extra_column="ignored")
    prepared = schema.prepare(as_json)
    pd.testing.assert_frame_equal(prepared, X)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unseen = schema.prepare(X.assign(acquisition_channel=["tiktok"] + ["organic"] * 19))
    assert unseen["acquisition_channel"].isna().sum() == 1
    assert "not seen in training, e.g. ['tiktok']" in str(caught[0].message)


@settings(max_examples=25, deadline=None)
@given(hpd.data_frames([
    hpd.column("count", dtype="int64"),
    hpd.column("amount", dtype="float64", elements=st.floats(-1e6, 1e6)),
    hpd.column("flag", dtype="bool"),
    hpd.column("level", elements=st.sampled_from(["a", "b", "c d", "é"])),
    hpd.column("note", elements=st.one_of(st.none(), st.text(max_size=5))),
], index=hpd.range_indexes(min_size=1, max_size=30)))
def test_request_round_trip_restores_the_training_frame(frame: pd.DataFrame) -> None:
    frame = frame.assign(level=pd.Categorical(frame["level"], categories=["a", "b", "c d", "é"]),
                         note=frame["note"].astype("str"))
    schema = FeatureSchema.from_frame(frame)
    pd.testing.assert_frame_equal(schema.prepare(schema.to_request(frame)), frame)


@settings(max_examples=25, deadline=None)
@given(hpd.data_frames([
    hpd.column("count", dtype="int64"),
    hpd.column("flag8", dtype="int8"),
    hpd.column("amount", dtype="float64", elements=st.floats(-1e6, 1e6) | st.just(np.nan)),
    hpd.column("level", elements=st.sampled_from(["a", "b", "c d"])),
], index=hpd.range_indexes(min_size=1, max_size=30)), st.permutations(range(4)))
def test_frames_already_in_training_dtypes_take_the_fast_path_to_the_same_result(
        frame: pd.DataFrame, order: list[int]) -> None:
    frame = frame.assign(level=pd.Categorical(frame["level"], categories=["a", "b", "c d"]))
    schema = FeatureSchema.from_frame(frame)
    shuffled = frame.iloc[:, order].assign(extra=1.5)  # other order, an extra column
    assert schema._already_prepared(shuffled)
    slow = schema.prepare(schema.to_request(frame))
    fast = schema.prepare(shuffled)
    assert list(fast.columns) == schema.names
    pd.testing.assert_frame_equal(fast.astype({"flag8": "int64"}), slow)
    # anything not in training dtypes goes through the checked conversion
    other = frame.assign(level=pd.Categorical(frame["level"], categories=["c d", "b", "a"]))
    assert not schema._already_prepared(other)
    assert not schema._already_prepared(frame.assign(count=frame["count"].astype(float)))
    assert not schema._already_prepared(frame.drop(columns="amount"))


def test_feature_schema_refuses_frames_a_signature_cannot_carry() -> None:
    with pytest.raises(TypeError, match=r"'gap' \(timedelta64"):
        FeatureSchema.from_frame(pd.DataFrame({"gap": pd.to_timedelta([1, 2], unit="D")}))
    with pytest.raises(ValueError, match="duplicate feature column names"):
        FeatureSchema.from_frame(pd.DataFrame([[1, 2]], columns=["a", "a"]))


# --------------------------------------------------------------------------- promotion
def test_failed_gate_leaves_champion_and_promotion_log_unchanged(mlflow_store: Any,
                                                                 tmp_path: Path) -> None:
    client = MlflowClient()
    v1, v2 = fake_versions(client, 2, tmp_path)
    first = gate_and_promote(v1)
    assert first.outcome == "promoted" and first.previous_champion is None
    log_before = promotion_log(NAME)

    refused = gate_and_promote(v2, passed=False)
    assert refused.outcome == "refused" and refused.refused_because == "gate"
    assert alias_version(NAME, CHAMPION) == v1
    pd.testing.assert_frame_equal(promotion_log(NAME), log_before)
    # The refusal is on the record: tagged on the version and kept as a refused attempt.
    assert gate_tags(client, v2)["gate.passed"] == "false"
    assert gate_tags(client, v2)["gate.churn-roc-auc-floor"] == "fail"
    attempts = promotion_log(NAME, include_refused=True)
    assert list(attempts["outcome"]) == ["promoted", "refused"]
    assert attempts.iloc[1]["previous_champion"] == v1
    assert "churn-roc-auc-floor" in attempts.iloc[1]["reasons"][0]


def test_passing_gate_moves_champion_and_appends_to_the_log(mlflow_store: Any,
                                                            tmp_path: Path) -> None:
    client = MlflowClient()
    v1, v2 = fake_versions(client, 2, tmp_path)
    gate_and_promote(v1)
    record = gate_and_promote(v2, actor="ci")
    assert alias_version(NAME, CHAMPION) == v2
    log = promotion_log(NAME)
    assert list(log["version"]) == [v1, v2]
    assert log["previous_champion"].isna().tolist() == [True, False]  # none before the first
    assert log["previous_champion"].iloc[1] == v1
    runs = [client.get_model_version(NAME, v).run_id for v in (v1, v2)]
    assert list(log["training_run_id"]) == runs
    assert log.iloc[1]["actor"] == "ci" and log["at"].is_monotonic_increasing
    tags = gate_tags(client, v2)
    assert tags["gate.passed"] == "true" and tags["gate.run_id"] == runs[1]
    assert tags["gate.digest"] == record.gate_digest == log.iloc[1]["gate_digest"]
    evidence = mlflow.artifacts.load_text(record.evidence_uri)
    assert BoundGateResult.model_validate_json(evidence).passed


def test_regating_a_version_replaces_its_stale_gate_tags(mlflow_store: Any,
                                                         tmp_path: Path) -> None:
    client = MlflowClient()
    (v1,) = fake_versions(client, 1, tmp_path)
    client.set_model_version_tag(NAME, v1, "gate.old-claim", "fail")
    client.set_model_version_tag(NAME, v1, "owner", "data-science")
    gate_and_promote(v1)
    tags = client.get_model_version(NAME, v1).tags
    assert "gate.old-claim" not in tags and tags["owner"] == "data-science"


def _state(client: MlflowClient, version: str) -> tuple[Any, ...]:
    return (alias_version(NAME, CHAMPION), promotion_log(NAME, include_refused=True),
            gate_tags(client, version))


def _assert_same_state(before: tuple[Any, ...], after: tuple[Any, ...]) -> None:
    assert before[0] == after[0]
    pd.testing.assert_frame_equal(before[1], after[1])
    assert before[2] == after[2]


@pytest.mark.parametrize("where", ["alias", "log_text", "finish"])
def test_crash_during_promotion_leaves_no_half_state(mlflow_store: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     where: str) -> None:
    client = MlflowClient()
    v1, v2 = fake_versions(client, 2, tmp_path)
    client.set_registered_model_alias(NAME, "challenger", v2)
    gate_and_promote(v1)
    # v2's gate is bound before the crash: only the promotion itself is interrupted
    mv2 = client.get_model_version(NAME, v2)
    report = roc_auc_report(0.9)
    client.log_text(mv2.run_id, report.model_dump_json(indent=2), "evaluation/report.json")
    claims = load_claims(Path.cwd() / "claims.yaml", family="churn")
    record_gate(NAME, v2, check(report, claims), claims, champion_version=v1)
    before = _state(client, v2)

    def crash_once(original: Any, should_crash: Any) -> Any:
        calls = {"n": 0}

        def wrapper(self: MlflowClient, *args: Any, **kwargs: Any) -> Any:
            if should_crash(*args, **kwargs) and calls["n"] == 0:
                calls["n"] += 1
                raise ConnectionError(f"simulated crash in {original.__name__}")
            return original(self, *args, **kwargs)
        return wrapper

    targets = {
        "alias": ("set_registered_model_alias", lambda name, alias, version: alias == CHAMPION),
        "log_text": ("log_text", lambda run_id, text, artifact_file: True),
        # The alias has already moved when the log run is finished: it must move back.
        "finish": ("set_terminated", lambda run_id, status=None, **kw: status == "FINISHED"),
    }
    method, condition = targets[where]
    monkeypatch.setattr(MlflowClient, method, crash_once(getattr(MlflowClient, method),
                                                         condition))
    with pytest.raises(ConnectionError, match="simulated crash"):
        promote(NAME, v2)
    _assert_same_state(before, _state(client, v2))
    assert alias_version(NAME, "challenger") == v2


def test_incomplete_rollback_is_reported(mlflow_store: Any, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    client = MlflowClient()
    (v1,) = fake_versions(client, 1, tmp_path)

    def always_fail(self: MlflowClient, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("tracking server gone")

    monkeypatch.setattr(MlflowClient, "set_terminated", always_fail)
    with pytest.raises(PromotionError, match=r"rollback was incomplete.*promotion-log run"):
        gate_and_promote(v1)
    monkeypatch.undo()
    # What could be undone was: the alias is back, and the unfinished run is not in the log.
    assert alias_version(NAME, CHAMPION) is None
    assert promotion_log(NAME, include_refused=True).empty


def test_failed_alias_at_registration_removes_the_new_version(
        mlflow_store: Any, fitted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model, X, _ = fitted
    with mlflow.start_run():
        info = log_model(model, X)

    def broken(self: MlflowClient, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("registry unavailable")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", broken)
    with pytest.raises(ConnectionError):
        register(info.model_uri, NAME)
    monkeypatch.undo()
    assert MlflowClient().search_model_versions(f"name = '{NAME}'") == []


def test_load_champion_reads_the_store_asked_for_and_leaves_global_uris_alone(
        mlflow_store: Any, fitted: Any, tmp_path: Path) -> None:
    """Two stores with a version 1 of the same name: the one asked for must load."""
    model, X, y = fitted
    template = tmp_path / "template.db"
    shutil.copyfile(mlflow_store.db_path, template)  # empty store, before anything is logged
    with mlflow.start_run():
        _, version = log_and_register(model, X, NAME)
    gate_and_promote(str(version.version))

    other_uri = f"sqlite:///{template}"
    flipped = HistGradientBoostingClassifier(max_iter=5, random_state=1).fit(X, 1 - y)
    mlflow.set_tracking_uri(other_uri)
    with mlflow.start_run():
        _, v2 = log_and_register(flipped, X, NAME)
    gate_and_promote(str(v2.version),
                     client=MlflowClient(tracking_uri=other_uri, registry_uri=other_uri))
    assert v2.version == version.version  # both stores hold a version 1 of NAME

    mlflow.set_tracking_uri(mlflow_store.tracking_uri)
    before = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_REGISTRY_URI"))
    loaded, _ = load_champion(NAME, tracking_uri=other_uri)
    request = loaded.unwrap_python_model().spec.features.to_request(X)
    np.testing.assert_allclose(loaded.predict(request), flipped.predict_proba(X)[:, 1])
    here, _ = load_champion(NAME)
    np.testing.assert_allclose(here.predict(request), model.predict_proba(X)[:, 1])
    assert (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_REGISTRY_URI")) == before


def test_champion_lookup_and_comparison(mlflow_store: Any, fitted: Any) -> None:
    model, X, y = fitted
    assert champion_comparison(NAME, X, y, np.zeros(len(y))) is None
    with pytest.raises(LookupError, match="no 'champion' alias"):
        load_champion(NAME)

    with mlflow.start_run():
        _, version = log_and_register(model, X, NAME)
    gate_and_promote(str(version.version))

    noisy = np.clip(model.predict_proba(X)[:, 1]
                    + np.random.default_rng(0).normal(0, 0.3, len(y)), 0, 1)
    comparison = champion_comparison(NAME, X, y, noisy, margin=0.01, metric="roc_auc",
                                     n_bootstrap=1000)
    assert comparison is not None and comparison.champion_version == str(version.version)
    np.testing.assert_allclose(comparison.champion, model.predict_proba(X)[:, 1], atol=1e-12)
    report = EvaluationReport(family="churn", kind="classification", n=len(y), metrics={
        "roc_auc": MetricEstimate(name="roc_auc", value=0.7, ci_low=0.65, ci_high=0.75,
                                  replicates=[0.7] * 10)})
    from barberpro_ml.gates import Claim

    result = check(report, [Claim(id="x", family="churn", metric="roc_auc", claimed=0.5,
                                  direction="at_least", source="test")], comparison)
    assert result.champion.verdict == "fail" and not result.passed
