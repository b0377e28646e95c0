"""ChurnClassifier: the scikit-learn contract, categorical handling, early stopping,
calibration, the decision threshold, and the Optuna tuner."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

from barberpro_ml.models import (
    BLEND_WEIGHTS,
    ChurnClassifier,
    PlattCalibrator,
    UnseenCategoryWarning,
    accuracy_threshold,
    tune,
)

FAST = {"n_estimators": 10, "learning_rate": 0.3, "random_state": 0, "n_jobs": 1}


def synthetic_churn(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features of every supported kind, labels drawn from known churn probabilities.

    Returns the features, the 0/1 labels and the true probabilities (the oracle).
    """
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "visits_90d": rng.poisson(3, n).astype(float),
        "days_since_last": rng.exponential(40, n),
        "avg_spend": rng.gamma(2.0, 20.0, n),
        "acquisition_channel": pd.Categorical(
            rng.choice(["organic", "paid_social", "referral"], n)),
        "neighborhood": rng.choice(["north", "south", "east", "west"], n).astype(object),
        "has_reviewed": rng.random(n) < 0.4,
    })
    X.loc[rng.random(n) < 0.1, "avg_spend"] = np.nan
    logit = (
        -1.0 - 0.45 * X["visits_90d"] + 0.025 * X["days_since_last"]
        + 1.0 * (X["acquisition_channel"] == "paid_social").to_numpy()
        - 0.8 * (X["neighborhood"] == "north").to_numpy()
        - 0.5 * X["has_reviewed"]
    ).to_numpy(dtype=float)
    p = expit(logit)
    return X, (rng.random(n) < p).astype(np.int64), p


# ------------------------------------------------------------------ scikit-learn contract
def _expected_failures(estimator: ChurnClassifier) -> dict[str, str]:
    if estimator.threshold == "auto":
        return {
            "check_classifiers_train": (
                "predict thresholds the calibrated probability at the validation-chosen "
                "threshold_, so it differs from argmax(predict_proba) by design"
            ),
        }
    return {}


@parametrize_with_checks(
    [
        ChurnClassifier(estimator="xgboost", threshold=0.5, **FAST),
        ChurnClassifier(threshold=0.5, **FAST),
        ChurnClassifier(estimator="logistic", threshold=0.5, random_state=0),
        ChurnClassifier(estimator="logistic", random_state=0),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_contract(estimator: ChurnClassifier, check: Any) -> None:
    check(estimator)


@pytest.mark.parametrize("kind", ["blend", "xgboost", "logistic"])
def test_both_estimators_share_the_api_and_round_trip(kind: str) -> None:
    X, y, _ = synthetic_churn(1500, seed=1)
    labels = np.where(y == 1, "churned", "active")  # string labels: classes_ sorted
    model = ChurnClassifier(estimator=kind, **FAST).fit(X, labels)
    assert list(model.classes_) == ["active", "churned"]
    assert model.n_features_in_ == X.shape[1]
    assert list(model.feature_names_in_) == list(X.columns)
    assert set(model.categories_) == {"acquisition_channel", "neighborhood"}
    assert model.categories_["acquisition_channel"] == ["organic", "paid_social", "referral"]
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    predicted = model.predict(X)
    np.testing.assert_array_equal(
        predicted == "churned", proba[:, 1] > model.threshold_)
    assert model.calibration_ in ("none", "sigmoid", "isotonic")
    assert 0 < model.threshold_ < 1
    assert model.validation_size_ == pytest.approx(0.2 * len(X), abs=1)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), proba)
    cloned = clone(model)
    assert cloned.get_params() == model.get_params()
    assert not hasattr(cloned, "threshold_")


