"""Item 7: a full disk, on a real 20 MiB file system (a tmpfs: root can mount one). Every command
says so in one line naming the device and "no space left"; a failed ingest leaves the history no
larger than before; a run directory that could not be written whole is marked incomplete, and
the next ingest says so."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from kgents_pipeline.loadtest.target import DemoTarget
from tests.faults.conftest import Site, assert_not_ready, assert_nothing_lost, one_line
from tests.verdict.synth import write_run


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 20 MiB file system, unmounted afterwards. Mounting needs root (make test and
    `.ci/run` run as root on the project's machines); where the machine does not allow it the
    test fails saying why: a full disk is never left untested."""
    point = tmp_path / "small"
    point.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m,mode=0755", "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        why = f"cannot mount a 20 MiB tmpfs here: {proc.stderr.strip() or proc.returncode}"
        pytest.fail(why + " (the full-disk faults need root to mount a small file system)")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(fs: Path, leave: int = 0) -> Path:
    """Fill the file system but `leave` bytes."""
    filler = fs / "filler"
    filler.unlink(missing_ok=True)
    st = os.statvfs(fs)
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def footprint(db: Path) -> int:
    """The history's bytes on disk: the file and its WAL."""
    wal = db.with_name(db.name + ".wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


@pytest.fixture
def small_site(site: Site, small_fs: Path) -> Site:
    """The READY history and its archive on the small file system."""
    moved = Site(small_fs, small_fs / "metrics.duckdb", small_fs / "k6", site.checklist)
    shutil.copy2(site.db, moved.db)
    shutil.copytree(site.archive, moved.archive)
    con = duckdb.connect(str(moved.db))
    con.execute(
        "UPDATE runs SET run_dir = replace(run_dir, ?, ?)",
        [str(site.archive.resolve()), str(moved.archive.resolve())],
    )
    con.close()
    assert moved.verdict()[0] == 0
    return moved


def _big_run(archive: Path) -> Path:
    """A run of 60,000 raw points, archived as the load test would archive it."""
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    return write_run(archive, f"{started:%Y%m%dT%H%M%SZ}-big000", started, rate=500, duration_s=60)


def test_a_failed_ingest_is_one_line_naming_the_device_and_leaves_the_history_no_larger(
    small_site,
):
    site = small_site
    before = site.inventory()
    run = _big_run(site.archive)
    fill(site.root, leave=800 * 1024)
    size = footprint(site.db)
    for args in (
        ("history", "ingest", run, "--db", site.db),
        ("history", "rebuild", "--db", site.db, "--archive", site.archive),
    ):
        line = one_line(site.cli(*args), 2, "no space left on device tmpfs", str(site.root))
        assert "rollback" not in line
        assert footprint(site.db) <= size, args
    # The history still answers, and the run it could not take keeps it from READY.
    assert site.cli("trends", "--db", site.db).returncode == 0
    _, doc = assert_not_ready(site)
    assert run.name in next(r for r in doc["reasons"] if r["rule"] == "archive")["run_ids"]
    # A command that records on a full disk says so too.
    fill(site.root, leave=0)
    one_line(
        site.cli("verdict", "--db", site.db, "--archive", site.archive, "--checklist",
                 site.checklist),
        2, "no space left on device tmpfs",
    )  # fmt: skip
    one_line(
        site.cli("history", "invalidate", sorted(before.run_ids)[0], "--reason", "x",
                 "--db", site.db),
        2, "no space left on device tmpfs",
    )  # fmt: skip
    assert footprint(site.db) <= size
    assert_nothing_lost(before, site.inventory())
    # Room again: the same command ingests it.
    (site.root / "filler").unlink()
    assert site.cli("history", "ingest", run, "--db", site.db).returncode == 0
    assert run.name in site.inventory().run_ids


def test_a_load_test_on_a_full_disk_marks_its_run_incomplete_and_the_ingest_says_so(small_site):
    site = small_site
    before = site.inventory()
    fill(site.root, leave=48 * 1024)  # run.json and the script fit; k6's output does not
    with DemoTarget() as demo:
        proc = site.cli(
            "loadtest", "run", "--target", demo.url, "--skip-preflight", "--rate", "50",
            "--duration", "2s", "--db", site.db, "--archive", site.archive, "--lock-wait", "1",
        )  # fmt: skip
    line = one_line(proc, 2, "is archived in", "no space left on device tmpfs")
    [run_dir] = [p for p in site.archive.iterdir() if p.name not in before.run_ids]
    assert (run_dir / "incomplete").exists() and (run_dir / "run.json").exists()
    assert f"history ingest {run_dir}" in line
    _, doc = assert_not_ready(site)
    assert run_dir.name in next(r for r in doc["reasons"] if r["rule"] == "archive")["run_ids"]

    (site.root / "filler").unlink()
    ingest = site.cli("history", "ingest", run_dir, "--db", site.db)
    assert ingest.returncode == 0 and "could not be written whole" in ingest.stdout
    _, doc = assert_not_ready(site)
    assert doc["state"] == "INVALID_RUN"
    assert "could not be written whole" in next(
        r["message"] for r in doc["reasons"] if r["rule"] == "validity"
    )
    assert_nothing_lost(before, site.inventory())

    # No room at all: the load test does not start, and leaves no half directory behind.
    fill(site.root, leave=0)
    runs = sorted(p.name for p in site.archive.iterdir())
    with DemoTarget() as demo:
        proc = site.cli(
            "loadtest", "run", "--target", demo.url, "--skip-preflight", "--rate", "50",
            "--duration", "1s", "--db", site.db, "--archive", site.archive,
        )  # fmt: skip
    one_line(proc, 2, "cannot write run directory", "no space left on device tmpfs")
    assert sorted(p.name for p in site.archive.iterdir()) == runs
    assert_not_ready(site)
    assert_nothing_lost(before, site.inventory())
