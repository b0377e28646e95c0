"""Customer segments: RFM scores with marketers' named segments, and stable behavioural clusters.

Two complementary views of the same customer-features frame
(:func:`barberpro_ml.features.customer_features`):

RFM
---
Recency, frequency and monetary value scored 1 (worst) to ``n_quantiles`` (best) against the
quantiles of a training population [1]_ [2]_:

- **R** = ``days_since_last_visit`` (lower is better).
- **F** = ``n_visits`` (completed visits so far), not ``visits_365d``: the named segments
  below cross recency with *historical* frequency ("can't lose them": frequent, but long ago;
  "new": recent, but not often). A count over the last year makes every long-absent customer
  infrequent by construction, so R and F would measure the same thing: on the default
  simulation at 2024-06-30, F = ``visits_365d`` left "new" and "promising" empty and
  "cannot_lose" with 119 customers, against 159, 206 and 239 with ``n_visits``. The price is
  that F also grows with tenure; the clusters below use the yearly rate instead.
- **M** = ``spend_per_visit``, not ``spend_365d``: yearly spend is F times ticket size and would
  mostly repeat F; the mean ticket is the monetary dimension the BTYD literature uses
  (average transaction value, [2]_) and separates premium-service customers from frequent ones.

Scores are mid-rank quantiles: a value's score is ``1 + floor(n_quantiles * p)`` with ``p``
the share of training customers below it plus half of those equal to it. Tied values (most
customers have one of a few visit counts) therefore always share a score, whatever their
number; a value holding many quantiles' worth of customers makes its score skip levels rather
than split the tie. The edges (:class:`RFMEdges`) are learned once, so a single customer is
scored against the training population. Customers without a visit score 0 on all three and
are in segment ``no_visits``.

The named segments follow the common 11-segment RFM table (Champions, Loyal Customers,
Potential Loyalists, New/Recent Customers, Promising, Needs Attention, About to Sleep, At Risk,
Can't Lose Them, Hibernating, Lost) used by marketing tools such as Putler [3]_. Putler's table
gives overlapping score ranges on R and the mean of F and M; here it is in the deterministic
R x F grid common in open-source RFM analyses, with "lost" the bottom corner of hibernating
(M is reported but does not name)::

             F=1                 F=2                  F=3                  F=4          F=5
    R=5  new                 potential_loyalists  potential_loyalists  champions    champions
    R=4  promising           potential_loyalists  potential_loyalists  loyal        loyal
    R=3  about_to_sleep      about_to_sleep       needs_attention      loyal        loyal
    R=2  hibernating         hibernating          at_risk              at_risk      cannot_lose
    R=1  lost                hibernating          at_risk              at_risk      cannot_lose

With ``n_quantiles != 5`` scores are mapped to the nearest of five levels before naming.

Behavioural clusters
--------------------
:class:`CustomerSegmenter` clusters customers with a visit on a handful of behaviour columns
(:data:`DEFAULT_CLUSTER_FEATURES`: how often, how much, how recently, how regularly, how loyal
to one barber, how discount-driven, how reliable, how varied): missing values (the gap of a
one-visit customer) are imputed with the training median, counts, money and day spans are
``log1p``-transformed (they are right-skewed; a ratio in [0, 1] is not), everything is
standardised, and k-means [4]_ (``k`` by the silhouette [5]_ on a seeded sample) or a Gaussian
mixture (``k`` by BIC [6]_) is fitted. Customers without a visit are not clustered: every
behaviour column is undefined for them, and an imputed profile would put them, all alike, into
whichever cluster sits nearest the medians. They get the reserved cluster
:data:`NO_VISITS_CLUSTER` (-1, named ``no_visits``).

Cluster ids are stable across retrains: ``fit(X, previous=old)`` maps ``old``'s centroids
back to original units and into the new scaled space, and matches them to the new centroids
with the Hungarian algorithm [7]_; a matched cluster keeps its id, a new one gets an id never
used before. Without ``previous``, ids are 0, 1, ... by cluster size (largest first), and rows
are put in a canonical order before fitting, so the same customers give the same ids whatever
the row order.

References
----------
.. [1] Hughes, A. M. (1994). *Strategic Database Marketing*. Probus (RFM quintile scoring).
.. [2] Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: Using iso-value curves
   for customer base analysis. *Journal of Marketing Research* 42(4), 415-430.
.. [3] Putler. RFM analysis for successful customer segmentation (the 11 segments and their
   R / F score ranges). https://www.putler.com/rfm-analysis/
.. [4] Arthur, D. & Vassilvitskii, S. (2007). k-means++: The advantages of careful seeding.
   *SODA '07*, 1027-1035.
.. [5] Rousseeuw, P. J. (1987). Silhouettes: A graphical aid to the interpretation and
   validation of cluster analysis. *Journal of Computational and Applied Mathematics* 20,
   53-65.
.. [6] Schwarz, G. (1978). Estimating the dimension of a model. *Annals of Statistics* 6(2),
   461-464.
.. [7] Kuhn, H. W. (1955). The Hungarian method for the assignment problem. *Naval Research
   Logistics Quarterly* 2, 83-97.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.utils import TransformerTags
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from barberpro_ml.models._params import ValidatedEstimator, fit_context

__all__ = [
    "DEFAULT_CLUSTER_FEATURES",
    "NO_VISITS_CLUSTER",
    "RFM_COLUMNS",
    "RFM_SEGMENTS",
    "CustomerSegmenter",
    "RFMEdges",
    "cluster_agreement",
    "rfm_edges",
    "rfm_scores",
    "segment_profiles",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RFM_SEGMENTS: tuple[str, ...] = (
    "champions", "loyal", "potential_loyalists", "new", "promising", "needs_attention",
    "about_to_sleep", "at_risk", "cannot_lose", "hibernating", "lost", "no_visits",
)
"""Named RFM segments, in the order of the ``rfm_segment`` categories."""

RFM_COLUMNS: tuple[str, str, str] = ("days_since_last_visit", "n_visits", "spend_per_visit")
"""The R, F and M columns of the customer-features frame."""

DEFAULT_CLUSTER_FEATURES: tuple[str, ...] = (
    "visits_365d", "spend_per_visit", "days_since_last_visit", "gap_mean_days",
    "main_provider_share", "discount_share", "cancel_rate", "n_services_used",
)
"""Behaviour columns clustered by default (see the module docstring)."""

NO_VISITS_CLUSTER: Final = -1
"""Cluster id of customers without a completed visit."""

_NO_VISITS: Final = "no_visits"

# The R x F grid of the module docstring, rows R = 1..5, columns F = 1..5.
_GRID_NAMES: Final = (
    ("lost", "hibernating", "at_risk", "at_risk", "cannot_lose"),
    ("hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose"),
    ("about_to_sleep", "about_to_sleep", "needs_attention", "loyal", "loyal"),
    ("promising", "potential_loyalists", "potential_loyalists", "loyal", "loyal"),
    ("new", "potential_loyalists", "potential_loyalists", "champions", "champions"),
)
_GRID: Final = np.full((6, 6), RFM_SEGMENTS.index(_NO_VISITS), dtype=np.int8)
for _r, _row in enumerate(_GRID_NAMES, start=1):
    for _f, _name in enumerate(_row, start=1):
        _GRID[_r, _f] = RFM_SEGMENTS.index(_name)

# Words for a centroid far above / below the mean on a column; other columns get "high x".
_WORDS: Final = {
    "visits_365d": ("frequent", "infrequent"),
    "n_visits": ("many visits", "few visits"),
    "spend_per_visit": ("high spend", "low spend"),
    "spend_365d": ("high yearly spend", "low yearly spend"),
    "days_since_last_visit": ("long absent", "recent"),
    "gap_mean_days": ("long gaps", "short gaps"),
    "gap_cv": ("irregular", "regular"),
    "main_provider_share": ("loyal to one barber", "tries many barbers"),
    "discount_share": ("discount-driven", "pays full price"),
    "cancel_rate": ("often cancels", "rarely cancels"),
    "no_show_rate": ("often no-show", "rarely no-show"),
    "n_services_used": ("many services", "few services"),
    "tenure_days": ("long-standing", "recent signup"),
}
_NAME_MIN_Z: Final = 0.3  # a centroid closer than this to the mean says nothing about a column

# Columns log1p-transformed when non-negative at fit: counts, money and day spans.
_LOG_NAMES: Final = frozenset({"n_visits", "n_bookings", "spend_total", "spend_per_visit",
                               "discount_total", "n_services_used", "n_reviews",
                               "n_interventions", "n_offers", "tenure_days"})
_LOG_PREFIXES: Final = ("visits_", "spend_", "days_since_", "gap_mean", "gap_std")

_PROFILE_COLUMNS: Final = ("days_since_last_visit", "visits_365d", "spend_per_visit",
                           "spend_365d", "tenure_days")
_PROFILE_MEDIANS: Final = ("days_since_last_visit", "visits_365d", "spend_per_visit",
                           "spend_365d")
_MAX_EXAMPLES: Final = 5
_K_MARGIN_SILHOUETTE: Final = 0.02
"""A retrain keeps the previous k unless another k's silhouette is higher by more than this."""
_K_MARGIN_BIC: Final = 10.0
"""... or its BIC lower by more than this: "very strong" evidence (Kass & Raftery, 1995)."""
_SILHOUETTE_CELLS: Final = 2**22  # distances held at once (16 MB of float32)


