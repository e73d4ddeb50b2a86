"""Team mode, end to end with real processes: the Dagster instance on PostgreSQL
(dagster.postgres.yaml, as `make run` / `make dev` copy it when DAGSTER_PG_HOST is set), the
history on DuckLake, runs launched by the daemon in their own processes, and a CI verdict from
another process and environment."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from kgents_pipeline.history.store import open_history
from tests.conftest import REPO

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
JOB = "launch_readiness_job"


@pytest.fixture
def team(postgres, ducklake_history, tmp_path, monkeypatch) -> dict[str, str]:
    """The environment of a team deployment: DAGSTER_HOME holding dagster.postgres.yaml,
    DAGSTER_PG_* (no password anywhere but PGPASSWORD), the history on DuckLake, a short load
    test against the demo target."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": postgres.create_database(f"dagster_{uuid.uuid4().hex[:12]}"),
        "DAGSTER_PG_USER": "kgents",
        "KGENTS_DB_PATH": ducklake_history,
        "KGENTS_ARCHIVE_DIR": str(tmp_path / "k6"),
        "KGENTS_REPORTS_DIR": str(tmp_path / "reports"),
        "KGENTS_DURATION": "3s",  # the pools test lengthens it: its runs must overlap
        "KGENTS_RATE": "50",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get()


def _steps(instance: dg.DagsterInstance, run_id: str, step: str) -> tuple[float, float]:
    start = end = None
    for e in instance.all_logs(run_id):
        if e.is_dagster_event and e.step_key == step:
            kind = e.dagster_event.event_type_value  # type: ignore[union-attr]
            if kind == "STEP_START":
                start = e.timestamp
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
                end = e.timestamp
    assert start is not None and end is not None, (run_id, step)
    return start, end


def test_two_runs_in_their_own_processes_share_the_pools_through_postgres(
    team, postgres, tmp_path, monkeypatch
):
    # Load tests long enough that the second run reaches its own while the first one's runs.
    monkeypatch.setenv("KGENTS_DURATION", "10s")
    # The instance's pools, created once before its first runs (what `make dev` does in team
    # mode): two runs creating a pool at once would race in Dagster's PostgreSQL storage.
    pools = [str(BIN / "kgents-pipeline"), "pools"]
    first = subprocess.run(pools, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and "created duckdb, k6" in first.stdout, first
    again = subprocess.run(pools, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "nothing to create" in again.stdout and "duckdb=1, k6=1" in again.stdout, again
    launches = [
        subprocess.Popen(
            [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", JOB],
            cwd=REPO,
            env={**os.environ},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for p in launches:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=REPO, env={**os.environ}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        instance = _instance()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            runs = instance.get_runs()
            if len(runs) == 2 and all(r.is_finished for r in runs):
                break
            time.sleep(1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
    runs = instance.get_runs()
    errors = [
        line
        for line in (tmp_path / "daemon.log").read_text().splitlines()
        if any(w in line for w in ("RUN_FAILURE", "STEP_FAILURE", "Error:", "Violation"))
    ]
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2, errors[-20:]
    # The pools hold across the two run processes: their load tests never overlapped, nor did
    # their writes to the history.
    for step in ("load_test_run", "metrics_history"):
        (a0, a1), (b0, b1) = (_steps(instance, r.run_id, step) for r in runs)
        assert a1 <= b0 or b1 <= a0, (step, (a0, a1), (b0, b1))
    # The two run processes were alive at once, and one of them waited for the other's slot.
    spans = [(r.start_time, r.end_time) for r in instance.get_run_records()]
    assert max(s for s, _ in spans) < min(e for _, e in spans), spans
    blocked = {
        e.message
        for r in runs
        for e in instance.all_logs(r.run_id)
        if "blocked by limit for pool" in (e.message or "")
    }
    assert blocked, spans
    for pool in ("k6", "duckdb"):
        assert instance.event_log_storage.get_concurrency_info(pool).slot_count == 1
    with open_history(team["KGENTS_DB_PATH"]).reader() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    # The password reached libpq only: nothing Dagster stored or printed holds it.
    stored = json.dumps(
        [[r.run_config, r.tags] for r in runs]
        + [e.message for r in runs for e in instance.all_logs(r.run_id)],
        default=str,
    )
    assert postgres.password not in stored
    assert postgres.password not in (tmp_path / "daemon.log").read_text()
    assert postgres.password not in (Path(team["DAGSTER_HOME"]) / "dagster.yaml").read_text()


def test_a_pipeline_run_and_a_ci_verdict_from_another_environment_agree(team, tmp_path):
    run = subprocess.run(
        [str(BIN / "kgents-pipeline"), "run"],
        cwd=REPO, env={**os.environ}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "Dagster run" in run.stdout and "verdict" in run.stdout, run.stdout + run.stderr
    assert len(_instance().get_runs()) == 1  # recorded in the PostgreSQL instance
    with open_history(team["KGENTS_DB_PATH"]).reader() as con:
        recorded = con.execute("SELECT state, inputs_sha256 FROM latest_verdict").fetchone()
    # CI: its own checkout (here: the same files), another HOME (its own extension directory),
    # no Dagster, no data path (a reader needs none): the location, the archive, PGPASSWORD.
    ci_home = tmp_path / "ci-home"
    ci_home.mkdir()
    ci_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(ci_home),
        "PGPASSWORD": os.environ["PGPASSWORD"],
    }
    ci = subprocess.run(
        [str(BIN / "kgents-pipeline"), "verdict", "--format", "json",
         "--db", team["KGENTS_DB_PATH"], "--archive", team["KGENTS_ARCHIVE_DIR"]],
        cwd=REPO, env=ci_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ci.returncode in (0, 1), ci.stderr
    doc = json.loads(ci.stdout)
    assert (doc["state"], doc["inputs_sha256"]) == recorded
