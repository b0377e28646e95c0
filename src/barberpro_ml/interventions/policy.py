"""Who gets an offer, what it earns, and whether the seed's churn-reduction claim holds.

**The rule** (:class:`TargetingPolicy`): send the offer when its expected gain is positive,

    gain_i = tau_i * value_i - cost_i,

``tau_i`` the estimated churn reduction (an uplift model's prediction), ``value_i`` the value
of keeping the customer (LTV-based: what a retained customer is expected to spend), ``cost_i``
the expected cost of the offer to the business (the discount times the price of the visit it
applies to, times the chance it is redeemed). Under a budget (a share of the targeted
population), the customers with the largest positive gains first.

**What it earns, estimated off-policy** on randomised data (:func:`policy_value`): for a
policy ``pi`` (0/1 per customer) the gain over sending nothing,

- IPW [1]_: ``mean_i pi_i [T_i R_i value_i / e_i - (1 - T_i) R_i value_i / (1 - e_i)
  - T_i cost_i / e_i]``, ``R = 1 - churned``;
- doubly robust (AIPW) [2]_: the same with outcome models ``m1``, ``m0`` (retention
  probability with and without the offer) as control variates,
  ``mean_i pi_i [(G1_i - G0_i) value_i - cost_i]``, ``G1 = m1 + T (R - m1) / e``,
  ``G0 = m0 + (1 - T)(R - m0) / (1 - e)``;

with percentile intervals from a Poisson bootstrap over customers. On simulated data, the true
gain ``mean_i pi_i (tau*_i value_i - cost_i)`` uses the true effects, and the oracle policy
treats exactly where ``tau*_i value_i > cost_i``.

**The seed's claim** (:func:`treated_effect`): "46.3% churn reduction" read as the relative
churn reduction among the customers the policy treats, measured against their randomised
controls: ``1 - churn(offered, pi = 1) / churn(control, pi = 1)`` on held-out campaigns
(randomisation holds within ``pi = 1`` because ``pi`` depends only on pre-treatment features);
"retention improvement 40%+" as ``retention(offered, pi = 1) / retention(control, pi = 1) - 1``.

References
----------
.. [1] Horvitz, D. G. & Thompson, D. J. (1952). A generalization of sampling without
   replacement from a finite universe. *JASA* 47(260), 663-685.
.. [2] Dudík, M., Langford, J. & Li, L. (2011). Doubly robust policy evaluation and learning.
   *ICML 2011*, 1097-1104.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator

from barberpro_ml.errors import InputError
from barberpro_ml.evaluation.report import MetricEstimate

__all__ = ["TargetingPolicy", "cautious_uplift", "policy_value", "profit_curve",
           "treated_effect"]

FloatArray = npt.NDArray[np.float64]


def _vector(name: str, values: npt.ArrayLike, n: int | None = None, *,
            low: float | None = None) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if n is not None:
        try:
            array = np.broadcast_to(array, (n,)).astype(np.float64)
        except ValueError:
            raise InputError(f"{name}: expected a scalar or {n} values, got shape "
                             f"{array.shape}") from None
    array = array.ravel()
    bad = ~np.isfinite(array)
    if low is not None:
        bad |= array < low
    if bad.any():
        raise InputError(f"{name}: {int(bad.sum())} value(s) not finite"
                         f"{'' if low is None else f' or below {low}'} "
                         f"(examples: {np.unique(array[bad])[:5].tolist()})")
    return array


def cautious_uplift(score: npt.ArrayLike, replicates: npt.ArrayLike,
                    confidence: float) -> FloatArray:
    """The calibrated uplift that a share ``confidence`` of the calibration's bootstrap
    replicates exceed, per customer: ``quantile_{1 - confidence}(a_r + b_r x score)``.

    The calibration line ``(a, b)`` of :func:`~barberpro_ml.interventions.evaluate.calibrate_uplift`
    is measured on one validation campaign, the same one that chose the learner, so it is both
    noisy and flattered by the choice. Deciding on this lower bound treats a customer only when
    the evidence says the offer pays: with no heterogeneity to find, nobody; where it is clear,
    nearly the same customers as the point rule.

    Parameters
    ----------
    score
        The learner's predictions, one per customer.
    replicates
        Calibration lines ``(a_r, b_r)``, shape ``(R, 2)``, from resampled validation rows.
    confidence
        In (0, 1): 0.9 keeps the 10th percentile of the replicated uplifts.

    Returns
    -------
    ndarray
        The cautious uplift per customer (at most the replicates' median for confidence > 0.5).

    Examples
    --------
    >>> cautious_uplift([0.1, 0.3], [[0.0, 1.0], [0.0, 0.5], [0.02, 0.8]], 0.9).round(3).tolist()
    [0.06, 0.172]
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a share in (0, 1), got {confidence!r}")
    tau = _vector("score", score)
    lines = np.asarray(replicates, dtype=np.float64)
    if lines.ndim != 2 or lines.shape[1] != 2 or lines.shape[0] < 2:
        raise ValueError(f"replicates: expected at least two (intercept, slope) rows, got shape "
                         f"{lines.shape}")
    uplifts = lines[:, :1] + lines[:, 1:] * tau[None, :]
    low: FloatArray = np.quantile(uplifts, 1.0 - confidence, axis=0)
    return low


class TargetingPolicy(BaseEstimator):  # type: ignore[misc]
    """Treat when ``uplift x value > cost``; optionally only the best ``budget`` share.

    Parameters
    ----------
    budget
        Largest share of the scored customers to treat, in (0, 1]; ``None``: no limit.

    Examples
    --------
    >>> policy = TargetingPolicy()
    >>> policy.decide([0.10, 0.02, 0.30], value=[100.0, 100.0, 10.0], cost=5.0).tolist()
    [True, False, False]
    >>> TargetingPolicy(budget=0.34).decide([0.2, 0.1, 0.3], 100.0, 5.0).tolist()
    [False, False, True]
    """

    def __init__(self, *, budget: float | None = None) -> None:
        self.budget = budget

    def expected_gain(self, uplift: npt.ArrayLike, value: npt.ArrayLike,
                      cost: npt.ArrayLike) -> FloatArray:
        """``uplift x value - cost`` per customer."""
        tau = _vector("uplift", uplift)
        v = _vector("value", value, tau.size, low=0.0)
        c = _vector("cost", cost, tau.size, low=0.0)
        gain: FloatArray = tau * v - c
        return gain

    def decide(self, uplift: npt.ArrayLike, value: npt.ArrayLike, cost: npt.ArrayLike
               ) -> npt.NDArray[np.bool_]:
        """Whether to send the offer, per customer.

        Parameters
        ----------
        uplift
            Estimated churn reduction per customer.
        value
            Value of keeping each customer (scalar or per customer), >= 0.
        cost
            Expected cost of the offer (scalar or per customer), >= 0.

        Returns
        -------
        ndarray of bool
        """
        if self.budget is not None and not 0 < self.budget <= 1:
            raise ValueError(f"budget: expected a share in (0, 1], got {self.budget!r}")
        gain = self.expected_gain(uplift, value, cost)
        treat = gain > 0
        if self.budget is not None:
            k = int(np.floor(self.budget * gain.size))
            order = np.argsort(-gain, kind="stable")
            within = np.zeros(gain.size, dtype=bool)
            within[order[:k]] = True
            treat &= within
        return np.asarray(treat, dtype=bool)


def _estimate(name: str, replicates: FloatArray, confidence: float) -> MetricEstimate:
    alpha = (1 - confidence) / 2
    low, high = (np.quantile(replicates[1:], [alpha, 1 - alpha]) if replicates.size > 1
                 else (np.nan, np.nan))
    return MetricEstimate(name=name, value=float(replicates[0]), ci_low=float(low),
                          ci_high=float(high), confidence=confidence, higher_is_better=True,
                          replicates=[float(r) for r in replicates[1:]])


def _weights(n: int, n_bootstrap: int, seed: int) -> FloatArray:
    rng = np.random.default_rng(seed)
    return np.vstack([np.ones((1, n)), rng.poisson(1.0, size=(n_bootstrap, n))]
                     ).astype(np.float64)


def _per_customer_gain(treat: FloatArray, t: FloatArray, retained: FloatArray,
                       value: FloatArray, cost: FloatArray, e: FloatArray,
                       m0: FloatArray | None, m1: FloatArray | None) -> FloatArray:
    if m0 is None or m1 is None:
        g1 = t * retained / e
        g0 = (1 - t) * retained / (1 - e)
        paid = t * cost / e
        out: FloatArray = treat * ((g1 - g0) * value - paid)
        return out
    g1 = m1 + t * (retained - m1) / e
    g0 = m0 + (1 - t) * (retained - m0) / (1 - e)
    dr: FloatArray = treat * ((g1 - g0) * value - cost)
    return dr


def policy_value(treat: npt.ArrayLike, treatment: npt.ArrayLike, churned: npt.ArrayLike,
                 value: npt.ArrayLike, cost: npt.ArrayLike, *, propensity: Any = 0.5,
                 retention_control: npt.ArrayLike | None = None,
                 retention_treated: npt.ArrayLike | None = None, n_bootstrap: int = 500,
                 confidence: float = 0.95, seed: int = 0) -> MetricEstimate:
    """Gain per customer of a policy over sending nothing, estimated on randomised data.

    Parameters
    ----------
    treat
        The policy: 0/1 (or bool) per customer.
    treatment, churned
        The randomised arm and the outcome, 0/1 per customer.
    value, cost
        As :meth:`TargetingPolicy.decide`.
    propensity
        Probability of the offer in the randomisation (scalar or per customer).
    retention_control, retention_treated
        Outcome models' retention probabilities without and with the offer: both given, the
        doubly robust estimate; else IPW.
    n_bootstrap, confidence, seed
        The Poisson bootstrap over customers.

    Returns
    -------
    MetricEstimate
        Named ``policy_gain_dr`` or ``policy_gain_ipw``: currency per customer scored.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = rng.integers(0, 2, 20000); churned = (rng.random(20000) < 0.5 - 0.1 * t)
    >>> gain = policy_value(np.ones(20000), t, churned, value=100.0, cost=5.0, n_bootstrap=100)
    >>> bool(gain.ci_low < 100 * 0.1 - 5.0 < gain.ci_high)    # truth: 0.1 x 100 - 5
    True
    """
    t = _vector("treatment", treatment)
    n = t.size
    pi = _vector("treat", np.asarray(treat, dtype=np.float64), n)
    retained = 1.0 - _vector("churned", np.asarray(churned, dtype=np.float64), n)
    v = _vector("value", value, n, low=0.0)
    c = _vector("cost", cost, n, low=0.0)
    e = _vector("propensity", propensity, n)
    if ((e <= 0) | (e >= 1)).any():
        raise InputError("propensity: expected values in (0, 1)")
    m0 = None if retention_control is None else _vector("retention_control",
                                                        retention_control, n)
    m1 = None if retention_treated is None else _vector("retention_treated",
                                                        retention_treated, n)
    per = _per_customer_gain(pi, t, retained, v, c, e, m0, m1)
    w = _weights(n, n_bootstrap, seed)
    replicates = (w @ per) / w.sum(axis=1)
    name = "policy_gain_ipw" if m0 is None or m1 is None else "policy_gain_dr"
    return _estimate(name, replicates, confidence)


def profit_curve(gain_score: npt.ArrayLike, treatment: npt.ArrayLike, churned: npt.ArrayLike,
                 value: npt.ArrayLike, cost: npt.ArrayLike, *, propensity: Any = 0.5,
                 budgets: npt.ArrayLike = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0),
                 true_effect: npt.ArrayLike | None = None, n_bootstrap: int = 300,
                 confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Gain per customer of treating the top ``budget`` share by ``gain_score`` (IPW, with
    bootstrap intervals; plus the true gain when ``true_effect`` is given).

    Only customers with a positive score are treated, so past the break-even the curve is
    flat: a budget is a ceiling, not a quota.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``budget``: ``share_treated``, ``gain``, ``gain_low``, ``gain_high``, and
        ``true_gain`` with ``true_effect``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> tau = rng.uniform(0, 0.2, 5000); t = rng.integers(0, 2, 5000)
    >>> churned = rng.random(5000) < 0.5 - tau * t
    >>> curve = profit_curve(tau * 100 - 5, t, churned, 100.0, 5.0, true_effect=tau,
    ...                      n_bootstrap=50)
    >>> # past the break-even (tau > 0.05: three customers in four) nobody more is treated
    >>> bool(curve.loc[0.8, "true_gain"] == curve.loc[1.0, "true_gain"])
    True
    >>> bool(curve.loc[1.0, "share_treated"] == np.mean(tau > 0.05))
    True
    """
    score = _vector("gain_score", gain_score)
    n = score.size
    t = _vector("treatment", treatment, n)
    retained = 1.0 - _vector("churned", np.asarray(churned, dtype=np.float64), n)
    v = _vector("value", value, n, low=0.0)
    c = _vector("cost", cost, n, low=0.0)
    e = _vector("propensity", propensity, n)
    tau = None if true_effect is None else _vector("true_effect", true_effect, n)
    w = _weights(n, n_bootstrap, seed)
    order = np.argsort(-score, kind="stable")
    rows = {}
    for budget in np.asarray(budgets, dtype=np.float64):
        if not 0 < budget <= 1:
            raise ValueError(f"budgets: expected shares in (0, 1], got {budget}")
        pi = np.zeros(n)
        pi[order[:int(np.floor(budget * n))]] = 1.0
        pi *= score > 0
        per = _per_customer_gain(pi, t, retained, v, c, e, None, None)
        est = _estimate("gain", (w @ per) / w.sum(axis=1), confidence)
        row = {"share_treated": float(pi.mean()), "gain": est.value, "gain_low": est.ci_low,
               "gain_high": est.ci_high}
        if tau is not None:
            row["true_gain"] = float(np.mean(pi * (tau * v - c)))
        rows[float(budget)] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("budget")


def treated_effect(treat: npt.ArrayLike, treatment: npt.ArrayLike, churned: npt.ArrayLike, *,
                   groups: npt.ArrayLike | None = None, n_bootstrap: int = 1000,
                   confidence: float = 0.95, seed: int = 0) -> dict[str, MetricEstimate]:
    """Relative churn reduction and retention improvement among the customers a policy
    treats, against their randomised controls.

    Parameters
    ----------
    treat
        The policy's decision per customer (0/1).
    treatment, churned
        The randomised arm and outcome per customer.
    groups
        Campaign per customer: each arm of each campaign is resampled separately
        (stratified bootstrap, as :func:`~barberpro_ml.evaluation.campaign_effects`), and
        the rates are pooled with campaign-size weights. Default: one group.
    n_bootstrap, confidence, seed
        The bootstrap.

    Returns
    -------
    dict
        ``relative_churn_reduction`` (``1 - churn_offered / churn_control``) and
        ``retention_improvement`` (``retention_offered / retention_control - 1``), each a
        MetricEstimate, with ``n_treated``/``n_control`` in the caller's hands (count
        ``treat & treatment`` yourself).

    Raises
    ------
    InputError
        The policy treats nobody in one of the arms, or nobody churned (retained) among its
        controls: the ratio is undefined.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = rng.integers(0, 2, 8000); churned = rng.random(8000) < 0.5 - 0.2 * t
    >>> out = treated_effect(np.ones(8000), t, churned, n_bootstrap=200)
    >>> bool(out["relative_churn_reduction"].ci_low < 0.4 < out["relative_churn_reduction"].ci_high)
    True
    """
    pi = np.asarray(treat, dtype=bool).ravel()
    t = np.asarray(treatment, dtype=bool).ravel()
    y = np.asarray(churned, dtype=np.float64).ravel()
    if not (pi.size == t.size == y.size):
        raise InputError(f"treat, treatment and churned: expected equal lengths, got "
                         f"{pi.size}, {t.size}, {y.size}")
    g = (np.zeros(pi.size, dtype=np.int64) if groups is None
         else pd.factorize(np.asarray(groups).ravel())[0].astype(np.int64))
    keep = pi
    if not (keep & t).any() or not (keep & ~t).any():
        raise InputError(f"treat: the policy selects {int((keep & t).sum())} offered and "
                         f"{int((keep & ~t).sum())} control customer(s); both arms are needed")
    k = int(g.max()) + 1
    cell = 2 * g[keep] + t[keep]
    size = np.bincount(cell, minlength=2 * k).reshape(k, 2).astype(np.float64)
    events = np.bincount(cell, weights=y[keep], minlength=2 * k).reshape(k, 2)
    both = (size > 0).all(axis=1)
    weight = size[both].sum(axis=1) / size[both].sum()
    rates = events[both] / size[both]
    rng = np.random.default_rng(seed)
    draws = rng.binomial(size[both].astype(np.int64), rates,
                         size=(n_bootstrap, int(both.sum()), 2)) / size[both]
    all_rates = np.concatenate([rates[None], draws])          # (B + 1, k, arm)
    pooled = np.einsum("bka,k->ba", all_rates, weight)          # arm 0 control, 1 offered
    control, offered = pooled[:, 0], pooled[:, 1]
    if control[0] == 0 or control[0] == 1:
        raise InputError(f"churned: the policy's control customers have a churn rate of "
                         f"{control[0]}; relative effects are undefined")
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = 1 - offered / control
        improvement = (1 - offered) / (1 - control) - 1
    relative = relative[np.isfinite(relative)]
    improvement = improvement[np.isfinite(improvement)]
    return {"relative_churn_reduction": _estimate("relative_churn_reduction", relative,
                                                   confidence),
            "retention_improvement": _estimate("retention_improvement", improvement,
                                               confidence)}
