"""The measured components of the provider score, each with its posterior draws.

Every component is measured from events known at ``as_of`` (the rules of
:mod:`barberpro_ml.features.provider`: bookings scheduled and created by ``as_of``, reviews
created by ``as_of``, barbers who joined by ``as_of`` and had not left) and comes with draws
from its posterior, so that its uncertainty can be carried into the score:

- **rating**: normal-normal empirical Bayes (Efron & Morris, 1975, "Data analysis using
  Stein's estimator and its generalizations", *JASA* 70(350); Morris, 1983, "Parametric
  empirical Bayes inference", *JASA* 78(381)): a barber's mean rating is shrunk towards the
  neighborhood's mean rating with weight ``n / (n + sigma^2 / tau^2)``, where ``sigma^2`` is the
  pooled within-barber variance of single ratings and ``tau^2`` the between-barber variance of
  true means around the neighborhood mean, estimated by the precision-weighted moment
  estimator of DerSimonian & Laird (1986, "Meta-analysis in clinical trials", *Controlled
  Clinical Trials* 7(3)), floored at 0.01^2. A customer's reviews of one barber are alike, so
  ``sigma^2`` is multiplied by the reviews' pooled design effect
  (:func:`cluster_design_effect`, customers as clusters): ``n`` reviews count as
  ``n / deff`` independent ones, in the shrinkage and in the interval;
- **retention, no-show, cancellation**: binomial rates with a beta prior centred on the
  neighborhood's pooled rate, whose strength ``alpha + beta`` is the beta-binomial method of
  moments estimate across barbers (Kleinman, 1973, "Proportions with extraneous variance",
  *JASA* 68(341)); the posterior is ``Beta(alpha + k, beta + n - k)``;
- **utilisation and revenue trend**: Poisson counts of visits (a Jeffreys ``Gamma(k + 1/2)``
  posterior of the rate) times the minutes or revenue per visit;
- **customer churn**: the mean churn probability over the barber's customer base, with a
  normal posterior of the mean (standard error ``sd / sqrt(n)``).

A component that cannot be measured for a barber (no reviews, no bookings in the window, too
short a tenure for a trend, no customer base) is *unknown*: NaN, and the score treats its
percentile as uniform on 0-100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.providers.config import ProviderScoreConfig

__all__ = [
    "DAY",
    "HIGHER_IS_BETTER",
    "ProviderComponents",
    "as_days",
    "cluster_design_effect",
    "empirical_bayes_beta",
    "empirical_bayes_normal",
    "measure_components",
]

FloatArray = npt.NDArray[np.float64]
DAY: Final = pd.Timedelta(days=1)
_DAYS_PER_MONTH: Final = 30.44

HIGHER_IS_BETTER: Final[dict[str, bool]] = {
    "rating": True, "retention": True, "no_show": False, "cancellation": False,
    "utilisation": True, "revenue_trend": True, "customer_churn": False,
}
"""The direction of each component: its percentile rises with the value when True."""


@dataclass
class ProviderComponents:
    """Every barber's components at ``as_of``: point estimates, posterior draws, the counts
    behind them and the volumes the actions price their gains with.

    Attributes
    ----------
    as_of
        The cut-off.
    providers
        Indexed by ``provider_id`` (ascending): ``neighborhood``, ``price_tier``,
        ``tenure_days``, ``n_reviews``, ``rating_raw`` (plain mean), ``rating_prior``
        (neighborhood mean), ``n_outcomes`` (bookings in the outcome window), ``n_returns_base``
        (visits whose return could be observed), ``n_customer_base``,
        ``bookings_per_month``, ``visits_per_month``, ``revenue_per_visit``,
        ``minutes_per_visit``, ``open_minutes_per_month``.
    values
        Component -> point estimate per barber (posterior mean; NaN when unknown).
    draws
        Component -> ``(n_providers, n_draws)`` posterior draws (NaN rows when unknown).
    prior
        Component -> the fitted prior, for the reader (``tau``/``sigma`` of the rating,
        ``strength`` of each rate).
    """

    as_of: pd.Timestamp
    providers: pd.DataFrame
    values: dict[str, FloatArray]
    draws: dict[str, FloatArray]
    prior: dict[str, dict[str, float]] = field(default_factory=dict)


def empirical_bayes_normal(sums: FloatArray, sq_sums: FloatArray, counts: FloatArray,
                           groups: npt.NDArray[np.int64], design_effect: float = 1.0,
                           ) -> tuple[FloatArray, FloatArray, FloatArray, float, float]:
    """Posterior mean and sd of each unit's true mean, shrunk to its group's mean.

    Parameters
    ----------
    sums, sq_sums, counts
        Per unit: sum, sum of squares and number of observations.
    groups
        Per unit: its group (prior mean = the group's pooled mean; the marketplace's pooled
        mean when the group has no observation).
    design_effect
        The sampling variance of a unit's mean is ``design_effect x sigma^2 / n``: above 1 when
        observations come in correlated clusters (:func:`cluster_design_effect`).

    Returns
    -------
    mean, sd, prior_mean, tau, sigma
        Posterior mean and sd per unit, the prior mean per unit, and the fitted between-unit
        sd ``tau`` and within-unit sd ``sigma``.
    """
    n = counts
    has = n > 0
    if not has.any():
        nan = np.full(len(n), np.nan)
        return nan, nan, nan, float("nan"), float("nan")
    means = np.divide(sums, n, out=np.zeros_like(sums), where=has)
    within = np.divide(sq_sums - n * means**2, n - 1, out=np.zeros_like(sums), where=n > 1)
    # pooled within-unit variance of single observations
    dof = np.clip(n - 1, 0, None)
    sigma2 = float(within[n > 1] @ dof[n > 1] / dof.sum()) if dof.sum() > 0 else 1.0
    sigma2 = max(sigma2, 1e-6)
    grand = float(sums.sum() / n.sum())
    group_sum = np.bincount(groups, weights=sums, minlength=groups.max() + 1)
    group_n = np.bincount(groups, weights=n, minlength=groups.max() + 1)
    group_mean = np.where(group_n > 0, group_sum / np.where(group_n > 0, group_n, 1), grand)
    prior = group_mean[groups]
    # DerSimonian-Laird moment estimate of the between-unit variance around the group means
    # (precision-weighted, so units with a handful of observations do not inflate it)
    noise = sigma2 * max(float(design_effect), 1.0)  # variance of one observation's worth
    w = n[has] / noise
    q = float(w @ (means - prior)[has] ** 2)
    n_groups = len(np.unique(groups[has]))
    denom = float(w.sum() - (w**2).sum() / w.sum())
    tau2 = (q - (has.sum() - n_groups)) / denom if denom > 0 else 0.0
    tau2 = max(tau2, 1e-4)
    precision = 1.0 / tau2 + n / noise
    post_mean = (prior / tau2 + sums / noise) / precision
    return post_mean, 1.0 / np.sqrt(precision), prior, float(np.sqrt(tau2)), float(
        np.sqrt(sigma2))


def cluster_design_effect(values: pd.Series, units: pd.Series, clusters: pd.Series) -> float:
    """Kish's design effect of unit means when observations come in clusters.

    Reviews of one barber by the same customer share that customer's taste for the barber, so
    a barber's mean rating varies more than ``sigma^2 / n`` says. Pooled over units, the
    cluster-robust variance of the means (Liang & Zeger, 1986, "Longitudinal data analysis
    using generalized linear models", *Biometrika* 73(1)) over the independent one:

        deff = sum_units sum_clusters (sum_i r_i)^2 / sum_units sum_i r_i^2,

    ``r_i`` an observation's deviation from its unit's mean (Kish, 1965, *Survey Sampling*).
    At least 1 (never narrower than independence); 1 without observations.

    Examples
    --------
    >>> r = pd.Series([5.0, 5.0, 3.0, 3.0]); barber = pd.Series([1, 1, 1, 1])
    >>> cluster_design_effect(r, barber, pd.Series([7, 7, 8, 8]))    # two customers, each alike
    2.0
    >>> cluster_design_effect(r, barber, pd.Series([7, 8, 9, 10]))   # four customers
    1.0
    """
    if len(values) == 0:
        return 1.0
    resid = values - values.groupby(units.to_numpy()).transform("mean").to_numpy()
    within = float((resid**2).sum())
    if within <= 0:
        return 1.0
    clustered = float(resid.groupby([units.to_numpy(), clusters.to_numpy()]).sum().pow(2).sum())
    return max(clustered / within, 1.0)


def empirical_bayes_beta(k: FloatArray, n: FloatArray, groups: npt.NDArray[np.int64]
                         ) -> tuple[FloatArray, FloatArray, float]:
    """Beta posterior parameters of each unit's rate, the prior centred on its group's rate.

    The prior strength ``alpha + beta = m (1 - m) / v - 1`` comes from the between-unit
    variance ``v`` of the rates beyond binomial noise (method of moments, Kleinman 1973),
    clipped to [2, 10,000] (no shrinkage stronger than 10,000 pseudo-bookings, none weaker
    than two).

    Returns
    -------
    alpha, beta, strength
        Posterior parameters per unit and the fitted prior strength.
    """
    has = n > 0
    total_k, total_n = float(k.sum()), float(n.sum())
    m = total_k / total_n if total_n > 0 else 0.5
    group_k = np.bincount(groups, weights=k, minlength=groups.max() + 1)
    group_n = np.bincount(groups, weights=n, minlength=groups.max() + 1)
    group_rate = np.where(group_n > 0, group_k / np.where(group_n > 0, group_n, 1), m)
    prior = np.clip(group_rate[groups], 1e-4, 1 - 1e-4)
    rates = np.divide(k, n, out=np.zeros_like(k), where=has)
    if has.sum() >= 2 and 0 < m < 1:
        v = float(np.mean((rates - prior)[has] ** 2) - np.mean(m * (1 - m) / n[has]))
        strength = m * (1 - m) / v - 1 if v > 0 else 10_000.0
    else:
        strength = 10_000.0
    strength = float(np.clip(strength, 2.0, 10_000.0))
    return prior * strength + k, (1 - prior) * strength + (n - k), strength


def as_days(delta: pd.Series) -> pd.Series:
    """Timedeltas as fractional days."""
    seconds: pd.Series = delta.dt.total_seconds()
    return seconds / 86_400.0


def _neighborhood_codes(frame: pd.DataFrame) -> npt.NDArray[np.int64]:
    codes = pd.Categorical(frame["neighborhood"].astype("string")).codes
    return np.asarray(codes, dtype=np.int64)


def measure_components(data: MarketplaceData, as_of: pd.Timestamp, cfg: ProviderScoreConfig,
                       churn_probability: pd.Series | None = None) -> ProviderComponents:
    """Measure every component of every barber on the platform at ``as_of``.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        The cut-off (naive UTC).
    cfg
        Windows, draws and seed.
    churn_probability
        Churn probability per ``customer_id`` at ``as_of`` (the churn champion's, e.g.
        ``scorer.population(data, as_of)["churn_probability"]``); None: the customer-churn
        component is unknown for every barber.

    Raises
    ------
    NotEnoughDataError
        No barber is on the platform at ``as_of``.
    InputError
        ``churn_probability`` is not indexed by customer id or holds values outside [0, 1].
    """
    rng = np.random.default_rng(cfg.seed)
    D = cfg.n_draws
    prov = data.providers
    on = (prov["joined_at"] <= as_of) & ~(prov["left_at"].notna() & (prov["left_at"] <= as_of))
    providers = prov.loc[on].sort_values("provider_id").set_index("provider_id")
    if providers.empty:
        raise NotEnoughDataError(
            f"providers: no barber is on the platform at {as_of:%Y-%m-%d %H:%M:%S} (joined by "
            f"then and not left; {len(prov)} barbers in the table, the first joined "
            f"{prov['joined_at'].min():%Y-%m-%d})")
    ids = providers.index
    n_prov = len(ids)
    groups = _neighborhood_codes(providers)
    out = pd.DataFrame({"neighborhood": providers["neighborhood"].astype("string"),
                        "price_tier": providers["price_tier"].astype("string"),
                        "tenure_days": as_days(as_of - providers["joined_at"])}, index=ids)
    values: dict[str, FloatArray] = {}
    draws: dict[str, FloatArray] = {}
    prior: dict[str, dict[str, float]] = {}

    def per_provider(series: pd.Series) -> FloatArray:
        return np.asarray(series.reindex(ids).fillna(0).to_numpy(), dtype=np.float64)

    # ---- rating
    reviews = data.reviews
    known = reviews.loc[(reviews["created_at"] <= as_of)
                        & reviews["provider_id"].isin(ids)]
    rating = known["rating"].astype(np.float64)
    by = known["provider_id"]
    r_n = per_provider(rating.groupby(by).size())
    r_sum = per_provider(rating.groupby(by).sum())
    r_sq = per_provider((rating**2).groupby(by).sum())
    # a customer's reviews of one barber are alike (their persistent match): the mean's
    # variance is inflated by the pooled design effect, so shrinkage and intervals are honest
    deff = cluster_design_effect(rating, by, known["customer_id"])
    mean, sd, prior_mean, tau, sigma = empirical_bayes_normal(r_sum, r_sq, r_n, groups,
                                                              design_effect=deff)
    out["n_reviews"] = r_n.astype(np.int64)
    out["rating_raw"] = np.where(r_n > 0, r_sum / np.where(r_n > 0, r_n, 1), np.nan)
    out["rating_prior"] = prior_mean
    values["rating"] = mean
    draws["rating"] = mean[:, None] + sd[:, None] * rng.standard_normal((n_prov, D))
    prior["rating"] = {"tau": tau, "sigma": sigma, "design_effect": deff}

    # ---- bookings known at as_of
    b = data.bookings
    b = b.loc[(b["scheduled_at"] <= as_of) & (b["created_at"] <= as_of)
              & b["provider_id"].isin(ids)]
    status = b["status"].astype("string")
    window = b["scheduled_at"] > as_of - cfg.outcome_window_days * DAY
    in_window = b.loc[window]
    w_status = status.loc[window]
    n_out = per_provider(in_window.groupby("provider_id").size())
    for name, label in (("no_show", "no_show"), ("cancellation", "cancelled")):
        k = per_provider((w_status == label).groupby(in_window["provider_id"]).sum())
        a, bb, strength = empirical_bayes_beta(k, n_out, groups)
        values[name] = np.where(n_out > 0, a / (a + bb), np.nan)
        draws[name] = np.where(n_out[:, None] > 0, rng.beta(a[:, None], bb[:, None],
                                                             (n_prov, D)), np.nan)
        prior[name] = {"strength": strength}
        out[f"n_{name}"] = k.astype(np.int64)
    out["n_outcomes"] = n_out.astype(np.int64)
    window_months = min(cfg.outcome_window_days, 1e9) / _DAYS_PER_MONTH
    on_days = np.minimum(out["tenure_days"].to_numpy(), cfg.outcome_window_days)
    months_on = np.maximum(on_days, 1.0) / _DAYS_PER_MONTH
    out["bookings_per_month"] = n_out / np.minimum(months_on, window_months)

    # ---- retention: visits followed by another visit with the same barber
    done = b.loc[status == "completed", ["customer_id", "provider_id", "scheduled_at", "price",
                                         "discount", "service_id"]].sort_values(
        ["customer_id", "provider_id", "scheduled_at"])
    same_pair = ((done["customer_id"] == done["customer_id"].shift(-1))
                 & (done["provider_id"] == done["provider_id"].shift(-1)))
    gap = as_days(done["scheduled_at"].shift(-1) - done["scheduled_at"])
    returned = same_pair & (gap <= cfg.return_within_days)
    # a return is observable only for visits at least return_within_days before as_of
    base = ((done["scheduled_at"] <= as_of - cfg.return_within_days * DAY)
            & (done["scheduled_at"] > as_of - cfg.outcome_window_days * DAY))
    ret_n = per_provider(base.groupby(done["provider_id"]).sum())
    ret_k = per_provider((base & returned).groupby(done["provider_id"]).sum())
    a, bb, strength = empirical_bayes_beta(ret_k, ret_n, groups)
    values["retention"] = np.where(ret_n > 0, a / (a + bb), np.nan)
    draws["retention"] = np.where(ret_n[:, None] > 0,
                                  rng.beta(a[:, None], bb[:, None], (n_prov, D)), np.nan)
    prior["retention"] = {"strength": strength}
    out["n_returns_base"] = ret_n.astype(np.int64)

    # ---- utilisation and revenue trend (Poisson visit counts)
    durations = data.services.set_index("service_id")["duration_min"].astype(np.float64)
    revenue = done["price"] - done["discount"]
    minutes = done["service_id"].map(durations).astype(np.float64)
    recent = done["scheduled_at"] > as_of - cfg.recent_window_days * DAY
    before = (~recent) & (done["scheduled_at"] > as_of - 2 * cfg.recent_window_days * DAY)
    k_recent = per_provider(recent.groupby(done["provider_id"]).sum())
    k_before = per_provider(before.groupby(done["provider_id"]).sum())
    rev_recent = per_provider(revenue[recent].groupby(done["provider_id"][recent]).sum())
    rev_before = per_provider(revenue[before].groupby(done["provider_id"][before]).sum())
    min_recent = per_provider(minutes[recent].groupby(done["provider_id"][recent]).sum())
    year = done["scheduled_at"] > as_of - cfg.outcome_window_days * DAY
    k_year = per_provider(year.groupby(done["provider_id"]).sum())
    rev_year = per_provider(revenue[year].groupby(done["provider_id"][year]).sum())
    min_year = per_provider(minutes[year].groupby(done["provider_id"][year]).sum())
    market_rev = float(rev_year.sum() / max(k_year.sum(), 1))
    market_min = float(min_year.sum() / max(k_year.sum(), 1))
    out["visits_per_month"] = k_year / np.minimum(months_on, window_months)
    out["revenue_per_visit"] = np.where(k_year > 0, rev_year / np.where(k_year > 0, k_year, 1),
                                        market_rev)
    out["minutes_per_visit"] = np.where(k_year > 0, min_year / np.where(k_year > 0, k_year, 1),
                                        market_min)
    recent_days = np.clip(out["tenure_days"].to_numpy(), 0, cfg.recent_window_days)
    open_minutes = cfg.open_minutes_per_day * recent_days
    out["open_minutes_per_month"] = cfg.open_minutes_per_day * _DAYS_PER_MONTH
    gamma_recent = rng.gamma(k_recent[:, None] + 0.5, 1.0, (n_prov, D))
    per_visit_min = np.where(k_recent > 0, min_recent / np.where(k_recent > 0, k_recent, 1),
                             market_min)
    ok = open_minutes > 0
    safe_open = np.where(ok, open_minutes, 1.0)
    values["utilisation"] = np.where(ok, min_recent / safe_open, np.nan)
    draws["utilisation"] = np.where(ok[:, None],
                                    gamma_recent * per_visit_min[:, None] / safe_open[:, None],
                                    np.nan)
    trend_ok = out["tenure_days"].to_numpy() >= max(cfg.min_tenure_for_trend_days,
                                                    2 * cfg.recent_window_days)
    rpv_recent = np.where(k_recent > 0, rev_recent / np.where(k_recent > 0, k_recent, 1),
                          market_rev)
    rpv_before = np.where(k_before > 0, rev_before / np.where(k_before > 0, k_before, 1),
                          market_rev)
    gamma_before = rng.gamma(k_before[:, None] + 0.5, 1.0, (n_prov, D))
    values["revenue_trend"] = np.where(trend_ok, np.log1p(rev_recent) - np.log1p(rev_before),
                                       np.nan)
    draws["revenue_trend"] = np.where(
        trend_ok[:, None],
        np.log1p(gamma_recent * rpv_recent[:, None]) - np.log1p(gamma_before * rpv_before[:, None]),
        np.nan)

    # ---- customer churn: the base whose latest visit (anywhere) was with the barber
    # ties (two visits at the same time) broken by when each was booked, then by id: never
    # by the rows' order, which events after as_of would change
    last = (b.loc[status == "completed",
                  ["customer_id", "provider_id", "scheduled_at", "created_at", "booking_id"]]
            .sort_values(["scheduled_at", "created_at", "booking_id"], kind="stable")
            .groupby("customer_id").tail(1))
    data_last = data.bookings.loc[(data.bookings["scheduled_at"] <= as_of)
                                  & (data.bookings["created_at"] <= as_of)
                                  & (data.bookings["status"] == "completed")]
    latest_anywhere = data_last.groupby("customer_id")["scheduled_at"].max()
    last = last.loc[last["scheduled_at"].to_numpy()
                    >= latest_anywhere.reindex(last["customer_id"]).to_numpy()]
    last = last.loc[last["scheduled_at"] > as_of - cfg.active_window_days * DAY]
    out["n_customer_base"] = per_provider(last.groupby("provider_id").size()).astype(np.int64)
    if churn_probability is None:
        values["customer_churn"] = np.full(n_prov, np.nan)
        draws["customer_churn"] = np.full((n_prov, D), np.nan)
    else:
        p = _checked_probabilities(churn_probability)
        joined = pd.DataFrame({"provider_id": last["provider_id"].to_numpy(),
                               "p": p.reindex(last["customer_id"]).to_numpy()}).dropna()
        g = joined.groupby("provider_id")["p"]
        cnt = per_provider(g.size())
        mu = np.where(cnt > 0, per_provider(g.mean()), np.nan)
        # between-customer sd; a base of one customer gets the marketplace's sd
        market_sd = float(joined["p"].std(ddof=1)) if len(joined) > 1 else 0.25
        sd_c = np.where(cnt > 1, per_provider(g.std(ddof=1)), market_sd)
        se = sd_c / np.sqrt(np.maximum(cnt, 1))
        values["customer_churn"] = mu
        draws["customer_churn"] = np.where(
            cnt[:, None] > 0,
            np.clip(mu[:, None] + se[:, None] * rng.standard_normal((n_prov, D)), 0, 1),
            np.nan)
    return ProviderComponents(as_of=as_of, providers=out, values=values, draws=draws,
                              prior=prior)


def _checked_probabilities(p: pd.Series) -> pd.Series:
    if not isinstance(p, pd.Series) or p.index.has_duplicates:
        raise InputError("churn_probability: expected a pandas Series indexed by unique "
                         "customer_id (e.g. scorer.population(data, as_of)"
                         "['churn_probability'])")
    values = pd.to_numeric(p, errors="coerce").astype(np.float64)
    bad = values.notna() & ((values < 0) | (values > 1))
    if bad.any():
        raise InputError(f"churn_probability: {int(bad.sum())} values outside [0, 1], e.g. "
                         f"{values[bad].head(3).round(3).to_dict()}")
    return values
