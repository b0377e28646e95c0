"""Vectorised mathematics of the BG/NBD and Gamma-Gamma models (private to ``models.clv``).

Every function takes the model parameters as floats and the customer statistics as numpy arrays
and broadcasts over customers. Log-likelihoods are computed in log space with ``gammaln`` /
``betaln``; gradients are analytic (derived below each formula) and tested against finite
differences.

References
----------
.. [1] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the Easy
   Way: An Alternative to the Pareto/NBD Model. Marketing Science 24(2), 275-284.
.. [2] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: Using Iso-Value Curves
   for Customer Base Analysis. Journal of Marketing Research 42(4), 415-430.
.. [3] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2007). Implementing the BG/NBD Model for
   Customer Base Analysis in Excel. http://brucehardie.com/notes/004/
.. [4] Fader, P. S. & Hardie, B. G. S. (2013). The Gamma-Gamma Model of Monetary Value.
   http://brucehardie.com/notes/025/
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, expit, gammaln, hyp2f1, psi


def bgnbd_log_odds_dead(r: float, alpha: float, a: float, b: float, x: np.ndarray,
                        t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Log of the ratio "dropped out after the last purchase" / "still alive", for ``x > 0``.

    In the BG/NBD likelihood ([1]_ eq. 6) the customer either is alive at ``T`` (first term) or
    dropped out right after the purchase at ``t_x`` (second term, only when ``x > 0``). Their
    ratio is ``a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)``; this returns its
    log, and ``-inf`` where ``x == 0``. ``P(alive) = expit(-log_odds)`` (Hardie's note 021).
    """
    repeat = x > 0
    safe_b = np.where(repeat, b + x - 1.0, 1.0)  # b + x - 1 < 0 is possible only when x == 0
    log_odds = (np.log(a) - np.log(safe_b)
                + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
    return np.where(repeat, log_odds, -np.inf)


def bgnbd_log_likelihood(r: float, alpha: float, a: float, b: float, x: np.ndarray,
                         t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood ([1]_ eq. 6, in the log form of [3]_ section 7).

    ``ll = lnG(r+x) - lnG(r) + r ln(alpha) + lnB(a, b+x) - lnB(a, b) - (r+x) ln(alpha+T)
    + [x > 0] log(1 + exp(D))`` with ``D`` from :func:`bgnbd_log_odds_dead`.
    """
    base = (gammaln(r + x) - gammaln(r) + r * np.log(alpha)
            + betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T))
    log_odds = bgnbd_log_odds_dead(r, alpha, a, b, x, t_x, T)
    result: np.ndarray = base + np.logaddexp(0.0, log_odds)  # logaddexp(0, -inf) == 0
    return result


def bgnbd_log_likelihood_grad(
    r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
    *, x_levels: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood and its gradient in ``(r, alpha, a, b)``, shape ``(4, n)``.

    With ``ll = G + [x>0] log(1 + e^D)`` and ``s = expit(D)`` (probability of the "dropped out"
    branch), ``d ll = dG + s dD`` where

    - ``dG/dr = psi(r+x) - psi(r) + ln(alpha) - ln(alpha+T)``,
      ``dD/dr = ln(alpha+T) - ln(alpha+t_x)``
    - ``dG/dalpha = r/alpha - (r+x)/(alpha+T)``,
      ``dD/dalpha = (r+x) (1/(alpha+T) - 1/(alpha+t_x))``
    - ``dG/da = psi(a+b) - psi(a+b+x)``, ``dD/da = 1/a``
    - ``dG/db = psi(b+x) - psi(b) + psi(a+b) - psi(a+b+x)``, ``dD/db = -1/(b+x-1)``.

    ``x_levels = (values, codes)`` with ``x == values[codes]`` lets the special functions of
    ``x`` be evaluated once per distinct frequency instead of once per customer (frequencies
    take a few hundred values at most; this halves the cost of a fit on a million customers).
    """
    levels, codes = x_levels if x_levels is not None else (x, None)
    # Columns: lnG(r+x) + lnB(a, b+x), psi(r+x), psi(a+b+x), psi(b+x).
    table = np.stack([gammaln(r + levels) + betaln(a, b + levels), psi(r + levels),
                      psi(a + b + levels), psi(b + levels)])
    by_x = table if codes is None else table[:, codes]
    log_alpha_T = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + t_x)
    repeat = x > 0
    safe_b = np.where(repeat, b + x - 1.0, 1.0)  # b + x - 1 < 0 is possible only when x == 0
    log_odds = np.where(repeat, np.log(a) - np.log(safe_b)
                        + (r + x) * (log_alpha_T - log_alpha_tx), -np.inf)
    ll = (by_x[0] - gammaln(r) + r * np.log(alpha) - betaln(a, b) - (r + x) * log_alpha_T
          + np.logaddexp(0.0, log_odds))
    s = expit(log_odds)  # 0 where x == 0
    psi_ab = psi(a + b)
    grad = np.empty((4, *np.shape(ll)))
    grad[0] = (by_x[1] - psi(r) + np.log(alpha) - log_alpha_T
               + s * (log_alpha_T - log_alpha_tx))
    grad[1] = (r / alpha - (r + x) / (alpha + T)
               + s * (r + x) * (1.0 / (alpha + T) - 1.0 / (alpha + t_x)))
    grad[2] = psi_ab - by_x[2] + s / a
    grad[3] = by_x[3] - psi(b) + psi_ab - by_x[2] - np.where(repeat, s / safe_b, 0.0)
    return ll, grad


def bgnbd_probability_alive(r: float, alpha: float, a: float, b: float, x: np.ndarray,
                            t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive at T | x, t_x, T) (Hardie's note 021, [3]_); 1 when ``x == 0``."""
    result: np.ndarray = expit(-bgnbd_log_odds_dead(r, alpha, a, b, x, t_x, T))
    return result


def bgnbd_expected_purchases(t: np.ndarray, r: float, alpha: float, a: float, b: float,
                             x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected repeat purchases in ``(T, T + t]`` ([1]_ eq. 10).

    Eq. 10 reads ``(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))**(r+x) * 2F1(r+x, b+x;
    a+b+x-1; z)] * P(alive)`` with ``z = t/(alpha+T+t)``. Euler's transformation
    ``2F1(A, B; C; z) = (1-z)**(C-A-B) 2F1(C-A, C-B; C; z)`` turns the bracket into
    ``1 - (1-z)**(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z)``, whose parameters no longer grow with
    ``x`` (the direct form overflows for frequent buyers and ``z`` near 1).
    """
    z = t / (alpha + T + t)
    result: np.ndarray = (_purchases_if_alive(z, r, a, b, x)
                          * bgnbd_probability_alive(r, alpha, a, b, x, t_x, T))
    return result


def bgnbd_expected_purchases_new_customer(t: np.ndarray, r: float, alpha: float, a: float,
                                          b: float) -> np.ndarray:
    """E[X(t)]: expected repeat purchases by age ``t`` of a new customer ([1]_ eq. 9).

    Eq. 9 is eq. 10 with ``x = t_x = T = 0``, so the same transformed form applies.
    """
    return _purchases_if_alive(t / (alpha + t), r, a, b, np.zeros_like(t))


# Half-width of the interval around a removable singularity (a = 1, or a + b + x = 1) over
# which the expectation is interpolated linearly: the interpolation error is O(h**2) ~ 1e-8
# relative, while the cancellation in the closed form at distance h costs only ~1e-12.
_SINGULAR_HALF_WIDTH = 1e-4


def _purchases_if_alive(z: np.ndarray, r: float, a: float, b: float,
                        x: np.ndarray) -> np.ndarray:
    """``(a+b+x-1)/(a-1) * [1 - (1-z)**(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)]``.

    The expression is 0/0 at ``a = 1`` and inf*0 at ``a + b + x = 1`` (only possible for
    ``x = 0``) although the expectation is smooth there; near those points it is interpolated
    between evaluations just outside.
    """
    h = _SINGULAR_HALF_WIDTH
    if abs(a - 1.0) < h:
        weight = (a - (1.0 - h)) / (2 * h)
        return ((1 - weight) * _regular_in_b(z, r, 1.0 - h, b, x)
                + weight * _regular_in_b(z, r, 1.0 + h, b, x))
    return _regular_in_b(z, r, a, b, x)


def _regular_in_b(z: np.ndarray, r: float, a: float, b: float, x: np.ndarray) -> np.ndarray:
    h = _SINGULAR_HALF_WIDTH
    b_low, b_high = 1.0 - a - h, 1.0 - a + h
    if abs(a + b - 1.0) < h and b_low > 0 and np.any(x == 0):
        weight = (b - b_low) / (2 * h)
        return ((1 - weight) * _closed_form(z, r, a, b_low, x)
                + weight * _closed_form(z, r, a, b_high, x))
    return _closed_form(z, r, a, b, x)


def _closed_form(z: np.ndarray, r: float, a: float, b: float, x: np.ndarray) -> np.ndarray:
    c, z = np.broadcast_arrays(np.asarray(a + b + x - 1.0, dtype=np.float64),
                               np.asarray(z, dtype=np.float64))
    bracket = 1.0 - (1.0 - z) ** (a - 1.0) * _hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    result: np.ndarray = c / (a - 1.0) * bracket
    return result


def _hyp2f1(A: float, B: float, C: np.ndarray, z: np.ndarray) -> np.ndarray:
    """scipy's ``hyp2f1``, with the Gauss series where it returns inf or NaN.

    scipy 1.17 fails (inf / NaN) when ``C - A - B`` is an integer above ~100 and ``z`` is near
    1 (its ``1 - z`` transformation degenerates), which here means ``x + r - a + 1`` integer,
    e.g. ``r == a`` and a frequent buyer. The series converges fast exactly there, because
    ``C`` is large; elements that still do not converge stay NaN and are reported by callers.
    """
    with np.errstate(all="ignore"):
        values = np.asarray(hyp2f1(A, B, C, z), dtype=np.float64)
    failed = ~np.isfinite(values)
    if not failed.any():
        return values
    c, zz = C[failed], z[failed]
    term = np.ones_like(c)
    total = np.ones_like(c)
    converged = np.zeros(c.shape, dtype=bool)
    for n in range(20_000):
        term = term * (A + n) * (B + n) / ((c + n) * (n + 1)) * zz
        total = total + term
        converged = np.abs(term) <= 1e-16 * np.abs(total)
        if converged.all():
            break
    values = values.copy()
    values[failed] = np.where(converged, total, np.nan)
    return values


def gamma_gamma_log_likelihood(p: float, q: float, v: float, x: np.ndarray,
                               m: np.ndarray) -> np.ndarray:
    """Per-customer log-density of the mean spend ``m`` of ``x`` transactions ([4]_ eq. 3).

    ``ll = lnG(px+q) - lnG(px) - lnG(q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(v + x m)``.
    """
    px = p * x
    result: np.ndarray = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
                          + (px - 1.0) * np.log(m) + px * np.log(x)
                          - (px + q) * np.log(v + x * m))
    return result


def gamma_gamma_log_likelihood_grad(
    p: float, q: float, v: float, x: np.ndarray, m: np.ndarray,
    *, x_levels: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood and gradient in ``(p, q, v)``, shape ``(3, n)``.

    - ``d/dp = x (psi(px+q) - psi(px) + ln m + ln x - ln(v + x m))``
    - ``d/dq = psi(px+q) - psi(q) + ln v - ln(v + x m)``
    - ``d/dv = q/v - (px+q)/(v + x m)``

    ``x_levels`` as in :func:`bgnbd_log_likelihood_grad`.
    """
    levels, codes = x_levels if x_levels is not None else (x, None)
    p_levels = p * levels
    # Columns: lnG(px+q) - lnG(px) + px ln x, psi(px+q), psi(px) - ln x.
    table = np.stack([gammaln(p_levels + q) - gammaln(p_levels) + p_levels * np.log(levels),
                      psi(p_levels + q), psi(p_levels) - np.log(levels)])
    by_x = table if codes is None else table[:, codes]
    px = p * x
    log_m = np.log(m)
    log_vxm = np.log(v + x * m)
    ll = by_x[0] - gammaln(q) + q * np.log(v) + (px - 1.0) * log_m - (px + q) * log_vxm
    grad = np.empty((3, *np.shape(ll)))
    grad[0] = x * (by_x[1] - by_x[2] + log_m - log_vxm)
    grad[1] = by_x[1] - psi(q) + np.log(v) - log_vxm
    grad[2] = q / v - (px + q) / (v + x * m)
    return ll, grad


def gamma_gamma_expected_spend(p: float, q: float, v: float, x: np.ndarray,
                               m: np.ndarray) -> np.ndarray:
    """E[M | p, q, v, x, m] = p (v + x m) / (p x + q - 1) ([2]_ eq. 5, [4]_ eq. 5).

    A weighted mean of the population mean ``p v / (q - 1)`` and the customer's own mean ``m``,
    with weight ``p x / (p x + q - 1)`` on the latter; requires ``q > 1``.
    """
    result: np.ndarray = p * (v + x * m) / (p * x + q - 1.0)
    return result
