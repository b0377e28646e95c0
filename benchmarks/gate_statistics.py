"""Error rates of the accuracy gates, measured by Monte Carlo against known truths.

Every repetition draws a fresh test set from a population whose metric values are known, runs
the library's own code path (:func:`barberpro_ml.evaluation.evaluate_scores`,
:func:`barberpro_ml.gates.check`, :class:`barberpro_ml.gates.ChampionComparison`) with the
shipped defaults (95% confidence, 1,000 bootstrap replicates, alpha 0.05, Holm), and counts
verdicts. The table gives each rate with a 95% Wilson interval for the Monte-Carlo error.

Run ``python benchmarks/gate_statistics.py`` (``--reps 200`` for a quicker, rougher table).
``tests/test_gate_statistics.py`` calls the same functions with fewer repetitions.

Populations
-----------
- Binormal scores [1]_: ``s | y ~ N(mu y, 1)``, churn rate 0.3, turned into calibrated
  probabilities ``P(y = 1 | s)``; ROC AUC ``Phi(mu / sqrt 2)``. Accuracy at 0.5 and Brier score
  of the population are computed once from 2,000,000 draws.
- Retrains (non-inferiority): ``s_k = mu_k y + u + e_k`` with a shared ``u`` and independent
  ``e_k``, all ``N(0, 1)``: two models that share the signal but not the noise, whose paired
  AUC difference on the same rows is centred at ``AUC_1 - AUC_2`` with
  ``AUC_k = Phi(mu_k / 2)``.
- Calibration: ``p ~ Beta(2, 6)`` (mean 0.25), ``y ~ Bernoulli(f(p))`` for a calibration curve
  ``f``; the estimand ``CE`` (see :mod:`barberpro_ml.evaluation.metrics`) is computed with 15
  bins at the population quantiles from 4,000,000 draws.

References
----------
.. [1] Hanley, J. A. & McNeil, B. J. (1982). The meaning and use of the area under a receiver
   operating characteristic (ROC) curve. *Radiology* 143, 29-36 (binormal model).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from statistics import NormalDist

import numpy as np
import pandas as pd

from barberpro_ml.evaluation import evaluate_scores
from barberpro_ml.evaluation.bootstrap import percentile_interval
from barberpro_ml.gates import (
    DEFAULT_MIN_CLASS_COUNT,
    ChampionComparison,
    Claim,
    ClaimSet,
    GateSettings,
    NonInferiority,
    SliceFloor,
    check,
)

PREVALENCE = 0.3
_PHI = NormalDist()


@dataclass(frozen=True)
class Rate:
    """A Monte-Carlo rate: ``hits`` of ``reps`` repetitions, with its target."""

    quantity: str
    n: int
    hits: int
    reps: int
    target: str

    @property
    def rate(self) -> float:
        return self.hits / self.reps

    def interval(self) -> tuple[float, float]:
        """95% Wilson score interval of the rate."""
        z, k, m = 1.959964, self.hits, self.reps
        centre = (k + z * z / 2) / (m + z * z)
        half = z * math.sqrt(k * (m - k) / m + z * z / 4) / (m + z * z)
        return max(0.0, centre - half), min(1.0, centre + half)

    def row(self) -> str:
        lo, hi = self.interval()
        return (f"| {self.quantity} | {self.n:,} | {self.reps:,} | {100 * self.rate:.1f}% | "
                f"[{100 * lo:.1f}%, {100 * hi:.1f}%] | {self.target} |")


def _claim(metric: str, claimed: float, direction: str = "at_least", **kw: object) -> Claim:
    return Claim.model_validate({"id": kw.pop("id", metric), "family": "churn",
                                 "metric": metric, "claimed": claimed, "direction": direction,
                                 "source": "simulation", **kw})


# --------------------------------------------------------------------------- binormal truths
def binormal_mu(auc: float) -> float:
    """Separation ``mu`` of the binormal model with ROC AUC ``auc``."""
    return math.sqrt(2.0) * _PHI.inv_cdf(auc)


def binormal_sample(n: int, auc: float, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Labels and calibrated probabilities of ``n`` rows of the binormal population."""
    mu = binormal_mu(auc)
    y = (rng.random(n) < PREVALENCE).astype(int)
    s = mu * y + rng.normal(0.0, 1.0, n)
    logit = math.log(PREVALENCE / (1 - PREVALENCE)) + mu * s - mu * mu / 2
    return y, 1.0 / (1.0 + np.exp(-logit))


