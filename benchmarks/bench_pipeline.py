"""Issue-2 budgets: code-location import time, full-job overhead, raw-points ingest rate.

- import: `import kgents_pipeline.definitions` + building the Definitions (what `dg dev` and the
  webserver do) vs bare `import dagster, dagster_duckdb`, fresh interpreters, alternated.
  Budget: <= 1.1x.
- job overhead: wall time of launch_readiness_job in-process minus the k6 run itself
  (run.json started_at -> finished_at). Budget: <= 6 s.
- ingest: rows/s of our ingest path (stage + transactional insert) vs bare DuckDB
  `read_ndjson` into a table, on the same ~1M-point gzip file. Budget: >= 1M rows/s.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

IMPORT_OURS = (
    "import time; t = time.perf_counter(); import kgents_pipeline.definitions as d; d.defs(); "
    "print(time.perf_counter() - t)"
)
IMPORT_BARE = (
    "import time; t = time.perf_counter(); import dagster, dagster_duckdb; "
    "print(time.perf_counter() - t)"
)


def _timed(code: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def bench_import(rounds: int = 7) -> None:
    _timed(IMPORT_BARE)  # warm the OS file cache for both
    _timed(IMPORT_OURS)
    ours, bare = [], []
    for _ in range(rounds):
        bare.append(_timed(IMPORT_BARE))
        ours.append(_timed(IMPORT_OURS))
    mo, mb = statistics.median(ours), statistics.median(bare)
    print(
        f"code location import: median {mo:.2f} s vs import dagster, dagster_duckdb "
        f"{mb:.2f} s -> ratio {mo / mb:.2f}x (budget 1.10x; {rounds} alternated rounds)"
    )


JOB = """
import datetime as dt, json, pathlib, sys, time
import dagster as dg
from kgents_pipeline.definitions import defs
job = defs().resolve_job_def("launch_readiness_job")
with dg.DagsterInstance.get() as instance:
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    execute = time.perf_counter() - started
[run_json] = pathlib.Path(sys.argv[1]).glob("*/run.json")
meta = json.loads(run_json.read_text())
k6 = (dt.datetime.fromisoformat(meta["finished_at"])
      - dt.datetime.fromisoformat(meta["started_at"])).total_seconds()
print(json.dumps({"success": result.success, "execute": execute, "k6": k6}))
"""


def bench_job(rounds: int = 3, duration: str = "5s") -> None:
    """The job in a fresh process, as `make run` and a Dagster run worker execute it."""
    in_job, whole = [], []
    # One persistent DAGSTER_HOME, as `make run` has: creating a new instance's storage is a
    # one-time cost, not per-run overhead. The first round warms it and is not counted.
    with tempfile.TemporaryDirectory(prefix="kgents-bench-home-") as home:
        shutil.copy(REPO / "dagster.yaml", home)
        for round_no in range(rounds + 1):
            with tempfile.TemporaryDirectory(prefix="kgents-bench-") as tmp:
                env = {
                    **os.environ,
                    "KGENTS_DB_PATH": f"{tmp}/metrics.duckdb",
                    "KGENTS_ARCHIVE_DIR": f"{tmp}/k6",
                    "KGENTS_DURATION": duration,
                    "DAGSTER_HOME": home,
                }
                started = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, "-c", JOB, f"{tmp}/k6"],
                    cwd=REPO, env=env, capture_output=True, text=True,
                )  # fmt: skip
                wall = time.perf_counter() - started
                if proc.returncode != 0:
                    print(proc.stdout[-2000:], proc.stderr[-2000:])
                    raise SystemExit("launch_readiness_job failed")
                figures = json.loads(proc.stdout.strip().splitlines()[-1])
                if not figures["success"]:
                    raise SystemExit("launch_readiness_job failed")
                if round_no:
                    in_job.append(figures["execute"] - figures["k6"])
                    whole.append(wall - figures["k6"])
    print(
        f"launch_readiness_job, {duration} k6 run, in-process executor: overhead beyond k6 "
        f"median {statistics.median(in_job):.2f} s inside the job (budget 6 s; runs "
        + ", ".join(f"{o:.2f}" for o in in_job)
        + f"); {statistics.median(whole):.2f} s counting the interpreter start and imports"
    )


def _points_file(target: Path, rows_wanted: int = 1_000_000) -> int:
    """A real k6 points file, repeated with shifted timestamps to ~1M points."""
    from kgents_pipeline.loadtest.runner import LoadTestRequest, run_load_test
    from kgents_pipeline.loadtest.target import DemoTarget

    with DemoTarget() as demo:
        run = run_load_test(
            LoadTestRequest(demo.url, "demo", rate=100, duration="3s"),
            archive_root=target.parent / "seed",
            log=lambda _: None,
        )
    lines = gzip.decompress((run.run_dir / "points.ndjson.gz").read_bytes()).splitlines()
    points = [json.loads(x) for x in lines]
    n_points = sum(p["type"] == "Point" for p in points)
    copies = max(1, rows_wanted // n_points)
    with gzip.open(target, "wt", compresslevel=1) as out:
        for i in range(copies):
            shift = dt.timedelta(seconds=3 * i)
            for p in points:
                if p["type"] == "Point":
                    t = dt.datetime.fromisoformat(p["data"]["time"].replace("Z", "+00:00"))
                    p = {**p, "data": {**p["data"], "time": (t + shift).isoformat()}}
                elif i:
                    continue
                out.write(json.dumps(p) + "\n")
    return copies * n_points


def bench_ingest(rounds: int = 3) -> None:
    import duckdb

    from kgents_pipeline.history.db import connect
    from kgents_pipeline.history.ingest import POINT_COLUMNS, insert_points

    with tempfile.TemporaryDirectory(prefix="kgents-bench-") as tmp:
        path = Path(tmp) / "points.ndjson.gz"
        expected = _points_file(path)
        ours, bare = [], []
        for i in range(rounds):
            con = duckdb.connect(str(Path(tmp) / f"bare{i}.duckdb"))
            started = time.perf_counter()
            con.execute(
                f"CREATE TABLE p AS SELECT * FROM read_ndjson(?, columns = {POINT_COLUMNS}) "
                "WHERE type = 'Point'",
                [str(path)],
            )
            bare.append(time.perf_counter() - started)
            rows_bare = con.execute("SELECT count(*) FROM p").fetchone()[0]
            con.close()
            with connect(Path(tmp) / f"ours{i}.duckdb") as con:
                started = time.perf_counter()
                con.execute("BEGIN TRANSACTION")
                rows = insert_points(con, "bench", path)
                con.execute("COMMIT")
                ours.append(time.perf_counter() - started)
            assert rows == rows_bare == expected, (rows, rows_bare, expected)
        mo, mb = statistics.median(ours), statistics.median(bare)
        print(
            f"raw points ingest ({expected:,} points, gzip): ours {expected / mo / 1e6:.2f} M rows/s "
            f"(median {mo:.2f} s) vs bare read_ndjson {expected / mb / 1e6:.2f} M rows/s "
            f"(median {mb:.2f} s) -> {mo / mb:.2f}x the bare time (budget >= 1 M rows/s)"
        )


if __name__ == "__main__":
    bench_import()
    bench_ingest()
    bench_job()
