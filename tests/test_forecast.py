"""Weekly forecasts: the series, the maths (conformal rank, reconciliation, block bootstrap),
the gate on coverage, the registered model, and coverage against fresh simulated futures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from barberpro_ml.analytics.forecast import (
    TOTAL,
    WeeklyForecaster,
    conformal_rank,
    mint_shrink_weights,
    weekly_series,
)
from barberpro_ml.config import shipped_config
from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.errors import InputError, NotEnoughDataError
from barberpro_ml.evaluation.forecast import (
    block_bootstrap_origins,
    interval_forecast_report,
    winkler_score,
)
from barberpro_ml.gates import check, load_claims
from barberpro_ml.registry import ModelInputError, alias_version

CHEAP = ("seasonal_naive", "yoy_scaled", "auto_ets")


@pytest.fixture(scope="module")
def sample() -> MarketplaceData:
    return MarketplaceData.load(Path(__file__).resolve().parents[1] / "data" / "sample")


@pytest.fixture(scope="module")
def series(sample: MarketplaceData) -> pd.DataFrame:
    return weekly_series(sample)


@pytest.fixture(scope="module")
def fitted(series: pd.DataFrame) -> WeeklyForecaster:
    return WeeklyForecaster(candidates=CHEAP).fit(series)


# --------------------------------------------------------------------------- the series
def test_weekly_series_are_complete_weeks_whose_neighborhoods_sum_to_the_total(
        sample: MarketplaceData, series: pd.DataFrame) -> None:
    assert set(series["measure"]) == {"net_revenue", "bookings"}
    weeks = pd.DatetimeIndex(sorted(series["week"].unique()))
    assert (weeks.weekday == 0).all() and (np.diff(weeks.asi8) == 7 * 86400 * 10**9).all()
    assert weeks[-1] + pd.Timedelta(days=7) <= sample.observation_end
    assert weeks[0] >= sample.bookings["scheduled_at"].min()
    wide = series.pivot_table(index=["measure", "week"], columns="neighborhood", values="y")
    parts = wide.drop(columns=TOTAL).sum(axis=1)
    assert np.allclose(parts, wide[TOTAL], rtol=0, atol=1e-6)
    # each neighborhood's bookings equal a plain pandas count over the same week
    b = sample.bookings.merge(sample.providers[["provider_id", "neighborhood"]])
    week = b["created_at"].dt.normalize() - pd.to_timedelta(b["created_at"].dt.weekday, "D")
    counted = b.assign(week=week).groupby(["week", "neighborhood"], observed=True).size()
    ours = series[(series["measure"] == "bookings") & (series["neighborhood"] != TOTAL)]
    for row in ours.sample(20, random_state=0).itertuples():
        assert row.y == counted.get((row.week, row.neighborhood), 0)


def test_weekly_series_are_point_in_time(sample: MarketplaceData) -> None:
    cut = pd.Timestamp("2024-06-05 12:00")
    early = weekly_series(sample, cut)
    assert early["week"].max() + pd.Timedelta(days=7) <= cut
    late = weekly_series(sample)
    # weeks that ended by the cut: bookings identical whatever happened later
    keys = ["measure", "neighborhood", "week"]
    joined = early.merge(late, on=keys, suffixes=("_early", "_late"))
    bookings = joined[joined["measure"] == "bookings"]
    assert len(bookings) == len(early[early["measure"] == "bookings"])
    assert (bookings["y_early"] == bookings["y_late"]).all()


def test_weekly_series_refuse_measures_that_do_not_add_up(sample: MarketplaceData) -> None:
    with pytest.raises(InputError, match=r"average_ticket.*not a sum"):
        weekly_series(sample, measures=["average_ticket"])
    with pytest.raises(InputError, match="unknown measure 'revenue'"):
        weekly_series(sample, measures=["revenue"])


def test_too_short_a_history_names_the_weeks_it_needs(series: pd.DataFrame) -> None:
    short = series[series["week"] < series["week"].min() + pd.Timedelta(weeks=60)]
    with pytest.raises(NotEnoughDataError, match=r"60 complete weeks, but the backtest needs "
                                                 r"at least \d+"):
        WeeklyForecaster(candidates=CHEAP).fit(short)


def test_few_series_start_the_evaluation_late_enough_for_a_finite_rank(
        series: pd.DataFrame) -> None:
    # the total and one neighborhood: 2 series, so 89% intervals need 5 earlier origins of
    # scores at horizon 13 (9 scores) before the first evaluation origin
    two = series[series["neighborhood"].isin([TOTAL, "downtown"])].copy()
    two.loc[two["neighborhood"] == TOTAL, "y"] = two.loc[
        two["neighborhood"] == "downtown", "y"].to_numpy()
    fitted = WeeklyForecaster(candidates=("seasonal_naive", "yoy_scaled")).fit(two)
    bt = fitted.backtest_
    assert np.isfinite(bt[["lower", "upper"]].to_numpy()).all()
    first = (bt["origin"].min() - fitted.history_["week"].min()).days // 7
    assert first >= fitted.min_train_weeks + 13 - 1 + 5  # ceil(9 / 2) = 5


def test_bad_parameters_are_refused_with_every_problem_named(series: pd.DataFrame) -> None:
    with pytest.raises(InputError) as err:
        WeeklyForecaster(level=1.2, candidates=("prophet",), horizon_weeks=0).fit(series)
    text = str(err.value)
    assert "level must be in [0.5, 1)" in text and "prophet" in text and "horizon_weeks" in text


# --------------------------------------------------------------------------- the maths
@given(n=st.integers(0, 500), level=st.floats(0.5, 0.995))
def test_conformal_rank_is_the_smallest_rank_with_enough_mass(n: int, level: float) -> None:
    rank = conformal_rank(n, level)
    r = math.ceil((n + 1) * level - 1e-12)
    if r > n:
        assert rank is None
    else:
        assert rank == r and rank / (n + 1) >= level - 1e-9 > (rank - 1) / (n + 1) - 1e-9


@settings(max_examples=40, deadline=None)
@given(n_bottom=st.integers(2, 6), n_obs=st.integers(1, 40), seed=st.integers(0, 10**6))
def test_mint_reconciled_forecasts_are_coherent_and_keep_coherent_ones(
        n_bottom: int, n_obs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    P = mint_shrink_weights(rng.normal(size=(n_obs, n_bottom + 1)) * rng.uniform(0.5, 5))
    base = rng.normal(100, 20, size=n_bottom + 1)
    reconciled = P @ base
    assert reconciled[0] == pytest.approx(reconciled[1:].sum(), rel=1e-9, abs=1e-6)
    coherent = np.concatenate([[base[1:].sum()], base[1:]])
    assert np.allclose(P @ coherent, coherent, rtol=1e-8, atol=1e-6)   # a projection


def test_block_bootstrap_draws_runs_of_consecutive_origins() -> None:
    idx = block_bootstrap_origins(10, 50, 4, seed=1)
    assert idx.shape == (50, 10) and idx.min() >= 0 and idx.max() <= 9
    steps = np.diff(idx[:, :4], axis=1) % 10
    assert (steps == 1).all()


def test_report_metrics_equal_their_definitions() -> None:
    rng = np.random.default_rng(3)
    n = 300
    y = rng.normal(100, 10, n)
    mean = y + rng.normal(0, 8, n)
    bt = pd.DataFrame({"origin": np.repeat(np.arange(30), 10), "horizon": np.tile(
        np.arange(1, 11), 30), "y": y, "mean": mean, "lower": mean - 12, "upper": mean + 12,
        "scale": 4.0, "seasonal_naive": y + rng.normal(0, 15, n)})
    report = interval_forecast_report(bt, level=0.8, n_bootstrap=500, seed=0)
    inside = ((bt["lower"] <= y) & (y <= bt["upper"])).mean()
    assert report.metrics["coverage"].value == pytest.approx(inside)
    assert report.metrics["mean_scaled_width"].value == pytest.approx(6.0)
    assert report.metrics["winkler_scaled"].value == pytest.approx(
        winkler_score(y, bt["lower"].to_numpy(), bt["upper"].to_numpy(), 0.8).mean() / 4)
    mase = np.abs(y - mean).mean() / 4
    assert report.metrics["mase"].value == pytest.approx(mase)
    diff = report.metrics["mase_minus_seasonal_naive"]
    assert diff.value == pytest.approx(mase - np.abs(y - bt["seasonal_naive"]).mean() / 4)
    for m in report.metrics.values():
        assert m.ci_low <= m.value <= m.ci_high
    with pytest.raises(ValueError, match="column 'upper' has 1 non-finite"):
        interval_forecast_report(bt.assign(upper=np.where(bt.index == 5, np.nan, bt["upper"])),
                                 level=0.8)


# --------------------------------------------------------------------------- the forecaster
def test_forecast_is_reconciled_and_every_choice_precedes_its_evaluation(
        fitted: WeeklyForecaster) -> None:
    fc = fitted.forecast_
    assert set(fc["horizon"]) == set(range(1, 14))
    for _, part in fc.groupby(["measure", "horizon"]):
        total = part.loc[part["neighborhood"] == TOTAL, "mean"].item()
        assert total == pytest.approx(part.loc[part["neighborhood"] != TOTAL, "mean"].sum())
    assert ((fc["lower"] <= fc["mean"]) & (fc["mean"] <= fc["upper"])).all()
    # selection origins (where the model was picked) all precede the evaluation origins
    bt = fitted.backtest_
    first_eval = bt["origin"].min()
    n_selection_origins = (first_eval - fitted.history_["week"].min()).days // 7 - \
        fitted.min_train_weeks
    assert n_selection_origins >= fitted.horizon_weeks
    assert (bt["week"] >= bt["origin"]).all()
    assert set(fitted.chosen_) == {"net_revenue", "bookings"}
    assert len(fitted.selection_) == 2 * len(CHEAP) * 2


def test_wider_intervals_at_longer_horizons_and_a_pyfunc_style_lookup(
        fitted: WeeklyForecaster) -> None:
    cal = fitted.calibration_
    for _, part in cal.groupby("measure"):
        widths = part.sort_values("horizon")["half_width_scaled"].to_numpy()
        assert widths[-1] > widths[0]
    got = fitted.predict(pd.DataFrame({"measure": ["bookings"], "horizon": [3]}))
    assert len(got) == 1 and got["neighborhood"].item() == TOTAL
    with pytest.raises(InputError, match=r"unknown measure\(s\) \['tips'\].*horizon must be"):
        fitted.predict(pd.DataFrame({"measure": ["tips"], "horizon": [99]}))


def test_gate_passes_calibrated_intervals_and_refuses_deliberately_narrow_ones(
        series: pd.DataFrame, fitted: WeeklyForecaster) -> None:
    claims = load_claims(shipped_config("claims.yaml"), "forecast")
    honest = check(fitted.evaluate(n_bootstrap=1000), claims)
    row = next(c for c in honest.claims if c.claim_id == "forecast-coverage-89")
    assert row.ci_low <= 0.89 <= row.ci_high and row.verdict == "pass", row.reason
    narrow = WeeklyForecaster(candidates=CHEAP, level=0.5).fit(series)
    refused = check(narrow.evaluate(n_bootstrap=1000), claims)
    row = next(c for c in refused.claims if c.claim_id == "forecast-coverage-89")
    assert row.verdict == "fail" and "entirely below the claimed 0.89" in row.reason
    assert not refused.passed


# --------------------------------------------------------------------------- the job
@pytest.mark.slow
def test_forecast_job_registers_a_model_serving_the_gated_forecast(
        mlflow_store: Any, tmp_path: Path, sample: MarketplaceData) -> None:
    from barberpro_ml.jobs import JOBS

    path = tmp_path / "forecast.yaml"
    path.write_text(yaml.safe_dump({"model": {"candidates": list(CHEAP)}}))
    result = JOBS["forecast"].run(path, data=sample)
    assert result.promoted and alias_version("barberpro-forecast") == result.version
    model = mlflow.pyfunc.load_model("models:/barberpro-forecast@champion")
    got = model.predict(pd.DataFrame({"measure": ["net_revenue", "net_revenue"],
                                      "neighborhood": [TOTAL, "downtown"],
                                      "horizon": [1, 13]}))
    table = mlflow.artifacts.load_text(f"runs:/{result.run_id}/forecast/forecast.csv")
    logged = pd.read_csv(pd.io.common.StringIO(table))
    for row in got.itertuples():
        expected = logged[(logged["measure"] == row.measure)
                          & (logged["neighborhood"] == row.neighborhood)
                          & (logged["horizon"] == row.horizon)]
        assert row.mean == pytest.approx(expected["mean"].item())
    with pytest.raises(Exception, match="unknown neighborhood"):
        model.predict(pd.DataFrame({"measure": ["bookings"], "neighborhood": ["mars"]}))
    # the monitor finds the champion, and says when its first week will have ended
    from barberpro_ml.errors import ModelUnavailableError
    from barberpro_ml.monitoring.champions import monitor_champions

    with pytest.raises(ModelUnavailableError, match=r"forecast: .*has ended yet; monitor from"):
        monitor_champions(sample, sample.observation_end, families=["forecast"],
                          tracking_uri=mlflow_store.tracking_uri)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "plots")}
    assert "plots/fan_chart_net_revenue.png" in artifacts

    # the HTML report draws the champion's forecast with the coverage its gate measured
    from typer.testing import CliRunner

    from barberpro_ml.cli import app

    coverage = next(m for m in result.headline if m.name == "coverage")
    folder = sample.save(tmp_path / "events")
    out = tmp_path / "report.html"
    ran = CliRunner().invoke(app, ["report", "--out", str(out), "--data", str(folder),
                                       "--tracking-uri", mlflow_store.tracking_uri])
    assert ran.exit_code == 0, (ran.output, ran.exception)
    html = out.read_text()
    assert f"barberpro-forecast v{result.version}" in html
    assert f"covered {coverage.value:.1%}" in html and "No forecast model" not in html

    # the service's financial-intelligence route serves the same forecast and coverage
    from fastapi.testclient import TestClient

    from barberpro_ml.scoring import CustomerScorer
    from barberpro_ml.service import create_app

    # the service needs one customer family to start: the segments champion of the sample
    segments = tmp_path / "segments.yaml"
    segments.write_text(yaml.safe_dump({"model": {"k_values": [3, 4]}}))
    assert JOBS["segments"].run(segments, data=sample).promoted
    app = create_app(CustomerScorer.from_registry(), sample, auth="off")
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/api/analytics/financial-intelligence",
                       params={"measure": "bookings", "neighborhood": "downtown",
                               "history_weeks": 8})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"] == result.version and body["level"] == 0.89
        want = logged[(logged["measure"] == "bookings")
                      & (logged["neighborhood"] == "downtown")].sort_values("horizon")
        assert [p["mean"] for p in body["forecast"]] == pytest.approx(want["mean"].tolist())
        assert body["coverage"]["observed"] == pytest.approx(coverage.value)
        assert body["coverage"]["verdict"] == "pass" and body["coverage"]["claimed"] == 0.89
        assert len(body["history"]) == 8
        assert body["history"][-1]["week"] < body["first_week"]
        bad = client.get("/api/analytics/financial-intelligence",
                         params={"neighborhood": "mars"})
        assert bad.status_code == 422 and "mars" in bad.text and "downtown" in bad.text


def test_forecast_model_input_errors_name_the_problem(fitted: WeeklyForecaster) -> None:
    from barberpro_ml.registry import ForecastModel

    wrapper = ForecastModel.from_forecaster(fitted)
    with pytest.raises(ModelInputError, match="missing column 'measure'"):
        wrapper.predict(None, pd.DataFrame({"horizon": [1]}))
    out = wrapper.predict(None, pd.DataFrame({"measure": ["bookings"]}))
    assert len(out) == 13 and out["horizon"].tolist() == list(range(1, 14))


# --------------------------------------------------------------------------- the truth
@pytest.mark.slow
def test_intervals_cover_fresh_simulated_futures() -> None:
    """Worlds the model never saw: fit at cut-offs through a year, compare with the next 13
    weeks the simulator then produced.

    The gate's coverage is an average over origins through the year, so the truth is sampled
    the same way: three worlds, each forecast from January, April and July. (From January,
    just after the December peak, the intervals under-cover on two years of history: the
    README says so; this test does not hide it in a per-origin bound it would fail.)
    """
    base = SimulationConfig.from_yaml(shipped_config("simulation.yaml"))
    hits: dict[tuple[int, str], float] = {}
    for seed in (101, 202, 303):
        cfg = base.model_copy(update={"seed": seed, "n_customers": 6000,
                                      "end": pd.Timestamp("2025-10-15").to_pydatetime()})
        world = simulate(cfg)
        future = weekly_series(world)
        for cut in ("2025-01-01", "2025-04-02", "2025-07-02"):
            fc = WeeklyForecaster(candidates=CHEAP).fit(
                weekly_series(world, pd.Timestamp(cut))).forecast_
            joined = fc.merge(future, on=["measure", "neighborhood", "week"])
            assert len(joined) == len(fc)             # every forecast week was realised
            hits[seed, cut] = float(((joined["lower"] <= joined["y"])
                                     & (joined["y"] <= joined["upper"])).mean())
    coverage = float(np.mean(list(hits.values())))
    # 9 forecasts x 18 series x 13 weeks, strongly dependent within a forecast: a loose band
    # that 50% or 99.9% intervals fall outside of, while calibrated 89% intervals sit inside.
    assert 0.75 <= coverage <= 0.98, hits


def test_a_bad_forecaster_value_in_the_job_config_stops_before_any_work(tmp_path: Path) -> None:
    from barberpro_ml.errors import ConfigError
    from barberpro_ml.jobs import forecast as forecast_job

    path = tmp_path / "forecast.yaml"
    path.write_text(yaml.safe_dump({"model": {"level": 1.5, "candidates": ["prophet"]}}))
    with pytest.raises(ConfigError, match=r"level must be in \[0.5, 1\), got 1.5.*prophet"):
        forecast_job.load_config(path)


# --------------------------------------------------------------------------- monitoring
def test_monitoring_a_forecast_scores_its_ended_weeks_against_the_gate(
        sample: MarketplaceData) -> None:
    from barberpro_ml.monitoring import GateFigure, check_forecast

    origin_cut = sample.observation_end - pd.Timedelta(weeks=10)
    honest = WeeklyForecaster(candidates=CHEAP).fit(weekly_series(sample, origin_cut))
    coverage = honest.evaluate(n_bootstrap=200).metrics["coverage"]
    gates = [GateFigure(metric="coverage", value=coverage.value, ci_low=coverage.ci_low,
                        ci_high=coverage.ci_high)]
    table = honest.predict()
    health = check_forecast(table, sample, sample.observation_end, gates=gates)
    # the matured coverage is the share of ended rows inside their interval
    actual = weekly_series(sample)
    rows = table.merge(actual, on=["measure", "neighborhood", "week"])
    inside = ((rows["lower"] <= rows["y"]) & (rows["y"] <= rows["upper"])).mean()
    (perf,) = health.performance
    assert perf.metric == "coverage" and perf.value == pytest.approx(inside)
    assert perf.n == len(rows) and rows["week"].nunique() <= 10
    assert perf.ci_low <= perf.value <= perf.ci_high and perf.p_holm is not None
    assert perf.gate is not None and perf.margin == 0.05
    assert health.verdict == ("degraded" if perf.p_holm < 0.01 else "ok"), health.reasons
    # the realised series is reported, never counted: its level is what is forecast
    assert health.score.column == "weekly_value" and health.score.trending
    assert not health.score.counts and health.features == []
    # intervals far too narrow for what came: degraded, against the same gate figure
    narrow = table.assign(lower=table["mean"] - 0.1 * (table["mean"] - table["lower"]),
                          upper=table["mean"] + 0.1 * (table["upper"] - table["mean"]))
    hit = check_forecast(narrow, sample, sample.observation_end, gates=gates)
    assert hit.verdict == "degraded" and "coverage on labels matured" in hit.reasons[0]
    # before any week has ended there is nothing to score, and the message says from when
    first = table["week"].min()
    with pytest.raises(InputError, match=f"monitor from {first + pd.Timedelta(days=7):%Y-%m-%d}"):
        check_forecast(table, sample, first + pd.Timedelta(days=3), gates=gates)
    with pytest.raises(InputError, match="missing column"):
        check_forecast(table.drop(columns="upper"), sample, sample.observation_end)