# ---------------------------------------------------------------------------- RFM

@dataclass(frozen=True)
class RFMEdges:
    """Score edges learned from a training population (see :func:`rfm_edges`).

    A value's score is one plus the number of edges it reaches: ``recency <= edge`` for
    ``recency`` (days, non-increasing edges: lower recency is better), ``value >= edge`` for
    ``frequency`` and ``monetary`` (non-decreasing). Equal edges are kept (a tie spanning
    several quantiles skips scores); an unreachable edge is ``inf`` (``-inf`` for recency).

    Parameters
    ----------
    recency, frequency, monetary
        ``n_quantiles - 1`` edges each, for ``days_since_last_visit``, ``visits_365d`` and
        ``spend_per_visit``.
    n_quantiles
        Number of score levels.
    n_customers
        Training customers with a visit the edges were learned from.
    """

    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]
    n_quantiles: int
    n_customers: int


def _check_n_quantiles(n_quantiles: object) -> int:
    if (isinstance(n_quantiles, bool) or not isinstance(n_quantiles, int | np.integer)
            or not 2 <= int(n_quantiles) <= 100):
        raise ValueError(f"n_quantiles: expected an integer between 2 and 100, got "
                         f"{n_quantiles!r}")
    return int(n_quantiles)


def _require(frame: object, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame (customer_features output), got "
                        f"{type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it needs {list(columns)} "
                         "(columns of barberpro_ml.features.customer_features)")
    for c in columns:
        if not (pd.api.types.is_numeric_dtype(frame[c].dtype)
                and not pd.api.types.is_bool_dtype(frame[c].dtype)):
            raise ValueError(f"{what}: column {c!r} must be numeric, got {frame[c].dtype}")
    return frame


def _numeric(frame: pd.DataFrame, columns: Sequence[str]) -> FloatArray:
    return np.asarray(frame.loc[:, list(columns)].to_numpy(dtype=np.float64, na_value=np.nan),
                      dtype=np.float64).reshape(len(frame), len(columns))


