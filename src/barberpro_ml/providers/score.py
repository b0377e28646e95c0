"""The provider score (0-100) with its interval: :func:`provider_scores`.

Each component (:mod:`barberpro_ml.providers.components`) becomes a percentile among all the
barbers of the marketplace (or of the same neighborhood, ``percentile_within``), 0 the worst
and 100 the best, in the component's own direction (fewer no-shows is better). The score is
the weighted sum of the component percentiles (weights: ``configs/providers.yaml``, selected
by :func:`~barberpro_ml.providers.fit_provider_weights` on a later observable signal; a
component of weight 0 still has its percentile columns).

Uncertainty is propagated by simulation: each of ``n_draws`` posterior draws of every
component of every barber is ranked within its reference group, the draws' percentiles are
weighted into a score draw, and the score is the median of those draws with the 5th and 95th
percentiles as its interval (``interval: 0.90``). A barber with five reviews has a rating
posterior close to the neighborhood mean and wide, so its rating percentile moves around from
draw to draw: its score sits near the middle with a wide interval, and it cannot outrank a
barber with five hundred good reviews on the luck of a few. A component that is unknown for a
barber (no reviews yet, too short a tenure for a trend) has a uniform percentile draw: it
contributes its weight times 50 on average, with the widest spread. A component that cannot
be measured for any barber is left out and its weight spread over the others; when no
weighted component can be measured at all, the score is uniform noise: about 50, with the
widest interval.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import rankdata

from barberpro_ml.data import MarketplaceData
from barberpro_ml.features._common import to_as_of
from barberpro_ml.providers.components import (
    HIGHER_IS_BETTER,
    ProviderComponents,
    measure_components,
)
from barberpro_ml.providers.config import COMPONENTS, ProviderScoreConfig, load_score_config

__all__ = ["component_percentiles", "provider_scores", "score_components"]

FloatArray = npt.NDArray[np.float64]


def component_percentiles(draws: FloatArray, groups: npt.NDArray[np.int64],
                          higher_is_better: bool, rng: np.random.Generator) -> FloatArray:
    """Percentile (0-100) of every draw among the same draw of the barbers in its group.

    ``(rank - 1/2) / n x 100`` with average ranks for ties (a group of one barber is at 50);
    unknown values (NaN) get a uniform percentile.
    """
    signed = draws if higher_is_better else -draws
    out = np.empty_like(signed)
    for g in np.unique(groups):
        rows = groups == g
        block = signed[rows]
        known = ~np.isnan(block)
        n = known.sum(axis=0)
        filled = np.where(known, block, -np.inf)
        ranks = rankdata(filled, axis=0, method="average")
        # ranks among the known values: unknown rows took the lowest ranks
        ranks = ranks - (block.shape[0] - n)
        pct = np.where(n > 0, (ranks - 0.5) / np.maximum(n, 1) * 100.0, 50.0)
        out[rows] = np.where(known, pct, rng.uniform(0.0, 100.0, block.shape))
    return out


def score_components(components: ProviderComponents, cfg: ProviderScoreConfig
                     ) -> pd.DataFrame:
    """The score table from measured components (see :func:`provider_scores`)."""
    rng = np.random.default_rng(cfg.seed + 1)
    frame = components.providers
    if cfg.percentile_within == "neighborhood":
        groups = np.asarray(pd.Categorical(frame["neighborhood"]).codes, dtype=np.int64)
    else:
        groups = np.zeros(len(frame), dtype=np.int64)
    weights = cfg.weights.as_dict()
    measured = {c for c in weights if not np.isnan(components.values[c]).all()}
    used = {c: w for c, w in weights.items() if c in measured and w > 0}
    # a component that cannot be measured for any barber is left out; its weight, if any, is
    # spread over the rest in proportion
    dropped = sorted(set(weights) - measured)
    total = sum(used.values())
    lo_q, hi_q = (1 - cfg.interval) / 2 * 100, (1 + cfg.interval) / 2 * 100
    score_draws = np.zeros((len(frame), cfg.n_draws))
    columns: dict[str, object] = {"neighborhood": frame["neighborhood"],
                                  "price_tier": frame["price_tier"]}
    component_cols: dict[str, object] = {}
    for c in COMPONENTS:
        value = components.values[c]
        component_cols[f"{c}_value"] = value
        if c not in measured:
            for suffix in ("", "_low", "_high"):
                component_cols[f"{c}{suffix}"] = np.full(len(frame), np.nan)
            continue
        # a measured component of weight 0 is still reported in its own columns
        pct = component_percentiles(components.draws[c], groups, HIGHER_IS_BETTER[c], rng)
        if c in used:
            score_draws += used[c] / total * pct
        component_cols[c] = np.median(pct, axis=1)
        component_cols[f"{c}_low"] = np.percentile(pct, lo_q, axis=1)
        component_cols[f"{c}_high"] = np.percentile(pct, hi_q, axis=1)
    if not used:
        # no weighted component measured for anybody (no review yet, say): nothing is known,
        # and the score says so: uniform draws, a median near 50 and the widest interval
        score_draws = rng.uniform(0.0, 100.0, score_draws.shape)
    columns["score"] = np.median(score_draws, axis=1)
    columns["score_low"] = np.percentile(score_draws, lo_q, axis=1)
    columns["score_high"] = np.percentile(score_draws, hi_q, axis=1)
    for c in COMPONENTS:
        for suffix in ("", "_low", "_high", "_value"):
            columns[f"{c}{suffix}"] = component_cols[f"{c}{suffix}"]
    for extra in ("n_reviews", "rating_raw", "rating_prior", "n_outcomes", "n_returns_base",
                  "n_customer_base", "tenure_days"):
        columns[extra] = frame[extra]
    table = pd.DataFrame(columns, index=frame.index)
    table["rank_in_neighborhood"] = (table.groupby("neighborhood")["score"]
                                     .rank(ascending=False, method="min").astype(np.int64))
    table["n_in_neighborhood"] = table.groupby("neighborhood")["score"].transform("size")
    table.attrs.update({
        "as_of": components.as_of, "weights": {c: used[c] / total for c in used},
        "dropped_components": dropped, "percentile_within": cfg.percentile_within,
        "interval": cfg.interval, "prior": components.prior})
    return table


def provider_scores(data: MarketplaceData, as_of: object, *,
                    churn_probability: pd.Series | None = None,
                    config: ProviderScoreConfig | None = None) -> pd.DataFrame:
    """The provider score (0-100) of every barber on the platform at ``as_of``.

    Parameters
    ----------
    data
        The validated event tables.
    as_of
        The cut-off (naive UTC; inclusive). Only events known then are read: appending later
        events changes nothing.
    churn_probability
        The churn champion's churn probability per ``customer_id`` at ``as_of`` (for the
        customer-churn component; ``scorer.population(data, as_of)["churn_probability"]``).
        None: that component is left out and its weight spread over the others in proportion
        (``attrs["dropped_components"]`` says so).
    config
        Weights, windows and draws (default: the shipped ``configs/providers.yaml``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``provider_id`` (barbers who joined by ``as_of`` and had not left), with
        ``neighborhood, price_tier, score, score_low, score_high``; for each component
        ``<c>`` of :data:`~barberpro_ml.providers.config.COMPONENTS`: its percentile ``<c>``
        (0-100), interval ``<c>_low, <c>_high`` and measured value ``<c>_value`` (stars; rates
        as shares; utilisation as a share of the open minutes; revenue trend as a log ratio;
        the customer base's mean churn probability); the counts behind them (``n_reviews``,
        ``rating_raw``, ``rating_prior``, ``n_outcomes``, ``n_returns_base``,
        ``n_customer_base``, ``tenure_days``); ``rank_in_neighborhood`` and
        ``n_in_neighborhood``. ``attrs`` holds the effective weights, the dropped components
        and the fitted priors.

    Raises
    ------
    NotEnoughDataError
        No barber is on the platform at ``as_of``.
    InputError
        ``as_of`` unreadable, or ``churn_probability`` malformed.

    Examples
    --------
    >>> from barberpro_ml.providers import provider_scores
    >>> provider_scores(data, "2024-12-31")[["score", "score_low", "score_high"]].head()
    ... # doctest: +SKIP
    """
    cfg = config or load_score_config()
    stamp = to_as_of(as_of, to_utc=True)
    return score_components(measure_components(data, stamp, cfg, churn_probability), cfg)
