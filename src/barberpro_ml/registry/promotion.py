"""Gated promotion: move the ``champion`` alias only when the gate passed, and keep a log.

MLflow aliases keep no history, so every promotion attempt is recorded in the tracking store
itself, as a run in the experiment ``barberpro-promotions`` (tags: model, version, outcome,
previous champion, training run, report location; artifact: the gate result as JSON and as
text). That log is append-only, survives the process, and works unchanged against a remote
tracking server. :func:`promotion_log` reads it back.

:func:`promote` is all-or-nothing for exceptions: if anything fails after it started changing
state (tagging the version, writing the log run, moving the alias), everything it did is rolled
back before the error propagates, so the champion alias, the version's gate tags and the log
are as they were. (A process killed outright between two calls can still leave a log run in
status RUNNING; :func:`promotion_log` only reads FINISHED runs, which are written last.)
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel
from pydantic import BaseModel, ConfigDict

from barberpro_ml.gates import ChampionComparison, GateResult
from barberpro_ml.registry.models import EstimatorModel

CHAMPION = "champion"
PROMOTIONS_EXPERIMENT = "barberpro-promotions"
TAG_PREFIX = "gate."
_LOG = "barberpro."
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/ ]")


class PromotionError(RuntimeError):
    """Promotion failed and its rollback did not fully succeed (the message lists what)."""


class PromotionRecord(BaseModel):
    """One promotion attempt, as written to (and read back from) the promotion log."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    alias: str
    outcome: Literal["promoted", "refused"]
    gate_passed: bool
    previous_champion: str | None
    training_run_id: str | None
    report_uri: str | None
    log_run_id: str
    evidence_uri: str
    at: datetime
    actor: str


def _client(client: MlflowClient | None) -> MlflowClient:
    return client or MlflowClient()


def alias_version(name: str, alias: str = CHAMPION, *, client: MlflowClient | None = None
                  ) -> str | None:
    """The version ``alias`` points to, or ``None`` when the alias (or the model) is not set."""
    try:
        model = _client(client).get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = model.aliases.get(alias)
    return None if version is None else str(version)


def _tag_key(check_id: str) -> str:
    """``churn-x[acquisition_channel=app]`` -> ``gate.churn-x.acquisition_channel.app``."""
    key = check_id.replace("[", ".").replace("]", "").replace("=", ".")
    return TAG_PREFIX + _UNSAFE.sub("_", key)


def verdict_tags(gate: GateResult) -> dict[str, str]:
    """``gate.<check>`` -> verdict for every claim, plus ``gate.champion`` and ``gate.passed``."""
    tags: dict[str, str] = {_tag_key(c.check_id): c.verdict for c in gate.claims}
    tags[TAG_PREFIX + "champion"] = gate.champion.verdict
    tags[TAG_PREFIX + "passed"] = str(gate.passed).lower()
    return tags


def _version_tags(gate: GateResult, *, report_uri: str | None, run_id: str | None,
                  evidence_uri: str) -> dict[str, str]:
    tags = verdict_tags(gate)
    tags |= {
        TAG_PREFIX + "checked_at": gate.checked_at.isoformat(),
        TAG_PREFIX + "evidence_uri": evidence_uri,
    }
    if report_uri:
        tags[TAG_PREFIX + "report_uri"] = report_uri
    if run_id:
        tags[TAG_PREFIX + "run_id"] = run_id
    return tags


def _promotions_experiment(client: MlflowClient) -> str:
    exp = client.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
    if exp is None:
        try:
            return str(client.create_experiment(PROMOTIONS_EXPERIMENT))
        except MlflowException:  # created concurrently by another process
            exp = client.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise PromotionError(f"the promotion-log experiment {PROMOTIONS_EXPERIMENT!r} is "
                             "deleted; restore it (mlflow experiments restore) rather than "
                             "losing the promotion history")
    return str(exp.experiment_id)


