"""Every champion checked at a date: logged to one MLflow run and tagged on its version.

``monitor_champions(data, as_of)`` (``barberpro-ml monitor --as-of DATE``), for each family
(:data:`MONITORED_FAMILIES`: churn, LTV, recommendations and the weekly forecast; the
recommender's form of steps 2-3 is :mod:`barberpro_ml.monitoring.recs`, the forecast's
:mod:`barberpro_ml.monitoring.forecast`):

1. the verified ``@champion`` is loaded (:func:`~barberpro_ml.scoring.load_family`; a missing
   or unverified champion is reported and skipped);
2. its source run gives the training snapshot (``train_cutoffs``: the last one is the drift
   reference; the first and ``test_cutoff`` bound the trend, see
   :class:`~barberpro_ml.monitoring.DriftRow`) and its bound gate result the figures to
   compare with (every unsliced claim's metric, value and test CI);
3. :func:`~barberpro_ml.monitoring.check_model` judges it;
4. the run (experiment ``barberpro-monitoring``) gets per family: metrics (``<family>.<metric>``,
   ``<family>.<metric>_p_holm``, for the recommender ``<family>.<metric>_minus_refit`` and
   ``_refit_p_holm``, ``<family>.score_psi``, ``<family>.inputs_drifted``,
   ``<family>.verdict_code``), the full result as ``<family>/health.json``, the drift table as
   ``<family>/drift.csv`` and ``<family>/drift.html``, and a bar chart of the largest drifts as
   ``<family>/drift.png``; the version gets the tags ``monitor.verdict``, ``monitor.as_of``,
   ``monitor.run_id`` and ``monitor.reasons``.

Exit codes for schedulers (:data:`EXIT_CODES`): 0 every monitored champion ok, 5 at least one
drifted (none degraded), 6 at least one degraded; the library's own codes otherwise (2 bad
input, 4 no champion to monitor at all).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

import mlflow
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from pydantic import BaseModel, ConfigDict

from barberpro_ml.data import MarketplaceData
from barberpro_ml.data.cutoff import to_as_of
from barberpro_ml.definitions import DEFAULT_DEFINITIONS
from barberpro_ml.errors import InputError, ModelUnavailableError
from barberpro_ml.monitoring.checks import (
    MONITORED,
    GateFigure,
    ModelHealth,
    MonitorSettings,
    Verdict,
    check_model,
)
from barberpro_ml.monitoring.forecast import check_forecast
from barberpro_ml.monitoring.recs import check_recommender
from barberpro_ml.registry import alias_version, read_bound_gate
from barberpro_ml.registry.tracking import configure_tracking, metric_key
from barberpro_ml.scoring import DEFAULT_MODEL_NAMES, load_family

__all__ = [
    "EXIT_CODES",
    "MONITORED_FAMILIES",
    "MONITOR_EXPERIMENT",
    "TAG_AS_OF",
    "TAG_REASONS",
    "TAG_RUN",
    "TAG_VERDICT",
    "ChampionCheck",
    "MonitorResult",
    "gate_figures",
    "monitor_champions",
    "plot_drift",
    "recs_gate_figures",
]

MONITOR_EXPERIMENT = "barberpro-monitoring"
TAG_VERDICT = "monitor.verdict"
TAG_AS_OF = "monitor.as_of"
TAG_RUN = "monitor.run_id"
TAG_REASONS = "monitor.reasons"
MONITORED_FAMILIES: tuple[str, ...] = (*MONITORED, "recs", "forecast")
"""Every family ``monitor`` checks: the tabular ones (:data:`MONITORED`) by
:func:`~barberpro_ml.monitoring.check_model`, recommendations by
:func:`~barberpro_ml.monitoring.check_recommender`, the weekly forecast by
:func:`~barberpro_ml.monitoring.forecast.check_forecast`. Not monitored: segments (no label
matures), uplift (a label matures only with the next randomised campaign), pricing and
provider departure (a few dozen events a year: nothing to test at one date)."""
MONITORED_MODEL_NAMES: dict[str, str] = {**DEFAULT_MODEL_NAMES,
                                         "forecast": "barberpro-forecast"}
"""The registered model monitored per family by default."""
EXIT_CODES: dict[Verdict, int] = {"ok": 0, "drifted": 5, "degraded": 6}
"""Exit status of ``barberpro-ml monitor`` by the worst verdict."""
_SEVERITY: dict[Verdict, int] = {"ok": 0, "drifted": 1, "degraded": 2}
_MAX_TAG = 1000


class ChampionCheck(BaseModel):
    """One family's outcome: its health, or why it was not monitored."""

    model_config = ConfigDict(frozen=True)
    family: str
    model_name: str
    version: str | None
    health: ModelHealth | None = None
    skipped: str | None = None


