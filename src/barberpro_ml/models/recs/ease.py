"""EASE, the closed-form item-item linear autoencoder of Steck (2019).

With ``X`` the binary ``users x items`` matrix and ``G = X^T X``, EASE solves

    ``min_B ||X - X B||_F^2 + lambda ||B||_F^2``  subject to  ``diag(B) = 0``,

whose solution is ``P = (G + lambda I)^{-1}``, ``B_ij = -P_ij / P_jj`` for ``i != j`` and
``B_jj = 0`` ([1]_, eq. 8). A user's scores are ``x_u B``.

``G`` and ``B`` are dense ``items x items`` matrices (``8 n_items^2`` bytes each), which is fine
for a catalogue of barbers or services (thousands of items) but not for millions: the model
refuses catalogues larger than ``max_items``. The users x items matrix stays sparse.

``lambda`` (``l2``) must be chosen on held-out data. Left at ``None`` (the default), ``fit``
chooses it on a held-out slice of the training interactions (see
:mod:`barberpro_ml.models.recs._tuning`) from the log grid ``d * 10 ** e``,
``e = -1.5, -1, ..., 2``, where ``d`` is the mean diagonal of ``G`` (the mean number of users
per item for binary data), so the grid follows the scale of the data; the best point is then
refined by ``10 ** +-0.25``. The regularisation that matters is relative to ``G``'s diagonal:
``lambda`` of the order of ``d`` shrinks a typical item's weights by half. Too little data to
hold anything out: ``lambda = 100``. :func:`barberpro_ml.evaluation.ranking.
select_on_validation` searches an explicit grid on an out-of-time validation split instead.

References
----------
.. [1] Steck, H. (2019). Embarrassingly shallow autoencoders for sparse data. *The Web
   Conference (WWW '19)*, 3251-3257.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval

from barberpro_ml.models.recs._base import FloatArray, IntArray
from barberpro_ml.models.recs._tuning import SelfTuningRecommender, log_grid

__all__ = ["EASERecommender"]


class EASERecommender(SelfTuningRecommender):
    """Embarrassingly Shallow AutoEncoder (Steck 2019), fitted in closed form.

    Parameters
    ----------
    l2
        The L2 regularisation ``lambda`` (> 0), or None (default) to choose it at ``fit`` on
        held-out interactions (module docstring; 100 when the data are too small).
    binary
        Fit and score on presence (Steck's setting); False uses the summed weights.
    max_items
        Largest catalogue accepted (the dense ``items x items`` matrices cost
        ``16 n_items^2`` bytes while fitting).
    random_state
        Seed of the random hold-out used to choose ``l2`` (data without timestamps).
    half_life_days
        Optional exponential time decay of the interaction weights (only with
        ``binary=False``, since presence ignores weights).

    Attributes
    ----------
    coef_ : ndarray of shape (n_items_, n_items_)
        ``B``, zero diagonal; ``coef_[i, j]`` is how much item ``i`` in a history raises
        item ``j``.
    chosen_params_, search_grid_, search_scores_, search_note_
        The ``l2`` used and how it was chosen (see :mod:`barberpro_ml.models.recs._tuning`).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3],
    ...                       "item_id": ["cut", "beard", "cut", "beard", "cut"]})
    >>> EASERecommender(l2=1.0).fit(frame).recommend([3], k=1)["item_id"].tolist()
    ['beard']
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **SelfTuningRecommender._parameter_constraints,
        "l2": [None, Interval(Real, 0, np.inf, closed="neither")],
        "binary": ["boolean"],
        "max_items": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }
    _fallback_params: ClassVar[dict[str, Any]] = {"l2": 100.0}

    def __init__(self, *, l2: float | None = None, binary: bool = True,
                 max_items: int = 20_000, random_state: int | None = 0,
                 half_life_days: float | None = None) -> None:
        self.l2 = l2
        self.binary = binary
        self.max_items = max_items
        self.random_state = random_state
        self.half_life_days = half_life_days

    def _profile_of(self, X: sp.csr_matrix) -> sp.csr_matrix:
        if not self.binary:
            return X
        profile = X.copy()
        profile.data = np.ones_like(profile.data)
        return profile

    def _search_grid(self, X: sp.csr_matrix, names: list[str]) -> dict[str, list[Any]]:
        profile = self._profile_of(X)
        diagonal = np.asarray(profile.multiply(profile).sum(axis=0)).ravel()
        scale = float(diagonal.mean()) if diagonal.size and diagonal.mean() > 0 else 1.0
        return {"l2": log_grid(scale, np.arange(-1.5, 2.01, 0.5))}

    def _refine(self, name: str, grid: list[Any], best: Any) -> list[Any]:
        return log_grid(float(best), [-0.25, 0.25])

    def _fit_matrix(self, X: sp.csr_matrix) -> None:
        n_items = X.shape[1]
        if n_items > self.max_items:
            raise ValueError(
                f"EASE needs dense {n_items} x {n_items} matrices "
                f"({16 * n_items**2 / 2**30:.1f} GiB while fitting), above max_items="
                f"{self.max_items}; raise max_items if memory allows, or use ItemKNNRecommender")
        profile = self._profile_of(X)
        gram = np.asarray((profile.T @ profile).toarray(), dtype=np.float64)
        gram[np.diag_indices(n_items)] += float(self.chosen_params_["l2"])
        precision = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram, overwrite_a=True),
                                           np.eye(n_items), overwrite_b=True)
        coef = precision / (-np.diag(precision))[None, :]
        coef[np.diag_indices(n_items)] = 0.0
        # cho_solve returns Fortran order, which made every sparse @ coef_ copy the matrix
        self.coef_: FloatArray = np.ascontiguousarray(coef)
        self._profile = profile

    def _score_rows(self, rows: IntArray) -> FloatArray:
        return np.asarray(self._profile[rows] @ self.coef_, dtype=np.float64)

    def _similarity_rows(self, items: IntArray) -> FloatArray:
        return np.array(self.coef_[items], dtype=np.float64)
