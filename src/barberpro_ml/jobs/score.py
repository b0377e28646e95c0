"""The score job: profile every customer with the registered models, one Parquet row each.

Reads top to bottom like the data flow::

    event tables -> the verified @champion of each family (their definitions) -> population
    inputs at as_of -> per block of customers: snapshot, score in chunks, append to the Parquet
    file (one Arrow schema declared by the scorer) -> move the file into place (a reader never
    sees half a file)

Only one block of profiles is in memory at a time; the summary is counted block by block.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from barberpro_ml.config import load_yaml_model, resolve_config_path, shipped_config
from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.sources import is_database_url, load_source
from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.features._common import to_as_of

__all__ = ["ScoreConfig", "ScoreResult", "load_config", "run", "write_parquet_atomically",
           "write_parquet_blocks"]

Progress = Callable[[int, int], None]


class ScoreConfig(BaseModel):
    """``configs/score.yaml``: what to score, with which models, where to write."""

    model_config = ConfigDict(extra="forbid")
    job_name: ClassVar[str] = "score"

    data: str = "data/generated/pipeline"
    """Folder of event tables, or a PostgreSQL URL (default: what ``barberpro-ml pipeline``
    wrote)."""
    out: str = "outputs/profiles.parquet"
    """Parquet file to write (its folder is created; an existing folder is refused)."""
    as_of: datetime | None = None
    """Cut-off (naive UTC, or with a zone: converted); default: the data's last event."""
    alias: str = Field("champion", min_length=1)
    """Registry alias of the models to load."""
    reasons: bool = True
    """Phrase the churn reasons (SHAP contributions)."""
    chunk_size: int = Field(50_000, ge=1, le=10_000_000)
    """Customers per model call."""
    block_customers: int = Field(200_000, ge=1, le=100_000_000)
    """Customers per block: each block gets its own snapshot, is scored, appended to the
    Parquet file and released (default: the library's
    :data:`~barberpro_ml.scoring.scorer.BLOCK_CUSTOMERS`)."""
    n_jobs: int = Field(-1, ge=-1)
    """Threads for the boosted models and their SHAP values (-1: every core)."""

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The file this config was read from (None when built in code)."""
        return self._source


class ScoreResult(BaseModel):
    """What the score job wrote."""

    model_config = ConfigDict(frozen=True)
    path: str
    n_profiles: int
    as_of: datetime
    actions: dict[str, int]
    models: dict[str, str]
    """Family -> ``name vN (@alias)`` of each model used."""


def load_config(path: str | Path | None = None, **overrides: Any) -> ScoreConfig:
    """The score job's config: ``path`` (default: the shipped ``score.yaml``) + overrides."""
    file = shipped_config("score.yaml") if path is None else resolve_config_path(path)
    cfg = load_yaml_model(ScoreConfig, file, overrides=overrides)
    cfg._source = file.resolve()
    return cfg


def check_output(out: Path) -> None:
    """Refuse an output path that can never be written as a file, before any work."""
    if out.is_dir():
        raise InputError(f"--out {out} is a directory; give the path of a Parquet file, "
                         f"e.g. {out / 'profiles.parquet'}")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"--out {out}: {parent} is a file, not a folder")


def check_inputs(cfg: ScoreConfig) -> None:
    """Everything about a score config that can be refused before loading data or models:
    the output path and the range of ``as_of``."""
    check_output(Path(cfg.out))
    if cfg.as_of is not None:
        to_as_of(cfg.as_of, name="--as-of", to_utc=True)


