"""The churn classifier: gradient boosting (or a logistic baseline) over any feature table.

:class:`ChurnClassifier` is a scikit-learn binary classifier. It learns which columns are
numeric and which categorical, fits XGBoost with native categorical splits (or a standardised,
one-hot logistic regression) with early stopping on a validation set, then chooses on that
validation set, without grading a calibrator on the rows it was fitted on, whether to calibrate
its probabilities (none, Platt's sigmoid, or isotonic) and the decision threshold that maximises
accuracy. :func:`tune` searches its hyper-parameters with a seeded Optuna study.

References
----------
.. [1] Platt, J. (1999). Probabilistic outputs for support vector machines and comparisons to
   regularized likelihood methods. *Advances in Large Margin Classifiers*, 61-74.
.. [2] Lin, H.-T., Lin, C.-J. & Weng, R. C. (2007). A note on Platt's probabilistic outputs for
   support vector machines. *Machine Learning* 68, 267-276.
.. [3] Zadrozny, B. & Elkan, C. (2002). Transforming classifier scores into accurate multiclass
   probability estimates. *KDD '02*, 694-699 (isotonic calibration).
.. [4] Niculescu-Mizil, A. & Caruana, R. (2005). Predicting good probabilities with supervised
   learning. *ICML '05*, 625-632 (boosted trees need calibration; choose it on held-out data).
.. [5] Chen, T. & Guestrin, C. (2016). XGBoost: A scalable tree boosting system. *KDD '16*.
.. [6] Akiba, T. et al. (2019). Optuna: A next-generation hyperparameter optimization framework.
   *KDD '19* (TPE sampler, pruning).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

from barberpro_ml.models._boosted import BoostedTreeModel
from barberpro_ml.models._params import fit_context
from barberpro_ml.models._tabular import UnseenCategoryWarning

if TYPE_CHECKING:
    import optuna
    import shap

__all__ = [
    "CALIBRATION_METHODS",
    "ChurnClassifier",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "accuracy_threshold",
    "tune",
]

CALIBRATION_METHODS = ("none", "sigmoid", "isotonic")
"""Calibrations compared when ``calibration="auto"``, simplest first (ties keep the simpler)."""

_ESTIMATORS = ("blend", "xgboost", "logistic")
_EPS = 1e-15

BLEND_WEIGHTS = tuple(round(1.0 - i / 10, 1) for i in range(11))
"""Weights of the boosted trees' log-odds compared by ``estimator="blend"`` (1.0 = trees only,
0.0 = logistic only), in the order ties are broken (the first lowest log loss wins)."""


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


class PlattCalibrator:
    """Platt's sigmoid on the model's log-odds, with Platt's smoothed targets [1]_ [2]_.

    ``p = 1 / (1 + exp(-(a * margin + b)))``, fitted by maximum likelihood against targets
    ``(N+ + 1) / (N+ + 2)`` for positives and ``1 / (N- + 2)`` for negatives, which keeps the
    fit finite on separable validation sets.
    """

    def __init__(self) -> None:
        self.a_ = 1.0
        self.b_ = 0.0

    def fit(self, margin: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        """Fit ``a`` and ``b`` on validation margins and 0/1 labels."""
        n_pos = float(y.sum())
        n_neg = float(len(y) - n_pos)
        target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

        def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            f = params[0] * margin + params[1]
            # log(1 + e^-f) and log(1 + e^f), written to stay finite for large |f|
            value = target @ np.logaddexp(0, -f) + (1 - target) @ np.logaddexp(0, f)
            residual = expit(f) - target
            return float(value), np.array([residual @ margin, residual.sum()])

        result = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        self.a_, self.b_ = float(result.x[0]), float(result.x[1])
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        return np.asarray(expit(self.a_ * margin + self.b_), dtype=np.float64)


class IsotonicCalibrator:
    """Isotonic regression of the label on the model's log-odds [3]_.

    Outputs are clipped to ``[1 / (n + 2), 1 - 1 / (n + 2)]`` (``n`` = rows it was fitted on):
    a step function fitted on finite data must not claim certainty, which would make the log
    loss of a single contrary row infinite.
    """

    def __init__(self) -> None:
        self.isotonic_: IsotonicRegression | None = None

    def fit(self, margin: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        """Fit on validation margins and 0/1 labels."""
        bound = 1.0 / (len(y) + 2)
        self.isotonic_ = IsotonicRegression(
            y_min=bound, y_max=1 - bound, increasing=True, out_of_bounds="clip"
        ).fit(margin, y)
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        if self.isotonic_ is None:
            raise RuntimeError("IsotonicCalibrator.predict called before fit")
        return np.asarray(self.isotonic_.predict(margin), dtype=np.float64)


class _LinearTerms:
    """The fitted logistic pipeline as per-feature additive terms of its log-odds.

    ``margin = intercept_ + terms(codes).sum(axis=1)``, equal to the pipeline's
    ``decision_function`` (tested), computed from the float matrix of values and category codes
    (NaN = missing) without the per-column transformers: fast for the few rows of an online
    request, and the exact per-feature split a linear model's SHAP values need.

    A numeric column contributes ``w (x_or_median - mean) / scale`` plus, when it had missing
    values at fit, ``w' (missing - mean') / scale'`` for its missing indicator; a categorical
    column contributes the weight of its level's one-hot column (missing and unseen levels
    have their own column, code -1, weight 0 when never seen at fit).
    """

    def __init__(self, pipeline: Pipeline, schema: Any) -> None:
        transform = pipeline.named_steps["encode"]
        coef = np.asarray(pipeline.named_steps["logistic"].coef_, dtype=np.float64)[0]
        self.intercept_ = float(pipeline.named_steps["logistic"].intercept_[0])
        self.numeric_: dict[int, tuple[float, float, float, float, float, float, float]] = {}
        self.categorical_: dict[int, np.ndarray] = {}
        fitted = dict((name, t) for name, t, _ in transform.transformers_)
        for j, (name, column) in enumerate(zip(schema.columns, schema.encoded_columns,
                                               strict=True)):
            w = coef[transform.output_indices_[column]]
            if schema.is_categorical(name):
                # levels -1 (missing), 0, 1, ...: the one-hot column of code c is w[c + 1]
                self.categorical_[j] = np.asarray(w, dtype=np.float64)
                continue
            imputer, scaler = fitted[column].steps[0][1], fitted[column].steps[1][1]
            has_indicator = len(w) == 2
            mean, scale = scaler.mean_, scaler.scale_
            self.numeric_[j] = (
                float(imputer.statistics_[0]), float(mean[0]), float(scale[0]), float(w[0]),
                float(mean[1]) if has_indicator else 0.0,
                float(scale[1]) if has_indicator else 1.0,
                float(w[1]) if has_indicator else 0.0)

    def terms(self, matrix: np.ndarray) -> np.ndarray:
        """Each feature's term of the log-odds, shape ``(n_rows, n_features)``."""
        out = np.zeros(matrix.shape, dtype=np.float64)
        for j, (median, mean, scale, w, ind_mean, ind_scale, ind_w) in self.numeric_.items():
            x = matrix[:, j]
            missing = np.isnan(x)
            out[:, j] = (w * (np.where(missing, median, x) - mean) / scale
                         + ind_w * (missing - ind_mean) / ind_scale)
        for j, weights in self.categorical_.items():
            codes = matrix[:, j]
            index = np.where(np.isnan(codes), 0, codes + 1).astype(np.int64)
            out[:, j] = weights[index]
        return out

    def margin(self, matrix: np.ndarray) -> np.ndarray:
        """The logistic model's log-odds."""
        return np.asarray(self.intercept_ + self.terms(matrix).sum(axis=1), dtype=np.float64)


