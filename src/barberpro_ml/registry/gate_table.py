"""The gate table of every model family, read from the registry: each ``@champion``, whether
it is verified, and the verdict of every check of its bound gate result.

One row per (model, check) with the columns of
:data:`GATE_TABLE_COLUMNS` (what the HTML report, ``barberpro_ml.analytics.report``, renders); a
model with no champion, or whose champion has no readable gate result, has one row with
``check`` missing. Verification is :func:`~barberpro_ml.registry.verify_champion` (the same
test a consuming service runs); the verdicts are those of the gate result bound to the
champion version (:func:`~barberpro_ml.registry.binding.read_bound_gate`), including the
comparison with the champion it replaced (``check`` = ``champion``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from barberpro_ml.registry.binding import (
    TAG_FAMILY,
    current_champion,
    read_bound_gate,
    verify_champion,
)
from barberpro_ml.registry.promotion import LOCK_SUFFIX

__all__ = ["GATE_TABLE_COLUMNS", "MODEL_PREFIX", "REPORTED_MODELS", "champion_gate_table",
           "missing_sqlite_store", "registered_model_names"]

MODEL_PREFIX: Final = "barberpro-"
REPORTED_MODELS: Final = ("barberpro-churn", "barberpro-ltv", "barberpro-recs",
                          "barberpro-segments", "barberpro-forecast")
"""The families with a training job (the jobs' default ``model_name``): always reported,
with "no champion" when they have none."""
GATE_TABLE_COLUMNS: Final = (
    "model_name", "family", "champion_version", "verified", "verification", "check",
    "metric", "claimed", "direction", "observed", "ci_low", "ci_high", "verdict", "blocking",
    "reason",
)
"""The table's columns: what ``barberpro_ml.analytics.report`` renders (the report, a later
stage, declares the same tuple; a test checks they agree)."""


def missing_sqlite_store(tracking_uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI when it does not exist, else None.

    Opening a missing SQLite store would create an empty one (and run MLflow's migrations):
    a report that only reads the registry should say there is none instead.
    """
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    path = Path(tracking_uri[len(prefix):].split("?", 1)[0])
    if not path.is_absolute() and not tracking_uri.startswith("sqlite:////"):
        path = Path.cwd() / path
    return None if path.exists() else path


def registered_model_names(client: MlflowClient, prefix: str = MODEL_PREFIX) -> list[str]:
    """Registered model names starting with ``prefix`` (promotion locks left out), sorted."""
    escaped = prefix.replace("'", "")
    names: list[str] = []
    token: str | None = None
    while True:
        page = client.search_registered_models(filter_string=f"name LIKE '{escaped}%'",
                                               max_results=200, page_token=token)
        names += [m.name for m in page if not m.name.endswith(LOCK_SUFFIX)]
        token = page.token
        if not token:
            break
    return sorted(set(names))


def _is_registered(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def _row(name: str, family: str, champion: str | None, verified: bool, verification: str,
         **check: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(GATE_TABLE_COLUMNS)
    row.update(model_name=name, family=family, champion_version=champion, verified=verified,
               verification=verification, **check)
    return row


def champion_gate_table(*, client: MlflowClient | None = None,
                        tracking_uri: str | None = None,
                        models: Sequence[str] = REPORTED_MODELS,
                        prefix: str = MODEL_PREFIX) -> pd.DataFrame:
    """Every model family's champion, its verification and its gate verdicts.

    Parameters
    ----------
    client, tracking_uri
        Where to read (default: the current tracking and registry store).
    models
        Model names always reported (``no champion`` when unregistered or without one).
    prefix
        Any other registered model whose name starts with it is reported too.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`GATE_TABLE_COLUMNS`: the
        model, its family, ``champion_version`` (None: no champion), ``verified``,
        ``verification`` (why not verified; empty when verified), then per check of the
        bound gate result ``check``, ``metric``, ``claimed``, ``direction``, ``observed``,
        ``ci_low``, ``ci_high``, ``verdict``, ``blocking``, ``reason``. Models in the order
        of ``models``, then the others by name.

    Examples
    --------
    >>> champion_gate_table(tracking_uri="sqlite:///mlflow.db")           # doctest: +SKIP
    """
    client = client or MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    registered = registered_model_names(client, prefix)
    names = list(dict.fromkeys([*models, *registered]))
    rows: list[dict[str, Any]] = []
    for name in names:
        default_family = name[len(prefix):] if name.startswith(prefix) else name
        version = current_champion(name, client)
        if version is None:
            known = name in registered or _is_registered(client, name)
            rows.append(_row(name, default_family, None, False,
                             "no champion" if known else "not registered"))
            continue
        verification = verify_champion(name, client=client)
        problems = "; ".join(verification.problems)
        mv, bound, _digest, read_problems = read_bound_gate(name, version, client)
        family = (bound.binding.family if bound is not None
                  else mv.tags.get(TAG_FAMILY) or default_family)
        if bound is None:
            rows.append(_row(name, family, version, verification.verified,
                             problems or "; ".join(read_problems)))
            continue
        for check in bound.result.table().to_dict("records"):
            if check.get("policy") == "consistent":   # the claimed value must lie in the CI
                check["direction"] = "within"
            rows.append(_row(
                name, family, version, verification.verified, problems,
                **{k: check[k] for k in ("check", "metric", "claimed", "direction",
                                         "observed", "ci_low", "ci_high", "verdict",
                                         "blocking", "reason")}))
    frame = pd.DataFrame(rows, columns=list(GATE_TABLE_COLUMNS))
    for col in ("claimed", "observed", "ci_low", "ci_high"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["verified"] = frame["verified"].astype(bool)
    return frame
