"""Load beyond one generator, on this machine (issue 13). Medians, alternated, because the
machine is shared:

- k6 CPU per 1,000 req/s: CPU seconds the k6 process used (its rusage, user + system) per
  second of test, per 1,000 req/s sent, one runner against the bundled demo target, at
  200 and 400 req/s, alternated.
- the highest rate sustained against the demo target (no capacity limit) with N=1 and N=2
  runners: the same geometric search as `loadtest capacity` (a step holds when p95 of
  successful requests < 500 ms, errors < 1%, <= 1% of iterations dropped and >= 95% of the
  planned requests sent), N=2 steps run as two execution segments and merged at ingest.
- the merge cost for a run of N=4 runners of 2.5M, 5M and 10M raw points (k6's `--out json`
  format, gzipped): ingest (read the runners' files into the history, union figures,
  thresholds re-evaluated on the union) and judge (read the snapshot, evaluate); linear in the
  points, 10M merged and judged <= 30 s.

    .venv/bin/python benchmarks/bench_capacity.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kgents_pipeline.history.ingest import ingest_run_dir  # noqa: E402
from kgents_pipeline.history.run_record import parse_run_dir  # noqa: E402
from kgents_pipeline.history.store import open_history  # noqa: E402
from kgents_pipeline.loadtest.runner import LoadTestRequest, run_load_test  # noqa: E402
from kgents_pipeline.loadtest.segments import run_segments  # noqa: E402
from kgents_pipeline.loadtest.target import DemoTarget  # noqa: E402
from kgents_pipeline.verdict import VerdictPolicy, evaluate  # noqa: E402
from kgents_pipeline.verdict.capacity import judge_step  # noqa: E402
from kgents_pipeline.verdict.usecase import read_snapshot  # noqa: E402

MERGE_BUDGET_S = 30.0


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_cpu(tmp: Path, rates=(200, 400), rounds: int = 3, seconds: int = 10) -> None:
    per: dict[int, list[float]] = {r: [] for r in rates}
    for _ in range(rounds):
        for rate in rates:
            with DemoTarget() as demo:
                before = _children_cpu()
                result = run_load_test(
                    LoadTestRequest(demo.url, "demo", rate=rate, duration=f"{seconds}s"),
                    archive_root=tmp / "cpu",
                    log=lambda line: None,
                )
                cpu = _children_cpu() - before
            run = parse_run_dir(result.run_dir)
            sent = (run.http_reqs or 0) / (run.test_run_duration_s or seconds)
            per[rate].append(cpu / (run.test_run_duration_s or seconds) / (sent / 1000.0))
    for rate, values in per.items():
        print(
            f"k6 CPU per 1,000 req/s at {rate} req/s: median {statistics.median(values):.2f} "
            f"cores (runs {', '.join(f'{v:.2f}' for v in values)})"
        )


def _held(run_dir: Path, db: Path, policy: VerdictPolicy) -> tuple[bool, str]:
    ingested = ingest_run_dir(open_history(db), run_dir)  # N=2: merged from the union
    held, why = judge_step(ingested.record, policy)
    return bool(held), why


def search(tmp: Path, runners: int, rates: list[int], seconds: int) -> tuple[int | None, str]:
    """The highest rate that held, and why the next one failed."""
    policy, db = VerdictPolicy(), tmp / f"search-{runners}-{time.monotonic_ns()}.duckdb"
    knee, why = None, "reached the last rate"
    with DemoTarget() as demo:
        for rate in rates:
            request = LoadTestRequest(demo.url, "demo", rate=rate, duration=f"{seconds}s")
            if runners == 1:
                run_dir = run_load_test(
                    request, archive_root=tmp / "s", log=lambda line: None
                ).run_dir
            else:
                run_dir = run_segments(
                    request, runners, archive_root=tmp / "s", log=lambda line: None
                ).run_dir
            held, reason = _held(run_dir, db, policy)
            if not held:
                why = f"{rate} req/s failed: {reason}"
                break
            knee = rate
    return knee, why


def bench_highest_rate(tmp: Path, rounds: int = 3, seconds: int = 6) -> None:
    rates = [round(300 * 1.25**k) for k in range(13)]  # 300 ... 4366
    knees: dict[int, list[int]] = {1: [], 2: []}
    for _ in range(rounds):
        for runners in (1, 2):
            knee, why = search(tmp, runners, rates, seconds)
            knees[runners].append(knee or 0)
            print(f"  N={runners}: knee {knee} req/s ({why})", flush=True)
    for runners, values in knees.items():
        print(
            f"highest rate sustained against the demo target, N={runners}: median "
            f"{statistics.median(values):.0f} req/s (searches {values}; steps x1.25 from 300, "
            f"{seconds} s each)"
        )


DATA = """{'time': ts,
         'value': CASE m.metric WHEN 'http_req_duration' THEN 5 + (i % 97) * 0.25 ELSE 1 END,
         'tags': {'expected_response': 'true', 'group': '', 'method': 'GET',
                  'name': 'health_saas', 'proto': 'HTTP/1.1', 'scenario': 'health',
                  'status': '200'}}"""


def crafted_run(root: Path, run_id: str, points: int, runners: int = 4) -> Path:
    """A run of `runners` runners with `points` raw points in all (4 points per request), in
    k6's own formats, written by DuckDB."""
    import duckdb

    run_dir = root / run_id
    per_runner = points // runners // 4  # requests per runner
    duration = 60.0
    rate = per_runner * runners / duration
    start = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    for i in range(1, runners + 1):
        d = run_dir / "runners" / str(i)
        d.mkdir(parents=True)
        con.execute(
            f"""
            COPY (
                SELECT m.metric, 'Point' AS type, {DATA} AS data
                FROM range({per_runner}) t(i),
                     (VALUES ('http_reqs'), ('http_req_duration'), ('iterations'),
                             ('errors')) m(metric),
                     LATERAL (SELECT $start + to_microseconds(
                         CAST(i * {duration * 1e6 / per_runner} AS BIGINT)) AS ts) x
            ) TO '{d / "points.ndjson.gz"}' (FORMAT json, COMPRESSION gzip)
            """,
            {"start": start},
        )
        summary = {
            "metrics": {
                "http_reqs": {"type": "counter", "values": {"count": per_runner}},
                "iterations": {"type": "counter", "values": {"count": per_runner}},
                "errors": {"type": "rate", "values": {"rate": 0, "passes": 0, "fails": per_runner}},
                "http_req_duration{expected_response:true}": {
                    "type": "trend",
                    "values": {"p(95)": 28, "count": per_runner},
                },
            },
            "state": {"testRunDurationMs": duration * 1000},
        }
        (d / "summary.json").write_text(json.dumps(summary))
        meta = {
            "run_id": str(i),
            "started_at": start.isoformat(),
            "finished_at": None,
            "exit_code": 0,
            "outcome": "passed",
            "k6_version": "1.1.0",
            "script_sha256": "ab" * 32,
            "target_url": "https://kgents.example.com",
            "target_kind": "remote",
            "rate": rate,
            "duration_s": duration,
        }
        (d / "run.json").write_text(json.dumps(meta))
    meta = dict(meta, run_id=run_id, runners=runners)
    meta["thresholds"] = {
        "errors": ["rate<0.01"],
        "http_req_duration{expected_response:true}": ["p(95)<500"],
    }
    (run_dir / "run.json").write_text(json.dumps(meta))
    return run_dir


