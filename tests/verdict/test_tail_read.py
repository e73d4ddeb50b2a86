"""The verdict reads only what its rules examine, and judges exactly as if it had read everything.

`read_snapshot` takes the tail of the history down to the latest valid run, that run's
fingerprint's streak and baseline window, and the pinned run; every other run enters the inputs
hash through a digest computed in SQL. These tests build long histories of every shape (runs
invalidated by k6 or by an operator, several fingerprints interleaved, an old pin) and compare
the verdict against one evaluated over every run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest

from kgents_pipeline.history import controls, queries
from kgents_pipeline.history.db import connect
from kgents_pipeline.history.store import open_history
from kgents_pipeline.verdict import VerdictPolicy, evaluate
from kgents_pipeline.verdict.usecase import pin_baseline, read_snapshot

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def build(db, seed: int, runs: int) -> dt.datetime:
    """A history of `runs` hourly runs: fingerprints A/B/C interleaved (B rare and recent, C
    only long ago), ~30% invalid in bursts, points for a random third; returns the newest start."""
    rng = random.Random(seed)
    rows = []
    invalid_burst = 0
    for i in range(runs):
        if invalid_burst == 0 and rng.random() < 0.05:
            invalid_burst = rng.randint(1, 40)
        invalid = invalid_burst > 0 or rng.random() < 0.1
        invalid_burst = max(0, invalid_burst - 1)
        fp = "C" if i < runs // 10 else ("B" if rng.random() < 0.08 else "A")
        rows.append((i, fp, invalid, rng.random() < 0.33, rng.uniform(15, 30)))
    with connect(db) as con:
        for i, fp, invalid, points, p95 in rows:
            con.execute(
                """
                INSERT INTO runs BY NAME SELECT
                    $id AS run_id, $at AS started_at, $at + INTERVAL 31 SECOND AS finished_at,
                    CASE WHEN $invalid THEN 105 ELSE 0 END AS exit_code,
                    CASE WHEN $invalid THEN 'interrupted' ELSE 'passed' END AS outcome,
                    '1.1.0' AS k6_version, 'script-' || $fp AS script_sha256,
                    'https://kgents.example.com' AS target_url, 'remote' AS target_kind,
                    100 AS rate, 30 AS duration_s, NOT $invalid AS summary_present,
                    30.01 AS test_run_duration_s, 3000 AS http_reqs, 2999 AS ok_reqs,
                    100.0 AS achieved_rps, 3000 AS iterations, 0 AS dropped_iterations,
                    $p95 AS p95_ms, $p95 + 3 AS p99_ms, $p95 AS p95_all_ms,
                    1 AS error_count, 3000 AS error_total, 1 / 3000 AS error_rate,
                    true AS thresholds_ok, NOT $invalid AS valid, [] AS invalid_reasons,
                    sha256($id) AS content_sha256, '' AS run_dir, now() AS ingested_at,
                    CASE WHEN $points THEN 600 ELSE 0 END AS points_rows
                """,
                {
                    "id": f"run-{i:05d}",
                    "at": START + dt.timedelta(hours=i),
                    "invalid": invalid,
                    "fp": fp,
                    "p95": p95,
                    "points": points,
                },
            )
        con.execute(
            """
            INSERT INTO run_points BY NAME
            SELECT r.run_id, m.metric,
                   r.started_at + to_microseconds(CAST(k * 100000 AS BIGINT)) AS ts,
                   CASE m.metric WHEN 'http_reqs' THEN 1 ELSE 10 + (k % 17) END AS value,
                   'true' AS expected_response
            FROM runs r, range(300) t(k), (VALUES ('http_reqs'), ('http_req_duration')) m(metric)
            WHERE r.points_rows > 0
            """
        )
        # Some operator invalidations, spread over the history.
        for i in rng.sample(range(runs), k=max(1, runs // 50)):
            con.execute(
                "INSERT INTO run_invalidations VALUES (?, 'noisy', 'ops', ?)",
                [f"run-{i:05d}", START + dt.timedelta(hours=i, minutes=5)],
            )
    return START + dt.timedelta(hours=runs - 1)


def full_snapshot(store, tail):
    """The same evidence, with every run of the history in memory."""
    with store.reader() as con:
        every = queries.read_runs(con, until=tail_now(tail))
    return dataclasses.replace(
        tail,
        runs=tuple(sorted(every, key=lambda r: (r.started_at, r.run_id))),
        run_count=None,
        runs_digest=None,
    )


def tail_now(tail):
    return max(r.started_at for r in tail.runs) + dt.timedelta(hours=1)


@pytest.mark.parametrize(("seed", "runs"), [(1, 400), (2, 1500), (3, 3000)])
def test_verdict_from_the_tail_equals_the_verdict_over_every_run(tmp_path, seed, runs):
    db = tmp_path / "h.duckdb"
    newest = build(db, seed, runs)
    store = open_history(db)
    policy = VerdictPolicy()
    now = newest + dt.timedelta(hours=1)
    tail = read_snapshot(store, policy=policy, now=now)
    assert tail.run_count == runs
    assert len(tail.runs) < runs  # it did not read everything

    everything = full_snapshot(store, tail)
    a, b = evaluate(tail, policy, now), evaluate(everything, policy, now)
    assert a.state == b.state
    assert [r.to_json() for r in a.reasons] == [r.to_json() for r in b.reasons]
    assert a.figures == b.figures and a.trend == b.trend
    # The SQL digest of the runs it did not read equals the digest of those runs in memory.
    assert a.inputs_sha256 == b.inputs_sha256


def test_an_old_pinned_run_and_an_old_fingerprint_are_still_found(tmp_path):
    db = tmp_path / "h.duckdb"
    newest = build(db, 7, 2000)
    store = open_history(db)
    with store.reader() as con:
        candidates = [
            r
            for r in queries.read_runs(con, until=START + dt.timedelta(hours=300))
            if r.exit_code == 0 and r.script_sha256 == "script-A"
        ]
    with store.reader() as con:
        invalidated = set(controls.read_invalidations(con))
    old_a = next(r for r in candidates if r.run_id not in invalidated)
    pin_baseline(store, old_a.run_id, reason="launch candidate", by="ops", now=newest)
    now = newest + dt.timedelta(hours=1)
    tail = read_snapshot(store, now=now)
    assert old_a.run_id in {r.run_id for r in tail.runs}
    a, b = evaluate(tail, now=now), evaluate(full_snapshot(store, tail), now=now)
    assert [r.to_json() for r in a.reasons] == [r.to_json() for r in b.reasons]
    # The pin was found (read although it is far older than the tail) and judged.
    reason = a.reason("regression.p95")
    assert "not in the history" not in reason.message
    assert old_a.run_id in reason.run_ids or "another fingerprint" in reason.message


def test_a_new_run_anywhere_changes_the_inputs_hash(tmp_path):
    db = tmp_path / "h.duckdb"
    newest = build(db, 9, 600)
    store = open_history(db)
    now = newest + dt.timedelta(hours=1)
    before = evaluate(read_snapshot(store, now=now), now=now).inputs_sha256
    with connect(db) as con:  # a run long before the tail: the rules never read it
        con.execute(
            "INSERT INTO runs BY NAME SELECT 'run-old' AS run_id, ? AS started_at,"
            " 'passed' AS outcome, 'remote' AS target_kind, true AS summary_present,"
            " true AS valid, [] AS invalid_reasons, 0 AS points_rows,"
            " sha256('old') AS content_sha256, '' AS run_dir, now() AS ingested_at",
            [START - dt.timedelta(days=30)],
        )
    after = evaluate(read_snapshot(store, now=now), now=now).inputs_sha256
    assert before != after
