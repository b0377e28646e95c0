"""Fitting the provider score's weights on an observable later signal: :func:`fit_provider_weights`.

The score (:func:`~barberpro_ml.providers.provider_scores`) is a weighted sum of component
percentiles. Which weights make it track a barber's quality cannot be read off the data at one
cut-off, and real data carry no latent quality to fit against. What real data do carry is the
*future*: at a cut-off ``as_of`` at least ``horizon_days`` before the end of the data, the
components are measured with what was known at ``as_of``, and the weights are chosen so that the
score ranks barbers like a signal observed only after ``as_of``:

- ``target="rating"`` (default): the mean rating of the reviews created in
  ``(as_of, as_of + horizon_days]``, shrunk towards the marketplace mean by the number of those
  reviews (the normal empirical Bayes of :func:`~barberpro_ml.providers.components.
  empirical_bayes_normal`). The reviews are new measurements of the experience in the chair,
  the only direct measure of quality the data hold; their noise is independent of the noise
  in the components measured at ``as_of``;
- ``target="retention"``: the share of the barber's customer base at ``as_of`` (customers whose
  latest visit was with the barber within ``active_window_days``) who come back to the barber
  within the horizon, beta-binomial shrunk. Customers' own rhythms and the neighborhood move it
  as well, and they persist from before to after ``as_of``: it rewards the retention component
  for persistence, not only for quality;
- ``target="both"``: the mean of the two signals' marketplace percentiles.

Barbers who leave within the horizon (their later signal is cut short) and barbers without any
later observation are left out of the fit.

The weights are found by **bagged rank maximisation**: on each of ``n_bootstrap`` resamples of
the barbers, the weight vector on a simplex grid (step ``grid_step``, every weight a multiple of
it, at least ``min_weight`` for every measured component) with the largest Spearman correlation
between score and later signal is picked; the fitted weights are the mean of those picks
(bagging, Breiman 1996, "Bagging predictors", *Machine Learning* 24(2)): non-negative, summing
to 1, and smoother than one noisy arg-max. The barbers left out of each resample (out of bag)
give an honest estimate of the rank agreement the procedure reaches on barbers it did not see.
On the same out-of-bag barbers, every component alone is scored too (with ``min_weight`` 0):
a weighting fitted on a hundred barbers against a noisy signal can do worse on new barbers
than the best component by itself, and then that component alone is kept. The candidate (the
fitted weights or one component) and the percentile reference (``percentile_within``:
neighborhood or marketplace) with the best mean out-of-bag agreement are kept.

The fit reads events after ``as_of`` (that is its purpose); the scores it configures read only
events known at their own cut-off.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import rankdata

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.features._common import to_as_of
from barberpro_ml.providers.components import (
    DAY,
    HIGHER_IS_BETTER,
    empirical_bayes_beta,
    empirical_bayes_normal,
    measure_components,
)
from barberpro_ml.providers.config import (
    COMPONENTS,
    ComponentWeights,
    ProviderScoreConfig,
    WeightFitConfig,
    load_score_config,
)

__all__ = ["ProviderScoreWeights", "choose_weights", "fit_provider_weights", "later_signal",
           "simplex_grid"]

FloatArray = npt.NDArray[np.float64]
Reference = Literal["neighborhood", "marketplace"]


@dataclass(frozen=True)
class ProviderScoreWeights:
    """Weights of the provider score fitted on a later signal (:func:`fit_provider_weights`).

    Attributes
    ----------
    weights
        The fitted weights (non-negative, sum to 1; 0 for a component not measured at
        ``as_of``).
    percentile_within
        The percentile reference chosen by out-of-bag rank agreement.
    as_of, horizon_days, target
        The fit's cut-off, the later window and the later signal.
    n_barbers
        Barbers in the fit (on the platform at ``as_of``, still there at the end of the
        horizon, with the later signal observed).
    chosen
        The candidate kept: ``"fitted"`` (the bagged rank-maximising weights) or the name of
        the single component that, alone, agreed best with the later signal out of bag.
    oob_spearman
        Per candidate ``"<reference>/<fitted or component>"``: the mean out-of-bag Spearman
        with the later signal and its 5th-95th percentiles over the resamples.
    in_sample_spearman
        Spearman of the score with the fitted weights and the later signal, on every barber of
        the fit (optimistic: the weights were chosen on them).
    component_spearman
        Spearman of each component's percentile alone with the later signal.
    """

    weights: ComponentWeights
    percentile_within: Reference
    as_of: pd.Timestamp
    horizon_days: int
    target: str
    n_barbers: int
    chosen: str
    oob_spearman: dict[str, dict[str, float]] = field(default_factory=dict)
    in_sample_spearman: float = float("nan")
    component_spearman: dict[str, float] = field(default_factory=dict)

    def config(self, base: ProviderScoreConfig | None = None) -> ProviderScoreConfig:
        """``base`` (default: the shipped config) with these weights and percentile reference."""
        cfg = base or load_score_config()
        return cfg.model_copy(update={"weights": self.weights,
                                      "percentile_within": self.percentile_within})

    def summary(self) -> dict[str, object]:
        """JSON-ready record of the fit."""
        return {"as_of": f"{self.as_of:%Y-%m-%d}", "horizon_days": self.horizon_days,
                "target": self.target, "n_barbers": self.n_barbers,
                "percentile_within": self.percentile_within, "chosen": self.chosen,
                "weights": {k: round(v, 4) for k, v in self.weights.as_dict().items()},
                "oob_spearman": self.oob_spearman,
                "in_sample_spearman": round(self.in_sample_spearman, 4),
                "component_spearman": self.component_spearman}


def simplex_grid(n: int, step: float, min_weight: float = 0.0) -> FloatArray:
    """Every weight vector of length ``n`` with entries multiples of ``step`` summing to 1 and
    each at least ``min_weight``; shape ``(n_vectors, n)``.

    Examples
    --------
    >>> simplex_grid(2, 0.5).tolist()
    [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    units = round(1.0 / step)
    if n < 1 or abs(units * step - 1.0) > 1e-9:
        raise InputError(f"grid_step must divide 1 (got {step}) and there must be at least one "
                         f"component (got {n})")
    floor = int(np.ceil(min_weight / step - 1e-9))
    free = units - floor * n
    if free < 0:
        raise InputError(f"min_weight {min_weight} x {n} components exceeds 1")
    rows = [np.array(c) for c in itertools.combinations_with_replacement(range(n), free)]
    out = np.full((len(rows), n), float(floor))
    for i, c in enumerate(rows):
        out[i] += np.bincount(c, minlength=n) if len(c) else 0.0
    return np.asarray(out * step, dtype=np.float64)


def _percentiles(values: FloatArray, groups: npt.NDArray[np.int64],
                 higher_is_better: bool) -> FloatArray:
    """Point percentile (0-100) within each group; unknown values sit at 50 (the mean of the
    uniform draw the score gives them)."""
    signed = values if higher_is_better else -values
    out = np.full(len(values), 50.0)
    for g in np.unique(groups):
        rows = (groups == g) & ~np.isnan(signed)
        n = int(rows.sum())
        if n:
            out[rows] = (rankdata(signed[rows]) - 0.5) / n * 100.0
    return out


def later_signal(data: MarketplaceData, as_of: object, horizon_days: int,
                 providers: pd.Index, *, active_window_days: int = 180) -> pd.DataFrame:
    """The signals observed after ``as_of`` that the weights are fitted on.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``providers``: ``rating`` (shrunk mean rating of the reviews created in
        the window; NaN without any), ``n_reviews``, ``retention`` (shrunk share of the
        barber's customer base at ``as_of`` with a completed visit with the barber in the
        window; NaN without a base), ``n_base`` and ``left`` (the barber left within the
        window).
    """
    stamp = to_as_of(as_of, to_utc=True)
    end = stamp + horizon_days * DAY
    ids = providers
    zeros = np.zeros(len(ids), dtype=np.int64)

    def per_provider(series: pd.Series) -> FloatArray:
        return np.asarray(series.reindex(ids).fillna(0).to_numpy(), dtype=np.float64)

    rv = data.reviews
    later = rv.loc[(rv["created_at"] > stamp) & (rv["created_at"] <= end)
                   & rv["provider_id"].isin(ids)]
    rating = later["rating"].astype(np.float64)
    n = per_provider(rating.groupby(later["provider_id"]).size())
    s = per_provider(rating.groupby(later["provider_id"]).sum())
    sq = per_provider((rating**2).groupby(later["provider_id"]).sum())
    shrunk = (empirical_bayes_normal(s, sq, n, zeros)[0] if (n > 0).any()
              else np.full(len(ids), np.nan))

    b = data.bookings
    done = b.loc[b["status"] == "completed", ["customer_id", "provider_id", "scheduled_at",
                                              "created_at", "booking_id"]]
    known = done.loc[(done["scheduled_at"] <= stamp) & (done["created_at"] <= stamp)]
    # ties broken by when each visit was booked, then by id: never by the rows' order
    last = (known.sort_values(["scheduled_at", "created_at", "booking_id"], kind="stable")
            .groupby("customer_id").tail(1))
    last = last.loc[(last["scheduled_at"] > stamp - active_window_days * DAY)
                    & last["provider_id"].isin(ids)]
    after = done.loc[(done["scheduled_at"] > stamp) & (done["scheduled_at"] <= end)]
    came_back = pd.MultiIndex.from_frame(last[["customer_id", "provider_id"]]).isin(
        pd.MultiIndex.from_frame(after[["customer_id", "provider_id"]]))
    base_n = per_provider(last.groupby("provider_id").size())
    base_k = per_provider(pd.Series(came_back, index=last.index).groupby(
        last["provider_id"]).sum())
    if (base_n > 0).any():
        a, bb, _ = empirical_bayes_beta(base_k, base_n, zeros)
        retention = np.where(base_n > 0, a / (a + bb), np.nan)
    else:
        retention = np.full(len(ids), np.nan)
    left_at = data.providers.set_index("provider_id")["left_at"].reindex(ids)
    return pd.DataFrame({"rating": np.where(n > 0, shrunk, np.nan), "n_reviews": n,
                         "retention": retention, "n_base": base_n,
                         "left": (left_at.notna() & (left_at <= end)).to_numpy()}, index=ids)


def _rank_rows(x: FloatArray) -> FloatArray:
    ranks: FloatArray = rankdata(x, axis=-1)
    return ranks


def _spearman_rows(scores: FloatArray, target_ranks: FloatArray) -> FloatArray:
    """Spearman of every row of ``scores`` with the target (given as ranks); NaN for a
    constant row. Average ranks for ties: a component unknown for many barbers (set at 50)
    ties them, and breaking the ties by position would invent a signal from the order of the
    ids."""
    r = _rank_rows(scores)
    r = r - r.mean(axis=1, keepdims=True)
    t = target_ranks - target_ranks.mean()
    denom = np.sqrt((r**2).sum(axis=1) * (t**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.where(denom > 0, (r @ t) / np.where(denom > 0, denom, 1.0),
                                   np.nan)
    return out


def fit_provider_weights(data: MarketplaceData, as_of: object, *,
                         churn_probability: pd.Series | None = None,
                         config: ProviderScoreConfig | None = None,
                         fit: WeightFitConfig | None = None) -> ProviderScoreWeights:
    """Fit the provider score's weights and percentile reference on a signal observed after
    ``as_of`` (see the module docstring for the procedure and its reasons).

    Parameters
    ----------
    data
        The validated event tables; they must reach ``horizon_days`` beyond ``as_of``.
    as_of
        The fit's cut-off: components are measured with the events known then.
    churn_probability
        Churn probability per ``customer_id`` at ``as_of`` (as in :func:`provider_scores`);
        None: the customer-churn component is not measured and gets weight 0.
    config
        Windows and priors of the components (default: the shipped ``providers.yaml``).
    fit
        The fitting step's settings (default: ``config.fit``).

    Returns
    -------
    ProviderScoreWeights
        The weights, the percentile reference, and the agreement reached with the later
        signal (out of bag and in sample). ``.config()`` gives a config to score with.

    Raises
    ------
    NotEnoughDataError
        The data end before ``as_of + horizon_days``, or fewer than 10 barbers have the later
        signal.

    Examples
    --------
    >>> fitted = fit_provider_weights(data, "2024-06-30")        # doctest: +SKIP
    >>> provider_scores(data, "2024-12-31", config=fitted.config())  # doctest: +SKIP
    """
    cfg = config or load_score_config()
    settings = fit or cfg.fit
    stamp = to_as_of(as_of, to_utc=True)
    horizon = settings.horizon_days
    data_end = max(data.bookings["scheduled_at"].max(), data.bookings["created_at"].max(),
                   data.reviews["created_at"].max() if len(data.reviews) else pd.NaT)
    if stamp + horizon * DAY > data_end:
        raise NotEnoughDataError(
            f"fit_provider_weights: the later signal needs events up to {stamp:%Y-%m-%d} + "
            f"{horizon} days = {stamp + horizon * DAY:%Y-%m-%d}, but the latest event in "
            f"bookings/reviews is {data_end:%Y-%m-%d}; choose an as_of at least {horizon} days "
            "before the end of the data or a shorter fit.horizon_days")
    comps = measure_components(data, stamp, cfg.model_copy(update={"n_draws": 50}),
                               churn_probability)
    frame = comps.providers
    signal = later_signal(data, stamp, horizon, frame.index,
                          active_window_days=cfg.active_window_days)
    market = np.zeros(len(frame), dtype=np.int64)
    if settings.target == "both":
        target = (_percentiles(signal["rating"].to_numpy(), market, True)
                  + _percentiles(signal["retention"].to_numpy(), market, True)) / 2
        observed = signal["rating"].notna() & signal["retention"].notna()
    else:
        target = signal[settings.target].to_numpy()
        observed = signal[settings.target].notna()
    keep = (observed & ~signal["left"]).to_numpy()
    n_keep = int(keep.sum())
    if n_keep < 10:
        raise NotEnoughDataError(
            f"fit_provider_weights: {n_keep} barbers on the platform at {stamp:%Y-%m-%d} have "
            f"the later '{settings.target}' signal within {horizon} days and stayed (at least "
            "10 needed)")
    measured = [c for c in COMPONENTS if not np.isnan(comps.values[c]).all()]
    hoods = np.asarray(pd.Categorical(frame["neighborhood"]).codes, dtype=np.int64)
    percentiles: dict[str, FloatArray] = {}
    for ref in settings.percentile_candidates:
        groups = hoods if ref == "neighborhood" else market
        pct = np.column_stack([_percentiles(comps.values[c], groups, HIGHER_IS_BETTER[c])
                               for c in measured])
        percentiles[ref] = pct[keep]
    y = np.asarray(target[keep], dtype=np.float64)
    chosen, chosen_name, vector, summary = choose_weights(percentiles, y, measured, settings)
    weights = _round_to_sum_one(dict(zip(measured, vector, strict=True)))
    w = np.array([weights[c] for c in measured])
    pct = percentiles[chosen]
    in_sample = float(_spearman_rows((pct @ w)[None, :], _rank_rows(y))[0])
    alone = {c: round(float(_spearman_rows(pct[:, [j]].T, _rank_rows(y))[0]), 4)
             for j, c in enumerate(measured)}
    return ProviderScoreWeights(
        weights=ComponentWeights(**{c: weights.get(c, 0.0) for c in COMPONENTS}),
        percentile_within=chosen, as_of=stamp, horizon_days=horizon,
        target=settings.target, n_barbers=n_keep, chosen=chosen_name, oob_spearman=summary,
        in_sample_spearman=in_sample, component_spearman=alone)


def choose_weights(percentiles: dict[str, FloatArray], y: FloatArray,
                   measured: list[str], settings: WeightFitConfig
                   ) -> tuple[Reference, str, FloatArray, dict[str, dict[str, float]]]:
    """The selection step of :func:`fit_provider_weights` on given percentiles.

    Parameters
    ----------
    percentiles
        Per percentile reference: ``(n_barbers, n_components)`` component percentiles.
    y
        The later signal per barber (only its ranks matter).
    measured
        Names of the components (the columns of each percentile matrix).
    settings
        Grid, floor, resamples and seed.

    Returns
    -------
    reference, candidate, weights, oob
        The percentile reference and the candidate kept (``"fitted"`` or a component),
        its weight vector (non-negative, sums to 1, in the order of ``measured``) and the mean
        and 5th-95th percentiles of every candidate's out-of-bag Spearman.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> pct = rng.uniform(0, 100, (80, 2))
    >>> ref, name, w, _ = choose_weights({"marketplace": pct}, pct[:, 0],
    ...                                  ["a", "b"], WeightFitConfig(n_bootstrap=20))
    >>> name, w.round(2).tolist()
    ('a', [1.0, 0.0])
    """
    n_keep = len(y)
    grid = simplex_grid(len(measured), settings.grid_step, settings.min_weight)
    rng = np.random.default_rng(settings.seed)
    # candidates, each scored on the rows each resample left out: every component alone (no
    # fitting, nothing to overfit) and the rank-maximising pick of the resample ("fitted");
    # listed simplest first, so that a tie keeps the simpler
    singles = np.eye(len(measured))[: len(measured) if settings.min_weight == 0 else 0]
    names = (*measured, "fitted") if settings.min_weight == 0 else ("fitted",)
    picks: dict[str, list[FloatArray]] = {ref: [] for ref in percentiles}
    oob: dict[tuple[str, str], list[float]] = {
        (ref, name): [] for ref in percentiles for name in names}
    for _ in range(settings.n_bootstrap):
        i = rng.integers(0, n_keep, n_keep)
        out = np.setdiff1d(np.arange(n_keep), i)
        for ref, pct in percentiles.items():
            rho = _spearman_rows(grid @ pct[i].T, _rank_rows(y[i]))
            best = grid[int(np.nanargmax(rho))]
            picks[ref].append(best)
            if len(out) < 5:
                continue
            held = _spearman_rows(np.vstack([singles, best]) @ pct[out].T, _rank_rows(y[out]))
            for name, value in zip(names, held, strict=True):
                oob[(ref, name)].append(float(value))
    summary = {f"{ref}/{name}": {"mean": round(float(np.nanmean(v)), 4),
                                 "p05": round(float(np.nanpercentile(v, 5)), 4),
                                 "p95": round(float(np.nanpercentile(v, 95)), 4)}
               for (ref, name), v in oob.items() if v}
    if not summary:
        raise NotEnoughDataError(f"fit_provider_weights: {n_keep} barbers leave no barber out "
                                 "of the resamples to validate on")
    label = max(summary, key=lambda k: summary[k]["mean"])
    ref_name, chosen_name = label.split("/")
    chosen: Reference = "neighborhood" if ref_name == "neighborhood" else "marketplace"
    vector: FloatArray = (np.mean(picks[chosen], axis=0) if chosen_name == "fitted"
                          else singles[measured.index(chosen_name)])
    return chosen, chosen_name, vector, summary


def _round_to_sum_one(weights: dict[str, float], decimals: int = 3) -> dict[str, float]:
    """Round to ``decimals`` and put the rounding residue on the largest weight."""
    out = {c: round(float(v), decimals) for c, v in weights.items()}
    top = max(out, key=lambda c: out[c])
    out[top] = round(out[top] + 1.0 - sum(out.values()), decimals)
    return out
