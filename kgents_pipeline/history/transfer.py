"""Move a local history into a shared one: `kgents-pipeline history migrate --from FILE --to
ducklake:...`.

Everything is copied, operator records included (invalidations, pins, waivers, verdicts,
verifications, apply events, notifications, capacity searches), in one transaction: the target holds all of it or
none of it. Idempotent: a row already there is not copied again, so a second run copies
nothing. Rows are matched by what identifies them: a run by its id (a run whose content differs,
re-ingested since, replaces the target's whole run), an event by its id, a record with a
numbered id (pins, waivers, verdicts, notifications) by its content; such a record keeps its
number unless the target already uses it for another record (a second machine's history), and
then gets a new one (`ducklake.next_id`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import duckdb

from kgents_pipeline.errors import HistoryError
from kgents_pipeline.history import db, ducklake
from kgents_pipeline.history.store import HistoryStore

_RUN_CHILDREN = ("run_metrics", "run_thresholds", "run_checks", "run_points", "run_runners")
_KEYED = {  # table -> the column that identifies a row
    "apply_events": "event_id",
    "policy_verifications": "run_id",
    "run_invalidations": "run_id",
    "archive_listings": "root",
}
_NUMBERED = {  # table -> its numbered id column
    "baseline_pins": "pin_id",
    "waivers": "waiver_id",
    "readiness_verdicts": "verdict_id",
    "notifications": "notification_id",
}


@dataclass
class TransferReport:
    copied: dict[str, int] = field(default_factory=dict)  # rows copied per table
    replaced_runs: int = 0  # runs the target held with other content, replaced whole
    renumbered: int = 0  # numbered records whose id the target already used for another

    @property
    def nothing(self) -> bool:
        return not any(self.copied.values())


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> list[str]:
    return [
        str(c)
        for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = ?"
            " AND table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [catalog, table],
        ).fetchall()
    ]


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> int:
    row = con.execute(sql, params or []).fetchone()
    return int(row[0]) if row else 0


def copy_history(source: HistoryStore, target: HistoryStore) -> TransferReport:
    """Copy the local history `source` into the DuckLake history `target` (created if new)."""
    if source.shared:
        raise HistoryError(f"--from {source} must be a local history file")
    if not target.shared:
        raise HistoryError(f"--to {target} must be a shared history (ducklake:postgres:...)")
    with source.reader():
        pass  # a kgents history, whole, at the current schema (an older one is migrated)

    def once() -> TransferReport:
        with target.writer() as con:
            db.attach_file(con, source.location, alias="src")
            try:
                return _copy(con)
            finally:
                con.execute("DETACH src")

    return ducklake.retry_conflicts(once)


def _copy(con: duckdb.DuckDBPyConnection) -> TransferReport:
    report = TransferReport()
    con.execute("BEGIN TRANSACTION")
    try:
        _copy_runs(con, report)
        for table, key in _KEYED.items():
            cols = ", ".join(f'"{c}"' for c in _columns(con, "src", table))
            report.copied[table] = _count(
                con,
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM src.{table} s"
                f" WHERE s.{key} NOT IN (SELECT {key} FROM {table} WHERE {key} IS NOT NULL)",
            )
        for table, key in _NUMBERED.items():
            _copy_numbered(con, table, key, report)
        _copy_capacity(con, report)
        con.execute("COMMIT")
    except BaseException:
        db.rollback(con)
        raise
    return report


def _copy_runs(con: duckdb.DuckDBPyConnection, report: TransferReport) -> None:
    moved = [
        (str(run_id), bool(present))
        for run_id, present in con.execute(
            "SELECT s.run_id, t.run_id IS NOT NULL FROM src.runs s LEFT JOIN runs t"
            " USING (run_id) WHERE t.run_id IS NULL"
            " OR t.content_sha256 IS DISTINCT FROM s.content_sha256"
        ).fetchall()
    ]
    ids = [run_id for run_id, _ in moved]
    replaced = [run_id for run_id, present in moved if present]
    report.replaced_runs = len(replaced)
    if replaced:
        for table in (*_RUN_CHILDREN, "runs"):
            con.execute(
                f"DELETE FROM {table} WHERE run_id IN (SELECT unnest($ids))", {"ids": replaced}
            )
    for table in ("runs", *_RUN_CHILDREN):
        report.copied[table] = _copy_rows(con, table, "run_id", ids)


def _copy_capacity(con: duckdb.DuckDBPyConnection, report: TransferReport) -> None:
    """A capacity search with its steps, when the target does not hold it (a search is recorded
    once, whole: its id names it)."""
    ids = [
        str(search_id)
        for (search_id,) in con.execute(
            "SELECT search_id FROM src.capacity_searches WHERE search_id NOT IN"
            " (SELECT search_id FROM capacity_searches WHERE search_id IS NOT NULL)"
        ).fetchall()
    ]
    for table in ("capacity_searches", "capacity_steps"):
        report.copied[table] = _copy_rows(con, table, "search_id", ids)


def _copy_rows(con: duckdb.DuckDBPyConnection, table: str, key: str, ids: list[str]) -> int:
    """Copy the source's rows of `table` whose `key` is one of `ids`; how many."""
    if not ids:
        return 0
    cols = ", ".join(f'"{c}"' for c in _columns(con, "src", table))
    return _count(
        con,
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM src.{table}"
        f" WHERE {key} IN (SELECT unnest($ids))",
        {"ids": ids},  # type: ignore[arg-type]
    )


def _copy_numbered(
    con: duckdb.DuckDBPyConnection, table: str, key: str, report: TransferReport
) -> None:
    cols = _columns(con, "src", table)
    content = [c for c in cols if c != key]
    same = " AND ".join(f's."{c}" IS NOT DISTINCT FROM t."{c}"' for c in content)
    rows = con.execute(
        f"SELECT s.{key}, EXISTS (SELECT 1 FROM {table} t WHERE t.{key} = s.{key})"
        f" FROM src.{table} s WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {same})"
        f" ORDER BY s.{key}"
    ).fetchall()
    listed = ", ".join(f'"{c}"' for c in content)
    for old_id, taken in rows:
        new_id = ducklake.next_id(con, table, key) if taken else int(old_id)
        report.renumbered += bool(taken)
        con.execute(
            f"INSERT INTO {table} ({key}, {listed}) SELECT ?, {listed} FROM src.{table}"
            f" WHERE {key} = ?",
            [new_id, old_id],
        )
    report.copied[table] = len(rows)


def describe(report: TransferReport, source: str | os.PathLike[str], target: str) -> str:
    """One line per table copied, for the command line."""
    if report.nothing:
        return f"{target} already holds everything in {source}: nothing copied"
    lines = [f"copied {source} into {target}:"]
    lines += [f"  {table:22} {n} rows" for table, n in report.copied.items() if n]
    if report.replaced_runs:
        lines.append(f"  ({report.replaced_runs} runs held with other content were replaced)")
    if report.renumbered:
        lines.append(f"  ({report.renumbered} records got a new id: theirs was taken)")
    return "\n".join(lines)
