"""Uplift models and the targeting policy judged on held-out randomised campaigns.

Out of time, as every evaluation in the library: campaigns are ordered by ``sent_at``; the last
``n_test`` are the test set, the one before them the validation set, the rest the training
set. Each candidate learner is fit on the training campaigns and the one with the highest
validation Qini is chosen; it is refit on training + validation and scored on the test
campaigns, never looked at before. Baselines on the same test rows: random targeting (Qini 0 by
construction, a random ranking's noise shown), targeting by churn risk (an XGBoost churn
classifier fit on the control arm: the probability of churning without an offer), and, on
simulated data, the oracle (the true individual effects, :func:`barberpro_ml.data.
oracle_offer_effect`).

The policy acts on **expected** uplift: the chosen learner's validation predictions are
calibrated against the doubly robust pseudo-outcomes of the validation campaign
(:func:`calibrate_uplift`, a line with its slope in [0, 1]), so predictions that carry no
signal shrink to the average effect instead of sending offers on noise. The Qini ranks by the
raw predictions (a calibration with a positive slope does not change the order).

Money (:mod:`barberpro_ml.interventions.policy`): the value of keeping a customer is their
spend over the past 365 days (a naive LTV: a retained customer keeps spending as before,
floored at one visit's spend); the expected cost of an offer is ``discount x spend_per_visit x
redemption``, the redemption rate being the training offered customers' return rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from xgboost import XGBClassifier

from barberpro_ml.data import MarketplaceData, oracle_offer_effect
from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.evaluation.overlap import OverlapReport, check_overlap
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate
from barberpro_ml.interventions.learners import LEARNERS, UpliftLearner
from barberpro_ml.interventions.policy import (
    TargetingPolicy,
    cautious_uplift,
    policy_value,
    profit_curve,
    treated_effect,
)
from barberpro_ml.interventions.qini import qini_report

__all__ = ["TargetingEvaluation", "calibrate_uplift", "evaluate_targeting", "offer_cost",
           "retention_value", "split_campaigns", "true_effects", "uplift_report"]

FloatArray = npt.NDArray[np.float64]
_DEFAULT_SPEND = 30.0


def split_campaigns(frame: pd.DataFrame, n_test: int = 1
                    ) -> tuple[list[str], list[str], list[str]]:
    """Campaign names for training, validation and test, in time order."""
    order = (frame.groupby("campaign")["sent_at"].min().sort_values().index.tolist())
    if len(order) < n_test + 2:
        raise NotEnoughDataError(
            f"interventions: {len(order)} closed campaign(s) {order}; an out-of-time "
            f"evaluation needs at least {n_test + 2} (training, validation, {n_test} test)")
    return order[:-n_test - 1], [order[-n_test - 1]], order[-n_test:]


def retention_value(frame: pd.DataFrame) -> FloatArray:
    """Value of keeping each customer: past-365-day spend, at least one visit's spend."""
    per_visit = frame["spend_per_visit"].fillna(_DEFAULT_SPEND).to_numpy(dtype=np.float64)
    spend = frame["spend_365d"].fillna(0.0).to_numpy(dtype=np.float64)
    value: FloatArray = np.maximum(spend, per_visit)
    return value


def offer_cost(frame: pd.DataFrame, discount: float, redemption: float) -> FloatArray:
    """Expected cost of one offer: ``discount x spend_per_visit x redemption``."""
    if not 0 <= discount <= 1 or not 0 <= redemption <= 1:
        raise ValueError(f"discount and redemption: expected shares in [0, 1], got "
                         f"{discount!r} and {redemption!r}")
    per_visit = frame["spend_per_visit"].fillna(_DEFAULT_SPEND).to_numpy(dtype=np.float64)
    cost: FloatArray = discount * per_visit * redemption
    return cost


