"""A run of N runners merged from crafted runner archives in k6's own formats (run.json as the
runner writes it, handleSummary JSON, `--out json` points gzipped), so that thresholds can be
put exactly on their boundary, which a live run cannot do reliably."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from kgents_pipeline.history.ingest import ingest_run_dir
from kgents_pipeline.history.merge import read_runners
from kgents_pipeline.history.store import open_history
from kgents_pipeline.history.thresholds import parse_threshold

BACKENDS = ("local", "ducklake")  # every test that takes `db` runs on both

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
RATE, DURATION_S = 100, 20.0  # 2,000 planned requests: 1,000 per runner
THRESHOLDS = {
    "errors": ["rate<0.01"],
    "http_req_duration{expected_response:true}": ["p(95)<500"],
    # Additive: a count over the whole test is the sum of the runners' counts.
    "dropped_iterations": ["count<10"],
}


def _point(metric: str, t: dt.datetime, value: float, ok: bool = True) -> str:
    tags = {"expected_response": "true" if ok else "false", "name": "health_saas"}
    tags |= {"scenario": "health", "status": "200" if ok else "503"}
    ts = t.isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"metric": metric, "type": "Point", "data": {"time": ts, "value": value, "tags": tags}}
    )


def _q(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else 0.0


def _runner(root: Path, index: int, latencies: list[float], *, dropped: int, exit_code: int = 0):
    """One runner's archive: `latencies` successful requests over the run, `dropped` iterations
    dropped; its summary is its own k6 view of its share, thresholds included."""
    d = root / "runners" / str(index)
    d.mkdir(parents=True)
    lat = np.asarray(latencies, dtype=float)
    n = len(lat)
    start = T0 + dt.timedelta(seconds=0.5)
    lines = []
    for k, v in enumerate(lat):
        t = start + dt.timedelta(seconds=k * DURATION_S / n)
        lines += [_point("http_reqs", t, 1), _point("http_req_duration", t, float(v))]
        lines += [_point("iterations", t, 1), _point("errors", t, 0)]
    for k in range(dropped):
        lines.append(_point("dropped_iterations", start + dt.timedelta(seconds=k), 1))
    with gzip.open(d / "points.ndjson.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    ok_p95 = _q(lat, 0.95)
    metrics = {
        "http_reqs": {"type": "counter", "values": {"count": n, "rate": n / DURATION_S}},
        "iterations": {"type": "counter", "values": {"count": n, "rate": n / DURATION_S}},
        "dropped_iterations": {
            "type": "counter",
            "values": {"count": dropped},
            "thresholds": {"count<10": {"ok": dropped < 10}},
        },
        "errors": {
            "type": "rate",
            "values": {"rate": 0, "passes": 0, "fails": n},
            "thresholds": {"rate<0.01": {"ok": True}},
        },
        "http_req_duration": {"type": "trend", "values": {"p(95)": ok_p95, "count": n}},
        "http_req_duration{expected_response:true}": {
            "type": "trend",
            "values": {"p(95)": ok_p95, "p(99)": _q(lat, 0.99), "count": n},
            "thresholds": {"p(95)<500": {"ok": ok_p95 < 500}},
        },
    }
    summary = {"metrics": metrics, "state": {"testRunDurationMs": DURATION_S * 1000 + 5}}
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "run.json").write_text(
        json.dumps(
            {
                "run_id": str(index),
                "started_at": T0.isoformat(),
                "finished_at": (T0 + dt.timedelta(seconds=21)).isoformat(),
                "exit_code": exit_code,
                "outcome": "passed" if exit_code == 0 else "thresholds_failed",
                "k6_version": "1.1.0",
                "script_sha256": "ab" * 32,
                "target_url": "https://kgents.example.com",
                "target_kind": "remote",
                "rate": RATE,
                "duration_s": DURATION_S,
            }
        )
    )


def crafted(root: Path, run_id: str, runners: list[tuple[list[float], int]]) -> Path:
    run_dir = root / run_id
    (run_dir / "runners").mkdir(parents=True)
    for i, (latencies, dropped) in enumerate(runners, start=1):
        p95 = _q(np.asarray(latencies), 0.95)
        _runner(
            run_dir,
            i,
            latencies,
            dropped=dropped,
            exit_code=0 if p95 < 500 and dropped < 10 else 99,
        )
    n = len(runners)
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "started_at": T0.isoformat(),
                "finished_at": (T0 + dt.timedelta(seconds=21)).isoformat(),
                "exit_code": 0,
                "outcome": "passed",
                "k6_version": "1.1.0",
                "script_sha256": "ab" * 32,
                "target_url": "https://kgents.example.com",
                "target_kind": "remote",
                "rate": RATE,
                "duration_s": DURATION_S,
                "runners": n,
                "segments": [
                    f"{i}/{n}:{i + 1}/{n}".replace(f"0/{n}", "0").replace(f"{n}/{n}", "1")
                    for i in range(n)
                ],
                "thresholds": THRESHOLDS,
            }
        )
    )
    return run_dir


def _thresholds(db: Path, run_id: str) -> dict[str, bool]:
    with open_history(db).reader() as con:
        rows = con.execute(
            "SELECT metric || ' ' || expression, ok FROM run_thresholds WHERE run_id = ?", [run_id]
        ).fetchall()
    return dict(rows)


FAST = [20.0] * 1000


@pytest.mark.parametrize(
    ("dropped", "union_ok"),
    [((4, 5), True), ((5, 5), False), ((9, 0), True), ((9, 1), False)],
)
def test_a_count_threshold_flips_exactly_when_the_union_crosses_it_though_no_runner_does(
    tmp_path, db, dropped, union_ok
):
    """`dropped_iterations: count<10`: 9 dropped over the whole test passes, 10 fails, while each
    runner, judging only its own share, dropped fewer than 10 and passed."""
    run_dir = crafted(tmp_path, "r", [(FAST, dropped[0]), (FAST, dropped[1])])
    ingested = ingest_run_dir(open_history(db), run_dir)
    with open_history(db).reader() as con:
        own = [x["thresholds_ok"] for x in read_runners(con, "r")]
    assert own == [True, True]  # no single runner crosses
    assert _thresholds(db, "r")["dropped_iterations count<10"] is union_ok
    assert ingested.record.thresholds_ok is union_ok
    assert ingested.record.exit_code == (0 if union_ok else 99)
    assert ingested.record.dropped_iterations == sum(dropped)
    assert ingested.valid  # <= 1% of 2,000 planned iterations dropped: a valid measurement


@pytest.mark.parametrize(("edge", "union_ok"), [(499.999, True), (500.0, False)])
def test_p95_threshold_is_judged_on_the_union_at_its_exact_boundary(tmp_path, db, edge, union_ok):
    """Union of 2,000 latencies whose p(95) (linear interpolation, as k6 computes it) is exactly
    `edge`: `p(95)<500` passes at 499.999 ms and fails at 500 ms. Runner 1 alone crosses either
    way and runner 2 alone never does: neither runner's own verdict is the run's."""
    slow = [100.0] * 899 + [edge] * 101  # runner 1: 899 fast, 51 at the edge, 50 at 900 ms
    slow[-50:] = [900.0] * 50
    runner1 = slow
    runner2 = [100.0] * 1000
    run_dir = crafted(tmp_path, "p", [(runner1, 0), (runner2, 0)])
    union = np.sort(np.asarray(runner1 + runner2))
    ingested = ingest_run_dir(open_history(db), run_dir)
    assert ingested.record.p95_ms == pytest.approx(float(np.quantile(union, 0.95)), rel=1e-12)
    with open_history(db).reader() as con:
        own = {x["runner"]: x for x in read_runners(con, "p")}
    assert own[1]["thresholds_ok"] is False and own[2]["thresholds_ok"] is True
    assert _thresholds(db, "p")["http_req_duration{expected_response:true} p(95)<500"] is union_ok


def test_a_runner_that_crossed_its_own_threshold_does_not_fail_a_union_that_holds(tmp_path, db):
    """Runner 1's share is slow (its own p95 600 ms, k6 exit 99); the test as a whole is not
    (p95 over the union 125 ms): the run passes, and runner 1's own view is kept."""
    runner1 = [100.0] * 900 + [600.0] * 100
    run_dir = crafted(tmp_path, "q", [(runner1, 0), ([100.0] * 1000, 0)])
    ingested = ingest_run_dir(open_history(db), run_dir)
    assert ingested.valid and ingested.record.thresholds_ok is True
    assert ingested.record.exit_code == 0
    assert ingested.record.p95_ms == pytest.approx(125.0)
    with open_history(db).reader() as con:
        own = {x["runner"]: x for x in read_runners(con, "q")}
    assert own[1]["exit_code"] == 99 and own[1]["p95_ms"] == 600.0


