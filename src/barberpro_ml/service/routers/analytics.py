"""``/api/analytics``: the seed document's business-intelligence routes, over
:mod:`barberpro_ml.analytics`.

Every route reads the event data the service currently serves (``now.data``), cut at
``as_of`` (default: the data's last event, the service's default cut-off), and answers with
that ``as_of``, the definitions it used (the KPI catalogue's formula, unit and description,
the funnel's stage rules, the served models' :class:`~barberpro_ml.definitions.Definitions`)
and a confidence interval wherever the number has one.

======================================  ==================================================
Route                                   Answers
======================================  ==================================================
``GET /business-kpis``                  any catalogue measures, by any dimensions and a
                                        time grain, over a window ``[start, end)``
``GET /growth-analytics``               the acquisition funnel by channel (Wilson CIs) and
                                        monthly signup cohorts (retention, revenue)
``GET /competitive-intelligence``       per neighborhood and per barber price tier:
                                        shares, price position and growth, from this
                                        marketplace's own data
``GET /financial-intelligence``         the verified forecast champion's weekly forecast
                                        with its intervals and the coverage its gate
                                        measured (503 without one)
``GET /revenue-optimization``           the pricing claims (the seed's 15-25%) with the
                                        pricing evaluation's evidence, or ``untested``
======================================  ==================================================

Decisions
---------
**Intervals.** ``average_rating`` carries the catalogue's Student-t interval (from the sum of
squared ratings). A rate whose numerator and denominator are both counts of the same units
(``cancellation_rate``, ``no_show_rate``: appointments; ``retention``: customers) carries a
Wilson interval computed from those components (``kpis(..., with_components=True)``), which
treats the units as independent trials: appointments of one customer are not, so for the
booking rates the interval is somewhat narrower than it should be. Other ratios
(``average_ticket``, ``provider_utilisation``) carry none: the catalogue keeps no per-visit
spread of money or minutes to build one from.

**Bad input** is a 422 in FastAPI's standard body (``{"detail": [{"loc": ["query", <name>],
"msg": ..., "type": "value_error", "input": ...}]}``, the shape of every other bad query
parameter of the service), the message naming the bad value and the allowed ones: an unknown
measure or dimension, a measure the dimension cannot split, a time grain in ``by`` or an
unknown ``freq``, ``start`` after ``end`` or after ``as_of``, an ``as_of`` outside the data's
span (first signup to last event). An unreadable time is FastAPI's own 422 on that parameter.

**Not a number.** A ratio with a zero denominator (an empty group) is null in JSON, never NaN.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from barberpro_ml.analytics import (
    COHORT_METRIC_DEFINITIONS,
    DIMENSIONS,
    FUNNEL_STAGE_DEFINITIONS,
    FUNNEL_STAGES,
    MEASURES,
    TIME_GRAINS,
    Measure,
    cohorts,
    funnel,
    kpis,
)
from barberpro_ml.analytics.forecast import TOTAL, weekly_series
from barberpro_ml.config import shipped_config
from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.cutoff import to_as_of
from barberpro_ml.definitions import Definitions
from barberpro_ml.errors import BarberproError
from barberpro_ml.evaluation.proportions import wilson_interval
from barberpro_ml.gates import ClaimSet, load_claims
from barberpro_ml.scoring.live import Served
from barberpro_ml.service.dependencies import AsOf, Now
from barberpro_ml.service.evidence import RegisteredEvidence

__all__ = [
    "DEFAULT_MEASURES",
    "BusinessKpis",
    "CompetitiveIntelligence",
    "GrowthAnalytics",
    "router",
]

DEFAULT_MEASURES: Final = ("bookings", "completed_visits", "net_revenue", "average_ticket",
                           "cancellation_rate", "no_show_rate", "active_customers",
                           "average_rating")
"""The headline measures ``/business-kpis`` answers when none are asked for."""

CONFIDENCE: Final = 0.95
"""Level of every interval the analytics routes report."""

COMPETITIVE_SCOPE: Final = (
    "computed from this marketplace's own booking data: its neighborhoods (where the barbers' "
    "shops are) and its barbers' price tiers compared with the marketplace as a whole; no "
    "external competitors' data")

_WILSON_RATES: Final = frozenset(
    name for name, m in MEASURES.items()
    if m.kind == "ratio" and m.unit == "share"
    and all(MEASURES[part].kind in ("count", "distinct") for part in m.components))
"""Rates of counted units: they carry a Wilson interval."""

_SPLITTING: Final = tuple(d for d, spec in DIMENSIONS.items() if spec.level != "time")
_GRAIN_ALIASES: Final = {**{g: g for g in TIME_GRAINS}, **{a: g for g, a in TIME_GRAINS.items()}}
_PERIOD_CODES: Final = {"day": "D", "week": "W-SUN", "month": "M"}  # ISO weeks: Monday to Sunday

Number = int | float | None
GroupValue = str | int | datetime


# --------------------------------------------------------------------------- response models
class MeasureDefinition(BaseModel):
    """One catalogue measure, as :data:`barberpro_ml.analytics.MEASURES` defines it."""

    name: str
    kind: str = Field(description="count, sum (additive), distinct (customers counted once "
                                  "per group) or ratio (of summed components).")
    unit: str
    formula: str
    attributed_to: str = Field(description="The time that places an event in a period.")
    description: str
    splits_by: list[str] = Field(description="Dimension levels that can split it (time "
                                             "always can).")
    interval: str | None = Field(description="How its confidence interval is computed; null: "
                                             "it has none.")


class DimensionDefinition(BaseModel):
    """One catalogue dimension."""

    name: str
    level: str
    source: str
    description: str


class Interval(BaseModel):
    """A confidence interval at the response's ``confidence``; null bounds: not computable
    (no events, or under two reviews)."""

    low: float | None
    high: float | None


class KpiRow(BaseModel):
    """One group: its dimension values and one value per measure."""

    group: dict[str, GroupValue] = Field(description="Dimension -> value (a time grain's "
                                                     "value is the period's start); empty "
                                                     "for the total.")
    values: dict[str, Number] = Field(description="Measure -> value; null: a ratio with a "
                                                  "zero denominator.")
    intervals: dict[str, Interval] = Field(description="Measure -> its interval, for the "
                                                       "measures that have one.")
    components: dict[str, Number] = Field(description="Numerators and denominators of the "
                                                      "ratios asked for, to reconcile them.")


class BusinessKpis(BaseModel):
    """KPIs from the catalogue for a window, a grouping and a cut-off."""

    as_of: datetime = Field(description="Only events known at this time were read.")
    start: datetime = Field(description="The window's start (inclusive).")
    end: datetime | None = Field(description="The window's end (exclusive) as given; null: the "
                                             "window runs through as_of.")
    freq: str | None
    by: list[str]
    measures: list[str]
    confidence: float
    rows: list[KpiRow]
    definitions: dict[str, MeasureDefinition]
    dimensions: dict[str, DimensionDefinition]
    business_definitions: Definitions = Field(description="The served models' definitions "
                                                          "(the active window, ...).")


class FunnelStage(BaseModel):
    """One funnel stage of one group."""

    stage: str
    customers: int
    base: int = Field(description="The previous stage's customers that can be judged (the "
                                  "signups themselves for signed_up).")
    conversion: float | None = Field(description="customers / base; null for signed_up or "
                                                 "an empty base.")
    conversion_ci: Interval = Field(description="Wilson interval of the conversion.")
    not_yet_judged: int = Field(description="Previous-stage customers left out of the base "
                                            "(retained only).")


class ChannelFunnel(BaseModel):
    acquisition_channel: str
    stages: list[FunnelStage]


class CohortCell(BaseModel):
    """One signup cohort in one month since signup."""

    cohort: datetime = Field(description="The signup month's start.")
    months_since_signup: int
    customers: int
    visiting_customers: int
    retention: float | None
    retention_ci: Interval
    net_revenue: float
    revenue_per_customer: float | None


class GrowthDefinitions(BaseModel):
    stages: dict[str, str]
    cohorts: dict[str, str]
    retention_horizon_days: int = Field(description="Definitions.churn_horizon_days: the "
                                                    "retained stage's horizon.")


class GrowthAnalytics(BaseModel):
    """Acquisition funnel by channel and monthly signup cohorts."""

    as_of: datetime
    confidence: float
    funnel: list[FunnelStage] = Field(description="All customers.")
    funnel_by_channel: list[ChannelFunnel]
    cohorts: list[CohortCell]
    definitions: GrowthDefinitions
    business_definitions: Definitions


class MarketPosition(BaseModel):
    """A neighborhood, a price tier, or the marketplace itself (``segment`` = ``all``)."""

    segment: str
    bookings: int
    completed_visits: int
    net_revenue: float
    average_ticket: float | None
    share_of_bookings: float | None = Field(description="bookings / the marketplace's.")
    share_of_net_revenue: float | None = Field(description="net_revenue / the marketplace's.")
    price_position: float | None = Field(description="average_ticket / the marketplace's "
                                                     "average_ticket (1: at the market).")
    last_period_bookings: int | None
    previous_period_bookings: int | None
    bookings_growth: float | None = Field(description="last / previous period's bookings - 1.")
    last_period_net_revenue: float | None
    previous_period_net_revenue: float | None
    net_revenue_growth: float | None = Field(description="last / previous period's net "
                                                         "revenue - 1.")


class GrowthPeriods(BaseModel):
    freq: str
    previous_period_start: datetime
    last_period_start: datetime
    last_period_end: datetime = Field(description="Exclusive.")


class CompetitiveDefinitions(BaseModel):
    measures: dict[str, MeasureDefinition]
    dimensions: dict[str, DimensionDefinition]
    derived: dict[str, str]


class CompetitiveIntelligence(BaseModel):
    """Where each neighborhood and each price tier stands within this marketplace."""

    scope: str = Field(description="What the comparison is computed from.")
    as_of: datetime
    start: datetime
    end: datetime | None
    growth_periods: GrowthPeriods | None = Field(description="The last complete period and "
                                                             "the one before; null when the "
                                                             "data do not cover both.")
    marketplace: MarketPosition
    neighborhoods: list[MarketPosition]
    price_tiers: list[MarketPosition]
    notes: list[str]
    definitions: CompetitiveDefinitions
    business_definitions: Definitions


# --------------------------------------------------------------------------- validation
def _refuse(param: str, value: object, message: str) -> RequestValidationError:
    """A 422 in FastAPI's standard body, on the query parameter ``param``."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", param),
                                    "msg": message, "input": value}])


