"""The segments job: customer segments whose ids mean the same after a retrain.

Reads top to bottom like the data flow::

    event data -> customer features at the current (and, on a first run, an earlier) cut-off
    -> the segmenter it replaces: the champion, or one fitted at the earlier cut-off
    -> segmenter at the current cut-off, ids matched to the one it replaces
    -> evaluate (id stability on the same customers, silhouette, segment table)
    -> the shared skeleton: register @challenger, gate, promote @champion when it passes

Segments have no label to be accurate against; what a user of segments needs is that a
customer's cluster *means the same thing* after a retrain. So the gate is stability: scored on
the same customers (the current features), the retrained segmenter and the one it replaces (the
champion; on a first run, a segmenter fitted ``refit_days`` earlier) give the same cluster id
to at least the share set in ``configs/claims.yaml``, judged by the lower bound of a bootstrap
interval like every other claim.

Run it with ``barberpro-ml train segments``, ``mlflow run . -e train_segments`` or
``barberpro_ml.jobs.segments.run(load_config())``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from barberpro_ml.data import MarketplaceData
from barberpro_ml.evaluation import check_overlap
from barberpro_ml.evaluation.bootstrap import estimate
from barberpro_ml.evaluation.report import EvaluationReport, MetricEstimate
from barberpro_ml.features import customer_features, feature_catalog
from barberpro_ml.jobs.base import (
    Candidate,
    EvaluationSettings,
    JobContext,
    JobResult,
    ModelCardText,
    TrainingJobConfig,
    as_job_config,
    load_job_config,
    run_training_job,
)
from barberpro_ml.jobs.params import estimator_params
from barberpro_ml.models.segments import (
    NO_VISITS_CLUSTER,
    CustomerSegmenter,
    cluster_agreement,
    rfm_scores,
    segment_profiles,
)
from barberpro_ml.registry import (
    alias_version,
    load_champion,
    log_and_register,
    log_feature_catalogue,
    log_lineage,
    log_report,
)

__all__ = ["SegmentsJobConfig", "load_config", "run"]


class SegmentsJobConfig(TrainingJobConfig):
    """``configs/segments.yaml``: every knob of the segments job."""

    family = "segments"
    job_name = "segments"

    model_name: str = "barberpro-segments"
    experiment: str = "barberpro-segments"
    refit_days: int = Field(30, ge=1, le=3650)
    """Days before the data's end of the earlier fit a first run compares with."""
    model: dict[str, Any] = Field(default_factory=lambda: {
        "method": "kmeans", "k_values": [3, 4, 5, 6, 7, 8], "n_quantiles": 5,
        "max_selection_rows": 20_000, "random_state": 0})
    """:class:`~barberpro_ml.models.segments.CustomerSegmenter` parameters."""
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)

    _check_model = field_validator("model")(estimator_params(CustomerSegmenter))


def load_config(path: str | Path | None = None, **overrides: Any) -> SegmentsJobConfig:
    """The segments job's config: ``path`` (default: the shipped ``segments.yaml``) +
    overrides."""
    return load_job_config(SegmentsJobConfig, path, overrides)


def champion_segmenter(name: str) -> tuple[CustomerSegmenter | None, str | None]:
    """The current champion's segmenter and version, or (None, None)."""
    if alias_version(name) is None:
        return None, None
    model, mv = load_champion(name)
    wrapper = model.unwrap_python_model()  # type: ignore[no-untyped-call]
    segmenter = getattr(wrapper, "estimator", None)
    if not isinstance(segmenter, CustomerSegmenter):
        return None, None
    return segmenter, str(mv.version)


def stability(before: np.ndarray, after: np.ndarray, *, n_bootstrap: int, seed: int
              ) -> MetricEstimate:
    """Share of customers with the same cluster id under both segmenters, with its interval."""
    same = (before == after).astype(np.float64)
    rng = np.random.default_rng(seed)
    # A share's bootstrap: the number of agreeing rows in a resample is Binomial(n, share).
    n = len(same)
    replicates = rng.binomial(n, same.mean(), size=n_bootstrap) / n if n else np.empty(0)
    return estimate("id_stability", float(same.mean()) if n else float("nan"), replicates)


