"""The ``barberpro-ml`` command line (typer).

User errors (bad data, a missing file, an invalid config) print one readable message and exit
with status 2; a failed gate exits with status 3 so CI training runs can tell the two apart.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import logging
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from barberpro_ml.config import describe_validation_error
from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.sources import is_database_url, load_source
from barberpro_ml.errors import BarberproError, InfraError, InputError, ModelUnavailableError
from barberpro_ml.jobs import JOBS, JobResult
from barberpro_ml.jobs import churn as churn_job
from barberpro_ml.jobs import forecast as forecast_job
from barberpro_ml.jobs import load_config as load_job_config
from barberpro_ml.jobs import ltv as ltv_job
from barberpro_ml.jobs import pipeline as pipeline_job
from barberpro_ml.jobs import pricing as pricing_job
from barberpro_ml.jobs import provider_departure as provider_departure_job
from barberpro_ml.jobs import recs as recs_job
from barberpro_ml.jobs import score as score_job
from barberpro_ml.jobs import segments as segments_job
from barberpro_ml.jobs import uplift as uplift_job

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
import_app = typer.Typer(help="Bring your own data: turn an export into event tables.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")
config_app = typer.Typer(help="Job configs: show the effective one, check a file.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console(stderr=True)
out = Console()

EXIT_USER_ERROR = 2
EXIT_GATE_FAILED = 3

F = TypeVar("F", bound=Callable[..., Any])


class UserError(InputError):
    """A problem the user can fix at the command line; shown without a traceback."""


def friendly_errors(func: F) -> F:
    """Turn the library's user-facing errors into one message and their exit status.

    Only :class:`~barberpro_ml.errors.BarberproError` (and pydantic's validation of an option
    value) is caught: anything else is a bug and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BarberproError as exc:
            kind = type(exc).__name__
            console.print(f"error ({kind}): {exc}", highlight=False, markup=False,
                          soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except ValidationError as exc:
            for line in describe_validation_error(exc, source="command line"):
                console.print(f"error: {line}", highlight=False, markup=False, soft_wrap=True)
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


SchemaOption = Annotated[str | None, typer.Option(
    help="PostgreSQL schema of the tables (default: the connection's current schema, "
         "usually public; also ?schema=NAME in the URL).")]


@app.command("simulate")
@friendly_errors
def simulate_command(
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder to write the Parquet tables to.")] = None,
    to_sql: Annotated[str | None, typer.Option(
        "--to-sql", help="PostgreSQL URL to write the tables to, in one transaction "
                         "(postgresql://USER@HOST:PORT/DATABASE).")] = None,
    schema: SchemaOption = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="With --to-sql: replace the events already in the database.")] = False,
    name: Annotated[str | None, typer.Option(
        help="Data-set name recorded with the tables (its identity in the registry); "
             "default: the --out folder's name, else the database's.")] = None,
    customers: Annotated[int | None, typer.Option("--customers", min=1,
                                                  help="Number of customers.")] = None,
    start: Annotated[datetime | None, typer.Option(help="First day simulated (UTC).")] = None,
    end: Annotated[datetime | None, typer.Option(help="Last day simulated (UTC).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    config: Annotated[Path | None, typer.Option(help="Simulation YAML (default: built-in, "
                                                     "same as configs/simulation.yaml).")] = None,
) -> None:
    """Simulate a marketplace (with ground truth) and write it as a folder of Parquet and/or
    to PostgreSQL (the event tables only)."""
    if out_dir is None and to_sql is None:
        raise UserError("say where the simulated tables go: --out DIR, --to-sql URL, or both")
    if to_sql is not None:
        from barberpro_ml.data.sql import parse_database_url

        parse_database_url(to_sql, schema)  # a wrong URL is refused before simulating
    cfg = _simulation_config(config, n_customers=customers, start=start, end=end, seed=seed)
    data = run_simulation(cfg)
    if out_dir is not None:
        data.save(out_dir, name=name)
        _print_counts(data, f"wrote {out_dir}")
    if to_sql is not None:
        # with --out too, both copies carry one name: the same identity from either
        recorded = name or (out_dir.resolve().name if out_dir is not None else None)
        with console.status("writing to PostgreSQL"):
            report = data.to_sql(to_sql, schema=schema, name=recorded,
                                 if_exists="replace" if replace else "fail")
        _print_counts(data, f"wrote {report.location} in {report.seconds:.1f} s "
                            f"({report.rows_per_second:,.0f} rows/s)")


@app.command("validate")
@friendly_errors
def validate_command(
    source: Annotated[str, typer.Argument(
        metavar="DATA", help="Folder of <table>.parquet or <table>.csv, or a PostgreSQL URL.")],
) -> None:
    """Check event tables (a folder or a database) against the data contract."""
    loaded = load_source(source)
    _print_counts(loaded.data, f"{loaded.location}: valid (data set {loaded.name})")


@app.command("features")
@friendly_errors
def features_command(
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write (one row per "
                                                         "customer, indexed by customer_id).")],
    as_of: Annotated[datetime, typer.Option(help="Cut-off (naive UTC, inclusive).")],
    data: Annotated[str | None, typer.Option(
        "--data", help="Folder of event tables, or a PostgreSQL URL (default: what "
                       "`barberpro-ml pipeline` wrote).")] = None,
    block_customers: Annotated[int, typer.Option(
        min=1, help="Customers per block: each block's features are computed, appended to the "
                    "Parquet file and released, so memory beyond the event tables grows with "
                    "the block, not the population.")] = 200_000,
) -> None:
    """Point-in-time features of every customer signed up by AS_OF, one Parquet row each."""
    from barberpro_ml.features import customer_feature_blocks, feature_arrow_schema
    from barberpro_ml.features._common import to_as_of
    from barberpro_ml.jobs.score import check_output, write_parquet_blocks

    stamp = to_as_of(as_of, name="--as-of")
    check_output(out_file)
    source = data if data is not None else DEFAULT_SCORING_DATA
    if not is_database_url(source) and not Path(source).exists():
        raise UserError(f"no event tables at {source}: run `barberpro-ml pipeline` first, or "
                        "pass --data FOLDER|URL")
    events = load_source(source).data
    end = events.observation_end
    if stamp > end:
        raise UserError(f"--as-of {stamp} is after the data's last event ({end}): features "
                        "there would count days nothing was recorded as days without a visit; "
                        "give an --as-of up to the data's end, or newer data")
    total = int((events.customers["signup_at"] <= stamp).sum())
    if total == 0:
        first = events.customers["signup_at"].min()
        raise UserError(f"--as-of {stamp}: no customer had signed up yet (the first signed up "
                        f"{first}); give a later --as-of")
    with progress_bar("features") as progress:
        task = progress.add_task("features", total=total)

        def blocks() -> Iterator[Any]:
            for block in customer_feature_blocks(events, stamp,
                                                 block_customers=block_customers):
                yield block
                progress.advance(task, len(block))

        n = write_parquet_blocks(blocks(), feature_arrow_schema(), out_file,
                                 what="customers' features",
                                 declared_in="the feature catalogue")
    out.print(f"wrote {n:,} customers' features at {stamp} to {out_file}", soft_wrap=True,
              highlight=False, markup=False)


