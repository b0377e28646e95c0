"""Uplift models: who a retention offer works on. T-, X- and DR-learners on XGBoost.

Every learner estimates the conditional average treatment effect on **churn reduction**,

    tau(x) = P(churn | x, no offer) - P(churn | x, offer),

positive when the offer keeps the customer (the sign of
:func:`barberpro_ml.evaluation.campaign_effects`' ``absolute_reduction``). They are
scikit-learn estimators (``fit(X, treatment, y, propensity=None)`` returns ``self``,
``predict(X)`` gives ``tau``); the propensity may be given, as it is known from the
randomisation (the designed treated share), else it is the treated share of the training rows.

- :class:`TLearner`: two outcome models, one per arm; ``tau = mu0 - mu1`` [1]_.
- :class:`XLearner`: imputed effects ``mu0(x) - y`` on treated rows and ``y - mu1(x)`` on
  control rows (in churn-reduction sign), each regressed on ``x``, combined with the
  propensity as weight, ``tau = e tau0 + (1 - e) tau1`` [1]_.
- :class:`DRLearner`: the doubly robust (AIPW) pseudo-outcome with cross-fitted outcome
  models, ``psi = mu0 - mu1 + (1 - T)(Y - mu0) / (1 - e) - T (Y - mu1) / e``, regressed on
  ``x`` [2]_; unbiased for ``tau`` whenever the propensity is right, as it is under
  randomisation.
- :class:`ProportionalLearner`: the offer cuts churn by the same share ``rho`` for everyone,
  ``tau(x) = rho mu0(x)``: targeting by churn risk, written as an uplift model. One churn
  model on the control arm (all the data there is for it) and one pooled number; where the
  effect is carried by who is about to lapse, it ranks better than a difference of two noisy
  models, and as a candidate the job keeps it only when it wins on the validation campaign.

Own code rather than causalml or econml: neither is in the environment, both wrap the same
few lines around a base learner, and a known (not estimated) propensity is what a randomised
campaign gives; the learners are short enough to test against the definitions directly.

References
----------
.. [1] Künzel, S. R., Sekhon, J. S., Bickel, P. J. & Yu, B. (2019). Metalearners for
   estimating heterogeneous treatment effects using machine learning. *PNAS* 116(10),
   4156-4165.
.. [2] Kennedy, E. H. (2023). Towards optimal doubly robust estimation of heterogeneous
   causal effects. *Electronic Journal of Statistics* 17(2), 3008-3049.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted
from xgboost import XGBClassifier, XGBRegressor

from barberpro_ml.errors import InputError

__all__ = ["LEARNERS", "DRLearner", "ProportionalLearner", "TLearner", "UpliftLearner",
           "XLearner"]

FloatArray = npt.NDArray[np.float64]


def _matrix(X: Any) -> FloatArray:
    array = np.asarray(X.to_numpy(dtype=np.float64) if isinstance(X, pd.DataFrame) else X,
                       dtype=np.float64)
    if array.ndim != 2:
        raise InputError(f"X: expected a 2-d table of features, got shape {array.shape}")
    if np.isinf(array).any():
        raise InputError(f"X: {int(np.isinf(array).sum())} infinite value(s); NaN (missing) is "
                         "allowed, infinity is not")
    return array


def _binary(name: str, values: Any, n: int) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.shape != (n,):
        raise InputError(f"{name}: expected {n} values (one per row of X), got {array.size}")
    bad = ~np.isin(array, (0.0, 1.0))
    if bad.any():
        raise InputError(f"{name}: expected 0/1 values; {int(bad.sum())} others "
                         f"(examples: {np.unique(array[bad])[:5].tolist()})")
    return array


def _propensity(values: Any, treatment: FloatArray) -> FloatArray:
    n = treatment.size
    if values is None:
        share = float(treatment.mean())
        return np.full(n, share)
    array = np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)).astype(np.float64)
    bad = ~((array > 0) & (array < 1))
    if bad.any():
        raise InputError(f"propensity: {int(bad.sum())} value(s) outside (0, 1) "
                         f"(examples: {np.unique(array[bad])[:5].tolist()})")
    return array


class UpliftLearner(BaseEstimator):  # type: ignore[misc]
    """Shared parameters and checks of the meta-learners (not used on its own).

    Parameters
    ----------
    n_estimators, max_depth, learning_rate, min_child_weight, subsample
        Of every XGBoost base learner.
    random_state
        Seed of the base learners (and of the DR-learner's folds).
    """

    def __init__(self, *, n_estimators: int = 200, max_depth: int = 3,
                 learning_rate: float = 0.05, min_child_weight: float = 20.0,
                 subsample: float = 0.8, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.random_state = random_state

    def _xgb(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "max_depth": self.max_depth,
                "learning_rate": self.learning_rate,
                "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                "random_state": self.random_state, "n_jobs": 1, "tree_method": "hist"}

    def _classifier(self) -> XGBClassifier:
        return XGBClassifier(**self._xgb(), eval_metric="logloss")

    def _regressor(self) -> XGBRegressor:
        return XGBRegressor(**self._xgb())

    def _check(self, X: Any, treatment: Any, y: Any, propensity: Any
               ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        for name in ("n_estimators", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if not 0 < self.learning_rate <= 1 or not 0 < self.subsample <= 1:
            raise ValueError("learning_rate and subsample: expected values in (0, 1], got "
                             f"{self.learning_rate!r} and {self.subsample!r}")
        x = _matrix(X)
        t = _binary("treatment", treatment, x.shape[0])
        outcome = _binary("y", y, x.shape[0])
        for arm, label in ((1.0, "treated"), (0.0, "control")):
            rows = t == arm
            if rows.sum() < 2 or np.unique(outcome[rows]).size < 2:
                raise InputError(f"treatment: the {label} arm needs at least two rows with "
                                 f"both outcomes; it has {int(rows.sum())} row(s) and "
                                 f"{int(outcome[rows].sum())} churned")
        self.n_features_in_ = x.shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return x, t, outcome, _propensity(propensity, t)

    def predict(self, X: Any) -> FloatArray:
        """Estimated churn reduction ``tau(x)`` of the offer, one per row of ``X``."""
        check_is_fitted(self, "n_features_in_")
        x = _matrix(X)
        if x.shape[1] != self.n_features_in_:
            raise InputError(f"X: expected {self.n_features_in_} features as in fit, got "
                             f"{x.shape[1]}")
        return self._tau(x)

    def _tau(self, x: FloatArray) -> FloatArray:
        raise NotImplementedError


def _proba(model: XGBClassifier, x: FloatArray) -> FloatArray:
    return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)


class TLearner(UpliftLearner):
    """Two-model uplift: ``tau(x) = mu0(x) - mu1(x)``, churn probability per arm.

    Attributes
    ----------
    model_control_, model_treated_
        The XGBoost churn classifiers of each arm.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3)); t = rng.integers(0, 2, 2000)
    >>> y = (rng.random(2000) < 0.5 - 0.2 * t).astype(int)
    >>> tau = TLearner(n_estimators=50).fit(X, t, y).predict(X)
    >>> bool(0.1 < tau.mean() < 0.3)
    True
    """

    def fit(self, X: Any, treatment: Any, y: Any, propensity: Any = None) -> TLearner:
        """Fit one churn classifier per arm (``propensity`` is not used by this learner).

        Parameters
        ----------
        X
            Features, one row per targeted customer.
        treatment
            1 for the offer, 0 for control.
        y
            1 when the customer churned.
        propensity
            Accepted for a common signature; unused.

        Returns
        -------
        TLearner
            ``self``.
        """
        x, t, outcome, _ = self._check(X, treatment, y, propensity)
        self.model_control_ = self._classifier().fit(x[t == 0], outcome[t == 0])
        self.model_treated_ = self._classifier().fit(x[t == 1], outcome[t == 1])
        return self

    def _tau(self, x: FloatArray) -> FloatArray:
        return _proba(self.model_control_, x) - _proba(self.model_treated_, x)

    def predict_churn(self, X: Any) -> tuple[FloatArray, FloatArray]:
        """Churn probability without and with the offer, ``(mu0, mu1)``."""
        check_is_fitted(self, "model_control_")
        x = _matrix(X)
        return _proba(self.model_control_, x), _proba(self.model_treated_, x)


class XLearner(UpliftLearner):
    """X-learner [1]_: imputed individual effects regressed per arm, blended by propensity.

    Attributes
    ----------
    model_control_, model_treated_
        Churn classifiers per arm (first stage).
    effect_control_, effect_treated_
        Regressions of the imputed effects on control and treated rows.
    propensity_
        The mean propensity used to blend at prediction time.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3)); t = rng.integers(0, 2, 2000)
    >>> y = (rng.random(2000) < 0.5 - 0.2 * t).astype(int)
    >>> tau = XLearner(n_estimators=50).fit(X, t, y, propensity=0.5).predict(X)
    >>> bool(0.1 < tau.mean() < 0.3)
    True
    """

    def fit(self, X: Any, treatment: Any, y: Any, propensity: Any = None) -> XLearner:
        """Fit the two stages.

        Parameters
        ----------
        X, treatment, y
            As :meth:`TLearner.fit`.
        propensity
            Probability of the offer per row (scalar or array; known from the randomisation);
            default the treated share.

        Returns
        -------
        XLearner
            ``self``.
        """
        x, t, outcome, e = self._check(X, treatment, y, propensity)
        treated, control = t == 1, t == 0
        self.model_control_ = self._classifier().fit(x[control], outcome[control])
        self.model_treated_ = self._classifier().fit(x[treated], outcome[treated])
        # imputed churn reductions: what the other arm's model says minus what happened
        d_treated = _proba(self.model_control_, x[treated]) - outcome[treated]
        d_control = outcome[control] - _proba(self.model_treated_, x[control])
        self.effect_treated_ = self._regressor().fit(x[treated], d_treated)
        self.effect_control_ = self._regressor().fit(x[control], d_control)
        self.propensity_ = float(e.mean())
        return self

    def _tau(self, x: FloatArray) -> FloatArray:
        g = self.propensity_
        return np.asarray(g * self.effect_control_.predict(x)
                          + (1 - g) * self.effect_treated_.predict(x), dtype=np.float64)


class DRLearner(UpliftLearner):
    """DR-learner [2]_: the AIPW pseudo-outcome, with cross-fitted outcome models, regressed
    on the features.

    Parameters
    ----------
    n_folds
        Folds of the cross-fitting (outcome models are fit on the other folds).
    **kwargs
        The base learners' parameters (:class:`UpliftLearner`).

    Attributes
    ----------
    effect_
        The final regression of the pseudo-outcome.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3)); t = rng.integers(0, 2, 2000)
    >>> y = (rng.random(2000) < 0.5 - 0.2 * t).astype(int)
    >>> tau = DRLearner(n_estimators=50).fit(X, t, y, propensity=0.5).predict(X)
    >>> bool(0.1 < tau.mean() < 0.3)
    True
    """

    def __init__(self, *, n_folds: int = 3, n_estimators: int = 200, max_depth: int = 3,
                 learning_rate: float = 0.05, min_child_weight: float = 20.0,
                 subsample: float = 0.8, random_state: int = 0) -> None:
        super().__init__(n_estimators=n_estimators, max_depth=max_depth,
                         learning_rate=learning_rate, min_child_weight=min_child_weight,
                         subsample=subsample, random_state=random_state)
        self.n_folds = n_folds

    def fit(self, X: Any, treatment: Any, y: Any, propensity: Any = None) -> DRLearner:
        """Cross-fit the outcome models, then regress the pseudo-outcome.

        Parameters
        ----------
        X, treatment, y
            As :meth:`TLearner.fit`.
        propensity
            As :meth:`XLearner.fit`.

        Returns
        -------
        DRLearner
            ``self``.
        """
        if isinstance(self.n_folds, bool) or not isinstance(self.n_folds, int) or (
                self.n_folds < 2):
            raise ValueError(f"n_folds: expected an integer >= 2, got {self.n_folds!r}")
        x, t, outcome, e = self._check(X, treatment, y, propensity)
        mu0, mu1 = np.empty(t.size), np.empty(t.size)
        # stratified on arm x outcome so every training fold has both outcomes in both arms
        folds = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.random_state)
        for train, test in folds.split(x, 2 * t + outcome):
            for arm, target in ((0.0, mu0), (1.0, mu1)):
                rows = train[t[train] == arm]
                target[test] = _proba(self._classifier().fit(x[rows], outcome[rows]), x[test])
        pseudo = (mu0 - mu1 + (1 - t) * (outcome - mu0) / (1 - e)
                  - t * (outcome - mu1) / e)
        self.effect_ = self._regressor().fit(x, pseudo)
        return self

    def _tau(self, x: FloatArray) -> FloatArray:
        return np.asarray(self.effect_.predict(x), dtype=np.float64)


class ProportionalLearner(UpliftLearner):
    """Churn risk as an uplift model: ``tau(x) = rho mu0(x)``, ``rho`` the pooled relative
    churn reduction of the offer.

    ``mu0`` is an XGBoost churn classifier fitted on the control arm; ``rho = 1 - r1 / r0``
    with ``r_a`` the arm's churn rate, each arm weighted by the inverse of its propensity
    (Hajek), and clipped to ``[-1, 1]``. It assumes the offer removes the same share of every
    customer's churn, so it ranks customers exactly as their churn risk does; what it adds
    over plain churn-risk targeting is the scale, an uplift the policy can price.

    Attributes
    ----------
    model_control_
        The churn classifier of the control arm.
    relative_reduction_
        ``rho``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(4000, 2)); t = rng.integers(0, 2, 4000)
    >>> risk = 1 / (1 + np.exp(-X[:, 0]))
    >>> y = (rng.random(4000) < risk * (1 - 0.3 * t)).astype(int)
    >>> model = ProportionalLearner(n_estimators=50).fit(X, t, y)
    >>> bool(0.2 < model.relative_reduction_ < 0.4)
    True
    """

    def fit(self, X: Any, treatment: Any, y: Any, propensity: Any = None
            ) -> ProportionalLearner:
        """Fit the control arm's churn classifier and the pooled relative reduction.

        Parameters
        ----------
        X
            Features, one row per targeted customer.
        treatment
            1 for the offer, 0 for control.
        y
            1 when the customer churned.
        propensity
            Probability of the offer per row (known from the randomisation); default: the
            treated share.

        Returns
        -------
        ProportionalLearner
            ``self``.
        """
        x, t, outcome, e = self._check(X, treatment, y, propensity)
        self.model_control_ = self._classifier().fit(x[t == 0], outcome[t == 0])
        w1, w0 = t / e, (1 - t) / (1 - e)
        r1 = float(np.sum(w1 * outcome) / np.sum(w1))
        r0 = float(np.sum(w0 * outcome) / np.sum(w0))
        self.relative_reduction_ = float(np.clip(1.0 - r1 / r0, -1.0, 1.0))
        return self

    def _tau(self, x: FloatArray) -> FloatArray:
        return self.relative_reduction_ * _proba(self.model_control_, x)


LEARNERS: dict[str, type[UpliftLearner]] = {"t": TLearner, "x": XLearner, "dr": DRLearner,
                                            "proportional": ProportionalLearner}
"""The learners by the name a job config uses."""
