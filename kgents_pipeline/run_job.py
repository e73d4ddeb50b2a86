"""`kgents-pipeline run`: the launch-readiness job, in this process, on the Dagster instance of
`DAGSTER_HOME` (so the run shows in the UI), then a one-screen summary of what it produced."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

JOB_NAME = "launch_readiness_job"


def run_launch_readiness_job(echo: Callable[[str], None] = print) -> bool:
    """Execute the job; print where results are and the latest run's summary.

    True when the run succeeded and no ERROR-severity check failed (a WARN check, such as the
    verdict not being READY on rehearsal evidence, does not fail `make run`)."""
    import dagster as dg

    from kgents_pipeline.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def(JOB_NAME)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    if instance is None:
        echo("DAGSTER_HOME unset: using an ephemeral Dagster instance (the UI will not show it)")
        instance = dg.DagsterInstance.ephemeral()
    with instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
        history = definitions.resources["history"]
        db_path = (
            str(history.db_path)
            if not isinstance(history.db_path, dg.EnvVar)
            else (history.db_path.get_value())
        )
        echo("")
        echo(f"Dagster run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}")
        failed_errors = 0
        for check in result.get_asset_check_evaluations():
            mark = "ok  " if check.passed else check.severity.value
            failed_errors += not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
            echo(f"  {mark:5} check {check.asset_key.to_user_string()}.{check.check_name}")
        for event in result.get_step_failure_events():
            echo(f"  FAIL step {event.step_key}: {event.event_specific_data.error.message.strip()}")
        _print_latest(db_path, echo)
        return result.success and not failed_errors


def _print_latest(db_path: str, echo: Callable[[str], None]) -> None:
    from kgents_pipeline.errors import KgentsError
    from kgents_pipeline.history.db import connect
    from kgents_pipeline.history.ingest import ingest_run_dir

    try:
        with connect(db_path, read_only=True) as con:
            row = con.execute(
                "SELECT run_dir FROM runs ORDER BY started_at DESC LIMIT 1"
            ).fetchone()
    except KgentsError as exc:
        echo(f"no history yet: {exc}")
        return
    if row is None:
        echo(f"no load-test run in {db_path} yet")
        return
    from kgents_pipeline.history.summary import run_summary

    # Re-ingesting an ingested run is a no-op that hands back its parsed record.
    echo("")
    echo(run_summary(ingest_run_dir(db_path, row[0]), db_path=db_path))
    with connect(db_path, read_only=True) as con:
        verdict = con.execute("SELECT state, rehearsal, reasons FROM latest_verdict").fetchone()
    if verdict is not None:
        state, rehearsal, reasons = verdict
        failing = [r["rule"] for r in json.loads(reasons) if not r["passed"]]
        label = " (rehearsal: demo target or offline cluster)" if rehearsal else ""
        echo(f"  verdict  {state}{label}")
        if failing:
            echo(f"           not passed: {', '.join(failing)}  (kgents-pipeline verdict)")
