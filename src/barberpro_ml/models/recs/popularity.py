"""The popularity baseline: every user gets the most-booked items."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import StrOptions

from barberpro_ml.models.recs._base import BaseRecommender, FloatArray, IntArray

__all__ = ["PopularityRecommender"]


class PopularityRecommender(BaseRecommender):
    """Recommend the most popular items (the baseline every other model must beat).

    Parameters
    ----------
    measure
        ``"users"``: number of distinct training users per item (repeat bookings by one
        customer count once); ``"weight"``: summed interaction weights (repeat bookings count,
        time-decayed when ``half_life_days`` is set).
    by_group
        When True, a user whose group is known (``user_groups`` at ``fit``) gets the
        popularity ranking of the training users of their group (e.g. their neighborhood)
        instead of the global one, known and unknown users alike.
    half_life_days
        Optional exponential time decay of the interaction weights (see
        :func:`~barberpro_ml.models.recs.encode_interactions`).

    Attributes
    ----------
    scores_ : ndarray of shape (n_items_,)
        The global popularity score of each item, in the order of ``item_index_``.
    user_index_, item_index_, n_users_, n_items_, user_items_, item_popularity_
        See :class:`~barberpro_ml.models.recs.BaseRecommender`.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"user_id": [1, 2, 2, 3], "item_id": ["a", "a", "b", "c"]})
    >>> PopularityRecommender().fit(frame).recommend([1], k=2)["item_id"].tolist()
    ['b', 'c']
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseRecommender._parameter_constraints,
        "measure": [StrOptions({"users", "weight"})],
        "by_group": ["boolean"],
    }

    def __init__(self, *, measure: Literal["users", "weight"] = "users",
                 by_group: bool = False, half_life_days: float | None = None) -> None:
        self.measure = measure
        self.by_group = by_group
        self.half_life_days = half_life_days

    def _fit_matrix(self, X: sp.csr_matrix) -> None:
        if self.measure == "users":
            self.scores_: FloatArray = self.item_popularity_.copy()
        else:  # "weight"
            self.scores_ = np.bincount(X.indices, weights=X.data,
                                       minlength=X.shape[1]).astype(np.float64)
        self.user_group_codes_: IntArray = np.full(X.shape[0], -1, dtype=np.intp)
        self.group_scores_: FloatArray = self.group_popularity_
        if self.by_group and self.user_groups_ is not None:
            codes = self._fallback_codes(self.user_index_, None)
            self.user_group_codes_ = np.where(codes < len(self.group_index_), codes, -1)
            if self.measure == "weight":
                has = self.user_group_codes_ >= 0
                indicator = sp.csr_matrix(
                    (np.ones(int(has.sum())), (self.user_group_codes_[has], np.flatnonzero(has))),
                    shape=(len(self.group_index_), X.shape[0]))
                self.group_scores_ = np.asarray((indicator @ X).toarray(), dtype=np.float64)

    def _score_rows(self, rows: IntArray) -> FloatArray:
        scores = np.repeat(self.scores_[None, :], len(rows), axis=0)
        if self.by_group:
            codes = self.user_group_codes_[rows]
            grouped = codes >= 0
            scores[grouped] = self.group_scores_[codes[grouped]]
        return scores

    def _similarity_rows(self, items: IntArray) -> FloatArray:
        return np.repeat(self.scores_[None, :], len(items), axis=0)
