"""Stage 4: honest evaluation (metrics with bootstrap confidence intervals, slices, plots)."""

from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate, SliceReport

__all__ = ["EvaluationReport", "MetricEstimate", "SliceReport"]
