"""A plain transaction log (one row per purchase or booking) turned into the event contract.

Most marketplaces can export "who paid how much when"; :func:`from_transactions` builds the six
contract tables from exactly that, with these documented rules:

- **Customers**: one per distinct ``customer_id``; ``signup_at`` is the customer's first
  transaction (the log does not know earlier sign-ups); ``acquisition_channel`` and
  ``neighborhood`` are ``"unknown"``.
- **Providers / services**: from the optional columns when given (ids as in the log; each
  provider joins at its first transaction, never leaves, neighborhood ``"unknown"``, tier
  ``"standard"``; each service is named ``service <id>`` with the median amount as its
  ``base_price``); otherwise one placeholder provider ``0`` and one placeholder service ``0``
  named ``purchase``.
- **Bookings**: one per customer, day, provider and service: **same-day purchases are one
  visit** whose amount is their sum (the BG/NBD convention of counting a day once). The visit
  is ``completed`` (or the log's status: ``completed``, ``cancelled`` or ``no_show``),
  ``created_at = scheduled_at`` = the day's first transaction time, ``price`` = the summed
  amount, ``discount = tip = 0``. **Refunds**: a day whose amounts sum to less than 0 is a
  visit that earned nothing (price 0); the count of such days is in the result's notes.
- **Reviews, interventions**: empty.
- **Time**: naive timestamps are taken as UTC; time-zone-aware ones are converted to UTC.

Every problem with the log (a missing column, an id that is not an integer, an unreadable
timestamp, a missing or infinite amount) is one :class:`~barberpro_ml.errors.InputError`
naming the column, the count of rows and examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from barberpro_ml.data.schema import BOOKING_STATUSES
from barberpro_ml.errors import InputError

if TYPE_CHECKING:
    from barberpro_ml.data.container import MarketplaceData

__all__ = ["ImportReport", "import_transactions", "read_transaction_file",
           "transaction_tables"]

PLACEHOLDER_ID = 0
UNKNOWN = "unknown"
_EXAMPLES = 5


@dataclass
class ImportReport:
    """What the import did, for the user: rows read, visits made, rules applied."""

    rows: int
    customers: int
    visits: int
    merged_same_day: int
    """Transactions merged into a visit of the same customer, day, provider and service."""
    non_positive_days: int
    """Visits whose amounts summed to 0 or less (price 0)."""
    notes: list[str] = field(default_factory=list)


def _problem(column: str, mask: np.ndarray, values: pd.Series, what: str) -> str:
    shown = ", ".join(repr(v) for v in values[mask].head(_EXAMPLES).tolist())
    return f"column {column!r}: {int(mask.sum()):,} row(s) {what} (e.g. {shown})"


def _ids(frame: pd.DataFrame, column: str, problems: list[str]) -> pd.Series:
    raw = frame[column]
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = numeric.isna().to_numpy() | ~np.isfinite(numeric.to_numpy(dtype=float, na_value=0))
    whole = np.zeros(len(raw), dtype=bool)
    ok = ~bad
    values = numeric.to_numpy(dtype=float, na_value=0.0)
    whole[ok] = values[ok] == np.floor(values[ok])
    bad |= ~whole
    bad |= (values < 0) | (values >= 2.0**63)
    if bad.any():
        problems.append(_problem(column, bad, raw, "are not non-negative integer ids"))
        return pd.Series(np.zeros(len(raw), dtype=np.int64), index=frame.index)
    return pd.Series(values.astype(np.int64), index=frame.index)


def _timestamps(frame: pd.DataFrame, column: str, timestamp_format: str | None,
                problems: list[str]) -> pd.Series:
    raw = frame[column]
    try:
        if timestamp_format is not None:
            parsed = pd.to_datetime(raw.astype(str), format=timestamp_format, errors="coerce",
                                    utc=True)
        else:
            parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    except (TypeError, ValueError, OverflowError) as exc:
        problems.append(f"column {column!r}: cannot read as timestamps ({exc})")
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    bad = parsed.isna().to_numpy()
    if bad.any():
        hint = f" with format {timestamp_format!r}" if timestamp_format else ""
        problems.append(_problem(column, bad, raw, f"are not timestamps{hint}"))
    naive = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.astype("datetime64[ns]")


def transaction_tables(
    transactions: pd.DataFrame, *, customer_id: str, timestamp: str, amount: str,
    provider_id: str | None = None, service_id: str | None = None, status: str | None = None,
    timestamp_format: str | None = None,
) -> tuple[dict[str, pd.DataFrame], ImportReport]:
    """The six contract tables built from a transaction log (see the module docstring).

    Returns the tables (not yet validated: :meth:`MarketplaceData.from_transactions` validates
    them) and what was done.

    Raises
    ------
    InputError
        A named column is missing, or its values cannot be read (every problem listed).
    """
    if not isinstance(transactions, pd.DataFrame):
        raise InputError(f"transactions: expected a pandas DataFrame, got "
                         f"{type(transactions).__name__}")
    named = {"customer_id": customer_id, "timestamp": timestamp, "amount": amount,
             "provider_id": provider_id, "service_id": service_id, "status": status}
    wanted = [c for c in named.values() if c is not None]
    missing = [c for c in wanted if c not in transactions.columns]
    if missing:
        raise InputError(f"transactions: missing column(s) {missing}; columns present: "
                         f"{list(transactions.columns)[:30]}")
    if len(set(wanted)) != len(wanted):
        raise InputError(f"transactions: one column named for two roles: {named}")
    if not len(transactions):
        raise InputError("transactions: the log has no rows")
    frame = transactions.reset_index(drop=True)
    problems: list[str] = []
    customers = _ids(frame, customer_id, problems)
    stamps = _timestamps(frame, timestamp, timestamp_format, problems)
    money = pd.to_numeric(frame[amount], errors="coerce")
    bad_money = money.isna().to_numpy() | ~np.isfinite(money.to_numpy(dtype=float,
                                                                      na_value=0.0))
    if bad_money.any():
        problems.append(_problem(amount, bad_money, frame[amount], "are not finite amounts"))
    providers = (_ids(frame, provider_id, problems) if provider_id is not None
                 else pd.Series(PLACEHOLDER_ID, index=frame.index, dtype=np.int64))
    services = (_ids(frame, service_id, problems) if service_id is not None
                else pd.Series(PLACEHOLDER_ID, index=frame.index, dtype=np.int64))
    if status is not None:
        statuses = frame[status].astype(str).str.strip().str.lower()
        unknown = ~statuses.isin(BOOKING_STATUSES).to_numpy()
        if unknown.any():
            problems.append(_problem(status, unknown, frame[status],
                                     f"are not one of {list(BOOKING_STATUSES)}"))
    else:
        statuses = pd.Series("completed", index=frame.index)
    if problems:
        raise InputError("transactions refused:\n" + "\n".join(f"  - {p}" for p in problems))

    log = pd.DataFrame({"customer_id": customers, "at": stamps, "amount": money.astype(float),
                        "provider_id": providers, "service_id": services, "status": statuses})
    log["day"] = log["at"].dt.normalize()
    keys = ["customer_id", "day", "provider_id", "service_id", "status"]
    visits = (log.groupby(keys, sort=True, observed=True)
              .agg(at=("at", "min"), amount=("amount", "sum"), n=("amount", "size"))
              .reset_index())
    non_positive = int((visits["amount"] <= 0).sum())
    price = visits["amount"].clip(lower=0.0).where(visits["status"] == "completed", 0.0)
    bookings = pd.DataFrame({
        "booking_id": np.arange(1, len(visits) + 1, dtype=np.int64),
        "customer_id": visits["customer_id"].to_numpy(),
        "provider_id": visits["provider_id"].to_numpy(),
        "service_id": visits["service_id"].to_numpy(),
        "created_at": visits["at"].to_numpy(), "scheduled_at": visits["at"].to_numpy(),
        "status": visits["status"].to_numpy(), "price": price.to_numpy(),
        "discount": np.zeros(len(visits)), "tip": np.zeros(len(visits)),
    })
    first = log.groupby("customer_id")["at"].min()
    customer_table = pd.DataFrame({
        "customer_id": first.index.to_numpy(dtype=np.int64), "signup_at": first.to_numpy(),
        "acquisition_channel": UNKNOWN, "neighborhood": UNKNOWN})
    joined = log.groupby("provider_id")["at"].min()
    provider_table = pd.DataFrame({
        "provider_id": joined.index.to_numpy(dtype=np.int64), "joined_at": joined.to_numpy(),
        "left_at": pd.Series(pd.NaT, index=range(len(joined)), dtype="datetime64[ns]"),
        "neighborhood": UNKNOWN, "price_tier": "standard"})
    medians = log.groupby("service_id")["amount"].median().clip(lower=0.0)
    service_table = pd.DataFrame({
        "service_id": medians.index.to_numpy(dtype=np.int64),
        "name": ["purchase" if service_id is None else f"service {i}" for i in medians.index],
        "base_price": medians.to_numpy(dtype=float),
        "duration_min": np.full(len(medians), 30, dtype=np.int64)})
    tables = {
        "customers": customer_table, "providers": provider_table, "services": service_table,
        "bookings": bookings, "reviews": _empty_reviews(), "interventions": _empty_interventions(),
    }
    merged = int(len(log) - len(visits))
    notes = []
    if merged:
        notes.append(f"{merged:,} transactions merged into same-day visits (one visit per "
                     "customer, day, provider and service; amounts summed)")
    if non_positive:
        notes.append(f"{non_positive:,} visits summed to 0 or less (refunds): price 0")
    if provider_id is None:
        notes.append("no provider column: one placeholder provider (id 0)")
    if service_id is None:
        notes.append("no service column: one placeholder service (id 0, 'purchase')")
    report = ImportReport(rows=len(log), customers=len(customer_table), visits=len(bookings),
                          merged_same_day=merged, non_positive_days=non_positive, notes=notes)
    return tables, report


def import_transactions(transactions: pd.DataFrame, **columns: Any
                        ) -> tuple[MarketplaceData, ImportReport]:
    """:func:`transaction_tables`, validated into a :class:`MarketplaceData`, and the report.

    ``columns``: the keyword arguments of :func:`transaction_tables`.
    """
    from barberpro_ml.data.container import MarketplaceData

    tables, report = transaction_tables(transactions, **columns)
    data = MarketplaceData(
        customers=tables["customers"], providers=tables["providers"],
        services=tables["services"], bookings=tables["bookings"], reviews=tables["reviews"],
        interventions=tables["interventions"])
    return data, report


def _empty_reviews() -> pd.DataFrame:
    return pd.DataFrame({
        "review_id": pd.Series(dtype="int64"), "booking_id": pd.Series(dtype="int64"),
        "customer_id": pd.Series(dtype="int64"), "provider_id": pd.Series(dtype="int64"),
        "rating": pd.Series(dtype="int64"),
        "created_at": pd.Series(dtype="datetime64[ns]")})


def _empty_interventions() -> pd.DataFrame:
    return pd.DataFrame({
        "intervention_id": pd.Series(dtype="int64"), "customer_id": pd.Series(dtype="int64"),
        "campaign": pd.Series(dtype="str"), "sent_at": pd.Series(dtype="datetime64[ns]"),
        "treated": pd.Series(dtype="bool"), "offer": pd.Series(dtype="str")})


def read_transaction_file(path: str, *, sep: str | None = None,
                          columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a CSV, TSV, whitespace-separated text or Parquet transaction log.

    ``sep``: the field separator of a text file (default: ``,`` for ``.csv``, a tab for
    ``.tsv``, runs of whitespace otherwise). Ids and dates are read as text, so leading zeros
    and date formats survive to :func:`transaction_tables`.
    """
    from pathlib import Path

    from barberpro_ml.errors import InputNotFoundError

    file = Path(path)
    if not file.is_file():
        raise InputNotFoundError(f"no transaction file at {file}")
    try:
        if file.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(file, columns=list(columns) if columns else None)
        if sep is None:
            sep = {".csv": ",", ".tsv": "\t"}.get(file.suffix.lower(), r"\s+")
        return pd.read_csv(file, sep=sep, dtype=str, engine="python" if len(sep) > 1 else "c")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {file} as a transaction log: {exc}") from None
