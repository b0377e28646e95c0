"""The static part of a simulated marketplace, drawn once from the config and its seed.

Providers (quality, tier, capacity, neighborhood, when they join and leave, every price
change), customers (signup, channel, neighborhood and latent traits), the seasonal clock and the
structures the barber-choice model samples from. Nothing here depends on what customers do, so
:func:`build_world` gives the same world to the generator and to the oracle.

A barber's departure hazard depends on their latent quality and on the *expected* demand for
their chair (what the choice model sends them per unit of capacity, from the customers' homes,
price sensitivities and cadences): both are fixed up front, so the departure schedule stays
exogenous to what individual customers do, and the engine's wind-down before ``left_at`` reads
only this schedule.

Times are float days since ``config.start``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from barberpro_ml.data.schema import PRICE_TIERS

if TYPE_CHECKING:
    from barberpro_ml.data.simulation import (
        CampaignSpec,
        ProviderModel,
        ShockSpec,
        SimulationConfig,
    )

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

YEAR = 365.25
LOOKAHEAD_DAYS = 2 * 366
"""Provider schedules are drawn this far past ``end``, so futures can be simulated past it."""
PROVIDER_HISTORY_YEARS = 3.0
CUSTOMER_HISTORY_YEARS = 3.0


@dataclass(frozen=True, eq=False)
class World:
    """Everything fixed before the first event: see the module docstring."""

    config: SimulationConfig
    end: float
    horizon: float
    start_weekday: int
    key: np.uint64
    # services
    service_price: F64
    service_duration: F64
    # providers
    n_providers: int
    prov_neigh: I64
    prov_tier: I64
    prov_quality: F64
    prov_capacity: F64
    prov_price: F64
    prov_weight: F64
    prov_joined: F64
    prov_left: F64
    prov_departure_hazard: F64
    """Latent hazard of leaving, per year (constant over the barber's stay)."""
    prov_expected_load: F64
    """Expected chair demand relative to the median barber's (choice model, all present)."""
    prov_wind_from: F64
    """Start of the wind-down before ``prov_left`` (``inf``: none)."""
    prov_wind_to: F64
    """Where the wind-down would reach 1: the barber's own departure, which a market-wide
    exodus (``shocks``) may cut short without changing the days before it."""
    # barber choice: providers grouped by (neighborhood, tier) cell
    cell_order: I64
    cell_start: I64
    cell_end: I64
    cell_cum: F64
    cell_base: F64
    cell_total: F64
    supply_times: F64
    supply: F64
    neigh_weight: F64
    tier_log_price: F64
    # price changes, sorted by (provider, time)
    pc_provider: I64
    pc_time: F64
    pc_index: F64
    pc_key: F64
    # customers
    n_customers: int
    signup: F64
    initial: npt.NDArray[np.bool_]
    virtual_last_visit: F64
    home: I64
    channel: I64
    cadence: F64
    gap_median: F64
    sensitivity: F64
    loyalty: F64
    cancel_p: F64
    no_show_p: F64
    base_hazard: F64
    responsiveness: F64
    preferences: npt.NDArray[np.float32]
    pref_cum: npt.NDArray[np.float32]
    first_discount: F64
    # seasonal clock: Lambda(t) = integral of the demand intensity, on a daily grid
    clock_t: F64
    clock_lambda: F64
    # the campaigns run (sent within [start, end)), in time order
    campaigns: tuple[CampaignSpec, ...]
    campaign_time: F64
    campaign_discount: F64

    @property
    def n_neighborhoods(self) -> int:
        """Number of neighborhoods."""
        return len(self.config.neighborhoods)

    def warp(self, t: F64) -> F64:
        """Seasonal clock at real time ``t``."""
        return np.interp(t, self.clock_t, self.clock_lambda)

    def unwarp(self, lam: F64) -> F64:
        """Real time at seasonal clock ``lam`` (``inf`` past the simulated horizon)."""
        out = np.interp(lam, self.clock_lambda, self.clock_t)
        return np.where(lam > self.clock_lambda[-1], np.inf, out)

    def price_index(self, provider: I64, t: F64) -> F64:
        """Cumulative price multiplier of ``provider`` in force at time ``t`` (1 before any)."""
        if self.pc_key.size == 0:
            return np.ones(len(provider))
        j = np.searchsorted(self.pc_key, provider * _KEY_STRIDE + t, side="right") - 1
        jc = np.clip(j, 0, None)
        hit = (j >= 0) & (self.pc_provider[jc] == provider)
        index: F64 = np.where(hit, self.pc_index[jc], 1.0)
        return index

    def active(self, provider: I64, t: F64) -> npt.NDArray[np.bool_]:
        """Whether each provider is on the platform at time ``t``."""
        return (self.prov_joined[provider] <= t) & (t < self.prov_left[provider])

    def wind_down(self, provider: I64, t: F64) -> F64:
        """How far each provider is into their wind-down at ``t``: 0 before it starts (or
        never leaving), rising linearly to 1 at ``left_at``."""
        start, left = self.prov_wind_from[provider], self.prov_left[provider]
        end = self.prov_wind_to[provider]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (t - start) / (end - start)
        out: F64 = np.where(np.isfinite(start) & (t >= start) & (t < left),
                            np.clip(share, 0.0, 1.0), 0.0)
        return out


def quantize(t: F64) -> F64:
    """Round times (days) to whole seconds.

    Every event time is quantised, so comparing a float time with a cut-off gives the same
    answer as comparing the timestamps written to the tables.
    """
    return np.rint(np.asarray(t, dtype=np.float64) * 86_400.0) / 86_400.0


_KEY_STRIDE = 1e6
"""Spacing of providers in the composite (provider, time) key; exceeds any time in days."""


def _stream(seed: int, name: str) -> np.random.Generator:
    """An independent numpy stream per part of the world, so adding one leaves the rest."""
    tag = int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little")
    return np.random.default_rng(np.random.SeedSequence([seed, 0x5EED, tag]))


def _beta(rng: np.random.Generator, mean: F64 | float, concentration: float, size: int) -> F64:
    m = np.clip(np.broadcast_to(np.asarray(mean, dtype=np.float64), (size,)), 1e-6, 1 - 1e-6)
    return rng.beta(m * concentration, (1.0 - m) * concentration)


def _shares(values: list[float]) -> F64:
    arr = np.asarray(values, dtype=np.float64)
    normalised: F64 = arr / arr.sum()
    return normalised


def build_world(config: SimulationConfig) -> World:
    """Draw the static world of ``config`` (deterministic for ``config.seed``)."""
    cfg = config
    seed = cfg.seed
    start = pd.Timestamp(cfg.start)
    end = float((pd.Timestamp(cfg.end) - start) / pd.Timedelta(days=1))
    horizon = end + LOOKAHEAD_DAYS
    key = np.random.SeedSequence([seed, 0xC0FFEE]).generate_state(1, dtype=np.uint64)[0]

    clock_t, clock_lambda, signup_cum = _seasonal_clock(cfg, start, horizon)

    n_neigh = len(cfg.neighborhoods)
    neigh_share = _shares([n.share for n in cfg.neighborhoods])
    tiers = [cfg.providers.tier(name) for name in PRICE_TIERS]

    # ---------------------------------------------------------------- providers
    rng = _stream(seed, "provider")
    pm = cfg.providers
    P = cfg.n_providers
    prov_neigh = rng.choice(n_neigh, size=P, p=neigh_share).astype(np.int64)
    prov_tier = rng.choice(3, size=P, p=_shares([t.share for t in tiers])).astype(np.int64)
    tier_quality = np.array([t.quality_mean for t in tiers])
    tier_price = np.array([t.price_multiplier for t in tiers])
    prov_quality = tier_quality[prov_tier] + pm.quality_sd * rng.standard_normal(P)
    prov_capacity = np.maximum(
        5.0, np.rint(pm.capacity_median_per_week * np.exp(pm.capacity_sigma
                                                         * rng.standard_normal(P))))
    prov_price = tier_price[prov_tier] * np.exp(pm.price_sd * rng.standard_normal(P))
    at_start = rng.random(P) < pm.present_at_start_share
    # every neighborhood keeps its first provider from the start, so nobody is stranded early
    first_in_neigh = np.unique(prov_neigh, return_index=True)[1]
    at_start[first_in_neigh] = True
    prov_joined = quantize(np.where(at_start, -rng.random(P) * PROVIDER_HISTORY_YEARS * YEAR,
                                    rng.random(P) * end))
    # drawn here whatever the drivers, so the rest of this stream does not depend on them
    unit_stay = rng.exponential(1.0, P) if pm.departure_rate_per_year > 0 else np.full(P, np.inf)

    pc_provider, pc_time, pc_index = _price_changes(rng, cfg, prov_joined, horizon)

    # ---------------------------------------------------------------- choice structures
    cell = prov_neigh * 3 + prov_tier
    weight = prov_capacity * np.exp(cfg.customers.reputation_weight * (prov_quality - 4.5))
    cell_order = np.argsort(cell, kind="stable").astype(np.int64)
    n_cells = n_neigh * 3
    counts = np.bincount(cell, minlength=n_cells)
    cell_end = np.cumsum(counts).astype(np.int64)
    cell_start = (cell_end - counts).astype(np.int64)
    cell_cum = np.cumsum(weight[cell_order])
    cell_base = np.where(cell_start > 0, cell_cum[np.maximum(cell_start - 1, 0)], 0.0)
    cell_total = np.bincount(cell, weights=weight, minlength=n_cells).astype(np.float64)
    home_w = cfg.customers.home_neighborhood_weight
    neigh_weight = np.empty((n_neigh, n_neigh))
    for h in range(n_neigh):
        others = neigh_share.copy()
        others[h] = 0.0
        rest = others.sum()
        neigh_weight[h] = (1.0 - home_w) * others / rest if rest > 0 else 0.0
        neigh_weight[h, h] = home_w if rest > 0 else 1.0

    # ---------------------------------------------------------------- customers
    rng = _stream(seed, "customer")
    cb = cfg.customers
    N = cfg.n_customers
    n_initial = round(cfg.initial_customer_fraction * N)
    initial = np.arange(N) < n_initial
    cadence = np.clip(cb.cadence_median_days * np.exp(cb.cadence_sigma * rng.standard_normal(N)),
                      7.0, 365.0)
    virtual_last = np.where(initial, -rng.random(N) * cadence, np.nan)
    tenure = rng.random(N) * CUSTOMER_HISTORY_YEARS * YEAR
    u_signup = (np.arange(N - n_initial) + rng.random(N - n_initial)) / max(N - n_initial, 1)
    arrivals = np.interp(u_signup, signup_cum, clock_t)
    arrivals = np.clip(arrivals, 0.0, end - 1.0 / 86_400.0)
    signup = quantize(np.concatenate([virtual_last[:n_initial] - tenure[:n_initial], arrivals]))
    home = rng.choice(n_neigh, size=N, p=neigh_share).astype(np.int64)
    channel = rng.choice(len(cfg.channels), size=N,
                         p=_shares([c.share for c in cfg.channels])).astype(np.int64)
    neigh_sens = np.array([n.price_sensitivity for n in cfg.neighborhoods])
    sensitivity = _beta(rng, neigh_sens[home], cb.price_sensitivity_concentration, N)
    loyalty = _beta(rng, cb.loyalty_mean, cb.loyalty_concentration, N)
    cancel_p = _beta(rng, cb.cancel_rate, cb.propensity_concentration, N) if cb.cancel_rate > 0 \
        else np.zeros(N)
    no_show_p = (_beta(rng, cb.no_show_rate, cb.propensity_concentration, N)
                 if cb.no_show_rate > 0 else np.zeros(N))
    total = cancel_p + no_show_p
    scale = np.where(total > 0.9, 0.9 / np.maximum(total, 1e-12), 1.0)
    cancel_p, no_show_p = cancel_p * scale, no_show_p * scale
    ch = cfg.churn
    churn_mult = np.array([c.churn_multiplier for c in cfg.channels])
    base_hazard = (ch.base_rate_per_year / YEAR * churn_mult[channel]
                   * np.exp(ch.base_sigma * rng.standard_normal(N) - ch.base_sigma ** 2 / 2))
    mean_sens = float(neigh_share @ neigh_sens)
    gamma = rng.gamma(cb.responsiveness_shape, 1.0 / cb.responsiveness_shape, N)
    # static part of the offer's effect (issue 19): mostly observable traits, the Gamma draw
    # weighted by offers.unobserved_share; the dynamic part is in Engine.offer_effect
    of = cfg.offers
    responsiveness = (cb.responsiveness_mean
                      * ((1.0 - of.unobserved_share) + of.unobserved_share * gamma)
                      * ((0.5 + sensitivity) / (0.5 + mean_sens)) ** of.price_sensitivity_power
                      * np.exp(-of.loyalty_effect * (loyalty - cb.loyalty_mean)))
    popularity = _shares([s.popularity for s in cfg.services])
    alpha = cb.service_concentration * len(cfg.services) * popularity
    raw = rng.gamma(np.broadcast_to(alpha, (N, len(alpha))))
    raw_sum = raw.sum(axis=1, keepdims=True)
    preferences = np.where(raw_sum > 0, raw / np.where(raw_sum > 0, raw_sum, 1.0),
                           popularity).astype(np.float32)
    pref_cum = np.cumsum(preferences, axis=1, dtype=np.float32)
    pref_cum[:, -1] = 1.0
    first_disc = np.array([c.first_visit_discount for c in cfg.channels])[channel]

    # ---------------------------------------------------------------- departures
    tier_log_price = np.log(tier_price)
    expected_load = _expected_load(cfg, cell, weight / prov_capacity, cell_total, neigh_weight,
                                   home, sensitivity, cadence, tier_log_price)
    hazard = _departure_hazard(pm, prov_quality, expected_load)
    with np.errstate(divide="ignore"):
        stay = unit_stay / hazard * YEAR
    # barbers leave at a midnight; one already there at start can only leave after it
    prov_left = np.ceil(np.maximum(prov_joined, 0.0) + stay + 1e-9)
    prov_left = np.where(prov_left <= horizon, prov_left, np.inf)
    prov_wind_from = (prov_left - pm.wind_down_days if pm.wind_down_days > 0
                      else np.full(P, np.inf))
    # market-wide shocks (after the departures they may bring forward): a barber the exodus
    # takes leaves suddenly; a wind-down of their own already under way keeps its pace
    # (prov_wind_to), so the days before the shock are those of the world without it
    prov_wind_to = prov_left
    for shock in cfg.shocks:
        shocked_left, (pc_provider, pc_time, pc_index) = _apply_shock(
            shock, seed, start, prov_joined, prov_left, pc_provider, pc_time, pc_index)
        prov_wind_from = np.where((shocked_left < prov_left) & (prov_wind_from >= shocked_left),
                                  np.inf, prov_wind_from)
        prov_left = shocked_left
    pc_key = pc_provider * _KEY_STRIDE + pc_time
    supply_times, supply = _supply(cell, weight, prov_joined, prov_left, n_cells)
    lead_mean = (cfg.bookings.same_day_share * 0.25
                 + (1 - cfg.bookings.same_day_share) * cfg.bookings.lead_median_days
                 * np.exp(cfg.bookings.lead_sigma ** 2 / 2))
    gap_median = np.maximum(cadence - lead_mean, 0.5 * cadence)

    campaigns = tuple(sorted((c for c in cfg.campaigns if cfg.start <= c.sent_at < cfg.end),
                             key=lambda c: (c.sent_at, c.name)))
    campaign_time = quantize(np.array([(pd.Timestamp(c.sent_at) - start) / pd.Timedelta(days=1)
                                       for c in campaigns], dtype=np.float64))
    campaign_discount = np.array([c.discount for c in campaigns], dtype=np.float64)

    services = cfg.services
    return World(
        config=cfg, end=end, horizon=horizon, start_weekday=int(start.day_of_week), key=key,
        service_price=np.array([s.base_price for s in services], dtype=np.float64),
        service_duration=np.array([s.duration_min for s in services], dtype=np.float64) / 1440,
        n_providers=P, prov_neigh=prov_neigh, prov_tier=prov_tier, prov_quality=prov_quality,
        prov_capacity=prov_capacity, prov_price=prov_price, prov_weight=weight,
        prov_joined=prov_joined,
        prov_left=prov_left, prov_departure_hazard=hazard, prov_expected_load=expected_load,
        prov_wind_from=prov_wind_from, prov_wind_to=prov_wind_to,
        cell_order=cell_order, cell_start=cell_start, cell_end=cell_end, cell_cum=cell_cum,
        cell_base=cell_base, cell_total=cell_total, supply_times=supply_times, supply=supply,
        neigh_weight=neigh_weight, tier_log_price=tier_log_price,
        pc_provider=pc_provider, pc_time=pc_time, pc_index=pc_index, pc_key=pc_key,
        n_customers=N, signup=signup, initial=initial, virtual_last_visit=virtual_last,
        home=home, channel=channel, cadence=cadence, gap_median=gap_median,
        sensitivity=sensitivity, loyalty=loyalty, cancel_p=cancel_p, no_show_p=no_show_p,
        base_hazard=base_hazard, responsiveness=responsiveness, preferences=preferences,
        pref_cum=pref_cum, first_discount=first_disc, clock_t=clock_t,
        clock_lambda=clock_lambda, campaigns=campaigns, campaign_time=campaign_time,
        campaign_discount=campaign_discount,
    )


def _expected_load(cfg: SimulationConfig, cell: I64, weight_per_capacity: F64, cell_total: F64,
                   neigh_weight: F64, home: I64, sensitivity: F64, cadence: F64,
                   tier_log_price: F64) -> F64:
    """Expected demand for each barber's chair relative to the median barber's.

    The barber-choice model of the engine (``Engine._choose``) with every barber present: a
    customer visits every ``cadence`` days, picks a neighborhood by ``neigh_weight``, a tier in
    proportion to ``cell supply x exp(-aversion x sensitivity x log tier price)`` and a barber
    in proportion to ``capacity x reputation``. Per unit of capacity a barber therefore gets
    ``reputation x sum over customers of visit rate x P(neighborhood) x tier weight / (sum over
    tiers of supply x tier weight)``.
    """
    n_neigh = neigh_weight.shape[0]
    supply = cell_total.reshape(n_neigh, 3)
    tier_w = np.exp(-cfg.customers.tier_price_aversion * sensitivity[:, None]
                    * tier_log_price[None, :])
    denom = tier_w @ supply.T
    rate = 1.0 / cadence
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(denom > 0, neigh_weight[home] * rate[:, None] / denom, 0.0)
    per_weight = (share.T @ tier_w).ravel()
    load = weight_per_capacity * per_weight[cell]
    median = float(np.median(load))
    relative: F64 = load / median if median > 0 else np.ones_like(load)
    return relative


def _departure_hazard(pm: ProviderModel, quality: F64, expected_load: F64) -> F64:
    """Each barber's yearly hazard of leaving: the mean rate times the drivers, normalised to
    keep the mean over barbers at ``departure_rate_per_year``.

    ``log h = log rate + per_star x (mean quality - quality)
    - demand_elasticity x log(expected load) - log mean(...)``.
    """
    rate = pm.departure_rate_per_year
    lin = (pm.departure_per_star * (quality.mean() - quality)
           - pm.departure_demand_elasticity * np.log(np.maximum(expected_load, 1e-9)))
    driver = np.exp(lin - lin.max())
    hazard: F64 = rate * driver / driver.mean()
    return hazard


def _seasonal_clock(cfg: SimulationConfig, start: pd.Timestamp, horizon: float
                    ) -> tuple[F64, F64, F64]:
    """Daily grid, the seasonal clock on it, and the normalised cumulative signup intensity.

    Demand intensity ``s(t) = 1 + a_dec * bump_dec(t) + a_sum * bump_sum(t)`` (Gaussian bumps on
    the circular day of year), scaled to mean 1 over a year. A customer's gaps are drawn on the
    clock ``Lambda(t) = integral of s``, so visits come closer together in peak season.
    """
    se = cfg.seasonality
    lo = -np.ceil((CUSTOMER_HISTORY_YEARS + 1) * YEAR)
    grid = np.arange(lo, np.ceil(horizon) + 2.0)
    dates = np.datetime64(start.date()) + grid.astype("timedelta64[D]")
    doy = (dates - dates.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.float64)

    def intensity_on(day_of_year: F64) -> F64:
        def bump(center: float, width: float) -> F64:
            d = np.abs(day_of_year - (center - 1))
            d = np.minimum(d, YEAR - d)
            return np.exp(-0.5 * (d / width) ** 2)

        return (1.0 + se.december_peak * bump(se.december_day, se.december_width_days)
                + se.summer_peak * bump(se.summer_day, se.summer_width_days))

    intensity = intensity_on(doy)
    one_year = intensity_on(np.arange(365, dtype=np.float64))
    intensity = intensity / one_year.mean()
    lam = np.concatenate([[0.0], np.cumsum((intensity[1:] + intensity[:-1]) / 2)])
    lam = lam - np.interp(0.0, grid, lam)

    end = float((pd.Timestamp(cfg.end) - start) / pd.Timedelta(days=1))
    growth = np.maximum(1.0 + se.signup_growth_per_year * grid / YEAR, 0.05)
    rate = np.where((grid >= 0) & (grid < end), intensity * growth, 0.0)
    cum = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2)])
    cum = cum / cum[-1] if cum[-1] > 0 else cum
    return grid, lam, cum


