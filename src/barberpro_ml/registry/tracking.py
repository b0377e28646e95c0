"""Run-logging helpers an experiment script calls inside ``mlflow.start_run()``.

One helper per concern, so a training script reads top to bottom like the data flow::

    configure_tracking()                                  # sqlite:///mlflow.db unless told
    with mlflow.start_run(run_name="churn"):
        log_config(cfg)                                   # config.yaml + flattened params
        log_lineage(data=data, features=X_train)          # digests, git commit, version
        log_feature_catalogue(feature_catalogue(X_train))
        report_uri = log_report(report)                   # metrics + CI bounds + report.json
        log_gate_result(gate)                             # verdict tags + gate/ artifacts
        log_model_card(model_card(report, ...))           # model_card.md

Metric names: ``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``; baselines as
``baseline_<metric>`` (same suffixes); slices as ``slice.<dimension>.<level>.<metric>`` and
``slice.<dimension>.<level>.n``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from pydantic import BaseModel

import barberpro_ml
from barberpro_ml.data import MarketplaceData
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate
from barberpro_ml.gates import GateResult
from barberpro_ml.registry.promotion import verdict_tags

DEFAULT_TRACKING_DB = "mlflow.db"
TAG_DATA_DIGEST = "barberpro.data_digest"
TAG_FEATURE_DIGEST = "barberpro.feature_digest"
TAG_GIT_COMMIT = "barberpro.git_commit"
TAG_GIT_DIRTY = "barberpro.git_dirty"
TAG_VERSION = "barberpro.package_version"
_PARAM_MAX = 6000  # MLflow's limit on a param value
_METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/ ]")


def configure_tracking(tracking_uri: str | None = None, *, experiment: str | None = None) -> str:
    """Point MLflow at a tracking store and return its URI.

    Precedence: the ``tracking_uri`` argument, then the ``MLFLOW_TRACKING_URI`` environment
    variable (a tracking server, e.g. backed by PostgreSQL), then the embedded default: a SQLite
    file ``mlflow.db`` in the working directory (made absolute, so later ``chdir`` or child
    processes keep using the same store) with artifacts in ``./mlruns``.

    Parameters
    ----------
    tracking_uri
        Explicit tracking URI.
    experiment
        If given, also set (create if needed) the active experiment.

    Returns
    -------
    str
        The tracking URI in use.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
        f"sqlite:///{(Path.cwd() / DEFAULT_TRACKING_DB).resolve().as_posix()}"
    mlflow.set_tracking_uri(uri)
    if experiment is not None:
        mlflow.set_experiment(experiment)
    return uri


def _active_run_id(helper: str) -> str:
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(f"{helper}() logs to the active MLflow run; call it inside "
                           "`with mlflow.start_run():`")
    return str(run.info.run_id)


# --------------------------------------------------------------------------- lineage
def frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's content: column names, dtypes, index and values, in order.

    Two frames have the same digest exactly when they hold the same features for the same rows
    (row and column order matter: a shuffled frame is a different training input).
    """
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()


def git_commit(path: str | Path | None = None) -> tuple[str | None, bool | None]:
    """The commit checked out at ``path`` (default: this package's source) and whether the
    working tree has uncommitted changes; ``(None, None)`` outside a git checkout."""
    where = Path(path) if path is not None else Path(barberpro_ml.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=where, capture_output=True, text=True, timeout=30,
                                check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return (commit or None), bool(status.strip())


def log_lineage(*, data: MarketplaceData | None = None, features: pd.DataFrame | None = None,
                git_path: str | Path | None = None) -> dict[str, str]:
    """Tag the active run with what it was built from.

    Tags ``barberpro.data_digest`` (:meth:`MarketplaceData.digest`),
    ``barberpro.feature_digest`` (:func:`frame_digest`), ``barberpro.git_commit`` and
    ``barberpro.git_dirty`` (``none`` outside a git checkout) and
    ``barberpro.package_version``.

    Returns
    -------
    dict
        The tags written.
    """
    _active_run_id("log_lineage")
    commit, dirty = git_commit(git_path)
    tags = {TAG_GIT_COMMIT: commit or "none",
            TAG_GIT_DIRTY: "none" if dirty is None else str(dirty).lower(),
            TAG_VERSION: barberpro_ml.__version__}
    if data is not None:
        tags[TAG_DATA_DIGEST] = data.digest()
    if features is not None:
        tags[TAG_FEATURE_DIGEST] = frame_digest(features)
    mlflow.set_tags(tags)
    return tags


# --------------------------------------------------------------------------- config, params
def _plain(config: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(config, BaseModel):
        return dict(config.model_dump(mode="json"))
    return json.loads(json.dumps(dict(config), default=str))  # type: ignore[no-any-return]


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"model.max_depth": "4", ...}`` (MLflow params are flat strings).

    Examples
    --------
    >>> flatten_params({"model": {"max_depth": 4, "eta": 0.1}, "seed": 7})
    {'model.max_depth': '4', 'model.eta': '0.1', 'seed': '7'}
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten_params(value, prefix=f"{name}.")
        else:
            text = json.dumps(value, default=str) if isinstance(value, list | tuple) \
                else str(value)
            if len(text) > _PARAM_MAX:
                text = text[: _PARAM_MAX - 40] + f"... ({len(text):,} chars; see config.yaml)"
            flat[name] = text
    return flat


def log_params(params: Mapping[str, Any] | BaseModel) -> dict[str, str]:
    """Log a (nested) mapping or pydantic config as flat params; returns what was logged."""
    _active_run_id("log_params")
    flat = flatten_params(_plain(params))
    mlflow.log_params(flat)
    return flat


def log_config(config: Mapping[str, Any] | BaseModel, *, artifact_file: str = "config.yaml",
               as_params: bool = True) -> None:
    """Log the run's config as a YAML artifact (and, by default, as flattened params)."""
    _active_run_id("log_config")
    plain = _plain(config)
    mlflow.log_text(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True), artifact_file)
    if as_params:
        mlflow.log_params(flatten_params(plain))


