"""Check an evaluation report against claims, and a challenger against the champion.

Decision rules
--------------
Every level comes from the claims file (``settings``), never from the report: the gate
recomputes each interval from the estimate's bootstrap replicates at ``settings.confidence``
(default 0.95; a report's own ``ci_low``/``ci_high``/``confidence`` are not read), and refuses
a ``ci`` claim, or the champion comparison, whose estimate has fewer finite replicates than
``settings.min_bootstrap`` (at least 1,000).

``ci`` claims (the default) pass only when the evidence supports them: the bound of the
two-sided ``confidence`` percentile interval [4]_ on the right side clears the claimed value
(lower bound for ``at_least``, upper bound for ``at_most``) **and**, when several claims are
checked together, the claim survives Holm's step-down correction of the one-sided bootstrap
p-values [1]_.

The p-value of a claim "metric >= c" is the share of bootstrap replicates on the wrong side of
``c`` with the usual +1 correction, ``p = (1 + #{theta*_b <= c}) / (B + 1)`` [2]_ (mirror image for
``at_most``). For one claim, ``p < alpha`` is the same statement as "the one-sided percentile bound
at level ``1 - alpha`` clears ``c``" (up to the +1 and interpolation), which the two-sided 95 %
interval's lower bound (a one-sided 97.5 % bound) already implies at ``alpha = 0.05``; with ``m``
claims Holm compares the smallest p-value with ``alpha / m``, the next with ``alpha / (m - 1)``
..., so adding claims can only make each verdict harder to reach, never easier. Requiring both
rules keeps the displayed interval and the verdict consistent: a claim whose interval does not
clear the claimed value never passes.

Ties with the threshold count against a claim (a replicate equal to ``c`` is no evidence that
the metric is above it), with one exception that cannot be reached by accident: a claim that is
not ``strict`` (``>= c``, the default) whose estimate **and** every one of its replicates are
finite and exactly ``c``. The metric is then not random, it is ``c`` and meets ``>= c`` with
equality (a "keep prices" recommendation changes revenue by exactly 0 in every replicate, and
the no-loss floor "revenue change >= 0" holds for it), so its p-value is ``1 / (B + 1)``
(:func:`bootstrap_p_value`) and the verdict's reason says "a point mass on the threshold". A
``strict: true`` claim (``> c``) still fails on such evidence, and one replicate off the
threshold, a NaN among them, or an estimate that is not exactly ``c`` restores the usual count.

For the overall gate (every claim must pass) no correction would be needed (an
intersection-union test); Holm is there because each claim's verdict is also published on its
own (a tag on the model version), and a set of published "supported" verdicts should be wrong
with probability at most ``alpha`` altogether.

``point`` claims compare the point estimate with the claim and are labelled "weaker: point
estimate only"; they are not part of the Holm family. ``consistent`` claims pass when the
gate's interval contains the claimed value (a calibration target, such as the coverage of 89%
prediction intervals, is wrong in either direction); they are not part of the Holm family
either, since a correction would widen the interval and make them easier to pass.

Slice floors test a claim on every slice of one dimension that has at least
``min_class_count`` positives and as many negatives (rows, for slices without classes); a
smaller slice is a row with the verdict ``untestable``, which blocks promotion only when the
claim says ``untestable: block``. The default count is measured, see
:data:`barberpro_ml.gates.claims.DEFAULT_MIN_CLASS_COUNT`.

Champion comparison (non-inferiority [3]_) is a paired bootstrap on the same test rows
(:func:`barberpro_ml.evaluation.bootstrap.paired_bootstrap`): both models' metric is recomputed
on each resample. It is a one-sided test at ``a = (1 - confidence) / 2`` (the lower bound of
the two-sided ``confidence`` interval, the convention of CONSORT for non-inferiority [5]_):
the challenger passes when that bound of (challenger - champion) is above ``-M`` (upper bound
below ``+M`` for lower-is-better metrics), with the effective margin

    ``M = max(margin, (z_{1-a} + z_power) x SE)``,

``SE`` the standard deviation of the paired replicates. The second term is the difference
the test set can detect with probability ``power`` (the usual sample-size formula of a
one-sided z-test [6]_): when the file's margin is smaller than what ``n`` rows can resolve, a
fixed margin would refuse most equal-quality retrains (64% at n = 2,000 with margin 0.01 ROC
AUC), so the margin widens to the detectable difference, which makes the pass rate of a
challenger whose true difference is 0 about ``power``, while one whose true difference is
``-M`` passes with probability about ``a`` (size). The rule is honest only while ``M`` stays
small: an effective margin above the file's ``max_margin`` refuses promotion ("the test set is
too small to tell"). ``ChampionVerdict`` records ``margin``, ``standard_error``,
``detectable_difference`` and ``effective_margin``, and its reason says how ``M`` was
obtained. Measured size and power: ``README.md``, "Gate statistics, measured".

References
----------
.. [1] Holm, S. (1979). A simple sequentially rejective multiple test procedure.
   *Scandinavian Journal of Statistics* 6(2), 65-70.
.. [2] Davison, A. C. & Hinkley, D. V. (1997). *Bootstrap Methods and their Application*,
   ch. 4.4 (Monte Carlo p-values, ``(1 + #) / (B + 1)``). Cambridge University Press.
.. [3] Wellek, S. (2010). *Testing Statistical Hypotheses of Equivalence and Noninferiority*,
   2nd ed. CRC Press.
.. [4] Efron, B. & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*, ch. 13.
   Chapman & Hall.
.. [5] Piaggio, G. et al. (2012). Reporting of noninferiority and equivalence randomized
   trials: extension of the CONSORT 2010 statement. *JAMA* 308(24), 2594-2604.
.. [6] Chow, S.-C., Shao, J. & Wang, H. (2008). *Sample Size Calculations in Clinical
   Research*, 2nd ed., ch. 3 (non-inferiority: ``n`` such that ``margin = (z_{1-a} +
   z_{1-b}) SE``). Chapman & Hall/CRC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, computed_field

from barberpro_ml.evaluation.bootstrap import (
    PairedDifference,
    paired_bootstrap,
    percentile_interval,
)
from barberpro_ml.evaluation.metrics import HIGHER_IS_BETTER
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate, SliceReport
from barberpro_ml.gates.catalog import family_catalog
from barberpro_ml.gates.claims import (
    Claim,
    ClaimSet,
    Direction,
    GateSettings,
    NonInferiority,
    Policy,
)

Verdict = Literal["pass", "fail", "not tested", "untestable"]

#: Metrics whose claims are unreadable without the majority-class baseline beside them.
ACCURACY_METRICS = frozenset({"accuracy", "accuracy_at_0_5"})
_WEAKER = "weaker: point estimate only"


# --------------------------------------------------------------------------- result records
class ClaimVerdict(BaseModel):
    """The verdict on one claim (or on one slice of a slice floor)."""

    model_config = ConfigDict(frozen=True)

    claim_id: str
    family: str
    metric: str
    claimed: float
    direction: Direction
    policy: Policy
    source: str
    blocking: bool = True
    untestable: Literal["report", "block"] = "report"
    slice: str | None = None
    n: int | None = None
    class_count: int | None = None
    observed: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    baseline: float | None = None
    baseline_ci_low: float | None = None
    baseline_ci_high: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    verdict: Verdict
    reason: str

    @property
    def passed(self) -> bool:
        """False for a failed row, and for an untestable one whose claim says ``block``."""
        return self.verdict != "fail" and not (
            self.verdict == "untestable" and self.untestable == "block")

    @property
    def check_id(self) -> str:
        """The claim id, with ``[dimension=level]`` for a slice row."""
        return f"{self.claim_id}[{self.slice}]" if self.slice else self.claim_id


class ChampionVerdict(BaseModel):
    """The paired comparison of the challenger with the current champion."""

    model_config = ConfigDict(frozen=True)

    metric: str | None = None
    margin: float | None = None
    effective_margin: float | None = None
    detectable_difference: float | None = None
    standard_error: float | None = None
    power: float | None = None
    max_margin: float | None = None
    higher_is_better: bool | None = None
    champion_version: str | None = None
    n: int | None = None
    challenger_value: float | None = None
    champion_value: float | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    p_value: float | None = None
    n_bootstrap: int | None = None
    verdict: Verdict
    reason: str

    @property
    def passed(self) -> bool:
        """True when the challenger is not significantly worse, or when there is no champion."""
        return self.verdict != "fail"


class GateResult(BaseModel):
    """Everything the gate decided, serialisable to JSON (``model_dump_json``).

    ``passed`` is True when no blocking claim failed and the challenger is not significantly
    worse than the champion. Non-blocking claims (``blocking: false`` in the claims file,
    e.g. the seed's marketing numbers) get the same verdicts, tags and place in Holm's
    family, but do not decide promotion. A slice too small to test is a row with the verdict
    ``untestable``, shown and tagged like any other; it refuses promotion only when its claim
    says ``untestable: block``. ``table()`` gives one row per claim (plus one for the
    champion comparison); ``to_text()`` and the rich rendering (``rich.print(result)``) show
    the same table.
    """

    model_config = ConfigDict(frozen=True)

    family: str
    alpha: float
    correction: Literal["holm", "none"]
    report_n: int
    claims: list[ClaimVerdict]
    champion: ChampionVerdict
    confidence: float = 0.95
    claims_path: str | None = None
    checked_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        """True when every blocking claim passed (an ``untestable`` slice only when its claim
        does not block on it) and the champion check passed."""
        return all(c.passed for c in self.claims if c.blocking) and self.champion.passed

    def failures(self) -> list[str]:
        """One line per failed check: ``id: reason``."""
        lines = [f"{c.check_id}{'' if c.blocking else ' (not blocking)'}: {c.reason}"
                 for c in self.claims if not c.passed and c.blocking]
        lines += [f"{c.check_id} (not blocking): {c.reason}"
                  for c in self.claims if not c.passed and not c.blocking]
        if not self.champion.passed:
            lines.append(f"champion: {self.champion.reason}")
        return lines

    def table(self) -> pd.DataFrame:
        """One row per claim (slice floors: per tested slice) and one for the champion."""
        rows: list[dict[str, Any]] = [
            {
                "check": c.check_id, "metric": c.metric, "slice": c.slice, "n": c.n,
                "observed": c.observed, "ci_low": c.ci_low, "ci_high": c.ci_high,
                "claimed": c.claimed, "direction": c.direction, "policy": c.policy,
                "baseline": c.baseline, "p_value": c.p_value, "p_holm": c.p_holm,
                "verdict": c.verdict, "blocking": c.blocking, "reason": c.reason,
            }
            for c in self.claims
        ]
        ch = self.champion
        margin = ch.effective_margin if ch.effective_margin is not None else ch.margin
        rows.append({
            "check": "champion", "metric": ch.metric, "slice": None, "n": ch.n,
            "observed": ch.difference, "ci_low": ch.ci_low, "ci_high": ch.ci_high,
            "claimed": None if margin is None else
            (-margin if ch.higher_is_better is not False else margin),
            "direction": None if ch.metric is None else
            ("at_least" if ch.higher_is_better is not False else "at_most"),
            "policy": "paired", "baseline": ch.champion_value, "p_value": ch.p_value,
            "p_holm": None, "verdict": ch.verdict, "blocking": True, "reason": ch.reason,
        })
        frame = pd.DataFrame(rows)
        float_cols = ["observed", "ci_low", "ci_high", "claimed", "baseline", "p_value", "p_holm"]
        frame[float_cols] = frame[float_cols].astype("float64")
        frame["n"] = frame["n"].astype("Int64")
        return frame

    def to_text(self) -> str:
        """A plain-text verdict table followed by the reasons (for logs and CI output)."""
        head = (f"gate for {self.family!r}: {'PASSED' if self.passed else 'FAILED'} "
                f"(alpha {self.alpha:g}, {self.correction} correction, "
                f"{_pct(self.confidence)} intervals, {self.report_n:,} rows)")
        lines = [head, ""]
        table = self.table()
        shown = table.drop(columns=["reason", "slice", "direction"]).copy()
        shown.insert(2, "ci", [_fmt_ci(lo, hi) for lo, hi in zip(table["ci_low"],
                                                                    table["ci_high"], strict=True)])
        shown["claimed"] = [_fmt_claim(v, d, p) for v, d, p in zip(
            table["claimed"], table["direction"], table["policy"], strict=True)]
        shown = shown.drop(columns=["ci_low", "ci_high"])
        for col in ["observed", "baseline"]:
            shown[col] = [_fmt(v) for v in shown[col]]
        for col in ["p_value", "p_holm"]:
            shown[col] = [_fmt(v, ".4f") for v in shown[col]]
        shown["n"] = [("" if pd.isna(v) else f"{int(v):,}") for v in shown["n"]]
        lines.append(shown.to_string(index=False))
        lines.append("")
        lines.extend(f"- {check}: {reason}" for check, reason in
                     zip(table["check"], table["reason"], strict=True))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __rich__(self) -> Any:
        """A rich renderable: the verdict table with coloured verdicts."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        title = (f"gate for {self.family!r}: "
                 f"{'[green]PASSED[/]' if self.passed else '[bold red]FAILED[/]'}")
        table = Table(title=title, caption=f"alpha {self.alpha:g}, {self.correction} correction, "
                                           f"{self.report_n:,} rows", show_lines=False)
        for col, justify in [("check", "left"), ("observed", "right"), ("CI", "right"),
                             ("claimed", "right"), ("baseline", "right"), ("p (Holm)", "right"),
                             ("verdict", "left"), ("reason", "left")]:
            table.add_column(col, justify=justify,  # type: ignore[arg-type]
                             overflow="fold", ratio=3 if col == "reason" else None)
        colours = {"pass": "green", "fail": "bold red", "not tested": "yellow",
                   "untestable": "yellow"}
        frame = self.table()
        for row in frame.itertuples(index=False):
            table.add_row(
                str(row.check), _fmt(row.observed), _fmt_ci(row.ci_low, row.ci_high),
                _fmt_claim(row.claimed, row.direction, row.policy), _fmt(row.baseline),
                _fmt(row.p_holm if not _isnan(row.p_holm) else row.p_value, ".4f"),
                Text(str(row.verdict) + ("" if row.blocking else " (not blocking)"),
                     style=colours[str(row.verdict)]), str(row.reason),
            )
        return Group(table)


