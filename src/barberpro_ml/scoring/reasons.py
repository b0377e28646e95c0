"""Churn reasons in words: SHAP values of the churn model, grouped and phrased per customer.

The churn model's per-row SHAP values (:meth:`ChurnClassifier.feature_contributions`, log-odds)
are summed over *reason groups*: features that describe one thing a person would name
("visit rhythm": days since the last visit, the mean gap, days overdue...). Correlated features
share credit in SHAP, so reading them one by one would give three phrasings of "they are late";
summed, the group carries the whole effect. The groups with the largest absolute contribution
are the customer's reasons, each phrased from the customer's own feature values, e.g.
``"21 days overdue against a usual 28-day cadence"``, with the direction (``raises`` or
``lowers`` the churn risk) and the size (log-odds) beside it.

Everything is vectorised over rows: phrasing a million customers is a handful of string
operations per group, not a Python loop per customer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["REASON_GROUPS", "ReasonGroup", "churn_reasons"]

Phrase = Callable[[pd.DataFrame], npt.NDArray[np.object_]]


Text = npt.NDArray[np.object_]


def _num(rows: pd.DataFrame, name: str) -> npt.NDArray[np.float64]:
    if name not in rows.columns:
        return np.full(len(rows), np.nan)
    return np.asarray(pd.to_numeric(rows[name], errors="coerce"), dtype=np.float64)


def _text(values: list[str]) -> Text:
    return np.asarray(values, dtype=object) if values else np.empty(0, dtype=object)


def _distinct_text(values: npt.NDArray[np.float64], fmt: Callable[[float], str]) -> Text:
    """``fmt(v)`` of every value ("" where missing), formatting each distinct value once.

    Distinct values are found on the float's bits (so ``-0.0`` keeps its own text), and the
    texts are gathered back by position: a million customers take a few thousand calls to
    ``fmt`` instead of a million.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(values), "", dtype=object)
    known = ~np.isnan(values)
    if known.any():
        bits, inverse = np.unique(values[known].view(np.int64), return_inverse=True)
        texts = np.asarray([fmt(v) for v in bits.view(np.float64).tolist()] + [""],
                           dtype=object)[:-1]
        out[known] = texts[inverse.reshape(-1)]
    return out


def _int_text(values: npt.NDArray[np.float64]) -> Text:
    """Rounded whole numbers as text ("" where missing)."""
    # rint rounds half to even on the exact double, as the ".0f" format does, and keeps the
    # sign of a zero: the text of rint(v) is the text of v, with far fewer distinct values
    return _distinct_text(np.rint(values), "{:.0f}".format)


def _pct_text(values: npt.NDArray[np.float64]) -> Text:
    return _distinct_text(values, "{:.0%}".format)


def _one_decimal(values: npt.NDArray[np.float64]) -> Text:
    return _distinct_text(values, "{:.1f}".format)


def _choose(n: int, *branches: tuple[Any, Text | str]) -> Text:
    """The first branch whose mask holds, row by row (later branches fill what is left).

    Texts are object arrays of Python strings: ``+`` on them concatenates element-wise in C,
    which is what keeps phrasing a million rows cheap and one row free of pandas overhead.
    """
    out = np.full(n, "", dtype=object)
    filled = np.zeros(n, dtype=bool)
    for mask, text in branches:
        take = np.asarray(mask, dtype=bool) & ~filled
        out[take] = text if isinstance(text, str) else text[take]
        filled |= take
    return out


def _rhythm(rows: pd.DataFrame) -> Text:
    since = _num(rows, "days_since_last_visit")
    gap = _num(rows, "gap_mean_days")
    overdue = since - gap
    tenure = _num(rows, "tenure_days")
    seen, rhythm = ~np.isnan(since), ~np.isnan(gap)
    return _choose(
        len(rows),
        (seen & rhythm & (overdue > 0),
         _int_text(overdue) + " days overdue against a usual " + _int_text(gap)
         + "-day cadence"),
        (seen & rhythm,
         "last visit " + _int_text(since) + " days ago, within a usual " + _int_text(gap)
         + "-day cadence"),
        (seen, "a single visit so far, " + _int_text(since) + " days ago"),
        (True, "no visit yet, " + _int_text(tenure) + " days after signing up"),
    )


def _frequency(rows: pd.DataFrame) -> Text:
    out: Text = (_int_text(_num(rows, "visits_365d")) + " visits in the last year ("
                 + _int_text(_num(rows, "visits_90d")) + " in the last 90 days; "
                 + _int_text(_num(rows, "n_visits")) + " in all)")
    return out


