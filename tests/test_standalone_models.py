"""Registered models load without this package.

A logged model ships the ``barberpro_ml`` source (``code_paths``) and a ``requirements.txt``
derived from what loading and predicting it imports (``registry/_requirements.py``). The slow test
proves the whole promise where it matters: in a new virtual environment holding only ``mlflow``
and the models' own requirements (``barberpro_ml`` neither installed nor on ``sys.path``),
``mlflow.pyfunc.load_model("models:/barberpro-<family>@champion")`` predicts the logged input
example of every family exactly as it does inside the package. The fast tests pin the parts:
what a model's requirements hold, the refusal of a model that loads only in this process, and
the lazy imports that keep training, evaluation, CLI and service code out of a model's load.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
import types
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import barberpro_ml
import barberpro_ml.models
import barberpro_ml.models.recs
import barberpro_ml.registry
from barberpro_ml._lazy import _exports
from barberpro_ml.registry import log_model
from requirements import missing

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("churn", "ltv", "recs", "segments")
# Used by training, evaluation, the command line or the service, never to load and predict;
# none of them may be in a model's requirements. (implicit fits ALS and BPR; the fitted
# recommenders keep their factors as arrays and predict without it.)
NOT_FOR_PREDICTING = {"barberpro-ml", "typer", "rich", "optuna", "shap", "pandera", "pyyaml",
                      "matplotlib", "fastapi", "fastapi-offline", "uvicorn", "implicit"}
_LAZY_PACKAGES = (barberpro_ml, barberpro_ml.models, barberpro_ml.models.recs,
                  barberpro_ml.registry)
# pip's words for "the index could not be reached" (then the test is missing its network)
_OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary "
                      r"failure in name resolution|Network is unreachable|ProxyError|"
                      r"Could not fetch URL")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


# --------------------------------------------------------------------------- the parts (fast)
def test_requirements_are_what_loading_and_predicting_import(mlflow_store: Any) -> None:
    X = pd.DataFrame({"visits": [0.0, 1, 5, 6], "spend": [10.0, 0, 40, 55]})
    with mlflow.start_run():
        info = log_model(LogisticRegression().fit(X, [1, 1, 0, 0]), X)
    requirements = Path(mlflow.pyfunc.get_model_dependencies(info.model_uri)) \
        .read_text(encoding="utf-8").split()
    # the estimator (scikit-learn, numpy), the wrapper (pandas, pydantic, cloudpickle) and
    # MLflow's own pin: nothing of the package's other dependencies, and not the package
    assert {_name(r) for r in requirements} == {"mlflow", "cloudpickle", "numpy", "pandas",
                                                 "pydantic", "scikit-learn"}
    pinned = dict(r.split("==") for r in requirements)
    assert pinned["scikit-learn"] == metadata.version("scikit-learn")
    assert pinned["mlflow"] == metadata.version("mlflow")


_FRESH_IMPORTS = """\
import builtins, json, sys
import mlflow