def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "" if _isnan(v) else format(float(v), spec)


def _fmt_ci(lo: Any, hi: Any) -> str:
    return "" if _isnan(lo) or _isnan(hi) else f"[{float(lo):.3f}, {float(hi):.3f}]"


def _fmt_claim(v: Any, direction: Any, policy: Any = None) -> str:
    if _isnan(v):
        return ""
    if policy == "consistent":
        return f"in CI {float(v):.3f}"
    return f"{'>=' if direction == 'at_least' else '<='} {float(v):.3f}"


# --------------------------------------------------------------------------- champion input
def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(p - y)))


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - y) ** 2)))


def _mean(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(p))


#: Paired metrics besides the classification ones of :mod:`barberpro_ml.evaluation.metrics`:
#: name -> (metric(y, prediction), higher_is_better). ``mean`` takes per-row metric values as
#: "scores" (NDCG of each user, say) and ignores ``y``.
OTHER_PAIRED_METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], bool]] = {
    "mae": (_mae, False),
    "rmse": (_rmse, False),
    "mean": (_mean, True),
}


def paired_metric_names() -> list[str]:
    """Every metric the champion comparison can use."""
    return sorted([*HIGHER_IS_BETTER, *OTHER_PAIRED_METRICS])


@dataclass(frozen=True)
class ChampionComparison:
    """Both models' scores on the same held-out rows, for the paired non-inferiority check.

    Parameters
    ----------
    y_true
        Targets of the test rows (0/1 for classification metrics; values for ``mae``/``rmse``;
        ignored for ``mean``).
    challenger, champion
        Scores of each model on the same rows in the same order: positive-class probabilities
        for the classification metrics (``roc_auc``, ``brier``, ``accuracy`` ...), predictions
        for ``mae``/``rmse``, or per-row metric values (NDCG of each user...) for ``mean``.
    metric, margin
        Override the claims file's ``settings.non_inferiority[family]``.
    champion_version
        The registry version of the champion, for the verdict text.
    n_bootstrap, seed
        Paired bootstrap settings. The level of the test is the claims file's
        ``settings.confidence`` (there is no per-comparison override that could weaken it), and
        fewer finite replicates than ``settings.min_bootstrap`` fail the comparison.
    challenger_threshold, champion_threshold
        Decision thresholds for threshold metrics (``accuracy``, ``f1``...).
    """

    y_true: np.ndarray
    challenger: np.ndarray
    champion: np.ndarray
    metric: str | None = None
    margin: float | None = None
    champion_version: str | None = None
    n_bootstrap: int = 1000
    seed: int = 0
    challenger_threshold: float = 0.5
    champion_threshold: float = 0.5

    def __post_init__(self) -> None:
        arrays = {}
        for name in ("y_true", "challenger", "champion"):
            arr = np.asarray(getattr(self, name), dtype=float).ravel()
            object.__setattr__(self, name, arr)
            arrays[name] = arr
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"ChampionComparison: y_true, challenger and champion must have the "
                             f"same length (one entry per test row); got {lengths}")
        if lengths["y_true"] < 2:
            raise ValueError("ChampionComparison: need at least 2 test rows")
        for name in ("challenger", "champion"):
            bad = np.flatnonzero(~np.isfinite(arrays[name]))
            if bad.size:
                raise ValueError(f"ChampionComparison: {bad.size} non-finite {name} score(s), "
                                 f"e.g. at rows {bad[:5].tolist()}")
        if self.metric is not None and self.metric not in paired_metric_names():
            raise ValueError(f"ChampionComparison: no paired bootstrap for metric "
                             f"{self.metric!r}; choose one of {paired_metric_names()}")
        if self.margin is not None and not (self.margin >= 0 and math.isfinite(self.margin)):
            raise ValueError(f"ChampionComparison: margin must be finite and >= 0, "
                             f"got {self.margin}")
        if self.n_bootstrap < 100:
            raise ValueError(f"ChampionComparison: n_bootstrap must be >= 100, "
                             f"got {self.n_bootstrap}")

    def difference(self, metric: str, confidence: float = 0.95) -> PairedDifference:
        """``metric(challenger) - metric(champion)`` with paired-bootstrap replicates."""
        if metric in OTHER_PAIRED_METRICS:
            fn, higher = OTHER_PAIRED_METRICS[metric]
            return paired_bootstrap(self.y_true, self.challenger, self.champion, fn,
                                    self.n_bootstrap, self.seed, confidence=confidence,
                                    higher_is_better=higher)
        return paired_bootstrap(self.y_true, self.challenger, self.champion, metric,
                                self.n_bootstrap, self.seed, confidence=confidence,
                                threshold_a=self.challenger_threshold,
                                threshold_b=self.champion_threshold)


