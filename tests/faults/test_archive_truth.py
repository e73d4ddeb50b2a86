"""Item 1 (and 8): the archive is the source of truth. A run archived but not ingested keeps the
verdict from READY and is named until it is ingested: when the history is locked by another
process, when the load test is killed (its k6 dies with it, its k6.log keeps what k6 printed),
and on the Dagster path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from kgents_pipeline import settings
from tests.faults.conftest import (
    BIN,
    assert_not_ready,
    assert_nothing_lost,
    blocking,
    lock_holder,
    one_line,
    processes_with,
    wait_for,
)

pytestmark = pytest.mark.k6


def new_runs(site, before: dict[str, str]) -> list[Path]:
    seen = {Path(p).parts[0] for p in before}
    return sorted(p for p in site.archive.iterdir() if p.name not in seen)


def test_a_run_that_cannot_be_ingested_for_a_lock_blocks_ready_until_it_is(site, free_port):
    assert site.verdict()[0] == 0  # READY before the fault
    before = site.inventory()
    with lock_holder(site.db) as holder:
        proc = site.cli(
            "loadtest", "run", "--target", f"http://127.0.0.1:{free_port}", "--skip-preflight",
            "--rate", "20", "--duration", "1s", "--db", site.db, "--archive", site.archive,
            "--lock-wait", "1",
        )  # fmt: skip
        line = one_line(proc, 2, "is archived in", "not in the history", f"PID {holder.pid}")
    [run_dir] = new_runs(site, before.files)
    assert f"kgents-pipeline history ingest {run_dir} --db {site.db}" in line
    assert json.loads((run_dir / "run.json").read_text())["exit_code"] == 99

    # The lock is gone; the history still lacks the run: never READY, and the run is named.
    code, doc = assert_not_ready(site)
    assert code == 1 and doc["state"] == "INSUFFICIENT_DATA"
    archive = next(r for r in doc["reasons"] if r["rule"] == "archive")
    assert not archive["passed"] and run_dir.name in archive["run_ids"]
    assert "not in the history" in archive["message"] and str(run_dir) in archive["message"]
    assert_nothing_lost(before, site.inventory())

    # The one command the error named ingests it; the verdict then judges the failed run.
    ingest = site.cli(*line.split("with: ", 1)[1].split()[1:])
    assert ingest.returncode == 0, ingest.stderr
    code, doc = assert_not_ready(site)
    assert doc["reasons"][[r["rule"] for r in doc["reasons"]].index("archive")]["passed"]
    assert doc["state"] == "NOT_READY" and "slo.error_rate" in blocking(doc)
    assert_nothing_lost(before, site.inventory())


def test_a_killed_load_test_loses_nothing_k6_printed_takes_k6_with_it_and_is_not_evidence(
    site,
):
    from kgents_pipeline.loadtest.target import DemoTarget

    before = site.inventory()
    with DemoTarget() as demo:
        proc = subprocess.Popen(
            [
                str(BIN),
                "loadtest",
                "run",
                "--target",
                demo.url,
                "--skip-preflight",
                "--rate",
                "20",
                "--duration",
                "30s",
                "--db",
                str(site.db),
                "--archive",
                str(site.archive),
            ],
            cwd=site.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait_for(lambda: processes_with(str(site.archive) + "/"), 20), "no k6"
            time.sleep(3)
            # While it runs, its directory is locked: an ingest refuses it, never finalises it.
            [running] = new_runs(site, before.files)
            refused = site.invoke("history", "ingest", running, "--db", site.db)
            one_line(refused, 2, "still running")
            os.kill(proc.pid, signal.SIGKILL)  # the load test, not k6
            proc.wait()
            # k6 dies with its parent (a parent-death signal), not seconds later.
            assert wait_for(lambda: not processes_with(str(site.archive) + "/"), 1.0), "k6 lived"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    [run_dir] = new_runs(site, before.files)
    log = (run_dir / "k6.log").read_text()
    assert "running" in log and "execution: local" in log  # what k6 printed before the kill
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["exit_code"] is None and meta["finished_at"] is None

    code, doc = assert_not_ready(site)
    assert (
        code == 1
        and run_dir.name in next(r for r in doc["reasons"] if r["rule"] == "archive")["run_ids"]
    )
    assert_nothing_lost(before, site.inventory())

    # The next ingest finalises it as not evidence, with the reason.
    ingest = site.cli("history", "ingest", run_dir, "--db", site.db)
    assert ingest.returncode == 0 and "INVALID" in ingest.stdout
    assert "killed before k6 finished" in ingest.stdout
    _, doc = assert_not_ready(site)
    assert doc["state"] == "INVALID_RUN"
    assert "killed before k6 finished" in blocking(doc)["validity"]
    # So does a rebuild (the history file deleted first: the archive brings every run back).
    site.db.unlink()
    rebuild = site.cli("history", "rebuild", "--db", site.db, "--archive", site.archive)
    assert rebuild.returncode == 0, rebuild.stderr
    _code, doc = assert_not_ready(site)
    assert doc["state"] == "INVALID_RUN"
    after = site.inventory()
    assert before.run_ids < after.run_ids and run_dir.name in after.run_ids
    assert_nothing_lost(before, after)


def test_the_dagster_path_has_the_same_guarantee(site, free_port, monkeypatch):
    from kgents_pipeline.defs.loadtest import load_test_run, metrics_history
    from kgents_pipeline.defs.resources import HistoryResource, LoadTestResource
    from kgents_pipeline.defs.verdict import launch_readiness

    monkeypatch.setattr(settings, "INGEST_LOCK_WAIT_S", 1.0)
    before = site.inventory()
    history = HistoryResource(db_path=str(site.db), archive_dir=str(site.archive))
    resources = {
        "history": history,
        "loadtest": LoadTestResource(
            target_url=f"http://127.0.0.1:{free_port}", rate=20, duration="1s"
        ),
    }
    with dg.DagsterInstance.ephemeral() as instance, lock_holder(site.db):
        result = dg.materialize(
            [load_test_run, metrics_history],
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    [failure] = result.get_step_failure_events()
    message = failure.event_specific_data.error.message
    [run_dir] = new_runs(site, before.files)
    assert failure.step_key == "metrics_history"
    assert "is archived in" in message and f"history ingest {run_dir}" in message

    config = {"checklist": str(site.checklist)}
    result = dg.materialize(
        [launch_readiness],
        resources={"history": history},
        run_config={"ops": {"launch_readiness": {"config": config}}},
    )
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["state"].value == "INSUFFICIENT_DATA" and "archive" in meta["failing_rules"].value
    assert_not_ready(site)
    assert_nothing_lost(before, site.inventory())
