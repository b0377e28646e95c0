"""Probabilistic customer lifetime value: BG/NBD purchases, Gamma-Gamma spend, discounted CLV.

Inputs are the per-customer statistics of :func:`barberpro_ml.features.rfm_summary`:
``frequency`` (repeat purchases), ``recency`` (age at the last purchase), ``T`` (age at the end
of the calibration period) and ``monetary_value`` (mean spend of the repeat purchases), all
times in one unit of your choice (weeks in the CDNOW examples). Predictions come back in the
same unit: ``t`` and ``horizon`` are lengths of time measured like ``T``.

Both models are fitted by maximum likelihood on log-parameters: L-BFGS-B with the analytic
gradient from a method-of-moments start, polished by Newton steps with the analytic Hessian
(then Nelder-Mead and other starting points if that fails), optionally with the L2 penalty of
lifetimes. Each evaluation is one vectorised pass over the customers into buffers allocated
once per fit (``_clv_math.BetaGeoLikelihood``, ``GammaGammaLikelihood``); the special
functions are evaluated once per distinct frequency. Duplicate customer profiles are also
collapsed into weights, which helps when there are many, but the speed does not depend on it.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the Easy
   Way: An Alternative to the Pareto/NBD Model. Marketing Science 24(2), 275-284.
.. [2] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: Using Iso-Value Curves
   for Customer Base Analysis. Journal of Marketing Research 42(4), 415-430.
.. [3] Fader, P. S. & Hardie, B. G. S. (2013). The Gamma-Gamma Model of Monetary Value.
   http://brucehardie.com/notes/025/
.. [4] Davidson-Pilon, C. et al. lifetimes 0.11.3, ``lifetimes.utils._customer_lifetime_value``
   (the discounting scheme reproduced by :func:`customer_lifetime_value`).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from barberpro_ml.models import _clv_math as cm
from barberpro_ml.models._params import ValidatedEstimator, fit_context

__all__ = [
    "BetaGeoModel",
    "BetaGeoParams",
    "ConvergenceError",
    "GammaGammaModel",
    "GammaGammaParams",
    "customer_lifetime_value",
]

_MAX_EXAMPLES = 10
# Log-parameters are boxed so that a likelihood without a maximum (a parameter running to 0
# or infinity) stops at the box and is reported, instead of overflowing.
_LOG_BOUND = 30.0
# Accept a solution when every component of the gradient of the mean objective with respect
# to the log-parameters is below this: ~1e-5 per customer moves parameters far below the
# precision anyone publishes.
_GRAD_TOL = 1e-5


class ConvergenceError(RuntimeError):
    """The maximum-likelihood fit did not converge; the message says what to try."""


@dataclass(frozen=True)
class BetaGeoParams:
    """BG/NBD parameters: purchase rates ~ Gamma(r, alpha), dropout probability ~ Beta(a, b).

    ``alpha`` is in the time unit of the data (weeks if ``T`` is in weeks); the others are
    unit-free.
    """

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        """The parameters as a plain ``{"r": ..., "alpha": ..., "a": ..., "b": ...}``."""
        return asdict(self)


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, v).

    ``v`` (called gamma in [2]_) is in currency units; ``p`` and ``q`` are unit-free. The
    population mean spend per transaction is ``p * v / (q - 1)``.
    """

    p: float
    q: float
    v: float

    def as_dict(self) -> dict[str, float]:
        """The parameters as a plain ``{"p": ..., "q": ..., "v": ...}``."""
        return asdict(self)


