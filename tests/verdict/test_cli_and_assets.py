"""The `verdict`, `report`, `history invalidate|pin-baseline` commands (exit codes, one-line
errors) and the Dagster assets, over a synthetic remote history."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from kgents_pipeline.cli import main
from kgents_pipeline.history.db import connect
from kgents_pipeline.history.store import open_history
from tests.verdict.synth import history, verification

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def ready_db(vdb: Path, archive: Path) -> Path:
    start = NOW - dt.timedelta(hours=4)
    history(vdb, archive, [{}] * 4, start=start)
    verification(vdb, NOW - dt.timedelta(minutes=30))
    return vdb


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_verdict_json_ready_exits_0_and_is_recorded(ready_db, checklist):
    r = cli("verdict", "--db", ready_db, "--format", "json", "--checklist", checklist)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert {"state", "rehearsal", "reasons", "inputs_sha256", "evaluated_at", "waivers"} <= set(doc)
    assert doc["state"] == "READY" and doc["rehearsal"] is False
    assert {"rule", "passed", "message", "observed", "limit", "run_ids"} <= set(doc["reasons"][0])
    with connect(ready_db, read_only=True) as con:
        state, sha = con.execute("SELECT state, inputs_sha256 FROM latest_verdict").fetchone()
    assert (state, sha) == ("READY", doc["inputs_sha256"])


def test_verdict_not_ready_exits_1_and_waiver_is_listed(ready_db, checklist):
    r = cli("verdict", "--db", ready_db, "--checklist", "/nonexistent/x.yaml")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "not found" in r.output
    r = cli("verdict", "--db", ready_db)  # repository checklist: security review unsigned
    assert r.exit_code == 1 and "INSUFFICIENT_DATA" in r.output and "security-review" in r.output
    # The checklist cannot be waived: the HIGH security sign-off is only ever a person's.
    r = cli(
        "verdict", "--db", ready_db, "waive", "checklist",
        "--until", "2099-01-01", "--reason", "board approved", "--by", "cto",
    )  # fmt: skip
    assert r.exit_code == 2 and r.output.strip().count("\n") == 0
    assert "rule 'checklist' cannot be waived" in r.output and "sign-off" in r.output
    r = cli(
        "verdict", "--db", ready_db, "waive", "quantity",
        "--until", "2099-01-01", "--reason", "board approved", "--by", "cto",
    )  # fmt: skip
    assert r.exit_code == 0 and "waiver #1" in r.output
    r = cli("verdict", "--db", ready_db, "--format", "json")
    doc = json.loads(r.output)
    assert r.exit_code == 1 and doc["state"] == "INSUFFICIENT_DATA"
    checklist_reason = next(x for x in doc["reasons"] if x["rule"] == "checklist")
    assert "security-review (no sign-off)" in checklist_reason["message"]
    assert doc["waivers"][0]["by"] == "cto" and doc["waivers"][0]["applied"] is False


def test_bad_input_is_one_line_and_exit_2(ready_db, tmp_path):
    for args, needle in (
        (["verdict", "--db", ready_db, "--now", "yesterday"], "--now must be"),
        (["verdict", "--db", tmp_path / "none.duckdb"], "no metrics history"),
        (
            [
                "verdict",
                "--db",
                ready_db,
                "waive",
                "validity",
                "--until",
                "2099-01-01",
                "--reason",
                "x",
            ],
            "cannot be waived",
        ),
        (
            [
                "verdict",
                "--db",
                ready_db,
                "waive",
                "nope",
                "--until",
                "2099-01-01",
                "--reason",
                "x",
            ],
            "unknown rule",
        ),
        (["history", "invalidate", "missing-run", "--reason", "x", "--db", ready_db], "no run"),
        (["history", "pin-baseline", "--db", ready_db], "RUN_ID or --clear"),
    ):
        r = cli(*args)
        assert r.exit_code == 2, (args, r.output)
        assert (
            needle in r.output and r.output.strip().count("\n") == 0 and "Traceback" not in r.output
        )


def test_invalidate_and_pin_record_who_and_why(ready_db, checklist):
    r = cli(
        "history",
        "pin-baseline",
        "run-000",
        "--reason",
        "launch candidate",
        "--by",
        "alice",
        "--db",
        ready_db,
    )
    assert r.exit_code == 0, r.output
    r = cli(
        "history",
        "invalidate",
        "run-003",
        "--reason",
        "wrong build",
        "--by",
        "bob",
        "--db",
        ready_db,
    )
    assert r.exit_code == 0, r.output
    with connect(ready_db, read_only=True) as con:
        assert con.execute("SELECT run_id, pinned_by, reason FROM baseline_pins").fetchall() == [
            ("run-000", "alice", "launch candidate")
        ]
        assert con.execute("SELECT invalidated_by, reason FROM run_invalidations").fetchall() == [
            ("bob", "wrong build")
        ]
    r = cli("verdict", "--db", ready_db, "--format", "json", "--checklist", checklist)
    doc = json.loads(r.output)
    assert r.exit_code == 1 and doc["state"] == "INVALID_RUN"
    assert "invalidated by bob" in doc["reasons"][0]["message"]


def test_now_evaluates_as_of_that_time(ready_db, checklist):
    earlier = (NOW - dt.timedelta(hours=2, minutes=30)).isoformat()
    doc = json.loads(
        cli(
            "verdict",
            "--db",
            ready_db,
            "--format",
            "json",
            "--checklist",
            checklist,
            "--now",
            earlier,
        ).output
    )
    assert doc["state"] == "INSUFFICIENT_DATA" and doc["evaluated_at"].startswith(earlier[:16])
    quantity = next(r for r in doc["reasons"] if r["rule"] == "quantity")
    assert quantity["observed"] == 2  # two runs existed then


def test_report_is_a_self_contained_html_page(ready_db, checklist, tmp_path):
    out = tmp_path / "report.html"
    r = cli("report", "--out", out, "--db", ready_db, "--checklist", checklist)
    assert r.exit_code == 0 and "READY" in r.output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page)  # no external assets
    for rule in ("slo.p95", "regression.p95", "sustained", "checklist"):
        assert rule in page


def test_assets_materialize_the_verdict_and_warn_when_not_ready(ready_db, checklist, archive):
    from kgents_pipeline.defs.resources import HistoryResource
    from kgents_pipeline.defs.verdict import baseline, launch_readiness

    config = {"checklist": str(checklist)}
    result = dg.materialize(
        [baseline, launch_readiness],
        resources={"history": HistoryResource(db_path=str(ready_db), archive_dir=str(archive))},
        run_config={
            "ops": {"baseline": {"config": config}, "launch_readiness": {"config": config}}
        },
    )
    assert result.success
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    meta = mats["launch_readiness"].event_specific_data.materialization.metadata
    assert meta["state"].value == "READY" and isinstance(meta["p95_ms"].value, float)
    assert "data:image/png;base64," in meta["report"].value
    base = mats["baseline"].event_specific_data.materialization.metadata
    assert base["baseline_runs"].value == 3
    (check,) = result.get_asset_check_evaluations()
    assert check.passed

    # Not ready (unsigned security review): the check fails with WARN, the run still succeeds.
    result = dg.materialize(
        [launch_readiness],
        resources={"history": HistoryResource(db_path=str(ready_db), archive_dir=str(archive))},
    )
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity is dg.AssetCheckSeverity.WARN
    with connect(ready_db, read_only=True) as con:
        rows = con.execute(
            "SELECT source, state FROM readiness_verdicts ORDER BY verdict_id"
        ).fetchall()
    assert rows == [("dagster", "READY"), ("dagster", "INSUFFICIENT_DATA")]


def test_sensor_requests_a_verdict_when_history_changes(ready_db, archive):
    from kgents_pipeline.defs.resources import HistoryResource
    from kgents_pipeline.defs.verdict import launch_readiness_on_history_change as sensor

    resources = {"history": HistoryResource(db_path=str(ready_db))}
    first = sensor(dg.build_sensor_context(resources=resources))
    assert isinstance(first, dg.RunRequest)
    cursor = first.run_key.removeprefix("history-")
    assert isinstance(
        sensor(dg.build_sensor_context(cursor=cursor, resources=resources)), dg.SkipReason
    )
    from kgents_pipeline.verdict import usecase as controls

    controls.add_waiver(open_history(ready_db), "quantity", until="2099-01-01", reason="x", by="y")
    assert isinstance(
        sensor(dg.build_sensor_context(cursor=cursor, resources=resources)), dg.RunRequest
    )


def test_definitions_load_with_the_verdict_assets():
    from kgents_pipeline.definitions import defs

    d = defs() if callable(defs) else defs
    graph = d.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"baseline", "launch_readiness"} <= keys
    node = graph.get(dg.AssetKey("launch_readiness"))
    assert {k.to_user_string() for k in node.parent_keys} == {"baseline", "policy_verification"}
    assert node.group_name == "verdict"