class MonitorResult(BaseModel):
    """Every family's outcome at ``as_of`` and the MLflow run that recorded them."""

    model_config = ConfigDict(frozen=True)
    as_of: str
    run_id: str
    checks: list[ChampionCheck]

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of the monitored champions (``degraded`` > ``drifted`` > ``ok``)."""
        verdicts = [c.health.verdict for c in self.checks if c.health is not None]
        return max(verdicts, key=lambda v: _SEVERITY[v]) if verdicts else "ok"

    @property
    def exit_code(self) -> int:
        """:data:`EXIT_CODES` of :attr:`verdict`."""
        return EXIT_CODES[self.verdict]


def gate_figures(name: str, version: str, client: MlflowClient) -> list[GateFigure]:
    """The gate's figures bound to ``name`` v``version``: one per unsliced claim whose
    verdict carries a value and an interval (empty when there is no usable bound result)."""
    _, bound, _, problems = read_bound_gate(name, version, client)
    if bound is None or problems:
        return []
    figures: list[GateFigure] = []
    for c in bound.result.claims:
        if (c.slice is not None or c.observed is None or c.ci_low is None
                or c.ci_high is None or c.direction not in ("at_least", "at_most")):
            continue
        figures.append(GateFigure(metric=c.metric, direction=c.direction, value=c.observed,
                                  ci_low=c.ci_low, ci_high=c.ci_high,
                                  confidence=c.confidence or 0.95, claim_id=c.claim_id))
    return figures


def plot_drift(health: ModelHealth, k: int = 15) -> Figure:
    """Bar chart of the ``k`` largest PSIs (the score first): red drifted, grey trending or
    explained by the marketplace's own actions."""
    rows = [health.score, *health.features][: k + 1]
    fig = Figure(figsize=(7.5, 0.32 * len(rows) + 1.4))
    ax = fig.add_subplot()
    labels = [r.column + (" (trending)" if r.trending else
                          " (explained)" if r.drifted and r.explained_by else "")
              for r in rows][::-1]
    values = [r.psi for r in rows][::-1]
    colours = ["#9e9e9e" if r.trending or (r.drifted and r.explained_by) else
               "#d62728" if r.drifted else "#1f77b4" for r in rows][::-1]
    ax.barh(labels, values, color=colours)
    ax.axvline(health.settings.psi_threshold, color="black", lw=0.8, ls="--")
    ax.set_xlabel(f"PSI, training snapshot {health.reference_as_of} vs {health.as_of}")
    ax.set_title(f"{health.model_name or health.family} v{health.version or '-'}: "
                 f"{health.verdict}", fontsize=10)
    fig.tight_layout()
    return fig