class BetaGeoModel(ValidatedEstimator):
    """BG/NBD model of repeat purchases in a non-contractual setting (Fader, Hardie & Lee 2005).

    While alive, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``;
    after each purchase they drop out for good with probability ``p ~ Beta(a, b)`` [1]_.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty with lifetimes' meaning: the fit minimises ``-mean log-likelihood +
        penalizer * (r**2 + alpha_s**2 + a**2 + b**2)`` where ``alpha_s = alpha / max(T)`` is
        alpha with time rescaled so that the oldest customer has age 1. Try 0.001 to 0.1 when a
        fit does not converge.

    Attributes
    ----------
    params_ : BetaGeoParams
        Fitted ``r, alpha, a, b``.
    standard_errors_ : BetaGeoParams
        Asymptotic standard errors from the inverse Hessian of the (penalised) negative
        log-likelihood, computed in log-parameters by central differences of the analytic
        gradient and mapped back by the delta method (lifetimes' convention). NaN, with a
        warning, if the Hessian is not positive definite.
    log_likelihood_ : float
        Total (weighted) log-likelihood at ``params_``, without the penalty, in the data's
        time unit ([1]_ reports -9582.4 on CDNOW in weeks).
    n_customers_ : float
        Number of customers (sum of the weights).
    n_profiles_ : int
        Number of distinct ``(frequency, recency, T)`` rows actually evaluated.
    n_evaluations_ : int
        Passes over the data the fit made: likelihood-and-gradient evaluations plus Hessian
        evaluations (the Newton polish and the standard errors).
    optimizer_ : str
        The path that converged, e.g. ``"L-BFGS-B + Newton"`` or ``"Nelder-Mead + L-BFGS-B +
        Newton"`` (``+ Newton`` when at least one Newton step was kept).

    References
    ----------
    .. [1] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the
       Easy Way: An Alternative to the Pareto/NBD Model. Marketing Science 24(2), 275-284.
    .. [2] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2007). Implementing the BG/NBD Model
       for Customer Base Analysis in Excel. http://brucehardie.com/notes/004/
    .. [3] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2008). Computing P(alive) Using the
       BG/NBD Model. http://brucehardie.com/notes/021/

    Examples
    --------
    Simulate 2,000 customers observed for 52 weeks, then recover the parameters:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> n, T = 2000, 52.0
    >>> rate = rng.gamma(0.5, 1 / 4.0, n)                    # r = 0.5, alpha = 4 (weeks)
    >>> dropout = rng.beta(1.0, 3.0, n)                      # a = 1, b = 3
    >>> times = np.cumsum(rng.exponential(1 / rate[:, None], (n, 200)), axis=1)
    >>> frequency = np.minimum((times <= T).sum(axis=1), rng.geometric(dropout))
    >>> recency = np.where(frequency > 0, times[np.arange(n), frequency - 1], 0.0)
    >>> model = BetaGeoModel().fit(frequency, recency, np.full(n, T))
    >>> {k: round(v, 1) for k, v in model.params_.as_dict().items()}  # doctest: +SKIP
    {'r': 0.5, 'alpha': 4.0, 'a': 1.0, 'b': 3.0}
    >>> float(model.expected_purchases(10.0, 2, 30.0, 52.0)) > 0
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "penalizer": [Interval(Real, 0, np.inf, closed="left")],
    }

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    @fit_context
    def fit(self, frequency: ArrayLike | pd.DataFrame, recency: ArrayLike | None = None,
            T: ArrayLike | None = None, *, sample_weight: ArrayLike | None = None) -> Self:
        """Fit ``r, alpha, a, b`` by maximum likelihood.

        Parameters
        ----------
        frequency : array-like or pandas.DataFrame
            Repeat purchases per customer (non-negative integers), or a DataFrame with columns
            ``frequency``, ``recency`` and ``T`` (then leave ``recency`` and ``T`` out).
        recency : array-like
            Age of each customer at their last purchase (0 when ``frequency`` is 0).
        T : array-like
            Age of each customer at the end of the calibration period (``T >= recency``).
        sample_weight : array-like, optional
            Non-negative frequency weights: the number of customers with this profile.

        Returns
        -------
        BetaGeoModel
            ``self``, fitted.

        Raises
        ------
        ValueError
            Invalid inputs (the message counts and names the offending customers).
        ConvergenceError
            When no starting point converges; the message suggests ``penalizer`` and time
            rescaling.
        """
        penalizer = float(self.penalizer)
        stats = _rfm_inputs(frequency, recency, T, ("frequency", "recency", "T"), fit=True)
        x, t_x, age = stats.arrays
        _check_rfm(x, t_x, age, stats.labels)
        weights = _check_weights(sample_weight, len(x))
        if float(age.max()) <= 0.0:
            raise ValueError("every customer has T == 0: no time was observed after the first "
                             "purchase, so the purchase rate cannot be estimated")
        (x_u, t_x_u, age_u), w_u = _collapse((x, t_x, age), weights)
        # Rescale time so that the oldest customer has age 1 (as lifetimes does): alpha then
        # starts near the right order of magnitude whatever the unit of T.
        scale = 1.0 / float(age_u.max())
        t_x_s, age_s = t_x_u * scale, age_u * scale
        w_total = float(w_u.sum())
        likelihood = cm.BetaGeoLikelihood(x_u, t_x_s, age_s, w_u)

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            value, grad = likelihood.value_and_grad(*(float(v) for v in params))
            return (-value / w_total + penalizer * float(params @ params),
                    (-grad / w_total + 2.0 * penalizer * params) * params)

        def hessian(log_params: np.ndarray, gradient: np.ndarray) -> np.ndarray:
            params = np.exp(log_params)
            natural = -likelihood.hessian(*(float(v) for v in params)) / w_total
            natural += 2.0 * penalizer * np.eye(4)
            return _log_space_hessian(natural, gradient, params)

        mean_x = cm.dot(w_u, x_u) / w_total
        mean_age = cm.dot(w_u, age_s) / w_total
        starts = [
            _bgnbd_start(x_u, age_s, w_u),
            np.zeros(4),
            np.log([0.5, 0.5 * mean_age / max(mean_x, 0.1), 0.5, 2.0]),
            np.log([2.0, 2.0 * mean_age / max(mean_x, 0.1), 2.0, 5.0]),
        ]
        optimum = _maximise("BG/NBD", objective, starts, ("r", "alpha", "a", "b"),
                            "scaling the time unit of recency and T (e.g. weeks instead of days)",
                            hessian)
        fitted = np.exp(optimum.x)
        r, alpha_s, a, b = (float(v) for v in fitted)
        self.params_ = BetaGeoParams(r=r, alpha=alpha_s / scale, a=a, b=b)
        # Measuring time in units 1/scale multiplies each customer's likelihood (a density of
        # x purchase times) by scale**x: ll(original units) = ll(scaled) + ln(scale) sum(w x).
        penalty = penalizer * float(fitted @ fitted)
        self.log_likelihood_ = (-(optimum.fun - penalty) * w_total
                                + math.log(scale) * cm.dot(w_u, x_u))
        se = _standard_errors(optimum.hessian if optimum.hessian is not None
                               else hessian(optimum.x, optimum.jac), w_total)
        natural = np.array([r, alpha_s / scale, a, b])
        self.standard_errors_ = BetaGeoParams(*(float(v) for v in natural * se))
        self.n_evaluations_ = likelihood.n_evaluations
        self.n_customers_ = w_total
        self.n_profiles_ = len(x_u)
        self.optimizer_ = optimum.method
        return self

    def probability_alive(self, frequency: ArrayLike | pd.DataFrame,
                          recency: ArrayLike | None = None,
                          T: ArrayLike | None = None) -> np.ndarray | pd.Series:
        """Probability that each customer is still alive at age ``T`` (Hardie's note 021).

        Customers without a repeat purchase (``frequency == 0``) are alive with probability 1
        in the BG/NBD (dropout happens only right after a purchase).

        Parameters
        ----------
        frequency, recency, T : array-like or DataFrame
            As in :meth:`fit`; arrays broadcast against each other.

        Returns
        -------
        numpy.ndarray or pandas.Series
            A Series (index of the pandas input) when any input is pandas.
        """
        check_is_fitted(self)
        stats = _rfm_inputs(frequency, recency, T, ("frequency", "recency", "T"), fit=False)
        x, t_x, age = stats.arrays
        _check_rfm(x, t_x, age, stats.labels)
        p = self.params_
        return _wrap(cm.bgnbd_probability_alive(p.r, p.alpha, p.a, p.b, x, t_x, age),
                     stats.index, "probability_alive")

    def expected_purchases(self, t: ArrayLike, frequency: ArrayLike | pd.DataFrame,
                           recency: ArrayLike | None = None,
                           T: ArrayLike | None = None) -> np.ndarray | pd.Series:
        """Expected repeat purchases in the next ``t`` time units, given each history.

        This is ``E[Y(t) | x, t_x, T]`` of [1]_ eq. 10: purchases in ``(T, T + t]``.

        Parameters
        ----------
        t : float or array-like
            Length of the forecast window, in the time unit of ``T``; broadcasts against the
            customers.
        frequency, recency, T : array-like or DataFrame
            As in :meth:`fit`.

        Returns
        -------
        numpy.ndarray or pandas.Series
            A Series (index of the pandas input) when any input is pandas.
        """
        check_is_fitted(self)
        stats = _rfm_inputs(frequency, recency, T, ("frequency", "recency", "T"), fit=False)
        x, t_x, age = stats.arrays
        _check_rfm(x, t_x, age, stats.labels)
        window = _check_time(t, "t")
        p = self.params_
        values = cm.bgnbd_expected_purchases(window, p.r, p.alpha, p.a, p.b, x, t_x, age)
        _check_finite(values, stats.labels, "expected_purchases")
        return _wrap(values, stats.index, "expected_purchases")

    def expected_purchases_new_customer(self, t: ArrayLike) -> np.ndarray:
        """Expected repeat purchases of a newly acquired customer by age ``t`` ([1]_ eq. 9).

        Parameters
        ----------
        t : float or array-like
            Age since the first purchase, in the time unit of ``T``.

        Returns
        -------
        numpy.ndarray
            Same shape as ``t``.
        """
        check_is_fitted(self)
        age = _check_time(t, "t")
        p = self.params_
        values = cm.bgnbd_expected_purchases_new_customer(age, p.r, p.alpha, p.a, p.b)
        _check_finite(values, np.arange(values.size).reshape(values.shape),
                      "expected_purchases_new_customer")
        return values


class GammaGammaModel(ValidatedEstimator):
    """Gamma-Gamma model of mean spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV").

    A customer's transactions have spend ``~ Gamma(p, nu)`` around their own mean ``p / nu``,
    with ``nu ~ Gamma(q, v)`` across customers; spend is assumed independent of the purchase
    process [2]_ [3]_. Only repeat customers (``frequency > 0``) carry information: in
    :func:`~barberpro_ml.features.rfm_summary` their ``monetary_value`` is the mean spend of
    the repeat purchases.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty with lifetimes' meaning: the fit minimises ``-mean log-likelihood +
        penalizer * (p**2 + q**2 + v**2)``.

    Attributes
    ----------
    params_ : GammaGammaParams
        Fitted ``p, q, v`` (``v`` is the gamma of [2]_).
    standard_errors_ : GammaGammaParams
        Asymptotic standard errors (inverse Hessian, delta method from log-parameters).
    log_likelihood_ : float
        Total (weighted) log-likelihood of the repeat customers' mean spends.
    n_customers_ : float
        Number of repeat customers used (sum of their weights).
    n_ignored_ : int
        Rows with ``frequency == 0``, which carry no spend information and are skipped.
    n_profiles_ : int
        Distinct ``(frequency, monetary_value)`` rows evaluated.
    n_evaluations_ : int
        Passes over the data the fit made (as in :class:`BetaGeoModel`).
    optimizer_ : str
        The path that converged, as in :class:`BetaGeoModel`.

    References
    ----------
    .. [1] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the
       Easy Way: An Alternative to the Pareto/NBD Model. Marketing Science 24(2), 275-284.
    .. [2] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: Using Iso-Value
       Curves for Customer Base Analysis. Journal of Marketing Research 42(4), 415-430.
    .. [3] Fader, P. S. & Hardie, B. G. S. (2013). The Gamma-Gamma Model of Monetary Value.
       http://brucehardie.com/notes/025/

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> frequency = rng.integers(1, 6, 400)
    >>> spend = rng.gamma(6.0, 1.0 / rng.gamma(4.0, 1.0 / 15.0, 400)[:, None], (400, 5))
    >>> mean_spend = np.array([s[:n].mean() for s, n in zip(spend, frequency)])
    >>> model = GammaGammaModel().fit(frequency, mean_spend)
    >>> bool(model.expected_average_spend(3, 40.0) > 0)
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "penalizer": [Interval(Real, 0, np.inf, closed="left")],
    }

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    @fit_context
    def fit(self, frequency: ArrayLike | pd.DataFrame, monetary_value: ArrayLike | None = None,
            *, sample_weight: ArrayLike | None = None) -> Self:
        """Fit ``p, q, v`` by maximum likelihood on the repeat customers.

        Parameters
        ----------
        frequency : array-like or pandas.DataFrame
            Repeat purchases per customer, or a DataFrame with columns ``frequency`` and
            ``monetary_value``. Rows with ``frequency == 0`` are skipped (counted in
            ``n_ignored_``).
        monetary_value : array-like
            Mean spend of the repeat purchases; must be positive for every repeat customer.
        sample_weight : array-like, optional
            Non-negative frequency weights.

        Returns
        -------
        GammaGammaModel
            ``self``, fitted.

        Raises
        ------
        ValueError
            Invalid inputs, no repeat customer, or repeat customers with zero or negative mean
            spend (the message says how many and which).
        ConvergenceError
            When no starting point converges.
        """
        penalizer = float(self.penalizer)
        stats = _rfm_inputs(frequency, monetary_value, None, ("frequency", "monetary_value"),
                            fit=True)
        x, m = stats.arrays
        _check_spend(x, m, stats.labels)
        weights = _check_weights(sample_weight, len(x))
        repeat = x > 0
        if not repeat.any():
            raise ValueError("no repeat customer (frequency > 0): the Gamma-Gamma model has "
                             "no spend to learn from")
        (x_u, m_u), w_u = _collapse((x[repeat], m[repeat]), weights[repeat])
        w_total = float(w_u.sum())
        # Spend is rescaled to mean 1 for conditioning; the penalty still applies to v in
        # currency units, as in lifetimes.
        scale = w_total / cm.dot(w_u, m_u)
        likelihood = cm.GammaGammaLikelihood(x_u, m_u * scale, w_u)
        to_natural = np.array([1.0, 1.0, 1.0 / scale])

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)  # p, q and v in rescaled spend
            value, grad = likelihood.value_and_grad(*(float(v) for v in params))
            natural = params * to_natural
            return (-value / w_total + penalizer * float(natural @ natural),
                    -grad / w_total * params + 2.0 * penalizer * natural**2)

        def hessian(log_params: np.ndarray, gradient: np.ndarray) -> np.ndarray:
            params = np.exp(log_params)
            scaled = -likelihood.hessian(*(float(v) for v in params)) / w_total
            scaled += 2.0 * penalizer * np.diag(to_natural**2)
            return _log_space_hessian(scaled, gradient, params)

        starts = [_gamma_gamma_start(x_u, m_u * scale, w_u), np.zeros(3),
                  np.log([2.0, 3.0, 4.0]), np.log([10.0, 10.0, 10.0])]
        optimum = _maximise("Gamma-Gamma", objective, starts, ("p", "q", "v"),
                            "rescaling monetary_value (e.g. currency units instead of cents)",
                            hessian)
        p, q, v_s = (float(v) for v in np.exp(optimum.x))
        self.params_ = GammaGammaParams(p=p, q=q, v=v_s / scale)
        # Spend measured in units 1/scale multiplies each density of m by scale:
        # ll(currency) = ll(rescaled) + ln(scale) sum(w).
        penalty = penalizer * (p**2 + q**2 + (v_s / scale) ** 2)
        self.log_likelihood_ = -(optimum.fun - penalty) * w_total + math.log(scale) * w_total
        se = _standard_errors(optimum.hessian if optimum.hessian is not None
                               else hessian(optimum.x, optimum.jac), w_total)
        self.standard_errors_ = GammaGammaParams(
            *(float(v) for v in np.array([p, q, v_s / scale]) * se))
        self.n_evaluations_ = likelihood.n_evaluations
        self.n_customers_ = w_total
        self.n_ignored_ = int((~repeat).sum())
        self.n_profiles_ = len(x_u)
        self.optimizer_ = optimum.method
        return self

    def expected_average_spend(self, frequency: ArrayLike | pd.DataFrame,
                               monetary_value: ArrayLike | None = None) -> np.ndarray | pd.Series:
        """Expected mean spend per future transaction of each customer ([2]_ eq. 5).

        ``p (v + x m) / (p x + q - 1)``: the customer's own mean ``m`` shrunk towards the
        population mean ``p v / (q - 1)``, fully so when ``frequency == 0``.

        Parameters
        ----------
        frequency, monetary_value : array-like or DataFrame
            As in :meth:`fit`; ``monetary_value`` is ignored where ``frequency == 0``.

        Returns
        -------
        numpy.ndarray or pandas.Series
            A Series (index of the pandas input) when any input is pandas.

        Raises
        ------
        ValueError
            If ``q <= 1`` (the population mean spend is then infinite) or a repeat customer has
            a negative mean spend (zero is allowed here, not in :meth:`fit`).
        """
        check_is_fitted(self)
        params = self.params_
        if params.q <= 1.0:
            raise ValueError(f"fitted q = {params.q:.4g} <= 1: the Gamma-Gamma mean spend is "
                             "infinite; refit with a penalizer or check monetary_value")
        stats = _rfm_inputs(frequency, monetary_value, None, ("frequency", "monetary_value"),
                            fit=False)
        x, m = stats.arrays
        _check_spend(x, m, stats.labels, allow_zero=True)
        values = cm.gamma_gamma_expected_spend(params.p, params.q, params.v, x,
                                               np.where(x > 0, m, 0.0))
        return _wrap(values, stats.index, "expected_average_spend")


