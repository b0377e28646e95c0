"""The scoring API: the champion models, combined into one profile per customer.

:class:`CustomerScorer` loads the registered champion of each family once -- churn
(``barberpro-churn``), lifetime value (``barberpro-ltv``, carrying the BG/NBD parameters of the
probability alive), recommendations (``barberpro-recs``) and segments
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
cached for the last ``snapshot_cache`` cut-offs used); the models then run on the requested
rows only. Each model's feature schema (the columns and dtypes it was trained on, stored with
it) is checked against the snapshot when the snapshot is built: a mismatch is refused with
:class:`FeatureSchemaError` naming the model, its version and the columns. The numbers are
those of the registered pyfunc models: churn and LTV go through the same
:class:`~barberpro_ml.registry.EstimatorModel.predict`, the barbers through
:class:`~barberpro_ml.registry.RecommenderModel.predict` (barbers who have left by ``as_of`` are
then dropped), segments through the registered segmenter.

Degrade, don't die: a family without a verified champion (the LTV gate failed, say) is not
served, and the scorer works with the others. The profile fields of a missing family are null,
with the reason in :attr:`CustomerProfile.unavailable`; :meth:`~CustomerScorer.score_frame`
writes null columns for it (:data:`FAMILY_COLUMNS`); :meth:`~CustomerScorer.require` raises
:class:`~barberpro_ml.errors.ModelUnavailableError` for what cannot be answered without it
(barber recommendations without recs, segment tables without segments). Only a registry with
no family to serve is refused.

Definitions travel with the models: each registered version carries the
:class:`~barberpro_ml.definitions.Definitions` it was trained with (``definitions.*`` tags);
:meth:`~CustomerScorer.from_registry` reads them and the scorer applies them everywhere (the
active window of the churn population and of every "active customers" count, the new-customer
period of the lifecycle stages, the churn horizon of the campaign effects).
"""

from __future__ import annotations

import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from pydantic import BaseModel, Field

from barberpro_ml.data import MarketplaceData
from barberpro_ml.definitions import DEFAULT_DEFINITIONS, Definitions
from barberpro_ml.errors import InputError, ModelUnavailableError, UnverifiedChampionError
from barberpro_ml.features import model_matrix
from barberpro_ml.features._common import to_as_of
from barberpro_ml.models.clv import BetaGeoModel, BetaGeoParams
from barberpro_ml.registry.binding import verify_champion
from barberpro_ml.registry.models import (
    CLV_PARAMS_ARTIFACT,
    ClvParams,
    EstimatorModel,
    ModelInputError,
)
from barberpro_ml.registry.promotion import CHAMPION, alias_version, load_champion
from barberpro_ml.registry.recs_model import RecommenderModel
from barberpro_ml.scoring.actions import OfferPolicy, UpliftDecision, UpliftPolicyModel, _actions
from barberpro_ml.scoring.reasons import churn_reasons
from barberpro_ml.scoring.records import (
    BarberSuggestion,
    ChurnRisk,
    CustomerProfile,
    CustomerRecommendations,
    CustomerValue,
    FamilyStatus,
    LifecycleInfo,
    ModelRef,
    Reason,
    RecommendedAction,
    SegmentInfo,
    ServiceSuggestion,
)
from barberpro_ml.scoring.snapshot import (
    CustomerSnapshot,
    UnknownCustomerError,
    build_snapshot,
    customer_blocks,
    population_inputs,
)

__all__ = ["BLOCK_CUSTOMERS", "DEFAULT_MODEL_NAMES", "DEFAULT_SNAPSHOT_CACHE", "FAMILIES",
           "FAMILY_COLUMNS", "FAMILY_FIELDS", "FRAME_COLUMN_TYPES", "CustomerScorer",
           "FeatureSchemaError", "LoadedFamily", "SnapshotCacheInfo", "UnknownCustomerError",
           "frame_columns", "frame_schema", "load_family", "snapshot_nbytes", "top_barbers"]

FAMILIES: tuple[str, ...] = ("churn", "ltv", "recs", "segments")
"""The model families a scorer serves."""
DEFAULT_MODEL_NAMES: dict[str, str] = {
    "churn": "barberpro-churn", "ltv": "barberpro-ltv", "recs": "barberpro-recs",
    "segments": "barberpro-segments",
}
UPLIFT_MODEL_NAME = "barberpro-uplift"
"""The targeting model the scorer's retention offers follow when its champion is verified
(``barberpro-ml train uplift``); not a profile family: without it the pooled-campaign rule
decides (:attr:`CustomerScorer.action_source`)."""
FAMILY_FIELDS: dict[str, str] = {"churn": "churn", "ltv": "value", "recs": "barbers",
                                 "segments": "segment"}
"""The :class:`CustomerProfile` field group each family fills (null when it is missing)."""
FAMILY_COLUMNS: dict[str, tuple[str, ...]] = {
    "churn": ("churn_probability", "risk_band"),  # and reason_1..k[_group, _impact]
    "ltv": ("expected_value_12m", "probability_alive"),
    "recs": ("recommended_barbers", "barber_scores"),
    "segments": ("rfm_segment", "r_score", "f_score", "m_score", "cluster", "cluster_name"),
}
"""The :meth:`CustomerScorer.score_frame` columns each family fills (null when it is missing)."""
RISK_BANDS: tuple[float, float] = (0.3, 0.6)
FRAME_COLUMN_TYPES: dict[str, str] = {
    "as_of": "timestamp", "churn_probability": "float", "risk_band": "string",
    "in_churn_population": "bool",
    # reason_1..k ("string"), reason_i_group ("string"), reason_i_impact ("float") go here
    "expected_value_12m": "float", "probability_alive": "float", "rfm_segment": "string",
    "r_score": "int", "f_score": "int", "m_score": "int", "cluster": "int",
    "cluster_name": "string", "lifecycle_stage": "string", "lifecycle_reason": "string",
    "usual_gap_days": "float", "days_since_last_visit": "float", "n_visits": "int",
    "next_service_id": "int", "next_service": "string", "next_service_probability": "float",
    "recommended_barbers": "int list", "barber_scores": "float list", "action": "string",
    "action_text": "string", "offer_expected_gain": "float",
}
"""The declared type of every :meth:`CustomerScorer.score_frame` column, in column order
(the reasons follow ``in_churn_population``). A column may be null in any row (an ``int``
column of a family not served holds NaN in the frame), so an Arrow schema built from these
(:meth:`CustomerScorer.frame_schema`) holds every block of :meth:`CustomerScorer.score_blocks`,
whichever of its columns happen to be all null."""
BLOCK_CUSTOMERS = 200_000
"""Customers per block of :meth:`CustomerScorer.score_blocks`: large enough that the
per-block overhead is small beside the rows' work, small enough that a block's snapshot and
scores are a fraction of a million customers' (the peak memory is measured by
``benchmarks/bench_scoring.py --blocks``)."""
DEFAULT_SNAPSHOT_CACHE = 4
"""Snapshots a :class:`CustomerScorer` keeps by default (the most recently used cut-offs)."""

