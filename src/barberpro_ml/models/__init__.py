"""Stage 3: models fitted on point-in-time features: churn classifier, BG/NBD and
Gamma-Gamma lifetime value, implicit-feedback recommenders (``models.recs``), customer
segments (RFM and behavioural clusters with ids stable across retrains)."""

from typing import TYPE_CHECKING

from barberpro_ml._lazy import attach

# The exports, imported on first use (see barberpro_ml._lazy): loading a registered model
# imports only the modules it needs.
if TYPE_CHECKING:
    from barberpro_ml.models import recs
    from barberpro_ml.models._tabular import TabularSchema, UnseenCategoryWarning
    from barberpro_ml.models.churn import (
        BLEND_WEIGHTS,
        CALIBRATION_METHODS,
        ChurnClassifier,
        IsotonicCalibrator,
        PlattCalibrator,
        accuracy_threshold,
        tune,
    )
    from barberpro_ml.models.clv import (
        BetaGeoModel,
        BetaGeoParams,
        ConvergenceError,
        GammaGammaModel,
        GammaGammaParams,
        customer_lifetime_value,
    )
    from barberpro_ml.models.ltv import LTVRegressor
    from barberpro_ml.models.ltv_candidates import BlendedLTV, NaiveLTV, ProbabilisticLTV
    from barberpro_ml.models.segments import (
        RFM_SEGMENTS,
        CustomerSegmenter,
        RFMEdges,
        cluster_agreement,
        rfm_edges,
        rfm_scores,
        segment_profiles,
    )
else:
    __getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "BLEND_WEIGHTS",
    "CALIBRATION_METHODS",
    "RFM_SEGMENTS",
    "BetaGeoModel",
    "BetaGeoParams",
    "BlendedLTV",
    "ChurnClassifier",
    "ConvergenceError",
    "CustomerSegmenter",
    "GammaGammaModel",
    "GammaGammaParams",
    "IsotonicCalibrator",
    "LTVRegressor",
    "NaiveLTV",
    "PlattCalibrator",
    "ProbabilisticLTV",
    "RFMEdges",
    "TabularSchema",
    "UnseenCategoryWarning",
    "accuracy_threshold",
    "cluster_agreement",
    "customer_lifetime_value",
    "recs",
    "rfm_edges",
    "rfm_scores",
    "segment_profiles",
    "tune",
]