def customer_lifetime_value(
    transaction_model: BetaGeoModel,
    spend_model: GammaGammaModel,
    frequency: ArrayLike | pd.DataFrame,
    recency: ArrayLike | None = None,
    T: ArrayLike | None = None,
    monetary_value: ArrayLike | None = None,
    horizon: float = 52.0,
    discount_rate: float = 0.0,
    *,
    discount_period: float = 1.0,
) -> np.ndarray | pd.Series:
    """Discounted expected revenue of each customer over the next ``horizon`` time units.

    ``CLV = sum_k spend * (E[Y(t_k)] - E[Y(t_{k-1})]) / (1 + discount_rate) ** (t_k /
    discount_period)`` with ``t_k = min(k * discount_period, horizon)``: the horizon is cut into
    steps of ``discount_period``, the purchases expected by the BG/NBD in each step are valued at
    the Gamma-Gamma expected spend and discounted at the end of their step. This is lifetimes'
    scheme [4]_ (``time`` months of ``factor`` time units, monthly rate) with ``horizon = time *
    factor`` and ``discount_period = factor``; with ``discount_rate = 0`` it is simply
    ``spend * E[Y(horizon)]``. The spend and purchase models are combined as in [2]_ (value =
    expected transactions x expected spend, the two processes independent); [2]_ discounts
    continuously over an infinite horizon for the Pareto/NBD, whereas this finite-horizon,
    end-of-step scheme is the one lifetimes and pymc-marketing users compare against.

    Parameters
    ----------
    transaction_model : BetaGeoModel
        Fitted purchase model.
    spend_model : GammaGammaModel
        Fitted spend model.
    frequency : array-like or pandas.DataFrame
        Repeat purchases, or a DataFrame with columns ``frequency``, ``recency``, ``T`` and
        ``monetary_value`` (then leave the next three arguments out).
    recency, T : array-like
        As in :meth:`BetaGeoModel.fit`, in the model's time unit.
    monetary_value : array-like
        Mean spend of the repeat purchases (ignored where ``frequency == 0``).
    horizon : float, default 52.0
        Length of the forecast, in the time unit of ``T`` (52 = one year when ``T`` is in
        weeks).
    discount_rate : float, default 0.0
        Discount rate per ``discount_period`` (e.g. 0.01 per month), > -1.
    discount_period : float, default 1.0
        Length of one discounting step in the time unit of ``T`` (e.g. 52 / 12 for monthly
        steps when ``T`` is in weeks).

    Returns
    -------
    numpy.ndarray or pandas.Series
        Expected discounted revenue per customer (in the currency of ``monetary_value``); a
        Series when the input is pandas. Multiply by a margin for profit.

    References
    ----------
    .. [1] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the
       Easy Way. Marketing Science 24(2), 275-284.
    .. [2] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: Using Iso-Value
       Curves for Customer Base Analysis. Journal of Marketing Research 42(4), 415-430.
    .. [3] Fader, P. S. & Hardie, B. G. S. (2013). The Gamma-Gamma Model of Monetary Value.
    .. [4] lifetimes 0.11.3, ``lifetimes.utils._customer_lifetime_value``.

    Examples
    --------
    >>> import numpy as np
    >>> bgnbd, gg = BetaGeoModel(), GammaGammaModel()
    >>> bgnbd.params_ = BetaGeoParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    >>> gg.params_ = GammaGammaParams(p=6.25, q=3.74, v=15.44)
    >>> clv = customer_lifetime_value(bgnbd, gg, [2, 0], [30.43, 0.0], [38.86, 38.86],
    ...                               [22.35, 0.0], horizon=52.0)
    >>> bool(clv[0] > clv[1] > 0)
    True
    """
    check_is_fitted(transaction_model)
    check_is_fitted(spend_model)
    if not (math.isfinite(horizon) and horizon >= 0):
        raise ValueError(f"horizon must be a finite non-negative time, got {horizon!r}")
    if not (math.isfinite(discount_rate) and discount_rate > -1):
        raise ValueError(f"discount_rate must be finite and > -1, got {discount_rate!r}")
    if not (math.isfinite(discount_period) and discount_period > 0):
        raise ValueError(f"discount_period must be positive, got {discount_period!r}")
    stats = _rfm_inputs(frequency, recency, T, ("frequency", "recency", "T"), fit=False,
                        extra=("monetary_value", monetary_value))
    x, t_x, age, m = stats.arrays
    spend = np.asarray(spend_model.expected_average_spend(x, m), dtype=np.float64)

    def purchases(t: float) -> np.ndarray:
        return np.asarray(transaction_model.expected_purchases(t, x, t_x, age), dtype=np.float64)

    if discount_rate == 0.0:
        value = spend * purchases(horizon)
    else:
        n_steps = math.ceil(horizon / discount_period - 1e-12)
        value = np.zeros(np.broadcast(x, t_x, age).shape)
        previous = np.zeros_like(value)
        # A loop over time steps (a few dozen), each vectorised over all customers.
        for k in range(1, n_steps + 1):
            t_k = min(k * discount_period, horizon)
            current = purchases(t_k)
            value += spend * (current - previous) / (1.0 + discount_rate) ** (t_k / discount_period)
            previous = current
    return _wrap(value, stats.index, "customer_lifetime_value")


