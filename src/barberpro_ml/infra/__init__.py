"""Production mode on one machine: a PostgreSQL cluster and an MLflow server, started by us.

``barberpro-ml infra up`` (:func:`up`) starts, in a project folder (default
``.barberpro/infra``, or ``BARBERPRO_INFRA_DIR``):

1. a PostgreSQL cluster (:class:`~barberpro_ml.infra.postgres.LocalPostgres`: ``initdb`` on first
   use, a free port on 127.0.0.1, a generated password in a 0600 file) with three databases,
   ``mlflow`` (the tracking server's backend store), ``events`` (the marketplace's event
   tables, see :mod:`barberpro_ml.data.sql`) and ``service`` (the service's API keys, rate
   limits and usage, see :mod:`barberpro_ml.service.keys`; its tables are created by the first
   ``keys`` command or service start);
2. an ``mlflow server`` (:class:`~barberpro_ml.infra.mlflow_server.LocalMlflowServer`) on that
   backend store, with a local artifact folder served through the server (proxied
   artifacts),

waits until both answer and returns the URIs to export (also written to ``<folder>/env``, a
file to ``source``). It is idempotent: a component already running is left as it is (never
started twice); a stopped one is started. ``down`` stops exactly the processes ``up`` started,
by their recorded pids; ``status`` reports each component. Data and runs persist in the folder
between ``down`` and the next ``up``.

On real infrastructure none of this is needed: point ``MLFLOW_TRACKING_URI`` at the team's
tracking server and ``--data`` at the events database, and the same code runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from barberpro_ml.infra.mlflow_server import LocalMlflowServer, MlflowServerStatus
from barberpro_ml.infra.postgres import LocalPostgres, PostgresStatus

__all__ = [
    "DEFAULT_INFRA_DIR",
    "EVENTS_DATABASE",
    "MLFLOW_DATABASE",
    "SERVICE_DATABASE",
    "InfraStatus",
    "LocalMlflowServer",
    "LocalPostgres",
    "default_infra_dir",
    "down",
    "status",
    "up",
]

DEFAULT_INFRA_DIR = ".barberpro/infra"
MLFLOW_DATABASE = "mlflow"
EVENTS_DATABASE = "events"
SERVICE_DATABASE = "service"


def default_infra_dir() -> Path:
    """``BARBERPRO_INFRA_DIR`` if set, else ``.barberpro/infra`` under the working directory."""
    return Path(os.environ.get("BARBERPRO_INFRA_DIR") or DEFAULT_INFRA_DIR).absolute()


@dataclass(frozen=True)
class InfraStatus:
    """The state of both components and, when up, the URIs to use."""

    folder: Path
    postgres: PostgresStatus
    mlflow: MlflowServerStatus
    tracking_uri: str | None
    events_url: str | None
    service_db_url: str | None = None

    @property
    def up(self) -> bool:
        return self.postgres.running and self.mlflow.running

    def exports(self) -> str:
        """Shell lines exporting the URIs (empty when not up)."""
        if not self.up:
            return ""
        lines = (f"export MLFLOW_TRACKING_URI={self.tracking_uri}\n"
                 f"export BARBERPRO_EVENTS_URL='{self.events_url}'\n")
        if self.service_db_url is not None:
            lines += f"export BARBERPRO_SERVICE_DB='{self.service_db_url}'\n"
        return lines


def _parts(folder: Path) -> tuple[LocalPostgres, LocalMlflowServer]:
    return LocalPostgres(folder / "postgres"), LocalMlflowServer(folder / "mlflow")


def status(folder: str | os.PathLike[str] | None = None) -> InfraStatus:
    """Each component's state in ``folder`` (default :func:`default_infra_dir`)."""
    root = Path(folder).absolute() if folder is not None else default_infra_dir()
    postgres, server = _parts(root)
    pg, ml = postgres.status(), server.status()
    return InfraStatus(folder=root, postgres=pg, mlflow=ml,
                       tracking_uri=ml.tracking_uri,
                       events_url=postgres.url(EVENTS_DATABASE) if pg.running else None,
                       service_db_url=postgres.url(SERVICE_DATABASE) if pg.running else None)


def up(folder: str | os.PathLike[str] | None = None, *, postgres_port: int | None = None,
       mlflow_port: int | None = None, workers: int = 2) -> InfraStatus:
    """Start whatever is not running (see the module docstring); returns the status.

    Raises
    ------
    InfraError
        A component could not be started (names which and shows its log's tail).
    """
    root = Path(folder).absolute() if folder is not None else default_infra_dir()
    postgres, server = _parts(root)
    postgres.check_reachable()  # before anything is created
    root.mkdir(parents=True, exist_ok=True)
    if not postgres.status().running:
        postgres.start(postgres_port)
    for database in (MLFLOW_DATABASE, EVENTS_DATABASE, SERVICE_DATABASE):
        postgres.create_database(database)
    if not server.status().running:
        server.start(postgres.url(MLFLOW_DATABASE), port=mlflow_port, workers=workers)
    now = status(root)
    (root / "env").write_text(now.exports(), encoding="utf-8")
    return now


def down(folder: str | os.PathLike[str] | None = None) -> InfraStatus:
    """Stop the MLflow server, then PostgreSQL (only the recorded processes); the status."""
    root = Path(folder).absolute() if folder is not None else default_infra_dir()
    postgres, server = _parts(root)
    server.stop()
    postgres.stop()
    env = root / "env"
    if env.exists():
        env.unlink()
    return status(root)