def _split(values: Sequence[str] | None) -> list[str]:
    """Repeated and/or comma-separated names, in order, blanks dropped."""
    return [part.strip() for v in values or () for part in v.split(",") if part.strip()]


def _names(param: str, given: list[str], valid: Sequence[str], what: str) -> tuple[str, ...]:
    unknown = [v for v in given if v not in valid]
    if unknown:
        raise _refuse(param, unknown, f"unknown {what} {', '.join(map(repr, unknown))}; "
                                      f"allowed: {', '.join(valid)}")
    twice = sorted({v for v in given if given.count(v) > 1})
    if twice:
        raise _refuse(param, twice, f"{', '.join(map(repr, twice))} given more than once")
    return tuple(given)


def _grain(freq: str | None) -> str | None:
    if freq is None:
        return None
    if freq not in _GRAIN_ALIASES:
        allowed = ", ".join(f"{g} ({a})" for g, a in TIME_GRAINS.items())
        raise _refuse("freq", freq, f"unknown time grain {freq!r}; allowed: {allowed}")
    return _GRAIN_ALIASES[freq]


def _cutoff(now: Served, as_of: datetime | None) -> pd.Timestamp:
    """The request's cut-off, inside the data's span (first signup to last event)."""
    stamp = now.cutoff(as_of)
    first = now.data.customers["signup_at"].min()
    last = now.data.observation_end
    if not first <= stamp <= last:
        raise _refuse("as_of", str(as_of), f"as_of {stamp} is outside the data's span: allowed "
                                           f"from the first signup ({first}) to the last event "
                                           f"({last})")
    return stamp


