"""Gates: claims are passed only on evidence, Holm controls the family, champions are defended."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate, SliceReport
from barberpro_ml.gates import (
    ChampionComparison,
    Claim,
    ClaimsError,
    ClaimSet,
    ClaimVerdict,
    GateResult,
    GateSettings,
    NonInferiority,
    SliceFloor,
    bootstrap_p_value,
    check,
    holm_adjust,
    load_claims,
)

ROOT = Path(__file__).resolve().parents[1]
CLAIMS_FILE = ROOT / "configs" / "claims.yaml"


def claim(metric: str = "accuracy", claimed: float = 0.8, direction: str = "at_least",
          **kw: Any) -> Claim:
    return Claim(id=kw.pop("id", f"{metric}-{claimed}"), family=kw.pop("family", "churn"),
                 metric=metric, claimed=claimed, direction=direction,  # type: ignore[arg-type]
                 source=kw.pop("source", "test"), **kw)


def claim_rows(result: GateResult) -> list[ClaimVerdict]:
    """The rows of the claims checked, without the gate's own ``test-overlap`` row."""
    return [c for c in result.claims if c.claim_id != "test-overlap"]


def scores_with_accuracy(n: int, accuracy: float, seed: int, prevalence: float = 0.3
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores whose expected accuracy at threshold 0.5 is ``accuracy``."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < prevalence
    correct = rng.random(n) < accuracy
    predicted = np.where(correct, y, ~y)
    # Spread the scores inside each side of 0.5 so that ROC AUC is defined and not trivial.
    p = np.where(predicted, 0.5 + 0.5 * rng.random(n), 0.5 * rng.random(n))
    return y.astype(int), p


def ranked_scores(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probability-like scores whose ranking quality falls as ``noise`` grows."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    z = 1.5 * y + rng.normal(0.0, noise, n)
    return y, 1 / (1 + np.exp(-(z - 0.75)))


def estimate_from(replicates: np.ndarray, name: str = "roc_auc") -> MetricEstimate:
    lo, hi = np.quantile(replicates, [0.025, 0.975])
    return MetricEstimate(name=name, value=float(np.median(replicates)), ci_low=float(lo),
                          ci_high=float(hi), replicates=replicates.tolist())


# --------------------------------------------------------------------------- evidence
@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_claim_above_true_value_is_refused_and_one_safely_below_passes(make_report: Any,
                                                                        seed: int) -> None:
    y, p = scores_with_accuracy(3000, 0.85, seed)
    report = make_report(y, p, metrics=("accuracy",), seed=seed)
    result = check(report, [claim(claimed=0.90, id="above"), claim(claimed=0.80, id="below")])
    above, below = claim_rows(result)
    assert above.verdict == "fail" and "does not clear" in above.reason
    assert below.verdict == "pass" and below.ci_low is not None and below.ci_low >= 0.80
    assert not result.passed


def test_non_blocking_claim_is_judged_alike_but_does_not_decide_promotion(
        make_report: Any) -> None:
    y, p = scores_with_accuracy(3000, 0.85, seed=11)
    report = make_report(y, p, metrics=("accuracy",), seed=11)
    audit = claim(claimed=0.95, id="audit").model_copy(update={"blocking": False})
    floor = claim(claimed=0.80, id="floor")
    result = check(report, [audit, floor])
    assert [c.verdict for c in claim_rows(result)] == ["fail", "pass"]
    assert result.passed
    assert "audit (not blocking)" in result.failures()[0]
    assert result.table().set_index("check").loc["audit", "blocking"] == False  # noqa: E712
    # The same claim, blocking, refuses promotion; Holm's family is the same in both cases.
    strict = check(report, [audit.model_copy(update={"blocking": True}), floor])
    assert not strict.passed
    assert [c.p_holm for c in strict.claims] == [c.p_holm for c in result.claims]


def test_ci_width_shrinks_with_more_data(make_report: Any) -> None:
    widths = {}
    for n in (400, 6400):
        y, p = scores_with_accuracy(n, 0.85, seed=n)
        row = check(make_report(y, p, metrics=("accuracy",)), [claim(claimed=0.5)]).claims[0]
        assert row.ci_low is not None and row.ci_high is not None
        widths[n] = row.ci_high - row.ci_low
    # Width ~ 1/sqrt(n): 16 times the data, about a quarter of the width.
    assert widths[6400] < widths[400] / 3


def test_seed_claim_refused_when_the_model_is_only_as_good_as_nobody_churns(
        make_report: Any) -> None:
    # 94% stay: "nobody churns" scores 0.94 and a model at that level supports nothing.
    rng = np.random.default_rng(3)
    y = (rng.random(4000) < 0.06).astype(int)
    p = np.full(4000, 0.06) + 0.01 * rng.random(4000)
    report = make_report(y, p, metrics=("accuracy",))
    seed_claim = next(c for c in load_claims(CLAIMS_FILE, "churn")
                      if c.id == "churn-accuracy-seed")
    row = check(report, [seed_claim]).claims[0]
    assert row.baseline == pytest.approx(1 - y.mean())
    assert "majority-class baseline ('nobody churns')" in row.reason
    assert "not clearly above the baseline" in row.reason
    assert row.verdict == "fail"


def test_accuracy_claim_is_shown_beside_the_baseline_and_needs_it(make_report: Any) -> None:
    y, p = scores_with_accuracy(2000, 0.9, seed=1)
    with_base = check(make_report(y, p, metrics=("accuracy",)), [claim(claimed=0.5)]).claims[0]
    assert with_base.baseline == pytest.approx(max(y.mean(), 1 - y.mean()))
    assert "majority-class baseline" in with_base.reason
    assert "does not even beat the baseline" in with_base.reason  # 0.5 < majority rate

    no_base = make_report(y, p, metrics=("accuracy",), baseline=False)
    row = check(no_base, [claim(claimed=0.5)]).claims[0]
    assert row.verdict == "fail" and "baselines['accuracy']" in row.reason


def test_missing_metric_fails_with_a_reason_instead_of_crashing(make_report: Any) -> None:
    y, p = ranked_scores(800, 1.0, seed=2)
    report = make_report(y, p, metrics=("roc_auc",))
    result = check(report, [claim("roc_auc", 0.6, id="auc"), claim("ece", 0.05, "at_most",
                                                                     id="ece")])
    auc, ece = claim_rows(result)
    assert ece.verdict == "fail" and "'ece' is missing" in ece.reason and "roc_auc" in ece.reason
    # The untestable claim still counts in Holm's family: the other p-value is doubled.
    assert auc.p_holm == pytest.approx(min(1.0, 2 * auc.p_value))
    assert not result.passed


def test_point_policy_is_labelled_weaker(make_report: Any) -> None:
    y, p = scores_with_accuracy(500, 0.85, seed=5)
    report = make_report(y, p, metrics=("accuracy",))
    observed = report.metrics["accuracy"].value
    lower = report.metrics["accuracy"].ci_low
    between = (observed + lower) / 2  # above the lower bound, below the point estimate
    result = check(report, [claim(claimed=between, id="ci"),
                            claim(claimed=between, id="point", policy="point")])
    ci_row, point_row = claim_rows(result)
    assert ci_row.verdict == "fail"
    assert point_row.verdict == "pass"
    assert point_row.reason.startswith("weaker: point estimate only")
    assert point_row.p_holm is None  # not part of the Holm family


def test_at_most_claims_use_the_upper_bound(make_report: Any) -> None:
    y, p = ranked_scores(1500, 1.0, seed=4)
    report = make_report(y, p, metrics=("brier",))
    brier = report.metrics["brier"]
    above_upper = brier.ci_high + 0.02
    between = (brier.value + brier.ci_high) / 2
    result = check(report, [claim("brier", above_upper, "at_most", id="loose"),
                            claim("brier", between, "at_most", id="tight")])
    assert [r.verdict for r in claim_rows(result)] == ["pass", "fail"]
    assert "upper bound" in result.claims[1].reason


# --------------------------------------------------------------------------- Holm
def _report_with(estimates: dict[str, MetricEstimate]) -> EvaluationReport:
    return EvaluationReport(family="churn", kind="classification", n=1000, metrics=estimates)


def test_holm_is_more_conservative_than_unadjusted() -> None:
    # 19 of 1000 replicates at or below the claim: p = 20/1001 for each of 3 claims, and
    # the 2.5% quantile (the CI lower bound) still clears the claim.
    rng = np.random.default_rng(0)
    below = 0.70 - rng.uniform(0.0, 0.05, 19)
    above = 0.70 + rng.uniform(0.001, 0.1, 981)
    reps = np.concatenate([below, above])
    names = ["roc_auc", "pr_auc", "lift_top_decile"]
    report = _report_with({m: estimate_from(reps, m) for m in names})
    claims = [claim(m, 0.70, id=m) for m in names]

    unadjusted = check(report, claims, correction="none")
    holm = check(report, claims)
    assert all(r.p_value == pytest.approx(20 / 1001) for r in claim_rows(holm))
    assert [r.verdict for r in claim_rows(unadjusted)] == ["pass"] * 3
    assert [r.verdict for r in claim_rows(holm)] == ["fail"] * 3
    assert all(r.p_holm == pytest.approx(60 / 1001) for r in claim_rows(holm))
    assert "after holm correction" in holm.claims[0].reason
    # One claim alone is not corrected: the same evidence passes.
    assert check(report, claims[:1]).claims[0].verdict == "pass"


def _holm_by_definition(p: list[float], alpha: float) -> list[bool]:
    """Holm (1979): reject in increasing order while p_(k) < alpha / (m - k + 1) (k from 1)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    reject = [False] * len(p)
    for k, i in enumerate(order):
        if p[i] * (len(p) - k) >= alpha:  # multiplied out, as the adjusted p-values are
            break
        reject[i] = True
    return reject


def test_holm_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    np.testing.assert_allclose(holm_adjust(p), multipletests(p, method="holm")[1], atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12), st.sampled_from([0.01, 0.05]))
def test_holm_adjusted_p_values_reject_as_the_step_down_procedure(p: list[float],
                                                                   alpha: float) -> None:
    adjusted = holm_adjust(p)
    assert list(adjusted < alpha) == _holm_by_definition(p, alpha)
    assert np.all(adjusted >= np.asarray(p) - 1e-15) and np.all(adjusted <= 1.0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), m=st.integers(1, 5), shift=st.floats(-0.05, 0.05))
def test_holm_verdicts_are_a_subset_of_unadjusted_ones(seed: int, m: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    names = [f"metric_{i}" for i in range(m)]
    report = _report_with({n: estimate_from(0.7 + rng.normal(0, 0.02, 1000) + shift, n)
                           for n in names})
    claims = [claim(n, 0.7, id=n) for n in names]
    holm = {r.claim_id for r in check(report, claims).claims if r.verdict == "pass"}
    plain = {r.claim_id for r in check(report, claims, correction="none").claims
             if r.verdict == "pass"}
    assert holm <= plain


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=200), st.floats(0.0, 1.0))
def test_bootstrap_p_value_bounds_and_monotonicity(reps: list[float], c: float) -> None:
    r = np.asarray(reps)
    p = bootstrap_p_value(r, c, "at_least")
    assert 1 / (len(r) + 1) <= p <= 1
    assert bootstrap_p_value(r, c + 0.1, "at_least") >= p
    assert bootstrap_p_value(r, c - 0.1, "at_most") >= bootstrap_p_value(r, c, "at_most")


# --------------------------------------------------------------------------- slices
def test_slice_floors_test_slices_with_enough_of_each_class(make_report: Any) -> None:
    y_good, p_good = ranked_scores(1200, 0.8, seed=1)
    y_bad, _ = ranked_scores(1200, 0.8, seed=2)
    p_bad = np.random.default_rng(3).random(1200)  # no information: AUC about 0.5
    # Many rows but few positives: a row count would call this slice testable.
    rng = np.random.default_rng(4)
    y_rare = (rng.random(1500) < 0.02).astype(int)
    p_rare = 1 / (1 + np.exp(-(2.0 * y_rare + rng.normal(0, 1, 1500))))
    y = np.concatenate([y_good, y_bad, y_rare])
    p = np.concatenate([p_good, p_bad, p_rare])
    channel = np.array(["web"] * 1200 + ["app"] * 1200 + ["walk_in"] * 1500)
    report = make_report(y, p, metrics=("roc_auc",), slices={"acquisition_channel": channel})
    floor = claim("roc_auc", 0.65, id="by-channel",
                  slice=SliceFloor(dimension="acquisition_channel", min_class_count=150))
    result = check(report, [floor])
    verdicts = {r.slice: r.verdict for r in claim_rows(result)}
    assert verdicts == {"acquisition_channel=app": "fail", "acquisition_channel=web": "pass",
                        "acquisition_channel=walk_in": "untestable"}
    rare = next(r for r in claim_rows(result) if r.verdict == "untestable")
    assert rare.n == 1500 and rare.class_count == int(y_rare.sum()) < 150
    assert f"{int(y_rare.sum())} positives" in rare.reason and "min_class_count 150" in rare.reason
    assert rare.passed  # untestable: report (the default) does not block
    assert "by-channel[acquisition_channel=walk_in]" in result.to_text()
    assert "untestable" in set(result.table()["verdict"])

    good_only = claim("roc_auc", 0.65, id="floor-web", slice=floor.slice)
    web = make_report(y_good, p_good, metrics=("roc_auc",),
                      slices={"acquisition_channel": np.array(["web"] * 1100 + ["tiny"] * 100)})
    assert check(web, [good_only]).passed
    blocked = check(web, [good_only.model_copy(update={"untestable": "block"})])
    assert not blocked.passed
    assert any("acquisition_channel=tiny" in line and "untestable" in line
               for line in blocked.failures())

    other_dim = claim("roc_auc", 0.65, id="hood",
                      slice=SliceFloor(dimension="neighborhood", min_class_count=10))
    row = check(report, [other_dim]).claims[0]
    assert row.verdict == "fail" and "no slices by 'neighborhood'" in row.reason


def test_slices_without_class_counts_count_rows() -> None:
    est = estimate_from(np.random.default_rng(0).normal(0.9, 0.01, 1000), "spearman")
    report = EvaluationReport(family="ltv", kind="regression", n=1000, metrics={"spearman": est},
                              slices=[SliceReport(dimension="band", level=level, n=n,
                                                  metrics={"spearman": est})
                                      for level, n in [("big", 800), ("small", 200)]])
    floor = claim("spearman", 0.5, family="ltv", id="by-band",
                  slice=SliceFloor(dimension="band", min_class_count=300))
    verdicts = {r.slice: r.verdict for r in claim_rows(check(report, [floor]))}
    assert verdicts == {"band=big": "pass", "band=small": "untestable"}


# --------------------------------------------------------------------------- champion
def _settings(margin: float = 0.01, metric: str = "roc_auc") -> GateSettings:
    return GateSettings(non_inferiority={"churn": NonInferiority(metric=metric, margin=margin)})


def test_significantly_worse_challenger_is_refused(make_report: Any) -> None:
    rng = np.random.default_rng(7)
    y, champion = ranked_scores(3000, 0.8, seed=7)
    challenger = np.clip(champion + rng.normal(0, 0.35, 3000), 0, 1)
    report = make_report(y, challenger, metrics=("roc_auc",))
    claims = ClaimSet(settings=_settings(), claims=[claim("roc_auc", 0.55)])
    comparison = ChampionComparison(y_true=y, challenger=challenger, champion=champion,
                                    champion_version="4")
    result = check(report, claims, comparison)
    assert result.claims[0].verdict == "pass"  # the claim alone would let it through
    ch = result.champion
    assert ch.verdict == "fail" and not result.passed
    assert ch.difference is not None and ch.difference < -0.01
    assert ch.ci_high is not None and ch.ci_low is not None and ch.ci_low <= -0.01
    assert "promotion refused" in ch.reason and "champion v4" in ch.reason
    assert f"{ch.difference:+.4f}" in ch.reason


def test_challenger_as_good_as_the_champion_passes_and_no_champion_says_so(
        make_report: Any) -> None:
    y, scores = ranked_scores(1000, 0.8, seed=8)
    report = make_report(y, scores, metrics=("roc_auc",))
    claims = ClaimSet(settings=_settings(), claims=[claim("roc_auc", 0.55)])
    same = check(report, claims, ChampionComparison(y_true=y, challenger=scores,
                                                    champion=scores))
    assert same.champion.verdict == "pass" and same.champion.difference == 0.0

    first = check(report, claims, None)
    assert first.champion.verdict == "pass"
    assert "no champion yet" in first.champion.reason
    assert first.champion.metric == "roc_auc" and first.champion.margin == 0.01


def test_champion_comparison_for_lower_is_better_and_regression_metrics() -> None:
    rng = np.random.default_rng(9)
    y = rng.gamma(2.0, 50.0, 2000)  # lifetime values
    champion = y + rng.normal(0, 10, 2000)
    worse = y + rng.normal(0, 40, 2000)
    report = _report_with({"mae": estimate_from(rng.normal(10, 0.1, 300), "mae")})
    claims = [claim("mae", 20.0, "at_most", id="mae-floor")]
    for metric in ("mae", "rmse"):
        comparison = ChampionComparison(y_true=y, challenger=worse, champion=champion,
                                        metric=metric, margin=1.0)
        ch = check(report, claims, comparison).champion
        assert ch.verdict == "fail" and ch.higher_is_better is False
        assert "upper bound" in ch.reason
    better = ChampionComparison(y_true=y, challenger=champion, champion=worse, metric="mae",
                                margin=1.0)
    assert check(report, claims, better).champion.verdict == "pass"


def test_champion_comparison_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        ChampionComparison(y_true=[0, 1, 1], challenger=[0.1, 0.2], champion=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="non-finite challenger"):
        ChampionComparison(y_true=[0, 1], challenger=[np.nan, 0.2], champion=[0.1, 0.2])
    with pytest.raises(ValueError, match="no paired bootstrap for metric 'nope'"):
        ChampionComparison(y_true=[0, 1], challenger=[0.1, 0.2], champion=[0.1, 0.2],
                           metric="nope")


def test_champion_comparison_needs_a_metric_and_margin(make_report: Any) -> None:
    y, scores = ranked_scores(300, 1.0, seed=1)
    report = make_report(y, scores, metrics=("roc_auc",))
    comparison = ChampionComparison(y_true=y, challenger=scores, champion=scores)
    with pytest.raises(ValueError, match=r"settings\.non_inferiority\.churn"):
        check(report, [claim("roc_auc", 0.5)], comparison)


# --------------------------------------------------------------------------- result object
def test_gate_result_serialises_and_renders(make_report: Any) -> None:
    y, p = ranked_scores(800, 0.8, seed=11)
    report = make_report(y, p, metrics=("accuracy", "roc_auc"))
    result = check(report, load_claims(CLAIMS_FILE, "churn"))
    again = GateResult.model_validate_json(result.model_dump_json())
    assert again == result
    assert json.loads(result.model_dump_json())["passed"] is result.passed

    table = result.table()
    assert list(table["check"])[-1] == "champion"
    assert len(table) == len(result.claims) + 1
    assert {"observed", "ci_low", "ci_high", "claimed", "baseline", "p_value", "p_holm",
            "verdict", "reason"} <= set(table.columns)

    text = result.to_text()
    assert text.startswith(f"gate for 'churn': {'PASSED' if result.passed else 'FAILED'}")
    for c in result.claims:
        assert c.claim_id in text
    console = Console(record=True, width=240)
    console.print(result)
    rendered = console.export_text()
    assert "churn-accuracy-seed" in rendered and "champion" in rendered


def test_check_refuses_claims_of_another_family(make_report: Any) -> None:
    y, p = ranked_scores(300, 1.0, seed=1)
    report = make_report(y, p, metrics=("roc_auc",))
    with pytest.raises(ValueError, match="none of the 1 claims is about family 'churn'"):
        check(report, [claim("roc_auc", 0.5, family="ltv")])
    with pytest.raises(ValueError, match="no claims given"):
        check(report, [])


def test_gate_on_the_evaluation_harness_report() -> None:
    """The claims file's metric names are the ones the evaluation harness produces."""
    from barberpro_ml.evaluation import evaluate_scores

    y, p = ranked_scores(2000, 0.8, seed=12)
    channel = np.where(np.arange(2000) % 3 == 0, "paid_social", "organic")
    report = evaluate_scores(y, p, n_bootstrap=1000, seed=1,
                             slices=pd.DataFrame({"acquisition_channel": channel}))
    result = check(report, load_claims(CLAIMS_FILE, "churn"))
    by_id = {c.check_id: c for c in result.claims}
    assert not any("is missing" in c.reason for c in result.claims)
    assert by_id["churn-accuracy-seed"].baseline is not None
    assert {c.slice for c in result.claims if c.slice} == {
        "acquisition_channel=organic", "acquisition_channel=paid_social"}


# --------------------------------------------------------------------------- claims file
def test_project_claims_file() -> None:
    claims = load_claims(CLAIMS_FILE)
    assert claims.settings.alpha == 0.05
    assert claims.settings.non_inferiority["churn"].metric == "roc_auc"
    by_id = {c.id: c for c in claims}
    seed = by_id["churn-accuracy-seed"]
    assert (seed.metric, seed.claimed, seed.direction, seed.policy) == (
        "accuracy", 0.941, "at_least", "ci")
    assert "000_636c807d5718b6e2.txt" in seed.source and "94.1%" in seed.source
    calibration = by_id["churn-calibration-ceiling"]
    assert (calibration.metric, calibration.claimed, calibration.direction) == (
        "rms_calibration_error", 0.05, "at_most")
    assert by_id["churn-roc-auc-floor"].source.startswith("team floor")
    assert all(c.source for c in claims)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_malformed_claims_name_the_file_claim_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, """
claims:
  - id: ok
    family: churn
    metric: roc_auc
    claimed: 0.7
    direction: at_least
    source: team floor
  - id: broken
    family: churn
    metric: accuracy
    direction: above
    source: seed
""")
    with pytest.raises(ClaimsError) as err:
        load_claims(path)
    message = str(err.value)
    assert str(path) in message and "claim #2 (id 'broken')" in message
    assert "'claimed'" in message and "'direction'" in message and "'above'" in message


@pytest.mark.parametrize(("text", "expected"), [
    ("claims: [", "not valid YAML"),
    ("settings: {alpha: 0.05}", "'claims:' list"),
    ("claims: []\nextra: 1", "unknown top-level key(s) ['extra']"),
    ("settings: {alpha: 2}\nclaims: []", "'alpha'"),
    ("claims:\n  - {id: a, family: churn, metric: roc_auc, claimed: 0.9, "
     "direction: at_least, source: s}\n  - {id: a, family: churn, metric: roc_auc, "
     "claimed: 0.9, direction: at_least, source: s}", "repeated: ['a']"),
    ("claims:\n  - {id: 'bad id!', family: churn, metric: roc_auc, claimed: 0.9, "
     "direction: at_least, source: s}", "'id'"),
])
def test_claims_file_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ClaimsError) as err:
        load_claims(_write(tmp_path, text))
    assert expected in str(err.value)


