"""The archive against the history (`history.archive`): the listing an ingest records is used
only while the archive directory is unchanged, and never hides a run archived since."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

from kgents_pipeline.history.archive import check_archive
from kgents_pipeline.history.ingest import ingest_run_dirs
from kgents_pipeline.history.store import open_history
from tests.verdict.synth import write_run

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=1)


def _age(path: Path, seconds: float = 60) -> None:
    """Make a directory look untouched for a while (its mtime `seconds` in the past)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def _check(db: Path, archive: Path, now: dt.datetime = NOW):
    with open_history(db).reader() as con:
        used = [r for (r,) in con.execute("SELECT run_id FROM runs").fetchall()]
        return check_archive(con, configured=archive, used=used, now=now)


def _history(tmp_path: Path) -> tuple[Path, Path]:
    archive = tmp_path / "k6"
    dirs = [
        write_run(archive, f"run-{i}", T0 + dt.timedelta(hours=i), duration_s=2) for i in (0, 1)
    ]
    _age(archive)
    db = tmp_path / "h.duckdb"
    ingest_run_dirs(open_history(db), dirs)  # records the listing of a quiet directory
    return db, archive


def test_an_unchanged_archive_is_clean_and_a_new_run_in_it_is_found(tmp_path, monkeypatch):
    from kgents_pipeline.history import archive as module

    db, archive = _history(tmp_path)
    listed: list[Path] = []
    names = module._names
    monkeypatch.setattr(module, "_names", lambda root: listed.append(root) or names(root))
    check = _check(db, archive)
    assert check.clean and check.archived == 2
    assert listed == []  # the listing the ingest recorded was used: no directory read
    write_run(archive, "run-2", T0 + dt.timedelta(hours=2), duration_s=2)  # its mtime changes
    check = _check(db, archive)
    assert [r.run_id for r in check.missing] == ["run-2"] and not check.clean
    assert listed == [archive.resolve()]  # the directory changed: listed again


def test_a_directory_that_becomes_a_run_later_is_found_with_the_listing_unchanged(tmp_path):
    archive = tmp_path / "k6"
    dirs = [write_run(archive, "run-0", T0, duration_s=2)]
    (archive / "run-9").mkdir()  # a run being created: no run.json yet
    _age(archive)
    db = tmp_path / "h.duckdb"
    ingest_run_dirs(open_history(db), dirs)
    mtime = archive.stat().st_mtime_ns
    assert _check(db, archive).clean  # not a run (yet)
    src = write_run(tmp_path / "elsewhere", "run-9", T0 + dt.timedelta(hours=1), duration_s=2)
    for f in src.iterdir():
        shutil.copy2(f, archive / "run-9" / f.name)
    os.utime(archive, ns=(mtime, mtime))  # the archive directory itself did not change
    assert [r.run_id for r in _check(db, archive).missing] == ["run-9"]


def test_a_run_changed_after_its_ingest_is_stale(tmp_path):
    db, archive = _history(tmp_path)
    meta = json.loads((archive / "run-1" / "run.json").read_text())
    meta["exit_code"] = 105
    time.sleep(0.01)
    (archive / "run-1" / "run.json").write_text(json.dumps(meta))
    check = _check(db, archive)
    assert [r.run_id for r in check.stale] == ["run-1"] and "after it was ingested" in (
        check.stale[0].problem
    )


def test_a_what_if_is_not_held_to_runs_archived_after_it_but_the_present_is(tmp_path):
    db, archive = _history(tmp_path)
    later = T0 + dt.timedelta(days=3)
    write_run(archive, f"{later:%Y%m%dT%H%M%SZ}-abc123", later, duration_s=2)
    assert _check(db, archive, now=T0 + dt.timedelta(hours=2)).clean
    present = _check(db, archive, now=dt.datetime.now(dt.UTC))
    assert len(present.missing) == 1


def test_the_archive_the_history_came_from_is_examined_and_must_exist(tmp_path):
    db, archive = _history(tmp_path)
    with open_history(db).reader() as con:
        used = [r for (r,) in con.execute("SELECT run_id FROM runs").fetchall()]
        assert check_archive(con, configured=None, used=used, now=NOW).clean
    shutil.rmtree(archive)
    with open_history(db).reader() as con:
        check = check_archive(con, configured=None, used=used, now=NOW)
    assert check.gone == (str(archive.resolve()),) and not check.clean
