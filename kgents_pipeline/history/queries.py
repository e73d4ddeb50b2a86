"""Reads of the history that the verdict, the report and the sensor need.

The verdict examines a handful of runs (the newest, the latest valid one and its fingerprint's
streak and baseline window, the pinned one, the trend), however long the history. So runs are
read newest first, a page at a time, and every other run enters the verdict only through
`runs_digest`, computed in SQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import duckdb

from kgents_pipeline.history.run_record import RunRecord
from kgents_pipeline.history.timestamps import from_epoch_us
from kgents_pipeline.history.windows import read_points

if TYPE_CHECKING:
    import numpy as np

# The columns of `runs` the verdict reads: RunRecord's fields, less what only ingest uses.
RUN_COLUMNS = tuple(
    f.name
    for f in fields(RunRecord)
    if f.name not in ("run_dir", "metrics", "thresholds", "checks")
)
assert RUN_COLUMNS[1:3] == ("started_at", "finished_at")


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The columns of `table` in the history in use (empty when there is no such table); never
    those of another attached database (`history migrate` attaches its source beside it).
    `duckdb_columns()` rather than information_schema: a third of the cost on the verdict's
    read."""
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ?",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def _select_runs(cols: set[str]) -> str:
    def column(name: str) -> str:
        if name not in cols:
            return f"NULL AS {name}"
        # Timestamps as epoch microseconds: DuckDB's TIMESTAMPTZ -> datetime conversion costs
        # more than the rest of the row.
        return f"epoch_us({name})" if name in ("started_at", "finished_at") else name

    return ", ".join(column(c) for c in RUN_COLUMNS)


def _records(rows: Iterable[Sequence[Any]]) -> list[RunRecord]:
    return RunRecord.from_rows(
        RUN_COLUMNS,
        ((r[0], from_epoch_us(r[1]), from_epoch_us(r[2]), *r[3:]) for r in rows),
    )


def read_runs(
    con: duckdb.DuckDBPyConnection,
    *,
    until: dt.datetime | None = None,
    before: tuple[dt.datetime, str] | None = None,
    limit: int | None = None,
    fingerprint: tuple[Any, ...] | None = None,
) -> list[RunRecord]:
    """Runs newest first: started no later than `until`, strictly older than the
    (started_at, run_id) `before`, of one `fingerprint` (RunRecord.fingerprint), at most
    `limit`. No argument: every run."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if until is not None:
        where.append("started_at <= ?")
        params.append(until)
    if before is not None:
        where.append("(started_at, run_id) < (?, ?)")
        params += [before[0], before[1]]
    if fingerprint is not None:
        script, k6, rate, duration, target = fingerprint
        where.append(
            "script_sha256 IS NOT DISTINCT FROM ? AND k6_version IS NOT DISTINCT FROM ?"
            " AND rate IS NOT DISTINCT FROM ? AND duration_s IS NOT DISTINCT FROM ?"
            " AND (CASE WHEN target_kind = 'demo' THEN 'demo' ELSE target_url END)"
            " IS NOT DISTINCT FROM ?"
        )
        params += [script, k6, rate, duration, target]
    cond = " AND ".join(where)
    if limit is not None:
        # The newest `limit` start times first (one narrow column), then whole rows from there
        # on: DuckDB does not sort every row's 30 columns to keep a few.
        cond += (
            " AND started_at >= (SELECT min(started_at) FROM (SELECT started_at FROM runs"
            f" WHERE {cond} ORDER BY started_at DESC LIMIT {int(limit)}))"
        )
        params = params + params
    sql = (
        f"SELECT {_select_runs(table_columns(con, 'runs'))} FROM runs WHERE {cond}"
        " ORDER BY started_at DESC, run_id DESC" + ("" if limit is None else f" LIMIT {int(limit)}")
    )
    return _records(con.execute(sql, params).fetchall())


def read_run(con: duckdb.DuckDBPyConnection, run_id: str) -> RunRecord | None:
    rows = con.execute(
        f"SELECT {_select_runs(table_columns(con, 'runs'))} FROM runs WHERE run_id = ?", [run_id]
    ).fetchall()
    return _records(rows)[0] if rows else None


def run_exists(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    row = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return bool(row and row[0])


# Each run's content hash (hex sha256 of run.json, summary.json and points) as two 60-bit numbers
# (`runs.content_key_a`/`_b`, written at ingest, migration 0004), summed over the runs: a digest
# of the whole set that changes when any run is added, removed or re-ingested with other content.
# Order-free, so SQL computes it in one scan of two columns; `runs_digest` (SQL) and
# `runs_digest_of` (in memory) give the same answer. A row written by hand without its keys is
# keyed from its content hash in SQL, the same way.
def _key_sql(start: int) -> str:
    chunk = f"substr(content_sha256, {start}, 15)"
    return (
        f"coalesce(TRY_CAST('0x' || {chunk} AS BIGINT),"
        f" CAST('0x' || substr(md5(content_sha256), {start}, 15) AS BIGINT))"
    )


def content_keys(content: str) -> tuple[int, int]:
    """The two numbers a run's content hash contributes to `runs_digest`."""
    return _key(content, 1), _key(content, 16)


