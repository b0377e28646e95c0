"""The recommended action per customer: a retention offer only where it pays.

Rules, in order (vectorised over customers):

1. **first_booking_nudge** -- a customer without a completed visit: there is no rhythm, spend
   or barber to speak of yet; suggest a first booking (of the next-service suggestion).
2. **retention_offer** -- when the randomised campaigns closed by ``as_of`` show an effect
   (the pooled relative churn reduction ``rr`` of
   :func:`barberpro_ml.evaluation.campaign_effects`, its interval's lower bound above 0 unless
   ``require_significant_effect`` is off) and the offer pays for this customer by
   :func:`barberpro_ml.evaluation.offer_pays`:
   ``p rr value - (1 - p (1 - rr)) cost > 0`` with ``p`` the churn probability, ``value`` a
   year of the customer's own visits (``spend_per_visit x 365 / usual gap``, at most weekly)
   and ``cost`` the discount on one visit (``discount x spend_per_visit``). The lower bound of
   ``rr`` is used (``use_lower_bound``), so an offer is recommended only where it pays even if
   the campaigns' effect is at the pessimistic end of what they measured.
3. **reminder** -- at risk or lapsed (overdue against their own rhythm), or a high churn risk,
   but an offer does not pay: a free reminder to book their usual next service.
4. **none** -- on rhythm: nothing to do.

The offer's value assumes the measured average effect applies to the customer (a constant
relative effect); the campaigns targeted lapsing customers, so the effect is best read for them.

**With an uplift model** (a verified ``barberpro-uplift`` champion,
:class:`~barberpro_ml.interventions.UpliftModel`), rule 2 is the model's targeting policy
instead: the offer goes to the customers for whom *its* expected churn reduction x the value
of keeping them exceeds the offer's expected cost (``treat``), with its ``expected_gain``; the
pooled effect and the churn probability are not used for the decision. Rules 1, 3 and 4 are
unchanged. Without one, the rule above is the fallback.

Without a churn model (no verified churn champion served), rule 2 cannot be evaluated and the
high-risk trigger of rule 3 is unknown: no offer is considered (``offer_expected_gain`` NaN),
reminders follow the lifecycle stage alone, and rules 1 and 4 are unchanged. The value side of
the offer is the customer's own spend and rhythm, not the LTV model, so a missing LTV model does
not change the actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.evaluation.uplift import OfferEffect, offer_pays

__all__ = ["OfferPolicy", "UpliftDecision", "UpliftPolicyModel", "recommend_actions"]


class UpliftPolicyModel(Protocol):
    """What the scorer needs of an uplift model (:class:`barberpro_ml.interventions.UpliftModel`
    fits): its spec's feature names and discount, and a pyfunc ``predict`` answering
    ``uplift``, ``expected_gain`` and ``treat`` per row."""

    @property
    def spec(self) -> Any: ...

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame: ...


@dataclass(frozen=True)
class UpliftDecision:
    """The uplift model's answer for a block of customers (rule 2 with an uplift model)."""

    uplift: np.ndarray
    """Expected churn reduction of the offer, per customer."""
    expected_gain: np.ndarray
    """``uplift x value - cost``, per customer."""
    treat: np.ndarray
    """``expected_gain > 0``."""
    discount: float
    """The offer's discount (the model's)."""
    label: str
    """The model's name and version, for the texts."""