Progress = Callable[[int, int], None]
CacheEvent = Callable[[str], None]
"""Told ``"hit"``, ``"miss"`` or ``"eviction"`` on every snapshot cache event (metrics)."""


def snapshot_nbytes(snap: CustomerSnapshot) -> int:
    """Bytes held by ``snap``'s frames and arrays (``memory_usage(deep=True)``: strings
    included), what the snapshot cache's memory budget counts."""
    total = 0
    for frame in (snap.features, snap.lifecycle, snap.rfm, snap.next_service,
                  snap.next_services):
        total += int(frame.memory_usage(deep=True).sum())
    total += int(snap.neighborhoods.memory_usage(deep=True))
    total += int(snap.active_providers.memory_usage(deep=True))
    total += sum(int(a.nbytes) for a in snap.aligned.values())
    return total


class SnapshotCacheInfo(BaseModel):
    """The scorer's snapshot cache: its policy, what it holds and what it did since start."""

    max_entries: int = Field(description="Cut-offs kept at most (least recently used evicted).")
    max_mib: float | None = Field(description="Memory budget of the kept snapshots in MiB "
                                              "(None: entries only).")
    entries: int
    mib: float = Field(description="Memory of the kept snapshots (pandas deep memory usage).")
    hits: int
    misses: int = Field(description="Snapshots built (each a full feature build).")
    evictions: int


class FeatureSchemaError(InputError):
    """The features built from the data do not match what a registered model was trained on.

    The service answers 503: it cannot score with a model the data do not fit (the operator,
    not the caller, has to act: retrain the model or serve data of its version).
    """

    http_status = 503


def _ref_label(ref: ModelRef) -> str:
    return f"{ref.name} v{ref.version} (@{ref.alias})"


@dataclass(frozen=True)
class LoadedFamily:
    """One family's registered version, loaded (and, for ``@champion``, verified)."""

    family: str
    model: EstimatorModel | RecommenderModel
    """The pyfunc wrapper, unwrapped."""
    ref: ModelRef
    """What was loaded: name, alias, the version the alias pointed to."""
    definitions: Definitions | None
    """From the version's ``definitions.*`` tags; None when it has none."""


def load_family(family: str, name: str, *, alias: str = CHAMPION,
                tracking_uri: str | None = None) -> LoadedFamily:
    """Load ``name@alias`` as the model of ``family``: for ``@champion``, only a verified one.

    The check :meth:`CustomerScorer.from_registry` applies to every family, and a running
    service to every champion it swaps in: the champion must carry a passing gate result bound
    to it and a promotion-log entry (:func:`~barberpro_ml.registry.verify_champion`), checked
    before anything is downloaded. Other aliases (``challenger``) load without the check.

    Raises
    ------
    ModelUnavailableError
        ``name`` has no such alias (nothing promoted yet, or no such model).
    UnverifiedChampionError
        The ``@champion`` did not get there through the gate and ``promote``, or moved while
        loading (its ``version`` says which; load again).
    """
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    missing = (f"no @{alias} of {name}: registered model {name!r} has no {alias!r} alias at "
               f"{uri} (nothing promoted yet?); train it with `barberpro-ml train {family}` (or "
               "`barberpro-ml pipeline`)")
    if alias_version(name, alias, client=client) is None:
        raise ModelUnavailableError(missing)
    check = None
    if alias == CHAMPION:
        check = verify_champion(name, client=client)
        if not check.verified:
            raise UnverifiedChampionError(f"no verified @champion of {name}: {check.describe()}",
                                          name=name, version=check.version)
    try:
        model, mv = load_champion(name, alias=alias, tracking_uri=uri)
    except LookupError:  # the alias was removed since
        raise ModelUnavailableError(missing) from None
    if check is not None and check.version != str(mv.version):
        raise UnverifiedChampionError(
            f"no verified @champion of {name}: @champion moved from v{check.version} to "
            f"v{mv.version} while loading; load again", name=name, version=str(mv.version))
    return LoadedFamily(
        family=family, model=model.unwrap_python_model(),  # type: ignore[no-untyped-call]
        ref=ModelRef(family=family, name=name, alias=alias, version=str(mv.version),
                     run_id=mv.run_id, verified=True if check is not None else None),
        definitions=Definitions.from_tags(dict(mv.tags or {})))


