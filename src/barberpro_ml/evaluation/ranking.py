"""Top-k ranking evaluation of recommenders, with bootstrap CIs over users.

:func:`evaluate_recommender` ranks **all** catalogue items for every test user (leaving out the
user's training items), compares the top ``k`` with the user's test items and reports, for each
cut-off ``k``, the mean over users of the per-user metrics below plus catalogue coverage, each
with a percentile bootstrap interval over users (resampled users, every metric and the baseline
on the same resamples, as in :mod:`barberpro_ml.evaluation.bootstrap`).

Definitions, for a user with relevant set ``R`` (test items, minus training items when those are
excluded from the ranking) and ``h_i = 1`` when the item at rank ``i`` is in ``R``:

* ``precision@k = sum_{i<=k} h_i / k`` (the denominator is ``k`` even when fewer than ``k``
  items could be ranked);
* ``recall@k = sum_{i<=k} h_i / |R|``: the share of *all* the user's relevant items found,
  the information-retrieval definition [1]_ (ch. 8). It cannot reach 1 when ``|R| > k``; the
  alternative denominator ``min(k, |R|)`` of [2]_ is not used;
* ``ndcg@k = DCG@k / IDCG@k`` with binary gains, ``DCG@k = sum_{i<=k} h_i / log2(i + 1)`` and
  ``IDCG@k`` the DCG of a perfect ranking, ``sum_{i<=min(k, |R|)} 1 / log2(i + 1)`` [3]_;
* ``mrr@k = 1 / (rank of the first hit)`` if there is a hit in the top ``k``, else 0 [4]_;
* ``hit@k = 1`` if any of the top ``k`` is relevant;
* ``map@k``: the mean over users of ``AP@k = sum_{i<=k} precision@i * h_i / min(k, |R|)``.
  The denominator ``min(k, |R|)`` (not ``|R|``) makes a perfect top-k score 1 even when the user
  has more than ``k`` relevant items; it is the convention of the widely used ``apk`` of
  Hamner's ``ml_metrics`` and of [5]_;
* ``coverage@k``: the share of catalogue items (items known to the model) that appear in at
  least one evaluated user's top ``k`` [6]_. Not a per-user mean; it is bootstrapped on the same
  user resamples.

Relevant items the model has never seen stay in ``R``: a model cannot recommend them, and
pretending otherwise would flatter it.

References
----------
.. [1] Manning, C. D., Raghavan, P. & Schütze, H. (2008). *Introduction to Information
   Retrieval*. Cambridge University Press.
.. [2] Liang, D., Krishnan, R. G., Hoffman, M. D. & Jebara, T. (2018). Variational autoencoders
   for collaborative filtering. *WWW '18* (Recall@R with ``min(R, |I_u|)``).
.. [3] Järvelin, K. & Kekäläinen, J. (2002). Cumulated gain-based evaluation of IR techniques.
   *ACM TOIS* 20(4), 422-446.
.. [4] Voorhees, E. M. (1999). The TREC-8 question answering track report. *TREC-8*.
.. [5] Schedl, M., Zamani, H., Chen, C.-W., Deldjoo, Y. & Elahi, M. (2018). Current challenges
   and visions in music recommender systems research. *IJMIR* 7, 95-116 (MAP@k, eq. 2).
.. [6] Ge, M., Delgado-Battenfeld, C. & Jannach, D. (2010). Beyond accuracy: evaluating
   recommender systems by coverage and serendipity. *RecSys '10*, 257-260.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pydantic import ConfigDict, Field
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from barberpro_ml.errors import NotEnoughDataError
from barberpro_ml.evaluation.bootstrap import (
    PairedDifference,
    estimate,
    resample_counts,
    single_threaded_blas,
)
from barberpro_ml.evaluation.overlap import check_overlap, identifying_columns
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate, SliceReport
from barberpro_ml.models.recs import (
    BaseRecommender,
    PopularityRecommender,
    as_id_index,
    check_interactions,
)

__all__ = [
    "RANKING_METRICS",
    "RankingReport",
    "ValidationSearch",
    "evaluate_recommender",
    "paired_ranking_difference",
    "per_user_ranking_metrics",
    "ranking_metric_names",
    "select_on_validation",
]

RANKING_METRICS: Final = ("precision", "recall", "ndcg", "mrr", "hit", "map")
"""Per-user metrics, averaged over users; reported as ``<name>@<k>`` (plus ``coverage@<k>``)."""

FloatArray = npt.NDArray[np.float64]


def ranking_metric_names(k: Sequence[int]) -> list[str]:
    """The report's metric keys for the cut-offs ``k``: ``precision@5, ..., coverage@20``."""
    ks = _check_ks(k)
    return [f"{m}@{c}" for c in ks for m in (*RANKING_METRICS, "coverage")]


