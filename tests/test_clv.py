"""BG/NBD, Gamma-Gamma and CLV: published CDNOW numbers, independent references, gradients."""

from __future__ import annotations

import importlib
import pickle
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from barberpro_ml.features.rfm import rfm_summary
from barberpro_ml.models import _clv_math as cm
from barberpro_ml.models.clv import (
    BetaGeoModel,
    BetaGeoParams,
    ConvergenceError,
    GammaGammaModel,
    GammaGammaParams,
    customer_lifetime_value,
)
from requirements import missing

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """Calibration (to 1997-09-30) and 39-week holdout summary of the CDNOW sample, in weeks."""
    log = pd.read_csv(DATA / "CDNOW_sample.txt", sep=r"\s+", header=None,
                      names=["master_id", "customer_id", "date", "n_cds", "spend"])
    return rfm_summary(log, "customer_id", "date", "spend", observation_period_end="1998-06-30",
                       time_scaler=7, calibration_period_end="1997-09-30",
                       datetime_format="%Y%m%d")


@pytest.fixture(scope="module")
def bgnbd(cdnow: pd.DataFrame) -> BetaGeoModel:
    return BetaGeoModel().fit(cdnow)


@pytest.fixture(scope="module")
def gamma_gamma(cdnow: pd.DataFrame) -> GammaGammaModel:
    return GammaGammaModel().fit(cdnow)


