"""N real k6 runners, one execution segment each, against the bundled demo target; merged at
ingest from the union of their raw points (real DuckDB)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading
import time
from pathlib import Path

import duckdb
import pytest

from kgents_pipeline.history.ingest import ingest_run_dir
from kgents_pipeline.history.merge import read_runners
from kgents_pipeline.history.store import open_history
from kgents_pipeline.history.windows import read_windows
from kgents_pipeline.loadtest.runner import LoadTestRequest
from kgents_pipeline.loadtest.segments import (
    SegmentedRun,
    run_segments,
    segment_args,
    segment_bounds,
    segment_sequence,
)
from kgents_pipeline.loadtest.target import DemoTarget

pytestmark = pytest.mark.k6


def _segmented(archive: Path, runners: int, *, rate: int, duration: str, **demo) -> SegmentedRun:
    with DemoTarget(**demo) as target:
        request = LoadTestRequest(target.url, "demo", rate=rate, duration=duration)
        return run_segments(request, runners, archive_root=archive, log=lambda line: None)


@pytest.fixture(scope="session")
def two_runner_run(tmp_path_factory: pytest.TempPathFactory) -> SegmentedRun:
    """2 runners sharing 80 req/s for 3 s against a demo target answering in ~5 ms."""
    return _segmented(tmp_path_factory.mktemp("k6"), 2, rate=80, duration="3s", latency_ms=5)


def test_segments_tile_the_test_as_k6_operator_gives_them():
    assert segment_sequence(3) == "0,1/3,2/3,1"
    assert [segment_bounds(i, 3) for i in (1, 2, 3)] == ["0:1/3", "1/3:2/3", "2/3:1"]
    assert segment_args(2, 2) == [
        "--execution-segment=1/2:1",
        "--execution-segment-sequence=0,1/2,1",
    ]
    assert segment_args(1, 1) == []  # one runner runs the whole test, as k6-operator does


def test_each_runner_archives_its_own_share_under_one_run(two_runner_run):
    run = two_runner_run
    meta = json.loads((run.run_dir / "run.json").read_text())
    assert meta["runners"] == 2 and meta["segments"] == ["0:1/2", "1/2:1"]
    # The thresholds are the script's, as k6 itself parsed them from its options.
    assert meta["thresholds"] == {
        "errors": ["rate<0.01"],
        "http_req_duration{expected_response:true}": ["p(95)<500"],
    }
    assert meta["runner_exit_codes"] == {"1": 0, "2": 0} and meta["exit_code"] == 0
    counts = []
    for i in (1, 2):
        own = run.run_dir / "runners" / str(i)
        assert {"run.json", "summary.json", "points.ndjson.gz", "k6.log"} <= {
            p.name for p in own.iterdir()
        }
        summary = json.loads((own / "summary.json").read_text())
        counts.append(summary["metrics"]["http_reqs"]["values"]["count"])
    # Each runner sent half of the 240 planned requests: the segments split the arrival rate.
    assert sorted(counts) == [120, 120] or abs(counts[0] - counts[1]) <= 1
    assert 238 <= sum(counts) <= 241


def test_merged_p95_equals_duckdbs_quantile_over_the_union_of_the_runners_points(
    two_runner_run, db
):
    store = open_history(db)
    ingested = ingest_run_dir(store, two_runner_run.run_dir)
    r = ingested.record
    assert ingested.valid and r.runners == 2 and r.target_kind == "demo"
    files = [str(p) for p in sorted(two_runner_run.run_dir.glob("runners/*/points.ndjson.gz"))]
    # An independent reading of the raw files, not the history's tables.
    union = duckdb.execute(
        "SELECT quantile_cont(data.value, 0.95), quantile_cont(data.value, 0.99), count(*)"
        f" FROM read_ndjson_auto({files!r}) WHERE type = 'Point'"
        " AND metric = 'http_req_duration' AND data.tags.expected_response = 'true'"
    ).fetchone()
    assert r.p95_ms == pytest.approx(union[0], rel=1e-12)
    assert r.p99_ms == pytest.approx(union[1], rel=1e-12)
    assert r.ok_reqs == union[2]
    with store.reader() as con:
        runners = read_runners(con, r.run_id)
        windows = read_windows(con, [r.run_id])[r.run_id]
    # Counts add up exactly (percentiles do not: tests/history/test_merge.py crafts that case).
    assert r.http_reqs == sum(x["http_reqs"] for x in runners)
    assert r.error_rate == 0 and r.dropped_iterations == 0 and r.thresholds_ok is True
    assert sum(w.requests for w in windows) == r.http_reqs  # the 10 s windows hold every runner


@pytest.mark.serial
def test_one_runner_and_two_agree_at_the_same_total_rate(tmp_path, db):
    """Same plan (100 req/s for 4 s, target answering in 10 ms), one runner then two.

    Stated noise bound: the planned requests are the same (constant arrival rate), so request
    counts match to 1%; p95 of successful requests within max(5 ms, 25%) (a 10 ms sleep on a
    shared 2-core machine); no errors, nothing dropped.
    """
    store = open_history(db)
    got = {}
    for runners in (1, 2):
        run = _segmented(tmp_path / str(runners), runners, rate=100, duration="4s", latency_ms=10)
        got[runners] = ingest_run_dir(store, run.run_dir)
    one, two = got[1].record, got[2].record
    assert got[1].valid and got[2].valid, (got[1].invalid_reasons, got[2].invalid_reasons)
    assert abs(one.http_reqs - two.http_reqs) <= 0.01 * one.http_reqs
    assert abs(one.p95_ms - two.p95_ms) <= max(5.0, 0.25 * one.p95_ms), (one.p95_ms, two.p95_ms)
    assert one.p95_ms >= 10 and two.p95_ms >= 10  # the target's latency is in both
    assert one.error_rate == two.error_rate == 0
    assert one.dropped_iterations == two.dropped_iterations == 0


def _k6_in(directory: Path) -> list[int]:
    """PIDs of k6 processes running in `directory` (a runner's cwd)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (
                os.readlink(proc / "cwd") == str(directory)
                and b"k6" in (proc / "cmdline").read_bytes().split(b"\0")[0]
            ):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_a_killed_runner_invalidates_the_run_and_says_which(tmp_path, db):
    holder: dict = {}
    archive = tmp_path / "k6"
    worker = threading.Thread(
        target=lambda: holder.update(run=_segmented(archive, 2, rate=20, duration="5s"))
    )
    worker.start()
    deadline = time.monotonic() + 20
    pids: list[int] = []
    while time.monotonic() < deadline and not pids:
        pids = [p for d in archive.glob("*/runners/2") for p in _k6_in(d.resolve())]
        time.sleep(0.1)
    assert pids, "runner 2 did not start"
    time.sleep(1.5)
    os.kill(pids[0], signal.SIGKILL)
    worker.join(timeout=60)
    run: SegmentedRun = holder["run"]
    assert run.exit_code == 137 and "runner 2 of 2" in run.message

    ingested = ingest_run_dir(open_history(db), run.run_dir)
    assert not ingested.valid
    why = "; ".join(ingested.invalid_reasons)
    assert "runner 2 of 2 (segment 1/2:1)" in why and "137" in why
    assert "runner 1" not in why  # the runner that finished is not blamed
    assert "killed" in ingested.record.outcome and "runner 2" in ingested.record.outcome
    # The runner that finished kept its points; the killed one's cut-short file was not read.
    with open_history(db).reader() as con:
        by_runner = {x["runner"]: x for x in read_runners(con, run.run_id)}
    assert by_runner[1]["valid"] and by_runner[1]["points_rows"] > 0
    assert not by_runner[2]["valid"] and by_runner[2]["points_rows"] == 0
    with gzip.open(run.run_dir / "runners" / "1" / "points.ndjson.gz", "rt") as fh:
        assert sum(1 for _ in fh) > 0
