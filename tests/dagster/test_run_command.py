"""`kgents-pipeline run` (what `make run` calls): the whole job, then a summary of this run."""

from __future__ import annotations

import duckdb

from tests.conftest import REPO
from tests.test_cli import assert_one_line_error, cli


def _env(tmp_path, **extra: str) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return {
        "DAGSTER_HOME": str(home),
        "KGENTS_DB_PATH": str(tmp_path / "metrics.duckdb"),
        "KGENTS_ARCHIVE_DIR": str(tmp_path / "k6"),
        "KGENTS_DURATION": "4s",
        **extra,
    }


def test_run_executes_the_whole_graph_and_summarises_it(tmp_path):
    proc = cli("run", cwd=REPO, env=_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "Dagster run" in out and "SUCCESS" in out
    for check in ("metrics_history.p95_below_500ms", "policy_verification.intent_holds"):
        assert f"ok    check {check}" in out
    assert "WARN  check launch_readiness.launch_ready" in out  # rehearsal is never READY
    assert "p95 (successful requests)" in out and "archive" in out
    assert "verdict  INSUFFICIENT_DATA (rehearsal" in out
    con = duckdb.connect(str(tmp_path / "metrics.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM baseline_trend").fetchone()[0] == 1
        assert con.execute("SELECT state FROM latest_verdict").fetchone()[0] == "INSUFFICIENT_DATA"
    finally:
        con.close()


def test_run_against_a_down_target_fails_and_says_no_load_test_ran(tmp_path, free_port):
    env = _env(tmp_path, KGENTS_TARGET_URL=f"http://127.0.0.1:{free_port}")
    proc = cli("run", cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 1
    assert "FAIL  step health_preflight: health preflight:" in proc.stdout
    assert "no load test ran in this run" in proc.stdout
    assert "verdict  not evaluated in this run" in proc.stdout


def test_run_with_a_bad_setting_is_one_line_and_exit_2(tmp_path):
    proc = cli("run", cwd=REPO, env=_env(tmp_path, KGENTS_RATE="fast"), timeout=120)
    assert_one_line_error(proc, "KGENTS_RATE must be an integer, got 'fast'")


def test_pools_are_created_once_on_the_instance_and_a_missing_home_is_one_line(tmp_path):
    """`kgents-pipeline pools` (team mode runs it before any run): the code location's pools at
    the instance's default limit, once; no instance is one line, not Dagster's traceback."""
    env = _env(tmp_path)
    first = cli("pools", cwd=REPO, env=env, timeout=120)
    assert first.returncode == 0 and "created duckdb, k6" in first.stdout, first.stderr
    again = cli("pools", cwd=REPO, env=env, timeout=120)
    assert "nothing to create; the instance holds duckdb=1, k6=1" in again.stdout, again.stderr
    missing = cli("pools", cwd=REPO, env={**env, "DAGSTER_HOME": str(tmp_path / "nope")})
    assert_one_line_error(missing, "DAGSTER_HOME=", "is not a directory")