# --------------------------------------------------------------------------- the gate
def bootstrap_p_value(replicates: np.ndarray, claimed: float, direction: Direction, *,
                      strict: bool = True) -> float:
    """One-sided bootstrap p-value of "the metric is on the claimed side of ``claimed``".

    ``(1 + #{replicates on the wrong side}) / (B + 1)``; the wrong side of an ``at_least`` claim
    is ``<= claimed``: a replicate exactly on the threshold is no evidence for the claim. Never 0,
    so it survives any multiple-testing correction honestly.

    The one exception is a **point mass on the threshold** under a non-strict claim
    (``strict=False``, the claim is ``metric >= claimed``): when every replicate is finite and
    exactly ``claimed`` the metric is not random at all and meets ``>=`` with equality (a "keep
    prices" recommendation changes revenue by exactly 0 in every replicate), so no replicate is
    on the wrong side and ``p = 1 / (B + 1)``, the smallest value ``B`` replicates can give.
    Nothing else changes: one replicate off the threshold (even by 1e-12, even on the right
    side), or a non-finite one, and ties count as the wrong side again, so a mix of zeros and
    small losses fails a ">= 0" floor, and a strict claim (``> claimed``) never passes on ties.

    Examples
    --------
    >>> bootstrap_p_value(np.array([0.90, 0.91, 0.95, 0.96]), 0.94, "at_least")
    0.6
    >>> zeros = np.zeros(999)
    >>> bootstrap_p_value(zeros, 0.0, "at_least", strict=False)
    0.001
    >>> bootstrap_p_value(zeros, 0.0, "at_least")
    1.0
    >>> bootstrap_p_value(np.append(zeros[:-1], -1e-9), 0.0, "at_least", strict=False)
    1.0
    """
    raw = np.asarray(replicates, dtype=float)
    r = raw[np.isfinite(raw)]
    if not strict and r.size == raw.size and r.size and np.all(r == claimed):
        return float(1 / (r.size + 1))
    wrong = np.count_nonzero(r <= claimed) if direction == "at_least" \
        else np.count_nonzero(r >= claimed)
    return float((1 + wrong) / (r.size + 1))


