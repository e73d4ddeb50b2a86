"""Issue-12 budgets: the shared history (DuckLake on PostgreSQL) next to the local DuckDB file.

- ingest: the same ~1M-point run (k6's formats) ingested into a new local file and into a new
  DuckLake history, alternated, medians. Budget: DuckLake within 2x of the local file.
- verdict read: `read_snapshot` + `evaluate` over each (the same history), medians.
- a reader while a writer ingests: `trends` latency in this process while another process
  ingests a ~1M-point run; on the local file the reader waits for the writer's lock (DuckDB
  allows no reader beside a writer), on DuckLake it answers from the last commit.

A PostgreSQL server is started for the run in a temporary directory on 127.0.0.1 (Debian's
`postgresql` package), and stopped at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kgents_pipeline.history import ducklake  # noqa: E402
from kgents_pipeline.history.ingest import ingest_run_dir  # noqa: E402
from kgents_pipeline.history.store import open_history  # noqa: E402
from kgents_pipeline.history.trends import trend  # noqa: E402
from kgents_pipeline.verdict import VerdictPolicy, evaluate  # noqa: E402
from kgents_pipeline.verdict.usecase import read_snapshot  # noqa: E402
from tests import postgres as pg  # noqa: E402
from tests.verdict.synth import T0, write_run  # noqa: E402

CLI = str(Path(sys.executable).parent / "kgents-pipeline")
RATE, DURATION_S = 1000, 500.0  # 500,000 requests: ~1,000,000 raw points


def _copy_run(src: Path, root: Path, run_id: str) -> Path:
    dst = root / run_id
    shutil.copytree(src, dst)
    meta = json.loads((dst / "run.json").read_text())
    meta["run_id"] = run_id
    (dst / "run.json").write_text(json.dumps(meta))
    return dst


def main(rounds: int = 3) -> None:
    server = pg.start()
    os.environ["PGPASSWORD"] = server.password
    try:
        with tempfile.TemporaryDirectory(prefix="kgents-bench-team-") as tmp:
            _bench(server, Path(tmp), rounds)
    finally:
        server.stop()


def _lake(server: pg.PostgresServer, tmp: Path, name: str) -> str:
    server.create_database(name)
    os.environ["KGENTS_DUCKLAKE_DATA_PATH"] = str(tmp / f"lake-{name}")
    location = f"ducklake:postgres:{server.conninfo(name)}"
    with open_history(location).writer():
        pass  # created and migrated before the clock starts, as the local file is below
    return location


def _bench(server: pg.PostgresServer, tmp: Path, rounds: int) -> None:
    archive = tmp / "k6"
    started = time.perf_counter()
    big = write_run(archive, "run-big", T0, rate=RATE, duration_s=DURATION_S)
    print(
        f"(a {RATE * DURATION_S * 2:,.0f}-point run written in {time.perf_counter() - started:.0f} s)"
    )

    local_t, lake_t = [], []
    local = lake = ""
    for i in range(rounds):
        local = str(tmp / f"local{i}.duckdb")
        with open_history(local).writer():
            pass
        t = time.perf_counter()
        result = ingest_run_dir(open_history(local), big)
        local_t.append(time.perf_counter() - t)
        lake = _lake(server, tmp, f"bench{i}")
        t = time.perf_counter()
        again = ingest_run_dir(open_history(lake), big)
        lake_t.append(time.perf_counter() - t)
        assert result.points_rows == again.points_rows > 900_000, (result, again)
    ml, mk = statistics.median(local_t), statistics.median(lake_t)
    points = result.points_rows
    print(
        f"ingest of one {points:,}-point run: local file median {ml:.2f} s "
        f"({points / ml / 1e6:.2f} M rows/s), DuckLake median {mk:.2f} s "
        f"({points / mk / 1e6:.2f} M rows/s) -> {mk / ml:.2f}x (budget <= 2.00x; {rounds} "
        "alternated rounds)"
    )

    policy = VerdictPolicy()
    now = T0 + dt.timedelta(hours=1)
    reads: dict[str, list[float]] = {"local": [], "ducklake": []}
    for _ in range(7):
        for kind, where in (("local", local), ("ducklake", lake)):
            t = time.perf_counter()
            evaluate(read_snapshot(open_history(where), policy=policy, now=now), policy, now)
            reads[kind].append(time.perf_counter() - t)
    rl, rk = (statistics.median(reads[k]) for k in ("local", "ducklake"))
    print(
        f"verdict read + judge (one {points:,}-point run): local file median {rl * 1000:.0f} ms, "
        f"DuckLake median {rk * 1000:.0f} ms -> {rk / rl:.2f}x (7 alternated rounds)"
    )

    for kind, where in (("local file", local), ("DuckLake", lake)):
        other = _copy_run(big, archive, f"run-writer-{kind.split()[0].lower()}")
        latencies = _reader_during_writer(where, other)
        print(f"reader (trends) while another process ingests, {kind}: {latencies}")
    ducklake.forget(lake)


def _reader_during_writer(location: str, run_dir: Path) -> str:
    store = open_history(location)
    store.read(trend)  # warm: attach once (DuckLake), as a long-lived reader would
    idle = []
    for _ in range(5):
        t = time.perf_counter()
        store.read(trend)
        idle.append(time.perf_counter() - t)
    writer = subprocess.Popen(
        [CLI, "history", "ingest", str(run_dir), "--db", location],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.3)  # the writer has opened the history
    during: list[float] = []
    failures: list[str] = []
    done = threading.Event()

    def read_loop() -> None:
        while not done.is_set():
            t = time.perf_counter()
            try:
                with store.reader(lock_wait_s=120.0) as con:
                    trend(con)
            except Exception as exc:  # a refused reader is a figure here, not a crash
                failures.append(str(exc).splitlines()[0][:80])
            during.append(time.perf_counter() - t)
            time.sleep(0.05)

    reader = threading.Thread(target=read_loop)
    reader.start()
    _, err = writer.communicate(timeout=600)
    done.set()
    reader.join()
    if writer.returncode != 0:
        return f"the writer failed: {err.strip().splitlines()[-1:]}"
    shown = (
        f"idle median {statistics.median(idle) * 1000:.0f} ms; during the ingest "
        f"{len(during)} reads, median {statistics.median(during) * 1000:.0f} ms, "
        f"max {max(during) * 1000:.0f} ms"
    )
    return shown + (f"; {len(failures)} refused ({failures[0]})" if failures else "")


if __name__ == "__main__":
    main()
