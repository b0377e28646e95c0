"""Stage 3: models fitted on point-in-time features (churn classifier, ...)."""

from barberpro_ml.models._tabular import TabularSchema, UnseenCategoryWarning
from barberpro_ml.models.churn import (
    CALIBRATION_METHODS,
    ChurnClassifier,
    IsotonicCalibrator,
    PlattCalibrator,
    accuracy_threshold,
    tune,
)

__all__ = [
    "CALIBRATION_METHODS",
    "ChurnClassifier",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "TabularSchema",
    "UnseenCategoryWarning",
    "accuracy_threshold",
    "tune",
]
