"""Item-based k-nearest-neighbours: cosine with shrinkage, or TF-IDF/BM25-weighted co-occurrence.

The item-item similarity is computed from the ``users x items`` matrix ``W`` (the interaction
weights after the chosen weighting) as a sparse product ``S = W^T W`` [1]_, optionally
normalised to a shrunk cosine

    ``s_ij = (w_i . w_j) / (||w_i|| ||w_j|| + shrink)``

(the shrinkage term pulls similarities supported by few co-occurrences towards zero, as in [2]_
and the item-KNN baseline of [3]_). Only the ``n_neighbors`` largest similarities of each item
are kept [1]_, and a user's score for item ``j`` is ``sum_i r_ui s_ij`` over the items ``i`` of
their history.

Self-tuning: ``n_neighbors``, ``shrink``, ``similarity`` and ``weighting`` left at ``None`` (the
defaults) are chosen at ``fit`` on a held-out slice of the training interactions (see
:mod:`barberpro_ml.models.recs._tuning`), by coordinate ascent over
``weighting in {binary, tfidf, bm25}``, ``similarity in {cosine, cooccurrence}``,
``n_neighbors in {5, 10, ..., 1000, 2000}``
(values at or above the number of items dropped, then ``n_items - 1``, every other item,
added; values whose similarity matrix would pass 20 million entries left out) and
``shrink in {0, p/10, p, 10 p, 100 p}`` with ``p`` the mean number of users per item (the
shrinkage competes with ``||w_i|| ||w_j||``, of the order of ``p`` for binary weights and larger
under TF-IDF/BM25's idf factors). Too little data to hold anything out: ``n_neighbors=50,
shrink=10, similarity="cosine", weighting="binary"``. Searching the weighting mattered most on
MovieLens-100k (``benchmarks/real_data_recs.py``): BM25 with a strong shrinkage raised
NDCG@10 from 0.256 (binary) to 0.286 on two split seeds.

Weightings (items are the "documents" and users the "terms", the convention of the ``implicit``
library's item-item recommenders; ``n_i(u)`` is the number of items user ``u`` touched):

* ``binary``: ``w_ui = 1``;
* ``none``: ``w_ui = r_ui`` (summed, possibly time-decayed weights);
* ``tfidf``: ``w_ui = sqrt(r_ui) * (log((1 + n_items) / (1 + n_i(u))) + 1)`` (sublinear term
  frequency, scikit-learn's smoothed idf [4]_);
* ``bm25``: ``w_ui = r_ui (k1 + 1) / (r_ui + k1 (1 - b + b L_i / mean(L))) * idf_u`` with
  ``L_i = sum_u r_ui`` and ``idf_u = log(1 + (n_items - n_i(u) + 0.5) / (n_i(u) + 0.5))``, the
  never-negative idf of Lucene's BM25 [5]_.

References
----------
.. [1] Deshpande, M. & Karypis, G. (2004). Item-based top-N recommendation algorithms.
   *ACM TOIS* 22(1), 143-177.
.. [2] Koren, Y. (2008). Factorization meets the neighborhood. *KDD '08* (shrunk similarities).
.. [3] Ferrari Dacrema, M., Cremonesi, P. & Jannach, D. (2019). Are we really making much
   progress? A worrying analysis of recent neural recommendation approaches. *RecSys '19*.
.. [4] Manning, C. D., Raghavan, P. & Schütze, H. (2008). *Introduction to Information
   Retrieval*, ch. 6. Cambridge University Press.
.. [5] Robertson, S. & Zaragoza, H. (2009). The probabilistic relevance framework: BM25 and
   beyond. *Foundations and Trends in Information Retrieval* 3(4), 333-389.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval, StrOptions

from barberpro_ml.models.recs._base import FloatArray, IntArray
from barberpro_ml.models.recs._tuning import SelfTuningRecommender, log_grid

__all__ = ["ItemKNNRecommender", "keep_top_per_row", "weight_interactions"]

Weighting = Literal["binary", "none", "tfidf", "bm25"]

_NEIGHBOUR_GRID = (5, 10, 20, 50, 100, 200, 500, 1000, 2000)
_MAX_SIMILARITY_ENTRIES = 20_000_000
"""Neighbour counts searched stop where ``n_items * n_neighbors`` would pass this (about
240 MB of similarities and their indices): past it a larger neighbourhood is a memory
question, not a tuning one, and is left to an explicit ``n_neighbors``."""


def weight_interactions(X: sp.csr_matrix, weighting: Weighting, *, k1: float = 1.2,
                        b: float = 0.75) -> sp.csr_matrix:
    """Apply one of the weightings of the module docstring to a ``users x items`` matrix."""
    W = X.tocsr(copy=True).astype(np.float64)
    n_items = X.shape[1]
    items_per_user = np.diff(W.indptr)
    user_of_entry = np.repeat(np.arange(W.shape[0]), items_per_user)
    if weighting == "binary":
        W.data = np.ones_like(W.data)
    elif weighting == "none":
        pass
    elif weighting == "tfidf":
        idf = np.log((1.0 + n_items) / (1.0 + items_per_user)) + 1.0
        W.data = np.sqrt(W.data) * idf[user_of_entry]
    elif weighting == "bm25":
        idf = np.log1p((n_items - items_per_user + 0.5) / (items_per_user + 0.5))
        length = np.bincount(W.indices, weights=W.data, minlength=n_items)
        norm = (1.0 - b) + b * length / length.mean()
        W.data = (W.data * (k1 + 1.0) / (W.data + k1 * norm[W.indices])
                  * idf[user_of_entry])
    else:
        raise ValueError(f"weighting must be one of 'binary', 'none', 'tfidf', 'bm25'; "
                         f"got {weighting!r}")
    return W


def keep_top_per_row(S: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the ``n`` largest entries of each row (ties: lower column first); drop zeros."""
    coo = S.tocoo()
    positive = coo.data != 0
    rows, cols, data = coo.row[positive], coo.col[positive], coo.data[positive]
    order = np.lexsort((cols, -data, rows))
    rows, cols, data = rows[order], cols[order], data[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    keep = rank < n
    out = sp.csr_matrix((data[keep], (rows[keep], cols[keep])), shape=S.shape)
    out.sort_indices()
    return out


class ItemKNNRecommender(SelfTuningRecommender):
    """Item-based nearest neighbours on implicit feedback (see the module docstring).

    Parameters
    ----------
    n_neighbors
        Similar items kept per item; None (default): chosen at ``fit``.
    similarity
        ``"cosine"`` (shrunk cosine) or ``"cooccurrence"`` (the raw weighted dot product
        ``w_i . w_j``, the usual choice with ``tfidf``/``bm25``); None (default): chosen at
        ``fit``.
    weighting
        ``"binary"``, ``"none"``, ``"tfidf"`` or ``"bm25"``; None (default): chosen at ``fit``
        among ``binary``, ``tfidf`` and ``bm25`` (``none`` only when asked for).
    shrink
        Shrinkage of the cosine (ignored by ``cooccurrence``), >= 0; None (default): chosen
        at ``fit``.
    bm25_k1, bm25_b
        BM25 saturation and length normalisation.
    random_state
        Seed of the random hold-out used to choose the parameters left at None (data without
        timestamps).
    half_life_days
        Optional exponential time decay of the interaction weights.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of shape (n_items_, n_items_)
        Pruned item-item similarities; row ``i`` holds the neighbours of item ``i``.
    chosen_params_, search_grid_, search_scores_, search_note_
        The values used and how they were chosen (see :mod:`barberpro_ml.models.recs._tuning`).

    Notes
    -----
    A user's history enters the score as binary presence when the weighting is ``binary`` and as
    the summed weights otherwise. ``similar_items`` returns the pruned neighbours, ranked by
    similarity (items outside the neighbourhood score 0 and follow in popularity order).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3],
    ...                       "item_id": ["cut", "beard", "cut", "beard", "cut"]})
    >>> ItemKNNRecommender(shrink=0).fit(frame).recommend([3], k=1)["item_id"].tolist()
    ['beard']
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **SelfTuningRecommender._parameter_constraints,
        "n_neighbors": [None, Interval(Integral, 1, None, closed="left")],
        "similarity": [None, StrOptions({"cosine", "cooccurrence"})],
        "weighting": [None, StrOptions({"binary", "none", "tfidf", "bm25"})],
        "shrink": [None, Interval(Real, 0, np.inf, closed="left")],
        "bm25_k1": [Interval(Real, 0, np.inf, closed="left")],
        "bm25_b": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
    }
    _fallback_params: ClassVar[dict[str, Any]] = {
        "similarity": "cosine", "n_neighbors": 50, "shrink": 10.0, "weighting": "binary"}

    def __init__(self, *, n_neighbors: int | None = None,
                 similarity: Literal["cosine", "cooccurrence"] | None = None,
                 weighting: Weighting | None = None, shrink: float | None = None,
                 bm25_k1: float = 1.2, bm25_b: float = 0.75, random_state: int | None = 0,
                 half_life_days: float | None = None) -> None:
        self.n_neighbors = n_neighbors
        self.similarity = similarity
        self.weighting = weighting
        self.shrink = shrink
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.random_state = random_state
        self.half_life_days = half_life_days

    def _search_grid(self, X: sp.csr_matrix, names: list[str]) -> dict[str, list[Any]]:
        n_items = X.shape[1]
        neighbours = [n for n in _NEIGHBOUR_GRID
                      if n < n_items and n * n_items <= _MAX_SIMILARITY_ENTRIES]
        if n_items - 1 > (neighbours[-1] if neighbours else 0) and (
                n_items * (n_items - 1) <= _MAX_SIMILARITY_ENTRIES or not neighbours):
            neighbours.append(max(n_items - 1, 1))  # every other item
        popularity = float(np.diff(X.tocsc().indptr).mean()) if n_items else 1.0
        full: dict[str, list[Any]] = {
            "similarity": ["cosine", "cooccurrence"],
            "n_neighbors": neighbours,
            "shrink": [0.0, *log_grid(max(popularity, 1.0), [-1, 0, 1, 2])],
            "weighting": ["binary", "tfidf", "bm25"],
        }
        # shrink only acts on the cosine: no need to search it when the cosine is ruled out
        if "shrink" in names and self.similarity == "cooccurrence":
            names = [n for n in names if n != "shrink"]
        return {n: full[n] for n in full if n in names}

    def _fit_matrix(self, X: sp.csr_matrix) -> None:
        params = self.chosen_params_
        weighting = params["weighting"]
        W = weight_interactions(X, weighting, k1=self.bm25_k1, b=self.bm25_b)
        S = (W.T @ W).tocsr()
        if params["similarity"] == "cosine":
            norms = np.sqrt(S.diagonal())
            S = S.tocoo()
            S.data = S.data / (norms[S.row] * norms[S.col] + float(params["shrink"]))
            S = S.tocsr()
        S.setdiag(0.0)
        S.eliminate_zeros()
        self.similarity_: sp.csr_matrix = keep_top_per_row(S, int(params["n_neighbors"]))
        profile = X
        if weighting == "binary":
            profile = X.copy()
            profile.data = np.ones_like(profile.data)
        self._profile = profile

    def _score_rows(self, rows: IntArray) -> FloatArray:
        return np.asarray((self._profile[rows] @ self.similarity_).toarray(), dtype=np.float64)

    def _similarity_rows(self, items: IntArray) -> FloatArray:
        return np.asarray(self.similarity_[items].toarray(), dtype=np.float64)
