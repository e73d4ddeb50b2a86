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
from kgents_pipeline.history.queries import content_keys
from kgents_pipeline.history.run_record import RunRecord, parse_run_dir
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
    if path.exists():
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def ingest_run_dir(
    store: HistoryStore,
    run_dir: str | os.PathLike[str],
    *,
    limits: ValidityLimits = ValidityLimits(),
) -> IngestResult:
    """Ingest one archived run (idempotent)."""
    with store.writer() as con:
        return ingest(con, Path(run_dir), limits)


def ingest_run_dirs(
    store: HistoryStore,
    run_dirs: Iterable[str | os.PathLike[str]],
    *,
    limits: ValidityLimits = ValidityLimits(),
) -> list[IngestResult]:
    """Ingest several runs through one connection. Stops at the first unusable directory,
    after the ones before it were committed (each run is its own transaction)."""
    with store.writer() as con:
        return [ingest(con, Path(d), limits) for d in run_dirs]


def ingest(
    con: duckdb.DuckDBPyConnection, run_dir: Path, limits: ValidityLimits, *, force: bool = False
) -> IngestResult:
    """Ingest one archived run through `con`: the whole run in one transaction."""
    if not run_dir.is_dir():
        raise HistoryError(f"{run_dir}: not a directory")
    if (run_dir / "runners").is_dir():  # N runners: one run, merged from the union of points
        from kgents_pipeline.history.merge import ingest_merged

        return ingest_merged(con, run_dir, limits, force=force)
    record = parse_run_dir(run_dir)
    content = hashlib.sha256(
        (record.content_sha256 + _file_digest(run_dir / POINTS_FILE)).encode()
    ).hexdigest()
    reasons = run_validity(record, limits)
    existing = con.execute(
        "SELECT content_sha256, points_rows, points_error FROM runs WHERE run_id = ?",
        [record.run_id],
    ).fetchone()
    if existing and existing[0] == content and not force:
        return IngestResult(
            record.run_id, "unchanged", record, not reasons, reasons, existing[1], existing[2]
        )
    points = run_dir / POINTS_FILE

    def write(points_file: Path | None, note: str | None, ignore_errors: bool = False) -> int:
        """The whole run in one transaction: a reader never sees half of it."""
        con.execute("BEGIN TRANSACTION")
        try:
            for table in RUN_TABLES:
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [record.run_id])
            rows = 0
            if points_file is not None:
                rows = insert_points(con, record.run_id, points_file, ignore_errors=ignore_errors)
            _insert_run(con, record, content, reasons, rows, note and note.format(rows=rows))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return rows

    points_error: str | None = None
    if not points.exists():
        points_error = f"{POINTS_FILE} missing"
        points_rows = write(None, points_error)
    else:
        try:
            points_rows = write(points, None)
        except duckdb.Error as exc:
            # k6 killed mid-run leaves a gzip stream cut short: keep its whole lines.
            first_error = str(exc).splitlines()[0]
            with tempfile.TemporaryDirectory(prefix="kgents-points-") as tmp:
                salvaged = Path(tmp) / "points.ndjson"
                note = "truncated" if not _salvage_gzip(points, salvaged) else "partly malformed"
                template = f"{POINTS_FILE} {note}: salvaged {{rows}} points ({first_error})"
                points_rows = write(salvaged, template, ignore_errors=True)
            points_error = template.format(rows=points_rows)
    action = "replaced" if existing else "inserted"
    return IngestResult(
        record.run_id, action, record, not reasons, reasons, points_rows, points_error
    )


def _insert_run(
    con: duckdb.DuckDBPyConnection,
    r: RunRecord,
    content: str,
    reasons: tuple[str, ...],
    points_rows: int,
    points_error: str | None,
) -> None:
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
            "INSERT INTO run_metrics VALUES (?, ?, ?, ?, ?)",
            [(r.run_id, m.metric, m.type, m.stat, m.value) for m in r.metrics],
        )
    if r.thresholds:
        con.executemany(
            "INSERT INTO run_thresholds VALUES (?, ?, ?, ?)",
            [(r.run_id, t.metric, t.expression, t.ok) for t in r.thresholds],
        )
    if r.checks:
        con.executemany(
            "INSERT INTO run_checks VALUES (?, ?, ?, ?, ?)",
            [(r.run_id, c.path, c.name, c.passes, c.fails) for c in r.checks],
        )


def archived_run_dirs(archive_root: str | os.PathLike[str]) -> list[Path]:
    """Every run directory under the archive (those holding a run.json), oldest name first."""
    root = Path(archive_root)
    if not root.is_dir():
        raise HistoryError(f"no run archive at {root}")
    return sorted(p for p in root.iterdir() if (p / "run.json").is_file())


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
    directory that fails to parse keeps its old rows and is reported; runs that are not in the
    archive are kept and listed; operator records (invalidations, waivers, verifications,
    verdicts) live in other tables and are untouched. A database file that cannot be opened at
    all is renamed aside, never deleted, and the history is re-created from the archive.
    """
    dirs = archived_run_dirs(archive_root)
    moved_aside = None
    try:
        with store.writer():
            pass
    except HistoryError as exc:
        if "locked by" in str(exc) or not store.exists():
            raise
        moved_aside = store.move_aside(f"unreadable-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}")
    results: list[IngestResult] = []
    problems: list[str] = []
    with store.writer() as con:
        for run_dir in dirs:
            try:
                results.append(ingest(con, run_dir, limits, force=True))
            except (HistoryError, ValueError, TypeError, OSError) as exc:
                problems.append(f"{run_dir}: {exc}" if str(run_dir) not in str(exc) else str(exc))
        archived = {d.name for d in dirs}
        kept = tuple(
            run_id
            for (run_id,) in con.execute("SELECT run_id FROM runs ORDER BY started_at").fetchall()
            if run_id not in archived
        )
    return RebuildReport(tuple(results), tuple(problems), kept, moved_aside)
