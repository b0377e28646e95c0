"""Stage 1 of the flow: the event-table data contract, its validation, and the simulator."""

from barberpro_ml.data.container import GroundTruth, MarketplaceData
from barberpro_ml.data.schema import BOOKING_STATUSES, CONTRACT, PRICE_TIERS, TABLES, ColumnSpec
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
    "validate_tables",
]
