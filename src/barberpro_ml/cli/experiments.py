"""Find and run the experiment scripts in ``experiments/``.

The experiment scripts are the single place where a family's job is written down (read config,
start a run, fit, evaluate, gate, register, promote), in the style of MLflow's examples; the
command line and ``MLproject`` both run them, so there is one code path for each job.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

PROJECT_ROOT_ENV = "BARBERPRO_ML_HOME"


def project_root() -> Path:
    """The checkout holding ``experiments/`` and ``configs/``.

    Looked up in order: ``$BARBERPRO_ML_HOME``, the current directory and its parents, the
    source checkout this package was installed from (editable installs).
    """
    candidates: list[Path] = []
    if os.environ.get(PROJECT_ROOT_ENV):
        candidates.append(Path(os.environ[PROJECT_ROOT_ENV]))
    cwd = Path.cwd().resolve()
    candidates += [cwd, *cwd.parents]
    candidates.append(Path(__file__).resolve().parents[3])
    for root in candidates:
        if (root / "experiments").is_dir() and (root / "configs").is_dir():
            return root
    raise FileNotFoundError(
        "cannot find the project checkout (a folder with experiments/ and configs/); run from "
        f"the checkout or set {PROJECT_ROOT_ENV}")


def load_experiment(family: str) -> ModuleType:
    """Import ``experiments/train_<family>.py`` as a module."""
    path = project_root() / "experiments" / f"train_{family}.py"
    if not path.exists():
        available = sorted(p.stem.removeprefix("train_")
                           for p in path.parent.glob("train_*.py"))
        raise FileNotFoundError(f"no experiment for family {family!r} at {path}; "
                                f"available: {available}")
    spec = importlib.util.spec_from_file_location(f"barberpro_experiment_{family}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before running so pydantic can resolve the script's postponed annotations.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
