"""Stage 2 of the flow: point-in-time features, forward-looking labels and out-of-time splits.

Every builder takes ``(data, as_of)`` with ``as_of`` a naive UTC timestamp and uses only the
events known at ``as_of`` (``created_at <= as_of``; booking outcomes once
``scheduled_at <= as_of``); labels look only at ``(as_of, as_of + horizon_days]``.
"""

from barberpro_ml.features.blocks import (
    customer_blocks,
    customer_feature_blocks,
    feature_arrow_schema,
)
from barberpro_ml.features.catalog import (
    DEFAULT_WINDOWS,
    FeatureSpec,
    customer_feature_specs,
    feature_catalog,
    provider_feature_catalog,
    provider_feature_specs,
)
from barberpro_ml.features.customer import customer_features, provider_review_totals
from barberpro_ml.features.labels import (
    DEFAULT_ACTIVE_WINDOW_DAYS,
    active_customers,
    churn_labels,
    last_labelable_as_of,
    ltv_labels,
    next_service_labels,
)
from barberpro_ml.features.lifecycle import (
    LIFECYCLE_STAGES,
    lifecycle_journey,
    lifecycle_stages,
    population_median_gap,
)
from barberpro_ml.features.matrix import model_matrix
from barberpro_ml.features.provider import provider_features
from barberpro_ml.features.rfm import (
    RFM_FEATURES,
    WEEK_DAYS,
    completed_transactions,
    customer_rfm,
    rfm_features,
    rfm_summary,
    with_rfm_features,
)
from barberpro_ml.features.splits import (
    LABEL_COLUMNS,
    TimeSplit,
    check_time_layout,
    time_split,
    training_frame,
)

__all__ = [
    "DEFAULT_ACTIVE_WINDOW_DAYS",
    "DEFAULT_WINDOWS",
    "LABEL_COLUMNS",
    "LIFECYCLE_STAGES",
    "RFM_FEATURES",
    "WEEK_DAYS",
    "FeatureSpec",
    "TimeSplit",
    "active_customers",
    "check_time_layout",
    "churn_labels",
    "completed_transactions",
    "customer_blocks",
    "customer_feature_blocks",
    "customer_feature_specs",
    "customer_features",
    "customer_rfm",
    "feature_arrow_schema",
    "feature_catalog",
    "last_labelable_as_of",
    "lifecycle_journey",
    "lifecycle_stages",
    "ltv_labels",
    "model_matrix",
    "next_service_labels",
    "population_median_gap",
    "provider_feature_catalog",
    "provider_feature_specs",
    "provider_features",
    "provider_review_totals",
    "rfm_features",
    "rfm_summary",
    "time_split",
    "training_frame",
    "with_rfm_features",
]
