"""tests/requirements.py: a missing reference skips locally and fails in CI."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from requirements import check_requires_marks, in_ci, missing, requires


@pytest.mark.parametrize(("value", "ci"), [
    (None, False), ("", False), ("0", False), ("false", False), ("False", False),
    ("true", True), ("1", True), ("yes", True),
])
def test_ci_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                         ci: bool) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_missing_skips_locally_naming_what(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing: the lifetimes oracle"):
        missing("the lifetimes oracle")


def test_missing_fails_in_ci_naming_what(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception,
                       match="missing in CI, where this test must run: the lifetimes oracle"):
        missing("the lifetimes oracle")


def _item(*marks: pytest.MarkDecorator) -> Any:
    return SimpleNamespace(iter_markers=lambda name: [m.mark for m in marks
                                                      if m.mark.name == name])


def test_requires_mark_is_checked_before_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    met, unmet = requires(True, "numpy"), requires(False, "the 'implicit' package")
    monkeypatch.setenv("CI", "true")
    check_requires_marks(_item(met))  # nothing missing: runs
    with pytest.raises(pytest.fail.Exception, match="the 'implicit' package"):
        check_requires_marks(_item(met, unmet))
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="the 'implicit' package"):
        check_requires_marks(_item(unmet))


@requires(True, "nothing at all")
def test_a_met_requirement_lets_the_test_run() -> None:
    assert True