Calibrator = PlattCalibrator | IsotonicCalibrator


def _make_calibrator(method: str) -> Calibrator:
    return PlattCalibrator() if method == "sigmoid" else IsotonicCalibrator()


def _cross_fitted(
    margin: np.ndarray, y: np.ndarray, method: str, folds: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Out-of-fold calibrated probabilities: each row scored by a calibrator not fitted on it."""
    if method == "none":
        return np.asarray(expit(margin), dtype=np.float64)
    out = np.empty(len(y))
    for fit_rows, score_rows in folds:
        out[score_rows] = _make_calibrator(method).fit(margin[fit_rows], y[fit_rows]).predict(
            margin[score_rows]
        )
    return out


def accuracy_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold ``t`` maximising the accuracy of "positive when ``p > t``".

    Candidates lie midway between consecutive distinct probabilities (plus one below the
    smallest and one above the largest); among equally accurate thresholds the one closest to
    0.5 wins, so a flat optimum does not drift to an extreme.

    Parameters
    ----------
    y
        0/1 labels.
    p
        Probabilities of the positive class.

    Returns
    -------
    float

    Examples
    --------
    >>> round(accuracy_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.35, 0.9])), 3)
    0.325
    """
    values = np.unique(p)  # ascending
    lowest = values[0] / 2 if values[0] > 0 else -0.5  # below every p: all predicted positive
    cuts = np.concatenate([[lowest], (values[:-1] + values[1:]) / 2, [(values[-1] + 1) / 2]])
    # rows with p <= cut are predicted negative; count labels on each side with a sorted scan
    order = np.argsort(p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    below = np.searchsorted(p_sorted, cuts, side="right")
    negatives_below = np.concatenate([[0], np.cumsum(1 - y_sorted)])[below]
    positives_above = y.sum() - np.concatenate([[0], np.cumsum(y_sorted)])[below]
    correct = negatives_below + positives_above
    best = np.flatnonzero(correct == correct.max())
    return float(cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]])


class _PruningCallback(xgb.callback.TrainingCallback):
    """Reports the validation metric to an Optuna trial after every boosting round."""

    def __init__(self, trial: optuna.Trial, metric_key: str) -> None:
        super().__init__()
        self.trial = trial
        self.metric_key = metric_key

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        import optuna

        value = evals_log["validation_0"][self.metric_key][-1]
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at boosting round {epoch}")
        return False