def _window(data: MarketplaceData, cut: pd.Timestamp, start: datetime | None,
            end: datetime | None) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """``[start, end)`` as naive UTC; ``start`` defaults to the first signup or barber join
    known at ``cut`` (:func:`~barberpro_ml.analytics.kpis`' own default)."""
    lo = to_as_of(start, "start", to_utc=True) if start is not None else None
    hi = to_as_of(end, "end", to_utc=True) if end is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise _refuse("start", str(start), f"start ({lo}) is after end ({hi}); the window is "
                                           "[start, end)")
    if lo is not None and lo > cut:
        raise _refuse("start", str(start), f"start ({lo}) is after as_of ({cut}): nothing in "
                                           "the window is known yet")
    if lo is None:
        signups = data.customers["signup_at"]
        joins = data.providers["joined_at"]
        lo = min(t for t in (signups[signups <= cut].min(), joins[joins <= cut].min())
                 if not pd.isna(t))
    return lo, hi


def _check_splits(measures: Sequence[str], by: Sequence[str]) -> None:
    for name in measures:
        measure = MEASURES[name]
        for dim in by:
            if DIMENSIONS[dim].level not in measure.levels:
                reach = [d for d in _SPLITTING if DIMENSIONS[d].level in measure.levels]
                raise _refuse("by", dim, f"measure {name!r} cannot be split by {dim!r}: its "
                                         f"events carry no {DIMENSIONS[dim].level}; allowed "
                                         f"for it: {', '.join(reach)}")


