"""The only door to ``@champion``: :func:`promote`, with an append-only promotion log.

MLflow aliases keep no history, so every promotion attempt -- refused ones included, with their
reasons -- is recorded in the tracking store itself, as a run in the experiment
``barberpro-promotions`` (tags: model, version, outcome, why refused, previous champion,
training run, gate digest; artifacts: the bound gate result and the reasons). That log is
append-only, survives the process, and works unchanged against a remote tracking server.
:func:`promotion_log` reads it back, and :func:`~barberpro_ml.registry.verify_champion` uses it
to tell a champion promoted here from an alias moved by hand.

:func:`promote` judges only what :func:`~barberpro_ml.registry.record_gate` bound to the version
(it takes no gate result from its caller), moves the alias by compare-and-set under a lock,
and rolls back what it did if anything fails midway. (A process killed outright between two
calls can leave a log run in status RUNNING; :func:`promotion_log` only reads FINISHED runs,
which are written last.)
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import tempfile
import time
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

from barberpro_ml.errors import BarberproError
from barberpro_ml.gates import ChampionComparison, GateResult
from barberpro_ml.registry.models import CHAMPION as CHAMPION  # defined beside CHALLENGER
from barberpro_ml.registry.models import EstimatorModel

PROMOTIONS_EXPERIMENT = "barberpro-promotions"
TAG_PREFIX = "gate."
_LOG = "barberpro."
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/ ]")


class PromotionError(RuntimeError):
    """Promotion failed and its rollback did not fully succeed (the message lists what)."""


class PromotionRecord(BaseModel):
    """One promotion attempt, as written to (and read back from) the promotion log.

    ``refused_because`` says which door closed: ``data-set`` (the version was trained on another
    data set than the champion and the promotion did not ask for a new one), ``gate`` (a
    blocking check of a correctly bound
    gate result failed), ``binding`` (the gate result is missing, was edited, judged another
    version or run, another claims file, or a champion that has moved since), ``concurrent``
    (another promotion of the same model held the lock).
    """

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
    refused_because: Literal["gate", "binding", "concurrent", "data-set"] | None = None
    reasons: list[str] = []
    gate_digest: str | None = None


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


LOCK_SUFFIX = ".promotion-lock"
LOCK_STALE_AFTER_S = 600.0


class PromotionInProgressError(BarberproError):
    """Another promotion of the same model holds the lock (try again later)."""

    http_status = 409


@contextlib.contextmanager
def _promotion_lock(client: MlflowClient, name: str, actor: str) -> Iterator[None]:
    """Mutual exclusion across processes and machines, through the registry itself.

    Creating a registered model is atomic (the name is a unique key in the store), so the
    lock is a registered model ``<name>.promotion-lock`` created here and deleted afterwards.
    A lock older than :data:`LOCK_STALE_AFTER_S` (a process killed mid-promotion) is broken.
    """
    lock = name + LOCK_SUFFIX
    for attempt in range(2):
        try:
            client.create_registered_model(lock, tags={"holder": actor, "since": str(time.time())},
                                           description=f"held while promoting {name}")
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS" or attempt:
                raise PromotionInProgressError(
                    f"another promotion of {name} is in progress (lock {lock!r}); try again "
                    "when it has finished") from None
            held = client.get_registered_model(lock)
            since = float(held.tags.get("since", "0") or 0)
            if time.time() - since < LOCK_STALE_AFTER_S:
                raise PromotionInProgressError(
                    f"another promotion of {name} is in progress (by "
                    f"{held.tags.get('holder', 'unknown')}, lock {lock!r}); try again when it "
                    "has finished") from None
            with contextlib.suppress(MlflowException):
                client.delete_registered_model(lock)
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            client.delete_registered_model(lock)


def promote(
    name: str,
    version: str | int,
    *,
    claims_path: str | Path | None = None,
    actor: str | None = None,
    client: MlflowClient | None = None,
    allow_new_data_set: bool = False,
) -> PromotionRecord:
    """Move ``@champion`` to ``name`` v``version`` -- the only door to it.

    The gate result is re-read from the version's own source run (recorded there by
    :func:`~barberpro_ml.registry.record_gate`), and every binding is checked
    (:func:`~barberpro_ml.registry.binding_problems`): its content digest matches the
    ``gate.digest`` tag set at gate time; it judged this name, version and source run; the
    claims file has the content the gate ran with, the gate checked all of the family's
    claims and at least one blocks, and the recorded verdicts follow from the logged report;
    the champion it was compared with is still the champion; it ran with this library version.
    Then, only if it passed, the alias moves -- compare-and-set under a registry-wide lock,
    so of two concurrent promotions at most one wins.

    Every attempt, refused ones included, becomes one entry of the promotion log with its
    reasons (:func:`promotion_log`, ``include_refused=True``).

    Parameters
    ----------
    name, version
        The registered model version to promote.
    claims_path
        The claims file to judge by; default: the file the gate ran with (as recorded), which
        must still have the same content.
    actor
        Who promoted (default: the OS user).
    allow_new_data_set
        Let a version trained on another data set (tag ``data_set.name``) than the champion
        replace it. Without it such a promotion is refused (``refused_because="data-set"``): a
        300-customer try-out must not silently replace champions of the real marketplace.

    Returns
    -------
    PromotionRecord
        ``outcome`` is ``promoted`` or ``refused`` (then ``refused_because`` and ``reasons``).

    Raises
    ------
    VersionNotFoundError
        No such model or version (nothing is logged).
    PromotionError
        The alias could not be moved and the attempt's log entry could not be removed.
    """
    from barberpro_ml.registry.binding import binding_problems, get_version

    client = _client(client)
    mv = get_version(name, version, client)
    version = str(mv.version)
    actor = actor or _whoami()
    previous = alias_version(name, CHAMPION, client=client)
    try:
        with _promotion_lock(client, name, actor):
            found = binding_problems(name, version, claims_path=claims_path, client=client)
            previous = alias_version(name, CHAMPION, client=client)
            bound = found.bound
            crossing = data_set_crossing(client, name, mv, previous)
            if crossing and not allow_new_data_set:
                return _log_attempt(client, mv, previous, actor, bound, found.digest,
                                    "data-set", [crossing], gate_passed=bool(
                                        bound is not None and bound.passed))
            if found.problems:
                return _log_attempt(client, mv, previous, actor, bound, found.digest,
                                    "binding", found.problems)
            assert bound is not None
            if not bound.passed:
                return _log_attempt(client, mv, previous, actor, bound, found.digest, "gate",
                                    bound.result.failures())
            return _log_attempt(client, mv, previous, actor, bound, found.digest, None, [],
                                move=True)
    except PromotionInProgressError as exc:
        return _log_attempt(client, mv, previous, actor, None, mv.tags.get("gate.digest"),
                            "concurrent", [str(exc)], gate_passed=False)


TAG_DATA_SET_NAME = "data_set.name"
TAG_DATA_SET_DIGEST = "data_set.digest"


def data_set_crossing(client: MlflowClient, name: str, mv: ModelVersion,
                      champion: str | None) -> str | None:
    """Why promoting ``mv`` would replace a champion trained on another data set, or None.

    Both versions must carry the ``data_set.name`` tag (every job sets it); a version without
    it (registered by hand) is not compared.
    """
    if champion is None or champion == str(mv.version):
        return None
    ours = mv.tags.get(TAG_DATA_SET_NAME)
    theirs = client.get_model_version(name, champion).tags.get(TAG_DATA_SET_NAME)
    if ours is None or theirs is None or ours == theirs:
        return None
    return (f"v{mv.version} was trained on data set {ours!r}, the champion v{champion} on "
            f"{theirs!r}; pass --new-data-set (allow_new_data_set=True) to replace it anyway")


def _log_attempt(client: MlflowClient, mv: ModelVersion, previous: str | None, actor: str,
                 bound: Any, digest: str | None,
                 refused_because: Literal["gate", "binding", "concurrent", "data-set"] | None,
                 reasons: list[str], *, move: bool = False,
                 gate_passed: bool | None = None) -> PromotionRecord:
    """Write one promotion-log entry; move the alias when ``move`` (rolled back on error)."""
    name, version = mv.name, str(mv.version)
    outcome: Literal["promoted", "refused"] = "promoted" if move else "refused"
    passed = bool(bound is not None and bound.passed) if gate_passed is None else gate_passed
    experiment_id = _promotions_experiment(client)
    log_run_id: str | None = None
    moved = False
    reason_text = "; ".join(reasons)
    try:
        log_run = client.create_run(experiment_id, run_name=f"{name} v{version} {outcome}", tags={
            _LOG + "model_name": name, _LOG + "version": version, _LOG + "alias": CHAMPION,
            _LOG + "outcome": outcome, _LOG + "gate_passed": str(passed).lower(),
            _LOG + "previous_champion": previous or "", _LOG + "training_run_id": mv.run_id or "",
            _LOG + "report_uri": "", _LOG + "actor": actor,
            _LOG + "refused_because": refused_because or "",
            _LOG + "reasons": reason_text[:_TAG_MAX], _LOG + "gate_digest": digest or "",
        })
        log_run_id = log_run.info.run_id
        if bound is not None:
            client.log_text(log_run_id, bound.model_dump_json(indent=2), "gate_result.json")
            client.log_text(log_run_id, bound.result.to_text(), "gate_result.txt")
        if reasons:
            client.log_text(log_run_id, "\n".join(reasons), "reasons.txt")
        if move:
            client.set_registered_model_alias(name, CHAMPION, version)
            moved = True
        # Written last: the log shows only attempts that completed.
        client.set_terminated(log_run_id, "FINISHED")
    except BaseException as exc:
        _rollback(client, name, version, CHAMPION, previous=previous, moved=moved,
                  log_run_id=log_run_id, error=exc)
        raise
    return _record(client.get_run(log_run_id))


_TAG_MAX = 5000


def _rollback(client: MlflowClient, name: str, version: str, alias: str, *,
              previous: str | None, moved: bool, log_run_id: str | None,
              error: BaseException) -> None:
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
        refused_because=tags.get(_LOG + "refused_because") or None,
        reasons=[r for r in (tags.get(_LOG + "reasons") or "").split("; ") if r],
        gate_digest=tags.get(_LOG + "gate_digest") or None,
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
    downloaded to a temporary directory, which is removed once the model is loaded
    (:func:`load_version_files`).

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
    return load_version_files(f"models:/{name}/{version}", uri,
                              tracking_uri or mlflow.get_registry_uri(),
                              prefix=f"{_UNSAFE.sub('_', name)}-v{version}-"), mv


def load_version_files(model_uri: str, tracking_uri: str, registry_uri: str, *,
                       prefix: str) -> PyFuncModel:
    """Download a registered version's files to a temporary directory, load it, and remove
    the directory: every barberpro pyfunc reads its artifacts into memory at load
    (``load_context``), so nothing needs the files afterwards. (Kept, each load left a full
    copy of the model behind: thousands of directories in a CI machine's ``/tmp``.)"""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        with _global_uris(tracking_uri, registry_uri):
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri, tracking_uri=tracking_uri, dst_path=folder)
        model: PyFuncModel = mlflow.pyfunc.load_model(str(Path(local)))
        return model


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
