"""A run of N k6 runners into the history as one run, its figures computed exactly from the
union of the runners' raw points.

Percentiles do not add up: the p95 of a test is not any mix of its runners' p95s, and a threshold
over the whole test is judged by no runner (each judges its own share). So every runner's raw
points go into `run_points` under the one run id, and the run's figures come from DuckDB over
that union: p95/p99 of successful requests, the error rate, request, iteration and dropped
iteration counts, the 10-second windows (`history.windows`, over all runners), and the script's
own thresholds re-evaluated (`history.thresholds`). Each runner's own view (its summary) is kept
in `run_runners`. One runner killed, missing or short of its share makes the run invalid, and
the reason names it.

Layout (`loadtest.segments`): `<run_id>/run.json` (the run: runners, segments, thresholds) and
`<run_id>/runners/<name>/` with each runner's run.json, summary.json and points.ndjson.gz.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from kgents_pipeline.errors import HistoryError
from kgents_pipeline.history.ingest import (
    POINT_COLUMNS,
    POINTS_FILE,
    RUN_TABLES,
    IngestResult,
    insert_run,
)
from kgents_pipeline.history.queries import read_run
from kgents_pipeline.history.run_record import (
    CheckResult,
    MetricValue,
    RunInProgress,
    RunRecord,
    ThresholdResult,
    parse_run_dir,
    read_run_json,
)
from kgents_pipeline.history.thresholds import ThresholdOutcome, evaluate_thresholds
from kgents_pipeline.history.validity import VALID_EXIT_CODES, ValidityLimits, run_validity

RUNNERS_DIR = "runners"
_INDEX = re.compile(r"(\d+)$")
KILLED_EXIT_CODES = (137, 130, 143)  # SIGKILL, or a signal k6 could not handle
SUCCESS = "metric = 'http_req_duration' AND expected_response = 'true'"


def is_multi_runner(run_dir: Path) -> bool:
    """A run directory holding `runners/`: N runners to merge."""
    return (run_dir / RUNNERS_DIR).is_dir()


@dataclass(frozen=True)
class RunnerShare:
    """One runner of a run, as its own archive shows it."""

    index: int
    name: str
    path: Path
    segment: str | None
    record: RunRecord | None  # None: no readable run.json
    problem: str | None  # why its run.json could not be read
    points_rows: int = 0
    points_error: str | None = None
    reasons: tuple[str, ...] = ()


def _runner_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    out = []
    for p in (run_dir / RUNNERS_DIR).iterdir():
        m = _INDEX.search(p.name)
        if p.is_dir() and m:
            out.append((int(m[1]), p))
    return sorted(out)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def _content(run_dir: Path, runners: list[tuple[int, Path]]) -> str:
    h = hashlib.sha256((run_dir / "run.json").read_bytes())
    for _, path in runners:
        for name in ("run.json", "summary.json", POINTS_FILE):
            h.update(f"{path.name}/{name}:{_digest(path / name)}".encode())
    return h.hexdigest()


def _insert_points(con: duckdb.DuckDBPyConnection, run_id: str, path: Path) -> int:
    """One runner's raw points, under the run's id; returns how many."""
    row = con.execute(
        f"""
        INSERT INTO run_points (run_id, metric, ts, value, status, expected_response,
                                error_code, scenario, name, check_name)
        SELECT ?, metric, data."time", data."value", data.tags.status,
               data.tags.expected_response, data.tags.error_code, data.tags.scenario,
               data.tags."name", data.tags."check"
        FROM read_ndjson(?, columns = {POINT_COLUMNS}, format = 'newline_delimited')
        WHERE type = 'Point' AND data."time" IS NOT NULL
        """,
        [run_id, str(path)],
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class UnionFigures:
    http_reqs: int
    ok_reqs: int
    p95_ms: float | None
    p99_ms: float | None
    p95_all_ms: float | None
    iterations: int
    dropped_iterations: int
    error_count: int | None
    error_total: int | None
    demo_responses: int
    first_point: dt.datetime | None
    last_point: dt.datetime | None


def union_figures(con: duckdb.DuckDBPyConnection, run_id: str) -> UnionFigures:
    """The run's figures over the union of its points, in one scan."""
    row = con.execute(
        f"""
        SELECT
            coalesce(sum(value) FILTER (WHERE metric = 'http_reqs'), 0),
            count(*) FILTER (WHERE {SUCCESS}),
            quantile_cont(value, 0.95) FILTER (WHERE {SUCCESS}),
            quantile_cont(value, 0.99) FILTER (WHERE {SUCCESS}),
            quantile_cont(value, 0.95) FILTER (WHERE metric = 'http_req_duration'),
            coalesce(sum(value) FILTER (WHERE metric = 'iterations'), 0),
            coalesce(sum(value) FILTER (WHERE metric = 'dropped_iterations'), 0),
            sum(CASE WHEN value <> 0 THEN 1 ELSE 0 END) FILTER (WHERE metric = 'errors'),
            count(*) FILTER (WHERE metric = 'errors'),
            coalesce(sum(value) FILTER (WHERE metric = 'demo_target_responses'), 0),
            min(ts), max(ts)
        FROM run_points WHERE run_id = ?
        """,
        [run_id],
    ).fetchone()
    assert row is not None
    error_total = int(row[8])
    return UnionFigures(
        http_reqs=round(row[0]),
        ok_reqs=int(row[1]),
        p95_ms=row[2],
        p99_ms=row[3],
        p95_all_ms=row[4],
        iterations=round(row[5]),
        dropped_iterations=round(row[6]),
        error_count=int(row[7]) if error_total else None,
        error_total=error_total or None,
        demo_responses=round(row[9]),
        first_point=row[10],
        last_point=row[11],
    )


