"""One champion's health at a date, from the event data alone (no MLflow here).

Two questions, each answered point in time from the data:

* **matured-label performance**: the champion's predictions as it would have made them at
  ``as_of - horizon`` (features recomputed as of then), scored against what happened in
  ``(as_of - horizon, as_of]``, with a percentile bootstrap CI; compared with the figure the
  gate measured for the version by a one-sided test (:func:`degradation_test`);
* **drift**: each model input and the score, between the training snapshot (the version's last
  training cut-off) and ``as_of`` (:func:`~barberpro_ml.monitoring.drift.feature_drift`);
  inputs that moved while the version was trained (*trending*) or that the marketplace's own
  recorded actions moved since (*explained*, :func:`scheduled_explanations`) are reported
  without counting.

The verdict (:func:`verdict`): ``degraded`` when the matured metric is significantly below the
gate's, else ``drifted`` when the score or at least one input drifted, else ``ok``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.cutoff import to_as_of
from barberpro_ml.definitions import Definitions
from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.evaluation import EvaluationReport, evaluate_ltv, evaluate_scores
from barberpro_ml.features import (
    active_customers,
    customer_feature_specs,
    customer_features,
    training_frame,
    with_rfm_features,
)
from barberpro_ml.monitoring.drift import (
    PSI_THRESHOLD,
    Correction,
    column_drift,
    feature_drift,
    holm,
    psi,
)

__all__ = [
    "DEFAULT_MARGINS",
    "MONITORED",
    "DriftRow",
    "GateFigure",
    "MaturedPerformance",
    "ModelHealth",
    "MonitorSettings",
    "MonitoredFamily",
    "Verdict",
    "check_model",
    "degradation_test",
    "judge_performance",
    "population_features",
    "scheduled_explanations",
    "verdict",
]

Verdict = Literal["ok", "degraded", "drifted"]


@dataclass(frozen=True)
class MonitoredFamily:
    """What is monitored for one family: its label, the gate metric and its horizon."""

    family: str
    label: Literal["churn", "ltv"]
    metric: str
    """The metric reported when the version has no gate figures."""
    horizon: Callable[[Definitions], int]

    def horizon_days(self, definitions: Definitions) -> int:
        return self.horizon(definitions)


MONITORED: dict[str, MonitoredFamily] = {
    "churn": MonitoredFamily("churn", "churn", "roc_auc", lambda d: d.churn_horizon_days),
    "ltv": MonitoredFamily("ltv", "ltv", "spearman", lambda d: d.ltv_horizon_days),
}
"""The families monitored: label, main metric and horizon (from the definitions)."""


DEFAULT_MARGINS: dict[str, float] = {
    "roc_auc": 0.02, "accuracy": 0.02, "rms_calibration_error": 0.02, "ece": 0.02,
    "brier": 0.01, "spearman": 0.03, "aggregate_error": 0.05,
    "ndcg@10": 0.02, "recall@10": 0.03, "hit@10": 0.03, "mrr@10": 0.02, "coverage": 0.05,
}
"""Tolerated loss per metric before a champion counts as degraded (see :class:`MonitorSettings`).

