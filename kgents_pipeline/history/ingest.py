"""Idempotent ingest of archived k6 runs into the DuckDB history.

Re-ingesting an unchanged run changes nothing; a run whose files changed (for example a run that
was ingested while k6 was still running) is replaced as a whole, in one transaction.
Raw points go in through explicit-column `read_ndjson`: `read_ndjson_auto` drops tags that first
appear late in the file, and `executemany` is three orders of magnitude slower.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import duckdb

from kgents_pipeline.errors import HistoryError
from kgents_pipeline.filesystem import is_no_space, os_error_line
from kgents_pipeline.history import ducklake
from kgents_pipeline.history.archive import record_listing
from kgents_pipeline.history.db import (
    CorruptHistory,
    HistoryLocked,
    NotAHistory,
    StorageFull,
    first_line,
    rollback,
    storage_error,
)
from kgents_pipeline.history.queries import content_keys
from kgents_pipeline.history.run_record import INCOMPLETE_MARKER, RunRecord, parse_run_dir
from kgents_pipeline.history.store import HistoryStore
from kgents_pipeline.history.validity import ValidityLimits, run_validity

POINTS_FILE = "points.ndjson.gz"
_NOT_COLUMNS = ("metrics", "thresholds", "checks")  # RunRecord fields stored in their own tables
RUN_TABLES = ("run_points", "run_checks", "run_thresholds", "run_metrics", "runs")
_TAGS = ("status", "expected_response", "error_code", "scenario", "name", "check")
POINT_COLUMNS = (
    "{'type': 'VARCHAR', 'metric': 'VARCHAR', 'data': 'STRUCT(\"time\" TIMESTAMPTZ, "
    '"value" DOUBLE, tags STRUCT(' + ", ".join(f'"{t}" VARCHAR' for t in _TAGS) + "))'}"
)


@dataclass(frozen=True)
class IngestResult:
    run_id: str
    action: str  # inserted | replaced | unchanged
    record: RunRecord
    valid: bool
    invalid_reasons: tuple[str, ...]
    points_rows: int
    points_error: str | None


def insert_points(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    path: str | os.PathLike[str],
    *,
    ignore_errors: bool = False,
) -> int:
    """Insert one run's raw points straight from the k6 file; returns the row count."""
    con.execute(
        f"""
        INSERT INTO run_points
        SELECT ?, metric, data."time", data."value", data.tags.status,
               data.tags.expected_response, data.tags.error_code, data.tags.scenario,
               data.tags."name", data.tags."check"
        FROM read_ndjson(?, columns = {POINT_COLUMNS}, format = 'newline_delimited',
                         ignore_errors = {str(ignore_errors).lower()})
        WHERE type = 'Point' AND data."time" IS NOT NULL
        """,
        [run_id, str(path)],
    )
    row = con.execute("SELECT count(*) FROM run_points WHERE run_id = ?", [run_id]).fetchone()
    return int(row[0]) if row else 0


def _salvage_gzip(src: Path, dst: Path) -> bool:
    """Decompress what can be decompressed, keep whole lines only; True if the stream was whole.

    zlib directly, chunk by chunk: `gzip.GzipFile.read` discards what it decompressed when it
    then hits the cut-off end.
    """
    inflater = zlib.decompressobj(wbits=31)
    tail = b""
    with open(src, "rb") as raw, open(dst, "wb") as out:
        try:
            while chunk := raw.read(1 << 16):
                while chunk:
                    data = tail + inflater.decompress(chunk)
                    cut = data.rfind(b"\n") + 1
                    out.write(data[:cut])
                    tail = data[cut:]
                    chunk = b""
                    if inflater.eof and inflater.unused_data:  # next gzip member
                        chunk = inflater.unused_data
                        inflater = zlib.decompressobj(wbits=31)
        except zlib.error:
            return False
    return inflater.eof


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
        except OSError as exc:
            raise HistoryError(f"{path}: unreadable: {os_error_line(exc, path)}") from None
    return digest.hexdigest()


def _storage_failure(exc: BaseException) -> bool:
    """A write the database could not make (full disk, aborted commit): never a parse problem
    of the run, so never salvaged."""
    text = str(exc)
    return (
        is_no_space(exc)
        or isinstance(exc, duckdb.TransactionException)
        or "Could not write" in text
        or "Could not truncate" in text
    )


def ingest_run_dir(
    store: HistoryStore,
    run_dir: str | os.PathLike[str],
    *,
    limits: ValidityLimits = ValidityLimits(),
    lock_wait_s: float = 5.0,
) -> IngestResult:
    """Ingest one archived run (idempotent)."""
    with store.writer(lock_wait_s=lock_wait_s) as con:
        result = ingest(con, Path(run_dir), limits)
        record_listing(con, Path(run_dir).parent)
        return result


