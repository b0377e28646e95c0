"""Lifetime-value candidates besides the boosted model, as estimators on the feature table.

The LTV job chooses among :class:`~barberpro_ml.models.LTVRegressor`,
:class:`ProbabilisticLTV`, :class:`BlendedLTV` and :class:`NaiveLTV` on a validation period and
registers whichever wins; every one of them fits and predicts from the same feature table
(:func:`barberpro_ml.features.customer_features` plus
:data:`~barberpro_ml.features.RFM_FEATURES`), so the registered pyfunc serves the winner
without knowing which it is.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the Easy
   Way: An Alternative to the Pareto/NBD Model. *Marketing Science* 24(2), 275-284.
.. [2] Fader, P. S. & Hardie, B. G. S. (2013). The Gamma-Gamma Model of Monetary Value.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.models._params import ValidatedEstimator, fit_context
from barberpro_ml.models.clv import BetaGeoModel, GammaGammaModel, customer_lifetime_value

__all__ = ["MIN_GAMMA_GAMMA_CUSTOMERS", "BlendedLTV", "NaiveLTV", "ProbabilisticLTV"]

WEEK_DAYS = 7.0
RFM_COLUMNS = ("rfm_frequency", "rfm_recency_weeks", "rfm_age_weeks", "rfm_monetary")
MIN_GAMMA_GAMMA_CUSTOMERS = 20
"""Fewest positive-spend repeat customers the Gamma-Gamma fit is attempted on."""


def _rfm(X: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise InputError(f"expected a DataFrame with columns {list(RFM_COLUMNS)}, got "
                         f"{type(X).__name__}")
    missing = [c for c in RFM_COLUMNS if c not in X.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}: add them with "
                         "barberpro_ml.features.with_rfm_features")
    frame = X.loc[:, list(RFM_COLUMNS)].astype("float64")
    return pd.DataFrame({"frequency": frame["rfm_frequency"].to_numpy(),
                         "recency": frame["rfm_recency_weeks"].to_numpy(),
                         "T": frame["rfm_age_weeks"].to_numpy(),
                         "monetary_value": frame["rfm_monetary"].to_numpy()}, index=X.index)


class ProbabilisticLTV(RegressorMixin, ValidatedEstimator):  # type: ignore[misc]
    """BG/NBD x Gamma-Gamma expected revenue over ``horizon_days`` (undiscounted) [1]_ [2]_.

    Fitted on one cut-off's rows: BG/NBD on every customer with a visit (``rfm_age_weeks >
    0``); Gamma-Gamma on the repeat customers with a positive mean spend (a Gamma density has
    no mass at 0: repeat customers who paid nothing on average are left out of the fit,
    counted in ``n_left_out_``, and forecast with the model's conditional mean at their
    observed 0). Customers without a visit are forecast 0 (the BG/NBD starts at the first
    purchase).

    Parameters
    ----------
    horizon_days : float, default=365
        Forecast horizon in days.
    penalizer : float, default=0.0
        L2 penalty on the log parameters of both models (0: maximum likelihood).

    Attributes
    ----------
    bgnbd_ : BetaGeoModel
    gamma_gamma_ : GammaGammaModel
    n_left_out_ : int
        Repeat customers with a zero or negative mean spend, not in the Gamma-Gamma fit.

    Examples
    --------
    >>> from barberpro_ml.data import SimulationConfig, simulate
    >>> from barberpro_ml.features import rfm_features
    >>> data = simulate(SimulationConfig(n_customers=1000, seed=1))
    >>> X = rfm_features(data, "2024-06-30")
    >>> model = ProbabilisticLTV(horizon_days=182).fit(X)
    >>> bool((model.predict(X) > 0).all())
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "horizon_days": [Interval(Real, 0, None, closed="neither")],
        "penalizer": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, horizon_days: float = 365.0, penalizer: float = 0.0) -> None:
        self.horizon_days = horizon_days
        self.penalizer = penalizer

    @fit_context
    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        rfm = _rfm(X)
        visited = rfm.loc[rfm["T"] > 0]
        repeat = visited["frequency"] > 0
        paying = repeat & (visited["monetary_value"] > 0)
        if int(paying.sum()) < MIN_GAMMA_GAMMA_CUSTOMERS:
            raise NotEnoughDataError(
                f"only {int(paying.sum())} repeat customers with a positive mean spend; the "
                f"Gamma-Gamma spend model needs at least {MIN_GAMMA_GAMMA_CUSTOMERS}")
        self.bgnbd_ = BetaGeoModel(penalizer=self.penalizer).fit(visited)
        self.gamma_gamma_ = GammaGammaModel(penalizer=self.penalizer).fit(visited.loc[paying])
        if self.gamma_gamma_.params_.q <= 1.0:
            raise NotEnoughDataError(
                f"the Gamma-Gamma fit has q = {self.gamma_gamma_.params_.q:.3g} <= 1 (an "
                "infinite mean spend): the spend data do not identify the model; try a "
                "penalizer")
        self.n_left_out_ = int((repeat & ~paying).sum())
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "bgnbd_")
        rfm = _rfm(X)
        rfm = rfm.assign(monetary_value=rfm["monetary_value"].clip(lower=0.0))
        value = np.zeros(len(rfm))
        seen = (rfm["T"] > 0).to_numpy()
        if seen.any():
            value[seen] = np.asarray(customer_lifetime_value(
                self.bgnbd_, self.gamma_gamma_, rfm.loc[seen],
                horizon=float(self.horizon_days) / WEEK_DAYS, discount_rate=0.0), dtype=float)
        return value

    def clv_params(self) -> dict[str, Any]:
        """The fitted parameters, as the scorer's probability alive reads them."""
        check_is_fitted(self, "bgnbd_")
        return {"bgnbd": self.bgnbd_.params_.as_dict(),
                "gamma_gamma": self.gamma_gamma_.params_.as_dict(), "time_unit_days": WEEK_DAYS}