# --------------------------------------------------------------------------- conversions
def _number(value: Any) -> Number:
    """A JSON-safe number: numpy scalars to Python, NaN and infinities to None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _float(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else float(number)


def _label(value: Any) -> GroupValue:
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, int | np.integer):
        return int(value)
    return str(value)


def _interval(low: Any, high: Any) -> Interval:
    return Interval(low=_float(low), high=_float(high))


def _definition(measure: Measure) -> MeasureDefinition:
    if measure.name == "average_rating":
        interval: str | None = "Student-t interval of the mean rating (from rating_squares)"
    elif measure.name in _WILSON_RATES:
        interval = (f"Wilson score interval of {measure.numerator} / {measure.denominator}, "
                    "each unit an independent trial")
    else:
        interval = None
    return MeasureDefinition(name=measure.name, kind=measure.kind, unit=measure.unit,
                             formula=measure.formula, attributed_to=measure.timestamp,
                             description=measure.description,
                             splits_by=["time", *sorted(measure.levels)], interval=interval)


def _dimension(name: str) -> DimensionDefinition:
    d = DIMENSIONS[name]
    return DimensionDefinition(name=d.name, level=d.level, source=d.source,
                               description=d.description)


# --------------------------------------------------------------------------- routes
router = APIRouter(prefix="/api/analytics", tags=["analytics"])

@router.get("/business-kpis", response_model=BusinessKpis)
def business_kpis(
        now: Now, as_of: AsOf = None,
        measures: Annotated[list[str] | None, Query(
            description="Catalogue measures, repeated or comma-separated; default: "
                        + ", ".join(DEFAULT_MEASURES) + ".")] = None,
        by: Annotated[list[str] | None, Query(
            description="Dimensions, repeated or comma-separated: "
                        + ", ".join(_SPLITTING) + " (time: use freq).")] = None,
        start: Annotated[datetime | None, Query(
            description="Window start (inclusive); default: the first signup or barber "
                        "join.")] = None,
        end: Annotated[datetime | None, Query(
            description="Window end (exclusive); default: through as_of.")] = None,
        freq: Annotated[str | None, Query(
            description="Time grain: day, week or month (D, W, M); default: none, one row "
                        "per group over the whole window.")] = None) -> BusinessKpis:
    """Catalogue measures by any dimensions and a time grain, from the events known at
    ``as_of``: one row per group, each measure's definition, and the interval of the measures
    that have one (``average_rating``: Student-t; rates of counted units: Wilson). The
    numbers are those of ``barberpro_ml.analytics.kpis`` on the served data."""
    wanted = _names("measures", _split(measures) or list(DEFAULT_MEASURES), list(MEASURES),
                    "measure")
    given_by = _split(by)
    for dim in given_by:
        if dim in DIMENSIONS and DIMENSIONS[dim].level == "time":
            raise _refuse("by", dim, f"{dim!r} is a time grain: give it as freq={dim}; "
                                     f"allowed in by: {', '.join(_SPLITTING)}")
    dims = _names("by", given_by, _SPLITTING, "dimension")
    grain = _grain(freq)
    _check_splits(wanted, dims)
    cut = _cutoff(now, as_of)
    lo, hi = _window(now.data, cut, start, end)
    definitions = now.scorer.definitions
    table = kpis(now.data, wanted, by=dims, start=lo, end=hi, freq=grain, as_of=cut,
                 with_components=True, definitions=definitions, confidence=CONFIDENCE)
    keys = [*([grain] if grain else []), *dims]
    components = [c for c in table.columns
                  if c not in keys and c not in wanted and not c.endswith(("_ci_low", "_ci_high"))]
    rows: list[KpiRow] = []
    for record in table.to_dict("records"):
        intervals: dict[str, Interval] = {}
        for name in wanted:
            if name == "average_rating":
                intervals[name] = _interval(record["average_rating_ci_low"],
                                            record["average_rating_ci_high"])
            elif name in _WILSON_RATES:
                m = MEASURES[name]
                low, high = wilson_interval(record[m.numerator], record[m.denominator],
                                            CONFIDENCE)
                intervals[name] = _interval(low, high)
        rows.append(KpiRow(group={k: _label(record[k]) for k in keys},
                           values={name: _number(record[name]) for name in wanted},
                           intervals=intervals,
                           components={c: _number(record[c]) for c in components}))
    used = [*wanted, *(c for c in components if c in MEASURES)]
    return BusinessKpis(
        as_of=cut.to_pydatetime(), start=lo.to_pydatetime(),
        end=None if hi is None else hi.to_pydatetime(), freq=grain, by=list(dims),
        measures=list(wanted), confidence=CONFIDENCE, rows=rows,
        definitions={name: _definition(MEASURES[name]) for name in used},
        dimensions={d: _dimension(d) for d in ([grain] if grain else []) + list(dims)},
        business_definitions=definitions)


def _stages(frame: pd.DataFrame) -> list[FunnelStage]:
    return [FunnelStage(stage=str(r["stage"]), customers=int(r["customers"]),
                        base=int(r["base"]), conversion=_float(r["conversion"]),
                        conversion_ci=_interval(r["conversion_ci_low"], r["conversion_ci_high"]),
                        not_yet_judged=int(r["not_yet_judged"]))
            for r in frame.to_dict("records")]


@router.get("/growth-analytics", response_model=GrowthAnalytics)
def growth_analytics(now: Now, as_of: AsOf = None) -> GrowthAnalytics:
    """The acquisition funnel (signed up, first booking, first visit, second visit, retained)
    for all customers and by acquisition channel, with Wilson intervals of each conversion,
    and the monthly signup cohorts: retention and net revenue per customer by months since
    signup (a cell once its month has ended by ``as_of``)."""
    cut = _cutoff(now, as_of)
    definitions = now.scorer.definitions
    total = funnel(now.data, cut, by=None, definitions=definitions, confidence=CONFIDENCE)
    by_channel = funnel(now.data, cut, by="acquisition_channel", definitions=definitions,
                        confidence=CONFIDENCE)
    channels = [ChannelFunnel(acquisition_channel=str(channel), stages=_stages(group))
                for channel, group in by_channel.groupby("acquisition_channel", observed=True,
                                                         sort=False)]
    retention = cohorts(now.data, cut, metric="retention", freq="month",
                        confidence=CONFIDENCE)
    revenue = cohorts(now.data, cut, metric="revenue_per_customer", freq="month")
    cells = retention.merge(revenue, on=["cohort", "periods_since_signup", "customers"],
                            how="inner", validate="one_to_one")
    return GrowthAnalytics(
        as_of=cut.to_pydatetime(), confidence=CONFIDENCE, funnel=_stages(total),
        funnel_by_channel=channels,
        cohorts=[CohortCell(cohort=r["cohort"].to_pydatetime(),
                            months_since_signup=int(r["periods_since_signup"]),
                            customers=int(r["customers"]),
                            visiting_customers=int(r["visiting_customers"]),
                            retention=_float(r["retention"]),
                            retention_ci=_interval(r["retention_ci_low"],
                                                   r["retention_ci_high"]),
                            net_revenue=float(r["net_revenue"]),
                            revenue_per_customer=_float(r["revenue_per_customer"]))
                 for r in cells.to_dict("records")],
        definitions=GrowthDefinitions(
            stages={s: FUNNEL_STAGE_DEFINITIONS[s] for s in FUNNEL_STAGES},
            cohorts=dict(COHORT_METRIC_DEFINITIONS),
            retention_horizon_days=definitions.churn_horizon_days),
        business_definitions=definitions)


_POSITION_MEASURES: Final = ("bookings", "completed_visits", "net_revenue", "average_ticket")
_GROWTH_MEASURES: Final = ("bookings", "net_revenue")


def _growth_periods(grain: str, reference: pd.Timestamp
                    ) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """(previous start, last start, last end) of the last complete period before
    ``reference`` (exclusive) and the one before it."""
    current = reference.to_period(_PERIOD_CODES[grain])
    return ((current - 2).start_time.as_unit("ns"), (current - 1).start_time.as_unit("ns"),
            current.start_time.as_unit("ns"))


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _growth(last: float, previous: float) -> float | None:
    return last / previous - 1.0 if previous else None


_ZEROS: Final = {"bookings": 0, "completed_visits": 0, "net_revenue": 0.0}


def _by_segment(frame: pd.DataFrame, segments: list[str]) -> dict[Any, dict[Any, Any]]:
    """Rows by segment, every segment present (0 events where ``kpis`` had no row; a ratio
    stays NaN there)."""
    rows: dict[Any, dict[Any, Any]] = (frame.set_index("segment").reindex(segments)
                                       .fillna(_ZEROS).to_dict("index"))
    return rows


def _positions(now: Served, dim: str | None, cut: pd.Timestamp, lo: pd.Timestamp,
               hi: pd.Timestamp | None,
               periods: tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp] | None,
               grain: str, market: MarketPosition | None) -> list[MarketPosition]:
    """Positions of every value of ``dim`` in the window, against ``market`` (the
    marketplace's own position; None: compute that one, ``dim`` None), from ``kpis``."""
    definitions = now.scorer.definitions
    dims = () if dim is None else (dim,)
    table = kpis(now.data, _POSITION_MEASURES, by=dims, start=lo, end=hi, as_of=cut,
                 definitions=definitions)
    values: list[str]
    if dim is None:
        values = ["all"]
        table = table.assign(segment="all")
    else:
        source_table, column = DIMENSIONS[dim].source.split(".")
        dtype = getattr(now.data, source_table)[column].dtype
        values = [str(v) for v in dtype.categories]
        table = table.assign(segment=table[dim].astype(str))
    rows = _by_segment(table, values)
    last: dict[Any, dict[Any, Any]] = {}
    previous: dict[Any, dict[Any, Any]] = {}
    if periods is not None:
        previous_start, last_start, last_end = periods
        growth = kpis(now.data, _GROWTH_MEASURES, by=dims, start=previous_start, end=last_end,
                      freq=grain, as_of=cut, definitions=definitions)
        growth = growth.assign(segment="all" if dim is None else growth[dim].astype(str))
        last = _by_segment(growth[growth[grain] == last_start], values)
        previous = _by_segment(growth[growth[grain] == previous_start], values)
    out = []
    for segment in values:
        row = rows[segment]
        bookings, visits = int(row["bookings"]), int(row["completed_visits"])
        revenue = float(row["net_revenue"])
        ticket = _float(row["average_ticket"])
        fields: dict[str, Any] = dict.fromkeys((
            "last_period_bookings", "previous_period_bookings", "bookings_growth",
            "last_period_net_revenue", "previous_period_net_revenue", "net_revenue_growth"))
        if periods is not None:
            lb, pb = int(last[segment]["bookings"]), int(previous[segment]["bookings"])
            lr = float(last[segment]["net_revenue"])
            pr = float(previous[segment]["net_revenue"])
            fields = {"last_period_bookings": lb, "previous_period_bookings": pb,
                      "bookings_growth": _growth(lb, pb), "last_period_net_revenue": lr,
                      "previous_period_net_revenue": pr,
                      "net_revenue_growth": _growth(lr, pr)}
        if market is None:  # the marketplace itself
            share_b = 1.0 if bookings else None
            share_r = 1.0 if revenue else None
            position = 1.0 if ticket is not None else None
        else:
            share_b = _ratio(bookings, market.bookings)
            share_r = _ratio(revenue, market.net_revenue)
            position = (None if ticket is None or market.average_ticket is None
                        else _ratio(ticket, market.average_ticket))
        out.append(MarketPosition(segment=segment, bookings=bookings, completed_visits=visits,
                                  net_revenue=revenue, average_ticket=ticket,
                                  share_of_bookings=share_b, share_of_net_revenue=share_r,
                                  price_position=position, **fields))
    return out


@router.get("/competitive-intelligence", response_model=CompetitiveIntelligence)
def competitive_intelligence(
        now: Now, as_of: AsOf = None,
        start: Annotated[datetime | None, Query(
            description="Window start (inclusive) of the shares and price positions; "
                        "default: the first signup or barber join.")] = None,
        end: Annotated[datetime | None, Query(
            description="Window end (exclusive); default: through as_of.")] = None,
        freq: Annotated[str, Query(
            description="Grain of the growth comparison: day, week or month (D, W, M).")]
        = "month") -> CompetitiveIntelligence:
    """Each neighborhood (of the barbers' shops) and each barber price tier within this
    marketplace: share of bookings and of net revenue, price position (its average ticket
    over the marketplace's) and growth (the last complete ``freq`` period before the window's
    end vs the one before). Computed with ``kpis`` from the marketplace's own events, so the
    numbers reconcile with ``/business-kpis`` and the shares of each partition sum to 1; not
    a comparison with external competitors."""
    grain = _grain(freq)
    assert grain is not None
    cut = _cutoff(now, as_of)
    lo, hi = _window(now.data, cut, start, end)
    after = cut + pd.Timedelta(1, "ns")  # the window ends just after as_of at the latest
    reference = after if hi is None else min(hi, after)
    periods: tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp] | None = (
        _growth_periods(grain, reference))
    notes: list[str] = []
    first = now.data.customers["signup_at"].min()
    if periods is not None and periods[0] < first:
        notes.append(f"growth not computed: the {grain} before the last complete one (before "
                     f"{reference}) starts at {periods[0]}, before the data's first signup "
                     f"({first})")
        periods = None
    market = _positions(now, None, cut, lo, hi, periods, grain, None)[0]
    if not market.bookings:
        notes.append("no bookings in the window: the shares are null")
    neighborhoods = _positions(now, "neighborhood", cut, lo, hi, periods, grain, market)
    tiers = _positions(now, "price_tier", cut, lo, hi, periods, grain, market)
    derived = {
        "share_of_bookings": "the segment's bookings / the marketplace's, in the window",
        "share_of_net_revenue": "the segment's net_revenue / the marketplace's, in the window",
        "price_position": "the segment's average_ticket / the marketplace's (1 = at the "
                          "market, 1.2 = 20% dearer per visit)",
        "bookings_growth": f"bookings in the last complete {grain} / in the {grain} before "
                           "- 1 (null when the one before had none)",
        "net_revenue_growth": f"net_revenue in the last complete {grain} / in the {grain} "
                              "before - 1",
    }
    return CompetitiveIntelligence(
        scope=COMPETITIVE_SCOPE, as_of=cut.to_pydatetime(), start=lo.to_pydatetime(),
        end=None if hi is None else hi.to_pydatetime(),
        growth_periods=None if periods is None else GrowthPeriods(
            freq=grain, previous_period_start=periods[0].to_pydatetime(),
            last_period_start=periods[1].to_pydatetime(),
            last_period_end=periods[2].to_pydatetime()),
        marketplace=market, neighborhoods=neighborhoods, price_tiers=tiers, notes=notes,
        definitions=CompetitiveDefinitions(
            measures={m: _definition(MEASURES[m]) for m in _POSITION_MEASURES},
            dimensions={d: _dimension(d) for d in ("neighborhood", "price_tier", grain)},
            derived=derived),
        business_definitions=now.scorer.definitions)


