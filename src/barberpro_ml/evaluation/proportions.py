"""Confidence intervals for proportions (conversion rates, observed churn rates).

References
----------
.. [1] Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
   inference. *JASA* 22, 209-212.
.. [2] Brown, L. D., Cai, T. T. & DasGupta, A. (2001). Interval estimation for a binomial
   proportion. *Statistical Science* 16, 101-133 (why Wilson rather than the Wald interval).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["wilson_interval"]


def wilson_interval(successes: npt.ArrayLike, trials: npt.ArrayLike, confidence: float = 0.95
                    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Wilson score interval [1]_ of ``successes / trials``, element-wise.

    Unlike the Wald interval it stays inside [0, 1] and keeps close to its nominal coverage
    for small ``trials`` and rates near 0 or 1 [2]_. NaN where ``trials`` is 0.

    Parameters
    ----------
    successes, trials
        Counts (broadcast together); ``0 <= successes <= trials``.
    confidence
        Two-sided level, in (0, 1).

    Returns
    -------
    (low, high)
        float64 arrays.

    Examples
    --------
    >>> low, high = wilson_interval([0, 5, 10], [10, 10, 10])
    >>> [round(float(x), 3) for x in low], [round(float(x), 3) for x in high]
    ([0.0, 0.237, 0.722], [0.278, 0.763, 1.0])
    """
    from scipy.stats import norm

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("wilson_interval: need 0 <= successes <= trials")
    z = float(norm.ppf(0.5 + confidence / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = k / n
        centre = (rate + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
        # at k = 0 (k = n) the bound is exactly 0 (1); rounding would leave 1e-17 there
        low = np.where(n > 0, np.where(k == 0, 0.0, np.clip(centre - half, 0.0, 1.0)), np.nan)
        high = np.where(n > 0, np.where(k == n, 1.0, np.clip(centre + half, 0.0, 1.0)), np.nan)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
