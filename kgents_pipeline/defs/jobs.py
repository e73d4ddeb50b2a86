"""The launch-readiness job and its nightly schedule (stopped until someone turns it on)."""

import dagster as dg

# In-process: one Python process for the whole graph (a step per process costs ~2 s each on
# this 2-core machine, and DuckDB allows one writer process per file anyway).
launch_readiness_job = dg.define_asset_job(
    "launch_readiness_job",
    # The capacity search is its own job (defs/capacity.py): it overloads the target on purpose.
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("capacity_search"),
    executor_def=dg.in_process_executor,
    description="Render, apply and verify the manifests; load-test /health/saas; ingest the "
    "results into the DuckDB history; derive the launch-readiness verdict.",
)

nightly_launch_readiness = dg.ScheduleDefinition(
    name="nightly_launch_readiness",
    job=launch_readiness_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every night at 02:00 UTC: launch_readiness_job, so the verdict is at most a day "
    "old (launch_readiness turns stale after 24 h). Stopped until someone turns it on.",
)