# --------------------------------------------------------------------------- forecasts
class ForecastPoint(BaseModel):
    """One forecast week."""

    week: datetime = Field(description="Monday starting the forecast week.")
    horizon: int = Field(description="Weeks ahead of the forecast's origin (1 = next week).")
    mean: float
    lower: float = Field(description="Lower end of the central prediction interval.")
    upper: float = Field(description="Upper end of the central prediction interval.")


class ObservedWeek(BaseModel):
    """One realised week of the forecast series, from the served event data."""

    week: datetime
    value: float


class CoverageEvidence(BaseModel):
    """How often the intervals held on the backtest, as the champion's bound gate judged."""

    claim_id: str
    claimed: float
    observed: float | None = Field(description="Share of backtest forecasts inside their "
                                               "interval.")
    ci_low: float | None
    ci_high: float | None
    confidence: float | None
    verdict: str
    reason: str
    forecasts_evaluated: int = Field(description="Backtest forecasts (origins x horizons x "
                                                 "series) the coverage is over.")


class FinancialIntelligence(BaseModel):
    """``GET /api/analytics/financial-intelligence``."""

    model_name: str
    version: str
    verified: bool = Field(description="Always true: an unverified champion is not served.")
    measure: str
    neighborhood: str = Field(description=f"A neighborhood, or {TOTAL!r} for the marketplace.")
    level: float = Field(description="Nominal level of the prediction intervals.")
    first_week: datetime = Field(description="The first forecast week (its origin).")
    chosen: dict[str, str] = Field(description="The candidate and reconciliation the backtest "
                                               "chose for this measure.")
    forecast: list[ForecastPoint]
    history: list[ObservedWeek] = Field(description="Realised weeks before the forecast, from "
                                                    "the served data.")
    coverage: CoverageEvidence | None
    as_of: datetime = Field(description="Cut-off of the history (the served data's).")
    definitions: dict[str, str]
    notes: list[str]


