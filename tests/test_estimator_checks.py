"""Every estimator in ``barberpro_ml.models`` against scikit-learn's estimator checks.

``ChurnClassifier`` and ``LTVRegressor`` take any feature matrix and pass every check.
``CustomerSegmenter``, the CLV models and the recommenders are scikit-learn estimators in their
parameters (``get_params``/``set_params``/``clone``, ``_parameter_constraints`` validated at
``fit``, fitted attributes ending in ``_``), but their ``fit`` does not take a numeric
``X (n_samples, n_features)``: the checks that feed them such an ``X`` are listed below, each
with why it cannot pass. The exemptions are strict: a listed check that starts passing fails
the test, so the list cannot go stale. The remaining checks run and pass, and
:func:`test_contract_on_the_input_each_model_takes` checks the same contract (fit returns
self, leaves its parameters alone, is idempotent, pickles, clones unfitted) on the input each
model actually takes.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import InputError
from barberpro_ml.features import customer_features
from barberpro_ml.models import (
    BetaGeoModel,
    ChurnClassifier,
    CustomerSegmenter,
    GammaGammaModel,
    LTVRegressor,
)
from barberpro_ml.models._params import InvalidParametersError
from barberpro_ml.models.recs import (
    ALSRecommender,
    BPRRecommender,
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
)

# Small models: the whole file runs in about a minute on two cores.
TREES = {"n_estimators": 5, "random_state": 0, "n_jobs": 1}

ESTIMATORS = [
    # (tests/test_churn_model.py runs the checks on the logistic baseline and a fixed threshold)
    ChurnClassifier(**TREES),
    # 20 rounds at a higher rate: check_regressors_train asks for R^2 > 0.5
    LTVRegressor(n_estimators=20, learning_rate=0.3, random_state=0, n_jobs=1),
    CustomerSegmenter(),
    BetaGeoModel(),
    GammaGammaModel(),
    PopularityRecommender(),
    EASERecommender(),
    ItemKNNRecommender(),
    ALSRecommender(factors=4, iterations=2),
    BPRRecommender(factors=4, iterations=2),
]

# --------------------------------------------------------------------------- exemptions
# The checks that fit on a numeric X; they fail for every model whose fit takes other input.
_FIT_ON_ARRAY_CHECKS = (
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_estimators_dtypes",
    "check_complex_data",
    "check_dtype_object",
    "check_pipeline_consistency",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
)
_SAMPLE_WEIGHT_CHECKS = (
    "check_sample_weights_not_an_array",
    "check_sample_weights_list",
    "check_sample_weights_shape",
    "check_sample_weights_not_overwritten",
)


def _segmenter_exemptions() -> dict[str, str]:
    frame = ("fit takes a customer_features DataFrame with the named RFM columns "
             "(days_since_last_visit, n_visits, ...); an array is refused with a TypeError "
             "saying so")
    return {
        **dict.fromkeys(_FIT_ON_ARRAY_CHECKS, frame),
        "check_fit1d": frame,
        "check_transformer_data_not_an_array": frame,
        "check_transformer_general": frame,
        "check_positive_only_tag_during_fit": "the check's array is refused (TypeError: not a "
                                              "customer_features DataFrame) whatever its sign",
        "check_estimators_empty_data_messages": "an empty array is refused as not a DataFrame "
                                                "(TypeError) before its size is looked at",
        "check_estimator_sparse_tag": "sparse input is refused as not a DataFrame (TypeError)",
        "check_estimator_sparse_array": "sparse input is refused as not a DataFrame, without "
                                        "the word 'sparse' the check looks for",
        "check_estimator_sparse_matrix": "sparse input is refused as not a DataFrame, without "
                                         "the word 'sparse' the check looks for",
    }


def _clv_exemptions(estimator: BaseEstimator) -> dict[str, str]:
    if isinstance(estimator, BetaGeoModel):
        inputs = ("fit takes three 1-D arrays frequency, recency, T (or a DataFrame of those "
                  "columns), not X and y; the check's 2-D X is refused (T missing)")
    else:
        inputs = ("fit takes two 1-D arrays frequency, monetary_value (or a DataFrame of those "
                  "columns), not X and y; the check's 2-D X is refused as not 1-D")
    exemptions = {
        **dict.fromkeys(_FIT_ON_ARRAY_CHECKS, inputs),
        **dict.fromkeys(_SAMPLE_WEIGHT_CHECKS, inputs),
        "check_positive_only_tag_during_fit": inputs,
        "check_all_zero_sample_weights_error": inputs,
        "check_sample_weights_pandas_series": "the check passes X as a DataFrame (without the "
                                              "named columns) and y as well, which fit refuses",
        "check_sample_weight_equivalence_on_dense_data": "fit has no y parameter",
        "check_estimators_empty_data_messages": "an empty 2-D X is refused by its shape before "
                                                "its size is looked at",
        "check_estimators_nan_inf": "the check's 2-D X is refused before NaN is looked at; NaN "
                                    "and inf in frequency/recency/T are refused by name "
                                    "(tests/test_clv.py)",
        "check_estimator_sparse_tag": "sparse input is refused by its shape, not as sparse",
        "check_estimator_sparse_array": "sparse input is refused by its shape, without the "
                                        "word 'sparse' the check looks for",
        "check_estimator_sparse_matrix": "sparse input is refused by its shape, without the "
                                         "word 'sparse' the check looks for",
    }
    if isinstance(estimator, BetaGeoModel):
        # (GammaGammaModel passes it: a 1-D X is a frequency, and fit asks for monetary_value)
        exemptions["check_fit1d"] = inputs
    return exemptions


def _recommender_exemptions() -> dict[str, str]:
    interactions = ("fit takes an interactions DataFrame (user_id, item_id, optional weight "
                    "and timestamp) and no y; recommend() ranks ids, there is no predict(X)")
    return {
        **dict.fromkeys(_FIT_ON_ARRAY_CHECKS, interactions),
        "check_fit1d": interactions,
        "check_positive_only_tag_during_fit": interactions,
        "check_estimators_empty_data_messages": interactions,
        "check_estimators_nan_inf": "fit(X, y) is refused (no y parameter) before NaN is "
                                    "looked at; missing ids in interactions are refused by name "
                                    "(tests/test_recommenders.py)",
        "check_estimator_sparse_tag": interactions,
        "check_estimator_sparse_array": interactions,
        "check_estimator_sparse_matrix": interactions,
    }


def expected_failed_checks(estimator: BaseEstimator) -> dict[str, str]:
    if isinstance(estimator, ChurnClassifier):
        if estimator.threshold == "auto":
            return {"check_classifiers_train": (
                "predict thresholds the calibrated probability at the validation-chosen "
                "threshold_, so it differs from argmax(predict_proba) by design")}
        return {}
    if isinstance(estimator, LTVRegressor):
        return {}
    if isinstance(estimator, CustomerSegmenter):
        return _segmenter_exemptions()
    if isinstance(estimator, BetaGeoModel | GammaGammaModel):
        return _clv_exemptions(estimator)
    return _recommender_exemptions()


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks,
                         xfail_strict=True)
def test_sklearn_estimator_checks(estimator: BaseEstimator, check: Callable[..., Any]) -> None:
    name = getattr(check, "func", check).__name__
    exemption = expected_failed_checks(estimator).get(name)
    if exemption is None:
        check(estimator)
        return
    # An exempt check: report its failure as an xfail without handing pytest the exception,
    # whose traceback through scikit-learn's 5,000-line check module costs pytest ~0.3 s to
    # format (the 240 exempt checks took 80 s that way, 1 s this way). A check that passes
    # returns normally, and the strict xfail mark fails the test: the exemption is stale.
    try:
        check(estimator)
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
    else:
        return
    pytest.xfail(f"{exemption} [{failure[:300]}]")


# ------------------------------------------- the same contract, on the input each model takes
def _segmenter_input() -> tuple[tuple[Any, ...], Callable[[Any], Any]]:
    X = customer_features(MarketplaceData.load("data/sample"), "2024-06-30")
    return (X,), lambda model: model.transform(X)


def _bgnbd_input() -> tuple[tuple[Any, ...], Callable[[Any], Any]]:
    rng = np.random.default_rng(0)
    n, T = 300, 52.0
    rate = rng.gamma(0.5, 1 / 4.0, n)
    times = np.cumsum(rng.exponential(1 / rate[:, None], (n, 60)), axis=1)
    frequency = np.minimum((times <= T).sum(axis=1), rng.geometric(rng.beta(1.0, 3.0, n)))
    recency = np.where(frequency > 0, times[np.arange(n), np.maximum(frequency - 1, 0)], 0.0)
    data = pd.DataFrame({"frequency": frequency, "recency": recency, "T": T})
    return (data,), lambda model: model.probability_alive(data)


def _gamma_gamma_input() -> tuple[tuple[Any, ...], Callable[[Any], Any]]:
    rng = np.random.default_rng(1)
    frequency = rng.integers(1, 6, 300)
    spend = rng.gamma(6.0, 1.0 / rng.gamma(4.0, 1.0 / 15.0, 300))
    return (frequency, spend), lambda model: model.expected_average_spend(frequency, spend)


def _interactions_input() -> tuple[tuple[Any, ...], Callable[[Any], Any]]:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"user_id": rng.integers(0, 40, 300),
                          "item_id": rng.choice(list("abcdefgh"), 300)})
    return (frame,), lambda model: model.recommend(list(range(45)), k=3)


CONTRACT_CASES = [
    pytest.param(CustomerSegmenter(), _segmenter_input, id="CustomerSegmenter"),
    pytest.param(BetaGeoModel(), _bgnbd_input, id="BetaGeoModel"),
    pytest.param(GammaGammaModel(), _gamma_gamma_input, id="GammaGammaModel"),
    pytest.param(PopularityRecommender(), _interactions_input, id="PopularityRecommender"),
    pytest.param(EASERecommender(l2=5.0), _interactions_input, id="EASERecommender"),
    pytest.param(ItemKNNRecommender(), _interactions_input, id="ItemKNNRecommender"),
    pytest.param(ALSRecommender(factors=4, iterations=2), _interactions_input,
                 id="ALSRecommender"),
    pytest.param(BPRRecommender(factors=4, iterations=2), _interactions_input,
                 id="BPRRecommender"),
]


def _same(a: Any, b: Any) -> None:
    if isinstance(a, pd.DataFrame | pd.Series):
        pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize(("estimator", "make_input"), CONTRACT_CASES)
def test_contract_on_the_input_each_model_takes(
        estimator: BaseEstimator,
        make_input: Callable[[], tuple[tuple[Any, ...], Callable[[Any], Any]]]) -> None:
    args, output = make_input()
    model = clone(estimator)
    with pytest.raises(NotFittedError):
        output(model)
    params = {k: pickle.dumps(v) for k, v in model.get_params().items()}
    public_before = {k for k in vars(model) if not k.startswith("_")}

    assert model.fit(*args) is model                                  # fit returns self
    assert {k: pickle.dumps(v) for k, v in model.get_params().items()} == params
    added = {k for k in vars(model) if not k.startswith("_")} - public_before
    assert added and all(k.endswith("_") for k in added), added         # fitted: trailing _
    first = output(model)

    _same(output(model.fit(*args)), first)                            # idempotent
    _same(output(pickle.loads(pickle.dumps(model))), first)            # pickles
    with pytest.raises(NotFittedError):                                # clones unfitted
        output(clone(model))


# ------------------------------------------------------------------ parameter validation
@pytest.mark.parametrize(
    ("estimator", "named"),
    [
        (ChurnClassifier(estimator="forest", threshold=1.5, learning_rate=0),  # type: ignore[arg-type]
         ["estimator must be one of {'blend', 'logistic', 'xgboost'}, got 'forest'",
          "learning_rate must be a float in the range (0.0, inf), got 0",
          "threshold must be one of {'auto'} or a float in the range (0.0, 1.0), got 1.5"]),
        (LTVRegressor(tweedie_variance_power=2.0, prediction_scale=float("inf")),
         ["tweedie_variance_power must be a float in the range [1.0, 2.0), got 2.0",
          "prediction_scale must be a float in the range (0.0, inf), got inf"]),
        (CustomerSegmenter(method="dbscan", k_values=(3, 3)),  # type: ignore[arg-type]
         ["method must be one of {'gmm', 'kmeans'}, got 'dbscan'",
          "k_values has duplicates: [3, 3]"]),
        (BetaGeoModel(penalizer=-0.1),
         ["penalizer must be a float in the range [0.0, inf), got -0.1"]),
        (ItemKNNRecommender(n_neighbors=0, half_life_days=-1.0),
         ["half_life_days must be None or a float in the range (0.0, inf), got -1.0",
          # None (the default) now means "choose n_neighbors on held-out data at fit"
          "n_neighbors must be None or an int in the range [1, inf), got 0"]),
    ],
)
def test_every_bad_parameter_is_named_in_one_error(estimator: BaseEstimator,
                                                   named: list[str]) -> None:
    """All bad parameters at once, before any data is read (the data here is nonsense), as
    scikit-learn's InvalidParameterError (with its canonical sentence) and our InputError."""
    fit_args = (None, None) if isinstance(estimator, ChurnClassifier | LTVRegressor) else (None,)
    with pytest.raises(InvalidParametersError) as caught:
        estimator.fit(*fit_args)  # type: ignore[attr-defined]
    message = str(caught.value)
    for part in named:
        assert part in message
    assert f"parameter of {type(estimator).__name__} must be" in message
    assert isinstance(caught.value, InputError)  # the CLI exits 2, the service answers 422


def test_init_only_stores_parameters() -> None:
    """Bad values are accepted by __init__ and set_params (scikit-learn's convention) and
    refused at fit."""
    model = LTVRegressor(n_estimators=-3)
    assert model.get_params()["n_estimators"] == -3
    model.set_params(n_estimators=5, learning_rate=-1.0)
    with pytest.raises(InvalidParametersError, match="learning_rate must be"):
        model.fit(np.ones((10, 1)), np.ones(10))