def _drift_html(health: ModelHealth) -> str:
    frame = health.drift_frame()
    perf = pd.DataFrame([{
        "metric": m.metric, "predicted_at": m.predicted_at, "n": m.n, "matured": m.value,
        "ci_low": m.ci_low, "ci_high": m.ci_high,
        "gate": m.gate.value if m.gate else None, "margin": m.margin, "p_holm": m.p_holm,
        "minus_refit": m.refit_difference, "refit_p_holm": m.refit_p_holm,
        "degraded": m.degraded} for m in health.performance])
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in health.reasons) or "<li>none</li>"
    return (f"<html><body><h1>{html.escape(health.model_name or health.family)} "
            f"v{html.escape(health.version or '-')}: {health.verdict}</h1>"
            f"<p>as of {health.as_of}; training snapshot {health.reference_as_of}</p>"
            f"<ul>{reasons}</ul><h2>Matured-label performance</h2>"
            f"<p>{html.escape(health.performance_note)}</p>"
            + perf.to_html(index=False, float_format=lambda v: f"{v:.4f}")
            + "<h2>Drift</h2>"
            + frame.to_html(index=False, float_format=lambda v: f"{v:.4g}")
            + "</body></html>")


def _log_health(prefix: str, health: ModelHealth) -> None:
    metrics: dict[str, float] = {
        f"{prefix}.score_psi": health.score.psi,
        f"{prefix}.inputs_drifted": float(sum(r.counts for r in health.features)),
        f"{prefix}.inputs_explained": float(sum(r.drifted and not r.trending
                                                and bool(r.explained_by)
                                                for r in health.features)),
        f"{prefix}.inputs_trending": float(sum(r.trending for r in health.features)),
        f"{prefix}.verdict_code": float(EXIT_CODES[health.verdict]),
    }
    for m in health.performance:
        key = metric_key(prefix, m.metric)  # "recs.ndcg_10": MLflow refuses "@"
        metrics[key] = m.value
        metrics[f"{key}_ci_low"] = m.ci_low
        metrics[f"{key}_ci_high"] = m.ci_high
        if m.p_holm is not None:
            metrics[f"{key}_p_holm"] = m.p_holm
        if m.refit_difference is not None and m.refit_p_holm is not None:
            metrics[f"{key}_minus_refit"] = m.refit_difference
            metrics[f"{key}_refit_p_holm"] = m.refit_p_holm
    mlflow.log_metrics(metrics)
    mlflow.set_tag(f"{prefix}.verdict", health.verdict)
    mlflow.log_text(health.model_dump_json(indent=2), f"{prefix}/health.json")
    mlflow.log_text(health.drift_frame().to_csv(index=False), f"{prefix}/drift.csv")
    mlflow.log_text(_drift_html(health), f"{prefix}/drift.html")
    mlflow.log_figure(plot_drift(health), f"{prefix}/drift.png")


def _cutoffs(params: dict[str, str], name: str, version: str
             ) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp | None]:
    """(first training cut-off, last training cut-off, test cut-off) from the run's params."""
    raw = params.get("train_cutoffs")
    if not raw:
        raise InputError(f"{name} v{version}: its run has no train_cutoffs parameter, so its "
                         "training snapshot is unknown (was it trained by a barberpro-ml job?)")
    cuts = sorted(to_as_of(c.strip(), "train_cutoffs") for c in raw.split(",") if c.strip())
    test = params.get("test_cutoff")
    return cuts[0], cuts[-1], to_as_of(test, "test_cutoff") if test else None


