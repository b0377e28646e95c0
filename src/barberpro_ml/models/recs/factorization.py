"""Matrix factorisation through the ``implicit`` package: ALS [1]_ and BPR [2]_.

``implicit`` is optional: the classes can be built and cloned without it, and ``fit`` raises
an :class:`ImportError` saying how to install it (``pip install implicit``) when it is missing.
:func:`implicit_available` tells callers (tests, experiments) whether to skip these models.

Both models score a user by the dot product of the user's and the items' factors; for
``similar_items`` the score is the cosine of the item factors.

Self-tuning: ``factors`` and ``regularization`` left at ``None`` (the defaults) are chosen at
``fit`` on a held-out slice of the training interactions (see
:mod:`barberpro_ml.models.recs._tuning`), by coordinate ascent over
``factors in {16, 32, 64, 128}`` (values above ``min(n_users, n_items)`` dropped) and, for ALS,
``regularization in {0.01, 0.1, 1, 10, 100}`` (the penalty is added to ``Y^T C_u Y``, whose
scale grows with ``alpha`` and the history length, hence the wide grid); for BPR
``regularization in {1e-4, 1e-3, 1e-2, 1e-1}``. Too little data to hold anything out:
``factors=32`` and ``regularization=0.05`` (ALS) or ``0.01`` (BPR).

References
----------
.. [1] Hu, Y., Koren, Y. & Volinsky, C. (2008). Collaborative filtering for implicit feedback
   datasets. *ICDM '08*, 263-272. (Confidence-weighted ALS; here ``C_ui = alpha * w_ui`` on the
   observed pairs and 1 elsewhere, the ``implicit`` package's convention.)
.. [2] Rendle, S., Freudenthaler, C., Gantner, Z. & Schmidt-Thieme, L. (2009). BPR: Bayesian
   personalized ranking from implicit feedback. *UAI '09*, 452-461.
"""

from __future__ import annotations

import importlib.util
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval
from threadpoolctl import threadpool_limits

from barberpro_ml.models.recs._base import FloatArray, IntArray
from barberpro_ml.models.recs._tuning import SelfTuningRecommender

__all__ = ["ALSRecommender", "BPRRecommender", "implicit_available"]


def implicit_available() -> bool:
    """Whether the optional ``implicit`` package can be imported."""
    return importlib.util.find_spec("implicit") is not None


def _implicit_class(module: str, name: str) -> Any:
    try:
        if module == "als":
            from implicit.cpu.als import AlternatingLeastSquares

            return AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking
    except ImportError as exc:
        raise ImportError(
            f"{name} needs the optional 'implicit' package ({exc}); install it with "
            f"`pip install implicit`, or use EASERecommender / ItemKNNRecommender") from exc


class _FactorModel(SelfTuningRecommender):
    _regularization_grid: ClassVar[list[float]] = []

    def _search_grid(self, X: sp.csr_matrix, names: list[str]) -> dict[str, list[Any]]:
        largest = max(1, min(X.shape))
        factors = [f for f in (16, 32, 64, 128) if f <= largest] or [largest]
        full: dict[str, list[Any]] = {"factors": factors,
                                      "regularization": list(self._regularization_grid)}
        return {n: full[n] for n in full if n in names}

    def _fit_factors(self, cls: Any, params: dict[str, Any], X: sp.csr_matrix) -> None:
        # implicit runs its own threads; a multi-threaded BLAS underneath only oversubscribes
        # the cores (implicit checks, and warns about it, when a model is built)
        with threadpool_limits(limits=1, user_api="blas"):
            model = cls(**params)
            model.fit(X.astype(np.float32).tocsr(), show_progress=False)
        self.user_factors_: FloatArray = np.asarray(model.user_factors, dtype=np.float64)
        self.item_factors_: FloatArray = np.asarray(model.item_factors, dtype=np.float64)
        norms = np.linalg.norm(self.item_factors_, axis=1)
        self._unit_items = self.item_factors_ / np.where(norms > 0, norms, 1.0)[:, None]

    def _score_rows(self, rows: IntArray) -> FloatArray:
        return self.user_factors_[rows] @ self.item_factors_.T

    def _similarity_rows(self, items: IntArray) -> FloatArray:
        return self._unit_items[items] @ self._unit_items.T


