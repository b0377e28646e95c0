"""The provider score's configuration: ``configs/providers.yaml`` (:class:`ProviderScoreConfig`).

Every weight is a share of the 0-100 score and carries its reason in the field's docstring;
the shipped YAML repeats the reasons beside the numbers and equals the defaults (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from barberpro_ml.config import load_yaml_model, shipped_config

__all__ = ["COMPONENTS", "ComponentWeights", "ProviderScoreConfig", "load_score_config"]

COMPONENTS: tuple[str, ...] = ("rating", "retention", "no_show", "cancellation", "utilisation",
                               "revenue_trend", "customer_churn")
"""The score's components, in the order of the output columns."""


class ComponentWeights(BaseModel):
    """Share of the score each component carries; they must sum to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rating: float = Field(0.40, ge=0, le=1)
    """The only direct measure of the experience in the chair; shrunk towards the neighborhood
    mean by the number of reviews, so a handful of reviews cannot carry a barber to the top."""
    retention: float = Field(0.20, ge=0, le=1)
    """Customers voting with their feet: the share of the barber's visits followed by another
    visit with the same barber within 90 days. Also reflects customers' own rhythms, hence
    half the rating's weight."""
    no_show: float = Field(0.05, ge=0, le=1)
    """Reliability of the book. No-shows are mostly the customers' habit, little of it is the
    barber's doing (reminders, deposits), hence a small weight."""
    cancellation: float = Field(0.05, ge=0, le=1)
    """As ``no_show``: mostly the customers', partly the barber's policy."""
    utilisation: float = Field(0.10, ge=0, le=1)
    """Demand for the chair (booked minutes over an 8-hour day): better barbers are booked
    more, but capacity, price tier and local demand move it too."""
    revenue_trend: float = Field(0.05, ge=0, le=1)
    """Momentum (revenue of the last 90 days against the 90 before): noisy and seasonal, so
    small; compared within the neighborhood, where the season is shared."""
    customer_churn: float = Field(0.15, ge=0, le=1)
    """Forward-looking retention: the mean churn probability (churn champion) of the customers
    whose latest visit was with the barber. Left out, and its weight spread over the others
    in proportion, when no churn probabilities are given."""

    @model_validator(mode="after")
    def _sum_to_one(self) -> ComponentWeights:
        total = sum(self.as_dict().values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1, got {total:.6f} ({self.as_dict()})")
        return self

    def as_dict(self) -> dict[str, float]:
        return {c: float(getattr(self, c)) for c in COMPONENTS}


class ProviderScoreConfig(BaseModel):
    """``configs/providers.yaml``: the provider score and the actions built on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: ComponentWeights = Field(default_factory=ComponentWeights)
    percentile_within: Literal["neighborhood", "marketplace"] = "neighborhood"
    """Each component is a percentile among the barbers of the same neighborhood (like with
    like: the same customers, prices and season), or among every barber of the marketplace."""
    outcome_window_days: int = Field(365, ge=30, le=3650)
    """Bookings scheduled in this window before ``as_of`` give the no-show, cancellation and
    retention rates."""
    recent_window_days: int = Field(90, ge=7, le=365)
    """Window of utilisation and of each half of the revenue trend."""
    return_within_days: int = Field(90, ge=7, le=365)
    """A visit is followed by a return when the customer's next completed visit with the same
    barber comes within this many days."""
    min_tenure_for_trend_days: int = Field(180, ge=0, le=3650)
    """A barber on the platform for less than this has no revenue trend (the ramp-up of a new
    barber is not momentum); the component is then unknown."""
    active_window_days: int = Field(180, ge=1, le=3650)
    """A customer belongs to a barber's customer base when their latest completed visit was
    with the barber within this window (the definitions' activity window)."""
    open_minutes_per_day: float = Field(480.0, gt=0, le=1440)
    """Bookable minutes per day behind utilisation (the data do not record opening hours)."""
    n_draws: int = Field(400, ge=50, le=100_000)
    """Posterior draws of every component, propagated to the score's interval."""
    interval: float = Field(0.90, gt=0.5, lt=1.0)
    """Central probability of every interval (0.90: the 5th to the 95th percentile)."""
    seed: int = Field(0, ge=0)
    """Seed of the posterior draws (the same inputs give the same scores)."""

    @classmethod
    def from_yaml(cls, path: str | Path) -> ProviderScoreConfig:
        return load_yaml_model(cls, path)


def load_score_config(path: str | Path | None = None) -> ProviderScoreConfig:
    """The provider-score config: ``path``, or the shipped ``providers.yaml``."""
    return ProviderScoreConfig.from_yaml(shipped_config("providers.yaml") if path is None
                                         else path)
