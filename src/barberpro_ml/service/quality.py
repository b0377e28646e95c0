"""The last test run, as recorded when it ran, for ``GET /v1/api-management/quality-assurance``.

``make test`` (which CI runs, ``.ci/run``) has pytest write a JUnit XML report and then
summarises it here (``python -m barberpro_ml.service.record_tests <junit.xml> --out <record>``,
which calls :func:`main`) into
a small JSON record at :data:`DEFAULT_QA_RECORD` (``.barberpro/quality-assurance.json`` under
the working directory): counts (passed, failed, errors, skipped, xfailed), the run's wall-clock
duration, when it finished and the git commit it ran at (with whether the tree had uncommitted
changes). The service reads the record named by :data:`QA_RECORD_ENV`, else
:data:`DEFAULT_QA_RECORD`, at each request; with no record there (a service installed from a
wheel has had no test run) it answers ``unknown``, never a guess.

Coverage is not measured (``pytest-cov`` is not available to the project; see the README), so
the record says so: ``coverage.status`` is ``"unknown"`` unless a record carries a measured
percentage.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from barberpro_ml.errors import InputError

__all__ = ["DEFAULT_QA_RECORD", "QA_RECORD_ENV", "Coverage", "QualityAssurance", "TestRun",
           "qa_record_path", "read_quality", "summarise_junit", "write_record"]

QA_RECORD_ENV = "BARBERPRO_QA_RECORD"
"""Environment variable naming the test-run record the service reports."""
DEFAULT_QA_RECORD = ".barberpro/quality-assurance.json"
"""Where ``make test`` writes the record, relative to the working directory."""


class TestRun(BaseModel):
    """Counts of one pytest run, from its JUnit XML report."""

    __test__ = False  # not a pytest test class despite the name

    passed: int = Field(description="Passed, including unexpected passes of xfail tests "
                                    "(JUnit XML does not tell them apart).")
    failed: int
    errors: int = Field(description="Errors in set-up or tear-down (fixtures), not failures.")
    skipped: int
    xfailed: int = Field(description="Expected failures (pytest.mark.xfail) that failed.")
    total: int
    duration_s: float = Field(description="Wall-clock time of the run, as pytest reported it.")
    finished_at: datetime = Field(description="When the record was written, just after the "
                                              "run (UTC).")
    git_commit: str | None = Field(description="HEAD when the run finished; null outside a "
                                               "git checkout.")
    git_dirty: bool | None = Field(description="Whether the tree had uncommitted changes, so "
                                               "the run tested more than the commit.")
    command: str = Field(description="What ran the tests.")


class Coverage(BaseModel):
    status: Literal["measured", "unknown"]
    percent: float | None = Field(default=None, ge=0, le=100)
    detail: str


class QualityAssurance(BaseModel):
    """``GET /v1/api-management/quality-assurance``: the last recorded test run, or
    ``unknown`` when the service has no record (installed from a wheel, say)."""

    status: Literal["recorded", "unknown"]
    detail: str = Field(description="Where the record comes from, or why there is none.")
    run: TestRun | None
    coverage: Coverage


_NOT_MEASURED = Coverage(status="unknown", detail="not measured: the test run records no "
                                                  "coverage (pytest-cov is not available)")


class _Record(BaseModel):
    """The file's content: the run and its coverage."""

    run: TestRun
    coverage: Coverage = _NOT_MEASURED


def qa_record_path() -> Path:
    """:data:`QA_RECORD_ENV`, else :data:`DEFAULT_QA_RECORD` under the working directory."""
    return Path(os.environ.get(QA_RECORD_ENV) or DEFAULT_QA_RECORD)


def read_quality(path: Path | None = None) -> QualityAssurance:
    """The record at ``path`` (default :func:`qa_record_path`) as the route's answer;
    ``unknown`` with the reason when it is missing or unreadable."""
    where = qa_record_path() if path is None else path
    unknown = Coverage(status="unknown", detail="no test run recorded")
    try:
        record = _Record.model_validate_json(where.read_bytes())
    except FileNotFoundError:
        return QualityAssurance(
            status="unknown", run=None, coverage=unknown,
            detail=f"no test run recorded for this installation (no record at {QA_RECORD_ENV} "
                   f"or {DEFAULT_QA_RECORD}; `make test` writes one)")
    except (OSError, ValidationError) as error:
        return QualityAssurance(status="unknown", run=None, coverage=unknown,
                                detail=f"the test-run record is unreadable "
                                       f"({type(error).__name__}); run `make test` again")
    return QualityAssurance(status="recorded", run=record.run, coverage=record.coverage,
                            detail="recorded by `make test` when it ran")