class NaiveLTV(RegressorMixin, ValidatedEstimator):  # type: ignore[misc]
    """Past spend extrapolated: revenue over the last ``window_days`` per day signed up in that
    window (at least ``min_observed_days``), times ``horizon_days``.

    Reads ``spend_<window_days>d`` and ``tenure_days`` of the customer features; nothing to
    fit.

    Examples
    --------
    >>> X = pd.DataFrame({"spend_365d": [100.0, 0.0], "tenure_days": [730.0, 10.0]})
    >>> NaiveLTV(horizon_days=365).fit(X).predict(X).tolist()
    [100.0, 0.0]
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "horizon_days": [Interval(Real, 0, None, closed="neither")],
        "window_days": [Interval(Real, 0, None, closed="neither")],
        "min_observed_days": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, horizon_days: float = 365.0, window_days: int = 365,
                 min_observed_days: float = 30.0) -> None:
        self.horizon_days = horizon_days
        self.window_days = window_days
        self.min_observed_days = min_observed_days

    def _columns(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        spend = f"spend_{int(self.window_days)}d"
        missing = [c for c in (spend, "tenure_days") if c not in X.columns]
        if missing:
            raise InputError(f"NaiveLTV needs column(s) {missing} (customer features with a "
                             f"{int(self.window_days)}-day window)")
        return (X[spend].to_numpy(dtype=float), X["tenure_days"].to_numpy(dtype=float))

    @fit_context
    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        self._columns(X)
        self.n_features_in_ = X.shape[1]
        self.fitted_ = True
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "fitted_")
        spend, tenure = self._columns(X)
        observed = np.clip(tenure, self.min_observed_days, self.window_days)
        return np.asarray(spend * float(self.horizon_days) / observed, dtype=float)


class BlendedLTV(RegressorMixin, ValidatedEstimator):  # type: ignore[misc]
    """A convex combination of already-fitted LTV models: ``sum_i weights[i] * model_i(X)``.

    The weights are chosen by the caller on validation data (the LTV job searches them on its
    validation period); ``fit`` only checks them.

    Parameters
    ----------
    estimators : sequence of fitted regressors
    weights : sequence of float
        Non-negative, summing to 1.

    Examples
    --------
    >>> X = pd.DataFrame({"spend_365d": [100.0], "tenure_days": [730.0]})
    >>> a, b = NaiveLTV().fit(X), NaiveLTV(horizon_days=730).fit(X)
    >>> BlendedLTV([a, b], [0.5, 0.5]).fit(X).predict(X).tolist()
    [150.0]
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "estimators": [list, tuple], "weights": [list, tuple],
    }

    def __init__(self, estimators: Sequence[Any] = (), weights: Sequence[float] = ()) -> None:
        self.estimators = estimators
        self.weights = weights

    @fit_context
    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        w = np.asarray(self.weights, dtype=float)
        if len(self.estimators) == 0 or len(w) != len(self.estimators):
            raise InputError(f"BlendedLTV needs one weight per estimator, got "
                             f"{len(self.estimators)} estimators and {len(w)} weights")
        if (w < 0).any() or not np.isclose(w.sum(), 1.0):
            raise InputError(f"BlendedLTV weights must be non-negative and sum to 1, got "
                             f"{w.tolist()}")
        for estimator in self.estimators:
            check_is_fitted(estimator)
        self.weights_ = w
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "weights_")
        return np.asarray(sum(w * np.asarray(m.predict(X), dtype=float)
                              for w, m in zip(self.weights_, self.estimators, strict=True)),
                          dtype=float)
