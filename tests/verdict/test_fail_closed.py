"""Review findings: every way the verdict could open where it must stay closed, and every bad
input that must be one line and exit 2. Each test asserts the state and the reasons a user reads."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from pathlib import Path

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from kgents_pipeline.cli import main
from kgents_pipeline.errors import HistoryError, VerdictError
from kgents_pipeline.history.db import connect
from kgents_pipeline.history.store import open_history
from kgents_pipeline.verdict import (
    RULE_IDS as RULES,
)
from kgents_pipeline.verdict import (
    State,
    Verdict,
    VerdictPolicy,
    evaluate,
    parse_now,
)
from kgents_pipeline.verdict import usecase as controls
from kgents_pipeline.verdict.checklist import DEFAULT_CHECKLIST, parse_checklist
from kgents_pipeline.verdict.inputs import PolicyEvidence
from kgents_pipeline.verdict.usecase import read_snapshot
from tests.verdict.synth import T0, history, signed_checklist, verification

NOW = T0 + dt.timedelta(hours=5)


def cli(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def one_line_error(r, needle: str) -> None:
    assert r.exit_code == 2, r.output
    assert needle in r.output, r.output
    assert r.output.strip().count("\n") == 0 and "Traceback" not in r.output, r.output


def judge(db: Path, checklist: Path | None, now: dt.datetime = NOW) -> Verdict:
    policy = VerdictPolicy()
    return evaluate(
        read_snapshot(open_history(db), checklist=checklist, policy=policy, now=now), policy, now
    )


def failing(v: Verdict) -> dict[str, str]:
    return {r.rule: str(r.blocks) for r in v.reasons if r.blocking}


def ready_history(db: Path, archive: Path, **verify) -> None:
    history(db, archive, [{}] * 4)
    verification(db, T0 + dt.timedelta(hours=3), **verify)


def recent_history(db: Path, archive: Path) -> dt.datetime:
    """A READY-able history around the real clock (the CLI evaluates as of now)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    history(db, archive, [{}] * 4, start=now - dt.timedelta(hours=4))
    verification(db, now - dt.timedelta(minutes=30))
    return now


def write_checklist(path: Path, mutate) -> Path:
    data = yaml.safe_load(DEFAULT_CHECKLIST.read_text())
    mutate({item["id"]: item for item in data["items"]})
    path.write_text(yaml.safe_dump(data))
    return path


# 1. The checklist cannot be waived; a rule waiver resolves the items that name the rule ------


def test_checklist_waiver_is_refused_and_an_old_one_is_ignored(vdb, archive):
    ready_history(vdb, archive)
    with pytest.raises(VerdictError, match=r"rule 'checklist' cannot be waived: .*sign-off"):
        controls.add_waiver(
            open_history(vdb), "checklist", until="2099-01-01", reason="x", by="cto", now=T0
        )
    # A checklist waiver recorded before the rule became non-waivable changes nothing.
    with connect(vdb) as con:
        con.execute(
            "INSERT INTO waivers (rule, until, reason, waived_by, waived_at)"
            " VALUES ('checklist', ?, 'board approved', 'cto', ?)",
            [dt.datetime(2099, 1, 1, tzinfo=dt.UTC), T0],
        )
    v = judge(vdb, None)  # the repository checklist: security review unsigned
    assert v.state is State.INSUFFICIENT_DATA
    assert failing(v) == {"checklist": "INSUFFICIENT_DATA"}
    assert "security-review (no sign-off)" in v.reason("checklist").message
    (w,) = v.waivers
    assert w["rule"] == "checklist" and not w["active"] and not w["applied"]
    assert "checklist cannot be waived" in w["note"]


