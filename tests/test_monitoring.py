"""barberpro-ml monitor: champions checked after promotion, through a real MLflow store.

A small churn champion is trained once (the churn job, as in production, on 2,500 simulated
customers) and monitored on the same marketplace and on the same marketplace hit by a shock
(the simulator's ``shocks``: every barber raises prices and half of them leave).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from barberpro_ml.cli.main import app as cli_app
from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.data._sim_world import build_world
from barberpro_ml.definitions import Definitions
from barberpro_ml.monitoring import GateFigure, MonitorSettings, check_model
from barberpro_ml.monitoring.champions import (
    EXIT_CODES,
    MONITOR_EXPERIMENT,
    TAG_AS_OF,
    TAG_RUN,
    TAG_VERDICT,
    monitor_champions,
)
from conftest import copy_tracking_store, fresh_tracking_store, isolated_tracking

SEED = 11
N = 2500
SHOCK = {"at": "2024-09-01", "price_rise": 0.5, "provider_exodus": 0.5}


@dataclass(frozen=True)
class Champion:
    tracking_uri: str
    root: Path
    quiet_dir: Path
    shocked_dir: Path
    end: pd.Timestamp
    version: str


@pytest.fixture(scope="module")
def churn_champion(mlflow_template_db: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Champion]:
    """A churn champion in a private store, with a quiet and a shocked copy of its data."""
    from barberpro_ml.jobs import JOBS

    root = tmp_path_factory.mktemp("monitor-registry")
    uri = fresh_tracking_store(mlflow_template_db, root)
    quiet = simulate(SimulationConfig(n_customers=N, seed=SEED))
    shocked = simulate(SimulationConfig(n_customers=N, seed=SEED, shocks=[SHOCK]))
    quiet_dir = quiet.save(root / "quiet")
    shocked_dir = shocked.save(root / "shocked")
    claims = root / "claims.yaml"
    claims.write_text(yaml.safe_dump({"claims": [
        {"id": "test-churn", "family": "churn", "metric": "roc_auc", "claimed": 0.6,
         "direction": "at_least", "policy": "point", "source": "test floor"}]}))
    config = root / "churn.yaml"
    config.write_text(yaml.safe_dump({
        "n_train_cutoffs": 2, "oracle": {"enabled": False}, "backtest": {"enabled": False},
        "model": {"n_estimators": 60, "learning_rate": 0.1, "random_state": 0, "n_jobs": 1},
        "evaluation": {"n_bootstrap": 100, "seed": 0, "min_slice_size": 100},
        "claims": str(claims)}))
    with isolated_tracking(uri, root):
        outcome = JOBS["churn"].run(config, data=quiet, tracking_uri=uri)
        assert outcome.promoted, outcome.verdicts
        yield Champion(tracking_uri=uri, root=root, quiet_dir=quiet_dir,
                       shocked_dir=shocked_dir, end=quiet.observation_end.normalize(),
                       version=str(outcome.version))


def run_cli(champion: Champion, *args: str) -> Any:
    return CliRunner().invoke(cli_app, ["monitor", *args, "--tracking-uri",
                                        champion.tracking_uri])


def version_tags(champion: Champion) -> dict[str, str]:
    client = MlflowClient(tracking_uri=champion.tracking_uri,
                          registry_uri=champion.tracking_uri)
    return dict(client.get_model_version("barberpro-churn", champion.version).tags)


# ----------------------------------------------------------------------------- simulator
def test_a_shock_changes_nothing_before_it_and_what_it_says_after() -> None:
    cfg = SimulationConfig(n_customers=3000, seed=5)
    at = pd.Timestamp("2024-06-01")
    t = (at - pd.Timestamp(cfg.start)) / pd.Timedelta(days=1)
    plain = build_world(cfg)
    shocked = build_world(SimulationConfig.model_validate({**cfg.model_dump(), "shocks": [
        {"at": at, "price_rise": 0.2, "provider_exodus": 0.4}]}))
    present = (plain.prov_joined <= t) & (t < plain.prov_left)
    left = present & (shocked.prov_left == t)
    assert 0 < left.sum() < present.sum()
    # the leavers are the only change to the provider schedule
    assert np.array_equal(np.where(left, plain.prov_left, shocked.prov_left), plain.prov_left)
    ids = np.arange(plain.n_providers)
    before, after = t - 1, t + 1
    np.testing.assert_allclose(shocked.price_index(ids, np.full(len(ids), before)),
                               plain.price_index(ids, np.full(len(ids), before)))
    np.testing.assert_allclose(shocked.price_index(ids, np.full(len(ids), after))[present],
                               1.2 * plain.price_index(ids, np.full(len(ids), after))[present])


def test_a_shocked_marketplace_is_the_quiet_one_until_the_shock() -> None:
    at = pd.Timestamp("2024-03-01")
    quiet = simulate(SimulationConfig(n_customers=1500, seed=4))
    shocked = simulate(SimulationConfig(n_customers=1500, seed=4, shocks=[
        {"at": at, "price_rise": 0.3, "provider_exodus": 0.4}]))
    assert quiet.customers.equals(shocked.customers)
    for table, column in (("bookings", "scheduled_at"), ("reviews", "created_at")):
        a, b = getattr(quiet, table), getattr(shocked, table)
        assert a[a[column] < at].reset_index(drop=True).equals(
            b[b[column] < at].reset_index(drop=True)), table
    after_a = quiet.bookings.loc[quiet.bookings["scheduled_at"] >= at, "price"].mean()
    after_b = shocked.bookings.loc[shocked.bookings["scheduled_at"] >= at, "price"].mean()
    assert after_b > 1.15 * after_a


def test_a_shock_must_be_a_midnight_and_a_sane_share() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="midnight"):
        SimulationConfig(shocks=[{"at": "2024-06-01T10:00", "price_rise": 0.1}])
    with pytest.raises(ValidationError, match="provider_exodus"):
        SimulationConfig(shocks=[{"at": "2024-06-01", "provider_exodus": 1.0}])


# ----------------------------------------------------------------------------- check_model
def test_check_model_refuses_dates_it_cannot_judge(churn_champion: Champion) -> None:
    data = MarketplaceData.load(churn_champion.quiet_dir)
    args: dict[str, Any] = {"reference_as_of": "2024-01-01", "definitions": Definitions(),
                            "input_columns": ["tenure_days"]}
    with pytest.raises(Exception, match="after the data's last event"):
        check_model(lambda X: np.zeros(len(X)), "churn", data, "2030-01-01", **args)
    with pytest.raises(Exception, match="not after the version's training snapshot"):
        check_model(lambda X: np.zeros(len(X)), "churn", data, "2023-06-01", **args)
    with pytest.raises(Exception, match="monitoring covers"):
        check_model(lambda X: np.zeros(len(X)), "recs", data, "2024-06-01", **args)


# ----------------------------------------------------------------------------- the CLI
def test_monitor_tags_the_version_and_exits_with_its_verdict(churn_champion: Champion) -> None:
    as_of = f"{churn_champion.end:%Y-%m-%d}"
    result = run_cli(churn_champion, "--as-of", as_of, "--data", str(churn_champion.quiet_dir),
                     "--families", "churn")
    tags = version_tags(churn_champion)
    verdict = tags[TAG_VERDICT]
    assert result.exit_code == EXIT_CODES[verdict], result.output  # type: ignore[index]
    assert tags[TAG_AS_OF] == as_of
    client = MlflowClient(tracking_uri=churn_champion.tracking_uri)
    run = client.get_run(tags[TAG_RUN])
    assert run.data.tags["churn.verdict"] == verdict
    assert run.data.metrics["exit_code"] == EXIT_CODES[verdict]  # type: ignore[index]
    assert {"churn.roc_auc", "churn.roc_auc_p_holm", "churn.score_psi"} <= set(run.data.metrics)
    names = {a.path for a in client.list_artifacts(run.info.run_id, "churn")}
    assert {"churn/health.json", "churn/drift.csv", "churn/drift.html",
            "churn/drift.png"} <= names
    health = json.loads(mlflow.artifacts.load_text(
        f"{run.info.artifact_uri}/churn/health.json"))
    assert health["version"] == churn_champion.version
    # the gate's figure is the one bound to the version; at the data's end the matured labels
    # are the gate's own test rows (as_of - 90 days is the test cut-off), so the recomputed
    # point-in-time features and predictions reproduce its ROC AUC
    perf = health["performance"][0]
    assert perf["gate"]["claim_id"] == "test-churn"
    assert perf["value"] == pytest.approx(perf["gate"]["value"], abs=1e-9)
    assert not perf["degraded"]
    assert verdict != "degraded"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == MONITOR_EXPERIMENT


def test_a_shocked_marketplace_is_flagged_with_a_non_zero_exit(churn_champion: Champion
                                                               ) -> None:
    as_of = f"{churn_champion.end:%Y-%m-%d}"
    result = run_cli(churn_champion, "--as-of", as_of, "--data",
                     str(churn_champion.shocked_dir), "--families", "churn")
    verdict = version_tags(churn_champion)[TAG_VERDICT]
    # half the barbers gone and prices up 50% since 2024-09-01: the labels matured since the
    # test cut-off are ranked visibly worse than at the gate (the quiet data: not degraded)
    assert verdict == "degraded", result.output
    assert result.exit_code == EXIT_CODES["degraded"] == 6
    assert "roc_auc on labels matured since" in version_tags(churn_champion)["monitor.reasons"]


def test_monitor_user_errors_are_one_line_exit_2(churn_champion: Champion) -> None:
    late = run_cli(churn_champion, "--as-of", "2031-01-01", "--data",
                   str(churn_champion.quiet_dir))
    assert late.exit_code == 2
    assert "after the data's last event" in late.output
    assert "Traceback" not in late.output
    unknown = run_cli(churn_champion, "--as-of", "2024-06-01", "--data",
                      str(churn_champion.quiet_dir), "--families", "churn,segments")
    assert unknown.exit_code == 2
    assert "cannot be monitored" in unknown.output


def test_monitor_without_a_champion_exits_4(churn_champion: Champion, tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(cli_app, [
        "monitor", "--as-of", f"{churn_champion.end:%Y-%m-%d}", "--data",
        str(churn_champion.quiet_dir), "--tracking-uri", empty])
    assert result.exit_code == 4, result.output
    assert "no champion to monitor" in result.output


def test_an_ltv_without_champion_is_reported_not_monitored(churn_champion: Champion) -> None:
    data = MarketplaceData.load(churn_champion.quiet_dir)
    result = monitor_champions(data, churn_champion.end, tracking_uri=churn_champion.tracking_uri,
                               settings=MonitorSettings(n_bootstrap=100), tag_versions=False)
    by_family = {c.family: c for c in result.checks}
    assert by_family["ltv"].health is None
    assert "no barberpro-ltv@champion" in (by_family["ltv"].skipped or "")
    assert by_family["churn"].health is not None
    assert result.exit_code == EXIT_CODES[by_family["churn"].health.verdict]


def test_ltv_is_judged_on_revenue_matured_over_its_horizon() -> None:
    data = simulate(SimulationConfig(n_customers=1500, seed=8))
    defs = Definitions()
    as_of = pd.Timestamp("2024-12-31")

    def predict(X: pd.DataFrame) -> np.ndarray:  # last year's spend as next year's
        return X["spend_365d"].to_numpy(dtype=float)

    good = [GateFigure(metric="spearman", value=0.6, ci_low=0.55, ci_high=0.65),
            GateFigure(metric="aggregate_error", direction="at_most", value=0.0,
                       ci_low=-0.05, ci_high=0.05)]
    health = check_model(predict, "ltv", data, as_of, reference_as_of="2023-09-30",
                         definitions=defs, input_columns=["spend_365d", "n_visits"],
                         gates=good, settings=MonitorSettings(n_bootstrap=100))
    by_metric = {m.metric: m for m in health.performance}
    assert set(by_metric) == {"spearman", "aggregate_error"}
    spearman = by_metric["spearman"]
    assert spearman.predicted_at == f"{as_of - pd.Timedelta(days=defs.ltv_horizon_days):%Y-%m-%d}"
    # every customer signed up by then is a row, as in the LTV job
    assert spearman.n == int((data.customers["signup_at"] <= pd.Timestamp(
        spearman.predicted_at)).sum())
    assert spearman.ci_low <= spearman.value <= spearman.ci_high
    # a gate that measured a far better ranking makes the same model degraded
    proud = [GateFigure(metric="spearman", value=0.99, ci_low=0.985, ci_high=0.995)]
    worse = check_model(predict, "ltv", data, as_of, reference_as_of="2023-09-30",
                        definitions=defs, input_columns=["spend_365d", "n_visits"],
                        gates=proud, settings=MonitorSettings(n_bootstrap=100))
    assert worse.verdict == "degraded"
    assert worse.performance[0].p_holm is not None and worse.performance[0].p_holm < 0.01


def test_the_training_snapshot_is_read_from_the_runs_cutoffs() -> None:
    from barberpro_ml.monitoring.champions import _cutoffs

    with pytest.raises(Exception, match="no train_cutoffs parameter"):
        _cutoffs({}, "barberpro-ltv", "3")
    first, last, test = _cutoffs({"train_cutoffs": "2024-04-05,2024-01-05",
                                  "test_cutoff": "2024-10-02"}, "m", "1")
    assert (first, last, test) == (pd.Timestamp("2024-01-05"), pd.Timestamp("2024-04-05"),
                                   pd.Timestamp("2024-10-02"))


# ------------------------------------------------------------------- the recommendations champion
def _fitted_recommender(data: MarketplaceData, ref: pd.Timestamp) -> tuple[Any, list[GateFigure]]:
    from barberpro_ml.evaluation import evaluate_recommender
    from barberpro_ml.models.recs import (
        ItemKNNRecommender,
        booking_interactions_split,
        customer_neighborhoods,
    )

    groups = customer_neighborhoods(data)
    train, test = booking_interactions_split(data, ref, 90)
    model = ItemKNNRecommender().fit(train, user_groups=groups)
    report = evaluate_recommender(model, train, test, k=10, n_bootstrap=200, baseline=None,
                                  user_groups=groups)
    return model, [GateFigure(metric=m, value=report.metrics[m].value,
                              ci_low=report.metrics[m].ci_low,
                              ci_high=report.metrics[m].ci_high)
                   for m in ("ndcg@10", "recall@10")]


def test_a_barber_exodus_moves_the_recommenders_bookings_and_a_quiet_market_does_not(
        churn_champion: Champion) -> None:
    from barberpro_ml.errors import InputError
    from barberpro_ml.monitoring import check_recommender

    quiet = MarketplaceData.load(churn_champion.quiet_dir)
    shocked = MarketplaceData.load(churn_champion.shocked_dir)
    ref = pd.Timestamp("2024-05-01")
    model, gates = _fitted_recommender(quiet, ref)
    args: dict[str, Any] = {"reference_as_of": ref, "horizon_days": 90, "gates": gates}
    calm = check_recommender(model, quiet, "2024-12-31", **args)
    hit = check_recommender(model, shocked, "2024-12-31", **args)
    by_column = {h.family: {r.column: r for r in h.features} for h in (calm,)}
    assert not by_column["recs"]["booked_barber"].drifted
    assert calm.verdict == "ok", calm.reasons
    moved = {r.column: r for r in hit.features}["booked_barber"]
    assert moved.drifted and moved.psi > 10 * by_column["recs"]["booked_barber"].psi
    assert hit.verdict != "ok" and any("booked_barber" in r for r in hit.reasons)
    # customers unseen at fit are reported, never counted
    assert {r.column: r for r in hit.features}["cold_customer"].trending
    assert {m.metric for m in calm.performance} == {"ndcg@10", "recall@10"}
    with pytest.raises(InputError, match="no window has matured since the gate"):
        check_recommender(model, quiet, "2024-07-01", **args)
    with pytest.raises(InputError, match="after the data's last event"):
        check_recommender(model, quiet, "2030-01-01", **args)


def test_the_recommenders_normal_turnover_is_measured_in_the_history_and_allowed_for(
        churn_champion: Champion) -> None:
    from sklearn.base import clone

    from barberpro_ml.evaluation import evaluate_recommender
    from barberpro_ml.models.recs import booking_interactions_split, customer_neighborhoods
    from barberpro_ml.monitoring import check_recommender
    from barberpro_ml.monitoring.drift import psi

    quiet = MarketplaceData.load(churn_champion.quiet_dir)
    shocked = MarketplaceData.load(churn_champion.shocked_dir)
    ref, at = pd.Timestamp("2024-05-01"), "2024-12-31"
    model, gates = _fitted_recommender(quiet, ref)
    args: dict[str, Any] = {"reference_as_of": ref, "horizon_days": 90, "gates": gates}
    before = check_recommender(model, quiet, at, settings=MonitorSettings(turnover_anchors=0),
                               **args)
    one = check_recommender(model, quiet, at, settings=MonitorSettings(turnover_anchors=1),
                            **args)
    # the rule before: nothing measured, nothing allowed
    assert all(m.expected_loss == 0 for m in before.performance)
    assert {r.column: r for r in before.features}["booked_barber"].trend_psi is None
    # one span as long as the monitored one, ending at the gate's window: a fresh copy of the
    # champion's kind fitted at its start, measured at both ends
    span = pd.Timestamp(at) - pd.Timedelta(days=90) - ref
    groups = customer_neighborhoods(quiet)
    train_then, test_then = booking_interactions_split(quiet, ref - span, 90)
    train_later, test_later = booking_interactions_split(quiet, ref, 90)
    copy = clone(model).fit(train_then, user_groups=groups)
    ndcg = [evaluate_recommender(copy, tr, te, k=10, n_bootstrap=0, baseline=None,
                                 user_groups=groups).metrics["ndcg@10"].value
            for tr, te in ((train_then, test_then), (train_later, test_later))]
    perf = {m.metric: m for m in one.performance}
    assert perf["ndcg@10"].expected_loss == pytest.approx(max(ndcg[0] - ndcg[1], 0.0))
    booked = {r.column: r for r in one.features}["booked_barber"]
    assert booked.trend_psi == pytest.approx(psi(test_then["item_id"].astype(str),
                                                 test_later["item_id"].astype(str)))
    assert "normal turnover" in one.performance_note
    # allowing the normal loss can only make the degradation test more lenient
    was = {m.metric: m for m in before.performance}
    for metric, m in perf.items():
        assert m.p_value is not None and was[metric].p_value is not None
        assert m.p_value >= was[metric].p_value - 1e-12
    # no history long enough (a young marketplace): the rule before, and the note says why
    young = check_recommender(model, quiet, at, settings=MonitorSettings(min_rows=10**6),
                              **args)
    assert "normal turnover not measured" in young.performance_note
    assert {r.column: r for r in young.features}["booked_barber"].trend_psi is None
    # an exodus moves the booked barbers far beyond normal turnover: still counted
    hit = check_recommender(model, shocked, at, **args)
    moved = {r.column: r for r in hit.features}["booked_barber"]
    assert moved.trend_psi is not None and moved.psi > 3 * moved.trend_psi
    assert moved.counts and hit.verdict != "ok"


def test_a_recs_loss_counts_only_when_a_refit_on_the_same_customers_does_not_have_it(
        churn_champion: Champion) -> None:
    from sklearn.base import clone

    from barberpro_ml.evaluation import evaluate_recommender
    from barberpro_ml.models.recs import (
        ItemKNNRecommender,
        booking_interactions_split,
        customer_neighborhoods,
    )
    from barberpro_ml.monitoring import check_recommender

    quiet = MarketplaceData.load(churn_champion.quiet_dir)
    ref, at = pd.Timestamp("2024-05-01"), "2024-12-31"
    model, gates = _fitted_recommender(quiet, ref)
    # gate figures no later window reaches: the test against the gate alone rejects
    lucky = [g.model_copy(update={"value": g.value + 0.15, "ci_low": g.ci_low + 0.15,
                                  "ci_high": g.ci_high + 0.15}) for g in gates]
    args: dict[str, Any] = {"reference_as_of": ref, "horizon_days": 90, "gates": lucky}
    before = check_recommender(model, quiet, at, settings=MonitorSettings(refit_check=False),
                               **args)
    assert before.verdict == "degraded"
    assert all(m.refit_difference is None and m.degraded for m in before.performance)
    healthy = check_recommender(model, quiet, at, **args)
    # the champion does as well as a copy refitted at the matured window's start, on the same
    # customers: the window is harder for any model of its kind, not a degradation
    assert healthy.verdict == "ok", healthy.reasons
    groups = customer_neighborhoods(quiet)
    predicted_at = pd.Timestamp(at) - pd.Timedelta(days=90)
    train, test = booking_interactions_split(quiet, predicted_at, 90)
    refit = clone(model).fit(train, user_groups=groups)
    paired = evaluate_recommender(model, train, test, k=10, n_bootstrap=0, baseline=refit,
                                  user_groups=groups)
    for m in healthy.performance:
        assert m.gate_degraded and not m.degraded
        assert m.refit_difference == pytest.approx(paired.differences[m.metric].value)
        assert m.refit_p_holm is not None and m.refit_p_holm >= m.refit_p_value  # type: ignore[operator]
    assert "harder for any model of its kind" in healthy.performance_note
    # a champion that learned nothing (its bookings' barbers shuffled) trails the refit far
    # beyond what a refit normally gains: degraded, and the reason says to refit
    split_train, _ = booking_interactions_split(quiet, ref, 90)
    rng = np.random.default_rng(0)
    shuffled = split_train.assign(item_id=rng.permutation(split_train["item_id"].to_numpy()))
    broken = ItemKNNRecommender().fit(shuffled, user_groups=groups)
    hit = check_recommender(broken, quiet, at, **args)
    ndcg = {m.metric: m for m in hit.performance}["ndcg@10"]
    assert hit.verdict == "degraded" and ndcg.degraded
    assert ndcg.refit_difference is not None and ndcg.refit_difference < -0.05
    assert any("refit it" in r for r in hit.reasons)


def test_a_refit_that_fails_leaves_the_recs_check_to_the_rule_before(
        churn_champion: Champion) -> None:
    from barberpro_ml.models.recs import (
        ItemKNNRecommender,
        booking_interactions_split,
        customer_neighborhoods,
    )
    from barberpro_ml.monitoring import check_recommender

    class LateDataRefused(ItemKNNRecommender):
        """Fits on data up to ``refuse_after`` only (the history's spans end there)."""

        def __init__(self, *, refuse_after: str | None = None) -> None:
            super().__init__()
            self.refuse_after = refuse_after

        def fit(self, interactions: pd.DataFrame, *, user_groups: Any = None
                ) -> LateDataRefused:
            if (self.refuse_after is not None
                    and interactions["timestamp"].max() > pd.Timestamp(self.refuse_after)):
                raise ValueError(f"no data after {self.refuse_after}, please")
            return super().fit(interactions, user_groups=user_groups)  # type: ignore[no-any-return]

    quiet = MarketplaceData.load(churn_champion.quiet_dir)
    ref, at = pd.Timestamp("2024-05-01"), "2024-12-31"
    _, gates = _fitted_recommender(quiet, ref)
    train, _ = booking_interactions_split(quiet, ref, 90)
    model = LateDataRefused(refuse_after=str(ref)).fit(train,
                                                       user_groups=customer_neighborhoods(quiet))
    args: dict[str, Any] = {"reference_as_of": ref, "horizon_days": 90, "gates": gates}
    health = check_recommender(model, quiet, at, **args)
    before = check_recommender(model, quiet, at, settings=MonitorSettings(refit_check=False),
                               **args)
    assert "no copy could be refitted at 2024-10-02" in health.performance_note
    assert "no data after" in health.performance_note
    assert all(m.refit_difference is None for m in health.performance)
    assert health.verdict == before.verdict
    assert [m.degraded for m in health.performance] == [m.degraded for m in before.performance]


def test_monitoring_the_recs_champion_at_its_first_matured_date_reproduces_its_gate(
        scoring_registry: Any, tmp_path: Path) -> None:
    uri = copy_tracking_store(scoring_registry.tracking_uri, tmp_path)
    data = scoring_registry.data
    with isolated_tracking(uri, tmp_path):
        result = monitor_champions(data, data.observation_end.normalize(), families=["recs"],
                                   tracking_uri=uri)
        (check,) = result.checks
        assert check.health is not None, check.skipped
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        gate_value = float(client.get_metric_history(
            client.get_model_version("barberpro-recs", check.version).run_id,
            "ndcg_10")[-1].value)
    health = check.health
    # the matured window is the gate's own test window: the same rankings, the same number
    ndcg = {m.metric: m for m in health.performance}["ndcg@10"]
    assert ndcg.gate is not None and ndcg.value == pytest.approx(ndcg.gate.value, abs=1e-12)
    assert ndcg.value == pytest.approx(gate_value, abs=1e-9)
    assert {r.column: r.psi for r in health.features}["booked_barber"] == pytest.approx(0.0)
    assert health.verdict == "ok" and result.exit_code == 0


def test_recs_gate_figures_prefer_claims_and_fall_back_on_the_runs_test_metrics() -> None:
    from barberpro_ml.monitoring.champions import recs_gate_figures

    logged = {"ndcg_10": 0.42, "ndcg_10_ci_low": 0.40, "ndcg_10_ci_high": 0.44,
              "recall_10": 0.69, "recall_10_ci_low": 0.67, "recall_10_ci_high": 0.71}
    difference = GateFigure(metric="ndcg@10_minus_global_popularity", value=0.1,
                            ci_low=0.05, ci_high=0.15)
    direct = GateFigure(metric="ndcg@10", value=0.5, ci_low=0.45, ci_high=0.55)
    assert recs_gate_figures([difference, direct], logged) == [direct]
    fallback = recs_gate_figures([difference], logged)
    assert [(f.metric, f.value, f.ci_low) for f in fallback] == [
        ("ndcg@10", 0.42, 0.40), ("recall@10", 0.69, 0.67)]
    assert recs_gate_figures([difference], {}) == []


def test_a_date_too_early_for_the_recs_champion_skips_it_and_monitors_the_others(
        scoring_registry: Any, tmp_path: Path) -> None:
    uri = copy_tracking_store(scoring_registry.tracking_uri, tmp_path)
    data = scoring_registry.data
    early = data.observation_end.normalize() - pd.Timedelta(days=30)
    with isolated_tracking(uri, tmp_path):
        result = monitor_champions(data, early, families=["churn", "recs"], tracking_uri=uri,
                                   tag_versions=False)
    by_family = {c.family: c for c in result.checks}
    assert by_family["churn"].health is not None
    assert by_family["recs"].health is None
    assert "no window has matured since the gate" in (by_family["recs"].skipped or "")
