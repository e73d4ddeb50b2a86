"""Load-test assets: health preflight -> k6 run -> metrics history (with its per-run checks)."""

from typing import Any

import dagster as dg

from kgents_pipeline.dagster_support import OWNERS, failure, figure, table_metadata
from kgents_pipeline.defs.resources import HistoryResource, LoadTestResource
from kgents_pipeline.errors import KgentsError
from kgents_pipeline.verdict.rules.slo import run_check_rules


@dg.asset(group_name="load", kinds={"http"}, owners=OWNERS)
def health_preflight(
    context: dg.AssetExecutionContext, loadtest: LoadTestResource
) -> dg.MaterializeResult:
    """GET /health/saas before any load is sent; the demo target is started and probed when
    no KGENTS_TARGET_URL is set."""
    from kgents_pipeline.loadtest.preflight import check_health
    from kgents_pipeline.loadtest.target import DemoTarget

    try:
        if loadtest.target_url:
            report = check_health(loadtest.target_url, auth_header=loadtest.auth_header or None)
        else:
            # The load test starts its own demo target with these settings: probe the same.
            with DemoTarget(
                latency_ms=loadtest.demo_latency_ms, error_rate=loadtest.demo_error_rate
            ) as demo:
                report = check_health(demo.url)
    except KgentsError as exc:
        raise failure(exc) from exc
    kind = "demo" if report.demo or not loadtest.target_url else "remote"
    if report.demo and loadtest.target_url:
        context.log.warning(f"{report.url} is the bundled demo target: this run is a rehearsal")
    context.log.info(f"{report.url}: {report.status} in {report.latency_ms:.0f} ms")
    return dg.MaterializeResult(
        metadata={
            "target_kind": kind,
            "url": dg.MetadataValue.url(report.url) if kind == "remote" else report.url,
            "status": report.status,
            "latency_ms": float(report.latency_ms),
            "components": dg.MetadataValue.json(report.components),
        }
    )


@dg.asset(deps=[health_preflight], group_name="load", kinds={"k6"}, pool="k6", owners=OWNERS)
def load_test_run(
    context: dg.AssetExecutionContext, loadtest: LoadTestResource, history: HistoryResource
) -> dg.MaterializeResult:
    """The real k6 load test (constant arrival rate), archived under data/k6/<run_id>/ with
    k6's whole console output (k6.log); the step's log gets k6's options, warnings and errors,
    and its progress once every 10 s."""
    from kgents_pipeline.loadtest.progress import K6Progress
    from kgents_pipeline.loadtest.session import run_plan

    try:
        result = run_plan(loadtest.plan(history.archive_dir), log=K6Progress(context.log.info))
    except KgentsError as exc:
        raise failure(exc) from exc
    if not result.completed:
        context.log.error(f"k6 run {result.run_id}: {result.message}")
    return dg.MaterializeResult(
        metadata={
            "run_id": result.run_id,
            "run_dir": dg.MetadataValue.path(str(result.run_dir.resolve())),
            "exit_code": result.exit_code,
            "outcome": str(result.outcome),
            "message": result.message,
            "target_kind": loadtest.plan(history.archive_dir).target_kind,
        }
    )


def _latest_run_id(context: dg.AssetExecutionContext) -> str:
    event = context.instance.get_latest_materialization_event(dg.AssetKey("load_test_run"))
    entry = event.asset_materialization.metadata.get("run_id") if event else None
    if entry is None:
        raise dg.Failure(description="no load_test_run materialization to ingest: run it first")
    return str(entry.value)


@dg.asset(
    deps=[load_test_run],
    group_name="load",
    kinds={"duckdb"},
    pool="duckdb",
    owners=OWNERS,
    # The verdict's per-run SLO rules, one check per group of rules (`Rule.run_check`). ERROR
    # severity, deliberately not blocking: a failing SLO is exactly when `baseline` and
    # `launch_readiness` must run, so the stored verdict turns NOT_READY instead of staying stale.
    check_specs=[
        dg.AssetCheckSpec(
            name, asset="metrics_history", description="; ".join(r.demands for r in rules)
        )
        for name, rules in run_check_rules().items()
    ],
)
def metrics_history(
    context: dg.AssetExecutionContext, history: HistoryResource
) -> dg.MaterializeResult:
    """The DuckDB metrics history (table `runs`, one row per k6 run, with its raw points in
    `run_points`): ingests the latest archived run, idempotently. Its checks judge that run with
    the verdict's own SLO rules: p95, error rate, sustained rate (ERROR, not blocking)."""
    from pathlib import Path

    from kgents_pipeline.errors import HistoryError
    from kgents_pipeline.history.ingest import ingest_run_dir
    from kgents_pipeline.history.tables import describe_table
    from kgents_pipeline.history.trends import format_table, trend
    from kgents_pipeline.history.windows import read_windows
    from kgents_pipeline.settings import INGEST_LOCK_WAIT_S
    from kgents_pipeline.verdict.rules.slo import run_checks
    from kgents_pipeline.verdict.run_summary import run_summary

    run_id = _latest_run_id(context)
    store = history.store()
    run_dir = Path(history.archive_dir) / run_id
    try:
        try:
            ingested = ingest_run_dir(store, run_dir, lock_wait_s=INGEST_LOCK_WAIT_S)
        except HistoryError as exc:
            # The run stays archived; the verdict's `archive` rule holds it against READY.
            raise HistoryError(
                f"run {run_id} is archived in {run_dir} but not in the history ({exc}); "
                f"ingest it with: kgents-pipeline history ingest {run_dir} --db {store}"
            ) from None
        with store.reader() as con:
            windows = read_windows(con, [run_id]).get(run_id, ())
            recent = trend(con, last=10)
            runs_table = describe_table(con, "runs")
            points_table = describe_table(con, "run_points")
    except KgentsError as exc:
        raise failure(exc) from exc
    r = ingested.record
    context.log.info("\n" + run_summary(ingested, windows, history=str(store)))

    metadata: dict[str, Any] = {
        "run_id": r.run_id,
        "action": ingested.action,
        "valid": ingested.valid,
        "target_kind": r.target_kind,
        # What the asset holds: the history's runs, one row each (its table is `runs`); the raw
        # k6 points are counted under their own names.
        **table_metadata(runs_table),
        "raw_points_this_run": ingested.points_rows,
        "raw_points_in_history": points_table.rows,
        "run_points_columns": dg.MetadataValue.table_schema(
            table_metadata(points_table)["dagster/column_schema"]
        ),
        "trend": dg.MetadataValue.md(
            "```\n"
            + format_table(recent, ("run_id", "p95_ms", "error_rate", "achieved_rps", "valid"))
            + "\n```"
        ),
    }
    for key in ("p95_ms", "p99_ms", "error_rate", "achieved_rps"):
        value = getattr(r, key)
        if value is not None:  # absent, not 0: a refused target has no latency at all
            metadata[key] = figure(value)
    if ingested.invalid_reasons:
        metadata["invalid_reasons"] = dg.MetadataValue.json(list(ingested.invalid_reasons))
    checks = [
        dg.AssetCheckResult(
            check_name=check.name,
            passed=check.passed,
            description=check.message,
            metadata={
                reason.rule: dg.MetadataValue.json(
                    {"observed": reason.observed, "limit": reason.limit}
                )
                for reason in check.reasons
            },
        )
        for check in run_checks(r, windows, ingested.invalid_reasons)
    ]
    return dg.MaterializeResult(metadata=metadata, check_results=checks)
