# kgents-pipeline: everything a fresh machine with Python 3.11 needs goes through these targets.
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export PYTHONDONTWRITEBYTECODE := 1
# Team mode: with DAGSTER_PG_HOST set, the Dagster instance is on PostgreSQL
# (dagster.postgres.yaml; the password from PGPASSWORD or ~/.pgpass, never in a file).
ifneq ($(DAGSTER_PG_HOST),)
INSTANCE_YAML := dagster.postgres.yaml
export DAGSTER_PG_PORT ?= 5432
export DAGSTER_PG_DB ?= dagster
export DAGSTER_PG_USER ?= dagster
else
INSTANCE_YAML := dagster.yaml
endif

.PHONY: venv run test lint format dev bench clean instance

venv: $(STAMP)

# uv is bootstrapped with pip; every package is pinned by constraints.txt (name==version lines).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 required, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==0.13.8"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --constraints constraints.txt -e ".[test]"
	touch $(STAMP)

# The instance configuration for this environment, copied whenever it is not already the one.
instance:
	@mkdir -p $(DAGSTER_HOME)
	@cmp -s $(INSTANCE_YAML) $(DAGSTER_HOME)/dagster.yaml || cp $(INSTANCE_YAML) $(DAGSTER_HOME)/dagster.yaml
ifneq ($(DAGSTER_PG_HOST),)
	$(BIN)/kgents-pipeline pools
endif

# The launch-readiness job on the embedded default: offline cluster, demo target on 127.0.0.1,
# the real k6, DuckDB at data/metrics.duckdb.
run: venv instance
	$(BIN)/kgents-pipeline run

# Style, the import contracts (layers), the type checker, then the whole suite.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The real control plane comes up for the suite (built once, cached outside the repo) and goes
# down after it, unless it was already up (make kube-up): then it is left as it was. The suite
# runs on two pytest-xdist workers, then the tests marked `serial` (the control plane, the UI,
# measured latencies: tests/conftest.py) one at a time.
test: venv lint peers
	@was_up=0; $(PYTHON) tools/kube/cluster.py status >/dev/null 2>&1 && was_up=1; \
	$(PYTHON) tools/kube/cluster.py up || exit 2; \
	$(BIN)/pytest -q -n 2 -m "not serial"; status=$$?; \
	$(BIN)/pytest -q -m serial || status=1; \
	[ $$was_up = 1 ] || $(PYTHON) tools/kube/cluster.py down; \
	exit $$status

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The Dagster UI on http://127.0.0.1:3000. tools/dev.py runs dg dev in its own session and, on
# Ctrl-C or SIGTERM, stops it and every child (webserver, daemon, code servers) within 10 s.
DEV_HOST ?= 127.0.0.1
DEV_PORT ?= 3000
dev: venv instance
	$(BIN)/python tools/dev.py $(BIN)/dg dev --host $(DEV_HOST) --port $(DEV_PORT) -w workspace.yaml

bench: venv
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) .pytest_cache .ruff_cache .mypy_cache .import_linter_cache

# The real control plane the tests run (tools/kube/README.md): etcd, kube-apiserver and
# kube-controller-manager built with the Go toolchain on PATH into a cache outside the repo,
# started on 127.0.0.1; context kgents-test in .kube-test/kubeconfig.
.PHONY: kube-build kube-up kube-down kube-status
kube-build:
	$(PYTHON) tools/kube/cluster.py build

kube-up:
	$(PYTHON) tools/kube/cluster.py up

kube-down:
	$(PYTHON) tools/kube/cluster.py down

kube-status:
	$(PYTHON) tools/kube/cluster.py status

# The peer NetworkPolicy tools measured side by side (benchmarks/peers/): cyclonus built from its Go
# module and np-guard's NCA in a virtualenv, both into a cache outside the repository named after a
# hash of what decides the build; a fast no-op when already built.
.PHONY: peers
peers: venv
	$(BIN)/python benchmarks/peers/peers_build.py build
