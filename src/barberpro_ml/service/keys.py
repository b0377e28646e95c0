"""API keys of the service: issued, checked and revoked in the service's database.

A key is ``bpk_<key_id>.<secret>``: ``key_id`` (16 hex digits) names the row, ``secret`` (32
random bytes, URL-safe base64) is shown once, when the key is made, and never stored or logged.
The database keeps, per key, a random 16-byte salt and the scrypt hash of the secret
(``hashlib.scrypt``, n=2**14, r=8, p=1: ~16 MiB and tens of milliseconds per hash, so a stolen
table is expensive to attack); a presented secret is hashed with the row's salt and compared in
constant time (:func:`hmac.compare_digest`).

Paying scrypt on every request would cost more than the request itself, so a process remembers
the SHA-256 of a secret it has verified once (in memory only; a 256-bit random secret cannot be
recovered from it). Every request still reads the key's row, so a revocation or a change of
scopes holds from the next request on, in every worker process. ``last_used_at`` is written at
most once a minute per key and process (a write per request would serialise the workers on the
database); failed authentications are counted in the database by reason.

The database is any SQLAlchemy URL: a SQLite file by default (:data:`DEFAULT_SERVICE_DB`, or
the environment variable :data:`SERVICE_DB_ENV`), PostgreSQL in production mode (the ``service``
database of ``barberpro-ml infra up``). Every write that several worker processes race on is one
atomic statement, on both: the token bucket is one conditional ``UPDATE`` (PostgreSQL, at READ
COMMITTED, which this module sets, makes a concurrent ``UPDATE`` wait for the row's lock and then
re-evaluate its ``WHERE`` and ``SET`` on the row's newest version [1]_; SQLite runs one writer at
a time), a missing first row is added with ``INSERT ... ON CONFLICT DO NOTHING`` and a counter's
with ``INSERT ... ON CONFLICT DO UPDATE SET count = count + 1``, so no transaction ever fails on
a duplicate key. Creating the tables at start is serialised on PostgreSQL by a transaction-level
advisory lock, so workers starting together on an empty database do not collide.

References
----------
.. [1] PostgreSQL documentation, 13.2.1 "Read Committed Isolation Level".
"""

from __future__ import annotations

import atexit
import builtins
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, get_args

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from barberpro_ml.errors import InfraError, InputError, NotFoundError
from barberpro_ml.service.errors import AuthenticationError

__all__ = ["ANONYMOUS", "DEFAULT_BURST", "DEFAULT_RATE_PER_S", "DEFAULT_SERVICE_DB",
           "SCOPES", "SERVICE_DB_ENV", "SERVICE_KEY_CACHE_S", "SERVICE_USAGE_FLUSH_S",
           "Allowance", "ApiKey", "IssuedKey", "KeyStore", "Scope",
           "UsageRow", "parse_scopes", "service_db_url"]

Scope = Literal["customers:read", "analytics:read", "providers:read", "admin"]
"""What a key may call: one scope per router; ``admin`` also grants every other scope."""
SCOPES: tuple[Scope, ...] = get_args(Scope)

SERVICE_DB_ENV = "BARBERPRO_SERVICE_DB"
"""Environment variable with the SQLAlchemy URL of the service's database."""
DEFAULT_SERVICE_DB = "sqlite:///barberpro-service.db"
"""The service's database when neither ``--db`` nor :data:`SERVICE_DB_ENV` names one."""

