"""The HTML report (`barberpro-ml report`): its numbers, its sections, that it is
self-contained and escaped, the registry's gate table, the command line, and that a headless
Chromium renders it with its charts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import barberpro_ml.cli.main  # noqa: F401  (the module, not the function `main`)
from barberpro_ml.analytics import kpis
from barberpro_ml.analytics import report as rp
from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.errors import InputError
from requirements import missing

cli = sys.modules["barberpro_ml.cli.main"]
AS_OF = "2024-12-15 12:00"
FAMILIES = ("barberpro-churn", "barberpro-ltv", "barberpro-recs", "barberpro-segments")
# every family with a training job is reported; the scoring registry has no forecast champion
REPORTED = (*FAMILIES, "barberpro-forecast")


@pytest.fixture(scope="module")
def data() -> MarketplaceData:
    return simulate(SimulationConfig(n_customers=900, seed=5))


def synthetic_forecast(level: float = 0.89, weeks: int = 60,
                       horizons: int = 13) -> rp.ForecastSection:
    """A weekly series and a forecast of it, in the forecasting module's contract."""
    ds = pd.date_range("2023-10-02", periods=weeks, freq="W-MON")
    y = 500 + 40 * np.sin(np.arange(weeks) / 4)
    ahead = pd.date_range(ds[-1] + pd.Timedelta(7, "D"), periods=horizons, freq="W-MON")
    mean = 520 + 2.0 * np.arange(horizons)
    spread = 30 + 4.0 * np.arange(horizons)
    forecast = pd.DataFrame({"ds": ahead, "horizon": np.arange(1, horizons + 1),
                             "mean": mean, "lower": mean - spread, "upper": mean + spread})
    coverage = rp.ForecastCoverage(level=level, coverage=0.865, ci_low=0.842, ci_high=0.886,
                                   n=520)
    return rp.ForecastSection(pd.DataFrame({"ds": ds, "y": y}), forecast, coverage,
                              model="synthetic")


def gate_frame(**overrides: Any) -> pd.DataFrame:
    row = {"model_name": "barberpro-churn", "family": "churn", "champion_version": "3",
           "verified": True, "verification": "", "check": "churn-auc", "metric": "roc_auc",
           "claimed": 0.9, "direction": "at_least", "observed": 0.95, "ci_low": 0.94,
           "ci_high": 0.96, "verdict": "pass", "blocking": True, "reason": "lower bound ok"}
    return pd.DataFrame([row | overrides])


