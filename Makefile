# kgents-pipeline: everything a fresh machine with Python 3.11 needs goes through these targets.
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv run test lint format dev bench clean

venv: $(STAMP)

# uv is bootstrapped with pip; every package is pinned by constraints.txt (name==version lines).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 required, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==0.13.8"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --constraints constraints.txt -e ".[test]"
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# The launch-readiness job on the embedded default: offline cluster, demo target on 127.0.0.1,
# the real k6, DuckDB at data/metrics.duckdb.
run: venv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/kgents-pipeline run

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The Dagster UI on http://127.0.0.1:3000 (set -m: dg dev in a job control group stops on Ctrl-C).
dev: venv $(DAGSTER_HOME)/dagster.yaml
	set -m; $(BIN)/dg dev --host 127.0.0.1 --port 3000 -w workspace.yaml

bench: venv
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) .pytest_cache .ruff_cache

# The peer NetworkPolicy tools measured side by side (benchmarks/peers/): cyclonus built from its Go
# module and np-guard's NCA in a virtualenv, both into a cache outside the repository named after a
# hash of what decides the build; a fast no-op when already built.
.PHONY: peers
peers: venv
	$(BIN)/python benchmarks/peers/tools.py build
