"""The capacity search asset: the arrival rate stepped up until a step fails, the knee recorded in
the history for the verdict's `capacity.headroom`. Run ad hoc (its own job); not part of the
nightly launch-readiness job, whose load test is the launch load."""

from typing import Any

import dagster as dg

from kgents_pipeline import settings
from kgents_pipeline.dagster_support import OWNERS, failure, figure, md_table
from kgents_pipeline.defs.resources import HistoryResource, LoadTestResource
from kgents_pipeline.errors import KgentsError


class CapacityResource(dg.ConfigurableResource):
    """How the capacity search steps (defaults sized for a 2-core machine) and, against the demo
    target, its capacity limit (workers x 1000 / service ms req/s; 0 workers: none)."""

    start_rps: int = int(settings.CAPACITY_START.default)
    factor: float = float(settings.CAPACITY_FACTOR.default)
    max_rps: int = int(settings.CAPACITY_MAX.default)
    step: str = settings.CAPACITY_STEP.default
    demo_workers: int = 0
    demo_service_ms: float = 0.0


@dg.asset(group_name="load", kinds={"k6", "duckdb"}, pool="k6", owners=OWNERS)
def capacity_search(
    context: dg.AssetExecutionContext,
    capacity: CapacityResource,
    loadtest: LoadTestResource,
    history: HistoryResource,
) -> dg.MaterializeResult:
    """Step the arrival rate up until a step fails p95, errors or drops; the knee (the highest
    rate that held) goes to the history (view capacity_knee)."""
    from kgents_pipeline.verdict.capacity import (
        CapacityPlan,
        capacity_summary,
        run_capacity_search,
    )
    from kgents_pipeline.verdict.model import VerdictPolicy

    policy = VerdictPolicy()
    try:
        plan = CapacityPlan(
            start_rps=capacity.start_rps,
            factor=capacity.factor,
            max_rps=capacity.max_rps,
            step=capacity.step,
            target_url=loadtest.target_url or None,
            auth_header=loadtest.auth_header or None,
            demo_workers=capacity.demo_workers,
            demo_service_ms=capacity.demo_service_ms,
            demo_latency_ms=loadtest.demo_latency_ms,
            archive_root=history.archive_dir,
            policy=policy,
        )
        result = run_capacity_search(plan, history.store(), log=context.log.info)
    except KgentsError as exc:
        raise failure(exc) from exc
    s = result.search
    context.log.info("\n" + capacity_summary(result, policy))
    metadata: dict[str, Any] = {
        "search_id": s.search_id,
        "target_kind": s.target_kind,
        "valid": s.valid,
        "reached_max": s.reached_max,
        "steps": md_table(
            [
                (
                    f"{r.rate:.0f}",
                    f"{r.achieved_rps or 0:.1f}",
                    r.p95_ms,
                    "held" if r.held else "FAILED",
                    r.why,
                )
                for r in result.steps
            ],
            ("req/s", "achieved", "p95 ms", "", "why"),
        ),
        "headroom_needs_rps": figure(policy.headroom_factor * policy.launch_rate_rps),
    }
    if s.knee_rps is not None:
        metadata["knee_rps"] = figure(s.knee_rps)
    if s.first_failed_rps is not None:
        metadata["first_failed_rps"] = figure(s.first_failed_rps)
    return dg.MaterializeResult(metadata=metadata)


capacity_job = dg.define_asset_job(
    "capacity_job",
    selection=dg.AssetSelection.assets(capacity_search),
    executor_def=dg.in_process_executor,
    description="Find the knee: the arrival rate stepped up until a step fails.",
)


@dg.definitions
def defs() -> dg.Definitions:
    # A module with a `@dg.definitions` function contributes what it returns, and only that.
    return dg.Definitions(
        assets=[capacity_search],
        jobs=[capacity_job],
        resources={
            "capacity": CapacityResource(
                start_rps=settings.CAPACITY_START.integer(),
                factor=settings.CAPACITY_FACTOR.number(),
                max_rps=settings.CAPACITY_MAX.integer(),
                step=settings.CAPACITY_STEP.raw(),
                demo_workers=settings.DEMO_WORKERS.integer(),
                demo_service_ms=settings.DEMO_SERVICE_MS.number(),
            )
        },
    )