# ---------------------------------------------------------------------------------------------
# Input handling


@dataclass(frozen=True)
class _Inputs:
    arrays: tuple[np.ndarray, ...]
    index: pd.Index | None  # index of the pandas input, for pandas-out
    labels: np.ndarray  # customer labels for error messages (index values or positions)


def _rfm_inputs(first: ArrayLike | pd.DataFrame, second: ArrayLike | None, third: ArrayLike | None,
                names: Sequence[str], *, fit: bool,
                extra: tuple[str, ArrayLike | None] | None = None) -> _Inputs:
    """Accept a DataFrame with the named columns, or one array per name; return float arrays."""
    all_names = [*names, *([extra[0]] if extra else [])]
    given = [second, third][: len(names) - 1] + ([extra[1]] if extra else [])
    if isinstance(first, pd.DataFrame):
        if any(v is not None for v in given):
            raise TypeError(f"pass either a DataFrame with columns {all_names} or one array "
                            "per column, not both")
        missing = [c for c in all_names if c not in first.columns]
        if missing:
            raise ValueError(f"DataFrame is missing column(s) {missing}; it needs {all_names}, "
                             f"has {list(first.columns)}")
        raw: list[Any] = [first[c] for c in all_names]
    else:
        absent = [n for n, v in zip(all_names[1:], given, strict=True) if v is None]
        if absent:
            raise TypeError(f"missing argument(s) {absent} (or pass a DataFrame with columns "
                            f"{all_names})")
        raw = [first, *given]
    index = next((v.index for v in raw if isinstance(v, pd.Series | pd.DataFrame)), None)
    arrays = []
    for name, value in zip(all_names, raw, strict=True):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be numeric: {error}") from error
        arrays.append(array)
    if fit:
        for name, array in zip(all_names, arrays, strict=True):
            if array.ndim != 1:
                raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError("inputs have different lengths: " + ", ".join(
                f"{n}={len(a)}" for n, a in zip(all_names, arrays, strict=True)))
        if not lengths.pop():
            raise ValueError("no customers to fit (empty inputs)")
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError as error:
        raise ValueError(f"inputs {all_names} do not broadcast together: {error}") from error
    if index is not None and (len(shape) != 1 or shape[0] != len(index)):
        index = None
    labels = (np.asarray(index) if index is not None
              else np.arange(math.prod(shape)).reshape(shape))
    for name, array in zip(all_names, arrays, strict=True):
        bad = ~np.isfinite(array)
        if bad.any():
            raise ValueError(f"{name} has {int(bad.sum())} missing or infinite value(s); "
                             f"customers: {_name(np.broadcast_to(labels, shape), bad)}")
    return _Inputs(tuple(arrays), index, labels)


