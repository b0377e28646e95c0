"""Validation of the event tables: canonical dtypes, per-table checks and cross-table checks.

Every problem found is collected as a :class:`ContractViolation` (table, column, check, count,
up to five examples) and all of them are raised together as one :class:`DataContractError`, so a
user sees everything that is wrong with a data set in one go and nothing is half-accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import pandera.errors as pa_errors

from barberpro_ml.data.schema import (
    CANONICAL_DTYPES,
    CONTRACT,
    TABLES,
    VOCABULARIES,
    ColumnSpec,
    id_column,
    table_schema,
)
from barberpro_ml.errors import InputError

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class ContractViolation:
    """One failed check: which table and column, what check, how many rows, some examples.

    ``count`` is the number of failing rows, every one of them (the examples show at most
    :data:`MAX_EXAMPLES`), or ``None`` for a problem that is not about rows: a missing column
    or table, a file that cannot be read. ``column`` is ``"*"`` for the whole table.
    """

    table: str
    column: str
    check: str
    count: int | None
    examples: tuple[str, ...]

    def describe(self) -> str:
        """One readable line, e.g. ``bookings.price: non-negative failed for 3 rows (...)``."""
        where = self.table if self.column == "*" else f"{self.table}.{self.column}"
        if self.count is None:
            return where + f": {self.check}" + "".join(f"; {e}" for e in self.examples)
        noun = "row" if self.count == 1 else "rows"
        shown = "; ".join(self.examples)
        return (
            f"{where}: '{self.check}' failed for {self.count} {noun}"
            + (f"; examples: {shown}" if shown else "")
        )


class DataContractError(InputError):
    """Event data that breaks the data contract. ``violations`` lists every failed check."""

    def __init__(self, violations: Sequence[ContractViolation]) -> None:
        self.violations: tuple[ContractViolation, ...] = tuple(violations)
        n = len(self.violations)
        lines = [f"event data refused: {n} contract violation{'s' if n != 1 else ''}"]
        lines += [f"  - {v.describe()}" for v in self.violations]
        lines.append("  (see data/README.md for the contract)")
        super().__init__("\n".join(lines))


def _examples(frame: pd.DataFrame, mask: np.ndarray | pd.Series, table: str,
              columns: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """Count the rows in ``mask`` and describe the first few by id and the offending values."""
    mask_array = np.asarray(mask, dtype=bool)
    count = int(mask_array.sum())
    rows = frame.loc[mask_array].head(MAX_EXAMPLES)
    key = id_column(table)
    shown_columns = [c for c in columns if c in rows.columns and c != key]
    examples = []
    for _, row in rows.iterrows():
        head = f"{key}={row[key]}" if key in rows.columns else ""
        values = ", ".join(f"{c}={row[c]}" for c in shown_columns)
        examples.append(" ".join(part for part in (head, values) if part))
    return count, tuple(examples)


def _violation(table: str, column: str, check: str, frame: pd.DataFrame,
               mask: np.ndarray | pd.Series, shown: Iterable[str] = ()) -> ContractViolation | None:
    count, examples = _examples(frame, mask, table, [column, *shown])
    if count == 0:
        return None
    return ContractViolation(table, column, check, count, examples)


# --------------------------------------------------------------------------- canonical dtypes

def _values_examples(values: pd.Series) -> tuple[str, ...]:
    return tuple(repr(v) for v in values.head(MAX_EXAMPLES).tolist())


INT64_RANGE: Final = "integer values within the int64 range (-2**63 to 2**63 - 1)"
NS_RANGE: Final = (f"timestamps from {pd.Timestamp.min:%Y-%m-%d} to {pd.Timestamp.max:%Y-%m-%d}"
                   " (the range of nanosecond timestamps)")

_NS_PER_UNIT: Final = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _readable_timestamp(value: object) -> bool:
    """Whether ``value`` reads as a timestamp at all (at any resolution)."""
    try:
        pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _beyond_nanoseconds(values: pd.Series) -> np.ndarray:
    """Which values of a ``datetime64`` column (any unit) do not fit in ``datetime64[ns]``."""
    array = values.to_numpy()
    unit, step = np.datetime_data(array.dtype)  # pandas holds s, ms, us or ns
    per_value = _NS_PER_UNIT[unit] * step
    limit = int(np.iinfo(np.int64).max) // per_value
    ticks = array.view("int64")
    return np.asarray(~np.isnat(array) & ((ticks > limit) | (ticks < -limit)), dtype=bool)


def _beyond_int64(numeric: pd.Series) -> np.ndarray:
    """Which values of a numeric column do not fit in ``int64`` (casting would wrap them)."""
    if pd.api.types.is_signed_integer_dtype(numeric.dtype):
        return np.zeros(len(numeric), dtype=bool)
    if pd.api.types.is_unsigned_integer_dtype(numeric.dtype):
        return np.asarray(numeric.to_numpy() > np.uint64(np.iinfo(np.int64).max), dtype=bool)
    as_float = numeric.to_numpy(dtype="float64")
    return np.asarray((as_float >= 2.0**63) | (as_float < -(2.0**63)), dtype=bool)


def _empty_column(table: str, spec: ColumnSpec) -> pd.Series:
    """An empty column in the canonical dtype of ``spec``."""
    if spec.kind == "category":
        vocabulary = VOCABULARIES.get((table, spec.name), ())
        return pd.Series([], dtype=pd.CategoricalDtype(list(vocabulary), ordered=False))
    return pd.Series([], dtype=CANONICAL_DTYPES[spec.kind])


def _canonical_column(table: str, spec: ColumnSpec, column: pd.Series
                      ) -> tuple[pd.Series | None, ContractViolation | None]:
    """Convert ``column`` to the canonical dtype of ``spec``, or say why it cannot be."""
    kind = spec.kind
    name = spec.name
    missing_before = column.isna()

    def refuse(check: str, bad: pd.Series) -> tuple[None, ContractViolation]:
        """Refuse the rows ``bad`` (all of them are counted, a few shown)."""
        return None, ContractViolation(table, name, check, int(bad.shape[0]),
                                       _values_examples(bad))

    def refuse_column(check: str) -> tuple[pd.Series | None, ContractViolation | None]:
        """Refuse the whole column (its dtype is wrong): every row with a value fails."""
        if not len(column):  # no value to convert: an empty column of any dtype will do
            return _empty_column(table, spec), None
        present = column[~missing_before]
        return refuse(check, present if len(present) else column)

    if kind == "timestamp":
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            return refuse_column("timezone-naive UTC timestamps (got a timezone-aware column)")
        if pd.api.types.is_datetime64_dtype(column.dtype):
            beyond = column[_beyond_nanoseconds(column)]
            if len(beyond):
                return refuse(NS_RANGE, beyond)
            return column.astype("datetime64[ns]"), None
        if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(
                column.dtype):
            return refuse_column(f"datetime values (got dtype {column.dtype})")
        try:
            parsed = pd.to_datetime(column, errors="coerce", format="mixed")
        except (TypeError, ValueError):
            return refuse_column("parseable datetime values")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            return refuse_column("timezone-naive UTC timestamps (values carry a timezone)")
        bad = column[parsed.isna() & ~missing_before]
        if len(bad):
            # pandas < 3 coerces a readable date outside the nanosecond range to NaT; tell
            # those apart from text that is no date at all.
            readable = bad.map(_readable_timestamp).astype(bool)
            if not readable.all():
                return refuse("parseable datetime values", bad[~readable])
            return refuse(NS_RANGE, bad)
        beyond = column[_beyond_nanoseconds(parsed)]
        if len(beyond):
            return refuse(NS_RANGE, beyond)
        return parsed.astype("datetime64[ns]"), None

    if kind in ("id", "count", "rating"):
        if pd.api.types.is_bool_dtype(column.dtype):
            return refuse_column(f"integer values (got dtype {column.dtype})")
        numeric = column if pd.api.types.is_numeric_dtype(column.dtype) else pd.to_numeric(
            column, errors="coerce")
        unparsed = column[numeric.isna() & ~missing_before]
        if len(unparsed):
            return refuse("integer values", unparsed)
        if pd.api.types.is_complex_dtype(numeric.dtype):  # casting would drop the imaginary part
            imaginary = column[np.asarray(numeric.to_numpy().imag != 0, dtype=bool)]
            if len(imaginary):
                return refuse("integer values (not complex)", imaginary)
            numeric = pd.Series(numeric.to_numpy().real, index=numeric.index)
        if numeric.isna().any():
            return refuse("not null", column[missing_before])
        if not pd.api.types.is_integer_dtype(numeric.dtype):
            as_float = numeric.astype("float64")
            fractional = column[(as_float != np.round(as_float)) | ~np.isfinite(as_float)]
            if len(fractional):
                return refuse("integer values", fractional)
        beyond = column[_beyond_int64(numeric)]
        if len(beyond):
            return refuse(INT64_RANGE, beyond)
        return numeric.astype("int64"), None

    if kind == "money":
        if pd.api.types.is_bool_dtype(column.dtype):
            return refuse_column(f"numeric values (got dtype {column.dtype})")
        numeric = column if pd.api.types.is_numeric_dtype(column.dtype) else pd.to_numeric(
            column, errors="coerce")
        unparsed = column[numeric.isna() & ~missing_before]
        if len(unparsed):
            return refuse("numeric values", unparsed)
        if pd.api.types.is_complex_dtype(numeric.dtype):  # casting would drop the imaginary part
            imaginary = column[np.asarray(numeric.to_numpy().imag != 0, dtype=bool)]
            if len(imaginary):
                return refuse("numeric values (not complex)", imaginary)
            numeric = pd.Series(numeric.to_numpy().real, index=numeric.index)
        return numeric.astype("float64"), None

    if kind == "flag":
        if pd.api.types.is_bool_dtype(column.dtype):
            return column.astype("bool"), None
        mapping = {"true": True, "false": False, "1": True, "0": False}
        lowered = column.astype("str").str.strip().str.lower()
        mapped = lowered.map(mapping)
        bad = column[mapped.isna()]
        if len(bad):
            return refuse("boolean values (True/False)", bad)
        return mapped.astype("bool"), None

    if kind == "category":
        vocabulary = VOCABULARIES.get((table, name))
        if isinstance(column.dtype, pd.CategoricalDtype):
            # Work on the (few) categories, not the (many) values: a 15M-row column
            # converted through strings costs seconds.
            used = column.cat.remove_unused_categories()
            labels = [str(c) for c in used.cat.categories]
            if len(set(labels)) != len(labels):
                return refuse("distinct category labels", pd.Series(labels))
            values: pd.Series = used.cat.rename_categories(labels)
            observed = labels
        else:
            values = column.astype("str").where(~missing_before)
            observed = values.dropna().unique().tolist()
        if vocabulary is not None:
            outside = sorted(set(observed) - set(vocabulary))
            if outside:
                return refuse(f"one of {list(vocabulary)}", column[column.astype("str").isin(
                    outside) & ~missing_before])
            categories: list[str] = list(vocabulary)
        else:
            categories = sorted(observed)
        return values.astype(pd.CategoricalDtype(categories, ordered=False)), None

    # text
    return column.astype("str"), None


def canonicalize(table: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[ContractViolation]]:
    """Return ``frame`` with the contract's columns in canonical dtypes, and what refused.

    Contract columns come first in contract order; extra columns follow, unchanged. The index
    is reset to a ``RangeIndex``. Conversions are lossless only (integral floats to int, strings
    to timestamps); anything else is a violation.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"table {table!r} must be a pandas DataFrame, got {type(frame).__name__}")
    violations: list[ContractViolation] = []
    specs = CONTRACT[table]
    names = pd.Series([str(c) for c in frame.columns], dtype=object)
    repeated = names[names.duplicated()].unique().tolist()
    if repeated:
        for name in repeated:
            violations.append(ContractViolation(
                table, name, "column names are unique", None,
                (f"{int((names == name).sum())} columns are named {name!r}",)))
        return frame, violations
    missing = [s.name for s in specs if s.name not in frame.columns]
    if missing:
        present = ", ".join(map(str, frame.columns[:12]))
        more = f" and {len(frame.columns) - 12} more" if len(frame.columns) > 12 else ""
        for name in missing:
            violations.append(ContractViolation(
                table, name, "required column is missing", None,
                (f"columns present: {present or 'none'}{more}",)))
        return frame, violations
    out: dict[str, pd.Series] = {}
    source = frame.reset_index(drop=True)
    for spec in specs:
        converted, violation = _canonical_column(table, spec, source[spec.name])
        if violation is not None:
            violations.append(violation)
        elif converted is not None:
            out[spec.name] = converted
    if violations:
        return frame, violations
    declared = {s.name for s in specs}
    for extra in source.columns:
        if extra not in declared:
            out[str(extra)] = source[extra]
    return pd.DataFrame(out), violations


