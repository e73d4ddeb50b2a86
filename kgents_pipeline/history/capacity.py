"""Capacity searches in the history: each search, its steps and its knee (migration 0007).

A search's steps are archived k6 runs, but never rows of `runs`: they are not the launch load,
and the verdict must not judge an overload step as the latest run. The view `capacity_knee`
shows one row per search.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from kgents_pipeline.history.timestamps import utc


@dataclass(frozen=True)
class CapacityStepRow:
    step: int
    rate: float
    run_id: str
    exit_code: int | None
    achieved_rps: float | None
    http_reqs: int | None
    dropped_iterations: int | None
    p95_ms: float | None
    error_rate: float | None
    held: bool
    why: str


@dataclass(frozen=True)
class CapacitySearch:
    """A capacity search as recorded: the knee is the highest stepped rate that held."""

    search_id: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    target_url: str | None
    target_kind: str  # demo | remote
    k6_version: str | None
    script_sha256: str | None
    runners: int
    start_rps: float
    factor: float
    max_rps: float
    step_s: float
    knee_rps: float | None  # None: not even the first step held
    first_failed_rps: float | None  # None: the search reached max_rps
    failed_because: str | None
    valid: bool
    invalid_reasons: tuple[str, ...]
    archive_dir: str | None = None

    @property
    def reached_max(self) -> bool:
        return self.knee_rps is not None and self.first_failed_rps is None


_SEARCH_COLUMNS = (
    "search_id",
    "started_at",
    "finished_at",
    "target_url",
    "target_kind",
    "k6_version",
    "script_sha256",
    "runners",
    "start_rps",
    "factor",
    "max_rps",
    "step_s",
    "knee_rps",
    "first_failed_rps",
    "failed_because",
    "valid",
    "invalid_reasons",
    "archive_dir",
)


def record_search(
    con: duckdb.DuckDBPyConnection, search: CapacitySearch, steps: Sequence[CapacityStepRow]
) -> None:
    """Store a search and its steps in one transaction (a re-recorded search replaces itself)."""
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("capacity_steps", "capacity_searches"):
            con.execute(f"DELETE FROM {table} WHERE search_id = ?", [search.search_id])
        values = [getattr(search, c) for c in _SEARCH_COLUMNS]
        values[_SEARCH_COLUMNS.index("invalid_reasons")] = list(search.invalid_reasons)
        con.execute(
            f"INSERT INTO capacity_searches ({', '.join(_SEARCH_COLUMNS)}, recorded_at)"
            f" VALUES ({', '.join('?' * len(_SEARCH_COLUMNS))}, ?)",
            [*values, dt.datetime.now(dt.UTC)],
        )
        if steps:
            con.executemany(
                "INSERT INTO capacity_steps (search_id, step, rate, run_id, exit_code,"
                " achieved_rps, http_reqs, dropped_iterations, p95_ms, error_rate, held, why)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        search.search_id,
                        s.step,
                        s.rate,
                        s.run_id,
                        s.exit_code,
                        s.achieved_rps,
                        s.http_reqs,
                        s.dropped_iterations,
                        s.p95_ms,
                        s.error_rate,
                        s.held,
                        s.why,
                    )
                    for s in steps
                ],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _search(row: Sequence[Any]) -> CapacitySearch:
    data: dict[str, Any] = dict(zip(_SEARCH_COLUMNS, row, strict=True))
    data["started_at"] = utc(data["started_at"])
    data["finished_at"] = utc(data["finished_at"]) if data["finished_at"] else None
    data["invalid_reasons"] = tuple(data["invalid_reasons"] or ())
    return CapacitySearch(**data)


def latest_valid_search(
    con: duckdb.DuckDBPyConnection, *, until: dt.datetime | None = None
) -> CapacitySearch | None:
    """The newest valid capacity search started no later than `until` (None: there is none).
    Every connection is migrated first, so migration 0007's table is there."""
    where, params = ("valid", [])
    if until is not None:
        where += " AND started_at <= ?"
        params.append(until)
    row = con.execute(
        f"SELECT {', '.join(_SEARCH_COLUMNS)} FROM capacity_searches WHERE {where}"
        " ORDER BY started_at DESC, search_id DESC LIMIT 1",
        params,
    ).fetchone()
    return None if row is None else _search(row)


def read_steps(con: duckdb.DuckDBPyConnection, search_id: str) -> list[CapacityStepRow]:
    rows = con.execute(
        "SELECT step, rate, run_id, exit_code, achieved_rps, http_reqs, dropped_iterations,"
        " p95_ms, error_rate, held, why FROM capacity_steps WHERE search_id = ? ORDER BY step",
        [search_id],
    ).fetchall()
    return [CapacityStepRow(*r) for r in rows]