_TOKEN = re.compile(r"bpk_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_LAST_USED_EVERY_S = 60.0
SERVICE_KEY_CACHE_S = 1.0
"""How long a serving worker trusts a key it verified without reading its row again: a key
revoked by another process (``keys revoke``, another worker) is refused within this many
seconds; in the process that revoked it, at once."""
SERVICE_USAGE_FLUSH_S = 5.0
"""How often a serving worker writes the usage rows it counted in memory (and at exit):
``/api-management/analytics`` lags the other workers by at most this much. Every second, the
write landed in about one request in a hundred and showed at p99 (+1.3 ms, measured by
``benchmarks/bench_service.py``); every five seconds it does not."""
_CONSUME_ATTEMPTS = 8
DEFAULT_RATE_PER_S = 20.0
"""Requests per second a key may make on average (token bucket refill), unless set per key."""
DEFAULT_BURST = 40
"""Requests a key may make at once (token bucket size), unless set per key."""
ANONYMOUS = "anonymous"
"""The ``key_id`` of usage rows for requests made without a (valid) key."""

_metadata = sa.MetaData()
_keys = sa.Table(
    "api_keys", _metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, index=True),
    sa.Column("scopes", sa.String(256), nullable=False),
    sa.Column("salt", sa.LargeBinary(16), nullable=False),
    sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("revoked_at", sa.DateTime, nullable=True),
    sa.Column("last_used_at", sa.DateTime, nullable=True),
    sa.Column("rate_per_s", sa.Float, nullable=False),
    sa.Column("burst", sa.Integer, nullable=False),
    sa.Column("quota_per_day", sa.Integer, nullable=True),
)
# at most one active key per name, also when two `keys create` race (partial unique index)
sa.Index("api_keys_active_name", _keys.c.name, unique=True,
         sqlite_where=_keys.c.revoked_at.is_(None),
         postgresql_where=_keys.c.revoked_at.is_(None))