def test_claims_for_a_family_without_claims_is_an_error(tmp_path: Path) -> None:
    families = sorted({c.family for c in load_claims(CLAIMS_FILE)})
    assert {"churn", "ltv", "recs", "segments", "forecast", "pricing"} <= set(families)
    with pytest.raises(ClaimsError, match=r"no claims for family 'no-such-family'.*"
                       + re.escape(str(families))):
        load_claims(CLAIMS_FILE, family="no-such-family")
    with pytest.raises(FileNotFoundError, match="claims file not found"):
        load_claims(tmp_path / "nope.yaml")


def test_too_few_replicates_for_holm_is_explained() -> None:
    # Every replicate clears the claim, but 60 claims x p >= 1/(B+1) = 1/1001 exceeds alpha.
    reps = np.linspace(0.8, 0.9, 1000)
    names = [f"metric_{i}" for i in range(60)]
    report = _report_with({n: estimate_from(reps, n) for n in names})
    result = check(report, [claim(n, 0.5, id=n) for n in names])
    assert all(r.verdict == "fail" for r in result.claims)
    assert "n_bootstrap >= 1,200" in result.claims[0].reason


def test_fewer_replicates_than_the_minimum_are_refused_not_warned() -> None:
    reps = np.linspace(0.8, 0.9, 999)  # every replicate clears the claim by far
    report = _report_with({"roc_auc": estimate_from(reps)})
    row = check(report, [claim("roc_auc", 0.5)]).claims[0]
    assert row.verdict == "fail"
    assert "only 999 finite bootstrap replicates" in row.reason and "1,000" in row.reason
    strict = ClaimSet(settings=GateSettings(min_bootstrap=2000), claims=[claim("roc_auc", 0.5)])
    report = _report_with({"roc_auc": estimate_from(np.linspace(0.8, 0.9, 1500))})
    assert "settings.min_bootstrap 2,000" in check(report, strict).claims[0].reason
    # point claims do not rest on the replicates
    assert check(report, [claim("roc_auc", 0.5, policy="point")]).claims[0].verdict == "pass"


