"""Binary-classification metrics for a whole batch of bootstrap resamples at once.

A bootstrap resample is represented by its *counts*: ``w[i]`` = how often row ``i`` was drawn
(the full sample is ``w = 1``). Every metric here is a weighted metric, so one call evaluates a
``(n_resamples, n_rows)`` count matrix with matrix products and cumulative sums over the rows
sorted once by score - no per-resample sorting and no Python loop over rows or resamples.

Definitions (``t`` = decision threshold; a row is predicted positive when ``p > t``):

- ``roc_auc``: Mann-Whitney form, P(score of a positive > score of a negative) with ties
  counted 1/2 [1]_; equals the area under the trapezoidal ROC curve.
- ``pr_auc``: average precision, ``sum_k (R_k - R_{k-1}) P_k`` over distinct score
  thresholds, without interpolation (as ``sklearn.metrics.average_precision_score``) [2]_.
- ``accuracy`` at ``t``, ``accuracy_at_0_5`` at 0.5, ``balanced_accuracy`` (mean of TPR and
  TNR), ``precision`` (0 when nothing is predicted positive, as scikit-learn's
  ``zero_division=0``), ``recall``, ``f1``.
- ``brier``: mean squared error of ``p`` [3]_; ``log_loss``: mean negative log-likelihood
  with ``p`` clipped to ``[eps, 1 - eps]``, ``eps`` = float64 machine epsilon (as scikit-learn).
- ``ece``: expected calibration error with ``ece_bins`` (default 15) **equal-mass** bins [4]_
  [5]_: ``ECE = sum_b (n_b / n) |mean(y)_b - mean(p)_b|``. Equal-mass rather than equal-width
  because churn probabilities crowd near 0: equal-width bins leave most bins empty and put
  nearly all rows in one or two, hiding miscalibration where the customers are. Bin edges are
  the score quantiles of the full evaluation set and stay fixed across resamples.

  *Estimand.* The population calibration error of the same binning scheme,
  ``CE = sum_b pi_b |d_b|`` with ``d_b = E[y - p | p in bin b]`` and ``pi_b = P(p in bin b)``
  for the bins cut at the population quantiles of ``p`` (``CE = 0`` for a calibrated model;
  ``CE <= E|E[y | p] - p|``, the binning-free calibration error, by Jensen's inequality).

  *Interval.* The plug-in ECE is biased upwards (``E|d_hat_b| >= |d_b|``; with 15 bins of
  about 33 rows, a calibrated model scores about 0.05), and the percentile bootstrap of the
  plug-in inherits that bias twice: its interval covered the estimand in 3.5% of samples at
  n = 500. The replicates stored for ``ece`` are therefore not plug-in values of each resample
  but a *linearised* bootstrap with one-sided guarantees:

  - upper side ``ECE + (L* - ECE)``, where ``L* = sum_b (n*_b / n*) s_b d*_b`` is the
    resample's signed residual mean with the signs ``s_b = sign(d_hat_b)`` of the full sample
    (so ``L = ECE`` on the full sample). Because ``|x| >= s x`` for any sign ``s``, the
    plug-in ECE is at least the linear statistic with the *true* signs, which is asymptotically
    ``N(CE, SE^2)`` with the same ``SE^2 = sum_b pi_b^2 var_b / n_b`` whatever the signs; so
    the upper percentile bound is a valid upper confidence bound for every truth, exact when
    every bin is clearly miscalibrated and conservative otherwise. This bound (and the p-value
    from the same replicates) is what an ``ece <= c`` claim is tested with: the least
    favourable null distribution is the normal one of the linear statistic [7]_.
  - lower side ``ECE_db + (L* - ECE)``, where ``ECE_db = sum_b pi_b sqrt(max(d_hat_b^2 -
    se_b^2, 0))`` takes the square root of each bin's debiased squared error (the unbiased
    estimator of ``d_b^2`` of Kumar, Liang & Ma [7]_), so a calibrated model's lower bound
    reaches 0. Replicates are clipped at 0.

  The two sides meet at the point estimate (the full-sample replicate is the plug-in ECE), and
  each side is monotone in ``L*``, so percentile bounds and bootstrap p-values read the right
  side. Coverage measured by ``python benchmarks/gate_statistics.py`` (Monte Carlo against
  ``CE`` of the population, see ``README.md``): the upper bound covered in 97.5-100% of 400
  samples for every truth tried (calibrated, +0.04, x1.6; n = 500 and 2,000); the two-sided
  interval does not reach its nominal 95%: 99.5-100% for a miscalibrated model (96.5% at
  n = 2,000, CE 0.149) and 84% for a perfectly calibrated one (lower side) - the side an
  ``at_most`` claim does not use. The ``ece`` values :meth:`BinaryScores.compute` returns for
  a weight matrix are these replicates, not plug-in ECEs of the weighted rows.
- ``rms_calibration_error``: the root-mean-square calibration error on the same bins [7]_,
  ``RMSCE = sqrt(sum_b pi_b d_b^2)``, estimated without the upward bias of the plug-in by the
  debiased squared error ``T = sum_b w_b (d_hat_b^2 - se_b^2)`` (``w_b = n_b / n``), reported
  as ``sqrt(max(T, 0))``. It is what calibration claims are checked with: by Jensen's
  inequality ``CE <= RMSCE``, so "RMSCE at most c" implies "ECE at most c", and unlike the
  absolute values of ``ece`` it is smooth in the bin residuals, so it has an interval with
  honest coverage. *Interval*: ``T`` is asymptotically normal with variance
  ``sum_b w_b^2 (4 d_b^2 se_b^2 + 2 se_b^4)`` (the variance of a squared normal mean minus its
  unbiased correction); evaluated at a hypothesised ``theta = RMSCE^2`` with the miscalibration
  spread evenly over the bins (``d_b^2 = theta``), ``V(theta) = a theta + c`` with
  ``a = 4 sum_b w_b^2 se_b^2`` and ``c = 2 sum_b w_b^2 se_b^4``, and the interval is the set of
  ``theta >= 0`` with ``|T - theta| <= z sqrt(V(theta))`` -- a score-type inversion (as Wilson's
  interval for a proportion [8]_) whose ends are the roots of a quadratic, square-rooted. The
  variance at the hypothesised value rather than at the estimate is what keeps coverage (the
  estimated variance is small exactly when the estimate is, so a Wald interval misses on the
  upper side). The stored
  replicates of this metric are the interval's ends at levels ``(i + 0.5) / B`` (a confidence
  distribution [9]_), so the gates' percentile bounds and bootstrap p-values read the score
  interval and the score test at any confidence level. Measured coverage of the 95% interval
  (``python benchmarks/gate_statistics.py --only calibration --reps 400 --seed 1``, README):
  93.2-96.0% for a calibrated model and for small, moderate and strong miscalibration, at
  n = 500 and 2,000; its upper bound alone 98.2-100%.
- ``lift_top_decile``: churn rate among the 10% highest-scored rows divided by the overall
  churn rate [6]_; rows tied at the decile boundary enter in proportion (the expectation over
  random tie-breaking).

References
----------
.. [1] Hanley, J. A. & McNeil, B. J. (1982). The meaning and use of the area under a receiver
   operating characteristic (ROC) curve. *Radiology* 143, 29-36.
.. [2] Boyd, K., Eng, K. H. & Page, C. D. (2013). Area under the precision-recall curve:
   point estimates and confidence intervals. *ECML PKDD 2013*, 451-466.
.. [3] Brier, G. W. (1950). Verification of forecasts expressed in terms of probability.
   *Monthly Weather Review* 78, 1-3.
.. [4] Naeini, M. P., Cooper, G. & Hauskrecht, M. (2015). Obtaining well calibrated
   probabilities using Bayesian binning. *AAAI 2015*, 2901-2907.
.. [5] Nixon, J. et al. (2019). Measuring calibration in deep learning. *CVPR Workshops*
   (adaptive, equal-mass binning).
.. [6] Ling, C. X. & Li, C. (1998). Data mining for direct marketing: problems and solutions.
   *KDD '98*, 73-79 (lift).
.. [7] Kumar, A., Liang, P. & Ma, T. (2019). Verified uncertainty calibration. *NeurIPS 2019*
   (section 5: the plug-in binned calibration error is biased upwards; debiased estimator of
   the squared error, ``d_hat_b^2 - se_b^2`` per bin). See also Roelofs, R. et al. (2022).
   Mitigating bias in calibration error estimation. *AISTATS 2022*.
.. [8] Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
   inference. *JASA* 22, 209-212 (inverting a test with the variance at the hypothesised value).
.. [9] Xie, M. & Singh, K. (2013). Confidence distribution, the frequentist distribution
   estimator of a parameter: a review. *International Statistical Review* 81(1), 3-39.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd

__all__ = [
    "CLASSIFICATION_METRICS",
    "CONFIDENCE_DISTRIBUTION_METRICS",
    "HIGHER_IS_BETTER",
    "BinaryScores",
    "check_binary_scores",
    "equal_mass_bins",
    "rms_calibration_quantiles",
]

HIGHER_IS_BETTER: Final[dict[str, bool]] = {
    "roc_auc": True,
    "pr_auc": True,
    "accuracy": True,
    "accuracy_at_0_5": True,
    "balanced_accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "brier": False,
    "log_loss": False,
    "ece": False,
    "rms_calibration_error": False,
    "lift_top_decile": True,
}
"""Direction of every classification metric (the report keys, fixed: the gates use them)."""

CLASSIFICATION_METRICS: Final = tuple(HIGHER_IS_BETTER)

CONFIDENCE_DISTRIBUTION_METRICS: Final = frozenset({"rms_calibration_error"})
"""Metrics whose stored "replicates" are quantiles of a confidence distribution (an analytic
interval at every level), not bootstrap resamples: see ``rms_calibration_error`` above."""

_LOG_EPS = float(np.finfo(np.float64).eps)


def check_binary_scores(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as 0/1 int and ``p`` as float probabilities, or a ``ValueError`` saying what is wrong.

    Parameters
    ----------
    y
        Labels: 0/1, bool, or any two values where the larger is the positive class.
    p
        Probabilities of the positive class, finite and within [0, 1].
    """
    y_arr = np.asarray(y).reshape(-1) if np.ndim(y) else np.asarray([y])
    p_arr = np.asarray(p, dtype=np.float64).reshape(-1)
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"y has {y_arr.size} rows but the scores have {p_arr.size}")
    if y_arr.size == 0:
        raise ValueError("cannot evaluate on 0 rows")
    missing = pd.isna(y_arr)
    if missing.any():
        raise ValueError(f"y has {int(missing.sum())} missing label(s) (NaN/None)")
    bad_p = ~np.isfinite(p_arr) | (p_arr < 0) | (p_arr > 1)
    if bad_p.any():
        examples = p_arr[bad_p][:5].tolist()
        raise ValueError(
            f"{int(bad_p.sum())} score(s) are not probabilities in [0, 1] (e.g. {examples}); "
            "pass predict_proba(X)[:, 1]"
        )
    labels = np.unique(y_arr)
    if labels.size > 2:
        raise ValueError(
            f"y must be binary; it has {labels.size} distinct values, e.g. {labels[:5].tolist()}"
        )
    if set(labels.tolist()) <= {0, 1}:
        y01 = y_arr.astype(np.int64)
    elif labels.size == 2:
        y01 = (y_arr == labels[1]).astype(np.int64)
    else:
        raise ValueError(
            f"y has the single label {labels[0]!r}, which is neither 0 nor 1, so it is unclear "
            "whether it is the positive class; pass 0/1 labels"
        )
    return y01, p_arr


