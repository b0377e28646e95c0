"""Shared fixtures: a private MLflow store per test, and synthetic evaluation reports.

MLflow: creating the SQLite schema takes seconds (dozens of Alembic migrations), so it is
created once per test session (per xdist worker) and each test gets a copy of the file, with
its own artifact root under ``tmp_path`` and the tracking URI pointed at the copy; the previous
URI, environment and working directory are restored afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from barberpro_ml.evaluation.overlap import check_overlap
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate, SliceReport
from requirements import check_requires_marks, missing


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(available, what): needs `what`; skips locally when it is "
        "missing, fails in CI (see tests/requirements.py)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    check_requires_marks(item)


@dataclass(frozen=True)
class MlflowStore:
    """A private MLflow tracking + registry store for one test."""

    tracking_uri: str
    db_path: Path
    artifact_root: Path


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with the full schema, created once per session."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow-template")
    db = root / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # creates the schema
    return db


@pytest.fixture
def mlflow_store(mlflow_template_db: Path, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowStore]:
    """Point MLflow at a fresh copy of the template store for the duration of one test."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils as tracking_utils

    uri = fresh_tracking_store(mlflow_template_db, tmp_path)
    artifacts = tmp_path / "mlruns"
    previous_uri = tracking_utils._tracking_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # New experiments put their artifacts under ./mlruns of the working directory.
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    # An experiment chosen by an earlier test lives in another store.
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    try:
        yield MlflowStore(tracking_uri=uri, db_path=tmp_path / "mlflow.db", artifact_root=artifacts)
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous_uri)


# --------------------------------------------------------------------------- synthetic reports
def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p >= 0.5) == (y == 1)))


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


_METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], bool]] = {
    "accuracy": (_accuracy, True), "roc_auc": (_roc_auc, True), "brier": (_brier, False),
}


def build_report(
    y: Any, p: Any, *, family: str = "churn", metrics: Sequence[str] = ("accuracy", "roc_auc"),
    n_bootstrap: int = 1000, seed: int = 0, slices: Mapping[str, Any] | None = None,
    baseline: bool = True, held_out: bool = True,
) -> EvaluationReport:
    """An evaluation report from labels and scores, with percentile bootstrap CIs.

    Independent of ``barberpro_ml.evaluation`` on purpose: gate tests control exactly what the
    report holds (metrics, baselines, slices) and stay valid whatever the harness does. With
    ``held_out`` the report carries the overlap record of test rows disjoint from twice as many
    training rows (ids ``0..n-1`` against ``n..3n-1``), as the gates require.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(y), size=(n_bootstrap, len(y)))

    def estimate(name: str, fn: Callable[[np.ndarray, np.ndarray], float],
                 higher: bool) -> MetricEstimate:
        reps = np.array([fn(y[r], p[r]) for r in rows])
        finite = reps[np.isfinite(reps)]
        lo, hi = np.quantile(finite, [0.025, 0.975]) if finite.size else (np.nan, np.nan)
        return MetricEstimate(name=name, value=fn(y, p), ci_low=float(lo), ci_high=float(hi),
                              higher_is_better=higher, replicates=finite.tolist())

    ests = {m: estimate(m, *_METRICS[m]) for m in metrics}
    baselines = {}
    if baseline:
        def majority(yy: np.ndarray, _: np.ndarray) -> float:
            return float(max(yy.mean(), 1 - yy.mean()))
        baselines["accuracy"] = estimate("accuracy", majority, True)
    slice_reports = []
    for dim, levels in (slices or {}).items():
        levels = np.asarray(levels)
        for level in np.unique(levels):
            mask = levels == level
            sub = build_report(y[mask], p[mask], family=family, metrics=metrics,
                               n_bootstrap=n_bootstrap, seed=seed + 1, baseline=False)
            slice_reports.append(SliceReport(dimension=dim, level=str(level),
                                             n=int(mask.sum()), positives=int(y[mask].sum()),
                                             metrics=sub.metrics))
    overlap = check_overlap(pd.DataFrame({"row_id": np.arange(len(y), 3 * len(y))}),
                            pd.DataFrame({"row_id": np.arange(len(y))}), ["row_id"]) \
        if held_out else None
    return EvaluationReport(family=family, kind="classification", n=len(y), metrics=ests,
                            baselines=baselines, slices=slice_reports, n_bootstrap=n_bootstrap,
                            seed=seed, overlap=overlap)


@pytest.fixture
def make_report() -> Callable[..., EvaluationReport]:
    """Factory: ``make_report(y, p, metrics=..., slices={"channel": levels}, ...)``."""
    return build_report


# --------------------------------------------------------------------------- scoring registry
@dataclass(frozen=True)
class TrainedRegistry:
    """An MLflow store holding a champion of every family, trained on ``data``."""

    tracking_uri: str
    root: Path
    data: Any
    data_dir: Path
    versions: dict[str, str]


# Small but real jobs: every family's experiment script, run as in production, on 2,500
# simulated customers; the claims are easy floors so that every family is promoted.
SCORING_JOBS: dict[str, dict[str, Any]] = {
    "churn": {"n_train_cutoffs": 2, "oracle": {"enabled": False},
              "backtest": {"enabled": False},
              "model": {"n_estimators": 60, "learning_rate": 0.1, "random_state": 0,
                        "n_jobs": 1},
              "evaluation": {"n_bootstrap": 100, "seed": 0, "min_slice_size": 100}},
    "ltv": {"n_train_cutoffs": 2, "train_horizon_days": 182,
            "cutoff_spacing_days": 61,
            "model": {"n_estimators": 60, "learning_rate": 0.1, "random_state": 0, "n_jobs": 1},
            "evaluation": {"n_bootstrap": 100, "seed": 0, "n_bins": 5}},
    "recs": {"candidates": {"neighborhood_popularity": {"class": "PopularityRecommender",
                                                        "params": {"by_group": True}},
                            "item_knn": {"class": "ItemKNNRecommender",
                                         "params": {"shrink": 10.0}}},
             "report_candidates": False, "evaluation": {"n_bootstrap": 100, "seed": 0}},
    "segments": {"model": {"k_values": [3, 4], "random_state": 0},
                 "evaluation": {"n_bootstrap": 100, "seed": 0}},
}
SCORING_CLAIMS = [
    ("churn", "roc_auc", 0.6), ("ltv", "spearman", 0.0), ("recs", "ndcg@10", 0.05),
    ("segments", "silhouette", 0.0),
]


@pytest.fixture(scope="session")
def scoring_registry(mlflow_template_db: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedRegistry]:
    """Champions of churn, LTV, recs and segments in a private store (once per session)."""
    import yaml

    from barberpro_ml.data import SimulationConfig, simulate
    from barberpro_ml.jobs import JOBS

    root = tmp_path_factory.mktemp("scoring-registry")
    uri = fresh_tracking_store(mlflow_template_db, root)
    data = simulate(SimulationConfig(n_customers=2500, seed=11))
    data_dir = data.save(root / "data")
    claims = root / "claims.yaml"
    claims.write_text(yaml.safe_dump({"claims": [
        {"id": f"test-{family}", "family": family, "metric": metric, "claimed": claimed,
         "direction": "at_least", "policy": "point", "source": "test floor"}
        for family, metric, claimed in SCORING_CLAIMS]}))
    versions: dict[str, str] = {}
    with isolated_tracking(uri, root):
        for family, job in SCORING_JOBS.items():
            config = root / f"{family}.yaml"
            config.write_text(yaml.safe_dump({**job, "claims": str(claims)}))
            outcome = JOBS[family].run(config, data=data, tracking_uri=uri)
            assert outcome.promoted, f"{family} was not promoted: {outcome.verdicts}"
            versions[outcome.model_name] = outcome.version
    yield TrainedRegistry(tracking_uri=uri, root=root, data=data, data_dir=data_dir,
                          versions=versions)


# ------------------------------------------------------------------------------ PostgreSQL
def postgres_installed() -> bool:
    """Whether PostgreSQL's server binaries are on this machine."""
    from barberpro_ml.errors import InfraError
    from barberpro_ml.infra.postgres import find_postgres_bin

    try:
        find_postgres_bin()
    except InfraError:
        return False
    return True