class CustomerScorer:
    """Profiles and scores of customers from the champion churn, LTV, recs and segment models.

    Build it with :meth:`from_registry` (the usual way) or from in-memory pyfunc wrappers
    (tests, notebooks). Any family may be missing (``None``): its profile fields are null with
    the reason (see :class:`CustomerProfile`); at least one family is needed.

    Parameters
    ----------
    churn, ltv, segments
        :class:`~barberpro_ml.registry.EstimatorModel` wrappers (churn: probability of the
        positive class; LTV and segments: ``predict``), or None when not served.
    recs
        :class:`~barberpro_ml.registry.RecommenderModel` of barbers, or None.
    bgnbd
        Fitted :class:`~barberpro_ml.models.BetaGeoModel` (time unit: weeks) for the
        probability alive; None: no probability alive (``unavailable`` says why).
    models
        What was loaded, per family (reported by :meth:`versions` and ``/health``).
    status
        :class:`FamilyStatus` of the families not given (why they are missing or unverified);
        a family that is None without a status is reported ``missing``, "not loaded".
    definitions
        The business definitions the models were trained with (:class:`Definitions`): the
        active window of the churn population and of every "active customers" count, the
        new-customer period of the lifecycle stages, the churn horizon of campaign effects.
    bgnbd_note
        Why ``bgnbd`` is None, when it is and the LTV model is served.
    risk_bands
        Churn probabilities at which the band turns ``medium`` and ``high``.
    n_reasons, n_barbers
        Reasons and barbers per profile.
    offer_policy
        The action rules (:mod:`barberpro_ml.scoring.actions`).
    uplift
        The targeting model of retention offers (``barberpro-uplift``, an
        :class:`~barberpro_ml.interventions.UpliftModel`): when given, a customer gets the
        retention offer where *it* says the offer pays for them (its expected uplift x value >
        cost), instead of the pooled-campaign rule of :mod:`~barberpro_ml.scoring.actions`.
        None: that rule (the fallback).
    uplift_ref, uplift_note
        What was loaded as ``uplift``; why there is none (shown by :attr:`action_source`).
    n_jobs
        Threads the boosted models predict with (set on the loaded estimators). 1 by default:
        a request is a few rows, where thread start-up and contention cost more than they
        save; a service scales with workers. Raise it for large :meth:`score_frame` runs.
    snapshot_cache
        Snapshots (one per cut-off and data) kept, least recently used evicted first. A
        snapshot is every customer's features at one ``as_of``: building one is the cost of a
        request at a new cut-off (a second on 2,500 customers), keeping one costs memory
        (:func:`snapshot_nbytes`; measured per 10k customers by
        ``benchmarks/bench_service.py``). Requests rotating over more cut-offs than this
        rebuild a snapshot each time. The scored population of a cut-off is kept beside its
        snapshot, under the same limit.
    snapshot_cache_mib
        Also evict (oldest first) while the kept snapshots take more than this many MiB; the
        snapshot just built is always kept. None: only ``snapshot_cache`` limits.
    on_snapshot_cache
        Called with ``"hit"``, ``"miss"`` or ``"eviction"`` on every cache event (the
        service's Prometheus counters); :meth:`snapshot_cache_info` has the totals.

    Raises
    ------
    ModelUnavailableError
        No family given at all.
    TypeError
        A wrapper of the wrong kind.

    Examples
    --------
    >>> scorer = CustomerScorer.from_registry()                         # doctest: +SKIP
    >>> scorer.versions()                                               # doctest: +SKIP
    {'barberpro-churn': '3', 'barberpro-ltv': '2', 'barberpro-recs': '2', ...}
    >>> [p.churn.probability for p in scorer.profile(data, [42], "2024-12-31")]  # doctest: +SKIP
    """

    def __init__(self, *, churn: EstimatorModel | None = None,
                 ltv: EstimatorModel | None = None, recs: RecommenderModel | None = None,
                 segments: EstimatorModel | None = None, bgnbd: BetaGeoModel | None = None,
                 models: dict[str, ModelRef] | None = None,
                 status: Mapping[str, FamilyStatus] | None = None,
                 definitions: Definitions = DEFAULT_DEFINITIONS, bgnbd_note: str = "",
                 risk_bands: tuple[float, float] = RISK_BANDS, n_reasons: int = 3,
                 n_barbers: int = 3, offer_policy: OfferPolicy | None = None,
                 n_jobs: int = 1, uplift: UpliftPolicyModel | None = None,
                 uplift_ref: ModelRef | None = None, uplift_note: str = "",
                 uplift_name: str | None = None,
                 snapshot_cache: int = DEFAULT_SNAPSHOT_CACHE,
                 snapshot_cache_mib: float | None = None,
                 on_snapshot_cache: CacheEvent | None = None) -> None:
        if uplift is not None and (getattr(uplift, "spec", None) is None
                                   or not callable(getattr(uplift, "predict", None))):
            raise TypeError(f"uplift: expected a loaded uplift model (barberpro-uplift), got "
                            f"{type(uplift).__name__}")
        given: dict[str, Any] = {"churn": churn, "ltv": ltv, "recs": recs,
                                 "segments": segments}
        for family, kind in (("churn", EstimatorModel), ("ltv", EstimatorModel),
                             ("segments", EstimatorModel), ("recs", RecommenderModel)):
            wrapper = given[family]
            if wrapper is None:
                continue
            if not isinstance(wrapper, kind) or getattr(wrapper, "spec", None) is None:
                raise TypeError(f"{family}: expected a loaded {kind.__name__}, got "
                                f"{type(wrapper).__name__}")
        if not 0 < risk_bands[0] < risk_bands[1] < 1:
            raise ValueError(f"risk_bands must be two increasing probabilities in (0, 1), got "
                             f"{risk_bands}")
        for name, value in (("n_reasons", n_reasons), ("n_barbers", n_barbers)):
            if not 1 <= value <= 20:
                raise ValueError(f"{name} must be in [1, 20], got {value}")
        if isinstance(snapshot_cache, bool) or not isinstance(snapshot_cache, int) \
                or snapshot_cache < 1:
            raise ValueError(f"snapshot_cache must be an integer >= 1, got {snapshot_cache!r}")
        if snapshot_cache_mib is not None and not snapshot_cache_mib > 0:
            raise ValueError(f"snapshot_cache_mib must be > 0 or None, got "
                             f"{snapshot_cache_mib!r}")
        self.churn = churn
        self.ltv = ltv
        self.recs = recs
        self.segments = segments
        self.bgnbd = bgnbd
        self.models = dict(models or {})
        self.definitions = definitions
        self.status: dict[str, FamilyStatus] = {}
        for family in FAMILIES:
            ref = self.models.get(family)
            name = ref.name if ref else DEFAULT_MODEL_NAMES[family]
            if given[family] is not None:
                self.status[family] = FamilyStatus(
                    family=family, name=name, state="verified" if ref and ref.verified
                    else "loaded", version=ref.version if ref else None)
            else:
                self.status[family] = (status or {}).get(family) or FamilyStatus(
                    family=family, name=name, state="missing", reason="not loaded")
        if not any(st.served for st in self.status.values()):
            raise ModelUnavailableError(
                "no model family to serve: "
                + "; ".join(f"{f}: {st.reason}" for f, st in self.status.items()))
        self.bgnbd_note = bgnbd_note or (
            "" if bgnbd is not None or ltv is None else "no BG/NBD parameters given")
        self.risk_bands = risk_bands
        self.n_reasons = n_reasons
        self.n_barbers = n_barbers
        self.offer_policy = offer_policy or OfferPolicy()
        self.n_jobs = n_jobs
        self.uplift = uplift
        self.uplift_ref = uplift_ref
        self.uplift_name = uplift_name or (uplift_ref.name if uplift_ref is not None
                                           else UPLIFT_MODEL_NAME)
        self.uplift_note = uplift_note or ("" if uplift is not None
                                           else "no uplift model given")
        self.snapshot_cache = snapshot_cache
        self.snapshot_cache_mib = snapshot_cache_mib
        self.on_snapshot_cache = on_snapshot_cache
        self._cache_counts = {"hit": 0, "miss": 0, "eviction": 0}
        self._snapshot_bytes: dict[tuple[int, pd.Timestamp], int] = {}
        for wrapper in (churn, ltv):
            if wrapper is not None:
                _set_threads(wrapper.estimator, n_jobs)
        self._snapshots: OrderedDict[tuple[int, pd.Timestamp],
                                     tuple[weakref.ref[MarketplaceData], CustomerSnapshot]] = \
            OrderedDict()
        self._populations: OrderedDict[pd.Timestamp, tuple[CustomerSnapshot, pd.DataFrame]] = \
            OrderedDict()
        self._ends: dict[int, tuple[weakref.ref[MarketplaceData], pd.Timestamp]] = {}
        self._lock = threading.Lock()
        self._tagged: dict[str, Definitions] = {}  # family -> its version's definitions.* tags

    # ------------------------------------------------------------------------- loading
    @classmethod
    def from_registry(cls, tracking_uri: str | None = None, alias: str = CHAMPION, *,
                      names: dict[str, str] | None = None, **kwargs: Any) -> CustomerScorer:
        """Load the ``alias`` version of every family's registered model, once, serving those
        that can be served.

        A family with no such alias, or whose ``@champion`` is not verified (see
        :func:`~barberpro_ml.registry.verify_champion`), is left out with the reason
        (:attr:`status`, ``/health``); the scorer serves the others.

        The definitions are read from the loaded versions' ``definitions.*`` tags
        (:meth:`Definitions.from_tags`); versions without them are taken to use the shipped
        :data:`~barberpro_ml.definitions.DEFAULT_DEFINITIONS`. The LTV model's BG/NBD
        parameters come from inside the registered model (:class:`ClvParams`); for versions
        registered before they were, from the ``clv/clv_params.json`` artifact of its run; if
        neither exists the probability alive is null (with the reason).

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
            Passed to the constructor (``risk_bands``, ``n_reasons``...). ``definitions``, if
            given, must agree with the versions' tags.

        Raises
        ------
        ModelUnavailableError
            No family can be served (names every family's reason).
        InputError
            The loaded versions were trained under different definitions (names the versions
            and the fields), or ``definitions`` disagrees with them.
        TypeError
            A registered model is not the kind of pyfunc model the scorer expects.
        """
        names = {**DEFAULT_MODEL_NAMES, **(names or {})}
        uri = tracking_uri or mlflow.get_tracking_uri()
        loaded: dict[str, LoadedFamily] = {}
        status: dict[str, FamilyStatus] = {}
        for family in FAMILIES:
            name = names[family]
            try:
                loaded[family] = load_family(family, name, alias=alias, tracking_uri=uri)
            except UnverifiedChampionError as exc:
                status[family] = FamilyStatus(family=family, name=name, state="unverified",
                                              version=exc.version, reason=str(exc))
            except ModelUnavailableError as exc:
                status[family] = FamilyStatus(family=family, name=name, state="missing",
                                              reason=str(exc))
        if not loaded:
            raise ModelUnavailableError(
                f"no model family can be served with @{alias}: "
                + "; ".join(st.reason or st.state for st in status.values()))
        refs = {family: found.ref for family, found in loaded.items()}
        tagged = {family: found.definitions for family, found in loaded.items()
                  if found.definitions is not None}
        definitions = _agreed_definitions(tagged, refs, kwargs.pop("definitions", None))
        bgnbd, note = None, ""
        if "ltv" in loaded:
            bgnbd, note = _ltv_bgnbd(loaded["ltv"].model, refs["ltv"], uri)
        wrappers: dict[str, Any] = {family: found.model for family, found in loaded.items()}
        if "uplift" not in kwargs:
            uplift_name = names.get("uplift", UPLIFT_MODEL_NAME)
            kwargs.setdefault("uplift_name", uplift_name)
            try:
                found_uplift = load_family("uplift", uplift_name, alias=alias, tracking_uri=uri)
                kwargs |= {"uplift": found_uplift.model, "uplift_ref": found_uplift.ref}
            except (ModelUnavailableError, UnverifiedChampionError) as exc:
                kwargs["uplift_note"] = str(exc)
        scorer = cls(**wrappers, bgnbd=bgnbd, bgnbd_note=note, models=refs, status=status,
                     definitions=definitions, **kwargs)
        scorer._tagged = tagged
        return scorer

    def replacing(self, loaded: Mapping[str, LoadedFamily], *,
                  tracking_uri: str | None = None) -> CustomerScorer:
        """A new scorer serving the ``loaded`` versions in place of their families' current
        ones, and every other family exactly as this one does (the same loaded objects).

        What a service swaps in when a family's champion moves
        (:class:`~barberpro_ml.scoring.live.LiveScorer`). The settings (risk bands, reasons,
        barbers, offer policy, threads) carry over; the definitions are agreed again over the
        served versions' tags, as in :meth:`from_registry`; a new LTV version brings its own
        BG/NBD parameters. The new scorer starts with empty caches; this one is unchanged.

        Raises
        ------
        InputError
            The versions served together would disagree on the definitions (names both).
        TypeError
            A loaded model of the wrong kind for its family.
        """
        wrappers: dict[str, Any] = {family: getattr(self, family) for family in FAMILIES}
        refs = dict(self.models)
        tagged = dict(self._tagged)
        uplift, uplift_ref, uplift_note = self.uplift, self.uplift_ref, self.uplift_note
        for family, found in loaded.items():
            if family == "uplift":  # the offer-targeting model: not a profile family
                # the constructor checks it is one (TypeError otherwise)
                uplift = cast("UpliftPolicyModel", found.model)
                uplift_ref, uplift_note = found.ref, ""
                continue
            wrappers[family] = found.model
            refs[family] = found.ref
            tagged.pop(family, None)
            if found.definitions is not None:
                tagged[family] = found.definitions
        # untagged versions only (a scorer built by hand): keep the definitions it was given
        definitions = _agreed_definitions(tagged, refs, None) if tagged else self.definitions
        bgnbd, note = self.bgnbd, self.bgnbd_note
        if "ltv" in loaded:
            bgnbd, note = _ltv_bgnbd(loaded["ltv"].model, refs["ltv"],
                                     tracking_uri or mlflow.get_tracking_uri())
        scorer = type(self)(**wrappers, bgnbd=bgnbd, bgnbd_note=note, models=refs,
                            status=self.status, definitions=definitions,
                            risk_bands=self.risk_bands, n_reasons=self.n_reasons,
                            n_barbers=self.n_barbers, offer_policy=self.offer_policy,
                            n_jobs=self.n_jobs, uplift=uplift, uplift_ref=uplift_ref,
                            uplift_note=uplift_note, uplift_name=self.uplift_name,
                            snapshot_cache=self.snapshot_cache,
                            snapshot_cache_mib=self.snapshot_cache_mib,
                            on_snapshot_cache=self.on_snapshot_cache)
        scorer._tagged = tagged
        return scorer

    def versions(self) -> dict[str, str]:
        """Registered model name -> version, for every family loaded from the registry."""
        return {ref.name: ref.version for ref in self.models.values()}

    @property
    def unavailable(self) -> dict[str, str]:
        """Family -> why it is not served, for the families that are not."""
        return {family: st.reason or st.state for family, st in self.status.items()
                if not st.served}

    @property
    def action_source(self) -> str:
        """Where the retention-offer decisions come from: the uplift model served (name and
        version), or the pooled-campaign rule and why no uplift model is served."""
        if self.uplift is not None:
            label = _ref_label(self.uplift_ref) if self.uplift_ref is not None else "given"
            return f"uplift model {label}"
        return f"pooled campaign effect rule ({self.uplift_note})"

    def require(self, family: str, what: str) -> None:
        """Refuse ``what`` when ``family`` is not served.

        Raises
        ------
        ModelUnavailableError
            Naming ``what``, the family and why it is not served.
        """
        reason = self.unavailable.get(family)
        if reason is not None:
            raise ModelUnavailableError(f"{what} needs the {family} model, which is not "
                                        f"served: {reason}")

    # ------------------------------------------------------------------------- snapshots
    def snapshot(self, data: MarketplaceData, as_of: object = None) -> CustomerSnapshot:
        """The :class:`CustomerSnapshot` of ``data`` at ``as_of`` (default: the data's last
        event; a time-zone-aware ``as_of`` is converted to naive UTC), built with the scorer's
        definitions once and kept under the cache policy (``snapshot_cache`` cut-offs, least
        recently used evicted first; ``snapshot_cache_mib``).

        Raises
        ------
        FeatureSchemaError
            The features do not match a served model's training schema (names model and
            columns).
        InputError, NotEnoughDataError
            ``as_of`` unreadable, after the data, or before any customer signed up.
        """
        stamp = self._data_end(data) if as_of is None else to_as_of(as_of, to_utc=True)
        key = (id(data), stamp)
        with self._lock:
            hit = self._snapshots.get(key)
            if hit is not None and hit[0]() is data:
                self._snapshots.move_to_end(key)
                self._cache_counts["hit"] += 1
                found: CustomerSnapshot | None = hit[1]
            else:
                found = None
        if found is not None:
            self._tell("hit")
            return found
        snap = build_snapshot(data, stamp, definitions=self.definitions)
        self._check_schemas(snap.features)
        size = snapshot_nbytes(snap)
        evicted = 0
        with self._lock:
            self._cache_counts["miss"] += 1
            self._snapshots[key] = (weakref.ref(data), snap)
            self._snapshot_bytes[key] = size
            # data no longer referenced (replaced by a refresh): free their snapshots now
            # (not counted as evictions: nothing could ask for them again)
            for stale in [k for k, (ref, _) in self._snapshots.items() if ref() is None]:
                del self._snapshots[stale]
                self._snapshot_bytes.pop(stale, None)
            budget = (None if self.snapshot_cache_mib is None
                      else self.snapshot_cache_mib * 2**20)
            while len(self._snapshots) > self.snapshot_cache or (
                    budget is not None and len(self._snapshots) > 1
                    and sum(self._snapshot_bytes.values()) > budget):
                old, _ = self._snapshots.popitem(last=False)
                self._snapshot_bytes.pop(old, None)
                evicted += 1
            self._cache_counts["eviction"] += evicted
        self._tell("miss")
        for _ in range(evicted):
            self._tell("eviction")
        return snap

    def snapshot_cache_info(self) -> SnapshotCacheInfo:
        """The snapshot cache's policy, content and hits, misses and evictions so far."""
        with self._lock:
            return SnapshotCacheInfo(
                max_entries=self.snapshot_cache, max_mib=self.snapshot_cache_mib,
                entries=len(self._snapshots),
                mib=sum(self._snapshot_bytes.get(k, 0) for k in self._snapshots) / 2**20,
                hits=self._cache_counts["hit"], misses=self._cache_counts["miss"],
                evictions=self._cache_counts["eviction"])

    def _tell(self, event: str) -> None:
        if self.on_snapshot_cache is not None:
            self.on_snapshot_cache(event)

    def active_customers(self, data: MarketplaceData, as_of: object = None) -> int:
        """Customers active at ``as_of`` under the served models' definitions.

        The one count every route reports (``/health``, segments, metrics):
        :attr:`CustomerSnapshot.n_active` -- a completed visit within ``active_window_days``.
        """
        return self.snapshot(data, as_of).n_active

    def cut_off(self, data: MarketplaceData, as_of: object = None) -> pd.Timestamp:
        """The cut-off every scoring method uses for ``as_of``: the data's last event when
        None, else ``as_of`` as naive UTC (a time-zone-aware one converted).

        Raises
        ------
        InputError
            ``as_of`` unreadable or outside the timestamp range.
        """
        return self._data_end(data) if as_of is None else to_as_of(as_of, to_utc=True)

    def _data_end(self, data: MarketplaceData) -> pd.Timestamp:
        """``data.observation_end``, remembered per data object (it scans every table)."""
        with self._lock:
            hit = self._ends.get(id(data))
            if hit is not None and hit[0]() is data:
                return hit[1]
        end = data.observation_end
        with self._lock:
            self._ends[id(data)] = (weakref.ref(data), end)
            while len(self._ends) > self.snapshot_cache:
                self._ends.pop(next(iter(self._ends)))
        return end

    def _check_schemas(self, features: pd.DataFrame) -> None:
        if self.uplift is not None:
            lacking = [c for c in self.uplift.spec.features if c not in features.columns]
            if lacking:
                label = (_ref_label(self.uplift_ref) if self.uplift_ref is not None
                         else "given")
                raise FeatureSchemaError(
                    f"the uplift model {label} needs {len(lacking)} column(s) the feature "
                    f"builder does not produce: {lacking[:10]}")
        for family, wrapper in (("churn", self.churn), ("ltv", self.ltv),
                                ("segments", self.segments)):
            if wrapper is None:
                continue
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
            ``as_of``); a repeated id gets its row at each position.
        reasons
            Phrase the churn reasons (``reason_1..k``); off skips the churn model's TreeSHAP
            values, most of the time of scoring with reasons.
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
            offer_expected_gain``. The columns of a family that is not served
            (:data:`FAMILY_COLUMNS`, and the reasons for churn) are null: NaN for numbers,
            None otherwise. ``in_churn_population`` is the activity rule of the definitions.

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

    def score_blocks(self, data: MarketplaceData, as_of: object = None, *,
                     block_customers: int = BLOCK_CUSTOMERS, reasons: bool = True,
                     chunk_size: int = 100_000, progress: Progress | None = None
                     ) -> Iterator[pd.DataFrame]:
        """:meth:`score_frame` of every customer, one block of customers at a time, for
        populations whose snapshot should not be held whole.

        The population-level inputs (:func:`~barberpro_ml.scoring.snapshot.population_inputs`:
        the lifecycle prior, review totals per barber, next-service prior, campaign effect)
        are computed once; then each block of ``block_customers`` customers (in id order,
        :func:`~barberpro_ml.scoring.snapshot.customer_blocks`) gets its own snapshot, is
        scored and released. The memory beyond the event tables grows with the block, not
        the population, and the rows equal :meth:`score_frame`'s (tested). Blocks are not
        cached (:meth:`snapshot` is not used).

        Parameters
        ----------
        data, as_of, reasons, chunk_size
            As for :meth:`score_frame`.
        block_customers
            Customers per block (default :data:`BLOCK_CUSTOMERS`).
        progress
            Called with ``(customers done, customers total)`` after each block.

        Yields
        ------
        pandas.DataFrame
            One block's rows, in customer-id order, columns as :meth:`score_frame`.

        Raises
        ------
        InputError
            ``block_customers`` or ``chunk_size`` not a positive integer.
        FeatureSchemaError
            See :meth:`snapshot`.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        stamp = self._data_end(data) if as_of is None else to_as_of(as_of, to_utc=True)
        blocks: Iterator[MarketplaceData] = customer_blocks(data, stamp, block_customers)
        population = population_inputs(data, stamp, definitions=self.definitions)
        total = int((data.customers["signup_at"] <= stamp).sum())
        if type(block_customers) is int and block_customers >= total:
            blocks = iter([data])  # one block: the tables themselves, not a copy of them
        done = 0
        for block in blocks:
            snap = build_snapshot(block, stamp, definitions=self.definitions,
                                  population=population)
            if done == 0:
                self._check_schemas(snap.features)
            parts = []
            for start in range(0, len(snap.features), chunk_size):
                ids, cols = self._score_rows(
                    snap, np.arange(start, min(start + chunk_size, len(snap.features))),
                    reasons=reasons)
                parts.append(pd.DataFrame(cols, index=ids))
            done += len(snap.features)
            yield pd.concat(parts) if len(parts) > 1 else parts[0]
            if progress is not None:
                progress(done, total)

    def frame_columns(self, *, reasons: bool = True) -> list[str]:
        """The columns of :meth:`score_frame` with this scorer's ``n_reasons``
        (:func:`frame_columns`)."""
        return frame_columns(reasons=reasons, n_reasons=self.n_reasons)

    def frame_schema(self, *, reasons: bool = True) -> Any:
        """The Arrow schema of :meth:`score_frame`'s rows with this scorer's ``n_reasons``
        (:func:`frame_schema`)."""
        return frame_schema(reasons=reasons, n_reasons=self.n_reasons)

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
            while len(self._populations) > self.snapshot_cache:
                self._populations.popitem(last=False)
        return scored

    def _score_rows(self, snap: CustomerSnapshot, positions: np.ndarray, *,
                    reasons: bool) -> tuple[pd.Index, dict[str, Any]]:
        """Every output column of the rows at ``positions``, as arrays (one model call per
        family for the distinct rows; a repeated position gets its row again)."""
        unique, inverse = np.unique(positions, return_inverse=True)
        if len(unique) < len(positions):
            once_ids, once = self._score_rows(snap, unique, reasons=reasons)
            return once_ids[inverse], {
                name: (values[inverse] if isinstance(values, np.ndarray)
                       else [values[i] for i in inverse.tolist()])
                for name, values in once.items()}
        X = snap.features.iloc[positions]
        ids = X.index
        n = len(ids)
        at = {name: values[positions] for name, values in snap.aligned.items()}
        low, high = self.risk_bands
        cols: dict[str, Any] = {"as_of": np.full(n, snap.as_of.to_datetime64())}
        if self.churn is not None:
            churn = self.churn.predict(None, X)
            cols["churn_probability"] = churn
            cols["risk_band"] = np.where(churn >= high, "high", np.where(
                churn >= low, "medium", "low")).astype(object)
        else:
            cols["churn_probability"] = np.full(n, np.nan)
            cols["risk_band"] = np.full(n, None, dtype=object)
        cols["in_churn_population"] = snap.active[positions]
        if reasons and n:
            if self.churn is not None:
                assert self.churn.spec is not None
                contributions = self.churn.estimator.feature_contributions(
                    self.churn.spec.features.prepare(X))
                phrased = churn_reasons(contributions, X, k=self.n_reasons)
                cols |= {c: phrased[c].to_numpy() for c in phrased.columns}
            else:
                for i in range(1, self.n_reasons + 1):
                    cols[f"reason_{i}"] = np.full(n, None, dtype=object)
                    cols[f"reason_{i}_group"] = np.full(n, None, dtype=object)
                    cols[f"reason_{i}_impact"] = np.full(n, np.nan)
        if self.ltv is not None:
            cols["expected_value_12m"] = self.ltv.predict(None, X)
            cols["probability_alive"] = self._probability_alive(at)
        else:
            cols["expected_value_12m"] = np.full(n, np.nan)
            cols["probability_alive"] = np.full(n, np.nan)
        if self.segments is not None:
            assert self.segments.estimator is not None
            assert self.segments.spec is not None
            # the estimator itself, on exactly its training columns (the snapshot has more)
            segments = self.segments.estimator.transform(self.segments.spec.features.prepare(X))
            for column in FAMILY_COLUMNS["segments"]:
                cols[column] = segments[column].to_numpy()
        else:
            for column in FAMILY_COLUMNS["segments"]:
                cols[column] = (np.full(n, np.nan) if column in ("r_score", "f_score",
                                                                  "m_score", "cluster")
                                else np.full(n, None, dtype=object))
        for column in ("lifecycle_stage", "lifecycle_reason", "usual_gap_days",
                       "days_since_last_visit", "n_visits", "next_service_id", "next_service",
                       "next_service_probability"):
            cols[column] = at[column]
        if self.recs is not None:
            cols["recommended_barbers"], cols["barber_scores"] = self._barbers(
                snap, ids, at["neighborhood"], self.n_barbers)
        else:
            cols["recommended_barbers"] = np.full(n, None, dtype=object)
            cols["barber_scores"] = np.full(n, None, dtype=object)
        cols |= _actions({**cols, "spend_per_visit": at["spend_per_visit"]},
                         snap.offer_effect, self.offer_policy, effect_note=snap.offer_effect_note,
                         churn_unavailable=self.unavailable.get("churn"),
                         uplift=self._uplift(X))
        return ids, cols

    def _uplift(self, X: pd.DataFrame) -> UpliftDecision | None:
        """The uplift model's decision for the rows of ``X`` (None: no uplift model)."""
        if self.uplift is None:
            return None
        out = self.uplift.predict(None, model_matrix(X[list(self.uplift.spec.features)]))
        label = (_ref_label(self.uplift_ref) if self.uplift_ref is not None
                 else "the uplift model")
        return UpliftDecision(uplift=out["uplift"].to_numpy(dtype=np.float64),
                              expected_gain=out["expected_gain"].to_numpy(dtype=np.float64),
                              treat=out["treat"].to_numpy(dtype=bool),
                              discount=float(self.uplift.spec.discount), label=label)

    def _probability_alive(self, at: dict[str, np.ndarray]) -> np.ndarray:
        seen = ~np.isnan(at["frequency"])
        out = np.full(len(seen), np.nan)
        if self.bgnbd is not None and seen.any():
            out[seen] = self.bgnbd.probability_alive(
                at["frequency"][seen], at["recency"][seen], at["T"][seen])
        return out

    def _barbers(self, snap: CustomerSnapshot, ids: pd.Index, neighborhoods: np.ndarray,
                 n: int) -> tuple[list[list[int]], list[list[float]]]:
        """Up to ``n`` barbers still working at ``as_of`` per customer (``[]``: none)."""
        assert self.recs is not None
        return top_barbers(self.recs, ids.to_numpy(dtype=np.int64), neighborhoods,
                           snap.active_providers, n)

    def recommendations(self, data: MarketplaceData, customer_id: int, as_of: object = None,
                        *, k_barbers: int = 5) -> CustomerRecommendations:
        """Next services (up to three) and ``k_barbers`` barbers for one customer.

        Raises
        ------
        ModelUnavailableError
            The recommendations model is not served.
        UnknownCustomerError
            When ``customer_id`` is not a customer at ``as_of``.
        InputError
            ``k_barbers`` out of range.
        """
        self.require("recs", "barber recommendations")
        assert self.recs is not None and self.recs.spec is not None
        if not 1 <= k_barbers <= self.recs.spec.max_k - 5:
            raise InputError(f"k_barbers must be in [1, {self.recs.spec.max_k - 5}], got "
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

        The same vectorised path as :meth:`score_frame`, turned into records. A repeated id
        gets its profile at each of its positions (the models run once per distinct id).
        """
        snap = self.snapshot(data, as_of)
        ids, cols = self._score_rows(snap, snap.positions(customer_ids), reasons=True)
        return self._records(ids, cols)

    def to_profiles(self, frame: pd.DataFrame) -> list[CustomerProfile]:
        """Records of the rows of a :meth:`score_frame` result (with reasons)."""
        return self._records(frame.index, {c: frame[c].to_numpy() for c in frame.columns})

    def unavailable_fields(self) -> dict[str, str]:
        """Profile field group -> why it is null or degraded (empty when all is served)."""
        out: dict[str, str] = {}
        for family, reason in self.unavailable.items():
            out[FAMILY_FIELDS[family]] = reason
        if "churn" in self.unavailable:
            out["action"] = ("no retention offer considered and reminders by lifecycle stage "
                             f"only: {self.unavailable['churn']}")
        if self.ltv is not None and self.bgnbd is None:
            out["value.probability_alive"] = self.bgnbd_note
        return out

    def _records(self, ids: pd.Index, cols: dict[str, Any]) -> list[CustomerProfile]:
        versions = self.versions()
        missing = self.unavailable
        unavailable = self.unavailable_fields()
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
            since, gain = at("days_since_last_visit"), at("offer_expected_gain")
            churn = None if "churn" in missing else ChurnRisk(
                probability=at("churn_probability"), risk_band=at("risk_band"),
                in_model_population=bool(at("in_churn_population")),
                reasons=[Reason(group=str(at(g)), text=str(at(t)), impact=at(i),
                                direction="raises" if at(i) > 0 else "lowers")
                         for t, g, i in reason_cols])
            alive = at("probability_alive")
            value = None if "ltv" in missing else CustomerValue(
                expected_12m=at("expected_value_12m"),
                probability_alive=None if alive != alive else alive)
            segment = None if "segments" in missing else SegmentInfo(
                rfm_segment=str(at("rfm_segment")), r_score=int(at("r_score")),
                f_score=int(at("f_score")), m_score=int(at("m_score")),
                cluster=int(at("cluster")), cluster_name=str(at("cluster_name")))
            barbers = None if "recs" in missing else [
                BarberSuggestion(provider_id=p, score=sc, rank=i + 1)
                for i, (p, sc) in enumerate(zip(at("recommended_barbers"), at("barber_scores"),
                                                strict=True))]
            profiles.append(CustomerProfile(
                customer_id=int(customer),
                as_of=pd.Timestamp(at("as_of")).to_pydatetime(),
                churn=churn, value=value, segment=segment,
                lifecycle=LifecycleInfo(
                    stage=str(at("lifecycle_stage")), usual_gap_days=at("usual_gap_days"),
                    days_since_last_visit=None if since != since else since,
                    n_visits=int(at("n_visits")), reason=str(at("lifecycle_reason"))),
                next_service=None if service_id is None or service_id is pd.NA
                or service_id != service_id else
                ServiceSuggestion(service_id=int(service_id), name=str(at("next_service")),
                                  probability=at("next_service_probability")),
                barbers=barbers,
                action=RecommendedAction(kind=at("action"), text=str(at("action_text")),
                                         expected_gain=None if gain != gain else gain),
                unavailable=unavailable,
                model_versions=versions,
            ))
        return profiles


def frame_columns(*, reasons: bool = True, n_reasons: int = 3) -> list[str]:
    """The columns of :meth:`CustomerScorer.score_frame` (and of every block of
    :meth:`CustomerScorer.score_blocks`), in order: :data:`FRAME_COLUMN_TYPES` with
    ``reason_1..k [+ _group, _impact]`` after ``in_churn_population`` when ``reasons``.

    Parameters
    ----------
    reasons
        With the ``reason_*`` columns.
    n_reasons
        The scorer's ``n_reasons`` (``k``).

    Returns
    -------
    list of str

    Examples
    --------
    >>> frame_columns(n_reasons=1)[:8]
    ['as_of', 'churn_probability', 'risk_band', 'in_churn_population', 'reason_1', \
'reason_1_group', 'reason_1_impact', 'expected_value_12m']
    """
    names = list(FRAME_COLUMN_TYPES)
    if reasons:
        cut = names.index("in_churn_population") + 1
        names[cut:cut] = [f"reason_{i}{suffix}" for i in range(1, n_reasons + 1)
                          for suffix in ("", "_group", "_impact")]
    return names


def frame_schema(*, reasons: bool = True, n_reasons: int = 3) -> Any:
    """The Arrow schema of :meth:`CustomerScorer.score_frame`'s rows, from the declared column
    types (:data:`FRAME_COLUMN_TYPES`), never from the data: one schema for every block of
    :meth:`CustomerScorer.score_blocks`, whichever columns are all null in a block.

    Parameters
    ----------
    reasons, n_reasons
        As for :func:`frame_columns`.

    Returns
    -------
    pyarrow.Schema
        ``customer_id`` (int64, the frame's index) then :func:`frame_columns`: ``string``
        columns as ``pa.string()``, ``int`` as nullable int64 (pandas reads an int64 column
        with nulls back as float64 NaN, as it reads :meth:`~CustomerScorer.score_frame`'s
        frame written whole), ``float`` as float64, ``timestamp`` as naive ``timestamp[ns]``,
        lists as ``list<int64>`` / ``list<double>``; with the pandas metadata that makes
        ``pandas.read_parquet`` restore the ``customer_id`` index.

    Examples
    --------
    >>> schema = frame_schema(reasons=False)
    >>> str(schema.field("next_service_id").type), str(schema.field("barber_scores").type)
    ('int64', 'list<item: double>')
    """
    import pyarrow as pa

    types = {"timestamp": pa.timestamp("ns"), "float": pa.float64(), "int": pa.int64(),
             "bool": pa.bool_(), "string": pa.string(), "int list": pa.list_(pa.int64()),
             "float list": pa.list_(pa.float64())}
    declared = {f"reason_{i}{suffix}": kind for i in range(1, n_reasons + 1)
                for suffix, kind in (("", "string"), ("_group", "string"),
                                     ("_impact", "float"))} | FRAME_COLUMN_TYPES
    schema = pa.schema([pa.field("customer_id", pa.int64())]
                       + [pa.field(name, types[declared[name]])
                          for name in frame_columns(reasons=reasons, n_reasons=n_reasons)])
    # the pandas metadata (the index column) of a zero-row frame of the schema
    empty = schema.empty_table().to_pandas().set_index("customer_id")
    return pa.Table.from_pandas(empty, schema=schema, preserve_index=True).schema


def top_barbers(recs: RecommenderModel, customer_ids: np.ndarray, neighborhoods: np.ndarray,
                working: pd.Index, n: int) -> tuple[list[list[int]], list[list[float]]]:
    """Up to ``n`` barbers per customer from the recommender, among the ``working`` ones.

    What every path that recommends barbers runs (:meth:`CustomerScorer.score_frame`, the
    profiles, :mod:`barberpro_ml.spark`): the model is asked for a few more than ``n`` (barbers
    who left after it was trained are dropped here, so the customer still gets ``n``), each
    customer's best ``n`` still working are kept, in the model's order.

    Parameters
    ----------
    recs
        The loaded recommender.
    customer_ids
        The customers (``int64``), in output order.
    neighborhoods
        Each customer's neighborhood (the model's cold-start group), same order.
    working
        Barbers working at ``as_of``
        (:func:`~barberpro_ml.scoring.snapshot.working_providers`).
    n
        Barbers per customer.

    Returns
    -------
    tuple of list
        Provider ids and scores per customer (``[]``: none), best first.
    """
    assert recs.spec is not None
    users = np.asarray(customer_ids, dtype=np.int64)

    def empty() -> tuple[list[list[int]], list[list[float]]]:
        return [[] for _ in range(len(users))], [[] for _ in range(len(users))]

    if not len(users) or not len(working):
        return empty()  # no barber working yet (before the first joined): nothing to suggest
    k = min(n + 5, recs.spec.max_k)
    request = pd.DataFrame({"user_id": users, "k": np.full(len(users), k, dtype=np.int64)})
    if recs.spec.group_column:
        request[recs.spec.group_column] = neighborhoods
    found = recs.predict(None, request)
    user = found["user_id"].to_numpy(dtype=np.int64)
    item = found["item_id"].to_numpy(dtype=np.int64)
    score = found["score"].to_numpy(dtype=np.float64)
    keep_working = np.isin(item, working.to_numpy())
    user, item, score = user[keep_working], item[keep_working], score[keep_working]
    if not len(user):
        return empty()
    # rows come grouped by user in request order, best first: keep each user's first n
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    run = np.diff(np.r_[starts, len(user)])
    within = np.arange(len(user)) - np.repeat(starts, run)
    keep = within < n
    user, item, score = user[keep], item[keep], score[keep]
    bounds = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    # each requested user's run of rows (an empty run for a user without any), then one
    # slice of two flat Python lists per user: no NumPy call per customer
    group = pd.Index(user[bounds]).get_indexer(users)
    found_any = group >= 0
    lo = np.zeros(len(users), dtype=np.int64)
    hi = np.zeros(len(users), dtype=np.int64)
    lo[found_any] = bounds[group[found_any]]
    hi[found_any] = np.r_[bounds[1:], len(user)][group[found_any]]
    items, values = item.tolist(), score.tolist()
    spans = list(zip(lo.tolist(), hi.tolist(), strict=True))
    return ([items[a:b] for a, b in spans], [values[a:b] for a, b in spans])


def _set_threads(estimator: Any, n_jobs: int) -> None:
    """Predict with ``n_jobs`` threads: the estimator's parameter and its fitted booster's."""
    if "n_jobs" in getattr(estimator, "get_params", dict)():
        estimator.set_params(n_jobs=n_jobs)
        inner = getattr(estimator, "estimator_", None)
        if inner is not None and "n_jobs" in inner.get_params():
            inner.set_params(n_jobs=n_jobs)


def _agreed_definitions(tagged: dict[str, Definitions], refs: dict[str, ModelRef],
                        given: Definitions | None) -> Definitions:
    """The one set of definitions the loaded versions were trained with.

    Raises
    ------
    InputError
        Two versions disagree (names both and the differing fields), or ``given`` disagrees
        with them.
    """
    if not tagged:
        return given if given is not None else DEFAULT_DEFINITIONS
    (first, base), *others = tagged.items()
    for family, other in others:
        if other != base:
            fields = sorted(k for k, v in base.model_dump().items()
                            if other.model_dump()[k] != v)
            raise InputError(
                f"the served models were trained under different definitions: "
                f"{_ref_label(refs[first])} and {_ref_label(refs[family])} differ in "
                + ", ".join(f"{k} ({getattr(base, k)} vs {getattr(other, k)})" for k in fields)
                + "; retrain one of them so they agree")
    if given is not None and given != base:
        fields = sorted(k for k, v in base.model_dump().items() if given.model_dump()[k] != v)
        raise InputError(f"definitions given ({', '.join(fields)}) differ from those the served "
                         f"models were trained with ({base.model_dump()})")
    return base


def _ltv_bgnbd(ltv: EstimatorModel | RecommenderModel, ref: ModelRef, tracking_uri: str
               ) -> tuple[BetaGeoModel | None, str]:
    """The BG/NBD of the LTV model: registered inside it (:attr:`PyfuncSpec.clv_params`), or,
    for versions registered before that, the ``clv/clv_params.json`` artifact of its run.

    Returns the model, or None and why there is none (the probability alive is then null).
    """
    params = (ltv.spec.clv_params if isinstance(ltv, EstimatorModel) and ltv.spec is not None
              else None)
    if params is None:
        params = _run_clv_params(ref, tracking_uri)
    if params is None:
        return None, (f"{_ref_label(ref)} carries no BG/NBD parameters (registered without "
                      f"clv_params, and its run has no {CLV_PARAMS_ARTIFACT}); retrain it with "
                      "`barberpro-ml train ltv`")
    model = BetaGeoModel()
    model.params_ = BetaGeoParams(**{k: float(v) for k, v in params.bgnbd.items()})
    return model, ""


def _run_clv_params(ltv: ModelRef, tracking_uri: str) -> ClvParams | None:
    """The fallback: ``clv/clv_params.json`` of the LTV version's run, or None if absent."""
    if ltv.run_id is None:
        return None
    client = MlflowClient(tracking_uri=tracking_uri)
    listed = {f.path for f in client.list_artifacts(ltv.run_id, CLV_PARAMS_ARTIFACT.split("/")[0])}
    if CLV_PARAMS_ARTIFACT not in listed:
        return None
    with tempfile.TemporaryDirectory(prefix="barberpro-clv-") as tmp:
        path = client.download_artifacts(ltv.run_id, CLV_PARAMS_ARTIFACT, tmp)
        return ClvParams.model_validate(mlflow.artifacts.load_dict(path))
