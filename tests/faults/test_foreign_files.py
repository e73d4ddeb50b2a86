"""Item 3: readers never write. `trends`, `verdict` (what-if or not), `report` and the SQL helpers
refuse a file that is not a kgents history in one line (exit 2) and leave it byte-identical;
only writers create or migrate, and only a new file or one of ours."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from kgents_pipeline.errors import HistoryError
from kgents_pipeline.history.store import open_history
from tests.faults.conftest import assert_not_ready, assert_nothing_lost, one_line


def _foreign(path: Path, *, runs_table: bool) -> Path:
    """Another application's DuckDB file: its own tables (one of them named `runs`)."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE invoices (id INTEGER, total DECIMAL(10, 2))")
    con.execute("INSERT INTO invoices VALUES (1, 9.99)")
    if runs_table:
        con.execute("CREATE TABLE runs (pipeline VARCHAR, ok BOOLEAN)")
    con.execute("CREATE VIEW totals AS SELECT sum(total) FROM invoices")
    con.close()
    return path


def _state(path: Path) -> tuple[str, list[str]]:
    """The file's bytes, and every file beside it (a WAL would show here)."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(
        p.name for p in path.parent.iterdir()
    )


@pytest.mark.parametrize("runs_table", [False, True], ids=["own-tables", "own-runs-table"])
def test_every_command_refuses_a_foreign_duckdb_file_and_leaves_it_untouched(
    site, tmp_path, runs_table
):
    (tmp_path / "app").mkdir()
    other = _foreign(tmp_path / "app" / "other-app.duckdb", runs_table=runs_table)
    before = _state(other)
    commands = [
        ("trends", "--db", other),
        ("verdict", "--db", other, "--now", "2026-01-01", "--checklist", site.checklist),
        ("verdict", "--db", other, "--checklist", site.checklist),
        ("report", "--out", tmp_path / "r.html", "--db", other),
        ("history", "ingest", sorted(site.archive.iterdir())[0], "--db", other),
        ("history", "rebuild", "--db", other, "--archive", site.archive),
        ("history", "invalidate", "x", "--reason", "y", "--db", other),
        ("history", "snapshot", "--out", tmp_path / "snap.duckdb", "--db", other),
        ("verdict", "--db", other, "waive", "slo.p95", "--until", "2099-01-01", "--reason", "x"),
    ]
    for i, args in enumerate(commands):
        # The first as a real process; the rest through the same main(), in this process.
        line = one_line((site.cli if i == 0 else site.invoke)(*args), 2, "not a kgents history")
        assert str(other) in line, line
        assert _state(other) == before, args  # byte-identical, no WAL, nothing beside it
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "snap.duckdb").exists()


def test_the_sql_helpers_refuse_it_too(tmp_path):
    (tmp_path / "app").mkdir()
    other = _foreign(tmp_path / "app" / "other.duckdb", runs_table=True)
    before = _state(other)
    store = open_history(other)
    for opener in (store.reader, store.writer):
        with pytest.raises(HistoryError, match="not a kgents history"), opener():
            pass
    with pytest.raises(HistoryError, match="not a kgents history"):
        store.read(lambda con: con.execute("SELECT 1").fetchall())
    assert _state(other) == before


def test_an_empty_duckdb_file_is_no_history_for_a_reader_and_new_for_a_writer(site, tmp_path):
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    before = _state(empty)
    one_line(site.cli("trends", "--db", empty), 2, "holds no kgents history")
    assert _state(empty) == before
    # A writer may start a history in it: it is new, it holds nobody's data.
    run = sorted(site.archive.iterdir())[0]
    assert site.cli("history", "ingest", run, "--db", empty).returncode == 0
    assert site.cli("trends", "--db", empty).returncode == 0


def test_our_own_history_is_still_read_and_written(site):
    before = site.inventory()
    assert site.cli("trends", "--db", site.db).returncode == 0
    assert site.verdict()[0] == 0  # still READY: nothing was wrong with it
    assert_nothing_lost(before, site.inventory())


def test_a_history_from_a_newer_kgents_is_refused_not_downgraded(site):
    con = duckdb.connect(str(site.db))
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    con.close()
    before = _state(site.db)
    one_line(site.cli("trends", "--db", site.db), 2, "newer kgents-pipeline")
    assert _state(site.db) == before
    assert_not_ready(site)
