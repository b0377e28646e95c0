"""`MarketplaceData`: the six validated event tables, plus optional simulation ground truth."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from barberpro_ml.data.schema import CONTRACT, TABLES
from barberpro_ml.data.validation import ContractViolation, DataContractError, validate_tables
from barberpro_ml.errors import InputNotFoundError

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
        """SHA-256 of the event tables' content (values, columns and dtypes), for lineage."""
        h = hashlib.sha256()
        for name, frame in self.tables().items():
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
    def save(self, path: str | Path) -> Path:
        """Write the tables (and ground truth, if any) as a folder of Parquet files.

        The folder is written beside the target and moved into place at the end, so a failure
        leaves either the previous content or nothing, never a half-written folder.

        Returns
        -------
        Path
            The folder written.
        """
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
            When the content breaks the contract.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise InputNotFoundError(f"no data folder at {folder}")
        tables: dict[str, pd.DataFrame] = {}
        missing: list[str] = []
        for name in TABLES:
            parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
            if parquet.exists():
                tables[name] = pd.read_parquet(parquet)
            elif csv.exists():
                tables[name] = _read_csv(name, csv)
            else:
                missing.append(name)
        if missing:
            found = sorted(p.name for p in folder.iterdir())
            raise InputNotFoundError(
                f"{folder}: missing table file(s) {', '.join(f'{m}.parquet|.csv' for m in missing)}"
                f"; found {found}")
        truth = _load_truth(folder)
        try:
            return cls(**tables, truth=truth)
        except DataContractError as exc:
            raise DataContractError(exc.violations) from None


def _read_csv(table: str, path: Path) -> pd.DataFrame:
    """Read a CSV table with every contract column as text, parsed later by validation."""
    header = pd.read_csv(path, nrows=0).columns
    declared = {spec.name for spec in CONTRACT[table]}
    try:
        return pd.read_csv(path, dtype={c: "str" for c in header if c in declared})
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataContractError([ContractViolation(table, "*", "readable CSV", 1,
                                                   (str(exc)[:200],))]) from exc


def _load_truth(folder: Path) -> GroundTruth | None:
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    info = manifest.get("truth")
    if not info:
        return None
    tables = {name: pd.read_parquet(folder / "truth" / f"{name}.parquet")
              for name in info["tables"]}
    return GroundTruth(tables=tables, meta=info.get("meta", {}))
