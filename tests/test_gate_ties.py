"""Gates: a point mass exactly on the threshold meets a non-strict claim, and nothing else does.

A "keep prices" recommendation changes revenue by exactly 0 in every replicate; the no-loss
floor "revenue change >= 0" holds for it with equality. The exception must not leak: a strict
claim, a mix of zeros and losses, an estimate a hair below 0 or a NaN among the replicates fail.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate
from barberpro_ml.gates import Claim, ClaimVerdict, bootstrap_p_value, check

B = 1000


def _report(replicates: np.ndarray, value: float | None = None) -> EvaluationReport:
    """A pricing report (the family whose "keep prices" evidence is a point mass)."""
    r = np.asarray(replicates, dtype=float)
    finite = r[np.isfinite(r)]
    lo, hi = np.quantile(finite, [0.025, 0.975])
    est = MetricEstimate(name="revenue_increase",
                         value=float(np.median(finite)) if value is None else value,
                         ci_low=float(lo), ci_high=float(hi), confidence=0.95,
                         replicates=r.tolist())
    return EvaluationReport(family="pricing", kind="causal", n=60,
                            metrics={"revenue_increase": est}, n_bootstrap=r.size)


def _claim(claimed: float = 0.0, direction: str = "at_least", **kw: Any) -> Claim:
    return Claim(id=kw.pop("id", "floor"), family="pricing", metric="revenue_increase",
                 claimed=claimed, direction=direction,  # type: ignore[arg-type]
                 source="test", **kw)


def _row(report: EvaluationReport, *claims: Claim) -> ClaimVerdict:
    rows = [r for r in check(report, list(claims)).claims if r.claim_id == claims[0].id]
    assert len(rows) == 1
    return rows[0]


def test_all_zero_replicates_meet_a_non_strict_floor_at_zero() -> None:
    # with the seed's 15% audit claim beside it, as in configs/claims.yaml (Holm over two)
    audit = _claim(0.15, id="audit", blocking=False)
    row = _row(_report(np.zeros(B)), _claim(), audit)
    assert row.verdict == "pass"
    assert row.p_value == pytest.approx(1 / (B + 1))
    assert "point mass on the threshold" in row.reason
    assert _row(_report(np.zeros(B)), audit, _claim()).verdict == "fail"


def test_a_strict_claim_still_fails_on_all_zero_replicates() -> None:
    row = _row(_report(np.zeros(B)), _claim(strict=True))
    assert row.verdict == "fail"
    assert row.p_value == pytest.approx(1.0)
    assert "point mass" not in row.reason


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_replicates_centred_slightly_below_zero_fail(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reps = rng.normal(-0.001, 0.0005, B)
    row = _row(_report(reps), _claim())
    assert row.verdict == "fail"
    assert row.ci_low is not None and row.ci_low < 0


@pytest.mark.parametrize("n_negative", [1, 10, 24])
def test_a_mix_of_zeros_and_losses_fails_even_when_the_lower_bound_is_zero(
        n_negative: int) -> None:
    reps = np.zeros(B)
    reps[:n_negative] = -0.01
    row = _row(_report(reps, value=0.0), _claim())
    # fewer than 2.5% losses: the percentile lower bound is still 0, so the p-value decides
    assert row.ci_low == 0.0
    assert row.verdict == "fail"
    assert row.p_value == pytest.approx(1.0)


@pytest.mark.parametrize("make", [
    pytest.param(lambda: (np.zeros(B), -1e-12), id="estimate a hair below"),
    pytest.param(lambda: (np.append(np.zeros(B), np.nan), 0.0), id="a NaN replicate"),
    pytest.param(lambda: (np.append(np.zeros(B - 1), 1e-12), 0.0), id="one replicate above"),
])
def test_the_exception_needs_an_exact_finite_point_mass_and_estimate(make: Any) -> None:
    reps, value = make()
    row = _row(_report(reps, value=value), _claim())
    assert row.verdict == "fail"


def test_at_most_claims_are_the_mirror_image() -> None:
    zeros = _report(np.zeros(B))
    assert _row(zeros, _claim(direction="at_most")).verdict == "pass"
    assert _row(zeros, _claim(direction="at_most", strict=True)).verdict == "fail"


def test_point_policy_respects_strict() -> None:
    zeros = _report(np.zeros(B))
    assert _row(zeros, _claim(policy="point")).verdict == "pass"
    assert _row(zeros, _claim(policy="point", strict=True)).verdict == "fail"


def test_strict_is_refused_on_a_consistent_claim_and_shown_in_the_claim() -> None:
    with pytest.raises(ValidationError, match="strict"):
        _claim(policy="consistent", strict=True)
    assert _claim(strict=True).describe() == "revenue_increase > 0"
    assert _claim().describe() == "revenue_increase >= 0"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([-0.02, -0.01, 0.0, 0.01, 0.02]), min_size=2, max_size=200),
       st.sampled_from([-0.01, 0.0, 0.01]), st.sampled_from(["at_least", "at_most"]))
def test_p_values_are_unchanged_unless_every_replicate_is_on_the_threshold(
        reps: list[float], c: float, direction: str) -> None:
    r = np.asarray(reps)
    strict = bootstrap_p_value(r, c, direction)  # type: ignore[arg-type]
    loose = bootstrap_p_value(r, c, direction, strict=False)  # type: ignore[arg-type]
    if np.all(r == c):
        assert loose == pytest.approx(1 / (r.size + 1)) and strict == 1.0
    else:
        assert loose == strict
