"""What a test needs that may be missing here: skip locally, fail in CI.

Oracle and reference tests compare against an independent implementation (``lifetimes``) or an
optional package (``implicit``). On a developer's machine without them the test skips, saying
what is missing; in CI (the ``CI`` environment variable set to anything but ``""``, ``0`` or
``false``, as every CI service does) a missing requirement fails the test with the same
message, so a reference check can never silently stop running there.

- :func:`missing`: call inside a test or fixture when something it needs is not there.
- :func:`requires`: a mark (``@requires(available, "what")``) checked before the test runs, by
  the ``pytest_runtest_setup`` hook in ``conftest.py``.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

import pytest

__all__ = ["check_requires_marks", "in_ci", "missing", "requires"]


def in_ci() -> bool:
    """Whether the tests run in CI (``CI`` set, and not to ``""``, ``0`` or ``false``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str) -> NoReturn:
    """Skip the test because ``what`` is missing; in CI, fail it instead, naming ``what``."""
    if in_ci():
        pytest.fail(f"missing in CI, where this test must run: {what}", pytrace=False)
    pytest.skip(f"missing: {what} (in CI this fails)")


def requires(available: bool, what: str) -> pytest.MarkDecorator:
    """Mark a test (or a ``pytest.param``) as needing ``what``, present when ``available``."""
    return pytest.mark.requires(available=available, what=what)


def check_requires_marks(item: Any) -> None:
    """Call :func:`missing` for the first unmet ``requires`` mark of a test item."""
    for mark in item.iter_markers(name="requires"):
        if not mark.kwargs["available"]:
            missing(mark.kwargs["what"])
