"""Ingest of archived runs into a real DuckDB file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kgents_pipeline.errors import HistoryError
from kgents_pipeline.history.db import connect
from kgents_pipeline.history.ingest import ingest_run_dir, ingest_run_dirs, rebuild
from kgents_pipeline.history.store import open_history
from kgents_pipeline.history.trends import trend
from kgents_pipeline.history.windows import read_windows
from tests.conftest import k6_run, plain_duckdb

BACKENDS = ("local", "ducklake")

COUNT_ALL = " + ".join(
    f"(SELECT count(*) FROM {t})"
    for t in ("runs", "run_metrics", "run_thresholds", "run_checks", "run_points")
)


def _rows(db):
    with connect(db, read_only=True) as con:
        return con.execute(f"SELECT {COUNT_ALL}").fetchone()[0]


def test_ingest_fills_every_table_with_measured_values(run_copy, db):
    result = ingest_run_dir(open_history(db), run_copy)
    assert result.action == "inserted" and result.valid, result.invalid_reasons
    with connect(db, read_only=True) as con:
        run = con.execute(
            "SELECT p95_ms, p99_ms, error_rate, achieved_rps, http_reqs, dropped_iterations "
            "FROM runs"
        ).fetchone()
        p95, p99, error_rate, rps, reqs, dropped = run
        assert 0 < p95 <= p99 < 500 and error_rate == 0.0
        assert 45 < rps < 55 and reqs >= 95 and dropped == 0
        # Long format: k6's own metric and stat names, submetrics included.
        assert con.execute(
            "SELECT value FROM run_metrics WHERE metric = "
            "'http_req_duration{expected_response:true}' AND stat = 'p(95)'"
        ).fetchone()[0] == pytest.approx(p95)
        thresholds = con.execute("SELECT metric, expression, ok FROM run_thresholds").fetchall()
        assert ("errors", "rate<0.01", True) in thresholds
        checks = dict(con.execute("SELECT name, fails FROM run_checks").fetchall())
        assert checks == {"status is 200": 0, "body reports healthy": 0}
        points = con.execute(
            "SELECT count(*) FROM run_points WHERE metric = 'http_req_duration' "
            "AND expected_response = 'true' AND status = '200'"
        ).fetchone()[0]
        assert points == reqs  # every request's raw point, with its late tags
        assert result.points_rows == con.execute("SELECT count(*) FROM run_points").fetchone()[0]


def test_ingesting_the_same_run_twice_changes_nothing(run_copy, db):
    first = ingest_run_dir(open_history(db), run_copy)
    before = _rows(db)
    second = ingest_run_dir(open_history(db), run_copy)
    assert (first.action, second.action) == ("inserted", "unchanged")
    assert _rows(db) == before


def test_a_changed_run_directory_is_replaced_whole_not_duplicated(run_copy, db):
    ingest_run_dir(open_history(db), run_copy)
    before = _rows(db)
    meta = json.loads((run_copy / "run.json").read_text())
    meta["exit_code"] = 105
    (run_copy / "run.json").write_text(json.dumps(meta))
    again = ingest_run_dir(open_history(db), run_copy)
    assert again.action == "replaced" and not again.valid
    assert _rows(db) == before
    assert open_history(db).read(trend)[0]["valid"] is False


def test_missing_summary_is_an_invalid_run_and_the_archive_is_kept(run_copy, db):
    (run_copy / "summary.json").unlink()
    result = ingest_run_dir(open_history(db), run_copy)
    assert not result.valid
    assert any("summary.json missing" in r for r in result.invalid_reasons)
    assert result.points_rows > 0  # the raw points still made it
    assert (run_copy / "run.json").exists() and (run_copy / "points.ndjson.gz").exists()
    row = open_history(db).read(trend)[0]
    assert row["valid"] is False and row["p95_ms"] is None


def test_truncated_summary_is_an_invalid_run_not_a_crash(run_copy, db):
    text = (run_copy / "summary.json").read_text()
    (run_copy / "summary.json").write_text(text[: len(text) // 2])
    result = ingest_run_dir(open_history(db), run_copy)
    assert not result.valid
    assert any("unparseable" in r for r in result.invalid_reasons)
    assert (run_copy / "summary.json").read_text() == text[: len(text) // 2]  # untouched


def test_truncated_points_are_salvaged_up_to_the_last_whole_line(run_copy, db):
    raw = (run_copy / "points.ndjson.gz").read_bytes()
    (run_copy / "points.ndjson.gz").write_bytes(raw[: len(raw) // 2])
    result = ingest_run_dir(open_history(db), run_copy)
    assert result.points_rows > 0
    assert "truncated" in result.points_error
    assert result.valid  # the summary is whole; points only feed the window checks


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "corrupt JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"run_id": "x"}', "missing fields"),
    ],
)
def test_corrupt_run_json_is_an_error_naming_the_file(run_copy, db, content, message):
    (run_copy / "run.json").write_text(content)
    with pytest.raises(HistoryError, match=message) as err:
        ingest_run_dir(open_history(db), run_copy)
    assert str(run_copy / "run.json") in str(err.value)
    assert (run_copy / "summary.json").exists()


def test_run_json_whose_id_is_not_its_directory_is_refused(run_copy, db):
    meta = json.loads((run_copy / "run.json").read_text())
    meta["run_id"] = "someone-else"
    (run_copy / "run.json").write_text(json.dumps(meta))
    with pytest.raises(HistoryError, match="does not match its directory"):
        ingest_run_dir(open_history(db), run_copy)


def test_refused_target_is_valid_evidence_of_failure_with_no_latency(tmp_path, db, free_port):
    result = k6_run(
        tmp_path,
        target_url=f"http://127.0.0.1:{free_port}",
        target_kind="remote",
        rate=20,
        duration="1s",
    )
    ingested = ingest_run_dir(open_history(db), result.run_dir)
    row = open_history(db).read(trend)[0]
    assert ingested.valid  # it ran as planned: a real measurement of a down target
    assert row["p95_ms"] is None and row["error_rate"] == 1.0
    assert ingested.record.p95_all_ms is not None  # k6's all-requests p95 would look "fast"


def test_killed_run_is_ingested_as_invalid(tmp_path, db):
    result = k6_run(tmp_path, rate=20, duration="30s", timeout_s=2)
    ingested = ingest_run_dir(open_history(db), result.run_dir)
    assert not ingested.valid
    assert any("exit code 105" in r for r in ingested.invalid_reasons)


def test_sustained_windows_come_from_raw_points(tmp_path, db):
    result = k6_run(tmp_path, rate=50, duration="2s")
    ingest_run_dir(open_history(db), result.run_dir)
    with connect(db, read_only=True) as con:
        [window] = read_windows(con, [result.run_id])[result.run_id]
    assert window.length_s == 2.0  # the planned duration, not the span of the points
    assert 40 < window.rps < 60
    assert window.p95_ms is not None and window.p95_ms < 500


def test_rebuild_reingests_the_archive_and_keeps_operator_records(run_copy, db, tmp_path):
    archive = run_copy.parent
    ingest_run_dir(open_history(db), run_copy)
    before = _rows(db)
    broken = archive / "20200101T000000Z-bad000"
    broken.mkdir()
    (broken / "run.json").write_text("{")
    with connect(db) as con:  # an operator record that is not derived from the archive
        con.execute("CREATE TABLE operator_notes (note VARCHAR)")
        con.execute("INSERT INTO operator_notes VALUES ('kept')")
    report = rebuild(open_history(db), archive)
    assert [r.run_id for r in report.results] == [run_copy.name]
    assert len(report.problems) == 1 and "corrupt JSON" in report.problems[0]
    assert _rows(db) == before
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT note FROM operator_notes").fetchall() == [("kept",)]


def test_rebuild_never_empties_the_history_when_a_run_fails_to_parse(run_copy, db, tmp_path):
    ingest_run_dir(open_history(db), run_copy)
    before = _rows(db)
    summary = json.loads((run_copy / "summary.json").read_text())
    summary["root_group"]["checks"][0]["passes"] = "lots"  # garbage k6 never writes
    (run_copy / "summary.json").write_text(json.dumps(summary))
    other = tmp_path / "elsewhere"
    shutil.copytree(run_copy, other / "20200202T000000Z-out000")
    meta = json.loads((run_copy / "run.json").read_text())
    meta["run_id"] = "20200202T000000Z-out000"
    (other / "20200202T000000Z-out000" / "run.json").write_text(json.dumps(meta))
    ingest_run_dir(
        open_history(db), other / "20200202T000000Z-out000"
    )  # a run from outside the archive

    report = rebuild(open_history(db), run_copy.parent)
    assert report.problems == ()  # a non-numeric count is tolerated, not a crash
    assert report.kept == ("20200202T000000Z-out000",)
    assert _rows(db) > before  # both runs still there


@pytest.mark.local_only
def test_rebuild_moves_an_unreadable_database_aside_and_starts_afresh(run_copy, db):
    db.write_bytes(b"this is not a duckdb file" * 100)
    report = rebuild(open_history(db), run_copy.parent)
    assert report.moved_aside is not None and Path(report.moved_aside).exists()
    assert Path(report.moved_aside).read_bytes().startswith(b"this is not a duckdb file")
    assert [row["run_id"] for row in open_history(db).read(trend)] == [run_copy.name]


def test_ingest_many_commits_runs_before_a_bad_one(run_copy, db, tmp_path):
    bad = tmp_path / "not-a-run"
    bad.mkdir()
    with pytest.raises(HistoryError, match="missing"):
        ingest_run_dirs(open_history(db), [run_copy, bad])
    assert [row["run_id"] for row in open_history(db).read(trend)] == [run_copy.name]


def test_two_runs_give_two_rows_in_baseline_trend(tmp_path, db, healthy_run):
    other = tmp_path / "k6"
    shutil.copytree(healthy_run.run_dir, other / healthy_run.run_id)
    second = k6_run(other, rate=50, duration="2s")
    ingest_run_dirs(open_history(db), [other / healthy_run.run_id, second.run_dir])
    con = plain_duckdb(db)  # plain SQL, as a user would
    rows = con.execute(
        "SELECT run_id, started_at, p95_ms, p99_ms, error_rate, achieved_rps, "
        "dropped_iterations, valid FROM baseline_trend"
    ).fetchall()
    con.close()
    assert len(rows) == 2
    assert all(r[2] > 0 and r[5] > 0 and r[7] for r in rows)
    assert rows[0][1] < rows[1][1]  # ordered by start time


def test_demo_target_reached_by_url_is_still_a_rehearsal(tmp_path, db):
    # Someone runs `target serve` and passes its URL as if it were the real service.
    result = k6_run(tmp_path, target_kind="remote", rate=20, duration="1s")
    claimed = json.loads((result.run_dir / "run.json").read_text())["target_kind"]
    ingested = ingest_run_dir(open_history(db), result.run_dir)
    assert claimed == "remote"
    assert ingested.record.target_kind == "demo" and ingested.record.demo_responses > 0
    assert open_history(db).read(trend)[0]["target_kind"] == "demo"