_buckets = sa.Table(
    "rate_limits", _metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("day_count", sa.BigInteger, nullable=False),
)
_usage = sa.Table(
    "api_usage", _metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("route", sa.String(256), primary_key=True),
    sa.Column("status_class", sa.String(3), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("latency_s", sa.Float, nullable=False),
)
_failures = sa.Table(
    "auth_failures", _metadata,
    sa.Column("reason", sa.String(32), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("last_at", sa.DateTime, nullable=False),
)


def service_db_url(url: str | None = None) -> str:
    """``url``, else the environment variable :data:`SERVICE_DB_ENV`, else
    :data:`DEFAULT_SERVICE_DB`."""
    return url or os.environ.get(SERVICE_DB_ENV) or DEFAULT_SERVICE_DB


def parse_scopes(text: str | Iterable[str]) -> tuple[Scope, ...]:
    """Scopes from ``"customers:read,analytics:read"`` (or a list), checked and sorted.

    Raises
    ------
    InputError
        An empty list or a scope that does not exist (naming it and the valid ones).
    """
    given = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    given = [s for s in given if s]
    unknown = sorted({s for s in given if s not in SCOPES})
    if unknown:
        raise InputError(f"unknown scope(s) {', '.join(unknown)}; valid scopes: "
                         f"{', '.join(SCOPES)}")
    if not given:
        raise InputError(f"no scope given; valid scopes: {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in given)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


class ApiKey(BaseModel):
    """A key as the store describes it: never its secret or hash."""

    key_id: str
    name: str = Field(description="The key holder (a partner's name, say).")
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Last successful use (to the minute).")
    rate_per_s: float = Field(description="Token bucket refill: requests per second.")
    burst: int = Field(description="Token bucket size: requests at once.")
    quota_per_day: int | None = Field(description="Requests per UTC day; null: no quota.")

    def allows(self, scope: Scope) -> bool:
        """Whether this key may call a route needing ``scope`` (``admin`` may call all)."""
        return scope in self.scopes or "admin" in self.scopes


class Allowance(BaseModel):
    """Whether a request may go ahead, else why and how long to wait."""

    allowed: bool
    reason: Literal["rate", "quota"] | None = None
    retry_after: float = 0.0


class UsageRow(BaseModel):
    """Requests of one UTC day, key, route template and status class, and their latency."""

    day: date
    key_id: str = Field(description="The key's id, or 'anonymous' (no key, or a refused one).")
    route: str = Field(description="Route template ('/v1/customers/{customer_id}/profile'), "
                                   "or 'unmatched' for paths no route answers.")
    status_class: str = Field(description="'2xx', '3xx', '4xx' or '5xx'.")
    requests: int
    latency_s: float = Field(description="Summed time from request to the answer's end.")


class IssuedKey(BaseModel):
    """A new key: ``token`` is what the holder sends; it is shown this once."""

    key: ApiKey
    token: str


class KeyStore:
    """API keys and failed-authentication counts in a SQLAlchemy database.

    Parameters
    ----------
    url
        SQLAlchemy URL (default: :func:`service_db_url`); the tables are created if missing.
    key_cache_s
        Seconds a verified key is trusted without reading its row again (0, the default: every
        :meth:`authenticate` reads it). The service uses :data:`SERVICE_KEY_CACHE_S`.
    usage_flush_s
        Seconds :meth:`record_usage` counts in memory before writing (0, the default: one
        write per call). Positive: a background thread writes every ``usage_flush_s`` and at
        exit; :meth:`usage` and :meth:`flush_usage` write this store's counts first. The
        service uses :data:`SERVICE_USAGE_FLUSH_S`. The token bucket and the quotas are never
        cached: every :meth:`consume` is one atomic ``UPDATE``.

    Examples
    --------
    >>> store = KeyStore("sqlite://")
    >>> issued = store.create("partner-x", "customers:read")
    >>> store.authenticate(issued.token).name
    'partner-x'
    >>> store.revoke("partner-x").revoked_at is not None
    True
    """

    def __init__(self, url: str | None = None, *, key_cache_s: float = 0.0,
                 usage_flush_s: float = 0.0) -> None:
        if key_cache_s < 0 or usage_flush_s < 0:
            raise InputError(f"key_cache_s and usage_flush_s must be >= 0, got {key_cache_s} "
                             f"and {usage_flush_s}")
        self.url = service_db_url(url)
        self.key_cache_s = key_cache_s
        self.usage_flush_s = usage_flush_s
        self.engine: Engine = _engine(self.url)
        _create_tables(self.engine)
        self._verified: dict[str, bytes] = {}
        self._trusted: dict[str, tuple[ApiKey, float]] = {}
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, str, str], list[float]] = {}
        self._local = threading.local()
        database = self.engine.url.database
        self._sqlite_file = (database if self.engine.dialect.name == "sqlite" and database
                             and database != ":memory:" else None)
        self._flusher: threading.Thread | None = None
        self._flush_lock = threading.Lock()

    # -- administration (the command line)
    def create(self, name: str, scopes: str | Iterable[str], *,
               rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST,
               quota_per_day: int | None = None) -> IssuedKey:
        """A new key for ``name`` with ``scopes``; the token is returned once, not stored.

        ``rate_per_s`` and ``burst`` set its token bucket, ``quota_per_day`` its requests per
        UTC day (None: no quota).

        Raises
        ------
        InputError
            A bad name or scope, or an active key of that name already exists.
        """
        if not _NAME.fullmatch(name):
            raise InputError(f"bad key name {name!r}: 1 to 64 letters, digits, '.', '_' or "
                             "'-', starting with a letter or digit")
        checked = parse_scopes(scopes)
        if not (rate_per_s > 0 and burst >= 1 and (quota_per_day is None or quota_per_day >= 1)):
            raise InputError(f"bad limits for key {name!r}: rate {rate_per_s} must be > 0, "
                             f"burst {burst} and quota per day {quota_per_day} at least 1")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        row = {"key_id": key_id, "name": name, "scopes": ",".join(checked), "salt": salt,
               "secret_hash": _hash(secret, salt), "created_at": _now(), "revoked_at": None,
               "last_used_at": None, "rate_per_s": float(rate_per_s), "burst": int(burst),
               "quota_per_day": quota_per_day}
        try:
            with self.engine.begin() as conn:
                _durable(conn)
                active = conn.execute(sa.select(_keys.c.key_id).where(
                    _keys.c.name == name, _keys.c.revoked_at.is_(None))).first()
                if active is None:
                    conn.execute(_keys.insert().values(**row))
        except IntegrityError:  # another `keys create` of that name committed in between
            active = None
            with self.engine.connect() as conn:
                active = conn.execute(sa.select(_keys.c.key_id).where(
                    _keys.c.name == name, _keys.c.revoked_at.is_(None))).first()
            if active is None:
                raise
        if active is not None:
            raise InputError(f"an active key named {name!r} exists ({active.key_id}); "
                             "revoke it first or choose another name")
        return IssuedKey(key=_record(row), token=f"bpk_{key_id}.{secret}")

    def revoke(self, name_or_id: str) -> ApiKey:
        """Revoke the active key of that name, or the key with that id.

        Raises
        ------
        NotFoundError
            No active key has that name or id.
        """
        with self.engine.begin() as conn:
            _durable(conn)
            row = conn.execute(sa.select(_keys).where(
                sa.or_(_keys.c.name == name_or_id, _keys.c.key_id == name_or_id),
                _keys.c.revoked_at.is_(None))).first()
            if row is None:
                raise NotFoundError(f"no active key named or with id {name_or_id!r} "
                                    "(`barberpro-ml keys list` shows them)")
            conn.execute(_keys.update().where(_keys.c.key_id == row.key_id)
                         .values(revoked_at=_now()))
        with self._lock:
            self._verified.pop(row.key_id, None)
            self._trusted.pop(row.key_id, None)
        return self.get(row.key_id)

    def get(self, key_id: str) -> ApiKey:
        """The key with id ``key_id`` (:class:`NotFoundError` if none)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_keys).where(_keys.c.key_id == key_id)).first()
        if row is None:
            raise NotFoundError(f"no key with id {key_id!r}")
        return _record(row._mapping)

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """Every key, most recently used first (never used last), without secrets."""
        query = sa.select(_keys)
        if not include_revoked:
            query = query.where(_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            rows = [_record(r._mapping) for r in conn.execute(query)]
        return sorted(rows, key=lambda k: (k.last_used_at is None,
                                           -(k.last_used_at or k.created_at).timestamp(),
                                           k.name))

    # -- requests
    def authenticate(self, token: str) -> ApiKey:
        """The key ``token`` belongs to, checked against the database.

        Raises
        ------
        AuthenticationError
            A malformed, unknown, revoked or wrong token (counted by reason; the message
            never repeats the token).
        """
        match = _TOKEN.fullmatch(token)
        if match is None:
            self.record_failure("malformed")
            raise AuthenticationError("malformed API key: expected 'bpk_<key id>.<secret>' as "
                                      "printed by `barberpro-ml keys create`")
        key_id, secret = match.groups()
        fingerprint = hashlib.sha256(secret.encode()).digest()
        if self.key_cache_s > 0:
            with self._lock:
                trusted = self._trusted.get(key_id)
                known = self._verified.get(key_id)
            if (trusted is not None and known is not None
                    and time.monotonic() - trusted[1] < self.key_cache_s
                    and hmac.compare_digest(known, fingerprint)):
                self._touch(trusted[0])
                return trusted[0]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_keys).where(_keys.c.key_id == key_id)).first()
        if row is None:
            self.record_failure("unknown")
            raise AuthenticationError(f"unknown API key {key_id}")
        if row.revoked_at is not None:
            self.record_failure("revoked")
            raise AuthenticationError(f"API key {key_id} ({row.name}) was revoked on "
                                      f"{row.revoked_at:%Y-%m-%dT%H:%M:%SZ}")
        known = self._verified.get(key_id)
        if known is None or not hmac.compare_digest(known, fingerprint):
            if not hmac.compare_digest(_hash(secret, row.salt), row.secret_hash):
                self.record_failure("wrong_secret")
                raise AuthenticationError(f"wrong secret for API key {key_id}")
            with self._lock:
                self._verified[key_id] = fingerprint
        key = _record(row._mapping)
        if self.key_cache_s > 0:
            with self._lock:
                self._trusted[key_id] = (key, time.monotonic())
        self._touch(key)
        return key

    def consume(self, key: ApiKey, now: float | None = None) -> Allowance:
        """Take one request from ``key``'s token bucket and daily quota, atomically in the
        database (one conditional ``UPDATE``: correct across worker processes).

        Returns
        -------
        Allowance
            ``allowed``, else why (``rate`` or ``quota``) and the seconds to wait.
        """
        stamp = time.time() if now is None else now
        today = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d")
        if self._sqlite_file and self._fast_consume(key, stamp, today):
            return Allowance(allowed=True)
        b = _buckets.c
        # workers' clocks are read before they queue for the row, so a request may carry an
        # earlier stamp than the row's: it refills nothing rather than a negative amount
        later = b.updated_at < stamp
        refilled = b.tokens + sa.case((later, (stamp - b.updated_at) * key.rate_per_s),
                                      else_=0.0)
        level = sa.case((refilled > key.burst, float(key.burst)), else_=refilled)
        used = sa.case((b.day == today, b.day_count), else_=0)
        within = level >= 1
        if key.quota_per_day is not None:
            within = sa.and_(within, used < key.quota_per_day)
        # Retried only when the row changed between the UPDATE and the SELECT that explains
        # its refusal: another worker added the key's first row (invisible to the UPDATE,
        # visible to the SELECT), or refilled the bucket up to a later clock than ours.
        for _ in range(_CONSUME_ATTEMPTS):
            with self.engine.begin() as conn:
                done = conn.execute(_buckets.update().where(b.key_id == key.key_id, within)
                                    .values(tokens=level - 1,
                                            updated_at=sa.case((later, stamp),
                                                               else_=b.updated_at), day=today,
                                            day_count=used + 1))
                if done.rowcount:
                    return Allowance(allowed=True)
                row = conn.execute(sa.select(level.label("level"), used.label("used"))
                                   .where(b.key_id == key.key_id)).first()
                if row is None:
                    if _insert_new(conn, _buckets, key_id=key.key_id, tokens=key.burst - 1.0,
                                   updated_at=stamp, day=today, day_count=1):
                        return Allowance(allowed=True)
                    continue  # another worker added it first: take from its row
            if key.quota_per_day is not None and row.used >= key.quota_per_day:
                midnight = (stamp // 86400 + 1) * 86400
                return Allowance(allowed=False, reason="quota", retry_after=midnight - stamp)
            if float(row.level) < 1:
                return Allowance(allowed=False, reason="rate",
                                 retry_after=(1 - float(row.level)) / key.rate_per_s)
        # still racing after that many attempts: refuse (never over-grant), briefly
        return Allowance(allowed=False, reason="rate", retry_after=min(1.0, 1 / key.rate_per_s))

    def _fast_consume(self, key: ApiKey, stamp: float, today: str) -> bool:
        """The common case on a SQLite file, one statement on this thread's own ``sqlite3``
        connection: the key's row exists and has a token (and quota) left. The same
        conditional ``UPDATE`` as :meth:`consume`'s, atomic by itself in SQLite (its own
        implicit transaction), without SQLAlchemy's per-call work (~0.3 ms). False: not taken
        (no row yet, or a refusal to explain), and :meth:`consume` goes the general way."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            assert self._sqlite_file is not None
            conn = sqlite3.connect(self._sqlite_file, timeout=30, isolation_level=None,
                                   check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        quota = key.quota_per_day if key.quota_per_day is not None else -1
        done = conn.execute(_FAST_CONSUME, {
            "stamp": stamp, "rate": key.rate_per_s, "burst": float(key.burst), "today": today,
            "key_id": key.key_id, "quota": quota})
        return done.rowcount == 1

    def used_today(self, key_ids: Iterable[str], now: float | None = None) -> dict[str, int]:
        """Requests each key made this UTC day (keys without any: absent)."""
        today = datetime.fromtimestamp(time.time() if now is None else now,
                                       UTC).strftime("%Y-%m-%d")
        wanted = list(key_ids)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_buckets.c.key_id, _buckets.c.day_count).where(
                _buckets.c.key_id.in_(wanted), _buckets.c.day == today)).all()
        return {str(k): int(n) for k, n in rows}

    def _touch(self, key: ApiKey) -> None:
        tick = time.monotonic()
        with self._lock:
            if tick - self._used.get(key.key_id, -_LAST_USED_EVERY_S) < _LAST_USED_EVERY_S:
                return
            self._used[key.key_id] = tick
        with self.engine.begin() as conn:
            conn.execute(_keys.update().where(_keys.c.key_id == key.key_id)
                         .values(last_used_at=_now()))

    def record_failure(self, reason: str) -> None:
        """Count one failed authentication or authorisation (``reason``: ``missing``,
        ``malformed``, ``unknown``, ``revoked``, ``wrong_secret``, ``forbidden``)."""
        stamp = _now()
        with self.engine.begin() as conn:
            _count(conn, _failures, {"reason": reason}, count=1, last_at=stamp)

    def record_usage(self, key_id: str | None, route: str, status: int, seconds: float,
                     now: float | None = None) -> None:
        """Count one answered request in its (UTC day, key, route, status class) row: one
        ``UPDATE ... SET count = count + 1`` (for the day's first, ``INSERT ... ON CONFLICT DO
        UPDATE``), atomic in the database, so the counts are right whatever number of worker
        processes write."""
        stamp = time.time() if now is None else now
        day = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d")
        where = {"day": day, "key_id": key_id or ANONYMOUS, "route": route[:256],
                 "status_class": f"{status // 100}xx"}
        if self.usage_flush_s <= 0:
            with self.engine.begin() as conn:
                _count(conn, _usage, where, count=1, latency_s=seconds)
            return
        row = (where["day"], where["key_id"], where["route"], where["status_class"])
        with self._lock:
            counted = self._pending.setdefault(row, [0.0, 0.0])
            counted[0] += 1
            counted[1] += seconds
            start = self._flusher is None
            if start:
                self._flusher = threading.Thread(target=self._flush_every, daemon=True,
                                                 name="barberpro-usage-flush")
        if start:
            assert self._flusher is not None
            self._flusher.start()
            atexit.register(self.flush_usage)

    def flush_usage(self) -> None:
        """Write the usage counted in memory (``usage_flush_s > 0``) to the database now."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return
            try:
                with self.engine.begin() as conn:  # all rows or none
                    for (day, key_id, route, status_class), (count, latency) in pending.items():
                        _count(conn, _usage, {"day": day, "key_id": key_id, "route": route,
                                              "status_class": status_class},
                               count=int(count), latency_s=latency)
            except Exception:
                with self._lock:  # keep them for the next attempt
                    for row, (count, latency) in pending.items():
                        counted = self._pending.setdefault(row, [0.0, 0.0])
                        counted[0] += count
                        counted[1] += latency
                raise

    def _flush_every(self) -> None:
        while True:
            time.sleep(self.usage_flush_s)
            try:
                self.flush_usage()
            except Exception:  # the next round retries; never kill the thread
                continue

    def usage(self, days: int = 1, key_id: str | None = None,
              now: float | None = None) -> builtins.list[UsageRow]:
        """The usage rows of the last ``days`` UTC days (today included), of one key or all,
        most requests first."""
        if days < 1:
            raise InputError(f"days must be at least 1, not {days}")
        self.flush_usage()
        today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
        first = (today - timedelta(days=days - 1)).isoformat()
        u = _usage.c
        query = sa.select(_usage).where(u.day >= first)
        if key_id is not None:
            query = query.where(u.key_id == key_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(u.count.desc(), u.day, u.route)).all()
        return [UsageRow(day=date.fromisoformat(r.day), key_id=r.key_id, route=r.route,
                         status_class=r.status_class, requests=int(r._mapping["count"]),
                         latency_s=float(r.latency_s)) for r in rows]

    def failures(self) -> dict[str, int]:
        """Failed authentications and authorisations so far, by reason."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_failures.c.reason, _failures.c.count)).all()
        return {str(reason): int(count) for reason, count in rows}