class OfferPolicy(BaseModel):
    """The knobs of the action rules (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    discount: float = Field(0.20, gt=0.0, le=1.0,
                            description="Share of one visit's spend the offer gives away (the "
                                        "campaigns' 20% off the next visit).")
    require_significant_effect: bool = True
    use_lower_bound: bool = True
    max_visits_per_year: float = Field(52.0, gt=0.0)
    remind_stages: tuple[str, ...] = ("at_risk", "lapsed")


def recommend_actions(frame: pd.DataFrame, effect: OfferEffect | None,
                      policy: OfferPolicy | None = None, *, effect_note: str = ""
                      ) -> pd.DataFrame:
    """The action of every row of a scored frame.

    Parameters
    ----------
    frame
        One row per customer with ``churn_probability``, ``risk_band``, ``lifecycle_stage``,
        ``n_visits``, ``spend_per_visit``, ``usual_gap_days``, ``lifecycle_reason`` and
        ``next_service`` (name, may be missing).
    effect
        The pooled campaign effect at ``as_of`` (None: none measured).
    policy
        The rule's knobs.
    effect_note
        Why there is no effect (shown in the texts when ``effect`` is None).

    Returns
    -------
    pandas.DataFrame
        Index of ``frame``: ``action`` (kind), ``action_text``, ``offer_expected_gain`` (NaN
        where no offer was considered: customers without a visit, or no usable effect).
    """
    return pd.DataFrame(_actions({c: frame[c].to_numpy() for c in frame.columns}, effect,
                                 policy, effect_note=effect_note), index=frame.index)


def _actions(columns: Mapping[str, Any], effect: OfferEffect | None,
             policy: OfferPolicy | None = None, *, effect_note: str = "",
             churn_unavailable: str | None = None,
             uplift: UpliftDecision | None = None) -> dict[str, np.ndarray]:
    """:func:`recommend_actions` on columns given as arrays (the scorer's hot path).

    ``churn_unavailable``: why there is no churn probability (then ``churn_probability`` and
    ``risk_band`` are not read; see the module docstring). ``uplift``: the uplift model's
    decisions for these rows, which then decide rule 2.
    """
    policy = policy or OfferPolicy()
    visits = np.asarray(columns["n_visits"], dtype=np.int64)
    n = len(visits)
    if churn_unavailable is None:
        p = np.asarray(columns["churn_probability"], dtype=np.float64)
        high_risk = np.asarray(columns["risk_band"], dtype=object) == "high"
    else:
        p = np.full(n, np.nan)
        high_risk = np.zeros(n, dtype=bool)
    spend = np.nan_to_num(np.asarray(columns["spend_per_visit"], dtype=np.float64), nan=0.0)
    gap = np.asarray(columns["usual_gap_days"], dtype=np.float64)
    stage = np.asarray(columns["lifecycle_stage"], dtype=object)
    service_text = np.asarray(
        ["a visit" if s is None or s != s else str(s).replace("_", " ")
         for s in np.asarray(columns["next_service"], dtype=object).tolist()], dtype=object)
    reason = np.asarray(columns["lifecycle_reason"], dtype=object)

    rr, why_not = _usable_effect(effect, policy, effect_note)
    if churn_unavailable is not None:
        rr, why_not = None, f"no churn model ({churn_unavailable})"
    gain = np.full(n, np.nan)
    pays = np.zeros(n, dtype=bool)
    has_visit = visits > 0
    if uplift is not None:
        gain[has_visit] = uplift.expected_gain[has_visit]
        pays = has_visit & uplift.treat
    elif rr is not None and has_visit.any():
        yearly = np.minimum(365.0 / np.maximum(gap, 1.0), policy.max_visits_per_year)
        value = spend * yearly
        cost = policy.discount * spend
        g, ok = offer_pays(p[has_visit], rr, value[has_visit], cost[has_visit])
        gain[has_visit] = g
        pays[has_visit] = ok
    overdue = np.isin(stage, policy.remind_stages) | high_risk

    action = np.full(n, "none", dtype=object)
    text = np.full(n, "on rhythm: no action needed", dtype=object)
    remind = has_visit & ~pays & overdue
    action[remind] = "reminder"
    suffix = ("; an offer does not pay" if rr is not None or uplift is not None
              else f"; no offer: {why_not}")
    text[remind] = ("send a reminder to book " + service_text[remind] + ": " + reason[remind]
                    + suffix)
    action[pays] = "retention_offer"
    if uplift is not None:
        text[pays] = [f"send a {uplift.discount:.0%} offer on {s}: expected gain {g:.0f} "
                      f"({uplift.label} expects {u:.1%} less churn for this customer)"
                      for s, g, u in zip(service_text[pays], gain[pays], uplift.uplift[pays],
                                         strict=True)]
    elif rr is not None:
        bound = "at least " if policy.use_lower_bound else ""
        text[pays] = [f"send a {policy.discount:.0%} offer on {s}: expected gain {g:.0f} "
                      f"(churn risk {q:.0%}; the campaigns measured {bound}{rr:.0%} less churn)"
                      for s, g, q in zip(service_text[pays], gain[pays], p[pays], strict=True)]
    nudge = ~has_visit
    action[nudge] = "first_booking_nudge"
    text[nudge] = "no visit yet: suggest a first booking of " + service_text[nudge]
    return {"action": action, "action_text": text, "offer_expected_gain": gain}


def _usable_effect(effect: OfferEffect | None, policy: OfferPolicy, note: str
                   ) -> tuple[float | None, str]:
    """The relative reduction to plan with, or None and why not."""
    if effect is None or effect.relative_reduction is None:
        return None, note or "no campaign effect measured by as_of"
    est = effect.relative_reduction
    if policy.require_significant_effect and not est.ci_low > 0:
        return None, (f"the campaigns show no clear effect on churn (relative reduction "
                      f"{est.value:.1%} [{est.ci_low:.1%}, {est.ci_high:.1%}])")
    rr = est.ci_low if policy.use_lower_bound else est.value
    return float(min(rr, 1.0)), ""
