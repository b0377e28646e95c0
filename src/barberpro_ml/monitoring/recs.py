"""The recommendations champion's health at a date: its rankings against the barbers
customers then chose, and how those choices and its own top picks moved.

A recommender has no feature columns, so the two questions of
:func:`~barberpro_ml.monitoring.check_model` take this form:

* **matured-label performance**: the frozen champion ranks the barbers for every customer
  who booked in ``(as_of - horizon, as_of]`` (their earlier barbers left out, cold customers by
  the neighborhood fallback, exactly as the gate measured it,
  :func:`~barberpro_ml.evaluation.evaluate_recommender`), scored against the barbers they
  chose; each gate figure the report can re-measure (``ndcg@10``, ``recall@10``...; the
  differences with a baseline model cannot be) is tested by
  :func:`~barberpro_ml.monitoring.degradation_test` with its margin, Holm across them;
* **drift**, between the gate's test window ``(test_cutoff, test_cutoff + horizon]`` and the
  matured window: ``booked_barber`` (which barbers the bookings went to: a barber exodus or a
  new district moves it), ``cold_customer`` (the share of bookings by customers the champion
  has never seen; the champion does not learn after its fit) and, as the score, ``top_barber``
  (the champion's first recommendation for each customer of the window). Categorical PSI and
  chi-square, Benjamini-Hochberg across the inputs. ``cold_customer`` grows with the time
  since the fit by construction, so it is always *trending* (reported, not counted).

**Normal turnover is measured, not flagged** (:attr:`MonitorSettings.turnover_anchors`,
``turnover_factor``). Barbers join and leave all the time, so a frozen recommender ages even
in a quiet marketplace: which barbers are booked moves, and its NDCG falls. How much is
normal is read from the marketplace's own history: at each of up to ``turnover_anchors``
earlier spans as long as the one being monitored (``as_of - horizon - reference``), ending 0,
30, 60... days before the gate's window, a fresh copy of the champion's kind is fitted at the
span's start and measured at both ends. Then

* the performance test allows, on top of the margin, the median loss of those copies over
  the span (``expected_loss``, never negative): the champion is *degraded* only when it lost
  significantly more than a recommender of its kind normally loses in that time;
* ``booked_barber`` and the score ``top_barber`` count as drifted only when their PSI is
  above ``turnover_factor`` times the largest PSI of the same span in the history (their
  ``trend_psi``); below it they are reported as *trending*.

**A loss is the champion's only when a refit would not have it too**
(:attr:`MonitorSettings.refit_check`). The gate measured one window; the matured window can be
harder for every model of the kind (another mix of customers and barbers), and a frozen
model's own loss cannot be told from that by comparing the two windows. So a copy of the
champion's kind is refitted on the data known at the matured window's start and scored on the
same customers: the paired bootstrap difference champion - refit is tested against how much a
refit normally gains after the same span (the history's median, measured at each span's end)
plus the metric's margin. A metric is *degraded* only when both tests reject: below the gate
beyond normal turnover, and behind a refit beyond normal. The note says when the first
rejected and the second did not ("harder for any model of its kind").

Spans that would start before there are ``min_rows`` customers to measure on are skipped;
with none left (a young marketplace, or ``turnover_anchors=0``) the rule is the one before:
the gate's figures as they are and every PSI counted. A barber exodus moves the booked barbers
several times more than a year of normal turnover (README, "Monitoring champions").

The verdict is :func:`~barberpro_ml.monitoring.verdict`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone

from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.cutoff import to_as_of
from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.evaluation import evaluate_recommender
from barberpro_ml.models.recs import booking_interactions_split, customer_neighborhoods
from barberpro_ml.monitoring.checks import (
    GateFigure,
    MaturedPerformance,
    ModelHealth,
    MonitorSettings,
    _drift_row,
    judge_performance,
    monitoring_date,
    verdict,
)
from barberpro_ml.monitoring.drift import adjust_p_values, column_drift, holm, psi

__all__ = ["RECS_DRIFT_INPUTS", "check_recommender"]

RECS_DRIFT_INPUTS = ("booked_barber", "cold_customer")
"""The recommender's drift inputs (the score row is ``top_barber``)."""