def _price_changes(rng: np.random.Generator, cfg: SimulationConfig, joined: F64,
                   horizon: float) -> tuple[I64, F64, F64]:
    """Each barber changes prices at Poisson times (at midnights); mostly rises, a few cuts."""
    pm = cfg.providers
    lo = np.maximum(joined, -YEAR)
    span = np.maximum(horizon - lo, 0.0)
    n = rng.poisson(pm.price_change_rate_per_year * span / YEAR)
    provider = np.repeat(np.arange(len(joined), dtype=np.int64), n)
    t = np.ceil(lo[provider] + rng.random(provider.size) * span[provider])
    order = np.lexsort((t, provider))
    provider, t = provider[order], t[order]
    rise = rng.random(provider.size) < pm.price_rise_share
    step = np.where(rise, 1.0 + rng.uniform(pm.price_rise_min, pm.price_rise_max, provider.size),
                    1.0 - rng.uniform(pm.price_cut_min, pm.price_cut_max, provider.size))
    log_step = np.log(step)
    csum = np.cumsum(log_step)
    first = np.r_[True, provider[1:] != provider[:-1]] if provider.size else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(first, np.arange(provider.size), 0))
    before = np.where(group_start > 0, csum[np.maximum(group_start - 1, 0)], 0.0)
    index = np.exp(csum - before)
    return provider, t.astype(np.float64), index