def _dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's ``INSERT`` with ``ON CONFLICT`` (PostgreSQL and SQLite share the syntax)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)  # the only other dialect _engine lets through


def _insert_new(conn: Connection, table: sa.Table, **values: Any) -> bool:
    """Insert the row unless one with its primary key exists; whether it was inserted."""
    # RETURNING, not rowcount: psycopg reports no row count for an INSERT that did nothing
    statement = _dialect_insert(conn, table).values(**values).on_conflict_do_nothing()
    return conn.execute(statement.returning(*table.primary_key.columns)).first() is not None


def _count(conn: Connection, table: sa.Table, where: Mapping[str, Any], **add: Any) -> None:
    """Add ``add``'s numbers to the row ``where`` (a non-number, a timestamp say, is
    overwritten), inserting it when missing; each statement atomic.

    The plain ``UPDATE`` first: the common case (the row exists) costs what it did before
    PostgreSQL was supported (measured: SQLite's upsert is ~50 µs slower per call). The day's
    first call inserts with ``ON CONFLICT DO UPDATE``, so two workers inserting the same row at
    once both count, and no transaction fails on a duplicate key.
    """
    numeric = {n for n, v in add.items() if isinstance(v, int | float)}
    new = {n: table.c[n] + v if n in numeric else v for n, v in add.items()}
    done = conn.execute(table.update().where(*(table.c[n] == v for n, v in where.items()))
                        .values(**new))
    if done.rowcount:
        return
    statement = _dialect_insert(conn, table).values(**where, **add)
    conn.execute(statement.on_conflict_do_update(
        index_elements=list(where),
        set_={n: table.c[n] + statement.excluded[n] if n in numeric else statement.excluded[n]
              for n in add}))