def _spend(rows: pd.DataFrame) -> Text:
    per_visit = _num(rows, "spend_per_visit")
    return _choose(
        len(rows),
        (~np.isnan(per_visit),
         "spends " + _int_text(per_visit) + " per visit, " + _int_text(_num(rows, "spend_365d"))
         + " in the last year"),
        (True, "has not spent anything yet"),
    )


def _barber(rows: pd.DataFrame) -> Text:
    left = _num(rows, "main_provider_left")
    share = _num(rows, "main_provider_share")
    rating = _num(rows, "main_provider_rating")
    return _choose(
        len(rows),
        (left == 1.0, "their usual barber has left the platform"),
        (~np.isnan(share) & ~np.isnan(rating),
         _pct_text(share) + " of visits with the same barber, rated " + _one_decimal(rating)
         + "/5"),
        (~np.isnan(share), _pct_text(share) + " of visits with the same barber"),
        (True, "no usual barber yet"),
    )


def _price(rows: pd.DataFrame) -> Text:
    change = _num(rows, "last_price_change")
    discounted = _num(rows, "discount_share")
    return _choose(
        len(rows),
        (change >= 0.5, "paid " + _int_text(change) + " more than before for the same service "
         "at the last visit"),
        (change <= -0.5, "paid " + _int_text(-change) + " less than before for the same "
         "service at the last visit"),
        (~np.isnan(discounted), _pct_text(discounted) + " of visits discounted"),
        (True, "no price history yet"),
    )


def _reliability(rows: pd.DataFrame) -> Text:
    cancel = _num(rows, "cancel_rate")
    no_show = _num(rows, "no_show_rate")
    return _choose(
        len(rows),
        (~np.isnan(cancel), _pct_text(cancel) + " of bookings cancelled, " + _pct_text(no_show)
         + " no-shows"),
        (True, "no booking yet"),
    )


def _reviews(rows: pd.DataFrame) -> Text:
    last = _num(rows, "rating_last")
    mean = _num(rows, "rating_mean")
    return _choose(
        len(rows),
        (~np.isnan(last), "last review " + _int_text(last) + "/5 (average "
         + _one_decimal(mean) + " over " + _int_text(_num(rows, "n_reviews")) + ")"),
        (True, "has never written a review"),
    )


def _campaigns(rows: pd.DataFrame) -> Text:
    offer_days = _num(rows, "days_since_last_offer")
    campaign_days = _num(rows, "days_since_last_intervention")
    return _choose(
        len(rows),
        (~np.isnan(offer_days), "received a retention offer " + _int_text(offer_days)
         + " days ago"),
        (~np.isnan(campaign_days), "in a campaign's control group " + _int_text(campaign_days)
         + " days ago (no offer)"),
        (True, "never targeted by a retention campaign"),
    )


def _upcoming(rows: pd.DataFrame) -> Text:
    days_to = _num(rows, "days_to_next_booking")
    return _choose(
        len(rows),
        (~np.isnan(days_to), "has a booking in " + _int_text(days_to) + " days"),
        (True, "no upcoming booking"),
    )


def _tenure(rows: pd.DataFrame) -> Text:
    out: Text = "a customer for " + _int_text(_num(rows, "tenure_days")) + " days"
    return out


def _category(rows: pd.DataFrame, name: str) -> Text:
    if name not in rows.columns:
        return np.full(len(rows), "?", dtype=object)
    return _text([str(v) for v in rows[name].tolist()])


def _origin(rows: pd.DataFrame) -> Text:
    out: Text = ("joined via " + _category(rows, "acquisition_channel") + ", lives in "
                 + _category(rows, "neighborhood"))
    return out


def _services(rows: pd.DataFrame) -> Text:
    share = _num(rows, "main_service_share")
    return _choose(
        len(rows),
        (~np.isnan(share), _int_text(_num(rows, "n_services_used")) + " different services, "
         + _pct_text(share) + " of visits the usual one"),
        (True, "no service history yet"),
    )


@dataclass(frozen=True)
class ReasonGroup:
    """Features that describe one thing, and how to say it for each customer."""

    name: str
    features: tuple[str, ...]
    phrase: Phrase


