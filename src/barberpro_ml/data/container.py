"""`MarketplaceData`: the six validated event tables, plus optional simulation ground truth."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa

from barberpro_ml.data.schema import CONTRACT, TABLES, id_column
from barberpro_ml.data.validation import ContractViolation, DataContractError, validate_tables
from barberpro_ml.errors import InputError, InputNotFoundError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from barberpro_ml.data.cutoff import AsOf
    from barberpro_ml.data.sql import SqlWriteReport

MANIFEST = "manifest.json"
CONTRACT_VERSION = 1


@dataclass(frozen=True)
class GroundTruth:
    """What a simulator knows and a real marketplace never shows.

    Parameters
    ----------
    tables
        Named frames of latent state, e.g. ``customers`` (one row per customer: latent traits,
        ``inactive_at``, true treatment effect) and ``providers`` (latent quality, capacity).
    meta
        JSON-serialisable facts needed to reason about the simulation (the config, the seed).
    """

    tables: Mapping[str, pd.DataFrame]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    @property
    def customers(self) -> pd.DataFrame:
        """Latent customer state, one row per customer."""
        return self.tables["customers"]

    @property
    def providers(self) -> pd.DataFrame:
        """Latent provider state, one row per provider."""
        return self.tables["providers"]


@dataclass(frozen=True, eq=False)
class MarketplaceData:
    """The marketplace's event tables, validated against the data contract on construction.

    Columns are converted to canonical dtypes (ids ``int64``, timestamps naive
    ``datetime64[ns]`` in UTC, money ``float64``, low-cardinality text ``category``); anything
    that cannot be converted losslessly, or that breaks a value, uniqueness, reference or
    time-order rule, is refused with one :class:`DataContractError` listing every problem.
    Treat the frames as read-only: the checks ran on them as they were given.

    Parameters
    ----------
    customers, providers, services, bookings, reviews, interventions
        The event tables of ``data/README.md``. Extra columns are kept as they are.
    truth
        Ground truth from :func:`barberpro_ml.data.simulate`; ``None`` for real data.

    Examples
    --------
    >>> import barberpro_ml as bml
    >>> data = bml.data.simulate(bml.data.SimulationConfig(n_customers=200, seed=1))
    >>> data.save("outputs/demo")                                    # doctest: +SKIP
    >>> same = bml.data.MarketplaceData.load("outputs/demo")         # doctest: +SKIP
    """

    customers: pd.DataFrame
    providers: pd.DataFrame
    services: pd.DataFrame
    bookings: pd.DataFrame
    reviews: pd.DataFrame
    interventions: pd.DataFrame
    truth: GroundTruth | None = None

    def __post_init__(self) -> None:
        canonical = validate_tables(self.tables())
        for name, frame in canonical.items():
            object.__setattr__(self, name, frame)

    @classmethod
    def from_validated(cls, *, customers: pd.DataFrame, providers: pd.DataFrame,
                       services: pd.DataFrame, bookings: pd.DataFrame, reviews: pd.DataFrame,
                       interventions: pd.DataFrame, truth: GroundTruth | None = None
                       ) -> MarketplaceData:
        """Wrap tables that already satisfy the contract, in canonical dtypes, unchecked.

        For row subsets of data validated once, where checking again would cost more than the
        work done on them: one Spark partition's customers with their events, plus the shared
        barber and service tables (:mod:`barberpro_ml.spark`). The caller vouches that the
        tables are valid: nothing is converted or checked. Anything else goes through the
        constructor.
        """
        data = object.__new__(cls)
        for name, frame in (("customers", customers), ("providers", providers),
                            ("services", services), ("bookings", bookings),
                            ("reviews", reviews), ("interventions", interventions)):
            object.__setattr__(data, name, frame)
        object.__setattr__(data, "truth", truth)
        return data

    @classmethod
    def from_transactions(
        cls, transactions: pd.DataFrame, *, customer_id: str, timestamp: str, amount: str,
        provider_id: str | None = None, service_id: str | None = None,
        status: str | None = None, timestamp_format: str | None = None,
    ) -> MarketplaceData:
        """A valid data set from a plain transaction log (one row per purchase or booking).

        The rules (placeholder provider and service, same-day purchases as one visit, refunds,
        time zones) are in :mod:`barberpro_ml.data.transactions`.

        Parameters
        ----------
        transactions
            The log.
        customer_id, timestamp, amount
            Its columns: integer customer ids, purchase times, amounts (currency of the
            :class:`~barberpro_ml.definitions.Definitions`).
        provider_id, service_id, status
            Optional columns: integer provider / service ids, ``completed`` / ``cancelled`` /
            ``no_show``.
        timestamp_format
            ``strftime`` format of the timestamps when they are text (``"%Y%m%d"``).

        Raises
        ------
        InputError
            A column is missing or unreadable (named, with counts and examples).

        Examples
        --------
        >>> log = pd.DataFrame({"who": [1, 1, 2], "when": ["2024-01-02", "2024-03-05",
        ...                     "2024-02-01"], "paid": [30.0, 25.0, 40.0]})
        >>> data = MarketplaceData.from_transactions(log, customer_id="who", timestamp="when",
        ...                                         amount="paid")
        >>> data.summary()["bookings"], data.summary()["customers"]
        (3, 2)
        """
        from barberpro_ml.data.transactions import import_transactions

        data, _report = import_transactions(
            transactions, customer_id=customer_id, timestamp=timestamp, amount=amount,
            provider_id=provider_id, service_id=service_id, status=status,
            timestamp_format=timestamp_format)
        return data

    @classmethod
    def from_sql(cls, url: str | URL, as_of: AsOf | None = None, schema: str | None = None
                 ) -> MarketplaceData:
        """Read the tables from PostgreSQL, only the rows known at ``as_of`` when given.

        ``as_of`` is pushed into the SQL (per table: :mod:`barberpro_ml.data.sql`); the result
        is validated exactly as :meth:`load` validates a folder. What was transferred is in
        the report of :func:`barberpro_ml.data.sql.read_sql`.

        Raises
        ------
        InputError
            The server cannot be reached, the database, schema or a table does not exist.
        DataContractError
            A column is missing, or the content breaks the contract.

        Examples
        --------
        >>> data = MarketplaceData.from_sql("postgresql://me@db/events",
        ...                                 as_of="2024-06-30")           # doctest: +SKIP
        """
        from barberpro_ml.data.sql import read_sql

        data, _report = read_sql(url, as_of=as_of, schema=schema)
        return data

    def to_sql(self, url: str | URL, *, schema: str | None = None,
               if_exists: Literal["fail", "replace"] = "fail", name: str | None = None
               ) -> SqlWriteReport:
        """Write the tables to PostgreSQL in one transaction (all or nothing).

        Creates the tables when missing; ``if_exists="replace"`` replaces events already
        there, ``"fail"`` refuses them. ``name`` is recorded as the data set's name. Ground
        truth is not written. See :func:`barberpro_ml.data.sql.write_sql`.

        Examples
        --------
        >>> data.to_sql("postgresql://me@db/events", if_exists="replace")  # doctest: +SKIP
        """
        from barberpro_ml.data.sql import write_sql

        return write_sql(self, url, schema=schema, if_exists=if_exists, name=name)

    # ------------------------------------------------------------------ access
    def tables(self) -> dict[str, pd.DataFrame]:
        """The six event tables by name, in contract order."""
        return {name: getattr(self, name) for name in TABLES}

    @property
    def observation_end(self) -> pd.Timestamp:
        """The latest event time in the data: nothing after it is known."""
        stamps = [
            self.customers["signup_at"].max(), self.bookings["created_at"].max(),
            self.reviews["created_at"].max(), self.interventions["sent_at"].max(),
            self.providers["joined_at"].max(), self.providers["left_at"].max(),
        ]
        return pd.Timestamp(max(s for s in stamps if pd.notna(s)))

    def summary(self) -> dict[str, int]:
        """Row count per table."""
        return {name: len(frame) for name, frame in self.tables().items()}

    def digest(self) -> str:
        """SHA-256 of the event tables' content (values, columns and dtypes), for lineage.

        Rows are hashed in id order, so the same rows give the same digest whatever order they
        were stored in (a Parquet file, a PostgreSQL table).
        """
        h = hashlib.sha256()
        for name, frame in self.tables().items():
            if not frame[id_column(name)].is_monotonic_increasing:
                frame = frame.sort_values(id_column(name), kind="stable")
            h.update(name.encode())
            h.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
            h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        return h.hexdigest()

    def equals(self, other: MarketplaceData) -> bool:
        """True when every table (values, dtypes, column order) is identical."""
        return all(a.equals(b) and list(a.dtypes) == list(b.dtypes)
                   for a, b in zip(self.tables().values(), other.tables().values(), strict=True))

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v:,}" for k, v in self.summary().items())
        return f"MarketplaceData({counts}, truth={'yes' if self.truth else 'no'})"

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, name: str | None = None) -> Path:
        """Write the tables (and ground truth, if any) as a folder of Parquet files.

        The folder is written beside the target and moved into place at the end, so a failure
        leaves either the previous content or nothing, never a half-written folder. ``name``
        goes into ``manifest.json``: the data set's identity in the registry (see
        :class:`barberpro_ml.jobs.base.DataSetIdentity`).

        Returns
        -------
        Path
            The folder written.
        """
        data_set_name = name
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for name, frame in self.tables().items():
                frame.to_parquet(staging / f"{name}.parquet", index=False)
            manifest: dict[str, Any] = {
                "contract_version": CONTRACT_VERSION,
                "rows": self.summary(),
                "digest": self.digest(),
                "truth": None,
            }
            if data_set_name is not None:
                manifest["name"] = data_set_name
            if self.truth is not None:
                (staging / "truth").mkdir()
                for name, frame in self.truth.tables.items():
                    frame.to_parquet(staging / "truth" / f"{name}.parquet", index=False)
                manifest["truth"] = {"tables": sorted(self.truth.tables),
                                     "meta": dict(self.truth.meta)}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
            if target.exists():
                backup = target.with_name(f".{target.name}.old")
                shutil.rmtree(backup, ignore_errors=True)
                target.rename(backup)
                staging.rename(target)
                shutil.rmtree(backup, ignore_errors=True)
            else:
                staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | Path) -> MarketplaceData:
        """Read a folder written by :meth:`save`, or a folder of ``<table>.csv`` files.

        Each table may be ``<table>.parquet`` or ``<table>.csv``. Every table is read and the
        whole data set validated before anything is returned: loading never half-succeeds.

        Raises
        ------
        FileNotFoundError
            When the folder or a table file is missing (the message lists what was found).
        DataContractError
            When a table file cannot be read (empty, not Parquet or CSV; the message names the
            file) or the content breaks the contract.
        InputError
            When ``manifest.json`` is not the JSON object :meth:`save` writes, or lists ground
            truth that cannot be read (the message names the file and what is wrong).
        """
        folder = Path(path)
        if not folder.is_dir():
            raise InputNotFoundError(f"no data folder at {folder}")
        files: dict[str, Path] = {}
        missing: list[str] = []
        for name in TABLES:
            parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
            if parquet.exists():
                files[name] = parquet
            elif csv.exists():
                files[name] = csv
            else:
                missing.append(name)
        if missing:
            found = sorted(p.name for p in folder.iterdir())
            raise InputNotFoundError(
                f"{folder}: missing table file(s) {', '.join(f'{m}.parquet|.csv' for m in missing)}"
                f"; found {found}")
        tables: dict[str, pd.DataFrame] = {}
        unreadable: list[ContractViolation] = []
        for name, file in files.items():
            try:
                tables[name] = (_read_parquet(file) if file.suffix == ".parquet"
                                else _read_csv(name, file))
            except _UnreadableError as exc:
                unreadable.append(ContractViolation(name, "*", f"cannot read {file}", None,
                                                    (exc.reason,)))
        if unreadable:
            raise DataContractError(unreadable)
        truth = _load_truth(folder)
        try:
            return cls(**tables, truth=truth)
        except DataContractError as exc:
            raise DataContractError(exc.violations) from None


class _UnreadableError(Exception):
    """A table file that cannot be read as a table (``reason`` says why, in one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet table, or say in one line why the file is not one."""
    if path.is_file() and path.stat().st_size == 0:
        raise _UnreadableError("the file is empty (0 bytes)")
    try:
        return pd.read_parquet(path)
    except (OSError, pa.ArrowException) as exc:
        raise _UnreadableError(f"not a readable Parquet file ({_one_line(exc)})") from exc


def _read_csv(table: str, path: Path) -> pd.DataFrame:
    """Read a CSV table with every contract column as text, parsed later by validation."""
    if path.is_file() and path.stat().st_size == 0:
        raise _UnreadableError("the file is empty (0 bytes); a CSV table needs a header line "
                               "naming its columns")
    declared = {spec.name for spec in CONTRACT[table]}
    try:
        header = pd.read_csv(path, nrows=0).columns
        return pd.read_csv(path, dtype={c: "str" for c in header if c in declared})
    except pd.errors.EmptyDataError as exc:
        raise _UnreadableError("the file is empty (no header line); a CSV table needs a header "
                               "line naming its columns") from exc
    except UnicodeDecodeError as exc:
        raise _UnreadableError(f"not UTF-8 text ({_one_line(exc)})") from exc
    except (OSError, pd.errors.ParserError) as exc:
        raise _UnreadableError(f"not a readable CSV file ({_one_line(exc)})") from exc


def _load_truth(folder: Path) -> GroundTruth | None:
    """The ground truth the manifest lists, if any; a malformed manifest is an InputError."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return None

    def refuse(problem: str) -> InputError:
        return InputError(f"{manifest_path}: {problem}")

    try:
        manifest = json.loads(manifest_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise refuse(f"not UTF-8 JSON ({_one_line(exc)})") from None
    except json.JSONDecodeError as exc:
        raise refuse(f"invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
                     ) from None
    except OSError as exc:
        raise refuse(f"cannot read it ({_one_line(exc)})") from None
    if not isinstance(manifest, dict):
        raise refuse(f"expected a JSON object, got {_json_type(manifest)}")
    info = manifest.get("truth")
    if info is None:
        return None
    if not isinstance(info, dict):
        raise refuse(f"'truth' must be null or an object with 'tables' and 'meta', got "
                     f"{_json_type(info)}")
    names = info.get("tables")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise refuse(f"'truth.tables' must be a list of table names, got {_json_type(names)}"
                     + (f" {names!r}"[:80] if isinstance(names, list) else ""))
    odd = [n for n in names if not n or n != Path(n).name or n.startswith(".")]
    if odd:
        raise refuse(f"'truth.tables' must name files in truth/, got {odd[:5]!r}")
    meta = info.get("meta", {})
    if not isinstance(meta, dict):
        raise refuse(f"'truth.meta' must be an object, got {_json_type(meta)}")
    tables: dict[str, pd.DataFrame] = {}
    for name in names:
        file = folder / "truth" / f"{name}.parquet"
        if not file.is_file():
            raise refuse(f"'truth.tables' lists {name!r} but {file} does not exist")
        try:
            tables[name] = _read_parquet(file)
        except _UnreadableError as exc:
            raise InputError(f"{file} (listed in {manifest_path}): {exc.reason}") from None
    return GroundTruth(tables=tables, meta=meta)


def _json_type(value: object) -> str:
    """The JSON name of a parsed value's type (array, string, ...), for messages."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
