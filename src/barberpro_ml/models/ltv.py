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

import math
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from barberpro_ml.models._tabular import (
    TabularSchema,
    as_frame,
    boosting_param_problems,
    is_real,
    learn_schema,
)

__all__ = ["LTVRegressor"]


class LTVRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Customer lifetime value (future revenue) by XGBoost with a Tweedie objective.

    Numeric and bool columns are used as numbers (NaN = missing); pandas ``category``,
    ``object`` and ``string`` columns are categorical with native XGBoost splits [3]_, their
    levels learned at fit (a level unseen at fit is scored as missing, with an
    :class:`~barberpro_ml.models.UnseenCategoryWarning`), as in
    :class:`~barberpro_ml.models.ChurnClassifier`. NumPy arrays are all-numeric tables.

    Boosting stops early on the Tweedie deviance of validation rows: ``X_valid, y_valid``
    when given, else a random ``validation_fraction`` of the training rows (seeded by
    ``random_state``) that is held out and not trained on.

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
    """

    n_features_in_: int
    schema_: TabularSchema
    categories_: dict[str, list[Any]]
    estimator_: xgb.XGBRegressor
    best_iteration_: int
    n_estimators_: int
    validation_size_: int

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
        self.tweedie_variance_power = tweedie_variance_power
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.reg_alpha = reg_alpha
        self.max_cat_to_onehot = max_cat_to_onehot
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.prediction_scale = prediction_scale

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.positive_only = True
        return tags

    def _validate_params(self) -> None:
        problems = boosting_param_problems(self)
        if not (is_real(self.tweedie_variance_power) and 1 <= self.tweedie_variance_power < 2):
            problems.append("tweedie_variance_power must be in [1, 2)")
        if not (is_real(self.prediction_scale) and 0 < self.prediction_scale < math.inf):
            problems.append("prediction_scale must be a finite number > 0")
        if problems:
            raise ValueError(f"invalid {type(self).__name__} parameters: " + "; ".join(problems))

    def _as_frame(self, X: Any, *, reset: bool) -> pd.DataFrame:
        return as_frame(self, X, reset=reset)

    @staticmethod
    def _check_y(y: Any, name: str) -> np.ndarray:
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
        return values

    def fit(self, X: Any, y: Any, *, X_valid: Any = None, y_valid: Any = None) -> LTVRegressor:
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
        self._validate_params()
        if (X_valid is None) != (y_valid is None):
            raise ValueError("pass both X_valid and y_valid, or neither")
        frame = self._as_frame(X, reset=True)
        check_consistent_length(frame, y)
        target = self._check_y(y, "y")
        if not (target > 0).any():
            raise ValueError(f"y is 0 on all {len(target)} rows; a Tweedie model needs some "
                             "customers with revenue to learn from")
        rng = check_random_state(self.random_state)
        split_seed, model_seed = (int(s) for s in rng.randint(0, 2**31 - 1, size=2))
        columns = ([str(c) for c in frame.columns] if isinstance(X, pd.DataFrame)
                   else [f"x{i}" for i in range(frame.shape[1])])
        self.schema_ = learn_schema(frame, columns)
        self.categories_ = {k: list(v) for k, v in self.schema_.categories.items()}
        encoded = self.schema_.encode(frame, warn_unseen=False)
        if X_valid is None:
            n_valid = math.ceil(self.validation_fraction * len(target))
            if n_valid < 1 or len(target) - n_valid < 2:
                raise ValueError(
                    f"cannot hold out {self.validation_fraction:.0%} of {len(target)} rows for "
                    "early stopping; pass X_valid/y_valid or more data")
            fit_rows, valid_rows = train_test_split(
                np.arange(len(target)), test_size=n_valid, random_state=split_seed)
            X_fit, y_fit = encoded.iloc[np.sort(fit_rows)], target[np.sort(fit_rows)]
            X_val, y_val = encoded.iloc[np.sort(valid_rows)], target[np.sort(valid_rows)]
        else:
            valid_frame = self._as_frame(X_valid, reset=False)
            check_consistent_length(valid_frame, y_valid)
            X_fit, y_fit = encoded, target
            X_val, y_val = self.schema_.encode(valid_frame), self._check_y(y_valid, "y_valid")
        self.validation_size_ = len(y_val)
        model = xgb.XGBRegressor(
            objective="reg:tweedie",
            tweedie_variance_power=float(self.tweedie_variance_power),
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            min_child_weight=self.min_child_weight,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            reg_alpha=self.reg_alpha,
            max_cat_to_onehot=self.max_cat_to_onehot,
            tree_method="hist",
            enable_categorical=True,
            early_stopping_rounds=self.early_stopping_rounds,
            random_state=model_seed,
            n_jobs=self.n_jobs,
        )
        model.fit(X_fit, y_fit, eval_set=[(X_val, y_val)], verbose=False)
        rounds = int(model.get_booster().num_boosted_rounds())
        self.estimator_ = model
        self.n_estimators_ = rounds
        self.best_iteration_ = (int(model.best_iteration) if self.early_stopping_rounds
                                is not None else rounds - 1)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Expected revenue per row (>= 0): the trees up to ``best_iteration_``, times
        ``prediction_scale``."""
        check_is_fitted(self, "estimator_")
        # The booster on a float matrix of values and category codes (the same numbers as
        # the pandas path, without its conversion cost), trees up to best_iteration_.
        matrix = self.schema_.matrix(self._as_frame(X, reset=False))
        prediction = np.asarray(self.estimator_.get_booster().inplace_predict(
            matrix, iteration_range=(0, int(self.best_iteration_) + 1)),
            dtype=np.float64).reshape(-1)
        # the log link makes predictions positive; clip float round-off only
        return np.maximum(prediction * float(self.prediction_scale), 0.0)
