"""What the retention offers achieved: effects measured on the randomised campaigns.

Every campaign in ``interventions`` splits its targeted customers at random into a treated arm
(the offer) and a control arm (``offer = "none"``). The outcome of a targeted customer is the
library's churn label read from the day the offer was sent: **churned** when the customer has
no completed booking scheduled in ``(sent_at, sent_at + horizon_days]`` (as
:func:`barberpro_ml.features.churn_labels`, with ``sent_at`` in place of ``as_of``; cancelled
and no-show bookings are not a return). Because assignment is random within a campaign, the
difference of the arms' churn rates estimates the offer's average effect on the targeted
customers without confounding [1]_.

Per campaign (:func:`campaign_effects`):

- ``absolute_reduction = churn_control - churn_treated`` (percentage points of churn avoided
  per targeted customer),
- ``relative_reduction = 1 - churn_treated / churn_control`` (the share of the control arm's
  churn the offer removed; what a claim like "46.3% churn reduction" states), undefined when
  the control arm is empty or none of its customers churned.

Pooled over campaigns (the row ``campaign = "all"``), by **direct standardisation** to all
targeted customers [2]_: each arm's churn rate is the size-weighted mean of the campaigns'
rates, ``churn_arm = sum_k N_k churn_arm_k / sum_k N_k`` with ``N_k`` the campaign's targeted
customers, so ``absolute_reduction`` is the size-weighted mean of the campaigns' differences
(the average effect per targeted customer) and ``relative_reduction = 1 - churn_treated /
churn_control`` its relative form. Campaigns are never mixed row by row: pooling raw rows would
weight a campaign's arms by its own treat fraction (Simpson's paradox when fractions differ).
With balanced arms the Mantel-Haenszel weights ``n1 n0 / N`` [3]_ are proportional to ``N``
and give the same point estimates; :func:`pooled_risk_ratio` gives the Mantel-Haenszel risk
ratio with its Greenland-Robins interval as an analytic cross-check.

Confidence intervals are stratified percentile bootstrap intervals [4]_: every resample
redraws each campaign's treated and control arms separately, with replacement and at their
own size, as the randomisation fixed them. Resampling ``n`` rows of a 0/1 outcome with ``y``
ones gives a number of ones distributed exactly ``Binomial(n, y / n)``, so each arm's
resampled churn count is drawn from that binomial directly: the same bootstrap distribution as
resampling rows, at a cost independent of the number of customers. The pooled estimate is
computed on the same resamples.

Point in time: an intervention is known at ``as_of`` when ``sent_at <= as_of``, a booking when
``created_at <= as_of``. A campaign is evaluated only when the outcome windows of all its rows
known at ``as_of`` have closed by then, and the known data reach that far (``sent_at +
horizon_days <= min(as_of, latest event known at as_of)``); later campaigns, later rows and
later bookings are left out, so appending events after ``as_of`` never changes the result.

References
----------
.. [1] Imbens, G. W. & Rubin, D. B. (2015). *Causal Inference for Statistics, Social, and
   Biomedical Sciences*, ch. 6 (Neyman's difference in means for completely randomised
   experiments) and ch. 9 (stratified randomised experiments).
.. [2] Rothman, K. J., Greenland, S. & Lash, T. L. (2008). *Modern Epidemiology*, 3rd ed.,
   ch. 4 and 15 (standardised risks and their ratio and difference).
.. [3] Greenland, S. & Robins, J. M. (1985). Estimation of a common effect parameter from
   sparse follow-up data. *Biometrics* 41(1), 55-68.
.. [4] Efron, B. & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman &
   Hall (ch. 13, percentile intervals; stratified resampling for multi-sample problems).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import norm

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import NotEnoughDataError
from barberpro_ml.evaluation.bootstrap import estimate
from barberpro_ml.evaluation.report import MetricEstimate
from barberpro_ml.features._common import DAY_NS, AsOf, check_horizon, ns, to_as_of

__all__ = [
    "POOLED",
    "OfferEffect",
    "campaign_effects",
    "offer_outcomes",
    "offer_pays",
    "pooled_risk_ratio",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

POOLED: Final = "all"
"""The ``campaign`` value of the pooled estimate."""

MIXED: Final = "mixed"
"""The ``offer`` value when the treated rows carry more than one offer."""


class OfferEffect(BaseModel):
    """The measured effect of one campaign's offer on churn (or of all campaigns pooled).

    Attributes
    ----------
    campaign
        Campaign name, or ``"all"`` for the pooled estimate.
    offer
        The treated arm's offer; ``"mixed"`` when its rows carry several, ``None`` when the
        campaign has no treated row.
    campaigns
        The campaigns the estimate covers (one, or those pooled).
    n_treated, n_control
        Targeted customers in each arm (summed over the pooled campaigns for ``"all"``).
    churned_treated, churned_control
        How many of them churned (no completed visit in the window).
    churn_treated, churn_control
        Churn rate of each arm; ``None`` for an empty arm. For ``"all"``, the standardised
        rates (size-weighted means of the pooled campaigns' rates), not raw pooled rates.
    absolute_reduction
        ``churn_control - churn_treated`` with its bootstrap interval; ``None`` when an arm is
        empty (see ``notes``).
    relative_reduction
        ``1 - churn_treated / churn_control`` with its bootstrap interval; ``None`` when an
        arm is empty or no control customer churned (see ``notes``).
    sent_from, sent_to
        First and last ``sent_at`` of the rows.
    window_end
        ``sent_to + horizon_days``: when the last outcome window closed.
    as_of, horizon_days
        The cut-off and outcome window the estimate was computed with.
    n_bootstrap, seed
        Resamples behind the intervals and their seed.
    notes
        Why an estimate is missing, campaigns left out of the pooled estimate, resamples on
        which the relative reduction was undefined.
    """

    model_config = ConfigDict(frozen=True)

    campaign: str
    offer: str | None
    campaigns: list[str]
    n_treated: int
    n_control: int
    churned_treated: int
    churned_control: int
    churn_treated: float | None
    churn_control: float | None
    absolute_reduction: MetricEstimate | None
    relative_reduction: MetricEstimate | None
    sent_from: datetime
    sent_to: datetime
    window_end: datetime
    as_of: datetime
    horizon_days: int
    n_bootstrap: int
    seed: int
    notes: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- point in time

def _latest_known_event(data: MarketplaceData, cut: int) -> int:
    """Latest event time (ns) known at ``cut``: how far the data visibly reach at ``as_of``."""
    columns = (
        data.customers["signup_at"], data.providers["joined_at"], data.providers["left_at"],
        data.bookings["created_at"], data.reviews["created_at"], data.interventions["sent_at"],
    )
    latest = np.iinfo(np.int64).min
    for column in columns:
        stamps = ns(column.dropna())
        known = stamps[stamps <= cut]
        if known.size:
            latest = max(latest, int(known.max()))
    return latest


def _stamp(value_ns: int) -> datetime:
    # datetime holds microseconds; flooring avoids pandas' warning on discarded nanoseconds
    return pd.Timestamp(value_ns).floor("us").to_pydatetime()


def _closed_campaigns(data: MarketplaceData, stamp: pd.Timestamp, horizon_ns: int
                      ) -> tuple[BoolArray, IntArray, list[str], IntArray, IntArray]:
    """Rows to evaluate and their campaigns.

    Returns the row mask (over ``data.interventions``), the dense campaign code of those rows,
    the campaign names, and per campaign the first and last ``sent_at`` (ns).
    """
    iv = data.interventions
    cut = int(stamp.value)
    sent = ns(iv["sent_at"])
    known = sent <= cut
    if not known.any():
        raise NotEnoughDataError(
            f"no intervention was sent by as_of={stamp}: no campaign has an outcome to "
            "measure (pass an as_of after a campaign's sent_at + horizon_days)")
    # Category codes depend on the whole table (a later campaign adds a category), so the
    # campaigns are ordered by name: the order of the resamples must not change with them.
    category_codes, category_inverse = np.unique(
        iv["campaign"].cat.codes.to_numpy()[known], return_inverse=True)
    category_names = np.asarray(iv["campaign"].cat.categories.astype("str"), dtype=object)
    by_name = np.argsort(category_names[category_codes], kind="stable")
    names = category_names[category_codes][by_name]
    rank = np.empty_like(by_name)
    rank[by_name] = np.arange(len(by_name))
    codes = rank[category_inverse].astype(np.int64)
    n_campaigns = len(names)
    first = np.full(n_campaigns, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(n_campaigns, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, codes, sent[known])
    np.maximum.at(last, codes, sent[known])
    window_end = last + horizon_ns
    reach = min(cut, _latest_known_event(data, cut))
    closed = window_end <= reach
    if not closed.any():
        earliest = int(np.argmin(window_end))
        raise NotEnoughDataError(
            f"no campaign's outcome window has closed by as_of={stamp} with "
            f"horizon_days={horizon_ns // DAY_NS}: the earliest window end is "
            f"{pd.Timestamp(int(window_end[earliest]))} (campaign {str(names[earliest])!r}, "
            f"last sent {pd.Timestamp(int(last[earliest]))}); the data known at as_of reach "
            f"{pd.Timestamp(reach)}. Pass a later as_of or a shorter horizon_days.")
    keep_code = np.flatnonzero(closed)
    remap = np.full(n_campaigns, -1, dtype=np.int64)
    remap[keep_code] = np.arange(len(keep_code))
    rows = np.flatnonzero(known)
    new_codes = remap[codes]
    evaluated = new_codes >= 0
    mask = np.zeros(len(iv), dtype=bool)
    mask[rows[evaluated]] = True
    return (mask, new_codes[evaluated], [str(n) for n in names[keep_code]],
            first[keep_code], last[keep_code])


def _churned(data: MarketplaceData, customers: IntArray, sent: IntArray, horizon_ns: int,
             cut: int) -> BoolArray:
    """Per row: no completed booking of the customer known at ``cut`` scheduled in
    ``(sent, sent + horizon]``.

    Bookings and the two window edges of every row are sorted together by (customer, time,
    kind) with bookings before edges at equal times; the bookings between a row's two edges
    are then a difference of a running count, so the window is open at ``sent`` and closed at
    ``sent + horizon`` exactly, with one sort and no per-row loop.
    """
    b = data.bookings
    status = b["status"]
    completed = np.asarray(status.cat.codes.to_numpy()
                           == list(status.cat.categories).index("completed"))
    scheduled = ns(b["scheduled_at"])
    booking_customer = b["customer_id"].to_numpy(dtype=np.int64)
    useful = (completed & (ns(b["created_at"]) <= cut) & (scheduled > sent.min())
              & (scheduled <= sent.max() + horizon_ns)
              & np.isin(booking_customer, customers))
    n_bookings, n_rows = int(useful.sum()), len(customers)
    who = np.concatenate((booking_customer[useful], customers, customers))
    when = np.concatenate((scheduled[useful], sent, sent + horizon_ns))
    kind = np.concatenate((np.zeros(n_bookings, dtype=np.int8), np.ones(2 * n_rows, np.int8)))
    order = np.lexsort((kind, when, who))
    seen = np.cumsum(kind[order] == 0)
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    start = seen[position[n_bookings:n_bookings + n_rows]]
    end = seen[position[n_bookings + n_rows:]]
    return np.asarray(end == start, dtype=bool)


# --------------------------------------------------------------------------- estimates

def _rates(churned: npt.NDArray[np.float64], n: IntArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(n > 0, churned / np.maximum(n, 1), np.nan), dtype=np.float64)


def _relative(treated: FloatArray, control: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(control > 0, 1.0 - treated / np.where(control > 0, control,
                                                                          1.0), np.nan))


def _offers(data: MarketplaceData, mask: BoolArray, codes: IntArray, treated: BoolArray,
            n_campaigns: int) -> list[str | None]:
    offer = data.interventions["offer"]
    n_offers = len(offer.cat.categories)
    pairs = np.unique(codes[treated] * n_offers + offer.cat.codes.to_numpy()[mask][treated])
    campaign_of, offer_of = pairs // n_offers, pairs % n_offers
    out: list[str | None] = []
    for k in range(n_campaigns):
        distinct = offer_of[campaign_of == k]
        out.append(None if distinct.size == 0 else MIXED if distinct.size > 1
                   else str(offer.cat.categories[int(distinct[0])]))
    return out


def _common_offer(offers: list[str | None]) -> str | None:
    distinct = {o for o in offers if o is not None}
    if not distinct:
        return None
    return distinct.pop() if len(distinct) == 1 else MIXED


def _dropped_note(what: str, replicates: FloatArray) -> list[str]:
    undefined = int((~np.isfinite(replicates)).sum())
    if undefined == 0:
        return []
    return [f"{what}: undefined on {undefined} of {replicates.size} bootstrap resamples "
            "(no control customer churned in them); the interval is read from the others"]


@dataclass(frozen=True)
class _Run:
    """What every estimate of one call shares."""

    as_of: pd.Timestamp
    horizon_ns: int
    n_bootstrap: int
    seed: int
    confidence: float

    def record(self, *, campaign: str, offer: str | None, campaigns: list[str],
               n: tuple[int, int], churned: tuple[int, int],
               churn: tuple[float | None, float | None],
               absolute: MetricEstimate | None, relative: MetricEstimate | None,
               sent: tuple[int, int], notes: list[str]) -> OfferEffect:
        """An :class:`OfferEffect`; pairs are ``(control, treated)``, times in ns."""
        return OfferEffect(
            campaign=campaign, offer=offer, campaigns=campaigns,
            n_treated=n[1], n_control=n[0], churned_treated=churned[1],
            churned_control=churned[0], churn_treated=churn[1], churn_control=churn[0],
            absolute_reduction=absolute, relative_reduction=relative,
            sent_from=_stamp(sent[0]), sent_to=_stamp(sent[1]),
            window_end=_stamp(sent[1] + self.horizon_ns), as_of=self.as_of.to_pydatetime(),
            horizon_days=self.horizon_ns // DAY_NS, n_bootstrap=self.n_bootstrap,
            seed=self.seed, notes=notes)

    def reductions(self, churn_control: float, churn_treated: float, replicates_control:
                   FloatArray, replicates_treated: FloatArray
                   ) -> tuple[MetricEstimate, MetricEstimate | None, list[str]]:
        """Absolute and relative reduction with their intervals, and notes."""
        absolute = estimate("absolute_reduction", churn_control - churn_treated,
                            replicates_control - replicates_treated,
                            confidence=self.confidence, higher_is_better=True)
        if churn_control <= 0:
            return absolute, None, [
                "no control customer churned: the relative reduction 1 - churn_treated / "
                "churn_control is undefined"]
        replicates = _relative(replicates_treated, replicates_control)
        relative = estimate("relative_reduction", 1 - churn_treated / churn_control,
                            replicates, confidence=self.confidence, higher_is_better=True)
        return absolute, relative, _dropped_note("relative_reduction", replicates)


def campaign_effects(data: MarketplaceData, as_of: AsOf, *, horizon_days: int = 90,
                     n_bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95
                     ) -> list[OfferEffect]:
    """Effect of each randomised campaign's offer on churn, and all campaigns pooled.

    The module docstring gives the outcome, the estimators, the pooling and the interval.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        Naive UTC cut-off. Only interventions sent by ``as_of`` and bookings created by then
        count. A campaign is evaluated only when every one of its rows known at ``as_of`` has
        its outcome window ``(sent_at, sent_at + horizon_days]`` closed by ``as_of``, and the
        data known at ``as_of`` reach the window's end (some event at or after it); other
        campaigns are left out. Appending events after ``as_of`` never changes the result.
    horizon_days
        Outcome window after ``sent_at``, in days (default 90, as the churn label).
    n_bootstrap
        Stratified bootstrap resamples (0: no interval; the bounds equal the estimate).
    seed
        Seed of the resamples.
    confidence
        Level of the two-sided percentile intervals.

    Returns
    -------
    list of OfferEffect
        One per evaluated campaign, by first ``sent_at`` (then name), and the pooled estimate
        (``campaign = "all"``) last. A campaign without both arms is listed with ``None``
        effects and a note, and left out of the pooled estimate.

    Raises
    ------
    NotEnoughDataError
        (a ``ValueError``) When no campaign's outcome window has closed by ``as_of`` (the
        message names ``as_of`` and the earliest window end).
    ValueError
        An argument is invalid.

    Examples
    --------
    >>> from barberpro_ml.data import SimulationConfig, simulate
    >>> data = simulate(SimulationConfig(n_customers=2000, seed=1))
    >>> effects = campaign_effects(data, data.observation_end, n_bootstrap=200)
    >>> [e.campaign for e in effects]
    ['winback_2023_06', 'winback_2023_10', 'winback_2024_03', 'winback_2024_08', 'all']
    >>> pooled = effects[-1].absolute_reduction
    >>> bool(pooled.ci_low <= pooled.value <= pooled.ci_high)
    True
    """
    if not isinstance(data, MarketplaceData):
        raise TypeError(f"data: expected MarketplaceData, got {type(data).__name__}")
    stamp = to_as_of(as_of)
    horizon = check_horizon(horizon_days)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or (
            n_bootstrap < 0):
        raise ValueError(f"n_bootstrap: expected an integer >= 0, got {n_bootstrap!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    run = _Run(stamp, horizon * DAY_NS, int(n_bootstrap), seed, confidence)
    mask, codes, names, first, last = _closed_campaigns(data, stamp, run.horizon_ns)
    iv = data.interventions
    treated = iv["treated"].to_numpy(dtype=bool)[mask]
    churned = _churned(data, iv["customer_id"].to_numpy(dtype=np.int64)[mask],
                       ns(iv["sent_at"])[mask], run.horizon_ns, int(stamp.value))

    k_all = len(names)
    cell = 2 * codes + treated
    size = np.bincount(cell, minlength=2 * k_all).reshape(k_all, 2).astype(np.int64)
    events = np.asarray(np.bincount(cell, weights=churned.astype(np.float64),
                                    minlength=2 * k_all), dtype=np.float64).reshape(k_all, 2)
    rates = _rates(events, size)
    # Each arm's resampled churn count is Binomial(n, y/n): the exact distribution of the
    # count in a with-replacement resample of the arm's n rows. Shape (n_bootstrap, k, arm).
    rng = np.random.default_rng(seed)
    replicates = rng.binomial(size, np.nan_to_num(rates), size=(run.n_bootstrap, k_all, 2)
                              ) / np.maximum(size, 1)
    both = np.asarray((size > 0).all(axis=1), dtype=bool)
    offers = _offers(data, mask, codes, treated, k_all)

    effects: list[OfferEffect] = []
    for k in np.lexsort((np.asarray(names, dtype=object), first)):
        absolute = relative = None
        if both[k]:
            absolute, relative, notes = run.reductions(
                float(rates[k, 0]), float(rates[k, 1]), replicates[:, k, 0],
                replicates[:, k, 1])
        else:
            empty = " and ".join(arm for arm, n in zip(("control", "treated"), size[k],
                                                        strict=True) if n == 0)
            notes = [f"no {empty} customers: the effect is undefined, and the campaign is left "
                     "out of the pooled estimate"]
        effects.append(run.record(
            campaign=names[k], offer=offers[k], campaigns=[names[k]],
            n=(int(size[k, 0]), int(size[k, 1])),
            churned=(int(events[k, 0]), int(events[k, 1])),
            churn=(None if size[k, 0] == 0 else float(rates[k, 0]),
                   None if size[k, 1] == 0 else float(rates[k, 1])),
            absolute=absolute, relative=relative,
            sent=(int(first[k]), int(last[k])), notes=notes))

    # Pooled: standardised to all targeted customers of the campaigns with both arms.
    used = [k for k in np.lexsort((np.asarray(names, dtype=object), first)) if both[k]]
    notes = [f"campaign {e.campaign!r} left out: {e.notes[0]}" for e in effects
             if e.absolute_reduction is None]
    absolute = relative = None
    churn: tuple[float | None, float | None] = (None, None)
    if used:
        weight = size[used].sum(axis=1).astype(np.float64)
        weight /= weight.sum()
        standard = rates[used].T @ weight
        standard_replicates = replicates[:, used, :].transpose(0, 2, 1) @ weight
        churn = (float(standard[0]), float(standard[1]))
        absolute, relative, more = run.reductions(
            float(standard[0]), float(standard[1]), standard_replicates[:, 0],
            standard_replicates[:, 1])
        notes += more
        if len(used) > 1:
            notes.append("churn_treated and churn_control are standardised to all targeted "
                         "customers: size-weighted means of the pooled campaigns' rates")
    else:
        notes.append("no campaign has both a treated and a control arm: nothing to pool")
    scope = used or list(range(k_all))
    effects.append(run.record(
        campaign=POOLED, offer=_common_offer([offers[k] for k in used]),
        campaigns=[names[k] for k in used],
        n=(int(size[used, 0].sum()), int(size[used, 1].sum())),
        churned=(int(events[used, 0].sum()), int(events[used, 1].sum())),
        churn=churn, absolute=absolute, relative=relative,
        sent=(int(first[scope].min()), int(last[scope].max())), notes=notes))
    return effects


def offer_outcomes(data: MarketplaceData, as_of: AsOf, *, horizon_days: int = 90
                   ) -> pd.DataFrame:
    """The outcome of every targeted row of the campaigns closed at ``as_of``, row by row.

    The rows :func:`campaign_effects` counts, with the same point-in-time rule and the same
    churn outcome, for models that learn who an offer works on
    (:mod:`barberpro_ml.interventions`).

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        The cut-off; only campaigns whose outcome windows have closed by then are kept.
    horizon_days
        Outcome window after ``sent_at``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``intervention_id``: ``customer_id``, ``campaign`` (str), ``sent_at``,
        ``treated`` (int8), ``churned`` (int8).

    Examples
    --------
    >>> from barberpro_ml.data import SimulationConfig, simulate
    >>> data = simulate(SimulationConfig(n_customers=1000, seed=1))
    >>> rows = offer_outcomes(data, data.observation_end)
    >>> sorted(rows.columns)
    ['campaign', 'churned', 'customer_id', 'sent_at', 'treated']
    """
    if not isinstance(data, MarketplaceData):
        raise TypeError(f"data: expected MarketplaceData, got {type(data).__name__}")
    stamp = to_as_of(as_of)
    horizon_ns = check_horizon(horizon_days) * DAY_NS
    mask, codes, names, _, _ = _closed_campaigns(data, stamp, horizon_ns)
    iv = data.interventions
    customers = iv["customer_id"].to_numpy(dtype=np.int64)[mask]
    churned = _churned(data, customers, ns(iv["sent_at"])[mask], horizon_ns, int(stamp.value))
    return pd.DataFrame({
        "customer_id": customers,
        "campaign": np.asarray(names, dtype=object)[codes],
        "sent_at": iv["sent_at"].to_numpy()[mask],
        "treated": iv["treated"].to_numpy(dtype=bool)[mask].astype(np.int8),
        "churned": churned.astype(np.int8),
    }, index=pd.Index(iv["intervention_id"].to_numpy(dtype=np.int64)[mask],
                      name="intervention_id"))


def pooled_risk_ratio(effects: list[OfferEffect], *, confidence: float = 0.95
                      ) -> MetricEstimate:
    """Mantel-Haenszel risk ratio of churn, treated over control, across campaigns.

    ``RR_MH = sum_k (a_k n0_k / N_k) / sum_k (c_k n1_k / N_k)`` with ``a_k``, ``c_k`` the
    churned customers of the treated and control arms, ``n1_k``, ``n0_k`` their sizes and
    ``N_k = n1_k + n0_k`` [3]_; the interval is ``exp(log RR_MH +- z se)`` with the variance
    of Greenland & Robins [3]_ (valid for many small strata as for few large ones), a check on
    the bootstrap interval of the pooled relative reduction (``1 - RR``).

    Parameters
    ----------
    effects
        Output of :func:`campaign_effects`; the pooled row (``"all"``) and campaigns without
        both arms are skipped.
    confidence
        Level of the two-sided interval.

    Returns
    -------
    MetricEstimate
        Named ``mantel_haenszel_risk_ratio`` (lower is better; below 1: treated customers
        churn less), without replicates.

    Raises
    ------
    ValueError
        When no campaign has both arms, or nobody churned in one of the arms across all
        campaigns (the ratio or its logarithm is then undefined).

    Examples
    --------
    >>> from barberpro_ml.data import SimulationConfig, simulate
    >>> data = simulate(SimulationConfig(n_customers=2000, seed=1))
    >>> rr = pooled_risk_ratio(campaign_effects(data, data.observation_end, n_bootstrap=0))
    >>> bool(rr.ci_low < rr.value < rr.ci_high)
    True
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    strata = [e for e in effects if e.campaign != POOLED and e.n_treated > 0 and e.n_control > 0]
    if not strata:
        raise ValueError(f"no campaign with both a treated and a control arm among "
                         f"{[e.campaign for e in effects]}")
    a = np.array([e.churned_treated for e in strata], dtype=np.float64)
    c = np.array([e.churned_control for e in strata], dtype=np.float64)
    n1 = np.array([e.n_treated for e in strata], dtype=np.float64)
    n0 = np.array([e.n_control for e in strata], dtype=np.float64)
    total = n1 + n0
    r, s = float(np.sum(a * n0 / total)), float(np.sum(c * n1 / total))
    if r == 0 or s == 0:
        arm = "treated" if r == 0 else "control"
        raise ValueError(f"no {arm} customer churned in campaigns "
                         f"{[e.campaign for e in strata]}: the risk ratio's logarithm and its "
                         "interval are undefined")
    variance = float(np.sum((n1 * n0 * (a + c) - a * c * total) / total**2)) / (r * s)
    z = float(norm.ppf((1 + confidence) / 2))
    log_rr, se = np.log(r / s), np.sqrt(max(variance, 0.0))
    return MetricEstimate(name="mantel_haenszel_risk_ratio", value=r / s,
                          ci_low=float(np.exp(log_rr - z * se)),
                          ci_high=float(np.exp(log_rr + z * se)), confidence=confidence,
                          higher_is_better=False)


