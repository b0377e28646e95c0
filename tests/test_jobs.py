"""The jobs stage: typed configs, shipped configs, the CLI's config errors, definitions shared
by every stage, data-set identity in the registry, and a pipeline that degrades."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from barberpro_ml.cli import app
from barberpro_ml.config import SHIPPED_CONFIGS, shipped_config
from barberpro_ml.data import MarketplaceData, SimulationConfig, simulate
from barberpro_ml.definitions import DEFAULT_DEFINITIONS, Definitions
from barberpro_ml.errors import ConfigError
from barberpro_ml.jobs import JOBS, churn, load_config, pipeline, segments
from barberpro_ml.registry import alias_version, promotion_log

runner = CliRunner()
SRC = Path(__file__).resolve().parents[1] / "src" / "barberpro_ml"


# --------------------------------------------------------------------------- configs
@pytest.mark.parametrize("job", sorted(JOBS))
def test_every_shipped_config_loads_and_equals_the_models_defaults(job: str) -> None:
    shipped = load_config(job)
    assert type(shipped)().model_dump() == shipped.model_dump()


def test_shipped_definitions_equal_the_defaults() -> None:
    assert Definitions.from_yaml(shipped_config("definitions.yaml")) == DEFAULT_DEFINITIONS


def test_every_shipped_config_file_exists_in_the_package_and_the_checkout() -> None:
    for name in SHIPPED_CONFIGS:
        assert shipped_config(name).is_file()
        # the checkout's configs/ is the package's folder, not a copy that could drift
        assert (SRC.parents[1] / "configs" / name).resolve() == shipped_config(name).resolve()


def test_unknown_key_and_wrong_type_are_named_with_file_line_and_expectation(
        tmp_path: Path) -> None:
    bad = tmp_path / "ltv.yaml"
    bad.write_text("n_train_cutoffs: four\ncutoff_spacing_dayz: 61\nmodel:\n  max_dept: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config("ltv", bad)
    problems = caught.value.problems
    assert len(problems) == 3
    assert f"{bad}:1: n_train_cutoffs: expected an integer, got 'four'" in problems
    assert any(p.startswith(f"{bad}:2: unknown key 'cutoff_spacing_dayz'")
               and "cutoff_spacing_days" in p for p in problems)
    assert any("'max_dept'" in p and "did you mean 'max_depth'" in p for p in problems)


def test_cli_refuses_a_misspelled_key_with_exit_2_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_train_cutofs: 2\nevaluation:\n  n_bootstrap: lots\n")
    result = runner.invoke(app, ["train", "ltv", "--config", str(bad)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "unknown key 'n_train_cutofs'" in result.output
    assert "evaluation.n_bootstrap: expected an integer, got 'lots'" in result.output


def test_cli_config_show_prints_the_effective_config(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "show", "churn"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown == load_config("churn").model_dump(mode="json")
    partial = tmp_path / "churn.yaml"
    partial.write_text("n_train_cutoffs: 2\n")
    result = runner.invoke(app, ["config", "show", "churn", "--config", str(partial)])
    shown = yaml.safe_load(result.stdout)
    assert shown["n_train_cutoffs"] == 2 and shown["cutoff_spacing_days"] == 91
    assert runner.invoke(app, ["config", "show", "nojob"]).exit_code == 4


def test_pipeline_checks_every_family_config_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "churn.yaml").write_text("horizon_days: 90\n")  # now a shared definition
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"configs": {"churn": "churn.yaml"}, "out": str(tmp_path / "d")}))
    result = runner.invoke(app, ["pipeline", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "unknown key 'horizon_days'" in result.output
    assert not (tmp_path / "d").exists()  # refused before simulating anything


def test_no_job_is_imported_by_path() -> None:
    # One module imports by name on purpose, and imports no job: the lazy exports, the names
    # each package lists statically in its TYPE_CHECKING block (barberpro_ml/_lazy.py).
    for path in set(SRC.rglob("*.py")) - {SRC / "_lazy.py"}:
        text = path.read_text()
        assert not re.search(r"import_module|runpy|spec_from_file_location", text), path
    experiments = Path(__file__).resolve().parents[1] / "experiments"
    for script in experiments.glob("*.py"):
        code = [line for line in script.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
        assert len(code) <= 15, f"{script} holds job logic"


# --------------------------------------------------------------------------- shared definitions
SMALL_CHURN = {"n_train_cutoffs": 2, "oracle": {"enabled": False}, "backtest": {"enabled": False},
               "model": {"n_estimators": 40, "learning_rate": 0.1, "random_state": 0,
                         "n_jobs": 1},
               "evaluation": {"n_bootstrap": 1000, "seed": 0, "min_slice_size": 100}}


@pytest.fixture(scope="module")
def small_data() -> MarketplaceData:
    return simulate(SimulationConfig(n_customers=1500, seed=5))


def test_the_activity_window_set_in_one_file_reaches_labels_and_the_registered_model(
        mlflow_store: Any, tmp_path: Path, small_data: MarketplaceData) -> None:
    (tmp_path / "definitions.yaml").write_text("active_window_days: 120\n"
                                               "churn_horizon_days: 60\n")
    config = tmp_path / "churn.yaml"
    config.write_text(yaml.safe_dump(SMALL_CHURN))
    result = churn.run(config, data=small_data)
    assert result.definitions is not None
    assert result.definitions.active_window_days == 120
    assert result.definitions.churn_horizon_days == 60
    client = MlflowClient()
    mv = client.get_model_version("barberpro-churn", result.version or "")
    assert Definitions.from_tags(mv.tags) == result.definitions
    run = client.get_run(result.run_id)
    # the training population is the 120-day active customers, labelled over 60 days
    cutoffs = run.data.params["train_cutoffs"].split(",")
    assert (__import__("pandas").Timestamp(run.data.params["test_cutoff"])
            - __import__("pandas").Timestamp(run.data.params["validation_cutoff"])).days == 60
    assert len(cutoffs) == 2
    import mlflow

    test_rows = mlflow.artifacts.download_artifacts(
        f"runs:/{result.run_id}/gate_inputs/test.parquet")
    frame = __import__("pandas").read_parquet(test_rows)
    assert frame["days_since_last_visit"].max() <= 120
    assert frame["days_since_last_visit"].max() > 100  # and the window is not narrower


# --------------------------------------------------------------------------- data-set identity
SEGMENTS = {"model": {"k_values": [3, 4], "random_state": 0},
            "evaluation": {"n_bootstrap": 1000, "seed": 0}}


def test_a_try_out_on_another_data_set_does_not_replace_the_champion(
        mlflow_store: Any, tmp_path: Path, small_data: MarketplaceData) -> None:
    config = tmp_path / "segments.yaml"
    config.write_text(yaml.safe_dump(SEGMENTS))
    first = segments.run(config, data=small_data)
    assert first.promoted and first.data_set is not None
    assert first.data_set.name.startswith("simulated(n_customers=1500, seed=5")
    tags = MlflowClient().get_model_version("barberpro-segments", first.version or "").tags
    assert tags["data_set.name"] == first.data_set.name
    assert tags["data_set.digest"] == small_data.digest()

    try_out = simulate(SimulationConfig(n_customers=300, seed=5))
    second = segments.run(config, data=try_out)
    assert not second.promoted and second.refused_because == "data-set"
    assert alias_version("barberpro-segments") == first.version
    assert "--new-data-set" in second.why()
    log = promotion_log("barberpro-segments", include_refused=True)
    assert "data-set" in set(log["refused_because"])

    third = segments.run(segments.load_config(config, new_data_set=True), data=try_out)
    assert third.promoted and alias_version("barberpro-segments") == third.version


# --------------------------------------------------------------------------- degrading pipeline
def _pipeline_files(tmp_path: Path, claims: list[dict[str, Any]], churn_cfg: dict[str, Any]
                    ) -> Path:
    (tmp_path / "segments.yaml").write_text(yaml.safe_dump(SEGMENTS))
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(churn_cfg))
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump({"claims": claims}))
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({
        "families": ["churn", "segments"], "simulation": {"n_customers": 1500, "seed": 5},
        "out": str(tmp_path / "data"), "claims": "claims.yaml",
        "configs": {"churn": "churn.yaml", "segments": "segments.yaml"}}))
    return cfg


CHURN_CLAIM = {"id": "t-churn", "family": "churn", "metric": "roc_auc", "claimed": 0.6,
               "direction": "at_least", "policy": "point", "source": "test"}


def test_pipeline_runs_every_family_when_one_is_refused_and_exits_3(
        mlflow_store: Any, tmp_path: Path) -> None:
    impossible = {"id": "t-seg", "family": "segments", "metric": "silhouette", "claimed": 0.99,
                  "direction": "at_least", "policy": "point", "source": "test"}
    cfg = _pipeline_files(tmp_path, [CHURN_CLAIM, impossible], SMALL_CHURN)
    result = runner.invoke(app, ["pipeline", "--config", str(cfg)])
    assert result.exit_code == 3, result.output
    summary = result.stdout[result.stdout.index("pipeline summary"):]
    assert re.search(r"churn .*passed.*promoted v1", summary)
    assert re.search(r"segments .*refused.*none.*t-seg", summary)
    assert alias_version("barberpro-churn") == "1"
    assert alias_version("barberpro-segments") is None


def test_pipeline_records_a_family_that_stops_on_bad_input_and_goes_on(
        mlflow_store: Any, tmp_path: Path) -> None:
    seg_claim = {"id": "t-seg", "family": "segments", "metric": "silhouette", "claimed": 0.0,
                 "direction": "at_least", "policy": "point", "source": "test"}
    cfg = _pipeline_files(tmp_path, [CHURN_CLAIM, seg_claim], SMALL_CHURN)
    # a year of data: too short for the churn layout, enough for segments
    (tmp_path / "year.yaml").write_text("start: 2023-01-01\nend: 2024-01-01\n")
    raw = yaml.safe_load(cfg.read_text())
    raw["simulation"]["config"] = "year.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    result = pipeline.run(cfg)
    churn_row, seg_row = result.outcomes
    assert churn_row.verdict == "error" and churn_row.error_type == "NotEnoughDataError"
    assert "needs at least 450 days" in churn_row.why
    assert seg_row.verdict == "passed" and seg_row.result is not None and seg_row.result.promoted
    assert result.exit_code == 2


# --------------------------------------------------------------------------- calendars
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from barberpro_ml.errors import InputError, NotEnoughDataError  # noqa: E402
from barberpro_ml.jobs.base import training_cutoffs  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(span=st.integers(1, 1500), before=st.integers(0, 400), after=st.integers(1, 800),
       spacing=st.integers(1, 120), at_most=st.integers(1, 12))
def test_training_cutoffs_fit_the_data_or_say_what_is_missing(
        span: int, before: int, after: int, spacing: int, at_most: int) -> None:
    import pandas as pd

    start = pd.Timestamp("2020-01-01")
    end = start + pd.Timedelta(days=span)
    first_usable = start + pd.Timedelta(days=before)
    last = end - pd.Timedelta(days=after)
    try:
        cuts = training_cutoffs(first_usable=first_usable, last=last, spacing_days=spacing,
                                at_most=at_most, data_start=start, data_end=end,
                                days_before_first_cutoff=before, days_after_last_cutoff=after,
                                what="this layout")
    except NotEnoughDataError as exc:
        assert last < first_usable
        assert f"{span} days" in str(exc) and f"needs at least {before + after} days" in str(exc)
        return
    assert cuts == sorted(cuts) and cuts[-1] == last and cuts[0] >= first_usable
    assert len(cuts) == min(at_most, (last - first_usable).days // spacing + 1)
    assert all((b - a).days == spacing for a, b in itertools.pairwise(cuts))


SHORT_JOBS = {
    "churn": SMALL_CHURN,
    "ltv": {"model": {"n_estimators": 40, "random_state": 0, "n_jobs": 1},
            "evaluation": {"n_bootstrap": 200, "seed": 0}},
    "recs": {"candidates": {"pop": {"class": "PopularityRecommender",
                                    "params": {"by_group": True}}},
             "report_candidates": False, "evaluation": {"n_bootstrap": 200, "seed": 0}},
    "segments": {**SEGMENTS, "evaluation": {"n_bootstrap": 200, "seed": 0}},
}


@pytest.mark.slow
@pytest.mark.parametrize("months", [2, 7, 13])
def test_every_job_runs_or_names_the_shortfall_on_short_data(
        mlflow_store: Any, tmp_path: Path, months: int) -> None:
    import pandas as pd

    start = pd.Timestamp("2023-01-01")
    data = simulate(SimulationConfig(n_customers=400, seed=2, start=start,
                                     end=start + pd.DateOffset(months=months)))
    for family, job in SHORT_JOBS.items():
        config = tmp_path / f"{family}.yaml"
        config.write_text(yaml.safe_dump({**job, "promote": False}))
        try:
            result = JOBS[family].run(config, data=data)
        except (NotEnoughDataError, InputError) as exc:
            # exit 2 on the command line: the message names the span or what is short
            assert re.search(r"days|months|customers|interactions|no ", str(exc)), (family, exc)
            continue
        assert result.version is not None, family
