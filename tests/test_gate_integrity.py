"""No failed or unverified model can become @champion: every known way round the gate is tried.

Each test tries one bypass found by the audit (issue 12) against a real SQLite MLflow store and
asserts that the champion did not move and that the promotion log recorded the refusal.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.ensemble import HistGradientBoostingClassifier
from typer.testing import CliRunner

from barberpro_ml.cli.main import app
from barberpro_ml.evaluation.overlap import check_overlap
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate
from barberpro_ml.gates import ClaimsError, ClaimVerdict, check, load_claims
from barberpro_ml.registry import (
    CHAMPION,
    BoundGateResult,
    VersionNotFoundError,
    alias_version,
    current_champion,
    log_and_register,
    log_gate_inputs,
    log_model,
    log_report,
    promote,
    promotion_log,
    record_gate,
    regate,
    register,
    verify_champion,
)
from barberpro_ml.registry.binding import TAG_DIGEST, artifact_dir

NAME = "barberpro-churn"
N_BOOT = 2000


@pytest.fixture
def claims_file(tmp_path: Path) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [{
        "id": "churn-roc-auc-floor", "family": "churn", "metric": "roc_auc", "claimed": 0.75,
        "direction": "at_least", "source": "test floor"}]}))
    return path


def roc_auc_report(value: float, seed: int = 0) -> EvaluationReport:
    """A churn report whose ROC AUC replicates centre on ``value`` (sd 0.01)."""
    reps = np.random.default_rng(seed).normal(value, 0.01, N_BOOT)
    lo, hi = np.quantile(reps, [0.025, 0.975])
    held_out = check_overlap(pd.DataFrame({"row_id": np.arange(5000, 15000)}),
                             pd.DataFrame({"row_id": np.arange(5000)}))
    return EvaluationReport(family="churn", kind="classification", n=5000, n_bootstrap=N_BOOT,
                            seed=seed, overlap=held_out, metrics={"roc_auc": MetricEstimate(
                                name="roc_auc", value=value, ci_low=float(lo),
                                ci_high=float(hi), replicates=reps.tolist())})


def gated_version(claims_file: Path, roc_auc: float, tmp_path: Path,
                  client: MlflowClient | None = None) -> str:
    """A registered version whose run logged a report, gated against the current champion."""
    client = client or MlflowClient()
    report = roc_auc_report(roc_auc)
    with mlflow.start_run() as run:
        log_report(report)
    if not client.search_registered_models(f"name = '{NAME}'"):
        client.create_registered_model(NAME)
    version = str(client.create_model_version(NAME, source=str(tmp_path / "model"),
                                              run_id=run.info.run_id).version)
    claims = load_claims(claims_file, family="churn")
    record_gate(NAME, version, check(report, claims), claims,
                champion_version=current_champion(NAME))
    return version


def forge(version: str, edit: Any) -> BoundGateResult:
    """Replace the version's recorded gate result by ``edit(result)``, with a matching digest
    tag: what someone with write access to the store could do by hand."""
    client = MlflowClient()
    mv = client.get_model_version(NAME, version)
    old = BoundGateResult.model_validate_json(mlflow.artifacts.load_text(
        f"runs:/{mv.run_id}/{artifact_dir(mv.tags[TAG_DIGEST])}/gate_result.json"))
    forged = old.model_copy(update={"result": edit(old.result)})
    digest = forged.content_digest()
    client.log_text(mv.run_id, json.dumps(forged.model_dump(mode="json"), sort_keys=True,
                                          separators=(",", ":")),
                    f"{artifact_dir(digest)}/gate_result.json")
    client.set_model_version_tag(NAME, version, TAG_DIGEST, digest)
    return forged


def refusals() -> list[str]:
    log = promotion_log(NAME, include_refused=True)
    return list(log.loc[log["outcome"] == "refused", "refused_because"])


# --------------------------------------------------------------------------- the front door
def test_a_passing_bound_gate_promotes_and_the_champion_verifies(
        mlflow_store: Any, claims_file: Path, tmp_path: Path) -> None:
    v1 = gated_version(claims_file, 0.90, tmp_path)
    record = promote(NAME, v1)
    assert record.outcome == "promoted" and alias_version(NAME, CHAMPION) == v1
    assert record.gate_digest == MlflowClient().get_model_version(NAME, v1).tags[TAG_DIGEST]
    check_ = verify_champion(NAME)
    assert check_.verified, check_.problems


def test_a_failed_gate_is_refused_and_logged(mlflow_store: Any, claims_file: Path,
                                             tmp_path: Path) -> None:
    v1 = gated_version(claims_file, 0.60, tmp_path)
    record = promote(NAME, v1)
    assert record.outcome == "refused" and record.refused_because == "gate"
    assert any("churn-roc-auc-floor" in r for r in record.reasons)
    assert alias_version(NAME, CHAMPION) is None and refusals() == ["gate"]


# --------------------------------------------------------------------------- the five bypasses
def test_another_versions_gate_result_is_refused(mlflow_store: Any, claims_file: Path,
                                                 tmp_path: Path) -> None:
    """Bypass 1: the passing gate result of another run/version presented for this one."""
    client = MlflowClient()
    good = gated_version(claims_file, 0.90, tmp_path)
    bad = gated_version(claims_file, 0.60, tmp_path)
    good_mv, bad_mv = client.get_model_version(NAME, good), client.get_model_version(NAME, bad)
    digest = good_mv.tags[TAG_DIGEST]
    text = mlflow.artifacts.load_text(f"runs:/{good_mv.run_id}/{artifact_dir(digest)}/"
                                      "gate_result.json")
    client.log_text(bad_mv.run_id, text, f"{artifact_dir(digest)}/gate_result.json")
    client.set_model_version_tag(NAME, bad, TAG_DIGEST, digest)
    record = promote(NAME, bad)
    assert record.outcome == "refused" and record.refused_because == "binding"
    assert any(f"judged {NAME} v{good}" in r for r in record.reasons)
    assert any("produced by run" in r for r in record.reasons)
    assert alias_version(NAME, CHAMPION) is None and refusals() == ["binding"]


def test_a_gate_against_an_old_champion_is_refused_until_regated(
        mlflow_store: Any, claims_file: Path, tmp_path: Path) -> None:
    """Bypass 2: a gate computed against champion v1 presented after the champion moved."""
    v1 = gated_version(claims_file, 0.90, tmp_path)
    promote(NAME, v1)
    v2 = gated_version(claims_file, 0.91, tmp_path)  # compared with v1
    v3 = gated_version(claims_file, 0.92, tmp_path)  # compared with v1 too
    assert promote(NAME, v3).outcome == "promoted"
    record = promote(NAME, v2)
    assert record.outcome == "refused" and record.refused_because == "binding"
    assert any("champion moved" in r and f"barberpro-ml gate --model {NAME} --version {v2}" in r
               for r in record.reasons)
    assert alias_version(NAME, CHAMPION) == v3 and refusals() == ["binding"]


def test_register_cannot_set_champion(mlflow_store: Any, tmp_path: Path) -> None:
    """Bypass 3: registering straight to @champion."""
    X = np.random.default_rng(0).normal(size=(50, 2))
    import pandas as pd

    frame = pd.DataFrame(X, columns=["a", "b"])
    model = HistGradientBoostingClassifier(max_iter=5).fit(frame, (X[:, 0] > 0).astype(int))
    with mlflow.start_run():
        with pytest.raises(ValueError, match="only the 'challenger' alias"):
            log_and_register(model, frame, NAME, alias=CHAMPION)
        info = log_model(model, frame)
    with pytest.raises(ValueError, match="promote"):
        register(info.model_uri, NAME, alias=CHAMPION)
    assert alias_version(NAME, CHAMPION) is None


def test_a_hand_built_passing_result_is_refused(mlflow_store: Any, claims_file: Path,
                                                tmp_path: Path) -> None:
    """Bypass 4a: a passing gate result built by hand for a model whose report fails."""
    bad = gated_version(claims_file, 0.60, tmp_path)
    forged = forge(bad, lambda result: result.model_copy(update={"claims": [
        ClaimVerdict(**{**c.model_dump(), "verdict": "pass", "reason": "trust me"})
        for c in result.claims]}))
    assert forged.passed
    record = promote(NAME, bad)
    assert record.outcome == "refused" and record.refused_because == "binding"
    assert any("do not follow from the evaluation report" in r for r in record.reasons)
    assert alias_version(NAME, CHAMPION) is None


def test_a_vacuous_gate_is_refused(mlflow_store: Any, claims_file: Path,
                                   tmp_path: Path) -> None:
    """Bypass 4b: a gate whose claims cannot refuse anything, or that checked nothing."""
    vacuous = tmp_path / "vacuous.yaml"
    vacuous.write_text(yaml.safe_dump({"claims": [{
        "id": "churn-audit", "family": "churn", "metric": "roc_auc", "claimed": 0.99,
        "direction": "at_least", "source": "audit only", "blocking": False}]}))
    with pytest.raises(ClaimsError, match="no blocking claim"):
        load_claims(vacuous)
    v1 = gated_version(claims_file, 0.60, tmp_path)
    record = promote(NAME, v1, claims_path=vacuous)
    assert record.refused_because == "binding"
    assert any("no blocking claim" in r for r in record.reasons)

    # a hand-built result that checked no claim at all
    empty = forge(v1, lambda result: result.model_copy(update={"claims": []}))
    assert empty.passed
    record = promote(NAME, v1)
    assert record.refused_because == "binding"
    assert any("no verdict for claims ['churn-roc-auc-floor']" in r for r in record.reasons)
    assert alias_version(NAME, CHAMPION) is None


def test_an_edited_gate_artifact_is_refused(mlflow_store: Any, claims_file: Path,
                                            tmp_path: Path) -> None:
    """Bypass 5: the recorded gate result overwritten after the fact."""
    client = MlflowClient()
    bad = gated_version(claims_file, 0.60, tmp_path)
    mv = client.get_model_version(NAME, bad)
    where = f"{artifact_dir(mv.tags[TAG_DIGEST])}/gate_result.json"
    text = mlflow.artifacts.load_text(f"runs:/{mv.run_id}/{where}")
    client.log_text(mv.run_id, text.replace('"verdict":"fail"', '"verdict":"pass"'), where)
    record = promote(NAME, bad)
    assert record.outcome == "refused" and record.refused_because == "binding"
    assert any("modified after the gate ran" in r for r in record.reasons)
    assert alias_version(NAME, CHAMPION) is None


def test_a_changed_claims_file_needs_a_new_gate(mlflow_store: Any, claims_file: Path,
                                                tmp_path: Path) -> None:
    v1 = gated_version(claims_file, 0.90, tmp_path)
    claims_file.write_text(claims_file.read_text().replace("0.75", "0.70"))
    record = promote(NAME, v1)
    assert record.refused_because == "binding"
    assert any("not the one the gate ran with" in r for r in record.reasons)


# --------------------------------------------------------------------------- one door
def test_concurrent_promotions_cannot_both_win(mlflow_store: Any, claims_file: Path,
                                               tmp_path: Path) -> None:
    v1 = gated_version(claims_file, 0.90, tmp_path)
    promote(NAME, v1)
    v2 = gated_version(claims_file, 0.91, tmp_path)
    v3 = gated_version(claims_file, 0.92, tmp_path)
    records: dict[str, Any] = {}

    def attempt(version: str) -> None:
        records[version] = promote(NAME, version)

    threads = [threading.Thread(target=attempt, args=(v,)) for v in (v2, v3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    outcomes = sorted(r.outcome for r in records.values())
    assert outcomes == ["promoted", "refused"]
    winner = next(v for v, r in records.items() if r.outcome == "promoted")
    loser = records[v3 if winner == v2 else v2]
    assert loser.refused_because in ("binding", "concurrent")
    assert alias_version(NAME, CHAMPION) == winner
    assert verify_champion(NAME).verified


def test_a_held_lock_refuses_and_logs(mlflow_store: Any, claims_file: Path,
                                      tmp_path: Path) -> None:
    v1 = gated_version(claims_file, 0.90, tmp_path)
    MlflowClient().create_registered_model(f"{NAME}.promotion-lock",
                                           tags={"holder": "someone", "since": "9e12"})
    record = promote(NAME, v1)
    assert record.refused_because == "concurrent" and alias_version(NAME, CHAMPION) is None
    assert refusals() == ["concurrent"]


def test_an_alias_moved_by_hand_is_not_a_verified_champion(
        mlflow_store: Any, claims_file: Path, tmp_path: Path) -> None:
    client = MlflowClient()
    v1 = gated_version(claims_file, 0.90, tmp_path)
    promote(NAME, v1)
    bad = gated_version(claims_file, 0.60, tmp_path)
    client.set_registered_model_alias(NAME, CHAMPION, bad)  # around the door
    check_ = verify_champion(NAME)
    assert not check_.verified and check_.version == bad
    assert any("outside `promote`" in p for p in check_.problems)
    assert any("gate result failed" in p for p in check_.problems)


def test_unknown_version_is_a_clear_error(mlflow_store: Any, claims_file: Path,
                                          tmp_path: Path) -> None:
    gated_version(claims_file, 0.90, tmp_path)
    with pytest.raises(VersionNotFoundError, match=r"v42 does not exist \(known versions: 1\)"):
        promote(NAME, 42)


# --------------------------------------------------------------------------- re-gating, CLI
def test_regate_compares_with_the_current_champion_then_promotes(
        mlflow_store: Any, claims_file: Path, tmp_path: Path) -> None:
    """A real tabular model: the gate is re-run from its logged test rows."""
    import pandas as pd

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    y = (rng.random(3000) < 1 / (1 + np.exp(-2 * X["a"]))).astype(int)
    raw = yaml.safe_load(claims_file.read_text())
    raw["settings"] = {"non_inferiority": {"churn": {"metric": "roc_auc", "margin": 0.02,
                                                     "source": "test"}}}
    claims_file.write_text(yaml.safe_dump(raw))
    claims = load_claims(claims_file, family="churn")
    versions = []
    for seed in (0, 1, 2):
        model = HistGradientBoostingClassifier(max_iter=20, random_state=seed).fit(
            X.iloc[:2000], y.iloc[:2000])
        with mlflow.start_run() as run:
            report = roc_auc_report(0.9, seed)
            log_report(report)
            _, mv = log_and_register(model, X.iloc[:2000], NAME)
            log_gate_inputs(X.iloc[2000:], y.iloc[2000:], run_id=run.info.run_id)
        record_gate(NAME, mv.version, check(report, claims), claims,
                    champion_version=current_champion(NAME))
        versions.append(str(mv.version))
    v1, v2, v3 = versions
    assert promote(NAME, v1).outcome == "promoted"
    # v2 and v3 were gated with no champion; v1 is champion now: both must be re-gated
    assert promote(NAME, v2).refused_because == "binding"
    bound = regate(NAME, v2)
    assert bound.binding.champion_version == v1
    assert bound.result.champion.champion_version == v1 and bound.result.champion.n == 1000
    assert promote(NAME, v2).outcome == "promoted"
    assert verify_champion(NAME).verified

    runner = CliRunner()
    refused = runner.invoke(app, ["promote", "--model", NAME, "--version", v3])
    assert refused.exit_code == 2 and "champion moved" in refused.output
    gated = runner.invoke(app, ["gate", "--model", NAME, "--version", v3])
    assert gated.exit_code in (0, 3), gated.output
    assert f"compared with champion v{v2}" in gated.output
    done = runner.invoke(app, ["promote", "--model", NAME, "--version", v3])
    assert done.exit_code == (0 if gated.exit_code == 0 else 3), done.output


def test_cli_promote_exit_codes(mlflow_store: Any, claims_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = gated_version(claims_file, 0.60, tmp_path)
    failed = runner.invoke(app, ["promote", "--model", NAME, "--version", bad])
    assert failed.exit_code == 3 and "refused (gate)" in failed.output
    missing = runner.invoke(app, ["promote", "--model", NAME, "--version", "99"])
    assert missing.exit_code == 2 and "v99 does not exist" in missing.output
    assert "Traceback" not in missing.output
    old = runner.invoke(app, ["promote", "--model", NAME, "--version", bad, "--run-id", "x"])
    assert old.exit_code == 2  # --run-id is gone


def test_a_pass_within_the_effective_margin_is_consistent() -> None:
    """The champion verdict is re-checked on the margin the gate decided with: the file's
    margin widened to what the test set can detect (a small test set here)."""
    from barberpro_ml.gates import (
        ChampionComparison,
        Claim,
        ClaimSet,
        GateSettings,
        NonInferiority,
    )
    from barberpro_ml.registry.binding import GateBinding, _champion_verdict_problems

    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.3).astype(float)
    signal = 1.5 * y + rng.normal(0, 1, 400)
    champion, challenger = (1 / (1 + np.exp(-(signal + rng.normal(0, 0.8, 400))))
                            for _ in range(2))
    settings = GateSettings(non_inferiority={"churn": NonInferiority(
        metric="roc_auc", margin=0.01, max_margin=0.2)})
    comparison = ChampionComparison(y_true=y, challenger=challenger, champion=champion,
                                    champion_version="1", n_bootstrap=1000, seed=0)
    result = check(roc_auc_report(0.9), ClaimSet(settings=settings, claims=[Claim(
        id="churn-roc-auc-floor", family="churn", metric="roc_auc", claimed=0.75,
        direction="at_least", source="test floor")]), comparison)
    ch = result.champion
    assert ch.verdict == "pass" and ch.effective_margin is not None and ch.effective_margin > 0.01
    assert ch.ci_low is not None and ch.ci_low < -0.01  # refused by the file margin alone
    binding = GateBinding(model_name=NAME, model_version="2", source_run_id="r", family="churn",
                          claims_path="c", claims_digest="d", claim_ids=("x",),
                          champion_version="1", report_digest="e", library_version="0")
    assert _champion_verdict_problems(BoundGateResult(binding=binding, result=result)) == []
    tampered = result.model_copy(update={"champion": ch.model_copy(
        update={"ci_low": -ch.effective_margin - 0.01})})
    assert _champion_verdict_problems(BoundGateResult(binding=binding, result=tampered))

