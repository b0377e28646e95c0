"""The recommendations job: barbers to recommend, chosen on validation, judged out of time.

Reads top to bottom like the data flow::

    event data -> out-of-time booking interactions (item = provider) -> fit the candidates
    -> choose one on validation (an earlier cut-off) -> refit up to the test cut-off
    -> evaluate by full ranking (bootstrap CIs over customers) beside popularity within the
    customer's neighborhood (the gate's baseline) and global popularity
    -> the shared skeleton: register @challenger, gate, promote @champion when it passes

Run it with ``barberpro-ml train recs``, ``mlflow run . -e train_recs`` or
``barberpro_ml.jobs.recs.run(load_config())``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import mlflow
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sklearn.base import clone

from barberpro_ml.data import MarketplaceData
from barberpro_ml.errors import ConfigError, NotEnoughDataError
from barberpro_ml.evaluation.ranking import (
    RankingReport,
    evaluate_recommender,
    paired_ranking_difference,
    select_on_validation,
)
from barberpro_ml.jobs.base import (
    Candidate as JobCandidate,
)
from barberpro_ml.jobs.base import (
    EvaluationSettings,
    JobContext,
    JobResult,
    ModelCardText,
    TrainingJobConfig,
    as_job_config,
    load_job_config,
    run_training_job,
)
from barberpro_ml.models import recs
from barberpro_ml.models.recs import (
    BaseRecommender,
    PopularityRecommender,
    booking_interactions_split,
    customer_neighborhoods,
    implicit_available,
)
from barberpro_ml.models.recs._tuning import SelfTuningRecommender
from barberpro_ml.registry import (
    log_and_register_recommender,
    log_lineage,
    log_report,
    recs_champion_comparison,
)
from barberpro_ml.registry.tracking import metric_key

__all__ = ["RecsJobConfig", "load_config", "run"]

FACTORIZATION = {"ALSRecommender", "BPRRecommender"}


class Search(BaseModel):
    """A parameter searched on validation, and the values tried."""

    model_config = ConfigDict(extra="forbid")
    param: str
    values: list[Any] = Field(min_length=1)


class Candidate(BaseModel):
    """One candidate recommender: a class of :mod:`barberpro_ml.models.recs` and parameters."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    class_name: str = Field(alias="class")
    params: dict[str, Any] = Field(default_factory=dict)
    search: Search | None = None

    @field_validator("class_name")
    @classmethod
    def _known_class(cls, name: str) -> str:
        found = getattr(recs, name, None)
        if not (isinstance(found, type) and issubclass(found, BaseRecommender)):
            known = sorted(n for n in dir(recs) if isinstance(getattr(recs, n), type)
                           and issubclass(getattr(recs, n), BaseRecommender)
                           and n != "BaseRecommender")
            raise ValueError(f"{name!r} is not a recommender; known: {', '.join(known)}")
        return name


def _default_candidates() -> dict[str, Candidate]:
    return {
        "neighborhood_popularity": Candidate.model_validate(
            {"class": "PopularityRecommender", "params": {"by_group": True}}),
        # no params: the self-tuning defaults choose l2 / neighbours, shrink, similarity /
        # factors, regularization on held-out interactions at every fit
        "item_knn": Candidate.model_validate({"class": "ItemKNNRecommender", "params": {}}),
        "ease": Candidate.model_validate({"class": "EASERecommender", "params": {}}),
        "als": Candidate.model_validate(
            {"class": "ALSRecommender", "params": {"iterations": 15, "random_state": 0,
                                                   "n_threads": 1}}),
    }


class RecsJobConfig(TrainingJobConfig):
    """``configs/recs.yaml``: every knob of the recommendations job."""

    family = "recs"
    job_name = "recs"

    model_name: str = "barberpro-recs"
    experiment: str = "barberpro-recs"
    item: Literal["provider"] = "provider"
    """What is recommended (barbers)."""
    horizon_days: int = Field(90, ge=1, le=3650)
    """Test period: bookings made after the cut-off and completed within this many days."""
    k: list[int] = Field(default_factory=lambda: [5, 10, 20], min_length=1)
    """Cut-offs of the ranking metrics."""
    select_metric: str = Field("ndcg@10", pattern=r"^(ndcg|recall|hit|mrr)@[0-9]+$")
    """The validation metric that chooses the candidate."""
    candidates: dict[str, Candidate] = Field(default_factory=lambda: _default_candidates(),
                                             min_length=1)
    """Candidate recommenders, chosen among on validation by ``select_metric``."""
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    report_candidates: bool = True
    """Also evaluate every candidate on the test period, for the record."""

    @model_validator(mode="after")
    def _gated_metric(self) -> RecsJobConfig:
        if not self.select_metric.startswith("ndcg@") or 10 not in self.k:
            raise ValueError("the gate is on ndcg@10: keep 10 in k and select on ndcg@<k>")
        return self

    @field_validator("k")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks):
            raise ValueError(f"every k must be at least 1, got {ks}")
        return ks