# KeyStore._fast_consume: consume()'s conditional UPDATE written out for sqlite3 (refill at
# `rate` since updated_at, never below a later clock, capped at `burst`; one token and one
# request of the day's quota taken when both are left; quota -1: none)
_FAST_CONSUME = """
UPDATE rate_limits SET
  tokens = MIN(:burst, tokens + CASE WHEN updated_at < :stamp
                                     THEN (:stamp - updated_at) * :rate ELSE 0.0 END) - 1,
  updated_at = CASE WHEN updated_at < :stamp THEN :stamp ELSE updated_at END,
  day_count = CASE WHEN day = :today THEN day_count ELSE 0 END + 1,
  day = :today
WHERE key_id = :key_id
  AND MIN(:burst, tokens + CASE WHEN updated_at < :stamp
                                THEN (:stamp - updated_at) * :rate ELSE 0.0 END) >= 1
  AND (:quota < 0 OR CASE WHEN day = :today THEN day_count ELSE 0 END < :quota)
"""

_SCHEMA_LOCK = 0x6270_6b65_7973  # "bpkeys": the advisory lock serialising table creation


def _create_tables(engine: Engine) -> None:
    """Create the missing tables (and their indexes); on PostgreSQL under an advisory lock, so
    that workers starting together on an empty database wait for each other instead of
    failing on a duplicate ``CREATE TABLE``."""
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            _metadata.create_all(conn)
    except OperationalError as error:  # unreachable server, no such database, bad password
        reason = " ".join(str(getattr(error, "orig", None) or error).split())
        raise InfraError(f"the service's database {engine.url.render_as_string()} cannot be "
                         f"opened: {reason[:400]} (check --db or {SERVICE_DB_ENV}; "
                         "`barberpro-ml infra up` starts a local PostgreSQL)") from None