class _Cells(HTMLParser):
    """The KPI cells (data-measure, data-month) with their text and data-value."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], tuple[str, str]] = {}
        self._open: tuple[tuple[str, str], str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "td" and a.get("data-measure"):
            self._open = ((str(a["data-measure"]), str(a["data-month"])),
                          str(a.get("data-value")))
            self._text = []
        elif tag == "br" and self._open is not None:
            self._text.append("\n")

    def handle_data(self, text: str) -> None:
        if self._open is not None:
            self._text.append(text)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._open is not None:
            key, value = self._open
            self.cells[key] = ("".join(self._text).split("\n")[0].strip(), value)
            self._open = None


@pytest.fixture(scope="module")
def page(data: MarketplaceData) -> str:
    return rp.build_report(data, AS_OF, forecast=synthetic_forecast(), gates=gate_frame(),
                           data_name="small simulation")


# --------------------------------------------------------------------------- content
def test_kpi_cells_equal_a_direct_kpis_call(data: MarketplaceData, page: str) -> None:
    direct = kpis(data, list(rp.REPORT_MEASURES), freq="month", start="2024-01-01",
                  as_of=AS_OF)
    parser = _Cells()
    parser.feed(page)
    assert len(parser.cells) == 12 * len(rp.REPORT_MEASURES)
    for month in ("2024-03", "2024-12"):
        row = direct[direct["month"] == pd.Timestamp(f"{month}-01")].iloc[0]
        for measure in ("net_revenue", "completed_visits", "cancellation_rate",
                        "average_rating", "active_customers"):
            text, value = parser.cells[(measure, month)]
            assert text == rp.format_measure(measure, row[measure], "USD")
            assert float(value) == pytest.approx(float(row[measure]), rel=1e-12)
    revenue = parser.cells[("net_revenue", "2024-03")][0]
    assert revenue.startswith("USD ") and "," in revenue
    assert parser.cells[("cancellation_rate", "2024-03")][0].endswith("%")


def test_page_has_every_section_title_units_and_definitions(page: str) -> None:
    assert "As of 2024-12-15 12:00 UTC" in page
    assert "event history 2023-01-01 to 2024-12-31" in page
    assert "The last month, December 2024, is partial" in page
    for section in ("kpis", "cohorts", "funnel", "forecast", "gates"):
        assert f'<section id="{section}">' in page
    assert "USD per visit" in page and "% of appointments" in page
    # the definitions footnote quotes the catalogue
    assert rp.MEASURES["average_ticket"].formula.replace("/", "/") in page
    assert "All customers" in page  # the funnel's total row
    assert 'data-charts-expected="4"' in page


def test_page_is_self_contained(page: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", page, re.I)
    assert "@import" not in page and "<link" not in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert page.count('src="data:image/png;base64,') == 4


def test_data_and_registry_strings_are_escaped(data: MarketplaceData) -> None:
    evil = "<script>alert(1)</script>"
    gates = gate_frame(model_name="barberpro-<b>x</b>", reason=f"because {evil}",
                       check='id"onmouseover="x')
    frames = rp.report_frames(data, AS_OF, data_name=evil)
    html = rp.render_report(frames, gates=gates, forecast_note=evil)
    assert evil not in html and "<b>x</b>" not in html and 'id"onmouseover' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # the chart check only


# --------------------------------------------------------------------------- forecast
def test_forecast_section_shows_the_fan_chart_and_its_coverage() -> None:
    section = rp.forecast_section_html(synthetic_forecast())
    assert section.count('<img class="chart"') == 1
    assert "89% interval covered 86.5% [95% CI 84.2%, 88.6%] of 520" in section
    assert "below its nominal 89%: the interval is too narrow" in section
    assert "synthetic" in section
    fig = rp.plot_forecast(synthetic_forecast())
    assert "86.5%" in fig.axes[0].get_title() and "520" in fig.axes[0].get_title()


def test_forecast_coverage_consistent_with_its_level_says_so() -> None:
    good = synthetic_forecast()
    coverage = rp.ForecastCoverage(level=0.89, coverage=0.88, ci_low=0.85, ci_high=0.91, n=260)
    section = rp.ForecastSection(good.history, good.forecast, coverage, series="Net revenue",
                                 unit="USD per week")
    html = rp.forecast_section_html(section)
    assert "consistent with its nominal 89%" in html and "USD per week" in html


def test_without_a_forecast_the_page_says_so_and_why(data: MarketplaceData) -> None:
    html = rp.build_report(data, AS_OF, forecast_note="the forecasting module is not there")
    assert "No forecast model was available" in html
    assert "Reason: the forecasting module is not there" in html
    assert 'data-charts-expected="3"' in html
    assert "No forecast model was available" in rp.forecast_section_html(None)


@pytest.mark.parametrize("change, message", [
    (lambda s: (s.history.drop(columns="y"), s.forecast), "missing column"),
    (lambda s: (s.history, s.forecast.assign(horizon=s.forecast["horizon"] + 1)), "1..13"),
    (lambda s: (s.history, s.forecast.assign(lower=s.forecast["mean"] + 1)), "lower <= mean"),
    (lambda s: (s.history, s.forecast.assign(ds=s.forecast["ds"] - pd.Timedelta(30, "D"))),
     "after the last history week"),
    (lambda s: (s.history.iloc[::-1], s.forecast), "increasing"),
])
def test_forecast_frames_outside_the_contract_are_refused(change: Any, message: str) -> None:
    good = synthetic_forecast()
    history, forecast = change(good)
    with pytest.raises(InputError, match=re.escape(message)):
        rp.ForecastSection(history, forecast, good.coverage)


def test_coverage_outside_its_interval_is_refused() -> None:
    with pytest.raises(InputError, match="ci_low <= coverage"):
        rp.ForecastCoverage(level=0.89, coverage=0.95, ci_low=0.8, ci_high=0.9, n=10)


# --------------------------------------------------------------------------- as_of
@pytest.mark.parametrize("as_of, message", [
    ("2019-06-30", "before the data start"), ("2024-13-45", "cannot read"),
])
def test_bad_as_of_is_refused(data: MarketplaceData, as_of: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        rp.report_frames(data, as_of)


def test_as_of_after_the_data_is_noted(data: MarketplaceData) -> None:
    frames = rp.report_frames(data, "2025-03-01")
    assert any("after the last event" in n for n in frames.notes)


# --------------------------------------------------------------------------- gate table
def test_gate_table_columns_agree_with_the_renderer() -> None:
    from barberpro_ml.registry import GATE_TABLE_COLUMNS

    assert GATE_TABLE_COLUMNS == rp.GATE_TABLE_COLUMNS


def test_gate_table_of_the_registered_champions(scoring_registry: Any) -> None:
    from barberpro_ml.registry import champion_gate_table

    table = champion_gate_table(tracking_uri=scoring_registry.tracking_uri)
    assert list(table["model_name"].unique()) == list(REPORTED)
    for name in FAMILIES:
        rows = table[table["model_name"] == name]
        family = name.removeprefix("barberpro-")
        assert set(rows["champion_version"]) == {scoring_registry.versions[name]}
        assert rows["verified"].all() and (rows["verification"] == "").all()
        claim = rows[rows["check"] == f"test-{family}"].iloc[0]
        assert claim["verdict"] == "pass" and claim["family"] == family
        assert claim["observed"] >= claim["claimed"]
        assert "champion" in set(rows["check"])
    html = rp.gate_section(table)
    assert html.count(">verified<") == 4 and html.count(">no champion<") == 1


def test_gate_table_without_champions_and_with_other_models(mlflow_store: Any) -> None:
    from mlflow import MlflowClient

    from barberpro_ml.registry import champion_gate_table

    client = MlflowClient()
    client.create_registered_model("barberpro-interventions")
    client.create_registered_model("barberpro-churn.promotion-lock")
    client.create_registered_model("someone-elses-model")
    table = champion_gate_table(client=client)
    assert list(table["model_name"]) == [*REPORTED, "barberpro-interventions"]
    assert table["champion_version"].isna().all() and not table["verified"].any()
    assert list(table["verification"]) == ["not registered"] * 5 + ["no champion"]
    html = rp.gate_section(table)
    assert html.count(">no champion<") == 6
    assert html.count("Nothing promoted (not registered).") == 5


def test_missing_sqlite_store_is_detected_not_created(tmp_path: Path) -> None:
    from barberpro_ml.registry import missing_sqlite_store

    db = tmp_path / "mlflow.db"
    assert missing_sqlite_store(f"sqlite:///{db}") == db
    assert not db.exists()
    db.touch()
    assert missing_sqlite_store(f"sqlite:///{db}") is None
    assert missing_sqlite_store("http://127.0.0.1:5000") is None


# --------------------------------------------------------------------------- command line
@pytest.fixture
def keep_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def run(*args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args))


def test_cli_writes_the_report(scoring_registry: Any, tmp_path: Path,
                               keep_tracking_uri: None) -> None:
    out = tmp_path / "nested" / "report.html"
    result = run("report", "--as-of", "2024-12-31", "--out", str(out), "--data",
                 str(scoring_registry.data_dir), "--tracking-uri", scoring_registry.tracking_uri)
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"wrote {out}" in result.output and "4 of 5 families with a champion" in result.output
    html = out.read_text()
    assert "As of 2024-12-31 00:00 UTC" in html
    for name, version in scoring_registry.versions.items():
        assert name in html and f"v{version}" in html
    assert html.count(">verified<") == 4
    assert "No forecast model was available" in html
    assert "barberpro-forecast has no champion" in html


def test_cli_without_a_registry_says_so_and_creates_none(tmp_path: Path,
                                                         keep_tracking_uri: None,
                                                         data: MarketplaceData) -> None:
    folder = data.save(tmp_path / "events")
    db = tmp_path / "absent.db"
    result = run("report", "--out", str(tmp_path / "r.html"), "--data", str(folder),
                 "--tracking-uri", f"sqlite:///{db}")
    assert result.exit_code == 0, (result.output, result.exception)
    assert not db.exists()
    assert "No model registry" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("as_of, message", [
    ("2019-06-30", "before the data start"), ("2024-13-45", "Invalid value for '--as-of'"),
])
def test_cli_bad_as_of_exits_2_and_writes_nothing(tmp_path: Path, data: MarketplaceData,
                                                 keep_tracking_uri: None, as_of: str,
                                                 message: str) -> None:
    folder = data.save(tmp_path / "events")
    out = tmp_path / "report.html"
    result = run("report", "--as-of", as_of, "--out", str(out), "--data", str(folder),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_cli_refuses_an_out_that_is_a_folder(tmp_path: Path) -> None:
    result = run("report", "--out", str(tmp_path), "--data", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "is a directory" in result.output


# --------------------------------------------------------------------------- in a browser
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    missing("a headless Chromium (apt-get install -y chromium)")


def test_chromium_renders_the_page_with_its_charts(page: str, tmp_path: Path) -> None:
    browser = chromium()
    file = rp.write_report(page, tmp_path / "report.html")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--virtual-time-budget=10000", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", file.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None, dom[:500]
    expected = re.search(r'data-charts-expected="(\d+)"', body.group(0))
    rendered = re.search(r'data-charts-rendered="(\d+)"', body.group(0))
    assert expected is not None and rendered is not None, body.group(0)
    assert int(expected.group(1)) == 4
    assert rendered.group(1) == expected.group(1)

    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,2400",
                    file.as_uri()], capture_output=True, timeout=120, check=True)
    from PIL import Image

    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1280, 2400)
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None
    # text, table rules, the trend lines and the heatmap's colour ramp: a blank or
    # unstyled page has a handful
    assert len(colours) > 200
    assert max(count for count, _ in colours) < 0.95 * 1280 * 2400