def true_effects(data: MarketplaceData, frame: pd.DataFrame, *, horizon_days: int = 90,
                 n_futures: int = 200, seed: int = 0) -> pd.Series:
    """The simulator's true churn reduction of each row's offer (needs ``data.truth``)."""
    if data.truth is None:
        raise InputError("true effects need simulated data with its ground truth")
    parts = [oracle_offer_effect(data, str(c), horizon_days, n_futures=n_futures,
                                 seed=seed)["effect"]
             for c in frame["campaign"].unique()]
    effects: pd.Series = pd.concat(parts).reindex(frame.index).rename("true_effect")
    return effects


def _churn_model(x: pd.DataFrame, y: pd.Series, seed: int) -> XGBClassifier:
    model = XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.05,
                          min_child_weight=20.0, subsample=0.8, random_state=seed, n_jobs=1,
                          tree_method="hist", eval_metric="logloss")
    return model.fit(x.to_numpy(dtype=np.float64), y.to_numpy())


def calibrate_uplift(tau: FloatArray, treatment: FloatArray, churned: FloatArray,
                     propensity: FloatArray, churn_control: FloatArray,
                     churn_treated: FloatArray) -> tuple[float, float]:
    """Linear calibration of uplift predictions on held-out randomised rows.

    The doubly robust pseudo-outcome ``psi = mu0 - mu1 + (1 - T)(Y - mu0) / (1 - e)
    - T (Y - mu1) / e`` has the true effect as its conditional mean, so the least-squares line
    of ``psi`` on the predictions, ``tau_cal = a + b tau``, is what a prediction is worth in
    expectation [1]_. The slope is kept in ``[0, 1]``: noise shrinks predictions towards the
    average effect; nothing is amplified or reversed.

    Returns
    -------
    tuple of float
        ``(a, b)``.

    References
    ----------
    .. [1] Chernozhukov, V., Demirer, M., Duflo, E. & Fernández-Val, I. (2018). Generic machine
       learning inference on heterogeneous treatment effects in randomized experiments
       (the best linear predictor of the CATE from ML proxies). NBER Working Paper 24678.
    """
    psi = (churn_control - churn_treated + (1 - treatment) * (churned - churn_control)
           / (1 - propensity) - treatment * (churned - churn_treated) / propensity)
    spread = float(np.var(tau))
    slope = float(np.cov(tau, psi, bias=True)[0, 1] / spread) if spread > 0 else 0.0
    slope = min(max(slope, 0.0), 1.0)
    intercept = float(np.mean(psi) - slope * np.mean(tau))
    return intercept, slope


def _cell(table: pd.DataFrame, row: str, column: str) -> float:
    return float(np.asarray(table.loc[row, column], dtype=np.float64))


def _p(model: XGBClassifier, x: pd.DataFrame) -> FloatArray:
    return np.asarray(model.predict_proba(x.to_numpy(dtype=np.float64))[:, 1], dtype=np.float64)


@dataclass
class TargetingEvaluation:
    """Everything measured on the test campaigns (see :func:`evaluate_targeting`)."""

    learner: str
    validation_qini: dict[str, float]
    campaigns: dict[str, list[str]]
    qini: pd.DataFrame
    policy: dict[str, MetricEstimate]
    treated: dict[str, MetricEstimate]
    profit: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)
    model: UpliftLearner | None = None
    features: list[str] = field(default_factory=list)
    redemption: float = 0.0
    discount: float = 0.0
    calibration: tuple[float, float] = (0.0, 1.0)
    calibration_replicates: list[tuple[float, float]] = field(default_factory=list)
    """With ``policy_confidence``: the calibration refitted on resampled validation rows."""
    policy_confidence: float | None = None
    overlap: OverlapReport | None = None
    n_bootstrap: int = 0
    seed: int = 0


