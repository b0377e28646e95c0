"""Recommenders that choose their own hyper-parameters on a held-out slice of the training data.

A parameter left at ``None`` (EASE's ``l2``; ItemKNN's ``n_neighbors``, ``shrink`` and
``similarity``; ALS/BPR's ``factors`` and ``regularization``) is chosen inside ``fit``:

1. **Hold out** a slice of the training interactions, per user: with a ``timestamp`` column the
   user's last :data:`HOLDOUT_FRACTION` of rows (by time, ties in row order), else a seeded
   random :data:`HOLDOUT_FRACTION` of the user's distinct items (``random_state``). A user
   keeps at least one row; users with a single row hold out nothing. Held-out items the user
   also has in the kept rows are not counted (they would be excluded from the ranking anyway).
2. **Search** the grid (each model's ``_search_grid``, derived from the kept data) by
   coordinate ascent: starting from the documented defaults, each parameter in turn is set to
   every value of its grid with the others at their best so far, for at most
   :data:`MAX_PASSES` passes (stopping early when a pass changes nothing). Every point is
   fitted on the kept rows and scored by NDCG@:data:`TUNE_K` over the held-out items (full
   ranking of the catalogue, kept items excluded, the same definition as
   :func:`barberpro_ml.evaluation.ranking.per_user_ranking_metrics`); a point is scored once
   (cached) and a tie keeps the earlier point, so the search is deterministic.
3. **Refit** on all the interactions with the chosen values.

Cost: at most ``1 + MAX_PASSES * sum(len(values) - 1)`` fits on 80% of the data plus the final
fit, each point scored on at most :data:`MAX_TUNE_USERS` held-out users (a seeded sample
beyond that). For EASE that is 10 fits (8 grid points plus 2 refinements); for ItemKNN at most
~25 and usually ~15 cheap sparse fits; for ALS/BPR at most ~17 and usually ~10.

Data too small to hold anything out (fewer than :data:`MIN_HOLDOUT_USERS` users with a held-out
item not among their kept items) uses each model's documented defaults (``_fallback_params``)
and says so in ``search_note_``; it never fails for that reason.

Fitted attributes (every self-tuning model):

``chosen_params_`` : dict
    The value used for every tunable parameter (given, chosen or fallback).
``search_grid_`` : dict
    ``parameter -> values tried`` for the parameters searched (empty when none was).
``search_scores_`` : DataFrame
    One row per point scored: the searched parameters and ``ndcg@10`` on the held-out slice,
    in the order scored.
``search_note_`` : str
    What happened: the hold-out used and the choice, or why the defaults were used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils import check_random_state

from barberpro_ml.models.recs._base import (
    BLOCK_ELEMENTS,
    BaseRecommender,
    IntArray,
    encode_interactions,
    top_k,
)

__all__ = [
    "HOLDOUT_FRACTION",
    "MAX_PASSES",
    "MAX_TUNE_USERS",
    "MIN_HOLDOUT_USERS",
    "TUNE_K",
    "HeldOut",
    "SelfTuningRecommender",
    "coordinate_search",
    "hold_out",
    "holdout_ndcg",
    "log_grid",
]

HOLDOUT_FRACTION: Final = 0.2
"""Share of each user's interactions held out to choose the parameters."""
TUNE_K: Final = 10
"""Cut-off of the NDCG that chooses the parameters."""
MIN_HOLDOUT_USERS: Final = 10
"""Fewer users with a held-out item than this: no search, the documented defaults."""
MAX_TUNE_USERS: Final = 5_000
"""Held-out users scored per grid point (a seeded sample beyond that)."""
MAX_PASSES: Final = 2
"""Coordinate-ascent passes over the parameters."""

METRIC: Final = f"ndcg@{TUNE_K}"


def log_grid(scale: float, exponents: npt.ArrayLike) -> list[float]:
    """``scale * 10 ** e`` for each exponent, rounded to 3 significant digits."""
    out = []
    for e in np.asarray(exponents, dtype=np.float64):
        value = float(scale) * 10.0 ** float(e)
        digits = 2 - math.floor(math.log10(value)) if value > 0 else 0
        out.append(float(round(value, digits)))
    return out


class HeldOut:
    """Kept rows encoded as a matrix, and the held-out relevant items of the evaluated users.

    Attributes
    ----------
    X
        ``users x items`` matrix of the kept rows (:func:`encode_interactions`).
    rows
        Rows of ``X`` (users) that are scored.
    relevant
        ``len(rows) x items`` CSR pattern of each scored user's held-out items known to ``X``.
    n_relevant
        Held-out items per scored user, including items absent from the kept rows (they stay
        relevant and cannot be found).
    mode
        ``"time"`` or ``"random"``.
    n_eligible
        Users with at least one held-out item not among their kept items (before sampling).
    """

    def __init__(self, X: sp.csr_matrix, rows: IntArray, relevant: sp.csr_matrix,
                 n_relevant: IntArray, mode: str, n_eligible: int) -> None:
        self.X = X
        self.rows = rows
        self.relevant = relevant
        self.n_relevant = n_relevant
        self.mode = mode
        self.n_eligible = n_eligible