@import_app.command("transactions")
@friendly_errors
def import_transactions_command(
    file: Annotated[Path, typer.Argument(help="Transaction log: .csv, .tsv, .txt (whitespace) "
                                               "or .parquet; one row per purchase.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the event tables "
                                                        "to.")],
    customer_col: Annotated[str, typer.Option(help="Column of integer customer ids.")],
    timestamp_col: Annotated[str, typer.Option(help="Column of purchase times.")],
    amount_col: Annotated[str, typer.Option(help="Column of amounts paid.")],
    provider_col: Annotated[str | None, typer.Option(help="Column of provider ids.")] = None,
    service_col: Annotated[str | None, typer.Option(help="Column of service ids.")] = None,
    status_col: Annotated[str | None, typer.Option(
        help="Column of statuses (completed, cancelled, no_show).")] = None,
    timestamp_format: Annotated[str | None, typer.Option(
        help="strftime format of text timestamps, e.g. %Y%m%d.")] = None,
    sep: Annotated[str | None, typer.Option(
        help="Field separator of a text file (default: by extension).")] = None,
    name: Annotated[str | None, typer.Option(
        help="Data-set name recorded in the manifest (its identity in the registry); "
             "default: the output folder's name.")] = None,
) -> None:
    """Turn a transaction log into a validated folder of event tables (one placeholder
    provider and service when the log has none; same-day purchases are one visit)."""
    from barberpro_ml.data.transactions import import_transactions, read_transaction_file

    log = read_transaction_file(str(file), sep=sep)
    data, report = import_transactions(
        log, customer_id=customer_col, timestamp=timestamp_col, amount=amount_col,
        provider_id=provider_col, service_id=service_col, status=status_col,
        timestamp_format=timestamp_format)
    data.save(out_dir, name=name or out_dir.resolve().name)
    for note in report.notes:
        out.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    _print_counts(data, f"{file.name} ({report.rows:,} rows) -> {out_dir}")


def _print_counts(data: MarketplaceData, title: str) -> None:
    # the title on its own line: as a table title, a long path or URL wraps into a column
    out.print(title, highlight=False, markup=False, soft_wrap=True)
    table = Table()
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
FAMILIES = ("churn", "ltv", "recs", "segments", "forecast", "provider-departure",
            "pricing", "uplift")
"""Model families with a training job, in the order the pipeline runs them."""


def show_gate(gate: Any) -> None:
    """The verdict table: rich on a terminal, plain unwrapped text in logs (CI, pipes)."""
    if out.is_terminal:
        out.print(gate)
    else:
        out.print(gate.to_text(), soft_wrap=True, markup=False, highlight=False)


def _show_result(result: JobResult) -> None:
    status = "[green]passed[/]" if result.gate_passed else "[bold red]FAILED[/]"
    promoted = (f"promoted v{result.version} to @champion" if result.promoted
                else f"not promoted (champion: {result.champion_version or 'none'}; "
                     f"{result.why()})")
    if result.gate is not None:
        show_gate(result.gate)
    for note in result.notes:
        out.print(f"note: {note}", soft_wrap=True, highlight=False, markup=False)
    out.print(f"{result.family}: gate {status}; ", end="")
    out.print(f"{promoted} (run {result.run_id})", soft_wrap=True, highlight=False,
              markup=False)


ConfigOption = Annotated[Path | None, typer.Option(
    help="Job config YAML; default: the shipped one (`barberpro-ml config show JOB`).")]
DataOption = Annotated[str | None, typer.Option(
    help="Folder of event tables, or a PostgreSQL URL (postgresql://USER@HOST:PORT/DB"
         "[?schema=NAME]); default: simulate as the config says.")]
TrackingOption = Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_URI",
                                                    help="MLflow tracking URI.")]
NewDataSetOption = Annotated[bool, typer.Option(
    "--new-data-set", help="Allow replacing a champion trained on another data set.")]
DefinitionsOption = Annotated[Path | None, typer.Option(
    help="Definitions YAML (activity window, horizons); default: the config's.")]


def _finish_training(result: JobResult) -> None:
    """Show a job's verdicts; exit 3 when a blocking gate failed."""
    _show_result(result)
    if not result.gate_passed:
        raise typer.Exit(EXIT_GATE_FAILED)


def _training_overrides(data: str | None, new_data_set: bool,
                        definitions: Path | None = None) -> dict[str, Any]:
    return {"data_dir": data,
            "new_data_set": True if new_data_set else None,
            "definitions": str(definitions) if definitions is not None else None}