def evaluate_targeting(frame: pd.DataFrame, *,
                       learners: Sequence[str] = ("t", "x", "dr", "proportional"),
                       learner_params: dict[str, Any] | None = None, discount: float = 0.2,
                       true_effect: pd.Series | None = None, n_test: int = 1,
                       horizon_days: int = 90, n_bootstrap: int = 500, confidence: float = 0.95,
                       seed: int = 0, policy_confidence: float | None = None,
                       ) -> TargetingEvaluation:
    """Choose a learner on validation, then judge it and its policy on the test campaigns.

    Parameters
    ----------
    frame
        :func:`~barberpro_ml.interventions.campaign_frame`.
    learners
        Candidate names from :data:`~barberpro_ml.interventions.LEARNERS`.
    learner_params
        Base-learner parameters shared by the candidates.
    discount
        The offer's discount, for its cost.
    true_effect
        Per row of ``frame`` (simulated data): adds the oracle and the true gains.
    n_test
        Campaigns held out for the test.
    horizon_days
        The outcome window (for the overlap check: training outcomes must end before the
        test campaigns are sent).
    n_bootstrap, confidence, seed
        Intervals and seeds.
    policy_confidence
        None (default): the policy treats when the calibrated uplift x value > cost. A share
        in (0, 1): it treats only when the uplift that this share of calibration replicates
        exceed (:func:`~barberpro_ml.interventions.policy.cautious_uplift`; the calibration
        refitted on ``max(n_bootstrap, 200)`` resamples of the validation rows) pays the
        cost: an offer is sent only where the evidence says it pays.

    Returns
    -------
    TargetingEvaluation
        ``metrics`` holds the flat figures a gate reads (``qini``, ``qini_minus_churn_risk``
        and their bounds, ``policy_gain_dr``, ``relative_churn_reduction``...).
    """
    unknown = [name for name in learners if name not in LEARNERS]
    if unknown or not learners:
        raise InputError(f"learners: unknown {unknown}; expected some of {sorted(LEARNERS)}")
    features = list(frame.attrs.get("features") or frame.columns[6:])
    train_c, valid_c, test_c = split_campaigns(frame, n_test)
    train = frame[frame["campaign"].isin(train_c)]
    valid = frame[frame["campaign"].isin(valid_c)]
    test = frame[frame["campaign"].isin(test_c)]
    params = dict(learner_params or {}) | {"random_state": seed}

    def fitted(name: str, rows: pd.DataFrame) -> UpliftLearner:
        model = LEARNERS[name](**params)
        return model.fit(rows[features], rows["treated"], rows["churned"],  # type: ignore[no-any-return]
                         propensity=rows["propensity"])

    validation, valid_tau = {}, {}
    for name in learners:
        valid_tau[name] = fitted(name, train).predict(valid[features])
        table = qini_report({name: valid_tau[name]}, valid["treated"], valid["churned"],
                            n_bootstrap=0, seed=seed)
        validation[name] = _cell(table, name, "qini")
    chosen = max(validation, key=lambda k: validation[k])
    # what a prediction is worth, measured on the validation campaign (the policy's input)
    train_c0, train_c1 = (train[train["treated"] == arm] for arm in (0, 1))
    calibration_rows = (
        valid_tau[chosen], valid["treated"].to_numpy(np.float64),
        valid["churned"].to_numpy(np.float64), valid["propensity"].to_numpy(np.float64),
        _p(_churn_model(train_c0[features], train_c0["churned"], seed), valid[features]),
        _p(_churn_model(train_c1[features], train_c1["churned"], seed), valid[features]))
    calibration = calibrate_uplift(*calibration_rows)
    replicates: list[tuple[float, float]] = []
    if policy_confidence is not None:
        if not 0.0 < policy_confidence < 1.0:
            raise InputError(f"policy_confidence: expected a share in (0, 1), got "
                             f"{policy_confidence!r}")
        rng_cal = np.random.default_rng(seed + 2)
        n_valid = len(valid)
        for _ in range(max(n_bootstrap, 200)):
            rows = rng_cal.integers(0, n_valid, n_valid)
            replicates.append(calibrate_uplift(*(a[rows] for a in calibration_rows)))
    fit_rows = pd.concat([train, valid])
    model = fitted(chosen, fit_rows)
    tau = model.predict(test[features])
    expected_uplift = (calibration[0] + calibration[1] * tau if policy_confidence is None
                       else cautious_uplift(tau, replicates, policy_confidence))
    control = fit_rows[fit_rows["treated"] == 0]
    offered = fit_rows[fit_rows["treated"] == 1]
    churn_risk = _p(_churn_model(control[features], control["churned"], seed), test[features])
    churn_offered = _p(_churn_model(offered[features], offered["churned"], seed),
                       test[features])
    rng = np.random.default_rng(seed + 1)
    scores: dict[str, Any] = {"model": tau, "churn_risk": churn_risk,
                              "random": rng.random(len(test))}
    truth = None
    if true_effect is not None:
        truth = true_effect.reindex(test.index).to_numpy(dtype=np.float64)
        if np.isnan(truth).any():
            raise InputError(f"true_effect: {int(np.isnan(truth).sum())} test row(s) without "
                             "a true effect")
        scores["oracle"] = truth
    qini = qini_report(scores, test["treated"], test["churned"], true_effect=truth,
                       reference="churn_risk", n_bootstrap=n_bootstrap,
                       confidence=confidence, seed=seed)

    redemption = float(1.0 - offered["churned"].mean())
    value = retention_value(test)
    cost = offer_cost(test, discount, redemption)
    policy = TargetingPolicy()
    treat = policy.decide(expected_uplift, value, cost)
    t, y = test["treated"].to_numpy(), test["churned"].to_numpy()
    e = test["propensity"].to_numpy()
    estimates = {
        "policy_gain_ipw": policy_value(treat, t, y, value, cost, propensity=e,
                                        n_bootstrap=n_bootstrap, confidence=confidence,
                                        seed=seed),
        "policy_gain_dr": policy_value(treat, t, y, value, cost, propensity=e,
                                       retention_control=1 - churn_risk,
                                       retention_treated=1 - churn_offered,
                                       n_bootstrap=n_bootstrap, confidence=confidence,
                                       seed=seed),
        "treat_all_gain_ipw": policy_value(np.ones(len(test)), t, y, value, cost,
                                           propensity=e, n_bootstrap=n_bootstrap,
                                           confidence=confidence, seed=seed),
    }
    profit = profit_curve(policy.expected_gain(expected_uplift, value, cost), t, y, value, cost,
                          propensity=e, true_effect=truth, n_bootstrap=n_bootstrap,
                          confidence=confidence, seed=seed)
    try:
        treated = treated_effect(treat, t, y, groups=test["campaign"],
                                 n_bootstrap=max(n_bootstrap, 1), confidence=confidence,
                                 seed=seed)
    except InputError:
        treated = {}

    metrics: dict[str, float] = {"share_treated": float(treat.mean()),
                                 "calibration_intercept": calibration[0],
                                 "calibration_slope": calibration[1],
                                 "n_test": float(len(test)), "redemption": redemption}
    for col in ("qini", "qini_low", "qini_high", "auuc", "auuc_low", "auuc_high",
                "qini_minus_churn_risk", "qini_minus_churn_risk_low",
                "qini_minus_churn_risk_high"):
        metrics[col] = _cell(qini, "model", col)
    for name, est in estimates.items():
        metrics |= {name: est.value, f"{name}_low": est.ci_low, f"{name}_high": est.ci_high}
    for name, est in treated.items():
        metrics |= {name: est.value, f"{name}_low": est.ci_low, f"{name}_high": est.ci_high}
    if truth is not None:
        oracle_q = _cell(qini, "oracle", "true_qini")
        metrics |= {"true_qini": _cell(qini, "model", "true_qini"),
                    "oracle_true_qini": oracle_q,
                    "qini_to_oracle": _cell(qini, "model", "true_qini") / oracle_q
                    if oracle_q > 0 else float("nan"),
                    "realised_qini_to_oracle": metrics["qini"] / _cell(qini, "oracle", "qini")
                    if _cell(qini, "oracle", "qini") > 0 else float("nan")}
        oracle_treat = truth * value - cost > 0
        policy_true = float(np.mean(treat * (truth * value - cost)))
        oracle_true = float(np.mean(oracle_treat * (truth * value - cost)))
        metrics |= {"policy_true_gain": policy_true, "oracle_policy_true_gain": oracle_true,
                    "policy_to_oracle": policy_true / oracle_true if oracle_true > 0
                    else float("nan"),
                    "oracle_share_treated": float(oracle_treat.mean())}
    keys = ["customer_id", "sent_at"]
    overlap = check_overlap(fit_rows[keys], test[keys], id_columns=["customer_id"],
                            time_columns=["sent_at"], horizon_days=horizon_days)
    return TargetingEvaluation(
        learner=chosen, validation_qini=validation,
        campaigns={"train": train_c, "validation": valid_c, "test": test_c}, qini=qini,
        policy=estimates, treated=treated, profit=profit, metrics=metrics, model=model,
        features=features, redemption=redemption, discount=discount,
        calibration=calibration, calibration_replicates=replicates,
        policy_confidence=policy_confidence, overlap=overlap,
        n_bootstrap=n_bootstrap, seed=seed)


