"""Stage 1 of the flow: the event-table data contract, its validation, and the simulator."""

from barberpro_ml.data.container import GroundTruth, MarketplaceData
from barberpro_ml.data.oracle import oracle_churn_probability, oracle_offer_effect
from barberpro_ml.data.schema import BOOKING_STATUSES, CONTRACT, PRICE_TIERS, TABLES, ColumnSpec
from barberpro_ml.data.simulation import SimulationConfig, simulate
from barberpro_ml.data.validation import ContractViolation, DataContractError, validate_tables

__all__ = [
    "BOOKING_STATUSES",
    "CONTRACT",
    "PRICE_TIERS",
    "TABLES",
    "ColumnSpec",
    "ContractViolation",
    "DataContractError",
    "GroundTruth",
    "MarketplaceData",
    "SimulationConfig",
    "oracle_churn_probability",
    "oracle_offer_effect",
    "simulate",
    "validate_tables",
]