def load_config(path: str | Path | None = None, **overrides: Any) -> RecsJobConfig:
    """The recs job's config: ``path`` (default: the shipped ``recs.yaml``) + overrides."""
    return load_job_config(RecsJobConfig, path, overrides)


def build(candidate: Candidate) -> BaseRecommender:
    cls = getattr(recs, candidate.class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseRecommender)):
        raise ConfigError(f"candidate class {candidate.class_name!r} is not a recommender of "
                         f"barberpro_ml.models.recs")
    model: BaseRecommender = cls(**candidate.params)
    return model


def select(cfg: RecsJobConfig, train: pd.DataFrame, valid: pd.DataFrame, groups: pd.Series,
           notes: list[str]) -> tuple[str, dict[str, BaseRecommender], pd.DataFrame]:
    """Every candidate (and its searched parameter) on validation; the best by select_metric.

    Returns the best candidate's name, every candidate with its chosen parameter (unfitted),
    and the validation table.
    """
    cut = int(cfg.select_metric.rsplit("@", 1)[1])
    rows: list[dict[str, Any]] = []
    best: tuple[float, str] | None = None
    chosen_models: dict[str, BaseRecommender] = {}
    for name, cand in cfg.candidates.items():
        if cand.class_name in FACTORIZATION and not implicit_available():
            notes.append(f"candidate {name} ({cand.class_name}) skipped: the `implicit` "
                         "package is not installed")
            continue
        model = build(cand)
        if cand.search is not None:
            search = select_on_validation(model, train, valid, cand.search.param,
                                          cand.search.values, metric=cfg.select_metric,
                                          user_groups=groups)
            for row in search.table.to_dict("records"):
                rows.append({"candidate": name, "param": cand.search.param,
                             "value": str(row[cand.search.param]),
                             cfg.select_metric: row[cfg.select_metric]})
            chosen = clone(model).set_params(**{cand.search.param: search.best_value})
            score = float(search.table[cfg.select_metric].max())
        else:
            chosen = model
            fitted = clone(model).fit(train, user_groups=groups)
            score = evaluate_recommender(fitted, train, valid, k=cut, n_bootstrap=0,
                                         baseline=None, user_groups=groups,
                                         keep_replicates=False).metric(cfg.select_metric).value
            rows.append({"candidate": name, "param": "", "value": "",
                         cfg.select_metric: score})
        chosen_models[name] = chosen
        if best is None or score > best[0]:
            best = (score, name)
    if best is None:
        raise NotEnoughDataError("no candidate could be fitted (see the notes)")
    baseline = PopularityRecommender(by_group=True).fit(train, user_groups=groups)
    base = evaluate_recommender(baseline, train, valid, k=cut, n_bootstrap=0, baseline=None,
                                user_groups=groups, keep_replicates=False)
    rows.append({"candidate": "neighborhood_popularity (baseline)", "param": "", "value": "",
                 cfg.select_metric: base.metric(cfg.select_metric).value})
    return best[1], chosen_models, pd.DataFrame(rows)


def with_gate_metrics(report: RankingReport, global_report: RankingReport,
                      n_bootstrap: int, seed: int) -> RankingReport:
    """Add the paired differences the claims file gates on to the report's metrics.

    ``<metric>_minus_baseline`` (vs popularity within the neighborhood, the report's baseline)
    and ``<metric>_minus_global_popularity``, each a paired bootstrap over the same customers
    with its replicates, so ``gates.check`` can test "difference >= 0" like any other claim.
    """
    assert report.per_user is not None and global_report.per_user is not None
    added: dict[str, Any] = {}
    for name, diff in report.differences.items():
        if name.startswith(("ndcg@", "recall@", "hit@")):
            added[f"{name}_minus_baseline"] = diff.model_copy(
                update={"name": f"{name}_minus_baseline"})
            if name in global_report.per_user.columns:
                added[f"{name}_minus_global_popularity"] = paired_ranking_difference(
                    report.per_user[name], global_report.per_user[name], n_bootstrap, seed,
                    confidence=report.confidence, name=f"{name}_minus_global_popularity")
    return report.model_copy(update={"metrics": {**report.metrics, **added}})


