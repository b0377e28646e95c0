"""The scoring API: the champion models, combined into one profile per customer.

:class:`CustomerScorer` loads the registered champion of each family once -- churn
(``barberpro-churn``), lifetime value (``barberpro-ltv``, with the BG/NBD parameters of its
run for the probability alive), recommendations (``barberpro-recs``) and segments
(``barberpro-segments``) -- resolving each alias to a version it reports (:attr:`models`), and
scores customers from the event data at any ``as_of``:

- :meth:`~CustomerScorer.score_frame`: one flat row per customer, vectorised and chunked (a
  million customers in one call, with a progress callback); the Parquet output of
  ``barberpro-ml score``.
- :meth:`~CustomerScorer.profile` / :meth:`~CustomerScorer.profile_batch`: the same numbers as
  :class:`~barberpro_ml.scoring.records.CustomerProfile` records (pydantic, JSON-ready), for
  one customer or hundreds per call.

Features are built by :func:`~barberpro_ml.features.customer_features`, the code the models were
trained with, once per ``(data, as_of)`` (:func:`~barberpro_ml.scoring.snapshot.build_snapshot`,
cached for the last few cut-offs); the models then run on the requested rows only. Each model's
feature schema (the columns and dtypes it was trained on, stored with it) is checked against
the snapshot when the snapshot is built: a mismatch is refused with
:class:`FeatureSchemaError` naming the model, its version and the columns. The numbers are
those of the registered pyfunc models: churn and LTV go through the same
:class:`~barberpro_ml.registry.EstimatorModel.predict`, the barbers through
:class:`~barberpro_ml.registry.RecommenderModel.predict` (barbers who have left by ``as_of`` are
then dropped), segments through the registered segmenter.
"""

from __future__ import annotations

import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import InputError, UnverifiedChampionError
from barberpro_ml.features._common import to_as_of
from barberpro_ml.models.clv import BetaGeoModel, BetaGeoParams
from barberpro_ml.registry.binding import verify_champion
from barberpro_ml.registry.models import CLV_PARAMS_ARTIFACT, EstimatorModel, ModelInputError
from barberpro_ml.registry.promotion import CHAMPION, load_champion
from barberpro_ml.registry.recs_model import RecommenderModel
from barberpro_ml.scoring.actions import OfferPolicy, _actions
from barberpro_ml.scoring.reasons import churn_reasons
from barberpro_ml.scoring.records import (
    BarberSuggestion,
    ChurnRisk,
    CustomerProfile,
    CustomerRecommendations,
    CustomerValue,
    LifecycleInfo,
    ModelRef,
    Reason,
    RecommendedAction,
    SegmentInfo,
    ServiceSuggestion,
)
from barberpro_ml.scoring.snapshot import CustomerSnapshot, UnknownCustomerError, build_snapshot

__all__ = ["DEFAULT_MODEL_NAMES", "CustomerScorer", "FeatureSchemaError", "UnknownCustomerError"]

DEFAULT_MODEL_NAMES: dict[str, str] = {
    "churn": "barberpro-churn", "ltv": "barberpro-ltv", "recs": "barberpro-recs",
    "segments": "barberpro-segments",
}
RISK_BANDS: tuple[float, float] = (0.3, 0.6)
_SNAPSHOTS_KEPT = 4

Progress = Callable[[int, int], None]


class FeatureSchemaError(InputError):
    """The features built from the data do not match what a registered model was trained on."""


def _ref_label(ref: ModelRef) -> str:
    return f"{ref.name} v{ref.version} (@{ref.alias})"


