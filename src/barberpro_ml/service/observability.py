"""Request ids, JSON logs and Prometheus metrics of the service.

- Request id: ``X-Request-ID`` is taken from the request when it is a sane token (1 to 128 of
  ``A-Z a-z 0-9 . _ -``), else a new one is made; it is returned in the answer's
  ``X-Request-ID`` and carried by every log line written while the request runs. The answer
  also says how long it took to start (``X-Process-Time-Ms``), from this one pure ASGI
  layer (no ``BaseHTTPMiddleware``, whose task group and streams cost more per request).
- Logs: :class:`JsonFormatter` writes one JSON object per line (``ts``, ``level``, ``logger``,
  ``message``, ``request_id`` and the record's extra fields); each request writes one
  ``request`` line (method, route template, status, duration, key id; never a key).
- Metrics (``GET /metrics``, Prometheus text format, no key: bind the service to an internal
  interface): ``barberpro_http_requests_total`` and ``barberpro_http_request_duration_seconds``
  by route template, method and status; ``barberpro_scoring_duration_seconds`` for the routes
  that score customers; ``barberpro_model_version_info`` (1 per served family, name, version);
  ``barberpro_snapshot_cache_events_total`` by ``event`` (``hit``, ``miss``: a snapshot built,
  ``eviction``) of the scorer's snapshot cache.
  With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before the
  workers start: each writes its samples there and ``/metrics`` sums them over all workers
  (prometheus_client's multiprocess mode).
- Usage: with a key store, every answered request is also counted in the service's database,
  per (UTC day, key id or ``anonymous``, route template, status class) with its summed
  latency (:meth:`~barberpro_ml.service.keys.KeyStore.record_usage`): one atomic ``UPDATE``
  after the answer is sent, in a worker thread (the event loop does not wait on the
  database). ``/v1/api-management/analytics`` and the health report read it; unlike the
  Prometheus counters it is shared by all workers without a shared folder and survives
  restarts.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["JsonFormatter", "Observability", "count_snapshot_cache", "forget_dead_workers",
           "metrics_response", "request_id", "set_model_versions"]

_REQUEST_ID = contextvars.ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_LATENCY_BUCKETS = (.002, .005, .01, .025, .05, .1, .2, .3, .5, 1, 2, 5, 10)
access_log = logging.getLogger("barberpro_ml.service.access")

REQUESTS = Counter("barberpro_http_requests", "HTTP requests answered.",
                   ["route", "method", "status"])
LATENCY = Histogram("barberpro_http_request_duration_seconds",
                    "Time from request to the answer's start.", ["route", "method", "status"],
                    buckets=_LATENCY_BUCKETS)
SCORING = Histogram("barberpro_scoring_duration_seconds",
                    "Latency of the routes that score customers (profiles, batches, "
                    "recommendations, journeys).", ["route"], buckets=_LATENCY_BUCKETS)
MODELS = Gauge("barberpro_model_version_info", "1 for each model family and version served.",
               ["family", "name", "version"], multiprocess_mode="liveall")
SNAPSHOT_CACHE = Counter("barberpro_snapshot_cache_events",
                         "Snapshot cache events of the scorer: hit, miss (a snapshot built), "
                         "eviction.", ["event"])


def count_snapshot_cache(event: str) -> None:
    """Count one snapshot cache event (the scorer's ``on_snapshot_cache``)."""
    SNAPSHOT_CACHE.labels(event).inc()


def request_id() -> str:
    """The id of the request being served ("-" outside a request)."""
    return _REQUEST_ID.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ``Z``), ``level``, ``logger``, ``message``,
    ``request_id``, the exception if any, and the extra fields given to the call."""

    _STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": record.levelname, "logger": record.name,
            "message": record.getMessage(), "request_id": _REQUEST_ID.get()}
        line.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def set_model_versions(models: Mapping[str, Any]) -> None:
    """Record the served versions (``family -> ModelRef``) in ``barberpro_model_version_info``."""
    MODELS.clear()
    for family, ref in models.items():
        MODELS.labels(family=family, name=ref.name, version=ref.version).set(1)


def forget_dead_workers(folder: str | Path) -> list[int]:
    """Remove the live-gauge samples (``gauge_live*_<pid>.db``) of worker processes that no
    longer run, as :func:`prometheus_client.multiprocess.mark_process_dead` does; uvicorn,
    which restarts a dead worker, never calls it, so without this ``/metrics`` would go on
    reporting the model versions a crashed worker served. A process id now used by another
    process is taken as alive (its samples are kept). Counters and histograms of dead
    workers stay: their totals are still the service's.

    Returns
    -------
    list of int
        The process ids whose samples were removed.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / f"gauge_liveall_{os.getpid()}.db").write_bytes(b"")
    >>> forget_dead_workers(folder)
    []
    """
    dead: set[int] = set()
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid_text = path.stem.rsplit("_", 1)[-1]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.add(pid)
        except PermissionError:  # alive, another user's
            continue
    for pid in sorted(dead):
        prometheus_multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]
    return sorted(dead)


def metrics_response(_: Request) -> Response:
    """``GET /metrics``: this process's metrics, or every worker's in multiprocess mode
    (live gauges of workers that died first removed, :func:`forget_dead_workers`)."""
    if folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        forget_dead_workers(folder)
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class Observability:
    """ASGI middleware: the request id, one access log line, the metrics and, given
    ``record_usage`` (``(key_id, route, status, seconds)``), the usage row per request:
    called in a worker thread when it writes to the database, in the event loop when it only
    counts in memory (``usage_in_memory``: the serving key store's buffered usage)."""

    def __init__(self, app: ASGIApp, scoring_prefixes: tuple[str, ...] = (),
                 record_usage: Callable[[str | None, str, int, float], None] | None = None,
                 usage_in_memory: bool = False) -> None:
        self.app, self.scoring_prefixes = app, scoring_prefixes
        self.record_usage = record_usage
        self.usage_in_memory = usage_in_memory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", ())).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        token = _REQUEST_ID.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took = f"{(time.perf_counter() - start) * 1e3:.2f}".encode()
                message = {**message, "headers": [*message.get("headers", []),
                                                   (b"x-request-id", rid.encode()),
                                                   (b"x-process-time-ms", took)]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = _route(scope)
            method = scope["method"]
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route, method, str(status)).observe(elapsed)
            if route.startswith(self.scoring_prefixes):
                SCORING.labels(route).observe(elapsed)
            caller = scope.get("state", {}).get("caller")
            key_id = getattr(caller, "key_id", None)
            access_log.info("request", extra={
                "method": method, "route": route, "path": scope["path"], "status": status,
                "duration_ms": round(elapsed * 1e3, 2), "key_id": key_id})
            if self.record_usage is not None:
                try:
                    if self.usage_in_memory:  # a dict update under a lock: no thread hop
                        self.record_usage(key_id, route, status, elapsed)
                    else:
                        await anyio.to_thread.run_sync(self.record_usage, key_id, route,
                                                       status, elapsed)
                except Exception:  # the answer is sent; a lost count must not fail it
                    access_log.exception("usage of %s %s not recorded", method, route)
            _REQUEST_ID.reset(token)


def _route(scope: Scope) -> str:
    """The route template (``/v1/customers/{customer_id}/profile``), not the path: bounded
    label values whatever ids are asked for. FastAPI leaves the matched route (its path
    without the prefix it was included with) in the scope; the prefix is the path's leading
    segments (path parameters are single segments here)."""
    route = scope.get("route")
    suffix = getattr(route, "path", None)
    if not isinstance(suffix, str) or not suffix.startswith("/"):
        return "unmatched"
    parts = scope["path"].split("/")
    return "/".join(parts[:len(parts) - suffix.count("/")]) + suffix
