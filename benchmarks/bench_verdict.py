"""Verdict over a generated history of 100,000 runs: read + judge, median <= 100 ms (README: budgets).

The read takes what the rules examine (the tail down to the latest valid run, its fingerprint's
streak and baseline window, the pin) and hashes every other run in SQL, so it does not grow with
the history.

Generates the history in SQL (runs every hour, every 50th one killed and invalid, raw points for
the newest 20 runs at 100 req/s x 30 s) and its run archive (one directory per run, as the load
test leaves them), then reports, as the median of several repetitions:
- snapshot load: `read_snapshot` (DuckDB reads, windows in SQL, latency samples, the archive
  listed and compared with the history for the `archive` rule);
- archive check alone: `history.archive.check_archive` (part of the snapshot load);
- verdict: `evaluate`, the pure function (validity, SLO, 10 s windows, bootstrap + Fisher
  regression, quantity, staleness, policy, checklist, waivers, inputs hash).

    .venv/bin/python benchmarks/bench_verdict.py [--runs 100000] [--repeat 9]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kgents_pipeline.history.archive import check_archive, record_listing
from kgents_pipeline.history.db import connect
from kgents_pipeline.history.store import open_history
from kgents_pipeline.verdict import VerdictPolicy, evaluate
from kgents_pipeline.verdict.usecase import read_snapshot

BUDGET_MS = 100.0
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def generate(db: Path, archive: Path, runs: int, with_points: int = 20) -> dt.datetime:
    """A history of `runs` runs, one an hour, and its archive (a directory per run); returns the
    start time of the newest."""
    archive.mkdir()
    for i in range(runs):
        (archive / f"run-{i:06d}").mkdir()
    with connect(db) as con:
        con.execute("SELECT setseed(0.42)")
        con.execute(
            """
            INSERT INTO runs BY NAME
            SELECT
                printf('run-%06d', i) AS run_id,
                $start + i * INTERVAL 1 HOUR AS started_at,
                $start + i * INTERVAL 1 HOUR + INTERVAL 31 SECOND AS finished_at,
                CASE WHEN i % 50 = 17 THEN 105 ELSE 0 END AS exit_code,
                CASE WHEN i % 50 = 17 THEN 'interrupted' ELSE 'passed' END AS outcome,
                '1.1.0' AS k6_version, 'script-sha' AS script_sha256,
                'https://kgents.example.com' AS target_url, 'remote' AS target_kind,
                100 AS rate, 30 AS duration_s,
                i % 50 <> 17 AS summary_present,
                CASE WHEN i % 50 = 17 THEN 'summary.json missing' END AS summary_error,
                30.003 AS test_run_duration_s, 3000 AS http_reqs, 3000 - (i % 3) AS ok_reqs,
                100.0 AS achieved_rps, 3000 AS iterations, 0 AS dropped_iterations,
                20 + random() * 2 AS p95_ms, 24 + random() * 2 AS p99_ms,
                20 + random() * 2 AS p95_all_ms,
                i % 3 AS error_count, 3000 AS error_total, (i % 3) / 3000.0 AS error_rate,
                true AS thresholds_ok, i % 50 <> 17 AS valid,
                CASE WHEN i % 50 = 17 THEN ['killed'] ELSE [] END AS invalid_reasons,
                md5(i::VARCHAR) AS content_sha256, $archive || printf('/run-%06d', i) AS run_dir,
                CAST('0x' || substr(md5(i::VARCHAR), 1, 15) AS BIGINT) AS content_key_a,
                CAST('0x' || substr(md5(i::VARCHAR), 16, 15) AS BIGINT) AS content_key_b,
                now() AS ingested_at, CASE WHEN i >= $n - 20 THEN 6000 ELSE 0 END AS points_rows
            FROM range($n) t(i)
            """,
            {"start": START, "n": runs, "archive": str(archive)},
        )
        con.execute(
            """
            INSERT INTO run_points BY NAME
            SELECT r.run_id, m.metric,
                   r.started_at + INTERVAL 1 SECOND + to_microseconds(CAST(k * 10000 AS BIGINT)) AS ts,
                   CASE m.metric WHEN 'http_reqs' THEN 1 ELSE 18 + random() * 4 END AS value,
                   '200' AS status, 'true' AS expected_response, 'health' AS scenario,
                   'health_saas' AS name
            FROM (SELECT run_id, started_at FROM runs ORDER BY started_at DESC LIMIT $k) r,
                 range(3000) t(k),
                 (VALUES ('http_reqs'), ('http_req_duration')) m(metric)
            """,
            {"k": with_points},
        )
        # As the ingest after a run does: a run directory is created a run's duration before.
        time.sleep(max(0.0, 2.5 - (time.time() - archive.stat().st_mtime)))
        record_listing(con, archive)
        con.execute(
            "INSERT INTO policy_verifications (run_id, verified_at, mode, context, rendered_sha256,"
            " passed, intent_holds, drift_count, pdb_ok, labels_ok, unmatched_selectors, violations,"
            " report) VALUES ('v1', $at, 'live', 'prod', 'x', true, true, 0, true, true, 0, '[]', '{}')",
            {"at": START + dt.timedelta(hours=runs - 2)},
        )
    return START + dt.timedelta(hours=runs - 1)


def timed(fn, repeat: int) -> tuple[float, list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), times, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-verdict-") as tmp:
        db = Path(tmp) / "metrics.duckdb"
        archive = Path(tmp) / "k6"
        t = time.perf_counter()
        newest = generate(db, archive, args.runs)
        print(f"generated {args.runs} runs and their archive in {(time.perf_counter() - t):.1f} s")
        now = newest + dt.timedelta(hours=1)
        policy = VerdictPolicy()

        def read() -> object:
            return read_snapshot(open_history(db), policy=policy, now=now, archive=archive)

        read()  # warm: imports, first connection, the integrity check of a fresh file
        load_ms, load_all, snap = timed(read, args.repeat)
        used = [r.run_id for r in snap.runs[-policy.trend_runs :]]
        with open_history(db).reader() as con:
            archive_ms, _, check = timed(
                lambda: check_archive(con, configured=archive, used=used, now=now), args.repeat
            )
        evaluate(snap, policy, now)  # warm caches
        eval_ms, eval_all, verdict = timed(lambda: evaluate(snap, policy, now), args.repeat)
        # What `kgents-pipeline verdict` does apart from process start: read, then judge.
        total_ms, total_all, _ = timed(lambda: evaluate(read(), policy, now), args.repeat)
        (archive / "run-new").mkdir()  # the archive changed since the last ingest listed it
        with open_history(db).reader() as con:
            relist_ms, _, relisted = timed(
                lambda: check_archive(con, configured=archive, used=used, now=now), args.repeat
            )

    print(
        f"snapshot read: median {load_ms:.1f} ms  (runs {', '.join(f'{x:.0f}' for x in load_all)})"
    )
    print(
        f"  of which the archive check: median {archive_ms:.1f} ms  ({check.archived} run "
        f"directories, unchanged since the last ingest listed them)"
    )
    print(
        f"archive check when the archive changed since (it is listed again): median "
        f"{relist_ms:.1f} ms  ({relisted.archived} entries; not part of the budget's path)"
    )
    print(
        f"verdict (pure): median {eval_ms:.1f} ms  (runs {', '.join(f'{x:.0f}' for x in eval_all)})"
    )
    print(
        f"load + verdict: median {total_ms:.1f} ms  "
        f"(runs {', '.join(f'{x:.0f}' for x in total_all)})"
    )
    print(
        f"state {verdict.state}; {len(snap.runs)} of {snap.run_count} runs read; "
        f"budget {BUDGET_MS:.0f} ms for read + verdict"
    )
    # The budget is end to end: what `kgents-pipeline verdict` does apart from process start.
    ok = total_ms <= BUDGET_MS
    print("within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
