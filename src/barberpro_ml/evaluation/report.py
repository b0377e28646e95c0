"""Serialisable evaluation results shared by every model family and read by the gates.

A report is a set of named :class:`MetricEstimate` values, each a point estimate with a bootstrap
confidence interval and the bootstrap replicates it came from (the gates turn replicates into
one-sided p-values for Holm's correction), plus the trivial baselines the claims are read
against and per-slice results.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.evaluation.overlap import OverlapReport


class MetricEstimate(BaseModel):
    """A metric on held-out data with a bootstrap confidence interval.

    Attributes
    ----------
    value
        The metric on the full evaluation set.
    ci_low, ci_high
        Bounds of the two-sided ``confidence`` interval (percentile bootstrap unless said).
    higher_is_better
        Direction of the metric (False for Brier score, log loss, calibration error, MAE...).
    replicates
        The bootstrap replicates (may be empty when not kept); NaN replicates are dropped.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    value: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95
    higher_is_better: bool = True
    replicates: list[float] = Field(default_factory=list, repr=False)

    def replicate_array(self) -> np.ndarray:
        """The bootstrap replicates as a float array."""
        return np.asarray(self.replicates, dtype=float)


class SliceReport(BaseModel):
    """Metrics on one slice of the evaluation set (a channel, a neighborhood, a tenure band)."""

    model_config = ConfigDict(frozen=True)

    dimension: str
    level: str
    n: int
    positives: int | None = None
    metrics: dict[str, MetricEstimate]


class EvaluationReport(BaseModel):
    """What every family's evaluation produces and what :mod:`barberpro_ml.gates` checks.

    ``metrics`` and ``baselines`` are keyed by metric name (``accuracy``, ``roc_auc``, ...);
    ``baselines`` holds the trivial reference a claim must be read against (for accuracy: the
    majority-class rate, i.e. "nobody churns"). ``overlap`` records how many evaluated rows
    repeat training rows (:func:`~barberpro_ml.evaluation.check_overlap`); None when the
    evaluation was not given the training rows, which the gates refuse.
    """

    model_config = ConfigDict(frozen=True)

    family: str
    kind: Literal["classification", "regression", "ranking", "forecast", "segmentation",
                  "causal"]
    n: int
    metrics: dict[str, MetricEstimate]
    baselines: dict[str, MetricEstimate] = Field(default_factory=dict)
    slices: list[SliceReport] = Field(default_factory=list)
    n_bootstrap: int = 0
    seed: int | None = None
    notes: list[str] = Field(default_factory=list)
    overlap: OverlapReport | None = None

    def metric(self, name: str) -> MetricEstimate:
        """The named metric, or a ``KeyError`` that lists the metrics available."""
        try:
            return self.metrics[name]
        except KeyError:
            raise KeyError(
                f"report for {self.family!r} has no metric {name!r}; "
                f"available: {sorted(self.metrics)}"
            ) from None