def test_rule_waiver_resolves_the_checklist_items_naming_that_rule(vdb, archive, checklist):
    ready_history(vdb, archive, intent_holds=False, violations=["gateway cannot reach nats:4222"])
    v = judge(vdb, checklist)
    assert failing(v) == {"policy": "NOT_READY", "checklist": "NOT_READY"}
    assert "nats-network-policies (policy)" in v.reason("checklist").message

    wid = controls.add_waiver(
        open_history(vdb), "policy", until="2099-01-01", reason="ok", by="sec", now=T0
    )
    v = judge(vdb, checklist)
    assert v.state is State.READY, failing(v)
    assert v.reason("policy").waiver_id == wid and not v.reason("policy").passed
    c = v.reason("checklist")
    assert c.passed
    assert f"resolved by waiver: nats-network-policies by waiver #{wid} (policy)" in c.message
    row = next(r for r in c.observed if r["id"] == "nats-network-policies")
    assert row["status"] == "resolved" and row["how"] == f"resolved by waiver #{wid} (policy)"

    # An item that needs a manual sign-off is never resolved by a waiver.
    v = judge(vdb, None)
    assert v.state is State.INSUFFICIENT_DATA
    assert failing(v) == {"checklist": "INSUFFICIENT_DATA"}
    assert v.reason("checklist").message.startswith(
        "1 HIGH item(s) open: security-review (no sign-off); resolved by waiver: "
        f"nats-network-policies by waiver #{wid} (policy)"
    )


# 2. The policy rule requires the verification to have passed --------------------------------


def test_live_verification_that_did_not_pass_is_not_ready(vdb, archive, checklist):
    ready_history(vdb, archive, labels_ok=False)  # intent holds, no drift, no violations
    v = judge(vdb, checklist)
    assert v.state is State.NOT_READY
    assert failing(v) == {"policy": "NOT_READY", "checklist": "NOT_READY"}
    assert "namespace labels the policies select on are missing" in v.reason("policy").message
    assert v.reason("policy").observed["passed"] is False


def test_selectors_matching_no_pod_or_an_unexplained_failure_are_not_ready(vdb, archive, checklist):
    ready_history(vdb, archive, unmatched_selectors=2)
    v = judge(vdb, checklist)
    assert v.state is State.NOT_READY and failing(v)["policy"] == "NOT_READY"
    assert "2 policy selector(s) match no pod" in v.reason("policy").message
    verification(vdb, T0 + dt.timedelta(hours=3, minutes=30), passed=False)  # every field fine
    v = judge(vdb, checklist)
    assert v.state is State.NOT_READY and failing(v)["policy"] == "NOT_READY"
    assert "the verification did not pass (passed=false" in v.reason("policy").message


def test_pdb_only_failure_fails_pdb_not_policy(vdb, archive, checklist):
    ready_history(vdb, archive, pdb_ok=False)  # passed=false, explained by the PDB alone
    v = judge(vdb, checklist)
    assert v.state is State.NOT_READY and failing(v) == {"pdb": "NOT_READY"}
    assert "failed on the PodDisruptionBudget only" in v.reason("policy").message


def test_unknown_verification_result_fails_closed(vdb, archive, checklist):
    ready_history(vdb, archive)
    policy = VerdictPolicy()
    snap = read_snapshot(open_history(vdb), checklist=checklist, policy=policy, now=NOW)
    assert evaluate(snap, policy, NOW).state is State.READY
    ev = dataclasses.replace(snap.verifications[-1], passed=None)
    v = evaluate(dataclasses.replace(snap, verifications=(ev,)), policy, NOW)
    assert v.state is State.INSUFFICIENT_DATA
    assert failing(v) == {"policy": "INSUFFICIENT_DATA", "checklist": "INSUFFICIENT_DATA"}
    assert "the verification result (passed) not recorded" in v.reason("policy").message
    assert isinstance(ev, PolicyEvidence)


# 3. Checklist validation: resolved_by names real rules, as strings ---------------------------


@pytest.mark.parametrize(
    ("resolved_by", "needle"),
    [
        (["checklist"], "item 'x': resolved_by cannot name `checklist`"),
        ([[1]], "item 'x': resolved_by entries must be rule ids (strings), got [1]"),
        ([1], "item 'x': resolved_by entries must be rule ids (strings), got 1"),
    ],
)
def test_checklist_resolved_by_must_name_a_real_rule(resolved_by, needle, tmp_path, vdb, archive):
    with pytest.raises(VerdictError) as exc:
        parse_checklist({"items": [{"id": "x", "priority": "HIGH", "resolved_by": resolved_by}]},
                        RULES, "c.yaml")  # fmt: skip
    assert str(exc.value).startswith("c.yaml: ") and needle in str(exc.value)
    ready_history(vdb, archive)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"items": [{"id": "x", "priority": "HIGH", "resolved_by": resolved_by}]})
    )
    one_line_error(cli("verdict", "--db", vdb, "--checklist", bad), f"{bad}: {needle}")