@router.get("/financial-intelligence", response_model=FinancialIntelligence,
            responses={503: {"description": "No verified forecast champion to serve."}})
def financial_intelligence(
        request: Request, now: Now,
        measure: Annotated[str, Query(description="net_revenue or bookings (what the champion "
                                                  "forecasts).")] = "net_revenue",
        neighborhood: Annotated[str, Query(description=f"A neighborhood, or {TOTAL!r} for "
                                                       "the marketplace total.")] = TOTAL,
        history_weeks: Annotated[int, Query(ge=0, le=260, description="Realised weeks to "
                                                                      "include.")] = 26,
) -> FinancialIntelligence:
    """The verified forecast champion's weekly forecast of one series with its prediction
    intervals, the coverage its gate measured on the rolling-origin backtest (the seed's "89%
    confidence intervals" claim, judged), and the realised weeks before it. 503 when no
    verified forecast champion exists."""
    evidence: RegisteredEvidence = request.app.state.evidence
    served = evidence.forecast()
    spec = served.model.spec
    table = served.model.forecast
    assert spec is not None and table is not None
    if measure not in spec.measures:
        raise _refuse("measure", measure, f"unknown measure {measure!r}; the forecast covers: "
                                          f"{', '.join(spec.measures)}")
    if neighborhood not in spec.neighborhoods:
        raise _refuse("neighborhood", neighborhood,
                      f"unknown neighborhood {neighborhood!r}; allowed: "
                      f"{', '.join(spec.neighborhoods)}")
    rows = table[(table["measure"] == measure) & (table["neighborhood"] == neighborhood)]
    rows = rows.sort_values("horizon")
    first_week = pd.Timestamp(rows["week"].min())
    cut = now.cutoff(None)
    notes: list[str] = []
    history: list[ObservedWeek] = []
    if history_weeks:
        try:
            observed = weekly_series(now.data, min(cut, first_week), measures=[measure])
        except BarberproError as exc:
            notes.append(f"no realised weeks: {exc}")
        else:
            mine = observed[(observed["neighborhood"] == neighborhood)
                            & (observed["week"] < first_week)].tail(history_weeks)
            history = [ObservedWeek(week=w.to_pydatetime(), value=float(v))
                       for w, v in zip(mine["week"], mine["y"], strict=True)]
    if cut + pd.Timedelta(days=7) < first_week:
        notes.append(f"the served data end at {cut}, before the forecast's first week "
                     f"{first_week:%Y-%m-%d}: the forecast was made on later data")
    verdict = next((v for v in served.verdicts if v.metric == "coverage"), None)
    coverage = None if verdict is None else CoverageEvidence(
        claim_id=verdict.claim_id, claimed=verdict.claimed, observed=verdict.observed,
        ci_low=verdict.ci_low, ci_high=verdict.ci_high, confidence=verdict.confidence,
        verdict=verdict.verdict, reason=verdict.reason,
        forecasts_evaluated=spec.backtest_forecasts)
    if coverage is None:
        notes.append("the champion's gate result has no coverage verdict")
    chosen = spec.chosen.get(measure, {})
    return FinancialIntelligence(
        model_name=evidence.forecast_model, version=served.version, verified=True,
        measure=measure, neighborhood=neighborhood, level=spec.level,
        first_week=first_week.to_pydatetime(), chosen=dict(chosen),
        forecast=[ForecastPoint(week=pd.Timestamp(w).to_pydatetime(), horizon=int(h),
                                mean=float(m), lower=float(lo), upper=float(hi))
                  for w, h, m, lo, hi in zip(
                      rows["week"], rows["horizon"].to_numpy(dtype=np.int64),
                      rows["mean"].to_numpy(dtype=np.float64),
                      rows["lower"].to_numpy(dtype=np.float64),
                      rows["upper"].to_numpy(dtype=np.float64), strict=True)],
        history=history, coverage=coverage, as_of=cut.to_pydatetime(),
        definitions={
            "measure": _definition(MEASURES[measure]).formula,
            "interval": f"central {spec.level:.0%} conformal prediction interval: the "
                        "forecast plus or minus the rank ceil((n + 1) x level) absolute "
                        "scaled error of the backtest at that horizon",
            "coverage": "share of backtest forecasts (rolling origins, every horizon and "
                        "series) whose realised value fell inside its interval; its CI is a "
                        "circular block bootstrap over origins",
            "week": "Monday to Sunday, UTC; a week counts once it has ended"},
        notes=notes)


