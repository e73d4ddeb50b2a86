"""The fault suite's parts, all real: a READY history (synthetic runs in k6's formats, real
ingest, a real DuckDB file) with its archive, copied for every test; the console script run as a
user runs it (a subprocess: killed, locked out, starved of disk); helpers that assert, after a
fault, that the verdict is not READY and that no row or archived file was lost."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from tests.verdict.synth import history, signed_checklist, verification

BIN = Path(sys.executable).parent / "kgents-pipeline"
TABLES = ("runs", "run_metrics", "run_thresholds", "run_checks", "run_points")


@dataclass(frozen=True)
class Inventory:
    """What must survive a fault: the rows of every run table, the runs, every archived file."""

    rows: dict[str, int]
    run_ids: frozenset[str]
    files: dict[str, str]  # archive-relative path -> sha256


@dataclass(frozen=True)
class Site:
    """One test's READY history (`db`), its archive and its signed checklist."""

    root: Path
    db: Path
    archive: Path
    checklist: Path

    def cli(
        self, *args: object, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The console script, a real process."""
        return run_cli(*args, cwd=self.root, env=env, timeout=timeout)

    def invoke(self, *args: object) -> subprocess.CompletedProcess[str]:
        """The same command line in this process (`main()` as the console script calls it):
        for the long lists of bad inputs, where a process start per case would dominate."""
        return invoke(*args)

    def verdict(self, *extra: object) -> tuple[int, dict | None, str]:
        """`kgents-pipeline verdict --format json` (not recorded): (exit code, document, stderr)."""
        proc = self.cli(
            "verdict", "--db", self.db, "--archive", self.archive, "--checklist", self.checklist,
            "--format", "json", "--no-record", *extra,
        )  # fmt: skip
        doc = json.loads(proc.stdout) if proc.returncode in (0, 1) and proc.stdout else None
        return proc.returncode, doc, proc.stderr

    def inventory(self, db: Path | None = None) -> Inventory:
        con = duckdb.connect(str(db or self.db), read_only=True)
        try:
            rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
            run_ids = frozenset(r for (r,) in con.execute("SELECT run_id FROM runs").fetchall())
        finally:
            con.close()
        return Inventory(rows, run_ids, archive_files(self.archive))


def archive_files(archive: Path) -> dict[str, str]:
    return {
        str(p.relative_to(archive)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(archive.rglob("*"))
        if p.is_file()
    }


def invoke(*args: object) -> subprocess.CompletedProcess[str]:
    from click.testing import CliRunner

    from kgents_pipeline.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return subprocess.CompletedProcess(
        ["kgents-pipeline", *map(str, args)], result.exit_code, result.stdout, result.stderr
    )


def run_cli(
    *args: object, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def one_line(proc: subprocess.CompletedProcess[str], code: int = 2, *needles: str) -> str:
    """The command failed with `code` and exactly one line on stderr, not a bug's."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def assert_not_ready(site: Site) -> tuple[int, dict | None]:
    """After a fault the verdict is never READY: it says why (exit 1) or refuses (exit 2)."""
    code, doc, stderr = site.verdict()
    assert code in (1, 2), (code, stderr)
    if code == 2:
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    else:
        assert doc is not None and doc["state"] != "READY"
    return code, doc


def assert_nothing_lost(before: Inventory, after: Inventory) -> None:
    """Every row and run of `before` is still there, and every archived file, byte for byte."""
    for table, n in before.rows.items():
        assert after.rows[table] >= n, (table, n, after.rows[table])
    assert before.run_ids <= after.run_ids, before.run_ids - after.run_ids
    for path, digest in before.files.items():
        assert after.files.get(path) == digest, f"archived file lost or changed: {path}"


def blocking(doc: dict) -> dict[str, str]:
    return {r["rule"]: r["message"] for r in doc["reasons"] if r["blocks"] and not r["waived"]}


@pytest.fixture(scope="session")
def ready_template(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A READY history built once: four remote runs in the last hours, a live verification, the
    checklist signed off. Tests copy it (`site`)."""
    root = tmp_path_factory.mktemp("ready")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    site = Site(root, root / "metrics.duckdb", root / "k6", root / "checklist.yaml")
    history(site.db, site.archive, [{}] * 4, start=now - dt.timedelta(hours=4))
    verification(site.db, now - dt.timedelta(minutes=30))
    signed_checklist(site.checklist)
    return site


@pytest.fixture
def site(ready_template: Site, tmp_path: Path) -> Site:
    """This test's copy of the READY history and its archive (checked READY before the fault)."""
    root = tmp_path / "site"
    root.mkdir()
    copy = Site(root, root / "metrics.duckdb", root / "k6", root / "checklist.yaml")
    shutil.copy2(ready_template.db, copy.db)
    shutil.copytree(ready_template.archive, copy.archive)
    shutil.copy2(ready_template.checklist, copy.checklist)
    # The copied runs live at another path: re-point them, as `history rebuild` would.
    con = duckdb.connect(str(copy.db))
    con.execute(
        "UPDATE runs SET run_dir = replace(run_dir, ?, ?)",
        [str(ready_template.archive.resolve()), str(copy.archive.resolve())],
    )
    con.close()
    return copy


@contextlib.contextmanager
def lock_holder(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding a DuckDB write connection on `db` until the block ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(600)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def processes_with(needle: str) -> list[int]:
    """PIDs of live processes whose command line contains `needle` (zombies excluded)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmd and state != "Z":
            found.append(int(proc.name))
    return found


def wait_for(predicate, timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
