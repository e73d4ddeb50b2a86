"""Per-window figures of a run from its raw points: the evidence that load was *sustained*, and the
success latencies the regression rule resamples.

A run whose aggregate passes can still stall for ten seconds; only the raw points show it. The
points of the few runs the verdict examines are fetched in one scan (`read_points`); windows
and latencies are computed from them with numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import numpy as np

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


@dataclass(frozen=True)
class RunPoints:
    """The raw points of one run that the verdict reads, in time order (timestamps in epoch
    microseconds)."""

    request_ts: np.ndarray  # `http_reqs` points
    duration_ts: np.ndarray  # `http_req_duration` points
    duration_ms: np.ndarray  # their values (NaN where k6 wrote none)
    success: np.ndarray  # expected_response = 'true'

    def success_latencies(self) -> np.ndarray:
        """Latencies (ms) of the successful requests, in time order (read-only)."""
        import numpy as np

        keep = self.success & ~np.isnan(self.duration_ms)
        ts, values = self.duration_ts[keep], self.duration_ms[keep]
        out: np.ndarray = values[np.lexsort((values, ts))].copy()
        out.setflags(write=False)
        return out


def read_points(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> dict[str, RunPoints]:
    """The `http_reqs` and `http_req_duration` points of each run (runs without any are absent)."""
    import numpy as np

    if not run_ids:
        return {}
    got = con.execute(
        """
        SELECT run_id, metric = 'http_reqs' AS is_request, epoch_us(ts) AS us,
               coalesce(value, 'NaN'::DOUBLE) AS value,
               coalesce(expected_response = 'true', false) AS success
        FROM run_points
        WHERE run_id IN (SELECT unnest($ids)) AND metric IN ('http_reqs', 'http_req_duration')
        ORDER BY run_id, us
        """,
        {"ids": list(run_ids)},
    ).fetchnumpy()
    ids = np.asarray(got["run_id"], dtype=object)
    out: dict[str, RunPoints] = {}
    if len(ids) == 0:
        return out
    is_request = np.asarray(got["is_request"], dtype=bool)
    us = np.asarray(got["us"], dtype=np.int64)
    value = np.asarray(got["value"], dtype=np.float64)
    success = np.asarray(got["success"], dtype=bool)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    for s, e in zip(starts, np.r_[starts[1:], len(ids)], strict=True):
        req = is_request[s:e]
        dur = ~req
        out[str(ids[s])] = RunPoints(
            request_ts=us[s:e][req],
            duration_ts=us[s:e][dur],
            duration_ms=value[s:e][dur],
            success=success[s:e][dur],
        )
    return out


def windows_of(points: RunPoints, duration_s: float | None) -> tuple[WindowStat, ...]:
    """Per 10-second window: requests, successful requests and their p95.

    Windows start at the run's first point and cover its planned duration; a window with no
    point at all still appears (a stall), and points past the end count in the last window.
    """
    import numpy as np

    if not duration_s or duration_s <= 0:
        return ()
    n = max(math.ceil(duration_s / WINDOW_S), 1)
    t0 = min((int(a[0]) for a in (points.request_ts, points.duration_ts) if len(a)), default=None)
    if t0 is None:
        return ()

    def index(ts: np.ndarray) -> np.ndarray:
        w = np.floor((ts - t0) / 1e6 / WINDOW_S).astype(np.int64)
        return np.minimum(w, n - 1)

    requests = np.bincount(index(points.request_ts), minlength=n)
    ok = points.success
    ok_w = index(points.duration_ts[ok])
    ok_values = points.duration_ms[ok]
    ok_counts = np.bincount(ok_w, minlength=n)
    out = []
    for w in range(n):
        values = ok_values[ok_w == w]
        values = values[~np.isnan(values)]
        p95 = float(np.quantile(values, 0.95)) if len(values) else None
        out.append(
            WindowStat(
                w,
                float(min(WINDOW_S, duration_s - w * WINDOW_S)),
                int(requests[w]),
                int(ok_counts[w]),
                p95,
            )
        )
    return tuple(out)


def read_windows(
    con: duckdb.DuckDBPyConnection,
    run_ids: Sequence[str],
    durations: Mapping[str, float | None] | None = None,
) -> dict[str, tuple[WindowStat, ...]]:
    """The windows of each run that has points (`durations`: planned seconds per run, read from
    `runs` when not given)."""
    if not run_ids:
        return {}
    if durations is None:
        durations = dict(
            con.execute(
                "SELECT run_id, duration_s FROM runs WHERE run_id IN (SELECT unnest($ids))",
                {"ids": list(run_ids)},
            ).fetchall()
        )
    out = {}
    for run_id, points in read_points(con, run_ids).items():
        windows = windows_of(points, durations.get(run_id))
        if windows:
            out[run_id] = windows
    return out
