"""Claims files are validated for meaning: the catalogue, every rule, all problems at once."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from barberpro_ml.cli import app
from barberpro_ml.evaluation import (
    evaluate_classifier,
    evaluate_ltv,
    evaluate_recommender,
    evaluate_scores,
    ranking_metric_names,
)
from barberpro_ml.evaluation.metrics import HIGHER_IS_BETTER
from barberpro_ml.evaluation.regression import REGRESSION_METRICS
from barberpro_ml.gates import CATALOGUE, ClaimsError, MetricSpec, load_claims
from barberpro_ml.gates import catalog as catalog_module
from barberpro_ml.gates.check import OTHER_PAIRED_METRICS, paired_metric_names
from barberpro_ml.models.recs import ItemKNNRecommender

ROOT = Path(__file__).resolve().parents[1]
CLAIMS_FILE = ROOT / "configs" / "claims.yaml"
runner = CliRunner()

# A valid file every rule test starts from and breaks in one place.
BASE: dict[str, Any] = {
    "settings": {"alpha": 0.05, "non_inferiority": {
        "churn": {"metric": "roc_auc", "margin": 0.01, "source": "team floor"}}},
    "claims": [
        {"id": "churn-auc", "family": "churn", "metric": "roc_auc", "claimed": 0.8,
         "direction": "at_least", "source": "team floor"},
        {"id": "churn-ece", "family": "churn", "metric": "ece", "claimed": 0.05,
         "direction": "at_most", "source": "team floor"},
    ],
}


def _write(tmp_path: Path, doc: dict[str, Any] | str, name: str = "claims.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False),
                    encoding="utf-8")
    return path


def _with(claims: list[dict[str, Any]] | None = None, **settings_: Any) -> dict[str, Any]:
    doc = yaml.safe_load(yaml.safe_dump(BASE))  # deep copy
    if claims is not None:
        doc["claims"] = claims
    doc["settings"].update(settings_)
    return doc


def _claim(**fields: Any) -> dict[str, Any]:
    return {"id": "c", "family": "churn", "metric": "roc_auc", "claimed": 0.8,
            "direction": "at_least", "source": "team floor", **fields}


def _problems(path: Path) -> list[Any]:
    with pytest.raises(ClaimsError) as err:
        load_claims(path)
    assert err.value.problems, "a ClaimsError must list its problems"
    for p in err.value.problems:  # every problem names its file
        assert p.file == str(path)
    return err.value.problems


# --------------------------------------------------------------------------- the CLI
FOUR_PROBLEMS = """\
settings:
  non_inferiority:
    churn: {metric: roc_auc, margin: 1.0, source: team floor}
claims:
  - id: churn-auc
    family: churn
    metric: roc_auc
    claimed: 0.8
    direction: at_least
    source: team floor
  - id: churn-ece-reversed
    family: churn
    metric: ece
    claimed: 0.05
    direction: at_least
    source: team floor
  - id: ltv-spearman
    family: ltv
    metric: spearman
    claimed: 0.7
    claimed: 0.78
    direction: at_least
    source: team floor
  - id: recs-misspelled
    family: rec
    metric: ndcg@10
    claimed: 0.1
    direction: at_least
    source: team floor