def _metric_types(shares: list[RunnerShare]) -> dict[str, str]:
    """Each metric's k6 type (trend, rate, counter, gauge), from the runners' summaries."""
    types: dict[str, str] = {}
    for share in shares:
        for m in share.record.metrics if share.record else ():
            types.setdefault(m.metric.split("{", 1)[0], m.type)
    return types


def _thresholds(meta: dict[str, Any], shares: list[RunnerShare]) -> dict[str, list[str]]:
    """The script's thresholds as k6 parsed them (`k6 inspect`, in run.json); else the ones the
    runners' summaries report (the same expressions, parsed by the same k6)."""
    declared = meta.get("thresholds")
    if isinstance(declared, dict) and declared:
        return {str(k): [str(e) for e in v] for k, v in declared.items() if isinstance(v, list)}
    found: dict[str, list[str]] = {}
    for share in shares:
        for t in share.record.thresholds if share.record else ():
            exprs = found.setdefault(t.metric, [])
            if t.expression not in exprs:
                exprs.append(t.expression)
    return found


def _read_shares(
    run_dir: Path, meta: dict[str, Any], runners: list[tuple[int, Path]]
) -> list[RunnerShare]:
    planned = int(meta.get("runners") or len(runners))
    raw = meta.get("segments")
    segments: list[Any] = raw if isinstance(raw, list) else []
    by_index = dict(runners)
    shares = []
    for index in range(1, max(planned, max((i for i, _ in runners), default=0)) + 1):
        segment = str(segments[index - 1]) if index - 1 < len(segments) else None
        path = by_index.get(index)
        if path is None:
            shares.append(
                RunnerShare(index, str(index), run_dir / RUNNERS_DIR, segment, None, "no archive")
            )
            continue
        try:
            record: RunRecord | None = parse_run_dir(path)
            problem = None
        except RunInProgress:
            raise  # a runner still writing: ingest the run when it has finished
        except HistoryError as exc:
            record, problem = None, str(exc).replace(str(path) + "/", "")
        shares.append(RunnerShare(index, path.name, path, segment, record, problem))
    return shares


def _share_reasons(
    share: RunnerShare, meta: dict[str, Any], planned: int, limits: ValidityLimits
) -> tuple[str, ...]:
    """Why this runner's share is not evidence: judged like a run of its own, against its share
    of the planned rate."""
    if share.record is None:
        return (share.problem or "no run.json",)
    rate = float(meta.get("rate") or share.record.rate or 0.0)
    own = dataclasses.replace(share.record, rate=rate / planned if planned else rate)
    return run_validity(own, limits)


def _worst_exit(shares: list[RunnerShare], thresholds_ok: bool) -> tuple[int | None, str]:
    for share in shares:
        code = share.record.exit_code if share.record else None
        if share.record is None or code not in VALID_EXIT_CODES:
            outcome = share.record.outcome if share.record else "missing"
            return code, f"{outcome} (runner {share.index} of {len(shares)})"
    return (0, "passed") if thresholds_ok else (99, "thresholds_failed")


