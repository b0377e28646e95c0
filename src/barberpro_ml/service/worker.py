"""``barberpro-ml serve --workers N``: the app of one uvicorn worker process, from the environment.

With several workers uvicorn starts each process afresh and imports the app by name
(``uvicorn barberpro_ml.service.worker:app --factory``), so the command line hands its options
to the workers in environment variables (:class:`ServeSettings`, ``BARBERPRO_SERVE_*``) and
each worker loads the models and the data itself. What the workers share lives outside them:

- the API keys, token buckets, daily quotas, failed-authentication counts and usage rows, in
  the service's database (``BARBERPRO_SERVICE_DB``): every request takes its token with one
  atomic ``UPDATE``, so a key's rate and quota hold across workers;
- the Prometheus samples, in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder per run, emptied
  before the workers start): ``/metrics`` on any worker sums every worker's counters and
  histograms.

What each worker keeps to itself: its loaded models, its copy of the data, its snapshot
cache (``/health`` reports the answering worker's) and its registry polling.

Environment variables (set by the command line; set them yourself to run
``uvicorn barberpro_ml.service.worker:app --factory --workers N`` directly):

=========================================  ================================================
``BARBERPRO_SERVE_DATA``                   event tables: a folder or a database URL
                                           (required)
``BARBERPRO_SERVE_HOST``                   the interface bound (``--auth off`` is refused
                                           unless it is a loopback one); ``127.0.0.1``
``BARBERPRO_SERVE_AUTH``                   ``keys`` (default) or ``off``
``BARBERPRO_SERVE_ALIAS``                  registry alias served; ``champion``
``BARBERPRO_SERVE_AS_OF``                  default cut-off; the data's last event
``BARBERPRO_SERVE_POLL_INTERVAL``          seconds between registry checks; ``30``
``BARBERPRO_SERVE_DATA_REFRESH_INTERVAL``  seconds between data reloads; ``0`` (off)
``BARBERPRO_SERVE_SNAPSHOT_CACHE``         snapshots kept per worker; ``4``
``BARBERPRO_SERVE_SNAPSHOT_CACHE_MIB``     their memory budget per worker; none
``BARBERPRO_SERVICE_DB``                   the service's database (keys, limits, usage)
``MLFLOW_TRACKING_URI``                    the registry
``PROMETHEUS_MULTIPROC_DIR``               the workers' shared metrics folder
=========================================  ================================================
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import signal
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from barberpro_ml.errors import BarberproError, InputError

__all__ = ["ENV_PREFIX", "FAILURE_FILE_ENV", "SUPERVISOR_ENV", "ServeSettings", "app",
           "configure_json_logging", "is_loopback", "read_start_failure", "reset_metrics_dir"]

ENV_PREFIX = "BARBERPRO_SERVE_"
"""Prefix of the environment variables of :class:`ServeSettings`."""
FAILURE_FILE_ENV = "BARBERPRO_SERVE_FAILURE_FILE"
"""Set by ``serve --workers``: where a worker that cannot start writes why (JSON), so the
command can stop every worker and report it instead of uvicorn restarting the worker."""
SUPERVISOR_ENV = "BARBERPRO_SERVE_SUPERVISOR_PID"
"""Set by ``serve --workers``: the process a worker that cannot start asks to stop (SIGTERM),
only when it is that worker's parent."""
log = logging.getLogger("barberpro_ml.service")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback interface (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServeSettings(BaseModel):
    """What one worker serves: the options of ``barberpro-ml serve`` that the workers need.

    Examples
    --------
    >>> env = ServeSettings(data="data/pipeline", snapshot_cache=40).to_env()
    >>> env["BARBERPRO_SERVE_SNAPSHOT_CACHE"]
    '40'
    >>> ServeSettings.from_env(env).snapshot_cache
    40
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str
    host: str = "127.0.0.1"
    auth: Literal["keys", "off"] = "keys"
    alias: str = "champion"
    as_of: datetime | None = None
    poll_interval: float = Field(30.0, ge=0)
    data_refresh_interval: float = Field(0.0, ge=0)
    snapshot_cache: int = Field(4, ge=1)
    snapshot_cache_mib: float | None = Field(None, gt=0)

    def to_env(self) -> dict[str, str]:
        """The ``BARBERPRO_SERVE_*`` variables holding these settings (unset ones left out)."""
        return {f"{ENV_PREFIX}{name.upper()}": (value.isoformat()
                                                 if isinstance(value, datetime) else str(value))
                for name, value in self.model_dump().items() if value is not None}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        """The settings in ``environ`` (default: :data:`os.environ`).

        Raises
        ------
        InputError
            ``BARBERPRO_SERVE_DATA`` missing, or a variable that does not parse (named).
        """
        env = os.environ if environ is None else environ
        given = {name: env[f"{ENV_PREFIX}{name.upper()}"] for name in cls.model_fields
                 if f"{ENV_PREFIX}{name.upper()}" in env}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            problems = "; ".join(f"{ENV_PREFIX}{str(e['loc'][0]).upper()}: {e['msg']}"
                                 for e in exc.errors())
            raise InputError(f"bad worker settings in the environment: {problems}") from None


def configure_json_logging() -> None:
    """The service's own log lines (swaps, refusals, one per request) as JSON on stderr,
    with request ids (:class:`~barberpro_ml.service.observability.JsonFormatter`)."""
    from barberpro_ml.service.observability import JsonFormatter

    service_log = logging.getLogger("barberpro_ml.service")
    if not service_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        service_log.addHandler(handler)
    service_log.setLevel(logging.INFO)


def reset_metrics_dir(folder: Path) -> Path:
    """Make ``folder`` an empty Prometheus multiprocess folder: samples of an earlier run
    would otherwise be summed into this one's."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    return folder


def app() -> FastAPI:
    """The app of one worker (uvicorn's ``--factory``), from :class:`ServeSettings` in the
    environment, with the registry of ``MLFLOW_TRACKING_URI`` and the keys of
    ``BARBERPRO_SERVICE_DB``.

    Under ``serve --workers`` (:data:`FAILURE_FILE_ENV` set), a worker that cannot start does
    not raise into uvicorn, which would print a traceback and start it again, forever: it logs
    one line (with the traceback only when the error is not one the user can act on, i.e. not
    a :class:`~barberpro_ml.errors.BarberproError`), writes the reason to the failure file,
    stops the server (:data:`SUPERVISOR_ENV`) and exits with the error's status; the command
    then reports it and exits with that status. Called any other way, the error is raised.
    """
    try:
        return _worker_app()
    except Exception as exc:
        if not os.environ.get(FAILURE_FILE_ENV):
            raise
        _report_start_failure(exc)
        raise SystemExit(exc.exit_code if isinstance(exc, BarberproError) else 1) from None


def _report_start_failure(exc: Exception) -> None:
    kind, message = type(exc).__name__, str(exc)
    if isinstance(exc, BarberproError):
        log.error("worker %d could not start: %s: %s", os.getpid(), kind, message)
        code = exc.exit_code
    else:  # a bug or a broken component: the traceback helps, once
        log.exception("worker %d could not start", os.getpid())
        code = 1
    try:  # the first worker to fail tells why; the others find the file there
        with Path(os.environ[FAILURE_FILE_ENV]).open("x", encoding="utf-8") as handle:
            json.dump({"kind": kind, "message": message, "exit_code": code,
                       "pid": os.getpid()}, handle)
    except FileExistsError:
        pass
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if supervisor.isdigit() and int(supervisor) == os.getppid():
        os.kill(int(supervisor), signal.SIGTERM)


def read_start_failure(path: Path) -> BarberproError | None:
    """The error a worker wrote to ``path`` (:data:`FAILURE_FILE_ENV`), as the library's error
    class of the same name (its exit status kept), or None when no worker failed."""
    from barberpro_ml import errors

    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    kind, message = str(record.get("kind")), record.get("message")
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, BarberproError):
        return cls(f"a worker could not start, so the server stopped: {message}")
    return errors.InfraError(f"a worker could not start, so the server stopped: {kind}: "
                             f"{message} (the traceback is in the log above)")


