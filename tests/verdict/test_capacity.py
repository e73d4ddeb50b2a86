"""The capacity search against the real k6 and the demo target's capacity limit, and the
verdict's `capacity.headroom` over recorded searches."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from kgents_pipeline.cli import main
from kgents_pipeline.history.capacity import latest_valid_search, read_steps
from kgents_pipeline.history.store import open_history
from kgents_pipeline.verdict import State, VerdictPolicy, evaluate
from kgents_pipeline.verdict.capacity import CapacityPlan
from kgents_pipeline.verdict.usecase import read_snapshot
from tests.verdict.synth import REMOTE, T0, capacity_search, history, verification

BACKENDS = ("local", "ducklake")  # every test that takes `vdb` runs on both

NOW = T0 + dt.timedelta(hours=5)


@pytest.mark.k6
@pytest.mark.serial
def test_the_knee_on_the_demo_target_falls_where_its_configured_capacity_puts_it(tmp_path):
    """4 workers x 20 ms: 200 req/s. Stepping 100, 150, 225 req/s (6 s each), the model says
    150 holds (75% busy) and 225 fails (12.5% over: its queue waits pass 500 ms within the
    step), so the knee is 150, and capacity.headroom (2x 100 req/s) is not met."""
    db, archive = tmp_path / "metrics.duckdb", tmp_path / "k6"
    args = ["--start", "100", "--factor", "1.5", "--max", "300", "--step", "6s"]
    args += ["--demo-workers", "4", "--demo-service-ms", "20"]
    r = CliRunner().invoke(
        main, ["loadtest", "capacity", *args, "--db", str(db), "--archive", str(archive)]
    )
    assert r.exit_code == 1, r.output  # 150 req/s is 1.5x the launch rate: short of 2x
    capacity, factor = 200.0, 1.5
    with open_history(db).reader() as con:
        search = latest_valid_search(con)
        steps = read_steps(con, search.search_id)
        view = con.execute("SELECT knee_rps, first_failed_rps, steps FROM capacity_knee").fetchall()
    assert capacity / factor <= search.knee_rps <= capacity
    assert search.knee_rps == 150 and search.first_failed_rps == 225
    assert view == [(150.0, 225.0, 3)]
    assert [(s.rate, s.held) for s in steps] == [(100, True), (150, True), (225, False)]
    assert steps[1].p95_ms < 100 and steps[1].dropped_iterations == 0
    assert "knee: 150 req/s" in r.output and "capacity 200 req/s" in r.output
    # Each step is an archived run of its own, under the search; none is a row of `runs`.
    assert sorted(p.name for p in (archive / search.search_id / "steps").iterdir()) == [
        "01-100rps",
        "02-150rps",
        "03-225rps",
    ]
    with open_history(db).reader() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    v = evaluate(read_snapshot(open_history(db)), VerdictPolicy())
    reason = v.reason("capacity.headroom")
    assert not reason.passed and reason.blocks is State.NOT_READY
    assert "knee 150 req/s" in reason.message and "1.5x the launch rate < 2x" in reason.message
    assert "capacity search against the demo target" in v.reason("rehearsal").message


def _verdict(db, checklist, now=NOW, policy=None):
    policy = policy or VerdictPolicy()
    snap = read_snapshot(open_history(db), checklist=checklist, policy=policy, now=now)
    return evaluate(snap, policy, now)


def _ready(db, archive, *, knee: float | None):
    history(db, archive, [{}] * 4, knee=knee)
    verification(db, T0 + dt.timedelta(hours=3))


def test_no_capacity_search_is_insufficient_data(vdb, archive, checklist):
    _ready(vdb, archive, knee=None)
    v = _verdict(vdb, checklist)
    assert v.state is State.INSUFFICIENT_DATA
    assert [r.rule for r in v.reasons if r.blocking] == ["capacity.headroom"]
    assert "loadtest capacity" in v.reason("capacity.headroom").message


def test_a_knee_at_twice_the_launch_rate_passes(vdb, archive, checklist):
    _ready(vdb, archive, knee=200.0)
    v = _verdict(vdb, checklist)
    assert v.state is State.READY
    r = v.reason("capacity.headroom")
    assert r.passed and r.observed["knee_rps"] == 200 and r.limit["min_knee_rps"] == 200
    assert v.figures["capacity_knee_rps"] == 200


def test_a_knee_below_twice_the_launch_rate_is_not_ready(vdb, archive, checklist):
    _ready(vdb, archive, knee=190.0)
    v = _verdict(vdb, checklist)
    assert v.state is State.NOT_READY
    r = v.reason("capacity.headroom")
    assert not r.passed and "190 req/s" in r.message and "1.9x the launch rate < 2x" in r.message


def test_the_headroom_factor_is_configurable(vdb, archive, checklist, monkeypatch):
    _ready(vdb, archive, knee=190.0)
    monkeypatch.setenv("KGENTS_HEADROOM_FACTOR", "1.5")
    v = _verdict(vdb, checklist)
    assert v.state is State.READY and v.reason("capacity.headroom").limit["min_knee_rps"] == 150


def test_a_stale_knee_is_insufficient_data(vdb, archive, checklist):
    _ready(vdb, archive, knee=None)
    capacity_search(vdb, T0 - dt.timedelta(days=8), knee_rps=400.0)
    v = _verdict(vdb, checklist)
    r = v.reason("capacity.headroom")
    assert v.state is State.INSUFFICIENT_DATA and not r.passed
    assert r.blocks is State.INSUFFICIENT_DATA and "search again" in r.message


def test_the_newest_valid_search_counts_not_an_invalid_or_a_future_one(vdb, archive, checklist):
    _ready(vdb, archive, knee=None)
    capacity_search(vdb, T0, knee_rps=150.0, search_id="old-low")
    capacity_search(vdb, T0 + dt.timedelta(hours=1), knee_rps=300.0, search_id="newer-high")
    capacity_search(vdb, T0 + dt.timedelta(hours=2), knee_rps=50.0, valid=False, search_id="bad")
    capacity_search(vdb, NOW + dt.timedelta(hours=1), knee_rps=50.0, search_id="future")
    v = _verdict(vdb, checklist)
    assert v.reason("capacity.headroom").run_ids == ("newer-high",) and v.state is State.READY
    # As of before the newer search, the older, lower knee is the newest: not enough.
    v = _verdict(vdb, checklist, now=T0 + dt.timedelta(minutes=30))
    assert v.reason("capacity.headroom").run_ids == ("old-low",)


def test_a_search_that_reached_its_max_is_a_lower_bound(vdb, archive, checklist):
    _ready(vdb, archive, knee=None)
    capacity_search(vdb, T0, knee_rps=300.0, reached_max=True)
    r = _verdict(vdb, checklist).reason("capacity.headroom")
    assert r.passed and "at least 300 req/s" in r.message and r.observed["reached_max"]


def test_no_step_held_is_not_ready(vdb, archive, checklist):
    _ready(vdb, archive, knee=None)
    capacity_search(vdb, T0, knee_rps=None)
    r = _verdict(vdb, checklist).reason("capacity.headroom")
    assert not r.passed and r.blocks is State.NOT_READY and "not even its first step" in r.message


def test_a_knee_of_another_target_is_not_evidence_for_this_one(vdb, archive, checklist):
    _ready(vdb, archive, knee=None)
    capacity_search(vdb, T0, knee_rps=400.0, target_url="https://staging.example.com")
    v = _verdict(vdb, checklist)
    r = v.reason("capacity.headroom")
    assert v.state is State.INSUFFICIENT_DATA and "another target" in r.message
    assert REMOTE in r.message


def test_a_knee_measured_on_the_demo_target_stays_a_rehearsal(vdb, archive, checklist):
    """Even a generous knee from the demo target cannot make a launch READY."""
    _ready(vdb, archive, knee=None)
    capacity_search(vdb, T0, knee_rps=900.0, target_kind="demo")
    v = _verdict(vdb, checklist)
    assert v.state is not State.READY and v.rehearsal
    assert "capacity search against the demo target" in v.reason("rehearsal").message
    assert "another target" in v.reason("capacity.headroom").message


def test_capacity_steps_are_planned_geometrically_up_to_max():
    assert CapacityPlan(start_rps=50, factor=1.5, max_rps=400).rates() == [
        50, 75, 112, 168, 252, 378, 400,
    ]  # fmt: skip
    assert CapacityPlan(start_rps=1, factor=1.2, max_rps=3).rates() == [1, 2, 3]
