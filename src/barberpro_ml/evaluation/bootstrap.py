"""Nonparametric bootstrap: resamples in chunks, percentile intervals, paired differences.

Resamples are drawn as an index matrix (``n_resamples x n_rows``, rows drawn with replacement)
in chunks small enough to keep memory bounded, and turned into per-row counts for the
vectorised metrics of :mod:`barberpro_ml.evaluation.metrics`. For a given ``seed`` the
resamples are the same whatever the chunk size and whichever path (named metric or callable)
consumes them, so replicate ``i`` of every metric computed with one seed comes from the same
rows: the replicates of two metrics (or of a model and its baseline) can be compared pairwise.

Intervals are percentile intervals [1]_ (chapter 13): the ``(1 - confidence) / 2`` and
``(1 + confidence) / 2`` quantiles of the replicates. Replicates where a metric is undefined
(NaN, e.g. an AUC on a resample without positives) are dropped before the quantiles.

References
----------
.. [1] Efron, B. & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, cast

import numpy as np
from threadpoolctl import threadpool_limits

from barberpro_ml.evaluation.metrics import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    BinaryScores,
    check_binary_scores,
)
from barberpro_ml.evaluation.report import MetricEstimate

__all__ = [
    "PairedDifference",
    "bootstrap_metric",
    "estimate",
    "paired_bootstrap",
    "percentile_interval",
    "resample_counts",
    "resample_indices",
    "single_threaded_blas",
]

_CHUNK_ELEMENTS = 1_000_000
"""Entries of one chunk's index matrix (8 MB); bounds memory whatever the data size."""