def candidates_on_test(candidates: dict[str, BaseRecommender], chosen_name: str,
                       chosen: BaseRecommender, train: pd.DataFrame, test: pd.DataFrame,
                       groups: pd.Series, baseline: BaseRecommender, n_bootstrap: int,
                       seed: int) -> pd.DataFrame:
    """Every candidate on the test period beside the baseline, for the record (not to choose:
    the choice was made on validation). One row per candidate and metric @10."""
    rows = []
    for name, candidate in candidates.items():
        fitted = chosen if name == chosen_name else clone(candidate).fit(train,
                                                                         user_groups=groups)
        rep = evaluate_recommender(fitted, train, test, k=10, n_bootstrap=n_bootstrap,
                                   seed=seed, baseline=baseline, user_groups=groups,
                                   keep_replicates=False)
        for metric in ("ndcg@10", "recall@10", "hit@10", "mrr@10"):
            est, base, diff = rep.metrics[metric], rep.baselines[metric], \
                rep.differences[metric]
            rows.append({"candidate": name, "chosen": name == chosen_name,
                         "class": type(fitted).__name__, "metric": metric,
                         "value": est.value, "ci_low": est.ci_low, "ci_high": est.ci_high,
                         "baseline": base.value, "difference": diff.value,
                         "difference_ci_low": diff.ci_low, "difference_ci_high": diff.ci_high})
    return pd.DataFrame(rows)


