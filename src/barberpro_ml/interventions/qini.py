"""How well a ranking finds the customers an offer works on: gain curves, Qini and AUUC.

Customers are ranked by a score (an uplift model's ``tau``, a churn risk, the true effect);
for the top share ``phi`` of the ranking, on randomised data, the **cumulative gain** is

    G(phi) = phi * (retained_treated(phi) - retained_control(phi)),

the difference of the arms' retention rates among the top ``phi`` (each arm's rate within its
own rows, so unequal arms are fine), times ``phi``: the customers kept per targeted customer
of the whole population by treating the top ``phi`` only [1]_. ``G(0) = 0`` and ``G(1)`` is the
average effect. Random targeting follows the straight line ``phi G(1)``.

- **AUUC**: the area under ``G`` over ``phi`` in [0, 1] (trapezoids on a grid).
- **Qini coefficient**: the area between ``G`` and the random line, ``AUUC - G(1) / 2`` [2]_;
  0 for a useless ranking, larger for a better one.

On simulated data the **true gain** of a ranking uses each customer's true effect instead of
the realised outcomes, ``G*(phi) = sum over the top phi of tau_i / n``; no ranking beats the
true effects' own ordering on it (a sum of the largest values), which gives the oracle's
ceiling.

Intervals are Poisson-bootstrap percentile intervals [3]_: each row gets a weight drawn
``Poisson(1)`` per resample, the same weights for every score, so differences between scores
(``qini[model] - qini[baseline]``) are paired.

References
----------
.. [1] Gutierrez, P. & Gérardy, J.-Y. (2017). Causal inference and uplift modelling: a review
   of the literature. *PMLR* 67, 1-13.
.. [2] Radcliffe, N. J. (2007). Using control groups to target on predicted lift: building and
   assessing uplift models. *Direct Marketing Analytics Journal* 1, 14-21.
.. [3] Hanley, J. A. & MacGibbon, B. (2006). Creating non-parametric bootstrap samples using
   Poisson frequencies. *Computer Methods and Programs in Biomedicine* 83(1), 57-62.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from barberpro_ml.errors import InputError
from barberpro_ml.evaluation.report import MetricEstimate

__all__ = ["GRID_POINTS", "gain_curve", "qini_report", "true_gain_curve"]

FloatArray = npt.NDArray[np.float64]

GRID_POINTS: Final = 101
"""Shares targeted on which curves are computed: 0, 0.01, ..., 1."""


def _order(score: FloatArray, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    # ties (a constant score) broken at random, never by row order
    return np.lexsort((rng.random(score.size), -score))


def _curves(order: npt.NDArray[np.intp], t: FloatArray, retained: FloatArray,
            weights: FloatArray, grid: FloatArray) -> FloatArray:
    """G on the grid for each row of ``weights`` (shape (B, n)) -> (B, len(grid))."""
    w = weights[:, order]
    tt, rr = t[order], retained[order]
    n_t = np.cumsum(w * tt, axis=1)
    n_c = np.cumsum(w * (1 - tt), axis=1)
    r_t = np.cumsum(w * tt * rr, axis=1)
    r_c = np.cumsum(w * (1 - tt) * rr, axis=1)
    total = np.cumsum(w, axis=1)
    n = total[:, -1:]
    # the top share phi: the first rows whose weight reaches phi of the total
    out = np.zeros((w.shape[0], grid.size))
    for g, phi in enumerate(grid):
        if phi == 0:
            continue
        k = np.minimum((total < phi * n).sum(axis=1), w.shape[1] - 1)
        rows = np.arange(w.shape[0])
        nt, nc = n_t[rows, k], n_c[rows, k]
        with np.errstate(invalid="ignore", divide="ignore"):
            lift = r_t[rows, k] / nt - r_c[rows, k] / nc
        out[:, g] = np.where((nt > 0) & (nc > 0), lift, 0.0) * total[rows, k] / n[:, 0]
    return out


def _check(score: npt.ArrayLike, n: int, name: str) -> FloatArray:
    array = np.asarray(score, dtype=np.float64).ravel()
    if array.shape != (n,):
        raise InputError(f"scores[{name!r}]: expected {n} values, got {array.size}")
    if not np.isfinite(array).all():
        raise InputError(f"scores[{name!r}]: {int((~np.isfinite(array)).sum())} value(s) not "
                         "finite")
    return array


def gain_curve(score: npt.ArrayLike, treatment: npt.ArrayLike, churned: npt.ArrayLike, *,
               seed: int = 0) -> pd.Series:
    """The cumulative gain ``G(phi)`` of ranking by ``score`` (high first), on the grid.

    Parameters
    ----------
    score
        Higher means target first.
    treatment, churned
        0/1 per row, from a randomised campaign.
    seed
        Breaks ties in ``score`` at random.

    Returns
    -------
    pandas.Series
        Indexed by ``share_targeted``.

    Examples
    --------
    >>> t = np.array([1, 0, 1, 0]); churned = np.array([0, 1, 1, 1])
    >>> float(gain_curve([4, 3, 2, 1], t, churned).iloc[-1])   # retention 0.5 vs 0
    0.5
    """
    t = np.asarray(treatment, dtype=np.float64).ravel()
    retained = 1.0 - np.asarray(churned, dtype=np.float64).ravel()
    s = _check(score, t.size, "score")
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    order = _order(s, np.random.default_rng(seed))
    curve = _curves(order, t, retained, np.ones((1, t.size)), grid)[0]
    return pd.Series(curve, index=pd.Index(grid, name="share_targeted"), name="gain")


def true_gain_curve(score: npt.ArrayLike, true_effect: npt.ArrayLike, *, seed: int = 0
                    ) -> pd.Series:
    """``G*(phi)``: the true effects of the top ``phi`` by ``score``, summed, over ``n``.

    Examples
    --------
    >>> effect = np.array([0.3, 0.0, 0.1])
    >>> true_gain_curve(effect, effect).iloc[-1].round(3)   # the mean effect
    np.float64(0.133)
    """
    tau = np.asarray(true_effect, dtype=np.float64).ravel()
    s = _check(score, tau.size, "score")
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    order = _order(s, np.random.default_rng(seed))
    cum = np.concatenate([[0.0], np.cumsum(tau[order])]) / tau.size
    # fractional top shares: interpolate between whole customers
    curve = np.interp(grid * tau.size, np.arange(tau.size + 1), cum)
    return pd.Series(curve, index=pd.Index(grid, name="share_targeted"), name="true_gain")


def _area(curves: FloatArray, grid: FloatArray) -> FloatArray:
    return np.asarray(np.trapezoid(curves, grid, axis=-1), dtype=np.float64)


def _estimate(name: str, value: float, replicates: FloatArray, confidence: float
              ) -> MetricEstimate:
    alpha = (1 - confidence) / 2
    low, high = (np.quantile(replicates, [alpha, 1 - alpha]) if replicates.size
                 else (np.nan, np.nan))
    return MetricEstimate(name=name, value=value, ci_low=float(low), ci_high=float(high),
                          confidence=confidence, higher_is_better=True,
                          replicates=[float(r) for r in replicates])


def qini_report(scores: Mapping[str, npt.ArrayLike], treatment: npt.ArrayLike,
                churned: npt.ArrayLike, *, true_effect: npt.ArrayLike | None = None,
                reference: str | None = None, n_bootstrap: int = 500,
                confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Qini coefficient and AUUC of several rankings, with paired bootstrap intervals.

    Parameters
    ----------
    scores
        Name -> score per row (high: target first). Add ``"random"`` yourself for a random
        ranking's noise level; random targeting's expected Qini is 0 by construction.
    treatment, churned
        0/1 per row of held-out randomised data.
    true_effect
        On simulated data, each row's true churn reduction: adds the true Qini (noise-free).
    reference
        A key of ``scores``; adds ``qini_minus_<reference>``, paired over the same resamples.
    n_bootstrap, confidence, seed
        The Poisson bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per score: ``qini``, ``qini_low``, ``qini_high``, ``auuc``, ``auuc_low``,
        ``auuc_high``, ``gain_at_all`` (``G(1)``), then ``true_qini`` when ``true_effect`` is
        given, and ``qini_minus_<reference>`` with its ``_low``/``_high``;
        ``attrs["estimates"]`` maps ``"<score>:<metric>"`` to the MetricEstimate with its
        bootstrap replicates (what a gate reads).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> tau = rng.uniform(0, 0.4, 4000); t = rng.integers(0, 2, 4000)
    >>> churned = (rng.random(4000) < 0.6 - tau * t).astype(int)
    >>> table = qini_report({"oracle": tau, "random": rng.random(4000)}, t, churned,
    ...                     n_bootstrap=50)
    >>> bool(table.loc["oracle", "qini"] > table.loc["random", "qini"])
    True
    """
    t = np.asarray(treatment, dtype=np.float64).ravel()
    y = np.asarray(churned, dtype=np.float64).ravel()
    n = t.size
    if y.size != n:
        raise InputError(f"churned: expected {n} values (as treatment), got {y.size}")
    if not scores:
        raise InputError("scores: give at least one ranking")
    if reference is not None and reference not in scores:
        raise InputError(f"reference: {reference!r} is not one of the scores {list(scores)}")
    if not 0 < confidence < 1 or n_bootstrap < 0:
        raise ValueError("confidence must be in (0, 1) and n_bootstrap >= 0")
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    rng = np.random.default_rng(seed)
    weights = np.vstack([np.ones((1, n)), rng.poisson(1.0, size=(n_bootstrap, n))]
                        ).astype(np.float64)
    tau = None if true_effect is None else _check(true_effect, n, "true_effect")
    qinis: dict[str, FloatArray] = {}
    rows: dict[str, dict[str, float]] = {}
    estimates: dict[str, MetricEstimate] = {}
    for name, raw in scores.items():
        s = _check(raw, n, name)
        order = _order(s, np.random.default_rng(seed))
        # in chunks: (B, n) cumulative sums for every resample at once
        curves = np.vstack([_curves(order, t, 1.0 - y, weights[i:i + 100], grid)
                            for i in range(0, weights.shape[0], 100)])
        auuc = _area(curves, grid)
        qini = auuc - curves[:, -1] / 2
        qinis[name] = qini
        q = _estimate("qini", float(qini[0]), qini[1:], confidence)
        a = _estimate("auuc", float(auuc[0]), auuc[1:], confidence)
        estimates[f"{name}:qini"], estimates[f"{name}:auuc"] = q, a
        row = {"qini": q.value, "qini_low": q.ci_low, "qini_high": q.ci_high,
               "auuc": a.value, "auuc_low": a.ci_low, "auuc_high": a.ci_high,
               "gain_at_all": float(curves[0, -1])}
        if tau is not None:
            true = true_gain_curve(s, tau, seed=seed).to_numpy()
            row["true_qini"] = float(_area(true, grid) - true[-1] / 2)
        rows[name] = row
    if reference is not None:
        for name in scores:
            diff = qinis[name] - qinis[reference]
            col = f"qini_minus_{reference}"
            d = _estimate(col, float(diff[0]), diff[1:], confidence)
            estimates[f"{name}:{col}"] = d
            rows[name] |= {col: d.value, f"{col}_low": d.ci_low, f"{col}_high": d.ci_high}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("score")
    # the estimates with their replicates, for a gate: "<score>:<metric>" -> MetricEstimate
    table.attrs["estimates"] = estimates
    return table