def test_champion_with_too_few_replicates_is_refused() -> None:
    y, scores = ranked_scores(1000, 0.8, seed=8)
    comparison = ChampionComparison(y_true=y, challenger=scores, champion=scores,
                                    n_bootstrap=500)
    report = _report_with({"roc_auc": estimate_from(np.linspace(0.8, 0.9, 1000))})
    ch = check(report, ClaimSet(settings=_settings(), claims=[claim("roc_auc", 0.5)]),
               comparison).champion
    assert ch.verdict == "fail" and "only 500 finite paired bootstrap replicates" in ch.reason


@pytest.mark.parametrize(("field", "value"), [
    ("min_bootstrap", 999), ("confidence", 0.5), ("confidence", 0.9999), ("confidence", 1.0)])
def test_gate_settings_refuse_weak_statistics(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        GateSettings.model_validate({field: value})


def test_confidence_comes_from_the_claims_file_not_the_report() -> None:
    # The report claims a 50% interval whose lower bound clears 0.85; the replicates say the
    # 95% bound does not.
    reps = np.random.default_rng(0).normal(0.86, 0.01, 2000)
    lo, hi = np.quantile(reps, [0.25, 0.75])
    est = MetricEstimate(name="roc_auc", value=0.86, ci_low=float(lo), ci_high=float(hi),
                         confidence=0.5, replicates=reps.tolist())
    report = _report_with({"roc_auc": est})
    row = check(report, [claim("roc_auc", 0.85)]).claims[0]
    assert row.verdict == "fail" and row.confidence == 0.95
    assert row.ci_low == pytest.approx(np.quantile(reps, 0.025))
    loose = ClaimSet(settings=GateSettings(confidence=0.8), claims=[claim("roc_auc", 0.85)])
    assert check(report, loose).claims[0].ci_low == pytest.approx(np.quantile(reps, 0.1))