def simulate_bgnbd(n: int, T: float, params: BetaGeoParams,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (frequency, recency, T) from the BG/NBD generative story (FHL 2005, section 2)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(params.r, 1.0 / params.alpha, n)
    dropout = rng.beta(params.a, params.b, n)
    times = np.cumsum(rng.exponential(1.0 / rate[:, None], (n, 400)), axis=1)
    assert (times[:, -1] > T).all()  # enough draws to pass T for everyone
    # Dropout happens right after a repeat purchase, after the N-th with N ~ Geometric(p).
    frequency = np.minimum((times <= T).sum(axis=1), rng.geometric(dropout))
    recency = np.where(frequency > 0, times[np.arange(n), np.maximum(frequency - 1, 0)], 0.0)
    return frequency.astype(float), recency, np.full(n, T)


# --- published CDNOW results (Fader, Hardie & Lee 2005; Hardie's notes) ----------------------


def test_bgnbd_matches_the_published_cdnow_estimates(bgnbd: BetaGeoModel) -> None:
    params = bgnbd.params_
    assert (round(params.r, 3), round(params.alpha, 3), round(params.a, 3),
            round(params.b, 3)) == (0.243, 4.414, 0.793, 2.426)
    assert round(bgnbd.log_likelihood_, 1) == -9582.4
    assert bgnbd.n_customers_ == 2357
    assert bgnbd.n_profiles_ < 2357  # duplicate profiles were collapsed


def test_bgnbd_on_the_published_summary_file_gives_the_same_estimates() -> None:
    published = pd.read_csv(DATA / "cdnow_customers_summary.csv", index_col="ID")
    params = BetaGeoModel().fit(published).params_
    assert (round(params.r, 3), round(params.alpha, 3), round(params.a, 3),
            round(params.b, 3)) == (0.243, 4.414, 0.793, 2.426)


def test_gamma_gamma_matches_the_published_cdnow_estimates(
        gamma_gamma: GammaGammaModel) -> None:
    params = gamma_gamma.params_
    assert (round(params.p, 2), round(params.q, 2), round(params.v, 2)) == (6.25, 3.74, 15.44)
    assert gamma_gamma.n_customers_ == 946
    assert gamma_gamma.n_ignored_ == 2357 - 946


def test_conditional_expectation_of_customer_1(bgnbd: BetaGeoModel,
                                               cdnow: pd.DataFrame) -> None:
    # Hardie's note 004: customer 1 (x = 2, t_x = 30.43, T = 38.86) buys 1.226 times in the
    # 39-week holdout.
    assert round(float(bgnbd.expected_purchases(39.0, 2, 30.43, 38.86)), 3) == 1.226
    exact = bgnbd.expected_purchases(39.0, cdnow.loc[[1]])
    assert round(float(exact.iloc[0]), 3) == 1.226


def test_new_customer_expectation_at_week_78(bgnbd: BetaGeoModel) -> None:
    assert abs(float(bgnbd.expected_purchases_new_customer(78.0)) - 1.8576) < 5e-4


def test_aggregate_holdout_forecast_under_forecasts(bgnbd: BetaGeoModel,
                                                    cdnow: pd.DataFrame) -> None:
    actual = cdnow["frequency_holdout"].sum()
    assert actual == 1882
    # Cohort forecast of FHL (2005) Figure 1: each customer's expected purchases between age T
    # and T + 39 weeks, from the unconditional E[X(t)]: published near 1,667.
    age = cdnow["T"].to_numpy()
    cohort = (bgnbd.expected_purchases_new_customer(age + 39.0)
              - bgnbd.expected_purchases_new_customer(age)).sum()
    assert abs(cohort - 1667) < 5
    # Conditioning on each history does not remove the under-forecast on this data.
    conditional = bgnbd.expected_purchases(39.0, cdnow).sum()
    assert conditional < actual


# --- an independent reference: integrate over the dropout probability p ----------------------


def beta_expectation(function: Any, a: float, b: float) -> float:
    """E[function(p)] for p ~ Beta(a, b), by quadrature with the algebraic endpoint weight."""
    value, _ = integrate.quad(function, 0.0, 1.0, weight="alg", wvar=(a - 1.0, b - 1.0),
                              epsabs=0.0, epsrel=1e-12, limit=200)
    return float(value / special.beta(a, b))


def reference_bgnbd(params: BetaGeoParams, x: int, t_x: float, T: float,
                    t: float) -> tuple[float, float]:
    """P(alive) and E[Y(t) | x, t_x, T] from the individual-level model, no hypergeometric.

    Integrating lambda ~ Gamma(r, alpha) analytically and p ~ Beta(a, b) numerically (both
    terms scaled by (alpha + T) ** (r + x)): given lambda and p, a customer alive at T buys
    (1 - exp(-lambda p t)) / p times in (T, T + t] (FHL 2005 eq. 7), and the history has
    likelihood (1-p)^x lambda^x e^{-lambda T} (alive) + p (1-p)^{x-1} lambda^x e^{-lambda t_x}.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    alive = beta_expectation(lambda p: (1 - p) ** x, a, b)
    dead = 0.0
    if x > 0:
        ratio = ((alpha + T) / (alpha + t_x)) ** (r + x)
        dead = ratio * beta_expectation(lambda p: p * (1 - p) ** (x - 1), a, b)
    future = beta_expectation(
        lambda p: (1 - p) ** x * per_unit_dropout(p, r + x, t / (alpha + T)), a, b)
    return alive / (alive + dead), future / (alive + dead)


def per_unit_dropout(p: float, shape: float, u: float) -> float:
    """(1 - (1 + p u) ** -shape) / p, with its limit shape * u at p = 0."""
    if p == 0.0:
        return shape * u
    return float(-np.expm1(-shape * np.log1p(p * u)) / p)


def reference_new_customer(params: BetaGeoParams, t: float) -> float:
    return beta_expectation(lambda p: per_unit_dropout(p, params.r, t / params.alpha),
                            params.a, params.b)


def test_predictions_agree_with_an_independent_reference(bgnbd: BetaGeoModel,
                                                         cdnow: pd.DataFrame) -> None:
    rng = np.random.default_rng(5)
    rows = cdnow.iloc[np.r_[rng.choice(len(cdnow), 30, replace=False),
                            int(np.argmax(cdnow["frequency"].to_numpy()))]]
    for t in (1.0, 39.0, 200.0):
        ours_alive = bgnbd.probability_alive(rows)
        ours_expected = bgnbd.expected_purchases(t, rows)
        for (customer, row) in rows.iterrows():
            alive, expected = reference_bgnbd(bgnbd.params_, int(row["frequency"]),
                                              row["recency"], row["T"], t)
            assert ours_alive[customer] == pytest.approx(alive, rel=1e-6, abs=1e-9)
            assert ours_expected[customer] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    for t in (0.5, 39.0, 78.0, 500.0):
        assert float(bgnbd.expected_purchases_new_customer(t)) == pytest.approx(
            reference_new_customer(bgnbd.params_, t), rel=1e-6)


@pytest.mark.parametrize(
    ("params", "x", "t_x", "T", "t"),
    [
        # a = 1 exactly: eq. 10 is 0/0 there, the expectation is not.
        (BetaGeoParams(0.5, 3.0, 1.0, 2.0), 3, 20.0, 30.0, 39.0),
        (BetaGeoParams(0.5, 3.0, 1.0 + 1e-9, 2.0), 0, 0.0, 30.0, 39.0),
        # a + b = 1 and x = 0: the hypergeometric has c = 0.
        (BetaGeoParams(0.5, 3.0, 0.4, 0.6), 0, 0.0, 30.0, 39.0),
        # r = a makes C - A - B an integer; with a frequent buyer and z near 1 scipy's hyp2f1
        # returns NaN and the series takes over.
        (BetaGeoParams(1.1, 1.1, 1.1, 4.562), 157, 0.0, 2.9, 334.5),
        (BetaGeoParams(0.8, 2.0, 0.8, 2.0), 120, 50.0, 52.0, 5000.0),
    ],
)
def test_predictions_at_numerically_awkward_points(params: BetaGeoParams, x: int, t_x: float,
                                                   T: float, t: float) -> None:
    model = BetaGeoModel()
    model.params_ = params
    alive, expected = reference_bgnbd(params, x, t_x, T, t)
    assert float(model.probability_alive(x, t_x, T)) == pytest.approx(alive, rel=1e-6)
    assert float(model.expected_purchases(t, x, t_x, T)) == pytest.approx(expected, rel=1e-6)
    assert float(model.expected_purchases_new_customer(t)) == pytest.approx(
        reference_new_customer(params, t), rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(r=st.floats(0.05, 5.0), alpha=st.floats(0.1, 50.0), a=st.floats(0.1, 5.0),
       b=st.floats(0.1, 10.0), x=st.integers(0, 60), share=st.floats(0.0, 1.0),
       T=st.floats(1.0, 100.0), t=st.floats(0.1, 300.0))
def test_predictions_agree_with_the_reference_across_parameters(
        r: float, alpha: float, a: float, b: float, x: int, share: float, T: float,
        t: float) -> None:
    params = BetaGeoParams(r, alpha, a, b)
    t_x = share * T if x > 0 else 0.0
    alive, expected = reference_bgnbd(params, x, t_x, T, t)
    assert float(cm.bgnbd_probability_alive(r, alpha, a, b, np.float64(x), np.float64(t_x),
                                            np.float64(T))) == pytest.approx(alive, rel=1e-6,
                                                                             abs=1e-12)
    assert float(cm.bgnbd_expected_purchases(np.float64(t), r, alpha, a, b, np.float64(x),
                                             np.float64(t_x), np.float64(T))
                 ) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_expected_spend_agrees_with_integration_over_the_posterior(
        gamma_gamma: GammaGammaModel) -> None:
    # Given x transactions of mean m, nu | data ~ Gamma(q + p x, rate v + x m) and the mean
    # spend per transaction is p / nu (Fader & Hardie 2013, note 025).
    p, q, v = gamma_gamma.params_.p, gamma_gamma.params_.q, gamma_gamma.params_.v
    def posterior_mean_spend(shape: float, rate: float) -> float:
        def integrand(nu: float) -> float:
            log_density = (shape * np.log(rate) - special.gammaln(shape)
                           + (shape - 1) * np.log(nu) - rate * nu)
            return float(p / nu * np.exp(log_density))

        value, _ = integrate.quad(integrand, 0, np.inf, epsabs=0, epsrel=1e-11, limit=200)
        return float(value)

    for x, m in [(1, 10.0), (3, 35.5), (12, 80.0)]:
        expected = posterior_mean_spend(q + p * x, v + x * m)
        ours = gamma_gamma.expected_average_spend(np.array([x]), np.array([m]))
        assert float(ours[0]) == pytest.approx(expected, rel=1e-8)
    # Without a repeat purchase the population mean p v / (q - 1) is all we know.
    assert float(gamma_gamma.expected_average_spend(0, 123.0)) == pytest.approx(p * v / (q - 1))


# --- lifetimes as an oracle (it needs autograd >= 1.5 on Python 3.11; required in CI) -------


def import_lifetimes() -> ModuleType:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module("lifetimes")
    except Exception as error:
        missing(f"the lifetimes oracle, which does not import here ({type(error).__name__}: "
                f"{error}); install '.[dev]' (lifetimes==0.11.3 with autograd>=1.7)")


def test_lifetimes_agrees(bgnbd: BetaGeoModel, gamma_gamma: GammaGammaModel,
                          cdnow: pd.DataFrame) -> None:
    lifetimes = import_lifetimes()
    x, t_x, T = (cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    theirs = lifetimes.BetaGeoFitter().fit(x, t_x, T)
    np.testing.assert_allclose(theirs.params_[["r", "alpha", "a", "b"]].to_numpy(),
                               list(bgnbd.params_.as_dict().values()), rtol=1e-5)
    theirs.params_[:] = list(bgnbd.params_.as_dict().values())
    np.testing.assert_allclose(theirs.conditional_probability_alive(x, t_x, T),
                               bgnbd.probability_alive(x, t_x, T), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        theirs.conditional_expected_number_of_purchases_up_to_time(39.0, x, t_x, T),
        bgnbd.expected_purchases(39.0, x, t_x, T), rtol=0, atol=1e-6)
    repeat = cdnow[cdnow["frequency"] > 0]
    spend = lifetimes.GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    np.testing.assert_allclose(spend.params_[["p", "q", "v"]].to_numpy(),
                               list(gamma_gamma.params_.as_dict().values()), rtol=1e-5)
    spend.params_[:] = list(gamma_gamma.params_.as_dict().values())
    clv_theirs = spend.customer_lifetime_value(theirs, cdnow["frequency"], cdnow["recency"],
                                               cdnow["T"], cdnow["monetary_value"], time=12,
                                               discount_rate=0.01, freq="W")
    clv_ours = customer_lifetime_value(bgnbd, gamma_gamma, cdnow, horizon=12 * 4.345,
                                       discount_rate=0.01, discount_period=4.345)
    np.testing.assert_allclose(clv_ours.to_numpy(), clv_theirs.to_numpy(), rtol=1e-6)


# --- gradients, Hessian, optimiser -----------------------------------------------------------


def finite_difference(function: Any, point: np.ndarray, step: float = 1e-6) -> np.ndarray:
    grads = []
    for j in range(len(point)):
        h = step * max(1.0, abs(point[j]))
        up, down = point.copy(), point.copy()
        up[j] += h
        down[j] -= h
        grads.append((function(up) - function(down)) / (2 * h))
    return np.array(grads)


@pytest.mark.parametrize("params", [(0.243, 4.414, 0.793, 2.426), (2.0, 0.3, 3.0, 0.6),
                                    (0.05, 50.0, 0.2, 9.0)])
def test_bgnbd_gradient_matches_finite_differences(params: tuple[float, ...]) -> None:
    x, t_x, T = simulate_bgnbd(300, 40.0, BetaGeoParams(0.5, 4.0, 1.0, 3.0), seed=1)
    weights = np.random.default_rng(2).uniform(0.5, 3.0, len(x))
    point = np.array(params)
    ll, grad = cm.bgnbd_log_likelihood_grad(*params, x, t_x, T)
    numeric = finite_difference(
        lambda p: float(weights @ cm.bgnbd_log_likelihood(*p, x, t_x, T)), point)
    np.testing.assert_allclose(grad @ weights, numeric, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ll, cm.bgnbd_log_likelihood(*params, x, t_x, T), rtol=1e-13)
    # Special functions evaluated per distinct frequency give the same numbers.
    ll_levels, grad_levels = cm.bgnbd_log_likelihood_grad(
        *params, x, t_x, T, x_levels=np.unique(x, return_inverse=True))
    np.testing.assert_allclose(ll_levels, ll, rtol=1e-13)
    np.testing.assert_allclose(grad_levels, grad, rtol=1e-13)
    assert (x == 0).any() and (x > 0).any()


@pytest.mark.parametrize("params", [(6.25, 3.74, 15.44), (0.5, 1.5, 2.0), (20.0, 8.0, 100.0)])
def test_gamma_gamma_gradient_matches_finite_differences(params: tuple[float, ...]) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(1, 15, 200).astype(float)
    m = rng.gamma(2.0, 20.0, 200)
    point = np.array(params)
    ll, grad = cm.gamma_gamma_log_likelihood_grad(*params, x, m)
    numeric = finite_difference(lambda p: float(cm.gamma_gamma_log_likelihood(*p, x, m).sum()),
                                point)
    np.testing.assert_allclose(grad.sum(axis=1), numeric, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ll, cm.gamma_gamma_log_likelihood(*params, x, m), rtol=1e-13)
    ll_levels, grad_levels = cm.gamma_gamma_log_likelihood_grad(
        *params, x, m, x_levels=np.unique(x, return_inverse=True))
    np.testing.assert_allclose(ll_levels, ll, rtol=1e-13)
    np.testing.assert_allclose(grad_levels, grad, rtol=1e-13)


def extreme_profiles(rng: np.random.Generator,
                     n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random (x, t_x, T, weights) with the awkward corners always present: x = 0, t_x = T,
    t_x = 0 with repeat purchases, T tiny and very large, one very frequent buyer."""
    T = np.exp(rng.uniform(np.log(1e-3), np.log(1e4), n))
    x = np.where(rng.random(n) < 0.4, 0, rng.integers(1, 60, n)).astype(float)
    t_x = np.where(x > 0, T * rng.random(n), 0.0)
    corners_x = np.array([0.0, 0.0, 5.0, 1.0, 300.0, 2.0, 1.0])
    corners_T = np.array([1e-3, 1e6, 40.0, 1e-3, 1e6, 1e6, 1e6])
    corners_t_x = np.array([0.0, 0.0, 40.0, 0.0, 1e6, 0.0, 1e6])  # t_x = T, t_x = 0 < T
    weights = rng.uniform(0.5, 3.0, n + len(corners_x))
    return (np.r_[x, corners_x], np.r_[t_x, corners_t_x], np.r_[T, corners_T], weights)


def log_space_check(value_and_grad: Any, hessian: Any, params: np.ndarray) -> None:
    """Analytic gradient and Hessian against central differences in log-parameters."""
    theta = np.log(params)

    def value(t: np.ndarray) -> float:
        return float(value_and_grad(*np.exp(t))[0])

    def gradient(t: np.ndarray) -> np.ndarray:
        return np.asarray(value_and_grad(*np.exp(t))[1]) * np.exp(t)

    grad = gradient(theta)
    numeric = finite_difference(value, theta, step=1e-6)
    scale = 1.0 + np.abs(grad).max()
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6 * scale)
    h = hessian(*params) * np.outer(params, params) + np.diag(grad)  # Hessian in log-params
    numeric_h = np.array([finite_difference(lambda t, j=j: float(gradient(t)[j]), theta,
                                            step=1e-6) for j in range(len(theta))])
    scale_h = 1.0 + np.abs(h).max()
    np.testing.assert_allclose(h, numeric_h, rtol=1e-5, atol=1e-5 * scale_h)
    np.testing.assert_allclose(h, h.T, rtol=1e-12, atol=1e-12 * scale_h)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), r=st.floats(0.01, 20.0),
       alpha=st.floats(0.01, 1e3), a=st.floats(0.02, 20.0), b=st.floats(0.02, 50.0))
