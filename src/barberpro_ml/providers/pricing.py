"""Price elasticity of bookings from the providers' own price rises, by double machine learning,
and the revenue change of a proposed price change with an interval propagated from it.

The estimand
------------
For a cell (all events, a price tier, a neighborhood, or a service within a tier) the
**elasticity** is the coefficient ``theta`` of the partially linear model [1]_ ::

    log(1 + B_post) = theta * log(step) + g(X) + e,     E[e | X, step] = 0

over the cell's price-rise events (see :mod:`barberpro_ml.providers._elasticity_data`):
``B_post`` the completed visits in the ``post_weeks`` after the rise (all services for the
pooled, tier and neighborhood cells; the one service for a service x tier cell), ``step`` the
price step, ``X`` the controls known at the change (lagged demand, season and trend, tier,
neighborhood, tenure, customer mix). With a heterogeneous effect the partialling-out estimator
targets the variance-weighted projection ``Cov(v, Delta) / Var(v)``, ``v = step residual``;
steps are drawn independently of everything else, so this is ``Cov(log step, Delta) /
Var(log step)`` with ``Delta`` the true effect of the event's rise on ``log(1 + B_post)``. The
simulator's oracle (:func:`~barberpro_ml.providers._elasticity_data.oracle_event_effects`)
computes ``Delta`` per event, and :func:`true_elasticity` the same projection over the cell's
events: the number the benchmark's coverage is measured against.

Cross-fitting (folds by provider) with gradient-boosting nuisances comes from DoubleML [2]_;
the inference is ours (:func:`cluster_jackknife_inference`): a cell has tens of providers, too
few for the plain cluster-robust sandwich and a normal quantile, so each repetition's variance
is the delete-one-provider jackknife of the DML2 ratio (CR3), the repetitions are combined by
the median with the splitting variation added [1]_, and the interval uses Student's t with
``G - 1`` degrees of freedom for ``G`` providers [3]_. The **naive before/after** estimate regresses
``log(1 + B_post) - log(1 + B_pre scaled to the post window)`` on ``log(step)`` through the
origin: it attributes every change across the rise (season, growth, the provider's customer base
drifting) to the price.

Revenue at another price
------------------------
A relative price change ``dp`` with constant elasticity ``eps`` multiplies bookings by
``(1 + dp) ** eps`` and revenue by ``(1 + dp) ** (1 + eps)``; the expected revenue change is
``(1 + dp) ** (1 + eps) - 1``. The interval maps the elasticity's confidence interval through
that function (monotone in ``eps`` for ``dp != 0``, so the endpoints map to endpoints); the
mean under ``eps ~ N(theta, se^2)`` is ``(1 + dp) * exp(theta L + se^2 L^2 / 2) - 1`` with
``L = log(1 + dp)``. Changes outside the rises the evidence saw are refused.

References
----------
.. [1] Chernozhukov, V., Chetverikov, D., Demirer, M., Duflo, E., Hansen, C., Newey, W. and
   Robins, J. (2018). "Double/debiased machine learning for treatment and structural
   parameters". *The Econometrics Journal* 21(1), C1-C68.
.. [2] Bach, P., Chernozhukov, V., Kurz, M. S. and Spindler, M. (2022). "DoubleML - An
   object-oriented implementation of double machine learning in Python". *Journal of Machine
   Learning Research* 23(53), 1-6.
.. [3] Cameron, A. C. and Miller, D. L. (2015). "A practitioner's guide to cluster-robust
   inference". *Journal of Human Resources* 50(2), 317-372.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

from barberpro_ml.data import MarketplaceData
from barberpro_ml.models.pricing_table import (
    ALL,
    ELASTICITY_COLUMNS,
    best_supported_change,
    lookup_elasticity,
    revenue_change,
    revenue_change_interval,
)
from barberpro_ml.providers._elasticity_data import (
    event_panel,
    oracle_event_effects,
    price_rise_events,
)

F64 = npt.NDArray[np.float64]

__all__ = [
    "ALL",
    "ELASTICITY_COLUMNS",
    "SCOPES",
    "PriceElasticityDML",
    "best_supported_change",
    "cluster_jackknife_inference",
    "lookup_elasticity",
    "price_changes_of",
    "revenue_change",
    "revenue_change_interval",
    "true_elasticity",
]

SCOPES = ("pooled", "tier", "neighborhood", "service_tier")
_CONTROLS = ("log_pre_scaled", "log_provider_pre", "season_sin", "season_cos",
             "years_since_start", "tenure_years", "share_first_visits", "share_away_customers",
             "share_discounted", "log_customers_pre")


def price_changes_of(data: MarketplaceData) -> pd.DataFrame:
    """The price-change schedule: ``data.truth.tables["price_changes"]`` within the data.

    Raises
    ------
    ValueError
        When the data carry no price-change table (real data: pass one to the estimator).
    """
    if data.truth is None or "price_changes" not in data.truth.tables:
        raise ValueError("no price changes: the data carry no truth table 'price_changes'; "
                         "pass a table of provider_id, changed_at, price_index instead")
    pc = data.truth.tables["price_changes"]
    return pc[pc["changed_at"] < data.observation_end].reset_index(drop=True)


def _cells(panel: pd.DataFrame, scopes: Sequence[str]) -> list[tuple[dict[str, str],
                                                                      pd.DataFrame]]:
    """(labels, rows) of every cell; event-level rows (services summed) unless service_tier."""
    keep = ["event_id", "provider_id", "log_step", "step", "price_tier", "neighborhood",
            *(c for c in panel.columns if c.startswith("share_channel_")), *_CONTROLS]
    keep = [c for c in dict.fromkeys(keep) if c not in ("log_pre_scaled",)]
    events = panel.groupby("event_id", as_index=False).agg(
        bookings_post=("bookings_post", "sum"), bookings_pre=("bookings_pre", "sum"),
        **{c: (c, "first") for c in keep if c != "event_id"})
    # an event's lagged demand is the provider's total, scaled to the post window
    events["log_pre_scaled"] = events["log_provider_pre"]
    events["log_bookings_post"] = np.log1p(events["bookings_post"])
    out: list[tuple[dict[str, str], pd.DataFrame]] = []
    base = {"service": ALL, "price_tier": ALL, "neighborhood": ALL}
    if "pooled" in scopes:
        out.append(({**base, "scope": "pooled"}, events))
    if "tier" in scopes:
        for tier, rows in events.groupby("price_tier"):
            out.append(({**base, "scope": "tier", "price_tier": str(tier)}, rows))
    if "neighborhood" in scopes:
        for hood, rows in events.groupby("neighborhood"):
            out.append(({**base, "scope": "neighborhood", "neighborhood": str(hood)}, rows))
    if "service_tier" in scopes:
        for keys, rows in panel.groupby(["service", "price_tier"]):
            service, tier = (str(k) for k in keys)
            out.append(({**base, "scope": "service_tier", "service": service,
                         "price_tier": tier}, rows))
    return out


def _naive(rows: pd.DataFrame, level: float) -> tuple[float, float, float]:
    """Before/after through the origin, with a cluster-robust (provider) interval."""
    d = rows["log_step"].to_numpy(float)
    y = (rows["log_bookings_post"] - rows["log_pre_scaled"]).to_numpy(float)
    beta = float(d @ y / (d @ d))
    u = d * (y - beta * d)
    scores = pd.Series(u).groupby(rows["provider_id"].to_numpy()).sum().to_numpy()
    g = scores.size
    se = float(np.sqrt(g / max(g - 1, 1) * (scores @ scores)) / (d @ d))
    z = float(stats.norm.ppf(0.5 + level / 2))
    return beta, beta - z * se, beta + z * se


def cluster_jackknife_inference(psi_a: F64, psi_b: F64, clusters: npt.ArrayLike,
                                level: float) -> dict[str, float]:
    """Estimate, standard error and interval of a linear DML score, with a small-sample
    correction for few clusters.

    For the partially linear model's partialling-out score ``psi = psi_a * theta + psi_b``
    (``psi_a = -v^2``, ``psi_b = v * u``, ``v`` and ``u`` the cross-fitted residuals of the
    treatment and the outcome), one column per repetition of the cross-fitting:

    1. per repetition ``s``, the DML2 estimate ``theta_s = sum(psi_b) / sum(-psi_a)`` [1]_ and
       its delete-one-cluster **jackknife** variance ``V_s = (G - 1) / G * sum_g (theta_s(-g)
       - mean_g theta_s(-g))^2`` (``theta_s(-g)`` the same ratio without cluster ``g``): the
       CR3 correction of the cluster-robust variance, which the plain sandwich understates
       with few clusters, above all when a few providers carry much of the treatment
       variation [2]_;
    2. over the repetitions, ``theta`` the median of ``theta_s`` and ``V`` the median of
       ``V_s + (theta_s - theta)^2``, which adds the variation due to the sample splitting
       ([1]_, section 3.4);
    3. the interval ``theta +/- t_{G-1} sqrt(V)``, Student's t with ``G - 1`` degrees of
       freedom for ``G`` clusters [2]_.

    The nuisance models are not refitted without each cluster (the jackknife is of the final,
    linear step, as CR3 is for a regression on fixed regressors).

    Parameters
    ----------
    psi_a, psi_b
        ``(n_obs, n_rep)`` score elements (DoubleML's ``psi_elements``).
    clusters
        The cluster of every observation (provider ids).
    level
        Two-sided level of the interval.

    Returns
    -------
    dict
        ``elasticity``, ``std_error`` (``sqrt(V)``), ``ci_low``, ``ci_high``, ``dof``.

    References
    ----------
    .. [1] Chernozhukov et al. (2018), "Double/debiased machine learning for treatment and
       structural parameters", *The Econometrics Journal* 21(1), C1-C68 (Definition 3.2,
       DML2; section 3.4, the median over splits).
    .. [2] Cameron, A. C. and Miller, D. L. (2015), "A practitioner's guide to cluster-robust
       inference", *Journal of Human Resources* 50(2), 317-372 (section VI: CR3 jackknife,
       t with G - 1 degrees of freedom).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> v = rng.normal(size=(200, 1)); u = 0.5 * v + rng.normal(size=(200, 1))
    >>> out = cluster_jackknife_inference(-v * v, v * u, np.arange(200) // 2, 0.95)
    >>> bool(out["ci_low"] < 0.5 < out["ci_high"]), out["dof"]
    (True, 99.0)
    """
    a = -np.asarray(psi_a, dtype=float)
    b = np.asarray(psi_b, dtype=float)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    _, group = np.unique(np.asarray(clusters), return_inverse=True)
    n_groups = int(group.max()) + 1
    if n_groups < 2:
        raise ValueError("cluster_jackknife_inference needs at least two clusters")
    thetas = np.empty(a.shape[1])
    variances = np.empty(a.shape[1])
    for s in range(a.shape[1]):
        a_g = np.bincount(group, a[:, s], n_groups)
        b_g = np.bincount(group, b[:, s], n_groups)
        thetas[s] = b_g.sum() / a_g.sum()
        loo = (b_g.sum() - b_g) / (a_g.sum() - a_g)
        variances[s] = (n_groups - 1) / n_groups * np.sum((loo - loo.mean()) ** 2)
    theta = float(np.median(thetas))
    se = float(np.sqrt(np.median(variances + (thetas - theta) ** 2)))
    dof = n_groups - 1
    q = float(stats.t.ppf(0.5 + level / 2, dof))
    return {"elasticity": theta, "std_error": se, "ci_low": theta - q * se,
            "ci_high": theta + q * se, "dof": float(dof)}


class PriceElasticityDML(BaseEstimator):  # type: ignore[misc]
    """Elasticity of bookings to a provider's price rise, per cell, by double machine learning.

    Parameters
    ----------
    pre_weeks, post_weeks
        The windows before and after each rise (clean: no other change of that provider).
    scopes
        Which cells to estimate: ``pooled``, ``tier``, ``neighborhood``, ``service_tier``.
    min_events
        A cell with fewer events (or fewer providers than ``n_folds``) is not estimated; it is
        listed in ``skipped_`` with the reason.
    n_folds, n_rep
        Cross-fitting folds (by provider) and repetitions (median aggregation) [1]_.
    max_iter, learning_rate, max_depth, min_samples_leaf
        The gradient-boosting nuisance models (``GradientBoostingRegressor``).
    level
        Two-sided confidence level of the intervals.
    random_state
        Seed of the fold assignment and the nuisance models.

    Attributes
    ----------
    elasticities_ : pandas.DataFrame
        One row per estimated cell: ``ELASTICITY_COLUMNS`` (``all`` where a cell does not
        restrict a dimension; ``min_step``/``max_step`` the price steps the cell saw).
    skipped_ : pandas.DataFrame
        Cells not estimated, with ``n_events`` and ``reason``.
    doubleml_inference_ : pandas.DataFrame
        For comparison only: per estimated cell, DoubleML's own estimate, standard error and
        interval (its cluster-robust sandwich, normal quantile, median-of-bounds aggregation
        over repetitions), which :func:`cluster_jackknife_inference` replaces.
    events_ : pandas.DataFrame
        The price-rise events used (:func:`price_rise_events`).
    panel_ : pandas.DataFrame
        The event x service panel (:func:`event_panel`).

    References
    ----------
    .. [1] Chernozhukov et al. (2018), "Double/debiased machine learning for treatment and
       structural parameters", *The Econometrics Journal* 21(1), C1-C68.

    Examples
    --------
    >>> from barberpro_ml.data import SimulationConfig, simulate
    >>> data = simulate(SimulationConfig(n_customers=6000, seed=1))
    >>> est = PriceElasticityDML(scopes=("pooled",), min_events=10).fit(data)
    >>> list(est.elasticities_["scope"])
    ['pooled']
    """

    def __init__(self, *, pre_weeks: int = 13, post_weeks: int = 13,
                 scopes: Sequence[str] = ("pooled", "tier", "neighborhood", "service_tier"),
                 min_events: int = 20, n_folds: int = 5, n_rep: int = 3, max_iter: int = 100,
                 learning_rate: float = 0.05, max_depth: int = 2, min_samples_leaf: int = 8,
                 level: float = 0.95, random_state: int = 0) -> None:
        self.pre_weeks = pre_weeks
        self.post_weeks = post_weeks
        self.scopes = scopes
        self.min_events = min_events
        self.n_folds = n_folds
        self.n_rep = n_rep
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.level = level
        self.random_state = random_state

    def _validate(self) -> None:
        unknown = set(self.scopes) - set(SCOPES)
        if unknown or not self.scopes:
            raise ValueError(f"scopes must be a non-empty subset of {SCOPES}, got "
                             f"{list(self.scopes)}")
        if self.pre_weeks < 1 or self.post_weeks < 1:
            raise ValueError("pre_weeks and post_weeks must be at least 1")
        if self.n_folds < 2 or self.n_rep < 1:
            raise ValueError("n_folds must be at least 2 and n_rep at least 1")
        if self.min_events < self.n_folds:
            raise ValueError(f"min_events ({self.min_events}) must be at least n_folds "
                             f"({self.n_folds})")
        if not 0.5 <= self.level < 1.0:
            raise ValueError(f"level must be in [0.5, 1), got {self.level}")

    def _learner(self) -> GradientBoostingRegressor:
        # the exact (not histogram) booster: cells have tens to hundreds of rows, where it is
        # faster and needs no thread pool on a shared machine
        return GradientBoostingRegressor(
            n_estimators=self.max_iter, learning_rate=self.learning_rate,
            max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf, subsample=0.8,
            random_state=self.random_state)

    def fit(self, data: MarketplaceData, price_changes: pd.DataFrame | None = None
            ) -> PriceElasticityDML:
        """Build the price-rise panel and estimate every cell in ``scopes``.

        Parameters
        ----------
        data
            The event tables.
        price_changes
            ``provider_id``, ``changed_at``, ``price_index``; default: the simulator's truth
            table (:func:`price_changes_of`).

        Returns
        -------
        PriceElasticityDML
            ``self``, fitted.

        Raises
        ------
        barberpro_ml.errors.NotEnoughDataError
            When no cell has ``min_events`` price-rise events with a clean window.
        """
        from barberpro_ml.errors import NotEnoughDataError

        self._validate()
        pc = price_changes_of(data) if price_changes is None else price_changes
        self.events_ = price_rise_events(data, pc, pre_weeks=self.pre_weeks,
                                         post_weeks=self.post_weeks)
        self.panel_ = event_panel(data, self.events_, pre_weeks=self.pre_weeks,
                                  post_weeks=self.post_weeks)
        rows: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        plain: list[dict[str, Any]] = []
        for labels, cell in _cells(self.panel_, self.scopes):
            n_events = int(cell["event_id"].nunique())
            n_providers = int(cell["provider_id"].nunique())
            if n_events < self.min_events or n_providers < self.n_folds:
                skipped.append({**labels, "n_events": n_events,
                                "reason": f"{n_events} events from {n_providers} providers: "
                                          f"fewer than min_events={self.min_events} or "
                                          f"n_folds={self.n_folds} providers"})
                continue
            ours, theirs = self._fit_cell(cell)
            plain.append({**labels, **theirs})
            rows.append({**labels, "n_events": n_events, "n_providers": n_providers, **ours,
                         **dict(zip(("naive_elasticity", "naive_ci_low", "naive_ci_high"),
                                    _naive(cell, self.level), strict=True)),
                         "min_step": float(cell["step"].min()),
                         "max_step": float(cell["step"].max())})
        if not rows:
            raise NotEnoughDataError(
                f"no cell has {self.min_events} price rises with a clean "
                f"{self.pre_weeks}+{self.post_weeks}-week window ({len(self.events_)} events "
                "in all): use more data, shorter windows or a lower min_events")
        self.elasticities_ = pd.DataFrame(rows, columns=list(ELASTICITY_COLUMNS))
        self.skipped_ = pd.DataFrame(skipped, columns=["scope", "service", "price_tier",
                                                       "neighborhood", "n_events", "reason"])
        self.doubleml_inference_ = pd.DataFrame(plain)
        return self

    def _fit_cell(self, cell: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
        """(our inference, DoubleML's own) of one cell, from one cross-fitted model."""
        import doubleml as dml  # type: ignore[import-untyped]

        controls = [*_CONTROLS, *(c for c in cell.columns if c.startswith("share_channel_"))]
        # the outcome in log change from the (scaled) pre window: theta is unchanged because
        # the subtracted term is a control, and g(X) becomes the season / trend / mix drift
        # instead of the demand level, which boosting on a few hundred rows learns far better
        frame = cell[["log_step", "provider_id", *controls]].copy()
        frame["log_change"] = cell["log_bookings_post"] - cell["log_pre_scaled"]
        for column, prefix in (("price_tier", "tier_"), ("neighborhood", "hood_")):
            if cell[column].nunique() > 1:
                dummies = pd.get_dummies(cell[column], prefix=prefix, dtype=float)
                frame = frame.join(dummies)
                controls += list(dummies.columns)
        frame = frame.reset_index(drop=True)
        dml_data = dml.DoubleMLData(frame, y_col="log_change", d_cols="log_step",
                                    x_cols=controls, cluster_cols="provider_id")
        # DoubleML draws its folds from numpy's global state
        np.random.seed(self.random_state)  # noqa: NPY002
        model = dml.DoubleMLPLR(dml_data, ml_l=self._learner(), ml_m=self._learner(),
                                n_folds=self.n_folds, n_rep=self.n_rep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit()
        ci = model.confint(level=self.level)
        theirs = {"elasticity": float(model.coef[0]), "std_error": float(model.se[0]),
                  "ci_low": float(ci.iloc[0, 0]), "ci_high": float(ci.iloc[0, 1])}
        return cluster_jackknife_inference(
            model.psi_elements["psi_a"][:, :, 0], model.psi_elements["psi_b"][:, :, 0],
            frame["provider_id"].to_numpy(), self.level), theirs

    def elasticity(self, *, price_tier: str = ALL, service: str = ALL,
                   neighborhood: str = ALL) -> pd.Series:
        """The estimated row of one cell (``all`` for an unrestricted dimension).

        Raises
        ------
        KeyError
            When the cell was not estimated (``skipped_`` says why).
        """
        check_is_fitted(self, "elasticities_")
        return lookup_elasticity(self.elasticities_, price_tier=price_tier, service=service,
                                 neighborhood=neighborhood)


def true_elasticity(data: MarketplaceData, estimator: PriceElasticityDML) -> pd.DataFrame:
    """The oracle's elasticity of every estimated cell: the projection the DML estimates.

    ``Cov(log step, Delta) / Var(log step)`` over the cell's units, ``Delta`` the true effect of
    each event's rise on ``log(1 + B_post)`` (all services for event-level cells, the service
    for service x tier cells), computed with the simulator's counterfactual
    (:func:`~barberpro_ml.providers._elasticity_data.oracle_event_effects`). Also
    ``true_mean_ratio``: the mean of ``Delta / log step`` over the cell's events.
    """
    check_is_fitted(estimator, "elasticities_")
    effects = oracle_event_effects(data, estimator.events_, post_weeks=estimator.post_weeks)
    panel = estimator.panel_.merge(effects, on=["event_id", "service_id"])
    ev = panel.groupby("event_id", as_index=False).agg(
        post=("bookings_post", "sum"), without=("bookings_post_without", "sum"),
        log_step=("log_step", "first"), price_tier=("price_tier", "first"),
        neighborhood=("neighborhood", "first"))
    ev["true_effect"] = np.log1p(ev["post"]) - np.log1p(ev["without"])
    out = []
    for _, row in estimator.elasticities_.iterrows():
        rows = panel if row["scope"] == "service_tier" else ev
        mask = np.ones(len(rows), dtype=bool)
        for dim in ("service", "price_tier", "neighborhood"):
            if row[dim] != ALL:
                mask &= (rows[dim] == row[dim]).to_numpy()
        d = rows.loc[mask, "log_step"].to_numpy(float)
        delta = rows.loc[mask, "true_effect"].to_numpy(float)
        dc = d - d.mean()
        out.append({**{k: row[k] for k in ("scope", "service", "price_tier", "neighborhood")},
                    "true_elasticity": float(dc @ delta / (dc @ dc)),
                    "true_mean_ratio": float(np.mean(delta / d))})
    return pd.DataFrame(out)
