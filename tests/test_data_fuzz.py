"""Fuzzing the data contract: however a data set is corrupted, the only error is a
:class:`DataContractError` (or another :class:`InputError`) naming the table or file.

Corruptions: a cell set to a hostile value (huge or negative ids, NaN, infinities, out-of-range
years, text, booleans), a whole column retyped or filled, a column dropped, renamed or
duplicated, a table emptied; on disk, as CSV or Parquet, also empty, header-only, truncated or
garbage files. Whatever survives must come back in the canonical dtypes.
"""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from barberpro_ml.data import CONTRACT, TABLES, DataContractError, MarketplaceData
from barberpro_ml.data.schema import CANONICAL_DTYPES
from barberpro_ml.errors import InputError
from test_data_contract import valid_tables

HOSTILE = [
    1e20, -1e20, 2**63, 2**64 - 1, -(2**63) - 1, 2**53 + 1, float("nan"), float("inf"),
    -float("inf"), None, pd.NaT, "", " ", "abc", "NaN", "1e20", "100000000000000000000",
    "-1", "0001-01-01", "9999-12-31", "2024-02-30", "2024-01-01T00:00:00+02:00",
    "10000-01-01", "1677-09-21", "2262-04-12", datetime(1, 1, 1), datetime(9999, 12, 31),
    np.datetime64("2500-01-01", "s"), True, False, -1, 0, 1.5, 7, "completed", "😀",
    "a,b\n\"c", b"bytes", 3 + 4j, [1, 2], {"a": 1}, Decimal("1.5"), Decimal("1e30"),
    date(2024, 1, 1), np.int8(-1), np.uint64(2**64 - 1), np.float32(1e20), timedelta(days=1),
]
RETYPES = ["str", "object", "float64", "int8", "uint64", "bool", "category", "tz", "seconds",
           "timedelta", "complex"]

@dataclass(frozen=True)
class Corrupt:
    """One corruption of one table (its repr is what hypothesis shows for a failing case)."""

    table: str
    column: str
    kind: str
    value: Any
    row: int
    retype: str

    def __call__(self, tables: dict[str, pd.DataFrame]) -> None:
        frame, column, value = tables[self.table].copy(), self.column, self.value
        if column not in frame.columns or list(frame.columns).count(column) > 1:
            return  # an earlier corruption dropped, renamed or duplicated it
        if self.kind == "cell" and len(frame):
            cells = frame[column].astype(object).tolist()
            cells[self.row % len(frame)] = value
            frame[column] = pd.Series(cells, index=frame.index, dtype=object)
        elif self.kind == "fill":
            frame[column] = pd.Series([value] * len(frame), index=frame.index, dtype=object)
        elif self.kind == "retype":
            frame[column] = _retyped(frame[column], self.retype)
        elif self.kind == "drop":
            frame = frame.drop(columns=[column])
        elif self.kind == "rename":
            frame = frame.rename(columns={column: column.upper()})
        elif self.kind == "duplicate":
            frame = pd.concat([frame, frame[[column]]], axis=1)
        elif self.kind == "empty":
            frame = frame.iloc[0:0]
        elif self.kind == "int name":
            frame = frame.rename(columns={column: 0})
        tables[self.table] = frame


@st.composite
def corruption(draw: st.DrawFn) -> Corrupt:
    """One corruption of a random column of a random table."""
    table = draw(st.sampled_from(TABLES))
    return Corrupt(
        table=table,
        column=draw(st.sampled_from([s.name for s in CONTRACT[table]])),
        kind=draw(st.sampled_from(["cell", "cell", "cell", "fill", "retype", "retype", "drop",
                                   "rename", "duplicate", "empty", "int name"])),
        value=draw(st.sampled_from(HOSTILE)),
        row=draw(st.integers(0, 40)),
        retype=draw(st.sampled_from(RETYPES)),
    )


