"""The event-table data contract: columns, canonical dtypes and per-table value checks.

Every table has a stable integer id column and timezone-naive UTC timestamps stored as
``datetime64[ns]``. Low-cardinality text (channel, neighborhood, status, ...) is stored as a
pandas ``category`` whose categories are the sorted distinct values (or a fixed vocabulary,
see :data:`VOCABULARIES`), so a table saved to Parquet and loaded back is identical.

The per-table checks are pandera schemas (:func:`table_schema`); the checks that span tables
(referential integrity, time order) live in :mod:`barberpro_ml.data.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import pandera.pandas as pa

ColumnKind = Literal["id", "timestamp", "money", "count", "rating", "flag", "category", "text"]

TABLES: Final = ("customers", "providers", "services", "bookings", "reviews", "interventions")
"""The six event tables, in dependency order (a table refers only to tables before it)."""

BOOKING_STATUSES: Final = ("completed", "cancelled", "no_show")
PRICE_TIERS: Final = ("budget", "standard", "premium")

VOCABULARIES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("bookings", "status"): BOOKING_STATUSES,
    ("providers", "price_tier"): PRICE_TIERS,
}
"""Closed vocabularies: the categories are fixed, in this order, and other values are refused."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the contract.

    Parameters
    ----------
    name
        Column name.
    kind
        What the column holds; decides the canonical dtype and the basic checks.
    nullable
        Whether missing values are allowed (only ``providers.left_at``).
    unique
        Whether values must be unique (the id column of each table).
    description
        One line for ``data/README.md`` and error messages.
    """

    name: str
    kind: ColumnKind
    description: str
    nullable: bool = False
    unique: bool = False


CANONICAL_DTYPES: Final[dict[ColumnKind, str]] = {
    "id": "int64",
    "timestamp": "datetime64[ns]",
    "money": "float64",
    "count": "int64",
    "rating": "int64",
    "flag": "bool",
    "category": "category",
    "text": "str",
}

CONTRACT: Final[dict[str, tuple[ColumnSpec, ...]]] = {
    "customers": (
        ColumnSpec("customer_id", "id", "Stable customer id.", unique=True),
        ColumnSpec("signup_at", "timestamp", "When the customer created an account (UTC)."),
        ColumnSpec("acquisition_channel", "category", "How the customer found the marketplace."),
        ColumnSpec("neighborhood", "category", "Home neighborhood of the customer."),
    ),
    "providers": (
        ColumnSpec("provider_id", "id", "Stable barber id.", unique=True),
        ColumnSpec("joined_at", "timestamp", "When the barber joined the platform (UTC)."),
        ColumnSpec(
            "left_at", "timestamp", "When the barber left the platform; NaT if still active.",
            nullable=True,
        ),
        ColumnSpec("neighborhood", "category", "Neighborhood of the barber's shop."),
        ColumnSpec("price_tier", "category", "Price tier: budget, standard or premium."),
    ),
    "services": (
        ColumnSpec("service_id", "id", "Stable service id.", unique=True),
        ColumnSpec("name", "text", "Service name (haircut, beard trim, ...)."),
        ColumnSpec("base_price", "money", "Catalogue price before the barber's tier multiplier."),
        ColumnSpec("duration_min", "count", "Scheduled duration in minutes."),
    ),
    "bookings": (
        ColumnSpec("booking_id", "id", "Stable booking id.", unique=True),
        ColumnSpec("customer_id", "id", "Customer who booked (customers.customer_id)."),
        ColumnSpec("provider_id", "id", "Barber booked (providers.provider_id)."),
        ColumnSpec("service_id", "id", "Service booked (services.service_id)."),
        ColumnSpec("created_at", "timestamp", "When the booking was made (UTC)."),
        ColumnSpec("scheduled_at", "timestamp", "Appointment time (UTC), not before created_at."),
        ColumnSpec("status", "category", "completed, cancelled or no_show."),
        ColumnSpec("price", "money", "Price charged before discount (0 if not charged)."),
        ColumnSpec("discount", "money", "Discount granted, at most the price."),
        ColumnSpec("tip", "money", "Tip paid."),
    ),
    "reviews": (
        ColumnSpec("review_id", "id", "Stable review id.", unique=True),
        ColumnSpec("booking_id", "id", "Reviewed booking (a completed one)."),
        ColumnSpec("customer_id", "id", "Reviewer; the booking's customer."),
        ColumnSpec("provider_id", "id", "Reviewed barber; the booking's barber."),
        ColumnSpec("rating", "rating", "Stars, an integer 1..5."),
        ColumnSpec("created_at", "timestamp", "When the review was written, after the visit."),
    ),
    "interventions": (
        ColumnSpec("intervention_id", "id", "Stable intervention id.", unique=True),
        ColumnSpec("customer_id", "id", "Customer in the campaign."),
        ColumnSpec("campaign", "category", "Campaign name; randomisation is within a campaign."),
        ColumnSpec("sent_at", "timestamp", "When the offer was sent (or would have been)."),
        ColumnSpec("treated", "flag", "True if offered, False if in the control group."),
        ColumnSpec("offer", "category", "The offer made; 'none' for the control group."),
    ),
}
"""The columns of every table. Extra columns are allowed and kept as they are."""

KNOWN_AT: Final[dict[str, str | None]] = {
    "customers": "signup_at",
    "providers": "joined_at",
    "services": None,
    "bookings": "created_at",
    "reviews": "created_at",
    "interventions": "sent_at",
}
"""When a row becomes known: the column a cut-off ``as_of`` is compared with (``<= as_of``).

