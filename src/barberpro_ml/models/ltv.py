"""The machine-learned lifetime value: gradient boosting with a Tweedie objective.

:class:`LTVRegressor` predicts the revenue a customer brings in the next ``horizon_days``
(:func:`barberpro_ml.features.ltv_labels`) from any feature table. Revenue per customer is a
compound of a count (visits) and a positive amount (spend per visit): most customers bring
exactly 0, a few bring a lot. The Tweedie distribution with variance power ``1 < p < 2`` is
exactly that compound Poisson-gamma law [1]_ [2]_, so its deviance fits the zeros and the long
right tail with one log-link model, and predictions are positive by construction.

References
----------
.. [1] Jørgensen, B. (1987). Exponential dispersion models. *Journal of the Royal Statistical
   Society B* 49(2), 127-162 (the Tweedie family, compound Poisson-gamma for 1 < p < 2).
.. [2] Yang, Y., Qian, W. & Zou, H. (2018). Insurance premium prediction via gradient
   tree-boosted Tweedie compound Poisson models. *Journal of Business & Economic Statistics*
   36(3), 456-470.
.. [3] Chen, T. & Guestrin, C. (2016). XGBoost: A scalable tree boosting system. *KDD '16*.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar, Self

import numpy as np
import xgboost as xgb
from sklearn.base import RegressorMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import column_or_1d

from barberpro_ml.models._boosted import BoostedTreeModel
from barberpro_ml.models._params import fit_context

__all__ = ["LTVRegressor"]


class LTVRegressor(RegressorMixin, BoostedTreeModel):  # type: ignore[misc]
    """Customer lifetime value (future revenue) by XGBoost with a Tweedie objective.

    Numeric and bool columns are used as numbers (NaN = missing); pandas ``category``,
    ``object`` and ``string`` columns are categorical with native XGBoost splits [3]_, their
    levels learned at fit (a level unseen at fit is scored as missing, with an
    :class:`~barberpro_ml.models.UnseenCategoryWarning`), as in
    :class:`~barberpro_ml.models.ChurnClassifier`. NumPy arrays are all-numeric tables.

    Boosting stops early on the Tweedie deviance of validation rows: ``X_valid, y_valid``
    when given, else a random ``validation_fraction`` of the training rows (seeded by
    ``random_state``) that is held out and not trained on.

    :meth:`feature_contributions` gives per-row SHAP values of :meth:`predict_margin`, the
    log of the expected revenue before ``prediction_scale`` (the Tweedie log link): a
    feature's value is the log of the factor it multiplies that customer's prediction by.

    Parameters
    ----------
    tweedie_variance_power : float, default=1.5
        Variance power ``p`` of the Tweedie deviance, in ``[1, 2)``: 1 is Poisson, towards 2
        gamma; in between a compound Poisson-gamma law with a point mass at zero [1]_.
    n_estimators : int, default=1000
        Maximum boosting rounds (early stopping usually ends sooner).
    learning_rate, max_depth, min_child_weight, subsample, colsample_bytree, reg_lambda, \
