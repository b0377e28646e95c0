"""The elasticity table and revenue at another price: what the registered pricing model serves.

Pure NumPy/SciPy, so the ``barberpro-pricing`` pyfunc loads without DoubleML or the data. The
estimation is in :mod:`barberpro_ml.providers.pricing` (which re-exports these functions).

A relative price change ``dp`` with constant elasticity ``eps`` multiplies bookings by
``(1 + dp) ** eps`` and revenue by ``(1 + dp) ** (1 + eps)``; the expected revenue change is
``(1 + dp) ** (1 + eps) - 1``. With ``eps ~ N(theta, se^2)`` (the DML estimator's asymptotic
distribution, Chernozhukov et al. 2018, Theorem 3.1) its mean is
``(1 + dp) exp(theta L + se^2 L^2 / 2) - 1``, ``L = log(1 + dp)`` (the lognormal mean), and
its interval is the elasticity's interval mapped through the function (monotone in ``eps`` for
``dp != 0``, so the endpoints map to endpoints). A table with a ``dof`` column (the cluster
count minus one) has Student-t intervals, ``theta +/- t_dof se``, and the revenue intervals
use the same quantile; the mean keeps the normal approximation (a t's lognormal-type mean is
infinite).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

F64 = npt.NDArray[np.float64]

__all__ = ["ALL", "ELASTICITY_COLUMNS", "best_supported_change", "lookup_elasticity",
           "quantile", "revenue_change", "revenue_change_interval"]

ALL = "all"
"""The label of a dimension a cell does not restrict."""
ELASTICITY_COLUMNS = ("scope", "service", "price_tier", "neighborhood", "n_events",
                      "n_providers", "elasticity", "std_error", "ci_low", "ci_high",
                      "naive_elasticity", "naive_ci_low", "naive_ci_high", "min_step",
                      "max_step", "dof")
"""One row per estimated cell (:attr:`PriceElasticityDML.elasticities_`); ``dof`` the degrees
of freedom of the elasticity's t interval (providers minus one)."""


def lookup_elasticity(table: pd.DataFrame, *, price_tier: str = ALL, service: str = ALL,
                      neighborhood: str = ALL) -> pd.Series:
    """The row of ``table`` (``ELASTICITY_COLUMNS``) for one cell; KeyError when absent."""
    hit = table[(table["price_tier"] == price_tier) & (table["service"] == service)
                & (table["neighborhood"] == neighborhood)]
    if hit.empty:
        raise KeyError(f"no elasticity estimated for service={service!r}, "
                       f"price_tier={price_tier!r}, neighborhood={neighborhood!r} (too few "
                       "price rises in that cell, or not a known cell)")
    return hit.iloc[0]


# --------------------------------------------------------------------------- revenue

def revenue_change(price_change: F64 | float, elasticity: F64 | float) -> F64:
    """``(1 + dp) ** (1 + eps) - 1``: relative revenue change at constant elasticity."""
    dp = np.asarray(price_change, dtype=float)
    if np.any(dp <= -1.0):
        raise ValueError("a relative price change must be above -1 (-100%)")
    out: F64 = np.power(1.0 + dp, 1.0 + np.asarray(elasticity, dtype=float)) - 1.0
    return out


def quantile(level: float, dof: float | None = None) -> float:
    """The two-sided ``level`` quantile: Student's t with ``dof`` degrees of freedom, or the
    normal one when ``dof`` is None, NaN or infinite."""
    if dof is None or not np.isfinite(dof):
        return float(stats.norm.ppf(0.5 + level / 2))
    if dof < 1:
        raise ValueError(f"dof must be at least 1, got {dof}")
    return float(stats.t.ppf(0.5 + level / 2, dof))


def revenue_change_interval(price_change: F64 | float, elasticity: F64 | float,
                            std_error: F64 | float, level: float = 0.95,
                            dof: float | None = None) -> tuple[F64, F64, F64]:
    """Expected revenue change and its interval for ``eps ~ N(elasticity, std_error^2)``.

    Returns ``(mean, low, high)``: the mean ``(1 + dp) exp(eps L + se^2 L^2 / 2) - 1``
    (``L = log(1 + dp)``, the lognormal mean) and the elasticity's ``level`` interval
    (``eps +/- q se``, ``q`` from :func:`quantile` with ``dof``) mapped through
    :func:`revenue_change` (monotone in ``eps``, so endpoints map to endpoints).
    """
    dp = np.asarray(price_change, dtype=float)
    eps = np.asarray(elasticity, dtype=float)
    se = np.asarray(std_error, dtype=float)
    z = quantile(level, dof)
    log1p = np.log1p(dp)
    mean: F64 = (1.0 + dp) * np.exp(eps * log1p + 0.5 * se**2 * log1p**2) - 1.0
    a, b = revenue_change(dp, eps - z * se), revenue_change(dp, eps + z * se)
    return mean, np.minimum(a, b), np.maximum(a, b)


def best_supported_change(elasticity: float, std_error: float, *, max_change: float,
                          level: float = 0.95, grid_step: float = 0.005,
                          dof: float | None = None) -> dict[str, float]:
    """The price rise in ``[0, max_change]`` whose revenue change has the highest lower bound.

    ``max_change`` is the largest rise the evidence saw (extrapolating a constant elasticity
    beyond it is not evidence). Every grid point's lower bound is the same elasticity
    quantile mapped through a function increasing in ``eps``, so the maximum is a lower bound
    at the same level (no multiple-comparison penalty). Returns ``price_change`` (0 when no
    rise has a positive lower bound), ``revenue_change``, ``ci_low``, ``ci_high``.
    """
    grid = np.arange(0.0, max_change + 1e-12, grid_step)
    mean, low, high = revenue_change_interval(grid, elasticity, std_error, level, dof)
    i = int(np.argmax(low))
    if low[i] <= 0.0:
        return {"price_change": 0.0, "revenue_change": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    return {"price_change": float(grid[i]), "revenue_change": float(mean[i]),
            "ci_low": float(low[i]), "ci_high": float(high[i])}