# The imports made while MLflow loads the model and it predicts, by the package's code (the
# shipped copy), the entry script (run as code_model_<id>) or cloudpickle on their behalf.
seen, original = set(), builtins.__import__
def recording(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if level == 0 and importer.startswith(("barberpro_ml", "code_model_", "cloudpickle")):
        seen.add(name.partition(".")[0])
    return original(name, globals, locals, fromlist, level)
local = mlflow.artifacts.download_artifacts(sys.argv[1])
example = mlflow.models.Model.load(local).load_input_example(local)
builtins.__import__ = recording
try:
    mlflow.pyfunc.load_model(local).predict(example)
finally:
    builtins.__import__ = original
print(json.dumps({"seen": sorted(seen), "package": sys.modules["barberpro_ml"].__file__}))
"""


def test_derived_requirements_are_what_a_fresh_interpreter_imports(mlflow_store: Any,
                                                                   tmp_path: Path) -> None:
    # The reference: MLflow loads the model in a new process (the package imported for the
    # first time there, from the model's own copy) and it predicts, every import recorded.
    from barberpro_ml.models import ChurnClassifier
    from barberpro_ml.registry._requirements import pins

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"visits_90d": rng.poisson(3, 300).astype("int64"),
                      "spend_90d": rng.gamma(2.0, 30.0, 300),
                      "channel": pd.Categorical(rng.choice(["organic", "paid", "referral"],
                                                           300))})
    y = (rng.random(300) < 1 / (1 + np.exp(X["visits_90d"] - 3))).astype(int)
    model = ChurnClassifier(n_estimators=20, random_state=0, n_jobs=1).fit(X, y)
    with mlflow.start_run():
        info = log_model(model, X)
    requirements = Path(mlflow.pyfunc.get_model_dependencies(info.model_uri)) \
        .read_text(encoding="utf-8").split()
    done = subprocess.run([sys.executable, "-c", _FRESH_IMPORTS, info.model_uri],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    assert "/code/barberpro_ml/" in fresh["package"]  # the shipped copy, imported afresh
    reference = pins(fresh["seen"], skip={"barberpro_ml"})
    assert sorted(r for r in requirements if _name(r) != "mlflow") == reference
    assert "xgboost" in {_name(r) for r in reference}  # the churn model's boosted trees


def test_a_model_that_loads_only_in_this_process_is_not_logged(
        mlflow_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A class whose module exists only in this process: pickled by reference, it cannot be
    # unpickled anywhere else.
    module = types.ModuleType("made_up_in_this_process")

    class InMemoryClassifier(LogisticRegression):
        pass

    InMemoryClassifier.__module__ = module.__name__
    InMemoryClassifier.__qualname__ = "InMemoryClassifier"
    module.InMemoryClassifier = InMemoryClassifier  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    X = pd.DataFrame({"visits": [0.0, 1, 5, 6]})
    estimator = InMemoryClassifier().fit(X, [1, 1, 0, 0])
    with mlflow.start_run(), pytest.raises(RuntimeError, match="made_up_in_this_process"):
        log_model(estimator, X)


def test_loading_a_model_imports_only_what_predicting_needs(tmp_path: Path) -> None:
    # What a loaded model imports of the package: the wrappers (the entry scripts) and the
    # estimators' modules; in a fresh interpreter, so nothing was imported before.
    script = (
        "import sys\n"
        "import barberpro_ml.registry._pyfunc_entry, barberpro_ml.registry._recs_pyfunc_entry\n"
        "import barberpro_ml.registry._forecast_pyfunc_entry\n"
        "import barberpro_ml.models.churn, barberpro_ml.models.ltv_candidates\n"
        "import barberpro_ml.models.segments, barberpro_ml.models.recs.item_knn\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(done.stdout.split())
    ours = sorted(m for m in loaded if m.startswith("barberpro_ml."))
    for stage in ("data", "features", "evaluation", "gates", "jobs", "scoring", "cli"):
        assert not [m for m in ours if m.startswith(f"barberpro_ml.{stage}")], ours
    assert "barberpro_ml.registry.promotion" not in loaded
    assert not {"pandera", "matplotlib", "optuna", "shap", "typer", "implicit",
                "statsforecast"} & loaded
    assert "barberpro_ml.analytics" not in loaded


@pytest.mark.parametrize("package", _LAZY_PACKAGES, ids=lambda p: p.__name__)
def test_lazy_exports_are_the_public_names_and_all_resolve(package: types.ModuleType) -> None:
    assert package.__file__ is not None
    listed = set(_exports(Path(package.__file__), package.__name__))
    assert listed == set(package.__all__) - {"__version__"}
    for name in package.__all__:
        assert getattr(package, name) is not None
        assert name in dir(package)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        _ = package.no_such_name


def test_an_export_named_like_its_submodule_stays_the_export(tmp_path: Path) -> None:
    # as with eager imports: registry.regate is the function even after its module loaded
    script = (
        "import types\n"
        "import barberpro_ml.registry.model_card, barberpro_ml.registry.regate\n"
        "from barberpro_ml import registry\n"
        "from barberpro_ml.registry import regate\n"
        "assert not isinstance(regate, types.ModuleType), regate\n"
        "assert not isinstance(registry.model_card, types.ModuleType), registry.model_card\n"
        "assert registry.regate is regate\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


# --------------------------------------------------------------------------- the whole (slow)
_CONSUMER = """\
import pickle, sys
try:
    import barberpro_ml
except ModuleNotFoundError:
    installed = False
else:
    installed = barberpro_ml.__file__
import mlflow

results = {"installed": installed, "prefix": sys.prefix, "families": {}}
for family, name in [line.split() for line in sys.argv[2:]]:
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    example = model.input_example
    results["families"][family] = (example, model.predict(example),
                                   sys.modules["barberpro_ml"].__file__)
with open(sys.argv[1], "wb") as fh:
    pickle.dump(results, fh)
"""


def _clean_env(home: Path, tracking_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "PYTHON", "VIRTUAL_ENV", "BARBERPRO"))}
    env["HOME"] = str(home)
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return env


def _in_package(registry: Any, names: dict[str, str], tmp_path: Path
                ) -> tuple[dict[str, tuple[pd.DataFrame, Any]], list[str]]:
    """Each champion's predictions on its input example, loaded here, and the union of the
    champions' requirements."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = tracking_utils._tracking_uri
    mlflow.set_tracking_uri(registry.tracking_uri)
    try:
        predictions = {}
        requirements: set[str] = set()
        for family, name in names.items():
            model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
            example = model.input_example
            predictions[family] = (example, model.predict(example))
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}@champion/requirements.txt",
                dst_path=str(tmp_path / "requirements" / family))
            lines = Path(path).read_text(encoding="utf-8").splitlines()
            own = {line.strip() for line in lines if line.strip()
                   and not line.startswith("#")}
            assert not {_name(r) for r in own} & NOT_FOR_PREDICTING, (family, sorted(own))
            requirements |= own
    finally:
        mlflow.set_tracking_uri(previous)
    by_name: dict[str, set[str]] = {}
    for requirement in requirements:
        by_name.setdefault(_name(requirement), set()).add(requirement)
    # logged in one environment, the families' pins agree
    assert all(len(pins) == 1 for pins in by_name.values()), by_name
    return predictions, sorted(requirements)


