"""The ``barberpro-ml`` command line (typer).

User errors (bad data, a missing file, an invalid config) print one readable message and exit
with status 2; a failed gate exits with status 3 so CI training runs can tell the two apart.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from barberpro_ml.data import DataContractError, MarketplaceData
from barberpro_ml.errors import UnverifiedChampionError, VersionNotFoundError

app = typer.Typer(
    name="barberpro-ml",
    help="Point-in-time features, models, honest evaluation and gated MLflow promotion.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
train_app = typer.Typer(help="Train, evaluate, gate and register one model family.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")
claims_app = typer.Typer(help="Claims files (configs/claims.yaml): what the gates check.",
                         no_args_is_help=True)
app.add_typer(claims_app, name="claims")

console = Console(stderr=True)
out = Console()

EXIT_USER_ERROR = 2
EXIT_GATE_FAILED = 3

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """A problem the user can fix; shown without a traceback."""


def friendly_errors(func: F) -> F:
    """Turn the errors a user can fix into one message and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (DataContractError, UserError, FileNotFoundError, ValidationError,
                ValueError, VersionNotFoundError) as exc:
            kind = type(exc).__name__
            console.print(f"error ({kind}): {exc}", highlight=False, markup=False,
                          soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None

    return wrapper  # type: ignore[return-value]


def progress_bar(description: str) -> Progress:
    """A rich progress bar on stderr; disabled automatically when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
        disable=not console.is_terminal,
    )


def _simulation_config(config: Path | None, **overrides: Any) -> Any:
    from barberpro_ml.data import SimulationConfig

    base = SimulationConfig.from_yaml(config) if config is not None else SimulationConfig()
    updates = {k: v for k, v in overrides.items() if v is not None}
    return SimulationConfig.model_validate({**base.model_dump(), **updates})


def run_simulation(cfg: Any) -> MarketplaceData:
    """Simulate with a progress bar."""
    from barberpro_ml.data import simulate

    with progress_bar("simulating") as progress:
        task = progress.add_task("simulating", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return simulate(cfg, progress=report)


@app.command("simulate")
@friendly_errors
def simulate_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the Parquet tables to.")],
    customers: Annotated[int | None, typer.Option("--customers", min=1,
                                                  help="Number of customers.")] = None,
    start: Annotated[datetime | None, typer.Option(help="First day simulated (UTC).")] = None,
    end: Annotated[datetime | None, typer.Option(help="Last day simulated (UTC).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    config: Annotated[Path | None, typer.Option(help="Simulation YAML (default: built-in, "
                                                     "same as configs/simulation.yaml).")] = None,
) -> None:
    """Simulate a marketplace (with ground truth) and write it as a folder of Parquet."""
    cfg = _simulation_config(config, n_customers=customers, start=start, end=end, seed=seed)
    data = run_simulation(cfg)
    data.save(out_dir)
    _print_counts(data, f"wrote {out_dir}")


@app.command("validate")
@friendly_errors
def validate_command(
    path: Annotated[Path, typer.Argument(help="Folder of <table>.parquet or <table>.csv.")],
) -> None:
    """Check a folder of event tables against the data contract."""
    data = MarketplaceData.load(path)
    _print_counts(data, f"{path}: valid")


def _print_counts(data: MarketplaceData, title: str) -> None:
    table = Table(title=title)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in data.summary().items():
        table.add_row(name, f"{n:,}")
    out.print(table)


def main() -> None:
    """Console-script entry point."""
    # MLflow's per-file download bars say nothing the commands do not print themselves
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


# --------------------------------------------------------------------------- training jobs
FAMILIES = ("churn", "ltv", "recs", "segments")
"""Model families with an experiment script, in the order the pipeline runs them."""


def show_gate(gate: Any) -> None:
    """The verdict table: rich on a terminal, plain unwrapped text in logs (CI, pipes)."""
    if out.is_terminal:
        out.print(gate)
    else:
        out.print(gate.to_text(), soft_wrap=True, markup=False, highlight=False)


def _show_outcome(outcome: Any) -> None:
    status = "[green]passed[/]" if outcome.gate_passed else "[bold red]FAILED[/]"
    promoted = (f"promoted v{outcome.version} to @champion" if outcome.promoted
                else f"not promoted (champion: {outcome.champion_version or 'none'})")
    if outcome.gate is not None:
        show_gate(outcome.gate)
    for note in outcome.notes:
        out.print(f"note: {note}")
    out.print(f"{outcome.family}: gate {status}; {promoted} (run {outcome.run_id})")


def _run_family(family: str, **kwargs: Any) -> Any:
    from barberpro_ml.cli.experiments import load_experiment

    return load_experiment(family).run(**kwargs)


DataOption = Annotated[Path | None, typer.Option(
    help="Folder of event tables; default: simulate as the config says.")]
TrackingOption = Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_URI",
                                                    help="MLflow tracking URI.")]


def _train(family: str, **kwargs: Any) -> None:
    """Run one family's job, show its verdicts, exit 3 when a blocking gate failed."""
    outcome = _run_family(family, **kwargs)
    _show_outcome(outcome)
    if not outcome.gate_passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@train_app.command("churn")
@friendly_errors
def train_churn_command(
    config: Annotated[Path, typer.Option(help="Job config.")] = Path("configs/churn.yaml"),
    data: DataOption = None,
    tune_trials: Annotated[int | None, typer.Option(help="Run an Optuna study with this many "
                                                         "trials first.")] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Train, evaluate, gate, register and (if the gates pass) promote the churn model."""
    _train("churn", config=config, data_dir=data, tracking_uri=tracking_uri,
           tune_trials=tune_trials)


@train_app.command("ltv")
@friendly_errors
def train_ltv_command(
    config: Annotated[Path, typer.Option(help="Job config.")] = Path("configs/ltv.yaml"),
    data: DataOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Train, evaluate, gate, register and (if the gates pass) promote the lifetime-value model."""
    _train("ltv", config=config, data_dir=data, tracking_uri=tracking_uri)


@train_app.command("recs")
@friendly_errors
def train_recs_command(
    config: Annotated[Path, typer.Option(help="Job config.")] = Path("configs/recs.yaml"),
    data: DataOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Train, evaluate, gate, register and (if the gates pass) promote the barber recommender."""
    _train("recs", config=config, data_dir=data, tracking_uri=tracking_uri)


@train_app.command("segments")
@friendly_errors
def train_segments_command(
    config: Annotated[Path, typer.Option(help="Job config.")] = Path("configs/segments.yaml"),
    data: DataOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Fit, evaluate (id stability), gate, register and promote the customer segmenter."""
    _train("segments", config=config, data_dir=data, tracking_uri=tracking_uri)


ClaimsOption = Annotated[Path | None, typer.Option(
    help="Claims file to judge by; default: the one the version's last gate ran with.")]


@app.command("gate")
@friendly_errors
def gate_command(
    model: Annotated[str, typer.Option(help="Registered model name.")],
    version: Annotated[str, typer.Option(help="Model version to gate.")],
    claims: ClaimsOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Run a version's gate again: its logged report against the claims file, and its logged
    test rows scored by it and by the current champion. Records the result on the version;
    exit 3 if a blocking check fails."""
    from barberpro_ml.registry import configure_tracking, regate

    configure_tracking(tracking_uri)
    bound = regate(model, version, claims_path=claims)
    show_gate(bound.result)
    against = bound.binding.champion_version
    out.print(f"{model} v{version}: gate recorded (digest {bound.content_digest()[:16]}, "
              f"compared with {'champion v' + against if against else 'no champion'})",
              soft_wrap=True, highlight=False)
    if not bound.passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@claims_app.command("check")
def claims_check_command(
    file: Annotated[Path, typer.Argument(help="Claims file.")] = Path("configs/claims.yaml"),
) -> None:
    """Validate a claims file for shape and meaning; print every problem, exit 2 if any.

    Checks duplicate YAML keys, unknown keys, families, metrics, directions, value ranges,
    non-inferiority metrics and margins, and that every family has a blocking claim (see
    ``barberpro_ml.gates.claims``). On success prints the families, claims per family and how
    many block promotion.
    """
    from barberpro_ml.gates import ClaimsError, load_claims

    try:
        claim_set = load_claims(file)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except ClaimsError as exc:
        for problem in exc.problems:
            typer.echo(problem.describe(), err=True)
        n = len(exc.problems)
        typer.echo(f"{file}: {n} problem{'s' if n != 1 else ''}; the gates would refuse "
                   "this file", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except OSError as exc:  # a folder, no permission...
        typer.echo(f"error: cannot read {file}: {exc}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    families = claim_set.families
    typer.echo(f"{file}: valid; {len(claim_set)} claims, {len(families)} families "
               f"({sum(c.blocking for c in claim_set)} blocking)")
    ni = claim_set.settings.non_inferiority
    for family in families:
        of_family = claim_set.for_family(family).claims
        blocking = sum(c.blocking for c in of_family)
        setting = ni.get(family)
        champion = (f"; vs champion: {setting.metric}, margin {setting.margin:g}" if setting
                    else "; no champion comparison")
        typer.echo(f"  {family}: {len(of_family)} claims, {blocking} blocking{champion}")


@app.command("promote")
@friendly_errors
def promote_command(
    model: Annotated[str, typer.Option(help="Registered model name.")],
    version: Annotated[str, typer.Option(help="Model version to promote.")],
    claims: ClaimsOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Move @champion to a version, only if the gate result bound to it holds and passed.

    Exit 2 when a binding fails (no gate result, edited, another version's, the champion or
    the claims file changed since the gate ran), 3 when the gate itself failed.
    """
    from barberpro_ml.registry import configure_tracking, promote

    configure_tracking(tracking_uri)
    record = promote(model, version, claims_path=claims)
    if record.outcome == "promoted":
        out.print(f"{model} v{version} is now @champion (was "
                  f"{'v' + record.previous_champion if record.previous_champion else 'none'})",
                  soft_wrap=True, highlight=False)
        return
    why = "; ".join(record.reasons)
    console.print(f"refused ({record.refused_because}): {model} v{version} not promoted; "
                  f"champion remains {record.previous_champion or 'none'}: {why}",
                  highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_GATE_FAILED if record.refused_because == "gate" else EXIT_USER_ERROR)


@contextlib.contextmanager
def _launcher_run(tracking_uri: str | None) -> Iterator[None]:
    """Under ``mlflow run`` the launcher made a run (``MLFLOW_RUN_ID``); keep it active so each
    family's job becomes a child run of it, instead of all resuming the same run."""
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    if run_id is None:
        yield
        return
    import mlflow

    from barberpro_ml.registry import configure_tracking

    configure_tracking(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        yield


@app.command("pipeline")
@friendly_errors
def pipeline_command(
    customers: Annotated[int, typer.Option(min=100, help="Customers to simulate.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 42,
    families: Annotated[str, typer.Option(help="Comma-separated families to run.")] =
    ",".join(FAMILIES),
    out_dir: Annotated[Path, typer.Option("--out", help="Where the simulated tables go.")] =
    Path("data/generated/pipeline"),
    tracking_uri: Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_URI")] = None,
) -> None:
    """Simulate a marketplace, then train, evaluate, gate and promote every model family."""
    wanted = [f.strip() for f in families.split(",") if f.strip()]
    unknown = sorted(set(wanted) - set(FAMILIES))
    if unknown:
        raise UserError(f"unknown families {unknown}; available: {list(FAMILIES)}")
    from barberpro_ml.cli.experiments import project_root

    cfg = _simulation_config(project_root() / "configs" / "simulation.yaml",
                             n_customers=customers, seed=seed)
    data = run_simulation(cfg)
    data.save(out_dir)
    _print_counts(data, f"simulated marketplace (seed {seed}) -> {out_dir}")
    outcomes = []
    with _launcher_run(tracking_uri):
        for family in wanted:
            console.rule(f"[bold]{family}")
            outcome = _run_family(family, config=project_root() / "configs" / f"{family}.yaml",
                                  data=data, tracking_uri=tracking_uri)
            _show_outcome(outcome)
            outcomes.append(outcome)
    summary = Table(title="pipeline summary")
    for col in ("family", "model", "metrics (95% CI)", "gate", "champion"):
        summary.add_column(col)
    for o in outcomes:
        summary.add_row(
            o.family, f"{o.model_name} v{o.version}",
            "\n".join([f"{m.name} {m.render()}" for m in o.headline] + o.notes),
            "[green]passed[/]" if o.gate_passed else "[bold red]failed[/]",
            f"v{o.champion_version}" + (" (new)" if o.promoted else "")
            if o.champion_version else "none")
    out.print(summary)
    if not all(o.gate_passed for o in outcomes):
        raise typer.Exit(EXIT_GATE_FAILED)


# --------------------------------------------------------------------------- scoring
DEFAULT_SCORING_DATA = Path("data/generated/pipeline")
ServeData = Annotated[Path, typer.Option(
    "--data", help="Folder of event tables to score (default: what `barberpro-ml pipeline` "
                   "wrote).")]
AliasOption = Annotated[str, typer.Option(help="Registry alias of the models to load.")]


def _scoring_inputs(data_dir: Path, tracking_uri: str | None, alias: str,
                    n_jobs: int = 1) -> tuple[Any, Any]:
    from barberpro_ml.registry import configure_tracking
    from barberpro_ml.scoring import CustomerScorer

    if not data_dir.exists():
        raise UserError(f"no event tables at {data_dir}: run `barberpro-ml pipeline` first, or "
                        "pass --data FOLDER")
    # one line per model below says what was loaded; MLflow's per-file bars say nothing more
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    data = MarketplaceData.load(data_dir)
    configure_tracking(tracking_uri)
    with console.status(f"loading the @{alias} models"):
        try:
            scorer = CustomerScorer.from_registry(alias=alias, n_jobs=n_jobs)
        except (LookupError, UnverifiedChampionError) as exc:
            raise UserError(str(exc)) from None
    for ref in scorer.models.values():
        console.print(f"loaded {ref.name} v{ref.version} (@{ref.alias})", highlight=False)
    return scorer, data


def _check_out_file(path: Path) -> None:
    """Refuse an ``--out`` that can never be written as a file, before any work is done."""
    if path.is_dir():
        raise UserError(f"--out {path} is a directory; give the path of a Parquet file, "
                        f"e.g. {path / 'scores.parquet'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"--out {path}: {parent} is a file, not a folder")


def _write_parquet_atomically(frame: Any, path: Path) -> None:
    """Write ``frame`` beside ``path`` and move it into place: a reader never sees half a file,
    and a failed write leaves no ``.partial`` file behind."""
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(partial)
        partial.replace(path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if partial.is_file():
            partial.unlink()


@app.command("score")
@friendly_errors
def score_command(
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    as_of: Annotated[datetime | None, typer.Option(
        help="Cut-off (naive UTC); default: the data's last event.")] = None,
    data: ServeData = DEFAULT_SCORING_DATA,
    alias: AliasOption = "champion",
    reasons: Annotated[bool, typer.Option(help="Phrase the churn reasons.")] = True,
    chunk_size: Annotated[int, typer.Option(min=1, help="Customers per model call.")] = 50_000,
    jobs: Annotated[int, typer.Option(help="Threads for the boosted models and their SHAP "
                                           "values (-1: every core).")] = -1,
    tracking_uri: TrackingOption = None,
) -> None:
    """Profile every customer at AS_OF with the registered models; write one Parquet row each."""
    from barberpro_ml.features._common import to_as_of

    _check_out_file(out_file)
    if as_of is not None:
        to_as_of(as_of, name="--as-of")
    scorer, events = _scoring_inputs(data, tracking_uri, alias, n_jobs=jobs)
    with console.status("building features, lifecycle and suggestions"):
        snap = scorer.snapshot(events, as_of)
    with progress_bar("scoring") as progress:
        task = progress.add_task("scoring", total=len(snap.features))

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        frame = scorer.score_frame(events, snap.as_of, reasons=reasons,
                                   chunk_size=chunk_size, progress=report)
    _write_parquet_atomically(frame, out_file)
    counts = frame["action"].value_counts()
    out.print(f"wrote {len(frame):,} profiles at {snap.as_of} to {out_file} (actions: "
              + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + ")")


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port that cannot be bound now, rather than after the models are loaded."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UserError(f"cannot resolve --host {host}: {exc.strerror}") from None
    with socket.socket(family, kind, proto) as probe:
        if os.name != "nt":  # as the server will: a port in TIME_WAIT is free
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is in use; choose another with "
                                "--port") from None
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@app.command("serve")
@friendly_errors
def serve_command(
    data: ServeData = DEFAULT_SCORING_DATA,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    as_of: Annotated[datetime | None, typer.Option(
        help="Default cut-off of requests without one; default: the data's last event.")] = None,
    alias: AliasOption = "champion",
    tracking_uri: TrackingOption = None,
) -> None:
    """Serve the customer-intelligence API (FastAPI, OpenAPI docs at /docs)."""
    from barberpro_ml.features._common import to_as_of

    _check_port_free(host, port)
    if as_of is not None:
        to_as_of(as_of, name="--as-of")
    import uvicorn

    from barberpro_ml.scoring.service import create_app

    scorer, events = _scoring_inputs(data, tracking_uri, alias)
    with console.status("building the default snapshot"):
        application = create_app(scorer, events, default_as_of=as_of)
    console.print(f"serving on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    uvicorn.run(application, host=host, port=port, log_level="info")