def holm_adjust(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values [1]_ (reject hypothesis i when adjusted p_i < alpha).

    Examples
    --------
    >>> holm_adjust([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty(m)
    out[order] = adjusted
    return out


@dataclass
class _Pending:
    """A row whose final verdict waits for Holm."""

    claim: Claim
    fields: dict[str, Any]
    p_value: float
    bound_ok: bool | None  # None: failed before testing (missing metric, no replicates...)
    failure: str | None = None
    note: str = ""  # the baseline beside the claim, appended to the reason
    n_replicates: int = 0


def check(
    report: EvaluationReport,
    claims: ClaimSet | Sequence[Claim],
    champion: ChampionComparison | None = None,
    *,
    alpha: float | None = None,
    correction: Literal["holm", "none"] = "holm",
) -> GateResult:
    """Decide, claim by claim, whether the evaluation report supports the claims.

    Parameters
    ----------
    report
        Held-out evaluation of the candidate (metrics with CIs and bootstrap replicates).
    claims
        A :class:`ClaimSet` (from :func:`load_claims`) or a list of claims. Claims of other
        families than ``report.family`` are ignored; having none left is an error.
    champion
        The challenger's and the champion's scores on the same test rows, or ``None`` when no
        champion exists yet (that row then says so and passes).
    alpha
        Family-wise error rate; default: the claims file's ``settings.alpha``, else 0.05.
    correction
        ``holm`` (default) or ``none`` (each claim at level ``alpha`` on its own; for
        comparison only).

    Returns
    -------
    GateResult
        One verdict per claim (per slice for slice floors, ``untestable`` where a slice is too
        small), the champion verdict, and ``passed``.

    Notes
    -----
    See the module docstring for the decision rules and how the Holm-adjusted bootstrap
    p-value relates to the confidence-bound rule. A metric missing from the report (or NaN)
    fails its claim with a reason instead of raising.

    Examples
    --------
    >>> result = check(report, load_claims("configs/claims.yaml", "churn"))  # doctest: +SKIP
    >>> result.passed, result.table()[["check", "verdict"]]                  # doctest: +SKIP
    """
    claim_set = claims if isinstance(claims, ClaimSet) else None
    all_claims = list(claims)
    if not all_claims:
        raise ValueError("check: no claims given; a gate with nothing to check would pass "
                         "vacuously")
    mine = [c for c in all_claims if c.family == report.family]
    if not mine:
        raise ValueError(f"check: none of the {len(all_claims)} claims is about family "
                         f"{report.family!r} (families: {sorted({c.family for c in all_claims})})")
    if alpha is None:
        alpha = claim_set.settings.alpha if claim_set is not None else 0.05
    if not 0 < alpha < 1:
        raise ValueError(f"check: alpha must be in (0, 1), got {alpha}")
    settings = claim_set.settings if claim_set is not None else GateSettings()

    pending: list[_Pending] = []
    point_rows: list[ClaimVerdict] = []
    for claim in mine:
        for target in _targets(report, claim):
            if isinstance(target, ClaimVerdict):
                point_rows.append(target)
                continue
            estimate, fields = target
            row = _evaluate(report, claim, estimate, fields, settings)
            if isinstance(row, ClaimVerdict):
                point_rows.append(row)
            else:
                pending.append(row)

    p = np.array([r.p_value for r in pending])
    p_adj = holm_adjust(p) if correction == "holm" else p
    verdicts: list[ClaimVerdict] = []
    for row, p_raw, p_h in zip(pending, p, p_adj, strict=True):
        verdicts.append(_finish(row, float(p_raw), float(p_h), alpha, correction, m=len(p)))
    # Keep the file's claim order in the result, whatever order the rows were decided in.
    order = {c.id: i for i, c in enumerate(mine)}
    rows = sorted(verdicts + point_rows, key=lambda v: (order[v.claim_id], v.slice or ""))
    rows.append(overlap_verdict(report, claim_set.settings if claim_set else None))

    return GateResult(
        family=report.family, alpha=alpha, correction=correction, report_n=report.n,
        claims=rows, champion=_champion_verdict(report.family, champion, claim_set, settings),
        confidence=settings.confidence, claims_path=claim_set.path if claim_set else None,
    )


def overlap_verdict(report: EvaluationReport,
                         settings: GateSettings | None = None) -> ClaimVerdict:
    """The blocking ``test-overlap`` row: are the evaluated rows held out from training?

    Fails when the report's ``overlap.excess`` (share of test rows repeating training rows,
    beyond the within-training duplicate rate) is above ``settings.max_test_overlap``, when a
    training label period reaches past the test cut-off, or when the report has no overlap
    record (the evaluation was not given ``train=``). A segmentation report is scored on its
    training customers by design (the stability of ids on the same customers), so the row is
    ``not tested`` there and says so.

    Examples
    --------
    >>> from barberpro_ml.evaluation import check_overlap
    >>> train = pd.DataFrame({"visits": range(500), "spend": np.arange(500) * 2.0})
    >>> report = EvaluationReport(family="churn", kind="classification", n=100, metrics={},
    ...                           overlap=check_overlap(train, train.iloc[:100]))
    >>> row = overlap_verdict(report)
    >>> row.claim_id, row.verdict, row.observed
    ('test-overlap', 'fail', 1.0)
    >>> print(row.reason)  # doctest: +NORMALIZE_WHITESPACE
    refused, the test rows are not held out: 100 of 100 test rows (100.0%) repeat training
    rows; 0.0% expected by chance: an excess of 100.0% over the tolerated 1.0%
    (settings.max_test_overlap)
    """
    limit = (settings or GateSettings()).max_test_overlap
    overlap = report.overlap
    fields: dict[str, Any] = {
        "claim_id": "test-overlap", "family": report.family, "metric": "test_overlap_excess",
        "claimed": limit, "direction": "at_most", "policy": "point", "blocking": True,
        "source": "settings.max_test_overlap: evaluated rows must not repeat training rows "
                  "beyond chance (barberpro_ml.evaluation.check_overlap)"}
    if overlap is not None:
        fields |= {"n": overlap.n_test, "observed": overlap.excess,
                   "baseline": overlap.chance_rate}
    entry = family_catalog(report.family)
    exempt = entry.no_holdout if entry is not None else None
    if report.kind == "segmentation" and exempt == "segmentation":
        recorded = f"; recorded: {overlap.describe()}" if overlap is not None else ""
        return ClaimVerdict(**fields, verdict="not tested", reason=(
            "a segmentation is scored on the customers it was fitted on by design (stability "
            "of ids on the same customers), so there are no held-out rows" + recorded))
    if report.kind == "causal" and exempt == "causal" and overlap is None:
        return ClaimVerdict(**fields, verdict="not tested", reason=(
            "a causal estimate has no held-out rows: double machine learning scores every "
            "unit with nuisance models fitted on the other folds (cross-fitting by provider), "
            "and the metric's interval comes from the estimator's sampling distribution"))
    if overlap is None:
        return ClaimVerdict(**fields, verdict="fail", reason=(
            "the evaluation did not compare the test rows with the training rows, so a test "
            "set copied from the training set would pass unseen; pass the training frame "
            "(train=) to the evaluate_* call"))
    if overlap.label_window_overlaps_test:
        return ClaimVerdict(**fields, verdict="fail", reason=f"refused: {overlap.reason}")
    numbers = (f"{overlap.describe()}: an excess of {overlap.excess:.1%} "
               f"{{}} the tolerated {limit:.1%} (settings.max_test_overlap)")
    if overlap.excess > limit:
        return ClaimVerdict(**fields, verdict="fail", reason=(
            "refused, the test rows are not held out: " + numbers.format("over")))
    return ClaimVerdict(**fields, verdict="pass", reason=numbers.format("within"))


def _targets(report: EvaluationReport, claim: Claim
             ) -> list[ClaimVerdict | tuple[MetricEstimate | None, dict[str, Any]]]:
    """What a claim is checked on: the whole report, or each slice (untestable ones decided)."""
    base = {"claim_id": claim.id, "family": claim.family, "metric": claim.metric,
            "claimed": claim.claimed, "direction": claim.direction, "policy": claim.policy,
            "source": claim.source, "blocking": claim.blocking, "untestable": claim.untestable}
    if claim.slice is None:
        return [(report.metrics.get(claim.metric), {**base, "n": report.n})]
    floor = claim.slice
    slices = [s for s in report.slices if s.dimension == floor.dimension]
    if not slices:
        dims = sorted({s.dimension for s in report.slices})
        return [ClaimVerdict(**base, verdict="fail", reason=(
            f"the report has no slices by {floor.dimension!r} (slice dimensions in the report: "
            f"{dims or 'none'}); the floor cannot be checked"))]
    out: list[ClaimVerdict | tuple[MetricEstimate | None, dict[str, Any]]] = []
    for s in slices:
        count, what = _class_count(s)
        fields = {**base, "slice": f"{s.dimension}={s.level}", "n": s.n, "class_count": count}
        if count < floor.min_class_count:
            consequence = ("refuses promotion (untestable: block)" if claim.untestable == "block"
                           else "reported, does not block (untestable: report)")
            out.append(ClaimVerdict(**fields, verdict="untestable", reason=(
                f"untestable on {s.dimension}={s.level}: {what}, fewer than the floor's "
                f"min_class_count {floor.min_class_count:,}, so a {claim.metric} floor 0.05 "
                f"below the truth would pass less than 80% of the time; {consequence}")))
        else:
            out.append((s.metrics.get(claim.metric), fields))
    return out


def _class_count(s: SliceReport) -> tuple[int, str]:
    """The count a slice's testability rests on, and its description for the reason."""
    if s.positives is None:
        return s.n, f"{s.n:,} rows"
    negatives = s.n - s.positives
    return min(s.positives, negatives), f"{s.positives:,} positives and {negatives:,} negatives"


def _evaluate(report: EvaluationReport, claim: Claim, est: MetricEstimate | None,
              fields: dict[str, Any], settings: GateSettings) -> _Pending | ClaimVerdict:
    """Observed value, the gate's own interval, baseline and p-value of one row.

    The interval is recomputed from the replicates at ``settings.confidence``; the report's
    ``ci_low``/``ci_high``/``confidence`` are never read (a report made at 90% cannot weaken
    a file that asks for 95%). Point rows are decided here.
    """
    where = f" on {fields['slice']}" if fields.get("slice") else ""
    if est is None:
        available = sorted(report.metrics) if not fields.get("slice") else "see report.slices"
        return _fail_early(claim, fields, f"metric {claim.metric!r} is missing from the "
                                          f"{report.family!r} report{where} (available: "
                                          f"{available})")
    raw_replicates = est.replicate_array()
    replicates = raw_replicates[np.isfinite(raw_replicates)]
    low, high = percentile_interval(replicates, settings.confidence) if replicates.size \
        else (float("nan"), float("nan"))
    fields |= {"observed": _finite_or_none(est.value), "ci_low": _finite_or_none(low),
               "ci_high": _finite_or_none(high), "confidence": settings.confidence}
    baseline_note, baseline_missing = _baseline(report, claim, fields)
    if fields["observed"] is None:
        return _fail_early(claim, fields, f"{claim.metric} is undefined{where} (NaN: e.g. a "
                                          f"single class in the evaluation rows)" + baseline_note)
    if baseline_missing:
        return _fail_early(claim, fields, f"an {claim.metric} claim cannot be read without the "
                                          "majority-class baseline ('nobody churns'), and the "
                                          "report has no baselines['accuracy']")
    # the point-mass exception (bootstrap_p_value) needs the estimate on the threshold too
    on_threshold = not claim.strict and fields["observed"] == claim.claimed
    p_value = bootstrap_p_value(raw_replicates, claim.claimed, claim.direction,
                                strict=not on_threshold) if replicates.size else None

    if claim.policy == "consistent":
        return _consistent(claim, fields, replicates, settings, where, baseline_note)

    if claim.policy == "point":
        observed = fields["observed"]
        ok = _clears(observed, claim)
        op = _op(claim)
        shown = (f"the {_pct(settings.confidence)} CI {_fmt_ci(low, high)} is shown but not "
                 "used") if replicates.size else "no interval"
        reason = (f"{_WEAKER}: observed {observed:.4f} {'' if ok else 'not '}{op} claimed "
                  f"{claim.claimed:g}{where}; {shown}") + baseline_note
        return ClaimVerdict(**fields, p_value=p_value, verdict="pass" if ok else "fail",
                            reason=reason)

    if p_value is None:
        return _fail_early(claim, fields, f"no bootstrap replicates for {claim.metric}{where}; "
                                          "re-run the evaluation with n_bootstrap >= "
                                          f"{settings.min_bootstrap:,} (a ci claim needs them "
                                          "for its interval and p-value)" + baseline_note)
    if replicates.size < settings.min_bootstrap:
        return _fail_early(claim, fields, (
            f"refused: only {replicates.size:,} finite bootstrap replicates of {claim.metric}"
            f"{where}, fewer than the claims file's settings.min_bootstrap "
            f"{settings.min_bootstrap:,} (tail quantiles of fewer replicates are too noisy to "
            f"decide on); re-run the evaluation with n_bootstrap >= {settings.min_bootstrap:,}")
            + baseline_note)
    bound = low if claim.direction == "at_least" else high
    point_mass = p_value <= 1 / (replicates.size + 1) and bool(np.all(replicates == claim.claimed))
    if point_mass:
        baseline_note = (f"; every one of the {replicates.size:,} replicates and the estimate "
                         f"are exactly {claim.claimed:g}: a point mass on the threshold, which "
                         f"meets the non-strict {claim.describe()}") + baseline_note
    return _Pending(claim, fields, p_value, _clears(bound, claim), note=baseline_note,
                    n_replicates=int(replicates.size))


def _clears(value: float, claim: Claim) -> bool:
    """Whether ``value`` is on the claimed side of ``claim.claimed`` (``strict`` respected)."""
    if claim.direction == "at_least":
        return value > claim.claimed if claim.strict else value >= claim.claimed
    return value < claim.claimed if claim.strict else value <= claim.claimed


def _op(claim: Claim) -> str:
    if claim.direction == "at_least":
        return ">" if claim.strict else ">="
    return "<" if claim.strict else "<="


def _consistent(claim: Claim, fields: dict[str, Any], replicates: np.ndarray,
                settings: GateSettings, where: str, baseline_note: str) -> ClaimVerdict:
    """A ``consistent`` claim: the claimed value must lie inside the gate's interval.

    Decided on its own, outside Holm's family: it passes when the evidence does *not* reject
    the claimed value, so a correction that widens intervals would make it easier to pass,
    not harder. Its two-sided bootstrap p-value is shown.
    """
    if replicates.size < settings.min_bootstrap:
        return ClaimVerdict(**fields, verdict="fail", reason=(
            f"refused: only {replicates.size:,} finite bootstrap replicates of {claim.metric}"
            f"{where}, fewer than the claims file's settings.min_bootstrap "
            f"{settings.min_bootstrap:,}") + baseline_note)
    low, high = fields["ci_low"], fields["ci_high"]
    below = float((1 + np.count_nonzero(replicates <= claim.claimed)) / (replicates.size + 1))
    above = float((1 + np.count_nonzero(replicates >= claim.claimed)) / (replicates.size + 1))
    p_two = min(1.0, 2 * min(below, above))
    conf = _pct(settings.confidence)
    ci = _fmt_ci(low, high)
    if low <= claim.claimed <= high:
        return ClaimVerdict(**fields, p_value=p_two, verdict="pass", reason=(
            f"consistent{where}: {claim.metric} {fields['observed']:.4f}, {conf} CI {ci} "
            f"contains the claimed {claim.claimed:g} (two-sided p = {p_two:.4f})")
            + baseline_note)
    side = "below" if high < claim.claimed else "above"
    return ClaimVerdict(**fields, p_value=p_two, verdict="fail", reason=(
        f"not consistent{where}: {claim.metric} {fields['observed']:.4f}, {conf} CI {ci} lies "
        f"entirely {side} the claimed {claim.claimed:g} (two-sided p = {p_two:.4f})")
        + baseline_note)


def _fail_early(claim: Claim, fields: dict[str, Any], reason: str) -> _Pending | ClaimVerdict:
    if claim.policy in ("point", "consistent"):
        return ClaimVerdict(**fields, verdict="fail", reason=reason)
    # An untestable ci claim still counts in Holm's family (as p = 1), so the others are not
    # corrected for fewer hypotheses than were posed.
    return _Pending(claim, fields, 1.0, None, failure=reason)


def _finish(row: _Pending, p_raw: float, p_adj: float, alpha: float,
            correction: str, *, m: int) -> ClaimVerdict:
    fields, note, claim = row.fields, row.note, row.claim
    if row.bound_ok is None:
        return ClaimVerdict(**fields, verdict="fail", reason=row.failure or "not testable")
    where = f" on {fields['slice']}" if fields.get("slice") else ""
    side = "lower" if claim.direction == "at_least" else "upper"
    bound = fields["ci_low"] if claim.direction == "at_least" else fields["ci_high"]
    conf = _pct(fields["confidence"])
    ci = _fmt_ci(fields["ci_low"], fields["ci_high"])
    adj = "Holm-adjusted " if correction == "holm" else ""
    p_text = f"{adj}p = {p_adj:.4f}" + (f" (unadjusted {p_raw:.4f})" if correction == "holm"
                                         else "")
    if not row.bound_ok:
        verdict: Verdict = "fail"
        reason = (f"not supported{where}: {claim.metric} {fields['observed']:.4f}, {conf} CI "
                  f"{ci}; the {side} bound {bound:.4f} does not clear the claimed "
                  f"{claim.claimed:g}")
    elif p_adj >= alpha:
        verdict = "fail"
        reason = (f"not supported after {correction} correction{where}: the {conf} CI {side} "
                  f"bound {bound:.4f} clears {claim.claimed:g} but {p_text} >= alpha {alpha:g}")
        if p_raw <= 1.0 / (row.n_replicates + 1) + 1e-12:
            # Every replicate cleared the claim: the p-value is at its floor 1/(B+1), and the
            # verdict is limited by the number of replicates, not by the evidence.
            reason += (f"; all {row.n_replicates:,} bootstrap replicates clear the claim, so "
                       f"this is the smallest p-value they can give: re-run the evaluation with "
                       f"n_bootstrap >= {math.ceil(m / alpha):,} (1,000 or more recommended)")
    else:
        verdict = "pass"
        reason = (f"supported{where}: {claim.metric} {fields['observed']:.4f}, {conf} CI {ci}; "
                  f"{side} bound {bound:.4f} clears {claim.claimed:g}; {p_text} < alpha "
                  f"{alpha:g}")
    return ClaimVerdict(**fields, p_value=p_raw,
                        p_holm=p_adj if correction == "holm" else None,
                        verdict=verdict, reason=reason + note)


def _baseline(report: EvaluationReport, claim: Claim, fields: dict[str, Any]
              ) -> tuple[str, bool]:
    """Put the trivial baseline beside the claim; (text for the reason, required-but-missing)."""
    base = report.baselines.get(claim.metric)
    if base is None and claim.metric in ACCURACY_METRICS:
        base = report.baselines.get("accuracy")
    if base is None:
        return "", claim.metric in ACCURACY_METRICS
    fields |= {"baseline": _finite_or_none(base.value),
               "baseline_ci_low": _finite_or_none(base.ci_low),
               "baseline_ci_high": _finite_or_none(base.ci_high)}
    if claim.metric not in ACCURACY_METRICS:
        return f"; baseline {base.value:.4f}", False
    text = (f"; majority-class baseline ('nobody churns') {base.value:.4f} "
            f"{_fmt_ci(base.ci_low, base.ci_high)}")
    if claim.claimed <= base.value:
        text += " - the claimed value does not even beat the baseline, so passing it says " \
                "nothing about the model"
    elif fields.get("ci_low") is not None and fields["ci_low"] <= base.value:
        text += " - the model's accuracy is not clearly above the baseline"
    return text, False


def _champion_verdict(family: str, comparison: ChampionComparison | None,
                      claim_set: ClaimSet | None, settings: GateSettings) -> ChampionVerdict:
    setting = claim_set.settings.non_inferiority.get(family) if claim_set else None
    if comparison is None:
        reason = ("no champion yet: nothing to compare with, so this check passes" if setting
                  else f"no paired comparison with the champion for family {family!r} (none "
                       "under settings.non_inferiority in the claims file); this check passes")
        return ChampionVerdict(
            metric=setting.metric if setting else None,
            margin=setting.margin if setting else None, verdict="pass", reason=reason)
    metric = comparison.metric or (setting.metric if setting else None)
    margin = comparison.margin if comparison.margin is not None else \
        (setting.margin if setting else None)
    if metric is None or margin is None:
        raise ValueError(f"check: the champion comparison needs a metric and a margin; set them "
                         f"on ChampionComparison or under settings.non_inferiority.{family} in "
                         "the claims file")
    if metric not in paired_metric_names():
        raise ValueError(f"check: no paired bootstrap for metric {metric!r}; choose one of "
                         f"{paired_metric_names()}")
    rule = setting or NonInferiority(metric=metric, margin=margin)
    diff = comparison.difference(metric, settings.confidence)
    higher = diff.higher_is_better
    d = diff.replicate_array()
    d = d[np.isfinite(d)]
    a, b = diff.value_a, diff.value_b
    n_rows = len(comparison.y_true)
    common: dict[str, Any] = {
        "metric": metric, "margin": margin, "power": rule.power, "max_margin": rule.max_margin,
        "higher_is_better": higher, "champion_version": comparison.champion_version,
        "n": n_rows, "challenger_value": _finite_or_none(a),
        "champion_value": _finite_or_none(b), "difference": _finite_or_none(a - b),
        "confidence": settings.confidence, "n_bootstrap": comparison.n_bootstrap}
    champ = f"champion v{comparison.champion_version}" if comparison.champion_version \
        else "champion"
    if not (math.isfinite(a) and math.isfinite(b)) or d.size < 0.5 * comparison.n_bootstrap:
        return ChampionVerdict(**common, verdict="fail", reason=(
            f"{metric} is undefined on most resamples of the {n_rows:,} test rows (one class "
            "only?); cannot show the challenger is not worse"))
    if d.size < settings.min_bootstrap:
        return ChampionVerdict(**common, verdict="fail", reason=(
            f"refused: only {d.size:,} finite paired bootstrap replicates, fewer than the claims "
            f"file's settings.min_bootstrap {settings.min_bootstrap:,}; re-run the comparison "
            f"with n_bootstrap >= {settings.min_bootstrap:,}"))
    test = non_inferiority_margin(d, margin, settings.confidence, rule.power)
    effective, detectable, se = test.effective_margin, test.detectable_difference, test.se
    lo, hi = percentile_interval(d, settings.confidence)
    common |= {"effective_margin": effective, "detectable_difference": detectable,
               "standard_error": se, "ci_low": lo, "ci_high": hi}
    how = (f"effective margin {effective:.4f} = max(file margin {margin:g}, detectable "
           f"difference {detectable:.4f} = (z {test.z_level:.3f} + z {test.z_power:.3f}) x SE "
           f"{se:.4f})")
    conf = _pct(settings.confidence)
    numbers = (f"challenger {metric} {a:.4f} vs {champ} {b:.4f}, difference {a - b:+.4f}, "
               f"{conf} paired-bootstrap CI [{lo:+.4f}, {hi:+.4f}]")
    if rule.max_margin is not None and effective > rule.max_margin:
        return ChampionVerdict(**common, verdict="fail", reason=(
            f"promotion refused: the {n_rows:,} test rows are too few to tell the challenger "
            f"from the {champ}: {how} exceeds max_margin {rule.max_margin:g}; {numbers}; "
            "evaluate on more rows"))
    if higher:
        wrong = np.count_nonzero(d <= -effective)
        ok = lo > -effective
        verdict_rule = f"lower bound {lo:+.4f} {'>' if ok else '<='} -{effective:.4f}"
    else:
        wrong = np.count_nonzero(d >= effective)
        ok = hi < effective
        verdict_rule = f"upper bound {hi:+.4f} {'<' if ok else '>='} +{effective:.4f}"
    p = float((1 + wrong) / (d.size + 1))
    if ok:
        reason = (f"not worse than the {champ} beyond the {how}: {numbers}; {verdict_rule}")
    else:
        reason = (f"promotion refused: the challenger may be worse than the {champ} by more "
                  f"than the {how}: {numbers}; {verdict_rule}")
    return ChampionVerdict(**common, p_value=p, verdict="pass" if ok else "fail", reason=reason)


@dataclass(frozen=True)
class NonInferiorityMargin:
    """The margin a non-inferiority test decides with, and how it was obtained."""

    effective_margin: float
    detectable_difference: float
    se: float
    z_level: float
    z_power: float


def non_inferiority_margin(replicates: np.ndarray, margin: float, confidence: float,
                           power: float) -> NonInferiorityMargin:
    """``max(margin, (z_{1-a} + z_power) x SE)`` from paired-bootstrap replicates.

    Parameters
    ----------
    replicates
        Finite bootstrap replicates of the paired difference (challenger - champion).
    margin
        The claims file's margin.
    confidence
        The two-sided level; the test is one-sided at ``a = (1 - confidence) / 2``.
    power
        Probability of passing an equal-quality challenger that the margin must give.

    Returns
    -------
    NonInferiorityMargin

    Examples
    --------
    >>> m = non_inferiority_margin(np.random.default_rng(0).normal(0, 0.01, 4000), 0.01,
    ...                            0.95, 0.8)
    >>> round(m.z_level + m.z_power, 3), round(m.effective_margin, 3)
    (2.802, 0.028)
    """
    se = float(np.std(replicates, ddof=1))
    z_level = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    z_power = NormalDist().inv_cdf(power)
    detectable = (z_level + z_power) * se
    return NonInferiorityMargin(effective_margin=max(margin, detectable),
                                detectable_difference=detectable, se=se, z_level=z_level,
                                z_power=z_power)


def _finite_or_none(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _pct(confidence: float | None) -> str:
    return f"{100 * (confidence or 0.95):g}%"
