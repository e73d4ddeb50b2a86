"""Verdict assets: `baseline` (the reference the latest run is compared with) and
`launch_readiness` (the verdict, stored in DuckDB, rendered as Markdown and as an HTML page), its
check, and a sensor that re-evaluates the verdict whenever the history changes.

The verdict is visible without a click: the check `launch_ready` is red (ERROR) when the verdict
is NOT_READY or INVALID_RUN and yellow (WARN) when INSUFFICIENT_DATA; the run carries the tag
`kgents/verdict=<state>`; the asset's metadata opens with the state and the blocking rules.
"""

import datetime as dt
from typing import Any

import dagster as dg

from kgents_pipeline.dagster_support import OWNERS, VERDICT_TAG, failure, figure, table_metadata
from kgents_pipeline.defs.resources import HistoryResource
from kgents_pipeline.errors import KgentsError


class VerdictConfig(dg.Config):
    # Launch checklist YAML; empty = KGENTS_CHECKLIST, or manifests/launch/checklist.yaml.
    checklist: str = ""
    # Evaluate as of this ISO-8601 time; empty = now. A what-if: `launch_readiness` does not
    # record it in readiness_verdicts (`latest_verdict` stays the newest verdict of the present).
    now: str = ""


def _now(config: VerdictConfig) -> dt.datetime | None:
    from kgents_pipeline.verdict import parse_now

    return parse_now(config.now, "config `now`")


@dg.asset(
    deps=["metrics_history"],
    group_name="verdict",
    pool="duckdb",
    kinds={"duckdb"},
    owners=OWNERS,
    description="The baseline the latest valid run is compared with: the last K valid runs with "
    "its fingerprint (script, k6 version, rate, duration, target) plus the pinned run. Read, not "
    "judged. Its table is the history's `baseline_trend` view, one row per run.",
)
def baseline(config: VerdictConfig, history: HistoryResource) -> dg.MaterializeResult:
    from kgents_pipeline.history.tables import describe_table
    from kgents_pipeline.verdict import VerdictPolicy
    from kgents_pipeline.verdict.usecase import baseline_summary, read_snapshot

    policy = VerdictPolicy()
    store = history.store()
    try:
        # The baseline is read, not judged: no verdict is evaluated for it.
        snapshot = read_snapshot(
            store,
            checklist=config.checklist or history.checklist or None,
            policy=policy,
            now=_now(config) or dt.datetime.now(dt.UTC),
            archive=history.archive_dir,
        )
        table = store.read(describe_table, "baseline_trend")
    except KgentsError as exc:
        raise failure(exc) from exc
    summary = baseline_summary(snapshot, policy)
    lines = ["# Baseline", ""]
    if not summary["run_ids"]:
        lines.append("No baseline yet: no earlier valid run with the latest run's fingerprint.")
    else:
        fp = summary["fingerprint"] or {}
        lines += [
            "Fingerprint (runs compare only with runs that share it):",
            "",
            f"- script sha256: `{str(fp.get('script_sha256') or '-')[:12]}...`",
            f"- k6 version: {fp.get('k6_version') or '-'}",
            f"- rate: {fp.get('rate') or '-'} req/s, duration: {fp.get('duration_s') or '-'} s",
            f"- target: {fp.get('target_url') or '-'}",
            "",
            f"Window: {len(summary['run_ids'])} of {policy.baseline_runs} runs; "
            f"pinned: {summary['pinned_run_id'] or 'none'}",
            "",
            "| run | p95 | p99 | error rate | rate |",
            "|---|---|---|---|---|",
        ]
        for r in summary["runs"]:
            lines.append(
                f"| {r['run_id']} | {_ms(r['p95_ms'])} | {_ms(r['p99_ms'])} | "
                f"{_pct(r['error_rate'])} | {_rps(r['achieved_rps'])} |"
            )
    metadata: dict[str, Any] = {
        "baseline": dg.MetadataValue.md("\n".join(lines)),
        "baseline_runs": len(summary["run_ids"]),
        "pinned_run_id": summary["pinned_run_id"] or "",
        **table_metadata(table),
    }
    for key in ("p95_ms", "error_rate"):
        if summary[key] is not None:
            metadata[f"baseline_{key}"] = figure(summary[key])
    return dg.MaterializeResult(metadata=metadata)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2%}"


def _rps(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} req/s"


LAUNCH_READY_DESCRIPTION = (
    "The verdict is READY. Failing: ERROR (red) when the verdict is NOT_READY or INVALID_RUN, "
    "WARN (yellow) when INSUFFICIENT_DATA (rehearsal evidence, too few runs, missing sign-offs). "
    "Never blocking: the verdict is recorded in the history whatever its state."
)