# 4. A what-if verdict (--now, config `now`) is never recorded --------------------------------


def test_what_if_verdict_is_not_recorded(vdb, archive, checklist):
    recent_history(vdb, archive)
    r = cli("verdict", "--db", vdb, "--format", "json", "--checklist", checklist)
    assert r.exit_code == 0 and json.loads(r.output)["state"] == "READY"
    r = cli("verdict", "--db", vdb, "--checklist", checklist, "--now", "2020-01-01")
    assert r.exit_code == 1 and "INSUFFICIENT_DATA" in r.output
    assert "what-if verdict (--now): not recorded" in r.output
    with connect(vdb, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM readiness_verdicts").fetchone()[0] == 1
        assert con.execute("SELECT state FROM latest_verdict").fetchone()[0] == "READY"
    assert "what-if, never recorded" in " ".join(cli("verdict", "--help").output.split())


def test_what_if_asset_run_is_not_recorded(vdb, archive, checklist):
    from kgents_pipeline.defs.resources import HistoryResource
    from kgents_pipeline.defs.verdict import launch_readiness

    recent_history(vdb, archive)
    config = {"checklist": str(checklist), "now": "2020-01-01T00:00:00Z"}
    result = dg.materialize(
        [launch_readiness],
        resources={"history": HistoryResource(db_path=str(vdb), archive_dir=str(archive))},
        run_config={"ops": {"launch_readiness": {"config": config}}},
    )
    assert result.success
    (mat,) = result.get_asset_materialization_events()
    meta = mat.event_specific_data.materialization.metadata
    assert meta["state"].value == "INSUFFICIENT_DATA" and meta["recorded"].value is False
    assert "verdict_id" not in meta and meta["what_if_now"].value.startswith("2020-01-01")
    (check,) = result.get_asset_check_evaluations()
    assert "what-if as of 2020-01-01" in check.description
    with connect(vdb, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM readiness_verdicts").fetchone()[0] == 0


# 5. A sign-off or deferral counts only from its date on ---------------------------------------


def test_future_sign_off_does_not_count_yet(vdb, archive, tmp_path):
    ready_history(vdb, archive)
    later = signed_checklist(tmp_path / "later.yaml", at="2026-11-21T09:00:00Z")
    v = judge(vdb, later)  # NOW is 2026-11-20 13:00 UTC
    assert v.state is State.INSUFFICIENT_DATA and failing(v) == {"checklist": "INSUFFICIENT_DATA"}
    assert (
        "security-review (sign-off by sec-lead dated 2026-11-21T09:00Z does not count before then)"
        in v.reason("checklist").message
    )
    v = judge(vdb, later, now=dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC))
    assert v.reason("checklist").passed
    row = next(r for r in v.reason("checklist").observed if r["id"] == "security-review")
    assert row["how"] == "signed off by sec-lead on 2026-11-21T09:00Z: reviewed and approved"


def test_what_if_before_the_sign_off_sees_it_unsigned(vdb, archive, tmp_path):
    recent_history(vdb, archive)
    signed = signed_checklist(tmp_path / "c.yaml", at=dt.date.today().isoformat())
    r = cli("verdict", "--db", vdb, "--format", "json", "--checklist", signed)
    assert r.exit_code == 0, r.output
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=26)).isoformat()
    doc = json.loads(
        cli("verdict", "--db", vdb, "--format", "json", "--checklist", signed, "--now", yesterday)
        .output
    )  # fmt: skip
    c = next(x for x in doc["reasons"] if x["rule"] == "checklist")
    assert not c["passed"] and "security-review (sign-off by sec-lead dated" in c["message"]