def test_bgnbd_totals_gradient_and_hessian_match_finite_differences(
        seed: int, n: int, r: float, alpha: float, a: float, b: float) -> None:
    x, t_x, T, weights = extreme_profiles(np.random.default_rng(seed), n)
    likelihood = cm.BetaGeoLikelihood(x, t_x, T, weights)
    value, grad = likelihood.value_and_grad(r, alpha, a, b)
    # The same numbers as the per-customer reference, and no NaN or inf at the corners.
    ll, per_customer = cm.bgnbd_log_likelihood_grad(r, alpha, a, b, x, t_x, T)
    assert np.isfinite(ll).all() and np.isfinite(per_customer).all()
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert np.isfinite(likelihood.hessian(r, alpha, a, b)).all()
    assert value == pytest.approx(float(weights @ ll), rel=1e-10, abs=1e-8)
    np.testing.assert_allclose(grad, per_customer @ weights, rtol=1e-9,
                               atol=1e-9 * (1 + np.abs(per_customer).sum()))
    log_space_check(likelihood.value_and_grad, likelihood.hessian,
                    np.array([r, alpha, a, b]))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), p=st.floats(0.05, 50.0),
       q=st.floats(0.05, 50.0), v=st.floats(0.01, 1e3))
def test_gamma_gamma_totals_gradient_and_hessian_match_finite_differences(
        seed: int, n: int, p: float, q: float, v: float) -> None:
    rng = np.random.default_rng(seed)
    x = np.r_[rng.integers(1, 40, n), 1, 500].astype(float)
    m = np.r_[np.exp(rng.uniform(np.log(1e-3), np.log(1e4), n)), 1e-6, 1e6]
    weights = rng.uniform(0.5, 3.0, len(x))
    likelihood = cm.GammaGammaLikelihood(x, m, weights)
    value, grad = likelihood.value_and_grad(p, q, v)
    ll, per_customer = cm.gamma_gamma_log_likelihood_grad(p, q, v, x, m)
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert np.isfinite(likelihood.hessian(p, q, v)).all()
    assert value == pytest.approx(float(weights @ ll), rel=1e-10, abs=1e-8)
    np.testing.assert_allclose(grad, per_customer @ weights, rtol=1e-9,
                               atol=1e-9 * (1 + np.abs(per_customer).sum()))
    log_space_check(likelihood.value_and_grad, likelihood.hessian, np.array([p, q, v]))