def promote(
    name: str,
    version: str | int,
    gate_result: GateResult,
    *,
    report_uri: str | None,
    run_id: str | None,
    alias: str = CHAMPION,
    actor: str | None = None,
    client: MlflowClient | None = None,
) -> PromotionRecord:
    """Record a gate verdict on a model version and move ``alias`` to it only if it passed.

    Steps: tag the version with one ``gate.<claim>`` tag per verdict plus ``gate.passed``,
    ``gate.champion``, ``gate.report_uri``, ``gate.run_id``, ``gate.evidence_uri`` (stale
    ``gate.*`` tags from an earlier check are removed); write the attempt to the promotion log;
    move the alias when ``gate_result.passed``; finish the log run. A failed gate leaves the
    alias where it was and the promotion log's list of promotions unchanged (the refusal is
    kept as a ``refused`` entry, shown with ``promotion_log(..., include_refused=True)``).

    Parameters
    ----------
    name, version
        Registered model and the version the gate was run on.
    gate_result
        From :func:`barberpro_ml.gates.check`.
    report_uri
        Where the evaluation report lives (e.g. the run artifact URI of ``report.json``).
    run_id
        The training/evaluation run that produced the version and the report.
    alias
        The alias to move (``champion``).
    actor
        Who promoted (default: the OS user).

    Returns
    -------
    PromotionRecord

    Raises
    ------
    PromotionError
        When the promotion failed *and* rolling it back failed too (lists what is left).
        Any other error propagates after a complete rollback.
    """
    client = _client(client)
    version = str(version)
    mv = client.get_model_version(name, version)  # a clear MLflow error if it does not exist
    previous = alias_version(name, alias, client=client)
    old_tags = {k: v for k, v in mv.tags.items() if k.startswith(TAG_PREFIX)}
    actor = actor or _whoami()
    outcome: Literal["promoted", "refused"] = "promoted" if gate_result.passed else "refused"
    experiment_id = _promotions_experiment(client)

    log_run_id: str | None = None
    new_tags: dict[str, str] = {}
    try:
        log_run = client.create_run(experiment_id, run_name=f"{name} v{version} {outcome}", tags={
            _LOG + "model_name": name, _LOG + "version": version, _LOG + "alias": alias,
            _LOG + "outcome": outcome, _LOG + "gate_passed": str(gate_result.passed).lower(),
            _LOG + "previous_champion": previous or "", _LOG + "training_run_id": run_id or "",
            _LOG + "report_uri": report_uri or "", _LOG + "actor": actor,
        })
        log_run_id = log_run.info.run_id
        evidence_uri = f"{log_run.info.artifact_uri.rstrip('/')}/gate_result.json"
        client.log_text(log_run_id, gate_result.model_dump_json(indent=2), "gate_result.json")
        client.log_text(log_run_id, gate_result.to_text(), "gate_result.txt")

        new_tags = _version_tags(gate_result, report_uri=report_uri, run_id=run_id,
                                 evidence_uri=evidence_uri)
        for key in old_tags.keys() - new_tags.keys():
            client.delete_model_version_tag(name, version, key)
        for key, value in new_tags.items():
            client.set_model_version_tag(name, version, key, value)

        if gate_result.passed:
            client.set_registered_model_alias(name, alias, version)
        # Written last: the log shows only attempts that completed.
        client.set_terminated(log_run_id, "FINISHED")
    except BaseException as exc:
        _rollback(client, name, version, alias, previous=previous, moved=gate_result.passed,
                  old_tags=old_tags, new_tags=new_tags, log_run_id=log_run_id, error=exc)
        raise

    finished = client.get_run(log_run_id)
    return _record(finished)


def _rollback(client: MlflowClient, name: str, version: str, alias: str, *,
              previous: str | None, moved: bool, old_tags: dict[str, str],
              new_tags: dict[str, str], log_run_id: str | None, error: BaseException) -> None:
    failures: list[str] = []
    if moved:
        try:
            if alias_version(name, alias, client=client) != previous:
                if previous is None:
                    client.delete_registered_model_alias(name, alias)
                else:
                    client.set_registered_model_alias(name, alias, previous)
        except Exception as exc:  # keep rolling back the rest
            failures.append(f"alias {alias!r} could not be restored to {previous!r}: {exc}")
    try:
        for key in new_tags.keys() - old_tags.keys():
            client.delete_model_version_tag(name, version, key)
        for key, value in old_tags.items():
            client.set_model_version_tag(name, version, key, value)
    except Exception as exc:
        failures.append(f"gate tags of version {version} could not be restored: {exc}")
    if log_run_id is not None:
        try:
            client.set_terminated(log_run_id, "FAILED")
            client.delete_run(log_run_id)
        except Exception as exc:
            failures.append(f"promotion-log run {log_run_id} could not be removed: {exc}")
    if failures:
        raise PromotionError(
            f"promoting {name} v{version} failed ({type(error).__name__}: {error}) and the "
            f"rollback was incomplete: {'; '.join(failures)}") from error


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return "unknown"


def _record(run: Any) -> PromotionRecord:
    tags = run.data.tags
    return PromotionRecord(
        model_name=tags[_LOG + "model_name"], version=tags[_LOG + "version"],
        alias=tags.get(_LOG + "alias", CHAMPION), outcome=tags[_LOG + "outcome"],
        gate_passed=tags.get(_LOG + "gate_passed") == "true",
        previous_champion=tags.get(_LOG + "previous_champion") or None,
        training_run_id=tags.get(_LOG + "training_run_id") or None,
        report_uri=tags.get(_LOG + "report_uri") or None, log_run_id=run.info.run_id,
        evidence_uri=f"{run.info.artifact_uri.rstrip('/')}/gate_result.json",
        at=datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC),
        actor=tags.get(_LOG + "actor", "unknown"),
    )