def _step(ctx: JobContext) -> Candidate:
    cfg: SegmentsJobConfig = ctx.config
    data = ctx.data
    n_boot, seed = cfg.evaluation.n_bootstrap, cfg.evaluation.seed
    # -- features at the previous and the current cut-off
    as_of = data.observation_end.normalize()
    previous_cut = as_of - pd.Timedelta(days=cfg.refit_days)
    with ctx.stage("features"):
        X_prev = customer_features(data, previous_cut)
        X_now = customer_features(data, as_of)
    champion, champion_version = champion_segmenter(cfg.model_name)
    replaced_note = ""
    configured = CustomerSegmenter(**cfg.model).get_params()["cluster_features"]
    if champion is not None and tuple(champion.cluster_features) != tuple(configured):
        # clusters over other columns live in another space: nothing to match them to
        replaced_note = (f"the champion v{champion_version} clusters other features "
                         f"({list(champion.cluster_features)}); ids start afresh")
        champion, champion_version = None, None

    log_lineage(features=X_now)
    log_feature_catalogue(feature_catalog())
    mlflow.log_params({"as_of": f"{as_of:%Y-%m-%d}",
                       "previous_cutoff": f"{previous_cut:%Y-%m-%d}",
                       "n_customers": len(X_now),
                       "matched_to_champion": champion_version or "none"})

    # -- the segmenter this retrain replaces (the champion; on a first run, one fitted
    # refit_days earlier), then the retrain, its ids matched to it
    with ctx.stage("fit"):
        before = champion if champion is not None else \
            CustomerSegmenter(**cfg.model).fit(X_prev)
        model = CustomerSegmenter(**cfg.model).fit(X_now, previous=before)
    mlflow.log_params({"n_clusters": model.n_clusters_,
                       "previous_n_clusters": before.n_clusters_})
    mlflow.log_metrics({f"selection_{k}": float(v)
                        for k, v in model.selection_scores_.items()})

    # -- evaluate: the same customers under both segmenters
    with ctx.stage("evaluate"):
        ids_before = before.predict(X_now)
        ids_after = model.predict(X_now)
        visited = ids_after != NO_VISITS_CLUSTER
        stable = stability(ids_before[visited], ids_after[visited], n_bootstrap=n_boot,
                           seed=seed)
        agreement = cluster_agreement(ids_before[visited], ids_after[visited])
        silhouette = float(model.selection_scores_[model.n_clusters_])
        report = EvaluationReport(
            family=cfg.family, kind="segmentation", n=int(visited.sum()),
            metrics={"id_stability": stable,
                     "adjusted_rand": MetricEstimate(
                         name="adjusted_rand", value=agreement["adjusted_rand"],
                         ci_low=agreement["adjusted_rand"],
                         ci_high=agreement["adjusted_rand"]),
                     "silhouette": MetricEstimate(name="silhouette", value=silhouette,
                                                  ci_low=silhouette, ci_high=silhouette)},
            n_bootstrap=n_boot, seed=seed,
            # Scored on the customers it was fitted on, by design: recorded, and the gate's
            # test-overlap row says so instead of passing or failing it.
            overlap=check_overlap(X_now, X_now, ["customer_id"]),
            notes=[f"{model.n_clusters_} clusters chosen by "
                   f"{'silhouette' if model.method == 'kmeans' else 'BIC'} over "
                   f"{list(model.selection_scores_)}; ids matched to "
                   + (f"the champion v{champion_version}" if champion_version else
                      f"a segmenter fitted {cfg.refit_days} days earlier (no champion yet)"),
                   f"{stable.value:.1%} [{stable.ci_low:.1%}, {stable.ci_high:.1%}] of "
                   f"{int(visited.sum()):,} customers keep their cluster id; adjusted "
                   f"Rand {agreement['adjusted_rand']:.3f}",
                   *([replaced_note] if replaced_note else [])])
        scores = rfm_scores(X_now, model.rfm_edges_)
        clusters = pd.Series([model.cluster_names_[i] for i in ids_after],
                             index=X_now.index, name="cluster")
        rfm_table = segment_profiles(X_now, scores["rfm_segment"].astype(str))
        cluster_table = segment_profiles(X_now, clusters)
    log_report(report)
    mlflow.log_metrics({"id_stability": stable.value,
                        "id_stability_ci_low": stable.ci_low,
                        "adjusted_rand": agreement["adjusted_rand"],
                        "silhouette": silhouette})
    mlflow.log_text(rfm_table.reset_index().to_csv(index=False), "segments/rfm.csv")
    mlflow.log_text(cluster_table.reset_index().to_csv(index=False), "segments/clusters.csv")
    mlflow.log_dict({str(k): v for k, v in model.cluster_names_.items()},
                    "segments/cluster_names.json")

    def register(tags: dict[str, str]) -> Any:
        return log_and_register(model, X_now, cfg.model_name, output="predict",
                                output_name="cluster", tags=tags)[1]

    return Candidate(
        register=register, report=report, comparison=None,
        card=ModelCardText(
            description=("Customer segments at the cut-off: RFM scores and named RFM segments "
                         "(quantile edges learned at fit) and behavioural clusters (k-means on "
                         "scaled behaviour features, k by silhouette) whose ids are matched to "
                         "the previous segmenter's so that a cluster keeps its id across "
                         "retrains. `predict` returns the cluster id (-1: no visit yet)."),
            data_window={"cut-off": f"{as_of:%Y-%m-%d}",
                         "previous cut-off": f"{previous_cut:%Y-%m-%d}",
                         "customers": f"{len(X_now):,}",
                         "clusters": ", ".join(f"{k}: {v}" for k, v in
                                               sorted(model.cluster_names_.items()))},
            caveats=report.notes),
        headline=("id_stability", "adjusted_rand", "silhouette"), notes=report.notes[:1])


def run(config: SegmentsJobConfig | str | Path | None = None, *,
        data: MarketplaceData | None = None, data_dir: str | Path | None = None,
        tracking_uri: str | None = None) -> JobResult:
    """Fit, evaluate (id stability), gate, register and promote the customer segmenter.

    ``config``, ``data``, ``data_dir``, ``tracking_uri`` and the result: as
    :func:`~barberpro_ml.jobs.base.run_training_job` (``config`` may also be the path of a
    YAML, or None for the shipped ``segments.yaml``).
    """
    cfg = as_job_config(SegmentsJobConfig, config)
    return run_training_job(cfg, _step, data=data, data_dir=data_dir, tracking_uri=tracking_uri)