@pytest.mark.parametrize("kind", ["blend", "xgboost", "logistic"])
def test_feature_contributions_are_shap_values_that_add_up_to_the_margin(kind: str) -> None:
    X, y, _ = synthetic_churn(1200, seed=3)
    model = ChurnClassifier(estimator=kind, **FAST).fit(X, y)
    rows = X.iloc[:200]
    contributions = model.feature_contributions(rows)
    assert list(contributions.columns) == [*X.columns, "bias"]
    assert contributions.index.equals(rows.index)
    np.testing.assert_allclose(contributions.sum(axis=1), model.predict_margin(rows), atol=1e-4)
    if kind == "xgboost":  # the same TreeSHAP values as the shap package
        np.testing.assert_allclose(contributions.iloc[:, :-1],
                                   model.explain(rows).values, atol=1e-5)
    one = model.feature_contributions(rows.iloc[[7]])
    np.testing.assert_allclose(one.to_numpy()[0], contributions.to_numpy()[7], atol=1e-5)


def _linear_signal(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Ten numbers, additive log-odds: what a logistic regression is made for."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 10)), columns=[f"x{i}" for i in range(10)])
    logit = X.to_numpy() @ np.linspace(1.0, 0.1, 10) - 1.5
    return X, (rng.random(n) < expit(logit)).astype(int)


def _interaction_signal(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Churn decided by an interaction (x0 > 0 xor x1 > 0): no additive model sees it."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=[f"x{i}" for i in range(4)])
    logit = np.where((X["x0"] > 0) ^ (X["x1"] > 0), 2.0, -2.0)
    return X, (rng.random(n) < expit(logit)).astype(int)


def test_blend_weight_follows_the_signal_and_keeps_the_better_part() -> None:
    test_auc: dict[tuple[str, str], float] = {}
    for name, make in (("linear", _linear_signal), ("interaction", _interaction_signal)):
        X, y = make(1200, 0)
        X_test, y_test = make(4000, 1)
        for kind in ("blend", "xgboost", "logistic"):
            model = ChurnClassifier(estimator=kind, random_state=0, n_jobs=1).fit(X, y)
            test_auc[name, kind] = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
            if kind == "blend":
                assert set(model.blend_log_loss_) == set(BLEND_WEIGHTS)
                assert model.blend_log_loss_[model.blend_weight_] == min(
                    model.blend_log_loss_.values())
                weight = model.blend_weight_
        if name == "linear":
            assert weight <= 0.5  # mostly the logistic model
        else:
            assert weight >= 0.8  # mostly the trees
    for name in ("linear", "interaction"):
        best = max(test_auc[name, "xgboost"], test_auc[name, "logistic"])
        assert test_auc[name, "blend"] >= best - 0.01, test_auc
    # and the parts really differ on these data: the check above is not vacuous
    assert test_auc["linear", "logistic"] > test_auc["linear", "xgboost"] + 0.01
    assert test_auc["interaction", "xgboost"] > test_auc["interaction", "logistic"] + 0.2


def test_public_data_set_that_ships_with_scikit_learn() -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_fit, X_test, y_fit, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                    stratify=y)
    for kind in ("xgboost", "logistic"):
        model = ChurnClassifier(estimator=kind, n_estimators=200, random_state=0,
                                n_jobs=1).fit(X_fit, y_fit)
        assert roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]) > 0.95


def test_numpy_arrays_are_numeric_tables() -> None:
    X, y, _ = synthetic_churn(800, seed=2)
    numeric = X[["visits_90d", "days_since_last", "avg_spend"]].to_numpy()
    model = ChurnClassifier(**FAST).fit(numeric, y)
    assert not hasattr(model, "feature_names_in_")
    assert model.schema_.columns == ("x0", "x1", "x2")
    assert model.predict_proba(numeric).shape == (800, 2)