def _window(data: MarketplaceData, start: pd.Timestamp, horizon_days: int
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions known at ``start``, bookings chosen in ``(start, start + horizon]``)."""
    return booking_interactions_split(data, start, horizon_days)


def _inputs(recommender: Any, test: pd.DataFrame) -> pd.DataFrame:
    seen = recommender.user_index_.get_indexer(pd.Index(test["user_id"].array)) >= 0
    return pd.DataFrame({"booked_barber": test["item_id"].astype(str).to_numpy(),
                         "cold_customer": np.where(seen, "seen at fit", "unseen")})


def _top_barber(recommender: Any, test: pd.DataFrame, train: pd.DataFrame,
                groups: pd.Series) -> pd.Series:
    users = pd.unique(test["user_id"].to_numpy())
    top = recommender.recommend(users, k=1, exclude=train[["user_id", "item_id"]],
                                user_groups=groups)
    return pd.Series(top["item_id"].astype(str).to_numpy(), name="top_barber")


@dataclass
class _Turnover:
    """What normal turnover did over spans as long as the monitored one (see the module)."""

    anchors: list[str] = field(default_factory=list)
    losses: dict[str, list[float]] = field(default_factory=dict)
    booked_psi: list[float] = field(default_factory=list)
    top_psi: list[float] = field(default_factory=list)
    refit_gains: dict[str, list[float]] = field(default_factory=dict)
    """Per metric: a copy refitted at the span's end minus the span-old copy, on the same
    customers of the window after the span's end."""

    def expected_loss(self) -> dict[str, float]:
        return {m: max(float(np.median(v)), 0.0) for m, v in self.losses.items() if v}

    def expected_refit_gap(self) -> dict[str, float]:
        return {m: max(float(np.median(v)), 0.0) for m, v in self.refit_gains.items() if v}

    def note(self) -> str:
        if not self.anchors:
            return ""
        losses = ", ".join(f"{m} {v:.4f}" for m, v in self.expected_loss().items())
        gains = ", ".join(f"{m} {v:.4f}" for m, v in self.expected_refit_gap().items())
        return (f"normal turnover over the same span, measured at {len(self.anchors)} earlier "
                f"span(s) from {self.anchors[-1]} to {self.anchors[0]}: median loss {losses}"
                + (f"; median gain of a refit at the span's end {gains}" if gains else "")
                + "; "
                f"largest booked_barber PSI {max(self.booked_psi):.3f}, top_barber "
                f"{max(self.top_psi):.3f}")


def _turnover(recommender: Any, data: MarketplaceData, ref: pd.Timestamp, span: pd.Timedelta,
              horizon_days: int, groups: pd.Series, ks: list[int],
              settings: MonitorSettings) -> _Turnover:
    out = _Turnover()
    for k in range(settings.turnover_anchors):
        later = ref - pd.Timedelta(days=30 * k)
        start = later - span
        train_then, test_then = _window(data, start, horizon_days)
        train_later, test_later = _window(data, later, horizon_days)
        if (test_then["user_id"].nunique() < settings.min_rows
                or train_then["user_id"].nunique() < settings.min_rows):
            break
        try:
            copy = clone(recommender).fit(train_then, user_groups=groups)
            then = evaluate_recommender(copy, train_then, test_then, k=ks, n_bootstrap=0,
                                        baseline=None, user_groups=groups, family="recs",
                                        keep_replicates=False)
            refit = (clone(recommender).fit(train_later, user_groups=groups)
                     if settings.refit_check else None)
            after = evaluate_recommender(copy, train_later, test_later, k=ks, n_bootstrap=0,
                                         baseline=refit, user_groups=groups, family="recs",
                                         keep_replicates=False)
        except (NotEnoughDataError, ValueError):
            break
        for metric, est in then.metrics.items():
            if metric in after.metrics and np.isfinite(est.value):
                out.losses.setdefault(metric, []).append(
                    float(est.value - after.metrics[metric].value))
            if metric in after.differences and np.isfinite(after.differences[metric].value):
                out.refit_gains.setdefault(metric, []).append(
                    -float(after.differences[metric].value))
        out.booked_psi.append(psi(test_then["item_id"].astype(str),
                                  test_later["item_id"].astype(str)))
        out.top_psi.append(psi(_top_barber(copy, test_then, train_then, groups),
                               _top_barber(copy, test_later, train_later, groups)))
        out.anchors.append(f"{start:%Y-%m-%d}")
    return out