# --------------------------------------------------------------------------- single-table checks

def check_table(table: str, frame: pd.DataFrame) -> list[ContractViolation]:
    """Run the pandera schema of ``table`` on a canonical frame; return every failure."""
    try:
        table_schema(table).validate(frame, lazy=True)
    except pa_errors.SchemaErrors as exc:
        return _from_pandera(table, frame, exc.failure_cases)
    return []


def _from_pandera(table: str, frame: pd.DataFrame, failures: pd.DataFrame
                  ) -> list[ContractViolation]:
    violations = []
    key = id_column(table)
    for (column, check), group in failures.groupby(["column", "check"], sort=False, dropna=False):
        idx = pd.to_numeric(group["index"], errors="coerce").dropna().astype("int64")
        check_name = str(check)
        if check_name.startswith("field_uniqueness") or check_name == "unique":
            check_name = "unique"
        elif check_name == "not_nullable":
            check_name = "not null"
        if len(idx) and column in frame.columns:
            rows = frame.iloc[idx.to_numpy()[:MAX_EXAMPLES]]
            examples = tuple(
                f"{key}={k} {column}={v!r}" if column != key else f"{column}={v!r}"
                for k, v in zip(rows[key].tolist(), rows[column].tolist(), strict=True)
            )
            count = len(idx)
        else:
            examples = tuple(repr(v) for v in group["failure_case"].head(MAX_EXAMPLES))
            count = len(group)
        violations.append(ContractViolation(table, str(column), check_name, count, examples))
    return violations


