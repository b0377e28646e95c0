"""Hypothesis strategies for small, valid, random marketplaces, and point-in-time helpers.

Reusable by any test (``from strategies import marketplace_data``; pytest puts ``tests/`` on
``sys.path`` because the folder has no ``__init__.py``).

- :func:`marketplace_tables` / :func:`marketplace_data`: six event tables that respect every
  rule of ``barberpro_ml.data.validation`` (ids, value ranges, references, time order, one
  review per completed booking, completed visits not after the barber left, one intervention
  per customer and campaign), with rows in random order, coarse time grids (so events often
  coincide, which exercises the ``<=`` boundaries), zero prices and base prices, barbers who
  left, both compact and sparse id ranges.
- :func:`as_of_for`: cut-offs that hit event times exactly, one second either side, or fall
  anywhere in the data's span.
- :func:`events_after`, :func:`known_at`: which rows are not known at ``as_of``; the data with
  them removed.
- :func:`future_perturbation`: a copy of the data where only events not known at ``as_of``
  were added, deleted or altered (including the unknown outcome of upcoming bookings).
- :func:`past_perturbation`: a copy where only bookings scheduled by ``as_of`` changed.
- :func:`one_customer`: a hand-built data set for boundary tests around :data:`A`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from barberpro_ml.data import MarketplaceData

T0 = pd.Timestamp("2024-01-01")
HOUR = pd.Timedelta(hours=1)
SECOND = pd.Timedelta(seconds=1)
DAY = pd.Timedelta(days=1)
A = pd.Timestamp("2024-06-01 12:00")
"""The cut-off used by the hand-built boundary data sets."""

CHANNELS = ("organic", "paid_social", "referral")
NEIGHBORHOODS = ("north", "south", "east")
TIERS = ("budget", "standard", "premium")
STATUSES = ("completed", "completed", "cancelled", "no_show")
CAMPAIGNS = ("winback-a", "winback-b")
OFFERS = ("10% off", "free beard trim")
PRICES = (0.0, 20.0, 25.0, 30.0, 35.5)
DISCOUNT_SHARES = (0.0, 0.0, 0.1, 0.5, 1.0)
TIPS = (0.0, 2.0, 5.0)
BASE_PRICES = (0.0, 15.0, 25.0, 40.0)
DURATIONS = (15, 30, 45)
HOURS_OF_DAY = (0, 9, 12, 17)
LEADS_H = (0, 1, 24, 24 * 7, 24 * 30)
REVIEW_DELAYS_H = (0, 1, 48, 24 * 30)

TABLE_TIMES = {
    "customers": "signup_at",
    "providers": "joined_at",
    "bookings": "created_at",
    "reviews": "created_at",
    "interventions": "sent_at",
}
"""The column saying when each table's row became known (services are timeless)."""


def _ids(draw: st.DrawFn, n: int) -> list[int]:
    """Distinct non-negative ids, sometimes compact, sometimes sparse (huge offsets)."""
    offset = draw(st.sampled_from([0, 1, 1000, 10**9]))
    raw = draw(st.lists(st.integers(0, 5 * n + 5), min_size=n, max_size=n, unique=True))
    return [offset + r for r in raw]


def _grid_time(draw: st.DrawFn, max_day: int) -> pd.Timestamp:
    day = draw(st.integers(0, max_day))
    return T0 + pd.Timedelta(days=day, hours=draw(st.sampled_from(HOURS_OF_DAY)))