class ALSRecommender(_FactorModel):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) via ``implicit``.

    Parameters
    ----------
    factors
        Latent dimensions; None (default): chosen at ``fit`` (module docstring).
    regularization
        L2 penalty on the factors; None (default): chosen at ``fit``.
    alpha
        Confidence scale: observed pairs get confidence ``alpha * w_ui``.
    iterations
        ALS sweeps.
    random_state
        Seed of the factor initialisation.
    n_threads
        Threads used by ``implicit`` (0 = all cores).
    half_life_days
        Optional exponential time decay of the interaction weights.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray
        The fitted factors, rows in the order of ``user_index_`` / ``item_index_``.
    chosen_params_, search_grid_, search_scores_, search_note_
        The values used and how they were chosen (see :mod:`barberpro_ml.models.recs._tuning`).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3],
    ...                       "item_id": ["cut", "beard", "cut", "beard", "cut"]})
    >>> model = ALSRecommender(factors=4, iterations=10).fit(frame)
    >>> model.recommend([3], k=1)["item_id"].tolist()
    ['beard']
    >>> model.item_factors_.shape[0] == len(model.item_index_)
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **SelfTuningRecommender._parameter_constraints,
        "factors": [None, Interval(Integral, 1, None, closed="left")],
        "regularization": [None, Interval(Real, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "iterations": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "n_threads": [Interval(Integral, 0, None, closed="left")],
    }

    _fallback_params: ClassVar[dict[str, Any]] = {"factors": 32, "regularization": 0.05}
    _regularization_grid: ClassVar[list[float]] = [0.01, 0.1, 1.0, 10.0, 100.0]

    def __init__(self, *, factors: int | None = None, regularization: float | None = None,
                 alpha: float = 10.0,
                 iterations: int = 15, random_state: int = 0, n_threads: int = 1,
                 half_life_days: float | None = None) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.n_threads = n_threads
        self.half_life_days = half_life_days

    def _fit_matrix(self, X: sp.csr_matrix) -> None:
        cls = _implicit_class("als", "AlternatingLeastSquares")
        params = {"factors": self.chosen_params_["factors"],
                  "regularization": self.chosen_params_["regularization"], "alpha": self.alpha,
                  "iterations": self.iterations,
                  "random_state": self.random_state, "num_threads": self.n_threads,
                  "calculate_training_loss": False}
        self._fit_factors(cls, params, X)


class BPRRecommender(_FactorModel):
    """Bayesian personalised ranking (Rendle et al. 2009) via ``implicit``.

    Parameters
    ----------
    factors
        Latent dimensions (``implicit`` adds an item bias column); None (default): chosen at
        ``fit`` (module docstring).
    learning_rate, regularization
        SGD step and L2 penalty; ``regularization`` None (default): chosen at ``fit``.
    iterations
        Epochs over the positive pairs.
    random_state
        Seed of the initialisation and of the negative sampling.
    n_threads
        Threads used by ``implicit``; with more than one the SGD updates race, so results are
        reproducible only with 1 (the default).
    half_life_days
        Optional exponential time decay of the interaction weights (BPR uses presence only, so
        it has no effect on the fit).

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray
        The fitted factors (bias columns included).
    chosen_params_, search_grid_, search_scores_, search_note_
        The values used and how they were chosen (see :mod:`barberpro_ml.models.recs._tuning`).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"user_id": [1, 1, 2, 2, 3],
    ...                       "item_id": ["cut", "beard", "cut", "beard", "cut"]})
    >>> model = BPRRecommender(factors=4, iterations=50).fit(frame)
    >>> model.recommend([3], k=1)["item_id"].tolist()
    ['beard']
    >>> model.item_factors_.shape[0] == len(model.item_index_)
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **SelfTuningRecommender._parameter_constraints,
        "factors": [None, Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "regularization": [None, Interval(Real, 0, None, closed="left")],
        "iterations": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "n_threads": [Interval(Integral, 0, None, closed="left")],
    }

    _fallback_params: ClassVar[dict[str, Any]] = {"factors": 32, "regularization": 0.01}
    _regularization_grid: ClassVar[list[float]] = [1e-4, 1e-3, 1e-2, 1e-1]

    def __init__(self, *, factors: int | None = None, learning_rate: float = 0.05,
                 regularization: float | None = None, iterations: int = 100,
                 random_state: int = 0,
                 n_threads: int = 1, half_life_days: float | None = None) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state
        self.n_threads = n_threads
        self.half_life_days = half_life_days

    def _fit_matrix(self, X: sp.csr_matrix) -> None:
        cls = _implicit_class("bpr", "BayesianPersonalizedRanking")
        params = {"factors": self.chosen_params_["factors"],
                  "learning_rate": self.learning_rate,
                  "regularization": self.chosen_params_["regularization"],
                  "iterations": self.iterations,
                  "random_state": self.random_state, "num_threads": self.n_threads}
        self._fit_factors(cls, params, X)