Services have no time (the catalogue is always known). A provider's ``left_at`` and a
booking's ``scheduled_at`` are later facts about a known row: see
:mod:`barberpro_ml.features.customer` and :func:`barberpro_ml.data.sql.read_sql`."""

FOREIGN_KEYS: Final[tuple[tuple[str, str, str], ...]] = (
    ("bookings", "customer_id", "customers"),
    ("bookings", "provider_id", "providers"),
    ("bookings", "service_id", "services"),
    ("reviews", "booking_id", "bookings"),
    ("reviews", "customer_id", "customers"),
    ("reviews", "provider_id", "providers"),
    ("interventions", "customer_id", "customers"),
)
"""``(table, column, referenced table)``: every reference between tables, to the referenced
table's id column. Validation checks them (a review's customer and barber as those of its
booking); the PostgreSQL tables declare them as foreign keys."""


def id_column(table: str) -> str:
    """Name of the id column of ``table`` (its first column)."""
    return CONTRACT[table][0].name


def _column_checks(table: str, spec: ColumnSpec) -> list[pa.Check]:
    # Closed vocabularies are enforced while converting to the canonical categorical dtype
    # (see validation.canonicalize), where checking the few categories is cheap.
    checks: list[pa.Check] = []
    if spec.kind == "money":
        checks.append(pa.Check.ge(0.0, name="non-negative"))
        checks.append(
            pa.Check(lambda s: s.abs() < float("inf"), element_wise=False, name="finite")
        )
    elif spec.kind == "count":
        checks.append(pa.Check.gt(0, name="positive"))
    elif spec.kind == "rating":
        checks.append(pa.Check.in_range(1, 5, name="rating in 1..5"))
    elif spec.kind == "id":
        checks.append(pa.Check.ge(0, name="non-negative id"))
    return checks


def table_schema(table: str) -> pa.DataFrameSchema:
    """The pandera schema for the single-table checks of ``table``.

    Dtypes are checked on the canonical form produced by
    :func:`barberpro_ml.data.validation.canonicalize`; this schema checks presence,
    nullability, uniqueness and value ranges.
    """
    columns = {
        spec.name: pa.Column(
            None,
            checks=_column_checks(table, spec),
            nullable=spec.nullable,
            unique=spec.unique,
            required=True,
            description=spec.description,
        )
        for spec in CONTRACT[table]
    }
    return pa.DataFrameSchema(columns, name=table, strict=False, coerce=False)
