"""A synthetic barbershop marketplace with known ground truth: :class:`SimulationConfig` and
:func:`simulate`.

The generative model (documented parameter by parameter in ``data/simulation.md``):

* customers (an initial base present at ``start`` plus arrivals over the period) with an
  acquisition channel, a home neighborhood and latent traits: haircut cadence, price
  sensitivity, service preferences, loyalty to one barber, cancellation and no-show
  propensities, a baseline churn hazard and a responsiveness to retention offers;
* providers (barbers) with latent quality, price tier, weekly capacity and neighborhood; some
  join and some leave during the period, and each changes prices from time to time;
* bookings created some lead time before the visit, with seasonality (December and
  early-summer peaks), cancellations, no-shows, discounts (first-visit promotions and retention
  offers) and tips; reviews of a fraction of completed visits;
* a latent churn process: each customer becomes permanently inactive at a hazard that rises
  after a bad experience, a no-show, a price rise, a change of barber and the departure of
  their barber;
* randomized retention campaigns: at configured times, customers overdue against their own
  observed cadence are split at random into treated (offered a discount) and control, and the
  offer lowers the churn hazard by a customer-specific factor.

Customers are conditionally independent given the provider schedule (who joins and leaves when,
price changes), and every random number is a pure function of ``(seed, customer, event number,
purpose)`` (see :mod:`barberpro_ml.data._sim_engine`). That makes the output independent of how
the event loop batches its work, and lets :func:`barberpro_ml.data.oracle_churn_probability`
rebuild the exact latent state at any cut-off and re-simulate its futures with the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from barberpro_ml.data.container import GroundTruth, MarketplaceData
from barberpro_ml.data.schema import BOOKING_STATUSES, PRICE_TIERS
from barberpro_ml.errors import InputNotFoundError

if TYPE_CHECKING:
    from barberpro_ml.data._sim_engine import Engine, TableRecorder
    from barberpro_ml.data._sim_world import World

GENERATOR_VERSION = 3
"""Bumped whenever the generative model changes the data drawn for a given config."""

ProgressCallback = Callable[[int, int], None]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _to_datetime(value: Any) -> Any:
    """YAML reads ``2023-01-01`` as a ``date``: accept it as midnight."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day)
    return value


def _naive(value: datetime, field: str) -> datetime:
    if value.tzinfo is not None:
        raise ValueError(f"{field} must be a timezone-naive UTC datetime, got {value.isoformat()}")
    return value