def _key(content: str, start: int) -> int:
    chunk = content[start - 1 : start + 14]
    if not re.fullmatch(r"[0-9a-fA-F]+", chunk):
        chunk = hashlib.md5(content.encode()).hexdigest()[start - 1 : start + 14]
    return int(chunk, 16)


def runs_digest(con: duckdb.DuckDBPyConnection, *, until: dt.datetime | None) -> tuple[int, str]:
    """(number of runs started no later than `until`, digest of their contents)."""
    where, params = ("started_at <= ?", [until]) if until is not None else ("TRUE", [])
    stored = con.execute(
        "SELECT count(*),"
        " coalesce(sum(content_key_a) FILTER (WHERE content_key_b IS NOT NULL), 0),"
        " coalesce(sum(content_key_b) FILTER (WHERE content_key_a IS NOT NULL), 0)"
        f" FROM runs WHERE {where}",
        params,
    ).fetchone()
    unkeyed = con.execute(
        f"SELECT coalesce(sum({_key_sql(1)}), 0), coalesce(sum({_key_sql(16)}), 0)"
        f" FROM runs WHERE {where} AND (content_key_a IS NULL OR content_key_b IS NULL)",
        params,
    ).fetchone()
    assert stored is not None and unkeyed is not None
    count = int(stored[0])
    return count, _digest(count, int(stored[1]) + int(unkeyed[0]), int(stored[2]) + int(unkeyed[1]))


def _digest(count: int, a: int, b: int) -> str:
    return hashlib.sha256(f"runs:{count}:{a}:{b}".encode()).hexdigest()


def runs_digest_of(runs: Iterable[RunRecord]) -> str:
    """`runs_digest` of runs held in memory (a snapshot built without the database); a record
    built by hand, with no content hash, is identified by its fields."""
    count = a = b = 0
    for r in runs:
        content = (
            r.content_sha256 or hashlib.sha256(repr(sorted(vars(r).items())).encode()).hexdigest()
        )
        count += 1
        ka, kb = content_keys(content)
        a += ka
        b += kb
    return _digest(count, a, b)


def read_samples(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Latencies (ms) of the successful requests of each run, in time order (runs with none are
    absent)."""
    out = {}
    for run_id, points in read_points(con, run_ids).items():
        latencies = points.success_latencies()
        if len(latencies):
            out[run_id] = latencies
    return out


def change_marker(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of what the verdict reads that changes when new history arrives (runs, operator
    controls, verifications): the sensor's cursor."""
    queries = [
        "SELECT count(*), max(ingested_at)::VARCHAR, max(content_sha256) FROM runs",
        "SELECT count(*), max(invalidated_at)::VARCHAR FROM run_invalidations",
        "SELECT count(*), max(pin_id) FROM baseline_pins",
        "SELECT count(*), max(waiver_id) FROM waivers",
    ]
    parts = [repr(con.execute(q).fetchone()) for q in queries]
    if table_columns(con, "policy_verifications"):
        parts.append(
            repr(
                con.execute(
                    "SELECT count(*), max(verified_at)::VARCHAR FROM policy_verifications"
                ).fetchone()
            )
        )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]