@pytest.mark.parametrize("kind", ["blend", "xgboost", "logistic"])
def test_fast_path_equals_the_pandas_path_with_missing_and_unseen_levels(kind: str) -> None:
    X, y, _ = synthetic_churn(1500, seed=4)
    model = ChurnClassifier(estimator=kind, **FAST).fit(X, y)
    rows = X.head(300).copy()
    rows.loc[rows.index[:20], "avg_spend"] = np.nan
    rows["acquisition_channel"] = rows["acquisition_channel"].astype(object)
    rows.loc[rows.index[20:40], "acquisition_channel"] = "tiktok"      # unseen at fit
    rows.loc[rows.index[40:60], "acquisition_channel"] = None          # missing
    with pytest.warns(UserWarning, match="tiktok"):
        encoded = model.schema_.encode(model._as_frame(rows, reset=False))
    w = model.blend_weight_
    # the slow paths: XGBoost's pandas input, scikit-learn's logistic pipeline
    trees = (model.estimator_.predict(encoded, output_margin=True) if kind != "logistic"
             else np.zeros(len(rows)))
    linear = (model.linear_.decision_function(model._logistic_input(encoded))
              if model.linear_ is not None else np.zeros(len(rows)))
    with pytest.warns(UserWarning, match="tiktok"):
        fast = model.predict_margin(rows)
    if kind == "xgboost":
        np.testing.assert_array_equal(fast, trees)
    else:
        np.testing.assert_allclose(fast, w * trees + (1 - w) * linear, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------- categorical columns
@pytest.mark.parametrize("kind", ["blend", "xgboost", "logistic"])
def test_unseen_levels_are_scored_as_missing_with_a_warning(kind: str) -> None:
    X, y, _ = synthetic_churn(1500, seed=3)
    model = ChurnClassifier(estimator=kind, **FAST).fit(X, y)
    rows = X.head(20).copy()
    unseen = rows.copy()
    unseen["neighborhood"] = "downtown"  # never seen at fit
    unseen["acquisition_channel"] = pd.Categorical(["tiktok"] * 20)
    missing = rows.copy()
    missing["neighborhood"] = None
    missing["acquisition_channel"] = pd.Categorical([None] * 20, categories=["organic"])
    with pytest.warns(UnseenCategoryWarning, match="downtown"):
        p_unseen = model.predict_proba(unseen)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenCategoryWarning)  # missing is not "unseen"
        p_missing = model.predict_proba(missing)
    np.testing.assert_allclose(p_unseen, p_missing)
    assert not np.allclose(p_missing, model.predict_proba(rows))


@pytest.mark.parametrize("kind", ["blend", "xgboost", "logistic"])
def test_categorical_levels_carry_signal_whatever_their_order_at_scoring(kind: str) -> None:
    rng = np.random.default_rng(4)
    n = 3000
    level = rng.choice(["a", "b", "c", "d"], n)
    y = (rng.random(n) < np.select([level == "a", level == "b"], [0.8, 0.5], 0.1)).astype(int)
    X = pd.DataFrame({"segment": level})
    model = ChurnClassifier(estimator=kind, **FAST).fit(X, y)
    # the same levels in a category dtype of another order must give the same scores
    reordered = pd.DataFrame({"segment": pd.Categorical(level, categories=["d", "c", "b", "a"])})
    np.testing.assert_allclose(model.predict_proba(reordered), model.predict_proba(X))
    p = model.predict_proba(pd.DataFrame({"segment": ["a", "b", "c"]}))[:, 1]
    assert p[0] > p[1] > p[2]


@pytest.mark.parametrize("kind", ["blend", "xgboost", "logistic"])
def test_integer_and_mixed_type_levels_stay_distinct(kind: str) -> None:
    # service ids as an integer category (as the feature table's main_service), and an object
    # column where 1 and "1" are different levels
    rng = np.random.default_rng(13)
    n = 2000
    service = rng.integers(1, 8, n)
    mixed = rng.choice(np.array([1, "1", "z"], dtype=object), n)
    y = (rng.random(n) < np.where(service == 3, 0.7, 0.2) + np.where(mixed == "1", 0.2, 0.0)
         ).astype(int)
    X = pd.DataFrame({"main_service": pd.Categorical(service), "mixed": mixed})
    model = ChurnClassifier(estimator=kind, **FAST).fit(X, y)
    assert model.categories_["main_service"] == [1, 2, 3, 4, 5, 6, 7]
    levels = model.categories_["mixed"]  # unorderable: first-seen order
    assert sorted(map(repr, levels)) == ["'1'", "'z'", "1"]
    codes = model.schema_.encode(X)["f1"].cat.codes.to_numpy()
    expected = np.select([mixed == lv for lv in levels], list(range(3)), -1)
    np.testing.assert_array_equal(codes, expected)
    probe = pd.DataFrame({"main_service": pd.Categorical([3, 4]), "mixed": [1, 1]})
    p = model.predict_proba(probe)[:, 1]
    assert p[0] > p[1]


