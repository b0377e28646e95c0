"""Evaluate a binary classifier on held-out rows: every metric with a bootstrap 95% CI.

:func:`evaluate_classifier` scores a fitted model; :func:`evaluate_scores` takes raw
probabilities (an oracle's, a baseline's, another library's). Both return a
:class:`ClassificationReport`, the serialisable record the gates read.

All metrics of one report (and its baselines) are computed on the **same** bootstrap resamples
(see :mod:`barberpro_ml.evaluation.bootstrap`), so when no replicate was dropped as undefined,
replicate ``i`` of every metric refers to the same resampled rows. Metric definitions, ECE
binning included, are in :mod:`barberpro_ml.evaluation.metrics`.

Baselines (same resamples):

- ``accuracy``: always predicting the majority class of the evaluation set ("nobody churns"
  when churners are the minority).
- ``roc_auc``: 0.5, a constant score.
- ``pr_auc``, ``brier``, ``log_loss``: a constant score equal to the evaluation set's churn
  rate (it knows the test prevalence, so the baseline is if anything flattered).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.evaluation.bootstrap import estimate, resample_counts, single_threaded_blas
from barberpro_ml.evaluation.metrics import (
    CLASSIFICATION_METRICS,
    CONFIDENCE_DISTRIBUTION_METRICS,
    HIGHER_IS_BETTER,
    BinaryScores,
    check_binary_scores,
)
from barberpro_ml.evaluation.overlap import overlap_of
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate, SliceReport

__all__ = [
    "BASELINE_METRICS",
    "CalibrationBin",
    "ClassificationReport",
    "ClassificationSliceReport",
    "ConfusionMatrix",
    "evaluate_classifier",
    "evaluate_scores",
]

BASELINE_METRICS = ("accuracy", "roc_auc", "pr_auc", "brier", "log_loss")
_BASELINE_NAMES = {
    "accuracy": "majority_class_accuracy",
    "roc_auc": "constant_score_roc_auc",
    "pr_auc": "prevalence_pr_auc",
    "brier": "prevalence_brier",
    "log_loss": "prevalence_log_loss",
}
_MISSING_LEVEL = "<missing>"


class ConfusionMatrix(BaseModel):
    """Counts at a decision threshold (positive = churned, predicted when ``p > threshold``)."""

    model_config = ConfigDict(frozen=True)

    threshold: float
    tn: int
    fp: int
    fn: int
    tp: int


class CalibrationBin(BaseModel):
    """One equal-mass bin of the reliability diagram (the bins ``ece`` is computed on)."""

    model_config = ConfigDict(frozen=True)

    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed_rate: float


class ClassificationSliceReport(SliceReport):
    """A slice's metrics; ``small`` when it has fewer rows than the report's minimum."""

    small: bool = False


class ClassificationReport(EvaluationReport):
    """Metrics of a binary classifier with bootstrap CIs, baselines and slices.

    Attributes
    ----------
    metrics
        Keyed by :data:`~barberpro_ml.evaluation.metrics.CLASSIFICATION_METRICS`.
    baselines
        Keyed by :data:`BASELINE_METRICS` (see the module docstring).
    threshold
        Decision threshold of ``accuracy``, ``precision``, ``recall``, ``f1``,
        ``balanced_accuracy`` and the confusion matrix.
    positive_rate, predicted_positive_rate
        Share of positive labels, and of rows predicted positive at ``threshold``.
    """

    kind: Literal["classification"] = "classification"
    threshold: float
    confidence: float = 0.95
    positive_rate: float
    predicted_positive_rate: float
    confusion_matrix: ConfusionMatrix
    calibration_bins: list[CalibrationBin] = Field(default_factory=list)
    ece_bins: int = 15
    min_slice_size: int = 0
    slices: list[ClassificationSliceReport] = Field(default_factory=list)  # type: ignore[assignment]

    def summary(self) -> pd.DataFrame:
        """One row per metric: value, CI, and the baseline where there is one."""
        rows = []
        for name, m in self.metrics.items():
            base = self.baselines.get(name)
            rows.append({
                "metric": name, "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high,
                "baseline": base.value if base else np.nan,
            })
        return pd.DataFrame(rows).set_index("metric")


def _estimates(
    scores: BinaryScores, n_bootstrap: int, seed: int | Sequence[int], confidence: float,
    *, keep_replicates: bool = True, names: Sequence[str] = CLASSIFICATION_METRICS,
    extra: BinaryScores | None = None, group_codes: np.ndarray | None = None,
) -> tuple[dict[str, MetricEstimate], dict[str, MetricEstimate]]:
    """Estimates of ``scores`` (and of the baseline ``extra``) on the same resamples.

    With ``group_codes`` (``0..G-1`` per row) whole groups are resampled (a cluster
    bootstrap): a row's weight is the number of times its group was drawn.
    """
    point = scores.compute(np.ones((1, scores.n)))
    point_extra = extra.compute(np.ones((1, scores.n))) if extra is not None else {}
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in CLASSIFICATION_METRICS}
    chunks_extra: dict[str, list[np.ndarray]] = {name: [] for name in BASELINE_METRICS}
    units = scores.n if group_codes is None else int(group_codes.max()) + 1
    with single_threaded_blas():
        for unit_weights in resample_counts(units, n_bootstrap, np.random.default_rng(seed)):
            weights = unit_weights if group_codes is None else unit_weights[:, group_codes]
            for name, values in scores.compute(weights).items():
                chunks[name].append(values)
            if extra is not None:
                for name, values in extra.compute(weights).items():
                    if name in chunks_extra:
                        chunks_extra[name].append(values)

    def build(name: str, label: str, value: float, parts: list[np.ndarray]) -> MetricEstimate:
        replicates = np.concatenate(parts) if parts else np.empty(0)
        if name in CONFIDENCE_DISTRIBUTION_METRICS and label == name:
            # an analytic interval at every level, not resamples (metrics module docstring)
            replicates = scores.rms_calibration_quantiles(len(replicates))
        return estimate(label, value, replicates, confidence=confidence,
                        higher_is_better=HIGHER_IS_BETTER[name], keep_replicates=keep_replicates)

    metrics = {
        name: build(name, name, float(point[name][0]), chunks[name])
        for name in names
        if np.isfinite(point[name][0])
    }
    baselines = {
        name: build(name, _BASELINE_NAMES[name], float(point_extra[name][0]), chunks_extra[name])
        for name in BASELINE_METRICS
        if extra is not None and np.isfinite(point_extra[name][0])
    }
    return metrics, baselines


def _calibration_bins(y: np.ndarray, p: np.ndarray, scores: BinaryScores) -> list[CalibrationBin]:
    k = len(scores.bin_edges) - 1
    counts = np.bincount(scores.bins, minlength=k)
    sum_p = np.bincount(scores.bins, weights=p, minlength=k)
    sum_y = np.bincount(scores.bins, weights=y, minlength=k)
    return [
        CalibrationBin(lower=float(scores.bin_edges[b]), upper=float(scores.bin_edges[b + 1]),
                       count=int(counts[b]), mean_predicted=float(sum_p[b] / counts[b]),
                       observed_rate=float(sum_y[b] / counts[b]))
        for b in range(k) if counts[b] > 0
    ]


def _slice_seed(seed: int, dimension: str, level: str) -> list[int]:
    # a stable seed per slice: adding or removing a slice never changes another's CI
    return [seed, zlib.crc32(dimension.encode()), zlib.crc32(level.encode())]


def _slice_reports(
    y: np.ndarray, p: np.ndarray, slices: pd.DataFrame, *, threshold: float, ece_bins: int,
    n_bootstrap: int, seed: int, confidence: float, min_slice_size: int, max_levels: int,
    keep_replicates: bool,
) -> list[ClassificationSliceReport]:
    reports = []
    for dimension in slices.columns:
        column = slices[dimension]
        labels = column.astype(object).where(column.notna(), _MISSING_LEVEL).astype(str)
        levels = pd.unique(labels.to_numpy())
        if len(levels) > max_levels:
            raise ValueError(
                f"slice column {dimension!r} has {len(levels)} levels (more than "
                f"max_slice_levels={max_levels}); band it first (e.g. tenure into bands)"
            )
        for level in sorted(levels):
            rows = np.flatnonzero(labels.to_numpy() == level)
            scores = BinaryScores(y[rows], p[rows], threshold=threshold,
                                  ece_bins=min(ece_bins, len(rows)))
            metrics, _ = _estimates(
                scores, n_bootstrap, _slice_seed(seed, str(dimension), level), confidence,
                keep_replicates=keep_replicates,
            )
            reports.append(ClassificationSliceReport(
                dimension=str(dimension), level=level, n=len(rows),
                positives=int(y[rows].sum()), metrics=metrics, small=len(rows) < min_slice_size,
            ))
    return reports


def _group_codes(groups: Any, n: int) -> np.ndarray | None:
    """``0..G-1`` codes of the row groups, or None without groups."""
    if groups is None:
        return None
    labels = pd.Series(np.asarray(groups).reshape(-1))
    if len(labels) != n:
        raise ValueError(f"groups has {len(labels)} labels but the evaluation set has {n} rows")
    missing = labels.isna()
    if missing.any():
        raise ValueError(f"groups: {int(missing.sum())} of {n} rows have no group label "
                         f"(e.g. row {int(np.flatnonzero(missing.to_numpy())[0])})")
    codes, _ = pd.factorize(labels, sort=True)
    return np.asarray(codes, dtype=np.int64)


def _aligned_slices(slices: Any, n: int, index: pd.Index | None) -> pd.DataFrame:
    frame = slices.to_frame() if isinstance(slices, pd.Series) else pd.DataFrame(slices)
    if len(frame) != n:
        raise ValueError(f"slices has {len(frame)} rows but the evaluation set has {n}")
    if index is not None and isinstance(slices, pd.DataFrame | pd.Series) and not (
        frame.index.equals(index)
    ):
        raise ValueError(
            "slices and X (or y) have different indexes; pass slices aligned row-for-row "
            "(e.g. slices.set_index(X.index) after checking the order)"
        )
    return frame


def evaluate_scores(
    y: Any,
    p: Any,
    *,
    threshold: float = 0.5,
    n_bootstrap: int = 1000,
    seed: int = 0,
    slices: pd.DataFrame | pd.Series | None = None,
    min_slice_size: int = 200,
    max_slice_levels: int = 100,
    family: str = "churn",
    confidence: float = 0.95,
    ece_bins: int = 15,
    keep_slice_replicates: bool = True,
    notes: Sequence[str] = (),
    X: pd.DataFrame | None = None,
    train: pd.DataFrame | None = None,
    horizon_days: int | None = None,
    groups: Any = None,
) -> ClassificationReport:
    """Evaluate probabilities ``p`` against labels ``y`` with bootstrap CIs.

    Parameters
    ----------
    y
        Labels (0/1, bool, or two values where the larger is positive).
    p
        Probability of the positive class for each row.
    threshold
        Decision threshold (positive when ``p > threshold``) for the threshold metrics.
    n_bootstrap
        Resamples for the CIs (0: intervals collapse to the point value).
    seed
        Seed of the resamples (slices use seeds derived from it and their name).
    slices
        Slice dimensions aligned with the rows (e.g. columns ``channel``, ``neighborhood``,
        ``tenure_band``); each level gets its own metrics. Missing values form the level
        ``"<missing>"``.
    min_slice_size
        Slices with fewer rows are still reported but flagged ``small=True``.
    max_slice_levels
        More levels in a slice column is an error (a continuous column must be banded first).
    family
        Model family recorded in the report.
    confidence
        Level of the percentile intervals.
    ece_bins
        Equal-mass bins of ``ece`` and of ``calibration_bins``.
    keep_slice_replicates
        Keep the slices' bootstrap replicates in the report (they dominate its size).
    notes
        Free-text notes to store in the report.
    X
        The evaluated rows' features (with their ids as columns or index levels), when there
        are any: compared with ``train``.
    train
        The training rows (same columns as ``X``; extra columns such as the label are
        ignored). When given, the report's ``overlap`` records how many evaluated rows repeat
        training rows (:func:`~barberpro_ml.evaluation.check_overlap`; ids: index levels and
        ``*_id`` columns, times: ``as_of``); the gates refuse a report without it.
    horizon_days
        Label period, for the overlap record's check that no training label reaches the test
        cut-off (needs an ``as_of`` column or index level).
    groups
        One label per row (e.g. the provider id when one provider appears at several
        cut-offs): the overall metrics' intervals then come from a cluster bootstrap that
        resamples whole groups, since rows of one group are not independent. Slices keep the
        row bootstrap. Missing labels are refused.

    Returns
    -------
    ClassificationReport

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=2000)
    >>> y = rng.uniform(size=2000) < p
    >>> report = evaluate_scores(y, p, n_bootstrap=200)
    >>> m = report.metrics["roc_auc"]
    >>> bool(m.ci_low < m.value < m.ci_high)
    True
    """
    y01, p_arr = check_binary_scores(y, p)
    if len(np.unique(y01)) < 2:
        raise ValueError(
            f"the evaluation set has only one class ({int(y01[0])} for all {len(y01)} rows); "
            "AUC and most metrics need both churners and non-churners"
        )
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if min_slice_size < 0:
        raise ValueError(f"min_slice_size must be >= 0, got {min_slice_size}")
    n = len(y01)
    group_codes = _group_codes(groups, n)
    overlap = overlap_of(train, X, n, horizon_days=horizon_days)
    scores = BinaryScores(y01, p_arr, threshold=threshold, ece_bins=ece_bins)
    prevalence = float(y01.mean())
    baseline = BinaryScores(y01, np.full(n, prevalence), threshold=0.5, ece_bins=1)
    metrics, baselines = _estimates(scores, n_bootstrap, seed, confidence, extra=baseline,
                                    group_codes=group_codes)
    report_notes = list(notes)
    if group_codes is not None:
        n_groups = int(group_codes.max()) + 1
        positive_groups = np.unique(group_codes[y01 == 1]).size
        report_notes.append(
            f"intervals: cluster bootstrap over {n_groups} groups ({positive_groups} with a "
            f"positive row), {n} rows")
    for name, m in metrics.items():
        dropped = n_bootstrap - len(m.replicates)
        if n_bootstrap and dropped:
            report_notes.append(
                f"{name}: {dropped} of {n_bootstrap} resamples left it undefined and were dropped"
            )
    slice_reports: list[ClassificationSliceReport] = []
    if slices is not None:
        index = y.index if isinstance(y, pd.Series) else None
        slice_reports = _slice_reports(
            y01, p_arr, _aligned_slices(slices, n, index), threshold=threshold,
            ece_bins=ece_bins, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence,
            min_slice_size=min_slice_size, max_levels=max_slice_levels,
            keep_replicates=keep_slice_replicates,
        )
    predicted = p_arr > threshold
    return ClassificationReport(
        family=family,
        n=n,
        metrics=metrics,
        baselines=baselines,
        slices=slice_reports,
        n_bootstrap=n_bootstrap,
        seed=seed,
        notes=report_notes,
        threshold=float(threshold),
        confidence=confidence,
        positive_rate=prevalence,
        predicted_positive_rate=float(predicted.mean()),
        confusion_matrix=ConfusionMatrix(
            threshold=float(threshold),
            tn=int((~predicted & (y01 == 0)).sum()), fp=int((predicted & (y01 == 0)).sum()),
            fn=int((~predicted & (y01 == 1)).sum()), tp=int((predicted & (y01 == 1)).sum()),
        ),
        calibration_bins=_calibration_bins(y01.astype(float), p_arr, scores),
        ece_bins=ece_bins,
        min_slice_size=min_slice_size,
        overlap=overlap,
    )


def evaluate_classifier(
    model: Any,
    X: Any,
    y: Any,
    *,
    threshold: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    slices: pd.DataFrame | pd.Series | None = None,
    min_slice_size: int = 200,
    family: str = "churn",
    confidence: float = 0.95,
    ece_bins: int = 15,
    keep_slice_replicates: bool = True,
    train: pd.DataFrame | None = None,
    horizon_days: int | None = None,
    groups: Any = None,
) -> ClassificationReport:
    """Evaluate a fitted binary classifier on held-out rows.

    Parameters
    ----------
    model
        Fitted estimator with ``predict_proba`` and ``classes_`` (e.g. a
        :class:`~barberpro_ml.models.ChurnClassifier`); ``classes_[1]`` is the positive class.
    X, y
        Held-out features and labels (out-of-time for churn).
    threshold
        Decision threshold; default: the model's ``threshold_`` if it has one, else 0.5.
        ``accuracy_at_0_5`` is reported as well either way.
    n_bootstrap, seed, slices, min_slice_size, family, confidence, ece_bins, \
