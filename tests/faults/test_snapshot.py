"""Item 10: reading while the pipeline writes. DuckDB refuses every other process, readers
included, while a writer holds the file (the README used to say `read_only=True` works then: it
does not). `history snapshot --out FILE` waits for the writer's short unit of work to end, copies
the history consistently into FILE, and FILE can be queried while the pipeline writes again."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest

from tests.faults.conftest import BIN, assert_nothing_lost, lock_holder, one_line


def _writer_for(db, seconds: float) -> subprocess.Popen[str]:
    """Another process writing the history for `seconds` (an ingest, say), then letting go."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
            " c.execute('CREATE TABLE IF NOT EXISTS busy (x INTEGER)');"
            " print('ready', flush=True); time.sleep(float(sys.argv[2])); c.close()",
            str(db),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_plain_read_only_open_fails_while_a_writer_holds_the_file(site):
    with lock_holder(site.db), pytest.raises(duckdb.IOException, match="lock"):
        duckdb.connect(str(site.db), read_only=True)


def test_snapshot_waits_for_the_writer_and_the_copy_is_queryable_while_it_writes(site):
    before = site.inventory()
    out = site.root / "snapshot.duckdb"
    writer = _writer_for(site.db, 2.0)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(BIN), "history", "snapshot", "--out", str(out), "--db", str(site.db)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        writer.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started >= 1.0  # it waited for the writer instead of failing
    assert f"written to {out}" in proc.stdout

    with lock_holder(site.db):  # the pipeline writes again: the copy answers all the same
        copy = duckdb.connect(str(out), read_only=True)
        runs = copy.execute("SELECT count(*) FROM baseline_trend").fetchone()[0]
        points = copy.execute("SELECT count(*) FROM run_points").fetchone()[0]
        copy.close()
        assert site.cli("trends", "--db", out, "--format", "json").returncode == 0
        code, doc, _ = site.verdict("--db", out)  # the last --db wins: the copy
        assert code == 0 and doc["state"] == "READY"  # the same evidence, the same verdict
    assert runs == len(before.run_ids) and points == before.rows["run_points"]
    assert_nothing_lost(before, site.inventory())

    # Taken again later, it replaces the earlier snapshot; never another application's file.
    assert site.cli("history", "snapshot", "--out", out, "--db", site.db).returncode == 0
    foreign = site.root / "other.duckdb"
    duckdb.connect(str(foreign)).execute("CREATE TABLE t (x INTEGER)").close()
    one_line(site.cli("history", "snapshot", "--out", foreign, "--db", site.db), 2, "not a kgents")


def test_snapshot_gives_up_in_one_line_when_the_writer_does_not_let_go(site):
    with lock_holder(site.db) as holder:
        proc = site.cli("history", "snapshot", "--out", site.root / "s.duckdb", "--db", site.db,
                        "--wait", "1")  # fmt: skip
    one_line(proc, 2, f"PID {holder.pid}", "locked")
    assert not (site.root / "s.duckdb").exists()