def _apply_shock(shock: ShockSpec, seed: int, start: pd.Timestamp, joined: F64, left: F64,
                 pc_provider: I64, pc_time: F64, pc_index: F64
                 ) -> tuple[F64, tuple[I64, F64, F64]]:
    """A market-wide shock: the exodus moves ``left`` earlier, the price rise adds one price
    change per present barber at the shock's midnight and scales every later index.

    Its random draws come from a stream of their own, so a config without shocks draws
    exactly what it drew before shocks existed.
    """
    t = float((pd.Timestamp(shock.at) - start) / pd.Timedelta(days=1))
    present = (joined <= t) & (t < left)
    left = left.copy()
    if shock.provider_exodus > 0:
        rng = _stream(seed, f"shock-exodus-{t:.0f}")
        leaving = present & (rng.random(len(joined)) < shock.provider_exodus)
        left[leaving] = t
    if shock.price_rise > 0:
        step = 1.0 + shock.price_rise
        later = pc_time >= t
        # index in force just before t: the last earlier change of the same provider, else 1
        before = np.ones(len(joined))
        last = np.full(len(joined), -1, dtype=np.int64)
        idx = np.flatnonzero(~later)
        np.maximum.at(last, pc_provider[idx], idx)  # sorted by (provider, time)
        has = last >= 0
        before[has] = pc_index[last[has]]
        pc_index = np.where(later, pc_index * step, pc_index)
        at_t = np.zeros(len(joined), dtype=bool)
        at_t[pc_provider[pc_time == t]] = True
        new = np.flatnonzero(present & ~at_t)
        pc_provider = np.concatenate([pc_provider, new])
        pc_time = np.concatenate([pc_time, np.full(new.size, t)])
        pc_index = np.concatenate([pc_index, before[new] * step])
        order = np.lexsort((pc_time, pc_provider))
        pc_provider, pc_time, pc_index = pc_provider[order], pc_time[order], pc_index[order]
    return left, (pc_provider, pc_time, pc_index)