def test_bad_columns_are_refused_by_name() -> None:
    X, y, _ = synthetic_churn(600, seed=5)
    with_dates = X.assign(signup_at=pd.Timestamp("2024-01-01"))
    with pytest.raises(ValueError, match="signup_at"):
        ChurnClassifier(**FAST).fit(with_dates, y)
    infinite = X.copy()
    infinite.loc[[3, 7], "avg_spend"] = np.inf
    with pytest.raises(ValueError, match=r"'avg_spend' has 2 infinite"):
        ChurnClassifier(**FAST).fit(infinite, y)
    model = ChurnClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="visits_90d"):
        model.predict_proba(X.drop(columns="visits_90d"))
    text = X.assign(visits_90d=X["visits_90d"].astype(str) + " visits")
    with pytest.raises(ValueError, match=r"'visits_90d' was numeric at fit"):
        model.predict_proba(text)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"estimator": "forest"}, "estimator must be one of"),
        ({"calibration": "beta"}, "calibration must be"),
        ({"threshold": 1.5}, "threshold must be"),
        ({"validation_fraction": 0.0}, "validation_fraction"),
        ({"early_stopping_rounds": 0}, "early_stopping_rounds"),
    ],
)
def test_invalid_parameters_are_refused_at_fit(params: dict[str, Any], message: str) -> None:
    X, y, _ = synthetic_churn(200, seed=6)
    model = ChurnClassifier(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)


def test_one_sided_validation_arguments_are_refused() -> None:
    X, y, _ = synthetic_churn(200, seed=6)
    with pytest.raises(ValueError, match="both X_valid and y_valid"):
        ChurnClassifier(**FAST).fit(X, y, X_valid=X)


# ------------------------------------------------------------------------- early stopping
def test_early_stopping_stops_when_validation_loss_stops_improving() -> None:
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(1200, 5)), columns=[f"f{i}" for i in range(5)])
    y = rng.integers(0, 2, 1200)  # pure noise: every round after the first few overfits
    model = ChurnClassifier(n_estimators=400, learning_rate=0.3, max_depth=6,
                            early_stopping_rounds=10, random_state=0, n_jobs=1).fit(X, y)
    assert model.n_estimators_ is not None and model.best_iteration_ is not None
    assert model.n_estimators_ < 400
    assert model.n_estimators_ == model.best_iteration_ + 10 + 1
    full = ChurnClassifier(n_estimators=40, early_stopping_rounds=None, random_state=0,
                           n_jobs=1).fit(X, y)
    assert full.n_estimators_ == 40 and full.best_iteration_ == 39


def test_explicit_validation_set_is_used_whole() -> None:
    X, y, _ = synthetic_churn(1000, seed=8)
    model = ChurnClassifier(**FAST).fit(X[:700], y[:700], X_valid=X[700:], y_valid=y[700:])
    assert model.validation_size_ == 300


# ---------------------------------------------------------------------------- calibration
def test_calibration_repairs_an_overconfident_model() -> None:
    X, y, _ = synthetic_churn(6000, seed=9)
    X_fit, y_fit = X[:3000], y[:3000]
    X_val, y_val = X[3000:4500], y[3000:4500]
    X_test, y_test = X[4500:], y[4500:]
    # deep trees, many rounds, no early stopping: probabilities pushed to 0 and 1
    overfit = {"n_estimators": 150, "learning_rate": 0.5, "max_depth": 8,
               "min_child_weight": 0.0, "subsample": 1.0, "colsample_bytree": 1.0,
               "early_stopping_rounds": None, "random_state": 0, "n_jobs": 1}
    overfit["estimator"] = "xgboost"  # the trees alone: a blend would temper them itself
    raw = ChurnClassifier(calibration="none", **overfit).fit(
        X_fit, y_fit, X_valid=X_val, y_valid=y_val)
    auto = ChurnClassifier(calibration="auto", **overfit).fit(
        X_fit, y_fit, X_valid=X_val, y_valid=y_val)
    assert auto.calibration_ in ("sigmoid", "isotonic")
    scores = auto.calibration_log_loss_
    assert scores[auto.calibration_] < scores["none"]
    raw_loss = log_loss(y_test, raw.predict_proba(X_test)[:, 1])
    calibrated_loss = log_loss(y_test, auto.predict_proba(X_test)[:, 1])
    assert calibrated_loss < raw_loss - 0.05