def summarise_junit(junit: Path, *, command: str = "make test",
                    repo: Path | None = None) -> TestRun:
    """Count the test cases of pytest's JUnit XML report ``junit``.

    Parameters
    ----------
    junit
        The file ``pytest --junitxml`` wrote.
    command
        What ran the tests (recorded as is).
    repo
        The git checkout to read HEAD from (default: the working directory).

    Returns
    -------
    TestRun
        One count per outcome: a case with ``<failure>`` failed, ``<error>`` errored,
        ``<skipped type="pytest.xfail">`` xfailed, another ``<skipped>`` skipped, and none of
        them passed.

    Raises
    ------
    InputError
        The file is missing or not a pytest JUnit XML report.

    Examples
    --------
    >>> import tempfile
    >>> xml = ('<testsuites><testsuite time="1.5"><testcase name="a"/>'
    ...        '<testcase name="b"><skipped type="pytest.xfail" message=""/></testcase>'
    ...        '</testsuite></testsuites>')
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     report = Path(folder) / "junit.xml"
    ...     _ = report.write_text(xml)
    ...     run = summarise_junit(report)
    >>> (run.passed, run.xfailed, run.total, run.duration_s)
    (1, 1, 2, 1.5)
    """
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError) as error:
        raise InputError(f"cannot read the JUnit XML report {junit}: {error}") from None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if root.tag not in ("testsuite", "testsuites") or not suites:
        raise InputError(f"{junit} is not a JUnit XML report (root <{root.tag}>, "
                         f"{len(suites)} test suites)")
    counts = dict.fromkeys(("passed", "failed", "errors", "skipped", "xfailed"), 0)
    for case in (c for s in suites for c in s.iter("testcase")):
        if case.find("failure") is not None:
            counts["failed"] += 1
        elif case.find("error") is not None:
            counts["errors"] += 1
        elif (skip := case.find("skipped")) is not None:
            counts["xfailed" if skip.get("type") == "pytest.xfail" else "skipped"] += 1
        else:
            counts["passed"] += 1
    commit, dirty = _git_state(repo)
    return TestRun(**counts, total=sum(counts.values()),
                   duration_s=sum(float(s.get("time") or 0) for s in suites),
                   finished_at=datetime.now(UTC).replace(tzinfo=None),
                   git_commit=commit, git_dirty=dirty, command=command)


def _git_state(repo: Path | None) -> tuple[str | None, bool | None]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30,
                                  cwd=repo, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if head is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return head.strip(), None if status is None else bool(status.strip())


def write_record(run: TestRun, out: Path) -> None:
    """Write the record for ``run`` to ``out`` (atomically: a reader never sees half)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(_Record(run=run).model_dump_json(indent=2) + "\n", encoding="utf-8")
    partial.replace(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m barberpro_ml.service.record_tests JUNIT --out RECORD``: summarise a run; with
    no JUnit report (pytest did not get to write one) remove a stale record instead."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("junit", type=Path)
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_QA_RECORD))
    parser.add_argument("--command", default="make test")
    args = parser.parse_args(argv)
    if not args.junit.exists():
        args.out.unlink(missing_ok=True)
        print(f"no JUnit report at {args.junit}: no test run recorded", file=sys.stderr)
        return 0
    try:
        run = summarise_junit(args.junit, command=args.command)
    except InputError as error:
        print(error, file=sys.stderr)
        return 2
    write_record(run, args.out)
    print(f"test run recorded in {args.out}: {run.passed} passed, {run.failed} failed, "
          f"{run.errors} errors, {run.skipped} skipped, {run.xfailed} xfailed",
          file=sys.stderr)
    return 0