def ingest_run_dirs(
    store: HistoryStore,
    run_dirs: Iterable[str | os.PathLike[str]],
    *,
    limits: ValidityLimits = ValidityLimits(),
) -> list[IngestResult]:
    """Ingest several runs through one connection. Stops at the first unusable directory,
    after the ones before it were committed (each run is its own transaction)."""
    with store.writer() as con:
        results = []
        try:
            for d in run_dirs:
                results.append(ingest(con, Path(d), limits))
        finally:
            for root in sorted({str(Path(r.record.run_dir).parent) for r in results}):
                record_listing(con, root)
        return results


def ingest(
    con: duckdb.DuckDBPyConnection, run_dir: Path, limits: ValidityLimits, *, force: bool = False
) -> IngestResult:
    """Ingest one archived run through `con`: the whole run in one transaction.

    Any run directory either enters the history (an invalid run says why) or is refused with a
    one-line `HistoryError` naming it; a write the database cannot make (a full disk) is a
    `StorageFull` and leaves the history as it was. On DuckLake, a commit that lost to another
    writer's (both replaced rows of one table) wrote nothing and is tried again from the
    content check: what the other writer committed is seen, so the same run is never doubled."""
    return ducklake.retry_conflicts(lambda: _ingest_once(con, run_dir, limits, force=force))


def _ingest_once(
    con: duckdb.DuckDBPyConnection, run_dir: Path, limits: ValidityLimits, *, force: bool
) -> IngestResult:
    if not run_dir.is_dir():
        what = "does not exist" if not run_dir.exists() else "is not a directory"
        raise HistoryError(f"{run_dir}: {what} (expected a run directory)")
    if (run_dir / "runners").is_dir():  # N runners: one run, merged from the union of points
        from kgents_pipeline.history.merge import ingest_merged

        return ingest_merged(con, run_dir, limits, force=force)
    record = parse_run_dir(run_dir)
    points = run_dir / POINTS_FILE
    content = hashlib.sha256((record.content_sha256 + _file_digest(points)).encode()).hexdigest()
    reasons = run_validity(record, limits)
    existing = con.execute(
        "SELECT content_sha256, points_rows, points_error FROM runs WHERE run_id = ?",
        [record.run_id],
    ).fetchone()
    if existing and existing[0] == content and not force:
        return IngestResult(
            record.run_id, "unchanged", record, not reasons, reasons, existing[1], existing[2]
        )

    def write(points_file: Path | None, note: str | None, ignore_errors: bool = False) -> int:
        """The whole run in one transaction: a reader never sees half of it."""
        con.execute("BEGIN TRANSACTION")
        try:
            for table in RUN_TABLES:
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [record.run_id])
            rows = 0
            if points_file is not None:
                rows = insert_points(con, record.run_id, points_file, ignore_errors=ignore_errors)
            insert_run(con, record, content, reasons, rows, note and note.format(rows=rows))
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
        return rows

    def stored(points_file: Path | None, note: str | None, ignore_errors: bool = False) -> int:
        """`write`, with what the database refused said in one line naming the run."""
        try:
            return write(points_file, note, ignore_errors)
        except (duckdb.Error, ValueError, OverflowError) as exc:
            if ducklake.is_conflict(exc):
                raise
            if _storage_failure(exc):
                raise storage_error(run_dir, exc, f"cannot ingest {run_dir}") from None
            raise HistoryError(f"{run_dir}: cannot be stored: {first_line(exc)}") from None

    points_error: str | None = None
    if not points.exists():
        points_error = f"{POINTS_FILE} missing"
        points_rows = stored(None, points_error)
    elif not points.is_file():
        points_error = f"{POINTS_FILE} is not a regular file"
        points_rows = stored(None, points_error)
    else:
        try:
            points_rows = write(points, None)
        except (ValueError, OverflowError) as exc:
            raise HistoryError(f"{run_dir}: cannot be stored: {first_line(exc)}") from None
        except duckdb.Error as exc:
            if ducklake.is_conflict(exc):
                raise
            if _storage_failure(exc):
                raise storage_error(run_dir, exc, f"cannot ingest {run_dir}") from None
            # k6 killed mid-run leaves a gzip stream cut short: keep its whole lines.
            first_error = first_line(exc)
            with tempfile.TemporaryDirectory(prefix="kgents-points-") as tmp:
                salvaged = Path(tmp) / "points.ndjson"
                try:
                    whole = _salvage_gzip(points, salvaged)
                except OSError as err:
                    if is_no_space(err):
                        raise storage_error(salvaged, err, f"cannot ingest {run_dir}") from None
                    raise HistoryError(f"{points}: unreadable: {os_error_line(err)}") from None
                note = "truncated" if not whole else "partly malformed"
                template = f"{POINTS_FILE} {note}: salvaged {{rows}} points ({first_error})"
                points_rows = stored(salvaged, template, ignore_errors=True)
            points_error = template.format(rows=points_rows)
    action = "replaced" if existing else "inserted"
    return IngestResult(
        record.run_id, action, record, not reasons, reasons, points_rows, points_error
    )


