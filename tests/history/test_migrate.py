"""`history migrate --from FILE --to ducklake:...`: a local history moves into the shared one
whole (operator records included), once; the verdict over the copy is the verdict over the file."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner

from kgents_pipeline.cli import main
from kgents_pipeline.history.store import open_history
from kgents_pipeline.history.transfer import copy_history
from kgents_pipeline.verdict import usecase
from tests.verdict.synth import T0, history, signed_checklist, verification

NOW = T0 + dt.timedelta(hours=6)


def _counts(location) -> dict[str, int]:
    """Rows in every table of the history (a table added later is counted too: a migrate that
    forgets it fails here)."""
    with open_history(location).reader() as con:
        tables = [
            t
            for (t,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
                " AND table_catalog = current_database() AND table_type = 'BASE TABLE'"
                " AND table_name <> 'schema_migrations' ORDER BY table_name"
            ).fetchall()
        ]
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def _local_history(tmp_path, name: str, start: dt.datetime = T0):
    db = tmp_path / f"{name}.duckdb"
    archive = tmp_path / f"k6-{name}"
    ids = history(db, archive, [{"run_id": f"{name}-{i}"} for i in range(4)], start=start)
    verification(db, T0 + dt.timedelta(hours=4))
    store = open_history(db)
    usecase.invalidate_run(store, ids[0], reason="noisy neighbour", by="ops", now=T0)
    usecase.pin_baseline(store, ids[1], reason="reference", by="ops", now=T0)
    usecase.add_waiver(
        store, "staleness", until="2099-01-01", reason=f"freeze ({name})", by="cto", now=T0
    )
    usecase.evaluate_history(store, checklist=str(signed_checklist(tmp_path / "c.yaml")))
    return db, archive


def test_migrate_copies_everything_once_and_the_verdict_is_the_same(tmp_path, ducklake_history):
    db, archive = _local_history(tmp_path, "laptop")
    runner = CliRunner()
    first = runner.invoke(main, ["history", "migrate", "--from", str(db), "--to", ducklake_history])
    assert first.exit_code == 0, first.output
    assert "runs" in first.output and "run_points" in first.output
    counts = _counts(db)
    assert counts == _counts(ducklake_history)
    assert {"run_runners", "capacity_searches", "capacity_steps", "notifications"} <= set(counts)
    assert counts["capacity_steps"] > 0 and counts["runs"] == 4, counts

    again = runner.invoke(main, ["history", "migrate", "--from", str(db), "--to", ducklake_history])
    assert again.exit_code == 0 and "nothing copied" in again.output
    assert _counts(ducklake_history) == _counts(db)  # running it twice changes nothing

    checklist = str(tmp_path / "c.yaml")
    local, _ = usecase.evaluate_history(
        open_history(db), now=NOW, checklist=checklist, archive=archive
    )
    shared, _ = usecase.evaluate_history(
        open_history(ducklake_history), now=NOW, checklist=checklist, archive=archive
    )
    assert (shared.state, shared.inputs_sha256) == (local.state, local.inputs_sha256)
    assert [w["rule"] for w in shared.waivers] == ["staleness"]


def test_a_second_machine_history_joins_without_losing_a_record(tmp_path, ducklake_history):
    first, _ = _local_history(tmp_path, "ci")
    second, _ = _local_history(tmp_path, "laptop", start=T0 + dt.timedelta(hours=10))
    copy_history(open_history(first), open_history(ducklake_history))
    report = copy_history(open_history(second), open_history(ducklake_history))
    # Its runs are other runs; its pin, waiver and verdict are its own records, numbered 1 as
    # the first machine's are: they get new ids, and nothing is lost.
    assert report.copied["runs"] == 4 and report.replaced_runs == 0
    counts = _counts(ducklake_history)
    assert counts["runs"] == 8 and counts["run_invalidations"] == 2
    assert counts["baseline_pins"] == 2 and counts["waivers"] == 2
    assert counts["readiness_verdicts"] == 2 and report.renumbered == 3, (counts, report)
    with open_history(ducklake_history).reader() as con:
        ids = [r for (r,) in con.execute("SELECT pin_id FROM baseline_pins").fetchall()]
    assert len(set(ids)) == 2
