"""Stage 7: the scoring API -- the champion models combined into customer profiles.

``CustomerScorer.from_registry()`` loads the champion churn, LTV, recommendation and segment
models once (serving those with a verified champion; the others' fields are null, with the
reason) under the definitions the models were trained with; ``profile`` / ``profile_batch``
return :class:`CustomerProfile` records and ``score_frame`` scores millions of customers in one
vectorised call. :class:`LiveScorer` (:mod:`barberpro_ml.scoring.live`) swaps a new verified
champion or refreshed event data into it while it serves; the HTTP service over it is the
later stage :mod:`barberpro_ml.service` (``barberpro-ml serve``).
"""

from barberpro_ml.scoring.actions import OfferPolicy, recommend_actions
from barberpro_ml.scoring.insights import (
    CampaignEffect,
    EstimateSummary,
    SuccessMetrics,
    customer_journey,
    segment_summary,
    success_metrics,
)
from barberpro_ml.scoring.live import LiveScorer, LiveStatus, ReloadAttempt, Served
from barberpro_ml.scoring.reasons import REASON_GROUPS, churn_reasons
from barberpro_ml.scoring.records import (
    BarberSuggestion,
    ChurnRisk,
    CustomerProfile,
    CustomerRecommendations,
    CustomerValue,
    FamilyStatus,
    LifecycleInfo,
    ModelRef,
    Reason,
    RecommendedAction,
    SegmentInfo,
    ServiceSuggestion,
)
from barberpro_ml.scoring.scorer import (
    DEFAULT_MODEL_NAMES,
    FAMILIES,
    FAMILY_COLUMNS,
    FAMILY_FIELDS,
    CustomerScorer,
    FeatureSchemaError,
    LoadedFamily,
    SnapshotCacheInfo,
    load_family,
    snapshot_nbytes,
)
from barberpro_ml.scoring.snapshot import CustomerSnapshot, UnknownCustomerError, build_snapshot

__all__ = [
    "DEFAULT_MODEL_NAMES",
    "FAMILIES",
    "FAMILY_COLUMNS",
    "FAMILY_FIELDS",
    "REASON_GROUPS",
    "BarberSuggestion",
    "CampaignEffect",
    "ChurnRisk",
    "CustomerProfile",
    "CustomerRecommendations",
    "CustomerScorer",
    "CustomerSnapshot",
    "CustomerValue",
    "EstimateSummary",
    "FamilyStatus",
    "FeatureSchemaError",
    "LifecycleInfo",
    "LiveScorer",
    "LiveStatus",
    "LoadedFamily",
    "ModelRef",
    "OfferPolicy",
    "Reason",
    "RecommendedAction",
    "ReloadAttempt",
    "SegmentInfo",
    "Served",
    "ServiceSuggestion",
    "SnapshotCacheInfo",
    "SuccessMetrics",
    "UnknownCustomerError",
    "build_snapshot",
    "churn_reasons",
    "customer_journey",
    "load_family",
    "recommend_actions",
    "segment_summary",
    "snapshot_nbytes",
    "success_metrics",
]
