# Two commands on a fresh machine (Python 3.11+ and pip):
#   make demo   create .venv, install, simulate a marketplace and run every model family,
#               logging to the local SQLite MLflow store (sqlite:///mlflow.db), then profile
#               every customer with the promoted models (outputs/profiles.parquet) and
#               write the HTML report (outputs/report.html)
#   make test   create .venv, install with the dev extras, run the test suite and record the
#               run's counts for the service (.barberpro/quality-assurance.json, served by
#               GET /v1/api-management/quality-assurance)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The demo keeps to its own tracking store even when MLFLOW_TRACKING_URI points elsewhere
# (a production server must not receive simulated champions).
DEMO_STORE := sqlite:///mlflow.db

demo: $(STAMP)
	MLFLOW_TRACKING_URI=$(DEMO_STORE) $(BIN)/barberpro-ml pipeline
	MLFLOW_TRACKING_URI=$(DEMO_STORE) $(BIN)/barberpro-ml score --out outputs/profiles.parquet
	MLFLOW_TRACKING_URI=$(DEMO_STORE) $(BIN)/barberpro-ml report --out outputs/report.html

# pytest's exit status is make's; the record is written whatever the outcome (or removed when
# pytest wrote no report), so the service never reports an older run as the last one
QA_JUNIT  := .barberpro/junit.xml
QA_RECORD := .barberpro/quality-assurance.json

test: $(STAMP)
	rm -f $(QA_JUNIT)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q --junitxml=$(QA_JUNIT); status=$$?; \
	$(BIN)/python -m barberpro_ml.service.record_tests $(QA_JUNIT) --out $(QA_RECORD); exit $$status

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/mypy src

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_features.py

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts outputs .pytest_cache .hypothesis .mypy_cache