def _check_family(family: str, name: str, data: MarketplaceData, as_of: pd.Timestamp,
                  uri: str, client: MlflowClient, settings: MonitorSettings
                  ) -> ChampionCheck:
    if alias_version(name, client=client) is None:
        return ChampionCheck(family=family, model_name=name, version=None,
                             skipped=f"no {name}@champion")
    try:
        loaded = load_family(family, name, tracking_uri=uri)
    except ModelUnavailableError as exc:
        return ChampionCheck(family=family, model_name=name,
                             version=getattr(exc, "version", None), skipped=str(exc))
    version = loaded.ref.version
    wrapper: Any = loaded.model
    if loaded.ref.run_id is None:
        return ChampionCheck(family=family, model_name=name, version=version,
                             skipped=f"{name} v{version} has no source run to read its "
                                     "training snapshot from")
    params = client.get_run(loaded.ref.run_id).data.params
    if family == "recs":
        return _check_recs(wrapper, name, version, params, data, as_of, client, settings)
    if family == "forecast":
        try:
            health = check_forecast(wrapper.forecast, data, as_of,
                                    gates=gate_figures(name, version, client), settings=settings,
                                    model_name=name, version=version)
        except InputError as exc:  # too early for this family only: the others are monitored
            return ChampionCheck(family=family, model_name=name, version=version,
                                 skipped=str(exc))
        return ChampionCheck(family=family, model_name=name, version=version, health=health)
    try:
        first, last, test = _cutoffs(params, name, version)
    except InputError as exc:  # the other families are still monitored
        return ChampionCheck(family=family, model_name=name, version=version, skipped=str(exc))
    health = check_model(
        lambda X: wrapper.predict(None, X), family, data, as_of, reference_as_of=last,
        definitions=loaded.definitions or DEFAULT_DEFINITIONS,
        input_columns=[c.name for c in wrapper.spec.features.columns],
        gates=gate_figures(name, version, client), trend_from=first, trend_to=test,
        settings=settings, model_name=name, version=version)
    return ChampionCheck(family=family, model_name=name, version=version, health=health)


def _check_recs(wrapper: Any, name: str, version: str, params: dict[str, str],
                data: MarketplaceData, as_of: pd.Timestamp, client: MlflowClient,
                settings: MonitorSettings) -> ChampionCheck:
    test = params.get("test_cutoff")
    if not test:
        return ChampionCheck(family="recs", model_name=name, version=version,
                             skipped=f"{name} v{version}: its run has no test_cutoff parameter "
                                     "(was it trained by `barberpro-ml train recs`?)")
    horizon = int(params.get("horizon_days", "90"))
    run_id = client.get_model_version(name, version).run_id
    gates = recs_gate_figures(gate_figures(name, version, client),
                              client.get_run(run_id).data.metrics if run_id else {})
    try:
        health = check_recommender(
            wrapper.recommender, data, as_of, reference_as_of=test, horizon_days=horizon,
            gates=gates, settings=settings, model_name=name, version=version)
    except InputError as exc:  # too early for this family only: the others are monitored
        return ChampionCheck(family="recs", model_name=name, version=version, skipped=str(exc))
    return ChampionCheck(family="recs", model_name=name, version=version, health=health)


RECS_MAIN_METRICS = ("ndcg@10", "recall@10")
"""The recommender's own test metrics the monitor falls back on (see :func:`recs_gate_figures`)."""


def recs_gate_figures(figures: list[GateFigure], run_metrics: dict[str, float]
                      ) -> list[GateFigure]:
    """The gate figures a recommender's monitor can re-measure: the bound claims' own ranking
    metrics, or, when every claim is a difference with a baseline model (the shipped claims:
    NDCG@10 minus popularity's), the version's test NDCG@10 and recall@10 with their bootstrap
    intervals as its run logged them (``ndcg_10``, ``ndcg_10_ci_low``, ...) -- the figures the
    gate's differences were computed from.

    Examples
    --------
    >>> logged = {"ndcg_10": 0.4, "ndcg_10_ci_low": 0.38, "ndcg_10_ci_high": 0.42}
    >>> [(f.metric, f.value) for f in recs_gate_figures([], logged)]
    [('ndcg@10', 0.4)]
    """
    direct = [f for f in figures if "minus" not in f.metric]
    if direct:
        return direct
    out = []
    for metric in RECS_MAIN_METRICS:
        key = metric_key(metric)
        try:
            value, low, high = (run_metrics[key], run_metrics[f"{key}_ci_low"],
                                run_metrics[f"{key}_ci_high"])
        except KeyError:
            continue
        out.append(GateFigure(metric=metric, value=value, ci_low=low, ci_high=high))
    return out