def equal_mass_bins(p: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of every score for ``n_bins`` equal-mass bins, and the bin edges.

    Edges are score quantiles; tied scores always share a bin, so with heavy ties some bins
    are empty and others hold more than ``n / n_bins`` rows.

    Examples
    --------
    >>> bins, edges = equal_mass_bins(np.linspace(0, 1, 10), 2)
    >>> bins.tolist()
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
    bins = np.searchsorted(edges[1:-1], p, side="right")
    return bins.astype(np.int64), edges


def _ece_parts(residual: np.ndarray, bins: np.ndarray, n_bins: int
               ) -> tuple[float, float, np.ndarray]:
    """Plug-in ECE, its debiased counterpart and the bin signs, from the full sample.

    Returns ``(sum_b pi_b |d_b|, sum_b pi_b sqrt(max(d_b^2 - se_b^2, 0)), sign(d_b))`` with
    ``se_b^2`` the squared standard error of bin ``b``'s mean residual (sample variance with
    ``n_b - 1``; 0 for a bin of one row). See the module docstring and [7]_.
    """
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    sums = np.bincount(bins, weights=residual, minlength=n_bins)
    squares = np.bincount(bins, weights=residual**2, minlength=n_bins)
    filled = counts > 0
    mean = np.divide(sums, counts, out=np.zeros(n_bins), where=filled)
    spread = np.maximum(squares - counts * mean**2, 0.0)
    se2 = np.divide(spread, counts * (counts - 1), out=np.zeros(n_bins), where=counts > 1)
    share = counts / counts.sum()
    plug_in = float(np.sum(share * np.abs(mean)))
    debiased = float(np.sum(share * np.sqrt(np.maximum(mean**2 - se2, 0.0))))
    signs = np.where(mean < 0, -1.0, 1.0)
    return plug_in, debiased, signs


def _debiased_squared_error(residual_sums: np.ndarray, squared_sums: np.ndarray,
                            counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of weighted bin sums: ``T = sum_b w_b (d_b^2 - se_b^2)`` and the coefficients
    ``a``, ``c`` of its variance ``a theta + c`` (module docstring, ``rms_calibration_error``).

    ``se_b^2`` is the squared standard error of bin ``b``'s mean residual (sample variance with
    ``n_b - 1``); a bin with fewer than two rows contributes no correction and no variance.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        total = counts.sum(axis=1, keepdims=True)
        share = counts / total
        mean = np.where(counts > 0, residual_sums / np.where(counts > 0, counts, 1.0), 0.0)
        spread = np.maximum(squared_sums - counts * mean**2, 0.0)
        se2 = np.where(counts > 1, spread / np.where(counts > 1, counts * (counts - 1), 1.0),
                       0.0)
    t = np.sum(share * (mean**2 - se2), axis=1)
    a = 4.0 * np.sum(share**2 * se2, axis=1)
    c = 2.0 * np.sum(share**2 * se2**2, axis=1)
    return t, a, c


def rms_calibration_quantiles(t: float, a: float, c: float, n_values: int) -> np.ndarray:
    """Quantiles of the confidence distribution of the RMS calibration error.

    For each level ``u_i = (i + 0.5) / n_values`` with ``z_i = Phi^-1(u_i)``, the root
    ``theta_i >= 0`` of ``theta - t = z_i sqrt(a theta + c)`` on the side of ``t`` that ``z_i``
    gives, square-rooted: the percentile ``(1 +/- confidence) / 2`` of the returned values is
    the end of the score interval of the module docstring at that confidence.

    Parameters
    ----------
    t
        The debiased squared calibration error ``sum_b w_b (d_b^2 - se_b^2)``.
    a, c
        Coefficients of its variance ``a theta + c`` at a hypothesised ``theta``.
    n_values
        How many quantiles (the report's ``n_bootstrap``).

    Returns
    -------
    ndarray of shape (n_values,)
        Increasing, non-negative.

    Examples
    --------
    >>> q = rms_calibration_quantiles(0.0004, 0.0002, 2e-7, 1000)
    >>> bool(q[0] <= 0.02 <= q[-1]), bool(np.all(np.diff(q) >= 0))
    (True, True)
    """
    from scipy.stats import norm

    if n_values <= 0:
        return np.empty(0)
    z = norm.ppf((np.arange(n_values) + 0.5) / n_values)
    b = 2.0 * t + z**2 * a
    disc = np.sqrt(np.maximum(b**2 - 4.0 * (t**2 - z**2 * c), 0.0))
    theta = np.where(z >= 0, (b + disc) / 2.0, (b - disc) / 2.0)
    out: np.ndarray = np.sqrt(np.maximum(theta, 0.0))
    return out


class BinaryScores:
    """Labels and scores prepared once, evaluated for many resampling weight vectors.

    Parameters
    ----------
    y
        0/1 labels.
    p
        Probabilities of the positive class.
    threshold
        Decision threshold for ``accuracy``, ``precision``, ``recall``, ``f1``,
        ``balanced_accuracy`` (``accuracy_at_0_5`` always uses 0.5).
    ece_bins
        Number of equal-mass bins for ``ece``.

    Examples
    --------
    >>> scores = BinaryScores(np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.6, 0.4]))
    >>> float(scores.compute(np.ones((1, 4)))["roc_auc"][0])
    1.0
    """

    def __init__(self, y: np.ndarray, p: np.ndarray, *, threshold: float = 0.5,
                 ece_bins: int = 15) -> None:
        y = np.asarray(y, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        self.n = len(y)
        self.threshold = float(threshold)
        self.order = np.argsort(-p, kind="stable")
        p_desc = p[self.order]
        self.y_desc = y[self.order]
        self.group_starts = np.flatnonzero(np.r_[True, p_desc[1:] != p_desc[:-1]])
        self.bins, self.bin_edges = equal_mass_bins(p, ece_bins)
        pred_t = (p > self.threshold).astype(np.float64)
        pred_half = (p > 0.5).astype(np.float64)
        clipped = np.clip(p, _LOG_EPS, 1 - _LOG_EPS)
        residual_by_bin = np.zeros((self.n, ece_bins))
        residual_by_bin[np.arange(self.n), self.bins] = y - p
        onehot = np.zeros((self.n, ece_bins))
        onehot[np.arange(self.n), self.bins] = 1.0
        self._n_bins = ece_bins
        self._ece, self._ece_debiased, self._ece_signs = _ece_parts(y - p, self.bins, ece_bins)
        # per-row quantities whose weighted sums give every threshold/probability metric
        # stored as (k, n): `w @ columns.T` then runs as one fast BLAS call (15x faster than
        # multiplying by an (n, k) C-ordered array on OpenBLAS)
        self._columns = np.ascontiguousarray(np.vstack([
            y,                                  # 0: positives
            y * pred_t,                         # 1: true positives at t
            (1 - y) * pred_t,                   # 2: false positives at t
            y * pred_half,                      # 3: true positives at 0.5
            (1 - y) * pred_half,                # 4: false positives at 0.5
            (p - y) ** 2,                       # 5: Brier terms
            -(y * np.log(clipped) + (1 - y) * np.log1p(-clipped)),  # 6: log-loss terms
            residual_by_bin.T,                  # 7...: calibration residuals per bin
            (residual_by_bin**2).T,             # then their squares per bin
            onehot.T,                           # then the rows per bin
        ]))

    def compute(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric of :data:`CLASSIFICATION_METRICS` for each row of ``weights``.

        Parameters
        ----------
        weights
            ``(n_resamples, n_rows)`` non-negative counts (``np.ones((1, n))`` = the sample).

        Returns
        -------
        dict of str to ndarray of shape (n_resamples,)
            NaN where a metric is undefined for a resample (e.g. AUC without positives).
        """
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        total = w.sum(axis=1)
        sums = w @ self._columns.T
        pos, tp, fp, tp_half, fp_half = (sums[:, i] for i in range(5))
        neg = total - pos
        with np.errstate(divide="ignore", invalid="ignore"):
            tn, tn_half = neg - fp, neg - fp_half
            predicted = tp + fp
            out = {
                "accuracy": (tp + tn) / total,
                "accuracy_at_0_5": (tp_half + tn_half) / total,
                "balanced_accuracy": 0.5 * (tp / pos + tn / neg),
                "precision": np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1),
                                      0.0),
                "recall": tp / pos,
                "f1": np.where(pos + predicted > 0, 2 * tp / (pos + predicted), 0.0),
                "brier": sums[:, 5] / total,
                "log_loss": sums[:, 6] / total,
                "ece": self._ece_replicates(sums[:, 7:7 + self._n_bins], total),
                "rms_calibration_error": np.sqrt(np.maximum(
                    _debiased_squared_error(*self._bin_sums(sums))[0], 0.0)),
            }
            out.update(self._ranking(w, total))
        for name in ("recall", "balanced_accuracy"):
            out[name] = np.where(pos > 0, out[name], np.nan)
        return {name: out[name] for name in CLASSIFICATION_METRICS}

    def _bin_sums(self, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k, start = self._n_bins, 7
        return (sums[:, start:start + k], sums[:, start + k:start + 2 * k],
                sums[:, start + 2 * k:start + 3 * k])

    def rms_calibration_quantiles(self, n_values: int) -> np.ndarray:
        """``n_values`` quantiles of the confidence distribution of ``rms_calibration_error``
        on the full sample (see :func:`rms_calibration_quantiles`)."""
        sums = (np.ones((1, self.n)) @ self._columns.T)
        t, a, c = _debiased_squared_error(*self._bin_sums(sums))
        return rms_calibration_quantiles(float(t[0]), float(a[0]), float(c[0]), n_values)

    def _ece_replicates(self, residual_sums: np.ndarray, total: np.ndarray) -> np.ndarray:
        """The linearised ECE replicates of the module docstring (``ece`` at full weights)."""
        deviation = residual_sums @ self._ece_signs / total - self._ece
        # the full sample gives 0 up to rounding, and must land on the plug-in side
        deviation = np.where(np.abs(deviation) < 1e-12, 0.0, deviation)
        centre = np.where(deviation >= 0, self._ece, self._ece_debiased)
        out: np.ndarray = np.maximum(centre + deviation, 0.0)
        return out

    def _ranking(self, w: np.ndarray, total: np.ndarray) -> dict[str, np.ndarray]:
        """AUC, average precision and top-decile lift from cumulative sums in score order."""
        w_desc = w[:, self.order]
        pos_rows = w_desc * self.y_desc
        if len(self.group_starts) < self.n:  # tied scores: one step per distinct score
            pos_g = np.add.reduceat(pos_rows, self.group_starts, axis=1)
            all_g = np.add.reduceat(w_desc, self.group_starts, axis=1)
        else:
            pos_g, all_g = pos_rows, w_desc
        neg_g = all_g - pos_g
        cum_pos = np.cumsum(pos_g, axis=1)
        cum_neg = np.cumsum(neg_g, axis=1)
        P, N = cum_pos[:, -1], cum_neg[:, -1]
        # a positive beats the negatives scored below it and ties with half of its own group
        auc = (pos_g * (N[:, None] - cum_neg + 0.5 * neg_g)).sum(axis=1) / (P * N)
        seen = cum_pos + cum_neg
        precision_at = np.divide(cum_pos, seen, out=np.zeros_like(cum_pos), where=seen > 0)
        ap = (pos_g * precision_at).sum(axis=1) / P
        k = total / 10.0
        rows = np.arange(len(total))
        g = np.argmax(seen >= k[:, None] * (1 - 1e-12), axis=1)
        before = seen[rows, g] - all_g[rows, g]
        captured = cum_pos[rows, g] - pos_g[rows, g] + (k - before) * pos_g[rows, g] / np.where(
            all_g[rows, g] > 0, all_g[rows, g], 1.0)
        lift = (captured / k) / (P / total)
        undefined = (P == 0) | (N == 0)
        return {
            "roc_auc": np.where(undefined, np.nan, auc),
            "pr_auc": np.where(P == 0, np.nan, ap),
            "lift_top_decile": np.where(P == 0, np.nan, lift),
        }