Twice the gates' own non-inferiority margin for ROC AUC (0.01, ``claims.yaml``), and the same
order for the other metrics in their units (the recommendations' NDCG@10 and MRR@10 as ROC
AUC, recall and hit rate at 10 as Spearman; a forecast's interval coverage 0.05): a metric
measured at another cut-off moves with the season and the barbers' turnover even when
nothing is wrong, so only a loss beyond this margin, and significant, is a degradation."""


class MonitorSettings(BaseModel):
    """The monitor's statistical settings (defaults: the documented rule)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    alpha_degraded: float = Field(0.01, gt=0.0, lt=0.5)
    """One-sided level of the degradation test (Holm across the champion's metrics)."""
    margins: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MARGINS))
    """Tolerated loss per metric (:data:`DEFAULT_MARGINS`); a metric not listed: none."""
    alpha_drift: float = Field(0.05, gt=0.0, lt=0.5)
    """Level of the drift tests after the multiple-testing correction."""
    psi_threshold: float = Field(PSI_THRESHOLD, ge=0.0)
    """PSI at or above which a shift is large enough to flag."""
    trend_threshold: float = Field(0.1, ge=0.0)
    """PSI across the version's own cut-offs at or above which a column is *trending*: the
    usual upper bound of a "stable" PSI, so a column that was not stable while the version was
    fit and gated is not taken as evidence of a market change later."""
    correction: Correction = "bh"
    explain_actions: bool = True
    """Read the feature catalogue's ``moved_by``: an input moved by the marketplace's own
    actions recorded since the training snapshot (retention campaigns) is reported as
    *explained*, not counted (:func:`scheduled_explanations`). False: every input counts."""
    n_bins: int = Field(10, ge=2, le=100)
    n_bootstrap: int = Field(500, ge=50, le=100_000)
    seed: int = Field(0, ge=0)
    min_rows: int = Field(100, ge=10)
    """Fewest matured rows for a performance check (fewer: not checked, said why)."""
    turnover_anchors: int = Field(4, ge=0, le=24)
    """Recommendations champion only (:func:`~barberpro_ml.monitoring.check_recommender`):
    how many earlier spans, 30 days apart and as long as the one being monitored, measure
    what the marketplace's normal coming and going of barbers does to a frozen recommender of
    the champion's kind (refitted at each span's start). 0: not measured (the rule before)."""
    turnover_factor: float = Field(3.0, ge=1.0)
    """A recommendations drift input or score counts only when its PSI exceeds this many times
    the largest PSI normal turnover produced over the same span (``turnover_anchors``).
    Chosen on seeds 100-109 of ``bench_monitor.py`` (2: 7 of 40 quiet checks drifted,
    3: 2 of 40, with 18 of 20 exoduses still caught) and measured on fresh seeds (README)."""
    refit_check: bool = True
    """Recommendations champion only, when turnover is measured: a loss against the gate
    counts as *degraded* only when a copy refitted on the data known at the matured window's
    start also beats the champion on the same customers by more than a refit normally does
    after the same span (plus the metric's margin; a paired test, Holm across metrics, level
    ``alpha_degraded``). A window every model of the kind finds harder is not a degradation
    of the champion. False: the loss against the gate alone (the rule before). Chosen on seeds
    100-109 of ``bench_monitor.py`` (quiet checks flagged 9 of 40 -> 2 of 40, exoduses caught
    18 of 20 either way) and measured on fresh seeds 110-169 (README: 11 of 240 quiet checks)."""


class GateFigure(BaseModel):
    """What the gate measured for the version on one claim: the metric, the claim's direction
    (``at_least``: lower is worse; ``at_most``: higher is worse), the value and its test CI."""

    model_config = ConfigDict(frozen=True)
    metric: str
    direction: Literal["at_least", "at_most"] = "at_least"
    value: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95
    claim_id: str | None = None


class MaturedPerformance(BaseModel):
    """One metric on matured labels, the gate's figure, and the one-sided test between them."""

    model_config = ConfigDict(frozen=True)
    metric: str
    predicted_at: str
    """The ``as_of`` the predictions were made at (``as_of - horizon``)."""
    n: int
    value: float
    ci_low: float
    ci_high: float
    gate: GateFigure | None
    difference: float | None = None
    """``value - gate.value``."""
    margin: float | None = None
    """The tolerated loss the test allowed (:attr:`MonitorSettings.margins`)."""
    z: float | None = None
    p_value: float | None = None
    """One-sided: small when the matured metric is worse than the gate's (in the claim's
    direction)."""
    p_holm: float | None = None
    """``p_value`` after Holm's correction across the metrics of this champion."""
    degraded: bool = False
    expected_loss: float = 0.0
    """A loss the test allowed on top of the margin because it is normal at this distance
    from the gate (a recommender's turnover decay, measured in the history; 0 otherwise)."""
    refit_difference: float | None = None
    """Recommendations champion (:attr:`MonitorSettings.refit_check`): the champion's metric
    minus that of a copy refitted at ``predicted_at``, on the same matured customers."""
    refit_ci_low: float | None = None
    refit_ci_high: float | None = None
    expected_refit_gap: float = 0.0
    """How much a refit normally beats a frozen copy after the same span (the history's
    median, never negative)."""
    refit_p_value: float | None = None
    """One-sided: small when the refit beats the champion by more than ``expected_refit_gap``
    plus the margin."""
    refit_p_holm: float | None = None
    gate_degraded: bool = False
    """The test against the gate alone rejected (``degraded`` also needs the refit test when
    one was made)."""


