"""The statistics of the verdict, and fail-closed properties of the pure function over
arbitrary snapshots (no DuckDB: `evaluate` is pure)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgents_pipeline.history.archive import ArchiveCheck
from kgents_pipeline.history.capacity import CapacitySearch
from kgents_pipeline.history.run_record import RunRecord
from kgents_pipeline.history.windows import WindowStat
from kgents_pipeline.verdict import HistorySnapshot, State, VerdictPolicy, evaluate
from kgents_pipeline.verdict.checklist import ChecklistItem, Signoff
from kgents_pipeline.verdict.inputs import PolicyEvidence
from kgents_pipeline.verdict.stats import (
    bootstrap_p95,
    error_increase_pvalue,
    p95_difference_ci,
    wilson_upper,
)

NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


def test_wilson_upper_bound_matches_the_closed_form():
    # 0 of 300: z^2 / (n + z^2) with z = 1.96.
    assert wilson_upper(0, 300, 0.95) == pytest.approx(1.959964**2 / (300 + 1.959964**2), rel=1e-6)
    assert wilson_upper(0, 400, 0.95) < 0.01 < wilson_upper(0, 380, 0.95)
    assert wilson_upper(5, 100, 0.95) == pytest.approx(0.1118, abs=1e-3)
    assert wilson_upper(0, 0, 0.95) == 1.0  # no requests: no evidence


def test_exact_order_statistic_bootstrap_matches_resampling():
    x = np.sort(np.random.default_rng(3).gamma(4, 5, 2000))
    fast = bootstrap_p95(x, 20_000, np.random.default_rng(1))
    slow = np.quantile(
        x[np.random.default_rng(2).integers(0, len(x), (2000, len(x)))], 0.95, axis=1
    )
    for q in (0.05, 0.5, 0.95):
        assert np.quantile(fast, q) == pytest.approx(np.quantile(slow, q), rel=0.01)


def test_p95_difference_ci_is_deterministic_and_covers_the_shift():
    rng = np.random.default_rng(5)
    base, cur = rng.normal(20, 2, 5000), rng.normal(30, 2, 2000)
    a = p95_difference_ci(cur, base, VerdictPolicy())
    assert a == p95_difference_ci(cur, base, VerdictPolicy())
    diff, lo, hi = a
    assert lo < diff < hi and lo > 8 and hi < 12


def _run(i: int, kind: str, **kw) -> RunRecord:
    base = dict(
        run_id=f"r{i:03d}",
        started_at=NOW - dt.timedelta(hours=10 - i),
        finished_at=None,
        exit_code=0,
        outcome="passed",
        k6_version="1.1.0",
        script_sha256="s",
        target_url="http://t",
        target_kind=kind,
        rate=100.0,
        duration_s=20.0,
        summary_present=True,
        test_run_duration_s=20.0,
        http_reqs=2000,
        ok_reqs=2000,
        achieved_rps=100.0,
        iterations=2000,
        dropped_iterations=0,
        p95_ms=20.0,
        p99_ms=25.0,
        error_count=0,
        error_total=2000,
        error_rate=0.0,
    )
    base.update(kw)
    return RunRecord(**base)


def _snapshot(runs, *, mode="live") -> HistorySnapshot:
    rng = np.random.default_rng(0)
    good = (WindowStat(0, 10, 1000, 1000, 21.0), WindowStat(1, 10, 1000, 1000, 21.0))
    return HistorySnapshot(
        runs=tuple(runs),
        # The archive holds exactly these runs, all ingested.
        archive=ArchiveCheck(("/k6",), len(runs), (), 0, (), (), ()),
        windows={r.run_id: good for r in runs},
        samples={r.run_id: rng.normal(18, 1, 2000) for r in runs},
        verifications=(
            PolicyEvidence(NOW - dt.timedelta(hours=1), mode, "prod", True, 0, True, (), True),
        ),
        verifications_table=True,
        knee=CapacitySearch(
            search_id="cap",
            started_at=NOW - dt.timedelta(days=1),
            finished_at=None,
            target_url="http://t",
            target_kind="remote",
            k6_version="1.1.0",
            script_sha256="s",
            runners=1,
            start_rps=50.0,
            factor=1.5,
            max_rps=1000.0,
            step_s=10.0,
            knee_rps=253.0,
            first_failed_rps=380.0,
            failed_because="p95 900 ms",
            valid=True,
            invalid_reasons=(),
        ),
        checklist=(
            ChecklistItem("nats", "NATS", "HIGH", ("policy",)),
            ChecklistItem(
                "review",
                "review",
                "HIGH",
                (),
                signoff=Signoff("a", NOW - dt.timedelta(days=1), "c"),
            ),
        ),
    )


def test_handmade_snapshot_can_be_ready():
    assert evaluate(_snapshot([_run(i, "remote") for i in range(5)]), now=NOW).state is State.READY


runs_strategy = st.lists(
    st.tuples(
        st.sampled_from(["demo", "remote"]),
        st.sampled_from([0, 0, 0, 99, 105, 137, None]),
        st.one_of(st.none(), st.floats(0, 2000)),  # p95
        st.integers(0, 100),  # errors
        st.floats(0, 150),  # achieved rps
    ),
    min_size=0,
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs_strategy, st.sampled_from(["live", "offline"]))
def test_never_ready_from_rehearsal_or_failing_evidence(specs, mode):
    runs = [
        _run(
            i,
            kind,
            exit_code=code,
            p95_ms=p95,
            ok_reqs=0 if p95 is None else 2000,
            error_count=err,
            achieved_rps=rps,
        )
        for i, (kind, code, p95, err, rps) in enumerate(specs)
    ]
    v = evaluate(_snapshot(runs, mode=mode), now=NOW)
    assert v.to_json() == evaluate(_snapshot(runs, mode=mode), now=NOW).to_json()  # pure
    if v.state is State.READY:
        latest = runs[-1]
        assert mode == "live" and latest.target_kind == "remote" and latest.exit_code in (0, 99)
        assert latest.p95_ms is not None and latest.p95_ms < 500 and latest.achieved_rps >= 95
        assert wilson_upper(latest.error_count, latest.error_total, 0.95) < 0.01
        assert all(r.passed for r in v.reasons)
    if mode == "offline" or (runs and runs[-1].target_kind == "demo"):
        assert v.rehearsal and v.state is not State.READY
    if not runs:
        assert v.state is State.INSUFFICIENT_DATA
    if runs and runs[-1].exit_code not in (0, 99):
        assert v.state is State.INVALID_RUN


@pytest.mark.parametrize(
    ("cur_err", "cur_n", "base_err", "base_n"),
    [(0, 10, 0, 10), (5, 100, 1, 100), (30, 3000, 10, 3000), (1, 1, 0, 1), (3, 50, 9, 60),
     (120, 3000, 0, 15000)],
)  # fmt: skip
def test_fisher_exact_matches_scipy(cur_err, cur_n, base_err, base_n):
    from scipy.stats import fisher_exact

    table = [[cur_err, cur_n - cur_err], [base_err, base_n - base_err]]
    expected = fisher_exact(table, alternative="greater").pvalue
    assert error_increase_pvalue(cur_err, cur_n, base_err, base_n) == pytest.approx(
        expected, rel=1e-9, abs=1e-12
    )