def merged_record(
    con: duckdb.DuckDBPyConnection,
    run_dir: Path,
    meta: dict[str, Any],
    shares: list[RunnerShare],
    content: str,
    limits: ValidityLimits,
) -> tuple[RunRecord, list[ThresholdOutcome]]:
    """The run as one record, from the union of the points already in `run_points`."""
    run_id = str(meta["run_id"])
    planned = len(shares)
    u = union_figures(con, run_id)
    durations = [
        s.record.test_run_duration_s
        for s in shares
        if s.record is not None and s.record.test_run_duration_s is not None
    ]
    duration = max(durations) if durations else None
    outcomes = evaluate_thresholds(
        con, run_id, _thresholds(meta, shares), _metric_types(shares), duration_s=duration
    )
    thresholds_ok = all(o.ok for o in outcomes) if outcomes else True
    exit_code, outcome = _worst_exit(shares, thresholds_ok)
    problems = []
    for share in shares:
        if share.reasons:
            where = f" (segment {share.segment})" if share.segment else ""
            problems.append(
                f"runner {share.index} of {planned}{where}: " + "; ".join(share.reasons)
            )
    missing_summary = [s.index for s in shares if s.record is None or not s.record.summary_present]
    started = read_run_json(run_dir)  # validated again: the merged record is built from it
    demo = u.demo_responses > 0 or str(started["target_kind"]) == "demo"
    error_rate = (
        u.error_count / u.error_total if u.error_count is not None and u.error_total else None
    )
    record = RunRecord(
        run_id=run_id,
        started_at=_time(started["started_at"]),
        finished_at=_time(started.get("finished_at")) if started.get("finished_at") else None,
        exit_code=exit_code,
        outcome=outcome,
        k6_version=started["k6_version"],
        script_sha256=started["script_sha256"],
        target_url=started["target_url"],
        target_kind="demo" if demo else "remote",
        rate=float(started["rate"]) if started["rate"] is not None else None,
        duration_s=float(started["duration_s"]) if started["duration_s"] is not None else None,
        summary_present=not missing_summary,
        summary_error=(
            None
            if not missing_summary
            else "no k6 summary from runner "
            + ", ".join(str(i) for i in missing_summary)
            + f" of {planned}"
        ),
        test_run_duration_s=duration,
        http_reqs=u.http_reqs,
        ok_reqs=u.ok_reqs,
        achieved_rps=u.http_reqs / duration if duration else None,
        iterations=u.iterations,
        dropped_iterations=u.dropped_iterations,
        p95_ms=u.p95_ms if u.ok_reqs else None,
        p99_ms=u.p99_ms if u.ok_reqs else None,
        p95_all_ms=u.p95_all_ms,
        error_count=u.error_count,
        error_total=u.error_total,
        error_rate=error_rate,
        thresholds_ok=thresholds_ok if outcomes else None,
        demo_responses=u.demo_responses,
        runners=planned,
        runner_problems="; ".join(problems) or None,
        content_sha256=content,
        run_dir=str(run_dir.resolve()),
        metrics=_union_metrics(u, duration),
        thresholds=tuple(ThresholdResult(o.metric, o.expression, o.ok) for o in outcomes),
        checks=_summed_checks(shares),
    )
    return record, outcomes


def _time(value: Any) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _union_metrics(u: UnionFigures, duration: float | None) -> tuple[MetricValue, ...]:
    ok = "http_req_duration{expected_response:true}"
    rows = [
        MetricValue("http_reqs", "counter", "count", float(u.http_reqs)),
        MetricValue("http_reqs", "counter", "rate", u.http_reqs / duration if duration else None),
        MetricValue("iterations", "counter", "count", float(u.iterations)),
        MetricValue("dropped_iterations", "counter", "count", float(u.dropped_iterations)),
        MetricValue(ok, "trend", "count", float(u.ok_reqs)),
        MetricValue(ok, "trend", "p(95)", u.p95_ms if u.ok_reqs else None),
        MetricValue(ok, "trend", "p(99)", u.p99_ms if u.ok_reqs else None),
        MetricValue("http_req_duration", "trend", "p(95)", u.p95_all_ms),
    ]
    if u.error_total:
        rows += [
            MetricValue("errors", "rate", "rate", (u.error_count or 0) / u.error_total),
            MetricValue("errors", "rate", "passes", float(u.error_count or 0)),
            MetricValue("errors", "rate", "fails", float(u.error_total - (u.error_count or 0))),
        ]
    return tuple(rows)


