"""What the gradient-boosted tree estimators share: :class:`BoostedTreeModel`.

:class:`~barberpro_ml.models.ChurnClassifier` and :class:`~barberpro_ml.models.LTVRegressor`
both fit XGBoost [1]_ with native categorical splits on any feature table, stopping early on
validation rows, and both score online from a float matrix of values and category codes. This
base class holds all of that once:

* the boosting parameters, their ``_parameter_constraints`` and the tags (NaN allowed);
* how ``X`` is read (DataFrames keep their dtypes, anything else goes through scikit-learn's
  numeric validation), the learned :class:`~barberpro_ml.models.TabularSchema` and the
  categorical encoding;
* the fit template: the validation rows (given, or a seeded hold-out), the seeds drawn from
  ``random_state``, the booster with early stopping, ``best_iteration_`` / ``n_estimators_``;
* prediction from the trees up to ``best_iteration_``, and per-row SHAP values
  (:meth:`BoostedTreeModel.feature_contributions`).

A subclass says what is specific to it: the XGBoost class and objective
(:meth:`_objective_params`), how its target is checked (:meth:`_check_target`), how the
hold-out is drawn (stratified for churn) and what follows the booster (calibration and the
threshold for churn).

References
----------
.. [1] Chen, T. & Guestrin, C. (2016). XGBoost: A scalable tree boosting system. *KDD '16*.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from barberpro_ml.models._params import ValidatedEstimator
from barberpro_ml.models._tabular import TabularSchema, learn_schema
from barberpro_ml.models._treeshap import PatternTreeShap

__all__ = ["BoostedTreeModel"]


class BoostedTreeModel(ValidatedEstimator):
    """Base of the XGBoost estimators: parameters, input handling, early stopping, SHAP.

    Not used directly; see :class:`~barberpro_ml.models.ChurnClassifier` and
    :class:`~barberpro_ml.models.LTVRegressor` for the parameters.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_depth": [Interval(Integral, 1, None, closed="left")],
        "min_child_weight": [Interval(Real, 0, None, closed="left")],
        "subsample": [Interval(Real, 0, 1, closed="right")],
        "colsample_bytree": [Interval(Real, 0, 1, closed="right")],
        "reg_lambda": [Interval(Real, 0, None, closed="left")],
        "reg_alpha": [Interval(Real, 0, None, closed="left")],
        "max_cat_to_onehot": [Interval(Integral, 1, None, closed="left")],
        "early_stopping_rounds": [None, Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "n_jobs": [None, Integral],
    }

    _xgb_class: ClassVar[type[xgb.XGBModel]]
    """The XGBoost estimator class a subclass fits."""
    _seed_names: ClassVar[tuple[str, ...]] = ("split", "model")
    """Seeds drawn, in this order, from ``random_state`` at every fit."""
    _fitted_attribute: ClassVar[str] = "estimator_"
    """Set last by ``fit``: its presence means fitted."""

    # fitted attributes (declared for type checkers; set by fit only)
    n_features_in_: int
    schema_: TabularSchema
    categories_: dict[str, list[Any]]
    estimator_: Any
    best_iteration_: int | None
    n_estimators_: int | None
    validation_size_: int

    def __init__(
        self,
        *,
        n_estimators: int,
        learning_rate: float,
        max_depth: int,
        min_child_weight: float,
        subsample: float,
        colsample_bytree: float,
        reg_lambda: float,
        reg_alpha: float,
        max_cat_to_onehot: int,
        early_stopping_rounds: int | None,
        validation_fraction: float,
        random_state: int | np.random.RandomState | None,
        n_jobs: int | None,
    ) -> None:
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

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------- for subclasses
    def _check_target(self, y: Any, name: str, *, fitting: bool) -> np.ndarray:
        """``y`` (or ``y_valid``) checked and as the array the booster is fitted on."""
        raise NotImplementedError

    def _objective_params(self) -> dict[str, Any]:
        """XGBoost parameters specific to the subclass (objective, ...)."""
        raise NotImplementedError

    def _fit_model(self, X_fit: pd.DataFrame, y_fit: np.ndarray, X_val: pd.DataFrame,
                   y_val: np.ndarray, seeds: dict[str, int], *,
                   callbacks: Sequence[xgb.callback.TrainingCallback],
                   eval_metric: str | list[str] | None) -> None:
        """Fit on the encoded rows; the default fits the booster."""
        self._fit_booster(X_fit, y_fit, X_val, y_val, seeds["model"], callbacks=callbacks,
                          eval_metric=eval_metric)

    # ------------------------------------------------------------------------------ input
    def _as_frame(self, X: Any, *, reset: bool) -> pd.DataFrame:
        """``X`` as a DataFrame whose columns are positionally the schema's columns.

        DataFrames keep their dtypes (categoricals stay categoricals); anything else goes
        through scikit-learn's numeric validation. At fit (``reset=True``) the column names
        and count are recorded; afterwards they are checked, as for any scikit-learn
        estimator.
        """
        name = type(self).__name__
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, skip_check_array=True, reset=reset)
            for axis, what in ((0, "sample"), (1, "feature")):
                if X.shape[axis] == 0:
                    raise ValueError(f"Found array with 0 {what}(s) (shape={X.shape}) while a "
                                     f"minimum of 1 is required by {name}.")
            frame = X
            if reset:
                self.n_features_in_ = X.shape[1]
        else:
            array = validate_data(self, X, reset=reset, dtype="numeric",
                                  ensure_all_finite="allow-nan")
            frame = pd.DataFrame(array)
        if not reset and frame.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {frame.shape[1]} features, but {name} is expecting "
                             f"{self.n_features_in_} features as input.")
        return frame

    def _check_fitted(self) -> None:
        check_is_fitted(self, self._fitted_attribute)

    def _encode(self, X: Any) -> pd.DataFrame:
        self._check_fitted()
        return self.schema_.encode(self._as_frame(X, reset=False))

    # ---------------------------------------------------------------------------- fitting
    def _fit(
        self,
        X: Any,
        y: Any,
        X_valid: Any,
        y_valid: Any,
        *,
        callbacks: Sequence[xgb.callback.TrainingCallback] = (),
        eval_metric: str | list[str] | None = None,
    ) -> Self:
        """The fit template (parameters already validated): returns ``self``, fitted."""
        if (X_valid is None) != (y_valid is None):
            raise ValueError("pass both X_valid and y_valid, or neither")
        frame = self._as_frame(X, reset=True)
        check_consistent_length(frame, y)
        target = self._check_target(y, "y", fitting=True)
        rng = check_random_state(self.random_state)
        drawn = rng.randint(0, 2**31 - 1, size=len(self._seed_names))
        seeds = {name: int(seed) for name, seed in zip(self._seed_names, drawn, strict=True)}

        columns = ([str(c) for c in frame.columns] if isinstance(X, pd.DataFrame)
                   else [f"x{i}" for i in range(frame.shape[1])])
        self.schema_ = learn_schema(frame, columns)
        self.categories_ = {k: list(v) for k, v in self.schema_.categories.items()}
        encoded = self.schema_.encode(frame, warn_unseen=False)

        if X_valid is None:
            fit_rows, valid_rows = self._holdout(target, seeds["split"])
            X_fit, y_fit = encoded.iloc[fit_rows], target[fit_rows]
            X_val, y_val = encoded.iloc[valid_rows], target[valid_rows]
        else:
            valid_frame = self._as_frame(X_valid, reset=False)
            check_consistent_length(valid_frame, y_valid)
            X_fit, y_fit = encoded, target
            X_val = self.schema_.encode(valid_frame)
            y_val = self._check_target(y_valid, "y_valid", fitting=False)
        self.validation_size_ = len(y_val)
        self._fit_model(X_fit, y_fit, X_val, y_val, seeds, callbacks=callbacks,
                        eval_metric=eval_metric)
        if X_valid is None:
            self._refit_on_all_rows(encoded, target, seeds)
        return self

    def _refit_on_all_rows(self, X: pd.DataFrame, y: np.ndarray, seeds: dict[str, int]) -> None:
        """After choosing on held-out rows of ``X``: optionally refit on all of them (the
        default keeps the model fitted on the other rows)."""

    def _holdout(self, target: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted training and validation rows: a random ``validation_fraction`` held out."""
        n_valid = math.ceil(self.validation_fraction * len(target))
        if n_valid < 1 or len(target) - n_valid < 2:
            raise ValueError(
                f"cannot hold out {self.validation_fraction:.0%} of {len(target)} sample(s) "
                "for early stopping; pass X_valid/y_valid or more data")
        fit_rows, valid_rows = train_test_split(
            np.arange(len(target)), test_size=n_valid, random_state=seed)
        return np.sort(fit_rows), np.sort(valid_rows)

    def _fit_booster(self, X_fit: pd.DataFrame, y_fit: np.ndarray, X_val: pd.DataFrame,
                     y_val: np.ndarray, seed: int, *,
                     callbacks: Sequence[xgb.callback.TrainingCallback],
                     eval_metric: str | list[str] | None) -> None:
        """XGBoost with early stopping on the validation rows; sets ``estimator_``,
        ``n_estimators_`` and ``best_iteration_``."""
        model = self._xgb_class(
            **self._objective_params(),
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
            eval_metric=eval_metric,
            early_stopping_rounds=self.early_stopping_rounds,
            callbacks=list(callbacks) or None,
            random_state=seed,
            n_jobs=self.n_jobs,
        )
        model.fit(X_fit, y_fit, eval_set=[(X_val, y_val)], verbose=False)
        rounds = int(model.get_booster().num_boosted_rounds())
        self.estimator_ = model
        self.n_estimators_ = rounds
        self.best_iteration_ = (int(model.best_iteration) if self.early_stopping_rounds
                                is not None else rounds - 1)

    def _refit_booster(self, X: pd.DataFrame, y: np.ndarray, seed: int, rounds: int) -> None:
        """Refit the booster on ``X, y`` for exactly ``rounds`` rounds (no early stopping)."""
        params = self.estimator_.get_params()
        params.update(n_estimators=rounds, early_stopping_rounds=None, eval_metric=None,
                      callbacks=None, random_state=seed)
        self.estimator_ = self._xgb_class(**params).fit(X, y, verbose=False)
        self.n_estimators_ = rounds
        self.best_iteration_ = rounds - 1

    # ------------------------------------------------------------------------- predicting
    def _rounds(self) -> tuple[int, int]:
        """The boosting rounds that predict: up to ``best_iteration_``."""
        best = int(self.best_iteration_) if self.best_iteration_ is not None else -1
        return (0, best + 1) if best >= 0 else (0, 0)

    def _booster_predict(self, X: Any, predict_type: str) -> np.ndarray:
        """The booster on a float matrix of values and category codes: the same numbers as
        the pandas path (tested), without its per-call conversion cost."""
        self._check_fitted()
        matrix = self.schema_.matrix(self._as_frame(X, reset=False))
        values = self.estimator_.get_booster().inplace_predict(
            matrix, iteration_range=self._rounds(), predict_type=predict_type)
        return np.asarray(values, dtype=np.float64).reshape(-1)

    def predict_margin(self, X: Any) -> np.ndarray:
        """The raw score of the trees up to ``best_iteration_`` (before the link function):
        what :meth:`feature_contributions` adds up to."""
        return self._booster_predict(X, "margin")

    def feature_contributions(self, X: Any) -> pd.DataFrame:
        """Per-row SHAP values of :meth:`predict_margin`, fast enough for online scoring.

        Exact path-dependent TreeSHAP computed by XGBoost itself (``pred_contribs=True`` on
        the trees up to ``best_iteration_``, categorical splits included), without building
        a ``shap.TreeExplainer`` per call. From :data:`PATTERN_SHAP_MIN_ROWS` rows on, each
        tree is asked only once per distinct decision pattern of the rows
        (:class:`~barberpro_ml.models._treeshap.PatternTreeShap`): the same numbers, bit for
        bit, several times faster on large blocks.

        Returns
        -------
        pandas.DataFrame
            Index of ``X``; one column per original feature plus ``bias`` (the expected
            margin); each row sums to :meth:`predict_margin` (up to float rounding).
        """
        self._check_fitted()
        frame = self._as_frame(X, reset=False)
        matrix = self.schema_.matrix(frame)
        if len(matrix) >= PATTERN_SHAP_MIN_ROWS and (patterns := self._pattern_shap()):
            values = patterns.contributions(matrix, n_threads=self._threads())
        else:
            values = self._direct_contributions(matrix)
        return pd.DataFrame(np.asarray(values, dtype=np.float64), index=frame.index,
                            columns=[*self.schema_.columns, "bias"])

    def _threads(self) -> int:
        """Threads of the model's ``n_jobs`` (None or negative: every core)."""
        n_jobs = self.n_jobs
        if n_jobs is None or int(n_jobs) < 0:
            return max(1, os.cpu_count() or 1)
        return max(1, int(n_jobs))

    def _direct_contributions(self, matrix: np.ndarray) -> np.ndarray:
        """XGBoost's ``pred_contribs`` on the whole matrix in one call (``float32``)."""
        dmatrix = xgb.DMatrix(matrix, feature_names=self.schema_.encoded_columns,
                              feature_types=self.schema_.feature_types,
                              enable_categorical=True,
                              nthread=-1 if self.n_jobs is None else int(self.n_jobs))
        return np.asarray(self.estimator_.get_booster().predict(
            dmatrix, pred_contribs=True, iteration_range=self._rounds()))

    def _pattern_shap(self) -> PatternTreeShap | None:
        """The fitted booster's :class:`PatternTreeShap` (built once, kept beside the
        estimator, not in it: nothing is added to what is pickled), or None when the
        booster is of a kind it does not handle."""
        booster = self.estimator_.get_booster()
        rounds = self._rounds()
        cached = _PATTERN_SHAP.get(self)
        if cached is not None and cached[0] is booster and cached[1] == rounds:
            return cached[2]
        patterns = (PatternTreeShap(booster, rounds, self.schema_.encoded_columns,
                                    self.schema_.feature_types)
                    if PatternTreeShap.supports(booster) else None)
        _PATTERN_SHAP[self] = (booster, rounds, patterns)
        return patterns


PATTERN_SHAP_MIN_ROWS = 4096
"""Rows from which :meth:`BoostedTreeModel.feature_contributions` computes TreeSHAP once per
decision pattern per tree; below, one direct XGBoost call is cheaper (it has no per-tree
call overhead)."""

_PATTERN_SHAP: weakref.WeakKeyDictionary[
    BoostedTreeModel, tuple[xgb.Booster, tuple[int, int], PatternTreeShap | None]] = \
    weakref.WeakKeyDictionary()