def _check_ks(k: int | Sequence[int]) -> tuple[int, ...]:
    values = (k,) if isinstance(k, int | np.integer) else tuple(k)
    bad = [c for c in values
           if isinstance(c, bool) or not isinstance(c, int | np.integer) or int(c) < 1]
    if not values or bad:
        raise ValueError(f"k must be one or more positive integers, got {k!r}")
    return tuple(sorted({int(c) for c in values}))


def per_user_ranking_metrics(hits: npt.ArrayLike, n_relevant: npt.ArrayLike,
                             k: int | Sequence[int]) -> dict[str, FloatArray]:
    """Per-user ranking metrics from a hit matrix (see the module docstring for definitions).

    Parameters
    ----------
    hits
        ``(n_users, K)`` booleans: is the item at rank ``i + 1`` relevant? ``K >= max(k)``;
        missing ranks (fewer items recommended) are False.
    n_relevant
        ``|R|`` per user, >= 1 and >= the hits of the row.
    k
        Cut-offs.

    Returns
    -------
    dict
        ``"<metric>@<k>"`` -> float array of length ``n_users``.

    Examples
    --------
    >>> m = per_user_ranking_metrics([[False, True, True]], [4], k=3)
    >>> round(float(m["map@3"][0]), 4), float(m["recall@3"][0]), float(m["mrr@3"][0])
    (0.3889, 0.5, 0.5)
    """
    h = np.asarray(hits, dtype=bool)
    n_rel = np.asarray(n_relevant, dtype=np.int64)
    ks = _check_ks(k)
    if h.ndim != 2 or n_rel.shape != (h.shape[0],):
        raise ValueError(f"hits must be (n_users, K) and n_relevant (n_users,); got "
                         f"{h.shape} and {n_rel.shape}")
    if h.shape[1] < ks[-1]:
        raise ValueError(f"hits has {h.shape[1]} ranks, fewer than k={ks[-1]}")
    found = h[:, :ks[-1]].sum(axis=1)
    if (n_rel < 1).any() or (found > n_rel).any():
        raise ValueError("n_relevant must be >= 1 and at least the number of hits of each user")
    discount = 1.0 / np.log2(np.arange(2, ks[-1] + 2))
    ideal = np.cumsum(discount)
    ranks = np.arange(1, ks[-1] + 1)
    hit_f = h[:, :ks[-1]].astype(np.float64)
    cum_hits = np.cumsum(hit_f, axis=1)
    precision_at_i = cum_hits / ranks
    first = np.where(h[:, :ks[-1]].any(axis=1), h[:, :ks[-1]].argmax(axis=1) + 1, 0)
    out: dict[str, FloatArray] = {}
    for c in ks:
        n_hit = cum_hits[:, c - 1]
        capped = np.minimum(c, n_rel)
        out[f"precision@{c}"] = n_hit / c
        out[f"recall@{c}"] = n_hit / n_rel
        out[f"ndcg@{c}"] = (hit_f[:, :c] @ discount[:c]) / ideal[capped - 1]
        out[f"mrr@{c}"] = np.where((first > 0) & (first <= c), 1.0 / np.maximum(first, 1), 0.0)
        out[f"hit@{c}"] = (n_hit > 0).astype(np.float64)
        out[f"map@{c}"] = (precision_at_i[:, :c] * hit_f[:, :c]).sum(axis=1) / capped
    return out


