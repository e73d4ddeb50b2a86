"""Read-side queries over the history: the baseline trend and per-window figures of a run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import duckdb

from kgents_pipeline.history.db import connect

WINDOW_S = 10
TREND_COLUMNS = (
    "run_id",
    "started_at",
    "target_kind",
    "p95_ms",
    "p99_ms",
    "error_rate",
    "achieved_rps",
    "dropped_iterations",
    "outcome",
    "valid",
)


def trend(db_path: str | os.PathLike[str], *, last: int = 20) -> list[dict[str, Any]]:
    """The newest `last` rows of `baseline_trend`, oldest first."""
    with connect(db_path, read_only=True) as con:
        cur = con.execute(
            f"SELECT {', '.join(TREND_COLUMNS)} FROM ("
            "  SELECT * FROM baseline_trend ORDER BY started_at DESC LIMIT ?"
            ") ORDER BY started_at",
            [last],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@dataclass(frozen=True)
class Window:
    start_s: int  # offset of the window from the first point of the run
    requests: int
    ok_requests: int
    rps: float
    p95_ms: float | None  # successful requests only


def windows(
    con: duckdb.DuckDBPyConnection, run_id: str, *, width_s: int = WINDOW_S
) -> list[Window]:
    """Per-window request rate and p95 of successful requests, from the raw points.

    Windows are counted from the run's first point; the last window is partial when the
    duration is not a multiple of the width, and is judged on its rate per covered second.
    """
    rows = con.execute(
        """
        WITH reqs AS (
            SELECT ts, value, expected_response
            FROM run_points WHERE run_id = ? AND metric = 'http_req_duration'
        ), bounds AS (SELECT min(ts) AS t0, max(ts) AS t1 FROM reqs)
        SELECT
            CAST(floor(epoch(ts - t0) / ?) AS INTEGER) AS w,
            count(*) AS n,
            count(*) FILTER (WHERE expected_response = 'true') AS ok,
            quantile_cont(value, 0.95) FILTER (WHERE expected_response = 'true') AS p95,
            least(?, greatest(epoch(t1 - t0) - w * ?, 1e-3)) AS covered
        FROM reqs, bounds
        GROUP BY w, t0, t1
        ORDER BY w
        """,
        [run_id, width_s, width_s, width_s],
    ).fetchall()
    return [
        Window(start_s=w * width_s, requests=n, ok_requests=ok, rps=n / covered, p95_ms=p95)
        for w, n, ok, p95, covered in rows
    ]


def format_table(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> str:
    """A plain fixed-width table for terminals."""
    if not rows:
        return "(no runs)"
    columns = columns or tuple(rows[0])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.1f}"
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="seconds")
    return str(value)


def sustained_windows(
    con: duckdb.DuckDBPyConnection, run_id: str, *, width_s: int = WINDOW_S
) -> list[Window]:
    """The windows a sustained-rate judgement looks at: every full window, and a trailing
    partial one only when it covers at least half a window (a 0.2 s tail says nothing)."""
    all_windows = windows(con, run_id, width_s=width_s)
    return [
        w
        for i, w in enumerate(all_windows)
        if i < len(all_windows) - 1 or len(all_windows) == 1 or w.requests / w.rps >= width_s / 2
    ]