def promotion_log(name: str, *, include_refused: bool = False,
                  client: MlflowClient | None = None) -> pd.DataFrame:
    """The promotion history of a registered model, oldest first.

    Parameters
    ----------
    name
        Registered model name.
    include_refused
        Also list attempts refused by the gate (default: promotions only).

    Returns
    -------
    pandas.DataFrame
        One row per completed attempt: ``at``, ``model_name``, ``version``, ``alias``,
        ``outcome``, ``gate_passed``, ``previous_champion``, ``training_run_id``,
        ``report_uri``, ``evidence_uri``, ``actor``, ``log_run_id``.
    """
    client = _client(client)
    columns = list(PromotionRecord.model_fields)
    exp = client.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
    if exp is None:
        return pd.DataFrame(columns=columns)
    quoted = name.replace("'", "\\'")
    where = [f"tags.`{_LOG}model_name` = '{quoted}'", "attributes.status = 'FINISHED'"]
    if not include_refused:
        where.append(f"tags.`{_LOG}outcome` = 'promoted'")
    runs: list[Any] = []
    token: str | None = None
    while True:
        page = client.search_runs([exp.experiment_id], " and ".join(where),
                                  run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    records = [_record(r).model_dump() for r in runs]
    frame = pd.DataFrame(records, columns=columns)
    frame = frame.sort_values("at", kind="stable").reset_index(drop=True)
    return frame[["at", *[c for c in columns if c != "at"]]]


def load_champion(name: str, *, alias: str = CHAMPION, tracking_uri: str | None = None
                  ) -> tuple[PyFuncModel, ModelVersion]:
    """Load the version an alias points to, with its registry record.

    The alias is resolved once and the model loaded by version number, so the model and the
    returned version always agree even if the alias moves meanwhile. The model files are
    downloaded to a new temporary directory (as ``mlflow.pyfunc.load_model`` does for
    ``models:/`` URIs).

    Parameters
    ----------
    name
        Registered model name (``barberpro-churn``).
    alias
        ``champion`` by default.
    tracking_uri
        Tracking/registry server; default: the current one (``MLFLOW_TRACKING_URI``...).

    Returns
    -------
    (mlflow.pyfunc.PyFuncModel, ModelVersion)

    Raises
    ------
    LookupError
        The model has no such alias (e.g. nothing promoted yet).
    """
    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=tracking_uri)
    version = alias_version(name, alias, client=client)
    if version is None:
        raise LookupError(f"registered model {name!r} has no {alias!r} alias at {uri} "
                          "(nothing promoted yet?)")
    mv = client.get_model_version(name, version)
    # MLflow resolves a version's files (a ``models:/m-...`` logged model in MLflow 3) through
    # the *global* tracking and registry URIs, whatever is passed here: point both at the
    # store asked for while downloading, or another store's version of the same number loads.
    with _global_uris(uri, tracking_uri or mlflow.get_registry_uri()):
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", tracking_uri=uri,
            dst_path=tempfile.mkdtemp(prefix=f"{_UNSAFE.sub('_', name)}-v{version}-"))
    return mlflow.pyfunc.load_model(str(Path(local))), mv


@contextlib.contextmanager
def _global_uris(tracking_uri: str, registry_uri: str) -> Iterator[None]:
    """Set MLflow's global tracking and registry URIs for a block, then restore them exactly.

    ``mlflow.set_*_uri`` also export environment variables and turn an implicit default into
    an explicit setting, so the previous state is put back through MLflow's module globals.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri,
             {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")})
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved[0], saved[1]
        for key, value in saved[2].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def champion_comparison(
    name: str, X: pd.DataFrame, y: Any, challenger_scores: Any, *,
    metric: str | None = None, margin: float | None = None, n_bootstrap: int = 1000,
    seed: int = 0, alias: str = CHAMPION,
) -> ChampionComparison | None:
    """Score the current champion on the challenger's test rows, for :func:`gates.check`.

    Parameters
    ----------
    name
        Registered model name.
    X, y
        The challenger's held-out feature frame and targets.
    challenger_scores
        The challenger's scores on ``X`` (same row order).
    metric, margin
        Override the claims file's non-inferiority settings.

    Returns
    -------
    ChampionComparison or None
        ``None`` when there is no champion yet.
    """
    if alias_version(name, alias) is None:
        return None
    model, mv = load_champion(name, alias=alias)
    python_model = model.unwrap_python_model()  # type: ignore[no-untyped-call]
    if isinstance(python_model, EstimatorModel) and python_model.spec is not None:
        request = python_model.spec.features.to_request(X)
    else:
        request = X
    champion_scores = np.asarray(model.predict(request), dtype=float).ravel()
    return ChampionComparison(
        y_true=np.asarray(y, dtype=float), challenger=np.asarray(challenger_scores, dtype=float),
        champion=champion_scores, metric=metric, margin=margin,
        champion_version=str(mv.version), n_bootstrap=n_bootstrap, seed=seed)