class ChurnClassifier(ClassifierMixin, BoostedTreeModel):  # type: ignore[misc]
    """Binary churn classifier over any tabular features, with calibrated probabilities.

    Numeric and bool columns are used as numbers (NaN = missing); pandas ``category``,
    ``object`` and ``string`` columns are categorical, their levels learned at fit; a level not
    seen at fit is scored as missing (with an :class:`~barberpro_ml.models.UnseenCategoryWarning`).
    NumPy arrays are accepted as all-numeric tables.

    Fitting, in order:

    1. Validation rows: ``X_valid, y_valid`` if given, else a stratified ``validation_fraction``
       of the training rows (seeded by ``random_state``) is held out and not trained on.
    2. The estimator: XGBoost [5]_ (``tree_method="hist"``, native categorical splits) with
       early stopping on validation log loss after ``early_stopping_rounds`` rounds without
       improvement; or a logistic regression after median imputation (+ missing indicators)
       and standardisation of numeric columns and one-hot encoding of categorical ones; or,
       by default (``"blend"``), both, their log-odds combined as ``w * trees + (1 - w) *
       logistic`` with the weight ``w`` in :data:`BLEND_WEIGHTS` of lowest validation log loss.
       The trees win where interactions and thresholds carry the signal, the linear model on
       small tables with mostly additive signal, where boosting alone overfits; the blend is
       at least as good as the better of the two on most data (``blend_log_loss_`` shows the
       curve). Both parts are additive in the features, so SHAP values stay exact.
    3. Calibration, by validation log loss [4]_: the validation rows are split into
       ``calibration_folds`` stratified folds; every row is scored by a sigmoid [1]_ and an
       isotonic [3]_ calibrator fitted on the other folds (cross-fitting), and compared with
       the uncalibrated probabilities. ``"auto"`` keeps the lowest out-of-fold log loss; the
       chosen calibrator is then refitted on all validation rows.
    4. ``threshold_``: with ``threshold="auto"``, the cut that maximises accuracy of the
       out-of-fold calibrated validation probabilities (:func:`accuracy_threshold`); else the
       given number. ``predict`` returns the positive class when the probability exceeds it.

    Parameters
    ----------
    estimator : {"blend", "xgboost", "logistic"}, default="blend"
        Gradient-boosted trees and a logistic regression blended on validation, the trees
        alone, or the logistic regression alone. The default was chosen on public churn tables
        of 1,470 to 7,043 rows (``benchmarks/real_data_churn.py``, folds other than the
        benchmark's: seeds 1-3, 15 folds each): against the trees alone it raised ROC AUC by
        0.0175 ± 0.0037 on the smallest (attrition, where a plain logistic regression beat
        the trees), by 0.0012 ± 0.0004 on IBM Telco and left the telecom table unchanged
        (the weight stayed 1), within 0.002 of or above the better part on each.
    n_estimators : int, default=500
        Maximum boosting rounds (early stopping usually ends sooner).
    learning_rate, max_depth, subsample, colsample_bytree, reg_lambda, reg_alpha, gamma
        XGBoost parameters (ignored by the logistic baseline).
    min_child_weight : float, default=5.0
        XGBoost: the least hessian (sum of ``p (1 - p)`` over a leaf's rows) a split may leave
        in a child, so at least ``5 / (p (1 - p))`` rows: about 25 rows where churn is
        balanced, about 40 at a 15% churn rate, more where the model is already confident.
        Being in hessian units, it scales with the class balance by itself. Chosen on public
        churn tables of 1,470 to 7,043 rows (``benchmarks/real_data_churn.py``, folds other
        than the benchmark's): against XGBoost's 1, 5 raised 5-fold ROC AUC on every one
        (mlc_churn +0.003, attrition +0.009, the Telco subset +0.007, wa_churn unchanged), and
        on 400 Telco rows it cut the train-minus-validation AUC gap from 0.11-0.17 to
        0.06-0.11; 10 was no better than 5.
    max_cat_to_onehot : int, default=4
        XGBoost: categorical columns with fewer levels use one-vs-rest splits, others
        partition splits.
    C : float, default=1.0
        Inverse L2 strength of the logistic baseline (ignored by XGBoost).
    early_stopping_rounds : int or None, default=50
        Rounds without validation improvement before boosting stops; None trains all
        ``n_estimators`` rounds.
    validation_fraction : float, default=0.2
        Share of training rows held out (stratified) when no validation set is passed.
    calibration : {"auto", "none", "sigmoid", "isotonic"}, default="auto"
        Calibration method, or "auto" to choose by cross-fitted validation log loss.
    calibration_folds : int, default=5
        Folds for cross-fitting calibrators on the validation rows.
    threshold : "auto" or float, default="auto"
        Decision threshold on the calibrated probability; "auto" maximises validation accuracy.
    refit : bool, default=True
        When the validation rows were held out of ``X`` (no ``X_valid`` given): once the
        boosting rounds, blend weight, calibration and threshold are chosen on them, refit the
        trees (``best_iteration_ + 1`` rounds) and the logistic model on all rows of ``X``,
        so no labelled row is wasted; calibration and threshold stay as chosen. On the public
        churn tables this added 0.0026 ± 0.0016 ROC AUC on the smallest (1,470 rows) and
        nothing measurable on the others. With ``X_valid`` given nothing is refitted.
    random_state : int, RandomState or None, default=None
        Seeds the hold-out split, calibration folds and XGBoost.
    n_jobs : int or None, default=None
        Threads for XGBoost (None: XGBoost's default, all cores).

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        Class labels; ``classes_[1]`` is the positive class ("churned").
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.
    schema_ : TabularSchema
        Learned column layout; ``schema_.columns`` are the display names.
    categories_ : dict of str to list
        Levels learned for each categorical column.
    estimator_ : xgboost.XGBClassifier or sklearn.pipeline.Pipeline
        The fitted, uncalibrated model: the booster (``"xgboost"``, ``"blend"``) or the
        logistic pipeline (``"logistic"``).
    linear_ : sklearn.pipeline.Pipeline or None
        The fitted logistic pipeline (``"logistic"``, ``"blend"``); None for ``"xgboost"``.
    blend_weight_ : float
        Weight of the trees' log-odds in the model's log-odds (1.0 for ``"xgboost"``, 0.0 for
        ``"logistic"``).
    blend_log_loss_ : dict of float to float
        ``"blend"`` only (else empty): validation log loss of each weight compared.
    best_iteration_ : int or None
        Best boosting round (0-based) on validation; None for the logistic baseline.
    background_ : ndarray
        Training mean of the logistic model's per-feature terms, the reference of its part of
        :meth:`feature_contributions` (``"logistic"``, ``"blend"``).
    n_estimators_ : int or None
        Boosting rounds actually trained (< ``n_estimators`` when early stopping stopped).
    calibration_ : str
        The calibration applied ("none", "sigmoid" or "isotonic").
    calibration_log_loss_ : dict of str to float
        Cross-fitted validation log loss of each method compared (empty if the validation set
        had fewer than two rows of a class, when no calibration is applied).
    calibrator_ : PlattCalibrator, IsotonicCalibrator or None
    threshold_ : float
    validation_size_ : int
        Rows used for early stopping, calibration and the threshold.

    See Also
    --------
    tune : Optuna search over the hyper-parameters.
    barberpro_ml.evaluation.evaluate_classifier : metrics with bootstrap CIs.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"visits": rng.poisson(3, 400),
    ...                   "channel": rng.choice(["organic", "paid"], 400)})
    >>> y = (rng.random(400) < 1 / (1 + X["visits"])).astype(int)
    >>> model = ChurnClassifier(n_estimators=50, random_state=0, n_jobs=1).fit(X, y)
    >>> model.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BoostedTreeModel._parameter_constraints,
        "estimator": [StrOptions(set(_ESTIMATORS))],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "C": [Interval(Real, 0, None, closed="neither")],
        "calibration": [StrOptions({"auto", *CALIBRATION_METHODS})],
        "calibration_folds": [Interval(Integral, 2, None, closed="left")],
        "threshold": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="neither")],
        "refit": ["boolean"],
    }
    _xgb_class = xgb.XGBClassifier
    _seed_names = ("split", "fold", "model")
    _fitted_attribute = "threshold_"

    # fitted attributes (declared for type checkers; set by fit only)
    classes_: np.ndarray
    background_: np.ndarray
    linear_: Pipeline | None
    linear_terms_: _LinearTerms | None
    blend_weight_: float
    blend_log_loss_: dict[float, float]
    calibration_: str
    calibration_log_loss_: dict[str, float]
    calibrator_: PlattCalibrator | IsotonicCalibrator | None
    threshold_: float
    validation_size_: int

    def __init__(
        self,
        *,
        estimator: Literal["blend", "xgboost", "logistic"] = "blend",
        n_estimators: int = 500,
        learning_rate: float = 0.05,
        max_depth: int = 4,
        min_child_weight: float = 5.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        reg_alpha: float = 0.0,
        gamma: float = 0.0,
        max_cat_to_onehot: int = 4,
        C: float = 1.0,
        early_stopping_rounds: int | None = 50,
        validation_fraction: float = 0.2,
        calibration: Literal["auto", "none", "sigmoid", "isotonic"] = "auto",
        calibration_folds: int = 5,
        threshold: Literal["auto"] | float = "auto",
        refit: bool = True,
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
    ) -> None:
        super().__init__(
            n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth,
            min_child_weight=min_child_weight, subsample=subsample,
            colsample_bytree=colsample_bytree, reg_lambda=reg_lambda, reg_alpha=reg_alpha,
            max_cat_to_onehot=max_cat_to_onehot, early_stopping_rounds=early_stopping_rounds,
            validation_fraction=validation_fraction, random_state=random_state, n_jobs=n_jobs)
        self.estimator = estimator
        self.gamma = gamma
        self.C = C
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self.threshold = threshold
        self.refit = refit

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    # ---------------------------------------------------------------- target and booster
    def _objective_params(self) -> dict[str, Any]:
        return {"objective": "binary:logistic", "gamma": self.gamma}

    def _check_target(self, y: Any, name: str, *, fitting: bool) -> np.ndarray:
        """``y`` as 0/1 (1 = ``classes_[1]``); at fit also sets ``classes_``."""
        y = column_or_1d(y, warn=True)
        if pd.isna(y).any():
            raise ValueError(f"Input y contains NaN ({int(pd.isna(y).sum())} rows).")
        if fitting:
            check_classification_targets(y)
            y_type = type_of_target(y, input_name="y", raise_unknown=True)
            if y_type != "binary":
                raise ValueError(
                    "Only binary classification is supported. The type of the target is "
                    f"{y_type}. ChurnClassifier separates two classes (e.g. churned vs retained)."
                )
            classes = np.unique(y)
            if len(classes) != 2:
                raise ValueError(
                    f"y has only one class ({classes[0]!r}); a churn classifier needs rows of "
                    "both classes to learn from"
                )
            self.classes_ = classes
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"{name} has {int(unknown.sum())} label(s) not among the training classes "
                f"{self.classes_.tolist()}: e.g. {pd.unique(y[unknown])[:5].tolist()}"
            )
        return np.asarray(y == self.classes_[1], dtype=np.int64)

    # ----------------------------------------------------------------------------- fitting
    @fit_context
    def fit(self, X: Any, y: Any, *, X_valid: Any = None, y_valid: Any = None) -> Self:
        """Fit the estimator, its calibration and its decision threshold.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Training features.
        y : array-like of shape (n_samples,)
            Two classes; the larger label (``classes_[1]``, e.g. 1 or True) is "churned".
        X_valid, y_valid : optional
            Validation rows (same columns as ``X``) for early stopping, calibration and the
            threshold. When omitted, a stratified ``validation_fraction`` of ``X`` is held out.

        Returns
        -------
        ChurnClassifier
            self, fitted.
        """
        return self._fit(X, y, X_valid, y_valid, eval_metric="logloss")

    def _fit_model(self, X_fit: pd.DataFrame, y_fit: np.ndarray, X_val: pd.DataFrame,
                   y_val: np.ndarray, seeds: dict[str, int], *,
                   callbacks: Sequence[xgb.callback.TrainingCallback],
                   eval_metric: str | list[str] | None) -> None:
        self.linear_, self.linear_terms_ = None, None
        self.blend_log_loss_ = {}
        if self.estimator == "logistic":
            self.estimator_ = self._fit_logistic(X_fit, y_fit, seeds["model"])
            self.best_iteration_ = None
            self.n_estimators_ = None
            self.blend_weight_ = 0.0
        else:
            self._fit_booster(X_fit, y_fit, X_val, y_val, seeds["model"], callbacks=callbacks,
                              eval_metric=eval_metric)
            self.blend_weight_ = 1.0
        if self.estimator == "blend":
            self._fit_logistic(X_fit, y_fit, seeds["model"])
            trees = self._tree_margin(X_val)
            linear = self._linear_margin(X_val)
            self.blend_log_loss_ = {
                w: _log_loss(y_val, expit(w * trees + (1 - w) * linear)) for w in BLEND_WEIGHTS}
            self.blend_weight_ = min(BLEND_WEIGHTS, key=self.blend_log_loss_.__getitem__)
        self._fit_calibration(self._margin(X_val), y_val, seeds["fold"])

    def _refit_on_all_rows(self, X: pd.DataFrame, y: np.ndarray, seeds: dict[str, int]) -> None:
        if not self.refit:
            return
        if self.blend_weight_ > 0.0 and self.best_iteration_ is not None:
            self._refit_booster(X, y, seeds["model"], int(self.best_iteration_) + 1)
        if self.linear_ is not None:
            pipeline = self._fit_logistic(X, y, seeds["model"])
            if self.estimator == "logistic":
                self.estimator_ = pipeline

    def _holdout(self, target: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A stratified ``validation_fraction`` held out (each class needs 2 rows)."""
        counts = np.bincount(target, minlength=2)
        n_valid = math.ceil(self.validation_fraction * len(target))
        if counts.min() < 2 or n_valid < 2 or len(target) - n_valid < 2:
            raise ValueError(
                f"cannot hold out a stratified validation set of {self.validation_fraction:.0%} "
                f"from {len(target)} rows with class counts {counts.tolist()}: each class needs "
                "at least 2 rows; pass X_valid/y_valid or more data"
            )
        train_rows, valid_rows = train_test_split(
            np.arange(len(target)), test_size=self.validation_fraction, stratify=target,
            random_state=seed,
        )
        return np.sort(train_rows), np.sort(valid_rows)

    def _logistic_input(self, encoded: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            self.schema_.category_codes(encoded), columns=encoded.columns, index=encoded.index
        )

    def _fit_logistic(self, X_fit: pd.DataFrame, y_fit: np.ndarray, seed: int) -> Pipeline:
        """Fit the logistic pipeline; sets ``linear_``, ``linear_terms_``, ``background_``."""
        # one transformer per column, so output_indices_ maps encoded columns back to features
        steps: list[tuple[str, Any, list[str]]] = []
        for name, column in zip(self.schema_.columns, self.schema_.encoded_columns, strict=True):
            if self.schema_.is_categorical(name):
                levels = np.arange(-1, len(self.schema_.categories[name]), dtype=np.float64)
                transformer: Any = OneHotEncoder(
                    categories=[levels], handle_unknown="ignore", sparse_output=False
                )
            else:
                transformer = make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                )
            steps.append((column, transformer, [column]))
        pipeline = Pipeline([
            ("encode", ColumnTransformer(steps, sparse_threshold=0.0)),
            ("logistic", LogisticRegression(C=self.C, max_iter=2000, random_state=seed)),
        ])
        pipeline.fit(self._logistic_input(X_fit), y_fit)
        self.linear_ = pipeline
        self.linear_terms_ = _LinearTerms(pipeline, self.schema_)
        # the training mean of each feature's term: the reference of its SHAP values (a
        # linear model with independent inputs: phi_j = term_j(x) - mean term_j)
        self.background_ = self.linear_terms_.terms(
            self.schema_.category_codes(X_fit)).mean(axis=0)
        return pipeline

    def _tree_margin(self, encoded: pd.DataFrame) -> np.ndarray:
        margin = self.estimator_.predict(encoded, output_margin=True)
        return np.asarray(margin, dtype=np.float64).reshape(-1)

    def _linear_margin(self, encoded: pd.DataFrame) -> np.ndarray:
        assert self.linear_terms_ is not None
        return self.linear_terms_.margin(self.schema_.category_codes(encoded))

    def _margin(self, encoded: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of the positive class."""
        return np.asarray(self._combine(
            lambda: self._tree_margin(encoded), lambda: self._linear_margin(encoded)),
            dtype=np.float64)

    def _combine(self, trees: Any, linear: Any) -> Any:
        """``w * trees() + (1 - w) * linear()``, calling only the parts with weight."""
        w = self.blend_weight_
        if w == 1.0:
            return trees()
        if w == 0.0:
            return linear()
        return w * trees() + (1 - w) * linear()

    def _fit_calibration(self, margin: np.ndarray, y: np.ndarray, seed: int) -> None:
        counts = np.bincount(y, minlength=2)
        n_folds = min(self.calibration_folds, int(counts.min()))
        if n_folds < 2:
            # too few validation rows of a class to cross-fit: leave probabilities as they are
            self.calibration_log_loss_ = {}
            self.calibration_ = "none" if self.calibration == "auto" else str(self.calibration)
            chosen = self.calibration_
            out_of_fold = np.asarray(expit(margin), dtype=np.float64)
        else:
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            folds = list(splitter.split(margin.reshape(-1, 1), y))
            candidates = CALIBRATION_METHODS if self.calibration == "auto" else (
                "none", str(self.calibration))
            scored = {m: _cross_fitted(margin, y, m, folds) for m in dict.fromkeys(candidates)}
            self.calibration_log_loss_ = {m: _log_loss(y, p) for m, p in scored.items()}
            if self.calibration == "auto":
                chosen = min(CALIBRATION_METHODS, key=self.calibration_log_loss_.__getitem__)
            else:
                chosen = str(self.calibration)
            self.calibration_ = chosen
            out_of_fold = scored[chosen]
        self.calibrator_ = (
            None if chosen == "none" else _make_calibrator(chosen).fit(margin, y)
        )
        self.threshold_ = (
            accuracy_threshold(y, out_of_fold) if self.threshold == "auto"
            else float(self.threshold)
        )

    # -------------------------------------------------------------------------- predicting
    def _predict_margin(self, X: Any) -> np.ndarray:
        self._check_fitted()
        frame = self._as_frame(X, reset=False)
        matrix = self.schema_.matrix(frame)
        return np.asarray(self._combine(
            lambda: self._booster_predict(frame, "margin"),
            lambda: self._linear_terms().margin(matrix)), dtype=np.float64)

    def _linear_terms(self) -> _LinearTerms:
        assert self.linear_terms_ is not None
        return self.linear_terms_

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated class probabilities, shape (n_samples, 2); column 1 is ``classes_[1]``."""
        margin = self._predict_margin(X)
        p = expit(margin) if self.calibrator_ is None else self.calibrator_.predict(margin)
        p = np.asarray(p, dtype=np.float64)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[1]`` where the calibrated probability exceeds ``threshold_``."""
        p = self.predict_proba(X)[:, 1]
        return np.asarray(self.classes_[(p > self.threshold_).astype(np.int64)])

    def predict_margin(self, X: Any) -> np.ndarray:
        """Uncalibrated log-odds of ``classes_[1]`` (what :meth:`explain`'s values add up to).

        Not named ``decision_function``: scikit-learn expects that to agree in sign with
        ``predict``, which thresholds the *calibrated* probability at ``threshold_``.
        """
        return self._predict_margin(X)

    def feature_contributions(self, X: Any) -> pd.DataFrame:
        """Per-row SHAP values of the uncalibrated log-odds, fast enough for online scoring.

        XGBoost: exact path-dependent TreeSHAP computed by XGBoost itself
        (``pred_contribs=True`` on the trees up to ``best_iteration_``), the same values as
        :meth:`explain` without building a ``shap.TreeExplainer`` per call. Logistic baseline:
        the exact SHAP values of a linear model with independent inputs against the training
        mean, ``w_j (z_j - mean_j)`` summed over each feature's encoded columns (Lundberg &
        Lee, 2017), so a row's values do not depend on the other rows asked for. Blend: SHAP
        values are linear in the model, so ``w`` times the trees' plus ``1 - w`` times the
        logistic model's.

        Returns
        -------
        pandas.DataFrame
            Index of ``X``; one column per original feature plus ``bias`` (the expected
            log-odds); each row sums to :meth:`predict_margin` (up to float rounding).
        """
        self._check_fitted()
        frame = self._as_frame(X, reset=False)
        return pd.DataFrame(
            self._combine(lambda: super(ChurnClassifier, self).feature_contributions(
                frame).to_numpy(), lambda: self._linear_contributions(frame)),
            index=frame.index, columns=[*self.schema_.columns, "bias"])

    def _linear_contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """The logistic part's exact SHAP values and bias (last column), one row per row.

        Linear model, independent inputs: ``phi_j = term_j(x) - mean term_j`` against the
        training mean, so one row is explained the same alone or among others.
        """
        terms = self._linear_terms()
        phi = terms.terms(self.schema_.matrix(frame)) - self.background_
        bias = terms.intercept_ + float(self.background_.sum())
        return np.column_stack([phi, np.full(len(frame), bias)])

    def explain(self, X: Any, *, background: Any = None, max_background: int = 500,
                seed: int = 0) -> shap.Explanation:
        """SHAP values of the uncalibrated log-odds, one column per original feature.

        XGBoost: exact TreeSHAP (``shap.TreeExplainer`` on the booster truncated to
        ``best_iteration_``, path-dependent, categorical splits included); a blend weighs the
        trees' and the logistic model's values by ``blend_weight_``. Logistic baseline:
        ``shap.LinearExplainer`` (interventional, background = ``background`` or up to
        ``max_background`` rows of ``X``) on the encoded columns, summed back per feature (SHAP
        values are additive, so one-hot and missing-indicator columns add up to their feature).

        Parameters
        ----------
        X
            Rows to explain (same columns as at fit).
        background, max_background, seed
            Logistic only: the reference rows for the interventional expectation.

        Returns
        -------
        shap.Explanation
            ``values`` (n_rows, n_features), ``base_values``, ``data`` (numbers; category
            codes for categorical columns, NaN for missing) and ``feature_names``.
        """
        import shap

        encoded = self._encode(X)
        data = self.schema_.category_codes(encoded)
        for i, name in enumerate(self.schema_.columns):
            if self.schema_.is_categorical(name):
                data[data[:, i] < 0, i] = np.nan

        def trees() -> tuple[np.ndarray, float]:
            best = int(self.best_iteration_) if self.best_iteration_ is not None else -1
            booster = self.estimator_.get_booster()[: best + 1]
            explainer = shap.TreeExplainer(booster)
            values = np.asarray(
                explainer.shap_values(xgb.DMatrix(encoded, enable_categorical=True))
            )
            return values, float(np.ravel(explainer.expected_value)[0])

        def linear() -> tuple[np.ndarray, float]:
            assert self.linear_ is not None
            transform = self.linear_.named_steps["encode"]
            logistic = self.linear_.named_steps["logistic"]
            ref = encoded if background is None else self.schema_.encode(
                self._as_frame(background, reset=False))
            if len(ref) > max_background:
                ref = ref.sample(max_background, random_state=seed)
            masker = transform.transform(self._logistic_input(ref))
            explainer = shap.LinearExplainer(logistic, masker)
            encoded_values = np.asarray(
                explainer.shap_values(transform.transform(self._logistic_input(encoded)))
            )
            values = np.column_stack([
                encoded_values[:, transform.output_indices_[column]].sum(axis=1)
                for column in self.schema_.encoded_columns
            ])
            return values, float(np.ravel(explainer.expected_value)[0])

        w = self.blend_weight_
        if w == 1.0:
            values, base = trees()
        elif w == 0.0:
            values, base = linear()
        else:
            (tree_values, tree_base), (linear_values, linear_base) = trees(), linear()
            values = w * tree_values + (1 - w) * linear_values
            base = w * tree_base + (1 - w) * linear_base
        return shap.Explanation(
            values=values,
            base_values=np.full(len(values), base),
            data=data,
            feature_names=list(self.schema_.columns),
        )


# ------------------------------------------------------------------------------------ tune
_TUNE_METRICS: dict[str, tuple[str, Literal["maximize", "minimize"]]] = {
    # our name -> (XGBoost eval metric reported to the pruner, study direction)
    "roc_auc": ("auc", "maximize"),
    "pr_auc": ("aucpr", "maximize"),
    "log_loss": ("logloss", "minimize"),
}


def _score(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if metric == "roc_auc":
        return float(roc_auc_score(y, p))
    if metric == "pr_auc":
        return float(average_precision_score(y, p))
    return _log_loss(y, p)


def _suggest(trial: optuna.Trial, estimator: str) -> dict[str, Any]:
    if estimator == "logistic":
        return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
        **({"C": trial.suggest_float("C", 1e-3, 1e2, log=True)} if estimator == "blend" else {}),
    }


def tune(
    X: Any,
    y: Any,
    X_valid: Any,
    y_valid: Any,
    *,
    n_trials: int,
    seed: int,
    timeout: float | None = None,
    metric: Literal["roc_auc", "pr_auc", "log_loss"] = "roc_auc",
    estimator: Literal["blend", "xgboost", "logistic"] = "xgboost",
    base_params: Mapping[str, Any] | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> tuple[dict[str, Any], optuna.Study]:
    """Search :class:`ChurnClassifier` hyper-parameters with a seeded Optuna TPE study [6]_.

    Each trial fits on ``X, y`` with early stopping on ``X_valid, y_valid`` and is scored by
    ``metric`` of its calibrated probabilities on ``X_valid``; keep a separate test set for
    the final evaluation. While XGBoost boosts, the validation ``metric`` is reported every
    round to the pruner (default ``MedianPruner(n_startup_trials=5, n_warmup_steps=100,
    interval_steps=10)``), which stops trials that trail the median of earlier ones at the
    same round. Comparing at equal rounds favours fast learners: a small ``learning_rate``
    looks worse early than it ends, hence the 100 warm-up rounds (pass ``pruner`` to change
    the trade-off, e.g. ``optuna.pruners.NopPruner()`` for none). When an MLflow
    run is active, every trial is a nested run logging its parameters, its score
    (``valid_<metric>``), its best iteration and its state (``complete``/``pruned``).

    For a fixed ``seed`` and no ``timeout`` the study, its trials and ``best_params`` are
    reproducible (TPE sampler and model seeded by ``seed``; XGBoost's ``hist`` method is
    deterministic); a ``timeout`` makes the number of trials depend on the machine.

    Parameters
    ----------
    X, y
        Training rows.
    X_valid, y_valid
        Validation rows: early stopping, calibration, threshold and the trial score.
    n_trials
        Number of trials.
    seed
        Seeds the sampler and every trial's model.
    timeout
        Optional wall-clock limit in seconds.
    metric
        What is optimised: ``roc_auc`` or ``pr_auc`` (maximised) or ``log_loss`` (minimised).
    estimator
        Which model family to tune.
    base_params
        Other :class:`ChurnClassifier` parameters kept fixed (``n_estimators``, ``n_jobs``...).
    pruner
        An Optuna pruner replacing the default (e.g. ``optuna.pruners.NopPruner()``).

    Returns
    -------
    best_params : dict
        Complete parameters: ``ChurnClassifier(**best_params)`` rebuilds the best trial's model.
    study : optuna.Study

    Examples
    --------
    >>> best, study = tune(X_fit, y_fit, X_val, y_val, n_trials=30, seed=0)  # doctest: +SKIP
    >>> model = ChurnClassifier(**best)  # doctest: +SKIP
    >>> model.fit(X_fit, y_fit, X_valid=X_val, y_valid=y_val)  # doctest: +SKIP
    """
    import mlflow
    import optuna

    if metric not in _TUNE_METRICS:
        raise ValueError(f"metric must be one of {sorted(_TUNE_METRICS)}, got {metric!r}")
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    xgb_metric, direction = _TUNE_METRICS[metric]
    fixed: dict[str, Any] = {**(base_params or {}), "estimator": estimator, "random_state": seed}
    unknown = set(fixed) - set(ChurnClassifier().get_params())
    if unknown:
        raise ValueError(f"base_params has unknown ChurnClassifier parameters: {sorted(unknown)}")

    def fit_and_score(trial: optuna.Trial, params: dict[str, Any]) -> float:
        model = ChurnClassifier(**params)
        callbacks = [_PruningCallback(trial, xgb_metric)] if estimator != "logistic" else []
        # the pruner's metric first: XGBoost early-stops on the last one (log loss)
        eval_metric = [xgb_metric, "logloss"] if xgb_metric != "logloss" else "logloss"
        model._validate_params()
        model._fit(X, y, X_valid, y_valid, callbacks=callbacks, eval_metric=eval_metric)
        y01 = model._check_target(y_valid, "y_valid", fitting=False)
        trial.set_user_attr("best_iteration", model.best_iteration_)
        return _score(metric, y01, model.predict_proba(X_valid)[:, 1])

    def objective(trial: optuna.Trial) -> float:
        params = {**fixed, **_suggest(trial, estimator)}
        if mlflow.active_run() is None:
            return fit_and_score(trial, params)
        # explicit start/end rather than `with`: a pruned trial ends as KILLED, not FAILED,
        # and ending it must never end the parent run
        mlflow.start_run(nested=True, run_name=f"trial-{trial.number}")
        try:
            mlflow.log_params({k: v for k, v in params.items() if k != "random_state"})
            mlflow.set_tag("optuna.trial", trial.number)
            score = fit_and_score(trial, params)
        except optuna.TrialPruned:
            mlflow.set_tag("optuna.state", "pruned")
            mlflow.end_run(status="KILLED")
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        mlflow.set_tag("optuna.state", "complete")
        mlflow.log_metric(f"valid_{metric}", score)
        best_iteration = trial.user_attrs.get("best_iteration")
        if best_iteration is not None:
            mlflow.log_metric("best_iteration", best_iteration)
        mlflow.end_run()
        return score

    study = optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner if pruner is not None else optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=100, interval_steps=10),
    )
    with warnings.catch_warnings():
        # the same unseen-level warning would repeat once per trial
        warnings.simplefilter("ignore", category=UnseenCategoryWarning)
        study.optimize(objective, n_trials=n_trials, timeout=timeout)
    best_params = {**ChurnClassifier().get_params(), **fixed, **study.best_params}
    return best_params, study
