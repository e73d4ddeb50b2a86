"""Per-window figures of a run from its raw points: the evidence that load was *sustained*.

A run whose aggregate passes can still stall for ten seconds; only the raw points show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

WINDOW_S = 10


@dataclass(frozen=True)
class WindowStat:
    """One 10-second window of a run's raw points."""

    index: int
    length_s: float
    requests: int
    ok_requests: int
    p95_ms: float | None

    @property
    def rps(self) -> float:
        return self.requests / self.length_s if self.length_s > 0 else 0.0


def read_windows(
    con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]
) -> dict[str, tuple[WindowStat, ...]]:
    """Per 10-second window: requests, successful requests and their p95, in SQL.

    Windows start at the run's first point and cover its planned duration; a window with no
    point at all still appears (a stall), and points past the end count in the last window.
    """
    if not run_ids:
        return {}
    rows = con.execute(
        """
        WITH r AS (
            SELECT run_id, duration_s,
                   greatest(CAST(ceil(duration_s / $w) AS BIGINT), 1) AS n
            FROM runs WHERE run_id IN (SELECT unnest($ids)) AND duration_s > 0
        ),
        p AS (
            SELECT run_id, metric, ts, value, expected_response FROM run_points
            WHERE run_id IN (SELECT unnest($ids))
              AND metric IN ('http_reqs', 'http_req_duration')
        ),
        t0 AS (SELECT run_id, min(ts) AS t0 FROM p GROUP BY run_id),
        w AS (
            SELECT r.run_id, unnest(range(0, r.n)) AS w, r.duration_s FROM r JOIN t0 USING (run_id)
        ),
        agg AS (
            SELECT p.run_id,
                   least(CAST(floor(epoch(p.ts - t0.t0) / $w) AS BIGINT), r.n - 1) AS w,
                   count(*) FILTER (WHERE p.metric = 'http_reqs') AS reqs,
                   count(*) FILTER (WHERE p.metric = 'http_req_duration'
                                     AND p.expected_response = 'true') AS ok,
                   quantile_cont(p.value, 0.95) FILTER (WHERE p.metric = 'http_req_duration'
                                     AND p.expected_response = 'true') AS p95
            FROM p JOIN t0 USING (run_id) JOIN r USING (run_id)
            GROUP BY ALL
        )
        SELECT w.run_id, w.w, least($w, w.duration_s - w.w * $w) AS len,
               coalesce(agg.reqs, 0), coalesce(agg.ok, 0), agg.p95
        FROM w LEFT JOIN agg USING (run_id, w)
        ORDER BY w.run_id, w.w
        """,
        {"ids": list(run_ids), "w": WINDOW_S},
    ).fetchall()
    out: dict[str, list[WindowStat]] = {}
    for run_id, w, length, reqs, ok, p95 in rows:
        out.setdefault(run_id, []).append(
            WindowStat(
                int(w), float(length), int(reqs), int(ok), None if p95 is None else float(p95)
            )
        )
    return {k: tuple(v) for k, v in out.items()}
