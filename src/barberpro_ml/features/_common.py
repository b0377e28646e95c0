"""Shared machinery of the feature and label builders: the ``as_of`` rule and grouped kernels.

The rule for reading a cut-off (:func:`to_as_of`) lives in :mod:`barberpro_ml.data.cutoff`,
where the SQL reader uses it too; it is re-exported here.

Everything here works on plain numpy arrays of int64 nanosecond timestamps and dense integer
codes, so that a feature over millions of bookings is a handful of sorts and ``np.bincount``
calls rather than a pandas ``groupby`` per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from barberpro_ml.data.cutoff import AsOf as AsOf
from barberpro_ml.data.cutoff import to_as_of as to_as_of
from barberpro_ml.errors import InputError

DAY_NS: Final = 86_400 * 10**9
"""Nanoseconds in a day: every ``*_days`` feature is a float number of 24-hour days."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ScalarT = TypeVar("ScalarT", bound=np.generic)


def check_windows(windows: Sequence[int], name: str = "windows") -> tuple[int, ...]:
    """Validate look-back windows in days: positive integers, no duplicates; returned sorted."""
    out = []
    for w in windows:
        if isinstance(w, bool) or not isinstance(w, int | np.integer) or int(w) <= 0:
            raise InputError(f"{name}: every window must be a positive integer number of days; "
                             f"got {w!r} in {tuple(windows)!r}")
        out.append(int(w))
    if len(set(out)) != len(out):
        raise InputError(f"{name}: duplicate windows in {tuple(windows)!r}")
    if not out:
        raise InputError(f"{name}: give at least one window")
    return tuple(sorted(out))


def check_horizon(horizon_days: int, name: str = "horizon_days") -> int:
    """Validate a label horizon: a positive integer number of days."""
    if (isinstance(horizon_days, bool) or not isinstance(horizon_days, int | np.integer)
            or int(horizon_days) <= 0):
        raise InputError(f"{name}: expected a positive integer number of days, "
                         f"got {horizon_days!r}")
    return int(horizon_days)


def ns(column: pd.Series) -> IntArray:
    """A ``datetime64[ns]`` column as int64 nanoseconds (NaT becomes the int64 minimum)."""
    return np.asarray(column.to_numpy(dtype="datetime64[ns]").view(np.int64))


def days(delta_ns: IntArray) -> FloatArray:
    """Nanosecond differences as float days."""
    return np.asarray(delta_ns, dtype=np.float64) / DAY_NS


def ratio(numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> FloatArray:
    """``numerator / denominator`` where the denominator is positive, NaN elsewhere.

    The NaN is deliberate and documented per feature ("no bookings yet"): it is never the
    accidental result of a ``0 / 0``.
    """
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


@dataclass(frozen=True)
class IdCoder:
    """Maps external integer ids to dense codes ``0..n-1`` (the position in the sorted ids).

    A lookup table from the smallest id is used when the ids are compact (the usual case: ids
    from a sequence, or a block of consecutive customers of one), binary search otherwise.
    """

    ids: IntArray
    _lut: IntArray | None
    _offset: int = 0

    @classmethod
    def from_ids(cls, ids: npt.ArrayLike) -> IdCoder:
        sorted_ids = np.sort(np.asarray(ids, dtype=np.int64))
        if not len(sorted_ids):
            return cls(sorted_ids, None)
        low, high = int(sorted_ids[0]), int(sorted_ids[-1])
        if high - low > 4 * len(sorted_ids) + 1024:
            return cls(sorted_ids, None)
        lut = np.full(high - low + 1, -1, dtype=np.int64)
        lut[sorted_ids - low] = np.arange(len(sorted_ids), dtype=np.int64)
        return cls(sorted_ids, lut, low)

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, values: npt.ArrayLike, what: str = "id") -> IntArray:
        """Codes of ``values``, which must all be among the ids.

        The data contract guarantees it for every use in this package (an event known at
        ``as_of`` refers to a customer or barber already there); a violation means the tables
        were changed after validation, and is refused rather than silently mis-coded.
        """
        v = np.asarray(values, dtype=np.int64)
        if len(v) == 0:
            return np.empty(0, dtype=np.int64)
        low = self._offset
        if self._lut is not None and int(v.min()) >= low \
                and int(v.max()) - low < len(self._lut):
            # one gather and few row-sized temporaries: at millions of rows every temporary
            # is fresh memory from the kernel, whose page faults grew faster than the rows
            codes = self._lut[v - low] if low else self._lut[v]
            if int(codes.min()) >= 0:
                return codes
            unknown = codes < 0
        elif self._lut is not None:
            inside = (v >= low) & (v - low < len(self._lut))
            codes = np.full(len(v), -1, dtype=np.int64)
            codes[inside] = self._lut[v[inside] - low]
            unknown = codes < 0
        else:
            codes = np.minimum(np.searchsorted(self.ids, v), max(len(self.ids) - 1, 0))
            unknown = (self.ids[codes] != v) if len(self.ids) else np.ones(len(v), dtype=bool)
        if unknown.any():
            examples = np.unique(v[unknown])[:5].tolist()
            raise InputError(
                f"{int(unknown.sum())} event(s) refer to a {what} unknown at as_of "
                f"(examples: {examples}); the tables break the data contract - were they "
                f"modified after MarketplaceData validated them?")
        return codes.astype(np.int64, copy=False)