class DriftRow(BaseModel):
    """One row of the drift table (see :func:`~barberpro_ml.monitoring.feature_drift`)."""

    model_config = ConfigDict(frozen=True)
    column: str
    kind: str
    psi: float
    test: str
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    drifted: bool
    trend_psi: float | None = None
    """PSI between the version's first training cut-off and its test cut-off."""
    trending: bool = False
    """The column was not stable across the snapshots the version was fit and gated on
    (``trend_psi >= trend_threshold``): it moves with time by construction (ages, lifetime
    totals, accumulating ratings), so its drift is reported but does not make the champion
    ``drifted``."""
    explained_by: str = ""
    """The marketplace's own recorded actions between the training snapshot and ``as_of``
    that move this column (its catalogue's ``moved_by``; e.g. "2 retention campaigns sent
    ..."), "" when none: a drift so explained is a change the marketplace made itself, reported
    but not taken as a change of the market (:func:`scheduled_explanations`)."""

    @property
    def counts(self) -> bool:
        """The column drifted, was stable during training and no recorded action explains it:
        it makes the champion ``drifted``."""
        return self.drifted and not self.trending and not self.explained_by


class ModelHealth(BaseModel):
    """A champion's health at ``as_of``: performance, drift, verdict and the reasons."""

    model_config = ConfigDict(frozen=True)
    family: str
    model_name: str | None = None
    version: str | None = None
    as_of: str
    reference_as_of: str
    n_reference: int
    n_current: int
    performance: list[MaturedPerformance]
    performance_note: str = ""
    features: list[DriftRow]
    score: DriftRow
    verdict: Verdict
    reasons: list[str]
    settings: MonitorSettings

    def drift_frame(self) -> pd.DataFrame:
        """The features' drift table as a DataFrame (largest PSI first)."""
        return pd.DataFrame([r.model_dump() for r in self.features])


def degradation_test(value: float, replicates: npt.NDArray[np.float64], gate: GateFigure,
                     margin: float = 0.0) -> tuple[float, float, float]:
    """One-sided test of "the matured metric is worse than the gate's by more than ``margin``".

    The two figures come from different rows (the gate's test cut-off and the matured one),
    so their errors are taken as independent: the matured one's standard error is the
    bootstrap replicates' standard deviation, the gate's is read off its percentile interval
    as ``(ci_high - ci_low) / (2 z_{(1+c)/2})`` (a normal approximation). Then
    ``z = (value - gate + margin) / sqrt(se^2 + se_gate^2)`` for an ``at_least`` claim
    (``(gate + margin - value) / ...`` for ``at_most``: higher is worse), and ``p = Phi(z)``:
    small when the matured value is worse than the gate's by more than the margin.

    Returns
    -------
    tuple
        ``(difference, z, p_value)``.

    Examples
    --------
    >>> g = GateFigure(metric="roc_auc", value=0.80, ci_low=0.78, ci_high=0.82)
    >>> reps = np.random.default_rng(0).normal(0.70, 0.01, 500)
    >>> d, z, p = degradation_test(0.70, reps, g)
    >>> round(d, 2), p < 1e-6
    (-0.1, True)
    >>> degradation_test(0.80, reps + 0.1, g)[2]
    0.5
    """
    diff = value - gate.value
    se_now = float(np.std(replicates, ddof=1)) if replicates.size > 1 else 0.0
    zc = float(stats.norm.ppf((1 + gate.confidence) / 2))
    se_gate = max(gate.ci_high - gate.ci_low, 0.0) / (2 * zc)
    se = float(np.hypot(se_now, se_gate))
    signed = (diff if gate.direction == "at_least" else -diff) + margin
    z = signed / se if se > 0 else float(np.sign(signed) * np.inf) if signed else 0.0
    return diff, z, float(stats.norm.cdf(z))


