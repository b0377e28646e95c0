"""EASE, the closed-form item-item linear autoencoder of Steck (2019).

With ``X`` the binary ``users x items`` matrix and ``G = X^T X``, EASE solves

    ``min_B ||X - X B||_F^2 + lambda ||B||_F^2``  subject to  ``diag(B) = 0``,

whose solution is ``P = (G + lambda I)^{-1}``, ``B_ij = -P_ij / P_jj`` for ``i != j`` and
``B_jj = 0`` ([1]_, eq. 8). A user's scores are ``x_u B``.

``G`` and ``B`` are dense ``items x items`` matrices (``8 n_items^2`` bytes each), which is fine
for a catalogue of barbers or services (thousands of items) but not for millions: the model
refuses catalogues larger than ``max_items``. The users x items matrix stays sparse.

``lambda`` (``l2``) must be chosen on held-out data; :func:`barberpro_ml.evaluation.ranking.
select_on_validation` does that on an out-of-time validation split.

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

from barberpro_ml.models.recs._base import BaseRecommender, FloatArray, IntArray

__all__ = ["EASERecommender"]


class EASERecommender(BaseRecommender):
    """Embarrassingly Shallow AutoEncoder (Steck 2019), fitted in closed form.

    Parameters
    ----------
    l2
        The L2 regularisation ``lambda`` (> 0); choose it on validation data.
    binary
        Fit and score on presence (Steck's setting); False uses the summed weights.
    max_items
        Largest catalogue accepted (the dense ``items x items`` matrices cost
        ``16 n_items^2`` bytes while fitting).
    half_life_days
        Optional exponential time decay of the interaction weights (only with
        ``binary=False``, since presence ignores weights).

    Attributes
    ----------
    coef_ : ndarray of shape (n_items_, n_items_)
        ``B``, zero diagonal; ``coef_[i, j]`` is how much item ``i`` in a history raises
        item ``j``.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3],
    ...                       "item_id": ["cut", "beard", "cut", "beard", "cut"]})
    >>> EASERecommender(l2=1.0).fit(frame).recommend([3], k=1)["item_id"].tolist()
    ['beard']
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseRecommender._parameter_constraints,
        "l2": [Interval(Real, 0, np.inf, closed="neither")],
        "binary": ["boolean"],
        "max_items": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, *, l2: float = 100.0, binary: bool = True, max_items: int = 20_000,
                 half_life_days: float | None = None) -> None:
        self.l2 = l2
        self.binary = binary
        self.max_items = max_items
        self.half_life_days = half_life_days

    def _fit_matrix(self, X: sp.csr_matrix) -> None:
        n_items = X.shape[1]
        if n_items > self.max_items:
            raise ValueError(
                f"EASE needs dense {n_items} x {n_items} matrices "
                f"({16 * n_items**2 / 2**30:.1f} GiB while fitting), above max_items="
                f"{self.max_items}; raise max_items if memory allows, or use ItemKNNRecommender")
        profile = X
        if self.binary:
            profile = X.copy()
            profile.data = np.ones_like(profile.data)
        gram = np.asarray((profile.T @ profile).toarray(), dtype=np.float64)
        gram[np.diag_indices(n_items)] += self.l2
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
