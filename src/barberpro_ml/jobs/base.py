"""The skeleton every training job shares; a family's module holds only what is its own.

A training job reads a typed config, loads (or simulates) the event data, starts an MLflow run,
hands the family's fit-and-evaluate step a :class:`JobContext`, and then does the same for
every family with what that step returns (a :class:`Candidate`): register the model as
``@challenger`` tagged with its family, data set and definitions, log the gate's inputs, judge
the report against the claims and the champion, write the model card, bind the gate result to
the version and promote it only through :func:`~barberpro_ml.registry.promote`. The result
is a :class:`JobResult`: what was logged, registered and decided.

Data flow::

    config -> data (+ data-set identity) -> run { family step: features, fit, evaluate }
           -> register @challenger -> gate (claims + champion) -> model card
           -> bind gate result -> promote @champion (only when it passed)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from barberpro_ml.config import load_yaml_model, resolve_config_path, shipped_config
from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.data.sources import is_database_url, load_source
from barberpro_ml.definitions import Definitions
from barberpro_ml.errors import NotEnoughDataError
from barberpro_ml.evaluation import EvaluationReport
from barberpro_ml.gates import ChampionComparison, GateResult, check, load_claims
from barberpro_ml.registry import (
    log_config,
    log_gate_result,
    log_lineage,
    log_model_card,
    model_card,
    promote,
    record_gate,
)
from barberpro_ml.registry.binding import TAG_FAMILY, current_champion, log_gate_inputs
from barberpro_ml.registry.promotion import TAG_DATA_SET_DIGEST, TAG_DATA_SET_NAME
from barberpro_ml.registry.tracking import configure_tracking

__all__ = [
    "Candidate",
    "DataSetIdentity",
    "EvaluationSettings",
    "HeadlineMetric",
    "JobContext",
    "JobResult",
    "SimulationSource",
    "TrainingJobConfig",
    "as_job_config",
    "load_job_config",
    "run_training_job",
    "timed_stage",
    "training_cutoffs",
]

C = TypeVar("C", bound="TrainingJobConfig")


# --------------------------------------------------------------------------- configs
class SimulationSource(BaseModel):
    """The ``simulation:`` block: a simulation YAML plus the overrides most often changed."""

    model_config = ConfigDict(extra="forbid")
    config: str = "simulation.yaml"
    """Simulation YAML (:class:`~barberpro_ml.data.SimulationConfig`); relative paths are
    looked up next to the job config, then in the working directory, then among the shipped
    configs."""
    n_customers: int | None = Field(None, ge=100, le=10_000_000)
    """Customers to simulate (overrides the simulation YAML)."""
    seed: int | None = Field(None, ge=0)
    """Simulation seed (overrides the simulation YAML)."""


class EvaluationSettings(BaseModel):
    """The ``evaluation:`` block every job shares."""

    model_config = ConfigDict(extra="forbid")
    n_bootstrap: int = Field(1000, ge=100, le=100_000)
    """Bootstrap resamples of every confidence interval."""
    seed: int = Field(0, ge=0)
    """Seed of the bootstrap."""


class TrainingJobConfig(BaseModel):
    """What every training job's config holds; each family's config adds its own knobs.

    Unknown keys are refused (``extra="forbid"``), so a misspelled key is an error naming it.
    Paths (``simulation.config``, ``definitions``, ``claims``, ``data_dir``) are resolved next
    to the config file first, then from the working directory, then among the configs shipped
    with the package.
    """

    model_config = ConfigDict(extra="forbid")
    family: ClassVar[str]
    job_name: ClassVar[str]

    model_name: str = Field(min_length=1)
    """Registered model name."""
    experiment: str = Field(min_length=1)
    """MLflow experiment of the job's runs."""
    data_dir: str | None = None
    """Folder of event tables, or a PostgreSQL URL (``postgresql://...``); None: simulate as
    ``simulation`` says."""
    data_set: str | None = None
    """Name of the data set (its identity in the registry); default: the data folder's
    ``manifest.json`` ``name``, else the folder name (a database: the name recorded with the
    tables, else the database's name), else ``simulated(...)``."""
    simulation: SimulationSource = Field(default_factory=lambda: SimulationSource(
        n_customers=20_000, seed=42))
    definitions: str = "definitions.yaml"
    """The shared business definitions (:class:`~barberpro_ml.definitions.Definitions`)."""
    claims: str = "claims.yaml"
    """Claims file the gate judges by."""
    promote: bool = True
    """Promote to ``@champion`` when the blocking gates pass."""
    new_data_set: bool = False
    """Allow replacing a champion trained on another data set (``--new-data-set``)."""

    _source: Path | None = PrivateAttr(default=None)

    def resolve(self, path: str) -> Path:
        """A path named in this config, resolved as the class docstring says."""
        return resolve_config_path(path, relative_to=self._source.parent
                                   if self._source is not None else None)

    def load_definitions(self) -> Definitions:
        return load_yaml_model(Definitions, self.resolve(self.definitions))

    @property
    def source(self) -> Path | None:
        """The file this config was read from (None when built in code)."""
        return self._source


