"""What a barber can do next, with the expected gain: :func:`provider_actions`, and whom to
contact: :func:`customers_to_contact`.

Every action is traced to one measured component (:mod:`barberpro_ml.providers.components`)
and prices the gap between the barber's value and a target **other barbers of the same
neighborhood already reach**, never an assumed effect size:

==============  ============================================  ====================================
component       target                                        gain per month
==============  ============================================  ====================================
no_show         the neighborhood's best-quartile rate          bookings/month x (rate - target)
                                                               x revenue per visit
cancellation    the neighborhood's best-quartile rate          as no_show
retention       the neighborhood's top-quartile return rate    visits/month x (target - rate)
                                                               x revenue per visit
utilisation     the neighborhood's median utilisation (only    open minutes/month x (target - u)
                for barbers rated at or above the median)      / minutes per visit x revenue/visit
==============  ============================================  ====================================

The gain is computed on every posterior draw of the component (the target held fixed), so its
interval carries the component's uncertainty; the point is the draws' median. The gains assume
a recovered slot is a completed visit at the barber's mean revenue per visit: an upper bound
when the freed slot would not be rebooked. Pricing actions are not built here: the pricing
work supplies them through the ``pricing`` argument (an :data:`ActionSource`), ranked with the
rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, Field

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import InputError
from barberpro_ml.features._common import to_as_of
from barberpro_ml.providers.components import ProviderComponents, as_days

__all__ = ["MAX_ACTIONS", "ActionSource", "MessageType", "ProviderAction",
           "customers_to_contact", "provider_actions"]

FloatArray = npt.NDArray[np.float64]
MAX_ACTIONS: Final = 3
DAY: Final = pd.Timedelta(days=1)
MessageType = Literal["service_recovery", "win_back", "rebooking_reminder"]


class ProviderAction(BaseModel):
    """One concrete action for a barber, with its expected monthly gain and interval."""

    provider_id: int
    action: str = Field(description="Stable id: reduce_no_shows, reduce_cancellations, "
                                    "retain_regulars, fill_open_slots (pricing: the pricing "
                                    "work's own ids).")
    title: str
    detail: str = Field(description="What to do and what the numbers mean.")
    component: str = Field(description="The measured score component the action is traced "
                                       "to.")
    current_value: float = Field(description="The component's measured value (posterior "
                                             "mean).")
    target_value: float = Field(description="What the neighborhood's better barbers reach.")
    change_per_month: float = Field(description="Expected change of the driver per month "
                                                "(e.g. -2.1 no-shows).")
    change_unit: str
    gain_per_month: float = Field(description="Expected extra revenue per month.")
    gain_low: float
    gain_high: float
    interval: float = Field(description="Central probability of [gain_low, gain_high].")
    assumption: str


ActionSource = Callable[[ProviderComponents, pd.DataFrame], list[ProviderAction]]
"""An extension point: given the measured components and the score table, more actions
(the pricing work's ``barberpro_ml.providers.pricing`` supplies the price changes)."""


def _quantile_by(values: FloatArray, groups: pd.Series, q: float) -> FloatArray:
    s = pd.Series(values, index=groups.index)
    return np.asarray(s.groupby(groups.to_numpy()).transform(
        lambda v: v.quantile(q)).to_numpy(), dtype=np.float64)


def provider_actions(components: ProviderComponents, scores: pd.DataFrame, *,
                     provider_ids: Sequence[int] | None = None,
                     max_actions: int = MAX_ACTIONS, interval: float = 0.9,
                     pricing: ActionSource | None = None) -> list[ProviderAction]:
    """At most ``max_actions`` actions per barber, ranked by expected monthly gain.

    Parameters
    ----------
    components
        :func:`~barberpro_ml.providers.measure_components` at the cut-off.
    scores
        The score table of the same components
        (:func:`~barberpro_ml.providers.score_components`): the utilisation action needs the
        rating percentile.
    provider_ids
        Barbers to advise (default: all), in this order.
    max_actions
        Actions per barber (the seed's "at most three").
    interval
        Central probability of the gain interval.
    pricing
        Extra actions, ranked with the rest (the pricing work plugs in here).

    Returns
    -------
    list of ProviderAction
        Grouped by barber in ``provider_ids`` order, each barber's by decreasing gain; only
        actions with a positive expected gain.
    """
    frame = components.providers
    if not 0.5 < interval < 1:
        raise InputError(f"interval: expected a probability in (0.5, 1), got {interval}")
    nb = frame["neighborhood"]
    lo_q, hi_q = (1 - interval) / 2 * 100, (1 + interval) / 2 * 100
    v, d = components.values, components.draws
    rpv = frame["revenue_per_visit"].to_numpy()
    per_component: dict[str, tuple[FloatArray, FloatArray, FloatArray]] = {}

    # (driver change per month per draw, gain per draw, target) per action
    for comp in ("no_show", "cancellation"):
        target = _quantile_by(v[comp], nb, 0.25)
        avoided = frame["bookings_per_month"].to_numpy()[:, None] * np.clip(
            d[comp] - target[:, None], 0, None)
        per_component[comp] = (-avoided, avoided * rpv[:, None], target)
    target = _quantile_by(v["retention"], nb, 0.75)
    extra = frame["visits_per_month"].to_numpy()[:, None] * np.clip(
        target[:, None] - d["retention"], 0, None)
    per_component["retention"] = (extra, extra * rpv[:, None], target)
    target = _quantile_by(v["utilisation"], nb, 0.5)
    rated_well = np.nan_to_num(scores["rating"].reindex(frame.index).to_numpy(), nan=0) >= 50
    minutes = frame["open_minutes_per_month"].to_numpy()[:, None] * np.clip(
        target[:, None] - d["utilisation"], 0, None)
    visits = minutes / frame["minutes_per_visit"].to_numpy()[:, None]
    visits = np.where(rated_well[:, None], visits, 0.0)
    per_component["utilisation"] = (visits, visits * rpv[:, None], target)

    text = {
        "no_show": ("reduce_no_shows", "Reduce no-shows with reminders",
                    "no-shows/month",
                    "Send a reminder the day before and an hour before each appointment; "
                    "no-shows are {cur:.1%} of your bookings, the neighborhood's best quarter "
                    "manage {tgt:.1%}."),
        "cancellation": ("reduce_cancellations", "Cut late cancellations",
                         "cancellations/month",
                         "Ask customers to confirm 24 hours ahead and offer a one-tap "
                         "reschedule; cancellations are {cur:.1%} of your bookings, the "
                         "neighborhood's best quarter manage {tgt:.1%}."),
        "retention": ("retain_regulars", "Bring customers back",
                      "returning visits/month",
                      "Book the next visit before the customer leaves and contact the "
                      "regulars at risk (GET /providers/{{id}}/communication); {cur:.1%} of "
                      "your visits are followed by another within 90 days, the "
                      "neighborhood's top quarter reach {tgt:.1%}."),
        "utilisation": ("fill_open_slots", "Fill open slots",
                        "visits/month",
                        "Your rating is at or above the neighborhood median but your chair is "
                        "booked {cur:.0%} of an 8-hour day against the neighborhood median "
                        "{tgt:.0%}: publish more open slots and off-peak availability."),
    }
    assumption = ("A recovered slot is a completed visit at your mean revenue per visit over "
                  "the last year; the target is reached by other barbers of your "
                  "neighborhood. Gains are an upper bound when freed slots would not be "
                  "rebooked.")
    wanted = list(frame.index) if provider_ids is None else list(provider_ids)
    position = {pid: i for i, pid in enumerate(frame.index)}
    extra_actions: dict[int, list[ProviderAction]] = {}
    if pricing is not None:
        for act in pricing(components, scores):
            extra_actions.setdefault(act.provider_id, []).append(act)
    actions: list[ProviderAction] = []
    for pid in wanted:
        i = position.get(pid)
        if i is None:
            continue
        mine: list[ProviderAction] = list(extra_actions.get(pid, []))
        for comp, (change, gain, target) in per_component.items():
            if np.isnan(v[comp][i]) or np.isnan(gain[i]).all():
                continue
            point = round(float(np.median(gain[i])), 2)
            if point <= 0:  # nothing to gain, to the cent
                continue
            action_id, title, unit, detail = text[comp]
            mine.append(ProviderAction(
                provider_id=int(pid), action=action_id, title=title,
                detail=detail.format(cur=v[comp][i], tgt=target[i]), component=comp,
                current_value=float(v[comp][i]), target_value=float(target[i]),
                change_per_month=round(float(np.median(change[i])), 2), change_unit=unit,
                gain_per_month=round(point, 2),
                gain_low=round(float(np.percentile(gain[i], lo_q)), 2),
                gain_high=round(float(np.percentile(gain[i], hi_q)), 2),
                interval=interval, assumption=assumption))
        mine.sort(key=lambda a: a.gain_per_month, reverse=True)
        actions += mine[:max_actions]
    return actions


def customers_to_contact(data: MarketplaceData, as_of: object, provider_id: int,
                         churn_probability: pd.Series, *, min_probability: float = 0.3,
                         min_visits: int = 2, active_window_days: int = 180,
                         overdue_factor: float = 1.5, limit: int | None = None
                         ) -> pd.DataFrame:
    """The barber's at-risk regulars, most at risk first, with the message each needs.

    A **regular** has at least ``min_visits`` completed visits with the barber and their latest
    completed visit anywhere was with the barber, within ``active_window_days`` of ``as_of``.
    **At risk**: churn probability (the churn champion's) at least ``min_probability``. The
    message type:

    - ``service_recovery``: the customer's latest review of the barber is 3 stars or fewer
      (a bad visit raises churn most; apologise and invite back);
    - ``win_back``: overdue, more than ``overdue_factor`` times their usual gap since the last
      visit;
    - ``rebooking_reminder``: otherwise (due soon: a reminder with the barber's open slots).

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, churn_probability, visits_with_provider, last_visit_at,
        days_since_last_visit, usual_gap_days, last_rating, message_type, reason``.
    """
    stamp = to_as_of(as_of, to_utc=True)
    if not 0 <= min_probability <= 1:
        raise InputError(f"min_probability: expected a probability, got {min_probability}")
    b = data.bookings
    done = b.loc[(b["scheduled_at"] <= stamp) & (b["created_at"] <= stamp)
                 & (b["status"] == "completed"),
                 ["customer_id", "provider_id", "scheduled_at", "created_at", "booking_id"]]
    # ties broken by when each visit was booked, then by id: never by the rows' order
    latest = (done.sort_values(["scheduled_at", "created_at", "booking_id"], kind="stable")
              .groupby("customer_id").tail(1))
    theirs = latest.loc[(latest["provider_id"] == provider_id)
                        & (latest["scheduled_at"] > stamp - active_window_days * DAY),
                        "customer_id"]
    with_me = done.loc[(done["provider_id"] == provider_id)
                       & done["customer_id"].isin(theirs)]
    visits = with_me.groupby("customer_id")["scheduled_at"].agg(["size", "min", "max"])
    visits = visits.loc[visits["size"] >= min_visits]
    all_visits = done.loc[done["customer_id"].isin(visits.index)].groupby("customer_id")[
        "scheduled_at"].agg(["size", "min", "max"])
    gap = (as_days(all_visits["max"] - all_visits["min"]) / (all_visits["size"] - 1)).reindex(
        visits.index)
    p = pd.to_numeric(churn_probability, errors="coerce").reindex(visits.index)
    r = data.reviews
    mine = r.loc[(r["created_at"] <= stamp) & (r["provider_id"] == provider_id)
                 & r["customer_id"].isin(visits.index)].sort_values(
                     ["created_at", "review_id"], kind="stable")
    last_rating = mine.groupby("customer_id")["rating"].last().reindex(visits.index)
    since = as_days(stamp - visits["max"])
    out = pd.DataFrame({
        "customer_id": visits.index.to_numpy(), "churn_probability": p.to_numpy(),
        "visits_with_provider": visits["size"].to_numpy(),
        "last_visit_at": visits["max"].to_numpy(), "days_since_last_visit": since.to_numpy(),
        "usual_gap_days": gap.to_numpy(), "last_rating": last_rating.to_numpy(dtype=float)})
    out = out.loc[out["churn_probability"] >= min_probability]
    bad = out["last_rating"] <= 3
    overdue = out["days_since_last_visit"] > overdue_factor * out["usual_gap_days"]
    out["message_type"] = np.select([bad, overdue], ["service_recovery", "win_back"],
                                    "rebooking_reminder")
    out["reason"] = np.select(
        [bad, overdue],
        [out["last_rating"].map(lambda x: f"last review of you: {x:.0f} stars"),
         out.apply(lambda row: f"{row['days_since_last_visit']:.0f} days since the last visit, "
                               f"usually every {row['usual_gap_days']:.0f}", axis=1)
         if len(out) else pd.Series(dtype=str)],
        "due for the next visit soon")
    out = out.sort_values("churn_probability", ascending=False, kind="stable")
    return (out if limit is None else out.head(limit)).reset_index(drop=True)