def _against_refit(performance: list[MaturedPerformance], differences: Mapping[str, Any],
                   expected_gap: Mapping[str, float], settings: MonitorSettings
                   ) -> tuple[list[MaturedPerformance], str]:
    """Each gate-tested metric against a copy refitted at the matured window's start.

    ``differences`` are the paired bootstrap differences champion - refit on the matured
    customers (:func:`~barberpro_ml.evaluation.evaluate_recommender` with the refit as
    baseline). One-sided ``z = (difference + expected_gap + margin) / se``, ``p = Phi(z)``
    (small when the refit wins by more than it normally does after the span, plus the
    metric's margin), Holm across the metrics; a metric is *degraded* when the test against
    the gate rejected and this one does too."""
    tested = [i for i, m in enumerate(performance)
              if m.p_value is not None and m.metric in differences]
    if not tested:
        return performance, ""
    updates: dict[int, dict[str, Any]] = {}
    for i in tested:
        m = performance[i]
        diff = differences[m.metric]
        reps = np.asarray(diff.replicates, dtype=float)
        se = float(np.std(reps, ddof=1)) if reps.size > 1 else 0.0
        gap = max(float(expected_gap.get(m.metric, 0.0)), 0.0)
        signed = float(diff.value) + gap + float(m.margin or 0.0)
        z = signed / se if se > 0 else float(np.sign(signed) * np.inf) if signed else 0.0
        updates[i] = {"refit_difference": float(diff.value), "refit_ci_low": float(diff.ci_low),
                      "refit_ci_high": float(diff.ci_high), "expected_refit_gap": gap,
                      "refit_p_value": float(stats.norm.cdf(z))}
    adjusted = holm([updates[i]["refit_p_value"] for i in tested])
    out = list(performance)
    excused: list[str] = []
    for i, q in zip(tested, adjusted, strict=True):
        m = performance[i]
        stale = bool(q < settings.alpha_degraded)
        updates[i] |= {"refit_p_holm": float(q), "degraded": m.gate_degraded and stale}
        out[i] = m.model_copy(update=updates[i])
        if m.gate_degraded and not stale:
            u = updates[i]
            excused.append(
                f"{m.metric} is below the gate's figure beyond normal turnover, but a copy "
                f"refitted at {m.predicted_at} does no better on the same customers than a "
                f"refit normally does after this span (champion - refit "
                f"{u['refit_difference']:+.4f} [{u['refit_ci_low']:+.4f}, "
                f"{u['refit_ci_high']:+.4f}], normal gain {u['expected_refit_gap']:.4f}, "
                f"Holm p = {q:.2g}): the matured window is harder for any model of its kind, "
                "not counted as degraded")
    return out, "; ".join(excused)


def _row(column: str, reference: pd.Series, current: pd.Series, n_bins: int
         ) -> dict[str, Any]:
    kind, value, test, statistic, p = column_drift(reference, current, n_bins=n_bins)
    return {"column": column, "kind": kind, "psi": value, "test": test,
            "statistic": statistic, "p_value": p}


