"""The business definitions every stage shares, in one typed object.

What "an active customer" is, how far ahead churn and lifetime value look, what counts as
revenue: labels, features, jobs, the scorer and the service all read these from one
:class:`Definitions`, so changing ``configs/definitions.yaml`` changes them everywhere. A
training job records the definitions it trained with on the registered model version; the
scorer and the service take them from the models they serve, so a model is never scored
under another rule than the one it learned.

Examples
--------
>>> d = Definitions()
>>> d.active_window_days, d.churn_horizon_days, d.ltv_horizon_days
(180, 90, 365)
>>> Definitions(active_window_days=120).active_window_days
120
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DEFAULT_DEFINITIONS", "DEFINITIONS_TAG_PREFIX", "Definitions"]

DEFINITIONS_TAG_PREFIX = "definitions."
"""Prefix of the model-version tags that carry the definitions a model was trained with."""


class Definitions(BaseModel):
    """Cross-stage facts of the marketplace (``configs/definitions.yaml``).

    Attributes
    ----------
    active_window_days
        A customer is *active* at ``as_of`` when they completed a visit in
        ``(as_of - active_window_days, as_of]``; the churn population, the ``churned`` lifecycle
        stage and every "active customers" count use this window.
    churn_horizon_days
        The churn label's look-ahead: no completed booking in ``(as_of, as_of + horizon]``.
    ltv_horizon_days
        Lifetime value is revenue over ``(as_of, as_of + ltv_horizon_days]``.
    new_customer_days
        The lifecycle stage ``new`` lasts this long after the first visit.
    revenue
        What a booking earns the marketplace: ``price_minus_discount`` of completed bookings
        (tips go to the barber and are left out). The only definition implemented.
    currency
        ISO 4217 code of every money amount (prices, revenue, lifetime value).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    active_window_days: int = Field(180, ge=1, le=3650)
    churn_horizon_days: int = Field(90, ge=1, le=3650)
    ltv_horizon_days: int = Field(365, ge=1, le=3650)
    new_customer_days: int = Field(90, ge=1, le=3650)
    revenue: Literal["price_minus_discount"] = "price_minus_discount"
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")

    @model_validator(mode="after")
    def _new_within_active(self) -> Definitions:
        if self.new_customer_days > self.active_window_days:
            raise ValueError(
                f"new_customer_days ({self.new_customer_days}) must not exceed "
                f"active_window_days ({self.active_window_days}): a new customer is active")
        return self

    def as_tags(self) -> dict[str, str]:
        """Model-version tags ``definitions.<field>`` recording these definitions."""
        return {f"{DEFINITIONS_TAG_PREFIX}{k}": str(v) for k, v in self.model_dump().items()}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Definitions | None:
        """The definitions recorded by :meth:`as_tags`, or None when the tags hold none."""
        values = {k.removeprefix(DEFINITIONS_TAG_PREFIX): v for k, v in tags.items()
                  if k.startswith(DEFINITIONS_TAG_PREFIX)}
        return cls.model_validate(values) if values else None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Definitions:
        """Read and validate a definitions YAML (see :func:`barberpro_ml.jobs.load_config`
        for the error it raises on a bad file)."""
        from barberpro_ml.config import load_yaml_model

        return load_yaml_model(cls, path)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2)


DEFAULT_DEFINITIONS = Definitions()
"""The shipped definitions (equal to ``configs/definitions.yaml``; a test checks they agree)."""
