"""XGBoost's own TreeSHAP values for many rows, computed once per *decision pattern* per tree.

Path-dependent TreeSHAP of one tree gives a row values that depend on the row only through the
decision it takes at every split of that tree (left, right or missing). A numeric split
``x < t`` takes the same decision for every value between two consecutive thresholds of the
same feature in the same tree, and a categorical split the same decision for the same level.
So the rows of a large block fall into far fewer *patterns* per tree than there are rows
(20,000 synthetic customers, 96 trees of depth 4: 169,515 tree-patterns instead of 1.92M
row-trees), and each tree's SHAP values need computing once per pattern.

:class:`PatternTreeShap` does exactly that, and computes every value with XGBoost itself:
for tree ``j`` it asks ``Booster.predict(..., pred_contribs=True)`` of the one-tree slice
``booster[j:j + 1]`` (XGBoost computes contributions only from a range starting at the first
tree) for one representative row of each pattern, then adds the tree's values to every row of
the pattern in ``float32``, tree after tree, as XGBoost's CPU predictor accumulates them.
The bias column does not depend on the row and is XGBoost's own, from a row of missing values.
The result is bit-for-bit the matrix of ``Booster.predict(DMatrix(X), pred_contribs=True)``
(tested on rows with missing values and categorical levels), with an order of magnitude less
tree work on large blocks; for a few rows the single direct call is cheaper, and the caller
keeps it.

Only numeric (``x < t``) and categorical splits of single-target, one-tree-per-round models
are handled; :meth:`PatternTreeShap.supports` says when a booster is outside that.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import xgboost as xgb

__all__ = ["PatternTreeShap"]

_F32 = npt.NDArray[np.float32]


class PatternTreeShap:
    """Exact XGBoost TreeSHAP values of a block of rows, one XGBoost call per tree on the
    distinct decision patterns of that tree.

    Parameters
    ----------
    booster
        The fitted booster.
    rounds
        ``iteration_range`` of the prediction, as given to ``Booster.predict``; ``(0, 0)``
        means every tree.
    feature_names, feature_types
        What the booster was trained on (``q`` numeric, ``c`` categorical), for the
        DMatrix of the representative rows.
    """

    def __init__(self, booster: xgb.Booster, rounds: tuple[int, int],
                 feature_names: Sequence[str], feature_types: Sequence[str]) -> None:
        self.booster = booster
        self.feature_names = list(feature_names)
        self.feature_types = list(feature_types)
        model = json.loads(bytes(booster.save_raw("json")))
        trees = model["learner"]["gradient_booster"]["model"]["trees"]
        start, stop = rounds
        if (start, stop) == (0, 0):
            stop = booster.num_boosted_rounds()
        self.rounds = (start, stop)
        self.categorical = np.asarray([t == "c" for t in self.feature_types], dtype=bool)
        # per tree: (its one-tree booster, the features it splits on, sorted float32
        # thresholds of each numeric one; None for a categorical one)
        self.trees: list[tuple[xgb.Booster, np.ndarray, list[_F32 | None]]] = []
        every_cut: dict[int, list[_F32]] = {}
        for j in range(start, stop):
            tree = trees[j]
            internal = np.asarray(tree["left_children"]) != -1
            features = np.asarray(tree["split_indices"], dtype=np.int64)[internal]
            conditions = np.asarray(tree["split_conditions"], dtype=np.float32)[internal]
            used = np.unique(features)
            cuts: list[_F32 | None] = [
                None if self.categorical[f] else np.unique(conditions[features == f])
                for f in used.tolist()]
            for f, cut in zip(used.tolist(), cuts, strict=True):
                if cut is not None:
                    every_cut.setdefault(f, []).append(cut)
            single = booster[j:j + 1]
            # one thread per one-tree call: the calls are many and small, and a thread pool
            # costs ~10 ms a call on a busy machine
            single.set_param({"nthread": 1})
            self.trees.append((single, used, cuts))
        # A row's position among *all* thresholds of a feature (one binary search per block)
        # decides its position among any one tree's: the count of the tree's thresholds up
        # to the g-th threshold of all, read from a small table per tree and feature.
        self.all_cuts: dict[int, _F32] = {f: np.unique(np.concatenate(c))
                                          for f, c in every_cut.items()}
        self.code_tables: list[list[npt.NDArray[np.int64] | None]] = [
            [None if cut is None else self._code_table(self.all_cuts[f], cut)
             for f, cut in zip(used.tolist(), cuts, strict=True)]
            for _, used, cuts in self.trees]
        # the bias column does not depend on the row: XGBoost's own, on a row of missing values
        self.bias = float(self._predict(booster, np.full((1, len(self.feature_names)), np.nan),
                                        self.rounds)[0, -1])

    @staticmethod
    def supports(booster: xgb.Booster) -> bool:
        """Whether ``booster`` is a single-target model with one tree per round (the case
        handled; anything else must use the direct call)."""
        model = json.loads(bytes(booster.save_raw("json")))
        learner = model["learner"]
        gbm = learner["gradient_booster"]
        if gbm.get("name") != "gbtree":
            return False
        param = gbm["model"]["gbtree_model_param"]
        target = learner["learner_model_param"]
        return (int(param["num_parallel_tree"]) == 1
                and int(target.get("num_class", "0")) <= 1
                and int(target.get("num_target", "1")) == 1
                and int(param["num_trees"]) == booster.num_boosted_rounds())

    def _dmatrix(self, matrix: np.ndarray) -> xgb.DMatrix:
        return xgb.DMatrix(matrix, feature_names=self.feature_names,
                           feature_types=self.feature_types, enable_categorical=True,
                           nthread=1)

    def _predict(self, booster: xgb.Booster, matrix: np.ndarray,
                 rounds: tuple[int, int] = (0, 0)) -> _F32:
        values = booster.predict(self._dmatrix(matrix), pred_contribs=True,
                                 iteration_range=rounds)
        return np.asarray(values, dtype=np.float32)

    @staticmethod
    def _code_table(every: _F32, cut: _F32) -> npt.NDArray[np.int64]:
        """Tree code (thresholds of ``cut`` <= x; ``len(cut) + 1`` for missing) by global
        code (thresholds of ``every`` <= x; ``len(every) + 1`` for missing)."""
        table = np.empty(len(every) + 2, dtype=np.int64)
        table[0] = 0
        table[1:len(every) + 1] = np.searchsorted(cut, every, side="right")
        table[len(every) + 1] = len(cut) + 1
        return table

    def contributions(self, matrix: np.ndarray, n_threads: int = 1) -> _F32:
        """SHAP values of ``matrix``'s rows, shape ``(n, n_features + 1)`` (bias last),
        ``float32``: equal to XGBoost's ``pred_contribs`` on the same matrix.

        Parameters
        ----------
        matrix
            Float matrix of feature values and category codes (NaN = missing), one column
            per feature, as the booster is given it.
        n_threads
            Threads, each computing a contiguous share of the rows (NumPy and XGBoost
            release the GIL). A row's values do not depend on the other rows of its share,
            so the result is the same for any number of threads.
        """
        n, p = matrix.shape
        out = np.zeros((n, p + 1), dtype=np.float32)
        if n == 0:
            return out
        shares = max(1, min(int(n_threads), n // 2048))
        bounds = np.linspace(0, n, shares + 1).astype(np.int64).tolist()
        if shares == 1:
            self._fill(matrix, out)
        else:
            with ThreadPoolExecutor(max_workers=shares) as pool:
                for done in [pool.submit(self._fill, matrix[a:b], out[a:b])
                             for a, b in itertools.pairwise(bounds)]:
                    done.result()
        out[:, p] = np.float32(self.bias)
        return out

    def _fill(self, matrix: np.ndarray, out: _F32) -> None:
        """The feature columns of ``out`` for the rows of ``matrix``."""
        n, p = matrix.shape
        # XGBoost compares float32 values; NaN is missing
        values = np.asarray(matrix, dtype=np.float32)
        missing = np.isnan(values)
        levels: dict[int, tuple[np.ndarray, int]] = {}
        for f in np.flatnonzero(self.categorical).tolist():
            uniq, inverse = np.unique(values[:, f], return_inverse=True)
            levels[f] = (inverse.reshape(-1).astype(np.int64), len(uniq))
        positions: dict[int, npt.NDArray[np.int64]] = {}
        for f, every in self.all_cuts.items():
            code = np.searchsorted(every, values[:, f], side="right").astype(np.int64)
            code[missing[:, f]] = len(every) + 1
            positions[f] = code
        # one contiguous row of sums per feature: the adds of a tree touch memory in order
        sums = np.zeros((p, n), dtype=np.float32)
        for (tree_booster, used, cuts), tables in zip(self.trees, self.code_tables,
                                                       strict=True):
            key = np.zeros(n, dtype=np.int64)
            radix_total = 1
            columns: list[np.ndarray] = []
            for f, cut, table in zip(used.tolist(), cuts, tables, strict=True):
                if cut is None:
                    code, radix = levels[f]
                else:
                    # the number of the tree's thresholds <= x decides every ``x < t`` of
                    # the feature; missing gets its own code
                    assert table is not None
                    code = table[positions[f]]
                    radix = len(cut) + 2
                columns.append(code)
                if radix_total <= (2**62) // max(radix, 1):
                    key = key * radix + code
                    radix_total *= radix
                else:
                    radix_total = 0  # overflow: fall back to unique rows below
            first, inverse = _patterns(key, radix_total, columns)
            tree = self._predict(tree_booster, matrix[first])
            # only the tree's own features get non-zero values; float32 adds in tree order,
            # as XGBoost accumulates
            for f in used.tolist():
                np.add(sums[f], tree[:, f].take(inverse), out=sums[f])
        out[:, :p] = sums.T


def _patterns(key: npt.NDArray[np.int64], radix_total: int, columns: list[np.ndarray]
              ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """One representative row of each distinct pattern, and each row's pattern.

    Patterns are numbered in increasing ``key``. When the keys are few (``radix_total`` up
    to a few times the rows) they are counted in a table instead of sorted; ``radix_total``
    0 means the key overflowed, and the rows of ``columns`` are compared instead.
    """
    n = len(key)
    if radix_total == 0:
        _, first, inverse = np.unique(np.column_stack(columns), axis=0, return_index=True,
                                      return_inverse=True)
        return first, inverse.reshape(-1)
    if radix_total > max(4 * n, 1 << 16):
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return first, inverse.reshape(-1)
    present = np.zeros(radix_total, dtype=bool)
    present[key] = True
    dense = np.cumsum(present, dtype=np.intp) - 1
    inverse = dense[key]
    # any row of a pattern represents it: every row of a pattern gets the same values
    first = np.empty(int(dense[-1]) + 1, dtype=np.intp)
    first[inverse] = np.arange(n, dtype=np.intp)
    return first, inverse