def population_features(data: MarketplaceData, label: Literal["churn", "ltv"],
                        as_of: pd.Timestamp, definitions: Definitions) -> pd.DataFrame:
    """The model inputs of the family's population at ``as_of`` (features + RFM columns),
    indexed by ``customer_id``: active customers for churn, everyone signed up for LTV."""
    features = customer_features(data, as_of)
    if label == "churn":
        features = features.loc[features.index.intersection(
            active_customers(data, as_of, definitions.active_window_days))]
    features.attrs["as_of"] = as_of
    return with_rfm_features(data, features)


def monitoring_date(as_of: object, data: MarketplaceData) -> pd.Timestamp:
    """``as_of`` as a cut-off, refused (InputError) when it is after the data's last event:
    no label can have matured there."""
    now = to_as_of(as_of, "as_of")
    if now > data.observation_end:
        raise InputError(f"as_of {now:%Y-%m-%d} is after the data's last event "
                         f"({data.observation_end:%Y-%m-%d}): labels cannot have matured; give "
                         "an earlier --as-of or newer data")
    return now


def _opt(v: Any) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _drift_row(row: dict[str, Any]) -> DriftRow:
    return DriftRow(column=str(row["column"]), kind=str(row["kind"]), psi=float(row["psi"]),
                    test=str(row["test"]), statistic=_opt(row["statistic"]),
                    p_value=_opt(row["p_value"]), p_adjusted=_opt(row.get("p_adjusted")),
                    drifted=bool(row["drifted"]), trend_psi=_opt(row.get("trend_psi")),
                    trending=bool(row.get("trending", False)),
                    explained_by=str(row.get("explained_by") or ""))


def scheduled_explanations(data: MarketplaceData, columns: list[str], since: object,
                           until: object) -> dict[str, str]:
    """The columns among ``columns`` that the marketplace's own actions recorded in
    ``(since, until]`` move, each with the sentence naming those actions.

    A column's catalogue entry says which table of actions moves it
    (:attr:`~barberpro_ml.features.FeatureSpec.moved_by`; today ``interventions``: retention
    campaigns move the discount and offer columns). When that table has rows sent in the
    window, a drift of the column is the marketplace's own doing -- the campaign calendar, not
    the market -- and the monitor reports it without counting it. When it has none, the column
    is judged like any other. A change that such an input carries into the model's quality is
    still caught by the matured-label check.

    Parameters
    ----------
    data
        The event data.
    columns
        The model's inputs.
    since, until
        The training snapshot and the monitoring date.

    Returns
    -------
    dict
        Column name to explanation, for the explained columns only.

    Examples
    --------
    >>> from barberpro_ml.data import SimulationConfig, simulate
    >>> data = simulate(SimulationConfig(n_customers=300, seed=1))
    >>> sorted(scheduled_explanations(data, ["discount_share", "visits_90d"],
    ...                               "2023-05-01", "2023-12-31"))
    ['discount_share']
    >>> scheduled_explanations(data, ["discount_share"], "2023-11-01", "2023-12-31")
    {}
    """
    lo, hi = to_as_of(since, "since"), to_as_of(until, "until")
    moved = {spec.name: spec.moved_by for spec in customer_feature_specs() if spec.moved_by}
    tables: dict[str, str] = {}
    for table in sorted({moved[c] for c in columns if c in moved}):
        if table != "interventions":
            continue
        frame = data.interventions
        sent = frame.loc[(frame["sent_at"] > lo) & (frame["sent_at"] <= hi)]
        if sent.empty:
            continue
        names = sorted(map(str, sent["campaign"].unique()))
        first, last = sent["sent_at"].min(), sent["sent_at"].max()
        tables[table] = (f"{len(names)} retention campaign(s) sent between {first:%Y-%m-%d} "
                         f"and {last:%Y-%m-%d} ({', '.join(names[:4])}"
                         f"{', ...' if len(names) > 4 else ''}), after the training snapshot "
                         f"{lo:%Y-%m-%d}")
    return {c: tables[moved[c]] for c in columns if c in moved and moved[c] in tables}


