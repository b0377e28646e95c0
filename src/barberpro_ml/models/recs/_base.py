"""The machinery every implicit-feedback recommender shares.

Interactions arrive as a DataFrame of ``user_id, item_id`` (plus optional ``weight`` and
``timestamp``) with ids of any hashable type. :func:`encode_interactions` maps the ids to
contiguous indices and aggregates the rows into a sparse ``users x items`` matrix (repeated
pairs add up). Items are indexed by descending popularity (distinct users, then total weight,
then first appearance), so that every tie in a ranking is broken in favour of the more popular
item, deterministically.

:class:`BaseRecommender` holds the id mappings, the popularity tables used for users the model
has never seen (popularity within their group, e.g. their neighborhood, else global
popularity), the scoring of users in blocks of bounded size (a block of ``b`` users is a dense
``b x items`` array; the full ``users x items`` matrix is never materialised) and the exact
top-k selection with :func:`numpy.argpartition`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any, ClassVar, Final, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from barberpro_ml.models._params import ValidatedEstimator, fit_context

__all__ = [
    "INTERACTION_COLUMNS",
    "BaseRecommender",
    "EncodedInteractions",
    "as_id_index",
    "check_interactions",
    "encode_interactions",
    "top_k",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

INTERACTION_COLUMNS: Final = ("user_id", "item_id", "weight", "timestamp")
"""Columns read from an interactions frame; the first two are required."""

RECOMMENDATION_COLUMNS: Final = ("user_id", "item_id", "score", "rank")
SIMILAR_ITEM_COLUMNS: Final = ("item_id", "similar_item_id", "score", "rank")

BLOCK_ELEMENTS: Final = 1 << 22
"""Entries of one dense block of scores (32 MB of float64): bounds memory for any user count."""

_MAX_EXAMPLES = 5
_DAY_NS = 86_400 * 10**9


def _examples(values: Iterable[Any]) -> str:
    items = list(values)
    shown = ", ".join(repr(v) for v in items[:_MAX_EXAMPLES])
    more = len(items) - _MAX_EXAMPLES
    return shown + (f", ... ({more} more)" if more > 0 else "")


def as_id_index(ids: Any, name: str) -> pd.Index:
    """Ids given as a list, array, Series or Index, as a duplicate-free Index in given order.

    Tuples stay single ids (never a MultiIndex); a bare string or scalar is refused because
    ``recommend(7)`` or ``recommend("u1")`` almost always means a one-element list.
    """
    if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
        raise TypeError(f"{name} must be a list-like of ids, got {type(ids).__name__} {ids!r}; "
                        f"wrap a single id in a list")
    if isinstance(ids, pd.MultiIndex):
        index = pd.Index(ids.to_flat_index(), tupleize_cols=False)
    elif isinstance(ids, pd.Index | pd.Series | np.ndarray):
        index = pd.Index(np.asarray(ids) if isinstance(ids, np.ndarray) else ids.array,
                         tupleize_cols=False)
    else:
        index = pd.Index(list(ids), tupleize_cols=False)
    missing = index.isna()
    if missing.any():
        raise ValueError(f"{name}: {int(missing.sum())} missing id(s) (None/NaN)")
    unique: pd.Index = index.unique()
    return unique


@dataclass(frozen=True)
class EncodedInteractions:
    """Interactions as a sparse matrix plus the id <-> index mappings.

    Attributes
    ----------
    matrix
        ``users x items`` CSR matrix of summed (possibly time-decayed) weights, float64.
    user_index, item_index
        Ids of the rows and columns; items ordered by descending popularity.
    n_rows
        Interaction rows read.
    """

    matrix: sp.csr_matrix
    user_index: pd.Index
    item_index: pd.Index
    n_rows: int


def check_interactions(interactions: Any, name: str = "interactions") -> pd.DataFrame:
    """Check an interactions frame: ``user_id`` and ``item_id`` present and never missing."""
    if not isinstance(interactions, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame with columns user_id, item_id "
                        f"(and optionally weight, timestamp), got {type(interactions).__name__}")
    missing = [c for c in ("user_id", "item_id") if c not in interactions.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; expected user_id, item_id and "
                         f"optionally weight, timestamp; got {list(interactions.columns)}")
    if len(interactions) == 0:
        raise ValueError(f"{name}: no rows")
    for column in ("user_id", "item_id"):
        null = interactions[column].isna().to_numpy()
        if null.any():
            raise ValueError(f"{name}: {int(null.sum())} missing value(s) in column {column!r} "
                             f"(rows {_examples(interactions.index[null])})")
    return interactions


def _weights(interactions: pd.DataFrame, name: str) -> FloatArray:
    if "weight" not in interactions.columns:
        return np.ones(len(interactions))
    column = interactions["weight"]
    if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(
            column.dtype):
        raise ValueError(f"{name}: column 'weight' must be numeric, got dtype {column.dtype}")
    weight = column.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~(np.isfinite(weight) & (weight > 0))
    if bad.any():
        raise ValueError(
            f"{name}: column 'weight' must be finite and > 0; {int(bad.sum())} row(s) are not "
            f"(rows {_examples(interactions.index[bad])}, values "
            f"{_examples(weight[bad])}); drop those rows or give them a positive weight")
    return weight


def _timestamps(interactions: pd.DataFrame, name: str) -> npt.NDArray[np.int64]:
    if "timestamp" not in interactions.columns:
        raise ValueError(f"{name}: half_life_days needs a 'timestamp' column; got "
                         f"{list(interactions.columns)}")
    column = interactions["timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(column.dtype):
        raise ValueError(f"{name}: column 'timestamp' must be datetime64, got {column.dtype}")
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"{name}: column 'timestamp' must be naive UTC, got {column.dtype}")
    null = column.isna().to_numpy()
    if null.any():
        raise ValueError(f"{name}: {int(null.sum())} missing timestamp(s) "
                         f"(rows {_examples(interactions.index[null])})")
    return column.astype("datetime64[ns]").to_numpy().astype(np.int64)


def _factorize(values: pd.Series, name: str, column: str) -> tuple[IntArray, pd.Index]:
    try:
        codes, uniques = pd.factorize(values)
    except TypeError as exc:
        raise ValueError(f"{name}: column {column!r} holds unhashable ids ({exc}); ids must be "
                         f"hashable (int, str, tuple, ...)") from exc
    index = uniques if isinstance(uniques, pd.Index) else pd.Index(uniques, tupleize_cols=False)
    if isinstance(index, pd.MultiIndex):
        index = pd.Index(index.to_flat_index(), tupleize_cols=False)
    return codes.astype(np.intp), index


def encode_interactions(interactions: Any, *, half_life_days: float | None = None,
                        name: str = "interactions") -> EncodedInteractions:
    """Validate an interactions frame and turn it into a sparse ``users x items`` matrix.

    Parameters
    ----------
    interactions
        DataFrame with ``user_id`` and ``item_id`` (any hashable ids) and optionally
        ``weight`` (finite, > 0; default 1 per row) and ``timestamp`` (naive datetime64).
    half_life_days
        If given, each row's weight is multiplied by ``0.5 ** (age / half_life_days)``, the
        age being measured from the latest timestamp in the frame (needs ``timestamp``).
    name
        Name used in error messages.

    Returns
    -------
    EncodedInteractions

    Raises
    ------
    ValueError
        On a missing column, a missing id, an unhashable id, a weight that is not finite and
        positive, or a missing timestamp (the message gives counts and example rows).

    Examples
    --------
    >>> frame = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": [1, 2, 2]})
    >>> enc = encode_interactions(frame)
    >>> list(enc.item_index), enc.matrix.toarray().tolist()
    ([2, 1], [[1.0, 1.0], [1.0, 0.0]])
    """
    frame = check_interactions(interactions, name)
    weight = _weights(frame, name)
    if half_life_days is not None:
        if not np.isfinite(half_life_days) or half_life_days <= 0:
            raise ValueError(f"half_life_days must be a positive number, got {half_life_days}")
        stamps = _timestamps(frame, name)
        age_days = (stamps.max() - stamps) / _DAY_NS
        weight = weight * np.exp2(-age_days / half_life_days)
    users, user_index = _factorize(frame["user_id"], name, "user_id")
    items, item_index = _factorize(frame["item_id"], name, "item_id")
    n_users, n_items = len(user_index), len(item_index)
    matrix = sp.csr_matrix((weight, (users, items)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    # columns in descending popularity: ties in any ranking then favour the popular item
    n_item_users = np.bincount(matrix.indices, minlength=n_items)
    total = np.bincount(matrix.indices, weights=matrix.data, minlength=n_items)
    order = np.lexsort((np.arange(n_items), -total, -n_item_users))
    matrix = matrix[:, order].tocsr()
    matrix.sort_indices()
    return EncodedInteractions(matrix=matrix, user_index=user_index,
                               item_index=item_index[order], n_rows=len(frame))


def top_k(scores: FloatArray, k: int) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """The ``k`` best columns of every row, ties broken by the lower column index.

    Rows are scored items; ``-inf`` marks an item that must not be returned (seen, filtered),
    so a row with fewer than ``k`` finite scores yields fewer than ``k`` items.

    Parameters
    ----------
    scores
        ``(n_rows, n_items)`` scores; NaN is not allowed.
    k
        Items per row, >= 1.

    Returns
    -------
    rows, columns, values, ranks
        Flat arrays sorted by row then rank (1-based).

    Examples
    --------
    >>> rows, cols, vals, ranks = top_k(np.array([[0.1, 0.5, 0.5, -np.inf]]), 2)
    >>> cols.tolist(), ranks.tolist()
    ([1, 2], [1, 2])
    """
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if n_rows == 0 or k_eff == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0), empty
    if k_eff < n_cols:
        # selecting the k smallest of the negated scores: numpy's introselect is several
        # times slower at the far end of rows full of ties (the zeros of sparse models)
        candidates = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    else:
        candidates = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols)).copy()
    values = np.take_along_axis(scores, candidates, axis=1)
    kth = values.min(axis=1)
    if k_eff < n_cols:
        # argpartition picks arbitrarily among the items tied with the k-th score: where some
        # were left out, take the lowest columns among them instead (exact and reproducible)
        boundary_count = (scores == kth[:, None]).sum(axis=1)
        ambiguous = np.flatnonzero(np.isfinite(kth)
                                   & (boundary_count > (values == kth[:, None]).sum(axis=1)))
        if ambiguous.size:
            candidates[ambiguous] = _break_ties(scores[ambiguous], candidates[ambiguous],
                                                values[ambiguous], kth[ambiguous], k_eff)
            values[ambiguous] = np.take_along_axis(scores[ambiguous], candidates[ambiguous],
                                                   axis=1)
    # each row's k candidates by score, then column (a sort of k per row, not of every row's
    # candidates together); -inf ones sort last and are dropped
    order = np.lexsort((candidates, -values), axis=1)
    candidates = np.take_along_axis(candidates, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    finite = np.isfinite(values)
    rows = np.broadcast_to(np.arange(n_rows)[:, None], values.shape)[finite]
    ranks = np.cumsum(finite, axis=1)[finite]
    return (rows.astype(np.intp), candidates[finite].astype(np.intp), values[finite],
            ranks.astype(np.intp))


def _break_ties(scores: FloatArray, candidates: IntArray, values: FloatArray,
                kth: FloatArray, k: int) -> IntArray:
    """Top-k columns of rows with more items tied at the k-th score than places left.

    Everything above the k-th score is already among the candidates; the places left go to
    the lowest tied columns. Those are searched in a prefix of the columns first (ties are
    usually many, e.g. the zero scores of a sparse model, so a few columns suffice) and in the
    whole row only for the rows the prefix cannot fill.
    """
    n_rows, n_cols = scores.shape
    above = values > kth[:, None]
    need = k - above.sum(axis=1)
    above_r, above_slot = np.nonzero(above)
    above_c = candidates[above_r, above_slot]
    picked_r, picked_c = [], []
    todo = np.arange(n_rows)
    for width in (min(n_cols, max(8 * k, 64)), n_cols):
        tied = scores[todo, :width] == kth[todo, None]
        running = np.cumsum(tied, axis=1, dtype=np.int32)
        filled = running[:, -1] >= need[todo]
        r, c = np.nonzero(tied[filled] & (running[filled] <= need[todo[filled], None]))
        picked_r.append(todo[filled][r])
        picked_c.append(c)
        todo = todo[~filled]
        if todo.size == 0:
            break
    rows = np.concatenate([above_r, *picked_r])
    cols = np.concatenate([above_c, *picked_c])
    return cols[np.argsort(rows, kind="stable")].reshape(n_rows, k).astype(np.intp)


def _groups_series(user_groups: Any, name: str = "user_groups") -> pd.Series:
    """A user -> group mapping (Mapping or Series) as a Series indexed by user id."""
    if isinstance(user_groups, pd.Series):
        index = user_groups.index
        if isinstance(index, pd.MultiIndex):
            index = pd.Index(index.to_flat_index(), tupleize_cols=False)
        series = pd.Series(user_groups.to_numpy(dtype=object), index=index, dtype=object)
    elif isinstance(user_groups, Mapping):
        series = pd.Series(list(user_groups.values()),
                           index=pd.Index(list(user_groups.keys()), tupleize_cols=False),
                           dtype=object)
    else:
        raise TypeError(f"{name} must be a Mapping or a pandas Series (user id -> group), "
                        f"got {type(user_groups).__name__}")
    if series.index.has_duplicates:
        dupes = series.index[series.index.duplicated()].unique()
        raise ValueError(f"{name}: {len(dupes)} user id(s) appear more than once "
                         f"({_examples(dupes)})")
    return series[series.notna()]


class BaseRecommender(ValidatedEstimator):
    """Shared fit/recommend/similar_items logic; subclasses score known users and items.

    Subclasses implement ``_fit_matrix(X)`` (``X`` the ``users x items`` CSR matrix of
    :func:`encode_interactions`), ``_score_rows(rows)`` (dense scores of known users, by row
    index) and ``_similarity_rows(items)`` (dense item-to-item scores).

    Unknown users
        A user absent from the training interactions is given the popularity ranking (number
        of distinct training users per item) of the training users in the same group, when
        ``user_groups`` (at ``fit`` or ``recommend``) says which group they belong to and that
        group has training users; otherwise the global popularity ranking.
    """

    half_life_days: float | None

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "half_life_days": [None, Interval(Real, 0, np.inf, closed="neither")],
    }

    # ------------------------------------------------------------------ to implement
    def _fit_matrix(self, X: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _score_rows(self, rows: IntArray) -> FloatArray:
        raise NotImplementedError

    def _similarity_rows(self, items: IntArray) -> FloatArray:
        raise NotImplementedError

    def _choose_params(self, interactions: pd.DataFrame, X: sp.csr_matrix) -> None:
        """Choose the parameters left to the model before ``_fit_matrix`` (default: none)."""
        return None

    # ------------------------------------------------------------------ fit
    @fit_context
    def fit(self, interactions: pd.DataFrame, *, user_groups: Any = None) -> Self:
        """Fit on implicit feedback.

        Parameters
        ----------
        interactions
            DataFrame of ``user_id, item_id`` and optionally ``weight`` (> 0; repeated pairs
            add up) and ``timestamp`` (used when ``half_life_days`` is set).
        user_groups
            Optional Mapping or Series ``user_id -> group`` (e.g. neighborhood), used for the
            popularity fallback of unknown users. It may list users without interactions.

        Returns
        -------
        self
        """
        encoded = encode_interactions(interactions, half_life_days=self.half_life_days)
        X = encoded.matrix
        self.user_index_: pd.Index = encoded.user_index
        self.item_index_: pd.Index = encoded.item_index
        self.n_users_: int = X.shape[0]
        self.n_items_: int = X.shape[1]
        self.n_interactions_: int = encoded.n_rows
        self.user_items_: sp.csr_matrix = X
        self.item_popularity_: FloatArray = np.bincount(
            X.indices, minlength=X.shape[1]).astype(np.float64)
        self._fit_groups(X, user_groups)
        self._choose_params(interactions, X)
        self._fit_matrix(X)
        self._build_lookups()
        return self

    def _build_lookups(self) -> None:
        """Build the hash tables of the id indexes now, before any concurrent use.

        pandas builds an Index's lookup table lazily, on its first ``get_indexer``, and that
        first build is not thread-safe: two requests scoring at once on a freshly loaded
        recommender (a service after a champion swap) can see a half-built table and fail
        with "Reindexing only valid with uniquely valued Index objects". Called after ``fit``
        and after unpickling, so every served recommender starts with its tables built.
        """
        groups = getattr(self, "user_groups_", None)
        for index in (getattr(self, "user_index_", None), getattr(self, "item_index_", None),
                      getattr(self, "group_index_", None),
                      None if groups is None else groups.index):
            if index is not None and len(index) and index.is_unique:
                index.get_indexer(index[:1])

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._build_lookups()

    def _fit_groups(self, X: sp.csr_matrix, user_groups: Any) -> None:
        self.user_groups_: pd.Series | None = None
        self.group_index_: pd.Index = pd.Index([], dtype=object)
        self.group_popularity_: FloatArray = np.zeros((0, X.shape[1]))
        if user_groups is None:
            return
        groups = _groups_series(user_groups)
        codes, group_index = pd.factorize(groups.to_numpy(dtype=object))
        group_of_user = pd.Series(codes, index=groups.index)
        row_group = group_of_user.reindex(self.user_index_).to_numpy(dtype=np.float64,
                                                                     na_value=-1.0)
        has = row_group >= 0
        indicator = sp.csr_matrix(
            (np.ones(int(has.sum())), (row_group[has].astype(np.intp), np.flatnonzero(has))),
            shape=(len(group_index), X.shape[0]))
        binary = X.copy()
        binary.data = np.ones_like(binary.data)
        self.user_groups_ = groups
        self.group_index_ = pd.Index(group_index, tupleize_cols=False)
        self.group_popularity_ = np.asarray((indicator @ binary).toarray(), dtype=np.float64)

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        check_is_fitted(self, "item_index_")

    def _fallback_codes(self, users: pd.Index, user_groups: Any) -> IntArray:
        """Row of the fallback table per user: a group's row, or the last (global) row."""
        n_groups = len(self.group_index_)
        out = np.full(len(users), n_groups, dtype=np.intp)
        lookups = [s for s in (None if user_groups is None else _groups_series(user_groups),
                               self.user_groups_) if s is not None]
        unresolved = np.ones(len(users), dtype=bool)
        for groups in lookups:
            labels = groups.reindex(users[unresolved]).to_numpy(dtype=object)
            found = pd.notna(labels)
            codes = self.group_index_.get_indexer(pd.Index(labels[found], dtype=object,
                                                           tupleize_cols=False))
            positions = np.flatnonzero(unresolved)[found]
            # a group with no training users has nothing to rank: keep the global row
            usable = codes >= 0
            usable[usable] = self.group_popularity_[codes[usable]].sum(axis=1) > 0
            out[positions[usable]] = codes[usable]
            unresolved[positions] = False
        return out

    def _exclusions(self, users: pd.Index, rows: IntArray, exclude_seen: bool,
                    exclude: pd.DataFrame | None) -> sp.csr_matrix:
        """``len(users) x items`` pattern of the pairs to leave out of the rankings."""
        parts = []
        known = rows >= 0
        if exclude_seen and known.any():
            seen = self.user_items_[rows[known]].tocoo()
            parts.append((np.flatnonzero(known)[seen.row], seen.col))
        if exclude is not None:
            frame = check_interactions(exclude, "exclude")
            u = users.get_indexer(pd.Index(frame["user_id"].array, tupleize_cols=False))
            i = self.item_index_.get_indexer(pd.Index(frame["item_id"].array,
                                                      tupleize_cols=False))
            keep = (u >= 0) & (i >= 0)
            parts.append((u[keep], i[keep]))
        if not parts:
            return sp.csr_matrix((len(users), self.n_items_))
        r = np.concatenate([p[0] for p in parts])
        c = np.concatenate([p[1] for p in parts])
        pattern = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(users), self.n_items_))
        pattern.sum_duplicates()
        return pattern

    def iter_score_blocks(
        self, user_ids: Any, *, exclude_seen: bool = True, exclude: pd.DataFrame | None = None,
        user_groups: Any = None, block_elements: int | None = None,
    ) -> Iterator[tuple[pd.Index, FloatArray, npt.NDArray[np.bool_]]]:
        """Dense scores of the given users, a block of users at a time.

        Each block is ``(users, scores, known)``: the ids of the block, their
        ``len(users) x n_items_`` scores (columns follow :attr:`item_index_`, ``-inf`` for
        excluded pairs) and whether each user was seen at fit (the others are scored by the
        popularity fallback). Blocks hold at most ``block_elements`` scores (default
        :data:`BLOCK_ELEMENTS`), so any number of users can be scored in bounded memory.
        """
        self._check_fitted()
        users = as_id_index(user_ids, "user_ids")
        rows = self.user_index_.get_indexer(users).astype(np.intp)
        fallback = np.vstack([self.group_popularity_, self.item_popularity_[None, :]])
        fallback_codes = self._fallback_codes(users, user_groups)
        excluded = self._exclusions(users, rows, exclude_seen, exclude)
        budget = BLOCK_ELEMENTS if block_elements is None else block_elements
        size = max(1, budget // max(self.n_items_, 1))
        for start in range(0, len(users), size):
            stop = min(start + size, len(users))
            block_rows = rows[start:stop]
            known = block_rows >= 0
            scores = np.empty((stop - start, self.n_items_))
            if known.any():
                scores[known] = self._score_rows(block_rows[known])
            if not known.all():
                scores[~known] = fallback[fallback_codes[start:stop][~known]]
            mask = excluded[start:stop].tocoo()
            scores[mask.row, mask.col] = -np.inf
            yield users[start:stop], scores, known

    def recommend(self, user_ids: Any, k: int = 10, exclude_seen: bool = True, *,
                  exclude: pd.DataFrame | None = None, user_groups: Any = None) -> pd.DataFrame:
        """The top ``k`` items for each user.

        Parameters
        ----------
        user_ids
            List-like of user ids (duplicates are scored once). Users not seen at ``fit`` get
            the popularity fallback (see the class docstring).
        k
            Items per user (fewer when fewer items are left after the exclusions).
        exclude_seen
            Leave out the items each user interacted with in the training data.
        exclude
            Optional extra ``user_id, item_id`` pairs to leave out (unknown ids are ignored).
        user_groups
            Optional ``user_id -> group`` Mapping/Series for unknown users; it takes precedence
            over the mapping given at ``fit``.

        Returns
        -------
        pandas.DataFrame
            Columns ``user_id, item_id, score, rank`` (rank 1 = best), users in the order
            given. Ties in score rank the more popular item (in the training data) first.
        """
        k = _check_k(k)
        frames = []
        for users, scores, _ in self.iter_score_blocks(
                user_ids, exclude_seen=exclude_seen, exclude=exclude, user_groups=user_groups):
            rows, cols, values, ranks = top_k(scores, k)
            frames.append((users.take(rows), self.item_index_.take(cols), values, ranks))
        return _frame(RECOMMENDATION_COLUMNS, frames, self.user_index_, self.item_index_)

    def similar_items(self, item_ids: Any, k: int = 10) -> pd.DataFrame:
        """The ``k`` items most similar to each given item (the item itself left out).

        Parameters
        ----------
        item_ids
            List-like of item ids seen at ``fit``.
        k
            Similar items per item.

        Returns
        -------
        pandas.DataFrame
            Columns ``item_id, similar_item_id, score, rank``; the score is the model's own
            item-to-item score (see each model).

        Raises
        ------
        ValueError
            If an item id was not seen at ``fit`` (the message lists them).
        """
        self._check_fitted()
        k = _check_k(k)
        items = as_id_index(item_ids, "item_ids")
        codes = self.item_index_.get_indexer(items)
        unknown = codes < 0
        if unknown.any():
            raise ValueError(f"item_ids: {int(unknown.sum())} id(s) not seen at fit "
                             f"({_examples(items[unknown])})")
        frames = []
        size = max(1, BLOCK_ELEMENTS // max(self.n_items_, 1))
        for start in range(0, len(items), size):
            block = codes[start:start + size].astype(np.intp)
            scores = np.array(self._similarity_rows(block), dtype=np.float64)
            scores[np.arange(len(block)), block] = -np.inf
            rows, cols, values, ranks = top_k(scores, k)
            frames.append((items[start:start + size].take(rows), self.item_index_.take(cols),
                           values, ranks))
        return _frame(SIMILAR_ITEM_COLUMNS, frames, self.item_index_, self.item_index_)


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or int(k) < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _frame(columns: tuple[str, ...], parts: list[tuple[pd.Index, pd.Index, FloatArray, IntArray]],
           first_like: pd.Index, second_like: pd.Index) -> pd.DataFrame:
    if parts:
        first = parts[0][0].append([p[0] for p in parts[1:]])
        second = parts[0][1].append([p[1] for p in parts[1:]])
        values = np.concatenate([p[2] for p in parts])
        ranks = np.concatenate([p[3] for p in parts]).astype(np.int64)
    else:
        first, second = first_like[:0], second_like[:0]
        values, ranks = np.zeros(0), np.zeros(0, dtype=np.int64)
    return pd.DataFrame({columns[0]: first.array, columns[1]: second.array,
                         columns[2]: values, columns[3]: ranks})
