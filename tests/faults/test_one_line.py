"""Item 9: every bad input a user can give ends in one line on stderr and exit 2 (1 where the
answer is negative); no "internal error", no traceback, no usage screen."""

from __future__ import annotations

import duckdb
import pytest

from tests.conftest import REPO
from tests.faults.conftest import assert_nothing_lost, one_line


def test_the_listed_bad_inputs_are_one_line(site, tmp_path):
    before = site.inventory()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    latin = tmp_path / "intent.yaml"
    latin.write_bytes("workloads: []\n# caf\xe9\n".encode("latin-1"))
    cases = [
        (("trends", "--db", site.db, "--last", "99999999999999999999"), "--last"),
        (("verdict", "--db", site.db, "--now", "", "--checklist", site.checklist), "--now"),
        (("verdict", "--db", site.db, "--now", "99999-01-01"), "--now"),
        (("trends", "--db", tmp_path), "is a directory"),
        (("verdict", "--db", tmp_path), "is a directory"),
        (("history", "ingest", a_file, "--db", site.db), "a-file"),
        (("history", "ingest", "--db", site.db), "Missing argument"),
        (("policy", "check", "--manifests", REPO / "manifests", "--intent", latin), "not UTF-8"),
        (("loadtest", "run", "--rate", "0"), "--rate"),
        (("loadtest", "run", "--duration", "soon"), "duration"),
        (("history", "snapshot", "--out", tmp_path, "--db", site.db), "--out"),
        (("history", "snapshot", "--out", site.db, "--db", site.db), "the history itself"),
        (("report", "--out", tmp_path / "no" / "such" / "dir" / "r.html", "--db", site.db), ""),
        (("verdict", "--db", site.db, "--checklist", tmp_path), "is a directory"),
        (("verdict", "waive", "nope", "--until", "2099-01-01", "--reason", "x", "--db", site.db),
         "unknown rule"),
        (("history", "pin-baseline", "--db", site.db), "RUN_ID or --clear"),
        (("no-such-command",), "No such command"),
    ]  # fmt: skip
    for args, needle in cases:
        proc = site.invoke(*args)
        if args[0] == "report":  # a directory that does not exist is created, or refused
            assert proc.returncode in (0, 2) and "internal error" not in proc.stderr
            continue
        one_line(proc, 2, needle)
    # `--now ''` is not the present: nothing was evaluated, nothing recorded.
    con = duckdb.connect(str(site.db), read_only=True)
    assert con.execute("SELECT count(*) FROM readiness_verdicts").fetchone()[0] == 0
    con.close()
    assert_nothing_lost(before, site.inventory())


def test_a_waiver_until_the_last_day_there_is_is_not_an_internal_error(site):
    proc = site.cli(
        "verdict", "waive", "slo.p95", "--until", "9999-12-31", "--reason", "forever",
        "--db", site.db,
    )  # fmt: skip
    assert proc.returncode == 0 and "waived until 9999-12-31" in proc.stdout, proc.stderr
    code, doc, _ = site.verdict()
    assert code == 0 and doc["waivers"][0]["until"].startswith("9999-12-31T23:59:59")


@pytest.mark.parametrize("kind", ["points-dir", "run-dir-file"])
def test_damaged_run_files_the_issue_named_are_no_internal_error(site, kind):
    run = sorted(site.archive.iterdir())[-1]
    if kind == "points-dir":
        (run / "points.ndjson.gz").unlink()
        (run / "points.ndjson.gz").mkdir()
        proc = site.cli("history", "ingest", run, "--db", site.db)
        assert proc.returncode == 0 and "internal error" not in proc.stderr
        assert "replaced" in proc.stdout  # its files changed: the run is replaced, not duplicated
    else:
        proc = site.cli("history", "ingest", run / "run.json", "--db", site.db)
        one_line(proc, 2, "run.json")