# --------------------------------------------------------------------------- report, gate
def metric_key(*parts: str) -> str:
    """A valid MLflow metric name from free text (slice levels may hold any character)."""
    return ".".join(_METRIC_UNSAFE.sub("_", p) for p in parts)


def _estimate_metrics(name: str, est: MetricEstimate) -> dict[str, float]:
    return {name: est.value, f"{name}_ci_low": est.ci_low, f"{name}_ci_high": est.ci_high}


def report_metrics(report: EvaluationReport) -> dict[str, float]:
    """The flat metric dict :func:`log_report` logs (see the module docstring for names)."""
    metrics: dict[str, float] = {"n_eval": float(report.n)}
    for name, est in report.metrics.items():
        metrics |= _estimate_metrics(metric_key(name), est)
    for name, est in report.baselines.items():
        metrics |= _estimate_metrics(metric_key(f"baseline_{name}"), est)
    for s in report.slices:
        metrics[metric_key("slice", s.dimension, s.level, "n")] = float(s.n)
        for name, est in s.metrics.items():
            metrics[metric_key("slice", s.dimension, s.level, name)] = est.value
    return metrics


def log_report(report: EvaluationReport, *, artifact_file: str = "evaluation/report.json"
               ) -> str:
    """Log metrics with CI bounds and the full report as JSON; returns the report's URI.

    The URI (``<run artifact uri>/evaluation/report.json``) is what
    :func:`barberpro_ml.registry.promote` records as the report's location.
    """
    _active_run_id("log_report")
    metrics = report_metrics(report)
    items = list(metrics.items())
    for start in range(0, len(items), 1000):  # MLflow's batch limit
        mlflow.log_metrics(dict(items[start:start + 1000]))
    mlflow.log_text(report.model_dump_json(indent=2), artifact_file)
    return f"{mlflow.get_artifact_uri().rstrip('/')}/{artifact_file}"


def log_gate_result(result: GateResult, *, artifact_dir: str = "gates") -> None:
    """Log a gate result to the active run: verdict tags, the table, and JSON/text artifacts.

    Tags ``gate.passed`` and ``gate.<check>`` (``pass``/``fail``/``not tested``); artifacts
    ``<artifact_dir>/gate_result.json``, ``gate_result.txt`` and ``verdicts.csv``.
    """
    _active_run_id("log_gate_result")
    mlflow.set_tags(verdict_tags(result))
    mlflow.log_text(result.model_dump_json(indent=2), f"{artifact_dir}/gate_result.json")
    mlflow.log_text(result.to_text(), f"{artifact_dir}/gate_result.txt")
    mlflow.log_text(result.table().to_csv(index=False), f"{artifact_dir}/verdicts.csv")


# --------------------------------------------------------------------------- features, card
def feature_catalogue(features: pd.DataFrame,
                      descriptions: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A table describing each feature column: dtype, missing share, distinct values, range.

    Parameters
    ----------
    features
        The feature frame.
    descriptions
        Optional one-line description per column (e.g. from the features stage's catalogue).

    Returns
    -------
    pandas.DataFrame
        One row per column: ``feature``, ``dtype``, ``missing_share``, ``n_unique``,
        ``min``, ``max``, ``description``.
    """
    numeric = features.select_dtypes(include=["number", "datetime"])
    lows, highs = numeric.min(), numeric.max()
    descriptions = descriptions or {}
    return pd.DataFrame({
        "feature": [str(c) for c in features.columns],
        "dtype": [str(t) for t in features.dtypes],
        "missing_share": features.isna().mean().to_numpy(),
        "n_unique": features.nunique(dropna=True).to_numpy(),
        "min": [str(lows[c]) if c in lows.index else "" for c in features.columns],
        "max": [str(highs[c]) if c in highs.index else "" for c in features.columns],
        "description": [descriptions.get(str(c), "") for c in features.columns],
    })


def log_feature_catalogue(catalogue: pd.DataFrame, *,
                          artifact_file: str = "features/catalogue.csv") -> None:
    """Log a feature catalogue table (from :func:`feature_catalogue` or the features stage)."""
    _active_run_id("log_feature_catalogue")
    if catalogue.empty:
        raise ValueError("log_feature_catalogue: the catalogue is empty")
    mlflow.log_text(catalogue.to_csv(index=False), artifact_file)


def log_model_card(markdown: str, *, artifact_file: str = "model_card.md") -> str:
    """Log a model card (Markdown from :func:`model_card`); returns its artifact URI."""
    _active_run_id("log_model_card")
    mlflow.log_text(markdown, artifact_file)
    return f"{mlflow.get_artifact_uri().rstrip('/')}/{artifact_file}"