@pytest.mark.slow
def test_registered_models_load_and_predict_without_the_package(
        scoring_registry: Any, tmp_path: Path) -> None:
    names = {family: f"barberpro-{family}" for family in FAMILIES}
    assert set(names.values()) == set(scoring_registry.versions)
    expected, requirements = _in_package(scoring_registry, names, tmp_path)
    mlflow_pin = f"mlflow=={metadata.version('mlflow')}"
    assert mlflow_pin in requirements

    # one fresh virtual environment, outside the checkout, for every family
    outside = tmp_path / "consumer"
    outside.mkdir()
    assert not outside.resolve().is_relative_to(ROOT)
    env = _clean_env(outside, scoring_registry.tracking_uri)
    venv = outside / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True,
                          text=True, timeout=300, check=False)
    if made.returncode != 0:
        missing(f"a virtual environment with pip (python -m venv failed: {made.stderr[-500:]})")
    python = str(venv / "bin" / "python")
    wanted = outside / "requirements.txt"
    wanted.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    started = time.perf_counter()
    pip = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          mlflow_pin, "-r", str(wanted)], cwd=outside, env=env,
                         capture_output=True, text=True, timeout=1800, check=False)
    installed_s = time.perf_counter() - started
    if pip.returncode != 0 and _OFFLINE.search(pip.stdout + pip.stderr):
        missing("the package index, to install the models' requirements "
                f"({pip.stderr.strip().splitlines()[-1]})")
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]

    script = outside / "consumer.py"
    script.write_text(_CONSUMER, encoding="utf-8")
    out = outside / "predictions.pkl"
    started = time.perf_counter()
    run = subprocess.run([python, "-I", str(script), str(out),
                          *(f"{family} {name}" for family, name in names.items())],
                         cwd=outside, env=env, capture_output=True, text=True, timeout=600,
                         check=False)
    loaded_s = time.perf_counter() - started
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-5000:]
    with out.open("rb") as fh:
        consumer = pickle.load(fh)

    assert consumer["installed"] is False  # `import barberpro_ml` failed before loading
    assert Path(consumer["prefix"]).resolve() == venv.resolve()
    for family, (example, predicted, package_file) in consumer["families"].items():
        # the package came from the model's own artifacts (MLflow's download), not a checkout
        assert "/code/barberpro_ml/" in package_file and str(ROOT) not in package_file
        here_example, here = expected[family]
        pd.testing.assert_frame_equal(example, here_example)
        # Exactly equal: the same estimator, the same pinned libraries, the same input.
        if isinstance(here, pd.DataFrame):
            pd.testing.assert_frame_equal(predicted, here, check_exact=True)
        else:
            np.testing.assert_array_equal(predicted, here)
    assert set(consumer["families"]) == set(FAMILIES)
    print(f"\nstandalone models: {len(requirements)} requirements, pip install "
          f"{installed_s:.0f} s, load + predict of {len(FAMILIES)} families {loaded_s:.1f} s")