def _retyped(column: pd.Series, to: str) -> pd.Series:
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_localize(None)
    if to == "tz":
        return pd.to_datetime(column, errors="coerce", format="mixed").dt.tz_localize("UTC")
    if to == "seconds":
        return pd.to_datetime(column, errors="coerce", format="mixed").astype("datetime64[s]")
    if to == "timedelta":
        return pd.Series(pd.to_timedelta(np.arange(len(column)), unit="D"), index=column.index)
    if to == "complex":
        return pd.Series(np.arange(len(column)) + 1j, index=column.index)
    try:
        return column.astype(to)
    except (TypeError, ValueError, OverflowError):  # the test's own retyping cannot apply
        return column.astype("str")


def _assert_only_input_errors(action: Callable[[], MarketplaceData], tables: set[str],
                              folder: Path | None = None) -> None:
    try:
        data = action()
    except InputError as exc:
        message = str(exc)
        if isinstance(exc, DataContractError):
            assert exc.violations, message
            for v in exc.violations:
                assert v.table in TABLES, message
                assert v.describe() in message
                assert v.count is None or v.count >= 1, message
        else:  # the manifest, or a file listed in it
            assert folder is not None and str(folder) in message, message
        assert any(name in message for name in TABLES) or folder is not None, message
    except Exception as exc:  # anything else is a bug the fuzzer found
        raise AssertionError(
            f"{type(exc).__name__} (not an InputError) after corrupting {sorted(tables)}:\n"
            + "".join(traceback.format_exception(exc))) from exc
    else:
        for name in TABLES:
            frame = getattr(data, name)
            for spec in CONTRACT[name]:
                dtype = frame[spec.name].dtype
                expected = CANONICAL_DTYPES[spec.kind]
                text = expected == "str" and pd.api.types.is_object_dtype(dtype)
                assert str(dtype) == expected or text, (name, spec.name, dtype)


FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(corruptions=st.lists(corruption(), min_size=1, max_size=3),
       seed=st.integers(0, 2**16))
def test_corrupted_frames_raise_only_contract_errors(
        corruptions: list[Corrupt], seed: int) -> None:
    tables = valid_tables(seed=seed)
    for corrupt in corruptions:
        corrupt(tables)
    _assert_only_input_errors(lambda: MarketplaceData(**tables),
                              {c.table for c in corruptions})


FILE_DAMAGE = ["none", "none", "empty", "header only", "truncated", "garbage", "blank lines"]


@FUZZ
@given(corruptions=st.lists(corruption(), min_size=0, max_size=2),
       formats=st.lists(st.sampled_from(["csv", "parquet"]), min_size=6, max_size=6),
       damaged=st.sampled_from(TABLES), damage=st.sampled_from(FILE_DAMAGE),
       cut=st.floats(0.0, 1.0), manifest=st.sampled_from(
           [None, '{"truth": null}', '{"truth": []}', '{"truth": {"tables": 3}}', "[",
            '{"truth": {"tables": ["customers"]}}', "null"]))
def test_corrupted_folders_raise_only_contract_errors(
        corruptions: list[Corrupt], formats: list[str], damaged: str,
        damage: str, cut: float, manifest: str | None) -> None:
    tables = valid_tables()
    for corrupt in corruptions:
        corrupt(tables)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for (name, frame), fmt in zip(tables.items(), formats, strict=True):
            if fmt == "parquet":
                try:
                    frame.to_parquet(folder / f"{name}.parquet", index=False)
                    continue
                except (pa.ArrowException, TypeError, ValueError, OverflowError):  # not Parquet
                    (folder / f"{name}.parquet").unlink(missing_ok=True)
            frame.to_csv(folder / f"{name}.csv", index=False)
        file = next(folder.glob(f"{damaged}.*"))
        content = file.read_bytes()
        if damage == "empty":
            file.write_bytes(b"")
        elif damage == "header only" and file.suffix == ".csv":
            file.write_bytes(content.split(b"\n", 1)[0] + b"\n")
        elif damage == "truncated":
            file.write_bytes(content[: int(len(content) * cut)])
        elif damage == "garbage":
            file.write_bytes(bytes(range(256)) * 3)
        elif damage == "blank lines":
            file.write_bytes(b"\n\n")
        if manifest is not None:
            (folder / "manifest.json").write_text(manifest)
        _assert_only_input_errors(lambda: MarketplaceData.load(folder),
                                  {damaged} | {c.table for c in corruptions}, folder)
