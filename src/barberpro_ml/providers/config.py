"""The provider score's configuration: ``configs/providers.yaml`` (:class:`ProviderScoreConfig`).

Every weight is a share of the 0-100 score and carries its reason in the field's docstring;
the shipped YAML repeats the reasons beside the numbers and equals the defaults (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from barberpro_ml.config import load_yaml_model, shipped_config

__all__ = ["COMPONENTS", "ComponentWeights", "ProviderScoreConfig", "WeightFitConfig",
           "load_score_config"]

COMPONENTS: tuple[str, ...] = ("rating", "retention", "no_show", "cancellation", "utilisation",
                               "revenue_trend", "customer_churn")
"""The score's components, in the order of the output columns."""


class ComponentWeights(BaseModel):
    """Share of the score each component carries; they must sum to 1.

    The defaults are the weights :func:`~barberpro_ml.providers.fit_provider_weights` selects
    on the default simulation (20,000 customers, seed 42) at 2024-06-30 against the shrunk
    rating of the reviews of the next 180 days (``python benchmarks/fit_provider_weights.py``;
    ``configs/providers.yaml`` has the figures): the rating alone, which predicts the later
    ratings of barbers left out of the fit better than any fitted mix of components. They were
    chosen on observable data only, never on the simulator's latent quality. Every component
    keeps its own columns whatever its weight; refit the weights on your own data with
    ``fit_provider_weights``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rating: float = Field(1.0, ge=0, le=1)
    """The only direct measure of the experience in the chair; shrunk towards the neighborhood
    mean by the number of reviews, so a handful of reviews cannot carry a barber to the top.
    Alone it predicts the next half-year's ratings best by far (out of bag), hence all of the
    default weight."""
    retention: float = Field(0.0, ge=0, le=1)
    """Customers voting with their feet: the share of the barber's visits followed by another
    visit with the same barber within 90 days. Customers' own rhythms move it as well."""
    no_show: float = Field(0.0, ge=0, le=1)
    """Reliability of the book. No-shows are mostly the customers' habit, little of it is the
    barber's doing (reminders, deposits)."""
    cancellation: float = Field(0.0, ge=0, le=1)
    """As ``no_show``: mostly the customers', partly the barber's policy."""
    utilisation: float = Field(0.0, ge=0, le=1)
    """Demand for the chair (booked minutes over an 8-hour day): better barbers are booked
    more, but capacity, price tier and local demand move it too."""
    revenue_trend: float = Field(0.0, ge=0, le=1)
    """Momentum (revenue of the last 90 days against the 90 before): noisy and seasonal."""
    customer_churn: float = Field(0.0, ge=0, le=1)
    """Forward-looking retention: the mean churn probability (churn champion) of the customers
    whose latest visit was with the barber. 0 by default: the default weights were fitted
    without a churn champion, so nothing supports a share for it yet; refit with
    ``churn_probability`` to give it one. Its percentile is reported either way."""

    @model_validator(mode="after")
    def _sum_to_one(self) -> ComponentWeights:
        total = sum(self.as_dict().values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1, got {total:.6f} ({self.as_dict()})")
        return self

    def as_dict(self) -> dict[str, float]:
        return {c: float(getattr(self, c)) for c in COMPONENTS}


class WeightFitConfig(BaseModel):
    """How :func:`~barberpro_ml.providers.fit_provider_weights` fits the weights on a signal
    observed after its cut-off (the procedure and its reasons: :mod:`barberpro_ml.providers.
    weights`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    horizon_days: int = Field(180, ge=30, le=3650)
    """Length of the later window whose signal the score should predict."""
    target: Literal["rating", "retention", "both"] = "rating"
    """The later signal: the shrunk mean rating of the reviews created in the window (the
    direct measure of the experience in the chair), the return of the barber's customer base,
    or the mean of their percentiles."""
    grid_step: float = Field(0.1, gt=0, le=0.5)
    """Every weight picked on a resample is a multiple of this (must divide 1)."""
    min_weight: float = Field(0.0, ge=0, le=0.2)
    """Smallest weight of every measured component. 0: a component that does not help predict
    the later signal gets no share (it is still reported in its own column)."""
    n_bootstrap: int = Field(100, ge=10, le=10_000)
    """Resamples of the barbers: the fitted weights are the mean of their picks."""
    percentile_candidates: tuple[Literal["neighborhood", "marketplace"], ...] = Field(
        ("neighborhood", "marketplace"), min_length=1)
    """Percentile references compared by out-of-bag rank agreement; the better one is kept."""
    seed: int = Field(0, ge=0)
    """Seed of the resamples."""

    @model_validator(mode="after")
    def _step_divides_one(self) -> WeightFitConfig:
        units = round(1.0 / self.grid_step)
        if abs(units * self.grid_step - 1.0) > 1e-9:
            raise ValueError(f"fit.grid_step must divide 1 (0.05, 0.1, 0.2, 0.25, 0.5), got "
                             f"{self.grid_step}")
        return self


class ProviderScoreConfig(BaseModel):
    """``configs/providers.yaml``: the provider score and the actions built on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: ComponentWeights = Field(default_factory=ComponentWeights)
    percentile_within: Literal["neighborhood", "marketplace"] = "marketplace"
    """Each component is a percentile among every barber of the marketplace, or among the
    barbers of the same neighborhood (like with like: the same customers, prices and season,
    but real differences of quality between neighborhoods are discarded). The default is the
    reference :func:`~barberpro_ml.providers.fit_provider_weights` selects on the default
    simulation by out-of-bag rank agreement with the later ratings."""
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
    fit: WeightFitConfig = Field(default_factory=WeightFitConfig)
    """Settings of :func:`~barberpro_ml.providers.fit_provider_weights`, which refits
    ``weights`` and ``percentile_within`` on a later signal of the user's own data."""

    @classmethod
    def from_yaml(cls, path: str | Path) -> ProviderScoreConfig:
        return load_yaml_model(cls, path)


def load_score_config(path: str | Path | None = None) -> ProviderScoreConfig:
    """The provider-score config: ``path``, or the shipped ``providers.yaml``."""
    return ProviderScoreConfig.from_yaml(shipped_config("providers.yaml") if path is None
                                         else path)
