"""The KPI catalogue: every measure and dimension, each defined once.

A :class:`Measure` says what is counted or summed, over which events, attributed to which
timestamp, in which unit, and which dimensions can split it; a ratio names the two catalogue
measures it divides, so it is always computed from summed components, never averaged.
A :class:`Dimension` says which entity carries the attribute (a booking reaches its customer,
its barber and its service; a signup reaches only its customer). The README table is
:func:`catalogue_markdown`'s output (a test checks they agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DIMENSIONS",
    "MEASURES",
    "TIME_GRAINS",
    "Dimension",
    "Measure",
    "catalogue_markdown",
]

MeasureKind = Literal["count", "sum", "distinct", "ratio"]
Level = Literal["time", "customer", "provider", "service"]

_BOOKING_LEVELS: Final = frozenset({"customer", "provider", "service"})


@dataclass(frozen=True)
class Measure:
    """One KPI.

    Parameters
    ----------
    name
        The column name in :func:`~barberpro_ml.analytics.kpis`' result.
    kind
        ``count`` / ``sum`` (additive: a partition's groups sum to the total), ``distinct``
        (customers counted once per group: groups reconcile as sets, not sums), ``ratio``
        (``numerator / denominator`` of summed components).
    unit
        Unit of the values (``money`` is the :class:`~barberpro_ml.definitions.Definitions`
        currency, exact to the cent).
    formula
        How it is computed, in words and symbols.
    timestamp
        Which time places an event in a period (and when it is known at ``as_of``).
    description
        One line for people.
    levels
        The dimension levels that can split it (time always can).
    numerator, denominator
        For ratios: the catalogue measures divided.
    """

    name: str
    kind: MeasureKind
    unit: str
    formula: str
    timestamp: str
    description: str
    levels: frozenset[str] = _BOOKING_LEVELS
    numerator: str | None = None
    denominator: str | None = None

    @property
    def components(self) -> tuple[str, ...]:
        """The measures a ratio is computed from (empty for the others)."""
        return tuple(m for m in (self.numerator, self.denominator) if m is not None)


@dataclass(frozen=True)
class Dimension:
    """One way to split a measure.

    Parameters
    ----------
    name
        The column name in the result (and the name given in ``by``).
    level
        ``time`` (a grain), or the entity carrying the attribute: ``customer``, ``provider``
        (the barber) or ``service``.
    source
        ``table.column`` it is read from.
    description
        One line for people.
    """

    name: str
    level: Level
    source: str
    description: str


_VISIT = "bookings.scheduled_at"
_CREATED = "bookings.created_at"

_MEASURE_LIST: Final[tuple[Measure, ...]] = (
    Measure("bookings", "count", "bookings", "count of bookings, any status", _CREATED,
            "Bookings made in the period."),
    Measure("resolved_bookings", "count", "bookings",
            "count of bookings with status completed, cancelled or no_show", _VISIT,
            "Bookings whose appointment fell in the period (their outcome is known)."),
    Measure("completed_visits", "count", "visits", "count of bookings with status completed",
            _VISIT, "Visits that took place."),
    Measure("cancelled_bookings", "count", "bookings", "count of status cancelled", _VISIT,
            "Appointments in the period that were cancelled."),
    Measure("no_shows", "count", "bookings", "count of status no_show", _VISIT,
            "Appointments in the period the customer missed."),
    Measure("gross_revenue", "sum", "money", "sum of price over completed visits", _VISIT,
            "List value of the visits, before discounts."),
    Measure("discounts", "sum", "money", "sum of discount over completed visits", _VISIT,
            "Discounts granted on the visits."),
    Measure("net_revenue", "sum", "money",
            "sum of (price - discount) over completed visits = gross_revenue - discounts",
            _VISIT, "Revenue as Definitions.revenue (price_minus_discount); tips excluded."),
    Measure("tips", "sum", "money", "sum of tip over completed visits", _VISIT,
            "Tips paid; they go to the barber and are not revenue."),
    Measure("average_ticket", "ratio", "money per visit",
            "net_revenue / completed_visits", _VISIT,
            "Net revenue per completed visit.", numerator="net_revenue",
            denominator="completed_visits"),
    Measure("cancellation_rate", "ratio", "share", "cancelled_bookings / resolved_bookings",
            _VISIT, "Share of appointments cancelled.", numerator="cancelled_bookings",
            denominator="resolved_bookings"),
    Measure("no_show_rate", "ratio", "share", "no_shows / resolved_bookings", _VISIT,
            "Share of appointments missed.", numerator="no_shows",
            denominator="resolved_bookings"),
    Measure("signups", "count", "customers", "count of customers", "customers.signup_at",
            "Customers who created an account.", levels=frozenset({"customer"})),
    Measure("visiting_customers", "distinct", "customers",
            "distinct customers with a completed visit in the period", _VISIT,
            "Customers who visited (= new_customers + returning_customers)."),
    Measure("new_customers", "distinct", "customers",
            "visiting customers whose first completed visit ever is in the period", _VISIT,
            "Customers whose first visit fell in the period."),
    Measure("returning_customers", "distinct", "customers",
            "visiting customers with a completed visit before the period", _VISIT,
            "Visitors who had visited before the period."),
    Measure("reactivated_customers", "distinct", "customers",
            "returning customers not active at the period start (no completed visit in the "
            "active_window_days before it)", _VISIT,
            "Former customers who came back after a lapse longer than the active window."),
    Measure("active_customers", "distinct", "customers",
            "customers with a completed visit in (E - active_window_days, E], E = the "
            "period's last instant (or as_of)", "the end of the period",
            "Customers active at the period end (Definitions.active_window_days)."),
    Measure("retention_base", "distinct", "customers",
            "customers active at the period start: a completed visit in "
            "[S - active_window_days, S), S = the period start", "the start of the period",
            "Customers active when the period began."),
    Measure("retained_customers", "distinct", "customers",
            "retention_base customers with a completed visit in the period", _VISIT,
            "Active customers at the period start who visited again during it."),
    Measure("retention", "ratio", "share", "retained_customers / retention_base",
            "the period (start and visits)",
            "Share of customers active at the period start who came back in the period.",
            numerator="retained_customers", denominator="retention_base"),
    Measure("occupied_minutes", "sum", "minutes",
            "sum of services.duration_min over completed and no-show bookings", _VISIT,
            "Appointment time taken (a no-show holds the chair too).",
            levels=frozenset({"provider"})),
    Measure("open_minutes", "sum", "minutes",
            "open_minutes_per_day x days each barber was on the platform (joined_at to "
            "left_at) within the period", "the barber's days on the platform",
            "Bookable time (an assumed 8-hour day, features.provider's default).",
            levels=frozenset({"provider"})),
    Measure("provider_utilisation", "ratio", "share", "occupied_minutes / open_minutes",
            _VISIT, "Share of the barbers' open time that was booked.",
            levels=frozenset({"provider"}), numerator="occupied_minutes",
            denominator="open_minutes"),
    Measure("reviews", "count", "reviews", "count of reviews", "reviews.created_at",
            "Reviews written."),
    Measure("rating_points", "sum", "stars", "sum of rating", "reviews.created_at",
            "Stars given (the numerator of average_rating)."),
    Measure("rating_squares", "sum", "stars^2", "sum of rating^2", "reviews.created_at",
            "Squared stars (for the confidence interval of average_rating)."),
    Measure("average_rating", "ratio", "stars", "rating_points / reviews, with a Student-t "
            "interval from rating_squares", "reviews.created_at",
            "Mean rating of the reviews written in the period, with its CI.",
            numerator="rating_points", denominator="reviews"),
)

MEASURES: Final[dict[str, Measure]] = {m.name: m for m in _MEASURE_LIST}
"""Every measure by name, in catalogue order."""

TIME_GRAINS: Final[dict[str, str]] = {
    "day": "D", "week": "W", "month": "M",
}
"""Time grains and their one-letter aliases (``freq="M"`` is ``freq="month"``)."""

_DIMENSION_LIST: Final[tuple[Dimension, ...]] = (
    Dimension("day", "time", "the measure's timestamp", "Calendar day (UTC)."),
    Dimension("week", "time", "the measure's timestamp", "ISO week, starting on Monday."),
    Dimension("month", "time", "the measure's timestamp", "Calendar month."),
    Dimension("neighborhood", "provider", "providers.neighborhood",
              "Neighborhood of the barber's shop, where the visit happens."),
    Dimension("price_tier", "provider", "providers.price_tier",
              "The barber's price tier (budget, standard, premium)."),
    Dimension("provider_id", "provider", "providers.provider_id", "The barber."),
    Dimension("service_id", "service", "services.service_id", "The service booked."),
    Dimension("acquisition_channel", "customer", "customers.acquisition_channel",
              "How the customer found the marketplace."),
    Dimension("customer_neighborhood", "customer", "customers.neighborhood",
              "The customer's home neighborhood."),
)

DIMENSIONS: Final[dict[str, Dimension]] = {d.name: d for d in _DIMENSION_LIST}
"""Every dimension by name, in catalogue order."""


def _check_catalogue() -> None:
    for m in MEASURES.values():
        for part in m.components:
            assert part in MEASURES and MEASURES[part].kind != "ratio", (m.name, part)
        assert (m.kind == "ratio") == bool(m.components), m.name
        if m.kind == "ratio":
            shared = frozenset.intersection(*(MEASURES[part].levels for part in m.components))
            assert m.levels == shared, m.name


_check_catalogue()


def catalogue_markdown() -> str:
    """The catalogue as two Markdown tables (measures, then dimensions), as in the README."""
    lines = ["| measure | kind | unit | formula | attributed to | split by | description |",
             "|---|---|---|---|---|---|---|"]
    for m in MEASURES.values():
        levels = ", ".join(sorted(m.levels))
        lines.append(f"| `{m.name}` | {m.kind} | {m.unit} | {m.formula} | {m.timestamp} | "
                     f"time, {levels} | {m.description} |")
    lines += ["", "| dimension | level | from | description |", "|---|---|---|---|"]
    for d in DIMENSIONS.values():
        lines.append(f"| `{d.name}` | {d.level} | {d.source} | {d.description} |")
    return "\n".join(lines) + "\n"