def as_job_config(model: type[C], config: C | str | Path | None) -> C:
    """``config`` itself when it is already a ``model``, else the YAML it names (default: the
    shipped ``<job>.yaml``) read by :func:`load_job_config`."""
    if isinstance(config, model):
        return config
    if isinstance(config, BaseModel):
        raise TypeError(f"expected a {model.__name__} (or a path), got a "
                        f"{type(config).__name__}")
    return load_job_config(model, config)


def load_job_config(model: type[C], path: str | Path | None = None,
                    overrides: Mapping[str, Any] | None = None) -> C:
    """Read a job config (default: the shipped ``<job>.yaml``) with optional overrides.

    Raises
    ------
    ConfigError
        One line per problem naming file, line, key and the expected type.
    """
    file = (shipped_config(f"{model.job_name}.yaml") if path is None
            else resolve_config_path(path))
    cfg = load_yaml_model(model, file, overrides=overrides)
    cfg._source = file.resolve()
    return cfg


# --------------------------------------------------------------------------- data
class DataSetIdentity(BaseModel):
    """Which data set a model was trained on: a stable name plus the digest of the tables.

    The name is the identity promotion compares (new events on the same marketplace change the
    digest, not the name); the digest records exactly which tables were read.
    """

    model_config = ConfigDict(frozen=True)
    name: str
    digest: str

    def as_tags(self) -> dict[str, str]:
        return {TAG_DATA_SET_NAME: self.name, TAG_DATA_SET_DIGEST: self.digest}


def resolve_data_source(source: str | Path, relative_to: Callable[[str], Path] | None
                        ) -> str | Path:
    """A ``--data`` value or a config's ``data_dir``: a database URL as it is, a folder
    resolved with ``relative_to`` (a config's :meth:`~TrainingJobConfig.resolve`) when given."""
    if is_database_url(str(source)) or relative_to is None:
        return source
    return relative_to(str(source))


def load_data(cfg: TrainingJobConfig, data: MarketplaceData | None = None,
              data_dir: str | Path | None = None) -> tuple[MarketplaceData, DataSetIdentity]:
    """The job's event data and its identity: ``data`` as given, else the folder or database
    (``data_dir``, else the config's), else the simulation the config describes."""
    if data is not None:
        name = cfg.data_set or data_set_name_of(data)
        return data, DataSetIdentity(name=name, digest=data.digest())
    source = data_dir or cfg.data_dir
    if source is not None:
        loaded = load_source(resolve_data_source(
            source, None if data_dir is not None else cfg.resolve))
        return loaded.data, DataSetIdentity(name=cfg.data_set or loaded.name,
                                            digest=loaded.data.digest())
    sim = simulation_config(cfg.resolve(cfg.simulation.config), cfg.simulation)
    simulated = simulate(sim)
    name = cfg.data_set or simulated_name(sim)
    return simulated, DataSetIdentity(name=name, digest=simulated.digest())