def write_parquet_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` beside ``path`` and move it into place: a reader never sees half a file,
    and a failed or interrupted write leaves no ``.partial`` file behind."""
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(partial)
        partial.replace(path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if partial.is_file():
            partial.unlink()


def write_parquet_blocks(blocks: Iterable[pd.DataFrame], schema: Any, path: Path, *,
                         what: str = "profiles",
                         declared_in: str = "the scorer's FRAME_COLUMN_TYPES") -> int:
    """Append ``blocks`` to one Parquet file of ``schema``, beside ``path``, and move it into
    place: as :func:`write_parquet_atomically`, with one block in memory at a time.

    Parameters
    ----------
    blocks
        Frames whose index and columns are exactly the schema's fields (index first).
    schema
        The ``pyarrow.Schema`` of every block, declared up front (a column that is all null in
        one block keeps its type).
    path
        The Parquet file to write.
    what, declared_in
        What a row is and where the schema is declared, for the error messages.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    InputError
        The file cannot be written.
    ValueError
        A block's columns are not the schema's, or its values do not fit it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = list(schema.names)
    partial = path.with_name(path.name + ".partial")
    rows = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(partial, schema) as writer:
            for block in blocks:
                got = [block.index.name, *block.columns]
                if got != expected:
                    raise ValueError(
                        f"a block of {len(block):,} {what} has columns {got}, the declared "
                        f"schema {expected}: declare the columns in {declared_in}")
                try:
                    table = pa.Table.from_pandas(block, schema=schema, preserve_index=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise ValueError(
                        f"a block of {len(block):,} {what} (customers "
                        f"{block.index.min()}..{block.index.max()}) does not fit the declared "
                        f"schema: {exc}") from None
                writer.write_table(table)
                rows += len(block)
        partial.replace(path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if partial.is_file():
            partial.unlink()
    return rows


def run(config: ScoreConfig | str | Path | None = None, *, tracking_uri: str | None = None,
        data: MarketplaceData | None = None, scorer: Any = None,
        progress: Progress | None = None) -> ScoreResult:
    """Profile every customer at ``as_of`` and write them as Parquet, block by block
    (:meth:`~barberpro_ml.scoring.CustomerScorer.score_blocks`, ``cfg.block_customers`` at a
    time): the file's rows equal :meth:`~barberpro_ml.scoring.CustomerScorer.score_frame`'s
    written whole, and only one block of profiles is held in memory.

    Parameters
    ----------
    config
        The score config or its YAML path (default: the shipped ``score.yaml``).
    tracking_uri
        MLflow tracking URI of the registry.
    data, scorer
        Already-loaded event data / :class:`~barberpro_ml.scoring.CustomerScorer` (default:
        load them as the config says).
    progress
        Called with ``(customers done, customers total)`` after each block.

    Returns
    -------
    ScoreResult
    """
    from barberpro_ml.registry import configure_tracking
    from barberpro_ml.scoring import CustomerScorer

    cfg = config if isinstance(config, ScoreConfig) else load_config(config)
    out = Path(cfg.out)
    check_inputs(cfg)
    if data is None:
        if not is_database_url(cfg.data) and not Path(cfg.data).exists():
            raise InputError(f"no event tables at {cfg.data}: run `barberpro-ml pipeline` "
                             "first, or pass --data FOLDER|URL")
        data = load_source(cfg.data).data
    if scorer is None:
        configure_tracking(tracking_uri)
        scorer = CustomerScorer.from_registry(alias=cfg.alias, n_jobs=cfg.n_jobs)
    stamp = scorer.cut_off(data, cfg.as_of)
    signups = data.customers["signup_at"]
    if not (signups <= stamp).any():  # as score_frame refuses it: no file of no one
        raise NotEnoughDataError(f"no customer had signed up by as_of {stamp}; the first "
                                 f"signup is at {signups.min()}")
    counts: Counter[str] = Counter()

    def counted(blocks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for block in blocks:
            counts.update(block["action"].astype(str).tolist())
            yield block

    n_profiles = write_parquet_blocks(
        counted(scorer.score_blocks(data, stamp, block_customers=cfg.block_customers,
                                    reasons=cfg.reasons, chunk_size=cfg.chunk_size,
                                    progress=progress)),
        scorer.frame_schema(reasons=cfg.reasons), out)
    return ScoreResult(
        path=str(out), n_profiles=n_profiles, as_of=stamp.to_pydatetime(),
        actions=dict(counts.most_common()),
        models={f: f"{ref.name} v{ref.version} (@{ref.alias})"
                for f, ref in scorer.models.items()})
