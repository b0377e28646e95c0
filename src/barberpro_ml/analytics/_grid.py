"""Time grains, the periods of a query window, and dimension codes: shared by KPIs, cohorts
and the funnel.

Everything works on int64 nanoseconds (as :mod:`barberpro_ml.features._common`): a period is
the half-open ``[start, end)``, clipped to the query window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from barberpro_ml.analytics.catalogue import DIMENSIONS, TIME_GRAINS
from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import InputError
from barberpro_ml.features._common import DAY_NS, IdCoder, IntArray, ns

_ALIASES: Final = {**{v: k for k, v in TIME_GRAINS.items()}, "MS": "month", "ME": "month"}
_MAX_KEY: Final = 2**62


def parse_grain(freq: object, name: str = "freq") -> str | None:
    """``day``, ``week`` or ``month`` from a grain name or its alias; None stays None."""
    if freq is None:
        return None
    if isinstance(freq, str):
        if freq in TIME_GRAINS:
            return freq
        if freq in _ALIASES:
            return _ALIASES[freq]
    raise InputError(f"{name}: unknown time grain {freq!r}; valid: "
                     f"{', '.join(TIME_GRAINS)} (or {', '.join(TIME_GRAINS.values())})")


def names(value: object, what: str, valid: Iterable[str]) -> tuple[str, ...]:
    """A name or a sequence of names, each among ``valid``, none twice."""
    allowed = list(valid)
    if isinstance(value, str):
        items: tuple[object, ...] = (value,)
    elif isinstance(value, Iterable):
        items = tuple(value)
    else:
        raise InputError(f"{what}: expected a name or a sequence of names, got "
                         f"{type(value).__name__} {value!r}")
    odd = [v for v in items if not isinstance(v, str)]
    if odd:
        raise InputError(f"{what}: expected names (str), got {odd[:5]!r}")
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise InputError(f"{what}: unknown {', '.join(map(repr, unknown))}; valid: "
                         f"{', '.join(allowed)}")
    twice = [v for v, count in Counter(items).items() if count > 1]
    if twice:
        raise InputError(f"{what}: {', '.join(map(repr, twice))} given more than once")
    return tuple(str(v) for v in items)


def period_codes(t: IntArray, grain: str) -> IntArray:
    """The period each nanosecond time falls in: days, Monday weeks or months since 1970."""
    if grain == "day":
        return t // DAY_NS
    if grain == "week":
        return (t // DAY_NS + 3) // 7  # 1970-01-01 was a Thursday; weeks start on Monday
    months = t.view("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    return np.asarray(months, dtype=np.int64)


def period_starts(codes: IntArray, grain: str) -> IntArray:
    """Nanosecond start of each period code (the inverse of :func:`period_codes`)."""
    if grain == "day":
        return codes * DAY_NS
    if grain == "week":
        return (codes * 7 - 3) * DAY_NS
    starts = codes.astype("datetime64[M]").astype("datetime64[ns]").view(np.int64)
    return np.asarray(starts, dtype=np.int64)


@dataclass(frozen=True)
class Grid:
    """The periods of a query window ``[lo, hi)``.

    ``starts`` / ``ends`` are each period's bounds clipped to the window; ``labels`` the
    nominal period starts. Without a grain there is one period, the whole window.
    """

    grain: str | None
    lo: int
    hi: int
    k0: int
    starts: IntArray
    ends: IntArray
    labels: IntArray

    @classmethod
    def build(cls, grain: str | None, lo: int, hi: int) -> Grid:
        if grain is None:
            top = max(hi, lo)
            one = np.array([lo], dtype=np.int64)
            return cls(None, lo, top, 0, one, np.array([top], dtype=np.int64), one)
        if hi <= lo:
            empty = np.empty(0, dtype=np.int64)
            return cls(grain, lo, lo, 0, empty, empty, empty)
        k0, k1 = (int(x) for x in period_codes(np.array([lo, hi - 1], dtype=np.int64), grain))
        codes = np.arange(k0, k1 + 2, dtype=np.int64)
        bounds = period_starts(codes, grain)
        return cls(grain, lo, hi, k0, np.maximum(bounds[:-1], lo), np.minimum(bounds[1:], hi),
                   bounds[:-1])

    @property
    def n(self) -> int:
        return len(self.starts)

    @property
    def empty(self) -> bool:
        """No time at all in the window (``start`` after ``as_of``, say)."""
        return self.hi <= self.lo

    def index(self, t: IntArray) -> IntArray:
        """Period index of each time, -1 outside the window."""
        inside = (t >= self.lo) & (t < self.hi)
        if self.grain is None:
            return np.where(inside, 0, -1).astype(np.int64)
        return np.where(inside, period_codes(t, self.grain) - self.k0, -1).astype(np.int64)


@dataclass(frozen=True)
class _Attribute:
    level: str
    codes: IntArray  # attribute code per entity code
    labels: IntArray | pd.CategoricalDtype  # the ids, or the category vocabulary

    @property
    def size(self) -> int:
        if isinstance(self.labels, pd.CategoricalDtype):
            return max(len(self.labels.categories), 1)
        return max(len(self.labels), 1)


class Grouping:
    """Dense group codes for a tuple of non-time dimensions (mixed radix over their values).

    Entities are coded by their position among the sorted ids (:class:`IdCoder`), so any fact
    that reaches a customer, a barber or a service gets its group with a lookup.
    """

    def __init__(self, data: MarketplaceData, dims: tuple[str, ...]) -> None:
        self.dims = dims
        self.coders: dict[str, IdCoder] = {}
        self._data = data
        self.attributes = [self._attribute(d) for d in dims]
        size = 1
        for a in self.attributes:
            size *= a.size
        if size >= _MAX_KEY:
            raise InputError(f"by={dims!r}: {size:,} possible groups is more than can be "
                             "counted; split by fewer dimensions")
        self.size = size
        self.levels = frozenset(a.level for a in self.attributes)

    def coder(self, level: str) -> IdCoder:
        if level not in self.coders:
            table = {"customer": "customers", "provider": "providers", "service": "services"}
            frame = getattr(self._data, table[level])
            self.coders[level] = IdCoder.from_ids(frame[f"{level}_id"].to_numpy())
        return self.coders[level]

    def _attribute(self, dim: str) -> _Attribute:
        spec = DIMENSIONS[dim]
        coder = self.coder(spec.level)
        if dim in {"provider_id", "service_id"}:
            return _Attribute(spec.level, np.arange(len(coder), dtype=np.int64), coder.ids)
        table, column = spec.source.split(".")
        frame = getattr(self._data, table)
        values = frame[column].cat
        codes = np.empty(len(coder), dtype=np.int64)
        codes[coder.encode(frame[f"{spec.level}_id"].to_numpy(), spec.level)] = (
            values.codes.to_numpy())
        dtype = frame[column].dtype
        assert isinstance(dtype, pd.CategoricalDtype)
        return _Attribute(spec.level, codes, dtype)

    def group(self, frame: pd.DataFrame, rows: IntArray,
              codes: dict[str, IntArray] | None = None) -> IntArray:
        """Group code of the fact rows ``rows`` of ``frame``.

        Entity codes are read from ``frame``'s ``<level>_id`` columns unless given in
        ``codes`` (a review's service comes through its booking, say).
        """
        given = dict(codes or {})
        key = np.zeros(len(rows), dtype=np.int64)
        for a in self.attributes:
            if a.level not in given:
                ids = frame[f"{a.level}_id"].to_numpy()[rows]
                given[a.level] = self.coder(a.level).encode(ids, a.level)
            key = key * a.size + a.codes[given[a.level]]
        return key

    def decode(self, g: IntArray) -> dict[str, object]:
        """The dimension values of group codes, one column per dimension."""
        out: dict[str, object] = {}
        rest = g.copy()
        for dim, a in reversed(list(zip(self.dims, self.attributes, strict=True))):
            code = rest % a.size
            rest //= a.size
            if isinstance(a.labels, pd.CategoricalDtype):
                out[dim] = pd.Categorical.from_codes(code, dtype=a.labels)
            else:
                out[dim] = np.asarray(a.labels[code], dtype=np.int64)
        return {dim: out[dim] for dim in self.dims}


def earliest_known(data: MarketplaceData, cut: int) -> int | None:
    """The first signup or barber join known at ``cut``: every event comes after one."""
    times = [ns(data.customers["signup_at"]), ns(data.providers["joined_at"])]
    known = [t[t <= cut] for t in times]
    firsts = [int(t.min()) for t in known if len(t)]
    return min(firsts) if firsts else None
