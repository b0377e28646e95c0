"""What a running service answers with -- models and event data -- replaced while it serves.

:class:`LiveScorer` holds one :class:`Served`: a :class:`~barberpro_ml.scoring.CustomerScorer`,
the :class:`~barberpro_ml.data.MarketplaceData` it scores and the default cut-off. A reload
builds a complete new :class:`Served` beside the old one and then replaces the one reference
under a lock. A request takes :attr:`LiveScorer.current` once, at its start, and answers from
that object to the end, so a request in flight finishes on the models and data it started
with, and no request waits for a reload or fails because of one.

Models (:meth:`LiveScorer.poll_models`, every ``poll_interval`` seconds): the registry is asked
where each family's alias points now (one call per family, and one for the uplift model the
retention offers follow, ``barberpro-uplift``: a new verified champion changes who gets an
offer without a restart, and the first one replaces the pooled-campaign rule). A family whose
alias moved is
loaded with :func:`~barberpro_ml.scoring.scorer.load_family`, which for ``@champion`` applies
the check the scorer applies at start: only a verified champion (a passing gate result bound to
the version and a promotion-log entry) is loaded. The new scorer (the moved families new, the
others the very objects already served) then builds the default snapshot, which also checks
every model's feature schema against the data, and only then replaces the served one. A version
that does not verify, cannot be loaded, disagrees with the other served versions on the
definitions or does not fit the data is not swapped in: the old version keeps serving, and
:meth:`LiveScorer.status` (``/health``) names the version and why. It is tried again at the
next poll (a transient artifact-store failure heals; a refused version is served as soon as it
verifies).

Data (:meth:`LiveScorer.refresh_data`, every ``data_refresh_interval`` seconds or on
``POST /admin/refresh``): the event data are read again from the same source (``load_data``),
the served scorer builds their default snapshot, then the data are swapped. The default
cut-off follows the data's last event, unless the service was started with a fixed one.

Reloads run one at a time (a poll and a refresh never overlap) in the calling thread;
:meth:`LiveScorer.start` runs them on their intervals in daemon threads, :meth:`LiveScorer.stop`
ends those. Nothing a reload raises reaches a request: each attempt (when, outcome, error) is
kept for ``/health``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import mlflow
import pandas as pd
from mlflow import MlflowClient
from pydantic import BaseModel, ConfigDict, Field

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import BarberproError, ModelUnavailableError, UnverifiedChampionError
from barberpro_ml.features._common import to_as_of
from barberpro_ml.registry.promotion import CHAMPION, alias_version
from barberpro_ml.scoring.scorer import FAMILIES, CustomerScorer, LoadedFamily, load_family
from barberpro_ml.scoring.snapshot import CustomerSnapshot

__all__ = ["LiveScorer", "LiveStatus", "NoDataSourceError", "ReloadAttempt", "Served"]

log = logging.getLogger("barberpro_ml.service")

Outcome = Literal["swapped", "refused", "failed"]


def _now() -> datetime:
    return datetime.now(UTC)


class NoDataSourceError(BarberproError):
    """A data refresh was asked of a service started with data in memory, not from a source."""

    http_status = 409


@dataclass(frozen=True)
class Served:
    """Everything one request answers from, taken once at its start."""

    scorer: CustomerScorer
    data: MarketplaceData
    default_as_of: pd.Timestamp
    """The cut-off of a request that gives none."""
    data_loaded_at: datetime
    models_loaded_at: datetime

    def cutoff(self, as_of: object = None) -> pd.Timestamp:
        """``as_of`` as naive UTC, or the default cut-off when it is None."""
        return self.default_as_of if as_of is None else to_as_of(as_of, to_utc=True)


class ReloadAttempt(BaseModel):
    """One attempt to swap in new models or new data (``/health``, ``POST /admin/refresh``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["models", "data"]
    started_at: datetime
    seconds: float = Field(description="How long the attempt took (loading, verifying, "
                                       "building the default snapshot).")
    outcome: Outcome = Field(description="`swapped`: something new is served; `refused`: the "
                                         "registry's version does not verify (or is gone); "
                                         "`failed`: an error stopped it. The old models or "
                                         "data keep serving unless swapped.")
    detail: str
    error: str | None = Field(None, description="Type of the first error, when one occurred.")
    swapped: dict[str, str] = Field(default_factory=dict,
                                    description="Family -> version now served.")
    not_swapped: dict[str, str] = Field(default_factory=dict,
                                        description="Family -> why the version the registry "
                                                    "points to is not served.")


class LiveStatus(BaseModel):
    """How the service follows the registry and the data (part of ``/health``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alias: str
    poll_interval_s: float = Field(description="Registry polling interval (0: off).")
    data_refresh_interval_s: float = Field(description="Data refresh interval (0: off).")
    data_source: str | None = Field(description="Where the data are reloaded from (None: "
                                                "data given in memory, no refresh).")
    models_loaded_at: datetime
    data_loaded_at: datetime
    last_poll_at: datetime | None = Field(description="When the registry was last asked.")
    last_model_reload: ReloadAttempt | None = Field(
        description="The last poll that found an alias moved (None: none yet).")
    last_data_refresh: ReloadAttempt | None
    not_swapped: dict[str, str] = Field(
        description="Family -> why the version its alias points to now is not served "
                    "(empty: the registry's versions are the ones served).")


class LiveScorer:
    """The models and data a service answers with, swapped atomically while it serves.

    Parameters
    ----------
    scorer
        The models served at start (:meth:`CustomerScorer.from_registry`); their registered
        names and alias are the ones followed.
    data
        The event data served at start.
    default_as_of
        A fixed default cut-off; None: the data's last event, following refreshed data.
    load_data
        Reads the event data again from their source (a folder, a database); None: the data
        cannot be refreshed.
    data_source
        How the source is described in ``/health`` (a path, a URI without credentials).
    tracking_uri
        The registry to follow (default: the current tracking URI).
    poll_interval, data_refresh_interval
        Seconds between registry polls / data refreshes by :meth:`start` (0: off).
    warm
        Build the default snapshot now (a feature-schema mismatch stops the service at start,
        not at the first request).

    Raises
    ------
    ValueError
        A negative interval, or a data refresh interval without ``load_data``.

    Examples
    --------
    >>> live = LiveScorer(CustomerScorer.from_registry(), data, poll_interval=30,
    ...                   load_data=lambda: MarketplaceData.load("data/events"))  # doctest: +SKIP
    >>> live.poll_models()  # one poll now (None: nothing moved)          # doctest: +SKIP
    >>> served = live.current  # what one request answers from            # doctest: +SKIP
    """

    def __init__(self, scorer: CustomerScorer, data: MarketplaceData, *,
                 default_as_of: object = None,
                 load_data: Callable[[], MarketplaceData] | None = None,
                 data_source: str | None = None, tracking_uri: str | None = None,
                 poll_interval: float = 0.0, data_refresh_interval: float = 0.0,
                 warm: bool = True) -> None:
        for name, value in (("poll_interval", poll_interval),
                            ("data_refresh_interval", data_refresh_interval)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0 seconds (0: off), got {value}")
        if data_refresh_interval and load_data is None:
            raise ValueError("data_refresh_interval needs load_data: where to read the data from")
        self.poll_interval = float(poll_interval)
        self.data_refresh_interval = float(data_refresh_interval)
        self.alias = next((ref.alias for ref in scorer.models.values()), CHAMPION)
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.data_source = data_source if load_data is not None else None
        self._load_data = load_data
        self._fixed_as_of = (None if default_as_of is None
                             else to_as_of(default_as_of, "default_as_of", to_utc=True))
        default = self._fixed_as_of if self._fixed_as_of is not None else data.observation_end
        if warm:
            _warm(scorer.snapshot(data, default))
        now = _now()
        self._current = Served(scorer=scorer, data=data, default_as_of=default,
                               data_loaded_at=now, models_loaded_at=now)
        self._lock = threading.Lock()  # guards the one reference; held for an assignment
        self._reloading = threading.Lock()  # one reload at a time
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_poll_at: datetime | None = None
        self._models_attempt: ReloadAttempt | None = None
        self._data_attempt: ReloadAttempt | None = None
        self._not_swapped: dict[str, str] = {}

    @property
    def current(self) -> Served:
        """What to answer a request with; take it once per request."""
        with self._lock:
            return self._current

    def _swap(self, fresh: Served) -> None:
        # ``fresh`` is built from the Served a reload started from, which is still the current
        # one: reloads hold ``_reloading``, so a model swap never undoes a data swap or back
        with self._lock:
            self._current = fresh

    # ------------------------------------------------------------------------- models
    def poll_models(self) -> ReloadAttempt | None:
        """Ask the registry once; swap in every family whose alias moved to a version that
        verifies, loads and fits the data.

        Returns
        -------
        ReloadAttempt or None
            The attempt, or None when no alias has moved from the served versions. Never
            raises: errors are in the attempt (``outcome="failed"``).
        """
        with self._reloading:
            started, clock = _now(), time.perf_counter()
            served = self.current
            scorer = served.scorer
            notes: dict[str, str] = {}
            moved: dict[str, str] = {}
            try:
                client = MlflowClient(tracking_uri=self.tracking_uri,
                                      registry_uri=self.tracking_uri)
                # the four profile families, and the uplift model the offers follow
                for family in (*FAMILIES, "uplift"):
                    name = _name(scorer, family)
                    target = alias_version(name, self.alias, client=client)
                    ref = (scorer.uplift_ref if family == "uplift"
                           else scorer.models.get(family))
                    have = ref.version if ref is not None else None
                    if target == have:
                        continue
                    if target is None:
                        notes[family] = (f"{name} has no @{self.alias} any more; still serving "
                                         f"v{have}")
                    else:
                        moved[family] = target
            except Exception as exc:  # the registry is unreachable: report, keep serving
                return self._record_models(started, clock, "failed", dict(self._not_swapped),
                                           {}, exc,
                                           f"could not read the registry at "
                                           f"{self.tracking_uri}: {type(exc).__name__}: {exc}")
            finally:
                self._last_poll_at = started
            if not moved:
                self._note(notes)
                return None
            return self._load_moved(served, moved, notes, started, clock)

    def _load_moved(self, served: Served, moved: dict[str, str], notes: dict[str, str],
                    started: datetime, clock: float) -> ReloadAttempt:
        scorer = served.scorer
        loaded: dict[str, LoadedFamily] = {}
        error: BaseException | None = None
        for family, version in moved.items():
            name = _name(scorer, family)
            try:
                found = load_family(family, name, alias=self.alias,
                                    tracking_uri=self.tracking_uri)
            except (UnverifiedChampionError, ModelUnavailableError) as exc:
                notes[family] = f"v{getattr(exc, 'version', None) or version} refused: {exc}"
                continue
            except Exception as exc:  # any failure to load must leave the service serving
                notes[family] = f"loading {name} v{version} failed: {type(exc).__name__}: {exc}"
                error = error or exc
                continue
            loaded[family] = found
        swapped: dict[str, str] = {}
        if loaded:
            try:
                fresh = scorer.replacing(loaded, tracking_uri=self.tracking_uri)
                # warm (and check the schemas) before any request can see it
                _warm(fresh.snapshot(served.data, served.default_as_of))
            except Exception as exc:
                for family, found in loaded.items():
                    notes[family] = (f"{found.ref.name} v{found.ref.version} loaded but not "
                                     f"swapped in: {type(exc).__name__}: {exc}")
                error = error or exc
            else:
                self._swap(dataclasses.replace(served, scorer=fresh, models_loaded_at=_now()))
                swapped = {family: found.ref.version for family, found in loaded.items()}
        outcome: Outcome = "swapped" if swapped else "failed" if error else "refused"
        parts = [f"now serving {_name(scorer, f)} v{v} (was "
                 f"{_version(scorer, f)})" for f, v in swapped.items()]
        parts += [f"{family}: {why}" for family, why in notes.items()]
        return self._record_models(started, clock, outcome, notes, swapped, error,
                                   "; ".join(parts))

    def _record_models(self, started: datetime, clock: float, outcome: Outcome,
                       notes: dict[str, str], swapped: dict[str, str],
                       error: BaseException | None, detail: str) -> ReloadAttempt:
        attempt = ReloadAttempt(kind="models", started_at=started,
                                seconds=round(time.perf_counter() - clock, 3), outcome=outcome,
                                detail=detail, error=type(error).__name__ if error else None,
                                swapped=swapped, not_swapped=notes)
        self._models_attempt = attempt
        if swapped:
            log.info("models swapped in %.2f s: %s", attempt.seconds, detail)
        self._note(notes)
        return attempt

    def _note(self, notes: dict[str, str]) -> None:
        for family, why in notes.items():
            if self._not_swapped.get(family) != why:  # once per new reason, not every poll
                log.warning("not swapping %s: %s", family, why)
        self._not_swapped = dict(notes)

    # ------------------------------------------------------------------------- data
    def refresh_data(self, *, raise_errors: bool = False) -> ReloadAttempt:
        """Read the event data again from their source and swap them in.

        The served scorer builds the new data's default snapshot first (which checks the
        models' feature schemas): data it cannot score are not swapped in.

        Parameters
        ----------
        raise_errors
            Re-raise what stopped the refresh (after recording it) instead of only recording
            it: ``POST /admin/refresh`` answers with the error's status.

        Raises
        ------
        NoDataSourceError
            The data were given in memory, with no ``load_data`` to read them again.
        """
        if self._load_data is None:
            raise NoDataSourceError("this service was started with data in memory, not from a "
                                    "source, so there is nothing to refresh them from; start it "
                                    "with `barberpro-ml serve --data FOLDER`")
        with self._reloading:
            started, clock = _now(), time.perf_counter()
            served = self.current
            try:
                data = self._load_data()
                default = (self._fixed_as_of if self._fixed_as_of is not None
                           else data.observation_end)
                served.scorer.snapshot(data, default)
            except Exception as exc:
                self._data_attempt = ReloadAttempt(
                    kind="data", started_at=started,
                    seconds=round(time.perf_counter() - clock, 3), outcome="failed",
                    detail=f"kept the data loaded at {served.data_loaded_at:%Y-%m-%d %H:%M:%S} "
                           f"UTC: {type(exc).__name__}: {exc}", error=type(exc).__name__)
                log.warning("data refresh failed: %s", self._data_attempt.detail)
                if raise_errors:
                    raise
                return self._data_attempt
            self._swap(dataclasses.replace(served, data=data, default_as_of=default,
                                           data_loaded_at=_now()))
            before = len(served.data.customers)
            self._data_attempt = ReloadAttempt(
                kind="data", started_at=started, seconds=round(time.perf_counter() - clock, 3),
                outcome="swapped",
                detail=f"events up to {data.observation_end} (were up to "
                       f"{served.data.observation_end}), {len(data.customers):,} customers "
                       f"(were {before:,}); default as_of {default}")
            log.info("data swapped in %.2f s: %s", self._data_attempt.seconds,
                     self._data_attempt.detail)
            return self._data_attempt

    # ------------------------------------------------------------------------- threads
    def start(self) -> None:
        """Poll the registry and refresh the data on their intervals, in daemon threads (the
        intervals that are 0 are off). Calling it again while running does nothing."""
        if self._threads:
            return
        self._stop.clear()
        jobs: tuple[tuple[float, Callable[[], object], str], ...] = (
            (self.poll_interval, self.poll_models, "registry-poll"),
            (self.data_refresh_interval, self.refresh_data, "data-refresh"))
        for interval, job, name in jobs:
            if interval > 0:
                thread = threading.Thread(target=self._every, args=(interval, job),
                                          name=f"barberpro-{name}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background reloads (a reload under way finishes first, up to ``timeout``)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def _every(self, interval: float, job: Callable[[], object]) -> None:
        while not self._stop.wait(interval):
            try:
                job()
            except Exception:  # the reloads record their own errors: this is a bug
                log.exception("background reload crashed; it runs again in %s s", interval)

    # ------------------------------------------------------------------------- reporting
    def status(self, served: Served | None = None) -> LiveStatus:
        """The reload state, for ``/health`` (``served``: the request's :class:`Served`, so
        that one answer describes one state; default: the current one)."""
        served = served or self.current
        return LiveStatus(
            alias=self.alias, poll_interval_s=self.poll_interval,
            data_refresh_interval_s=self.data_refresh_interval, data_source=self.data_source,
            models_loaded_at=served.models_loaded_at, data_loaded_at=served.data_loaded_at,
            last_poll_at=self._last_poll_at, last_model_reload=self._models_attempt,
            last_data_refresh=self._data_attempt, not_swapped=dict(self._not_swapped))


def _name(scorer: CustomerScorer, family: str) -> str:
    """The registered model a family is served from (``uplift``: the offers' model)."""
    return scorer.uplift_name if family == "uplift" else scorer.status[family].name


def _version(scorer: CustomerScorer, family: str) -> str:
    ref = scorer.uplift_ref if family == "uplift" else scorer.models.get(family)
    return f"v{ref.version}" if ref is not None else "not served"


def _warm(snapshot: CustomerSnapshot) -> None:
    """Build the customer index's lookup table before requests share the snapshot.

    pandas builds an Index's hash table on its first lookup, and that first build is not
    thread-safe; concurrent first requests on a fresh snapshot must find it built.
    """
    index = snapshot.features.index
    if len(index) and index.is_unique:
        index.get_indexer(index[:1])