def _engine(url: str) -> Engine:
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # not repeated: it may hold a password
        raise InputError("the service's database is not a SQLAlchemy URL (e.g. "
                         "sqlite:///service.db or postgresql://user@host/service; "
                         f"{SERVICE_DB_ENV} or --db)") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "postgres"):
        raise InputError(f"the service's database must be SQLite or PostgreSQL, not "
                         f"{parsed.get_backend_name()!r} ({SERVICE_DB_ENV} or --db)")
    if url in ("sqlite://", "sqlite:///:memory:"):  # one shared in-memory database
        return sa.create_engine(url, poolclass=sa.pool.StaticPool,
                                connect_args={"check_same_thread": False})
    if url.startswith("sqlite"):
        # several worker processes write the same file: wait for the lock instead of failing;
        # write-ahead log, synced at checkpoints: a rate-limit update per request costs no fsync
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if parsed.drivername in ("postgresql", "postgres"):  # psycopg 3 is the driver installed
        parsed = parsed.set(drivername="postgresql+psycopg")
    # READ COMMITTED (PostgreSQL's default, set in case the server's is stricter): the
    # bucket's conditional UPDATE then waits for and re-reads a row a concurrent worker changed
    # instead of failing with a serialisation error
    engine = sa.create_engine(parsed, pool_pre_ping=True, isolation_level="READ COMMITTED")

    # The per-request writes (bucket, usage, failures, last use) commit without waiting for
    # the WAL flush, as SQLite's synchronous=NORMAL above: a crash may lose the last fraction
    # of a second of counts, never consistency. Keys created or revoked are flushed
    # (_durable).
    @sa.event.listens_for(engine, "connect")
    def _asynchronous_commit(connection: Any, _: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
        connection.commit()

    return engine


def _durable(conn: Connection) -> None:
    """Make this transaction's commit wait for the WAL flush (PostgreSQL; SQLite in WAL mode
    with synchronous=NORMAL loses no commit when a process crashes, only on power loss)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET LOCAL synchronous_commit TO on"))


def _record(row: Mapping[Any, Any]) -> ApiKey:
    return ApiKey(key_id=row["key_id"], name=row["name"],
                  scopes=[s for s in row["scopes"].split(",") if s],
                  created_at=row["created_at"], revoked_at=row["revoked_at"],
                  last_used_at=row["last_used_at"], rate_per_s=row["rate_per_s"],
                  burst=row["burst"], quota_per_day=row["quota_per_day"])