def _rfm_values(features: pd.DataFrame, what: str) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """R, F, M as an (n, 3) array and whether each customer has a visit."""
    _require(features, RFM_COLUMNS, what)
    values = _numeric(features, RFM_COLUMNS)
    visited = ~np.isnan(values[:, 0])
    bad = visited[:, None] & ~np.isfinite(values)
    if bad.any():
        column = RFM_COLUMNS[int(np.flatnonzero(bad.any(axis=0))[0])]
        rows = features.index[np.flatnonzero(bad.any(axis=1))][:_MAX_EXAMPLES].tolist()
        raise ValueError(f"{what}: {int(bad.any(axis=1).sum())} customer(s) with a visit "
                         f"(days_since_last_visit set) have a missing or infinite "
                         f"{column!r} (e.g. customer_id {rows}); R, F and M must all be "
                         "defined once a customer has visited")
    return values, visited


def _learn_edges(values: FloatArray, n_quantiles: int) -> tuple[float, ...]:
    """Edges on a higher-is-better value by mid-rank quantiles (see the module docstring)."""
    unique, counts = np.unique(values, return_counts=True)
    below = np.cumsum(counts) - counts
    midrank = (below + 0.5 * counts) / len(values)
    levels = np.arange(1, n_quantiles) / n_quantiles
    # A tolerance so that a mid-rank of exactly k/n (computed in floating point) reaches it.
    idx = np.searchsorted(midrank, levels - 1e-12, side="left")
    edges = np.where(idx < len(unique), unique[np.minimum(idx, len(unique) - 1)], np.inf)
    return tuple(float(e) for e in edges)


def rfm_edges(features: pd.DataFrame, n_quantiles: int = 5) -> RFMEdges:
    """Learn RFM score edges from the customers with a visit in ``features``.

    Parameters
    ----------
    features
        A :func:`~barberpro_ml.features.customer_features` frame (any frame with
        :data:`RFM_COLUMNS`).
    n_quantiles
        Score levels (default 5: quintiles).

    Returns
    -------
    RFMEdges

    Raises
    ------
    ValueError
        Missing columns, no customer with a visit, or undefined F/M for a visited customer.

    Examples
    --------
    >>> edges = rfm_edges(customer_features(data, "2024-06-30"))      # doctest: +SKIP
    >>> rfm_scores(customer_features(data, "2024-07-31"), edges)      # doctest: +SKIP
    """
    n_q = _check_n_quantiles(n_quantiles)
    values, visited = _rfm_values(features, "features")
    if not visited.any():
        raise ValueError(f"features: none of the {len(features)} customer(s) has a visit "
                         "(days_since_last_visit is NaN on every row); RFM edges need visits")
    v = values[visited]
    return RFMEdges(
        recency=tuple(-e for e in _learn_edges(-v[:, 0], n_q)),
        frequency=_learn_edges(v[:, 1], n_q),
        monetary=_learn_edges(v[:, 2], n_q),
        n_quantiles=n_q,
        n_customers=int(visited.sum()),
    )


def _score(values: FloatArray, edges: tuple[float, ...], lower_is_better: bool) -> IntArray:
    e = np.asarray(edges, dtype=np.float64)
    if lower_is_better:
        # Edges are non-increasing; count those >= value via the negated, sorted edges.
        reached = np.searchsorted(-e, -values, side="right")
    else:
        reached = np.searchsorted(e, values, side="right")
    return np.asarray(1 + reached, dtype=np.int64)


def _rfm_frame(values: FloatArray, visited: npt.NDArray[np.bool_], edges: RFMEdges,
               index: pd.Index) -> pd.DataFrame:
    n = len(values)
    scores = np.zeros((n, 3), dtype=np.int64)
    v = values[visited]
    scores[visited, 0] = _score(v[:, 0], edges.recency, lower_is_better=True)
    scores[visited, 1] = _score(v[:, 1], edges.frequency, lower_is_better=False)
    scores[visited, 2] = _score(v[:, 2], edges.monetary, lower_is_better=False)
    n_q = edges.n_quantiles
    # Nearest of five levels, so the 5 x 5 grid names any number of quantiles.
    five = np.where(scores > 0, 1 + np.floor((scores - 0.5) * 5 / n_q).astype(np.int64), 0)
    segment = _GRID[five[:, 0], five[:, 1]]
    return pd.DataFrame({
        "r_score": scores[:, 0],
        "f_score": scores[:, 1],
        "m_score": scores[:, 2],
        "rfm_segment": pd.Categorical.from_codes(segment,
                                                 categories=pd.Index(RFM_SEGMENTS)),
    }, index=index)


def rfm_scores(features: pd.DataFrame, edges: RFMEdges | None = None,
               n_quantiles: int = 5) -> pd.DataFrame:
    """RFM scores and named segment of every customer in ``features``.

    Parameters
    ----------
    features
        A :func:`~barberpro_ml.features.customer_features` frame (any frame with
        :data:`RFM_COLUMNS`; other columns are ignored).
    edges
        Edges learned on a training population (:func:`rfm_edges`,
        ``CustomerSegmenter.rfm_edges_``); learned from ``features`` itself when ``None``.
    n_quantiles
        Score levels when learning edges here; with ``edges`` given, the edges' own
        ``n_quantiles`` applies.

    Returns
    -------
    pandas.DataFrame
        Same index as ``features``; ``r_score``, ``f_score``, ``m_score`` (int64, 1 to
        ``n_quantiles``, higher is better, 0 without a visit) and ``rfm_segment``
        (categorical with the categories :data:`RFM_SEGMENTS`).

    Raises
    ------
    ValueError
        Missing or non-numeric columns, undefined F/M for a customer with a visit, or (when
        learning edges) no customer with a visit.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> X = pd.DataFrame({"days_since_last_visit": [5.0, 200.0, np.nan],
    ...                   "n_visits": [12, 1, 0], "spend_per_visit": [40.0, 25.0, np.nan]})
    >>> rfm_scores(X, n_quantiles=2)[["r_score", "f_score", "m_score"]].to_numpy().tolist()
    [[2, 2, 2], [1, 1, 1], [0, 0, 0]]

    On the marketplace's features:

    >>> X = customer_features(data, "2024-06-30")                       # doctest: +SKIP
    >>> rfm_scores(X)["rfm_segment"].value_counts()                     # doctest: +SKIP
    """
    if edges is None:
        edges = rfm_edges(features, n_quantiles)
    elif not isinstance(edges, RFMEdges):
        raise TypeError(f"edges: expected RFMEdges, got {type(edges).__name__}")
    values, visited = _rfm_values(features, "features")
    return _rfm_frame(values, visited, edges, features.index)