def sort_by_group_time(group: IntArray, time_ns: IntArray, tiebreak: IntArray) -> IntArray:
    """Permutation ordering rows by ``(group, time_ns, tiebreak)``.

    The tie-break (an event's id) makes "the last visit" independent of row order, which the
    point-in-time property needs: deleting an unrelated future row must not change which of two
    simultaneous visits counts as the last.

    A full three-key ``np.lexsort`` is several times slower than one ``argsort`` of a packed
    ``(group, whole seconds)`` key, so the packed key is sorted and only the (rare) rows that
    tie on it are re-sorted exactly.
    """
    n = len(group)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    seconds = time_ns - time_ns.min()
    seconds //= 10**9
    if int(seconds.max()) >= 2**31 or int(group.max()) >= 2**31:
        return np.lexsort((tiebreak, time_ns, group)).astype(np.int64)
    key = group.astype(np.int64)  # a copy, shifted in place (fewer row-sized temporaries)
    key <<= 32
    key |= seconds
    del seconds
    perm = np.argsort(key).astype(np.int64, copy=False)
    sorted_key = key[perm]
    del key
    ties = sorted_key[1:] == sorted_key[:-1]
    if ties.any():
        involved = np.zeros(n, dtype=bool)
        involved[1:] |= ties
        involved[:-1] |= ties
        positions = np.flatnonzero(involved)
        rows = perm[positions]
        # Tied rows sit in contiguous runs already in key order; re-sorting them by the exact
        # key and writing them back into the same positions keeps the global order.
        exact = np.lexsort((tiebreak[rows], time_ns[rows], group[rows]))
        perm[positions] = rows[exact]
    return perm


@dataclass(frozen=True)
class Segments:
    """Rows sorted by group: where each group's run starts and ends (``counts`` may be 0)."""

    counts: IntArray
    starts: IntArray
    ends: IntArray

    @classmethod
    def from_sorted_codes(cls, codes_sorted: IntArray, n_groups: int) -> Segments:
        counts = np.bincount(codes_sorted, minlength=n_groups).astype(np.int64)
        ends = np.cumsum(counts)
        return cls(counts, ends - counts, ends)

    def rank(self, codes_sorted: IntArray) -> IntArray:
        """Position of each row within its group (0 for the first)."""
        return np.arange(len(codes_sorted), dtype=np.int64) - self.starts[codes_sorted]

    def last(self, values: npt.NDArray[ScalarT], fill: float) -> npt.NDArray[ScalarT]:
        """The last value of each group, ``fill`` (of the values' dtype) for empty groups."""
        has = self.counts > 0
        out = np.full(len(self.counts), fill, dtype=values.dtype)
        out[has] = values[self.ends[has] - 1]
        return out

    def first(self, values: npt.NDArray[ScalarT], fill: float) -> npt.NDArray[ScalarT]:
        """The first value of each group, ``fill`` (of the values' dtype) for empty groups."""
        has = self.counts > 0
        out = np.full(len(self.counts), fill, dtype=values.dtype)
        out[has] = values[self.starts[has]]
        return out


def _bits(n: int) -> int:
    return max(int(n).bit_length(), 1)