def test_platt_scaling_recovers_a_known_sigmoid() -> None:
    rng = np.random.default_rng(10)
    margin = rng.normal(0, 2, 40_000)
    y = (rng.random(margin.size) < expit(2.0 * margin - 1.0)).astype(int)
    calibrator = PlattCalibrator().fit(margin, y)
    assert calibrator.a_ == pytest.approx(2.0, abs=0.08)
    assert calibrator.b_ == pytest.approx(-1.0, abs=0.08)


# ----------------------------------------------------------------------------- threshold
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20)), min_size=1, max_size=60),
)
def test_accuracy_threshold_is_a_best_cut(pairs: list[tuple[int, int]]) -> None:
    y = np.array([a for a, _ in pairs])
    p = np.array([b / 20 for _, b in pairs])  # coarse grid: many ties
    t = accuracy_threshold(y, p)
    accuracy = np.mean((p > t) == y)
    candidates = np.concatenate([[-1.0], np.unique(p)])  # every distinct prediction pattern
    best = max(np.mean((p > c) == y) for c in candidates)
    assert accuracy == pytest.approx(best)


def test_auto_threshold_is_the_most_accurate_cut_on_validation() -> None:
    # without calibration the out-of-fold validation probabilities are predict_proba(X_val),
    # so threshold_ must reach the best accuracy any cut reaches on the validation rows
    X, y, _ = synthetic_churn(3000, seed=11)
    X_val, y_val = X[2000:], y[2000:]
    model = ChurnClassifier(calibration="none", **FAST).fit(
        X[:2000], y[:2000], X_valid=X_val, y_valid=y_val)
    p = model.predict_proba(X_val)[:, 1]
    best = max(np.mean((p > c) == y_val) for c in np.concatenate([[-1.0], np.unique(p)]))
    assert np.mean(model.predict(X_val) == y_val) == pytest.approx(best)
    fixed = ChurnClassifier(calibration="none", threshold=0.3, **FAST).fit(
        X[:2000], y[:2000], X_valid=X_val, y_valid=y_val)
    assert fixed.threshold_ == 0.3


# ---------------------------------------------------------------------------------- tune
def _small_problem() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    X, y, _ = synthetic_churn(1200, seed=12)
    return X[:800], y[:800], X[800:], y[800:]


def test_tune_is_reproducible_for_a_seed() -> None:
    X, y, Xv, yv = _small_problem()
    base = {"n_estimators": 40, "n_jobs": 1, "early_stopping_rounds": 10}
    best_a, study_a = tune(X, y, Xv, yv, n_trials=4, seed=3, base_params=base)
    best_b, study_b = tune(X, y, Xv, yv, n_trials=4, seed=3, base_params=base)
    assert best_a == best_b
    assert [t.params for t in study_a.trials] == [t.params for t in study_b.trials]
    assert [t.value for t in study_a.trials] == [t.value for t in study_b.trials]
    # the pruner was fed the validation AUC of every boosting round
    assert all(len(t.intermediate_values) > 5 for t in study_a.trials)
    model = ChurnClassifier(**best_a).fit(X, y, X_valid=Xv, y_valid=yv)
    assert roc_auc_score(yv, model.predict_proba(Xv)[:, 1]) == pytest.approx(
        study_a.best_value)


