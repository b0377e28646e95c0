"""Command-line inputs refused at once, in one line, before any model is loaded: an ``--out``
that is a folder, an ``--as-of`` outside the timestamp range, a busy ``--port``; and an output
file that is never left half-written."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import barberpro_ml.cli.main  # noqa: F401  (the module, not the function `main`)
from barberpro_ml.errors import InputError
from barberpro_ml.features._common import to_as_of
from barberpro_ml.jobs.score import write_parquet_atomically

cli = sys.modules["barberpro_ml.cli.main"]


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading models (or data) fails the test: the refusals must come before."""
    def forbidden(*_: Any, **__: Any) -> Any:
        raise AssertionError("loaded the data or models before refusing the input")

    monkeypatch.setattr(cli, "_scoring_inputs", forbidden)


def run(*args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args))


def one_line_error(result: Any) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# --------------------------------------------------------------------------- score --out
def test_score_refuses_an_out_that_is_a_directory_up_front(tmp_path: Path,
                                                           no_models: None) -> None:
    line = one_line_error(run("score", "--out", str(tmp_path), "--data", str(tmp_path)))
    assert str(tmp_path) in line and "is a directory" in line
    assert list(tmp_path.iterdir()) == []


def test_score_refuses_an_out_under_a_file_up_front(tmp_path: Path, no_models: None) -> None:
    (tmp_path / "plain").write_text("x")
    line = one_line_error(run("score", "--out", str(tmp_path / "plain" / "scores.parquet")))
    assert "is a file, not a folder" in line


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"customer_id": [1, 2], "action": ["none", "offer"]})
    target = tmp_path / "out" / "scores.parquet"

    def half_then_full(self: pd.DataFrame, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_then_full)
    with pytest.raises(InputError, match="No space left on device"):
        write_parquet_atomically(frame, target)
    assert list((tmp_path / "out").iterdir()) == []
    monkeypatch.undo()

    target.mkdir()  # the target became a folder after the up-front check
    with pytest.raises(InputError, match=str(target)):
        write_parquet_atomically(frame, target)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["scores.parquet"]
    assert list(target.iterdir()) == []


def test_an_interrupted_write_leaves_no_partial_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: pd.DataFrame, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"PAR1")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_parquet", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_parquet_atomically(pd.DataFrame({"a": [1]}), tmp_path / "s.parquet")
    assert list(tmp_path.iterdir()) == []


def test_a_successful_write_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "scores.parquet"
    target.write_bytes(b"old")
    frame = pd.DataFrame({"customer_id": [1, 2]})
    write_parquet_atomically(frame, target)
    pd.testing.assert_frame_equal(pd.read_parquet(target), frame)
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


# --------------------------------------------------------------------------- --as-of range
@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31", "1677-09-21",
                                   "2262-04-12T00:00:00"])
def test_score_refuses_an_as_of_outside_the_timestamp_range(tmp_path: Path, no_models: None,
                                                            value: str) -> None:
    line = one_line_error(run("score", "--out", str(tmp_path / "s.parquet"), "--as-of", value))
    assert "--as-of" in line and "outside the supported range" in line
    assert "1677-09-21" in line and "2262-04-11" in line
    assert "OutOfBounds" not in line


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31", datetime(1, 1, 1),
                                   datetime(9999, 12, 31, 23, 59, 59),
                                   pd.Timestamp("1000-01-01")])
def test_to_as_of_refuses_years_outside_the_range_naming_as_of(value: Any) -> None:
    with pytest.raises(InputError, match=r"^as_of: .* outside the supported range "
                                         r"1677-09-21.* to 2262-04-11"):
        to_as_of(value)


def test_to_as_of_keeps_the_range_limits() -> None:
    assert to_as_of(str(pd.Timestamp.min)) == pd.Timestamp.min
    assert to_as_of(pd.Timestamp.max.to_pydatetime(warn=False)) <= pd.Timestamp.max


# --------------------------------------------------------------------------- serve --port
@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield int(taken.getsockname()[1])


def test_serve_on_a_busy_port_is_one_line_exit_2(busy_port: int, no_models: None) -> None:
    line = one_line_error(run("serve", "--port", str(busy_port), "--host", "127.0.0.1"))
    assert line.endswith(f"port {busy_port} on 127.0.0.1 is in use; choose another with --port")


def test_the_port_check_passes_a_free_port_and_releases_it() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    cli._check_port_free("127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
        again.bind(("127.0.0.1", port))  # the check did not keep it


def test_serve_refuses_an_unknown_host_in_one_line(no_models: None) -> None:
    line = one_line_error(run("serve", "--host", "no-such-host.invalid", "--port", "8000"))
    assert "no-such-host.invalid" in line


def test_serve_refuses_an_as_of_outside_the_range_before_loading(no_models: None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    line = one_line_error(run("serve", "--port", str(port), "--as-of", "9999-12-31"))
    assert "--as-of" in line and "outside the supported range" in line
