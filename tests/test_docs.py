"""What the README promises a new user, checked against the project itself."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_says_how_to_use_the_virtual_environment() -> None:
    quick_start = README[README.index("## Quick start"):README.index("## What is in the box")]
    assert ". .venv/bin/activate" in quick_start
    assert ".venv/bin/barberpro-ml" in quick_start
    # the commands that fail outside it are named with the way to run them
    assert "mlflow models serve" in quick_start and "mlflow run . -e" in quick_start
    assert "--env-manager local" in quick_start


def test_every_cli_command_in_the_readme_exists() -> None:
    from typer.testing import CliRunner

    from barberpro_ml.cli import app

    runner = CliRunner()
    commands = set(re.findall(r"^barberpro-ml ((?:train |config |claims )?[a-z]+)", README,
                              re.M))
    assert {"pipeline", "score", "serve", "train churn", "config show"} <= commands
    for command in sorted(commands):
        result = runner.invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_mlproject_entry_points_run_the_package_cli() -> None:
    text = (ROOT / "MLproject").read_text()
    for family in ("churn", "ltv", "recs", "segments"):
        script = ROOT / "experiments" / f"train_{family}.py"
        assert f"python experiments/train_{family}.py" in text
        assert f'"train", "{family}"' in script.read_text()