def _supply(cell: I64, weight: F64, joined: F64, left: F64, n_cells: int) -> tuple[F64, F64]:
    """Attractiveness of each (neighborhood, tier) cell between consecutive join/leave times.

    Row ``e`` of the returned matrix holds the supply in force from ``times[e - 1]`` (inclusive)
    to ``times[e]``; row 0 is before any join. Cells whose active-provider count is zero get
    exactly zero, whatever the float round-off of the running sums.
    """
    finite_left = np.isfinite(left)
    times = np.concatenate([joined, left[finite_left]])
    cells = np.concatenate([cell, cell[finite_left]])
    dw = np.concatenate([weight, -weight[finite_left]])
    dn = np.concatenate([np.ones_like(joined), -np.ones(int(finite_left.sum()))])
    order = np.argsort(times, kind="stable")
    times, cells, dw, dn = times[order], cells[order], dw[order], dn[order]
    uniq, inverse = np.unique(times, return_inverse=True)
    w_delta = np.zeros((uniq.size + 1, n_cells))
    n_delta = np.zeros((uniq.size + 1, n_cells))
    np.add.at(w_delta, (inverse + 1, cells), dw)
    np.add.at(n_delta, (inverse + 1, cells), dn)
    supply = np.cumsum(w_delta, axis=0)
    count = np.rint(np.cumsum(n_delta, axis=0))
    return uniq, np.where(count > 0, np.maximum(supply, 0.0), 0.0)
