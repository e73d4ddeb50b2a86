"""CLI: `verdict` (evaluate; `verdict waive`), `report`, and the operator controls `invalidate`
and `pin-baseline` that belong to the `history` group."""

from __future__ import annotations

import json
import sys

import click

from kgents_pipeline.errors import VerdictError
from kgents_pipeline.history.db import DEFAULT_DB
from kgents_pipeline.verdict import usecase as controls
from kgents_pipeline.verdict.usecase import evaluate_history

DB_ENVVAR = "KGENTS_DB_PATH"  # the same variable the Dagster resources read
_DB = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    default=str(DEFAULT_DB),
    show_default=True,
    envvar=DB_ENVVAR,
    show_envvar=True,
    help="DuckDB metrics history.",
)
_BY = click.option(
    "--by",
    default=None,
    help="Who does this (recorded with the action). Default: the OS user.",
)


@click.group(invoke_without_command=True)
@_DB
@click.option(
    "--format", "fmt", type=click.Choice(["json", "table"]), default="table", show_default=True
)
@click.option(
    "--now",
    "now_text",
    default=None,
    help="Evaluate as of this ISO-8601 time (UTC if no zone): a what-if, never recorded in "
    "readiness_verdicts.",
)
@click.option(
    "--checklist",
    type=click.Path(dir_okay=False),
    default=None,
    help="Launch checklist YAML. Default: manifests/launch/checklist.yaml.",
)
@click.option(
    "--no-record",
    is_flag=True,
    help="Do not store the verdict in readiness_verdicts (a --now verdict never is).",
)
@click.pass_context
def verdict(
    ctx: click.Context,
    db_path: str,
    fmt: str,
    now_text: str | None,
    checklist: str | None,
    no_record: bool,
) -> None:
    """Launch-readiness verdict from the history: exit 0 READY, 1 otherwise, 2 on bad input.

    The verdict is recorded in readiness_verdicts (`latest_verdict`) unless --no-record, or
    --now makes it a what-if.
    """
    ctx.ensure_object(dict)
    ctx.obj["db_path"] = db_path
    if ctx.invoked_subcommand is not None:
        return
    from kgents_pipeline.verdict.evaluate import EXIT_CODES, parse_now
    from kgents_pipeline.verdict.report import render_table

    result, _ = evaluate_history(
        db_path, now=parse_now(now_text), checklist=checklist, record=not no_record
    )
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=False))
    else:
        click.echo(render_table(result))
        if now_text:
            click.echo("what-if verdict (--now): not recorded")
    ctx.exit(EXIT_CODES[result.state])


@verdict.command("waive")
@click.argument("rule")
@click.option(
    "--until", "until", required=True, help="ISO date (waived through that day, UTC) or date-time."
)
@click.option("--reason", required=True, help="Why the failure is acceptable until then.")
@_BY
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    default=None,
    envvar=DB_ENVVAR,
    show_envvar=True,
    help="Default: the group's --db (itself from KGENTS_DB_PATH, else data/metrics.duckdb).",
)
@click.pass_context
def waive(
    ctx: click.Context, rule: str, until: str, reason: str, by: str | None, db_path: str | None
) -> None:
    """Make RULE's failure non-blocking until a date (never `validity`, `checklist` or
    `rehearsal`). The history must exist."""
    # An explicit --db here wins; otherwise the group's, which already honours KGENTS_DB_PATH
    # and an explicit `verdict --db` (the variable must not override the latter).
    db = db_path
    if ctx.get_parameter_source("db_path") is not click.core.ParameterSource.COMMANDLINE:
        db = (ctx.obj or {}).get("db_path") or db_path or str(DEFAULT_DB)
    waiver_id = controls.add_waiver(db, rule, until=until, reason=reason, by=by)
    click.echo(
        f"waiver #{waiver_id}: {rule} waived until {until} by {by or controls.default_user()}"
    )


@click.command("report")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False), help="HTML file to write."
)
@_DB
@click.option("--now", "now_text", default=None, help="Evaluate as of this ISO-8601 time.")
@click.option("--checklist", type=click.Path(dir_okay=False), default=None)
def report(out: str, db_path: str, now_text: str | None, checklist: str | None) -> None:
    """Write the verdict report as a self-contained HTML page (charts inline)."""
    from kgents_pipeline.verdict.evaluate import parse_now
    from kgents_pipeline.verdict.report import write_html

    result, _ = evaluate_history(
        db_path, now=parse_now(now_text), checklist=checklist, record=False
    )
    path = write_html(result, out)  # an unwritable file: VerdictError naming it (exit 2)
    click.echo(f"{result.state}: report written to {path}")


@click.command("invalidate")
@click.argument("run_id")
@click.option("--reason", required=True, help="Why this run is not evidence.")
@_BY
@_DB
def invalidate(run_id: str, reason: str, by: str | None, db_path: str) -> None:
    """Declare a run unusable as evidence (never a pass, a failure or a baseline). The history
    must exist."""
    controls.invalidate_run(db_path, run_id, reason=reason, by=by)
    click.echo(f"run {run_id} invalidated by {by or controls.default_user()}: {reason}")


@click.command("pin-baseline")
@click.argument("run_id", required=False)
@click.option("--clear", is_flag=True, help="Remove the pinned baseline.")
@click.option("--reason", default="", help="Why this run is the reference.")
@_BY
@_DB
def pin_baseline(
    run_id: str | None, clear: bool, reason: str, by: str | None, db_path: str
) -> None:
    """Pin RUN_ID as the baseline every run is also compared with (or --clear it). The history
    must exist."""
    if clear == bool(run_id):
        raise VerdictError("give either RUN_ID or --clear")
    controls.pin_baseline(db_path, None if clear else run_id, reason=reason, by=by)
    click.echo("baseline pin cleared" if clear else f"baseline pinned to run {run_id}")


__all__ = ["invalidate", "pin_baseline", "report", "verdict"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(verdict())
