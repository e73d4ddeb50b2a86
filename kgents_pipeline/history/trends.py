"""Read-side queries over the history: the baseline trend, and a plain table for terminals."""

from __future__ import annotations

from typing import Any

import duckdb

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


def trend(con: duckdb.DuckDBPyConnection, *, last: int = 20) -> list[dict[str, Any]]:
    """The newest `last` rows of `baseline_trend`, oldest first."""
    cur = con.execute(
        f"SELECT {', '.join(TREND_COLUMNS)} FROM ("
        "  SELECT * FROM baseline_trend ORDER BY started_at DESC LIMIT ?"
        ") ORDER BY started_at",
        [last],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


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
        return str(value.isoformat(timespec="seconds"))
    return str(value)