"""


def test_claims_check_reports_all_four_problems_in_one_run(tmp_path: Path) -> None:
    path = _write(tmp_path, FOUR_PROBLEMS)
    result = runner.invoke(app, ["claims", "check", str(path)])
    assert result.exit_code == 2, result.output
    problems = [line for line in result.stderr.splitlines()
                if line.startswith(f"{path}:") and not line.endswith("would refuse this file")]
    assert len(problems) == 4, result.stderr
    text = "\n".join(problems)
    assert f"{path}:15: claim #2 (id 'churn-ece-reversed'): field 'direction'" in text
    assert "expected 'at_most'" in text
    assert f"{path}:21: claim #3 (id 'ltv-spearman'): field 'claimed': duplicate key" in text
    assert "first on line 20" in text
    assert "claim #4 (id 'recs-misspelled'): field 'family'" in text
    assert "did you mean 'recs'?" in text
    assert "settings.non_inferiority.churn: field 'margin'" in text
    assert "0 < margin <= 0.05" in text
    assert "4 problems" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_shipped_claims_file_passes_with_a_summary() -> None:
    result = runner.invoke(app, ["claims", "check", str(CLAIMS_FILE)])
    assert result.exit_code == 0, result.stderr
    claims = load_claims(CLAIMS_FILE)
    assert f"{len(claims)} claims" in result.stdout
    for family in claims.families:
        of_family = claims.for_family(family).claims
        blocking = sum(c.blocking for c in of_family)
        assert f"{family}: {len(of_family)} claims, {blocking} blocking" in result.stdout


@pytest.mark.parametrize(("content", "expected"), [
    (None, "claims file not found"),
    ("claims: [\n", "not valid YAML"),
    ("just text", "'claims:' list"),
])
def test_claims_check_unreadable_file_is_one_line_exit_2(tmp_path: Path, content: str | None,
                                                         expected: str) -> None:
    path = tmp_path / "claims.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["claims", "check", str(path)])
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if expected in line]) == 1


def test_claims_check_defaults_to_the_project_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["claims", "check"])
    assert result.exit_code == 0, result.stderr
    assert "configs/claims.yaml: valid" in result.stdout


# --------------------------------------------------------------------------- one test per rule
def test_base_file_is_valid(tmp_path: Path) -> None:
    assert len(load_claims(_write(tmp_path, BASE))) == 2


def test_duplicate_keys_anywhere_are_refused_with_key_and_line(tmp_path: Path) -> None:
    text = ("settings:\n  alpha: 0.05\n  alpha: 0.10\n"
            "claims:\n  - {id: a, family: churn, metric: roc_auc, claimed: 0.8,\n"
            "     direction: at_least, source: s, source: t}\n")
    problems = _problems(_write(tmp_path, text))
    by_key = {p.field: p for p in problems}
    assert by_key["alpha"].line == 3 and "first on line 2" in by_key["alpha"].message
    assert by_key["source"].line == 6 and by_key["source"].claim_id == "a"


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = ("defaults: &d {family: churn, direction: at_least, source: team floor}\n"
            "claims:\n  - {<<: *d, id: a, metric: roc_auc, claimed: 0.8}\n")
    problems = _problems(_write(tmp_path, text))
    assert [p.message for p in problems if "duplicate" in p.message] == []
    assert any("unknown top-level key(s) ['defaults']" in p.message for p in problems)


def test_unknown_keys_are_reported_together_with_the_rest(tmp_path: Path) -> None:
    doc = _with([_claim(polcy="point"), _claim(id="d", family="churnn")])
    problems = _problems(_write(tmp_path, doc))
    assert {(p.claim_id, p.field) for p in problems} == {("c", "polcy"), ("d", "family")}
    assert "unknown key" in next(p.message for p in problems if p.field == "polcy")


def test_unknown_family_suggests_the_closest(tmp_path: Path) -> None:
    (p,) = _problems(_write(tmp_path, _with([*BASE["claims"], _claim(id="x", family="lvt")])))
    assert (p.claim_index, p.claim_id, p.field) == (3, "x", "family")
    assert "'lvt'" in p.message and "did you mean 'ltv'?" in p.message


def test_metric_unknown_for_its_family(tmp_path: Path) -> None:
    doc = _with([*BASE["claims"], _claim(id="x", metric="spearman")])  # an ltv metric
    (p,) = _problems(_write(tmp_path, doc))
    assert p.field == "metric" and "family 'churn' reports no metric 'spearman'" in p.message
    assert "roc_auc" in p.message


def test_metric_typo_suggests_the_closest(tmp_path: Path) -> None:
    doc = _with([*BASE["claims"], _claim(id="x", metric="roc_acu")])
    (p,) = _problems(_write(tmp_path, doc))
    assert "did you mean 'roc_auc'?" in p.message


@pytest.mark.parametrize(("family", "metric", "claimed", "direction", "expected"), [
    ("churn", "ece", 0.05, "at_least", "at_most"),
    ("churn", "brier", 0.1, "at_least", "at_most"),
    ("churn", "log_loss", 0.3, "at_least", "at_most"),
    ("ltv", "mae", 90.0, "at_least", "at_most"),
    ("ltv", "rmse", 90.0, "at_least", "at_most"),
    ("ltv", "mae_minus_naive", 0.0, "at_least", "at_most"),
    ("churn", "roc_auc", 0.9, "at_most", "at_least"),
    ("churn", "accuracy", 0.9, "at_most", "at_least"),
    ("recs", "ndcg@10", 0.2, "at_most", "at_least"),
    ("recs", "ndcg@10_minus_global_popularity", 0.0, "at_most", "at_least"),
    ("segments", "id_stability", 0.8, "at_most", "at_least"),
])
def test_direction_against_the_metric_sense_is_refused(
        tmp_path: Path, family: str, metric: str, claimed: float, direction: str,
        expected: str) -> None:
    doc = _with([*BASE["claims"], _claim(id="x", family=family, metric=metric,
                                         claimed=claimed, direction=direction),
                 _claim(id="y", family=family, metric=metric, claimed=claimed,
                        direction=expected)])
    (p,) = _problems(_write(tmp_path, doc))
    assert (p.claim_id, p.field) == ("x", "direction")
    assert f"expected {expected!r}" in p.message


def test_signed_metric_accepts_both_directions(tmp_path: Path) -> None:
    doc = _with([*BASE["claims"],
                 _claim(id="hi", family="ltv", metric="aggregate_error", claimed=0.1,
                        direction="at_most"),
                 _claim(id="lo", family="ltv", metric="aggregate_error", claimed=-0.1,
                        direction="at_least")])
    assert len(load_claims(_write(tmp_path, doc), family="ltv")) == 2


@pytest.mark.parametrize(("family", "metric", "claimed", "direction"), [
    ("churn", "roc_auc", 0.45, "at_least"),       # below chance
    ("churn", "roc_auc", 1.2, "at_least"),
    ("churn", "ece", 1.5, "at_most"),
    ("churn", "accuracy", 94.1, "at_least"),      # a percentage, not a share
    ("ltv", "mae", -1.0, "at_most"),
    ("ltv", "spearman", 1.5, "at_least"),
    ("ltv", "aggregate_error", -1.5, "at_least"),
    ("recs", "ndcg@10", 1.1, "at_least"),
    ("recs", "ndcg@10_minus_baseline", -1.5, "at_least"),
    ("segments", "silhouette", -2.0, "at_least"),
])
def test_claimed_value_outside_the_range_is_refused(tmp_path: Path, family: str, metric: str,
                                                    claimed: float, direction: str) -> None:
    doc = _with([*BASE["claims"], _claim(id="x", family=family, metric=metric,
                                         claimed=claimed, direction=direction)])
    problems = _problems(_write(tmp_path, doc))
    assert [(p.claim_id, p.field) for p in problems if p.claim_id == "x"] == [("x", "claimed")]
    assert "outside the range" in next(p.message for p in problems if p.claim_id == "x")


def test_a_claim_that_cannot_fail_is_refused(tmp_path: Path) -> None:
    doc = _with([*BASE["claims"], _claim(id="x", family="churn", metric="accuracy",
                                         claimed=0.0)])
    (p,) = _problems(_write(tmp_path, doc))
    assert p.field == "claimed" and "cannot fail" in p.message


def test_non_inferiority_unknown_family_and_family_without_comparison(tmp_path: Path) -> None:
    ni = {**BASE["settings"]["non_inferiority"],
          "chrun": {"metric": "roc_auc", "margin": 0.01},
          "segments": {"metric": "mean", "margin": 0.01}}
    doc = _with([*BASE["claims"], _claim(id="s", family="segments", metric="id_stability")],
                non_inferiority=ni)
    problems = {p.where: p for p in _problems(_write(tmp_path, doc))}
    assert "did you mean 'churn'?" in problems["settings.non_inferiority.chrun"].message
    assert "no champion comparison" in problems["settings.non_inferiority.segments"].message


@pytest.mark.parametrize(("family", "metric"), [
    ("churn", "mae"), ("churn", "nope"), ("ltv", "roc_auc"), ("ltv", "mean"),
    ("recs", "ndcg@10"), ("recs", "mae"),
])
def test_non_inferiority_metric_the_comparison_cannot_use(tmp_path: Path, family: str,
                                                          metric: str) -> None:
    claims = [*BASE["claims"], _claim(id="l", family="ltv", metric="spearman", claimed=0.5),
              _claim(id="r", family="recs", metric="ndcg@10", claimed=0.1)]
    doc = _with(claims, non_inferiority={family: {"metric": metric, "margin": 0.01}})
    (p,) = _problems(_write(tmp_path, doc))
    assert (p.where, p.field) == (f"settings.non_inferiority.{family}", "metric")
    assert "cannot use" in p.message


@pytest.mark.parametrize(("metric", "margin", "ok"), [
    ("roc_auc", 1.0, False), ("roc_auc", 0.06, False), ("roc_auc", 0.05, True),
    ("roc_auc", 0.0, False), ("brier", 0.03, False), ("brier", 0.02, True),
    ("accuracy", 0.1, True), ("accuracy", 0.11, False),
])
def test_non_inferiority_margin_must_be_positive_and_small(tmp_path: Path, metric: str,
                                                           margin: float, ok: bool) -> None:
    doc = _with(non_inferiority={"churn": {"metric": metric, "margin": margin}})
    path = _write(tmp_path, doc)
    if ok:
        assert load_claims(path).settings.non_inferiority["churn"].margin == margin
        return
    (p,) = _problems(path)
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines())
                    if text.strip().startswith("margin:"))
    assert (p.where, p.field, p.line) == ("settings.non_inferiority.churn", "margin", line)


def test_margin_in_data_units_only_needs_to_be_positive(tmp_path: Path) -> None:
    claims = [*BASE["claims"], _claim(id="l", family="ltv", metric="spearman", claimed=0.5)]
    doc = _with(claims, non_inferiority={"ltv": {"metric": "mae", "margin": 250.0}})
    assert load_claims(_write(tmp_path, doc)).settings.non_inferiority["ltv"].margin == 250.0


def test_family_without_a_blocking_claim_is_refused(tmp_path: Path) -> None:
    claims = [*BASE["claims"],
              _claim(id="r", family="recs", metric="ndcg@10", claimed=0.1, blocking=False)]
    ni = {**BASE["settings"]["non_inferiority"], "ltv": {"metric": "mae", "margin": 2.0}}
    problems = {p.where: p for p in _problems(_write(tmp_path, _with(claims,
                                                                     non_inferiority=ni)))}
    assert set(problems) == {"family 'recs'", "family 'ltv'"}
    assert "blocking: false" in problems["family 'recs'"].message
    assert "no claim" in problems["family 'ltv'"].message


def test_empty_claims_list_is_refused(tmp_path: Path) -> None:
    (p,) = _problems(_write(tmp_path, {"claims": []}))
    assert p.field == "claims" and "nothing to check" in p.message


def test_shape_and_meaning_problems_come_together(tmp_path: Path) -> None:
    """A claim whose shape fails is still checked for meaning on the fields that are valid."""
    doc = _with([*BASE["claims"], {"id": "x", "family": "churn", "metric": "ece",
                                   "direction": "at_least", "source": "s"}])
    problems = _problems(_write(tmp_path, doc))
    assert {(p.claim_id, p.field) for p in problems} == {("x", "claimed"), ("x", "direction")}
    message = str(ClaimsError(problems))
    assert "2 problems" in message and message.count("claim #3 (id 'x')") == 2


def test_claims_error_is_a_value_error_and_accepts_a_message() -> None:
    err = ClaimsError("something")
    assert isinstance(err, ValueError) and err.problems[0].message == "something"


# --------------------------------------------------------------------------- the catalogue
def test_classification_ranges_cover_exactly_the_evaluation_metrics() -> None:
    assert set(catalog_module._CLASSIFICATION_RANGES) == set(HIGHER_IS_BETTER)
    assert set(catalog_module._REGRESSION_RANGES) == set(REGRESSION_METRICS)


@pytest.fixture(scope="module")
def churn_data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = (X["a"] + rng.normal(size=400) > 1).astype(int).to_numpy()
    return X, y


def test_every_churn_metric_is_produced_by_the_evaluation(
        churn_data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = churn_data
    model = LogisticRegression().fit(X, y)
    listed = CATALOGUE["churn"].metric_names()
    from_scores = evaluate_scores(y, model.predict_proba(X)[:, 1], n_bootstrap=0)
    from_model = evaluate_classifier(model, X, y, n_bootstrap=0)
    assert set(listed) == set(from_scores.metrics) == set(from_model.metrics)
    for name in listed:  # the sense agrees with the report's own direction
        spec = CATALOGUE["churn"].spec(name)
        assert spec is not None
        assert (spec.sense == "higher") == from_scores.metrics[name].higher_is_better


def test_every_ltv_metric_is_produced_by_the_evaluation() -> None:
    y = np.array([0.0, 10, 25, 40, 90, 120])
    # the models of experiments/train_ltv.py: candidate, BG/NBD and naive
    report = evaluate_ltv(y, {"xgboost": y + 1, "bgnbd": y * 0.8, "naive": np.zeros(6)},
                          n_bootstrap=0, candidate="xgboost", baseline="naive")
    assert set(CATALOGUE["ltv"].metric_names()) == set(report.metrics)
    for name, est in report.metrics.items():
        spec = CATALOGUE["ltv"].spec(name)
        assert spec is not None
        if spec.sense != "signed":
            assert (spec.sense == "higher") == est.higher_is_better


def test_every_recs_metric_is_produced_by_the_evaluation() -> None:
    train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 4], "item_id": list("ababac")})
    test = pd.DataFrame({"user_id": [3, 4], "item_id": ["b", "a"]})
    model = ItemKNNRecommender(shrink=0).fit(train)
    report = evaluate_recommender(model, train, test, k=(5, 10, 20), n_bootstrap=0)
    plain = [n for n in CATALOGUE["recs"].metric_names() if "_minus_" not in n]
    assert set(plain) == set(report.metrics) == set(ranking_metric_names((5, 10, 20)))
    # the differences experiments/train_recs.py adds for its gates
    for name in ("ndcg@10_minus_baseline", "ndcg@10_minus_global_popularity",
                 "recall@5_minus_baseline", "hit@20_minus_global_popularity"):
        assert name in CATALOGUE["recs"].metric_names()
    assert CATALOGUE["recs"].spec("mrr@10_minus_baseline") is None  # not added by the job
    assert CATALOGUE["recs"].spec("ndcg@0") is None


def test_paired_metrics_are_ones_the_champion_comparison_computes() -> None:
    available = set(paired_metric_names())
    for family in CATALOGUE.values():
        for spec in family.paired:
            assert spec.name in available, (family.family, spec.name)
            higher = HIGHER_IS_BETTER.get(spec.name)
            if higher is None:
                higher = OTHER_PAIRED_METRICS[spec.name][1]
            assert (spec.sense == "higher") == higher


def test_shipped_claims_use_catalogue_metrics() -> None:
    for claim in load_claims(CLAIMS_FILE):
        assert CATALOGUE[claim.family].spec(claim.metric) is not None, claim.id


# --------------------------------------------------------------------------- properties
_SPECS = [(family, spec) for family, entry in CATALOGUE.items()
          for name in entry.metric_names() if (spec := entry.spec(name)) is not None]
assert _SPECS


def _load_one(claim: dict[str, Any]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        return load_claims(_write(Path(tmp), {"claims": [claim]}))


@settings(max_examples=80, deadline=None)
@given(data=st.data(), pick=st.sampled_from(_SPECS))
def test_any_claim_from_the_catalogue_in_range_loads(data: st.DataObject,
                                                     pick: tuple[str, MetricSpec]) -> None:
    family, spec = pick
    direction = data.draw(st.sampled_from(
        ["at_least", "at_most"] if spec.sense == "signed"
        else ["at_least" if spec.sense == "higher" else "at_most"]))
    lo, hi = spec.claim_range
    # strictly inside, away from the end where the claim could not fail
    lo, hi = max(lo, -1e6), min(hi, 1e6)
    value = data.draw(st.floats(lo, hi, exclude_min=True, exclude_max=True))
    claims = _load_one(_claim(family=family, metric=spec.name, claimed=value,
                              direction=direction))
    assert [(c.family, c.metric, c.claimed) for c in claims] == [(family, spec.name, value)]


@settings(max_examples=80, deadline=None)
@given(data=st.data(), pick=st.sampled_from(
    [(f, s) for f, s in _SPECS if math.isfinite(s.claim_range[0])
     or math.isfinite(s.claim_range[1])]))
def test_any_out_of_range_value_is_refused(data: st.DataObject,
                                           pick: tuple[str, MetricSpec]) -> None:
    family, spec = pick
    lo, hi = spec.claim_range
    sides = [st.floats(-1e9, lo, exclude_max=True)] if math.isfinite(lo) else []
    sides += [st.floats(hi, 1e9, exclude_min=True)] if math.isfinite(hi) else []
    value = data.draw(st.one_of(sides))
    direction = "at_most" if spec.sense == "lower" else "at_least"
    with pytest.raises(ClaimsError) as err:
        _load_one(_claim(family=family, metric=spec.name, claimed=value, direction=direction))
    assert [p.field for p in err.value.problems] == ["claimed"]


def test_every_shipped_beats_claim_is_strict() -> None:
    """A claim that a model *beats* a baseline is ``> 0`` (or ``< 0``), not ``>= 0``: since
    a point mass exactly on a non-strict threshold passes (gates.check.bootstrap_p_value), a
    model identical to its baseline (difference 0 in every replicate) must not "beat" it."""
    claims = load_claims(CLAIMS_FILE).claims
    beats = [c for c in claims if "beats" in c.id]
    assert len(beats) >= 5
    assert [c.id for c in beats if not c.strict] == []