def test_tune_prunes_trials_that_trail_the_median() -> None:
    import optuna

    X, y, Xv, yv = _small_problem()
    _, study = tune(X, y, Xv, yv, n_trials=8, seed=0, metric="log_loss",
                    base_params={"n_estimators": 60, "n_jobs": 1, "early_stopping_rounds": None},
                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.PRUNED in states
    assert study.direction == optuna.study.StudyDirection.MINIMIZE


def test_tune_logs_each_trial_as_a_nested_mlflow_run(mlflow_store: Any) -> None:
    import mlflow

    X, y, Xv, yv = _small_problem()
    with mlflow.start_run() as parent:
        _, study = tune(X, y, Xv, yv, n_trials=3, seed=1, estimator="logistic")
    children = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert len(children) == 3
    assert set(children["tags.optuna.state"]) == {"complete"}
    logged = sorted(children["metrics.valid_roc_auc"])
    assert logged == pytest.approx(sorted(t.value for t in study.trials))
    assert children["params.C"].notna().all()
    assert mlflow.active_run() is None  # the parent ended normally, not by a trial


# ------------------------------------------------------ TreeSHAP once per decision pattern
def _split_thresholds(model: ChurnClassifier) -> dict[int, np.ndarray]:
    """Every numeric split threshold of the fitted booster, by feature position."""
    import json

    trees = json.loads(bytes(model.estimator_.get_booster().save_raw("json")))[
        "learner"]["gradient_booster"]["model"]["trees"]
    out: dict[int, list[float]] = {}
    for tree in trees:
        for left, f, t, kind in zip(tree["left_children"], tree["split_indices"],
                                    tree["split_conditions"], tree["split_type"], strict=True):
            if left != -1 and kind == 0:
                out.setdefault(f, []).append(t)
    return {f: np.asarray(v, dtype=np.float32) for f, v in out.items()}


@pytest.mark.parametrize("kind", ["blend", "xgboost"])
def test_pattern_treeshap_is_bit_for_bit_xgboosts_pred_contribs(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from barberpro_ml.models import _boosted
    from barberpro_ml.models._treeshap import PatternTreeShap
    from barberpro_ml.scoring import churn_reasons

    X, y, _ = synthetic_churn(1500, seed=5)
    model = ChurnClassifier(estimator=kind, n_estimators=60, learning_rate=0.3,
                            random_state=0, n_jobs=1).fit(X, y)
    rows = X.sample(400, random_state=1).copy()
    rows.loc[rows.index[:30], "avg_spend"] = np.nan
    rows.loc[rows.index[30:40], "days_since_last"] = np.nan
    rows["acquisition_channel"] = rows["acquisition_channel"].astype(object)
    rows.loc[rows.index[40:60], "acquisition_channel"] = None                  # missing
    rows.loc[rows.index[60:70], "neighborhood"] = None
    # values exactly at split thresholds and just below them: the edges of ``x < t``
    columns = list(X.columns)
    for f, cuts in _split_thresholds(model).items():
        name = columns[f]
        if name in ("has_reviewed",) or not cuts.size:
            continue
        at = rows.index[100 + 10 * f: 105 + 10 * f]
        rows.loc[at, name] = cuts[: len(at)].astype(np.float64).tolist() + [np.nan] * (
            len(at) - min(len(at), len(cuts)))
        below = rows.index[105 + 10 * f: 110 + 10 * f]
        rows.loc[below, name] = np.nextafter(cuts[: len(below)], np.float32(-np.inf)).astype(
            np.float64).tolist() + [np.nan] * (len(below) - min(len(below), len(cuts)))
    matrix = model.schema_.matrix(model._as_frame(rows, reset=False))
    assert np.isnan(matrix).any()
    direct = model._direct_contributions(matrix)
    patterns = PatternTreeShap(model.estimator_.get_booster(), model._rounds(),
                               model.schema_.encoded_columns, model.schema_.feature_types)
    np.testing.assert_array_equal(patterns.contributions(matrix), direct)
    # each thread's share of rows gives those rows the same values
    np.testing.assert_array_equal(patterns.contributions(np.tile(matrix, (12, 1)), n_threads=3),
                                  np.tile(direct, (12, 1)))

    # end to end: the same SHAP values and the same reasons through either path
    monkeypatch.setattr(_boosted, "PATTERN_SHAP_MIN_ROWS", 10**9)
    old = model.feature_contributions(rows)
    monkeypatch.setattr(_boosted, "PATTERN_SHAP_MIN_ROWS", 1)
    new = model.feature_contributions(rows)
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    pd.testing.assert_frame_equal(churn_reasons(new, rows), churn_reasons(old, rows),
                                  check_exact=True)