def test_future_deferral_leaves_the_item_open(vdb, archive, checklist, tmp_path):
    ready_history(vdb, archive)

    def defer_later(items):
        items["security-review"]["signoff"] = {"by": "s", "at": "2026-11-01", "note": "ok"}
        items["log-aggregation"]["deferred"]["at"] = "2026-12-01"

    v = judge(vdb, write_checklist(tmp_path / "c.yaml", defer_later))
    assert v.state is State.READY  # a LOW item: listed, not blocking
    assert v.reason("checklist").message.endswith("; open, not blocking: log-aggregation")
    row = next(r for r in v.reason("checklist").observed if r["id"] == "log-aggregation")
    assert row["status"] == "open" and "dated 2026-12-01 does not count before then" in row["how"]


@pytest.mark.parametrize("at", ["next tuesday", "2026-02-30", 20261120])
def test_bad_sign_off_date_names_item_and_field(at, vdb, archive, tmp_path):
    ready_history(vdb, archive)
    bad = signed_checklist(tmp_path / "bad.yaml", at=at)
    with pytest.raises(VerdictError) as exc:
        judge(vdb, bad)
    assert str(exc.value).startswith(f"{bad}: item 'security-review': signoff: at must be an ISO")
    one_line_error(cli("verdict", "--db", vdb, "--checklist", bad), "signoff: at must be")


# 6. The chart draws the policy's limits --------------------------------------------------------


def _red_rows(png: bytes, top: int, bottom: int) -> list[int]:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    width = image.width
    px = image.load()
    return [
        y for y in range(top, bottom) if sum(px[x, y] == (192, 57, 43) for x in range(width)) > 200
    ]


def test_chart_limits_come_from_the_policy(vdb, archive, checklist):
    from kgents_pipeline.verdict.report import trend_chart_png

    history(vdb, archive, [{"errors": 4}] * 4)  # p95 ~ 23 ms, error rate 0.2 %
    default = judge(vdb, checklist)
    strict = VerdictPolicy(p95_limit_ms=25.0, error_rate_limit=0.003)
    v = evaluate(
        read_snapshot(open_history(vdb), checklist=checklist, policy=strict, now=NOW), strict, NOW
    )
    assert v.policy is strict
    # The default limits (500 ms, 1 %) are off scale: no dashed line; the strict ones are drawn.
    assert _red_rows(trend_chart_png(default.trend, default.policy), 0, 150) == []
    assert _red_rows(trend_chart_png(default.trend, default.policy), 150, 300) == []
    assert len(_red_rows(trend_chart_png(v.trend, v.policy), 0, 150)) == 1
    assert len(_red_rows(trend_chart_png(v.trend, v.policy), 150, 300)) == 1


# 7. Unwritable report, unparseable checklist: one line, exit 2 --------------------------------


def test_unwritable_report_is_one_line_naming_the_file(vdb, archive, checklist, tmp_path):
    recent_history(vdb, archive)
    one_line_error(
        cli("report", "--out", "/proc/x.html", "--db", vdb, "--checklist", checklist),
        "error: cannot write the report to /proc/x.html: No such file or directory",
    )
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(
        cli("report", "--out", blocker / "r.html", "--db", vdb, "--checklist", checklist),
        f"cannot write the report to {blocker / 'r.html'}",
    )


def test_invalid_checklist_yaml_is_one_line_with_its_position(vdb, archive, tmp_path):
    recent_history(vdb, archive)
    bad = tmp_path / "bad.yaml"
    bad.write_text("items:\n  - id: x\n    priority: [HIGH\n")
    r = cli("verdict", "--db", vdb, "--checklist", bad)
    one_line_error(r, f"error: checklist {bad}: invalid YAML at line 4, column 1:")


# 8. Operator controls refuse a history that does not exist ------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["history", "pin-baseline", "--clear"],
        ["history", "pin-baseline", "run-000"],
        ["history", "invalidate", "run-000", "--reason", "x"],
    ],
)
def test_controls_refuse_a_missing_history(args, tmp_path):
    missing = tmp_path / "missing.duckdb"
    one_line_error(cli(*args, "--db", missing), f"no metrics history at {missing}")
    assert not missing.exists()