# ---------------------------------------------------------------------------- clustering

def _silhouettes(Z: FloatArray, labelings: Sequence[IntArray]) -> list[float]:
    """Mean silhouette [5]_ of several labelings of the same points, in one distance pass.

    The distance matrix is computed chunk by chunk once; each point's summed distance to every
    cluster of every labeling is one matrix product with the stacked one-hot memberships.
    Distances are float32, which halves the time; scores differ from scikit-learn's
    ``silhouette_score`` by 1.7e-7 at most on the default data (5,000 rows, six labelings),
    while the selection compares scores that differ in the second decimal. Points alone
    in their cluster score 0, as in scikit-learn.
    """
    points = np.asarray(Z, dtype=np.float32)
    m = len(points)
    sizes = [int(lab.max()) + 1 for lab in labelings]
    offsets = np.cumsum([0, *sizes])
    onehot = np.zeros((m, int(offsets[-1])), dtype=np.float32)
    rows = np.arange(m)
    counts = []
    for lab, off in zip(labelings, offsets[:-1], strict=True):
        onehot[rows, off + lab] = 1.0
        counts.append(np.bincount(lab, minlength=int(lab.max()) + 1).astype(np.float64))
    sq = np.einsum("ij,ij->i", points, points)
    totals = np.zeros(len(labelings))
    chunk = max(64, _SILHOUETTE_CELLS // max(m, 1))
    for start in range(0, m, chunk):
        block = points[start:start + chunk]
        inside = np.arange(len(block))
        d = block @ points.T
        d *= -2.0
        d += sq[None, :]
        d += sq[start:start + len(block), None]
        np.maximum(d, 0.0, out=d)
        np.sqrt(d, out=d)
        sums = (d @ onehot).astype(np.float64)
        for i, (lab, off, cnt) in enumerate(zip(labelings, offsets[:-1], counts, strict=True)):
            own = lab[start:start + len(block)]
            s = sums[:, off:off + len(cnt)]
            n_own = cnt[own]
            a = s[inside, own] / np.maximum(n_own - 1, 1)
            other = np.divide(s, cnt, out=np.full_like(s, np.inf), where=cnt > 0)
            other[inside, own] = np.inf
            b = other.min(axis=1)
            sil = np.where(n_own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
            totals[i] += float(sil.sum())
    return [float(t / m) for t in totals]


def _is_log_column(name: str) -> bool:
    return name in _LOG_NAMES or name.startswith(_LOG_PREFIXES)


def _name_cluster(z: FloatArray, features: Sequence[str]) -> str:
    order = np.argsort(-np.abs(z), kind="stable")[:2]
    words = []
    for j in order:
        if abs(z[j]) < _NAME_MIN_Z:
            continue
        high, low = _WORDS.get(features[j], (f"high {features[j]}", f"low {features[j]}"))
        words.append(high if z[j] > 0 else low)
    return ", ".join(words) if words else "typical"


class CustomerSegmenter(ValidatedEstimator):
    """RFM scores plus behavioural clusters whose ids stay stable across retrains.

    See the module docstring (:mod:`barberpro_ml.models.segments`) for the choices and
    references.

    Parameters
    ----------
    cluster_features
        Numeric columns of ``X`` to cluster on (default :data:`DEFAULT_CLUSTER_FEATURES`).
    method
        ``"kmeans"`` (k-means++ [4]_, 10 initialisations: with 4, one seed in eight landed
        in a worse optimum on the default data at 2024-03-28, inertia 72,406 against 69,606;
        ``k`` by silhouette) or ``"gmm"`` (full-covariance Gaussian mixture, 2
        initialisations; ``k`` by BIC).
    k_values
        Candidate numbers of clusters (each >= 2).
    n_quantiles
        RFM score levels.
    max_selection_rows
        The choice of ``k`` is made on a seeded sample of at most this many customers (the
        silhouette costs the square of the sample size: 0.05 s for 5,000 rows, 0.58 s for
        15,696, six candidate k on one core); the final model is then fitted on all of them.
        When refitting with ``previous``, its ``k`` is kept unless another is clearly better
        (silhouette higher by more than 0.02, or BIC lower by more than 10).
    random_state
        Seed of the sample and of the clustering.

    Attributes
    ----------
    rfm_edges_ : RFMEdges
        RFM score edges of the training population.
    n_clusters_ : int
        Clusters chosen (customers without a visit excluded).
    selection_scores_ : dict[int, float]
        Silhouette (k-means, higher is better) or BIC (GMM, lower is better) of each ``k``.
    cluster_ids_ : numpy.ndarray
        Stable id of each internal cluster.
    matched_to_previous_ : dict[int, int | None]
        Stable id -> the ``previous`` model's id it continues, or ``None`` for a new cluster
        (all ``None`` when fitted without ``previous``).
    next_cluster_id_ : int
        The smallest id never issued in this model's lineage.
    cluster_names_ : dict[int, str]
        Stable id -> short description from the centroid (unique; includes
        ``-1: "no_visits"``).
    cluster_centers_ : pandas.DataFrame
        Centroids in original units (after imputation), indexed by stable id.
    cluster_sizes_ : dict[int, int]
        Training customers per stable id (including ``-1``).
    impute_values_, log_columns_, mean_, scale_
        The preprocessing learned at fit.
    model_ : KMeans or GaussianMixture
        The fitted clustering of the standardised features.
    n_features_in_ : int
        Number of cluster features.

    Examples
    --------
    Two kinds of customers, regulars and rare visitors, clustered on two behaviour columns:

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> regular = rng.random(300) < 0.5
    >>> X = pd.DataFrame({
    ...     "days_since_last_visit": np.where(regular, rng.exponential(15, 300),
    ...                                       rng.exponential(90, 300)),
    ...     "n_visits": np.where(regular, rng.poisson(12, 300), rng.poisson(2, 300)) + 1,
    ...     "spend_per_visit": rng.gamma(4.0, 8.0, 300)})
    >>> seg = CustomerSegmenter(cluster_features=["n_visits", "days_since_last_visit"],
    ...                         k_values=[2, 3]).fit(X)
    >>> seg.n_clusters_, seg.cluster_names_[1]
    (2, 'many visits, recent')
    >>> seg.transform(X.head(2))[["rfm_segment", "cluster", "cluster_name"]]
       rfm_segment  cluster             cluster_name
    0  hibernating        0  few visits, long absent
    1    champions        1      many visits, recent

    On the marketplace's features, refitted a month later with the previous ids kept:

    >>> X = customer_features(data, "2024-06-30")                       # doctest: +SKIP
    >>> seg = CustomerSegmenter().fit(X)                                # doctest: +SKIP
    >>> later = CustomerSegmenter().fit(customer_features(data, "2024-07-30"),
    ...                                 previous=seg)                   # doctest: +SKIP
    >>> seg.transform(X).head()                                         # doctest: +SKIP
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "cluster_features": ["array-like"],
        "method": [StrOptions({"kmeans", "gmm"})],
        "k_values": ["array-like"],
        "n_quantiles": [Interval(Integral, 2, 100, closed="both")],
        "max_selection_rows": [Interval(Integral, 50, None, closed="left")],
        "random_state": [Interval(Integral, 0, 2**32 - 1, closed="both")],
    }

    rfm_edges_: RFMEdges
    n_clusters_: int
    selection_scores_: dict[int, float]
    cluster_ids_: IntArray
    matched_to_previous_: dict[int, int | None]
    next_cluster_id_: int
    cluster_names_: dict[int, str]
    cluster_centers_: pd.DataFrame
    cluster_sizes_: dict[int, int]
    impute_values_: FloatArray
    log_columns_: tuple[str, ...]
    mean_: FloatArray
    scale_: FloatArray
    model_: Any
    n_features_in_: int

    def __init__(self, *, cluster_features: Sequence[str] = DEFAULT_CLUSTER_FEATURES,
                 method: Literal["kmeans", "gmm"] = "kmeans",
                 k_values: Sequence[int] = (3, 4, 5, 6, 7, 8), n_quantiles: int = 5,
                 max_selection_rows: int = 20_000, random_state: int = 0) -> None:
        self.cluster_features = cluster_features
        self.method = method
        self.k_values = k_values
        self.n_quantiles = n_quantiles
        self.max_selection_rows = max_selection_rows
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.requires_fit = True
        tags.transformer_tags = TransformerTags(preserves_dtype=[])  # transform: a DataFrame
        return tags

    # ----------------------------------------------------------------- parameters and input

    def _more_param_problems(self, invalid: set[str]) -> list[str]:
        problems = []
        features = self.cluster_features
        if "cluster_features" in invalid:
            pass
        elif not isinstance(features, Sequence | np.ndarray) or len(features) == 0 \
                or not all(isinstance(f, str) for f in features):
            problems.append(f"cluster_features must be a non-empty sequence of column names, "
                            f"got {features!r}")
        elif len(set(features)) != len(features):
            problems.append(f"cluster_features has duplicates: {list(features)}")
        ks: Any = self.k_values
        if "k_values" in invalid:
            pass
        elif not isinstance(ks, Sequence | np.ndarray) or len(ks) == 0 or not all(
                isinstance(k, int | np.integer) and not isinstance(k, bool) and int(k) >= 2
                for k in ks):
            problems.append(f"k_values must be a non-empty sequence of integers >= 2, "
                            f"got {ks!r}")
        elif len(set(ks)) != len(ks):
            problems.append(f"k_values has duplicates: {list(ks)}")
        return problems

    def _columns(self) -> list[str]:
        return list(dict.fromkeys([*self.cluster_features, *RFM_COLUMNS]))

    def _unscaled(self, X: FloatArray) -> FloatArray:
        """Imputed and log-transformed cluster features (rows with a visit)."""
        Z = np.where(np.isnan(X), self.impute_values_, X)
        mask = self._log_mask
        if mask.any():
            # Negative values in a column non-negative at fit are clipped, not turned to NaN.
            Z[:, mask] = np.log1p(np.maximum(Z[:, mask], 0.0))
        return np.asarray(Z, dtype=np.float64)

    def _prepared(self, X: FloatArray) -> FloatArray:
        """Imputed, log-transformed, standardised cluster features (rows with a visit)."""
        Z = self._unscaled(X)
        Z -= self.mean_
        Z /= self.scale_
        return Z

    def _to_original(self, Z: FloatArray) -> FloatArray:
        """Standardised points back to original units (the inverse of :meth:`_prepared`)."""
        out = Z * self.scale_ + self.mean_
        out[:, self._log_mask] = np.expm1(out[:, self._log_mask])
        return np.asarray(out, dtype=np.float64)

    @property
    def _log_mask(self) -> npt.NDArray[np.bool_]:
        return np.array([c in self.log_columns_ for c in self.cluster_features], dtype=bool)

    def _internal(self, Z: FloatArray) -> IntArray:
        if self.method == "kmeans":
            centers = self.model_.cluster_centers_
            d2 = (np.einsum("ij,ij->i", Z, Z)[:, None] - 2.0 * Z @ centers.T
                  + np.einsum("ij,ij->i", centers, centers)[None, :])
            return np.asarray(np.argmin(d2, axis=1), dtype=np.int64)
        return np.asarray(self.model_.predict(Z), dtype=np.int64)

    def _read(self, X: pd.DataFrame, what: str) -> tuple[FloatArray, npt.NDArray[np.bool_],
                                                         FloatArray]:
        frame = _require(X, self._columns(), what)
        rfm, visited = _rfm_values(frame, what)
        values = _numeric(frame, list(self.cluster_features))
        inf = np.isinf(values)
        if inf.any():
            col = list(self.cluster_features)[int(np.flatnonzero(inf.any(axis=0))[0])]
            raise ValueError(f"{what}: {int(inf.any(axis=1).sum())} row(s) with an infinite "
                             f"value in {col!r} (e.g. index "
                             f"{frame.index[np.flatnonzero(inf.any(axis=1))][:_MAX_EXAMPLES].tolist()})")
        return values, visited, rfm

    # ----------------------------------------------------------------- fit

    @fit_context
    def fit(self, X: pd.DataFrame, y: None = None, *,
            previous: CustomerSegmenter | None = None) -> CustomerSegmenter:
        """Learn RFM edges and the clusters; keep ``previous``'s ids where clusters persist.

        Parameters
        ----------
        X
            A :func:`~barberpro_ml.features.customer_features` frame (extra columns are
            ignored; rows are customers).
        y
            Ignored.
        previous
            A fitted segmenter with the same ``cluster_features`` whose cluster ids to keep.

        Returns
        -------
        CustomerSegmenter
            self, fitted.

        Raises
        ------
        ValueError
            Invalid parameters, missing or non-numeric columns, too few customers with a visit
            for the smallest ``k``, or an incompatible ``previous``.
        """
        features = tuple(self.cluster_features)
        ks = tuple(sorted(int(k) for k in self.k_values))
        if previous is not None:
            if not isinstance(previous, CustomerSegmenter):
                raise TypeError(f"previous: expected a CustomerSegmenter, got "
                                f"{type(previous).__name__}")
            check_is_fitted(previous, "cluster_ids_")
            if tuple(previous.cluster_features) != features:
                raise ValueError(
                    f"previous was fitted on cluster_features {list(previous.cluster_features)}"
                    f", this segmenter uses {list(features)}; their clusters live in different"
                    " spaces and cannot be matched")
        values, visited, _ = self._read(X, "X")
        n_visited = int(visited.sum())
        if n_visited <= ks[0]:
            raise ValueError(f"X has {n_visited} customer(s) with a visit; clustering into "
                             f"k={ks[0]} (the smallest of k_values) needs more than that")
        self.rfm_edges_ = rfm_edges(X, self.n_quantiles)
        self.n_features_in_ = len(features)

        # A canonical row order (by index, then values) so that the seeded sample and the
        # k-means initialisation, hence the clusters, do not depend on the input row order.
        rows = np.flatnonzero(visited)
        index_codes = pd.factorize(X.index[rows], sort=True)[0]
        keys = [np.nan_to_num(values[rows, j], nan=np.inf) for j in range(len(features))][::-1]
        rows = rows[np.lexsort([*keys, index_codes])]
        M = values[rows]

        nan_cols = [features[j] for j in range(len(features)) if np.isnan(M[:, j]).all()]
        if nan_cols:
            raise ValueError(f"X: column(s) {nan_cols} are missing for all {n_visited} "
                             "customers with a visit; nothing to impute them from")
        self.impute_values_ = np.nanmedian(M, axis=0)
        self.log_columns_ = tuple(f for j, f in enumerate(features)
                                  if _is_log_column(f) and np.nanmin(M[:, j]) >= 0)
        unscaled = self._unscaled(M)
        self.mean_ = unscaled.mean(axis=0)
        std = unscaled.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        Z = (unscaled - self.mean_) / self.scale_

        rng = np.random.default_rng(int(self.random_state))
        n_sample = min(len(Z), int(self.max_selection_rows))
        sample = np.sort(rng.choice(len(Z), size=n_sample, replace=False))
        candidates = [k for k in ks if k < n_sample]
        if not candidates:
            raise ValueError(f"k_values {list(ks)} are all >= the {n_sample} customers of "
                             "the selection sample")
        # One thread: these fits take a fraction of a second single-threaded, and OpenMP
        # workers spinning against other processes on a shared machine made them 40x slower
        # (8.5 s instead of 0.2 s for the six k-means fits, measured on 2 busy cores).
        with threadpool_limits(limits=1):
            models, scores = self._candidates(Z[sample], candidates)
            best = self._choose_k(scores, previous)
            self.model_ = (models[best] if n_sample == len(Z)
                           else self._estimator(best).fit(Z))
        self.selection_scores_ = scores
        self.n_clusters_ = best
        internal = self._internal(Z)
        sizes = np.bincount(internal, minlength=best)
        centers = np.asarray(self.model_.cluster_centers_ if self.method == "kmeans"
                             else self.model_.means_, dtype=np.float64)
        self._assign_ids(centers, sizes, previous)
        stable = self.cluster_ids_[internal]
        self.cluster_sizes_ = {int(i): int((stable == i).sum()) for i in self.cluster_ids_}
        self.cluster_sizes_[NO_VISITS_CLUSTER] = int(len(visited) - n_visited)
        self.cluster_centers_ = pd.DataFrame(self._to_original(centers), columns=list(features),
                                             index=pd.Index(self.cluster_ids_, name="cluster")
                                             ).sort_index()
        self._name_clusters(centers)
        return self

    def _choose_k(self, scores: dict[int, float], previous: CustomerSegmenter | None) -> int:
        """The best-scoring k; a retrain keeps ``previous``'s k unless another is clearly better.

        Without this hysteresis, k flips between near-equal scores from one retrain to the
        next and every flip merges or splits clusters, whatever the id matching does.
        """
        sign = 1.0 if self.method == "kmeans" else -1.0  # silhouette up, BIC down
        best = max(scores, key=lambda k: (sign * scores[k], -k))
        if previous is not None and previous.n_clusters_ in scores:
            kept = previous.n_clusters_
            margin = _K_MARGIN_SILHOUETTE if self.method == "kmeans" else _K_MARGIN_BIC
            if sign * (scores[best] - scores[kept]) <= margin:
                return kept
        return best

    def _estimator(self, k: int) -> Any:
        if self.method == "kmeans":
            return KMeans(n_clusters=k, n_init=10, random_state=int(self.random_state))
        # reg_covar in standardised units: discrete columns (shares of exactly 0 or 1) would
        # otherwise grow components of near-zero variance on single values.
        return GaussianMixture(n_components=k, covariance_type="full", n_init=2,
                               reg_covar=1e-2, random_state=int(self.random_state))

    def _candidates(self, Z: FloatArray, ks: Sequence[int]) -> tuple[dict[int, Any],
                                                                       dict[int, float]]:
        models = {k: self._estimator(k).fit(Z) for k in ks}
        if self.method == "kmeans":
            labels = [np.asarray(models[k].labels_, dtype=np.int64) for k in ks]
            scores = dict(zip(ks, _silhouettes(Z, labels), strict=True))
        else:
            scores = {k: float(models[k].bic(Z)) for k in ks}
        return models, scores

    def _assign_ids(self, centers: FloatArray, sizes: IntArray,
                    previous: CustomerSegmenter | None) -> None:
        k = len(centers)
        # Largest first; ties by the centroid's coordinates, so the order is total.
        keys = [*[centers[:, j] for j in range(centers.shape[1] - 1, -1, -1)], -sizes]
        by_size = np.lexsort(keys)
        ids = np.full(k, -1, dtype=np.int64)
        matched: dict[int, int | None] = {}
        next_id = 0
        if previous is not None:
            old_original = previous._to_original(previous._old_centers())
            old_here = self._prepared(old_original)
            cost = np.sqrt(((centers[:, None, :] - old_here[None, :, :]) ** 2).sum(axis=2))
            new_idx, old_idx = linear_sum_assignment(cost)
            for i, j in zip(new_idx.tolist(), old_idx.tolist(), strict=True):
                ids[i] = int(previous.cluster_ids_[j])
                matched[int(ids[i])] = int(ids[i])
            next_id = int(previous.next_cluster_id_)
        for i in by_size.tolist():
            if ids[i] < 0:
                ids[i] = next_id
                matched[next_id] = None
                next_id += 1
        self.cluster_ids_ = ids
        self.matched_to_previous_ = dict(sorted(matched.items()))
        self.next_cluster_id_ = max(next_id, int(ids.max()) + 1)

    def _old_centers(self) -> FloatArray:
        return np.asarray(self.model_.cluster_centers_ if self.method == "kmeans"
                          else self.model_.means_, dtype=np.float64)

    def _name_clusters(self, centers: FloatArray) -> None:
        names: dict[int, str] = {}
        for i in np.argsort(self.cluster_ids_).tolist():
            names[int(self.cluster_ids_[i])] = _name_cluster(centers[i], self.cluster_features)
        seen: dict[str, int] = {}
        for cid, name in names.items():
            if name in seen or name == _NO_VISITS:
                names[cid] = f"{name} ({cid})"
            seen.setdefault(name, cid)
        names[NO_VISITS_CLUSTER] = _NO_VISITS
        self.cluster_names_ = dict(sorted(names.items()))

    # ----------------------------------------------------------------- predict / transform

    def predict(self, X: pd.DataFrame) -> IntArray:
        """Stable cluster id of each row (:data:`NO_VISITS_CLUSTER` without a visit).

        Parameters
        ----------
        X
            A frame with the cluster features and :data:`RFM_COLUMNS` (extra columns,
            including categoricals, are ignored).

        Returns
        -------
        numpy.ndarray
            int64 ids, one per row.
        """
        check_is_fitted(self, "cluster_ids_")
        values, visited, _ = self._read(X, "X")
        return self._predict_values(values, visited)

    def _predict_values(self, values: FloatArray, visited: npt.NDArray[np.bool_]) -> IntArray:
        out = np.full(len(values), NO_VISITS_CLUSTER, dtype=np.int64)
        if visited.any():
            Z = self._prepared(values[visited])
            out[visited] = self.cluster_ids_[self._internal(Z)]
        return out

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """RFM scores and segment, stable cluster id and cluster name of each row.

        Returns
        -------
        pandas.DataFrame
            Same index as ``X``: ``r_score``, ``f_score``, ``m_score``, ``rfm_segment`` (as
            :func:`rfm_scores` with the training edges), ``cluster`` (int64) and
            ``cluster_name`` (categorical over :attr:`cluster_names_`).
        """
        check_is_fitted(self, "cluster_ids_")
        values, visited, rfm = self._read(X, "X")
        frame = _rfm_frame(rfm, visited, self.rfm_edges_, X.index)
        cluster = self._predict_values(values, visited)
        ids = np.fromiter(self.cluster_names_.keys(), dtype=np.int64)
        codes = np.searchsorted(ids, cluster)
        frame["cluster"] = cluster
        frame["cluster_name"] = pd.Categorical.from_codes(
            codes, categories=pd.Index(list(self.cluster_names_.values())))
        return frame

    def fit_transform(self, X: pd.DataFrame, y: None = None, *,
                      previous: CustomerSegmenter | None = None) -> pd.DataFrame:
        """``fit(X, previous=previous).transform(X)``."""
        return self.fit(X, previous=previous).transform(X)


# ---------------------------------------------------------------------------- reports

def segment_profiles(X: pd.DataFrame, segments: pd.Series, *,
                     extra: Mapping[str, pd.Series] | None = None) -> pd.DataFrame:
    """One row per segment: size, share and the typical recency, frequency, spend and tenure.

    Parameters
    ----------
    X
        A :func:`~barberpro_ml.features.customer_features` frame.
    segments
        The segment of each customer of ``X`` (e.g. ``rfm_segment``, ``cluster_name`` or a
        lifecycle ``stage``), indexed like ``X``.
    extra
        More per-customer values to average per segment (e.g. churn probability, predicted
        LTV), each indexed by ``X``'s customers; NaN values are left out of the mean.

    Returns
    -------
    pandas.DataFrame
        Indexed by segment value (observed values only), sorted by ``n_customers``
        descending: ``n_customers``, ``share``, ``<column>_mean`` for
        ``days_since_last_visit``, ``visits_365d``, ``spend_per_visit``, ``spend_365d``,
        ``tenure_days``, ``<column>_median`` for the first four (skewed), and
        ``<name>_mean`` for each ``extra``. Recency statistics are over the customers with
        a visit (NaN for a segment without any).

    Raises
    ------
    ValueError
        Missing columns, or ``segments`` / an ``extra`` series not covering ``X``'s
        customers.

    Examples
    --------
    >>> seg = CustomerSegmenter().fit(X)                                # doctest: +SKIP
    >>> segment_profiles(X, seg.transform(X)["rfm_segment"],
    ...                  extra={"churn_probability": p})                # doctest: +SKIP
    """
    _require(X, _PROFILE_COLUMNS, "X")

    def aligned(series: pd.Series, what: str) -> pd.Series:
        if not isinstance(series, pd.Series):
            raise TypeError(f"{what}: expected a pandas Series indexed like X, got "
                            f"{type(series).__name__}")
        if series.index.equals(X.index):
            return series
        if series.index.has_duplicates:
            raise ValueError(f"{what}: its index has duplicate labels; index it by customer")
        missing = X.index.difference(series.index)
        if len(missing):
            raise ValueError(f"{what} has no value for {len(missing)} of X's {len(X)} "
                             f"customer(s) (e.g. {missing[:_MAX_EXAMPLES].tolist()})")
        return series.reindex(X.index)

    labels = aligned(segments, "segments")
    if labels.isna().any():
        raise ValueError(f"segments: {int(labels.isna().sum())} customer(s) have no segment "
                         f"(e.g. {X.index[labels.isna().to_numpy()][:_MAX_EXAMPLES].tolist()})")
    data = {c: X[c].astype("float64") for c in _PROFILE_COLUMNS}
    for name, series in (extra or {}).items():
        values = aligned(series, f"extra[{name!r}]")
        if not pd.api.types.is_numeric_dtype(values.dtype):
            raise ValueError(f"extra[{name!r}] must be numeric, got {values.dtype}")
        data[f"__extra__{name}"] = values.astype("float64")
    frame = pd.DataFrame(data, index=X.index)
    grouped = frame.groupby(labels.to_numpy(), observed=True, sort=True)
    out = pd.DataFrame({"n_customers": grouped.size().astype(np.int64)})
    out["share"] = out["n_customers"] / max(len(X), 1)
    means = grouped.mean()
    medians = grouped[list(_PROFILE_MEDIANS)].median()
    for c in _PROFILE_COLUMNS:
        out[f"{c}_mean"] = means[c]
    for c in _PROFILE_MEDIANS:
        out[f"{c}_median"] = medians[c]
    for name in extra or {}:
        out[f"{name}_mean"] = means[f"__extra__{name}"]
    out.index.name = segments.name if isinstance(segments.name, str) else "segment"
    return out.sort_values("n_customers", ascending=False, kind="stable")


def cluster_agreement(a: npt.ArrayLike, b: npt.ArrayLike) -> dict[str, float]:
    """How far two labelings of the same customers agree.

    Parameters
    ----------
    a, b
        Cluster ids of the same customers, in the same order.

    Returns
    -------
    dict
        ``adjusted_rand``: the adjusted Rand index (Hubert & Arabie, 1985), 1 for the same
        partition whatever the ids, about 0 for chance; ``matched_share``: share of customers
        with the same id in both - 1 only when the ids themselves are stable.

    Examples
    --------
    >>> cluster_agreement([0, 0, 1, 1], [1, 1, 0, 0])
    {'adjusted_rand': 1.0, 'matched_share': 0.0}
    """
    x, y = np.asarray(a), np.asarray(b)
    if x.ndim != 1 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"a and b must be non-empty 1-D arrays of the same length, got "
                         f"shapes {x.shape} and {y.shape}")
    return {"adjusted_rand": float(adjusted_rand_score(x, y)),
            "matched_share": float(np.mean(x == y))}