@dg.asset(
    deps=[baseline, "policy_verification"],
    group_name="verdict",
    pool="duckdb",
    kinds={"duckdb"},
    owners=OWNERS,
    # A missed night shows as stale: WARN once the verdict is 24 h old, FAIL an hour later
    # (the hour absorbs the nightly run's own duration).
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=25), warn_window=dt.timedelta(hours=24)
    ),
    description="The launch-readiness verdict (READY, NOT_READY, INSUFFICIENT_DATA, INVALID_RUN), "
    "derived from the history and failing closed; recorded in `readiness_verdicts` (not a what-if "
    "verdict evaluated with the `now` config). Each materialization writes the HTML report to "
    "data/reports/ and tags its run `kgents/verdict=<state>`.",
    check_specs=[
        dg.AssetCheckSpec(
            "launch_ready", asset="launch_readiness", description=LAUNCH_READY_DESCRIPTION
        )
    ],
)
def launch_readiness(
    context: dg.AssetExecutionContext, config: VerdictConfig, history: HistoryResource
) -> dg.MaterializeResult:
    from kgents_pipeline.history.tables import describe_table
    from kgents_pipeline.verdict.model import State
    from kgents_pipeline.verdict.report import (
        blocking_lines,
        headline,
        render_markdown,
        write_report_files,
    )
    from kgents_pipeline.verdict.usecase import evaluate_history

    store = history.store()
    try:
        # A `now` config is a what-if: evaluated, never recorded (verdict_id None).
        verdict, verdict_id = evaluate_history(
            store,
            now=_now(config),
            checklist=config.checklist or history.checklist or None,
            source="dagster",
            archive=history.archive_dir,
        )
        kept, latest = write_report_files(verdict, history.reports_path())
        table = table_metadata(store.read(describe_table, "readiness_verdicts"))
    except KgentsError as exc:
        raise failure(exc) from exc
    state = str(verdict.state)
    what_if = verdict_id is None
    # The Runs list shows tags: the state is there without opening the run.
    context.instance.add_run_tags(
        context.run.run_id,
        {
            (f"{VERDICT_TAG}-what-if" if what_if else VERDICT_TAG): state,
            "kgents/rehearsal": str(verdict.rehearsal).lower(),
        },
    )
    blocking = blocking_lines(verdict)
    failing = [r.rule for r in verdict.blocking]
    # The first entries are what the asset's page shows first: the state and what blocks it.
    metadata: dict[str, Any] = {
        "verdict": headline(verdict),
        "blocking": dg.MetadataValue.md(
            "\n".join(f"- {line}" for line in blocking) if blocking else "none: every rule passes"
        ),
        "report_html": dg.MetadataValue.path(str(latest.resolve())),
        "report_html_this_run": dg.MetadataValue.path(str(kept.resolve())),
        "state": state,
        "rehearsal": verdict.rehearsal,
        "recorded": not what_if,
        "failing_rules": ", ".join(failing) or "none",
        "report": dg.MetadataValue.md(render_markdown(verdict)),
        # What the asset holds: the recorded verdicts. Their columns go under their own name,
        # not dagster/column_schema: a Columns section would push the state off the first screen.
        "dagster/table_name": table["dagster/table_name"],
        "dagster/row_count": table["dagster/row_count"],
        "readiness_verdicts_columns": dg.MetadataValue.table_schema(table["dagster/column_schema"]),
        "inputs_sha256": verdict.inputs_sha256,
        "blocking_reasons": dg.MetadataValue.json(blocking),  # for the notification sensor
    }
    if verdict_id is not None:
        metadata["verdict_id"] = int(verdict_id)
    else:
        metadata["what_if_now"] = verdict.evaluated_at.isoformat()
    metadata.update({k: figure(v) for k, v in verdict.figures.items()})
    context.log.info(headline(verdict) + "".join(f"\n  {line}" for line in blocking))
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="launch_ready",
                passed=verdict.ready,
                # Red for a verdict the evidence contradicts; yellow for one it cannot support
                # yet. Not blocking either way: the verdict and its history row are written.
                severity=dg.AssetCheckSeverity.WARN
                if verdict.state is State.INSUFFICIENT_DATA
                else dg.AssetCheckSeverity.ERROR,
                metadata={
                    "state": state,
                    "failing_rules": ", ".join(failing) or "none",
                    "blocking": dg.MetadataValue.md(
                        "\n".join(f"- {line}" for line in blocking) if blocking else "none"
                    ),
                },
                description=f"verdict {state}"
                + (" (rehearsal)" if verdict.rehearsal else "")
                + (f": blocked by {', '.join(failing)}" if failing else "")
                + (
                    f" (what-if as of {verdict.evaluated_at.isoformat()}: not recorded)"
                    if what_if
                    else ""
                ),
            )
        ],
    )


@dg.sensor(
    target=dg.AssetSelection.assets(baseline, launch_readiness),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Re-evaluates the verdict when the history changes: new runs (from Dagster or "
    "`history ingest`), invalidations, pins, waivers, policy verifications.",
)
def launch_readiness_on_history_change(
    context: dg.SensorEvaluationContext, history: HistoryResource
) -> dg.SensorResult | dg.SkipReason | dg.RunRequest:
    from kgents_pipeline.history.queries import change_marker

    store = history.store()
    try:
        with store.reader(lock_wait_s=2.0) as con:
            digest = change_marker(con)
    except KgentsError:
        return dg.SkipReason(f"no readable history at {store} yet (or it is locked)")
    if digest == context.cursor:
        return dg.SkipReason("history unchanged since the last verdict")
    context.update_cursor(digest)
    return dg.RunRequest(run_key=f"history-{digest}")
