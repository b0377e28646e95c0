"""The feature catalogue: name, dtype, window and meaning of every feature we compute.

The catalogue is the contract between the feature builders and the models: it is logged with
every model that uses the features, and the builders check their output against it (names,
order and dtypes), so the two cannot drift apart.

Conventions used in the descriptions
------------------------------------
- *visit*: a booking with status ``completed`` scheduled at or before ``as_of``;
- *booking*: a booking of any status scheduled at or before ``as_of`` (its outcome is known);
- *upcoming booking*: created at or before ``as_of`` but scheduled after it (outcome unknown);
- *spend* / *revenue*: ``price - discount`` of visits; tips go to the barber and are left out;
- a window of ``w`` days is the half-open interval ``(as_of - w days, as_of]``;
- ``*_days`` features are float numbers of 24-hour days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from barberpro_ml.features._common import check_windows

DEFAULT_WINDOWS: tuple[int, ...] = (30, 90, 365)


@dataclass(frozen=True)
class FeatureSpec:
    """One feature.

    Parameters
    ----------
    name
        Column name.
    dtype
        pandas dtype of the column (``float64``, ``int64``, ``int8`` or ``category``).
    description
        One line saying what the value is.
    window
        Look-back window in days, or ``None`` for lifetime / point values.
    nan_when
        When the value is missing because it is undefined ("" if never missing).
    moved_by
        The event table of the marketplace's *own* recorded actions that moves the value
        (``"interventions"``: retention campaigns, their offers and discounts), "" when none
        does. The monitor reads it: when such actions were taken between a model's training
        snapshot and the monitoring date, a drift of the column is explained by them, reported
        but not taken as a change of the market (:func:`barberpro_ml.monitoring.check_model`).
    """

    name: str
    dtype: str
    description: str
    window: int | None = None
    nan_when: str = ""
    moved_by: str = ""


def customer_feature_specs(windows: Sequence[int] = DEFAULT_WINDOWS) -> list[FeatureSpec]:
    """Specs of :func:`barberpro_ml.features.customer_features` columns, in column order."""
    ws = check_windows(windows)
    no_visit = "no visit yet"
    campaigns = "interventions"
    specs = [
        FeatureSpec("tenure_days", "float64", "Days since the customer signed up."),
        FeatureSpec("acquisition_channel", "category",
                    "How the customer found the marketplace (categories: the customers table's)."),
        FeatureSpec("neighborhood", "category",
                    "Customer's home neighborhood (categories: the customers table's)."),
        FeatureSpec("n_visits", "int64", "Completed visits so far (recency-frequency F)."),
        FeatureSpec("n_bookings", "int64", "Bookings of any status scheduled so far."),
        FeatureSpec("days_since_last_visit", "float64",
                    "Days since the most recent visit (recency R).", nan_when=no_visit),
        FeatureSpec("days_since_first_visit", "float64", "Days since the first visit.",
                    nan_when=no_visit),
    ]
    for w in ws:
        specs += [
            FeatureSpec(f"visits_{w}d", "int64", f"Visits in the last {w} days.", window=w),
            FeatureSpec(f"spend_{w}d", "float64",
                        f"Spend (price - discount) on visits in the last {w} days.", window=w),
        ]
    specs += [
        FeatureSpec("spend_total", "float64", "Spend (price - discount) on all visits."),
        FeatureSpec("spend_per_visit", "float64", "Mean spend per visit (monetary value M).",
                    nan_when=no_visit),
        FeatureSpec("gap_mean_days", "float64",
                    "Mean days between consecutive visits.", nan_when="fewer than 2 visits"),
        FeatureSpec("gap_std_days", "float64",
                    "Population standard deviation (ddof=0) of the days between visits.",
                    nan_when="fewer than 2 visits"),
        FeatureSpec("gap_cv", "float64",
                    "Coefficient of variation of the gaps: gap_std_days / gap_mean_days.",
                    nan_when="fewer than 2 visits, or all visits at the same instant"),
        FeatureSpec("days_overdue", "float64",
                    "days_since_last_visit - gap_mean_days: how late the next visit is against "
                    "the customer's own rhythm (negative: not yet due).",
                    nan_when="fewer than 2 visits"),
        FeatureSpec("cancel_rate", "float64", "Share of bookings that were cancelled.",
                    nan_when="no booking yet"),
        FeatureSpec("no_show_rate", "float64", "Share of bookings that were no-shows.",
                    nan_when="no booking yet"),
        FeatureSpec("n_reviews", "int64", "Reviews the customer has written."),
        FeatureSpec("rating_mean", "float64", "Mean rating the customer gave.",
                    nan_when="no review yet"),
        FeatureSpec("rating_last", "float64",
                    "Rating of the customer's most recent review.", nan_when="no review yet"),
        FeatureSpec("rating_trend", "float64",
                    "Last rating minus the mean of the customer's earlier ratings.",
                    nan_when="fewer than 2 reviews"),
        FeatureSpec("main_provider_share", "float64",
                    "Share of visits with the usual barber (most visits; ties: most recent).",
                    nan_when=no_visit),
        FeatureSpec("main_provider_left", "float64",
                    "1.0 if the usual barber has left the platform (left_at <= as_of), else 0.0.",
                    nan_when=no_visit),
        FeatureSpec("main_provider_rating", "float64",
                    "Mean rating of the usual barber over all customers' reviews so far.",
                    nan_when="no visit yet, or the usual barber has no review yet"),
        FeatureSpec("last_price_change", "float64",
                    "Price (before discount) of the last visit minus the mean price the "
                    "customer paid for the same service before: > 0 means a price rise.",
                    nan_when="no earlier visit for the last visit's service"),
        FeatureSpec("discount_share", "float64", "Share of visits with a discount.",
                    nan_when=no_visit, moved_by=campaigns),
        FeatureSpec("discount_total", "float64", "Total discount received on visits.",
                    moved_by=campaigns),
        FeatureSpec("n_services_used", "int64", "Distinct services among the visits."),
        FeatureSpec("main_service", "category",
                    "Most visited service_id (ties: most recent); categories: services table's.",
                    nan_when=no_visit),
        FeatureSpec("main_service_share", "float64", "Share of visits for the main service.",
                    nan_when=no_visit),
        FeatureSpec("n_interventions", "int64",
                    "Retention campaigns the customer was part of (treated or control).",
                    moved_by=campaigns),
        FeatureSpec("n_offers", "int64", "Retention offers actually made (treated = True).",
                    moved_by=campaigns),
        FeatureSpec("days_since_last_intervention", "float64",
                    "Days since the customer last entered a campaign (treated or control).",
                    nan_when="never in a campaign", moved_by=campaigns),
        FeatureSpec("last_intervention_treated", "float64",
                    "1.0 if the customer was treated in their most recent campaign, else 0.0.",
                    nan_when="never in a campaign", moved_by=campaigns),
        FeatureSpec("days_since_last_offer", "float64", "Days since the last offer made.",
                    nan_when="never offered", moved_by=campaigns),
        FeatureSpec("has_upcoming_booking", "int8",
                    "1 if a booking made by as_of is scheduled after as_of."),
        FeatureSpec("days_to_next_booking", "float64",
                    "Days until the earliest upcoming booking.", nan_when="no upcoming booking"),
    ]
    return specs


def provider_feature_specs(windows: Sequence[int] = DEFAULT_WINDOWS) -> list[FeatureSpec]:
    """Specs of :func:`barberpro_ml.features.provider_features` columns, in column order."""
    ws = check_windows(windows)
    specs = [
        FeatureSpec("tenure_days", "float64", "Days since the barber joined."),
        FeatureSpec("has_left", "int8", "1 if the barber left the platform (left_at <= as_of)."),
        FeatureSpec("neighborhood", "category",
                    "Shop neighborhood (categories: the providers table's)."),
        FeatureSpec("price_tier", "category", "budget, standard or premium."),
    ]
    for w in ws:
        specs += [
            FeatureSpec(f"visits_{w}d", "int64", f"Completed visits in the last {w} days.",
                        window=w),
            FeatureSpec(f"revenue_{w}d", "float64",
                        f"Revenue (price - discount) of visits in the last {w} days.", window=w),
        ]
    specs += [
        FeatureSpec("booked_minutes_30d", "float64",
                    "Service minutes of completed and no-show bookings in the last 30 days.",
                    window=30),
        FeatureSpec("utilization_30d", "float64",
                    "booked_minutes_30d / (open_minutes_per_day x days on the platform within "
                    "the last 30 days).", window=30,
                    nan_when="not on the platform at any time in the last 30 days"),
        FeatureSpec("n_reviews", "int64", "Reviews received so far."),
        FeatureSpec("rating_mean", "float64", "Mean rating received.", nan_when="no review yet"),
        FeatureSpec("rating_mean_90d", "float64", "Mean rating of reviews written in the last "
                    "90 days.", window=90, nan_when="no review in the last 90 days"),
        FeatureSpec("cancel_rate_365d", "float64",
                    "Share of bookings scheduled in the last 365 days that were cancelled.",
                    window=365, nan_when="no booking in the last 365 days"),
        FeatureSpec("no_show_rate_365d", "float64",
                    "Share of bookings scheduled in the last 365 days that were no-shows.",
                    window=365, nan_when="no booking in the last 365 days"),
        FeatureSpec("customers_90d", "int64", "Distinct customers visiting in the last 90 days.",
                    window=90),
        FeatureSpec("customer_retention_90d", "float64",
                    "Share of the distinct customers who visited in (as_of-180d, as_of-90d] that "
                    "visited this barber again in (as_of-90d, as_of].", window=90,
                    nan_when="no visit in (as_of-180d, as_of-90d]"),
        FeatureSpec("revenue_trend_90d", "float64",
                    "log(1 + revenue of the last 90 days) - log(1 + revenue of the 90 days "
                    "before).", window=90),
        FeatureSpec("price_index_90d", "float64",
                    "Mean of price / service base_price over visits in the last 90 days.",
                    window=90, nan_when="no visit with a positive base_price in the last 90 days"),
        FeatureSpec("price_index_change_90d", "float64",
                    "price_index_90d minus the same index over the 90 days before.", window=90,
                    nan_when="either index undefined"),
        FeatureSpec("upcoming_bookings", "int64",
                    "Bookings made by as_of and scheduled after it."),
    ]
    return specs


def _frame(specs: list[FeatureSpec]) -> pd.DataFrame:
    return pd.DataFrame({
        "name": pd.array([s.name for s in specs], dtype="str"),
        "dtype": pd.array([s.dtype for s in specs], dtype="str"),
        "window": pd.array([s.window for s in specs], dtype="Int64"),
        "description": pd.array([s.description for s in specs], dtype="str"),
        "nan_when": pd.array([s.nan_when for s in specs], dtype="str"),
        "moved_by": pd.array([s.moved_by for s in specs], dtype="str"),
    })


def feature_catalog(windows: Sequence[int] = DEFAULT_WINDOWS) -> pd.DataFrame:
    """Catalogue of the customer features: one row per column of ``customer_features``.

    Parameters
    ----------
    windows
        The look-back windows given to :func:`customer_features` (they name some columns).

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``dtype``, ``window`` (days, ``<NA>`` for lifetime or point values),
        ``description``, ``nan_when`` (when the value is undefined, "" if never) and
        ``moved_by`` (the table of the marketplace's own actions that moves the value, "" if
        none; see :class:`FeatureSpec`), in the order of the feature columns.

    Examples
    --------
    >>> catalog = feature_catalog()
    >>> int(catalog.loc[catalog["name"] == "visits_90d", "window"].item())
    90
    """
    return _frame(customer_feature_specs(windows))


def provider_feature_catalog(windows: Sequence[int] = DEFAULT_WINDOWS) -> pd.DataFrame:
    """Catalogue of :func:`provider_features` columns (same layout as :func:`feature_catalog`)."""
    return _frame(provider_feature_specs(windows))


def assemble(index: pd.Index, columns: dict[str, object], specs: list[FeatureSpec]
             ) -> pd.DataFrame:
    """Build the feature frame in catalogue order, checking names and dtypes against the specs.

    A mismatch is a bug in a builder: it raises ``RuntimeError`` naming the offending columns
    rather than shipping a frame that disagrees with its catalogue.
    """
    expected = [s.name for s in specs]
    if set(columns) != set(expected):
        raise RuntimeError(f"feature builder and catalogue disagree: missing "
                           f"{sorted(set(expected) - set(columns))}, extra "
                           f"{sorted(set(columns) - set(expected))}")
    frame = pd.DataFrame({name: columns[name] for name in expected}, index=index)
    wrong = [f"{s.name}: {frame[s.name].dtype} != {s.dtype}" for s in specs
             if str(frame[s.name].dtype) != s.dtype]
    if wrong:
        raise RuntimeError(f"feature dtypes disagree with the catalogue: {wrong}")
    return frame
