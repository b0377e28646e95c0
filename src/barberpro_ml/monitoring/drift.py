"""Drift between a reference sample (the training snapshot) and a current one.

Two views per column, because each alone misleads:

* **PSI**, the population stability index [1]_: ``sum((c - r) * ln(c / r))`` over bins, with
  ``r`` and ``c`` the reference and current shares of each bin. Numeric columns are binned at
  the reference's quantiles (equal-mass bins of the reference, so PSI does not depend on the
  column's scale); categorical columns bin by category. Missing values form a bin of their own.
  Empty bins get a share of ``eps`` (a floor, not a smoothing of every bin), so a category
  that appears or vanishes gives a large but finite PSI. PSI is a size of the shift: it does
  not grow with the sample. Usual reading [1]_: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large.
* a **two-sample test**: Kolmogorov-Smirnov for numeric columns, Pearson's chi-square on the
  category counts for categorical ones (both from :mod:`scipy.stats`). It says whether the
  shift can be told from sampling noise, but with tens of thousands of rows every shift is
  significant.

A column is *drifted* when its PSI is at least ``psi_threshold`` **and** its test stays
significant after multiple-testing control across the columns checked together. The default
control is Benjamini-Hochberg [2]_ (false discovery rate): the PSI threshold already bounds
how small a flagged shift can be, and the test's job is to keep noise out of the list of
flagged columns, which is what a false-discovery rate controls; Holm [3]_ (family-wise error,
more conservative with 40 correlated columns) is available with ``correction="holm"``.

References
----------
.. [1] Yurdakul, B. (2018). *Statistical Properties of Population Stability Index*. PhD thesis,
   Western Michigan University.
.. [2] Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate: a practical
   and powerful approach to multiple testing. *JRSS B* 57(1), 289-300.
.. [3] Holm, S. (1979). A simple sequentially rejective multiple test procedure. *Scandinavian
   Journal of Statistics* 6(2), 65-70.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from barberpro_ml.errors import InputError
from barberpro_ml.gates.check import holm_adjust

__all__ = [
    "DRIFT_COLUMNS",
    "PSI_THRESHOLD",
    "Correction",
    "adjust_p_values",
    "benjamini_hochberg",
    "column_drift",
    "feature_drift",
    "holm",
    "psi",
]

Correction = Literal["bh", "holm"]

PSI_THRESHOLD = 0.25
"""PSI at or above which a shift counts as large ([1]_'s usual cut-off)."""

DRIFT_COLUMNS = ["column", "kind", "n_reference", "n_current", "psi", "test", "statistic",
                 "p_value", "p_adjusted", "drifted"]
"""Columns of :func:`feature_drift`'s table."""

_EPS = 1e-4
_MISSING = "<missing>"


def _is_numeric(values: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def _shares(counts: npt.NDArray[np.float64], eps: float) -> npt.NDArray[np.float64]:
    total = counts.sum()
    share = counts / total if total > 0 else np.zeros_like(counts)
    return np.maximum(share, eps)


def _numeric_bins(reference: npt.NDArray[np.float64], n_bins: int) -> npt.NDArray[np.float64]:
    """Inner edges at the reference's quantiles (duplicates from ties removed)."""
    qs = np.linspace(0, 1, n_bins + 1)[1:-1]
    return np.unique(np.quantile(reference, qs))


def _numeric_counts(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]
                    ) -> npt.NDArray[np.float64]:
    finite = values[~np.isnan(values)]
    # right-closed bins: a tie at an edge falls in the bin the quantile closes
    codes = np.searchsorted(edges, finite, side="left")
    counts = np.bincount(codes, minlength=len(edges) + 1).astype(np.float64)
    return np.append(counts, float(np.isnan(values).sum()))


def _as_float(values: npt.ArrayLike | pd.Series, what: str) -> npt.NDArray[np.float64]:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected numbers") from None


def psi(reference: npt.ArrayLike | pd.Series, current: npt.ArrayLike | pd.Series, *,
        n_bins: int = 10, categorical: bool | None = None, eps: float = _EPS) -> float:
    """Population stability index of ``current`` against ``reference``.

    Parameters
    ----------
    reference, current
        The two samples of one column (NaN / None are a bin of their own).
    n_bins
        Equal-mass bins of the reference for a numeric column (fewer when it has ties).
    categorical
        Bin by value instead of by quantile; default: for non-numeric data.
    eps
        Floor of a bin's share (an empty bin would make PSI infinite).

    Returns
    -------
    float
        ``>= 0``; 0 when the two samples fill the bins in the same shares.

    Raises
    ------
    InputError
        An empty sample, or ``n_bins`` below 2.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=5000)
    >>> psi(ref, ref)
    0.0
    >>> round(psi(ref, rng.normal(size=5000)), 2), round(psi(ref, rng.normal(1, size=5000)), 1)
    (0.01, 1.0)
    >>> round(psi(["a", "a", "b"], ["a", "b", "b"]), 3)
    0.462
    """
    if n_bins < 2:
        raise InputError(f"n_bins must be at least 2, got {n_bins}")
    ref, cur = pd.Series(np.asarray(reference)), pd.Series(np.asarray(current))
    if ref.empty or cur.empty:
        raise InputError(f"psi needs two non-empty samples (reference: {len(ref)} rows, "
                         f"current: {len(cur)} rows)")
    if categorical is None:
        categorical = not (_is_numeric(ref) and _is_numeric(cur))
    if categorical:
        r = ref.astype(object).where(ref.notna(), _MISSING).astype(str)
        c = cur.astype(object).where(cur.notna(), _MISSING).astype(str)
        levels = sorted(set(r) | set(c))
        rc = np.asarray(r.value_counts().reindex(levels, fill_value=0), dtype=np.float64)
        cc = np.asarray(c.value_counts().reindex(levels, fill_value=0), dtype=np.float64)
    else:
        rv, cv = _as_float(ref, "reference"), _as_float(cur, "current")
        finite = rv[~np.isnan(rv)]
        edges = _numeric_bins(finite, n_bins) if finite.size else np.empty(0)
        rc, cc = _numeric_counts(rv, edges), _numeric_counts(cv, edges)
    rs, cs = _shares(rc, eps), _shares(cc, eps)
    value = float(np.sum((cs - rs) * np.log(cs / rs)))
    return max(value, 0.0)


def benjamini_hochberg(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (step-up; reject at FDR ``q`` where ``<= q``).

    NaN p-values are left NaN and not counted among the hypotheses.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out[order] = np.minimum(adjusted, 1.0)
    return out


def holm(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Holm's step-down adjusted p-values (family-wise error; NaN left out): the gates'
    :func:`~barberpro_ml.gates.check.holm_adjust` over the p-values that are not NaN.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
    [0.04, 0.09, 0.09, 0.5]
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    out[ok] = holm_adjust(p[ok])  # the gates' Holm, over the p-values that exist
    return out


def adjust_p_values(p_values: npt.ArrayLike, correction: Correction) -> npt.NDArray[np.float64]:
    """:func:`benjamini_hochberg` (``"bh"``) or :func:`holm` (``"holm"``)."""
    if correction == "bh":
        return benjamini_hochberg(p_values)
    if correction == "holm":
        return holm(p_values)
    raise InputError(f"correction: expected 'bh' or 'holm', got {correction!r}")


def column_drift(reference: pd.Series, current: pd.Series, *, n_bins: int = 10
                 ) -> tuple[str, float, str, float, float]:
    """``(kind, psi, test, statistic, p_value)`` of one column (see the module docstring).

    The test ignores missing values (PSI counts them); a side without any value gives a NaN
    p-value, which the correction leaves out.
    """
    numeric = _is_numeric(reference) and _is_numeric(current)
    value = psi(reference, current, n_bins=n_bins, categorical=not numeric)
    if numeric:
        r = _as_float(reference, "reference")
        c = _as_float(current, "current")
        r, c = r[~np.isnan(r)], c[~np.isnan(c)]
        if r.size == 0 or c.size == 0:
            return "numeric", value, "ks", float("nan"), float("nan")
        ks = stats.ks_2samp(r, c)
        return "numeric", value, "ks", float(ks.statistic), float(ks.pvalue)
    r_s = reference.astype(object).where(reference.notna(), _MISSING).astype(str)
    c_s = current.astype(object).where(current.notna(), _MISSING).astype(str)
    levels = sorted(set(r_s) | set(c_s))
    table = np.vstack([r_s.value_counts().reindex(levels, fill_value=0).to_numpy(),
                       c_s.value_counts().reindex(levels, fill_value=0).to_numpy()])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return "categorical", value, "chi2", 0.0, 1.0
    chi2 = stats.chi2_contingency(table, correction=False)
    return "categorical", value, "chi2", float(chi2.statistic), float(chi2.pvalue)


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame,
                  columns: Sequence[str] | None = None, *, n_bins: int = 10,
                  psi_threshold: float = PSI_THRESHOLD, alpha: float = 0.05,
                  correction: Correction = "bh") -> pd.DataFrame:
    """Drift of each column between two frames: PSI, a two-sample test, the adjusted p-value
    and whether it drifted (``psi >= psi_threshold`` and ``p_adjusted < alpha``).

    Parameters
    ----------
    reference, current
        The training snapshot and the current rows (the same columns).
    columns
        Columns to compare (default: every column of ``reference``).
    n_bins, psi_threshold, alpha, correction
        See the module docstring.

    Returns
    -------
    pandas.DataFrame
        One row per column (:data:`DRIFT_COLUMNS`), sorted by PSI, largest first.

    Raises
    ------
    InputError
        A column missing from either frame (names them), an empty frame, or a bad setting.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> ref = pd.DataFrame({"x": rng.normal(size=3000), "y": rng.normal(size=3000)})
    >>> cur = pd.DataFrame({"x": rng.normal(size=3000), "y": rng.normal(1, size=3000)})
    >>> feature_drift(ref, cur)[["column", "drifted"]].to_dict("list")
    {'column': ['y', 'x'], 'drifted': [True, False]}
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    if psi_threshold < 0:
        raise InputError(f"psi_threshold must be >= 0, got {psi_threshold}")
    names = list(reference.columns if columns is None else columns)
    for side, frame in (("reference", reference), ("current", current)):
        absent = [c for c in names if c not in frame.columns]
        if absent:
            raise InputError(f"feature_drift: {len(absent)} column(s) missing from the "
                             f"{side} frame, e.g. {absent[:5]}")
        if frame.empty:
            raise InputError(f"feature_drift: the {side} frame has no rows")
    rows = []
    for name in names:
        kind, value, test, statistic, p = column_drift(reference[name], current[name],
                                                       n_bins=n_bins)
        rows.append({"column": name, "kind": kind, "n_reference": len(reference),
                     "n_current": len(current), "psi": value, "test": test,
                     "statistic": statistic, "p_value": p})
    table = pd.DataFrame(rows, columns=DRIFT_COLUMNS[:-2])
    table["p_adjusted"] = adjust_p_values(table["p_value"].to_numpy(), correction)
    table["drifted"] = ((table["psi"] >= psi_threshold)
                        & (table["p_adjusted"].fillna(1.0) < alpha))
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