def verdict(performance: list[MaturedPerformance], features: list[DriftRow],
            score: DriftRow) -> tuple[Verdict, list[str]]:
    """``degraded`` (a metric's one-sided test rejected after Holm), else ``drifted`` (the
    score, or an input neither trending nor explained by recorded actions, drifted; see
    :attr:`DriftRow.counts`), else ``ok``; one reason per finding."""
    reasons: list[str] = []
    for m in performance:
        if m.degraded and m.gate is not None:
            aged = (f" less the {m.expected_loss:.4f} a frozen model of its kind lost over the "
                    "same span in the history" if m.expected_loss > 0 else "")
            refit = ("" if m.refit_difference is None else
                     f"; a copy refitted at {m.predicted_at} beats it on the same customers by "
                     f"{-m.refit_difference:.4f} [{-(m.refit_ci_high or 0.0):.4f}, "
                     f"{-(m.refit_ci_low or 0.0):.4f}], more than the {m.expected_refit_gap:.4f} "
                     f"a refit normally gains after this span (Holm p = {m.refit_p_holm:.2g}): "
                     "refit it")
            reasons.append(
                f"{m.metric} on labels matured since {m.predicted_at} is {m.value:.4f} "
                f"[{m.ci_low:.4f}, {m.ci_high:.4f}] vs {m.gate.value:.4f} at the gate{aged}, "
                f"worse by more than the {m.margin:g} tolerated (one-sided p = "
                f"{m.p_value:.2g}, Holm {m.p_holm:.2g}){refit}")
    if score.counts:
        reasons.append(f"the score distribution drifted (PSI {score.psi:.3f})")
    drifted = [r for r in features if r.counts]
    if drifted:
        top = ", ".join(f"{r.column} (PSI {r.psi:.2f})" for r in drifted[:5])
        reasons.append(f"{len(drifted)} input(s) drifted: {top}")
    if any(m.degraded for m in performance):
        return "degraded", reasons
    if score.counts or drifted:
        return "drifted", reasons
    return "ok", reasons


def _matured(predict: Callable[[pd.DataFrame], npt.NDArray[np.float64]], spec: MonitoredFamily,
             data: MarketplaceData, predicted_at: pd.Timestamp, horizon: int,
             definitions: Definitions, input_columns: list[str], gates: list[GateFigure],
             settings: MonitorSettings) -> tuple[list[MaturedPerformance], str]:
    """Every gate metric re-measured on the labels matured since ``predicted_at``."""
    frame = with_rfm_features(data, training_frame(
        data, [predicted_at], horizon, label=spec.label,
        active_window_days=definitions.active_window_days))
    label_col = "churned" if spec.label == "churn" else "ltv"
    y = frame[label_col].to_numpy(dtype=float)
    if len(y) < settings.min_rows:
        return [], (f"only {len(y)} matured rows at {predicted_at:%Y-%m-%d} (fewer than "
                    f"{settings.min_rows}): performance not checked")
    p_hat = predict(frame[input_columns])
    report: EvaluationReport
    if spec.label == "churn":
        if len(np.unique(y)) < 2:
            return [], (f"the {len(y)} matured rows at {predicted_at:%Y-%m-%d} have one label "
                        "value only: performance not checked")
        report = evaluate_scores(y, p_hat, n_bootstrap=settings.n_bootstrap,
                                 seed=settings.seed, family=spec.family)
    else:
        report = evaluate_ltv(y, {"model": p_hat}, n_bootstrap=settings.n_bootstrap,
                              seed=settings.seed, family=spec.family)
    return judge_performance(report.metrics, gates, spec.metric, predicted_at, len(y),
                             settings)