def monitor_champions(data: MarketplaceData, as_of: object, *,
                      families: Sequence[str] | None = None,
                      names: dict[str, str] | None = None, tracking_uri: str | None = None,
                      settings: MonitorSettings | None = None, tag_versions: bool = True
                      ) -> MonitorResult:
    """Check every family's champion at ``as_of``, log one run and tag each version.

    Parameters
    ----------
    data
        The event data, reaching ``as_of``.
    as_of
        The monitoring date (naive UTC).
    families
        Families to monitor (default: every one in :data:`MONITORED_FAMILIES`).
    names
        Registered model name per family (default: ``barberpro-<family>``).
    tracking_uri
        The tracking and registry store (default: as :func:`configure_tracking`).
    settings
        The statistical rule (default: :class:`MonitorSettings`).
    tag_versions
        Set the ``monitor.*`` tags on each monitored version.

    Returns
    -------
    MonitorResult
        Per family the health or why it was skipped; ``exit_code`` for schedulers.

    Raises
    ------
    InputError
        An unknown family, a bad ``as_of`` (after the data, before a training snapshot).
    ModelUnavailableError
        No family had a verified champion to monitor.

    Examples
    --------
    >>> result = monitor_champions(data, "2025-03-31")              # doctest: +SKIP
    >>> result.verdict, result.exit_code                             # doctest: +SKIP
    ('ok', 0)
    """
    settings = settings or MonitorSettings()
    chosen = list(families) if families else list(MONITORED_FAMILIES)
    unknown = [f for f in chosen if f not in MONITORED_FAMILIES]
    if unknown:
        raise InputError(f"--families: {unknown} cannot be monitored; choose among "
                         f"{sorted(MONITORED_FAMILIES)}")
    stamp = to_as_of(as_of, "as_of")
    if stamp > data.observation_end:
        raise InputError(f"--as-of {stamp:%Y-%m-%d} is after the data's last event "
                         f"({data.observation_end:%Y-%m-%d}); labels cannot have matured")
    uri = configure_tracking(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    models = {f: (names or {}).get(f) or MONITORED_MODEL_NAMES[f] for f in chosen}
    checks = [_check_family(f, models[f], data, stamp, uri, client, settings) for f in chosen]
    if not any(c.health is not None for c in checks):
        raise ModelUnavailableError("no champion to monitor: " + "; ".join(
            f"{c.family}: {c.skipped}" for c in checks))
    mlflow.set_experiment(MONITOR_EXPERIMENT)
    with mlflow.start_run(run_name=f"monitor {stamp:%Y-%m-%d}") as run:
        mlflow.log_params({"as_of": f"{stamp:%Y-%m-%d}", "families": ",".join(chosen),
                           **{f"settings.{k}": v for k, v in settings.model_dump().items()
                              if k != "margins"},
                           **{metric_key("settings.margin", k): v  # "ndcg_10": no "@"
                              for k, v in settings.margins.items()}})
        summary: list[dict[str, Any]] = []
        for c in checks:
            row = {"family": c.family, "model": c.model_name, "version": c.version,
                   "verdict": c.health.verdict if c.health else None,
                   "skipped": c.skipped,
                   "reasons": c.health.reasons if c.health else []}
            summary.append(row)
            if c.health is not None:
                _log_health(c.family, c.health)
        result = MonitorResult(as_of=f"{stamp:%Y-%m-%d}", run_id=run.info.run_id, checks=checks)
        mlflow.set_tag("monitor.verdict", result.verdict)
        mlflow.log_metric("exit_code", result.exit_code)
        mlflow.log_text(json.dumps(summary, indent=2), "summary.json")
    if tag_versions:
        for c in checks:
            if c.health is None or c.version is None:
                continue
            for key, value in ((TAG_VERDICT, c.health.verdict), (TAG_AS_OF, result.as_of),
                               (TAG_RUN, result.run_id),
                               (TAG_REASONS, "; ".join(c.health.reasons)[:_MAX_TAG] or "none")):
                client.set_model_version_tag(c.model_name, c.version, key, value)
    return result
