"""The `kgents-pipeline` console script, run as a user runs it (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

BIN = Path(sys.executable).parent / "kgents-pipeline"


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120):
    return subprocess.run(
        [str(BIN), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_loadtest_run_twice_then_trends_shows_two_measured_rows(tmp_path):
    for _ in range(2):
        proc = cli("loadtest", "run", "--rate", "50", "--duration", "2s", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "p95 (successful requests)" in proc.stdout and "rehearsal" in proc.stdout
    db = tmp_path / "data" / "metrics.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT p95_ms, achieved_rps, valid FROM baseline_trend").fetchall()
    con.close()
    assert len(rows) == 2 and all(p95 > 0 and rps > 40 and valid for p95, rps, valid in rows)
    proc = cli("trends", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0
    assert len(json.loads(proc.stdout)) == 2


def test_loadtest_against_a_down_target_stops_at_the_preflight(tmp_path, free_port):
    proc = cli("loadtest", "run", "--target", f"http://127.0.0.1:{free_port}", cwd=tmp_path)
    assert_one_line_error(proc, "health preflight", "unreachable")


def test_loadtest_refused_target_without_preflight_fails_with_exit_1(tmp_path, free_port):
    proc = cli(
        "loadtest",
        "run",
        "--target",
        f"http://127.0.0.1:{free_port}",
        "--rate",
        "20",
        "--duration",
        "1s",
        "--skip-preflight",
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert "FAIL p95 (successful requests)  n/a (no successful request)" in proc.stdout


def test_missing_k6_binary_is_one_line_and_exit_2(tmp_path):
    proc = cli(
        "loadtest",
        "run",
        "--duration",
        "1s",
        cwd=tmp_path,
        env={"KGENTS_K6_BIN": str(tmp_path / "k6")},
    )
    assert_one_line_error(proc, "k6 binary not found")


def test_history_ingest_of_a_corrupt_run_json_is_one_line_and_exit_2(run_copy, tmp_path):
    (run_copy / "run.json").write_text("{oops")
    proc = cli("history", "ingest", str(run_copy), "--db", str(tmp_path / "h.duckdb"), cwd=tmp_path)
    assert_one_line_error(proc, "run.json", "corrupt JSON")
    assert (run_copy / "run.json").read_text() == "{oops"


def test_history_ingest_twice_reports_unchanged(run_copy, tmp_path):
    db = str(tmp_path / "h.duckdb")
    first = cli("history", "ingest", str(run_copy), "--db", db, cwd=tmp_path)
    second = cli("history", "ingest", str(run_copy), "--db", db, cwd=tmp_path)
    assert first.stdout.startswith("inserted") and second.stdout.startswith("unchanged")


def test_history_rebuild_from_the_archive(run_copy, tmp_path):
    db = str(tmp_path / "h.duckdb")
    proc = cli("history", "rebuild", "--db", db, "--archive", str(run_copy.parent), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 runs (1 valid)" in proc.stdout
    (run_copy / "run.json").write_text("{")
    proc = cli("history", "rebuild", "--db", db, "--archive", str(run_copy.parent), cwd=tmp_path)
    assert proc.returncode == 1  # the broken run is reported; its old rows are kept
    assert "skipped (its old rows are kept)" in proc.stderr and "Traceback" not in proc.stderr
    assert cli("trends", "--db", db, "--format", "json", cwd=tmp_path).stdout.count("run_id") == 1


def test_trends_without_a_history_is_one_line_and_exit_2(tmp_path):
    proc = cli("trends", "--db", str(tmp_path / "none.duckdb"), cwd=tmp_path)
    assert_one_line_error(proc, "no metrics history")


def test_locked_history_is_one_line_naming_the_holder(run_copy, tmp_path):
    db = tmp_path / "h.duckdb"
    duckdb.connect(str(db)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        proc = cli("history", "ingest", str(run_copy), "--db", str(db), cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert_one_line_error(proc, f"PID {holder.pid}", "locked")


def test_target_serve_refuses_a_busy_port_in_one_line(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = cli("target", "serve", "--port", str(port), cwd=tmp_path, timeout=20)
    assert_one_line_error(proc, f"127.0.0.1:{port}")


def test_bad_option_values_exit_2_with_usage(tmp_path):
    proc = cli("loadtest", "run", "--rate", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = cli("loadtest", "run", "--duration", "soon", cwd=tmp_path)
    assert_one_line_error(proc, "duration")


def test_target_serve_refuses_a_non_loopback_address(tmp_path):
    proc = cli("target", "serve", "--host", "0.0.0.0", "--port", "0", cwd=tmp_path, timeout=20)
    assert_one_line_error(proc, "--host must be a loopback address")


def test_db_path_comes_from_the_environment_like_the_dagster_resources(run_copy, tmp_path):
    env = {"KGENTS_DB_PATH": str(tmp_path / "from-env.duckdb")}
    assert cli("history", "ingest", str(run_copy), cwd=tmp_path, env=env).returncode == 0
    assert (tmp_path / "from-env.duckdb").exists()
    assert not (tmp_path / "data").exists()


def test_missing_k6_is_reported_before_the_demo_target_starts(tmp_path):
    proc = cli("loadtest", "run", cwd=tmp_path, env={"KGENTS_K6_BIN": str(tmp_path / "k6")})
    assert_one_line_error(proc, "k6 binary not found")
    assert "demo target" not in proc.stdout
