"""The gates' error rates, re-measured by simulation against known truths.

Each test runs the library's own code path (``evaluate_scores`` -> ``check`` /
``ChampionComparison``) on fresh samples from a population whose metric values are known
(``benchmarks/gate_statistics.py`` holds the populations and prints the same rates with more
repetitions). A rate with target ``<= r`` must stay below ``r`` plus a Monte-Carlo tolerance of
2.5 binomial standard errors at that target (a correct gate then fails such a test about 0.6%
of the time); ``>= r`` targets mirror that.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from barberpro_ml.evaluation.bootstrap import paired_bootstrap, percentile_interval
from barberpro_ml.evaluation.metrics import BinaryScores
from barberpro_ml.gates import DEFAULT_MIN_CLASS_COUNT

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gate_statistics", ROOT / "benchmarks" / "gate_statistics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _bench()


def tolerance(target: float, reps: int) -> float:
    """2.5 binomial standard errors of a rate ``target`` estimated from ``reps`` draws."""
    return 2.5 * math.sqrt(target * (1 - target) / reps)


def at_most(rate: object, target: float) -> None:
    r = rate.rate, rate.reps  # type: ignore[attr-defined]
    assert r[0] <= target + tolerance(target, r[1]), rate


def at_least(rate: object, target: float) -> None:
    r = rate.rate, rate.reps  # type: ignore[attr-defined]
    assert r[0] >= target - tolerance(target, r[1]), rate


@pytest.mark.slow
def test_false_pass_at_the_true_value_and_holm_family_wise_error() -> None:
    single, family = bench.claim_at_truth(reps=120, n=1000, seed=11)
    at_most(single, 0.05)
    at_most(family, 0.05)


@pytest.mark.slow
def test_slice_floor_power_and_false_passes_at_the_default_min_class_count() -> None:
    m = DEFAULT_MIN_CLASS_COUNT
    at_least(bench.slice_floor(reps=120, min_class_count=m, floor_below_truth=0.05, seed=12),
             0.80)
    at_most(bench.slice_floor(reps=120, min_class_count=m, floor_below_truth=0.0, seed=13),
            0.05)


@pytest.mark.slow
def test_non_inferiority_size_and_power_for_retrains() -> None:
    power, size, effective = bench.non_inferiority(reps=120, n=2000, seed=14)
    at_least(power, 0.80)
    at_most(size, 0.05)
    assert 0.01 <= effective < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("curve", list(bench.CALIBRATION_CURVES))
def test_ece_upper_bound_covers_and_ece_claims_keep_their_level(curve: str) -> None:
    for n, reps in [(500, 100), (2000, 40)]:
        _, upper, false_pass = bench.ece_coverage(reps=reps, n=n, curve=curve, seed=15)
        at_least(upper, 0.975)
        at_most(false_pass, 0.05)


@pytest.mark.slow
def test_ece_interval_covers_a_clearly_miscalibrated_truth() -> None:
    both, _, _ = bench.ece_coverage(reps=100, n=500, curve="strong (x1.6)", seed=16)
    at_least(both, 0.93)
    assert both.rate <= 0.97 + tolerance(0.97, both.reps)


@pytest.mark.parametrize("curve", list(bench.CALIBRATION_CURVES))
@pytest.mark.parametrize("n", [500, 2000])
def test_rms_calibration_interval_covers_at_its_nominal_level(curve: str, n: int) -> None:
    """The interval calibration claims are decided on covers 0.93-0.97 for every truth.

    The interval is analytic (the quantiles ``evaluate_scores`` stores for the metric), so it is
    read here straight from :class:`BinaryScores` on 800 fresh samples; a rate outside
    [0.93, 0.97] by more than 2.5 binomial standard errors fails.
    """
    truth = bench.rms_calibration_truth(curve)
    rng = np.random.default_rng(21)
    reps, covered, upper = 800, 0, 0
    for _ in range(reps):
        y, p = bench.calibration_sample(n, curve, rng)
        q = BinaryScores(y, p).rms_calibration_quantiles(1000)
        lo, hi = percentile_interval(q, 0.95)
        covered += lo <= truth <= hi
        upper += truth <= hi
    rate = covered / reps
    assert 0.93 - tolerance(0.95, reps) <= rate <= 0.97 + tolerance(0.95, reps), (curve, n, rate)
    assert upper / reps >= 0.975 - tolerance(0.975, reps), (curve, n, upper / reps)


@pytest.mark.slow
def test_rms_calibration_claims_keep_their_level_through_the_gate() -> None:
    for curve in ("calibrated", "strong (x1.6)"):
        _, upper, false_pass = bench.rms_calibration_coverage(reps=80, n=500, curve=curve,
                                                              seed=17)
        at_least(upper, 0.975)
        at_most(false_pass, 0.05)


def test_ece_estimand_of_a_calibrated_model_is_zero_and_the_plug_in_is_biased() -> None:
    rng = np.random.default_rng(0)
    assert bench.calibration_truth("calibrated") == pytest.approx(0.0, abs=2e-3)
    y, p = bench.calibration_sample(500, "calibrated", rng)
    report = bench.evaluate_scores(y, p, n_bootstrap=1000)
    ece = report.metrics["ece"]
    assert ece.value > 0.02  # the plug-in's upward bias at 33 rows a bin
    assert ece.ci_low < ece.value < ece.ci_high  # the lower side is debiased


def test_effective_margin_is_the_detectable_difference_of_the_replicates() -> None:
    rng = np.random.default_rng(3)
    y, challenger, champion = bench.retrain_scores(2000, (0.85, 0.85), rng)
    comparison = bench.ChampionComparison(y_true=y, challenger=challenger, champion=champion)
    verdict = bench.check(bench.evaluate_scores(y, challenger, n_bootstrap=1000),
                          bench._ni_claims(0.01), comparison).champion
    d = paired_bootstrap(y, challenger, champion, "roc_auc", 1000, 0).replicate_array()
    se = float(np.std(d, ddof=1))
    assert verdict.standard_error == pytest.approx(se)
    assert verdict.detectable_difference == pytest.approx((1.959964 + 0.841621) * se, rel=1e-5)
    assert verdict.effective_margin == max(0.01, verdict.detectable_difference)
    assert f"{verdict.effective_margin:.4f}" in verdict.reason and "detectable" in verdict.reason