class RankingReport(EvaluationReport):
    """Ranking metrics of a recommender with bootstrap CIs, the baseline, and paired differences.

    Attributes
    ----------
    metrics, baselines
        Keyed ``precision@k``, ``recall@k``, ``ndcg@k``, ``mrr@k``, ``hit@k``, ``map@k``,
        ``coverage@k``; baselines are the popularity recommender's (or the given baseline's)
        on the same users and resamples.
    differences
        ``metric(model) - metric(baseline)`` per metric, paired over the same resamples.
    k
        The cut-offs.
    n_items
        Catalogue size (items known to the model), the denominator of coverage.
    n_cold_users
        Evaluated users absent from the training interactions (scored by the fallback).
    per_user, baseline_per_user
        Per-user metrics (index ``user_id``; columns the per-user metric keys, plus
        ``n_relevant`` and ``cold``), for paired comparisons with
        :func:`paired_ranking_difference`. Not serialised (one row per user).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    kind: Literal["ranking"] = "ranking"
    k: list[int]
    confidence: float = 0.95
    n_items: int
    n_cold_users: int
    exclude_seen: bool = True
    baseline_name: str | None = None
    differences: dict[str, PairedDifference] = Field(default_factory=dict)
    per_user: pd.DataFrame | None = Field(default=None, exclude=True, repr=False)
    baseline_per_user: pd.DataFrame | None = Field(default=None, exclude=True, repr=False)

    def summary(self) -> pd.DataFrame:
        """One row per metric: value and CI, the baseline, and the paired difference's CI."""
        rows = []
        for name, m in self.metrics.items():
            base = self.baselines.get(name)
            diff = self.differences.get(name)
            rows.append({
                "metric": name, "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high,
                "baseline": base.value if base else np.nan,
                "difference": diff.value if diff else np.nan,
                "difference_ci_low": diff.ci_low if diff else np.nan,
                "difference_ci_high": diff.ci_high if diff else np.nan,
            })
        return pd.DataFrame(rows).set_index("metric")


@dataclass(frozen=True)
class _Ranked:
    """One model's per-user metrics and its top-k incidence per cut-off."""

    per_user: pd.DataFrame
    incidence: dict[int, sp.csr_matrix]
    n_items: int


def _pairs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["user_id", "item_id"]].drop_duplicates(ignore_index=True)


def _relevant_pairs(train: pd.DataFrame, test: pd.DataFrame, exclude_seen: bool) -> pd.DataFrame:
    pairs = _pairs(test)
    if exclude_seen:
        flagged = pairs.merge(_pairs(train), on=["user_id", "item_id"], how="left",
                              indicator=True)
        pairs = flagged.loc[flagged["_merge"] == "left_only", ["user_id", "item_id"]]
    return pairs.reset_index(drop=True)


def _rank(model: BaseRecommender, users: pd.Index, relevant: pd.DataFrame,
          train: pd.DataFrame, ks: tuple[int, ...], exclude_seen: bool,
          user_groups: Any) -> _Ranked:
    recs = model.recommend(users, k=ks[-1], exclude_seen=False,
                           exclude=_pairs(train) if exclude_seen else None,
                           user_groups=user_groups)
    flagged = recs.merge(relevant, on=["user_id", "item_id"], how="left",
                         indicator=True)
    is_hit = (flagged["_merge"] == "both").to_numpy(dtype=bool)
    row = users.get_indexer(pd.Index(recs["user_id"].array, tupleize_cols=False))
    rank = recs["rank"].to_numpy()
    hits = np.zeros((len(users), ks[-1]), dtype=bool)
    hits[row, rank - 1] = is_hit
    n_rel = np.bincount(users.get_indexer(pd.Index(relevant["user_id"].array,
                                                   tupleize_cols=False)),
                        minlength=len(users))
    metrics = per_user_ranking_metrics(hits, n_rel, ks)
    per_user = pd.DataFrame(metrics, index=users.rename("user_id"))
    per_user["n_relevant"] = n_rel
    per_user["cold"] = model.user_index_.get_indexer(users) < 0
    item = model.item_index_.get_indexer(pd.Index(recs["item_id"].array, tupleize_cols=False))
    incidence = {
        c: sp.csr_matrix((np.ones(int((rank <= c).sum())), (row[rank <= c], item[rank <= c])),
                         shape=(len(users), model.n_items_))
        for c in ks
    }
    return _Ranked(per_user=per_user, incidence=incidence, n_items=model.n_items_)


def _replicates(ranked: Sequence[_Ranked], names: Sequence[str], ks: tuple[int, ...],
                n_bootstrap: int, seed: int) -> list[dict[str, FloatArray]]:
    """Bootstrap replicates of every metric of every model, on the same user resamples."""
    n_users = len(ranked[0].per_user)
    values = [r.per_user[list(names)].to_numpy(dtype=np.float64) for r in ranked]
    parts: list[dict[str, list[FloatArray]]] = [
        {name: [] for name in (*names, *(f"coverage@{c}" for c in ks))} for _ in ranked]
    with single_threaded_blas():
        for counts in resample_counts(n_users, n_bootstrap, seed):
            weights = counts.astype(np.float64)
            for r, v, part in zip(ranked, values, parts, strict=True):
                means = weights @ v / n_users
                for j, name in enumerate(names):
                    part[name].append(means[:, j])
                for c in ks:
                    reached = np.asarray(r.incidence[c].T @ weights.T) > 0
                    part[f"coverage@{c}"].append(reached.sum(axis=0) / max(r.n_items, 1))
    return [{name: np.concatenate(chunks) if chunks else np.zeros(0)
             for name, chunks in part.items()} for part in parts]