@st.composite
def marketplace_tables(draw: st.DrawFn, *, max_customers: int = 8, max_providers: int = 4,
                       max_services: int = 3, max_bookings: int = 40,
                       max_interventions: int = 6, span_days: int = 400
                       ) -> dict[str, pd.DataFrame]:
    """Six contract-valid event tables (see the module docstring)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    n_services = draw(st.integers(1, max_services))
    services = pd.DataFrame({
        "service_id": _ids(draw, n_services),
        "name": [f"service-{i}" for i in range(n_services)],
        "base_price": [draw(st.sampled_from(BASE_PRICES)) for _ in range(n_services)],
        "duration_min": [draw(st.sampled_from(DURATIONS)) for _ in range(n_services)],
    })

    n_providers = draw(st.integers(1, max_providers))
    joined = [T0 + pd.Timedelta(days=draw(st.integers(-60, span_days // 2)))
              for _ in range(n_providers)]
    left: list[pd.Timestamp | None] = []
    for start in joined:
        stays = draw(st.booleans())
        left.append(None if stays else start + pd.Timedelta(
            days=draw(st.integers(0, span_days)), hours=draw(st.sampled_from(HOURS_OF_DAY))))
    providers = pd.DataFrame({
        "provider_id": _ids(draw, n_providers),
        "joined_at": joined,
        "left_at": pd.to_datetime(pd.Series(left, dtype="object")),
        "neighborhood": [draw(st.sampled_from(NEIGHBORHOODS)) for _ in range(n_providers)],
        "price_tier": [draw(st.sampled_from(TIERS)) for _ in range(n_providers)],
    })

    n_customers = draw(st.integers(1, max_customers))
    customers = pd.DataFrame({
        "customer_id": _ids(draw, n_customers),
        "signup_at": [_grid_time(draw, span_days // 2) for _ in range(n_customers)],
        "acquisition_channel": [draw(st.sampled_from(CHANNELS)) for _ in range(n_customers)],
        "neighborhood": [draw(st.sampled_from(NEIGHBORHOODS)) for _ in range(n_customers)],
    })

    n_bookings = draw(st.integers(0, max_bookings))
    rows = []
    booking_ids = _ids(draw, n_bookings)
    for booking_id in booking_ids:
        c = draw(st.integers(0, n_customers - 1))
        p = draw(st.integers(0, n_providers - 1))
        earliest = max(customers["signup_at"].iloc[c], providers["joined_at"].iloc[p])
        created = earliest + pd.Timedelta(days=draw(st.integers(0, span_days // 2)),
                                          hours=draw(st.sampled_from(HOURS_OF_DAY)))
        scheduled = created + draw(st.sampled_from(LEADS_H)) * HOUR
        status = draw(st.sampled_from(STATUSES))
        gone = providers["left_at"].iloc[p]
        if status == "completed" and pd.notna(gone) and scheduled > gone:
            status = "cancelled"  # the barber had left: the visit could not happen
        price = draw(st.sampled_from(PRICES))
        rows.append({
            "booking_id": booking_id,
            "customer_id": int(customers["customer_id"].iloc[c]),
            "provider_id": int(providers["provider_id"].iloc[p]),
            "service_id": int(services["service_id"].iloc[draw(st.integers(0, n_services - 1))]),
            "created_at": created, "scheduled_at": scheduled, "status": status,
            "price": price, "discount": price * draw(st.sampled_from(DISCOUNT_SHARES)),
            "tip": draw(st.sampled_from(TIPS)),
        })
    bookings = pd.DataFrame(rows, columns=["booking_id", "customer_id", "provider_id",
                                           "service_id", "created_at", "scheduled_at",
                                           "status", "price", "discount", "tip"]).astype({
        "booking_id": "int64", "customer_id": "int64", "provider_id": "int64",
        "service_id": "int64", "created_at": "datetime64[ns]", "scheduled_at": "datetime64[ns]",
        "status": "str", "price": "float64", "discount": "float64", "tip": "float64"})

    done = bookings[bookings["status"] == "completed"]
    reviewed = [draw(st.booleans()) for _ in range(len(done))]
    done = done[np.asarray(reviewed, dtype=bool)]
    reviews = pd.DataFrame({
        "review_id": _ids(draw, len(done)),
        "booking_id": done["booking_id"].to_numpy(),
        "customer_id": done["customer_id"].to_numpy(),
        "provider_id": done["provider_id"].to_numpy(),
        "rating": [draw(st.integers(1, 5)) for _ in range(len(done))],
        "created_at": pd.to_datetime([t + draw(st.sampled_from(REVIEW_DELAYS_H)) * HOUR
                                      for t in done["scheduled_at"]]),
    }).astype({"review_id": "int64", "rating": "int64"})

    pairs = draw(st.lists(st.tuples(st.integers(0, n_customers - 1),
                                    st.sampled_from(CAMPAIGNS)),
                          max_size=max_interventions, unique=True))
    treated = [draw(st.booleans()) for _ in pairs]
    interventions = pd.DataFrame({
        "intervention_id": _ids(draw, len(pairs)),
        "customer_id": [int(customers["customer_id"].iloc[c]) for c, _ in pairs],
        "campaign": [name for _, name in pairs],
        "sent_at": pd.to_datetime([customers["signup_at"].iloc[c] + pd.Timedelta(
            days=draw(st.integers(0, span_days // 2))) for c, _ in pairs]),
        "treated": pd.array(treated, dtype="bool"),
        "offer": [draw(st.sampled_from(OFFERS)) if t else "none" for t in treated],
    }).astype({"intervention_id": "int64", "customer_id": "int64", "campaign": "str",
               "offer": "str"})
    tables = {"customers": customers, "providers": providers, "services": services,
              "bookings": bookings, "reviews": reviews, "interventions": interventions}
    return {name: _shuffle(frame, rng) for name, frame in tables.items()}


def _shuffle(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def marketplace_data(**kwargs: Any) -> st.SearchStrategy[MarketplaceData]:
    """Validated :class:`MarketplaceData` from :func:`marketplace_tables` (same arguments)."""
    return marketplace_tables(**kwargs).map(lambda tables: MarketplaceData(**tables))


# ------------------------------------------------------------------------ cut-offs

def event_times(data: MarketplaceData) -> list[pd.Timestamp]:
    """Every timestamp in the data (signups, joins, departures, bookings, reviews, offers)."""
    stamps: list[pd.Timestamp] = []
    for table, column in (*TABLE_TIMES.items(), ("bookings", "scheduled_at"),
                          ("providers", "left_at")):
        stamps += [pd.Timestamp(t) for t in getattr(data, table)[column].dropna()]
    return sorted(set(stamps))


@st.composite
def as_of_for(draw: st.DrawFn, data: MarketplaceData) -> pd.Timestamp:
    """A cut-off on or next to an event time, or anywhere in the data's span.

    Near an event, the cut-off is the event time plus 0, 1, 7, 30, 60, 90, 180 or 365 days
    (so the event sits exactly on the edge of a look-back window) and 0 or +-1 second.
    """
    stamps = event_times(data)
    if stamps and draw(st.integers(0, 3)) > 0:
        base = draw(st.sampled_from(stamps))
        shift = draw(st.sampled_from([0, 0, 0, 1, 7, 30, 60, 90, 180, 365])) * pd.Timedelta(
            days=1)
        return base + shift + draw(st.sampled_from([0, 0, -1, 1])) * SECOND
    low, high = T0 - pd.Timedelta(days=90), T0 + pd.Timedelta(days=900)
    return low + pd.Timedelta(minutes=draw(st.integers(0, (high - low) // pd.Timedelta(
        minutes=1))))


# ------------------------------------------------------------------------ what is known

def events_after(data: MarketplaceData, as_of: pd.Timestamp) -> dict[str, pd.Series]:
    """Per table, a boolean mask of the rows not yet known at ``as_of``.

    Known means stamped at or before ``as_of`` (customers by ``signup_at``, providers by
    ``joined_at``, bookings and reviews by ``created_at``, interventions by ``sent_at``).
    Services are timeless and always known. The *outcome* of an upcoming booking (known,
    scheduled after ``as_of``) is not known either: see :func:`upcoming`.
    """
    masks = {table: getattr(data, table)[column] > as_of
             for table, column in TABLE_TIMES.items()}
    masks["services"] = pd.Series(False, index=data.services.index)
    return masks


def upcoming(data: MarketplaceData, as_of: pd.Timestamp) -> pd.Series:
    """Bookings made by ``as_of`` and scheduled after it (their outcome is still unknown)."""
    b = data.bookings
    return (b["created_at"] <= as_of) & (b["scheduled_at"] > as_of)


def known_at(data: MarketplaceData, as_of: pd.Timestamp) -> MarketplaceData:
    """The data as they could have been exported at ``as_of``.

    Rows not yet known are dropped; a departure after ``as_of`` is erased (``left_at`` NaT).
    Upcoming bookings are kept as they are (their outcome columns cannot be blanked in a valid
    table, and features must not read them anyway).
    """
    after = events_after(data, as_of)
    tables = {name: frame.loc[~after[name]].reset_index(drop=True)
              for name, frame in data.tables().items()}
    providers = tables["providers"].copy()
    providers.loc[providers["left_at"] > as_of, "left_at"] = pd.NaT
    tables["providers"] = providers
    return MarketplaceData(**tables)


# ------------------------------------------------------------------------ perturbations

PERTURBATIONS = (
    "delete_customers", "delete_providers", "delete_bookings", "delete_reviews",
    "delete_interventions", "alter_bookings", "alter_upcoming", "alter_reviews",
    "alter_interventions", "alter_departures", "add_customers", "add_providers",
    "add_bookings", "add_reviews", "add_interventions",
)
"""Kinds of change :func:`future_perturbation` makes, every one after ``as_of`` only."""


def _next_id(ids: pd.Series) -> int:
    return int(ids.max()) + 1 if len(ids) else 0


def _drop_orphans(t: dict[str, pd.DataFrame]) -> None:
    """Remove rows whose parent was deleted or that a status change made invalid."""
    b = t["bookings"]
    b = b[b["customer_id"].isin(t["customers"]["customer_id"])
          & b["provider_id"].isin(t["providers"]["provider_id"])]
    t["bookings"] = b
    completed = b.loc[b["status"] == "completed", ["booking_id", "scheduled_at"]]
    r = t["reviews"].merge(completed, on="booking_id", how="inner")
    r = r[r["created_at"] >= r["scheduled_at"]].drop(columns="scheduled_at")
    t["reviews"] = r
    i = t["interventions"]
    t["interventions"] = i[i["customer_id"].isin(t["customers"]["customer_id"])]


def _fix_completed_after_departure(t: dict[str, pd.DataFrame]) -> None:
    b = t["bookings"].copy()
    left = pd.Series(t["providers"].set_index("provider_id")["left_at"]
                     .reindex(b["provider_id"].to_numpy()).to_numpy(), index=b.index)
    bad = (b["status"] == "completed") & left.notna() & (b["scheduled_at"] > left)
    b.loc[bad, "status"] = "cancelled"
    t["bookings"] = b


@st.composite
def future_perturbation(draw: st.DrawFn, data: MarketplaceData, as_of: pd.Timestamp,
                        kinds: tuple[str, ...] = PERTURBATIONS) -> MarketplaceData:
    """A valid copy of ``data`` where only what is unknown at ``as_of`` changed.

    One or more of :data:`PERTURBATIONS` is applied; every added row is stamped after
    ``as_of``, only rows stamped after ``as_of`` are deleted or altered, and upcoming bookings
    keep their ids, customers, barbers, services and times (known at booking time) while their
    outcome (status, price, discount, tip) may change. A barber's departure after ``as_of`` may
    move (never to ``as_of`` or before) or vanish.
    """
    chosen = draw(st.sets(st.sampled_from(kinds), min_size=1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = {name: frame.copy() for name, frame in data.tables().items()}
    later = as_of + SECOND

    def pick(mask: pd.Series) -> pd.Series:
        return mask & pd.Series(rng.random(len(mask)) < 0.5, index=mask.index)

    for name in ("customers", "providers", "bookings", "reviews", "interventions"):
        if f"delete_{name}" in chosen:
            frame = t[name]
            t[name] = frame.loc[~pick(frame[TABLE_TIMES[name]] > as_of)]
    _drop_orphans(t)

    if "alter_bookings" in chosen or "alter_upcoming" in chosen:
        b = t["bookings"].copy()
        targets = pd.Series(False, index=b.index)
        if "alter_bookings" in chosen:
            targets |= pick(b["created_at"] > as_of)
        if "alter_upcoming" in chosen:
            targets |= pick((b["created_at"] <= as_of) & (b["scheduled_at"] > as_of))
        n = int(targets.sum())
        b.loc[targets, "status"] = rng.choice(["completed", "cancelled", "no_show"], n)
        price = rng.choice(PRICES, n)
        b.loc[targets, "price"] = price
        b.loc[targets, "discount"] = price * rng.choice(DISCOUNT_SHARES, n)
        b.loc[targets, "tip"] = rng.choice(TIPS, n)
        future = targets & (b["created_at"] > as_of)
        b.loc[future, "scheduled_at"] = b.loc[future, "scheduled_at"] + pd.to_timedelta(
            rng.choice(LEADS_H, int(future.sum())), unit="h")
        t["bookings"] = b
        _fix_completed_after_departure(t)
        _drop_orphans(t)

    if "alter_reviews" in chosen:
        r = t["reviews"].copy()
        targets = pick(r["created_at"] > as_of)
        r.loc[targets, "rating"] = rng.integers(1, 6, int(targets.sum()))
        r.loc[targets, "created_at"] = r.loc[targets, "created_at"] + pd.to_timedelta(
            rng.choice(REVIEW_DELAYS_H, int(targets.sum())), unit="h")
        t["reviews"] = r

    if "alter_interventions" in chosen:
        i = t["interventions"].copy()
        targets = pick(i["sent_at"] > as_of)
        flip = rng.random(int(targets.sum())) < 0.5
        treated = np.where(flip, ~i.loc[targets, "treated"].to_numpy(dtype=bool),
                           i.loc[targets, "treated"].to_numpy(dtype=bool))
        i["offer"] = i["offer"].astype("str")
        i.loc[targets, "treated"] = treated
        i.loc[targets, "offer"] = np.where(treated, OFFERS[0], "none")
        i.loc[targets, "sent_at"] = i.loc[targets, "sent_at"] + pd.to_timedelta(
            rng.integers(0, 100, int(targets.sum())), unit="D")
        t["interventions"] = i

    if "alter_departures" in chosen:
        p = t["providers"].copy()
        targets = pick(p["left_at"].isna() | (p["left_at"] > as_of))
        b = t["bookings"]
        last_visit = b[b["status"] == "completed"].groupby("provider_id")["scheduled_at"].max()
        floor = pd.Series(last_visit.reindex(p["provider_id"].to_numpy()).to_numpy(),
                          index=p.index, dtype="datetime64[ns]")
        floor = floor.where(floor.notna() & (floor > later), later)
        floor = np.maximum(floor, p["joined_at"])
        new_left = floor + pd.to_timedelta(rng.integers(0, 200, len(p)), unit="D")
        keep_open = rng.random(len(p)) < 0.3
        p["left_at"] = p["left_at"].where(~targets, new_left.where(~keep_open))
        t["providers"] = p

    if "add_customers" in chosen:
        c = t["customers"]
        k = int(rng.integers(1, 4))
        new = pd.DataFrame({
            "customer_id": _next_id(c["customer_id"]) + np.arange(k),
            "signup_at": later + pd.to_timedelta(rng.integers(0, 200 * 24, k), unit="h"),
            # "west" is a neighbourhood unseen before as_of: only the category list may change.
            "acquisition_channel": rng.choice(CHANNELS, k),
            "neighborhood": rng.choice([*NEIGHBORHOODS, "west"], k),
        })
        t["customers"] = pd.concat([c.astype({"acquisition_channel": "str",
                                              "neighborhood": "str"}), new],
                                   ignore_index=True)

    if "add_providers" in chosen:
        p = t["providers"]
        k = int(rng.integers(1, 3))
        new = pd.DataFrame({
            "provider_id": _next_id(p["provider_id"]) + np.arange(k),
            "joined_at": later + pd.to_timedelta(rng.integers(0, 200 * 24, k), unit="h"),
            "left_at": pd.NaT,
            "neighborhood": rng.choice(NEIGHBORHOODS, k),
            "price_tier": rng.choice(TIERS, k),
        })
        t["providers"] = pd.concat([p.astype({"neighborhood": "str", "price_tier": "str"}),
                                    new], ignore_index=True)

    if "add_bookings" in chosen and len(t["customers"]) and len(t["providers"]):
        c, p, s, b = t["customers"], t["providers"], t["services"], t["bookings"]
        k = int(rng.integers(1, 6))
        ci = rng.integers(0, len(c), k)
        pi = rng.integers(0, len(p), k)
        earliest = np.maximum(np.maximum(c["signup_at"].to_numpy()[ci],
                                         p["joined_at"].to_numpy()[pi]), later.to_datetime64())
        created = pd.to_datetime(earliest) + pd.to_timedelta(rng.integers(0, 200, k), unit="D")
        price = rng.choice(PRICES, k)
        new = pd.DataFrame({
            "booking_id": _next_id(b["booking_id"]) + np.arange(k),
            "customer_id": c["customer_id"].to_numpy()[ci],
            "provider_id": p["provider_id"].to_numpy()[pi],
            "service_id": rng.choice(s["service_id"].to_numpy(), k),
            "created_at": created,
            "scheduled_at": created + pd.to_timedelta(rng.choice(LEADS_H, k), unit="h"),
            "status": rng.choice(STATUSES, k),
            "price": price, "discount": price * rng.choice(DISCOUNT_SHARES, k),
            "tip": rng.choice(TIPS, k),
        })
        t["bookings"] = pd.concat([b.astype({"status": "str"}), new], ignore_index=True)
        _fix_completed_after_departure(t)

    if "add_reviews" in chosen:
        b, r = t["bookings"], t["reviews"]
        open_ = b[(b["status"] == "completed") & ~b["booking_id"].isin(r["booking_id"])]
        open_ = open_[rng.random(len(open_)) < 0.6]
        k = len(open_)
        new = pd.DataFrame({
            "review_id": _next_id(r["review_id"]) + np.arange(k),
            "booking_id": open_["booking_id"].to_numpy(),
            "customer_id": open_["customer_id"].to_numpy(),
            "provider_id": open_["provider_id"].to_numpy(),
            "rating": rng.integers(1, 6, k),
            # Reviews of past visits written after as_of: known only later.
            "created_at": np.maximum(open_["scheduled_at"].to_numpy(), later.to_datetime64())
            + pd.to_timedelta(rng.choice(REVIEW_DELAYS_H, k), unit="h").to_numpy(),
        })
        t["reviews"] = pd.concat([r, new], ignore_index=True)

    if "add_interventions" in chosen and len(t["customers"]):
        c, i = t["customers"], t["interventions"]
        k = int(rng.integers(1, 4))
        ci = rng.choice(len(c), size=min(k, len(c)), replace=False)
        treated = rng.random(len(ci)) < 0.5
        new = pd.DataFrame({
            "intervention_id": _next_id(i["intervention_id"]) + np.arange(len(ci)),
            "customer_id": c["customer_id"].to_numpy()[ci],
            "campaign": "winback-future",
            "sent_at": np.maximum(c["signup_at"].to_numpy()[ci], later.to_datetime64())
            + pd.to_timedelta(rng.integers(0, 100, len(ci)), unit="D").to_numpy(),
            "treated": treated,
            "offer": np.where(treated, OFFERS[1], "none"),
        })
        t["interventions"] = pd.concat(
            [i.astype({"campaign": "str", "offer": "str"}), new], ignore_index=True)

    _drop_orphans(t)
    return MarketplaceData(**{name: _shuffle(frame.reset_index(drop=True), rng)
                              for name, frame in t.items()})


@st.composite
def past_perturbation(draw: st.DrawFn, data: MarketplaceData, as_of: pd.Timestamp
                      ) -> MarketplaceData:
    """A valid copy of ``data`` where only bookings scheduled by ``as_of`` changed.

    Some are deleted, the others may change status, price, discount and tip (reviews of
    bookings that are no longer completed go too). Nothing scheduled after ``as_of`` changes,
    so labels at ``as_of`` may change population (who is active) but never value.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = {name: frame.copy() for name, frame in data.tables().items()}
    b = t["bookings"]
    past = b["scheduled_at"] <= as_of
    drop = past & (rng.random(len(b)) < 0.3)
    b = b.loc[~drop].copy()
    alter = (b["scheduled_at"] <= as_of) & (rng.random(len(b)) < 0.5)
    n = int(alter.sum())
    b["status"] = b["status"].astype("str")
    b.loc[alter, "status"] = rng.choice(["completed", "cancelled", "no_show"], n)
    price = rng.choice(PRICES, n)
    b.loc[alter, "price"] = price
    b.loc[alter, "discount"] = price * rng.choice(DISCOUNT_SHARES, n)
    b.loc[alter, "tip"] = rng.choice(TIPS, n)
    t["bookings"] = b
    _fix_completed_after_departure(t)
    _drop_orphans(t)
    return MarketplaceData(**{name: _shuffle(frame.reset_index(drop=True), rng)
                              for name, frame in t.items()})