def _summed_checks(shares: list[RunnerShare]) -> tuple[CheckResult, ...]:
    """Checks add up exactly: passes and fails summed over the runners."""
    total: dict[str, CheckResult] = {}
    for share in shares:
        for c in share.record.checks if share.record else ():
            prior = total.get(c.path)
            total[c.path] = (
                c
                if prior is None
                else CheckResult(c.path, c.name, prior.passes + c.passes, prior.fails + c.fails)
            )
    return tuple(total[k] for k in sorted(total))


def ingest_merged(
    con: duckdb.DuckDBPyConnection, run_dir: Path, limits: ValidityLimits, *, force: bool = False
) -> IngestResult:
    """Ingest a run of N runners as one run (one transaction; idempotent like any run)."""
    meta = read_run_json(run_dir)
    run_id = str(meta["run_id"])
    runners = _runner_dirs(run_dir)
    content = _content(run_dir, runners)
    existing = con.execute(
        "SELECT content_sha256, points_rows, points_error, valid, invalid_reasons FROM runs"
        " WHERE run_id = ?",
        [run_id],
    ).fetchone()
    shares = _read_shares(run_dir, meta, runners)
    planned = len(shares)
    if existing and existing[0] == content and not force:
        stored = read_run(con, run_id)
        assert stored is not None
        reasons = tuple(existing[4] or ())
        record = stored
        return IngestResult(run_id, "unchanged", record, bool(existing[3]), reasons, *existing[1:3])

    con.execute("BEGIN TRANSACTION")
    try:
        for table in (*RUN_TABLES, "run_runners"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        loaded = []
        for share in shares:
            rows, error = 0, None
            points = share.path / POINTS_FILE
            code = share.record.exit_code if share.record else None
            if share.record is None:
                pass
            elif code is None or code in KILLED_EXIT_CODES:
                # k6 killed mid-run leaves its gzip stream cut short; the share is invalid
                # anyway (its exit code says so), so its points are not loaded.
                error = f"{POINTS_FILE} not loaded: k6 did not exit by itself (exit {code})"
            elif points.is_file():
                try:
                    rows = _insert_points(con, run_id, points)
                except duckdb.Error as exc:
                    raise HistoryError(
                        f"{points}: unreadable raw points: {str(exc).splitlines()[0]}"
                    ) from exc
            else:
                error = f"{POINTS_FILE} missing"
            loaded.append(
                dataclasses.replace(
                    share,
                    points_rows=rows,
                    points_error=error,
                    reasons=_share_reasons(share, meta, planned, limits),
                )
            )
        shares = loaded
        record, _ = merged_record(con, run_dir, meta, shares, content, limits)
        reasons = run_validity(record, limits)
        points_rows = sum(s.points_rows for s in shares)
        errors = [f"runner {s.index}: {s.points_error}" for s in shares if s.points_error]
        insert_run(
            con, record, record.content_sha256, reasons, points_rows, "; ".join(errors) or None
        )
        _insert_runners(con, run_id, shares)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    action = "replaced" if existing else "inserted"
    return IngestResult(
        run_id, action, record, not reasons, reasons, points_rows, "; ".join(errors) or None
    )


def _insert_runners(con: duckdb.DuckDBPyConnection, run_id: str, shares: list[RunnerShare]) -> None:
    rows = []
    for s in shares:
        r = s.record
        rows.append(
            (
                run_id,
                s.index,
                s.name,
                s.segment,
                r.exit_code if r else None,
                r.outcome if r else "missing",
                bool(r and r.summary_present),
                r.http_reqs if r else None,
                r.ok_reqs if r else None,
                r.p95_ms if r else None,
                r.error_rate if r else None,
                r.dropped_iterations if r else None,
                r.thresholds_ok if r else None,
                s.points_rows,
                not s.reasons,
                list(s.reasons),
            )
        )
    con.executemany(
        "INSERT INTO run_runners VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
    )


def read_runners(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Each runner's own view of a multi-runner run (empty for a single-runner run)."""
    cur = con.execute("SELECT * FROM run_runners WHERE run_id = ? ORDER BY runner", [run_id])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