def simulation_config(path: Path, source: SimulationSource) -> SimulationConfig:
    base = load_yaml_model(SimulationConfig, path)
    overrides = {k: v for k, v in {"n_customers": source.n_customers,
                                   "seed": source.seed}.items() if v is not None}
    return SimulationConfig.model_validate({**base.model_dump(), **overrides})


def simulated_name(sim: SimulationConfig) -> str:
    """``simulated(n_customers=20000, seed=42, config=1a2b3c4d)``: same config, same name."""
    blob = json.dumps(sim.model_dump(mode="json", exclude={"n_customers", "seed"}),
                      sort_keys=True).encode()
    return (f"simulated(n_customers={sim.n_customers}, seed={sim.seed}, "
            f"config={hashlib.sha256(blob).hexdigest()[:8]})")


def data_set_name_of(data: MarketplaceData) -> str:
    """A name for data handed over in memory: the simulation's when it carries one."""
    meta = data.truth.meta if data.truth is not None else {}
    if isinstance(meta.get("config"), dict):
        try:
            return simulated_name(SimulationConfig.model_validate(meta["config"]))
        except ValueError:
            pass
    return f"data-{data.digest()[:12]}"


# --------------------------------------------------------------------------- calendar
def _months(days: float) -> str:
    return f"{days / 30.44:.0f} months"


def training_cutoffs(*, first_usable: pd.Timestamp, last: pd.Timestamp, spacing_days: int,
                     at_most: int, data_start: pd.Timestamp, data_end: pd.Timestamp,
                     days_before_first_cutoff: int, days_after_last_cutoff: int,
                     what: str) -> list[pd.Timestamp]:
    """Training cut-offs derived from the data: ``last``, then every ``spacing_days`` back, as
    many as fit after ``first_usable`` (at most ``at_most``), oldest first.

    ``days_before_first_cutoff`` / ``days_after_last_cutoff`` say how much data one cut-off
    needs before and after the last one (history window; label periods and later parts of
    the layout), for the message when none fits.

    Raises
    ------
    NotEnoughDataError
        Not one cut-off fits: the message says the data's span, what this layout needs, and
        that shorter horizons or fewer parts would fit.
    """
    cuts = [last - pd.Timedelta(days=i * spacing_days) for i in range(at_most)]
    usable = sorted(c for c in cuts if c >= first_usable)
    if usable:
        return usable
    span = (data_end - data_start) / pd.Timedelta(days=1)
    needed = days_before_first_cutoff + days_after_last_cutoff
    raise NotEnoughDataError(
        f"{_months(span)} of data ({data_start:%Y-%m-%d} to {data_end:%Y-%m-%d}, "
        f"{span:.0f} days): {what} needs at least {needed} days ({_months(needed)}): "
        f"{days_before_first_cutoff} before the first training cut-off and "
        f"{days_after_last_cutoff} after it; the latest possible cut-off {last:%Y-%m-%d} "
        f"precedes the first usable day {first_usable:%Y-%m-%d}. Shorten the horizon in "
        "definitions.yaml or the windows of the job config.")


