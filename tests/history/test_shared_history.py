"""Many writers and readers on one DuckLake history, as separate processes: what a team does
when the pipeline, CI and engineers' laptops share it (a real PostgreSQL catalog, real
`kgents-pipeline` processes, plain DuckDB SQL from another process)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from kgents_pipeline.history import db as history_db
from kgents_pipeline.history.store import open_history
from tests.verdict.synth import T0, write_run

CLI = [str(Path(sys.executable).parent / "kgents-pipeline")]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def test_two_ingest_processes_create_the_history_and_both_land(postgres, tmp_path, monkeypatch):
    # A catalog nobody created yet: both processes race to create and migrate it, then ingest.
    name = postgres.create_database("fresh_two_writers")
    location = f"ducklake:postgres:{postgres.conninfo(name)}"
    monkeypatch.setenv("KGENTS_DUCKLAKE_DATA_PATH", str(tmp_path / "lake"))
    archive = tmp_path / "k6"
    runs = [write_run(archive, f"run-{i}", T0 + dt.timedelta(hours=i), seed=i) for i in (0, 1)]
    procs = [
        subprocess.Popen(
            [*CLI, "history", "ingest", str(run), "--db", location],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all(out.startswith("inserted") for out, _ in outs), outs
    with open_history(location).reader() as con:
        rows = con.execute(
            "SELECT r.run_id, r.points_rows, (SELECT count(*) FROM run_points p"
            " WHERE p.run_id = r.run_id) FROM runs r ORDER BY run_id"
        ).fetchall()
        versions = [v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()]
    assert [r[0] for r in rows] == ["run-0", "run-1"]
    assert all(stored == counted > 0 for _, stored, counted in rows)
    assert sorted(versions) == sorted({v for v, _, _ in history_db.migrations()})  # each once


READER = textwrap.dedent(
    """
    import json, sys, time, duckdb
    from pathlib import Path
    from kgents_pipeline.history import ducklake
    location, run_id, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    con = duckdb.connect(config={"autoinstall_known_extensions": "false"})
    platform = con.execute("PRAGMA platform").fetchone()[0]
    con.execute(f"SET extension_directory = '{ducklake.extension_directory(platform)}'")
    con.execute("LOAD postgres"); con.execute("LOAD ducklake")
    con.execute(f"ATTACH '{location}' AS h (READ_ONLY)")
    print("ready", flush=True)
    while not stop.exists():
        row = con.execute(
            "SELECT (SELECT count(*) FROM h.runs WHERE run_id = $id),"
            " (SELECT max(points_rows) FROM h.runs WHERE run_id = $id),"
            " (SELECT count(*) FROM h.run_points WHERE run_id = $id),"
            " (SELECT count(*) FROM h.run_metrics WHERE run_id = $id)",
            {"id": run_id},
        ).fetchone()
        print(json.dumps([time.time(), *row]), flush=True)
    """
)


def test_readers_in_other_processes_never_see_half_a_run(ducklake_history, tmp_path):
    location = ducklake_history
    archive = tmp_path / "k6"
    first = write_run(archive, "run-0", T0, seed=1)
    subprocess.run(
        [*CLI, "history", "ingest", str(first), "--db", location], check=True, env=_env()
    )
    # A run big enough for its ingest to take a while: 100,000 requests.
    big = write_run(archive, "run-big", T0 + dt.timedelta(hours=1), rate=1000, duration_s=100)
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, location, "run-big", str(stop)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # a few reads before the ingest starts
    ingest = subprocess.Popen(
        [*CLI, "history", "ingest", str(big), "--db", location],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    during: list[subprocess.CompletedProcess[str]] = []
    while ingest.poll() is None and len(during) < 6:
        for cmd in (["trends"], ["verdict", "--archive", str(archive)]):
            during.append(
                subprocess.run(
                    [*CLI, *cmd, "--format", "json", "--db", location],
                    env=_env(),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            )
    _, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, err
    time.sleep(0.5)
    stop.touch()
    lines, rerr = reader.communicate(timeout=60)
    assert reader.returncode == 0, rerr
    seen = [json.loads(line) for line in lines.splitlines()]
    assert seen, rerr
    for _, runs, points_rows, points, metrics in seen:
        # One statement, one snapshot: the run whole (its row, every point, every metric) or
        # not at all.
        if runs == 0:
            assert (points, metrics) == (0, 0)
        else:
            assert runs == 1 and points == points_rows > 0 and metrics > 0
    assert any(s[1] == 0 for s in seen) and seen[-1][1] == 1  # it read before and after
    # The commands answered while the ingest wrote: never "locked", never an error.
    assert during
    for r in during:
        assert r.returncode in (0, 1), r.stderr
        doc = json.loads(r.stdout)
        if isinstance(doc, list):  # trends: run-big is there whole or not at all
            big_rows = [row for row in doc if row["run_id"] == "run-big"]
            assert all(row["p95_ms"] is not None for row in big_rows)
        else:
            assert doc["state"] in ("NOT_READY", "INSUFFICIENT_DATA", "READY", "INVALID_RUN")


def test_a_location_holding_a_password_is_refused_without_showing_it():
    secret = "s3cret-never-shown"
    for location in (
        f"ducklake:postgres:dbname=h host=127.0.0.1 password={secret}",
        f"ducklake:postgres:postgresql://kgents:{secret}@127.0.0.1/h",
    ):
        r = subprocess.run(
            [*CLI, "trends", "--db", location], capture_output=True, text=True, env=_env()
        )
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "PGPASSWORD" in r.stderr and secret not in r.stderr + r.stdout


def test_a_snapshot_of_the_shared_history_is_a_local_file_to_query(ducklake_history, tmp_path):
    archive = tmp_path / "k6"
    run = write_run(archive, "run-0", T0, seed=1)
    subprocess.run(
        [*CLI, "history", "ingest", str(run), "--db", ducklake_history], check=True, env=_env()
    )
    out = tmp_path / "snap.duckdb"
    counts = open_history(ducklake_history).snapshot(out)
    assert counts["runs"] == 1 and counts["run_points"] > 0
    with open_history(out).reader() as con:  # an ordinary local history now
        assert con.execute("SELECT count(*) FROM baseline_trend").fetchone() == (1,)