@train_app.command("churn")
@friendly_errors
def train_churn_command(
    config: ConfigOption = None,
    data: DataOption = None,
    tune_trials: Annotated[int | None, typer.Option(min=0, help="Run an Optuna study with "
                                                               "this many trials first.")] = None,
    new_data_set: NewDataSetOption = False,
    definitions: DefinitionsOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Train, evaluate, gate, register and (if the gates pass) promote the churn model."""
    cfg = churn_job.load_config(config, **_training_overrides(data, new_data_set,
                                                                   definitions))
    _finish_training(churn_job.run(cfg, tracking_uri=tracking_uri, tune_trials=tune_trials))


def _register_train_command(family: str, job: Any, summary: str) -> None:
    """``barberpro-ml train FAMILY`` for a job whose only options are the shared ones."""

    def command(
        config: ConfigOption = None,
        data: DataOption = None,
        new_data_set: NewDataSetOption = False,
        definitions: DefinitionsOption = None,
        tracking_uri: TrackingOption = None,
    ) -> None:
        cfg = job.load_config(config, **_training_overrides(data, new_data_set, definitions))
        _finish_training(job.run(cfg, tracking_uri=tracking_uri))

    command.__name__ = f"train_{family.replace('-', '_')}_command"
    command.__doc__ = summary
    train_app.command(family)(friendly_errors(command))


_register_train_command(
    "ltv", ltv_job,
    "Train, evaluate, gate, register and (if the gates pass) promote the lifetime-value model.")
_register_train_command(
    "recs", recs_job,
    "Train, evaluate, gate, register and (if the gates pass) promote the barber recommender.")
_register_train_command(
    "segments", segments_job,
    "Fit, evaluate (id stability), gate, register and promote the customer segmenter.")
_register_train_command(
    "forecast", forecast_job,
    "Backtest, evaluate (verified 89% interval coverage), gate, register and promote the weekly "
    "revenue and bookings forecast.")
_register_train_command(
    "provider-departure", provider_departure_job,
    "Train, evaluate, gate, register and (if the gates pass) promote the provider-departure "
    "model (will a barber leave within 90 days).")
_register_train_command(
    "pricing", pricing_job,
    "Estimate price elasticities (double machine learning on the price rises), evaluate the "
    "revenue change of the rises the evidence supports, gate, register and promote.")
_register_train_command(
    "uplift", uplift_job,
    "Fit T-, X- and DR-learners on the randomised retention campaigns, choose one on "
    "validation, evaluate it and its targeting policy on the last campaign (Qini, profit, "
    "churn reduction among the treated), gate, register and promote.")


@config_app.command("show")
@friendly_errors
def config_show_command(
    job: Annotated[str, typer.Argument(help=f"One of: {', '.join(JOBS)}, definitions.")],
    config: Annotated[Path | None, typer.Option(
        help="Config YAML to read; default: the shipped one.")] = None,
) -> None:
    """Print the effective config of a job (every default filled in) as YAML.

    Exit 2 when the file does not validate (one line per problem), 4 for an unknown job.
    """
    import yaml

    if job == "definitions":
        from barberpro_ml.config import shipped_config
        from barberpro_ml.definitions import Definitions

        source: Any = config or shipped_config("definitions.yaml")
        effective: Any = Definitions.from_yaml(source)
    else:
        effective = load_job_config(job, config)
        source = getattr(effective, "source", None) or config
    out.print(f"# effective {job} config (from {source})", highlight=False, markup=False,
              soft_wrap=True)
    out.print(yaml.safe_dump(effective.model_dump(mode="json", by_alias=True),
                             sort_keys=False).rstrip(), highlight=False, markup=False,
              soft_wrap=True)


@config_app.command("check")
@friendly_errors
def config_check_command(
    job: Annotated[str, typer.Argument(help=f"One of: {', '.join(JOBS)}.")],
    config: Annotated[Path, typer.Argument(help="Config YAML to check.")],
) -> None:
    """Validate a job config; print every problem (file, line, key, expected type), exit 2."""
    load_job_config(job, config)
    out.print(f"{config}: valid {job} config", highlight=False, markup=False)


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


def _summary_table(result: pipeline_job.PipelineResult) -> Table:
    table = Table(title=f"pipeline summary (data set {result.data_set.name})")
    for col in ("family", "candidate", "verdict", "champion", "why"):
        table.add_column(col, overflow="fold")
    colour = {"passed": "green", "refused": "bold red", "error": "bold red"}
    for row in result.summary_rows():
        table.add_row(row["family"], row["candidate"],
                      f"[{colour[row['verdict']]}]{row['verdict']}[/]", row["champion"],
                      escape(row["why"]))
    return table


@app.command("pipeline")
@friendly_errors
def pipeline_command(
    customers: Annotated[int | None, typer.Option(min=100, help="Customers to simulate "
                                                  "(default 20,000).")] = None,
    seed: Annotated[int | None, typer.Option(help="Simulation seed (default 42).")] = None,
    families: Annotated[str | None, typer.Option(
        help="Comma-separated families to run (default: all).")] = None,
    data: Annotated[str | None, typer.Option(
        help="Folder of event tables, or a PostgreSQL URL, to train on instead of "
             "simulating.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Where the simulated tables go (default data/generated/pipeline).")] = None,
    config: ConfigOption = None,
    new_data_set: NewDataSetOption = False,
    definitions: DefinitionsOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Train, evaluate, gate and promote every model family on one data set.

    Every family runs even when another fails; one summary row each. Exit 0 when all passed,
    3 when any blocking gate refused, else the first family error's status (2 bad input).
    """
    wanted = None
    if families is not None:
        wanted = [f.strip() for f in families.split(",") if f.strip()]
    cfg = pipeline_job.load_config(
        config, n_customers=customers, seed=seed, families=wanted,
        data_dir=data,
        out=str(out_dir) if out_dir is not None else None,
        new_data_set=True if new_data_set else None,
        definitions=str(definitions) if definitions is not None else None)

    def on_data(events: MarketplaceData, identity: Any, where: str) -> None:
        _print_counts(events, f"data set {identity.name} -> {where}")

    def on_family(outcome: pipeline_job.FamilyOutcome) -> None:
        if outcome.result is not None:
            _show_result(outcome.result)
        else:
            console.print(f"{outcome.family}: stopped ({outcome.error_type}): {outcome.error}",
                          highlight=False, markup=False, soft_wrap=True)

    with _launcher_run(tracking_uri):
        result = pipeline_job.run(cfg, tracking_uri=tracking_uri, on_data=on_data,
                                  on_family_done=on_family)
    if out.is_terminal:
        out.print(_summary_table(result))
    else:  # logs (CI, pipes): one unwrapped line per family
        out.print(f"pipeline summary (data set {result.data_set.name})", highlight=False,
                  markup=False, soft_wrap=True)
        for row in result.summary_rows():
            out.print(" | ".join(row[c] for c in ("family", "candidate", "verdict", "champion",
                                                   "why")),
                      highlight=False, markup=False, soft_wrap=True)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


# --------------------------------------------------------------------------- scoring
DEFAULT_SCORING_DATA = "data/generated/pipeline"
ServeData = Annotated[str, typer.Option(
    "--data", help="Folder of event tables, or a PostgreSQL URL, to score (default: what "
                   "`barberpro-ml pipeline` wrote).")]
AliasOption = Annotated[str, typer.Option(help="Registry alias of the models to load.")]


def _scoring_inputs(source: str, tracking_uri: str | None, alias: str,
                    n_jobs: int = 1, **options: Any) -> tuple[Any, Any]:
    from barberpro_ml.registry import configure_tracking
    from barberpro_ml.scoring import CustomerScorer

    if not is_database_url(source) and not Path(source).exists():
        raise UserError(f"no event tables at {source}: run `barberpro-ml pipeline` first, or "
                        "pass --data FOLDER|URL")
    # one line per model below says what was loaded; MLflow's per-file bars say nothing more
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    data = load_source(source).data
    configure_tracking(tracking_uri)
    with console.status(f"loading the @{alias} models"):
        try:
            scorer = CustomerScorer.from_registry(alias=alias, n_jobs=n_jobs, **options)
        except BarberproError:
            raise
        except LookupError as exc:  # no such alias: nothing to serve with
            raise ModelUnavailableError(str(exc)) from None
    for ref in scorer.models.values():
        console.print(f"loaded {ref.name} v{ref.version} (@{ref.alias})", highlight=False)
    for family, reason in scorer.unavailable.items():
        console.print(f"not serving {family}: {reason}", highlight=False, markup=False,
                      soft_wrap=True)
    return scorer, data


class Engine(enum.StrEnum):
    """Where ``score`` runs."""

    local = "local"
    spark = "spark"


def _score_on_spark(cfg: Any, tracking_uri: str | None, master: str | None,
                    buckets: int) -> None:
    """``score --engine spark``: the scores of :mod:`barberpro_ml.spark`, partitioned Parquet."""
    from barberpro_ml.spark._session import require_pyspark

    require_pyspark()  # before reading anything: the one thing missing is named first
    if cfg.as_of is not None:
        from barberpro_ml.features._common import to_as_of

        to_as_of(cfg.as_of, name="--as-of", to_utc=True)
    if "://" not in cfg.out and Path(cfg.out).exists():
        raise UserError(f"--out {cfg.out} exists already; the Spark engine writes a new folder "
                        "of Parquet partitions (give another path, or remove it)")
    if not is_database_url(cfg.data) and not Path(cfg.data).exists():
        raise UserError(f"no event tables at {cfg.data}: run `barberpro-ml pipeline` first, or "
                        "pass --data FOLDER|URL")
    from barberpro_ml import spark as bspark
    from barberpro_ml.registry import configure_tracking

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    data = load_source(cfg.data).data  # validated once, on the driver
    configure_tracking(tracking_uri)
    from pyspark.sql import SparkSession

    created = SparkSession.getActiveSession() is None  # stop only a session started here
    session = bspark.spark_session(master)
    try:
        events = bspark.SparkEvents.from_marketplace(session, data)
        scores = bspark.score_customers(events, cfg.as_of, alias=cfg.alias, n_buckets=buckets)
        for model in scores.models.values():
            console.print(f"loaded {model}", highlight=False)
        for family, reason in scores.unavailable.items():
            console.print(f"not serving {family}: {reason}", highlight=False, markup=False,
                          soft_wrap=True)
        used = session.sparkContext.master
        with console.status(f"scoring on Spark ({used})"):
            n = bspark.write_scores(scores, cfg.out)
    finally:
        if created:
            session.stop()
    out.print(f"wrote {n:,} customers' scores at {scores.as_of} to {cfg.out} (Parquet "
              f"partitioned by customer_bucket, {buckets} buckets; Spark master {used})",
              soft_wrap=True, highlight=False, markup=False)


@app.command("score")
@friendly_errors
def score_command(
    out_file: Annotated[Path | None, typer.Option("--out", help="Parquet file to write "
                                                  "(default outputs/profiles.parquet).")] = None,
    as_of: Annotated[datetime | None, typer.Option(
        help="Cut-off (naive UTC); default: the data's last event.")] = None,
    data: Annotated[str | None, typer.Option(
        "--data", help="Folder of event tables, or a PostgreSQL URL (default: what "
                       "`barberpro-ml pipeline` wrote).")] = None,
    alias: Annotated[str | None, typer.Option(help="Registry alias of the models.")] = None,
    reasons: Annotated[bool | None, typer.Option(help="Phrase the churn reasons.")] = None,
    chunk_size: Annotated[int | None, typer.Option(min=1, help="Customers per model call.")]
    = None,
    block_customers: Annotated[int | None, typer.Option(
        min=1, help="Customers per block: each block is snapshotted, scored, appended to the "
                    "Parquet file and released, so memory grows with the block, not the "
                    "population (default 200,000). Only with --engine local.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Threads for the boosted models and their "
                                                  "SHAP values (-1: every core).")] = None,
    config: ConfigOption = None,
    tracking_uri: TrackingOption = None,
    engine: Annotated[Engine, typer.Option(
        help="local: profile on this machine (one Parquet file); spark: churn probability, "
             "lifetime value and top barbers on Spark (--master), written as Parquet "
             "partitioned by customer_bucket (needs barberpro_ml[spark]).")] = Engine.local,
    master: Annotated[str | None, typer.Option(
        help="Spark master URL (local[2], spark://host:7077, yarn, k8s://...); default: "
             "spark-submit's, else local[2]. Only with --engine spark.")] = None,
    buckets: Annotated[int, typer.Option(
        min=1, help="Customer buckets (customer_id mod N): Spark's unit of work and the "
                    "Parquet partitions. Only with --engine spark.")] = 64,
) -> None:
    """Profile every customer at AS_OF with the registered models; write one Parquet row each."""
    cfg = score_job.load_config(config, out=str(out_file) if out_file else None, as_of=as_of,
                                data=data, alias=alias,
                                reasons=reasons, chunk_size=chunk_size,
                                block_customers=block_customers, n_jobs=jobs)
    if engine is Engine.spark:
        if block_customers is not None:
            raise UserError("--block-customers is for --engine local; the Spark engine's unit "
                            "of work is a customer bucket (--buckets)")
        _score_on_spark(cfg, tracking_uri, master, buckets)
        return
    if master is not None:
        raise UserError("--master is a Spark master URL: give it with --engine spark")
    score_job.check_inputs(cfg)
    scorer, events = _scoring_inputs(cfg.data, tracking_uri, cfg.alias,
                                     n_jobs=cfg.n_jobs)
    with progress_bar("scoring") as progress:
        task = progress.add_task("scoring", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = score_job.run(cfg, data=events, scorer=scorer, progress=report)
    out.print(f"wrote {result.n_profiles:,} profiles at {result.as_of} to {result.path} "
              "(actions: " + ", ".join(f"{k} {v:,}" for k, v in result.actions.items()) + ")",
              soft_wrap=True, highlight=False, markup=False)
    if scorer.unavailable:
        from barberpro_ml.scoring.scorer import FAMILY_COLUMNS

        out.print("null columns, no verified champion: " + "; ".join(
            f"{family} ({', '.join(FAMILY_COLUMNS[family])}"
            + (", reason_*" if family == "churn" and cfg.reasons else "") + ")"
            for family in scorer.unavailable), highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- report
def _report_data(source: str | None) -> tuple[MarketplaceData, str, str]:
    """The report's events, their data-set name and where they came from: ``--data``, else
    the default simulated marketplace (what `pipeline` wrote, when it is there)."""
    if source is not None:
        loaded = load_source(source)
        return loaded.data, loaded.name, loaded.location
    written = Path(DEFAULT_SCORING_DATA)
    if written.exists():
        loaded = load_source(written)
        return loaded.data, loaded.name, f"{written} (written by `barberpro-ml pipeline`)"
    from barberpro_ml.data import SimulationConfig
    from barberpro_ml.jobs.base import simulated_name

    cfg = SimulationConfig()
    return (run_simulation(cfg), simulated_name(cfg),
            "the default simulated marketplace (simulated now)")


def _report_gates(tracking_uri: str | None) -> tuple[Any, str | None]:
    """The gate table of every family, or None and why it could not be read."""
    from barberpro_ml.registry import champion_gate_table, configure_tracking
    from barberpro_ml.registry.gate_table import missing_sqlite_store

    uri = configure_tracking(tracking_uri)
    missing_db = missing_sqlite_store(uri)
    if missing_db is not None:
        return None, (f"No model registry: the tracking store {missing_db} does not exist. "
                      "Run `barberpro-ml pipeline` to train, gate and promote the models, or "
                      "point --tracking-uri / MLFLOW_TRACKING_URI at the registry.")
    with console.status("reading the registry"):
        return champion_gate_table(tracking_uri=uri), f"Registry: {uri}"


FORECAST_MODEL = "barberpro-forecast"
FORECAST_COVERAGE_CLAIM = "forecast-coverage-89"


def _report_forecast(events: MarketplaceData, as_of: Any, gates: Any
                     ) -> tuple[Any, str | None]:
    """The verified forecast champion's weekly net revenue (total) for the report, with the
    coverage its gate measured; or None and why there is none."""
    import pandas as pd

    from barberpro_ml.analytics.forecast import TOTAL, weekly_series
    from barberpro_ml.analytics.report import ForecastCoverage, ForecastSection
    from barberpro_ml.registry.forecast_model import champion_forecast

    if gates is None:
        return None, "no model registry was read (see the last section)."
    rows = gates[gates["model_name"] == FORECAST_MODEL]
    if rows.empty or rows["champion_version"].isna().all():
        return None, (f"{FORECAST_MODEL} has no champion: run `barberpro-ml train forecast` "
                      "(or `barberpro-ml pipeline`).")
    if not bool(rows["verified"].iloc[0]):
        return None, (f"the {FORECAST_MODEL} champion is not verified "
                      f"({rows['verification'].iloc[0]}); its numbers are not shown.")
    claim = rows[rows["check"] == FORECAST_COVERAGE_CLAIM]
    if claim.empty or claim[["observed", "ci_low", "ci_high"]].isna().any(axis=None):
        return None, (f"the {FORECAST_MODEL} champion's gate has no {FORECAST_COVERAGE_CLAIM} "
                      "verdict to show its coverage with.")
    with console.status("loading the forecast champion"):
        model, version = champion_forecast(FORECAST_MODEL)
    assert model.spec is not None and model.forecast is not None
    table = model.forecast
    fc = table[(table["measure"] == "net_revenue") & (table["neighborhood"] == TOTAL)]
    if fc.empty:
        return None, f"the {FORECAST_MODEL} champion v{version} does not forecast net revenue."
    first_week = pd.Timestamp(fc["week"].min())
    history = weekly_series(events, min(pd.Timestamp(as_of), first_week),
                            measures=["net_revenue"])
    history = history[(history["neighborhood"] == TOTAL) & (history["week"] < first_week)]
    row = claim.iloc[0]
    section = ForecastSection(
        history=history.rename(columns={"week": "ds"})[["ds", "y"]].reset_index(drop=True),
        forecast=fc.rename(columns={"week": "ds"})[["ds", "horizon", "mean", "lower", "upper"]]
        .astype({"horizon": "int64"}).reset_index(drop=True),
        coverage=ForecastCoverage(level=model.spec.level, coverage=float(row["observed"]),
                                  ci_low=float(row["ci_low"]), ci_high=float(row["ci_high"]),
                                  n=model.spec.backtest_forecasts),
        series="Net revenue, whole marketplace", unit="per week",
        model=(f"{FORECAST_MODEL} v{version}: "
               + "; ".join(f"{m} {c['candidate']} + {c['reconciliation']}"
                           for m, c in model.spec.chosen.items())))
    return section, None


@app.command("report")
@friendly_errors
def report_command(
    out_file: Annotated[Path, typer.Option("--out", help="HTML file to write (one "
                                           "self-contained page).")] = Path(
        "outputs/report.html"),
    as_of: Annotated[datetime | None, typer.Option(
        help="Cut-off (naive UTC); default: the data's last event.")] = None,
    data: Annotated[str | None, typer.Option(
        "--data", help="Folder of event tables, or a PostgreSQL URL (default: the default "
                       "simulated marketplace, read from what `barberpro-ml pipeline` wrote "
                       "when it is there).")] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Write an HTML report a person reads: 12 months of KPIs, cohort retention, the
    acquisition funnel, the forecast, and every model family's champion and gate verdicts.

    Exit 2 for bad input (an as_of before the data start, an unreadable --data, an --out
    that is a folder); nothing is written then.
    """
    import time

    from barberpro_ml.analytics.report import (
        check_report_path,
        render_report,
        report_frames,
        write_report,
    )

    check_report_path(out_file)
    started = time.perf_counter()
    events, name, where = _report_data(data)
    with console.status("computing KPIs, cohorts and the funnel"):
        frames = report_frames(events, as_of, data_name=name)
    gates, gates_note = _report_gates(tracking_uri)
    forecast, forecast_note = _report_forecast(events, frames.as_of, gates)
    with console.status("drawing the report"):
        page = render_report(frames, gates=gates, gates_note=gates_note, forecast=forecast,
                             forecast_note=forecast_note)
    written = write_report(page, out_file)
    champions = ("no registry" if gates is None else
                 f"{gates.groupby('model_name')['champion_version'].first().notna().sum()} of "
                 f"{gates['model_name'].nunique()} families with a champion")
    out.print(f"wrote {written} ({len(page) / 1024:,.0f} KiB) as of {frames.as_of} from "
              f"{where}; {champions}; {time.perf_counter() - started:.1f} s",
              highlight=False, markup=False, soft_wrap=True)


# --------------------------------------------------------------------------- monitor
@app.command("monitor")
@friendly_errors
def monitor_command(
    as_of: Annotated[datetime, typer.Option(
        "--as-of", help="Monitoring date (naive UTC): labels matured by then, drift measured "
                        "at it; at most the data's last event.")],
    families: Annotated[list[str] | None, typer.Option(
        "--families", help="Families to monitor (repeat the option, or separate with "
                           "commas); default: churn, ltv, recs and forecast.")] = None,
    data: Annotated[str | None, typer.Option(
        "--data", help="Folder of event tables, or a PostgreSQL URL (default: the simulated "
                       "marketplace `barberpro-ml pipeline` wrote).")] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Check each champion after promotion: matured-label performance against its gate,
    drift since its training snapshot, a verdict logged to MLflow and tagged on the version.

    Exit 0 when every monitored champion is ok, 5 when one drifted (none degraded), 6 when one
    degraded; 2 for bad input (an --as-of after the data, an unknown family), 4 when no
    family has a verified champion.
    """
    from barberpro_ml.monitoring.champions import monitor_champions

    source = data if data is not None else DEFAULT_SCORING_DATA
    if data is None and not Path(source).exists():
        raise UserError(f"no --data given and {source} (written by `barberpro-ml pipeline`) "
                        "does not exist: pass the event data the champions score")
    loaded = load_source(source)
    with console.status("monitoring the champions"):
        result = monitor_champions(
            loaded.data, as_of, tracking_uri=tracking_uri,
            families=[f.strip() for v in families or [] for f in v.split(",") if f.strip()])
    table = Table(title=f"Champions as of {result.as_of} (MLflow run {result.run_id})")
    for column in ("family", "model", "verdict", "matured metrics vs gate", "reasons"):
        table.add_column(column, overflow="fold")
    for c in result.checks:
        if c.health is None:
            table.add_row(c.family, c.model_name, "not monitored", "", c.skipped or "")
            continue
        metrics = "; ".join(
            f"{m.metric} {m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]"
            + (f" vs {m.gate.value:.3f}" if m.gate is not None else "")
            for m in c.health.performance) or c.health.performance_note
        table.add_row(c.family, f"{c.model_name} v{c.version}", c.health.verdict,
                      escape(metrics), escape("; ".join(c.health.reasons) or "-"))
    out.print(table)
    out.print(f"verdict: {result.verdict} (exit {result.exit_code})", highlight=False)
    raise typer.Exit(result.exit_code)


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


class AuthChoice(enum.StrEnum):
    """``serve --auth``."""

    keys = "keys"
    off = "off"


ServiceDbOption = Annotated[str | None, typer.Option(
    "--db", help="SQLAlchemy URL of the service's database (API keys); default: "
                 "$BARBERPRO_SERVICE_DB, else sqlite:///barberpro-service.db (a file in the "
                 "current folder); SQLite or PostgreSQL (postgresql://...).")]


def _is_loopback(host: str) -> bool:
    from barberpro_ml.service.worker import is_loopback

    return is_loopback(host)


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command("serve")
@friendly_errors
def serve_command(
    data: ServeData = DEFAULT_SCORING_DATA,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    as_of: Annotated[datetime | None, typer.Option(
        help="Default cut-off of requests without one; default: the data's last event.")] = None,
    alias: AliasOption = "champion",
    poll_interval: Annotated[float, typer.Option(
        min=0, help="Seconds between checks of the registry for a moved alias; a new verified "
                    "champion is loaded in the background and swapped in (0: off).")] = 30.0,
    data_refresh_interval: Annotated[float, typer.Option(
        min=0, help="Seconds between reloads of the event data from --data (0: off; "
                    "POST /admin/refresh reloads on demand).")] = 0.0,
    tracking_uri: TrackingOption = None,
    auth: Annotated[AuthChoice, typer.Option(
        help="keys: every route but /health and the docs needs an API key (`barberpro-ml keys "
             "create`); off: the customer, analytics and provider routes answer without one "
             "(allowed on a loopback --host only; admin and /api-management still need a "
             "key).")] = AuthChoice.keys,
    db: ServiceDbOption = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Worker processes (uvicorn). Each loads the models and data; keys, rate "
                    "limits, quotas and usage are shared through --db, Prometheus /metrics "
                    "through a fresh PROMETHEUS_MULTIPROC_DIR (summed over workers).")] = 1,
    snapshot_cache: Annotated[int, typer.Option(
        min=1, help="Feature snapshots (one per cut-off) kept per worker, least recently used "
                    "evicted; a request at a cut-off not kept rebuilds its snapshot.")] = 4,
    snapshot_cache_mib: Annotated[float | None, typer.Option(
        min=0.001, help="Also evict while the kept snapshots take more than this many MiB "
                        "per worker (default: no memory budget).")] = None,
) -> None:
    """Serve the customer-intelligence API (FastAPI, OpenAPI docs at /docs), following the
    registry's alias and, on request or on an interval, the event data.

    Callers send an API key as 'Authorization: Bearer <key>' (made with `barberpro-ml keys
    create`); POST /admin/refresh needs a key with the admin scope.
    """
    from barberpro_ml.features._common import to_as_of

    if auth is AuthChoice.off and not _is_loopback(host):
        raise UserError(f"--auth off is allowed only on a loopback interface (127.0.0.1, ::1, "
                        f"localhost), not --host {host}: anyone who can reach {host} could "
                        "call the service; create keys with `barberpro-ml keys create` and "
                        "serve with --auth keys")
    _check_port_free(host, port)
    if as_of is not None:
        to_as_of(as_of, name="--as-of")
    import uvicorn

    from barberpro_ml.scoring.live import LiveScorer
    from barberpro_ml.service import KeyStore, create_app
    from barberpro_ml.service.keys import SERVICE_KEY_CACHE_S, SERVICE_USAGE_FLUSH_S
    from barberpro_ml.service.worker import configure_json_logging

    # the service's own lines (swaps, refusals, one per request) as JSON, with request ids
    configure_json_logging()
    service_log = logging.getLogger("barberpro_ml.service")
    keys = KeyStore(db, key_cache_s=SERVICE_KEY_CACHE_S, usage_flush_s=SERVICE_USAGE_FLUSH_S)
    if workers > 1:
        _serve_workers(workers, data=data, host=host, port=port, as_of=as_of, alias=alias,
                       poll_interval=poll_interval,
                       data_refresh_interval=data_refresh_interval, tracking_uri=tracking_uri,
                       auth=auth, keys=keys, snapshot_cache=snapshot_cache,
                       snapshot_cache_mib=snapshot_cache_mib)
        return
    scorer, events = _scoring_inputs(data, tracking_uri, alias, snapshot_cache=snapshot_cache,
                                     snapshot_cache_mib=snapshot_cache_mib)
    with console.status("building the default snapshot"):
        live = LiveScorer(scorer, events, default_as_of=as_of,
                          load_data=functools.partial(MarketplaceData.load, data),
                          data_source=str(data), poll_interval=poll_interval,
                          data_refresh_interval=data_refresh_interval)
        application = create_app(live, auth=auth.value, keys=keys)
    follows = (f"checking @{alias} in the registry every {poll_interval:g} s"
               if poll_interval else "not following the registry (--poll-interval 0)")
    refresh = (f"reloading {data} every {data_refresh_interval:g} s" if data_refresh_interval
               else "data reloaded on POST /admin/refresh only")
    console.print(f"{follows}; {refresh}", highlight=False, markup=False, soft_wrap=True)
    active = keys.list()
    service_log.info("API keys in %s: %d active", _hide_password(keys.url), len(active))
    if auth is AuthChoice.off:
        service_log.warning("authentication is OFF for the customer, analytics and provider "
                            "routes (bound to loopback %s only); admin and /api-management "
                            "routes still need an API key", host)
    elif not active:
        service_log.warning("no active API key: every call but /health and the docs will be "
                            "refused; create one with `barberpro-ml keys create --name <holder> "
                            "--scopes <scopes>`")
    console.print(f"serving on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    uvicorn.run(application, host=host, port=port, log_level="info")


def _serve_workers(workers: int, *, data: str, host: str, port: int, as_of: datetime | None,
                   alias: str, poll_interval: float, data_refresh_interval: float,
                   tracking_uri: str | None, auth: AuthChoice, keys: Any,
                   snapshot_cache: int, snapshot_cache_mib: float | None) -> None:
    """``serve --workers N``: uvicorn starts N processes, each building the app of
    :mod:`barberpro_ml.service.worker` from the settings handed over in the environment."""
    import tempfile

    import uvicorn
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from barberpro_ml.registry import configure_tracking
    from barberpro_ml.service.keys import SERVICE_DB_ENV
    from barberpro_ml.service.worker import (
        FAILURE_FILE_ENV,
        SUPERVISOR_ENV,
        ServeSettings,
        read_start_failure,
        reset_metrics_dir,
    )

    if not is_database_url(data) and not Path(data).exists():
        raise UserError(f"no event tables at {data}: run `barberpro-ml pipeline` first, or "
                        "pass --data FOLDER|URL")
    settings = ServeSettings(data=data, host=host, auth=auth.value, alias=alias, as_of=as_of,
                             poll_interval=poll_interval,
                             data_refresh_interval=data_refresh_interval,
                             snapshot_cache=snapshot_cache,
                             snapshot_cache_mib=snapshot_cache_mib)
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    # a folder made here is this run's own: removed when the server stops (one given is kept)
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="barberpro-prometheus-"))
    made = None if given else folder
    metrics_dir = reset_metrics_dir(folder)
    uri = configure_tracking(tracking_uri)
    # create or upgrade the store's tables once here, not in N workers racing to do it
    try:
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models(max_results=1)
    except MlflowException as exc:
        raise InfraError(f"the registry at {_hide_password(uri)} cannot be used: "
                         f"{exc.message}") from None
    # a worker that cannot start writes why here and stops the server (service.worker.app)
    scratch = Path(tempfile.mkdtemp(prefix="barberpro-serve-"))
    failure = scratch / "worker-failure.json"
    os.environ.update({**settings.to_env(), SERVICE_DB_ENV: keys.url,
                       FAILURE_FILE_ENV: str(failure), SUPERVISOR_ENV: str(os.getpid()),
                       "MLFLOW_TRACKING_URI": uri,
                       "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                       "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})
    service_log = logging.getLogger("barberpro_ml.service")
    service_log.info("API keys in %s: %d active", _hide_password(keys.url), len(keys.list()))
    if auth is AuthChoice.off:
        service_log.warning("authentication is OFF for the customer, analytics and provider "
                            "routes (bound to loopback %s only); admin and /api-management "
                            "routes still need an API key", host)
    console.print(f"{workers} workers, each loading the @{alias} models and {data}; "
                  f"Prometheus samples in {metrics_dir}", highlight=False, markup=False,
                  soft_wrap=True)
    console.print(f"serving on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    try:
        uvicorn.run("barberpro_ml.service.worker:app", factory=True, workers=workers,
                    host=host, port=port, log_level="info")
        error = read_start_failure(failure)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    if error is not None:
        raise error


# ------------------------------------------------------------------------------- API keys
keys_app = typer.Typer(
    help="API keys of the service: create (shown once), list (no secrets), revoke.",
    no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@friendly_errors
def keys_create_command(
    name: Annotated[str, typer.Option(help="The key holder, e.g. partner-x.")],
    scopes: Annotated[str, typer.Option(
        help="Comma-separated: customers:read, analytics:read, providers:read, admin (admin "
             "grants every scope).")],
    db: ServiceDbOption = None,
    rate: Annotated[float, typer.Option(
        min=0.001, help="Requests per second on average (token bucket refill).")] = 20.0,
    burst: Annotated[int, typer.Option(min=1, help="Requests at once (bucket size).")] = 40,
    quota_per_day: Annotated[int | None, typer.Option(
        min=1, help="Requests per UTC day; default: no quota.")] = None,
) -> None:
    """Create an API key and print it on stdout, once: it is stored only as a salted hash."""
    from barberpro_ml.service import KeyStore

    issued = KeyStore(db).create(name, scopes, rate_per_s=rate, burst=burst,
                                 quota_per_day=quota_per_day)
    console.print(f"created key {issued.key.key_id} for {name} with scopes "
                  f"{','.join(issued.key.scopes)}; it is shown this once, keep it secret:",
                  highlight=False, markup=False, soft_wrap=True)
    out.print(issued.token, highlight=False, markup=False, soft_wrap=True)


@keys_app.command("revoke")
@friendly_errors
def keys_revoke_command(
    name_or_id: Annotated[str, typer.Argument(help="The key's name or id.")],
    db: ServiceDbOption = None,
) -> None:
    """Revoke a key: refused from the next request on, in every worker."""
    from barberpro_ml.service import KeyStore

    key = KeyStore(db).revoke(name_or_id)
    console.print(f"revoked key {key.key_id} ({key.name})", highlight=False, markup=False)


@keys_app.command("list")
@friendly_errors
def keys_list_command(
    db: ServiceDbOption = None,
    revoked: Annotated[bool, typer.Option(help="Include revoked keys.")] = False,
) -> None:
    """The keys by last use: id, name, scopes, dates; never a secret."""
    from barberpro_ml.service import KeyStore

    table = Table("key_id", "name", "scopes", "created_at", "last_used_at", "revoked_at")
    for key in KeyStore(db).list(include_revoked=revoked):
        table.add_row(key.key_id, key.name, ",".join(key.scopes), f"{key.created_at:%F %T}",
                      f"{key.last_used_at:%F %T}" if key.last_used_at else "never",
                      f"{key.revoked_at:%F %T}" if key.revoked_at else "")
    out.print(table)


# ------------------------------------------------------------------- production mode (infra)
infra_app = typer.Typer(
    help="Production mode on this machine: PostgreSQL and an MLflow server on it.",
    no_args_is_help=True)
app.add_typer(infra_app, name="infra")

InfraDirOption = Annotated[Path | None, typer.Option(
    "--dir", help="The infra folder; default: $BARBERPRO_INFRA_DIR, else ./.barberpro/infra.")]


def _show_infra(now: Any) -> None:
    console.print(now.postgres.describe(), highlight=False, markup=False)
    console.print(now.mlflow.describe(), highlight=False, markup=False)


@infra_app.command("up")
@friendly_errors
def infra_up_command(
    folder: InfraDirOption = None,
    postgres_port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="PostgreSQL's port; default: a free one.")] = None,
    mlflow_port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="The MLflow server's port; default: a free one.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=16,
                                         help="MLflow server worker processes.")] = 2,
) -> None:
    """Start PostgreSQL and an MLflow server on it (whatever is not already running).

    Prints the shell lines to export on stdout (also written to <dir>/env, to `source`);
    exit 4 when a component cannot start (the message says why).
    """
    from barberpro_ml import infra

    before = infra.status(folder)
    if before.up:
        console.print(f"already up in {before.folder}; nothing started", highlight=False,
                      markup=False)
        # idempotent: starts nothing, creates a database a newer version added (`service`)
        now = infra.up(folder)
    else:
        with console.status("starting PostgreSQL and the MLflow server"):
            now = infra.up(folder, postgres_port=postgres_port, mlflow_port=mlflow_port,
                           workers=workers)
    _show_infra(now)
    out.print(now.exports().rstrip(), highlight=False, markup=False, soft_wrap=True)