keep_slice_replicates
        As in :func:`evaluate_scores`.
    train, horizon_days
        The training features (e.g. ``X_train``) and label period: the report's ``overlap``
        records how many rows of ``X`` repeat training rows (see :func:`evaluate_scores`).
        Without ``train`` the report has no overlap record and the gates refuse it.
    groups
        Row groups for a cluster bootstrap of the intervals, as in :func:`evaluate_scores`
        (e.g. ``X.index.get_level_values("provider_id")``).

    Returns
    -------
    ClassificationReport

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = pd.DataFrame({"visits": np.arange(40) % 7, "spend": np.arange(40) * 3.0},
    ...                  index=pd.Index(np.arange(40), name="customer_id"))
    >>> y = (X["visits"] < 3).astype(int)
    >>> model = LogisticRegression().fit(X, y)
    >>> report = evaluate_classifier(model, X.iloc[::2], y.iloc[::2], train=X, n_bootstrap=0)
    >>> report.overlap.verdict, report.overlap.test_rows_in_train
    ('leak', 20)
    """
    if not hasattr(model, "predict_proba"):
        raise TypeError(f"{type(model).__name__} has no predict_proba; pass a fitted classifier")
    classes = getattr(model, "classes_", None)
    if classes is None or len(classes) != 2:
        raise ValueError("the model must be a fitted binary classifier (classes_ of length 2)")
    y_arr = np.asarray(y).reshape(-1)
    unknown = ~np.isin(y_arr, classes)
    if unknown.any():
        raise ValueError(
            f"y has {int(unknown.sum())} label(s) the model does not know "
            f"(classes_ = {list(classes)}): e.g. {pd.unique(y_arr[unknown])[:5].tolist()}"
        )
    y01 = (y_arr == classes[1]).astype(np.int64)
    p = np.asarray(model.predict_proba(X))[:, 1]
    if threshold is None:
        threshold = float(getattr(model, "threshold_", 0.5))
        source = "the model's threshold_" if hasattr(model, "threshold_") else "the default 0.5"
    else:
        source = "the threshold argument"
    # labels carry X's index so that slices are checked against it
    y_series = pd.Series(y01, index=X.index) if isinstance(X, pd.DataFrame) else y01
    return evaluate_scores(
        y_series, p, threshold=threshold, n_bootstrap=n_bootstrap, seed=seed, slices=slices,
        min_slice_size=min_slice_size, family=family, confidence=confidence, ece_bins=ece_bins,
        keep_slice_replicates=keep_slice_replicates,
        notes=[f"model: {type(model).__name__}; threshold {threshold:.4f} from {source}"],
        X=X if train is not None else None, train=train, horizon_days=horizon_days,
        groups=groups,
    )