# ------------------------------------------------------------------------ hand-built data

def one_customer(bookings: Sequence[dict[str, Any]] = (), *,
                 signup: pd.Timestamp = A - 400 * DAY, left_at: pd.Timestamp | None = None,
                 reviews: Sequence[dict[str, Any]] = (),
                 interventions: Sequence[dict[str, Any]] = (),
                 joined: pd.Timestamp = A - 500 * DAY) -> MarketplaceData:
    """A hand-built data set for boundary tests around the cut-off :data:`A`.

    One customer (id 1), one barber (id 7), services 3 (default) and 4, the given events, plus a
    customer (id 2) signing up 400 days after ``A`` so that labels at ``A`` can be computed.
    Each booking dict needs ``scheduled_at``; ``lead`` (how long before it was booked,
    default 0) and any booking column (status, price...) may be given.
    """
    rows = []
    for i, b in enumerate(bookings):
        rows.append({"booking_id": 100 + i, "customer_id": 1, "provider_id": 7,
                     "service_id": 3, "created_at": b["scheduled_at"] - b.get("lead", 0 * DAY),
                     "status": "completed", "price": 30.0, "discount": 0.0, "tip": 0.0,
                     **{k: v for k, v in b.items() if k != "lead"}})
    return MarketplaceData(
        customers=pd.DataFrame({"customer_id": [1, 2], "signup_at": [signup, A + 400 * DAY],
                                "acquisition_channel": ["organic", "referral"],
                                "neighborhood": ["north", "south"]}),
        providers=pd.DataFrame({"provider_id": [7], "joined_at": [joined],
                                "left_at": pd.to_datetime([left_at]),
                                "neighborhood": ["north"], "price_tier": ["standard"]}),
        services=pd.DataFrame({"service_id": [3, 4], "name": ["haircut", "beard trim"],
                               "base_price": [30.0, 15.0], "duration_min": [30, 15]}),
        bookings=pd.DataFrame(rows, columns=["booking_id", "customer_id", "provider_id",
                                             "service_id", "created_at", "scheduled_at",
                                             "status", "price", "discount", "tip"]).astype(
            {"created_at": "datetime64[ns]", "scheduled_at": "datetime64[ns]"}),
        reviews=pd.DataFrame(list(reviews), columns=["review_id", "booking_id", "customer_id",
                                                     "provider_id", "rating", "created_at"]
                             ).astype({"created_at": "datetime64[ns]"}),
        interventions=pd.DataFrame(list(interventions),
                                   columns=["intervention_id", "customer_id", "campaign",
                                            "sent_at", "treated", "offer"]
                                   ).astype({"sent_at": "datetime64[ns]", "treated": "bool"}),
    )
