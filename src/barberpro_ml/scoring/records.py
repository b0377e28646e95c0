"""The records the scoring API returns (pydantic): what other services receive as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ActionKind",
    "BarberSuggestion",
    "ChurnRisk",
    "CustomerProfile",
    "CustomerRecommendations",
    "CustomerValue",
    "FamilyState",
    "FamilyStatus",
    "LifecycleInfo",
    "ModelRef",
    "Reason",
    "RecommendedAction",
    "RiskBand",
    "SegmentInfo",
    "ServiceSuggestion",
]

RiskBand = Literal["low", "medium", "high"]
FamilyState = Literal["verified", "loaded", "unverified", "missing"]
ActionKind = Literal["retention_offer", "reminder", "first_booking_nudge", "none"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelRef(_Record):
    """A registered model version the scorer loaded (the alias resolved once, at load)."""

    family: str
    name: str
    alias: str
    version: str
    run_id: str | None = None
    verified: bool | None = Field(
        default=None, description="The champion carries a passing gate result bound to it and "
                                  "a promotion-log entry (None: not a champion alias).")


class FamilyStatus(_Record):
    """What the scorer serves of one model family (``/health``).

    ``state``: ``verified`` -- a champion backed by its gate result and promotion, served;
    ``loaded`` -- another alias (``challenger``...), served without the champion check;
    ``unverified`` -- a ``@champion`` exists but did not get there through the gate, not served;
    ``missing`` -- nothing to serve (no such alias, or not given). ``reason`` says why a family
    is not served; the profile fields of such a family are null.
    """

    family: str
    name: str
    state: FamilyState
    version: str | None = None
    reason: str | None = None

    @property
    def served(self) -> bool:
        return self.state in ("verified", "loaded")


class Reason(_Record):
    """One reason behind a churn score, from the churn model's SHAP values."""

    group: str = Field(description="Reason group (visit_rhythm, barber, price, ...).")
    text: str = Field(description="The reason in words, from the customer's own values.")
    impact: float = Field(description="Summed SHAP value of the group's features, in log-odds.")
    direction: Literal["raises", "lowers"] = Field(
        description="Whether it raises or lowers the churn risk.")


class ChurnRisk(_Record):
    """Probability of no completed visit within the churn horizon after ``as_of`` (the churn
    label's definition: ``Definitions.churn_horizon_days``, 90 days by default)."""

    probability: float = Field(ge=0.0, le=1.0)
    risk_band: RiskBand
    reasons: list[Reason]
    in_model_population: bool = Field(
        description="Whether the customer is in the population the churn model was trained on "
                    "(a completed visit within the active window of the models' definitions, "
                    "180 days by default); outside it the score is an extrapolation.")


class CustomerValue(_Record):
    """Expected value over the next 12 months and the BG/NBD probability of being alive."""

    expected_12m: float = Field(ge=0.0, description="Predicted revenue (price - discount) over "
                                                     "the LTV horizon of the models' definitions "
                                                     "(365 days by default; LTV champion).")
    probability_alive: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="BG/NBD P(alive) with the parameters registered with the LTV model; None "
                    "for a customer without a completed visit (the model starts at the first "
                    "one), or when the LTV version carries no BG/NBD parameters (see "
                    "`unavailable`).")


class SegmentInfo(_Record):
    """RFM scores and segment, and the behavioural cluster (segments champion)."""

    rfm_segment: str
    r_score: int
    f_score: int
    m_score: int
    cluster: int
    cluster_name: str


class LifecycleInfo(_Record):
    """Lifecycle stage at ``as_of`` from the customer's own rhythm."""

    stage: str
    usual_gap_days: float
    days_since_last_visit: float | None
    n_visits: int
    reason: str


class ServiceSuggestion(_Record):
    """A service the customer is likely to book next."""

    service_id: int
    name: str
    probability: float = Field(ge=0.0, le=1.0)


class BarberSuggestion(_Record):
    """A barber to suggest (recommendations champion), still working at ``as_of``."""

    provider_id: int
    score: float
    rank: int = Field(ge=1)


class RecommendedAction(_Record):
    """What to do about the customer, and why (see :mod:`barberpro_ml.scoring.actions`)."""

    kind: ActionKind
    text: str
    expected_gain: float | None = Field(
        default=None, description="Expected gain of a retention offer (currency units) under "
                                  "the measured campaign effect; None when no offer is "
                                  "considered.")


class CustomerProfile(_Record):
    """Everything the models and the data say about one customer at ``as_of``.

    A field group whose model family is not served is null, with the reason in
    ``unavailable`` (field group -> reason):

    ==============================  ==================  ======================================
    field group                     needs               when the family is missing
    ==============================  ==================  ======================================
    ``churn``                       churn               null
    ``value``                       ltv                 null
    ``value.probability_alive``     ltv's BG/NBD        null inside ``value`` (older versions)
    ``segment``                     segments            null
    ``barbers``                     recs                null (``[]`` means: none to suggest)
    ``action``                      churn (see below)   degraded, never null
    ``lifecycle``, ``next_service`` the data only       always present
    ==============================  ==================  ======================================

    The action's offer economics use the churn probability and the customer's own spend and
    rhythm (:mod:`barberpro_ml.scoring.actions`), not the LTV model, so only a missing churn
    model degrades it: no retention offer is considered (``expected_gain`` null), reminders go
    by the lifecycle stage alone, first-booking nudges are unchanged; ``unavailable["action"]``
    says so.
    """

    customer_id: int
    as_of: datetime
    churn: ChurnRisk | None
    value: CustomerValue | None
    segment: SegmentInfo | None
    lifecycle: LifecycleInfo
    next_service: ServiceSuggestion | None
    barbers: list[BarberSuggestion] | None
    action: RecommendedAction
    unavailable: dict[str, str] = Field(
        default_factory=dict,
        description="Field group -> why it is null or degraded (a model family not served).")
    model_versions: dict[str, str] = Field(
        description="Registered model name -> version that produced the numbers.")


class CustomerRecommendations(_Record):
    """What to suggest to one customer: next services and barbers."""

    customer_id: int
    as_of: datetime
    next_services: list[ServiceSuggestion]
    barbers: list[BarberSuggestion]
    model_versions: dict[str, str]