def resample_indices(
    n: int, n_bootstrap: int, seed: int | np.random.Generator, *,
    chunk_elements: int = _CHUNK_ELEMENTS,
) -> Iterator[np.ndarray]:
    """Bootstrap index matrices, ``(chunk, n)`` each, ``n_bootstrap`` rows in all.

    Parameters
    ----------
    n
        Rows in the data.
    n_bootstrap
        Resamples in total.
    seed
        Seed (or generator) of the resamples.
    chunk_elements
        Upper bound on ``chunk * n`` (at least one resample per chunk).

    Yields
    ------
    ndarray of int64, shape (chunk, n)

    Examples
    --------
    >>> sum(len(block) for block in resample_indices(100, 25, seed=0, chunk_elements=1000))
    25
    """
    if n < 1:
        raise ValueError(f"cannot resample {n} rows")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    rng = np.random.default_rng(seed)
    chunk = max(1, chunk_elements // n)
    done = 0
    while done < n_bootstrap:
        size = min(chunk, n_bootstrap - done)
        # drawn row by row, so the stream (and each resample) does not depend on the chunking
        yield np.stack([rng.integers(0, n, size=n) for _ in range(size)])
        done += size


def resample_counts(
    n: int, n_bootstrap: int, seed: int | np.random.Generator, *,
    chunk_elements: int = _CHUNK_ELEMENTS,
) -> Iterator[np.ndarray]:
    """The resamples of :func:`resample_indices` as counts: ``w[b, i]`` = draws of row ``i``."""
    for indices in resample_indices(n, n_bootstrap, seed, chunk_elements=chunk_elements):
        size = len(indices)
        offsets = (np.arange(size) * n)[:, None]
        yield np.bincount((indices + offsets).ravel(), minlength=size * n).reshape(size, n)


def single_threaded_blas() -> AbstractContextManager[Any]:
    """Limit BLAS to one thread while bootstrapping.

    The per-chunk products are small (``chunk x n`` by ``n x 22``): extra BLAS threads gain
    nothing, and on a machine whose cores are busy with other work, OpenBLAS threads waiting
    for each other turned 2 ms products into 1-3 s stalls in our measurements.
    """
    return cast(AbstractContextManager[Any], threadpool_limits(limits=1, user_api="blas"))


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval, ignoring NaN replicates (NaN if none are left)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


def estimate(
    name: str, value: float, replicates: np.ndarray, *, confidence: float = 0.95,
    higher_is_better: bool = True, keep_replicates: bool = True,
) -> MetricEstimate:
    """A :class:`MetricEstimate` from a point value and its bootstrap replicates.

    Without finite replicates (``n_bootstrap=0``, or a metric undefined on every resample)
    the interval collapses to the point value.
    """
    finite = replicates[np.isfinite(replicates)]
    low, high = percentile_interval(finite, confidence) if finite.size else (value, value)
    return MetricEstimate(
        name=name, value=float(value), ci_low=low, ci_high=high, confidence=confidence,
        higher_is_better=higher_is_better,
        replicates=finite.tolist() if keep_replicates else [],
    )


def bootstrap_metric(
    metric: Callable[..., float],
    *arrays: Any,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    name: str | None = None,
    higher_is_better: bool = True,
) -> MetricEstimate:
    """Bootstrap any metric of row-aligned arrays, e.g. ``metric(y_true, y_pred)``.

    Loops over resamples (not rows): use it for metrics without a vectorised kernel.

    Examples
    --------
    >>> from sklearn.metrics import mean_absolute_error
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=200)
    >>> est = bootstrap_metric(mean_absolute_error, y, y + 0.1, n_bootstrap=50,
    ...                        higher_is_better=False)
    >>> round(est.value, 6), round(est.ci_low, 6)
    (0.1, 0.1)
    """
    columns = [np.asarray(a) for a in arrays]
    if not columns:
        raise ValueError("pass at least one array")
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError(f"arrays have different lengths: {[len(c) for c in columns]}")
    value = float(metric(*columns))
    replicates = [
        float(metric(*(c[rows] for c in columns)))
        for block in resample_indices(n, n_bootstrap, seed)
        for rows in block
    ]
    label = name or str(getattr(metric, "__name__", "metric"))
    return estimate(label, value, np.asarray(replicates, dtype=float), confidence=confidence,
                    higher_is_better=higher_is_better)


class PairedDifference(MetricEstimate):
    """``metric(a) - metric(b)`` on the same resampled rows, with its percentile interval.

    ``value``/``ci_low``/``ci_high``/``replicates`` describe the difference; ``value_a`` and
    ``value_b`` are the two metrics on the full sample. ``higher_is_better`` is the metric's
    direction, so a positive difference means "a is better" only when it is True.
    """

    metric: str
    value_a: float
    value_b: float
    n_bootstrap: int
    seed: int | None


def paired_bootstrap(
    y: Any,
    p_a: Any,
    p_b: Any,
    metric: str | Callable[[np.ndarray, np.ndarray], float],
    n_bootstrap: int = 1000,
    seed: int = 0,
    *,
    confidence: float = 0.95,
    threshold_a: float = 0.5,
    threshold_b: float = 0.5,
    ece_bins: int = 15,
    higher_is_better: bool | None = None,
) -> PairedDifference:
    """Paired bootstrap of the difference of a metric between two scorers on the same rows.

    Both scorers are evaluated on every resample of the rows, so what the rows have in common
    (hard customers, easy ones) cancels out of the difference [1]_; this is the test of a
    challenger against the champion on one test set.

    Parameters
    ----------
    y
        Labels (0/1) shared by both scorers.
    p_a, p_b
        Scores of the two models on the same rows (e.g. challenger, champion).
    metric
        A name from :data:`~barberpro_ml.evaluation.metrics.CLASSIFICATION_METRICS`
        (vectorised; ``y`` must be binary and the scores probabilities), or any callable
        ``metric(y, p) -> float`` (evaluated once per resample; works for regression too).
    n_bootstrap, seed, confidence
        Resamples, their seed, and the interval's level.
    threshold_a, threshold_b
        Decision thresholds of each scorer for threshold metrics (``accuracy``...).
    ece_bins
        Bins for ``ece``.
    higher_is_better
        Direction of a callable metric (named metrics know their own).

    Returns
    -------
    PairedDifference

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 500)
    >>> good, noisy = 0.3 + 0.4 * y, np.clip(0.3 + 0.4 * y + rng.normal(0, 0.4, 500), 0, 1)
    >>> diff = paired_bootstrap(y, good, noisy, "roc_auc", n_bootstrap=200, seed=1)
    >>> diff.ci_low > 0
    True
    """
    if isinstance(metric, str):
        if metric not in HIGHER_IS_BETTER:
            raise ValueError(
                f"unknown metric {metric!r}; named metrics are {list(CLASSIFICATION_METRICS)} "
                "(or pass a callable metric(y, p))"
            )
        y01, pa = check_binary_scores(y, p_a)
        _, pb = check_binary_scores(y, p_b)
        scores_a = BinaryScores(y01, pa, threshold=threshold_a, ece_bins=ece_bins)
        scores_b = BinaryScores(y01, pb, threshold=threshold_b, ece_bins=ece_bins)
        ones = np.ones((1, len(y01)))
        value_a = float(scores_a.compute(ones)[metric][0])
        value_b = float(scores_b.compute(ones)[metric][0])
        with single_threaded_blas():
            parts = [
                scores_a.compute(w)[metric] - scores_b.compute(w)[metric]
                for w in resample_counts(len(y01), n_bootstrap, seed)
            ]
        direction = HIGHER_IS_BETTER[metric]
        name = metric
    else:
        y_arr, pa, pb = np.asarray(y), np.asarray(p_a), np.asarray(p_b)
        if not len(y_arr) == len(pa) == len(pb):
            raise ValueError(
                f"y, p_a and p_b must have the same rows; got {len(y_arr)}, {len(pa)}, {len(pb)}"
            )
        value_a, value_b = float(metric(y_arr, pa)), float(metric(y_arr, pb))
        parts = [
            np.asarray([metric(y_arr[r], pa[r]) - metric(y_arr[r], pb[r]) for r in block])
            for block in resample_indices(len(y_arr), n_bootstrap, seed)
        ]
        direction = True if higher_is_better is None else higher_is_better
        name = str(getattr(metric, "__name__", "metric"))
    replicates = np.concatenate(parts) if parts else np.empty(0)
    base = estimate(f"{name}_difference", value_a - value_b, replicates, confidence=confidence,
                    higher_is_better=direction)
    return PairedDifference(
        **base.model_dump(), metric=name, value_a=value_a, value_b=value_b,
        n_bootstrap=n_bootstrap, seed=seed,
    )