def _worker_app() -> FastAPI:
    from barberpro_ml.data import MarketplaceData
    from barberpro_ml.data.sources import load_source
    from barberpro_ml.registry import configure_tracking
    from barberpro_ml.scoring import CustomerScorer
    from barberpro_ml.scoring.live import LiveScorer
    from barberpro_ml.service.app import create_app
    from barberpro_ml.service.keys import SERVICE_KEY_CACHE_S, SERVICE_USAGE_FLUSH_S, KeyStore

    settings = ServeSettings.from_env()
    if settings.auth == "off" and not is_loopback(settings.host):
        raise InputError(f"auth off is allowed only on a loopback interface, not "
                         f"{settings.host}")
    configure_json_logging()
    configure_tracking(None)
    scorer = CustomerScorer.from_registry(alias=settings.alias,
                                          snapshot_cache=settings.snapshot_cache,
                                          snapshot_cache_mib=settings.snapshot_cache_mib)
    live = LiveScorer(scorer, load_source(settings.data).data, default_as_of=settings.as_of,
                      load_data=functools.partial(MarketplaceData.load, settings.data),
                      data_source=settings.data, poll_interval=settings.poll_interval,
                      data_refresh_interval=settings.data_refresh_interval)
    log.info("worker %d serving (snapshot cache %d)", os.getpid(), settings.snapshot_cache)
    return create_app(live, auth=settings.auth,
                      keys=KeyStore(key_cache_s=SERVICE_KEY_CACHE_S,
                                    usage_flush_s=SERVICE_USAGE_FLUSH_S))