@cache
def binormal_truth(auc: float) -> dict[str, float]:
    """Population ROC AUC, accuracy at 0.5 and Brier score of the binormal model."""
    y, p = binormal_sample(2_000_000, auc, np.random.default_rng(12345))
    return {"roc_auc": auc, "accuracy": float(np.mean((p > 0.5) == (y == 1))),
            "brier": float(np.mean((p - y) ** 2))}


def claim_at_truth(reps: int, n: int = 1000, auc: float = 0.8, seed: int = 0
                   ) -> tuple[Rate, Rate]:
    """False passes of one claim at its true value, and Holm's family-wise error of three.

    Every repetition checks ``roc_auc >= truth`` alone, then the family ``roc_auc >= truth``,
    ``accuracy >= truth``, ``brier <= truth`` (three true nulls): an error is any pass.
    """
    truth = binormal_truth(auc)
    family = [_claim("roc_auc", truth["roc_auc"]), _claim("accuracy", truth["accuracy"]),
              _claim("brier", truth["brier"], "at_most")]
    rng = np.random.default_rng(seed)
    single = any_pass = 0
    for i in range(reps):
        y, p = binormal_sample(n, auc, rng)
        report = evaluate_scores(y, p, n_bootstrap=1000, seed=seed * 100_003 + i)
        single += check(report, family[:1]).claims[0].verdict == "pass"
        any_pass += any(c.verdict == "pass" for c in check(report, family).claims)
    return (Rate("false pass, roc_auc claim = truth", n, single, reps, "<= 5%"),
            Rate("Holm family-wise error, 3 true-null claims", n, any_pass, reps, "<= 5%"))


# --------------------------------------------------------------------------- slices
def slice_floor(reps: int, min_class_count: int, floor_below_truth: float, auc: float = 0.9,
                seed: int = 0) -> Rate:
    """Pass rate of a ROC AUC slice floor ``truth - floor_below_truth`` on the smallest slice
    the floor still tests: ``min_class_count`` positives and as many negatives."""
    m = min_class_count
    mu = binormal_mu(auc)
    floor = SliceFloor(dimension="channel", min_class_count=m)
    claim = _claim("roc_auc", auc - floor_below_truth, slice=floor)
    rng = np.random.default_rng(seed)
    passes = 0
    for i in range(reps):
        y = np.repeat([1, 0], m)
        p = 1.0 / (1.0 + np.exp(-(mu * y + rng.normal(0.0, 1.0, 2 * m))))
        report = evaluate_scores(y, p, n_bootstrap=1000, seed=seed * 100_003 + i,
                                 slices=pd.Series(["a"] * (2 * m), name="channel"))
        row = check(report, [claim]).claims[0]
        if row.verdict == "untestable":
            raise AssertionError(f"slice of {m} of each class should be testable: {row.reason}")
        passes += row.verdict == "pass"
    what = "pass" if floor_below_truth > 0 else "false pass"
    target = ">= 80%" if floor_below_truth > 0 else "<= 5%"
    return Rate(f"slice floor {what}, floor = truth - {floor_below_truth:g}, "
                f"{m} of each class", 2 * m, passes, reps, target)


