"""Item 5: a corrupt history is detected on open and reported in one line (exit 2, never READY);
`history rebuild` moves it aside (never deletes it) and re-creates the history from the archive."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import pytest

from tests.faults.conftest import Site, assert_not_ready, assert_nothing_lost, one_line

BLOCK_START = 3 * 4096  # DuckDB's file header and its two database headers


def _used_block_offsets(db: Path) -> list[int]:
    """File offsets of the data blocks the tables use (DuckDB's own storage report)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
        ids = sorted(
            {
                b
                for table in ("runs", "run_points", "run_metrics")
                for (b,) in con.execute(
                    f"SELECT block_id FROM pragma_storage_info('{table}') WHERE block_id >= 0"
                ).fetchall()
            }
        )
    finally:
        con.close()
    return [BLOCK_START + b * size for b in ids]


def _corrupt_mid_file(db: Path) -> str:
    """Overwrite 64 KiB in the used block nearest the middle of the file; the file's sha256."""
    middle = db.stat().st_size // 2
    offset = min(_used_block_offsets(db), key=lambda o: abs(o - middle)) + 4096
    with open(db, "r+b") as fh:
        fh.seek(offset)
        fh.write(os.urandom(64 * 1024))
    return hashlib.sha256(db.read_bytes()).hexdigest()


def _rebuild_moves_it_aside(site: Site, damaged: str) -> Path:
    proc = site.cli("history", "rebuild", "--db", site.db, "--archive", site.archive)
    assert proc.returncode == 0, proc.stderr
    assert "moved aside to" in proc.stderr and "internal error" not in proc.stderr
    [aside] = [p for p in site.db.parent.iterdir() if ".unreadable-" in p.name]
    assert hashlib.sha256(aside.read_bytes()).hexdigest() == damaged  # kept, byte for byte
    return aside


def test_a_corrupt_block_is_refused_on_open_and_rebuild_moves_the_file_aside(site):
    assert site.verdict()[0] == 0  # READY before
    before = site.inventory()
    damaged = _corrupt_mid_file(site.db)

    for i, args in enumerate(
        (
            ("verdict", "--db", site.db, "--archive", site.archive, "--checklist", site.checklist),
            ("verdict", "--db", site.db, "--now", "2026-12-01", "--checklist", site.checklist),
            ("trends", "--db", site.db),
            ("report", "--out", site.root / "r.html", "--db", site.db),
            ("history", "ingest", sorted(site.archive.iterdir())[0], "--db", site.db),
        )
    ):
        run = site.cli if i == 0 else site.invoke  # one real process; the rest in this one
        one_line(run(*args), 2, "is corrupt", "history rebuild")
    assert hashlib.sha256(site.db.read_bytes()).hexdigest() == damaged  # nothing wrote to it
    assert_not_ready(site)

    _rebuild_moves_it_aside(site, damaged)
    after = site.inventory()
    assert_nothing_lost(before, after)  # every run comes back from the archive
    # The live verification lived only in the corrupt file: not READY until it is recorded again.
    code, doc = assert_not_ready(site)
    assert code == 1 and doc["state"] == "INSUFFICIENT_DATA"


@pytest.mark.parametrize(
    "damage",
    [
        lambda db: db.write_bytes(db.read_bytes()[: db.stat().st_size // 2]),  # cut in half
        lambda db: db.write_bytes(os.urandom(4096) + db.read_bytes()[4096:]),  # header garbage
        lambda db: db.write_bytes(b"not a duckdb file\n" * 1000),
    ],
    ids=["truncated", "header", "not-duckdb"],
)
def test_a_history_that_cannot_be_opened_is_one_line_and_rebuilt_aside(site, damage):
    before = site.inventory()
    damage(site.db)
    damaged = hashlib.sha256(site.db.read_bytes()).hexdigest()
    line = one_line(site.cli("trends", "--db", site.db), 2)
    assert "history rebuild" in line, line
    assert_not_ready(site)
    _rebuild_moves_it_aside(site, damaged)
    assert_nothing_lost(before, site.inventory())
