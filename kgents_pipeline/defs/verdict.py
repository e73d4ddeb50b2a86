"""Verdict assets: `baseline` (the reference the latest run is compared with) and
`launch_readiness` (the verdict, stored in DuckDB and rendered as Markdown), its check, and a
sensor that re-evaluates the verdict whenever the history changes."""

import datetime as dt
from typing import Any

import dagster as dg

from kgents_pipeline.dagster_support import failure
from kgents_pipeline.defs.resources import HistoryResource
from kgents_pipeline.errors import KgentsError


class VerdictConfig(dg.Config):
    checklist: str = ""  # launch checklist YAML; empty = manifests/launch/checklist.yaml
    # Evaluate as of this ISO-8601 time; empty = now. A what-if: `launch_readiness` does not
    # record it in readiness_verdicts (`latest_verdict` stays the newest verdict of the present).
    now: str = ""


def _now(config: VerdictConfig) -> dt.datetime | None:
    from kgents_pipeline.verdict import parse_now

    return parse_now(config.now, "config `now`")


@dg.asset(deps=["metrics_history"], group_name="verdict", pool="duckdb", kinds={"duckdb"})
def baseline(config: VerdictConfig, history: HistoryResource) -> dg.MaterializeResult:
    """The baseline window (last K valid runs of the latest fingerprint) plus the pinned run."""
    from kgents_pipeline.verdict import VerdictPolicy
    from kgents_pipeline.verdict.usecase import baseline_summary, read_snapshot

    policy = VerdictPolicy()
    try:
        # The baseline is read, not judged: no verdict is evaluated for it.
        snapshot = read_snapshot(
            history.store(),
            checklist=config.checklist or None,
            policy=policy,
            now=_now(config) or dt.datetime.now(dt.UTC),
            archive=history.archive_dir,
        )
    except KgentsError as exc:
        raise failure(exc) from exc
    summary = baseline_summary(snapshot, policy)
    lines = ["# Baseline", ""]
    if not summary["run_ids"]:
        lines.append("No baseline yet: no earlier valid run with the latest run's fingerprint.")
    else:
        lines += [
            f"- fingerprint: `{summary['fingerprint']}`",
            f"- window ({len(summary['run_ids'])} of {policy.baseline_runs} runs): "
            + ", ".join(summary["run_ids"]),
            f"- pinned: {summary['pinned_run_id'] or '-'}",
            "",
            "| run | p95 ms | p99 ms | error rate | req/s |",
            "|---|---|---|---|---|",
        ]
        for r in summary["runs"]:
            lines.append(
                f"| {r['run_id']} | {r['p95_ms']} | {r['p99_ms']} | {r['error_rate']} | {r['achieved_rps']} |"
            )
    metadata: dict[str, Any] = {
        "baseline": dg.MetadataValue.md("\n".join(lines)),
        "baseline_runs": len(summary["run_ids"]),
        "pinned_run_id": summary["pinned_run_id"] or "",
    }
    for key in ("p95_ms", "error_rate"):
        if summary[key] is not None:
            metadata[f"baseline_{key}"] = float(summary[key])
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    deps=[baseline, "policy_verification"],
    group_name="verdict",
    pool="duckdb",
    kinds={"duckdb"},
    check_specs=[dg.AssetCheckSpec("launch_ready", asset="launch_readiness")],
)
def launch_readiness(config: VerdictConfig, history: HistoryResource) -> dg.MaterializeResult:
    """The launch-readiness verdict from the history (fails closed), stored in readiness_verdicts
    (not a what-if verdict evaluated with the `now` config)."""
    from kgents_pipeline.verdict.report import render_markdown
    from kgents_pipeline.verdict.usecase import evaluate_history

    try:
        # A `now` config is a what-if: evaluated, never recorded (verdict_id None).
        verdict, verdict_id = evaluate_history(
            history.store(),
            now=_now(config),
            checklist=config.checklist or None,
            source="dagster",
            archive=history.archive_dir,
        )
    except KgentsError as exc:
        raise failure(exc) from exc
    failing = [r.rule for r in verdict.reasons if r.blocking]
    metadata: dict[str, Any] = {
        "state": str(verdict.state),
        "rehearsal": verdict.rehearsal,
        "recorded": verdict_id is not None,
        "inputs_sha256": verdict.inputs_sha256,
        "failing_rules": ", ".join(failing) or "none",
        "report": dg.MetadataValue.md(render_markdown(verdict)),
    }
    if verdict_id is not None:
        metadata["verdict_id"] = int(verdict_id)
    else:
        metadata["what_if_now"] = verdict.evaluated_at.isoformat()
    metadata.update({k: float(v) for k, v in verdict.figures.items()})
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="launch_ready",
                passed=verdict.ready,
                # WARN: the verdict (and its history row) is written whatever the state.
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "state": str(verdict.state),
                    "failing_rules": ", ".join(failing) or "none",
                },
                description=f"verdict {verdict.state}"
                + (" (rehearsal)" if verdict.rehearsal else "")
                + (
                    f" (what-if as of {verdict.evaluated_at.isoformat()}: not recorded)"
                    if verdict_id is None
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
