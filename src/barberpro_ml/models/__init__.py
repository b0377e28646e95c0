"""Stage 3: models fitted on point-in-time features: churn classifier, BG/NBD and
Gamma-Gamma lifetime value, implicit-feedback recommenders (``models.recs``)."""

from barberpro_ml.models import recs
from barberpro_ml.models._tabular import TabularSchema, UnseenCategoryWarning
from barberpro_ml.models.churn import (
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

__all__ = [
    "CALIBRATION_METHODS",
    "BetaGeoModel",
    "BetaGeoParams",
    "ChurnClassifier",
    "ConvergenceError",
    "GammaGammaModel",
    "GammaGammaParams",
    "IsotonicCalibrator",
    "LTVRegressor",
    "PlattCalibrator",
    "TabularSchema",
    "UnseenCategoryWarning",
    "accuracy_threshold",
    "customer_lifetime_value",
    "recs",
    "tune",
]
