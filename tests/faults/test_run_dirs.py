"""Item 2: ingest and rebuild survive any run directory. Wrong types, numbers out of range, a
directory where a file belongs, bytes that are not UTF-8: the run enters the history as an
invalid run with its reasons, or that one directory is refused in one line; a rebuild goes on,
reports every refusal, exits 1 and keeps the rows it had."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.faults.conftest import assert_not_ready, assert_nothing_lost, one_line


def _summary(run: Path, change) -> None:
    doc = json.loads((run / "summary.json").read_text())
    change(doc)
    (run / "summary.json").write_text(json.dumps(doc))


def _run_json(run: Path, **fields) -> None:
    meta = json.loads((run / "run.json").read_text())
    meta.update(fields)
    (run / "run.json").write_text(json.dumps(meta))


def _replace(path: Path, content: bytes | None) -> None:
    """`path` becomes a file of `content`, or a directory when `content` is None."""
    path.unlink()
    if content is None:
        path.mkdir()
        (path / "x").write_text("x")
    else:
        path.write_bytes(content)


# (name, damage, expected reason or refusal): each becomes an invalid run with this reason...
INVALID = {
    "metric-block-a-string": (
        lambda r: _summary(r, lambda d: d["metrics"].update(http_reqs="fast")),
        "metric 'http_reqs' is a str, not an object",
    ),
    "values-a-string": (
        lambda r: _summary(r, lambda d: d["metrics"]["errors"].update(values="none")),
        "metric 'errors' values is a str",
    ),
    "thresholds-a-list": (
        lambda r: _summary(r, lambda d: d["metrics"]["errors"].update(thresholds=[1])),
        "metric 'errors' thresholds is a list",
    ),
    "count-10**400": (
        lambda r: (r / "summary.json").write_text(
            (r / "summary.json").read_text().replace('"count": 2000', '"count": 1' + "0" * 400, 1)
        ),
        "http_reqs count = 1000",
    ),
    "count-2**70": (
        lambda r: _summary(r, lambda d: d["metrics"]["http_reqs"]["values"].update(count=2**70)),
        "http_reqs count = 1180591620717411303424 is not a count",
    ),
    "negative-count": (
        lambda r: _summary(r, lambda d: d["metrics"]["iterations"]["values"].update(count=-5)),
        "iterations count = -5",
    ),
    "duration-a-string": (
        lambda r: _summary(r, lambda d: d["state"].update(testRunDurationMs="long")),
        "testRunDurationMs = 'long'",
    ),
    "summary-a-directory": (
        lambda r: _replace(r / "summary.json", None),
        "summary.json is a directory",
    ),
    "summary-not-utf8": (lambda r: _replace(r / "summary.json", b"\xff\xfe\x00{"), "summary.json"),
    "summary-nested-deep": (
        lambda r: _replace(r / "summary.json", b"[" * 100_000 + b"]" * 100_000),
        "summary.json",
    ),
    "summary-a-number": (lambda r: _replace(r / "summary.json", b"42"), "no `metrics` object"),
}
# ... or the run enters with a note on its points ...
POINTS = {
    "points-a-directory": (
        lambda r: _replace(r / "points.ndjson.gz", None),
        "points.ndjson.gz is not a regular file",
    ),
    "points-garbage": (
        lambda r: _replace(r / "points.ndjson.gz", b"\x1f\x8b not really gzip" * 100),
        "points.ndjson.gz",
    ),
}
# ... or the directory is refused in one line naming it.
REFUSED = {
    "run-json-a-directory": (
        lambda r: _replace(r / "run.json", None),
        "run.json: is a directory",
    ),
    "run-json-not-utf8": (lambda r: _replace(r / "run.json", b"\xff\xfe\xfa"), "run.json"),
    "run-json-huge": (
        lambda r: _replace(r / "run.json", b'{"pad": "' + b"x" * (2 << 20) + b'"}'),
        "larger than 1 MiB",
    ),
    "exit-code-a-string": (
        lambda r: _run_json(r, exit_code="0"),
        "exit_code must be an integer or null",
    ),
    "exit-code-10**30": (
        lambda r: _run_json(r, exit_code=10**30),
        "exit_code must be an integer or null",
    ),
    "rate-1e400": (
        lambda r: (r / "run.json").write_text(
            (r / "run.json").read_text().replace('"rate": 100', '"rate": 1e400')
        ),
        "rate must be a number",
    ),
    "k6-version-a-list": (lambda r: _run_json(r, k6_version=[1]), "k6_version must be a string"),
    "started-at-a-number": (lambda r: _run_json(r, started_at=7), "started_at: expected"),
    "run-id-of-another": (lambda r: _run_json(r, run_id="other"), "does not match its directory"),
}


@pytest.fixture
def bad_archive(site, tmp_path) -> dict[str, Path]:
    """Every damaged run directory, each a copy of the newest good run under its own id."""
    template = sorted(site.archive.iterdir())[-1]
    out = {}
    for name, (damage, _) in {**INVALID, **POINTS, **REFUSED}.items():
        run = site.archive / f"zz-{name}"
        shutil.copytree(template, run)
        _run_json(run, run_id=run.name)
        damage(run)
        out[name] = run
    return out


def test_ingest_of_any_run_directory_is_an_invalid_run_or_one_line(site, bad_archive):
    for name, run in bad_archive.items():
        proc = site.invoke("history", "ingest", run, "--db", site.db)
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, name
        if name in REFUSED:
            one_line(proc, 2, str(run), REFUSED[name][1])
        elif name in INVALID:
            assert proc.returncode == 0 and "INVALID" in proc.stdout, (name, proc.stderr)
            assert INVALID[name][1] in proc.stdout, (name, proc.stdout)
        else:
            assert proc.returncode == 0, (name, proc.stderr)
    _, doc = assert_not_ready(site)  # the refused runs are archived, not in the history
    missing = next(r for r in doc["reasons"] if r["rule"] == "archive")["run_ids"]
    assert {f"zz-{n}" for n in REFUSED} <= set(missing)


def test_rebuild_goes_on_past_every_bad_directory_and_keeps_its_rows(site, bad_archive):
    before = site.inventory()
    proc = site.cli("history", "rebuild", "--db", site.db, "--archive", site.archive)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "internal error" not in proc.stderr
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == len(REFUSED)
    for name in REFUSED:
        assert any(f"zz-{name}" in line for line in skipped), name
    after = site.inventory()
    assert_nothing_lost(before, after)
    assert {f"zz-{n}" for n in (*INVALID, *POINTS)} <= after.run_ids
    assert_not_ready(site)


def test_rebuild_into_a_deleted_history_brings_every_good_run_back(site, bad_archive):
    before = site.inventory()
    site.db.unlink()
    proc = site.cli("history", "rebuild", "--db", site.db, "--archive", site.archive)
    assert proc.returncode == 1 and "internal error" not in proc.stderr, proc.stderr
    after = site.inventory()
    assert before.run_ids <= after.run_ids
    assert all(after.rows[t] >= n for t, n in before.rows.items())
    assert_not_ready(site)  # the live verification was in the deleted file; refusals remain


def test_a_run_directory_that_is_a_file_or_nothing_is_one_line(site, tmp_path):
    file = tmp_path / "not-a-dir"
    file.write_text("x")
    one_line(site.cli("history", "ingest", file, "--db", site.db), 2, "not-a-dir")
    one_line(site.cli("history", "ingest", "--db", site.db), 2, "Missing argument")
    one_line(
        site.cli("history", "ingest", tmp_path / "absent", "--db", site.db), 2, "does not exist"
    )
