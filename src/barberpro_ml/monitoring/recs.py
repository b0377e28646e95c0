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
  since the fit by construction, so it is always *trending* (reported, not counted); the other
  two have no trend to discount: the champion is frozen, so a change in which barbers are
  chosen, or in its own picks, is a reason to refit whatever caused it.

The verdict is :func:`~barberpro_ml.monitoring.verdict`'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

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
    verdict,
)
from barberpro_ml.monitoring.drift import adjust_p_values, column_drift

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
    now = to_as_of(as_of, "as_of")
    ref = to_as_of(reference_as_of, "reference_as_of")
    if now > data.observation_end:
        raise InputError(f"as_of {now:%Y-%m-%d} is after the data's last event "
                         f"({data.observation_end:%Y-%m-%d}): give an earlier --as-of or newer "
                         "data")
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
    try:
        report = evaluate_recommender(recommender, train, test, k=ks,
                                      n_bootstrap=settings.n_bootstrap, seed=settings.seed,
                                      baseline=None, user_groups=groups, family="recs")
        n_users = report.n
        if n_users < settings.min_rows:
            note = (f"only {n_users} customers booked a new barber in the matured window "
                    f"(fewer than {settings.min_rows}): performance not checked")
        else:
            performance, note = judge_performance(report.metrics, list(gates or []),
                                                  "ndcg@10", predicted_at, n_users, settings)
    except NotEnoughDataError as exc:
        note = f"performance not checked: {exc}"

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
    features = sorted((_drift_row(r) for r in rows), key=lambda r: -r.psi)
    score_row = _drift_row(score)
    result, reasons = verdict(performance, features, score_row)
    return ModelHealth(
        family="recs", model_name=model_name, version=version, as_of=f"{now:%Y-%m-%d}",
        reference_as_of=f"{ref:%Y-%m-%d}", n_reference=len(gate_test), n_current=len(test),
        performance=performance, performance_note=note, features=features, score=score_row,
        verdict=result, reasons=reasons, settings=settings)

