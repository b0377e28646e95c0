"""What the data say about every customer at one ``as_of``, computed once and reused.

A :class:`CustomerSnapshot` holds the point-in-time features (built by the same
:func:`~barberpro_ml.features.customer_features` as training), lifecycle stages, the RFM
summary the BG/NBD model reads, next-service suggestions, the barbers still working, and the
offer effect measured on the randomised campaigns closed by ``as_of``. Everything in it is a
vectorised pass over the event tables (tens of milliseconds for 20,000 customers, seconds for a
million); profiles and scores then only slice it and run the models on the requested rows.
This is what lets one profile come back in milliseconds without precomputing any *model* output:
the models always run on the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.definitions import DEFAULT_DEFINITIONS, Definitions
from barberpro_ml.errors import InputError, NotEnoughDataError, NotFoundError
from barberpro_ml.evaluation.uplift import POOLED, OfferEffect, campaign_effects
from barberpro_ml.features import (
    customer_features,
    customer_rfm,
    provider_review_totals,
    rfm_features,
)
from barberpro_ml.features._common import to_as_of
from barberpro_ml.features.blocks import customer_blocks
from barberpro_ml.features.lifecycle import lifecycle_stages, population_median_gap
from barberpro_ml.models.recs.marketplace import (
    NextServicePrior,
    booking_interactions,
    customer_neighborhoods,
    next_service_prior,
    next_service_recommendations,
)

__all__ = ["N_SERVICES", "CustomerSnapshot", "PopulationInputs", "UnknownCustomerError",
           "build_snapshot", "customer_blocks", "population_inputs", "working_providers"]

N_SERVICES = 3
"""Next-service suggestions kept per customer."""


class UnknownCustomerError(NotFoundError, KeyError):
    """Customer ids that do not exist (or had not signed up) at ``as_of``."""

    def __init__(self, missing: list[int], as_of: pd.Timestamp) -> None:
        self.missing = missing
        self.as_of = as_of
        shown = ", ".join(str(i) for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        super().__init__(f"{len(missing)} unknown customer id(s) at {as_of:%Y-%m-%d %H:%M:%S}: "
                         f"{shown}{more} (not in the customers table, or signed up later)")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class CustomerSnapshot:
    """Data-derived inputs of the scorer for every customer signed up by ``as_of``.

    Attributes
    ----------
    as_of
        The cut-off.
    features
        :func:`customer_features` (index ``customer_id``, ascending).
    lifecycle
        :func:`lifecycle_stages`, same index.
    rfm
        BG/NBD inputs (``frequency``, ``recency``, ``T`` in weeks, same-day visits counted
        once) of the customers with a completed visit.
    next_service
        Top next-service suggestion per customer (index): ``service_id, name, score``.
    next_services
        The top ``N_SERVICES`` per customer: ``customer_id, service_id, name, score, rank``.
    active_providers
        Barbers who have joined and not left at ``as_of``.
    neighborhoods
        Each customer's neighborhood (the recommender's cold-start group).
    offer_effect
        Pooled effect of the campaigns whose outcome windows closed by ``as_of`` (None when
        none has), with its notes.
    offer_effect_note
        Why there is no usable effect, when there is none.
    population_gap_days
        The typical customer's usual gap between visits at ``as_of`` (the lifecycle rules'
        prior, :func:`~barberpro_ml.features.lifecycle.population_median_gap`).
    aligned
        The per-customer values the scorer reads, as NumPy arrays in the row order of
        ``features`` (lifecycle, RFM, next service, neighborhood, spend per visit): a request
        takes its rows by position instead of re-aligning frames.
    definitions
        The business definitions the snapshot was built with (activity window, new-customer
        period, churn horizon of the campaign effect).
    first_visit
        The first completed visit known at ``as_of`` (None: no activity yet).
    """

    as_of: pd.Timestamp
    features: pd.DataFrame
    lifecycle: pd.DataFrame
    rfm: pd.DataFrame
    next_service: pd.DataFrame
    next_services: pd.DataFrame
    active_providers: pd.Index
    neighborhoods: pd.Series
    offer_effect: OfferEffect | None
    offer_effect_note: str
    population_gap_days: float
    aligned: dict[str, np.ndarray]
    definitions: Definitions = DEFAULT_DEFINITIONS
    first_visit: pd.Timestamp | None = None

    @property
    def customer_ids(self) -> pd.Index:
        return self.features.index

    @cached_property
    def active(self) -> np.ndarray:
        """Whether each customer (row order of ``features``) is *active* at ``as_of``.

        Active: a completed visit in ``(as_of - active_window_days, as_of]`` of
        :attr:`definitions` -- the churn model's population, the complement of the
        ``churned`` lifecycle stage among customers who visited, and the same rule as
        :func:`barberpro_ml.features.active_customers`. Every "active customers" number of the
        scorer and the service is ``active.sum()`` of a snapshot (:meth:`n_active`), so the
        routes cannot disagree.
        """
        return np.asarray((self.aligned["n_visits"] > 0)
                          & (self.aligned["lifecycle_stage"] != "churned"), dtype=bool)

    @property
    def n_active(self) -> int:
        """How many customers are active at ``as_of`` (see :attr:`active`)."""
        return int(self.active.sum())

    def positions(self, customer_ids: object) -> np.ndarray:
        """Row positions of ``customer_ids`` (request order).

        Raises
        ------
        UnknownCustomerError
            Naming the ids that are not customers at ``as_of``.
        TypeError
            For ids that are not integers.
        """
        ids = np.atleast_1d(np.asarray(customer_ids))
        if ids.dtype.kind not in "iu":
            if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.round(ids)):
                ids = ids.astype(np.int64)
            elif ids.size:
                raise TypeError(f"customer ids must be integers, got {ids.dtype} "
                                f"(e.g. {ids[:3].tolist()})")
            else:
                ids = ids.astype(np.int64)
        pos = self.features.index.get_indexer(pd.Index(ids.astype(np.int64)))
        if (pos < 0).any():
            missing = pd.unique(ids[pos < 0]).tolist()
            raise UnknownCustomerError([int(i) for i in missing], self.as_of)
        return np.asarray(pos, dtype=np.int64)


@dataclass(frozen=True)
class PopulationInputs:
    """What a customer's snapshot reads from the whole population at ``as_of``.

    Computed once (:func:`population_inputs`) and handed to :func:`build_snapshot` of every
    block of customers, so that a block's snapshot equals the whole one's rows: the typical
    customer's gap (lifecycle prior), the review totals per barber (``main_provider_rating``),
    the next-service prior, the barbers working, the campaign effect, the first visit.
    """

    as_of: pd.Timestamp
    population_gap_days: float
    review_totals: pd.DataFrame
    next_services: NextServicePrior | None
    active_providers: pd.Index
    offer_effect: OfferEffect | None
    offer_effect_note: str
    first_visit: pd.Timestamp | None


def population_inputs(data: MarketplaceData, as_of: object, *,
                      definitions: Definitions = DEFAULT_DEFINITIONS, n_bootstrap: int = 1000,
                      seed: int = 0) -> PopulationInputs:
    """The :class:`PopulationInputs` of ``data`` (every customer) at ``as_of``.

    Raises
    ------
    InputError
        ``as_of`` after the last event.
    """
    stamp = to_as_of(as_of, to_utc=True)
    end = data.observation_end
    if stamp > end:
        raise InputError(f"as_of {stamp} is after the data's last event ({end}); the data "
                         "cannot say what a customer looks like then")
    interactions = booking_interactions(data, stamp, item="service")
    effect: OfferEffect | None = None
    note = ""
    try:
        effects = campaign_effects(data, stamp, horizon_days=definitions.churn_horizon_days,
                                   n_bootstrap=n_bootstrap, seed=seed)
        effect = next((e for e in effects if e.campaign == POOLED), None)
        if effect is None or effect.relative_reduction is None:
            note = "; ".join(effect.notes) if effect else "no pooled campaign estimate"
            effect = None
    except NotEnoughDataError as exc:  # no campaign closed by as_of
        note = str(exc)
    return PopulationInputs(
        as_of=stamp, population_gap_days=population_median_gap(data, stamp),
        review_totals=provider_review_totals(data.reviews, stamp),
        next_services=None if interactions.empty
        else next_service_prior(data, stamp, interactions=interactions),
        active_providers=working_providers(data.providers, stamp),
        offer_effect=effect, offer_effect_note=note,
        first_visit=(interactions["timestamp"].min() if len(interactions) else None))


def build_snapshot(data: MarketplaceData, as_of: object, *,
                   definitions: Definitions = DEFAULT_DEFINITIONS, n_bootstrap: int = 1000,
                   seed: int = 0, population: PopulationInputs | None = None
                   ) -> CustomerSnapshot:
    """Compute the :class:`CustomerSnapshot` of ``data`` at ``as_of``.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        Cut-off (naive UTC, or time-zone aware: converted); must not be after the data's last
        event (the snapshot would claim knowledge of a period the data do not cover).
    definitions
        The activity window and new-customer period of the lifecycle stages and the churn
        horizon of the campaign effect (the served models' definitions).
    n_bootstrap, seed
        For the campaign effect's confidence interval.
    population
        :func:`population_inputs` of the whole population at ``as_of``, when ``data`` holds
        one block of its customers (:func:`customer_blocks`): the block's snapshot then has
        the whole snapshot's values for its customers. Default: computed from ``data``.

    Raises
    ------
    InputError
        ``as_of`` after the last event.
    NotEnoughDataError
        ``as_of`` before any customer (of ``data``) signed up (names the first signup).
    """
    stamp = to_as_of(as_of, to_utc=True)
    if population is None:
        population = population_inputs(data, stamp, definitions=definitions,
                                       n_bootstrap=n_bootstrap, seed=seed)
    elif population.as_of != stamp:
        raise InputError(f"population inputs of {population.as_of} given for as_of {stamp}")
    features = customer_features(data, stamp, provider_reviews=population.review_totals)
    if features.empty:
        first = data.customers["signup_at"].min()
        raise NotEnoughDataError(f"no customer had signed up by as_of {stamp}; the first "
                                 f"signup is at {first}")
    population_gap = population.population_gap_days
    lifecycle = lifecycle_stages(data, stamp, population_gap_days=population_gap,
                                 active_window_days=definitions.active_window_days,
                                 new_days=definitions.new_customer_days
                                 ).reindex(features.index)
    rfm = customer_rfm(data, stamp)
    # the BG/NBD inputs as feature columns: what the lifetime-value candidates read
    features = pd.concat([features, rfm_features(data, stamp, features.index, rfm=rfm)],
                         axis=1)
    if population.next_services is not None:
        next_services = next_service_recommendations(data, stamp, k=N_SERVICES,
                                                     prior=population.next_services)
    else:
        next_services = pd.DataFrame(columns=["customer_id", "service_id", "name", "score",
                                              "rank"])
    next_service = next_services.loc[next_services["rank"] == 1].set_index("customer_id")[
        ["service_id", "name", "score"]]
    neighborhoods = customer_neighborhoods(data).reindex(features.index).astype(str)
    return CustomerSnapshot(
        as_of=stamp, features=features, lifecycle=lifecycle, rfm=rfm,
        next_service=next_service, next_services=next_services,
        active_providers=population.active_providers, neighborhoods=neighborhoods,
        offer_effect=population.offer_effect, offer_effect_note=population.offer_effect_note,
        population_gap_days=population_gap,
        aligned=_aligned(features, lifecycle, rfm, next_service, neighborhoods),
        definitions=definitions, first_visit=population.first_visit)


def working_providers(providers: pd.DataFrame, as_of: pd.Timestamp) -> pd.Index:
    """Barbers who have joined and not left at ``as_of`` (``joined_at <= as_of < left_at``):
    the only ones a customer is recommended."""
    working = (providers["joined_at"] <= as_of) & (
        providers["left_at"].isna() | (providers["left_at"] > as_of))
    index: pd.Index = pd.Index(providers.loc[working.to_numpy(bool), "provider_id"].to_numpy(),
                               name="provider_id")
    return index


def _optional_ints(values: pd.Series) -> np.ndarray:
    """Object array of ``int`` or ``None`` (an all-missing ``Int64`` column would turn into
    float NaN, which is neither)."""
    out = np.full(len(values), None, dtype=object)
    known = values.notna().to_numpy(dtype=bool)
    out[known] = values.to_numpy()[known].astype(np.int64)
    return out


def _aligned(features: pd.DataFrame, lifecycle: pd.DataFrame, rfm: pd.DataFrame,
             next_service: pd.DataFrame, neighborhoods: pd.Series) -> dict[str, np.ndarray]:
    ids = features.index
    rfm = rfm.reindex(ids)
    nxt = next_service.reindex(ids)
    return {
        "lifecycle_stage": lifecycle["stage"].astype(str).to_numpy(dtype=object),
        "lifecycle_reason": lifecycle["reason"].astype(str).to_numpy(dtype=object),
        "usual_gap_days": lifecycle["usual_gap_days"].to_numpy(dtype=np.float64),
        "days_since_last_visit": lifecycle["days_since_last_visit"].to_numpy(dtype=np.float64),
        "n_visits": lifecycle["n_visits"].to_numpy(dtype=np.int64),
        "frequency": rfm["frequency"].to_numpy(dtype=np.float64),
        "recency": rfm["recency"].to_numpy(dtype=np.float64),
        "T": rfm["T"].to_numpy(dtype=np.float64),
        "next_service_id": _optional_ints(nxt["service_id"]),
        "next_service": nxt["name"].astype(object).where(nxt["name"].notna(), None)
        .to_numpy(dtype=object),
        "next_service_probability": nxt["score"].to_numpy(dtype=np.float64),
        "neighborhood": neighborhoods.to_numpy(dtype=object),
        "spend_per_visit": features["spend_per_visit"].to_numpy(dtype=np.float64),
    }