def test_a_runner_short_of_its_share_invalidates_the_run_naming_it(tmp_path, db):
    run_dir = crafted(tmp_path, "s", [(FAST, 0), ([20.0] * 600, 0)])
    ingested = ingest_run_dir(open_history(db), run_dir)
    assert not ingested.valid
    why = "; ".join(ingested.invalid_reasons)
    assert "runner 2 of 2" in why and "achieved 600 of 1000 planned" in why
    assert "runner 1 of 2" not in why


def test_a_missing_runner_invalidates_the_run(tmp_path, db):
    run_dir = crafted(tmp_path, "m", [(FAST, 0), (FAST, 0)])
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps(meta | {"runners": 3}))
    ingested = ingest_run_dir(open_history(db), run_dir)
    assert not ingested.valid
    assert any("runner 3 of 3" in r and "no archive" in r for r in ingested.invalid_reasons)


def test_merged_ingest_is_idempotent_and_rebuildable(tmp_path, db):
    run_dir = crafted(tmp_path, "i", [(FAST, 1), (FAST, 2)])
    store = open_history(db)
    first = ingest_run_dir(store, run_dir)
    again = ingest_run_dir(store, run_dir)
    assert (first.action, again.action) == ("inserted", "unchanged")
    assert again.record.p95_ms == first.record.p95_ms and again.valid
    with store.reader() as con:
        rows = con.execute("SELECT count(*) FROM run_points WHERE run_id = 'i'").fetchone()[0]
    assert rows == first.points_rows == 2 * 4 * 1000 + 3


@pytest.mark.parametrize(
    ("metric", "expression", "aggregation", "op", "limit"),
    [
        ("http_req_duration{expected_response:true}", "p(99.9)<=1e3", "p(99.9)", "<=", 1000.0),
        ("errors", "rate < 0.01", "rate", "<", 0.01),
        ("dropped_iterations", "count==0", "count", "==", 0.0),
    ],
)
def test_threshold_expressions_parse_as_k6_writes_them(metric, expression, aggregation, op, limit):
    t = parse_threshold(metric, expression)
    assert (t.aggregation, t.op, t.limit) == (aggregation, op, limit)