def _point(name: str, value: float) -> MetricEstimate:
    return MetricEstimate(name=name, value=value, ci_low=value, ci_high=value,
                          confidence=0.95, higher_is_better=True)


def uplift_report(result: TargetingEvaluation) -> EvaluationReport:
    """The gate's view of :func:`evaluate_targeting` (family ``uplift``).

    Metrics with bootstrap replicates: ``qini``, ``auuc``, ``qini_minus_churn_risk`` (paired),
    ``policy_gain_dr``, ``policy_gain_ipw``, ``relative_churn_reduction`` and
    ``retention_improvement`` (among the policy's treated customers); on simulated data also
    the point figures ``qini_to_oracle`` and ``policy_to_oracle`` (true effects, no noise
    from outcomes). Baselines: churn-risk targeting's Qini, treating everyone's gain.
    """
    estimates = result.qini.attrs["estimates"]
    metrics = {"qini": estimates["model:qini"], "auuc": estimates["model:auuc"],
               "qini_minus_churn_risk": estimates["model:qini_minus_churn_risk"],
               "policy_gain_dr": result.policy["policy_gain_dr"],
               "policy_gain_ipw": result.policy["policy_gain_ipw"], **result.treated}
    for name in ("qini_to_oracle", "policy_to_oracle"):
        value = result.metrics.get(name)
        if value is not None and np.isfinite(value):
            metrics[name] = _point(name, float(value))
    notes = [f"learner {result.learner!r} chosen on the validation campaign "
             f"{result.campaigns['validation']} by Qini ({result.validation_qini})",
             f"trained on {result.campaigns['train'] + result.campaigns['validation']}, "
             f"tested on {result.campaigns['test']} (out of time)",
             f"policy: offer when expected uplift x value > cost, expected uplift = "
             f"{result.calibration[0]:+.4f} + {result.calibration[1]:.3f} x prediction "
             f"(calibrated on the validation campaign); treats "
             f"{result.metrics['share_treated']:.1%} of the test customers; offer cost = "
             f"{result.discount:g} x spend per visit x redemption {result.redemption:.3f}"]
    if not result.treated:
        notes.append("relative_churn_reduction and retention_improvement: undefined (the "
                     "policy treats nobody in one of the arms)")
    return EvaluationReport(
        family="uplift", kind="causal", n=int(result.metrics["n_test"]), metrics=metrics,
        baselines={"qini": estimates["churn_risk:qini"],
                   "policy_gain_dr": result.policy["treat_all_gain_ipw"]},
        n_bootstrap=result.n_bootstrap, seed=result.seed, notes=notes,
        overlap=result.overlap)