def judge_performance(metrics: Mapping[str, Any], gates: list[GateFigure],
                      default_metric: str, predicted_at: pd.Timestamp, n: int,
                      settings: MonitorSettings,
                      expected_loss: Mapping[str, float] | None = None,
                      ) -> tuple[list[MaturedPerformance], str]:
    """Every gate figure's metric, re-measured (``metrics``: name -> a
    :class:`~barberpro_ml.evaluation.MetricEstimate` with its bootstrap replicates), tested by
    :func:`degradation_test` with the metric's margin and Holm across them; without gate
    figures, ``default_metric`` reported untested. Metrics the report lacks (those that need
    a baseline model) are named in the note. ``expected_loss`` (metric -> a non-negative loss
    in the claim's bad direction) is allowed on top of the margin: the test is against the
    gate's figure moved by it."""
    wanted: list[GateFigure | None] = list(gates) if gates else [None]
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    for gate in wanted:
        metric = gate.metric if gate is not None else default_metric
        est = metrics.get(metric)
        if est is None or not np.isfinite(est.value):
            notes.append(f"{metric} cannot be re-measured from the model alone")
            continue
        row: dict[str, Any] = {"metric": metric, "predicted_at": f"{predicted_at:%Y-%m-%d}",
                               "n": n, "value": est.value, "ci_low": est.ci_low,
                               "ci_high": est.ci_high, "gate": gate}
        if gate is not None:
            margin = settings.margins.get(metric, 0.0)
            loss = max(float((expected_loss or {}).get(metric, 0.0)), 0.0)
            shift = -loss if gate.direction == "at_least" else loss
            moved = gate.model_copy(update={"value": gate.value + shift,
                                            "ci_low": gate.ci_low + shift,
                                            "ci_high": gate.ci_high + shift})
            _, z, pv = degradation_test(est.value, np.asarray(est.replicates, dtype=float),
                                        moved, margin)
            row |= {"difference": est.value - gate.value, "margin": margin, "z": z,
                    "p_value": pv, "expected_loss": loss}
        rows.append(row)
    tested = [i for i, r in enumerate(rows) if r.get("p_value") is not None]
    if tested:
        adjusted = holm([rows[i]["p_value"] for i in tested])
        for i, q in zip(tested, adjusted, strict=True):
            rows[i] |= {"p_holm": float(q), "degraded": bool(q < settings.alpha_degraded),
                        "gate_degraded": bool(q < settings.alpha_degraded)}
    if not gates:
        notes.append("no gate figure for this version: performance reported, not tested")
    return [MaturedPerformance(**r) for r in rows], "; ".join(notes)