class CustomerScorer:
    """Profiles and scores of customers from the champion churn, LTV, recs and segment models.

    Build it with :meth:`from_registry` (the usual way) or from in-memory pyfunc wrappers
    (tests, notebooks).

    Parameters
    ----------
    churn, ltv, segments
        :class:`~barberpro_ml.registry.EstimatorModel` wrappers (churn: probability of the
        positive class; LTV and segments: ``predict``).
    recs
        :class:`~barberpro_ml.registry.RecommenderModel` of barbers.
    bgnbd
        Fitted :class:`~barberpro_ml.models.BetaGeoModel` (time unit: weeks) for the
        probability alive.
    models
        What was loaded, per family (reported by :meth:`versions` and ``/health``).
    risk_bands
        Churn probabilities at which the band turns ``medium`` and ``high``.
    n_reasons, n_barbers
        Reasons and barbers per profile.
    offer_policy
        The action rules (:mod:`barberpro_ml.scoring.actions`).
    n_jobs
        Threads the boosted models predict with (set on the loaded estimators). 1 by default:
        a request is a few rows, where thread start-up and contention cost more than they
        save; a service scales with workers. Raise it for large :meth:`score_frame` runs.

    Examples
    --------
    >>> scorer = CustomerScorer.from_registry()                         # doctest: +SKIP
    >>> scorer.versions()                                               # doctest: +SKIP
    {'barberpro-churn': '3', 'barberpro-ltv': '2', 'barberpro-recs': '2', ...}
    >>> [p.churn.probability for p in scorer.profile(data, [42], "2024-12-31")]  # doctest: +SKIP
    """

    def __init__(self, *, churn: EstimatorModel, ltv: EstimatorModel, recs: RecommenderModel,
                 segments: EstimatorModel, bgnbd: BetaGeoModel,
                 models: dict[str, ModelRef] | None = None,
                 risk_bands: tuple[float, float] = RISK_BANDS, n_reasons: int = 3,
                 n_barbers: int = 3, offer_policy: OfferPolicy | None = None,
                 n_jobs: int = 1) -> None:
        for family, wrapper, kind in (("churn", churn, EstimatorModel),
                                      ("ltv", ltv, EstimatorModel),
                                      ("segments", segments, EstimatorModel),
                                      ("recs", recs, RecommenderModel)):
            if not isinstance(wrapper, kind) or getattr(wrapper, "spec", None) is None:
                raise TypeError(f"{family}: expected a loaded {kind.__name__}, got "
                                f"{type(wrapper).__name__}")
        if not 0 < risk_bands[0] < risk_bands[1] < 1:
            raise ValueError(f"risk_bands must be two increasing probabilities in (0, 1), got "
                             f"{risk_bands}")
        for name, value in (("n_reasons", n_reasons), ("n_barbers", n_barbers)):
            if not 1 <= value <= 20:
                raise ValueError(f"{name} must be in [1, 20], got {value}")
        self.churn = churn
        self.ltv = ltv
        self.recs = recs
        self.segments = segments
        self.bgnbd = bgnbd
        self.models = dict(models or {})
        self.risk_bands = risk_bands
        self.n_reasons = n_reasons
        self.n_barbers = n_barbers
        self.offer_policy = offer_policy or OfferPolicy()
        self.n_jobs = n_jobs
        for wrapper in (churn, ltv):
            _set_threads(wrapper.estimator, n_jobs)
        self._snapshots: OrderedDict[tuple[int, pd.Timestamp],
                                     tuple[weakref.ref[MarketplaceData], CustomerSnapshot]] = \
            OrderedDict()
        self._populations: OrderedDict[pd.Timestamp, tuple[CustomerSnapshot, pd.DataFrame]] = \
            OrderedDict()
        self._ends: dict[int, tuple[weakref.ref[MarketplaceData], pd.Timestamp]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------- loading
    @classmethod
    def from_registry(cls, tracking_uri: str | None = None, alias: str = CHAMPION, *,
                      names: dict[str, str] | None = None, **kwargs: Any) -> CustomerScorer:
        """Load the ``alias`` version of every family's registered model, once.

        Parameters
        ----------
        tracking_uri
            Tracking/registry server (default: the current one, ``MLFLOW_TRACKING_URI``...).
        alias
            Registry alias to resolve (``champion``); each alias is resolved once, to the
            version reported by :meth:`versions`.
        names
            Registered model name per family, overriding :data:`DEFAULT_MODEL_NAMES`.
        kwargs
            Passed to the constructor (``risk_bands``, ``n_reasons``...).

        Raises
        ------
        LookupError
            A family has no such alias (names the model and what to run).
        UnverifiedChampionError
            A ``champion`` that did not get there through the gate and
            :func:`~barberpro_ml.registry.promote` (see
            :func:`~barberpro_ml.registry.verify_champion`; names every problem).
        TypeError
            A registered model is not the kind of pyfunc model the scorer expects.
        """
        names = {**DEFAULT_MODEL_NAMES, **(names or {})}
        uri = tracking_uri or mlflow.get_tracking_uri()
        loaded: dict[str, Any] = {}
        refs: dict[str, ModelRef] = {}
        for family in ("churn", "ltv", "recs", "segments"):
            try:
                model, mv = load_champion(names[family], alias=alias, tracking_uri=uri)
            except LookupError as exc:
                raise LookupError(f"{exc}; train it with `barberpro-ml train {family}` (or "
                                  "`barberpro-ml pipeline`)") from None
            verified = None
            if alias == CHAMPION:
                check = verify_champion(names[family], tracking_uri=uri)
                if not check.verified or check.version != str(mv.version):
                    raise UnverifiedChampionError(
                        check.describe() if not check.verified else
                        f"{names[family]} @champion moved from v{mv.version} to "
                        f"v{check.version} while loading; load again")
                verified = True
            loaded[family] = model.unwrap_python_model()  # type: ignore[no-untyped-call]
            refs[family] = ModelRef(family=family, name=names[family], alias=alias,
                                    version=str(mv.version), run_id=mv.run_id,
                                    verified=verified)
        bgnbd = _load_bgnbd(refs["ltv"], uri)
        return cls(churn=loaded["churn"], ltv=loaded["ltv"], recs=loaded["recs"],
                   segments=loaded["segments"], bgnbd=bgnbd, models=refs, **kwargs)

    def versions(self) -> dict[str, str]:
        """Registered model name -> version, for every family loaded from the registry."""
        return {ref.name: ref.version for ref in self.models.values()}

    # ------------------------------------------------------------------------- snapshots
    def snapshot(self, data: MarketplaceData, as_of: object = None) -> CustomerSnapshot:
        """The :class:`CustomerSnapshot` of ``data`` at ``as_of`` (default: the data's last
        event), built once and kept for the last few cut-offs.

        Raises
        ------
        FeatureSchemaError
            The features do not match a model's training schema (names model and columns).
        """
        stamp = self._data_end(data) if as_of is None else to_as_of(as_of)
        key = (id(data), stamp)
        with self._lock:
            hit = self._snapshots.get(key)
            if hit is not None and hit[0]() is data:
                self._snapshots.move_to_end(key)
                return hit[1]
        snap = build_snapshot(data, stamp)
        self._check_schemas(snap.features)
        with self._lock:
            self._snapshots[key] = (weakref.ref(data), snap)
            while len(self._snapshots) > _SNAPSHOTS_KEPT:
                self._snapshots.popitem(last=False)
        return snap

    def _data_end(self, data: MarketplaceData) -> pd.Timestamp:
        """``data.observation_end``, remembered per data object (it scans every table)."""
        with self._lock:
            hit = self._ends.get(id(data))
            if hit is not None and hit[0]() is data:
                return hit[1]
        end = data.observation_end
        with self._lock:
            self._ends[id(data)] = (weakref.ref(data), end)
            while len(self._ends) > _SNAPSHOTS_KEPT:
                self._ends.pop(next(iter(self._ends)))
        return end

    def _check_schemas(self, features: pd.DataFrame) -> None:
        for family, wrapper in (("churn", self.churn), ("ltv", self.ltv),
                                ("segments", self.segments)):
            assert wrapper.spec is not None
            schema = wrapper.spec.features
            label = _ref_label(self.models[family]) if family in self.models else family
            missing = [c for c in schema.names if c not in features.columns]
            if missing:
                raise FeatureSchemaError(
                    f"the {family} model {label} was trained on {len(schema.names)} columns, "
                    f"{len(missing)} of which the feature builder does not produce: "
                    f"{missing[:10]}; retrain the model with this version of barberpro_ml")
            try:
                schema.prepare(features.head(50))
            except ModelInputError as exc:
                raise FeatureSchemaError(
                    f"the {family} model {label} does not accept the features built from the "
                    f"data: {exc}; retrain the model with this version of barberpro_ml"
                ) from None

    # ------------------------------------------------------------------------- scoring
    def score_frame(self, data: MarketplaceData, as_of: object = None,
                    customer_ids: Sequence[int] | np.ndarray | None = None, *,
                    reasons: bool = True, chunk_size: int = 100_000,
                    progress: Progress | None = None) -> pd.DataFrame:
        """Score customers at ``as_of``: one flat row each, vectorised.

        Parameters
        ----------
        data
            The validated event tables.
        as_of
            Cut-off (default: the data's last event).
        customer_ids
            Customers to score, in this order (default: every customer signed up by
            ``as_of``).
        reasons
            Phrase the churn reasons (``reason_1..k``); off saves a third of the time on
            millions of rows.
        chunk_size
            Rows per model call (bounds memory).
        progress
            Called with ``(rows done, rows total)`` after each chunk.

        Returns
        -------
        pandas.DataFrame
            Index ``customer_id``; columns ``as_of, churn_probability, risk_band,
            in_churn_population, reason_1..k [+ _group, _impact], expected_value_12m,
            probability_alive, rfm_segment, r_score, f_score, m_score, cluster, cluster_name,
            lifecycle_stage, lifecycle_reason, usual_gap_days, days_since_last_visit,
            n_visits, next_service_id, next_service, next_service_probability,
            recommended_barbers (list of provider ids), barber_scores, action, action_text,
            offer_expected_gain``.

        Raises
        ------
        UnknownCustomerError
            Ids that are not customers at ``as_of`` (all of them named, up to five shown).
        FeatureSchemaError
            See :meth:`snapshot`.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        snap = self.snapshot(data, as_of)
        positions = (np.arange(len(snap.features)) if customer_ids is None
                     else snap.positions(customer_ids))
        total = len(positions)
        parts = []
        for start in range(0, max(total, 1), chunk_size):
            chunk = positions[start:start + chunk_size]
            ids, cols = self._score_rows(snap, chunk, reasons=reasons)
            parts.append(pd.DataFrame(cols, index=ids))
            if progress is not None:
                progress(min(start + chunk_size, total), total)
        return pd.concat(parts) if len(parts) > 1 else parts[0]

    def population(self, data: MarketplaceData, as_of: object = None) -> pd.DataFrame:
        """:meth:`score_frame` of every customer at ``as_of`` without reasons, kept with the
        snapshot (the population views of :mod:`barberpro_ml.scoring.insights` read it)."""
        snap = self.snapshot(data, as_of)
        with self._lock:
            cached = self._populations.get(snap.as_of)
            if cached is not None and cached[0] is snap:
                return cached[1]
        scored = self.score_frame(data, snap.as_of, reasons=False)
        with self._lock:
            self._populations[snap.as_of] = (snap, scored)
            while len(self._populations) > _SNAPSHOTS_KEPT:
                self._populations.popitem(last=False)
        return scored

    def _score_rows(self, snap: CustomerSnapshot, positions: np.ndarray, *,
                    reasons: bool) -> tuple[pd.Index, dict[str, Any]]:
        """Every output column of the rows at ``positions``, as arrays (one model call per
        family for all of them)."""
        X = snap.features.iloc[positions]
        ids = X.index
        at = {name: values[positions] for name, values in snap.aligned.items()}
        churn = self.churn.predict(None, X)
        ltv = self.ltv.predict(None, X)
        assert self.segments.estimator is not None
        segments = self.segments.estimator.transform(X)
        low, high = self.risk_bands
        cols: dict[str, Any] = {
            "as_of": np.full(len(ids), snap.as_of.to_datetime64()),
            "churn_probability": churn,
            "risk_band": np.where(churn >= high, "high", np.where(churn >= low, "medium",
                                                                   "low")).astype(object),
            "in_churn_population": at["days_since_last_visit"] <= 180.0,
        }
        if reasons and len(ids):
            contributions = self.churn.estimator.feature_contributions(X)
            phrased = churn_reasons(contributions, X, k=self.n_reasons)
            cols |= {c: phrased[c].to_numpy() for c in phrased.columns}
        cols["expected_value_12m"] = ltv
        cols["probability_alive"] = self._probability_alive(at)
        for column in ("rfm_segment", "r_score", "f_score", "m_score", "cluster",
                       "cluster_name"):
            cols[column] = segments[column].to_numpy()
        for column in ("lifecycle_stage", "lifecycle_reason", "usual_gap_days",
                       "days_since_last_visit", "n_visits", "next_service_id", "next_service",
                       "next_service_probability"):
            cols[column] = at[column]
        cols["recommended_barbers"], cols["barber_scores"] = self._barbers(
            snap, ids, at["neighborhood"], self.n_barbers)
        cols |= _actions({**cols, "spend_per_visit": at["spend_per_visit"]},
                         snap.offer_effect, self.offer_policy, effect_note=snap.offer_effect_note)
        return ids, cols

    def _probability_alive(self, at: dict[str, np.ndarray]) -> np.ndarray:
        seen = ~np.isnan(at["frequency"])
        out = np.full(len(seen), np.nan)
        if seen.any():
            out[seen] = self.bgnbd.probability_alive(
                at["frequency"][seen], at["recency"][seen], at["T"][seen])
        return out

    def _barbers(self, snap: CustomerSnapshot, ids: pd.Index, neighborhoods: np.ndarray,
                 n: int) -> tuple[list[list[int]], list[list[float]]]:
        assert self.recs.spec is not None
        # Ask for a few more than needed: barbers who left after the model was trained are
        # dropped here, so the customer still gets n suggestions.
        k = min(n + 5, self.recs.spec.max_k)
        users = ids.to_numpy(dtype=np.int64)
        request = pd.DataFrame({"user_id": users, "k": np.full(len(ids), k, dtype=np.int64)})
        if self.recs.spec.group_column:
            request[self.recs.spec.group_column] = neighborhoods
        recs = self.recs.predict(None, request)
        user = recs["user_id"].to_numpy(dtype=np.int64)
        item = recs["item_id"].to_numpy(dtype=np.int64)
        score = recs["score"].to_numpy(dtype=np.float64)
        working = np.isin(item, snap.active_providers.to_numpy())
        user, item, score = user[working], item[working], score[working]
        # rows come grouped by user in request order, best first: keep each user's first n
        starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]]) if len(user) else \
            np.empty(0, dtype=np.int64)
        run = np.diff(np.r_[starts, len(user)])
        within = np.arange(len(user)) - np.repeat(starts, run)
        keep = within < n
        user, item, score = user[keep], item[keep], score[keep]
        bounds = np.flatnonzero(np.r_[True, user[1:] != user[:-1]]) if len(user) else \
            np.empty(0, dtype=np.int64)
        items_of = dict(zip(user[bounds].tolist(), np.split(item, bounds[1:]), strict=True))
        scores_of = dict(zip(user[bounds].tolist(), np.split(score, bounds[1:]), strict=True))
        return ([items_of[u].tolist() if u in items_of else [] for u in users.tolist()],
                [scores_of[u].tolist() if u in scores_of else [] for u in users.tolist()])

    def recommendations(self, data: MarketplaceData, customer_id: int, as_of: object = None,
                        *, k_barbers: int = 5) -> CustomerRecommendations:
        """Next services (up to three) and ``k_barbers`` barbers for one customer.

        Raises
        ------
        UnknownCustomerError
            When ``customer_id`` is not a customer at ``as_of``.
        ValueError
            ``k_barbers`` out of range.
        """
        assert self.recs.spec is not None
        if not 1 <= k_barbers <= self.recs.spec.max_k - 5:
            raise ValueError(f"k_barbers must be in [1, {self.recs.spec.max_k - 5}], got "
                             f"{k_barbers}")
        snap = self.snapshot(data, as_of)
        positions = snap.positions([customer_id])
        barbers, scores = self._barbers(snap, snap.features.index[positions],
                                        snap.aligned["neighborhood"][positions], k_barbers)
        services = snap.next_services.loc[snap.next_services["customer_id"] == customer_id]
        return CustomerRecommendations(
            customer_id=int(customer_id), as_of=snap.as_of.to_pydatetime(),
            next_services=[ServiceSuggestion(service_id=int(i), name=str(n), probability=float(p))
                           for i, n, p in zip(services["service_id"].tolist(),
                                              services["name"].tolist(),
                                              services["score"].tolist(), strict=True)],
            barbers=[BarberSuggestion(provider_id=b, score=sc, rank=i + 1)
                     for i, (b, sc) in enumerate(zip(barbers[0], scores[0], strict=True))],
            model_versions=self.versions())

    # ------------------------------------------------------------------------- profiles
    def profile(self, data: MarketplaceData, customer_ids: int | Sequence[int],
                as_of: object = None) -> list[CustomerProfile]:
        """Profiles of a few customers (one model call per family for all of them).

        Raises
        ------
        UnknownCustomerError
            For ids that are not customers at ``as_of``.
        """
        ids = [customer_ids] if isinstance(customer_ids, int | np.integer) else customer_ids
        return self.profile_batch(data, ids, as_of)

    def profile_batch(self, data: MarketplaceData, customer_ids: Sequence[int],
                      as_of: object = None) -> list[CustomerProfile]:
        """Profiles of many customers (hundreds per call), in request order.

        The same vectorised path as :meth:`score_frame`, turned into records.
        """
        snap = self.snapshot(data, as_of)
        ids, cols = self._score_rows(snap, snap.positions(customer_ids), reasons=True)
        return self._records(ids, cols)

    def to_profiles(self, frame: pd.DataFrame) -> list[CustomerProfile]:
        """Records of the rows of a :meth:`score_frame` result (with reasons)."""
        return self._records(frame.index, {c: frame[c].to_numpy() for c in frame.columns})

    def _records(self, ids: pd.Index, cols: dict[str, Any]) -> list[CustomerProfile]:
        versions = self.versions()
        reason_cols = [(f"reason_{i}", f"reason_{i}_group", f"reason_{i}_impact")
                       for i in range(1, self.n_reasons + 1) if f"reason_{i}" in cols]
        # plain Python values, column by column (one conversion per column, not per cell)
        c = {name: (values.tolist() if isinstance(values, np.ndarray) else list(values))
             for name, values in cols.items()}
        profiles = []
        for row, customer in enumerate(ids.tolist()):
            def at(name: str, row: int = row) -> Any:
                return c[name][row]

            service_id = at("next_service_id")
            alive, since, gain = (at("probability_alive"), at("days_since_last_visit"),
                                  at("offer_expected_gain"))
            profiles.append(CustomerProfile(
                customer_id=int(customer),
                as_of=pd.Timestamp(at("as_of")).to_pydatetime(),
                churn=ChurnRisk(
                    probability=at("churn_probability"), risk_band=at("risk_band"),
                    in_model_population=bool(at("in_churn_population")),
                    reasons=[Reason(group=str(at(g)), text=str(at(t)), impact=at(i),
                                    direction="raises" if at(i) > 0 else "lowers")
                             for t, g, i in reason_cols]),
                value=CustomerValue(expected_12m=at("expected_value_12m"),
                                    probability_alive=None if alive != alive else alive),
                segment=SegmentInfo(rfm_segment=str(at("rfm_segment")),
                                    r_score=int(at("r_score")), f_score=int(at("f_score")),
                                    m_score=int(at("m_score")), cluster=int(at("cluster")),
                                    cluster_name=str(at("cluster_name"))),
                lifecycle=LifecycleInfo(
                    stage=str(at("lifecycle_stage")), usual_gap_days=at("usual_gap_days"),
                    days_since_last_visit=None if since != since else since,
                    n_visits=int(at("n_visits")), reason=str(at("lifecycle_reason"))),
                next_service=None if service_id is None or service_id is pd.NA else
                ServiceSuggestion(service_id=int(service_id), name=str(at("next_service")),
                                  probability=at("next_service_probability")),
                barbers=[BarberSuggestion(provider_id=p, score=sc, rank=i + 1)
                         for i, (p, sc) in enumerate(zip(at("recommended_barbers"),
                                                         at("barber_scores"), strict=True))],
                action=RecommendedAction(kind=at("action"), text=str(at("action_text")),
                                         expected_gain=None if gain != gain else gain),
                model_versions=versions,
            ))
        return profiles


def _set_threads(estimator: Any, n_jobs: int) -> None:
    """Predict with ``n_jobs`` threads: the estimator's parameter and its fitted booster's."""
    if "n_jobs" in getattr(estimator, "get_params", dict)():
        estimator.set_params(n_jobs=n_jobs)
        inner = getattr(estimator, "estimator_", None)
        if inner is not None and "n_jobs" in inner.get_params():
            inner.set_params(n_jobs=n_jobs)


def _load_bgnbd(ltv: ModelRef, tracking_uri: str) -> BetaGeoModel:
    """The BG/NBD fitted in the LTV champion's run (its parameters artifact)."""
    if ltv.run_id is None:
        raise LookupError(f"{_ref_label(ltv)} has no run; cannot find its BG/NBD parameters")
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        with tempfile.TemporaryDirectory(prefix="barberpro-clv-") as tmp:
            path = client.download_artifacts(ltv.run_id, CLV_PARAMS_ARTIFACT, tmp)
            params = mlflow.artifacts.load_dict(path)
    except Exception as exc:
        raise LookupError(
            f"{_ref_label(ltv)}: its run {ltv.run_id} has no {CLV_PARAMS_ARTIFACT} ({exc}); "
            "retrain it with `barberpro-ml train ltv`") from None
    model = BetaGeoModel()
    model.params_ = BetaGeoParams(**{k: float(v) for k, v in params["bgnbd"].items()})
    return model