# --------------------------------------------------------------------------- decision rule

def _checked(name: str, values: npt.ArrayLike, low: float | None, high: float | None
             ) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected numbers ({exc})") from exc
    bad = ~np.isfinite(array)
    if low is not None:
        bad |= array < low
    if high is not None:
        bad |= array > high
    if bad.any():
        span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        examples = np.unique(array[bad])[:5].tolist()
        raise ValueError(f"{name}: {int(bad.sum())} value(s) outside {span} or not finite "
                         f"(examples: {examples})")
    return array


def offer_pays(churn_probability: npt.ArrayLike, relative_reduction: npt.ArrayLike,
               value_if_retained: npt.ArrayLike, offer_cost_if_redeemed: npt.ArrayLike
               ) -> tuple[FloatArray, BoolArray]:
    """Expected gain of sending a retention offer, and whether it pays.

    The offer lowers a customer's churn probability ``p`` to ``p (1 - rr)``, ``rr`` the
    measured relative reduction. It saves ``p rr`` customers, each worth ``value_if_retained``,
    and its cost is paid whenever the customer comes back under it, with probability
    ``1 - p (1 - rr)``: the customers it keeps and the ``1 - p`` who would have come back
    anyway (the offer subsidises them too, the usual reason blanket discounts lose money).

    ``expected_gain = p rr value - (1 - p (1 - rr)) cost``; the offer pays when it is > 0.

    Assumptions, to read the result by:

    - ``rr`` applies to every customer alike (a constant relative effect). It is an average
      over the campaign's targeted population (lapsing customers, some already gone); apply it
      to similar customers, and pass the lower bound of its interval for a cautious decision.
    - ``value_if_retained`` is the difference in future value between a customer who comes
      back within the horizon and one who does not (e.g. the expected remaining value of an
      active customer), not the value of one visit.
    - The cost counts every return within the outcome window as a redemption. An offer that
      runs for less than the window (60 of 90 days in the simulation) is redeemed less often,
      so this overstates the cost: the rule errs against sending.

    Parameters
    ----------
    churn_probability
        ``p`` per customer, in [0, 1] (e.g. a churn model's probability at the same horizon).
    relative_reduction
        ``rr``, at most 1 (a negative value: the offer raises churn); scalar or broadcastable
        to ``churn_probability``. ``p (1 - rr)`` must stay at most 1.
    value_if_retained
        Value of keeping the customer, >= 0; scalar or broadcastable.
    offer_cost_if_redeemed
        Cost of the offer when redeemed (the discount granted), >= 0; scalar or broadcastable.

    Returns
    -------
    expected_gain : ndarray of float64
        In the currency of the value and cost, shape of the broadcast inputs.
    pays : ndarray of bool
        ``expected_gain > 0``.

    Raises
    ------
    ValueError
        Values out of range or not finite (the message names the argument, the count and
        examples), or shapes that do not broadcast.

    Examples
    --------
    >>> gain, pays = offer_pays([0.02, 0.6], 0.3, 200.0, 6.0)
    >>> gain.round(2).tolist(), pays.tolist()
    ([-4.72, 32.52], [False, True])
    """
    p = _checked("churn_probability", churn_probability, 0.0, 1.0)
    rr = _checked("relative_reduction", relative_reduction, None, 1.0)
    value = _checked("value_if_retained", value_if_retained, 0.0, None)
    cost = _checked("offer_cost_if_redeemed", offer_cost_if_redeemed, 0.0, None)
    try:
        shape = np.broadcast_shapes(p.shape, rr.shape, value.shape, cost.shape)
    except ValueError:
        raise ValueError(
            f"shapes do not broadcast: churn_probability {p.shape}, relative_reduction "
            f"{rr.shape}, value_if_retained {value.shape}, offer_cost_if_redeemed "
            f"{cost.shape}") from None
    churn_with_offer = p * (1.0 - rr)
    too_high = churn_with_offer > 1.0
    if too_high.any():
        examples = np.unique(np.broadcast_to(rr, too_high.shape)[too_high])[:5].tolist()
        raise ValueError(
            f"relative_reduction: {int(too_high.sum())} customer(s) would churn with "
            f"probability p (1 - rr) > 1 (rr examples: {examples}); a negative relative "
            "reduction must be at least 1 - 1/p")
    gain = np.broadcast_to(p * rr * value - (1.0 - churn_with_offer) * cost, shape)
    gain = np.array(gain, dtype=np.float64)
    return gain, np.asarray(gain > 0, dtype=bool)