def _name(labels: np.ndarray, mask: np.ndarray) -> str:
    labels_b, mask_b = np.broadcast_arrays(labels, mask)
    shown = labels_b[mask_b][:_MAX_EXAMPLES]
    more = int(mask_b.sum()) - len(shown)
    return ", ".join(str(v) for v in shown) + (f" and {more} more" if more > 0 else "")


def _check_rfm(x: np.ndarray, t_x: np.ndarray, age: np.ndarray, labels: np.ndarray) -> None:
    checks = [
        (x < 0, "frequency is negative"),
        (x != np.round(x), "frequency is not a whole number of repeat purchases"),
        (t_x < 0, "recency is negative"),
        (t_x > age * (1 + 1e-12), "recency exceeds T (recency is the age at the last purchase, "
                                  "not the time since it)"),
        ((x == 0) & (t_x > 0), "recency is positive although frequency is 0"),
    ]
    for bad, message in checks:
        if np.any(bad):
            raise ValueError(f"{int(np.sum(bad))} customer(s): {message}; customers: "
                             f"{_name(labels, bad)}")


def _check_spend(x: np.ndarray, m: np.ndarray, labels: np.ndarray, *,
                 allow_zero: bool = False) -> None:
    """Repeat purchases are whole and non-negative; a repeat customer's mean spend is positive
    for fitting (the Gamma likelihood of 0 is 0) and non-negative for prediction (a customer
    who paid nothing has a conditional mean spend shrunk toward 0, which the formula gives)."""
    x_b, m_b = np.broadcast_arrays(x, m)
    for bad, message in [(x_b < 0, "frequency is negative"),
                         (x_b != np.round(x_b), "frequency is not a whole number")]:
        if np.any(bad):
            raise ValueError(f"{int(np.sum(bad))} customer(s): {message}; customers: "
                             f"{_name(labels, bad)}")
    bad = (x_b > 0) & ((m_b < 0) if allow_zero else (m_b <= 0))
    if np.any(bad):
        raise ValueError(
            f"{int(np.sum(bad))} repeat customer(s) have a "
            f"{'negative' if allow_zero else 'zero or negative'} mean spend, which the "
            f"Gamma-Gamma model cannot represent (spend is Gamma distributed, so positive); "
            f"customers: {_name(labels, bad)}. Drop them, or treat refunds before summarising.")


