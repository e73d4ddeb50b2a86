"""DuckDB connections: migrations and the single-writer lock."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest

from kgents_pipeline.errors import HistoryError
from kgents_pipeline.history.db import connect, migrations, schema_version


def test_new_file_is_migrated_to_the_latest_version(db):
    with connect(db) as con:
        assert schema_version(con) == migrations()[-1][0]
        tables = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    names = {name for (name,) in tables}
    assert {"runs", "run_metrics", "run_thresholds", "run_checks", "run_points"} <= names
    assert "baseline_trend" in names


def test_an_older_database_is_migrated_when_opened_read_only(db):
    first_version, first_name, first_sql = migrations()[0]
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR "
        "NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    con.execute(first_sql)
    con.execute(
        "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [first_version, first_name]
    )
    con.close()
    with connect(db, read_only=True) as con:
        assert schema_version(con) == migrations()[-1][0]


def test_a_migration_missing_below_the_newest_applied_one_still_runs(db):
    # Migrations merged out of order (a newer one applied before an older one lands) are not
    # skipped: every bundled migration the file has not recorded runs.
    with connect(db):
        pass
    gap = next(v for v, name, _ in migrations() if name == "archive_listings")
    assert gap < migrations()[-1][0]
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE archive_listings")
    con.execute("DELETE FROM schema_migrations WHERE version = ?", [gap])
    con.close()
    with connect(db, read_only=True) as con:
        versions = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
        assert {m[0] for m in migrations()} == versions
        assert con.execute("SELECT count(*) FROM archive_listings").fetchone() == (0,)


def test_reading_a_history_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(HistoryError, match="no metrics history"):
        with connect(tmp_path / "absent.duckdb", read_only=True):
            pass


def test_locked_file_names_the_holder_instead_of_hanging(db):
    with connect(db):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
            " time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        started = time.monotonic()
        with pytest.raises(HistoryError) as err, connect(db, lock_wait_s=0.5):
            pass
        assert time.monotonic() - started < 5
        message = str(err.value)
        assert f"PID {holder.pid}" in message and "locked" in message
        assert "import duckdb" in message  # the holder's command line, so it can be found
    finally:
        holder.kill()
        holder.wait()
