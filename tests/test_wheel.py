"""The built wheel trains end to end outside the checkout: configs and claims are package data,
the jobs are package code, nothing is looked up in a source tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "PYTHON", "VIRTUAL_ENV", "BARBERPRO"))}
    env["HOME"] = str(home)
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR",
                                          str(Path.home() / ".cache" / "pip"))
    return env


@pytest.mark.slow
def test_the_wheel_runs_the_pipeline_in_an_empty_folder(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q",
                    "-w", str(dist)], check=True, cwd=tmp_path)
    wheels = list(dist.glob("barberpro_ml-*.whl"))
    assert len(wheels) == 1
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = _clean_env(tmp_path)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                          str(wheels[0])], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert pip.returncode == 0, pip.stderr[-3000:]

    work = tmp_path / "empty"
    work.mkdir()
    cli = str(venv / "bin" / "barberpro-ml")
    shown = subprocess.run([cli, "config", "show", "pipeline"], cwd=work, env=env,
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "site-packages" in shown.stdout and str(ROOT) not in shown.stdout

    run = subprocess.run([cli, "pipeline", "--customers", "2000"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=1800)
    # 0: every family promoted; 3: a gate refused honestly. Either way it ran to the end.
    assert run.returncode in (0, 3), run.stdout[-3000:] + run.stderr[-3000:]
    summary = run.stdout[run.stdout.index("pipeline summary"):].splitlines()[1:]
    rows = {line.split(" | ")[0]: line.split(" | ") for line in summary if " | " in line}
    assert set(rows) == {"churn", "ltv", "recs", "segments", "forecast"}
    assert all(row[2] in ("passed", "refused") for row in rows.values()), rows
    assert (run.returncode == 3) == any(row[2] == "refused" for row in rows.values())
    # its own tracking store and data, in the folder it ran in
    assert (work / "mlflow.db").is_file()
    assert (work / "data" / "generated" / "pipeline" / "manifest.json").is_file()