# --------------------------------------------------------------------------- revenue
class RevenueClaim(BaseModel):
    """One ``pricing`` claim of the claims file and the evidence on it."""

    claim_id: str
    metric: str
    claimed: float
    direction: str
    blocking: bool
    source: str
    status: Literal["supported", "not supported", "untested"]
    observed: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str


class RevenueOptimization(BaseModel):
    """``GET /api/analytics/revenue-optimization``."""

    as_of: datetime
    evidence_model: str
    evidence_version: str | None
    claims: list[RevenueClaim]
    definitions: dict[str, str]
    notes: list[str]


@functools.lru_cache(maxsize=1)
def _pricing_claims() -> ClaimSet:
    """The shipped pricing claims, read and validated once per process (a file inside the
    installed package; parsing it on every request cost ~12 ms of CPU)."""
    return load_claims(shipped_config("claims.yaml"), family="pricing")


@router.get("/revenue-optimization", response_model=RevenueOptimization)
def revenue_optimization(request: Request, now: Now) -> RevenueOptimization:
    """The revenue-optimisation claims (the seed's "15-25% potential increase" and the team's
    floor), each with the evidence the verified pricing evaluation's gate bound to it, or
    ``untested`` and why. A claim is never shown as supported without that evidence."""
    evidence: RegisteredEvidence = request.app.state.evidence
    claims = _pricing_claims()
    version, verdicts, why = evidence.pricing_verdicts()
    by_id = {v.claim_id: v for v in verdicts}
    out = []
    for claim in claims:
        verdict = by_id.get(claim.id)
        if verdict is None:
            reason = why or (f"the {evidence.pricing_model} v{version} gate result has no "
                             f"verdict for {claim.id}")
            out.append(RevenueClaim(claim_id=claim.id, metric=claim.metric,
                                    claimed=claim.claimed, direction=claim.direction,
                                    blocking=claim.blocking, source=claim.source,
                                    status="untested", reason=reason))
            continue
        out.append(RevenueClaim(
            claim_id=claim.id, metric=claim.metric, claimed=claim.claimed,
            direction=claim.direction, blocking=claim.blocking, source=claim.source,
            status="supported" if verdict.verdict == "pass" else "not supported",
            observed=verdict.observed, ci_low=verdict.ci_low, ci_high=verdict.ci_high,
            reason=verdict.reason))
    return RevenueOptimization(
        as_of=now.cutoff(None).to_pydatetime(), evidence_model=evidence.pricing_model,
        evidence_version=version, claims=out,
        definitions={"revenue_increase": "relative change of net revenue under the "
                                         "recommended prices, from the causal price elasticity "
                                         "with its interval propagated; a claim is supported "
                                         "when the lower bound of its interval reaches the "
                                         "claimed value"},
        notes=[] if why is None else [why])