# --------------------------------------------------------------------------- progress
@contextmanager
def timed_stage(family: str, name: str) -> Iterator[None]:
    """Say on stderr what the job is doing and how long it took; log ``seconds_<name>`` to the
    active run, if any."""
    print(f"[{family}] {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    print(f"[{family}] {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    if mlflow.active_run() is not None:
        mlflow.log_metric(f"seconds_{name.replace(' ', '_')}", seconds)


def start_job_tracking(tracking_uri: str | None, experiment: str) -> bool:
    """Point MLflow at the store and experiment of a training job; return whether its run nests.

    Under ``mlflow run`` the launcher has created the run (``MLFLOW_RUN_ID``) in its own
    experiment, so the job resumes it there; inside another active run (the pipeline under
    ``mlflow run``) the job's run becomes a child run.
    """
    nested = mlflow.active_run() is not None
    launched = bool(os.environ.get("MLFLOW_RUN_ID")) and not nested
    configure_tracking(tracking_uri, experiment=None if launched else experiment)
    return nested


# --------------------------------------------------------------------------- results
class HeadlineMetric(BaseModel):
    """A metric worth a column in the summary table: value and 95% CI."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: float
    ci_low: float
    ci_high: float

    def render(self, digits: int = 3) -> str:
        """``0.812 [0.801, 0.824]``."""
        return f"{self.value:.{digits}f} [{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}]"


class JobResult(BaseModel):
    """What one training job logged, registered and decided."""

    model_config = ConfigDict(frozen=True)

    family: str
    run_id: str
    model_name: str
    version: str | None
    gate_passed: bool
    promoted: bool
    champion_version: str | None
    """The champion after the job (the new version when promoted)."""
    previous_champion: str | None = None
    """The champion the candidate was compared with."""
    refused_because: Literal["gate", "binding", "concurrent", "data-set", "disabled"] | None = None
    """Why the candidate was not promoted (``disabled``: the config's ``promote: false``)."""
    reasons: list[str] = Field(default_factory=list)
    """The failed checks or bindings behind ``refused_because``."""
    data_set: DataSetIdentity | None = None
    definitions: Definitions | None = None
    headline: list[HeadlineMetric] = Field(default_factory=list)
    verdicts: list[str] = Field(default_factory=list)
    """One readable line per claim (``PASS accuracy >= 0.941: ...``)."""
    gate: GateResult | None = None
    """The full gate result (its rich rendering is the verdict table)."""
    notes: list[str] = Field(default_factory=list)
    """Context for the summary, e.g. the model's ROC AUC relative to the simulation oracle."""

    def to_text(self) -> str:
        """The verdict table and the notes, as plain text (what the scripts print)."""
        lines = [self.gate.to_text() if self.gate else "\n".join(self.verdicts)]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def why(self) -> str:
        """One line: why the candidate was or was not promoted."""
        if self.promoted:
            return "all blocking checks passed"
        if self.refused_because == "disabled":
            return "promotion disabled in the config (promote: false)"
        return "; ".join(self.reasons) or (self.refused_because or "")


def headline_metrics(report: EvaluationReport, names: tuple[str, ...]) -> list[HeadlineMetric]:
    """The named metrics of ``report`` with their intervals, for the summary table."""
    return [HeadlineMetric(name=n, value=report.metric(n).value, ci_low=report.metric(n).ci_low,
                           ci_high=report.metric(n).ci_high) for n in names]


def verdict_lines(gate: GateResult) -> list[str]:
    """One readable line per claim, then the champion comparison (``PASS roc-auc-floor: ...``)."""
    return ([f"{c.verdict.upper():5} {c.check_id}: {c.reason}" for c in gate.claims]
            + [f"{gate.champion.verdict.upper():5} champion: {gate.champion.reason}"])


# --------------------------------------------------------------------------- the skeleton
@dataclass
class JobContext:
    """What a family's step is handed inside the job's run."""

    config: Any
    data: MarketplaceData
    definitions: Definitions
    data_set: DataSetIdentity
    champion_before: str | None
    """The champion when the job started (what the candidate is compared with)."""
    run_id: str

    def stage(self, name: str) -> Any:
        return timed_stage(self.config.family, name)


@dataclass
class ModelCardText:
    """The family-specific parts of the model card."""

    description: str
    data_window: dict[str, str]
    caveats: list[str] = field(default_factory=list)
    slice_metrics: list[str] | None = None


@dataclass
class Candidate:
    """What a family's step hands back to the skeleton."""

    register: Callable[[dict[str, str]], ModelVersion]
    """Log and register the fitted model with these version tags; returns the version."""
    report: EvaluationReport
    comparison: ChampionComparison | None
    """The paired comparison with ``JobContext.champion_before`` (None: no champion, or the
    family is not compared; see the claims file's non-inferiority settings)."""
    card: ModelCardText
    headline: tuple[str, ...]
    gate_inputs: list[tuple[pd.DataFrame, Any, str]] = field(default_factory=list)
    """``(frame, target or None, name)`` logged under ``gate_inputs/`` for ``regate``."""
    notes: list[str] = field(default_factory=list)


def run_training_job(cfg: TrainingJobConfig, step: Callable[[JobContext], Candidate], *,
                     data: MarketplaceData | None = None, data_dir: str | Path | None = None,
                     tracking_uri: str | None = None, run_name: str | None = None
                     ) -> JobResult:
    """Run a training job: ``step`` fits and evaluates, the skeleton does the rest.

    Parameters
    ----------
    cfg
        The job's validated config.
    step
        The family's own work inside the run (features, fit, evaluate, family artifacts).
    data, data_dir
        Event data in memory, or a folder of tables or a PostgreSQL URL; default:
        ``cfg.data_dir``, else simulate.
    tracking_uri
        MLflow tracking URI (default: ``MLFLOW_TRACKING_URI``, else the local SQLite store).

    Returns
    -------
    JobResult
    """
    family = cfg.family
    definitions = cfg.load_definitions()
    claims = load_claims(cfg.resolve(cfg.claims), family=family)
    # the data first: a wrong folder is refused before anything is created in the store
    with timed_stage(family, "load data"):
        events, identity = load_data(cfg, data, data_dir)
    nested = start_job_tracking(tracking_uri, cfg.experiment)
    champion_before = current_champion(cfg.model_name)
    with mlflow.start_run(run_name=run_name or f"{family}-{events.observation_end:%Y-%m-%d}",
                          nested=nested) as run:
        log_config(cfg.model_dump())
        log_lineage(data=events)
        mlflow.set_tags({**identity.as_tags(), TAG_FAMILY: family})
        mlflow.log_dict(definitions.model_dump(), "definitions.json")
        ctx = JobContext(config=cfg, data=events, definitions=definitions, data_set=identity,
                         champion_before=champion_before, run_id=run.info.run_id)
        candidate = step(ctx)

        with timed_stage(family, "register"):
            version = candidate.register({TAG_FAMILY: family, **identity.as_tags(),
                                          **definitions.as_tags()})
        for frame, target, name in candidate.gate_inputs:
            log_gate_inputs(frame, target, run_id=run.info.run_id, name=name)
        gate = check(candidate.report, claims, candidate.comparison)
        log_gate_result(gate)
        card = candidate.card
        log_model_card(model_card(
            candidate.report, model_name=cfg.model_name, version=str(version.version),
            description=card.description, data_window=card.data_window, gate_result=gate,
            caveats=card.caveats, slice_metrics=card.slice_metrics))
        record_gate(cfg.model_name, version.version, gate, claims,
                    champion_version=champion_before)
        refused: Any = None
        reasons: list[str] = []
        if cfg.promote:
            record = promote(cfg.model_name, version.version, claims_path=claims.path,
                             allow_new_data_set=cfg.new_data_set)
            promoted = record.outcome == "promoted"
            champion = record.version if promoted else record.previous_champion
            refused, reasons = record.refused_because, list(record.reasons)
        else:
            promoted, champion, refused = False, current_champion(cfg.model_name), "disabled"
    return JobResult(
        family=family, run_id=run.info.run_id, model_name=cfg.model_name,
        version=str(version.version), gate_passed=gate.passed, promoted=promoted,
        champion_version=champion, previous_champion=champion_before,
        refused_because=refused, reasons=reasons, data_set=identity, definitions=definitions,
        headline=headline_metrics(candidate.report, candidate.headline),
        verdicts=verdict_lines(gate), gate=gate, notes=candidate.notes)
