"""Plumbing shared by the experiment scripts (``experiments/train_<family>.py``).

Each script stays a short, top-to-bottom reading of its job; what every job needs the same way
lives here once: where the event data comes from, how config paths resolve, timed stages
that tell the user what is happening and log their durations to the run, the tracking set-up
of a job's run, and the promotion step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from pydantic import BaseModel, ConfigDict

from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.gates import ClaimSet, GateResult
from barberpro_ml.registry.binding import current_champion, record_gate
from barberpro_ml.registry.outcome import TrainingOutcome
from barberpro_ml.registry.promotion import promote
from barberpro_ml.registry.tracking import configure_tracking


class SimulationSource(BaseModel):
    """The ``simulation:`` block of a job config: a simulation YAML plus overrides."""

    model_config = ConfigDict(extra="forbid")
    config: str = "configs/simulation.yaml"
    n_customers: int | None = None
    seed: int | None = None


def resolve_path(path: str | Path, root: Path) -> Path:
    """``path`` as given when absolute or existing from the working directory, else under
    ``root`` (the checkout), so configs work wherever a script is run from."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else root / p


def load_or_simulate(data_dir: str | Path | None, simulation: SimulationSource,
                     root: Path) -> MarketplaceData:
    """Load the event tables from ``data_dir`` or, when it is None, simulate them."""
    if data_dir is not None:
        return MarketplaceData.load(resolve_path(data_dir, root))
    base = SimulationConfig.from_yaml(resolve_path(simulation.config, root))
    overrides = {k: v for k, v in {"n_customers": simulation.n_customers,
                                   "seed": simulation.seed}.items() if v is not None}
    return simulate(SimulationConfig.model_validate({**base.model_dump(), **overrides}))


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


def gate_and_promote(enabled: bool, name: str, version: str, gate: GateResult,
                     claims: ClaimSet, *, champion_version: str | None
                     ) -> tuple[bool, str | None]:
    """Bind the gate result to the new version, then promote it when the config says so.

    ``champion_version`` is the champion the job compared with (read before its comparison):
    if another promotion moved the champion meanwhile, the binding is refused and nothing
    moves. Returns whether the version was promoted, and the champion afterwards.
    """
    record_gate(name, version, gate, claims, champion_version=champion_version)
    if not enabled:
        return False, current_champion(name)
    record = promote(name, version, claims_path=claims.path)
    promoted = record.outcome == "promoted"
    return promoted, record.version if promoted else record.previous_champion


def script_main(run: Callable[..., TrainingOutcome], default_config: str, description: str,
                argv: list[str] | None = None) -> int:
    """The command line of an experiment script: ``--config``, ``--data``; print the verdicts;
    exit status 3 when a blocking gate failed (for CI training runs)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=default_config)
    parser.add_argument("--data", default=None, help="folder of event tables (else simulate)")
    args = parser.parse_args(argv)
    outcome = run(args.config, data_dir=args.data)
    print(outcome.to_text())
    return 0 if outcome.gate_passed else 3
