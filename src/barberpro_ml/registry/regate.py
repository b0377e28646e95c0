"""Run a registered version's gate again, against the champion of now.

A gate result is bound to the champion it was compared with; when the champion moves,
:func:`~barberpro_ml.registry.promote` refuses it. :func:`regate` re-reads the version's logged
evaluation report and the held-out rows its job logged (``gate_inputs/``), scores them with the
version and with the current champion, checks the claims file, and records a new bound gate
result -- exactly what the job would have done had the champion been the current one.

Families and what they re-score: ``churn`` and ``ltv`` (tabular pyfunc models: the test rows
with their target), ``recs`` (the training and test interactions and the customers'
neighborhoods). ``segments`` matches its cluster ids to the champion while fitting, so a new
champion means a new fit: :func:`regate` says so instead of comparing ids that were never
matched.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient

from barberpro_ml.errors import InputError
from barberpro_ml.gates import ChampionComparison, check, load_claims
from barberpro_ml.registry.binding import (
    GATE_INPUTS_DIR,
    REPORT_ARTIFACT,
    TAG_FAMILY,
    TARGET_COLUMN,
    BoundGateResult,
    GateBindingError,
    _parse_report,
    _read_text,
    current_champion,
    get_version,
    read_bound_gate,
    record_gate,
)
from barberpro_ml.registry.promotion import champion_comparison, load_version_files

TABULAR_FAMILIES = ("churn", "ltv")


class RegateNotSupportedError(InputError):
    """The family's champion comparison cannot be recomputed from logged inputs."""


def regate(name: str, version: str | int, *, claims_path: str | Path | None = None,
           client: MlflowClient | None = None) -> BoundGateResult:
    """Check ``name`` v``version`` again against the claims file and the current champion.

    Parameters
    ----------
    name, version
        The registered version.
    claims_path
        Claims file; default: the one its last gate ran with.

    Returns
    -------
    BoundGateResult
        Recorded on the version (tags and the source run), ready for
        :func:`~barberpro_ml.registry.promote`.

    Raises
    ------
    VersionNotFoundError
        No such version.
    RegateNotSupportedError
        The family cannot be re-gated from logged inputs (``segments``), or the run predates
        the logging of gate inputs.
    GateBindingError
        The champion moved again while the gate ran.
    """
    client = client or MlflowClient()
    mv = get_version(name, version, client)
    version = str(mv.version)
    _mv, previous, _digest, _problems = read_bound_gate(name, version, client)
    family = mv.tags.get(TAG_FAMILY) or (previous.binding.family if previous else None)
    if family is None:
        raise RegateNotSupportedError(f"{name} v{version} has no {TAG_FAMILY} tag and no earlier "
                                 "gate result: its family is unknown")
    if claims_path is None:
        if previous is None:
            raise RegateNotSupportedError(f"{name} v{version} has no earlier gate result; give the "
                                     "claims file (--claims)")
        claims_path = previous.binding.claims_path
    claims = load_claims(claims_path, family=family)
    text = _read_text(client, mv.run_id, REPORT_ARTIFACT)
    report = None if text is None else _parse_report(text)
    if report is None:
        raise RegateNotSupportedError(f"the source run {mv.run_id} of {name} v{version} has no "
                                 f"readable {REPORT_ARTIFACT}")
    champion = current_champion(name, client)
    comparison = None
    if (champion is not None and champion != version
            and family in claims.settings.non_inferiority):
        comparison = _comparison(family, name, version, mv.run_id, client,
                                 n_bootstrap=max(report.n_bootstrap, 1000),
                                 seed=report.seed or 0)
    result = check(report, claims, comparison)
    return record_gate(name, version, result, claims, champion_version=champion, client=client)


def _comparison(family: str, name: str, version: str, run_id: str, client: MlflowClient, *,
                n_bootstrap: int, seed: int) -> ChampionComparison | None:
    if family == "segments":
        raise RegateNotSupportedError(
            "segments match their cluster ids to the champion while fitting, so a new champion "
            "needs a new fit: run `barberpro-ml train segments`")
    with tempfile.TemporaryDirectory(prefix="gate-inputs-") as folder:
        inputs = _download_inputs(client, run_id, folder)
        return _compare_on(family, inputs, name, version, n_bootstrap=n_bootstrap, seed=seed)


def _compare_on(family: str, inputs: Path, name: str, version: str, *, n_bootstrap: int,
                seed: int) -> ChampionComparison | None:
    if family in TABULAR_FAMILIES:
        test = _frame(inputs, "test", name, version)
        y = test.pop(TARGET_COLUMN)
        model = _load_version(name, version)
        python_model = model.unwrap_python_model()
        spec = getattr(python_model, "spec", None)
        request = spec.features.to_request(test) if spec is not None else test
        scores = model.predict(request)
        return champion_comparison(name, test, y, scores, n_bootstrap=n_bootstrap, seed=seed)
    if family == "recs":
        from barberpro_ml.evaluation import evaluate_recommender
        from barberpro_ml.registry.recs_model import recs_champion_comparison

        train = _frame(inputs, "recs_train", name, version)
        test = _frame(inputs, "recs_test", name, version)
        groups = _frame(inputs, "recs_user_groups", name, version).iloc[:, 0]
        recommender = _load_version(name, version).unwrap_python_model()
        report = evaluate_recommender(recommender.recommender, train, test, k=10, n_bootstrap=0,
                                      baseline=None, user_groups=groups, keep_replicates=False)
        assert report.per_user is not None
        return recs_champion_comparison(name, train, test, report.per_user["ndcg@10"],
                                        user_groups=groups, n_bootstrap=n_bootstrap, seed=seed)
    raise RegateNotSupportedError(f"no re-gating for family {family!r}")


def _download_inputs(client: MlflowClient, run_id: str, folder: str) -> Path:
    try:
        local = client.download_artifacts(run_id, GATE_INPUTS_DIR, folder)
    except Exception as exc:  # MLflow raises several types for a missing artifact
        raise RegateNotSupportedError(f"run {run_id} logged no {GATE_INPUTS_DIR}/ (made before "
                                 f"gates could be re-run?): {exc}") from None
    return Path(local)


def _frame(inputs: Path, stem: str, name: str, version: str) -> pd.DataFrame:
    path = inputs / f"{stem}.parquet"
    if not path.is_file():
        raise RegateNotSupportedError(f"{name} v{version}: {GATE_INPUTS_DIR}/{stem}.parquet is "
                                 "missing from its source run")
    return pd.read_parquet(path)


def _load_version(name: str, version: str) -> Any:
    return load_version_files(f"models:/{name}/{version}", mlflow.get_tracking_uri(),
                              mlflow.get_registry_uri(), prefix="regate-")


__all__ = ["GateBindingError", "RegateNotSupportedError", "regate"]