def test_waiver_refuses_a_missing_history(tmp_path):
    missing = tmp_path / "missing.duckdb"
    one_line_error(
        cli("verdict", "--db", missing, "waive", "quantity", "--until", "2099-01-01",
            "--reason", "x"),
        f"no metrics history at {missing}",
    )  # fmt: skip
    with pytest.raises(HistoryError, match="no metrics history"):
        controls.record_verdict(
            open_history(missing), Verdict(State.READY, False, (), "", T0, (), None)
        )
    assert not missing.exists()


# 9. KGENTS_DB_PATH reaches every --db -----------------------------------------------------------


def test_db_path_comes_from_the_environment(vdb, archive, checklist, tmp_path):
    for args in (
        ["verdict"],
        ["verdict", "waive"],
        ["report"],
        ["history", "invalidate"],
        ["history", "pin-baseline"],
    ):
        assert "KGENTS_DB_PATH" in cli(*args, "--help").output, args
    missing = tmp_path / "missing.duckdb"
    env = {"KGENTS_DB_PATH": str(missing)}
    one_line_error(cli("verdict", env=env), f"no metrics history at {missing}")
    one_line_error(cli("history", "pin-baseline", "--clear", env=env), f"at {missing}")
    one_line_error(cli("history", "invalidate", "r", "--reason", "x", env=env), f"at {missing}")
    one_line_error(
        cli("report", "--out", tmp_path / "r.html", env=env), f"no metrics history at {missing}"
    )
    one_line_error(
        cli("verdict", "waive", "quantity", "--until", "2099-01-01", "--reason", "x", env=env),
        f"no metrics history at {missing}",
    )
    assert not missing.exists()

    recent_history(vdb, archive)
    env = {"KGENTS_DB_PATH": str(vdb)}
    r = cli("verdict", "--format", "json", "--checklist", checklist, env=env)
    assert r.exit_code == 0 and json.loads(r.output)["state"] == "READY"
    # An explicit `verdict --db` wins over the variable for `waive` too.
    r = cli(
        "verdict", "--db", vdb, "waive", "quantity", "--until", "2099-01-01", "--reason", "x",
        env={"KGENTS_DB_PATH": str(missing)},
    )  # fmt: skip
    assert r.exit_code == 0 and "waiver #1" in r.output


# 10. One ISO-8601 parser -------------------------------------------------------------------------


def test_one_iso8601_parser_for_now_until_and_sign_offs():
    from kgents_pipeline.verdict.inputs import parse_instant

    utc = dt.UTC
    assert parse_instant("2026-12-01", "x") == dt.datetime(2026, 12, 1, tzinfo=utc)
    assert parse_instant("2026-12-01", "x", date_is_end_of_day=True) == dt.datetime(
        2026, 12, 2, tzinfo=utc
    )
    assert parse_instant("2026-12-01T10:00", "x") == dt.datetime(2026, 12, 1, 10, tzinfo=utc)
    assert parse_instant("2026-12-01T10:00Z", "x") == dt.datetime(2026, 12, 1, 10, tzinfo=utc)
    assert parse_instant("2026-12-01T12:00+02:00", "x") == dt.datetime(2026, 12, 1, 10, tzinfo=utc)
    assert parse_instant(dt.date(2026, 12, 1), "x") == dt.datetime(2026, 12, 1, tzinfo=utc)
    assert parse_now("2026-12-01T10:00Z") == parse_instant("2026-12-01T10:00", "x")
    assert parse_now("") is None
    before = dt.datetime(2026, 1, 1, tzinfo=utc)
    assert controls.parse_until("2026-12-01", before) == dt.datetime(2026, 12, 2, tzinfo=utc)
    assert controls.parse_until("2026-12-01T10:00Z", before) == dt.datetime(
        2026, 12, 1, 10, tzinfo=utc
    )
    for bad, what in (("yesterday", "--now"), ("2026-13-01", "--until")):
        with pytest.raises(VerdictError, match=f"^{what} must be an ISO-8601 date"):
            parse_instant(bad, what)
