"""Stage 8: monitoring champions after promotion.

- :mod:`~barberpro_ml.monitoring.drift`: PSI, two-sample tests, Benjamini-Hochberg and Holm.
- :mod:`~barberpro_ml.monitoring.checks`: one champion's health at a date from the event data:
  matured-label performance against the gate's figures, drift since the training snapshot,
  a verdict (``ok`` / ``degraded`` / ``drifted``).
- :mod:`~barberpro_ml.monitoring.recs`: the same for the recommendations champion (its
  rankings against the barbers customers chose; drift of those choices and of its top picks).
- :mod:`~barberpro_ml.monitoring.forecast`: the same for the weekly forecast champion (its
  intervals against the weeks that have ended since its origin).
- :mod:`~barberpro_ml.monitoring.champions`: every registered champion checked, logged to an
  MLflow run and tagged on its version (``barberpro-ml monitor``).
"""

from barberpro_ml.monitoring.checks import (
    MONITORED,
    DriftRow,
    GateFigure,
    MaturedPerformance,
    ModelHealth,
    MonitoredFamily,
    MonitorSettings,
    Verdict,
    check_model,
    degradation_test,
    judge_performance,
    population_features,
    scheduled_explanations,
    verdict,
)
from barberpro_ml.monitoring.drift import (
    PSI_THRESHOLD,
    adjust_p_values,
    benjamini_hochberg,
    column_drift,
    feature_drift,
    holm,
    psi,
)
from barberpro_ml.monitoring.forecast import check_forecast
from barberpro_ml.monitoring.recs import RECS_DRIFT_INPUTS, check_recommender

__all__ = [
    "MONITORED",
    "PSI_THRESHOLD",
    "RECS_DRIFT_INPUTS",
    "DriftRow",
    "GateFigure",
    "MaturedPerformance",
    "ModelHealth",
    "MonitorSettings",
    "MonitoredFamily",
    "Verdict",
    "adjust_p_values",
    "benjamini_hochberg",
    "check_forecast",
    "check_model",
    "check_recommender",
    "column_drift",
    "degradation_test",
    "feature_drift",
    "holm",
    "judge_performance",
    "population_features",
    "psi",
    "scheduled_explanations",
    "verdict",
]
