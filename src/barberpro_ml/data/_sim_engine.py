"""The event engine of the marketplace simulator, shared by the generator and the oracle.

Each customer (a *slot*; the oracle stacks many copies of one customer, one per simulated
future) carries a handful of clocks: when its barber leaves, when it churns, when its retention
offer ends, when its pending booking is due, and when it makes its next booking. The engine
advances simulated time window by window; inside a window it repeatedly takes every slot whose
earliest clock falls in the window and processes that one event, vectorised over slots.
Customers interact only through exogenous, precomputed facts (the provider schedule, the
campaign dates), so the order in which different customers' events are processed is irrelevant.

A barber winds down before leaving (``World.wind_down``): more and more of their slots are
unavailable (a regular, or a customer choosing them, books another barber) and they cancel
more of the bookings falling due. Both read only the precomputed departure schedule and draw
from purposes of their own, so every other draw is unchanged.

Random numbers are counter-based: a uniform is a hash of ``(world key, customer, event number,
purpose)`` (SplitMix64's finaliser [1]_ applied twice, a bijection, so distinct inputs never
collide). A customer's history therefore does not depend on how the loop batches its work,
which is what lets the oracle replay the generator up to any cut-off and get exactly the
generator's state there, then branch into futures with other world keys.

The latent churn hazard is piecewise constant between a customer's events and is redrawn
(exponential waiting time) whenever it changes, which is exact for a piecewise-constant hazard
because the exponential distribution is memoryless.

References
----------
.. [1] Steele, Lea & Flood (2014), "Fast splittable pseudorandom number generators",
   OOPSLA '14 (the SplitMix64 finaliser).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr, ndtri, ndtri_exp

from barberpro_ml.data._sim_world import World, quantize

if TYPE_CHECKING:
    from barberpro_ml.data.simulation import ProgressCallback

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
B = npt.NDArray[np.bool_]

COMPLETED, CANCELLED, NO_SHOW = 0, 1, 2
"""Status codes, in the order of ``schema.BOOKING_STATUSES``."""

# what a slot is waiting for before its next booking
(WAIT_NONE, WAIT_GAP, WAIT_FIRST, WAIT_CANCEL, WAIT_NO_SHOW, WAIT_LEFT, WAIT_NO_PROVIDER,
 WAIT_WINBACK) = range(8)
NO_PROVIDER_RETRY_DAYS = 7.0

# purposes of random draws within one event (at most 255)
(P_STAY, P_NEIGHBORHOOD, P_TIER, P_SERVICE, P_LEAD_MIX, P_LEAD, P_SLOT, P_STATUS, P_MATCH,
 P_EXPERIENCE, P_TIP, P_TIP_AMOUNT, P_REVIEW, P_REVIEW_DELAY, P_GAP, P_CHURN, P_REBOOK,
 P_CHURN_PENDING, P_ASSIGN, P_PROVIDER_EXACT, P_INCIDENT, P_CLOSED_DAY) = range(1, 23)
# the wind-down's own purposes: other draws stay what they were without it
P_WIND_SLOT, P_WIND_CANCEL = 24, 25
# the win-back's own purpose (offers.winback_rate): drawn only when the rate is above 0
P_WINBACK = 26
P_PROVIDER = 32
PROVIDER_TRIES = 8
P_WIND_PICK = P_PROVIDER + PROVIDER_TRIES

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S32, _S8, _S11 = np.uint64(32), np.uint64(8), np.uint64(11)
MAX_EVENTS = 1 << 24
SECOND = 1.0 / 86_400.0


def _mix(x: U64) -> U64:
    """SplitMix64 finaliser (bijective on 64-bit integers), in place."""
    x ^= x >> _S30
    x *= _C1
    x ^= x >> _S27
    x *= _C2
    x ^= x >> _S31
    return x


def uniforms(key: U64, customer: U64, counter: U64, purpose: int) -> F64:
    """Uniforms in (0, 1), a pure function of (key, customer, counter, purpose).

    Customers below 2**32, counters below 2**24 and purposes below 2**8 pack into one distinct
    64-bit word, so different inputs give different hashes.
    """
    x = (customer << _S32) | (counter << _S8) | np.uint64(purpose)
    x ^= key
    x = _mix(x)
    x += _GOLDEN
    x = _mix(x)
    return (x >> _S11).astype(np.float64) * 2.0 ** -53 + 2.0 ** -54


def _pick(weights: F64, u: F64) -> I64:
    """Row-wise categorical draw: the first column whose running weight reaches ``u * total``."""
    cum = np.cumsum(weights, axis=1)
    target = u * cum[:, -1]
    k: I64 = np.minimum((cum < target[:, None]).sum(axis=1), weights.shape[1] - 1).astype(
        np.int64)
    return k


def _round_half(x: F64) -> F64:
    return np.maximum(np.rint(x * 2.0) / 2.0, 0.5)


# --------------------------------------------------------------------------- recorders

class Recorder(Protocol):
    """Where the engine sends what happens. ``bookings`` returns row ids (for reviews) or None."""

    def bookings(self, slots: I64, customers: I64, provider: I64, service: I64, created: F64,
                 scheduled: F64, status: int | npt.NDArray[np.int8], price: F64 | float,
                 discount: F64 | float, tip: F64 | float) -> I64 | None: ...

    def reviews(self, rows: I64, rating: I64, created: F64) -> None: ...

    def interventions(self, campaign: int, slots: I64, customers: I64, treated: B, alive: B,
                      hazard: F64, log_hazard_ratio: F64, winback_probability: F64) -> None: ...


class TableRecorder:
    """Keeps every booking, review and intervention, for building the event tables."""

    _BOOKING: ClassVar[dict[str, Any]] = {
        "customer": np.int32, "provider": np.int32, "service": np.int16, "created": np.float64,
        "scheduled": np.float64, "status": np.int8, "price": np.float64,
        "discount": np.float64, "tip": np.float64}
    _REVIEW: ClassVar[dict[str, Any]] = {"row": np.int64, "rating": np.int8,
                                         "created": np.float64}
    _INTERVENTION: ClassVar[dict[str, Any]] = {
        "campaign": np.int64, "customer": np.int64, "treated": np.bool_, "alive": np.bool_,
        "hazard": np.float64, "log_hazard_ratio": np.float64,
        "winback_probability": np.float64}

    def __init__(self) -> None:
        self._b: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in self._BOOKING}
        self._r: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in self._REVIEW}
        self._i: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in self._INTERVENTION}
        self._rows = 0

    @staticmethod
    def _add(store: dict[str, list[npt.NDArray[Any]]], dtypes: dict[str, Any], n: int,
             **columns: Any) -> None:
        for name, value in columns.items():
            store[name].append(np.broadcast_to(np.asarray(value, dtype=dtypes[name]), (n,)).copy())

    def bookings(self, slots: I64, customers: I64, provider: I64, service: I64, created: F64,
                 scheduled: F64, status: int | npt.NDArray[np.int8], price: F64 | float,
                 discount: F64 | float, tip: F64 | float) -> I64:
        n = slots.size
        self._add(self._b, self._BOOKING, n, customer=customers, provider=provider,
                  service=service, created=created, scheduled=scheduled, status=status,
                  price=price, discount=discount, tip=tip)
        rows = np.arange(self._rows, self._rows + n, dtype=np.int64)
        self._rows += n
        return rows

    def reviews(self, rows: I64, rating: I64, created: F64) -> None:
        self._add(self._r, self._REVIEW, rows.size, row=rows, rating=rating, created=created)

    def interventions(self, campaign: int, slots: I64, customers: I64, treated: B, alive: B,
                      hazard: F64, log_hazard_ratio: F64, winback_probability: F64) -> None:
        self._add(self._i, self._INTERVENTION, slots.size, campaign=campaign, customer=customers,
                  treated=treated, alive=alive, hazard=hazard, log_hazard_ratio=log_hazard_ratio,
                  winback_probability=winback_probability)

    @staticmethod
    def _concat(store: dict[str, list[npt.NDArray[Any]]], dtypes: dict[str, Any]
                ) -> dict[str, npt.NDArray[Any]]:
        return {k: (np.concatenate(v) if v else np.zeros(0, dtype=dtypes[k]))
                for k, v in store.items()}

    def booking_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """All bookings emitted, in emission order (row id = position)."""
        return self._concat(self._b, self._BOOKING)

    def review_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """All reviews emitted; ``row`` refers to :meth:`booking_arrays`."""
        return self._concat(self._r, self._REVIEW)

    def intervention_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """All campaign assignments (treated and control)."""
        return self._concat(self._i, self._INTERVENTION)


# --------------------------------------------------------------------------- state

@dataclass(eq=False)
class State:
    """Per-slot dynamic state. Times are float days since start; ``inf`` means never.

    Identity and randomness: ``cust`` (customer index), ``key`` (world key of the slot's
    random stream), ``counter`` (events processed, the stream position).
    Latent churn: ``alive``, ``started`` (churn clock running: first booking made),
    ``inactive_at``, ``memory`` (dissatisfaction, added to the log hazard), ``n_done``
    (completed visits including the initial base's unrecorded ones).
    Clocks: ``churn_at``, ``create_at`` (next booking made), ``visit_at`` (pending booking
    due), ``offer_until`` (retention offer ends), ``leave_at`` (the usual or booked barber
    leaves). ``wait_kind`` and ``wait_origin`` (seasonal clock at the last visit) say how
    ``create_at`` was drawn, so the oracle can redraw it.
    Barber: ``cur_prov`` (usual barber, -1 none), ``match`` (latent fit with them, stars),
    ``ref_index`` (their price index at the last visit, to notice rises).
    Pending booking: ``pend_prov``, ``pend_service``, ``pend_created``, ``pend_discount``.
    Observable summaries used by the campaign rule: ``obs_n``, ``obs_first``, ``obs_last``
    (completed visits in the data), ``booked_until`` (latest appointment booked so far),
    ``n_booked``. Offer: ``offer_discount`` (unused discount), ``offer_effect`` (drop of the
    log churn hazard while it runs, fixed when it was sent).
    """

    cust: I64
    key: U64
    counter: U64
    alive: B
    started: B
    inactive_at: F64
    churn_at: F64
    create_at: F64
    visit_at: F64
    offer_until: F64
    leave_at: F64
    wait_kind: npt.NDArray[np.int8]
    wait_origin: F64
    cur_prov: I64
    match: F64
    ref_index: F64
    pend_prov: I64
    pend_service: I64
    pend_created: F64
    pend_discount: F64
    memory: F64
    n_done: I64
    n_booked: I64
    obs_n: I64
    obs_first: F64
    obs_last: F64
    offer_discount: F64
    booked_until: F64
    offer_effect: F64

    @classmethod
    def fresh(cls, cust: I64, key: np.uint64) -> State:
        """Slots for customers ``cust`` before anything happened."""
        n = cust.size

        def full(value: float) -> F64:
            return np.full(n, value, dtype=np.float64)

        return cls(
            cust=cust.astype(np.int64), key=np.full(n, key, dtype=np.uint64),
            counter=np.zeros(n, dtype=np.uint64), alive=np.ones(n, dtype=bool),
            started=np.zeros(n, dtype=bool), inactive_at=full(np.inf), churn_at=full(np.inf),
            create_at=full(np.inf), visit_at=full(np.inf), offer_until=full(np.inf),
            leave_at=full(np.inf), wait_kind=np.zeros(n, dtype=np.int8), wait_origin=full(0.0),
            cur_prov=np.full(n, -1, dtype=np.int64), match=full(0.0), ref_index=full(1.0),
            pend_prov=np.full(n, -1, dtype=np.int64), pend_service=np.zeros(n, dtype=np.int64),
            pend_created=full(np.nan), pend_discount=full(0.0), memory=full(0.0),
            n_done=np.zeros(n, dtype=np.int64), n_booked=np.zeros(n, dtype=np.int64),
            obs_n=np.zeros(n, dtype=np.int64), obs_first=full(np.nan), obs_last=full(np.nan),
            offer_discount=full(0.0), booked_until=full(-np.inf), offer_effect=full(0.0),
        )

    @property
    def size(self) -> int:
        """Number of slots."""
        return int(self.cust.size)

    def take(self, idx: I64) -> State:
        """A copy of the slots ``idx``."""
        return State(**{f.name: getattr(self, f.name)[idx].copy()
                        for f in dataclasses.fields(self)})

    def tile(self, keys: U64) -> State:
        """One copy of every slot per key (copy-major), each copy drawing from its own key."""
        reps = keys.size
        tiled = State(**{f.name: np.tile(getattr(self, f.name), reps)
                         for f in dataclasses.fields(self)})
        tiled.key = np.repeat(keys.astype(np.uint64), self.size)
        return tiled


# --------------------------------------------------------------------------- engine

class Engine:
    """Advances a :class:`State` through time under a :class:`World`, reporting to a recorder.

    Parameters
    ----------
    world
        The static marketplace.
    state
        Slots to simulate (modified in place).
    recorder
        Receives bookings, reviews and campaign assignments.
    now
        Simulated time already reached; campaigns at or before it are considered done.
    """

    def __init__(self, world: World, state: State, recorder: Recorder, now: float) -> None:
        self.world = world
        self.state = state
        self.recorder = recorder
        self.now = now
        self.next_campaign = int(np.searchsorted(world.campaign_time, now, side="right"))
        self.draws = 0
        """Uniforms drawn so far (the benchmark compares with numpy drawing as many)."""
        cfg = world.config
        bk = cfg.bookings
        self._wait_mean = np.array([
            np.nan, np.nan, bk.first_booking_delay_minutes / 1440.0,
            bk.rebook_after_cancel_days, bk.rebook_after_no_show_days,
            bk.rebook_after_provider_left_days, NO_PROVIDER_RETRY_DAYS,
            cfg.offers.winback_delay_days])
        self._handlers: tuple[Callable[[I64, F64], None], ...] = (
            self._leave, self._churn, self._offer_end, self._visit, self._create)

    @classmethod
    def for_world(cls, world: World, recorder: Recorder) -> Engine:
        """An engine at ``start`` with every customer of ``world`` in its initial state."""
        state = State.fresh(np.arange(world.n_customers, dtype=np.int64), world.key)
        engine = cls(world, state, recorder, now=0.0)
        engine.next_campaign = int(np.searchsorted(world.campaign_time, 0.0, side="left"))
        engine._initialise()
        return engine

    # ------------------------------------------------------------------ helpers
    def _u(self, idx: I64, purpose: int, counter: int | None = None) -> F64:
        s = self.state
        c = s.counter[idx] if counter is None else np.full(idx.size, counter, dtype=np.uint64)
        self.draws += idx.size
        return uniforms(s.key[idx], s.cust[idx].astype(np.uint64), c, purpose)

    def _step(self, idx: I64) -> None:
        self.state.counter[idx] += np.uint64(1)

    def _hazard(self, idx: I64, t: F64, *, with_offer: bool = True) -> F64:
        """Churn hazard per day: baseline x exp(memory) x new-customer x offer multipliers."""
        s, w = self.state, self.world
        c = s.cust[idx]
        h = w.base_hazard[c] * np.exp(s.memory[idx])
        h = np.where(s.n_done[idx] < 2, h * w.config.churn.new_customer_multiplier, h)
        if with_offer:
            until = s.offer_until[idx]
            h = np.where(np.isfinite(until) & (t < until), h * np.exp(-s.offer_effect[idx]), h)
        return h

    def _redraw_churn(self, idx: I64, t: F64) -> None:
        if idx.size == 0:
            return
        h = self._hazard(idx, t)
        wait = -np.log(self._u(idx, P_CHURN))
        with np.errstate(divide="ignore"):
            self.state.churn_at[idx] = quantize(t + wait / h)

    def _wait_exp(self, idx: I64, t: F64, kind: int | npt.NDArray[np.int8]) -> None:
        """Next booking after an exponential delay whose mean depends on why we wait."""
        if idx.size == 0:
            return
        s = self.state
        s.wait_kind[idx] = kind
        mean = self._wait_mean[s.wait_kind[idx]]
        s.create_at[idx] = np.maximum(quantize(t - mean * np.log(self._u(idx, P_REBOOK))),
                                      t + SECOND)

    def _wait_gap(self, idx: I64, origin: F64) -> None:
        """Next booking one cadence gap (on the seasonal clock) after the visit ended."""
        if idx.size == 0:
            return
        s = self.state
        s.wait_kind[idx] = WAIT_GAP
        s.wait_origin[idx] = self.world.warp(origin)
        self._draw_gap(idx, origin)

    def _draw_gap(self, idx: I64, lower: F64) -> None:
        """Draw the gap, lognormal around the customer's cadence, given it ends after ``lower``.

        ``z = -ndtri_exp(log u + log_ndtr(-z0))`` samples a standard normal truncated to
        ``z > z0`` by inversion, stably however far in the tail ``z0`` lies.
        """
        s, w = self.state, self.world
        median = w.gap_median[s.cust[idx]]
        sigma = w.config.customers.gap_sigma
        elapsed = w.warp(lower) - s.wait_origin[idx]
        with np.errstate(divide="ignore"):
            z0 = np.where(elapsed > 0, np.log(np.maximum(elapsed, 1e-300) / median) / sigma,
                          -np.inf)
        z = -ndtri_exp(np.log(self._u(idx, P_GAP)) + log_ndtr(-z0))
        created = w.unwarp(s.wait_origin[idx] + median * np.exp(sigma * z))
        s.create_at[idx] = np.maximum(quantize(created), lower + SECOND)

    def _update_leave(self, idx: I64) -> None:
        s, w = self.state, self.world
        cur, pend = s.cur_prov[idx], s.pend_prov[idx]
        a = np.where(cur >= 0, w.prov_left[np.maximum(cur, 0)], np.inf)
        b = np.where(pend >= 0, w.prov_left[np.maximum(pend, 0)], np.inf)
        s.leave_at[idx] = np.where(s.alive[idx], np.minimum(a, b), np.inf)

    def _clear_pending(self, idx: I64) -> None:
        s = self.state
        s.visit_at[idx] = np.inf
        s.pend_prov[idx] = -1
        s.pend_discount[idx] = 0.0

    def _emit_unpaid(self, idx: I64, status: int | npt.NDArray[np.int8]) -> None:
        if idx.size == 0:
            return
        s = self.state
        self.recorder.bookings(idx, s.cust[idx], s.pend_prov[idx], s.pend_service[idx],
                               s.pend_created[idx], s.visit_at[idx], status, 0.0, 0.0, 0.0)

    # ------------------------------------------------------------------ choices
    def _choose(self, idx: I64, t: F64) -> I64:
        """Pick a barber active at ``t``: a neighborhood (mostly home), a price tier (logit on
        price sensitivity), then a barber in that cell in proportion to capacity x reputation.
        Returns -1 where no barber is available."""
        w, s = self.world, self.state
        m = idx.size
        if m == 0:
            return np.zeros(0, dtype=np.int64)
        cb = w.config.customers
        c = s.cust[idx]
        epoch = np.searchsorted(w.supply_times, t, side="right")
        n_neigh = w.n_neighborhoods
        supply = w.supply[epoch].reshape(m, n_neigh, 3)
        tier_w = np.exp(-cb.tier_price_aversion * w.sensitivity[c][:, None]
                        * w.tier_log_price[None, :])
        within = supply * tier_w[:, None, :]
        neigh_total = within.sum(axis=2)
        neigh_w = w.neigh_weight[w.home[c]] * (neigh_total > 0)
        stranded = neigh_w.sum(axis=1) <= 0
        neigh_w[stranded] = (neigh_total[stranded] > 0).astype(np.float64)
        possible = neigh_w.sum(axis=1) > 0
        neigh = _pick(neigh_w, self._u(idx, P_NEIGHBORHOOD))
        tier = _pick(within[np.arange(m), neigh], self._u(idx, P_TIER))
        cell = neigh * 3 + tier
        out = np.full(m, -1, dtype=np.int64)
        todo = np.flatnonzero(possible)
        # rejection sampling against the static within-cell weights: most barbers of a cell
        # are active at any time, so a few tries settle almost everyone
        for attempt in range(PROVIDER_TRIES):
            if todo.size == 0:
                break
            cand = self._in_cell(cell[todo], self._u(idx[todo], P_PROVIDER + attempt))
            good = w.active(cand, t[todo])
            good[good] &= ~self._no_slot(idx[todo][good], cand[good], t[todo][good],
                                         P_WIND_PICK + attempt)
            out[todo[good]] = cand[good]
            todo = todo[~good]
        if todo.size:
            out[todo] = self._in_cell_exact(cell[todo], t[todo],
                                            self._u(idx[todo], P_PROVIDER_EXACT))
        return out

    def _in_cell(self, cell: I64, u: F64) -> I64:
        w = self.world
        target = w.cell_base[cell] + u * w.cell_total[cell]
        j = np.searchsorted(w.cell_cum, target, side="left")
        j = np.clip(j, w.cell_start[cell], w.cell_end[cell] - 1)
        return w.cell_order[j]

    def _in_cell_exact(self, cell: I64, t: F64, u: F64) -> I64:
        w = self.world
        width = int((w.cell_end[cell] - w.cell_start[cell]).max())
        pos = w.cell_start[cell][:, None] + np.arange(width)[None, :]
        valid = pos < w.cell_end[cell][:, None]
        prov = w.cell_order[np.minimum(pos, w.n_providers - 1)]
        weight = np.where(valid & w.active(prov, t[:, None]), w.prov_weight[prov], 0.0)
        chosen: I64 = prov[np.arange(cell.size), _pick(weight, u)]
        return chosen

    def _no_slot(self, idx: I64, prov: I64, t: F64, purpose: int) -> B:
        """Whether a winding-down barber has no slot for this booking (draws only for them)."""
        w = self.world
        out = np.zeros(idx.size, dtype=bool)
        p_max = w.config.providers.wind_down_unavailable
        if p_max <= 0 or idx.size == 0:
            return out
        share = w.wind_down(prov, t)
        winding = np.flatnonzero(share > 0)
        out[winding] = self._u(idx[winding], purpose) < p_max * share[winding]
        return out

    def _barber_cancels(self, idx: I64, t: F64) -> B:
        """Whether the booked barber, winding down, cancels the booking falling due."""
        s, w = self.state, self.world
        out = np.zeros(idx.size, dtype=bool)
        p_max = w.config.providers.wind_down_cancel
        if p_max <= 0 or idx.size == 0:
            return out
        pend = s.pend_prov[idx]
        share = np.where(pend >= 0, w.wind_down(np.maximum(pend, 0), t), 0.0)
        winding = np.flatnonzero(share > 0)
        out[winding] = self._u(idx[winding], P_WIND_CANCEL) < p_max * share[winding]
        return out

    def _schedule(self, idx: I64, t: F64) -> F64:
        """Appointment time: a lead time after ``t``, on a slot within opening hours."""
        w = self.world
        bk = w.config.bookings
        same_day = self._u(idx, P_LEAD_MIX) < bk.same_day_share
        u = self._u(idx, P_LEAD)
        lead = np.where(same_day, -0.25 * np.log(u),
                        np.minimum(bk.lead_median_days * np.exp(bk.lead_sigma * ndtri(u)),
                                   bk.max_lead_days))
        n_slots = (bk.close_hour - bk.open_hour) * 60 // bk.slot_minutes
        slot = np.floor(self._u(idx, P_SLOT) * n_slots)
        minutes = bk.open_hour * 60 + slot * bk.slot_minutes
        day = np.floor(t + lead)
        at = day + minutes / 1440.0
        at = np.where(at < t + 1.0 / 48.0, at + 1.0, at)
        if bk.closed_weekdays:
            # a customer who wanted a closed day takes the day before when it is still ahead
            # (busier Saturdays, as barbers see), else the next open day
            closed_days = np.array(bk.closed_weekdays)
            weekday = (w.start_weekday + np.floor(at).astype(np.int64)) % 7
            earlier = (np.isin(weekday, closed_days) & ~np.isin((weekday - 1) % 7, closed_days)
                       & (at - 1.0 >= t + 1.0 / 48.0)
                       & (self._u(idx, P_CLOSED_DAY) < bk.closed_day_earlier_share))
            at = np.where(earlier, at - 1.0, at)
            for _ in range(7):
                weekday = (w.start_weekday + np.floor(at).astype(np.int64)) % 7
                closed = np.isin(weekday, closed_days)
                if not closed.any():
                    break
                at = np.where(closed, at + 1.0, at)
        return quantize(at)

    # ------------------------------------------------------------------ events
    def _initialise(self) -> None:
        """New customers book right after signing up; the initial base starts mid-cycle with a
        regular barber, its last (unrecorded) visit shortly before start."""
        s, w = self.state, self.world
        everyone = np.arange(s.size, dtype=np.int64)
        new = everyone[~w.initial[s.cust]]
        self._wait_exp(new, w.signup[s.cust[new]], WAIT_FIRST)
        base = everyone[w.initial[s.cust]]
        zero = np.zeros(base.size)
        s.started[base] = True
        # the initial base had visits before start: neither new-customer hazard nor promotion
        s.n_done[base] = 3
        s.n_booked[base] = 3
        prov = self._choose(base, zero)
        s.cur_prov[base] = prov
        has = prov >= 0
        s.match[base] = np.where(has, w.config.reviews.match_sd * ndtri(self._u(base, P_MATCH)),
                                 0.0)
        s.ref_index[base] = np.where(has, w.price_index(np.maximum(prov, 0), zero), 1.0)
        s.wait_kind[base] = WAIT_GAP
        s.wait_origin[base] = w.warp(w.virtual_last_visit[s.cust[base]])
        self._draw_gap(base, zero)
        self._redraw_churn(base, zero)
        self._update_leave(base)
        self._step(everyone)

    def _create(self, idx: I64, t: F64) -> None:
        """Make a booking: the usual barber or a new one, a service, an appointment time."""
        s, w = self.state, self.world
        c = s.cust[idx]
        cur = s.cur_prov[idx]
        p_stay = w.loyalty[c] * np.clip(1.0 + s.match[idx], 0.3, 1.0)
        stay = (cur >= 0) & (self._u(idx, P_STAY) < p_stay)
        stay[stay] &= ~self._no_slot(idx[stay], cur[stay], t[stay], P_WIND_SLOT)
        prov = cur.copy()
        explore = ~stay
        prov[explore] = self._choose(idx[explore], t[explore])
        ok = prov >= 0
        self._wait_exp(idx[~ok], t[~ok], WAIT_NO_PROVIDER)
        i, tt, p, cc = idx[ok], t[ok], prov[ok], c[ok]
        n_services = w.service_price.size
        service = np.minimum((w.pref_cum[cc] < self._u(i, P_SERVICE)[:, None]).sum(axis=1),
                             n_services - 1)
        discount = np.where(s.n_booked[i] == 0, w.first_discount[cc], 0.0)
        offer = (s.offer_discount[i] > 0) & (tt < s.offer_until[i])
        discount = np.maximum(discount, np.where(offer, s.offer_discount[i], 0.0))
        s.offer_discount[i[offer]] = 0.0
        s.n_booked[i] += 1
        s.pend_prov[i] = p
        s.pend_service[i] = service
        s.pend_created[i] = tt
        s.pend_discount[i] = discount
        s.visit_at[i] = self._schedule(i, tt)
        s.booked_until[i] = np.maximum(s.booked_until[i], s.visit_at[i])
        s.create_at[i] = np.inf
        s.wait_kind[i] = WAIT_NONE
        first = ~s.started[i]
        s.started[i[first]] = True
        self._redraw_churn(i[first], tt[first])
        self._update_leave(i)
        self._step(idx)

    def _visit(self, idx: I64, t: F64) -> None:
        """A booking falls due: cancelled, no-show or completed."""
        s, w = self.state, self.world
        c = s.cust[idx]
        u = self._u(idx, P_STATUS)
        cancel = (u < w.cancel_p[c]) | self._barber_cancels(idx, t)
        no_show = ~cancel & (u < w.cancel_p[c] + w.no_show_p[c])
        done = ~(cancel | no_show)
        self._emit_unpaid(idx[cancel], CANCELLED)
        self._emit_unpaid(idx[no_show], NO_SHOW)
        ns = idx[no_show]
        s.memory[ns] += w.config.churn.no_show
        self._redraw_churn(ns, t[no_show])
        self._clear_pending(idx[~done])
        self._wait_exp(idx[cancel], t[cancel], WAIT_CANCEL)
        self._wait_exp(ns, t[no_show], WAIT_NO_SHOW)
        self._complete(idx[done], t[done])
        self._update_leave(idx)
        self._step(idx)

    def _complete(self, i: I64, t: F64) -> None:
        if i.size == 0:
            return
        s, w = self.state, self.world
        cfg = w.config
        rv, ch, bk = cfg.reviews, cfg.churn, cfg.bookings
        c, p, service = s.cust[i], s.pend_prov[i], s.pend_service[i]
        new = p != s.cur_prov[i]
        match = np.where(new, rv.match_sd * ndtri(self._u(i, P_MATCH)), s.match[i])
        index = w.price_index(p, t)
        rise = np.where(new, 0.0, np.maximum(index / s.ref_index[i] - 1.0, 0.0))
        price = _round_half(w.service_price[service] * w.prov_price[p] * index)
        sens = w.sensitivity[c]
        experience = (w.prov_quality[p] + match
                      + rv.experience_sd * ndtri(self._u(i, P_EXPERIENCE))
                      - rv.new_barber_penalty * new - rv.price_rise_penalty * sens * rise / 0.1
                      - rv.incident_penalty * (self._u(i, P_INCIDENT) < rv.incident_probability))
        rating = np.clip(np.rint(experience), 1, 5).astype(np.int64)
        bad = experience < rv.bad_experience_below
        discount = np.round(s.pend_discount[i] * price, 2)
        tipping = self._u(i, P_TIP) < bk.tip_probability * np.clip((experience - 2.5) / 2, 0, 1)
        fraction = bk.tip_fraction_min + (bk.tip_fraction_max - bk.tip_fraction_min) * self._u(
            i, P_TIP_AMOUNT)
        tip = np.where(tipping, _round_half(price * fraction), 0.0)
        visit_end = t + w.service_duration[service]
        rows = self.recorder.bookings(i, c, p, service, s.pend_created[i], t, COMPLETED, price,
                                      discount, tip)
        if rows is not None:
            review = self._u(i, P_REVIEW) < rv.review_probability + rv.unhappy_review_boost * bad
            delay = -rv.review_delay_hours / 24.0 * np.log(self._u(i, P_REVIEW_DELAY))
            self.recorder.reviews(rows[review], rating[review],
                                  quantize(visit_end[review] + delay[review]))
        s.memory[i] = (ch.memory_decay * s.memory[i] + ch.bad_experience * bad
                       + ch.price_rise_per_10pct * sens * rise / 0.1 + ch.new_barber * new)
        s.cur_prov[i] = p
        s.match[i] = match
        s.ref_index[i] = index
        s.n_done[i] += 1
        s.obs_n[i] += 1
        s.obs_first[i] = np.where(s.obs_n[i] == 1, t, s.obs_first[i])
        s.obs_last[i] = t
        self._clear_pending(i)
        self._wait_gap(i, visit_end)
        self._redraw_churn(i, t)

    def _churn(self, idx: I64, t: F64) -> None:
        """The customer becomes permanently inactive; a pending booking is dropped."""
        s = self.state
        s.alive[idx] = False
        s.inactive_at[idx] = t
        pending = idx[np.isfinite(s.visit_at[idx])]
        no_show = self._u(pending, P_CHURN_PENDING) < self.world.config.bookings.\
            churned_no_show_share
        self._emit_unpaid(pending, np.where(no_show, NO_SHOW, CANCELLED).astype(np.int8))
        self._clear_pending(idx)
        for clock in (s.churn_at, s.create_at, s.offer_until, s.leave_at):
            clock[idx] = np.inf
        s.wait_kind[idx] = WAIT_NONE
        self._step(idx)

    def _offer_end(self, idx: I64, t: F64) -> None:
        s = self.state
        s.offer_until[idx] = np.inf
        s.offer_discount[idx] = 0.0
        self._redraw_churn(idx, t)
        self._step(idx)

    def _leave(self, idx: I64, t: F64) -> None:
        """A barber leaves: their regulars lose them (a churn shock) and bookings with them are
        cancelled and rebooked elsewhere."""
        s, w = self.state, self.world
        cur, pend = s.cur_prov[idx], s.pend_prov[idx]
        lost = (cur >= 0) & (w.prov_left[np.maximum(cur, 0)] <= t)
        dropped = (pend >= 0) & (w.prov_left[np.maximum(pend, 0)] <= t)
        j = idx[lost]
        s.memory[j] += w.config.churn.provider_left
        s.cur_prov[j] = -1
        self._redraw_churn(j, t[lost])
        k = idx[dropped]
        self._emit_unpaid(k, CANCELLED)
        self._clear_pending(k)
        self._wait_exp(k, t[dropped], WAIT_LEFT)
        self._update_leave(idx)
        self._step(idx)

    def _campaign(self, j: int) -> None:
        """Target customers overdue against their observed cadence; randomize the offer."""
        s, w = self.state, self.world
        rule = w.config.offers
        sent = float(w.campaign_time[j])
        present = np.flatnonzero(w.signup[s.cust] <= sent)
        n = s.obs_n[present]
        since = sent - s.obs_last[present]
        gap = np.where(n >= 2, (s.obs_last[present] - s.obs_first[present])
                       / np.maximum(n - 1, 1), rule.default_gap_days)
        # observable "upcoming booking": one made by now for later, whatever became of it
        pending = s.booked_until[present] > sent
        with np.errstate(invalid="ignore"):
            eligible = ((n >= 1) & ~pending & (since > rule.overdue_factor * gap)
                        & (since <= rule.max_days_since_visit))
        i = present[eligible]
        t = np.full(i.size, sent)
        treated = self._u(i, P_ASSIGN, counter=j) < rule.treat_fraction
        alive = s.alive[i].copy()
        hazard = self._hazard(i, t, with_offer=False)
        # the offer's true effect: while it runs, the log hazard drops by offer_effect (nothing
        # for customers already gone); control rows: had they been treated
        effect = self.offer_effect(i, sent)
        log_hr = np.where(alive, -effect, 0.0)
        winback = np.where(alive, 0.0, self.winback_probability(effect))
        self.recorder.interventions(j, i, s.cust[i], treated, alive, hazard, log_hr, winback)
        self.give_offer(i[treated], j)

    def offer_effect(self, idx: I64, sent: float) -> F64:
        """Drop of the log churn hazard an offer sent at ``sent`` gives customers ``idx``.

        The static responsiveness (price sensitivity, loyalty, an unobserved draw) times two
        states at ``sent``: tenure (recent signups answer more) and dissatisfaction
        (``memory``: an offer after a bad experience works as an apology). Deterministic: no
        random draw, so adding it moved no other output's random numbers.
        """
        s, w = self.state, self.world
        rule = w.config.offers
        c = s.cust[idx]
        tenure = np.maximum(sent - w.signup[c], 0.0)
        effect: F64 = (w.responsiveness[c]
                       * (1.0 + rule.new_customer_boost * np.exp(-tenure / 365.0))
                       * (1.0 + rule.bad_experience_boost
                          * (1.0 - np.exp(-np.maximum(s.memory[idx], 0.0)))))
        return effect

    def winback_probability(self, effect: F64) -> F64:
        """Chance that the offer brings back a customer who had already lapsed for good:
        ``offers.winback_rate x (1 - exp(-effect))``, ``effect`` the offer's
        :meth:`offer_effect` (the same traits make a customer answer either way)."""
        rate = self.world.config.offers.winback_rate
        probability: F64 = rate * -np.expm1(-effect)
        return probability

    def give_offer(self, idx: I64, j: int, *, redraw: bool = True) -> None:
        """Campaign ``j``'s offer to customers ``idx``: to the active ones, a lower churn
        hazard for the offer window and a discount on the next booking made within it; the
        lapsed ones come back with :meth:`winback_probability` (none when
        ``offers.winback_rate`` is 0, and then nothing is drawn) and get the same offer.
        ``redraw=False`` leaves the churn clock to :meth:`resample_clocks`."""
        s, w = self.state, self.world
        sent = float(w.campaign_time[j])
        gone = idx[~s.alive[idx]]
        if w.config.offers.winback_rate > 0 and gone.size:
            p = self.winback_probability(self.offer_effect(gone, sent))
            self._revive(gone[self._u(gone, P_WINBACK, counter=j) < p], sent)
        idx = idx[s.alive[idx]]
        s.offer_until[idx] = quantize(np.full(idx.size, sent + w.config.offers.window_days))
        s.offer_discount[idx] = w.campaign_discount[j]
        s.offer_effect[idx] = self.offer_effect(idx, sent)
        if redraw:
            self._redraw_churn(idx, np.full(idx.size, sent))
            self._step(idx)

    def _revive(self, idx: I64, t: float) -> None:
        """Lapsed customers ``idx`` come back at ``t``: active again, their next booking after
        an exponential delay (``offers.winback_delay_days``); a barber who left meanwhile is no
        longer their usual one."""
        if idx.size == 0:
            return
        s, w = self.state, self.world
        s.alive[idx] = True
        s.inactive_at[idx] = np.inf
        cur = s.cur_prov[idx]
        gone = (cur >= 0) & (w.prov_left[np.maximum(cur, 0)] <= t)
        s.cur_prov[idx[gone]] = -1
        self._wait_exp(idx, np.full(idx.size, t), WAIT_WINBACK)
        self._update_leave(idx)

    # ------------------------------------------------------------------ the loop
    def resample_clocks(self, at: float) -> None:
        """Replace every clock drawn before ``at`` that points after it by a fresh draw from its
        conditional distribution given the state at ``at`` (the oracle's branching point).

        The churn clock and rebooking delays are exponential (memoryless: redraw from ``at``);
        a cadence gap is redrawn conditional on not having ended by ``at``.
        """
        s = self.state
        everyone = np.arange(s.size, dtype=np.int64)
        t = np.full(s.size, at)
        started = everyone[s.alive & s.started]
        self._redraw_churn(started, t[started])
        s.churn_at[started] = np.maximum(s.churn_at[started], at + SECOND)
        waiting = s.alive & np.isfinite(s.create_at)
        gap = everyone[waiting & (s.wait_kind == WAIT_GAP)]
        self._draw_gap(gap, t[gap])
        other = everyone[waiting & (s.wait_kind != WAIT_GAP)]
        self._wait_exp(other, t[other], s.wait_kind[other])
        self._step(everyone)

    def run(self, until: float, *, window_days: float = 7.0,
            progress: ProgressCallback | None = None, campaigns_at_until: bool = True) -> None:
        """Process every event up to and including ``until``.

        Campaigns at a time come after the customer events at that time; with
        ``campaigns_at_until=False`` a campaign at exactly ``until`` is left for later.
        """
        w = self.world
        campaign_times = w.campaign_time[self.next_campaign:]
        campaign_times = campaign_times[campaign_times <= until]
        steps = np.arange(self.now + window_days, until, window_days)
        ends = np.unique(np.concatenate([steps, campaign_times, [until]]))
        ends = ends[ends >= self.now]
        total = int(ends.size)
        for n, t1 in enumerate(ends):
            self._advance(float(t1))
            while (self.next_campaign < w.campaign_time.size
                   and (w.campaign_time[self.next_campaign] < t1
                        or (w.campaign_time[self.next_campaign] == t1
                            and (campaigns_at_until or t1 < until)))):
                self._campaign(self.next_campaign)
                self.next_campaign += 1
            if progress is not None:
                progress(n + 1, total)
        self.now = until
        if int(self.state.counter.max(initial=0)) >= MAX_EVENTS:
            raise RuntimeError("a customer exceeded the simulator's event budget (2**24 events)")

    def _advance(self, t1: float) -> None:
        """Process every event with time <= t1, one event per slot per round."""
        s = self.state
        clocks = (s.leave_at, s.churn_at, s.offer_until, s.visit_at, s.create_at)
        nxt = np.minimum(np.minimum(np.minimum(s.leave_at, s.churn_at),
                                    np.minimum(s.offer_until, s.visit_at)), s.create_at)
        idx = np.flatnonzero(nxt <= t1)
        while idx.size:
            times = np.stack([clock[idx] for clock in clocks])
            kind = times.argmin(axis=0)
            t = times[kind, np.arange(idx.size)]
            for k, handler in enumerate(self._handlers):
                sel = kind == k
                if sel.any():
                    handler(idx[sel], t[sel])
            nxt = np.minimum.reduce([clock[idx] for clock in clocks])
            idx = idx[nxt <= t1]