def _point(r: _Ranked, names: Sequence[str], ks: tuple[int, ...]) -> dict[str, float]:
    point = {name: float(r.per_user[name].mean()) for name in names}
    for c in ks:
        reached = np.unique(r.incidence[c].indices).size
        point[f"coverage@{c}"] = reached / max(r.n_items, 1)
    return point


def _difference(name: str, a: float, b: float, replicates: FloatArray, confidence: float,
                n_bootstrap: int, seed: int) -> PairedDifference:
    base = estimate(f"{name}_difference", a - b, replicates, confidence=confidence)
    return PairedDifference(**base.model_dump(), metric=name, value_a=a, value_b=b,
                            n_bootstrap=n_bootstrap, seed=seed)


def evaluate_recommender(
    model: BaseRecommender,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int | Sequence[int] = (5, 10, 20),
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    baseline: BaseRecommender | Literal["popularity"] | None = "popularity",
    exclude_seen: bool = True,
    user_groups: Any = None,
    family: str = "recs",
    keep_replicates: bool = True,
) -> RankingReport:
    """Evaluate a fitted recommender by full ranking on held-out interactions.

    Every user with at least one relevant test item is evaluated; each gets a ranking of all
    the items the model knows, with their ``train`` items left out when ``exclude_seen``.

    Parameters
    ----------
    model
        A recommender fitted on ``train`` (or on data ending where ``train`` ends).
    train, test
        Interaction frames (``user_id, item_id``, ...): the training history (what is left out
        of the rankings) and the held-out interactions (what counts as relevant). For an
        out-of-time split, ``train`` holds the events up to the cut-off and ``test`` those
        after it. The report's ``overlap`` records how many test interactions repeat a
        training interaction in full (the columns both frames have: user, item, and weight
        and ``timestamp`` when present; see
        :func:`~barberpro_ml.evaluation.check_overlap`): without a timestamp, a repeat visit
        to the same barber cannot be told from a copied row.
    k
        Cut-offs.
    n_bootstrap, seed, confidence
        Bootstrap over users: resamples, seed and interval level.
    baseline
        ``"popularity"`` (a :class:`~barberpro_ml.models.recs.PopularityRecommender` fitted on
        ``train`` with the same ``user_groups``), a fitted recommender, or None.
    exclude_seen
        Leave each user's training items out of their ranking and of their relevant set.
    user_groups
        ``user_id -> group`` for the fallback of users unseen in ``train``.
    family
        Model family recorded in the report.
    keep_replicates
        Keep the bootstrap replicates in the report (the gates need them).

    Returns
    -------
    RankingReport
        Metrics ``<metric>@<k>`` with CIs, the baseline's, their paired differences, and the
        per-user metrics.

    Raises
    ------
    ValueError
        When no test user has a relevant item, or a frame is malformed.

    Examples
    --------
    >>> from barberpro_ml.models.recs import ItemKNNRecommender
    >>> train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": list("abab") + ["a"]})
    >>> test = pd.DataFrame({"user_id": [3], "item_id": ["b"]})
    >>> model = ItemKNNRecommender(shrink=0).fit(train)
    >>> report = evaluate_recommender(model, train, test, k=1, n_bootstrap=0)
    >>> report.metric("hit@1").value
    1.0
    """
    check_is_fitted(model, "item_index_")
    ks = _check_ks(k)
    train = check_interactions(train, "train")
    test = check_interactions(test, "test")
    relevant = _relevant_pairs(train, test, exclude_seen)
    if relevant.empty:
        raise NotEnoughDataError("test: no user has a test item outside their training "
                                 "items; nothing to evaluate")
    users = as_id_index(relevant["user_id"].array, "test user_id")
    # Interaction frames may differ in optional columns (weight, timestamp): compare the shared.
    shared = [c for c in test.columns if c in train.columns]
    ids, times = identifying_columns(test[shared])
    overlap = check_overlap(train[shared], test[shared], ids, times)
    names = [f"{m}@{c}" for c in ks for m in RANKING_METRICS]
    ranked = [_rank(model, users, relevant, train, ks, exclude_seen, user_groups)]
    baseline_name: str | None = None
    if baseline is not None:
        if isinstance(baseline, str):
            if baseline != "popularity":
                raise ValueError(f"baseline must be 'popularity', a fitted recommender or None; "
                                 f"got {baseline!r}")
            baseline = PopularityRecommender().fit(train, user_groups=user_groups)
        check_is_fitted(baseline, "item_index_")
        baseline_name = type(baseline).__name__
        ranked.append(_rank(baseline, users, relevant, train, ks, exclude_seen, user_groups))
    replicates = _replicates(ranked, names, ks, n_bootstrap, seed)
    points = [_point(r, names, ks) for r in ranked]
    all_names = [f"{m}@{c}" for c in ks for m in (*RANKING_METRICS, "coverage")]

    def estimates(i: int) -> dict[str, MetricEstimate]:
        return {name: estimate(name, points[i][name], replicates[i][name],
                               confidence=confidence, keep_replicates=keep_replicates)
                for name in all_names}

    differences = {} if len(ranked) < 2 else {
        name: _difference(name, points[0][name], points[1][name],
                          replicates[0][name] - replicates[1][name], confidence,
                          n_bootstrap, seed)
        for name in all_names}
    per_user = ranked[0].per_user
    n_cold = int(per_user["cold"].sum())
    unknown_items = int((model.item_index_.get_indexer(
        pd.Index(relevant["item_id"].array, tupleize_cols=False)) < 0).sum())
    notes = [
        f"{len(users)} users evaluated ({n_cold} unseen in training, scored by the popularity "
        f"fallback); full ranking over {model.n_items_} items"
        + (", training items excluded" if exclude_seen else ""),
        f"{len(relevant)} relevant (user, item) pairs; {unknown_items} on items unknown to the "
        f"model (they count as misses)",
    ]
    return RankingReport(
        family=family, n=len(users), metrics=estimates(0),
        baselines=estimates(1) if len(ranked) > 1 else {},
        slices=_slices(per_user, names, n_bootstrap, seed, confidence, keep_replicates),
        n_bootstrap=n_bootstrap, seed=seed, notes=notes, k=list(ks), confidence=confidence,
        n_items=model.n_items_, n_cold_users=n_cold, exclude_seen=exclude_seen,
        baseline_name=baseline_name, differences=differences, per_user=per_user,
        baseline_per_user=ranked[1].per_user if len(ranked) > 1 else None, overlap=overlap,
    )