def bench_merge(tmp: Path, sizes=(2_500_000, 5_000_000, 10_000_000), rounds: int = 3) -> None:
    runs = {}
    for n in sizes:
        started = time.perf_counter()
        runs[n] = crafted_run(tmp / "merge", f"m{n}", n)
        print(f"  generated {n:,} points in {time.perf_counter() - started:.0f} s", flush=True)
    ingest: dict[int, list[float]] = {n: [] for n in sizes}
    judge: dict[int, list[float]] = {n: [] for n in sizes}
    for r in range(rounds):
        for n in sizes:  # alternated
            db = tmp / f"merge-{n}-{r}.duckdb"
            t0 = time.perf_counter()
            result = ingest_run_dir(open_history(db), runs[n])
            t1 = time.perf_counter()
            policy = VerdictPolicy()
            snap = read_snapshot(open_history(db), policy=policy, now=result.record.started_at)
            evaluate(snap, policy, result.record.started_at + dt.timedelta(minutes=5))
            t2 = time.perf_counter()
            assert result.points_rows == n, (result.points_rows, n)
            ingest[n].append(t1 - t0)
            judge[n].append(t2 - t1)
            db.unlink()
    for n in sizes:
        mi, mj = statistics.median(ingest[n]), statistics.median(judge[n])
        print(
            f"merge {n / 1e6:.1f}M points (4 runners): ingest+merge median {mi:.1f} s "
            f"({n / mi / 1e6:.2f}M points/s), judge {mj:.2f} s, total {mi + mj:.1f} s"
        )
    largest = max(sizes)
    total = statistics.median(ingest[largest]) + statistics.median(judge[largest])
    small = min(sizes)
    ratio = (statistics.median(ingest[largest]) / largest) / (
        statistics.median(ingest[small]) / small
    )
    print(
        f"merge linearity: time per point at {largest / 1e6:.0f}M / at {small / 1e6:.1f}M = "
        f"{ratio:.2f}; {largest / 1e6:.0f}M merged and judged in {total:.1f} s "
        f"({'within' if total <= MERGE_BUDGET_S else 'OVER'} the {MERGE_BUDGET_S:.0f} s budget)"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one round, smaller merge sizes")
    parser.add_argument("--only", choices=("cpu", "rate", "merge"), default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kgents-bench-capacity-") as tmp:
        tmp_path = Path(tmp)
        if args.only in (None, "cpu"):
            bench_cpu(tmp_path, rounds=1 if args.quick else 3)
        if args.only in (None, "rate"):
            bench_highest_rate(tmp_path, rounds=1 if args.quick else 3)
        if args.only in (None, "merge"):
            sizes = (500_000, 1_000_000) if args.quick else (2_500_000, 5_000_000, 10_000_000)
            bench_merge(tmp_path, sizes=sizes, rounds=1 if args.quick else 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