@dataclass(frozen=True)
class PairRuns:
    """Distinct ``(group, value)`` pairs of rows sorted by ``(group, time)``.

    For each pair: its group and value codes, how many rows it has, the rank (within the group)
    of its most recent row; ``row_order`` lists the rows pair by pair, so per-pair sums of any
    weight are ``np.add.reduceat(weight[row_order], run_starts)``.
    """

    group: IntArray
    value: IntArray
    count: IntArray
    last_rank: IntArray
    run_starts: IntArray
    row_order: IntArray

    def sum(self, weights: FloatArray) -> FloatArray:
        """Per-pair sum of a row weight (rows indexed as in the time-sorted input)."""
        if len(self.run_starts) == 0:
            return np.zeros(0)
        return np.asarray(np.add.reduceat(weights[self.row_order], self.run_starts),
                          dtype=np.float64)

    def mode(self, n_groups: int) -> tuple[IntArray, IntArray]:
        """Per group, the most frequent value (ties: the one seen most recently) and its count.

        Groups without rows get value ``-1`` and count 0.
        """
        score = (self.count << _bits(int(self.last_rank.max(initial=0)))) | self.last_rank
        best = np.full(n_groups, -1, dtype=np.int64)
        np.maximum.at(best, self.group, score)
        chosen = score == best[self.group]
        value = np.full(n_groups, -1, dtype=np.int64)
        count = np.zeros(n_groups, dtype=np.int64)
        value[self.group[chosen]] = self.value[chosen]
        count[self.group[chosen]] = self.count[chosen]
        return value, count


def pair_runs(group_sorted: IntArray, rank: IntArray, value: IntArray, n_values: int) -> PairRuns:
    """Group rows (sorted by group, then time; ``rank`` = position in group) by ``(group, value)``.

    One ``np.sort`` of a packed ``(group, value, rank)`` integer replaces an ``argsort`` and a
    ``np.unique``: the rank both breaks ties by recency and points back to the row.
    """
    n = len(group_sorted)
    if n == 0:
        empty = np.empty(0, dtype=np.int64)
        return PairRuns(empty, empty, empty, empty, empty, empty)
    b_rank = _bits(int(rank.max()))
    b_value = _bits(max(n_values - 1, 1))
    b_group = _bits(int(group_sorted.max()))
    if b_rank + b_value + b_group <= 62:
        # in place where possible: each row-sized temporary avoided is memory the kernel
        # need not fault in (the cost that grew faster than the rows at millions of them)
        key = group_sorted << (b_value + b_rank)
        key |= value << b_rank
        key |= rank
        key.sort()
        pair = key >> b_rank
        ranks_in_key_order = key
        ranks_in_key_order &= (1 << b_rank) - 1
        groups_in_key_order = pair >> b_value
    else:
        order = np.lexsort((rank, value, group_sorted))
        pair = group_sorted[order] * n_values + value[order]
        ranks_in_key_order = rank[order]
        groups_in_key_order = group_sorted[order]
    boundary = np.flatnonzero(pair[1:] != pair[:-1]) + 1
    run_starts = np.concatenate(([0], boundary)).astype(np.int64)
    run_ends = np.concatenate((boundary, [n])).astype(np.int64)
    # Rows of a group are contiguous from the group's first row, so the row index is the
    # position of the group's first row plus the rank.
    first_row = np.flatnonzero(np.concatenate(([True], group_sorted[1:] != group_sorted[:-1])))
    group_first = np.zeros(int(group_sorted.max()) + 1, dtype=np.int64)
    group_first[group_sorted[first_row]] = first_row
    row_order = group_first[groups_in_key_order]
    row_order += ranks_in_key_order
    return PairRuns(
        group=groups_in_key_order[run_starts],
        value=value[row_order[run_starts]],
        count=run_ends - run_starts,
        last_rank=ranks_in_key_order[run_ends - 1],
        run_starts=run_starts,
        row_order=row_order,
    )


def group_count(codes: IntArray, n_groups: int) -> IntArray:
    """Rows per group code, as int64 (``np.bincount`` with a fixed length)."""
    return np.bincount(codes, minlength=n_groups).astype(np.int64)


def group_sum(codes: IntArray, weights: npt.ArrayLike, n_groups: int) -> FloatArray:
    """Sum of ``weights`` per group code, as float64 even when there are no rows."""
    return np.bincount(codes, weights=np.asarray(weights, dtype=np.float64),
                       minlength=n_groups).astype(np.float64)