def _n_hold(n: npt.NDArray[np.int64], fraction: float) -> npt.NDArray[np.int64]:
    """Held out of ``n``: ``round(fraction * n)`` clipped to ``[1, n - 1]``; 0 when ``n < 2``."""
    held = np.clip(np.floor(fraction * n + 0.5).astype(np.int64), 1, np.maximum(n - 1, 1))
    return np.where(n >= 2, held, 0)


def hold_out(frame: pd.DataFrame, *, fraction: float = HOLDOUT_FRACTION, seed: Any = 0,
             half_life_days: float | None = None,
             max_users: int = MAX_TUNE_USERS) -> HeldOut | None:
    """Split checked interactions per user into kept rows and held-out items (module doc).

    Returns None when fewer than :data:`MIN_HOLDOUT_USERS` users have a held-out item.
    """
    rng = check_random_state(seed)
    users, _ = pd.factorize(frame["user_id"])
    items, _ = pd.factorize(frame["item_id"])
    n_rows = len(frame)
    position = np.arange(n_rows)
    timed = ("timestamp" in frame.columns
             and pd.api.types.is_datetime64_any_dtype(frame["timestamp"].dtype))
    if timed:
        stamps = pd.to_datetime(frame["timestamp"], utc=True).dt.tz_convert(None)
        # NaT sorts first: an undated row is never held out before a dated one
        order = np.lexsort((position, stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64),
                            users))
        unit_of_row = position  # rows are the units held out
        n_units = n_rows
        unit_user = users
        unit_order = order
    else:
        # distinct (user, item) pairs, in a seeded random order per user
        pair, _ = pd.factorize(pd.MultiIndex.from_arrays([users, items]))
        n_units = int(pair.max()) + 1
        unit_of_row = pair
        unit_user = np.zeros(n_units, dtype=np.int64)
        unit_user[pair] = users
        key = rng.random_sample(n_units)
        unit_order = np.lexsort((np.arange(n_units), key, unit_user))
    counts = np.bincount(unit_user, minlength=int(users.max()) + 1).astype(np.int64)
    held_per_user = _n_hold(counts, fraction)
    sorted_users = unit_user[unit_order]
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(n_units) - start[sorted_users]
    held_unit = np.zeros(n_units, dtype=bool)
    held_unit[unit_order] = rank >= counts[sorted_users] - held_per_user[sorted_users]
    held_row = held_unit[unit_of_row]
    if not held_row.any():
        return None
    kept = frame.loc[~held_row]
    encoded = encode_interactions(kept, half_life_days=half_life_days if timed else None,
                                  name="interactions (kept for tuning)")
    X = encoded.matrix
    held = frame.loc[held_row, ["user_id", "item_id"]].drop_duplicates()
    u = encoded.user_index.get_indexer(pd.Index(held["user_id"].array, tupleize_cols=False))
    i = encoded.item_index.get_indexer(pd.Index(held["item_id"].array, tupleize_cols=False))
    # a held-out item the user also kept is excluded from the ranking: not relevant
    seen = np.zeros(len(u), dtype=bool)
    known = (u >= 0) & (i >= 0)
    if known.any():
        seen[known] = np.asarray(X[u[known], i[known]]).ravel() != 0
    u, i = u[~seen & (u >= 0)], i[~seen & (u >= 0)]
    if len(u) == 0:
        return None
    eligible = np.unique(u)
    if len(eligible) < MIN_HOLDOUT_USERS:
        return None
    rows = eligible
    if len(rows) > max_users:
        rows = np.sort(rng.choice(eligible, size=max_users, replace=False))
    slot = np.full(X.shape[0], -1, dtype=np.intp)
    slot[rows] = np.arange(len(rows))
    s = slot[u]
    keep = s >= 0
    n_relevant = np.bincount(s[keep], minlength=len(rows)).astype(np.intp)
    hit = keep & (i >= 0)
    relevant = sp.csr_matrix((np.ones(int(hit.sum())), (s[hit], i[hit])),
                             shape=(len(rows), X.shape[1]))
    relevant.sum_duplicates()
    return HeldOut(X=X, rows=rows.astype(np.intp), relevant=relevant, n_relevant=n_relevant,
                   mode="time" if timed else "random", n_eligible=len(eligible))