def traversable_tmp_dir(prefix: str) -> Path:
    """A fresh folder under /tmp that every user can traverse (mode 0755).

    pytest's own temporary folders are private to their user (0700); a PostgreSQL server run
    as the ``postgres`` user (when the tests run as root) could not reach a cluster inside
    them.
    """
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """A real PostgreSQL cluster for the session (per xdist worker), stopped and removed at
    the end: a :class:`~barberpro_ml.infra.postgres.LocalPostgres`, already started.

    Skips when PostgreSQL is not installed, fails in CI (tests/requirements.py).
    """
    from barberpro_ml.infra.postgres import LocalPostgres

    if not postgres_installed():
        missing("PostgreSQL server binaries (apt-get install -y postgresql)")
    folder = traversable_tmp_dir("barberpro-pg-")
    cluster = LocalPostgres(folder / "postgres")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def fresh_tracking_store(template: Path, folder: Path) -> str:
    """A new SQLite tracking store in ``folder`` from the migrated ``template`` (see
    ``mlflow_template_db``), its Default experiment's artifacts under ``folder/mlruns``.
    Returns its URI."""
    db = folder / "mlflow.db"
    shutil.copyfile(template, db)
    artifacts = folder / "mlruns"
    artifacts.mkdir()
    # The template's Default experiment stores artifacts under the template's folder.
    with sqlite3.connect(db) as con:
        con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                    ((artifacts / "0").as_uri(),))
    con.close()
    return f"sqlite:///{db}"


def copy_tracking_store(uri: str, folder: Path) -> str:
    """A private copy of the SQLite tracking store at ``uri`` in ``folder`` (its artifacts stay
    where they are, read only): a test that writes runs or versions leaves the shared store
    alone. Returns the copy's URI."""
    db = folder / "mlflow.db"
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as con, sqlite3.connect(db) as copy:
        con.backup(copy)
    con.close()
    copy.close()
    return f"sqlite:///{db}"


@contextlib.contextmanager
def isolated_tracking(uri: str, root: Path) -> Iterator[None]:
    """MLflow pointed at ``uri`` for the block: the environment (registry, experiment and run
    variables cleared), the fluent API's state and the working directory (``root``); every run
    still open is ended and the previous tracking URI restored afterwards."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        for name in ("MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID",
                     "MLFLOW_RUN_ID"):
            mp.delenv(name, raising=False)
        mp.chdir(root)
        mlflow.set_tracking_uri(uri)
        mp.setattr(fluent, "_active_experiment_id", None)
        try:
            yield
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(previous)


def wait_for_ok(url: str, process: Any, *, timeout: float = 90.0,
                log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200 while ``process`` (a server starting) runs; fail with
    its output (``log``, else its stdout) if it exits first or ``timeout`` passes."""
    import time

    import httpx

    def output() -> str:
        if log is not None:
            return log.read_text()[-3000:]
        return process.stdout.read().decode()[-3000:] if process.stdout else ""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {output()}")
        try:
            if httpx.get(url, timeout=5.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not come up in {timeout} s")
