"""Stage 4: honest evaluation (metrics with bootstrap confidence intervals, slices, plots, and
the train/test overlap check)."""

from barberpro_ml.evaluation.backtest import (
    BacktestReport,
    BacktestRow,
    BacktestSplit,
    rolling_origin_backtest,
)
from barberpro_ml.evaluation.bootstrap import (
    PairedDifference,
    bootstrap_metric,
    paired_bootstrap,
    percentile_interval,
    resample_counts,
    resample_indices,
)
from barberpro_ml.evaluation.classification import (
    BASELINE_METRICS,
    CalibrationBin,
    ClassificationReport,
    ClassificationSliceReport,
    ConfusionMatrix,
    evaluate_classifier,
    evaluate_scores,
)
from barberpro_ml.evaluation.metrics import CLASSIFICATION_METRICS, HIGHER_IS_BETTER, BinaryScores
from barberpro_ml.evaluation.overlap import DEFAULT_MAX_EXCESS, OverlapReport, check_overlap
from barberpro_ml.evaluation.proportions import wilson_interval
from barberpro_ml.evaluation.ranking import (
    RANKING_METRICS,
    RankingReport,
    ValidationSearch,
    evaluate_recommender,
    paired_ranking_difference,
    per_user_ranking_metrics,
    ranking_metric_names,
    select_on_validation,
)
from barberpro_ml.evaluation.regression import (
    REGRESSION_METRICS,
    DecileBin,
    RegressionReport,
    evaluate_ltv,
    plot_decile_calibration,
    plot_predicted_vs_actual,
    regression_metrics,
)
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate, SliceReport
from barberpro_ml.evaluation.uplift import (
    POOLED,
    OfferEffect,
    campaign_effects,
    offer_pays,
    pooled_risk_ratio,
)

__all__ = [
    "BASELINE_METRICS",
    "CLASSIFICATION_METRICS",
    "DEFAULT_MAX_EXCESS",
    "HIGHER_IS_BETTER",
    "POOLED",
    "RANKING_METRICS",
    "REGRESSION_METRICS",
    "BacktestReport",
    "BacktestRow",
    "BacktestSplit",
    "BinaryScores",
    "CalibrationBin",
    "ClassificationReport",
    "ClassificationSliceReport",
    "ConfusionMatrix",
    "DecileBin",
    "EvaluationReport",
    "MetricEstimate",
    "OfferEffect",
    "OverlapReport",
    "PairedDifference",
    "RankingReport",
    "RegressionReport",
    "SliceReport",
    "ValidationSearch",
    "bootstrap_metric",
    "campaign_effects",
    "check_overlap",
    "evaluate_classifier",
    "evaluate_ltv",
    "evaluate_recommender",
    "evaluate_scores",
    "offer_pays",
    "paired_bootstrap",
    "paired_ranking_difference",
    "per_user_ranking_metrics",
    "percentile_interval",
    "plot_decile_calibration",
    "plot_predicted_vs_actual",
    "pooled_risk_ratio",
    "ranking_metric_names",
    "regression_metrics",
    "resample_counts",
    "resample_indices",
    "rolling_origin_backtest",
    "select_on_validation",
    "wilson_interval",
]
