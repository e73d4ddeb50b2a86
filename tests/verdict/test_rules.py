"""The verdict's rules over small synthetic histories (real run directories, real ingest, real
DuckDB): each test pins one rule and asserts the state and the reasons a user reads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kgents_pipeline.errors import HistoryError, VerdictError
from kgents_pipeline.history.db import connect
from kgents_pipeline.history.store import open_history
from kgents_pipeline.verdict import State, Verdict, VerdictPolicy, evaluate
from kgents_pipeline.verdict import usecase as controls
from kgents_pipeline.verdict.usecase import read_snapshot
from tests.verdict.synth import T0, history, verification, write_run

NOW = T0 + dt.timedelta(hours=5)


def judge(
    db: Path, checklist: Path | None, now: dt.datetime = NOW, policy: VerdictPolicy | None = None
) -> Verdict:
    policy = policy or VerdictPolicy()
    return evaluate(
        read_snapshot(open_history(db), checklist=checklist, policy=policy, now=now), policy, now
    )


def failing(v: Verdict) -> dict[str, str]:
    """rule -> the state its failure leads to, for the failing, unwaived rules."""
    return {r.rule: str(r.blocks) for r in v.reasons if r.blocking}


def ready_history(db: Path, archive: Path, n: int = 4, **spec) -> list[str]:
    ids = history(db, archive, [spec] * n)
    verification(db, T0 + dt.timedelta(hours=n - 1))
    return ids


def test_ready_needs_every_rule_passing(vdb, archive, checklist):
    ids = ready_history(vdb, archive)
    v = judge(vdb, checklist)
    assert v.state is State.READY
    assert not v.rehearsal
    assert all(r.passed for r in v.reasons)
    assert {r.rule for r in v.reasons} >= {
        "validity", "slo.p95", "slo.error_rate", "slo.rate", "sustained", "regression.p95",
        "regression.error_rate", "quantity", "staleness", "policy", "pdb", "checklist", "rehearsal",
    }  # fmt: skip
    assert v.latest_run_id == ids[-1]
    assert v.reason("regression.p95").run_ids == (ids[-1], *reversed(ids[:-1]))


def test_empty_history_is_insufficient_data(vdb, checklist):
    with connect(vdb):
        pass
    v = judge(vdb, checklist)
    assert v.state is State.INSUFFICIENT_DATA
    assert {"validity", "slo.p95", "quantity", "staleness", "policy"} <= set(failing(v))
    assert "no run" in v.reason("validity").message


def test_missing_history_file_is_an_error(tmp_path, checklist):
    with pytest.raises(HistoryError, match="no metrics history"):
        read_snapshot(open_history(tmp_path / "absent.duckdb"), checklist=checklist)


def test_database_at_schema_version_1_is_migrated_then_judged(tmp_path, vdb, archive, checklist):
    import duckdb

    from kgents_pipeline.history import db as dbmod

    ready_history(vdb, archive)
    old = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(old))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    con.execute(dbmod.migrations()[0][2])
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (1, 'runs')")
    con.execute(f"ATTACH '{vdb}' AS cur (READ_ONLY)")
    for table in ("runs", "run_metrics", "run_thresholds", "run_checks", "run_points"):
        # The columns a version-1 file has (later migrations add some).
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_catalog = 'v1' AND table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
        ]
        con.execute(f"INSERT INTO {table} SELECT {', '.join(cols)} FROM cur.{table}")
    con.close()

    v = judge(old, checklist)
    with connect(old, read_only=True) as con:
        assert dbmod.schema_version(con) == dbmod.migrations()[-1][0]
    # The runs are judged; a version-1 file has no cluster evidence and no capacity search:
    # fail closed on them.
    assert v.state is State.INSUFFICIENT_DATA
    assert set(failing(v)) == {"policy", "pdb", "checklist", "capacity.headroom"}
    assert v.reason("slo.p95").passed and v.reason("quantity").passed


def test_p95_regression_with_support_is_not_ready(vdb, archive, checklist):
    ids = history(vdb, archive, [{"latency_ms": 20}] * 4 + [{"latency_ms": 40}])
    verification(vdb, T0 + dt.timedelta(hours=4))
    v = judge(vdb, checklist)
    assert v.state is State.NOT_READY
    assert set(failing(v)) == {"regression.p95"}
    r = v.reason("regression.p95")
    (comp,) = r.observed
    assert comp["regression"] and comp["diff_ms"] > comp["tolerance_ms"] and comp["ci_low_ms"] > 0
    assert r.run_ids[0] == ids[-1]
    assert v.reason("slo.p95").passed  # 40 ms is within the SLO: only the regression fails


def test_sub_millisecond_jitter_on_loopback_is_not_a_regression(vdb, archive, checklist):
    # +60% relative, but 0.6 ms absolute: under the 5 ms floor.
    history(
        vdb,
        archive,
        [{"latency_ms": 1.0, "jitter_ms": 0.1}] * 4 + [{"latency_ms": 1.6, "jitter_ms": 0.1}],
    )
    verification(vdb, T0 + dt.timedelta(hours=4))
    v = judge(vdb, checklist)
    assert v.state is State.READY
    (comp,) = v.reason("regression.p95").observed
    assert comp["diff_ms"] > 0.2 * comp["baseline_p95_ms"] and comp["ci_low_ms"] > 0
    assert not comp["regression"]


def test_error_rate_regression_needs_effect_and_fisher_support(vdb, archive, checklist):
    history(vdb, archive, [{}] * 4 + [{"errors": 8}])  # 0.4% of 2000, after 0 of 8000
    verification(vdb, T0 + dt.timedelta(hours=4))
    v = judge(vdb, checklist)
    assert v.state is State.NOT_READY
    assert set(failing(v)) == {"regression.error_rate"}
    assert v.reason("slo.error_rate").passed  # the Wilson bound is still below 1 %
    (comp,) = v.reason("regression.error_rate").observed
    assert comp["regression"] and comp["p_value"] < 0.05


def test_one_error_more_is_not_a_regression(vdb, archive, checklist):
    history(vdb, archive, [{"errors": 1}] * 3 + [{"errors": 2}])
    verification(vdb, T0 + dt.timedelta(hours=3))
    v = judge(vdb, checklist)
    assert v.state is State.READY
    assert not v.reason("regression.error_rate").observed[0]["regression"]


def test_error_rate_is_judged_by_its_wilson_upper_bound(vdb, archive, checklist):
    # 0.8 % observed (< 1 %) but the 95 % upper bound is above 1 %: not shown to be below.
    history(vdb, archive, [{"errors": 16}] * 4)
    verification(vdb, T0 + dt.timedelta(hours=3))
    v = judge(vdb, checklist)
    assert v.state is State.INSUFFICIENT_DATA
    r = v.reason("slo.error_rate")
    assert not r.passed and r.blocks is State.INSUFFICIENT_DATA
    assert r.observed["rate"] < 0.01 < r.observed["upper_bound"]


def test_error_rate_above_limit_is_not_ready(vdb, archive, checklist):
    history(vdb, archive, [{"errors": 60}] * 4)  # 3 %
    verification(vdb, T0 + dt.timedelta(hours=3))
    v = judge(vdb, checklist)
    assert v.state is State.NOT_READY
    assert failing(v)["slo.error_rate"] == "NOT_READY"


def test_a_run_that_stalls_for_one_window_is_not_sustained(vdb, archive, checklist):
    # 6 % of window 1 at 900 ms: the run's p95 passes, that window's p95 does not.
    ids = history(vdb, archive, [{}] * 3 + [{"slow_window": (1, 0.06, 900.0)}])
    verification(vdb, T0 + dt.timedelta(hours=3))
    v = judge(vdb, checklist)
    assert v.reason("slo.p95").passed and v.reason("slo.rate").passed
    assert v.state is State.NOT_READY
    assert set(failing(v)) == {"sustained", "quantity"}
    r = v.reason("sustained")
    assert [w["start_s"] for w in r.observed["failing"]] == [10]
    assert r.run_ids == (ids[-1],)


def test_a_window_below_the_rate_is_not_sustained(vdb, archive, checklist):
    # A 3 s stall in window 0: its requests complete in a burst in window 1. Nothing is dropped,
    # the run is valid and its overall rate passes; window 0 ran at 70 req/s.
    ids = history(vdb, archive, [{}] * 3 + [{"stall_window": (0, 0.3)}])
    verification(vdb, T0 + dt.timedelta(hours=3))
    v = judge(vdb, checklist)
    assert v.reason("validity").passed and v.reason("slo.rate").passed
    assert v.state is State.NOT_READY
    assert set(failing(v)) == {"sustained", "quantity"}
    r = v.reason("sustained")
    assert [w["start_s"] for w in r.observed["failing"]] == [0]
    assert r.observed["min_rps"] < 95 and r.run_ids == (ids[-1],)


def test_quantity_needs_m_consecutive_passing_runs(vdb, archive, checklist):
    history(vdb, archive, [{}] * 2)
    verification(vdb, T0 + dt.timedelta(hours=1))
    v = judge(vdb, checklist)
    assert v.state is State.INSUFFICIENT_DATA
    assert set(failing(v)) == {"quantity"}
    assert v.reason("quantity").observed == 2


def test_first_run_has_no_baseline_and_fails_closed(vdb, archive, checklist):
    history(vdb, archive, [{}])
    verification(vdb, T0)
    v = judge(vdb, checklist, policy=VerdictPolicy(min_consecutive_runs=1))
    assert v.state is State.INSUFFICIENT_DATA
    assert set(failing(v)) == {"regression.p95", "regression.error_rate"}
    assert "no baseline" in v.reason("regression.p95").message


def test_stale_history_is_insufficient_data(vdb, archive, checklist):
    ready_history(vdb, archive)
    v = judge(vdb, checklist, now=T0 + dt.timedelta(hours=40))
    assert v.state is State.INSUFFICIENT_DATA
    assert set(failing(v)) == {"staleness", "policy", "pdb", "checklist"}
    assert v.reason("staleness").observed > 24


def test_missing_errors_metric_is_never_ready(vdb, archive, checklist):
    history(vdb, archive, [{}] * 3 + [{"drop_metrics": ("errors",)}])
    verification(vdb, T0 + dt.timedelta(hours=3))
    v = judge(vdb, checklist)
    assert v.state is State.INSUFFICIENT_DATA
    assert "slo.error_rate" in failing(v)
    assert "no `errors` metric" in v.reason("slo.error_rate").message


def test_run_without_raw_points_cannot_be_sustained(vdb, archive, checklist):
    history(vdb, archive, [{}] * 3 + [{"points": False}])
    verification(vdb, T0 + dt.timedelta(hours=3))
    v = judge(vdb, checklist)
    assert v.state is State.INSUFFICIENT_DATA
    assert {"sustained", "regression.p95", "quantity"} <= set(failing(v))


def test_latest_run_without_summary_is_invalid_run(vdb, archive, checklist):
    ids = history(vdb, archive, [{}] * 4 + [{"summary": False, "exit_code": 105}])
    verification(vdb, T0 + dt.timedelta(hours=4))
    v = judge(vdb, checklist)
    assert v.state is State.INVALID_RUN
    r = v.reason("validity")
    assert r.run_ids == (ids[-1],) and "exit code 105" in r.message
    # The rules still explain the latest valid run.
    assert v.reason("slo.p95").run_ids == (ids[-2],) and v.reason("slo.p95").passed


def test_operator_invalidation_makes_the_latest_run_invalid(vdb, archive, checklist):
    ids = ready_history(vdb, archive)
    controls.invalidate_run(
        open_history(vdb),
        ids[-1],
        reason="wrong build deployed",
        by="alice",
        now=T0 + dt.timedelta(hours=4),
    )
    v = judge(vdb, checklist)
    assert v.state is State.INVALID_RUN
    assert "invalidated by alice" in v.reason("validity").message
    with connect(vdb, read_only=True) as con:
        valid, reasons = con.execute(
            "SELECT valid, invalid_reasons FROM baseline_trend WHERE run_id = ?", [ids[-1]]
        ).fetchone()
        cols = [r[0] for r in con.execute("DESCRIBE baseline_trend").fetchall()]
    assert valid is False and "wrong build deployed" in reasons[-1]
    assert (
        cols[:3] == ["run_id", "started_at", "target_kind"] and "p95_ms" in cols and "valid" in cols
    )
    with pytest.raises(VerdictError, match="already invalidated"):
        controls.invalidate_run(open_history(vdb), ids[-1], reason="again", by="bob")
    with pytest.raises(VerdictError, match="no run"):
        controls.invalidate_run(open_history(vdb), "nope", reason="x", by="bob")


def test_invalidated_pinned_baseline_fails_closed(vdb, archive, checklist):
    ids = ready_history(vdb, archive)
    controls.pin_baseline(open_history(vdb), ids[0], reason="launch candidate", by="alice", now=T0)
    assert judge(vdb, checklist).state is State.READY
    controls.invalidate_run(
        open_history(vdb),
        ids[0],
        reason="noisy neighbour",
        by="bob",
        now=T0 + dt.timedelta(hours=4),
    )
    v = judge(vdb, checklist)
    assert v.state is State.INSUFFICIENT_DATA
    assert set(failing(v)) == {"regression.p95", "regression.error_rate"}
    assert "pinned baseline run-000 is not valid" in v.reason("regression.p95").message
    with pytest.raises(VerdictError, match="cannot be a baseline"):
        controls.pin_baseline(open_history(vdb), ids[0], by="alice")
    controls.pin_baseline(
        open_history(vdb), None, by="alice", now=T0 + dt.timedelta(hours=4, minutes=1)
    )
    assert judge(vdb, checklist).state is State.READY


def test_pinned_baseline_catches_a_slow_drift_the_window_absorbed(vdb, archive, checklist):
    # Each run +4 ms on the one before: within tolerance of the window, not of the pinned run.
    specs = [{"latency_ms": 20 + 4 * i} for i in range(7)]
    ids = history(vdb, archive, specs)
    verification(vdb, T0 + dt.timedelta(hours=6))
    controls.pin_baseline(open_history(vdb), ids[0], reason="launch candidate", by="alice", now=T0)
    v = judge(vdb, checklist, now=T0 + dt.timedelta(hours=7))
    comps = {c["baseline"]: c for c in v.reason("regression.p95").observed}
    assert not comps["window"]["regression"] and comps["pinned"]["regression"]
    assert v.state is State.NOT_READY


def test_waiver_makes_a_failure_non_blocking_until_it_expires(vdb, archive, checklist):
    history(vdb, archive, [{"latency_ms": 20}] * 4 + [{"latency_ms": 40}])
    verification(vdb, T0 + dt.timedelta(hours=4))
    assert "regression.p95" in failing(judge(vdb, checklist))
    wid = controls.add_waiver(
        open_history(vdb),
        "regression.p95",
        until="2026-11-20",
        reason="new TLS",
        by="carol",
        now=T0,
    )
    waived = judge(vdb, checklist)
    (w,) = waived.waivers
    assert w["waiver_id"] == wid and w["active"] and w["applied"] and w["by"] == "carol"
    assert waived.state is State.READY
    # Waived through 2026-11-20 (UTC): the next morning it no longer applies, and is still listed.
    later = judge(vdb, checklist, now=dt.datetime(2026, 11, 21, 1, 0, tzinfo=dt.UTC))
    assert later.waivers[0]["active"] is False and later.waivers[0]["applied"] is False
    assert failing(later)["regression.p95"] == "NOT_READY"
    assert later.state is State.NOT_READY


def test_waiver_turns_not_ready_into_ready_and_is_listed(vdb, archive, checklist):
    history(vdb, archive, [{"latency_ms": 20}] * 4 + [{"latency_ms": 40}])
    verification(vdb, T0 + dt.timedelta(hours=4))
    controls.add_waiver(
        open_history(vdb), "regression.p95", until="2026-11-22", reason="accepted", by="dan", now=T0
    )
    controls.add_waiver(
        open_history(vdb), "quantity", until="2026-11-22", reason="accepted", by="dan", now=T0
    )
    v = judge(vdb, checklist)
    assert v.state is State.READY
    r = v.reason("regression.p95")
    assert not r.passed and r.waiver_id is not None and r.to_json()["waived"] is True
    assert [w["rule"] for w in v.waivers] == ["regression.p95", "quantity"]
    assert [w["applied"] for w in v.waivers] == [True, False]  # quantity passed: nothing to waive


@pytest.mark.parametrize("rule", ["validity", "checklist", "rehearsal"])
def test_validity_checklist_and_rehearsal_can_never_be_waived(vdb, rule):
    with pytest.raises(VerdictError, match="cannot be waived"):
        controls.add_waiver(open_history(vdb), rule, until="2099-01-01", reason="please", by="eve")


def test_waiver_for_unknown_rule_or_past_date_is_refused(vdb):
    with pytest.raises(VerdictError, match=r"unknown rule 'slo\.p99'"):
        controls.add_waiver(open_history(vdb), "slo.p99", until="2099-01-01", reason="x", by="eve")
    with pytest.raises(VerdictError, match="not in the future"):
        controls.add_waiver(open_history(vdb), "quantity", until="2020-01-01", reason="x", by="eve")
    with pytest.raises(VerdictError, match="--until must be an ISO-8601 date"):
        controls.add_waiver(open_history(vdb), "quantity", until="next week", reason="x", by="eve")


def test_offline_verification_is_rehearsal(vdb, archive, checklist):
    history(vdb, archive, [{}] * 4)
    verification(vdb, T0 + dt.timedelta(hours=3), mode="offline")
    v = judge(vdb, checklist)
    assert v.state is State.INSUFFICIENT_DATA and v.rehearsal
    assert set(failing(v)) == {"policy", "pdb", "checklist", "rehearsal"}
    assert "offline" in v.reason("policy").message


def test_live_verification_with_broken_intent_is_not_ready(vdb, archive, checklist):
    history(vdb, archive, [{}] * 4)
    verification(
        vdb,
        T0 + dt.timedelta(hours=3),
        intent_holds=False,
        violations=["gateway cannot reach nats:4222"],
    )
    v = judge(vdb, checklist)
    assert v.state is State.NOT_READY
    assert failing(v) == {"policy": "NOT_READY", "checklist": "NOT_READY"}
    assert "nats-network-policies" in v.reason("checklist").message


def test_pdb_not_protecting_quorum_is_not_ready_but_medium(vdb, archive, checklist):
    history(vdb, archive, [{}] * 4)
    verification(vdb, T0 + dt.timedelta(hours=3), pdb_ok=False)
    v = judge(vdb, checklist)
    assert v.state is State.NOT_READY
    assert failing(v) == {"pdb": "NOT_READY"}  # the PDB item is medium: the checklist passes


def test_unsigned_security_review_keeps_the_verdict_from_ready(vdb, archive):
    ready_history(vdb, archive)
    v = judge(vdb, None)  # the repository checklist, security review not signed off
    assert v.state is State.INSUFFICIENT_DATA
    assert failing(v) == {"checklist": "INSUFFICIENT_DATA"}
    assert "security-review" in v.reason("checklist").message


def test_bad_checklist_is_a_clear_error(vdb, archive, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("items:\n  - id: x\n    priority: HIGH\n    resolved_by: [slo.p999]\n")
    with pytest.raises(VerdictError, match=r"item 'x': unknown rule\(s\) slo.p999"):
        judge(vdb, bad)
    bad.write_text("items:\n  - id: x\n    priority: HIGH\n    deferred: {by: a, at: b, note: c}\n")
    with pytest.raises(VerdictError, match="HIGH item cannot be deferred"):
        judge(vdb, bad)
    with pytest.raises(VerdictError, match="not found"):
        judge(vdb, tmp_path / "absent.yaml")


def test_demo_target_history_is_rehearsal_never_ready(vdb, archive, checklist):
    history(vdb, archive, [{"target_kind": "demo", "target_url": "http://127.0.0.1:9"}] * 4)
    verification(vdb, T0 + dt.timedelta(hours=3))
    v = judge(vdb, checklist)
    assert v.state is State.INSUFFICIENT_DATA and v.rehearsal
    assert set(failing(v)) == {"rehearsal"}
    with pytest.raises(VerdictError, match="'rehearsal' cannot be waived"):
        controls.add_waiver(
            open_history(vdb), "rehearsal", until="2099-01-01", reason="x", by="eve", now=T0
        )
    assert judge(vdb, checklist).state is State.INSUFFICIENT_DATA


def test_verdict_is_identical_when_recomputed(vdb, archive, checklist):
    history(vdb, archive, [{"latency_ms": 20}] * 4 + [{"latency_ms": 26}])
    verification(vdb, T0 + dt.timedelta(hours=4))
    a, b = judge(vdb, checklist), judge(vdb, checklist)
    assert a.to_json() == b.to_json()
    assert len(a.inputs_sha256) == 64
    write_run(archive, "run-late", T0 + dt.timedelta(hours=4, minutes=30))
    from kgents_pipeline.history.ingest import ingest_run_dir

    ingest_run_dir(open_history(vdb), archive / "run-late")
    assert judge(vdb, checklist).inputs_sha256 != a.inputs_sha256
    # As of the earlier time the new run is invisible: the same inputs, the same verdict.
    assert (
        judge(vdb, checklist, now=T0 + dt.timedelta(hours=4, minutes=10)).inputs_sha256
        == judge(vdb, checklist, now=T0 + dt.timedelta(hours=4, minutes=10)).inputs_sha256
    )