def holdout_ndcg(model: BaseRecommender, held: HeldOut, k: int = TUNE_K) -> float:
    """Mean NDCG@k of a model fitted on ``held.X`` over the held-out users (full ranking)."""
    n_items = held.X.shape[1]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)
    size = max(1, BLOCK_ELEMENTS // max(n_items, 1))
    total = 0.0
    for start in range(0, len(held.rows), size):
        block = held.rows[start:start + size]
        scores = np.array(model._score_rows(block), dtype=np.float64)
        seen = held.X[block].tocoo()
        scores[seen.row, seen.col] = -np.inf
        scores[~np.isfinite(scores) & ~np.isneginf(scores)] = -np.inf  # NaN never ranks
        r, c, _, rank = top_k(scores, k)
        relevant = held.relevant[start:start + size].toarray() > 0
        gains = np.zeros((len(block), k))
        gains[r, rank - 1] = relevant[r, c]
        n_rel = held.n_relevant[start:start + size]
        total += float(((gains @ discount) / ideal[np.minimum(n_rel, k) - 1]).sum())
    return total / len(held.rows)


def coordinate_search(score: Callable[[dict[str, Any]], float], grid: Mapping[str, list[Any]],
                      start: dict[str, Any],
                      max_passes: int = MAX_PASSES) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Coordinate ascent over ``grid`` from ``start``; every point scored once (module doc).

    Returns the best point and one record per point scored (its values and ``METRIC``).
    """
    cache: dict[tuple[Any, ...], float] = {}
    records: list[dict[str, Any]] = []
    names = list(grid)

    def evaluate(point: dict[str, Any]) -> float:
        key = tuple(point[n] for n in names)
        if key not in cache:
            cache[key] = score(point)
            records.append({**{n: point[n] for n in names}, METRIC: cache[key]})
        return cache[key]

    best = dict(start)
    best_score = evaluate(best)
    for _ in range(max_passes):
        changed = False
        for name in names:
            for value in grid[name]:
                point = {**best, name: value}
                value_score = evaluate(point)
                if value_score > best_score:
                    best, best_score, changed = point, value_score, True
        if not changed:
            break
    return best, records


class SelfTuningRecommender(BaseRecommender):
    """A recommender whose ``None`` parameters are chosen on held-out data at ``fit``.

    Subclasses list their tunable parameters in ``_fallback_params`` (name -> the documented
    default used when nothing can be held out), give the grid in ``_search_grid`` and read the
    values in ``_fit_matrix`` through ``self.chosen_params_``. See the module docstring.
    """

    _fallback_params: ClassVar[dict[str, Any]] = {}

    def _search_grid(self, X: sp.csr_matrix, names: list[str]) -> dict[str, list[Any]]:
        raise NotImplementedError

    def _refine(self, name: str, grid: list[Any], best: Any) -> list[Any]:
        """Extra values to try around the best of a one-parameter search (default: none)."""
        return []

    def _seed(self) -> Any:
        return getattr(self, "random_state", 0)

    def _start(self, grid: Mapping[str, list[Any]]) -> dict[str, Any]:
        """The first point scored: the fallback value where the grid has it, else the grid
        value closest to it on a log scale (numbers) or the first value."""
        start = {}
        for name, values in grid.items():
            default = self._fallback_params[name]
            if default in values or not all(isinstance(v, int | float) for v in values):
                start[name] = default if default in values else values[0]
            else:
                start[name] = min(values, key=lambda v: abs(math.log1p(v) - math.log1p(default)))
        return start

    def _choose_params(self, interactions: pd.DataFrame, X: sp.csr_matrix) -> None:
        given = {n: getattr(self, n) for n in self._fallback_params}
        missing = [n for n, v in given.items() if v is None]
        self.chosen_params_: dict[str, Any] = dict(given)
        self.search_grid_: dict[str, list[Any]] = {}
        self.search_scores_: pd.DataFrame = pd.DataFrame(columns=[*missing, METRIC])
        if not missing:
            self.search_note_: str = "every tunable parameter given: no search"
            return
        fallback = {n: self._fallback_params[n] for n in missing}
        held = hold_out(interactions, seed=self._seed(), half_life_days=self.half_life_days)
        if held is None:
            self.chosen_params_.update(fallback)
            self.search_note_ = (
                f"too little data to hold out {HOLDOUT_FRACTION:.0%} of each user's "
                f"interactions for at least {MIN_HOLDOUT_USERS} users: documented defaults "
                f"{fallback} used, nothing searched")
            return
        grid = self._search_grid(held.X, missing)
        fixed = {n: v for n, v in given.items() if v is not None}

        def score(point: dict[str, Any]) -> float:
            probe = clone(self)
            probe.chosen_params_ = {**fixed, **point}
            probe._fit_matrix(held.X)
            return holdout_ndcg(probe, held)

        best, records = coordinate_search(score, grid, self._start(grid))
        if len(grid) == 1:
            (name, values), = grid.items()
            extra = [v for v in self._refine(name, values, best[name]) if v not in values]
            if extra:
                grid = {name: [*values, *extra]}
                best_score = max(r[METRIC] for r in records)
                for value in extra:
                    s = score({name: value})
                    records.append({name: value, METRIC: s})
                    if s > best_score:
                        best, best_score = {name: value}, s
        self.search_grid_ = {n: list(v) for n, v in grid.items()}
        self.search_scores_ = pd.DataFrame.from_records(records, columns=[*grid, METRIC])
        # a parameter that needs no search (e.g. shrink beside a given cooccurrence)
        self.chosen_params_.update(fallback)
        self.chosen_params_.update(best)
        self.search_note_ = (
            f"chose {best} by {METRIC} on {HOLDOUT_FRACTION:.0%} of each user's interactions "
            f"held out ({'last by timestamp' if held.mode == 'time' else 'at random'}; "
            f"{len(held.rows):,} of {held.n_eligible:,} users scored), {len(records)} fits "
            f"on the rest, then refitted on all")