def _slices(per_user: pd.DataFrame, names: Sequence[str], n_bootstrap: int, seed: int,
            confidence: float, keep_replicates: bool) -> list[SliceReport]:
    """Metrics of users seen in training (``warm``) and unseen (``cold``), bootstrapped apart."""
    out = []
    for level, mask in (("warm", ~per_user["cold"]), ("cold", per_user["cold"])):
        subset = per_user.loc[mask.to_numpy(dtype=bool), list(names)].to_numpy(np.float64)
        if len(subset) == 0:
            continue
        reps: list[FloatArray] = []
        with single_threaded_blas():
            for counts in resample_counts(len(subset), n_bootstrap, seed):
                reps.append(counts @ subset / len(subset))
        stacked = np.concatenate(reps) if reps else np.zeros((0, len(names)))
        metrics = {name: estimate(name, float(subset[:, j].mean()), stacked[:, j],
                                  confidence=confidence, keep_replicates=keep_replicates)
                   for j, name in enumerate(names)}
        out.append(SliceReport(dimension="user_history", level=level, n=len(subset),
                               metrics=metrics))
    return out


def paired_ranking_difference(
    per_user_a: pd.Series | npt.ArrayLike, per_user_b: pd.Series | npt.ArrayLike,
    n_bootstrap: int = 1000, seed: int = 0, *, confidence: float = 0.95,
    name: str = "metric",
) -> PairedDifference:
    """Paired bootstrap of ``mean(a) - mean(b)`` over the same users.

    Parameters
    ----------
    per_user_a, per_user_b
        One metric per user for two models on the same users, e.g.
        ``report.per_user["ndcg@10"]`` and ``report.baseline_per_user["ndcg@10"]``. Series are
        aligned on their index (which must hold the same users); arrays must be in the same
        order.
    n_bootstrap, seed, confidence
        Resamples of users, their seed and the interval level. With the seed of the reports,
        replicate ``i`` uses the same users as replicate ``i`` of the reports' metrics.
    name
        The metric's name (recorded in the result).

    Returns
    -------
    PairedDifference
        The difference, its interval and replicates; a gate requires ``ci_low > 0``.

    Examples
    --------
    >>> a, b = np.array([1.0, 0.5, 1.0, 0.0]), np.array([0.5, 0.5, 0.0, 0.0])
    >>> diff = paired_ranking_difference(a, b, n_bootstrap=200, name="ndcg@10")
    >>> diff.value, diff.ci_low >= 0
    (0.375, True)
    """
    if isinstance(per_user_a, pd.Series) and isinstance(per_user_b, pd.Series):
        if len(per_user_a) != len(per_user_b) or not per_user_a.index.isin(
                per_user_b.index).all():
            raise ValueError("per_user_a and per_user_b must hold the same users")
        per_user_b = per_user_b.reindex(per_user_a.index)
    a = np.asarray(per_user_a, dtype=np.float64)
    b = np.asarray(per_user_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"per-user metrics must be two non-empty 1-d arrays of one length; got "
                         f"shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-user metrics must be finite")
    diff = a - b
    with single_threaded_blas():
        parts = [counts @ diff / len(diff) for counts in resample_counts(len(diff), n_bootstrap,
                                                                         seed)]
    replicates = np.concatenate(parts) if parts else np.zeros(0)
    return _difference(name, float(a.mean()), float(b.mean()), replicates, confidence,
                       n_bootstrap, seed)