Share = Annotated[float, Field(gt=0.0, le=1e6, description="Relative weight (normalised).")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


# --------------------------------------------------------------------------- catalogue entries

class NeighborhoodSpec(_Frozen):
    """One neighborhood: its share of customers and barbers and how price-sensitive it is."""

    name: str = Field(min_length=1, max_length=64)
    share: Share
    price_sensitivity: float = Field(gt=0.0, lt=1.0, description=(
        "Mean price sensitivity (0..1) of customers living there."))


class ChannelSpec(_Frozen):
    """One acquisition channel."""

    name: str = Field(min_length=1, max_length=64)
    share: Share
    churn_multiplier: float = Field(gt=0.0, le=20.0, description=(
        "Multiplier on the baseline churn hazard of customers acquired this way."))
    first_visit_discount: float = Field(ge=0.0, lt=1.0, description=(
        "Discount (fraction of the price) on the customer's first booking."))


class ServiceSpec(_Frozen):
    """One service of the catalogue (the ``services`` table)."""

    name: str = Field(min_length=1, max_length=64)
    base_price: float = Field(gt=0.0, le=10_000.0)
    duration_min: int = Field(gt=0, le=480)
    popularity: Share


class TierSpec(_Frozen):
    """One price tier of barbers."""

    name: Literal["budget", "standard", "premium"]
    share: Share
    price_multiplier: float = Field(gt=0.0, le=10.0)
    quality_mean: float = Field(ge=1.0, le=5.5, description="Mean latent quality, in stars.")


class CampaignSpec(_Frozen):
    """One randomized retention campaign."""

    name: str = Field(min_length=1, max_length=64)
    sent_at: datetime
    offer: str = Field(min_length=1, max_length=64)
    discount: float = Field(gt=0.0, lt=1.0, description="Discount on the next booking.")

    _coerce_sent_at = field_validator("sent_at", mode="before")(_to_datetime)

    @field_validator("sent_at")
    @classmethod
    def _sent_at_naive(cls, value: datetime) -> datetime:
        return _naive(value, "campaigns.sent_at")

    @field_validator("offer")
    @classmethod
    def _offer_not_none(cls, value: str) -> str:
        if value == "none":
            raise ValueError("offer 'none' is reserved for the control group")
        return value


class ShockSpec(_Frozen):
    """A market-wide shock at one midnight (a scenario for monitoring; none by default).

    ``price_rise``: every barber on the platform at ``at`` raises prices by this fraction
    (one more price change, on top of their own schedule); ``provider_exodus``: this share of
    the barbers on the platform at ``at``, drawn at random, leave at ``at``.
    """

    at: datetime
    price_rise: float = Field(0.0, ge=0.0, le=2.0, description=(
        "Price rise of every barber present at ``at`` (0.2: +20%)."))
    provider_exodus: float = Field(0.0, ge=0.0, lt=1.0, description=(
        "Share of the barbers present at ``at`` who leave at ``at``."))

    _coerce_at = field_validator("at", mode="before")(_to_datetime)

    @field_validator("at")
    @classmethod
    def _at_midnight(cls, value: datetime) -> datetime:
        value = _naive(value, "shocks.at")
        if (value.hour, value.minute, value.second, value.microsecond) != (0, 0, 0, 0):
            raise ValueError(f"shocks.at must be a midnight, got {value.isoformat()}")
        return value


# --------------------------------------------------------------------------- behaviour groups

class CustomerBehaviour(_Frozen):
    """Latent customer traits and how customers choose barbers and services."""

    cadence_median_days: float = Field(30.0, ge=5.0, le=180.0, description=(
        "Median over customers of the typical time between two visits."))
    cadence_sigma: float = Field(0.4, ge=0.0, le=2.0, description=(
        "Standard deviation of log cadence across customers (lognormal)."))
    gap_sigma: float = Field(0.3, gt=0.0, le=2.0, description=(
        "Standard deviation of the log gap around a customer's own cadence."))
    price_sensitivity_concentration: float = Field(8.0, gt=0.0, le=1000.0, description=(
        "Beta concentration of price sensitivity around the neighborhood mean."))
    loyalty_mean: float = Field(0.85, gt=0.0, lt=1.0, description=(
        "Mean probability of rebooking one's usual barber."))
    loyalty_concentration: float = Field(10.0, gt=0.0, le=1000.0)
    service_concentration: float = Field(1.0, gt=0.0, le=1000.0, description=(
        "Dirichlet concentration of service preferences (small: each customer sticks to few "
        "services)."))
    cancel_rate: float = Field(0.07, ge=0.0, lt=0.5, description=(
        "Mean probability that a booking is cancelled."))
    no_show_rate: float = Field(0.05, ge=0.0, lt=0.5, description=(
        "Mean probability that a booking ends in a no-show."))
    propensity_concentration: float = Field(12.0, gt=0.0, le=1000.0, description=(
        "Beta concentration of per-customer cancel and no-show propensities."))
    home_neighborhood_weight: float = Field(0.85, ge=0.0, le=1.0, description=(
        "Probability of choosing a barber in one's own neighborhood (when there is one)."))
    tier_price_aversion: float = Field(5.0, ge=0.0, le=100.0, description=(
        "Logit weight of -price_sensitivity * log(tier price multiplier) in tier choice."))
    reputation_weight: float = Field(2.0, ge=0.0, le=20.0, description=(
        "Logit weight of barber quality (stars) in barber choice."))
    responsiveness_mean: float = Field(0.35, ge=0.0, le=5.0, description=(
        "Mean reduction of the log churn hazard while a retention offer runs."))
    responsiveness_shape: float = Field(2.0, gt=0.0, le=1000.0, description=(
        "Gamma shape of responsiveness across customers (small: more heterogeneous)."))


class BookingBehaviour(_Frozen):
    """Lead times, opening hours, rebooking delays and tips."""

    same_day_share: Probability = Field(0.2, description="Share of bookings for the same day.")
    lead_median_days: float = Field(4.0, gt=0.0, le=60.0)
    lead_sigma: float = Field(0.8, ge=0.0, le=3.0)
    max_lead_days: float = Field(42.0, gt=0.0, le=365.0)
    open_hour: int = Field(9, ge=0, le=23)
    close_hour: int = Field(19, ge=1, le=24)
    slot_minutes: int = Field(15, ge=5, le=120)
    closed_weekdays: tuple[int, ...] = Field((6,), description="0 = Monday ... 6 = Sunday.")
    closed_day_earlier_share: Probability = Field(0.7, description=(
        "Share of customers wanting a closed day who take the day before (else the day after)."))
    first_booking_delay_minutes: float = Field(15.0, gt=0.0, le=10_000.0, description=(
        "Mean delay between signing up and making the first booking."))
    rebook_after_cancel_days: float = Field(4.0, gt=0.0, le=365.0)
    rebook_after_no_show_days: float = Field(10.0, gt=0.0, le=365.0)
    rebook_after_provider_left_days: float = Field(3.0, gt=0.0, le=365.0)
    churned_no_show_share: Probability = Field(0.3, description=(
        "Share of a churned customer's pending bookings that end as no-shows (else cancelled)."))
    tip_probability: Probability = Field(0.6)
    tip_fraction_min: float = Field(0.10, ge=0.0, le=1.0)
    tip_fraction_max: float = Field(0.25, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.open_hour >= self.close_hour:
            raise ValueError(f"open_hour ({self.open_hour}) must be before close_hour "
                             f"({self.close_hour})")
        if (self.close_hour - self.open_hour) * 60 < self.slot_minutes:
            raise ValueError("opening hours are shorter than one slot")
        if self.tip_fraction_min > self.tip_fraction_max:
            raise ValueError("tip_fraction_min must not exceed tip_fraction_max")
        bad = [d for d in self.closed_weekdays if not 0 <= d <= 6]
        if bad:
            raise ValueError(f"closed_weekdays must be 0..6, got {bad}")
        if len(set(self.closed_weekdays)) >= 7:
            raise ValueError("closed_weekdays closes every day of the week")
        return self


class ReviewBehaviour(_Frozen):
    """How a visit's experience turns into ratings, reviews and dissatisfaction."""

    review_probability: Probability = Field(0.3)
    unhappy_review_boost: Probability = Field(0.3, description=(
        "Extra probability of writing a review after a bad experience."))
    review_delay_hours: float = Field(18.0, gt=0.0, le=24 * 60)
    experience_sd: float = Field(0.5, ge=0.0, le=5.0, description=(
        "Visit-to-visit noise of the experience, in stars."))
    match_sd: float = Field(0.35, ge=0.0, le=5.0, description=(
        "Spread of the persistent customer-barber match, in stars."))
    new_barber_penalty: float = Field(0.2, ge=0.0, le=5.0, description=(
        "Stars lost on a first visit to a barber."))
    price_rise_penalty: float = Field(0.5, ge=0.0, le=10.0, description=(
        "Stars lost per +10% price rise by a fully price-sensitive customer."))
    incident_probability: Probability = Field(0.02, description=(
        "Probability that something goes clearly wrong at a visit (a botched cut, a long "
        "wait), which gives the J-shaped tail of 1- and 2-star reviews."))
    incident_penalty: float = Field(2.5, ge=0.0, le=5.0, description="Stars lost by an incident.")
    bad_experience_below: float = Field(3.5, ge=1.0, le=5.0, description=(
        "Experiences below this (i.e. rated 3 stars or less) count as bad."))


class ProviderModel(_Frozen):
    """Barbers: tiers, quality, capacity, turnover and price changes."""

    tiers: tuple[TierSpec, ...] = (
        TierSpec(name="budget", share=0.3, price_multiplier=0.75, quality_mean=4.45),
        TierSpec(name="standard", share=0.5, price_multiplier=1.0, quality_mean=4.6),
        TierSpec(name="premium", share=0.2, price_multiplier=1.5, quality_mean=4.8),
    )
    quality_sd: float = Field(0.25, ge=0.0, le=3.0)
    price_sd: float = Field(0.08, ge=0.0, le=1.0, description=(
        "Spread of a barber's own log price around the tier price."))
    capacity_median_per_week: float = Field(40.0, gt=0.0, le=1000.0)
    capacity_sigma: float = Field(0.3, ge=0.0, le=3.0)
    present_at_start_share: Probability = Field(0.8)
    departure_rate_per_year: float = Field(0.12, ge=0.0, le=10.0, description=(
        "Mean hazard of a barber leaving the platform (per year), over the barbers; each "
        "barber's own hazard is this rate times the drivers below, normalised so that the "
        "mean over the barbers stays this rate."))
    departure_per_star: float = Field(2.0, ge=0.0, le=20.0, description=(
        "Log-hazard of leaving added per star of latent quality below the barbers' mean "
        "(visible through ratings). 0 (with departure_demand_elasticity 0): the hazard "
        "does not depend on quality."))
    departure_demand_elasticity: float = Field(1.0, ge=0.0, le=10.0, description=(
        "Hazard of leaving proportional to (expected chair demand / its median) ** -this: a "
        "barber whose chair the choice model fills half as much as the median barber's is "
        "2 ** this times as likely to leave (visible through utilisation and visits). 0 with "
        "departure_per_star 0 recovers a constant departure rate."))
    wind_down_days: float = Field(56.0, ge=0.0, le=365.0, description=(
        "Days before leaving over which a barber winds down: the share of unavailable slots "
        "and barber-side cancellations rises linearly from 0 to their maximum at left_at. "
        "0: no wind-down."))
    wind_down_unavailable: Probability = Field(0.6, description=(
        "At the end of the wind-down, probability that a winding-down barber has no slot "
        "for a booking (the customer books another barber instead)."))
    wind_down_cancel: Probability = Field(0.3, description=(
        "At the end of the wind-down, probability that the barber cancels a booking falling "
        "due (recorded as cancelled; the customer rebooks)."))
    price_change_rate_per_year: float = Field(0.7, ge=0.0, le=50.0)
    price_rise_share: Probability = Field(0.85)
    price_rise_min: float = Field(0.03, ge=0.0, le=1.0)
    price_rise_max: float = Field(0.12, ge=0.0, le=1.0)
    price_cut_min: float = Field(0.03, ge=0.0, lt=1.0)
    price_cut_max: float = Field(0.08, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [t.name for t in self.tiers]
        if sorted(names) != sorted(PRICE_TIERS) or len(names) != len(PRICE_TIERS):
            raise ValueError(f"tiers must be exactly {list(PRICE_TIERS)} once each, got {names}")
        if self.price_rise_min > self.price_rise_max:
            raise ValueError("price_rise_min must not exceed price_rise_max")
        if self.price_cut_min > self.price_cut_max:
            raise ValueError("price_cut_min must not exceed price_cut_max")
        return self

    def tier(self, name: str) -> TierSpec:
        """The tier called ``name``."""
        return next(t for t in self.tiers if t.name == name)


class ChurnModel(_Frozen):
    """The latent churn hazard: a baseline per customer times exp(dissatisfaction memory)."""

    base_rate_per_year: float = Field(0.28, ge=0.0, le=50.0, description=(
        "Mean baseline hazard of an established, satisfied customer (per year)."))
    base_sigma: float = Field(0.6, ge=0.0, le=3.0, description=(
        "Spread of log baseline hazard across customers (mean-preserving lognormal)."))
    new_customer_multiplier: float = Field(15.0, ge=1.0, le=1000.0, description=(
        "Hazard multiplier until a new customer has completed two visits."))
    memory_decay: float = Field(0.6, ge=0.0, lt=1.0, description=(
        "Share of the dissatisfaction memory kept at each completed visit."))
    bad_experience: float = Field(1.0, ge=0.0, le=10.0)
    price_rise_per_10pct: float = Field(1.5, ge=0.0, le=20.0, description=(
        "Log-hazard shock per +10% price rise for a fully price-sensitive customer."))
    provider_left: float = Field(1.0, ge=0.0, le=10.0)
    new_barber: float = Field(0.2, ge=0.0, le=10.0)
    no_show: float = Field(0.5, ge=0.0, le=10.0)


class OfferRule(_Frozen):
    """Who a retention campaign targets (an observable rule) and how long an offer runs."""

    window_days: float = Field(60.0, gt=0.0, le=365.0, description=(
        "How long the offer lowers the churn hazard and its discount can be used."))
    overdue_factor: float = Field(1.0, ge=1.0, le=20.0, description=(
        "Targeted when days since the last visit exceed this times the observed mean gap "
        "(1.5 before issue 19, when nine in ten targeted customers had already churned and "
        "no offer could be measured)."))
    default_gap_days: float = Field(35.0, gt=0.0, le=365.0, description=(
        "Assumed gap for customers with a single visit."))
    max_days_since_visit: float = Field(90.0, gt=0.0, le=3650.0, description=(
        "Customers lapsed longer than this are no longer targeted (180 before issue 19; 90 is "
        "the churn horizon: a customer gone longer already counts as churned)."))
    treat_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    # Who the offer works on (issue 19): the effect varies with traits a model can see
    # through their traces in the events, so that uplift models can win or lose measurably.
    unobserved_share: float = Field(0.3, ge=0.0, le=1.0, description=(
        "Share of a customer's static responsiveness left to an unobserved Gamma draw "
        "(customers.responsiveness_shape); 1 gives the pre-issue-19 effects' noise."))
    price_sensitivity_power: float = Field(2.0, ge=0.0, le=10.0, description=(
        "Responsiveness scales with ((0.5 + price_sensitivity) / (0.5 + mean)) to this power: "
        "price-sensitive customers answer a discount more."))
    loyalty_effect: float = Field(4.0, ge=0.0, le=50.0, description=(
        "Responsiveness scales with exp(-loyalty_effect * (loyalty - customers.loyalty_mean)): "
        "customers attached to their barber need the offer less."))
    new_customer_boost: float = Field(1.0, ge=0.0, le=20.0, description=(
        "The effect is multiplied by 1 + new_customer_boost * exp(-tenure_days / 365) at "
        "sent_at: recent signups are still forming a habit."))
    bad_experience_boost: float = Field(1.5, ge=0.0, le=20.0, description=(
        "The effect is multiplied by 1 + bad_experience_boost * (1 - exp(-memory)) at sent_at, "
        "memory the customer's dissatisfaction (bad visits, no-shows, price rises, a barber "
        "gone; churn.memory_decay): an offer after a bad experience works as an apology."))
    winback_rate: float = Field(0.0, ge=0.0, le=1.0, description=(
        "A customer who had already lapsed for good when the offer came back with probability "
        "winback_rate * (1 - exp(-effect)), effect the offer's drop of the log hazard above "
        "(the same traits make the offer work either way), and books within about "
        "winback_delay_days. 0 (the default): an offer reaches only customers still active, "
        "generator version 3's world; see data/simulation.md, 'Win-back'."))
    winback_delay_days: float = Field(10.0, gt=0.0, le=365.0, description=(
        "Mean days from the offer to a won-back customer's booking (exponential)."))


class Seasonality(_Frozen):
    """Demand peaks: gaps shrink (and signups rise) around mid-December and early summer."""

    december_peak: float = Field(0.4, ge=0.0, le=5.0)
    december_day: int = Field(350, ge=1, le=366, description="Day of year of the peak.")
    december_width_days: float = Field(12.0, gt=0.0, le=120.0)
    summer_peak: float = Field(0.2, ge=0.0, le=5.0)
    summer_day: int = Field(166, ge=1, le=366)
    summer_width_days: float = Field(20.0, gt=0.0, le=120.0)
    signup_growth_per_year: float = Field(0.25, ge=-0.9, le=10.0, description=(
        "Relative growth of the signup rate per year over the period."))


# --------------------------------------------------------------------------- defaults

DEFAULT_NEIGHBORHOODS: tuple[NeighborhoodSpec, ...] = (
    NeighborhoodSpec(name="downtown", share=0.18, price_sensitivity=0.30),
    NeighborhoodSpec(name="old_town", share=0.12, price_sensitivity=0.35),
    NeighborhoodSpec(name="university", share=0.12, price_sensitivity=0.60),
    NeighborhoodSpec(name="riverside", share=0.14, price_sensitivity=0.40),
    NeighborhoodSpec(name="north_hills", share=0.10, price_sensitivity=0.25),
    NeighborhoodSpec(name="eastside", share=0.14, price_sensitivity=0.50),
    NeighborhoodSpec(name="harbor", share=0.10, price_sensitivity=0.40),
    NeighborhoodSpec(name="westend", share=0.10, price_sensitivity=0.45),
)
DEFAULT_CHANNELS: tuple[ChannelSpec, ...] = (
    ChannelSpec(name="organic_search", share=0.30, churn_multiplier=1.0, first_visit_discount=0.0),
    ChannelSpec(name="referral", share=0.20, churn_multiplier=0.7, first_visit_discount=0.15),
    ChannelSpec(name="paid_social", share=0.20, churn_multiplier=1.6, first_visit_discount=0.2),
    ChannelSpec(name="app_store", share=0.15, churn_multiplier=1.0, first_visit_discount=0.0),
    ChannelSpec(name="in_shop", share=0.15, churn_multiplier=0.8, first_visit_discount=0.0),
)
DEFAULT_SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(name="haircut", base_price=30.0, duration_min=30, popularity=0.45),
    ServiceSpec(name="skin_fade", base_price=35.0, duration_min=40, popularity=0.12),
    ServiceSpec(name="beard_trim", base_price=15.0, duration_min=20, popularity=0.08),
    ServiceSpec(name="haircut_and_beard", base_price=42.0, duration_min=50, popularity=0.18),
    ServiceSpec(name="kids_cut", base_price=20.0, duration_min=25, popularity=0.08),
    ServiceSpec(name="hot_towel_shave", base_price=35.0, duration_min=35, popularity=0.05),
    ServiceSpec(name="colour", base_price=55.0, duration_min=60, popularity=0.04),
)
DEFAULT_CAMPAIGNS: tuple[CampaignSpec, ...] = (
    CampaignSpec(name="winback_2023_06", sent_at=datetime(2023, 6, 1, 10),
                 offer="20pct_off_next_visit", discount=0.2),
    CampaignSpec(name="winback_2023_10", sent_at=datetime(2023, 10, 2, 10),
                 offer="20pct_off_next_visit", discount=0.2),
    CampaignSpec(name="winback_2024_03", sent_at=datetime(2024, 3, 4, 10),
                 offer="15pct_off_next_visit", discount=0.15),
    CampaignSpec(name="winback_2024_08", sent_at=datetime(2024, 8, 1, 10),
                 offer="20pct_off_next_visit", discount=0.2),
)


class SimulationConfig(_Frozen):
    """Every parameter of the marketplace simulator; defaults equal ``configs/simulation.yaml``.

    Shares (neighborhoods, channels, tiers, service popularity) are relative weights and are
    normalised. ``start`` and ``end`` are midnights (naive UTC); the simulated period is
    ``[start, end)``.

    Examples
    --------
    >>> from barberpro_ml.data import SimulationConfig
    >>> cfg = SimulationConfig(n_customers=500, seed=7)
    >>> cfg.end - cfg.start
    datetime.timedelta(days=731)
    >>> SimulationConfig(n_customers=0)                      # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    pydantic_core._pydantic_core.ValidationError: ...
    """

    seed: int = Field(42, ge=0, le=2**63 - 1)
    n_customers: int = Field(20_000, ge=1, le=20_000_000, description=(
        "Customers in total: the initial base plus those signing up during the period."))
    start: datetime = datetime(2023, 1, 1)
    end: datetime = datetime(2025, 1, 1)
    initial_customer_fraction: Probability = Field(0.4, description=(
        "Share of customers already signed up (and active) at start."))
    customers_per_provider: float = Field(150.0, ge=1.0, le=100_000.0)
    neighborhoods: tuple[NeighborhoodSpec, ...] = Field(DEFAULT_NEIGHBORHOODS, min_length=1)
    channels: tuple[ChannelSpec, ...] = Field(DEFAULT_CHANNELS, min_length=1)
    services: tuple[ServiceSpec, ...] = Field(DEFAULT_SERVICES, min_length=1, max_length=200)
    campaigns: tuple[CampaignSpec, ...] = Field(DEFAULT_CAMPAIGNS, description=(
        "The campaign calendar; campaigns sent outside [start, end) do not run, so the "
        "period can be changed without editing it."))
    customers: CustomerBehaviour = CustomerBehaviour()
    bookings: BookingBehaviour = BookingBehaviour()
    reviews: ReviewBehaviour = ReviewBehaviour()
    providers: ProviderModel = ProviderModel()
    churn: ChurnModel = ChurnModel()
    offers: OfferRule = OfferRule()
    seasonality: Seasonality = Seasonality()
    shocks: tuple[ShockSpec, ...] = Field((), description=(
        "Market-wide shocks (price rise, barber exodus); none by default."))

    _coerce_dates = field_validator("start", "end", mode="before")(_to_datetime)

    @field_validator("start", "end")
    @classmethod
    def _midnight(cls, value: datetime) -> datetime:
        value = _naive(value, "start/end")
        if (value.hour, value.minute, value.second, value.microsecond) != (0, 0, 0, 0):
            raise ValueError(f"start and end must be midnights, got {value.isoformat()}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        days = (self.end - self.start).days
        if days < 28:
            raise ValueError(f"end ({self.end:%Y-%m-%d}) must be at least 28 days after start "
                             f"({self.start:%Y-%m-%d})")
        if days > 20 * 366:
            raise ValueError("the simulated period is limited to 20 years")
        for label, items in (("neighborhoods", self.neighborhoods),
                             ("channels", self.channels), ("services", self.services),
                             ("campaigns", self.campaigns)):
            names = [item.name for item in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{label}: duplicate names {dupes}")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> SimulationConfig:
        """Read a config from YAML; keys left out keep their defaults.

        Raises
        ------
        FileNotFoundError
            When ``path`` does not exist.
        pydantic.ValidationError
            When a key is unknown or a value out of range (the message names the key).
        """
        file = Path(path)
        if not file.is_file():
            raise InputNotFoundError(f"no simulation config at {file}")
        content = yaml.safe_load(file.read_text()) or {}
        if not isinstance(content, dict):
            raise ValueError(f"{file}: expected a mapping of simulation parameters at the top")
        return cls.model_validate(content)

    @property
    def n_providers(self) -> int:
        """Barbers in total (at least two per neighborhood, so every area has a choice)."""
        return max(int(np.ceil(self.n_customers / self.customers_per_provider)),
                   2 * len(self.neighborhoods))


# --------------------------------------------------------------------------- simulate

def simulate(config: SimulationConfig | None = None, *,
             progress: ProgressCallback | None = None) -> MarketplaceData:
    """Simulate a marketplace: six validated event tables plus the ground truth behind them.

    Parameters
    ----------
    config
        The parameters; ``None`` means the defaults (``configs/simulation.yaml``).
    progress
        Optional ``(done, total)`` callback, called as simulated time advances.

    Returns
    -------
    MarketplaceData
        The event tables, with ``truth`` holding latent customer state (traits,
        ``inactive_at``), latent provider state (quality, capacity, latent departure), the
        price-change schedule, the true effect of every campaign offer, and the config
        (``truth.meta["config"]``) from which the oracle rebuilds the latent state.

    Examples
    --------
    >>> from barberpro_ml.data import SimulationConfig, simulate
    >>> data = simulate(SimulationConfig(n_customers=300, seed=3))
    >>> sorted(data.truth.tables)
    ['customers', 'interventions', 'price_changes', 'providers']
    >>> bool((data.bookings["status"] == "completed").mean() > 0.7)
    True
    """
    tables, truth = simulate_tables(config or SimulationConfig(), progress=progress)
    return MarketplaceData(**tables, truth=truth)


def simulate_tables(config: SimulationConfig, *, progress: ProgressCallback | None = None,
                    window_days: float = 7.0) -> tuple[dict[str, pd.DataFrame], GroundTruth]:
    """The raw tables and ground truth of :func:`simulate`, before contract validation.

    ``window_days`` is how far simulated time advances per step of the event loop. It changes
    speed and memory only, never the output (each random number is keyed by customer and
    event, not by step), which the tests check.
    """
    from barberpro_ml.data._sim_engine import Engine, TableRecorder
    from barberpro_ml.data._sim_world import build_world

    world = build_world(config)
    recorder = TableRecorder()
    engine = Engine.for_world(world, recorder)
    engine.run(world.end, window_days=window_days, progress=progress)
    return _assemble(world, engine, recorder)


def _stamps(world: World, days: npt.NDArray[np.float64]) -> npt.NDArray[np.datetime64]:
    """Days since start (float, inf/nan for none) to naive ``datetime64[ns]`` rounded to 1 s."""
    seconds = np.rint(np.where(np.isfinite(days), days, 0.0) * 86_400.0).astype(np.int64)
    out = np.datetime64(world.config.start, "ns") + seconds.astype("timedelta64[s]")
    return np.where(np.isfinite(days), out.astype("datetime64[ns]"),
                    np.datetime64("NaT", "ns"))


def _categorical(codes: npt.NDArray[Any], names: list[str]) -> pd.Categorical[str]:
    categorical: pd.Categorical[str] = pd.Categorical.from_codes(codes.astype(np.int64),
                                                            categories=pd.Index(names))
    return categorical


def _assemble(world: World, engine: Engine, recorder: TableRecorder
              ) -> tuple[dict[str, pd.DataFrame], GroundTruth]:
    cfg = world.config
    end = world.end
    n_cust = world.n_customers
    customer_ids = np.arange(1, n_cust + 1, dtype=np.int64)
    provider_ids = np.arange(1, world.n_providers + 1, dtype=np.int64)

    customers = pd.DataFrame({
        "customer_id": customer_ids,
        "signup_at": _stamps(world, world.signup),
        "acquisition_channel": _categorical(world.channel, [c.name for c in cfg.channels]),
        "neighborhood": _categorical(world.home, [n.name for n in cfg.neighborhoods]),
    })
    left_observed = np.where(world.prov_left < end, world.prov_left, np.inf)
    providers = pd.DataFrame({
        "provider_id": provider_ids,
        "joined_at": _stamps(world, world.prov_joined),
        "left_at": _stamps(world, left_observed),
        "neighborhood": _categorical(world.prov_neigh, [n.name for n in cfg.neighborhoods]),
        "price_tier": _categorical(world.prov_tier, list(PRICE_TIERS)),
    })
    services = pd.DataFrame({
        "service_id": np.arange(1, len(cfg.services) + 1, dtype=np.int64),
        "name": pd.array([s.name for s in cfg.services], dtype="str"),
        "base_price": np.array([s.base_price for s in cfg.services], dtype=np.float64),
        "duration_min": np.array([s.duration_min for s in cfg.services], dtype=np.int64),
    })

    b = recorder.booking_arrays()
    keep = (b["scheduled"] < end) & (b["created"] < end)
    kept_rows = np.flatnonzero(keep)
    # ids follow (created_at, customer); a stable sort keeps one customer's rows in event
    # order, which (unlike the emission order across customers) does not depend on batching
    key = (np.rint(b["created"][kept_rows] * 86_400.0).astype(np.int64) * (1 << 26)
           + b["customer"][kept_rows])
    order = kept_rows[np.argsort(key, kind="stable")]
    booking_id_of_row = np.full(len(b["created"]), -1, dtype=np.int64)
    booking_id_of_row[order] = np.arange(1, len(order) + 1, dtype=np.int64)
    bookings = pd.DataFrame({
        "booking_id": np.arange(1, len(order) + 1, dtype=np.int64),
        "customer_id": customer_ids[b["customer"][order]],
        "provider_id": provider_ids[b["provider"][order]],
        "service_id": b["service"][order].astype(np.int64) + 1,
        "created_at": _stamps(world, b["created"][order]),
        "scheduled_at": _stamps(world, b["scheduled"][order]),
        "status": _categorical(b["status"][order], list(BOOKING_STATUSES)),
        "price": b["price"][order],
        "discount": b["discount"][order],
        "tip": b["tip"][order],
    })

    r = recorder.review_arrays()
    r_keep = (r["created"] < end) & (booking_id_of_row[r["row"]] > 0)
    r_rows = r["row"][r_keep]
    r_order = np.lexsort((booking_id_of_row[r_rows], r["created"][r_keep]))
    r_rows = r_rows[r_order]
    reviews = pd.DataFrame({
        "review_id": np.arange(1, len(r_rows) + 1, dtype=np.int64),
        "booking_id": booking_id_of_row[r_rows],
        "customer_id": customer_ids[b["customer"][r_rows]],
        "provider_id": provider_ids[b["provider"][r_rows]],
        "rating": r["rating"][r_keep][r_order].astype(np.int64),
        "created_at": _stamps(world, r["created"][r_keep][r_order]),
    })

    iv = recorder.intervention_arrays()
    i_order = np.lexsort((iv["customer"], iv["campaign"]))
    campaign_names = [c.name for c in world.campaigns]
    offers = np.array([c.offer for c in world.campaigns] + ["none"], dtype=object)
    treated = iv["treated"][i_order]
    camp = iv["campaign"][i_order]
    offer_names = sorted(set(offers.tolist()))
    offer_code = np.searchsorted(np.array(offer_names, dtype=object),
                                 np.where(treated, offers[camp], "none"))
    intervention_ids = np.arange(1, len(i_order) + 1, dtype=np.int64)
    interventions = pd.DataFrame({
        "intervention_id": intervention_ids,
        "customer_id": customer_ids[iv["customer"][i_order]],
        "campaign": _categorical(camp, campaign_names),
        "sent_at": _stamps(world, world.campaign_time[camp]),
        "treated": treated.astype(bool),
        "offer": _categorical(offer_code, offer_names),
    })

    truth = _truth(world, engine, customer_ids, provider_ids, iv, i_order, intervention_ids)
    tables = {"customers": customers, "providers": providers, "services": services,
              "bookings": bookings, "reviews": reviews, "interventions": interventions}
    return tables, truth


def _truth(world: World, engine: Engine, customer_ids: npt.NDArray[np.int64],
           provider_ids: npt.NDArray[np.int64], iv: dict[str, npt.NDArray[Any]],
           i_order: npt.NDArray[np.intp], intervention_ids: npt.NDArray[np.int64]
           ) -> GroundTruth:
    cfg = world.config
    state = engine.state
    inactive = np.full(world.n_customers, np.inf)
    inactive[state.cust] = state.inactive_at
    inactive = np.where(inactive < world.end, inactive, np.inf)
    cust = pd.DataFrame({
        "customer_id": customer_ids,
        "initial_base": world.initial,
        "cadence_days": world.cadence,
        "base_churn_per_year": world.base_hazard,
        "price_sensitivity": world.sensitivity,
        "loyalty": world.loyalty,
        "cancel_propensity": world.cancel_p,
        "no_show_propensity": world.no_show_p,
        "offer_log_hazard_ratio": -world.responsiveness,
        "favourite_service_id": np.argmax(world.preferences, axis=1).astype(np.int64) + 1,
        "inactive_at": _stamps(world, inactive),
    })
    for k, service in enumerate(cfg.services):
        cust[f"pref_{service.name}"] = world.preferences[:, k].astype(np.float64)
    prov = pd.DataFrame({
        "provider_id": provider_ids,
        "quality": world.prov_quality,
        "capacity_per_week": world.prov_capacity,
        "price_multiplier": world.prov_price,
        "latent_left_at": _stamps(world, world.prov_left),
        "departure_hazard_per_year": world.prov_departure_hazard,
        "expected_chair_demand": world.prov_expected_load,
        "wind_down_from": _stamps(world, world.prov_wind_from),
    })
    price_changes = pd.DataFrame({
        "provider_id": provider_ids[world.pc_provider],
        "changed_at": _stamps(world, world.pc_time),
        "price_index": world.pc_index,
    })
    interventions = pd.DataFrame({
        "intervention_id": intervention_ids,
        "customer_id": customer_ids[iv["customer"][i_order]],
        "treated": iv["treated"][i_order].astype(bool),
        "active_at_sent": iv["alive"][i_order].astype(bool),
        "hazard_per_year_at_sent": iv["hazard"][i_order] * 365.25,
        "log_hazard_ratio": iv["log_hazard_ratio"][i_order],
        "winback_probability": iv["winback_probability"][i_order],
    })
    meta = {
        "generator": "barberpro_ml.data.simulation",
        "generator_version": GENERATOR_VERSION,
        "config": cfg.model_dump(mode="json"),
        "log_hazard_ratio": (
            "true effect of the offer: change of the log churn hazard while it runs "
            "(offers.window_days); 0 for customers already inactive at sent_at; for control "
            "rows, the effect had they been treated. Probability-scale effects: "
            "barberpro_ml.data.oracle_offer_effect"),
        "winback_probability": (
            "for customers inactive at sent_at, the probability that the offer brings them "
            "back (offers.winback_rate; 0 when it is 0); 0 for active customers"),
    }
    return GroundTruth(tables={"customers": cust, "providers": prov,
                               "price_changes": price_changes,
                               "interventions": interventions}, meta=meta)