@infra_app.command("down")
@friendly_errors
def infra_down_command(folder: InfraDirOption = None) -> None:
    """Stop the MLflow server and PostgreSQL that `infra up` started (their recorded pids).

    Data, runs and artifacts stay in the folder for the next `infra up`.
    """
    from barberpro_ml import infra

    with console.status("stopping"):
        now = infra.down(folder)
    _show_infra(now)


@infra_app.command("status")
@friendly_errors
def infra_status_command(folder: InfraDirOption = None) -> None:
    """Report each component; exit 0 when both run, 1 otherwise. Prints the exports when up."""
    from barberpro_ml import infra

    now = infra.status(folder)
    _show_infra(now)
    if not now.up:
        raise typer.Exit(1)
    out.print(now.exports().rstrip(), highlight=False, markup=False, soft_wrap=True)


# ------------------------------------------------------------ production mode (event tables)
db_app = typer.Typer(help="Event tables in PostgreSQL: create them; write with "
                          "`simulate --to-sql`, read with --data URL.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("init")
@friendly_errors
def db_init_command(
    url: Annotated[str, typer.Argument(help="PostgreSQL URL (postgresql://USER@HOST:PORT/DB).")],
    schema: SchemaOption = None,
) -> None:
    """Create the contract's tables (keys, foreign keys, checks, as_of indexes) where missing.

    Idempotent: existing tables are kept (their columns are checked); exit 2 when the database
    cannot be reached or a table of that name has other columns.
    """
    from barberpro_ml.data.sql import init_db

    report = init_db(url, schema=schema)
    created = ", ".join(report.created) or "none"
    out.print(f"{report.location}: created {len(report.created)} table(s) ({created}); "
              f"{len(report.existing)} already there", highlight=False, markup=False,
              soft_wrap=True)