def check_model(predict: Callable[[pd.DataFrame], npt.NDArray[np.float64]], family: str,
                data: MarketplaceData, as_of: object, *, reference_as_of: object,
                definitions: Definitions, input_columns: list[str],
                gates: list[GateFigure] | None = None, trend_from: object | None = None,
                trend_to: object | None = None, settings: MonitorSettings | None = None,
                model_name: str | None = None, version: str | None = None) -> ModelHealth:
    """A champion's health at ``as_of`` (see the module docstring).

    Parameters
    ----------
    predict
        The model: model inputs in, one score per row out (a pyfunc wrapper's ``predict``).
    family
        A key of :data:`MONITORED` (``churn``, ``ltv``).
    data
        Event data reaching at least ``as_of``.
    as_of
        The monitoring date: labels matured by then; drift measured at it.
    reference_as_of
        The training snapshot's cut-off (the version's last training cut-off).
    definitions
        The business definitions the version was trained with (horizon, activity window).
    input_columns
        The model's inputs (its feature schema), the columns checked for drift.
    gates
        The gate's figures for the version, one per unsliced claim (empty: performance is
        reported for the family's main metric, not tested).
    trend_from, trend_to
        The version's first training cut-off and its test cut-off: a column whose PSI between
        them reaches the threshold is *trending* (see :class:`DriftRow`). None: no column is.
    settings
        The statistical settings (default: :class:`MonitorSettings`).

    Returns
    -------
    ModelHealth

    Raises
    ------
    InputError
        An unknown family, or an ``as_of`` not after the reference or past the data's end.
    NotEnoughDataError
        No rows in the population at the reference or at ``as_of``.
    """
    settings = settings or MonitorSettings()
    if family not in MONITORED:
        raise InputError(f"family: monitoring covers {sorted(MONITORED)}, got {family!r}")
    spec = MONITORED[family]
    now = monitoring_date(as_of, data)
    ref_at = to_as_of(reference_as_of, "reference_as_of")
    if now <= ref_at:
        raise InputError(f"as_of {now:%Y-%m-%d} is not after the version's training snapshot "
                         f"({ref_at:%Y-%m-%d}): nothing to monitor yet")
    horizon = spec.horizon_days(definitions)

    # -- drift: the training snapshot against now
    reference = population_features(data, spec.label, ref_at, definitions)
    current = population_features(data, spec.label, now, definitions)
    for side, frame, at in (("training snapshot", reference, ref_at), ("as_of", current, now)):
        if frame.empty:
            raise NotEnoughDataError(f"no {family} population at the {side} "
                                     f"{at:%Y-%m-%d}: nothing to compare")
    absent = [c for c in input_columns if c not in current.columns]
    if absent:
        raise InputError(f"the model's inputs {absent[:5]} are not among the features "
                         f"computed from the data ({len(absent)} missing)")
    table = feature_drift(reference, current, input_columns, n_bins=settings.n_bins,
                          psi_threshold=settings.psi_threshold, alpha=settings.alpha_drift,
                          correction=settings.correction)
    s_ref = pd.Series(predict(reference[input_columns]), name="score")
    s_now = pd.Series(predict(current[input_columns]), name="score")
    kind, value, test, statistic, p = column_drift(s_ref, s_now, n_bins=settings.n_bins)
    score_row: dict[str, Any] = {
        "column": "score", "kind": kind, "psi": value, "test": test, "statistic": statistic,
        "p_value": p, "p_adjusted": p,
        "drifted": value >= settings.psi_threshold and p < settings.alpha_drift}
    if trend_from is not None and trend_to is not None:
        t0 = population_features(data, spec.label, to_as_of(trend_from, "trend_from"),
                                 definitions)
        t1 = population_features(data, spec.label, to_as_of(trend_to, "trend_to"), definitions)
        if not t0.empty and not t1.empty:
            trend = {c: psi(t0[c], t1[c], n_bins=settings.n_bins) for c in input_columns}
            table["trend_psi"] = table["column"].map(trend)
            table["trending"] = table["trend_psi"] >= settings.trend_threshold
            score_trend = psi(predict(t0[input_columns]), predict(t1[input_columns]),
                              n_bins=settings.n_bins)
            score_row |= {"trend_psi": score_trend,
                          "trending": score_trend >= settings.trend_threshold}
    if settings.explain_actions:
        explained = scheduled_explanations(data, input_columns, ref_at, now)
        table["explained_by"] = table["column"].map(explained).fillna("")
    rows = [_drift_row({str(k): v for k, v in r.items()}) for r in table.to_dict("records")]
    score = _drift_row(score_row)

    # -- matured labels: predictions at now - horizon against what happened since
    performance: list[MaturedPerformance] = []
    predicted_at = now - pd.Timedelta(days=horizon)
    start = data.bookings["scheduled_at"].min()
    if predicted_at <= start:
        note = (f"no matured labels: {predicted_at:%Y-%m-%d} (as_of - {horizon} days) is before "
                f"the data's first booking ({start:%Y-%m-%d})")
    else:
        performance, note = _matured(predict, spec, data, predicted_at, horizon, definitions,
                                     input_columns, list(gates or []), settings)
    result, reasons = verdict(performance, rows, score)
    return ModelHealth(
        family=family, model_name=model_name, version=version, as_of=f"{now:%Y-%m-%d}",
        reference_as_of=f"{ref_at:%Y-%m-%d}", n_reference=len(reference),
        n_current=len(current), performance=performance, performance_note=note,
        features=rows, score=score, verdict=result, reasons=reasons, settings=settings)