def insert_run(
    con: duckdb.DuckDBPyConnection,
    r: RunRecord,
    content: str,
    reasons: tuple[str, ...],
    points_rows: int,
    points_error: str | None,
) -> None:
    """The run's row and its metrics, thresholds and checks (one k6 run, or N runners merged:
    history.merge), inside the caller's transaction."""
    row = {f.name: getattr(r, f.name) for f in fields(RunRecord) if f.name not in _NOT_COLUMNS}
    key_a, key_b = content_keys(content)
    row.update(
        content_sha256=content,
        content_key_a=key_a,
        content_key_b=key_b,
        valid=not reasons,
        invalid_reasons=list(reasons),
        points_rows=points_rows,
        points_error=points_error,
        ingested_at=dt.datetime.now(dt.UTC),
    )
    con.execute(
        f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        list(row.values()),
    )
    if r.metrics:
        con.executemany(  # a few dozen rows per run: executemany is fine at this size
            "INSERT INTO run_metrics (run_id, metric, type, stat, value) VALUES (?, ?, ?, ?, ?)",
            [(r.run_id, m.metric, m.type, m.stat, m.value) for m in r.metrics],
        )
    if r.thresholds:
        con.executemany(
            "INSERT INTO run_thresholds (run_id, metric, expression, ok) VALUES (?, ?, ?, ?)",
            [(r.run_id, t.metric, t.expression, t.ok) for t in r.thresholds],
        )
    if r.checks:
        con.executemany(
            "INSERT INTO run_checks (run_id, path, name, passes, fails) VALUES (?, ?, ?, ?, ?)",
            [(r.run_id, c.path, c.name, c.passes, c.fails) for c in r.checks],
        )


def archived_run_dirs(archive_root: str | os.PathLike[str]) -> list[Path]:
    """Every run directory under the archive (those holding a run.json, or marked incomplete by
    the load test), oldest name first."""
    root = Path(archive_root)
    if not root.is_dir():
        raise HistoryError(f"no run archive at {root}")
    try:
        entries = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError as exc:
        raise HistoryError(f"run archive {root}: {os_error_line(exc)}") from None
    return [
        p
        for p in entries
        if (p / "run.json").exists()
        or (p / "run.json").is_symlink()
        or (p / INCOMPLETE_MARKER).exists()
    ]


@dataclass(frozen=True)
class RebuildReport:
    results: tuple[IngestResult, ...]
    problems: tuple[str, ...]  # run directories that could not be ingested (their rows are kept)
    kept: tuple[str, ...]  # runs in the history that are not in the archive (kept as they are)
    moved_aside: str | None  # an unreadable history, renamed (never deleted) before starting afresh


def rebuild(
    store: HistoryStore,
    archive_root: str | os.PathLike[str],
    *,
    limits: ValidityLimits = ValidityLimits(),
) -> RebuildReport:
    """Re-ingest every archived run, replacing its rows (after a parser fix, or into a new file).

    Never loses what it cannot re-create: each run is replaced in its own transaction, so a run
    directory that fails to parse keeps its old rows and is reported, and the rebuild goes on;
    runs that are not in the archive are kept and listed; operator records (invalidations,
    waivers, verifications, verdicts) live in other tables and are untouched. A history that is
    corrupt or cannot be opened as DuckDB at all is renamed aside, never deleted, and re-created
    from the archive. Another application's DuckDB file is refused, untouched.
    """
    dirs = archived_run_dirs(archive_root)
    moved_aside = None
    try:
        with store.writer():
            pass
    except CorruptHistory:
        moved_aside = store.move_aside(f"unreadable-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}")
    results: list[IngestResult] = []
    problems: list[str] = []
    with store.writer() as con:
        for run_dir in dirs:
            try:
                results.append(ingest(con, run_dir, limits, force=True))
            except (StorageFull, CorruptHistory, HistoryLocked, NotAHistory):
                raise  # the history itself failed: nothing more can be ingested
            except HistoryError as exc:
                problems.append(f"{run_dir}: {exc}" if str(run_dir) not in str(exc) else str(exc))
            except OSError as exc:
                problems.append(f"{run_dir}: {os_error_line(exc)}")
        record_listing(con, archive_root)
        archived = {d.name for d in dirs}
        kept = tuple(
            run_id
            for (run_id,) in con.execute("SELECT run_id FROM runs ORDER BY started_at").fetchall()
            if run_id not in archived
        )
    return RebuildReport(tuple(results), tuple(problems), kept, moved_aside)