def test_fits_stay_finite_with_extreme_profiles(cdnow: pd.DataFrame) -> None:
    # CDNOW plus customers at the corners: no repeat purchase and a very long history, a last
    # purchase at T, a very frequent buyer, a repeat buyer with recency 0.
    corners = pd.DataFrame({"frequency": [0, 3, 150, 2], "recency": [0.0, 38.0, 5e3, 0.0],
                            "T": [5e3, 38.0, 5e3, 20.0],
                            "monetary_value": [0.0, 20.0, 1e4, 0.01]})
    data = pd.concat([cdnow[corners.columns], corners], ignore_index=True)
    bgnbd = BetaGeoModel().fit(data)
    spend = GammaGammaModel().fit(data)
    for params in (bgnbd.params_, spend.params_):
        values = np.array(list(params.as_dict().values()))
        assert np.isfinite(values).all() and (values > 0).all()
    assert np.isfinite(bgnbd.log_likelihood_) and np.isfinite(spend.log_likelihood_)
    assert np.isfinite(bgnbd.probability_alive(data)).all()
    assert np.isfinite(customer_lifetime_value(bgnbd, spend, data, horizon=52.0)).all()


def jittered_unique(summary: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The CDNOW summary with recency and T moved by up to half a day (in weeks) and spend by
    ~1%, so that no two customers share a profile (what real, non-duplicated data looks like
    to the fit)."""
    rng = np.random.default_rng(seed)
    n = len(summary)
    x = summary["frequency"].to_numpy(dtype=float)
    T = summary["T"].to_numpy(dtype=float) + rng.uniform(-0.5, 0.5, n) / 7
    t_x = np.where(x > 0, np.clip(summary["recency"].to_numpy(dtype=float)
                                  + rng.uniform(-0.5, 0.5, n) / 7, 1e-3, T), 0.0)
    m = summary["monetary_value"].to_numpy(dtype=float) * np.exp(rng.normal(0.0, 0.01, n))
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "monetary_value": m},
                        index=summary.index)


def test_fits_equal_lifetimes_on_unique_profiles(cdnow: pd.DataFrame) -> None:
    lifetimes = import_lifetimes()
    data = jittered_unique(cdnow, seed=0)
    assert not data.duplicated(["frequency", "recency", "T"]).any()
    ours = BetaGeoModel().fit(data)
    assert ours.n_profiles_ == len(data)  # nothing to collapse: the speed is the likelihood's
    theirs = lifetimes.BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])
    # lifetimes stops at a gradient norm of 1e-7 (BFGS, tol=1e-7); ours is polished to 1e-10.
    np.testing.assert_allclose(list(ours.params_.as_dict().values()),
                               theirs.params_[["r", "alpha", "a", "b"]].to_numpy(), rtol=1e-5)
    repeat = data[data["frequency"] > 0]
    spend = GammaGammaModel().fit(repeat)
    assert spend.n_profiles_ == len(repeat)
    theirs_spend = lifetimes.GammaGammaFitter().fit(repeat["frequency"],
                                                    repeat["monetary_value"])
    np.testing.assert_allclose(list(spend.params_.as_dict().values()),
                               theirs_spend.params_[["p", "q", "v"]].to_numpy(), rtol=1e-5)


def test_standard_errors_match_a_numerical_hessian(bgnbd: BetaGeoModel,
                                                   cdnow: pd.DataFrame) -> None:
    x, t_x, T = (cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    theta = np.log(list(bgnbd.params_.as_dict().values()))

    def total(log_params: np.ndarray) -> float:
        return float(cm.bgnbd_log_likelihood(*np.exp(log_params), x, t_x, T).sum())

    k, h = len(theta), 1e-4
    hessian = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            hessian[i, j] = (total(theta + e_i + e_j) - total(theta + e_i - e_j)
                             - total(theta - e_i + e_j) + total(theta - e_i - e_j)) / (4 * h * h)
    se = np.exp(theta) * np.sqrt(np.diag(np.linalg.inv(-hessian)))
    np.testing.assert_allclose(list(bgnbd.standard_errors_.as_dict().values()), se, rtol=1e-3)


def test_fit_recovers_simulated_parameters_within_their_standard_errors() -> None:
    truth = BetaGeoParams(r=0.5, alpha=4.0, a=1.0, b=3.0)
    model = BetaGeoModel().fit(*simulate_bgnbd(5000, 52.0, truth, seed=11))
    for name, value in truth.as_dict().items():
        estimate = model.params_.as_dict()[name]
        assert abs(estimate - value) < 4 * model.standard_errors_.as_dict()[name], name


def test_penalizer_is_lifetimes_l2_on_time_rescaled_parameters(cdnow: pd.DataFrame) -> None:
    penalizer = 0.05
    model = BetaGeoModel(penalizer=penalizer).fit(cdnow)
    x, t_x, T = (cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    scale = T.max()

    def objective(log_params: np.ndarray) -> float:
        r, alpha_s, a, b = np.exp(log_params)
        mean_ll = cm.bgnbd_log_likelihood(r, alpha_s, a, b, x, t_x / scale, T / scale).mean()
        return float(-mean_ll + penalizer * (r**2 + alpha_s**2 + a**2 + b**2))

    p = model.params_
    fitted = np.log([p.r, p.alpha / scale, p.a, p.b])
    assert np.abs(finite_difference(objective, fitted)).max() < 1e-5  # a stationary point
    unpenalised = BetaGeoModel().fit(cdnow).params_
    assert (p.r**2 + (p.alpha / scale) ** 2 + p.a**2 + p.b**2
            < unpenalised.r**2 + (unpenalised.alpha / scale) ** 2 + unpenalised.a**2
            + unpenalised.b**2)
    assert model.log_likelihood_ < BetaGeoModel().fit(cdnow).log_likelihood_


def test_duplicates_and_weights_are_the_same_customers(cdnow: pd.DataFrame,
                                                       bgnbd: BetaGeoModel) -> None:
    doubled = pd.concat([cdnow, cdnow])
    by_rows = BetaGeoModel().fit(doubled)
    by_weight = BetaGeoModel().fit(cdnow, sample_weight=np.full(len(cdnow), 2.0))
    for model in (by_rows, by_weight):
        np.testing.assert_allclose(list(model.params_.as_dict().values()),
                                   list(bgnbd.params_.as_dict().values()), rtol=1e-5)
        assert model.log_likelihood_ == pytest.approx(2 * bgnbd.log_likelihood_, rel=1e-9)
        assert model.n_customers_ == 2 * 2357
    assert by_rows.n_profiles_ == bgnbd.n_profiles_
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, len(cdnow))
    weighted = BetaGeoModel().fit(cdnow, sample_weight=counts)
    repeated = BetaGeoModel().fit(cdnow.loc[cdnow.index.repeat(counts)])
    np.testing.assert_allclose(list(weighted.params_.as_dict().values()),
                               list(repeated.params_.as_dict().values()), rtol=1e-5)


def test_no_interior_maximum_raises_a_helpful_convergence_error() -> None:
    # Poisson counts with uniform recencies show no heterogeneity in dropout: a and b run off
    # to infinity together.
    rng = np.random.default_rng(0)
    T = np.full(500, 40.0)
    x = rng.poisson(2.0, 500).astype(float)
    t_x = np.where(x > 0, T * rng.uniform(0.2, 1.0, 500), 0.0)
    with pytest.raises(ConvergenceError, match=r"(?s)a, b ran off.*penalizer.*time unit"):
        BetaGeoModel().fit(x, t_x, T)
    assert BetaGeoModel(penalizer=0.01).fit(x, t_x, T).params_.b < 1e3


def test_nelder_mead_fallback_is_used_when_lbfgsb_stalls(cdnow: pd.DataFrame,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         bgnbd: BetaGeoModel) -> None:
    from barberpro_ml.models import clv

    original = clv.minimize
    calls: list[str] = []

    def stalling(fun: Any, x0: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("method", ""))
        if kwargs.get("method") == "L-BFGS-B" and len(calls) == 1:
            kwargs["options"] = {**kwargs["options"], "maxiter": 2}
        return original(fun, x0, **kwargs)

    monkeypatch.setattr(clv, "minimize", stalling)
    model = BetaGeoModel().fit(cdnow)
    assert model.optimizer_.startswith("Nelder-Mead + L-BFGS-B")
    assert calls[:2] == ["L-BFGS-B", "Nelder-Mead"]
    np.testing.assert_allclose(list(model.params_.as_dict().values()),
                               list(bgnbd.params_.as_dict().values()), rtol=1e-5)


# --- inputs, outputs, estimator conventions --------------------------------------------------


def test_arrays_and_dataframes_give_the_same_fit_and_pandas_comes_back(
        cdnow: pd.DataFrame, bgnbd: BetaGeoModel) -> None:
    arrays = BetaGeoModel().fit(cdnow["frequency"].to_numpy(), cdnow["recency"].to_numpy(),
                                cdnow["T"].to_numpy())
    assert arrays.params_ == bgnbd.params_
    out = bgnbd.probability_alive(cdnow)
    assert isinstance(out, pd.Series)
    assert out.index.equals(cdnow.index)
    assert ((out > 0) & (out <= 1)).all()
    assert (out[cdnow["frequency"] == 0] == 1).all()
    plain = bgnbd.expected_purchases(np.array([1.0, 10.0, 39.0]), 2, 30.43, 38.86)
    assert isinstance(plain, np.ndarray) and plain.shape == (3,)
    assert np.all(np.diff(plain) > 0)


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([1, 2], [1.0, 5.0], [4.0, 4.0], r"1 customer\(s\): recency exceeds T.*customers: 1"),
        ([-1, 2], [0.0, 1.0], [4.0, 4.0], "frequency is negative"),
        ([1.5, 2], [1.0, 1.0], [4.0, 4.0], "not a whole number"),
        ([0, 2], [1.0, 1.0], [4.0, 4.0], "recency is positive although frequency is 0"),
        ([1, 2], [1.0, np.nan], [4.0, 4.0], r"recency has 1 missing or infinite"),
        ([1, 2], [1.0, 1.0], [4.0], "different lengths"),
    ],
)
def test_bad_bgnbd_input_is_refused(frequency: list[float], recency: list[float],
                                    T: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BetaGeoModel().fit(frequency, recency, T)


def test_missing_dataframe_columns_and_unfitted_models_are_refused(
        cdnow: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing column\(s\) \['T'\]"):
        BetaGeoModel().fit(cdnow.drop(columns="T"))
    with pytest.raises(NotFittedError):
        BetaGeoModel().probability_alive(cdnow)
    with pytest.raises(NotFittedError):
        GammaGammaModel().expected_average_spend(cdnow)
    with pytest.raises(ValueError, match="penalizer"):
        BetaGeoModel(penalizer=-1).fit(cdnow)


def test_gamma_gamma_refuses_zero_or_negative_spend_naming_the_customers(
        cdnow: pd.DataFrame, gamma_gamma: GammaGammaModel) -> None:
    repeat = cdnow.index[cdnow["frequency"] > 0]
    broken = cdnow.copy()
    broken.loc[repeat[0], "monetary_value"] = 0.0
    broken.loc[repeat[5], "monetary_value"] = -3.5
    expected = rf"2 repeat customer\(s\) have a zero or negative mean spend.*{repeat[0]}, " \
               rf"{repeat[5]}"
    with pytest.raises(ValueError, match=expected):
        GammaGammaModel().fit(broken)
    # Predicting, a repeat customer who paid nothing on average is an observation the
    # formula handles (the conditional mean shrinks toward 0); a negative mean is refused.
    with pytest.raises(ValueError, match=rf"1 repeat customer\(s\) have a negative mean spend"
                                         rf".*{repeat[5]}"):
        gamma_gamma.expected_average_spend(broken)
    zero_only = cdnow.copy()
    zero_only.loc[repeat[0], "monetary_value"] = 0.0
    spend = gamma_gamma.expected_average_spend(zero_only)
    population_mean = gamma_gamma.expected_average_spend(
        pd.DataFrame({"frequency": [0], "monetary_value": [0.0]})).iloc[0]
    assert 0 < spend.loc[repeat[0]] < population_mean
    # Zero spend is fine for customers without repeat purchases: they are skipped.
    non_repeat = cdnow.index[cdnow["frequency"] == 0]
    assert (cdnow.loc[non_repeat, "monetary_value"] == 0).all()


def test_gamma_gamma_uses_only_repeat_customers(cdnow: pd.DataFrame,
                                                gamma_gamma: GammaGammaModel) -> None:
    repeat = cdnow[cdnow["frequency"] > 0]
    only_repeat = GammaGammaModel().fit(repeat["frequency"], repeat["monetary_value"])
    assert only_repeat.params_ == gamma_gamma.params_
    assert only_repeat.n_ignored_ == 0
    with pytest.raises(ValueError, match="no repeat customer"):
        GammaGammaModel().fit([0, 0], [0.0, 0.0])


def test_estimators_clone_and_pickle(bgnbd: BetaGeoModel, cdnow: pd.DataFrame) -> None:
    assert clone(BetaGeoModel(penalizer=0.1)).get_params() == {"penalizer": 0.1}
    assert GammaGammaModel(penalizer=0.2).get_params() == {"penalizer": 0.2}
    restored = pickle.loads(pickle.dumps(bgnbd))
    pd.testing.assert_series_equal(restored.expected_purchases(10.0, cdnow),
                                   bgnbd.expected_purchases(10.0, cdnow))


# --- customer lifetime value -----------------------------------------------------------------


def test_clv_without_discounting_is_spend_times_purchases(
        bgnbd: BetaGeoModel, gamma_gamma: GammaGammaModel, cdnow: pd.DataFrame) -> None:
    clv = customer_lifetime_value(bgnbd, gamma_gamma, cdnow, horizon=52.0)
    expected = (gamma_gamma.expected_average_spend(cdnow)
                * bgnbd.expected_purchases(52.0, cdnow))
    np.testing.assert_allclose(clv.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert clv.name == "customer_lifetime_value"
    assert (customer_lifetime_value(bgnbd, gamma_gamma, cdnow, horizon=0.0) == 0).all()


def test_clv_discounts_each_step_at_its_end(bgnbd: BetaGeoModel,
                                            gamma_gamma: GammaGammaModel,
                                            cdnow: pd.DataFrame) -> None:
    spend = gamma_gamma.expected_average_spend(cdnow).to_numpy()
    # One step as long as the horizon: everything discounted once.
    one_step = customer_lifetime_value(bgnbd, gamma_gamma, cdnow, horizon=52.0,
                                       discount_rate=0.1, discount_period=52.0)
    np.testing.assert_allclose(one_step.to_numpy(),
                               spend * bgnbd.expected_purchases(52.0, cdnow).to_numpy() / 1.1,
                               rtol=1e-12)
    # A partial last step: 10 weeks in steps of 4 -> ends 4, 8, 10, discounted by 4/4, 8/4, 10/4.
    clv = customer_lifetime_value(bgnbd, gamma_gamma, cdnow, horizon=10.0, discount_rate=0.02,
                                  discount_period=4.0)
    cumulative = [np.zeros(len(cdnow))] + [bgnbd.expected_purchases(t, cdnow).to_numpy()
                                           for t in (4.0, 8.0, 10.0)]
    expected = sum(spend * (cumulative[k] - cumulative[k - 1]) / 1.02 ** (t / 4.0)
                   for k, t in zip((1, 2, 3), (4.0, 8.0, 10.0), strict=True))
    np.testing.assert_allclose(clv.to_numpy(), expected, rtol=1e-12)
    rates = [0.0, 0.01, 0.05]
    values = [customer_lifetime_value(bgnbd, gamma_gamma, cdnow, horizon=52.0,
                                      discount_rate=d, discount_period=4.345).sum()
              for d in rates]
    assert values[0] > values[1] > values[2] > 0
    with pytest.raises(ValueError, match="discount_rate"):
        customer_lifetime_value(bgnbd, gamma_gamma, cdnow, horizon=52.0, discount_rate=-1.0)


def test_clv_accepts_separate_arrays(bgnbd: BetaGeoModel, gamma_gamma: GammaGammaModel) -> None:
    values = customer_lifetime_value(bgnbd, gamma_gamma, [2, 0], [30.43, 0.0], [38.86, 38.86],
                                     [22.35, 0.0], horizon=52.0)
    assert isinstance(values, np.ndarray)
    assert values[0] > values[1] > 0
    with pytest.raises(TypeError, match="monetary_value"):
        customer_lifetime_value(bgnbd, gamma_gamma, [2], [30.0], [38.0], horizon=52.0)


def test_parameter_records_are_plain_values() -> None:
    assert GammaGammaParams(1.0, 2.0, 3.0).as_dict() == {"p": 1.0, "q": 2.0, "v": 3.0}
