"""The churn oracle: the true probability, given the simulator's latent state at ``as_of``, that a
customer makes no completed booking in ``(as_of, as_of + horizon_days]``.

How it works
------------
1. **Rebuild the state at as_of.** The config in ``data.truth.meta`` rebuilds the static world
   (providers, their departures and price changes, customer traits) and the generator's own
   event engine replays history up to ``as_of``. Random numbers are keyed by customer and event,
   not by batch, so the replay reaches exactly the generator's state at ``as_of``; the bookings
   known at ``as_of`` are compared with the data's, and a mismatch (data edited after
   simulation, another generator version) is refused.
2. **Forget what was drawn about the future.** Every clock drawn before ``as_of`` that points
   after it is redrawn from its conditional distribution given the state at ``as_of``: the churn
   time (exponential, memoryless), rebooking delays (exponential), and the gap to the next
   booking (lognormal, conditioned on not having ended by ``as_of``). Outcomes of pending
   bookings, barber choices, campaign assignments and everything else after ``as_of`` are drawn
   when they happen, from fresh random streams.
3. **Simulate futures.** ``n_futures`` copies of every customer run forward with the same
   engine; the oracle is the share of futures without a completed booking in the window.

What it conditions on: each customer's latent traits, whether the customer is already inactive
at ``as_of``, the dissatisfaction memory and current barber (with the latent match to them),
pending bookings (provider, service, appointment time, discount), an active retention offer,
the time since the last visit, and the provider schedule (departures and price changes,
treated as known in advance, as a marketplace would know notice periods and price lists) and
campaign dates. It never uses the realised ``inactive_at`` after ``as_of`` or any random draw
about the future. Customers are independent given that schedule, so the estimate is the true
conditional probability up to Monte Carlo error (standard error at most
``0.5 / sqrt(n_futures)``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from barberpro_ml.data._sim_engine import COMPLETED, Engine, State
from barberpro_ml.data._sim_world import World, build_world
from barberpro_ml.data.container import MarketplaceData
from barberpro_ml.data.simulation import GENERATOR_VERSION, SimulationConfig

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class _ReplayChecksum:
    """Counts what the replay emits, to check that it reproduces the data."""

    def __init__(self, end: float) -> None:
        self.end = end
        self.count = 0
        self.seconds = 0
        self.customers = 0

    def bookings(self, slots: I64, customers: I64, provider: I64, service: I64, created: F64,
                 scheduled: F64, status: Any, price: Any, discount: Any, tip: Any) -> None:
        keep = (scheduled < self.end) & (created < self.end)
        self.count += int(keep.sum())
        self.seconds += int(np.rint(scheduled[keep] * 86_400.0).astype(np.int64).sum())
        self.customers += int(customers[keep].sum())

    def reviews(self, rows: I64, rating: I64, created: F64) -> None:
        """Reviews are not needed for the check."""

    def interventions(self, campaign: int, slots: I64, customers: I64, treated: Any,
                      alive: Any, hazard: F64, log_hazard_ratio: F64,
                      winback_probability: F64) -> None:
        """Campaign assignments are not needed for the check."""


class _FutureOutcomes:
    """Marks the slots with a completed booking scheduled in ``(lo, hi]``."""

    def __init__(self, lo: float, hi: float, n_slots: int) -> None:
        self.lo, self.hi = lo, hi
        self.completed = np.zeros(n_slots, dtype=bool)

    def bookings(self, slots: I64, customers: I64, provider: I64, service: I64, created: F64,
                 scheduled: F64, status: Any, price: Any, discount: Any, tip: Any) -> None:
        if isinstance(status, int) and status == COMPLETED:
            inside = (scheduled > self.lo) & (scheduled <= self.hi)
            self.completed[slots[inside]] = True

    def reviews(self, rows: I64, rating: I64, created: F64) -> None:
        """Reviews do not matter for the label."""

    def interventions(self, campaign: int, slots: I64, customers: I64, treated: Any,
                      alive: Any, hazard: F64, log_hazard_ratio: F64,
                      winback_probability: F64) -> None:
        """Future campaign assignments act through the state, not the record."""


def _config_of(data: MarketplaceData) -> SimulationConfig:
    if data.truth is None:
        raise ValueError("the churn oracle needs simulated data with ground truth "
                         "(data.truth is None: real data has no oracle)")
    meta = dict(data.truth.meta)
    if "config" not in meta:
        raise ValueError("data.truth.meta has no 'config': it was not written by "
                         "barberpro_ml.data.simulate")
    version = meta.get("generator_version")
    if version != GENERATOR_VERSION:
        raise ValueError(f"data was simulated by generator version {version}, this library "
                         f"has version {GENERATOR_VERSION}: re-simulate it")
    return SimulationConfig.model_validate(meta["config"])


def _as_of_days(as_of: str | datetime | pd.Timestamp, world: World) -> tuple[pd.Timestamp, float]:
    stamp = pd.Timestamp(as_of)
    if stamp.tzinfo is not None:
        raise ValueError(f"as_of must be a naive UTC timestamp, got {stamp} (timezone-aware)")
    start = pd.Timestamp(world.config.start)
    seconds = (stamp - start) // pd.Timedelta(seconds=1)
    days = float(seconds) / 86_400.0
    if not 0.0 <= days <= world.end:
        raise ValueError(f"as_of {stamp} is outside the simulated period "
                         f"[{start}, {pd.Timestamp(world.config.end)}]")
    return stamp, days


def _check_replay(data: MarketplaceData, world: World, engine: Engine,
                  checksum: _ReplayChecksum, as_of: pd.Timestamp) -> None:
    """Refuse when the bookings known at ``as_of`` differ from the replay's."""
    s = engine.state
    if len(data.customers) != world.n_customers or len(data.providers) != world.n_providers:
        raise ValueError(
            f"data has {len(data.customers)} customers and {len(data.providers)} providers, its "
            f"simulation config makes {world.n_customers} and {world.n_providers}: the oracle "
            "needs the data exactly as simulated (not a subset)")
    pending = s.alive & np.isfinite(s.visit_at) & (s.visit_at < world.end)
    expected = (
        checksum.count + int(pending.sum()),
        checksum.seconds + int(np.rint(s.visit_at[pending] * 86_400.0).astype(np.int64).sum()),
        checksum.customers + int(s.cust[pending].sum()),
    )
    bookings = data.bookings
    known = (bookings["created_at"] <= as_of).to_numpy()
    start = pd.Timestamp(world.config.start)
    offsets = (bookings["scheduled_at"].to_numpy()[known] - start.to_datetime64())
    found = (
        int(known.sum()),
        int((offsets // np.timedelta64(1, "s")).astype(np.int64).sum()),
        int((bookings["customer_id"].to_numpy()[known] - 1).sum()),
    )
    if expected != found:
        raise ValueError(
            f"the {found[0]} bookings created by {as_of} do not match a replay of the "
            f"simulation config in data.truth.meta ({expected[0]} bookings): the data was "
            "changed after simulation; the oracle needs it exactly as simulated")


def _check_horizon(world: World, at: float, horizon_days: float) -> None:
    if at + horizon_days > world.horizon:
        raise ValueError(f"the window reaches past the provider schedule the simulation drew "
                         f"(up to {world.horizon - world.end:.0f} days after end)")


def _replay(data: MarketplaceData, world: World, at: float, stamp: pd.Timestamp, *,
            campaigns_at_until: bool) -> Engine:
    """The generator's engine replayed from start to ``at``, checked against ``data``."""
    checksum = _ReplayChecksum(world.end)
    replay = Engine.for_world(world, checksum)
    replay.run(at, campaigns_at_until=campaigns_at_until)
    _check_replay(data, world, replay, checksum, stamp)
    return replay


def _simulate_futures(world: World, snapshot: State, at: float, horizon_days: float, *,
                      n_futures: int, seed: int, max_slots: int,
                      prepare: Callable[[Engine], None] | None = None
                      ) -> tuple[F64, F64]:
    """Share of futures of each snapshot slot with no completed booking in the window, and
    share inactive at its end. ``prepare`` may change the state before clocks are redrawn."""
    n = snapshot.size
    no_visit = np.zeros(n, dtype=np.int64)
    inactive = np.zeros(n, dtype=np.int64)
    per_chunk = max(1, max_slots // max(n, 1))
    config = world.config
    for first in range(0, n_futures, per_chunk):
        reps = range(first, min(first + per_chunk, n_futures))
        keys = np.array([np.random.SeedSequence([config.seed, 0x0AC1E, seed, r])
                         .generate_state(1, dtype=np.uint64)[0] for r in reps], dtype=np.uint64)
        state = snapshot.tile(keys)
        outcomes = _FutureOutcomes(at, at + horizon_days, state.size)
        future = Engine(world, state, outcomes, now=at)
        if prepare is not None:
            prepare(future)
        future.resample_clocks(at)
        future.run(at + horizon_days)
        no_visit += (~outcomes.completed).reshape(len(reps), n).sum(axis=0)
        inactive += (~state.alive).reshape(len(reps), n).sum(axis=0)
    return no_visit / n_futures, inactive / n_futures


def oracle_churn_probability(data: MarketplaceData, as_of: str | datetime | pd.Timestamp,
                             horizon_days: int = 90, *, n_futures: int = 200, seed: int = 0,
                             max_slots: int = 1_000_000) -> pd.Series:
    """True probability of no completed booking in ``(as_of, as_of + horizon_days]``.

    Parameters
    ----------
    data
        Simulated data, as returned by :func:`barberpro_ml.data.simulate` (or saved and loaded
        back): ``data.truth.meta["config"]`` must be the config it was simulated from.
    as_of
        Naive UTC cut-off within the simulated period.
    horizon_days
        Length of the label window.
    n_futures
        Monte Carlo futures per customer; the standard error is at most
        ``0.5 / sqrt(n_futures)``.
    seed
        Seed of the futures' random streams (independent of the simulation's).
    max_slots
        Customer-futures simulated at once (bounds memory: about 250 bytes each).

    Returns
    -------
    pandas.Series
        Float probabilities named ``churn_probability``, indexed by ``customer_id``, for every
        customer signed up by ``as_of`` (1.0 for those already inactive). Select the customers
        active at ``as_of`` to compare with ``churn_labels``.

    Raises
    ------
    ValueError
        No ground truth, another generator version, data changed after simulation, ``as_of``
        outside the period or timezone-aware, a non-positive horizon or futures count.

    Examples
    --------
    >>> from barberpro_ml.data import SimulationConfig, oracle_churn_probability, simulate
    >>> data = simulate(SimulationConfig(n_customers=300, seed=3))
    >>> p = oracle_churn_probability(data, "2024-03-01", 90, n_futures=50)
    >>> bool(p.between(0, 1).all()) and p.index.name == "customer_id"
    True
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    if n_futures < 1:
        raise ValueError(f"n_futures must be at least 1, got {n_futures}")
    if max_slots < 1:
        raise ValueError(f"max_slots must be at least 1, got {max_slots}")
    world = build_world(_config_of(data))
    stamp, a = _as_of_days(as_of, world)
    _check_horizon(world, a, horizon_days)
    replay = _replay(data, world, a, stamp, campaigns_at_until=True)
    present = np.flatnonzero(world.signup[replay.state.cust] <= a)
    snapshot: State = replay.state.take(present)
    no_visit, _ = _simulate_futures(world, snapshot, a, horizon_days, n_futures=n_futures,
                                    seed=seed, max_slots=max_slots)
    customer_ids = pd.Index(snapshot.cust + 1, name="customer_id", dtype="int64")
    result = pd.Series(no_visit, index=customer_ids, name="churn_probability")
    result.attrs.update({"as_of": str(stamp), "horizon_days": horizon_days,
                         "n_futures": n_futures})
    return result


def oracle_offer_effect(data: MarketplaceData, campaign: str, horizon_days: int = 90, *,
                        n_futures: int = 200, seed: int = 0,
                        max_slots: int = 1_000_000) -> pd.DataFrame:
    """True effect of a campaign's offer on each targeted customer, on the probability scale.

    From the latent state just before the campaign was sent, every targeted customer (treated
    and control alike) is simulated forward twice per future, once with the offer and once
    without, on common random numbers so the difference is precise. The structural effect,
    the change in log churn hazard while the offer runs, is in
    ``data.truth["interventions"]["log_hazard_ratio"]``; this gives what it means for churn.

    Parameters
    ----------
    data
        Simulated data with its ground truth (see :func:`oracle_churn_probability`).
    campaign
        Name of a campaign in ``data.interventions``.
    horizon_days
        Outcome window after ``sent_at``.
    n_futures, seed, max_slots
        As in :func:`oracle_churn_probability`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``intervention_id``: ``customer_id``, ``treated``,
        ``churn_probability_control`` and ``churn_probability_treated`` (no completed booking
        in ``(sent_at, sent_at + horizon]``), ``effect`` (control minus treated: how much the
        offer lowers that probability), ``inactive_probability_control`` and
        ``inactive_probability_treated`` (latent churn by the end of the window).

    Examples
    --------
    >>> from barberpro_ml.data import SimulationConfig, oracle_offer_effect, simulate
    >>> data = simulate(SimulationConfig(n_customers=300, seed=3))
    >>> effect = oracle_offer_effect(data, "winback_2024_03", n_futures=20)
    >>> bool((effect["effect"] > -0.5).all())
    True
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    if n_futures < 1:
        raise ValueError(f"n_futures must be at least 1, got {n_futures}")
    config = _config_of(data)
    world = build_world(config)
    names = [c.name for c in world.campaigns]
    if campaign not in names:
        raise ValueError(f"unknown campaign {campaign!r}; the simulation ran {names}")
    j = names.index(campaign)
    sent = float(world.campaign_time[j])
    stamp = pd.Timestamp(config.start) + pd.Timedelta(seconds=round(sent * 86_400))
    _check_horizon(world, sent, horizon_days)
    replay = _replay(data, world, sent, stamp, campaigns_at_until=False)
    rows = data.interventions[(data.interventions["campaign"] == campaign).to_numpy()]
    rows = rows.sort_values("intervention_id")
    snapshot = replay.state.take(rows["customer_id"].to_numpy(dtype=np.int64) - 1)

    def treat(engine: Engine) -> None:
        engine.give_offer(np.arange(engine.state.size, dtype=np.int64), j, redraw=False)

    arms = {}
    for arm, prepare in (("control", None), ("treated", treat)):
        arms[arm] = _simulate_futures(world, snapshot, sent, horizon_days, n_futures=n_futures,
                                      seed=seed, max_slots=max_slots, prepare=prepare)
    out = pd.DataFrame({
        "customer_id": rows["customer_id"].to_numpy(),
        "treated": rows["treated"].to_numpy(),
        "churn_probability_control": arms["control"][0],
        "churn_probability_treated": arms["treated"][0],
        "effect": arms["control"][0] - arms["treated"][0],
        "inactive_probability_control": arms["control"][1],
        "inactive_probability_treated": arms["treated"][1],
    }, index=pd.Index(rows["intervention_id"].to_numpy(), name="intervention_id"))
    out.attrs.update({"campaign": campaign, "horizon_days": horizon_days,
                      "n_futures": n_futures})
    return out