# --------------------------------------------------------------------------- cross-table checks

def _foreign_key(violations: list[ContractViolation], child: str, frame: pd.DataFrame,
                 column: str, parent: str, parent_frame: pd.DataFrame) -> None:
    mask = ~frame[column].isin(parent_frame[id_column(parent)])
    v = _violation(child, column, f"refers to a known {parent} row", frame, mask)
    if v is not None:
        violations.append(v)


def _lookup(frame: pd.DataFrame, keys: pd.Series, table: str, column: str) -> np.ndarray:
    """Values of ``column`` in ``table`` for the ids in ``keys`` (NaT/NaN where unknown)."""
    indexed = frame.set_index(id_column(table))[column]
    return indexed.reindex(keys.to_numpy()).to_numpy()


def check_relations(tables: Mapping[str, pd.DataFrame]) -> list[ContractViolation]:
    """Referential integrity and time order across canonical, individually valid tables."""
    v: list[ContractViolation] = []
    customers, providers, services = (tables["customers"], tables["providers"],
                                      tables["services"])
    bookings, reviews, interventions = (tables["bookings"], tables["reviews"],
                                        tables["interventions"])

    def add(violation: ContractViolation | None) -> None:
        if violation is not None:
            v.append(violation)

    add(_violation("providers", "left_at", "left_at >= joined_at", providers,
                   providers["left_at"].notna() & (providers["left_at"] < providers["joined_at"]),
                   ["joined_at"]))

    _foreign_key(v, "bookings", bookings, "customer_id", "customers", customers)
    _foreign_key(v, "bookings", bookings, "provider_id", "providers", providers)
    _foreign_key(v, "bookings", bookings, "service_id", "services", services)
    add(_violation("bookings", "scheduled_at", "scheduled_at >= created_at", bookings,
                   bookings["scheduled_at"] < bookings["created_at"], ["created_at"]))
    add(_violation("bookings", "discount", "discount <= price", bookings,
                   bookings["discount"] > bookings["price"], ["price"]))
    signup = _lookup(customers, bookings["customer_id"], "customers", "signup_at")
    add(_violation("bookings", "created_at", "not before the customer signed up", bookings,
                   bookings["created_at"].to_numpy() < signup, ["customer_id"]))
    joined = _lookup(providers, bookings["provider_id"], "providers", "joined_at")
    add(_violation("bookings", "created_at", "not before the provider joined", bookings,
                   bookings["created_at"].to_numpy() < joined, ["provider_id"]))
    left = _lookup(providers, bookings["provider_id"], "providers", "left_at")
    after_leaving = (bookings["status"] == "completed").to_numpy() & (
        bookings["scheduled_at"].to_numpy() > left)
    add(_violation("bookings", "scheduled_at", "completed visit before the provider left",
                   bookings, after_leaving, ["provider_id", "status"]))

    _foreign_key(v, "reviews", reviews, "booking_id", "bookings", bookings)
    add(_violation("reviews", "booking_id", "at most one review per booking", reviews,
                   reviews["booking_id"].duplicated(keep="first")))
    known = reviews["booking_id"].isin(bookings["booking_id"]).to_numpy()
    status = _lookup(bookings, reviews["booking_id"], "bookings", "status")
    add(_violation("reviews", "booking_id", "reviews a completed booking", reviews,
                   known & (status != "completed"), ["booking_id"]))
    for column in ("customer_id", "provider_id"):
        expected = _lookup(bookings, reviews["booking_id"], "bookings", column)
        add(_violation("reviews", column, f"matches the booking's {column}", reviews,
                       known & (reviews[column].to_numpy() != expected), ["booking_id"]))
    visit = _lookup(bookings, reviews["booking_id"], "bookings", "scheduled_at")
    add(_violation("reviews", "created_at", "not before the visit", reviews,
                   known & (reviews["created_at"].to_numpy() < visit), ["booking_id"]))

    _foreign_key(v, "interventions", interventions, "customer_id", "customers", customers)
    signup_i = _lookup(customers, interventions["customer_id"], "customers", "signup_at")
    add(_violation("interventions", "sent_at", "not before the customer signed up",
                   interventions, interventions["sent_at"].to_numpy() < signup_i,
                   ["customer_id"]))
    add(_violation("interventions", "customer_id", "at most once per campaign", interventions,
                   interventions.duplicated(["campaign", "customer_id"], keep="first"),
                   ["campaign"]))
    return v


def validate_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Canonicalise and validate the six tables; return the canonical frames or raise.

    Raises
    ------
    DataContractError
        With every violation found: unknown or missing tables, missing columns, wrong types,
        values out of range, duplicate ids, dangling references and time-order breaks.
    """
    violations: list[ContractViolation] = []
    unknown = sorted(set(tables) - set(TABLES))
    for name in unknown:
        violations.append(ContractViolation(name, "*", "unknown table", None,
                                            (f"expected one of {list(TABLES)}",)))
    canonical: dict[str, pd.DataFrame] = {}
    for table in TABLES:
        if table not in tables:
            violations.append(ContractViolation(table, "*", "table is missing", None, ()))
            continue
        frame, problems = canonicalize(table, tables[table])
        if problems:
            violations += problems
            continue
        problems = check_table(table, frame)
        violations += problems
        if not problems:
            canonical[table] = frame
    if violations:
        raise DataContractError(violations)
    violations = check_relations(canonical)
    if violations:
        raise DataContractError(violations)
    return canonical