@dataclass(frozen=True)
class ValidationSearch:
    """Result of :func:`select_on_validation`.

    Attributes
    ----------
    param, best_value, metric
        The parameter searched, the value chosen and the metric it maximised.
    table
        One row per value tried: the value and the metric on validation.
    model
        A clone of the model with ``best_value``, fitted on the training data.
    """

    param: str
    best_value: Any
    metric: str
    table: pd.DataFrame
    model: BaseRecommender


def select_on_validation(
    model: BaseRecommender, train: pd.DataFrame, validation: pd.DataFrame, param: str,
    values: Sequence[Any], *, metric: str = "ndcg@10", exclude_seen: bool = True,
    user_groups: Any = None,
) -> ValidationSearch:
    """Choose one hyper-parameter (e.g. EASE's ``l2``) by a ranking metric on validation data.

    Each value is set on a clone of ``model``, fitted on ``train`` and evaluated on
    ``validation`` (point estimates, no bootstrap); the largest metric wins (ties: the first
    value listed). For an out-of-time search, ``train`` ends where ``validation`` starts, and the
    final model is refitted on all the data up to the test cut-off with the value chosen.

    Examples
    --------
    >>> from barberpro_ml.models.recs import EASERecommender
    >>> train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": list("abab") + ["a"]})
    >>> valid = pd.DataFrame({"user_id": [3], "item_id": ["b"]})
    >>> search = select_on_validation(EASERecommender(), train, valid, "l2", [1.0, 10.0],
    ...                               metric="hit@1")
    >>> search.table["hit@1"].tolist()
    [1.0, 1.0]
    """
    if not values:
        raise ValueError("values: give at least one value to try")
    cut = int(metric.rsplit("@", 1)[1]) if "@" in metric else 0
    if metric.split("@")[0] not in (*RANKING_METRICS, "coverage") or cut < 1:
        raise ValueError(f"metric must look like 'ndcg@10' with one of {RANKING_METRICS}; "
                         f"got {metric!r}")
    rows = []
    best: tuple[float, Any, BaseRecommender] | None = None
    for value in values:
        candidate = clone(model).set_params(**{param: value})
        candidate.fit(train, user_groups=user_groups)
        report = evaluate_recommender(candidate, train, validation, k=cut, n_bootstrap=0,
                                      baseline=None, exclude_seen=exclude_seen,
                                      user_groups=user_groups, keep_replicates=False)
        score = report.metric(metric).value
        rows.append({param: value, metric: score})
        if best is None or score > best[0]:
            best = (score, value, candidate)
    assert best is not None
    return ValidationSearch(param=param, best_value=best[1], metric=metric,
                            table=pd.DataFrame(rows), model=best[2])
