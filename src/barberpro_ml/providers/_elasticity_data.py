"""The price-rise panel the elasticity is estimated on, and the simulator's oracle for it.

A **price-rise event** is a provider's price change that raises its price index (step > 1),
with a clean window around it: the provider was on the platform from ``pre_weeks`` before the
change to ``post_weeks`` after it, made no other price change in that span, and the whole span
lies inside the data. Each event gives one row per service (:func:`event_panel`):

* outcome ``bookings_post``: completed visits of that service at that provider scheduled in
  ``[changed_at, changed_at + post_weeks)``;
* treatment ``log_step``: the log of the price step (new index / old index);
* controls, all known at ``changed_at``: the same count in the ``pre_weeks`` before (lagged
  demand, scaled to the post window's length), the provider's total, the season (day of year
  as sine and cosine) and the calendar trend, the provider's tier, neighborhood and tenure, and
  the customer mix of the pre window (share of first visits to the provider, acquisition
  channels, customers from other neighborhoods, discounted visits).

The oracle (:func:`oracle_event_effects`) answers, for every event and service, what the
post-window count would have been without that rise: the same world and random numbers with
the step set to 1 (the change date kept, later cumulative indices divided by the step). Events
are removed in batches, one event per provider per batch (the first clean rise of every
provider, then the second, ...); a batch's counterfactual differs from the data only through its
own events, and the other providers' removed rises reach an event's window only through the
few customers who visit both barbers, a second-order spillover. The per-event true effect is
``log1p(bookings_post) - log1p(bookings_post without the rise)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from barberpro_ml.data import MarketplaceData
from barberpro_ml.data._sim_engine import COMPLETED, Engine
from barberpro_ml.data._sim_world import build_world
from barberpro_ml.data.oracle import _config_of

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = ["EVENT_KEYS", "event_panel", "oracle_event_effects", "price_rise_events"]

EVENT_KEYS = ("event_id", "service")
_DAY = pd.Timedelta(days=1)


def _price_change_steps(price_changes: pd.DataFrame) -> pd.DataFrame:
    missing = {"provider_id", "changed_at", "price_index"} - set(price_changes.columns)
    if missing:
        raise ValueError(f"price_changes: missing column(s) {sorted(missing)}; expected "
                         "provider_id, changed_at, price_index (cumulative multiplier)")
    pc = price_changes.sort_values(["provider_id", "changed_at"]).reset_index(drop=True)
    previous = pc.groupby("provider_id")["price_index"].shift(1).fillna(1.0)
    pc["step"] = pc["price_index"] / previous
    pc["previous_change"] = pc.groupby("provider_id")["changed_at"].shift(1)
    pc["next_change"] = pc.groupby("provider_id")["changed_at"].shift(-1)
    pc["rank_in_provider"] = pc.groupby("provider_id").cumcount()
    return pc


def price_rise_events(data: MarketplaceData, price_changes: pd.DataFrame, *, pre_weeks: int,
                      post_weeks: int) -> pd.DataFrame:
    """Price rises with a clean window (see the module docstring), one row per event.

    Parameters
    ----------
    data
        The event tables (providers: joined_at, left_at, price_tier, neighborhood).
    price_changes
        ``provider_id``, ``changed_at``, ``price_index`` (the cumulative multiplier from then
        on, 1 before the first change), as in ``data.truth.tables["price_changes"]``.
    pre_weeks, post_weeks
        The window before and after the change.

    Returns
    -------
    pandas.DataFrame
        ``event_id``, ``provider_id``, ``changed_at``, ``step``, ``log_step``, ``price_tier``,
        ``neighborhood``, ``joined_at``, ``batch`` (the oracle's removal batch).
    """
    pc = _price_change_steps(price_changes)
    # the tables start with the first visit they record; nothing after observation_end is known
    start = data.bookings["scheduled_at"].min().normalize()
    end = data.observation_end
    pre, post = pd.Timedelta(weeks=pre_weeks), pd.Timedelta(weeks=post_weeks)
    prov = data.providers.set_index("provider_id")
    unknown = ~pc["provider_id"].isin(prov.index)
    if unknown.any():
        raise ValueError(f"price_changes: {int(unknown.sum())} row(s) name providers not in "
                         f"the providers table, e.g. {pc.loc[unknown, 'provider_id'].head(3)}")
    joined = pc["provider_id"].map(prov["joined_at"])
    left = pc["provider_id"].map(prov["left_at"])
    t = pc["changed_at"]
    clean = ((pc["step"] > 1.0) & (t - pre >= start) & (t + post <= end)
             & (joined <= t - pre) & (left.isna() | (left >= t + post))
             & (pc["previous_change"].isna() | (pc["previous_change"] < t - pre))
             & (pc["next_change"].isna() | (pc["next_change"] >= t + post)))
    ev: pd.DataFrame = pc.loc[clean, ["provider_id", "changed_at", "step"]].reset_index(
        drop=True)
    ev.insert(0, "event_id", np.arange(1, len(ev) + 1, dtype=np.int64))
    ev["log_step"] = np.log(ev["step"])
    ev["price_tier"] = ev["provider_id"].map(prov["price_tier"]).astype(str)
    ev["neighborhood"] = ev["provider_id"].map(prov["neighborhood"]).astype(str)
    ev["joined_at"] = ev["provider_id"].map(prov["joined_at"])
    ev["batch"] = ev.groupby("provider_id").cumcount().astype(np.int64)
    return ev


def _window_counts(bookings: pd.DataFrame, events: pd.DataFrame, lo: pd.Series,
                   hi: pd.Series) -> pd.DataFrame:
    """Completed visits per event and service_id scheduled in ``[lo, hi)`` at its provider."""
    done = bookings.loc[bookings["status"] == "completed",
                        ["provider_id", "service_id", "scheduled_at"]]
    win = events[["event_id", "provider_id"]].assign(lo=lo.to_numpy(), hi=hi.to_numpy())
    rows = done.merge(win, on="provider_id")
    rows = rows[(rows["scheduled_at"] >= rows["lo"]) & (rows["scheduled_at"] < rows["hi"])]
    counts: pd.DataFrame = rows.groupby(["event_id", "service_id"]).size().rename(
        "n").reset_index()
    return counts


def event_panel(data: MarketplaceData, events: pd.DataFrame, *, pre_weeks: int,
                post_weeks: int) -> pd.DataFrame:
    """One row per event x service with outcome, treatment and controls (module docstring)."""
    services = data.services[["service_id", "name"]].rename(columns={"name": "service"})
    grid = events.merge(services, how="cross")
    t = events["changed_at"]
    pre, post = pd.Timedelta(weeks=pre_weeks), pd.Timedelta(weeks=post_weeks)
    keys = ["event_id", "service_id"]
    post_n = _window_counts(data.bookings, events, t, t + post).rename(
        columns={"n": "bookings_post"})
    pre_n = _window_counts(data.bookings, events, t - pre, t).rename(
        columns={"n": "bookings_pre"})
    panel = grid.merge(post_n, on=keys, how="left").merge(pre_n, on=keys, how="left")
    panel[["bookings_post", "bookings_pre"]] = panel[["bookings_post", "bookings_pre"]].fillna(
        0).astype(np.int64)
    scale = post_weeks / pre_weeks
    panel["log_pre_scaled"] = np.log1p(panel["bookings_pre"] * scale)
    total = panel.groupby("event_id")["bookings_pre"].transform("sum")
    panel["log_provider_pre"] = np.log1p(total * scale)
    panel["log_bookings_post"] = np.log1p(panel["bookings_post"])
    doy = panel["changed_at"].dt.dayofyear.to_numpy() / 365.25
    panel["season_sin"] = np.sin(2 * np.pi * doy)
    panel["season_cos"] = np.cos(2 * np.pi * doy)
    first = data.bookings["scheduled_at"].min().normalize()
    year = 365.25 * 86_400.0
    panel["years_since_start"] = (panel["changed_at"] - first).dt.total_seconds() / year
    panel["tenure_years"] = (panel["changed_at"] - panel["joined_at"]).dt.total_seconds() / year
    mix = _customer_mix(data, events, t - pre, t)
    return panel.merge(mix, on="event_id", how="left").fillna(
        {c: 0.0 for c in mix.columns if c != "event_id"}).sort_values(
        ["event_id", "service_id"]).reset_index(drop=True)


def _customer_mix(data: MarketplaceData, events: pd.DataFrame, lo: pd.Series,
                  hi: pd.Series) -> pd.DataFrame:
    """Who the provider served in the pre window (observable; per event)."""
    b = data.bookings
    done = b.loc[b["status"] == "completed",
                 ["customer_id", "provider_id", "scheduled_at", "discount"]]
    first = done.groupby(["customer_id", "provider_id"])["scheduled_at"].transform("min")
    done = done.assign(first_visit=done["scheduled_at"] == first)
    cust = data.customers.set_index("customer_id")
    done = done.assign(channel=done["customer_id"].map(cust["acquisition_channel"]).astype(str),
                       home=done["customer_id"].map(cust["neighborhood"]).astype(str))
    win = events[["event_id", "provider_id", "neighborhood"]].assign(lo=lo.to_numpy(),
                                                                     hi=hi.to_numpy())
    rows = done.merge(win, on="provider_id")
    rows = rows[(rows["scheduled_at"] >= rows["lo"]) & (rows["scheduled_at"] < rows["hi"])]
    rows = rows.assign(away=rows["home"] != rows["neighborhood"],
                       discounted=rows["discount"] > 0)
    g = rows.groupby("event_id")
    mix = pd.DataFrame({"share_first_visits": g["first_visit"].mean(),
                        "share_away_customers": g["away"].mean(),
                        "share_discounted": g["discounted"].mean(),
                        "log_customers_pre": np.log1p(g["customer_id"].nunique())})
    channels = pd.crosstab(rows["event_id"], rows["channel"], normalize="index")
    channels.columns = [f"share_channel_{c}" for c in channels.columns]
    return mix.join(channels).reset_index()


class _PostWindowCounter:
    """Counts completed visits per (provider, service) in each provider's post window."""

    def __init__(self, n_providers: int, n_services: int, lo: F64, hi: F64) -> None:
        self.lo, self.hi = lo, hi  # per provider; empty windows where no event is removed
        self.counts = np.zeros((n_providers, n_services), dtype=np.int64)

    def bookings(self, slots: I64, customers: I64, provider: I64, service: I64, created: F64,
                 scheduled: F64, status: Any, price: Any, discount: Any, tip: Any) -> None:
        if not (isinstance(status, int) and status == COMPLETED) or provider.size == 0:
            return
        inside = (scheduled >= self.lo[provider]) & (scheduled < self.hi[provider]) & (
            created < self.hi[provider])
        np.add.at(self.counts, (provider[inside], service[inside]), 1)

    def reviews(self, rows: I64, rating: I64, created: F64) -> None:
        """Reviews do not matter for the count."""

    def interventions(self, campaign: int, slots: I64, customers: I64, treated: Any,
                      alive: Any, hazard: F64, log_hazard_ratio: F64,
                      winback_probability: F64) -> None:
        """Campaign assignments act through the state, not the record."""


def oracle_event_effects(data: MarketplaceData, events: pd.DataFrame, *,
                         post_weeks: int) -> pd.DataFrame:
    """The true effect of every event's price rise on each service's post-window bookings.

    Parameters
    ----------
    data
        Simulated data with ground truth (the world is rebuilt from ``data.truth.meta``).
    events
        :func:`price_rise_events` rows built from ``data.truth.tables["price_changes"]``.
    post_weeks
        The post window, as for the panel.

    Returns
    -------
    pandas.DataFrame
        ``event_id``, ``service_id``, ``bookings_post_without`` (the counterfactual count) and
        ``true_effect`` (``log1p(factual) - log1p(counterfactual)``), one row per event x
        service; the factual count is the data's.

    Raises
    ------
    ValueError
        For data without ground truth, or events that are not changes of the truth's schedule.
    """
    cfg = _config_of(data)
    world = build_world(cfg)
    start = pd.Timestamp(cfg.start)
    n_services = int(world.service_price.size)
    pc_days = (events["changed_at"] - start) / _DAY
    post_days = 7.0 * post_weeks
    rows: list[pd.DataFrame] = []
    for _, batch in events.groupby("batch"):
        index = world.pc_index.copy()
        lo = np.full(world.n_providers, np.inf)
        hi = np.full(world.n_providers, -np.inf)
        for event_id, provider_id, day, step in zip(
                batch["event_id"], batch["provider_id"], pc_days[batch.index], batch["step"],
                strict=True):
            p = int(provider_id) - 1
            mine = world.pc_provider == p
            at = np.flatnonzero(mine & np.isclose(world.pc_time, day, atol=1e-6))
            if at.size != 1:
                raise ValueError(f"event {event_id}: no price change of provider {provider_id} "
                                 "at that date in the simulator's schedule (were the events "
                                 "built from data.truth.tables['price_changes']?)")
            later = mine & (world.pc_time >= world.pc_time[at[0]])
            index[later] /= step
            lo[p], hi[p] = day, day + post_days
        counter = _PostWindowCounter(world.n_providers, n_services, lo, hi)
        engine = Engine.for_world(dataclasses.replace(world, pc_index=index), counter)
        engine.run(min(float(np.max(hi[np.isfinite(hi)])), world.end))
        p_idx = batch["provider_id"].to_numpy(np.int64) - 1
        counts = counter.counts[p_idx]
        rows.append(pd.DataFrame({
            "event_id": np.repeat(batch["event_id"].to_numpy(), n_services),
            "service_id": np.tile(np.arange(1, n_services + 1, dtype=np.int64), len(batch)),
            "bookings_post_without": counts.ravel()}))
    cf = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        {"event_id": [], "service_id": [], "bookings_post_without": []})
    factual = _window_counts(data.bookings, events, events["changed_at"],
                             events["changed_at"] + pd.Timedelta(weeks=post_weeks))
    out = cf.merge(factual, on=["event_id", "service_id"], how="left").fillna({"n": 0})
    out["true_effect"] = np.log1p(out["n"]) - np.log1p(out["bookings_post_without"])
    return out.drop(columns="n").sort_values(["event_id", "service_id"]).reset_index(drop=True)