def check_recommender(recommender: Any, data: MarketplaceData, as_of: object, *,
                      reference_as_of: object, horizon_days: int,
                      gates: list[GateFigure] | None = None,
                      settings: MonitorSettings | None = None, model_name: str | None = None,
                      version: str | None = None) -> ModelHealth:
    """The recommendations champion's health at ``as_of`` (see the module docstring).

    Parameters
    ----------
    recommender
        The fitted recommender (:class:`~barberpro_ml.models.recs.BaseRecommender`; a
        registered one's ``RecommenderModel.recommender``).
    data
        Event data reaching at least ``as_of``.
    as_of
        The monitoring date: the bookings of ``(as_of - horizon_days, as_of]`` are the
        matured labels.
    reference_as_of
        The gate's test cut-off (the run's ``test_cutoff``): the champion was fit on the
        bookings before it and judged on the window after it.
    horizon_days
        The recommendations' horizon (the run's ``horizon_days``).
    gates
        The gate's figures for the version (empty: ``ndcg@10`` reported, not tested).
    settings
        The statistical settings (default: :class:`MonitorSettings`).

    Returns
    -------
    ModelHealth

    Raises
    ------
    InputError
        ``as_of`` after the data, or less than ``horizon_days`` after the reference (nothing
        has matured since the gate).
    NotEnoughDataError
        No booking in the gate's window or in the matured one.

    Examples
    --------
    >>> health = check_recommender(model.recommender, data, "2025-06-30",       # doctest: +SKIP
    ...                            reference_as_of="2024-10-02", horizon_days=90)
    >>> health.verdict, [m.metric for m in health.performance]                  # doctest: +SKIP
    ('ok', ['ndcg@10'])
    """
    settings = settings or MonitorSettings()
    now = monitoring_date(as_of, data)
    ref = to_as_of(reference_as_of, "reference_as_of")
    predicted_at = now - pd.Timedelta(days=horizon_days)
    if predicted_at < ref:
        raise InputError(
            f"as_of {now:%Y-%m-%d} is less than the {horizon_days}-day horizon after the "
            f"recommendations champion's test cut-off ({ref:%Y-%m-%d}): no window has matured "
            f"since the gate; monitor from {ref + pd.Timedelta(days=horizon_days):%Y-%m-%d}")
    groups = customer_neighborhoods(data)
    gate_train, gate_test = _window(data, ref, horizon_days)
    train, test = _window(data, predicted_at, horizon_days)
    for side, frame, at in (("the gate's test window", gate_test, ref),
                            ("the matured window", test, predicted_at)):
        if frame.empty:
            raise NotEnoughDataError(f"bookings: no completed booking in {side} "
                                     f"({at:%Y-%m-%d} + {horizon_days} days): nothing to compare")

    # -- matured labels
    ks = sorted({10, *(int(g.metric.split("@")[1]) for g in gates or []
                       if "@" in g.metric and g.metric.split("@")[1].isdigit())})
    performance: list[MaturedPerformance] = []
    # at the first matured date the windows coincide: no span to measure turnover over
    history = (_turnover(recommender, data, ref, predicted_at - ref, horizon_days, groups, ks,
                         settings) if predicted_at > ref else _Turnover())
    # the same window seen by a copy refitted at predicted_at: is the loss the champion's?
    refit, refit_failed = None, ""
    if history.anchors and settings.refit_check:
        try:
            refit = clone(recommender).fit(train, user_groups=groups)
        except (NotEnoughDataError, ValueError) as exc:
            refit_failed = (f"no copy could be refitted at {predicted_at:%Y-%m-%d} ({exc}), so a "
                            "loss against the gate is judged without the refit comparison")
    try:
        report = evaluate_recommender(recommender, train, test, k=ks,
                                      n_bootstrap=settings.n_bootstrap, seed=settings.seed,
                                      baseline=refit, user_groups=groups, family="recs")
        n_users = report.n
        if n_users < settings.min_rows:
            note = (f"only {n_users} customers booked a new barber in the matured window "
                    f"(fewer than {settings.min_rows}): performance not checked")
        else:
            performance, note = judge_performance(report.metrics, list(gates or []),
                                                  "ndcg@10", predicted_at, n_users, settings,
                                                  expected_loss=history.expected_loss())
            if refit is not None:
                performance, refit_note = _against_refit(performance, report.differences,
                                                         history.expected_refit_gap(),
                                                         settings)
                note = "; ".join(n for n in (note, refit_note) if n)
    except NotEnoughDataError as exc:
        note = f"performance not checked: {exc}"
    note = "; ".join(n for n in (note, refit_failed) if n)

    # -- drift: the gate's window against the matured one
    reference, current = _inputs(recommender, gate_test), _inputs(recommender, test)
    rows = [_row(c, reference[c], current[c], settings.n_bins) for c in RECS_DRIFT_INPUTS]
    adjusted = adjust_p_values(np.array([r["p_value"] for r in rows], dtype=float),
                               settings.correction)
    for r, q in zip(rows, adjusted, strict=True):
        r |= {"p_adjusted": float(q),
              "drifted": bool(r["psi"] >= settings.psi_threshold and q < settings.alpha_drift)}
    top_ref = _top_barber(recommender, gate_test, gate_train, groups)
    top_now = _top_barber(recommender, test, train, groups)
    score = _row("top_barber", top_ref, top_now, settings.n_bins)
    score |= {"p_adjusted": score["p_value"],
              "drifted": bool(score["psi"] >= settings.psi_threshold
                              and score["p_value"] < settings.alpha_drift)}
    # customers unseen at fit accumulate with time by construction (the champion does not
    # learn after its fit): reported, never counted -- the matured check shows what they cost
    for r in rows:
        r["trending"] = r["column"] == "cold_customer"
    # which barbers are booked, and the champion's own picks, move with normal turnover too:
    # counted only beyond turnover_factor x the largest move of the same span in the history
    if history.anchors:
        envelope = {"booked_barber": max(history.booked_psi)}
        for r in rows:
            if r["column"] in envelope:
                r["trend_psi"] = envelope[r["column"]]
                r["trending"] = r["psi"] <= settings.turnover_factor * envelope[r["column"]]
        score["trend_psi"] = max(history.top_psi)
        score["trending"] = score["psi"] <= settings.turnover_factor * max(history.top_psi)
        note = "; ".join(n for n in (note, history.note()) if n)
    elif settings.turnover_anchors > 0 and predicted_at > ref:
        note = "; ".join(n for n in (note, (
            f"normal turnover not measured: no earlier span of {(predicted_at - ref).days} "
            f"days with {settings.min_rows} customers to fit and measure on, so the gate's "
            "figures and every PSI are taken as they are")) if n)
    features = sorted((_drift_row(r) for r in rows), key=lambda r: -r.psi)
    score_row = _drift_row(score)
    result, reasons = verdict(performance, features, score_row)
    return ModelHealth(
        family="recs", model_name=model_name, version=version, as_of=f"{now:%Y-%m-%d}",
        reference_as_of=f"{ref:%Y-%m-%d}", n_reference=len(gate_test), n_current=len(test),
        performance=performance, performance_note=note, features=features, score=score_row,
        verdict=result, reasons=reasons, settings=settings)