# --------------------------------------------------------------------------- non-inferiority
def retrain_scores(n: int, aucs: tuple[float, float], rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, challenger and champion scores sharing the signal and ``u``, not ``e_k``."""
    y = (rng.random(n) < PREVALENCE).astype(int)
    shared = rng.normal(0.0, 1.0, n)
    out = []
    for auc in aucs:
        mu = 2.0 * _PHI.inv_cdf(auc)
        s = mu * y + shared + rng.normal(0.0, 1.0, n)
        out.append(1.0 / (1.0 + np.exp(-(s - mu / 2))))
    return y, out[0], out[1]


def _ni_claims(margin: float) -> ClaimSet:
    rule = NonInferiority(metric="roc_auc", margin=margin, power=0.8, max_margin=0.05)
    return ClaimSet(settings=GateSettings(non_inferiority={"churn": rule}),
                    claims=[_claim("roc_auc", 0.5)])


def non_inferiority(reps: int, n: int = 2000, auc: float = 0.85, margin: float = 0.01,
                    seed: int = 0) -> tuple[Rate, Rate, float]:
    """Pass rates of equal-quality retrains (power) and of challengers worse by the effective
    margin (size); also the median effective margin the power runs used."""
    claims = _ni_claims(margin)
    rng = np.random.default_rng(seed)
    y0, p0 = binormal_sample(200, 0.8, rng)
    report = evaluate_scores(y0, p0, n_bootstrap=1000)  # only the champion row is read

    def run(aucs: tuple[float, float]) -> tuple[int, list[float]]:
        passes, margins = 0, []
        for i in range(reps):
            y, challenger, champion = retrain_scores(n, aucs, rng)
            comparison = ChampionComparison(y_true=y, challenger=challenger, champion=champion,
                                            seed=seed * 100_003 + i)
            verdict = check(report, claims, comparison).champion
            passes += verdict.verdict == "pass"
            if verdict.effective_margin is not None:
                margins.append(verdict.effective_margin)
        return passes, margins

    equal, margins = run((auc, auc))
    effective = float(np.median(margins))
    worse, _ = run((auc - effective, auc))
    return (Rate("non-inferiority pass, equal-quality retrain (power)", n, equal, reps,
                 ">= 80%"),
            Rate(f"non-inferiority pass, challenger worse by the effective margin "
                 f"{effective:.4f} (size)", n, worse, reps, "<= 5%"),
            effective)


# --------------------------------------------------------------------------- calibration
CALIBRATION_CURVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "calibrated": lambda p: p,
    "small (+0.015)": lambda p: np.clip(p + 0.015, 0.0, 1.0),
    "moderate (+0.04)": lambda p: np.clip(p + 0.04, 0.0, 1.0),
    "strong (x1.6)": lambda p: np.clip(1.6 * p, 0.0, 1.0),
}


def calibration_sample(n: int, curve: str, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
    p = rng.beta(2.0, 6.0, n)
    y = (rng.random(n) < CALIBRATION_CURVES[curve](p)).astype(int)
    return y, p


@cache
def calibration_truth(curve: str, n_bins: int = 15) -> float:
    """``CE = sum_b pi_b |E[y - p | bin b]|`` with bins at the population quantiles."""
    rng = np.random.default_rng(54321)
    p = rng.beta(2.0, 6.0, 4_000_000)
    q = CALIBRATION_CURVES[curve](p)
    edges = np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
    bins = np.searchsorted(edges[1:-1], p, side="right")
    d = np.bincount(bins, q - p, n_bins) / np.bincount(bins, None, n_bins)
    return float(np.mean(np.abs(d)))


def ece_coverage(reps: int, n: int, curve: str, seed: int = 0) -> tuple[Rate, Rate, Rate]:
    """Coverage of the ``ece`` interval, of its upper bound, and false passes of
    ``ece <= CE``, against the population ``CE``."""
    truth = calibration_truth(curve)
    claim = _claim("ece", truth, "at_most")
    rng = np.random.default_rng(seed)
    both = upper = passes = 0
    for i in range(reps):
        y, p = calibration_sample(n, curve, rng)
        report = evaluate_scores(y, p, n_bootstrap=1000, seed=seed * 100_003 + i)
        lo, hi = percentile_interval(report.metrics["ece"].replicate_array(), 0.95)
        both += lo <= truth <= hi
        upper += truth <= hi
        passes += check(report, [claim]).claims[0].verdict == "pass"
    label = f"{curve}, CE {truth:.4f}"
    return (Rate(f"ece 95% interval coverage, {label}", n, both, reps, "0.93-0.97"),
            Rate(f"ece upper bound coverage, {label}", n, upper, reps, ">= 97.5%"),
            Rate(f"false pass, ece <= CE, {label}", n, passes, reps, "<= 5%"))


@cache
def rms_calibration_truth(curve: str, n_bins: int = 15) -> float:
    """``RMSCE = sqrt(sum_b pi_b d_b^2)`` with bins at the population quantiles."""
    rng = np.random.default_rng(54321)
    p = rng.beta(2.0, 6.0, 4_000_000)
    q = CALIBRATION_CURVES[curve](p)
    edges = np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
    bins = np.searchsorted(edges[1:-1], p, side="right")
    d = np.bincount(bins, q - p, n_bins) / np.bincount(bins, None, n_bins)
    return float(np.sqrt(np.mean(d**2)))


def rms_calibration_coverage(reps: int, n: int, curve: str, seed: int = 0
                             ) -> tuple[Rate, Rate, Rate]:
    """Coverage of the ``rms_calibration_error`` interval, of its upper bound, and false passes
    of ``rms_calibration_error <= RMSCE`` (the claim the gates check calibration with)."""
    truth = rms_calibration_truth(curve)
    claim = _claim("rms_calibration_error", truth, "at_most")
    rng = np.random.default_rng(seed)
    both = upper = passes = 0
    for i in range(reps):
        y, p = calibration_sample(n, curve, rng)
        report = evaluate_scores(y, p, n_bootstrap=1000, seed=seed * 100_003 + i)
        lo, hi = percentile_interval(
            report.metrics["rms_calibration_error"].replicate_array(), 0.95)
        both += lo <= truth <= hi
        upper += truth <= hi
        passes += check(report, [claim]).claims[0].verdict == "pass"
    label = f"{curve}, RMSCE {truth:.4f}"
    return (Rate(f"rms_calibration_error 95% interval coverage, {label}", n, both, reps,
                 "0.93-0.97"),
            Rate(f"rms_calibration_error upper bound coverage, {label}", n, upper, reps,
                 ">= 97.5%"),
            Rate(f"false pass, rms_calibration_error <= RMSCE, {label}", n, passes, reps,
                 "<= 5%"))


# --------------------------------------------------------------------------- the table
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=500, help="repetitions per quantity")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["calibration"], default=None,
                        help="measure only the calibration rows (ece, rms_calibration_error)")
    args = parser.parse_args()
    reps, seed = args.reps, args.seed
    start = time.perf_counter()
    rows: list[Rate] = []
    if args.only is None:
        rows.extend(claim_at_truth(reps, seed=seed))
        for m in (100, 150, 200):
            rows.append(slice_floor(reps, m, 0.05, seed=seed))
        rows.append(slice_floor(reps, DEFAULT_MIN_CLASS_COUNT, 0.0, seed=seed))
        power, size, _ = non_inferiority(reps, seed=seed)
        rows.extend([power, size])
    for n in (500, 2000):
        for curve in CALIBRATION_CURVES:
            rows.extend(rms_calibration_coverage(reps, n, curve, seed=seed))
            rows.extend(ece_coverage(reps, n, curve, seed=seed))
    print("| quantity | n | repetitions | measured | 95% Monte-Carlo interval | target |")
    print("|---|---:|---:|---:|---|---|")
    for r in rows:
        print(r.row())
    print(f"\n{time.perf_counter() - start:.0f} s, seed {seed}")


if __name__ == "__main__":
    main()