def _check_weights(sample_weight: ArrayLike | None, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {weights.shape}")
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        raise ValueError(f"sample_weight has {int(bad.sum())} negative or non-finite values "
                         f"(positions {_name(np.arange(n), bad)})")
    if weights.sum() <= 0:
        raise ValueError("sample_weight sums to zero: nothing to fit")
    return weights


def _check_time(t: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(t, dtype=np.float64)
    bad = ~np.isfinite(array) | (array < 0)
    if bad.any():
        raise ValueError(f"{name} must be finite and >= 0; {int(bad.sum())} value(s) are not")
    return array


def _check_finite(values: np.ndarray, labels: np.ndarray, what: str) -> None:
    """Refuse to hand back NaN: the hypergeometric function can fail in extreme corners."""
    bad = ~np.isfinite(values)
    if np.any(bad):
        raise FloatingPointError(
            f"{what} could not be evaluated for {int(np.sum(bad))} customer(s) "
            f"({_name(labels, bad)}): the Gauss hypergeometric function did not converge. "
            "Try a shorter horizon t or express time in larger units.")


def _wrap(values: np.ndarray, index: pd.Index | None, name: str) -> np.ndarray | pd.Series:
    if index is not None and np.ndim(values) == 1 and len(values) == len(index):
        return pd.Series(values, index=index, name=name)
    return values


def _collapse(columns: tuple[np.ndarray, ...],
              weights: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Distinct rows of ``columns`` with summed weights; zero-weight rows dropped.

    First one sort of a single combined key (a fixed linear combination of the columns): rows
    with distinct keys are distinct rows, so when every key differs the columns come back as
    they are. Otherwise (duplicates, or a key shared by different rows) one lexsort of the
    columns merges exactly the equal rows.
    """
    keep = weights > 0
    if not keep.all():
        columns, weights = tuple(c[keep] for c in columns), weights[keep]
    key = columns[0].copy()
    for k, column in enumerate(columns[1:], start=1):
        key += column * (math.pi * 10.0**k)
    key.sort()
    if not np.any(key[1:] == key[:-1]):
        return columns, weights
    order = np.lexsort(columns[::-1])
    sorted_columns = [c[order] for c in columns]
    changed = np.zeros(len(order), dtype=bool)
    changed[0] = True
    for c in sorted_columns:
        changed[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(changed)
    summed = np.add.reduceat(weights[order], starts)
    return tuple(c[starts] for c in sorted_columns), summed


def _bgnbd_start(x: np.ndarray, age: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Data-driven starting log-parameters for the BG/NBD fit.

    ``r`` and ``alpha`` by the method of moments of the purchase rate ``x / T`` under the NBD
    part of the model (no dropout): ``E[x/T] = r/alpha`` and ``Var(x/T) = E[x/T] E[1/T] +
    r/alpha**2`` (the Poisson-gamma mixture of Fader, Hardie & Lee 2005, section 3);
    ``a = 1, b = 3`` (mean dropout probability 1/4 per purchase). Falls back to ``r = 1`` and
    ``alpha = 1 / E[x/T]`` when the rates show no extra-Poisson variance. The fit starts here
    and converges wherever the likelihood has its maximum; the start only saves iterations.
    """
    w_total = float(weights.sum())
    rate = x / age
    mean = cm.dot(weights, rate) / w_total
    variance = cm.dot(weights, (rate - mean) ** 2) / w_total
    excess = variance - mean * cm.dot(weights, (1.0 / age)) / w_total
    if mean <= 0.0:
        return np.zeros(4)
    if excess > 0.0:
        alpha = mean / excess
        r = mean * alpha
    else:
        r, alpha = 1.0, 1.0 / mean
    start: np.ndarray = np.log(np.clip([r, alpha, 1.0, 3.0], 1e-6, 1e6))
    return start


def _gamma_gamma_start(x: np.ndarray, m: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Data-driven starting log-parameters for the Gamma-Gamma fit (method of moments).

    Given ``nu``, the mean ``m`` of ``x`` spends has mean ``p/nu`` and variance
    ``p/(x nu**2)``; with ``1/nu ~ InvGamma(q, v)``: ``E[m] = p v/(q-1)`` and ``Var(m | x) =
    beta / x + gamma`` with ``beta = p v**2 / ((q-1)(q-2))`` and ``gamma = p**2 v**2 /
    ((q-1)**2 (q-2))`` (the model of Fader, Hardie & Lee 2005, "RFM and CLV", section 4,
    and Fader & Hardie 2013). A weighted regression of ``(m - E[m])**2`` on
    ``1/x`` gives ``beta`` and ``gamma``, then ``q = 2 + E[m]**2 / gamma``, ``p = (q-1) E[m]**2
    / ((q-2) beta)`` and ``v = E[m] (q-1) / p``. Falls back to ``p = q = v = 1`` where the
    moments are not those of a model with ``q > 2``.
    """
    w_total = float(weights.sum())
    mean = cm.dot(weights, m) / w_total
    deviation = (m - mean) ** 2
    inv_x = 1.0 / x
    inv_x_mean = cm.dot(weights, inv_x) / w_total
    deviation_mean = cm.dot(weights, deviation) / w_total
    spread = cm.dot(weights, (inv_x - inv_x_mean) ** 2)
    if spread <= 0.0:
        return np.zeros(3)
    slope = cm.dot(weights, ((inv_x - inv_x_mean) * (deviation - deviation_mean))) / spread
    intercept = deviation_mean - slope * inv_x_mean
    if not (slope > 0.0 and intercept > 0.0 and mean > 0.0):
        return np.zeros(3)
    q = 2.0 + mean**2 / intercept
    p = (q - 1.0) * mean**2 / ((q - 2.0) * slope)
    v = mean * (q - 1.0) / p
    start: np.ndarray = np.log(np.clip([p, q, v], 1e-6, 1e6))
    return start


# ---------------------------------------------------------------------------------------------
# Optimisation


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()  # inspecting the loaded libraries costs ~2 ms: once


def _one_blas_thread() -> AbstractContextManager[Any]:
    """Limit BLAS to one thread during a fit.

    scipy's L-BFGS-B calls BLAS/LAPACK on 4 x 4 problems; on a machine whose cores are busy
    with other work, OpenBLAS's spinning worker threads made each of its iterations take ~5 ms
    in our measurements, several times the cost of a likelihood evaluation on 23,570
    customers. The likelihoods avoid BLAS altogether (``_clv_math.dot``).
    """
    limit: AbstractContextManager[Any] = _threadpools().limit(limits=1, user_api="blas")
    return limit


@dataclass(frozen=True)
class _Optimum:
    x: np.ndarray  # log-parameters
    fun: float  # objective at x
    jac: np.ndarray  # its gradient at x
    method: str
    hessian: np.ndarray | None = None  # its Hessian at x, when the Newton polish computed it


def _maximise(model: str, objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
              starts: Sequence[np.ndarray], names: Sequence[str], scaling_hint: str,
              hessian: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> _Optimum:
    """Minimise ``objective`` (mean negative log-likelihood + penalty) over log-parameters.

    For each start (the first is data-driven): L-BFGS-B with the analytic gradient, until the
    projected gradient is below 1e-6; if that does not reach a stationary point inside the
    box, Nelder-Mead from where it stopped, polished by L-BFGS-B. The first start that
    converges wins, and is polished by Newton steps with the analytic ``hessian(x,
    gradient)`` (:func:`_newton_polish`).

    Why the polish: near the optimum the objective changes by ``|g|**2 / (2 lambda)``, which
    for ``|g| < 1e-8`` is below the rounding noise of a sum over thousands of customers, so a
    line search on function values (L-BFGS-B's) stalls there and spends evaluations; a Newton
    step uses only the gradient, accurate to ~1e-14, and squares the error.
    """
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(names)

    def value_only(log_params: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            value = objective(log_params)[0]
        return value if math.isfinite(value) else math.inf

    def safe(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(all="ignore"):
            value, gradient = objective(log_params)
        if not (math.isfinite(value) and np.all(np.isfinite(gradient))):
            return math.inf, np.zeros_like(log_params)
        return value, gradient

    def converged(result: _Optimum) -> bool:
        inside = bool(np.all(np.abs(result.x) < _LOG_BOUND - 1e-3))
        return (math.isfinite(result.fun) and inside
                and float(np.max(np.abs(result.jac))) < _GRAD_TOL)

    def lbfgsb(x0: np.ndarray, method: str) -> _Optimum:
        with _one_blas_thread():
            result = minimize(safe, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-6})
        x = np.asarray(result.x, dtype=np.float64)
        jac = np.asarray(result.jac, dtype=np.float64)
        return _Optimum(x, float(result.fun), jac, method)

    best: _Optimum | None = None
    for x0 in starts:
        candidate = lbfgsb(np.asarray(x0, dtype=np.float64), "L-BFGS-B")
        if converged(candidate):
            return _newton_polish(candidate, safe, hessian)
        start = candidate.x if math.isfinite(candidate.fun) else x0
        simplex = minimize(value_only, start, method="Nelder-Mead",
                           options={"maxiter": 4000 * len(names), "xatol": 1e-10,
                                    "fatol": 1e-14})
        candidate = lbfgsb(np.clip(simplex.x, -_LOG_BOUND, _LOG_BOUND),
                           "Nelder-Mead + L-BFGS-B")
        if converged(candidate):
            return _newton_polish(candidate, safe, hessian)
        if best is None or candidate.fun < best.fun:
            best = candidate
    assert best is not None
    last = ", ".join(f"{n}={math.exp(v):.3g}" for n, v in zip(names, best.x, strict=True))
    extreme = [n for n, v in zip(names, best.x, strict=True) if abs(v) > math.log(1e6)]
    detail = (f"{', '.join(extreme)} ran off towards 0 or infinity (last point {last}), so the "
              "likelihood has no interior maximum on these data (for BG/NBD, a and b growing "
              "together means no visible heterogeneity in dropout)" if extreme else
              f"largest gradient component {float(np.max(np.abs(best.jac))):.2e} at {last} "
              f"after {len(starts)} starting points")
    raise ConvergenceError(
        f"{model} fit did not converge: {detail}. Try: a penalizer (e.g. penalizer=0.001, "
        f"then 0.01 or 0.1), {scaling_hint}, and checking that the data has enough repeat "
        "customers and variation.")


# Newton polishing stops when every gradient component of the mean objective is below this.
_NEWTON_TOL = 1e-10


def _newton_polish(start: _Optimum, objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
                   hessian: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   max_steps: int = 4) -> _Optimum:
    """Newton steps ``x - H^-1 g`` from a converged L-BFGS-B point, with the analytic Hessian.

    A step is kept only if it lowers the largest gradient component without raising the
    objective beyond rounding (``1e-12`` relative); polishing stops at ``_NEWTON_TOL``, at a
    Hessian that is not positive definite, or at a rejected step. The result carries the
    Hessian at its point (for the standard errors) when it was computed there.
    """
    current = start
    steps = 0
    while True:
        with _one_blas_thread():
            h = hessian(current.x, current.jac)
        current = _Optimum(current.x, current.fun, current.jac, current.method, h)
        if float(np.max(np.abs(current.jac))) < _NEWTON_TOL or steps == max_steps:
            return current
        try:
            with _one_blas_thread():
                np.linalg.cholesky(h)  # positive definite, or no Newton step
                step = -np.linalg.solve(h, current.jac)
        except np.linalg.LinAlgError:
            return current
        x = np.clip(current.x + step, -_LOG_BOUND, _LOG_BOUND)
        value, gradient = objective(x)
        if not (math.isfinite(value)
                and value <= current.fun + 1e-12 * max(1.0, abs(current.fun))
                and float(np.max(np.abs(gradient))) < float(np.max(np.abs(current.jac)))):
            return current
        steps += 1
        method = current.method if current.method.endswith("Newton") else \
            current.method + " + Newton"
        current = _Optimum(x, value, gradient, method)


def _log_space_hessian(natural: np.ndarray, log_gradient: np.ndarray,
                       params: np.ndarray) -> np.ndarray:
    """Hessian in log-parameters from the Hessian in parameters ``params = exp(theta)``.

    ``d2f/dtheta_i dtheta_j = p_i p_j d2f/dp_i dp_j + [i = j] df/dtheta_i``.
    """
    result: np.ndarray = natural * np.outer(params, params) + np.diag(log_gradient)
    return result


def _standard_errors(hessian: np.ndarray, n: float) -> np.ndarray:
    """Standard errors of log-parameters: sqrt(diag(inverse Hessian of the total objective)).

    ``hessian`` is the analytic Hessian of the mean objective in log-parameters; the total is
    ``n`` times it. Multiplying by the parameters maps them to natural units (delta method),
    which callers do.
    """
    k = len(hessian)
    hessian = (hessian + hessian.T) / 2
    try:
        with _one_blas_thread():
            np.linalg.cholesky(hessian)
            covariance = np.linalg.inv(hessian) / n
    except np.linalg.LinAlgError:
        warnings.warn("the Hessian at the fitted parameters is not positive definite; standard "
                      "errors are NaN (the fit may sit on a flat ridge: try a penalizer)",
                      RuntimeWarning, stacklevel=3)
        return np.full(k, np.nan)
    return np.asarray(np.sqrt(np.diag(covariance)), dtype=np.float64)