REASON_GROUPS: tuple[ReasonGroup, ...] = (
    ReasonGroup("visit_rhythm", ("days_since_last_visit", "gap_mean_days", "gap_std_days",
                                 "gap_cv", "days_overdue", "days_since_first_visit"), _rhythm),
    ReasonGroup("visit_frequency", ("n_visits", "visits_30d", "visits_90d", "visits_365d"),
                _frequency),
    ReasonGroup("spend", ("spend_30d", "spend_90d", "spend_365d", "spend_total",
                          "spend_per_visit"), _spend),
    ReasonGroup("barber", ("main_provider_share", "main_provider_left",
                           "main_provider_rating"), _barber),
    ReasonGroup("price", ("last_price_change", "discount_share", "discount_total"), _price),
    ReasonGroup("reliability", ("n_bookings", "cancel_rate", "no_show_rate"), _reliability),
    ReasonGroup("reviews", ("n_reviews", "rating_mean", "rating_last", "rating_trend"),
                _reviews),
    ReasonGroup("campaigns", ("n_interventions", "n_offers", "days_since_last_intervention",
                              "last_intervention_treated", "days_since_last_offer"), _campaigns),
    ReasonGroup("upcoming_booking", ("has_upcoming_booking", "days_to_next_booking"), _upcoming),
    ReasonGroup("tenure", ("tenure_days",), _tenure),
    ReasonGroup("origin", ("acquisition_channel", "neighborhood"), _origin),
    ReasonGroup("services", ("n_services_used", "main_service", "main_service_share"),
                _services),
)


def _groups_for(columns: Sequence[str]) -> list[tuple[str, list[int], Phrase | None]]:
    """The reason groups present among ``columns``; a feature outside every group is its own
    group, phrased by its name (so a model with new features still gets reasons)."""
    position = {c: i for i, c in enumerate(columns)}
    groups: list[tuple[str, list[int], Phrase | None]] = []
    used: set[str] = set()
    for group in REASON_GROUPS:
        members = [position[f] for f in group.features if f in position]
        if members:
            groups.append((group.name, members, group.phrase))
            used.update(f for f in group.features if f in position)
    groups += [(c, [position[c]], None) for c in columns if c not in used]
    return groups


def churn_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3
                  ) -> pd.DataFrame:
    """The ``k`` strongest reasons of each customer's churn score, in words.

    Parameters
    ----------
    contributions
        SHAP values of the churn model's log-odds, one column per feature (a ``bias`` column
        is ignored), as returned by :meth:`ChurnClassifier.feature_contributions`.
    features
        The same rows' feature values (same index), used to phrase the reasons.
    k
        Reasons per customer (at most the number of reason groups).

    Returns
    -------
    pandas.DataFrame
        Index of ``contributions``; for ``i`` in ``1..k``: ``reason_i`` (text),
        ``reason_i_group`` (the group's name), ``reason_i_impact`` (summed SHAP value in
        log-odds: > 0 raises the churn risk, < 0 lowers it). Ordered by absolute impact.

    Raises
    ------
    ValueError
        If the two frames do not have the same index, or ``k`` < 1.

    Examples
    --------
    >>> shap = model.feature_contributions(X)                          # doctest: +SKIP
    >>> churn_reasons(shap, X).loc[42, "reason_1"]                     # doctest: +SKIP
    '21 days overdue against a usual 28-day cadence'
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not contributions.index.equals(features.index):
        raise ValueError(f"contributions ({len(contributions):,} rows) and features "
                         f"({len(features):,} rows) must have the same index")
    columns = [c for c in contributions.columns if c != "bias"]
    groups = _groups_for(columns)
    values = contributions[columns].to_numpy(dtype=np.float64)
    summed = np.column_stack([values[:, members].sum(axis=1) for _, members, _ in groups]) \
        if len(values) else np.empty((0, len(groups)))
    k = min(k, len(groups))
    # stable: ties keep the group order above
    order = np.argsort(-np.abs(summed), axis=1, kind="stable")[:, :k]
    out: dict[str, object] = {}
    rows = np.arange(len(summed))
    # each group phrased once, for the rows that name it at any rank
    texts: dict[int, tuple[npt.NDArray[np.intp], Text]] = {}
    for g in np.unique(order).tolist():
        phrase = groups[g][2]
        named = np.flatnonzero((order == g).any(axis=1))
        texts[g] = (named, np.full(len(named), groups[g][0], dtype=object) if phrase is None
                    else phrase(features.iloc[named]))
    names = np.asarray([name for name, _, _ in groups], dtype=object)
    for rank in range(k):
        chosen = order[:, rank]
        text = np.empty(len(summed), dtype=object)
        for g, (named, phrased) in texts.items():
            picked = np.flatnonzero(chosen == g)
            if len(picked):
                text[picked] = phrased[np.searchsorted(named, picked)]
        out[f"reason_{rank + 1}"] = text
        out[f"reason_{rank + 1}_group"] = names[chosen]
        out[f"reason_{rank + 1}_impact"] = summed[rows, chosen]
    return pd.DataFrame(out, index=contributions.index)
