"""``/v1/api-management/quality-assurance`` and the test-run record behind it: a real pytest
run's JUnit report summarised into the record (each outcome counted), the route answering it
through the HTTP client, and ``unknown`` when there is no record or it is unreadable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from barberpro_ml.errors import InputError
from barberpro_ml.scoring import CustomerScorer
from barberpro_ml.service import KeyStore, create_app
from barberpro_ml.service.quality import QA_RECORD_ENV, main, summarise_junit, write_record

ROUTE = "/v1/api-management/quality-assurance"

_SAMPLE_TESTS = '''
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("set-up fails")

@pytest.mark.parametrize("n", range(3))
def test_passes(n):
    assert n < 3

def test_fails():
    assert 1 == 2

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False

@pytest.mark.xfail(reason="known, but passes")
def test_unexpected_pass():
    pass

def test_errors(broken):
    pass
'''


@pytest.fixture(scope="module")
def junit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JUnit report of a real pytest run over a file with one case of each outcome."""
    folder = tmp_path_factory.mktemp("qa")
    (folder / "test_sample.py").write_text(_SAMPLE_TESTS, encoding="utf-8")
    report = folder / "junit.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:randomly", "test_sample.py", f"--junitxml={report}"],
                          cwd=folder, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stdout[-2000:]  # a failure: exit 1, report written
    return report


def test_a_junit_report_is_counted_by_outcome(junit: Path) -> None:
    run = summarise_junit(junit, command="pytest test_sample.py",
                          repo=Path(__file__).parent)
    # the unexpected pass of a non-strict xfail is a pass in JUnit XML
    assert (run.passed, run.failed, run.errors, run.skipped, run.xfailed) == (4, 1, 1, 1, 1)
    assert run.total == 8 and run.duration_s > 0
    assert run.git_commit is not None and len(run.git_commit) == 40
    assert run.command == "pytest test_sample.py"


def test_a_file_that_is_not_a_report_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the JUnit XML report"):
        summarise_junit(tmp_path / "missing.xml")
    (tmp_path / "other.xml").write_text("<coverage/>", encoding="utf-8")
    with pytest.raises(InputError, match=r"not a JUnit XML report \(root <coverage>"):
        summarise_junit(tmp_path / "other.xml")


def test_the_command_records_a_run_and_removes_a_stale_record(junit: Path,
                                                              tmp_path: Path) -> None:
    record = tmp_path / "out" / "quality-assurance.json"
    # what `make test` runs after pytest
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m",
                           "barberpro_ml.service.record_tests", str(junit), "--out", str(record)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 failed, 1 errors, 1 skipped, 1 xfailed" in done.stderr
    written = json.loads(record.read_text())
    assert written["run"]["failed"] == 1 and written["coverage"]["status"] == "unknown"
    # pytest wrote no report this time (it crashed before the end): no record, not an old one
    assert main([str(tmp_path / "none.xml"), "--out", str(record)]) == 0
    assert not record.exists()


@pytest.fixture(scope="module")
def client(scoring_registry: Any) -> Iterator[TestClient]:
    scorer = CustomerScorer.from_registry(tracking_uri=scoring_registry.tracking_uri)
    app = create_app(scorer, scoring_registry.data, keys=KeyStore("sqlite://"), warm=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def partner(client: TestClient) -> dict[str, str]:
    token = client.app.state.keys.create("partner", "providers:read").token  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}"}


def test_the_route_reports_the_recorded_run(client: TestClient, partner: dict[str, str],
                                            junit: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "quality-assurance.json"
    run = summarise_junit(junit, repo=Path(__file__).parent)
    write_record(run, record)
    monkeypatch.setenv(QA_RECORD_ENV, str(record))
    assert client.get(ROUTE).status_code == 401  # a key, whatever the scope
    answer = client.get(ROUTE, headers=partner)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "recorded"
    assert {k: body["run"][k] for k in ("passed", "failed", "errors", "skipped", "xfailed",
                                        "total")} == \
        {"passed": 4, "failed": 1, "errors": 1, "skipped": 1, "xfailed": 1, "total": 8}
    assert body["run"]["git_commit"] == run.git_commit
    assert body["run"]["finished_at"].endswith("Z")
    assert body["coverage"] == {"status": "unknown", "percent": None,
                                "detail": body["coverage"]["detail"]}
    assert "not measured" in body["coverage"]["detail"]


def test_without_a_record_the_route_says_unknown(client: TestClient, partner: dict[str, str],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(QA_RECORD_ENV, str(tmp_path / "never-written.json"))
    body = client.get(ROUTE, headers=partner).json()
    assert body["status"] == "unknown" and body["run"] is None
    assert body["coverage"]["status"] == "unknown"
    assert "no test run recorded" in body["detail"]
    (tmp_path / "never-written.json").write_text('{"run": {"passed": "many"}}')
    broken = client.get(ROUTE, headers=partner).json()
    assert broken["status"] == "unknown" and "unreadable" in broken["detail"]


def test_the_route_is_documented_with_its_statuses(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"][ROUTE]["get"]
    assert {"200", "401", "500"} <= set(operation["responses"])
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/QualityAssurance")