reg_alpha
        XGBoost parameters.
    max_cat_to_onehot : int, default=4
        Categorical columns with fewer levels use one-vs-rest splits, others partition splits.
    early_stopping_rounds : int or None, default=50
        Rounds without validation improvement before boosting stops; None trains all rounds.
    validation_fraction : float, default=0.2
        Share of training rows held out when no validation set is passed.
    random_state : int, RandomState or None, default=None
        Seeds the hold-out split and XGBoost.
    n_jobs : int or None, default=None
        Threads for XGBoost.
    prediction_scale : float, default=1.0
        Multiplies every prediction. Used to extend a model trained on a shorter label period
        than the forecast horizon (when the data are too short for full-horizon training
        rows) by a horizon-extension factor measured on older data; 1 leaves predictions as
        the model's.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.
    schema_ : TabularSchema
        Learned column layout.
    categories_ : dict of str to list
        Levels learned for each categorical column.
    estimator_ : xgboost.XGBRegressor
    best_iteration_ : int
        Best boosting round (0-based) on validation (the last round without early stopping).
    n_estimators_ : int
        Rounds actually trained.
    validation_size_ : int
        Rows used for early stopping.

    See Also
    --------
    barberpro_ml.models.customer_lifetime_value : the BG/NBD + Gamma-Gamma forecast.
    barberpro_ml.evaluation.evaluate_ltv : MAE, RMSE, Spearman, Gini with bootstrap CIs.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"visits": rng.poisson(2, 500),
    ...                   "channel": rng.choice(["organic", "paid"], 500)})
    >>> y = rng.poisson(X["visits"]) * 30.0
    >>> model = LTVRegressor(n_estimators=50, random_state=0, n_jobs=1).fit(X, y)
    >>> bool((model.predict(X) >= 0).all())
    True
    >>> shap = model.feature_contributions(X.head(3))
    >>> list(shap.columns)
    ['visits', 'channel', 'bias']
    >>> bool(np.allclose(np.exp(shap.sum(axis=1)), model.predict(X.head(3)), rtol=1e-4))
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BoostedTreeModel._parameter_constraints,
        "tweedie_variance_power": [Interval(Real, 1, 2, closed="left")],
        "prediction_scale": [Interval(Real, 0, np.inf, closed="neither")],
    }
    _xgb_class = xgb.XGBRegressor

    estimator_: xgb.XGBRegressor
    best_iteration_: int
    n_estimators_: int

    def __init__(
        self,
        *,
        tweedie_variance_power: float = 1.5,
        n_estimators: int = 1000,
        learning_rate: float = 0.05,
        max_depth: int = 4,
        min_child_weight: float = 1.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        reg_alpha: float = 0.0,
        max_cat_to_onehot: int = 4,
        early_stopping_rounds: int | None = 50,
        validation_fraction: float = 0.2,
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
        prediction_scale: float = 1.0,
    ) -> None:
        super().__init__(
            n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth,
            min_child_weight=min_child_weight, subsample=subsample,
            colsample_bytree=colsample_bytree, reg_lambda=reg_lambda, reg_alpha=reg_alpha,
            max_cat_to_onehot=max_cat_to_onehot, early_stopping_rounds=early_stopping_rounds,
            validation_fraction=validation_fraction, random_state=random_state, n_jobs=n_jobs)
        self.tweedie_variance_power = tweedie_variance_power
        self.prediction_scale = prediction_scale

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags

    def _objective_params(self) -> dict[str, Any]:
        return {"objective": "reg:tweedie",
                "tweedie_variance_power": float(self.tweedie_variance_power)}

    def _check_target(self, y: Any, name: str, *, fitting: bool) -> np.ndarray:
        values = np.asarray(column_or_1d(y, warn=True), dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"{name} has {int(bad.sum())} missing or infinite value(s) at rows "
                             f"{np.flatnonzero(bad)[:5].tolist()}; a revenue label must be a "
                             "finite number")
        negative = values < 0
        if negative.any():
            raise ValueError(
                f"{name} has {int(negative.sum())} negative value(s) (e.g. "
                f"{values[negative][:5].tolist()}); the Tweedie objective models revenue >= 0 "
                "(check that refunds or discounts did not exceed the price)")
        if fitting and not (values > 0).any():
            raise ValueError(f"y is 0 on all {len(values)} rows; a Tweedie model needs some "
                             "customers with revenue to learn from")
        return values

    @fit_context
    def fit(self, X: Any, y: Any, *, X_valid: Any = None, y_valid: Any = None) -> Self:
        """Fit the boosted trees, stopping early on validation Tweedie deviance.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Training features.
        y : array-like of shape (n_samples,)
            Future revenue, >= 0 (zeros allowed; not all zero).
        X_valid, y_valid : optional
            Validation rows (same columns as ``X``) for early stopping. When omitted, a random
            ``validation_fraction`` of ``X`` is held out.

        Returns
        -------
        LTVRegressor
            self, fitted.
        """
        return self._fit(X, y, X_valid, y_valid)

    def predict(self, X: Any) -> np.ndarray:
        """Expected revenue per row (>= 0): the trees up to ``best_iteration_``, times
        ``prediction_scale``."""
        prediction = self._booster_predict(X, "value")
        # the log link makes predictions positive; clip float round-off only
        return np.maximum(prediction * float(self.prediction_scale), 0.0)