def _step(ctx: JobContext) -> JobCandidate:
    cfg: RecsJobConfig = ctx.config
    data = ctx.data
    n_boot, seed = cfg.evaluation.n_bootstrap, cfg.evaluation.seed
    ks = sorted(set(cfg.k))

    # -- out-of-time interactions: validation one horizon before the test cut-off
    horizon = pd.Timedelta(days=cfg.horizon_days)
    test_cut = (data.observation_end - horizon).normalize()
    valid_cut = test_cut - horizon
    item: Any = cfg.item
    groups = customer_neighborhoods(data)
    train_v, valid = booking_interactions_split(data, valid_cut, cfg.horizon_days, item=item)
    train, test = booking_interactions_split(data, test_cut, cfg.horizon_days, item=item)
    empty = [name for name, frame in (("training before the validation cut-off", train_v),
                                      ("validation", valid), ("test", test)) if frame.empty]
    if empty:
        start, end = data.bookings["scheduled_at"].min(), data.observation_end
        raise NotEnoughDataError(
            f"{(end - start).days} days of data ({start:%Y-%m-%d} to {end:%Y-%m-%d}): the "
            f"recommendations layout (validation cut-off {valid_cut:%Y-%m-%d}, test cut-off "
            f"{test_cut:%Y-%m-%d}, {cfg.horizon_days}-day periods) leaves no completed booking "
            f"in: {', '.join(empty)}; it needs more than {2 * cfg.horizon_days} days of "
            "bookings, or a shorter horizon_days")
    n_items = train["item_id"].nunique()
    if n_items < 2:
        raise NotEnoughDataError(
            f"{n_items} {cfg.item} with completed bookings before the test cut-off "
            f"{test_cut:%Y-%m-%d}: nothing to choose between, so nothing to recommend (a "
            "transaction log imported without a provider column has one placeholder "
            "provider)")
    notes: list[str] = []

    log_lineage(features=train)
    mlflow.log_params({"validation_cutoff": f"{valid_cut:%Y-%m-%d}",
                       "test_cutoff": f"{test_cut:%Y-%m-%d}",
                       "n_train_interactions": len(train), "n_test_interactions": len(test),
                       "n_validation_interactions": len(valid)})

    # -- choose on validation, refit up to the test cut-off
    with ctx.stage("select"):
        chosen_name, candidates, table = select(cfg, train_v, valid, groups, notes)
    chosen = candidates[chosen_name]
    mlflow.log_text(table.to_csv(index=False), "evaluation/validation.csv")
    mlflow.log_params({"chosen_candidate": chosen_name,
                       "chosen_class": type(chosen).__name__,
                       **{f"chosen.{k}": v for k, v in chosen.get_params().items()}})
    with ctx.stage("fit"):
        model = clone(chosen).fit(train, user_groups=groups)
        neighborhood = PopularityRecommender(by_group=True).fit(train, user_groups=groups)
        # No groups at all: cold customers get the global ranking too.
        global_pop = PopularityRecommender().fit(train)
    if isinstance(model, SelfTuningRecommender):
        # what the model chose on its own held-out slice of the training bookings
        mlflow.log_params({f"tuned.{k}": v for k, v in model.chosen_params_.items()})
        mlflow.log_text(model.search_scores_.to_csv(index=False), "evaluation/self_tuning.csv")
        notes.append(f"{chosen_name}: {model.search_note_}")

    # -- evaluate on the out-of-time test bookings
    with ctx.stage("evaluate"):
        raw = evaluate_recommender(model, train, test, k=ks, n_bootstrap=n_boot, seed=seed,
                                   baseline=neighborhood, user_groups=groups,
                                   family=cfg.family)
        global_report = evaluate_recommender(global_pop, train, test, k=ks,
                                             n_bootstrap=n_boot, seed=seed, baseline=None,
                                             family=cfg.family)
        report = with_gate_metrics(raw, global_report, n_boot, seed)
    log_report(report)
    if cfg.report_candidates:
        with ctx.stage("evaluate candidates"):
            frame = candidates_on_test(candidates, chosen_name, model, train, test, groups,
                                       neighborhood, n_boot, seed)
        mlflow.log_text(frame.to_csv(index=False), "evaluation/candidates_test.csv")
    mlflow.log_text(global_report.model_dump_json(indent=2),
                    "evaluation/global_popularity_report.json")
    for name, est in global_report.metrics.items():
        key = metric_key(f"global_popularity_{name}")
        mlflow.log_metrics({key: est.value, f"{key}_ci_low": est.ci_low,
                            f"{key}_ci_high": est.ci_high})
    d_n = report.metrics["ndcg@10_minus_baseline"]
    d_g = report.metrics["ndcg@10_minus_global_popularity"]
    summary = (f"NDCG@10 {report.metrics['ndcg@10'].value:.3f} ({chosen_name}) vs "
               f"neighborhood popularity {report.baselines['ndcg@10'].value:.3f} "
               f"(difference {d_n.value:+.3f} [{d_n.ci_low:+.3f}, {d_n.ci_high:+.3f}]) and "
               f"global popularity {global_report.metrics['ndcg@10'].value:.3f} "
               f"({d_g.value:+.3f} [{d_g.ci_low:+.3f}, {d_g.ci_high:+.3f}]); "
               f"{report.n:,} test customers, {report.n_cold_users:,} unseen in training")
    notes.insert(0, summary)

    def register(tags: dict[str, str]) -> Any:
        return log_and_register_recommender(model, cfg.model_name, tags=tags)[1]

    assert report.per_user is not None
    return JobCandidate(
        register=register, report=report,
        comparison=recs_champion_comparison(cfg.model_name, train, test,
                                            report.per_user["ndcg@10"], user_groups=groups,
                                            n_bootstrap=n_boot, seed=seed),
        gate_inputs=[(train, None, "recs_train"), (test, None, "recs_test"),
                     (groups.rename("group").to_frame(), None, "recs_user_groups")],
        card=ModelCardText(
            description=(f"Barbers to recommend to a customer: the top k of {report.n_items} "
                         f"barbers by {type(model).__name__} ({chosen_name}, chosen on "
                         f"validation by {cfg.select_metric}), leaving out the barbers the "
                         "customer already booked; customers unseen in training get the most "
                         "booked barbers of their neighborhood."),
            data_window={
                "validation cut-off": f"{valid_cut:%Y-%m-%d}",
                "test cut-off": f"{test_cut:%Y-%m-%d}",
                "test period": f"bookings made after the cut-off, completed within "
                               f"{cfg.horizon_days} days",
                "interactions (train / test)": f"{len(train):,} / {len(test):,}"},
            caveats=notes, slice_metrics=["ndcg@10", "recall@10", "hit@10"]),
        headline=("ndcg@10", "ndcg@10_minus_global_popularity", "recall@10"), notes=notes)


def run(config: RecsJobConfig | str | Path | None = None, *,
        data: MarketplaceData | None = None, data_dir: str | Path | None = None,
        tracking_uri: str | None = None) -> JobResult:
    """Train, evaluate, gate, register and (when the gates pass) promote the recommender.

    ``config``, ``data``, ``data_dir``, ``tracking_uri`` and the result: as
    :func:`~barberpro_ml.jobs.base.run_training_job` (``config`` may also be the path of a
    YAML, or None for the shipped ``recs.yaml``).
    """
    cfg = as_job_config(RecsJobConfig, config)
    return run_training_job(cfg, _step, data=data, data_dir=data_dir, tracking_uri=tracking_uri)
