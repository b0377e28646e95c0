"""The ``barberpro-ml`` command line (typer).

User errors (bad data, a missing file, an invalid config) print one readable message and exit
with status 2; a failed gate exits with status 3 so CI training runs can tell the two apart.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from barberpro_ml.data import DataContractError, MarketplaceData

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
                ValueError) as exc:
            kind = type(exc).__name__
            console.print(f"[bold red]error[/] ({kind}): {exc}", highlight=False)
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
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
