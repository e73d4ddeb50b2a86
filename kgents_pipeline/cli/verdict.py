"""`kgents-pipeline verdict` (evaluate; `verdict waive`) and `kgents-pipeline report`."""

from __future__ import annotations

import datetime as dt
import json

import click

from kgents_pipeline.cli.options import (
    archive_option,
    by_option,
    checklist_option,
    db_option,
    format_option,
    now_option,
)
from kgents_pipeline.history.store import open_history


def _now(now_text: str | None) -> dt.datetime | None:
    """--now as given: absent is the present; anything given, even empty, must be a time."""
    from kgents_pipeline.verdict.inputs import parse_instant

    return None if now_text is None else parse_instant(now_text, "--now")


@click.group(invoke_without_command=True)
@db_option
@archive_option
@format_option("json", "table")
@now_option
@checklist_option
@click.option(
    "--no-record",
    is_flag=True,
    help="Do not store the verdict in readiness_verdicts (a --now verdict never is).",
)
@click.pass_context
def verdict(
    ctx: click.Context,
    db: str,
    archive_root: str,
    fmt: str,
    now_text: str | None,
    checklist: str | None,
    no_record: bool,
) -> None:
    """Launch-readiness verdict from the history: exit 0 READY, 1 otherwise, 2 on bad input.

    The verdict is recorded in readiness_verdicts (`latest_verdict`) unless --no-record, or
    --now makes it a what-if. Every run in the archive (--archive, and the archives the
    history's runs came from) must be in the history: one that is not blocks READY.
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    if ctx.invoked_subcommand is not None:
        return
    from kgents_pipeline.verdict import EXIT_CODES
    from kgents_pipeline.verdict.report import render_table
    from kgents_pipeline.verdict.usecase import evaluate_history

    result, _ = evaluate_history(
        open_history(db),
        now=_now(now_text),
        checklist=checklist,
        record=not no_record,
        archive=archive_root,
    )
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=False))
    else:
        click.echo(render_table(result))
        if now_text is not None:
            click.echo("what-if verdict (--now): not recorded")
    ctx.exit(EXIT_CODES[result.state])


@verdict.command("waive")
@click.argument("rule")
@click.option(
    "--until", "until", required=True, help="ISO date (waived through that day, UTC) or date-time."
)
@click.option("--reason", required=True, help="Why the failure is acceptable until then.")
@by_option
@db_option
@click.pass_context
def waive(ctx: click.Context, rule: str, until: str, reason: str, by: str | None, db: str) -> None:
    """Make RULE's failure non-blocking until a date (never `validity`, `checklist` or
    `rehearsal`). The history must exist."""
    from kgents_pipeline.verdict import usecase

    # An explicit --db here wins; otherwise the group's, which already honours the variable
    # and an explicit `verdict --db` (the variable must not override the latter).
    if ctx.get_parameter_source("db") is not click.core.ParameterSource.COMMANDLINE:
        db = (ctx.obj or {}).get("db") or db
    waiver_id = usecase.add_waiver(open_history(db), rule, until=until, reason=reason, by=by)
    click.echo(
        f"waiver #{waiver_id}: {rule} waived until {until} by {by or usecase.default_user()}"
    )


@click.command("report")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False), help="HTML file to write."
)
@db_option
@archive_option
@now_option
@checklist_option
def report(
    out: str, db: str, archive_root: str, now_text: str | None, checklist: str | None
) -> None:
    """Write the verdict report as a self-contained HTML page (charts inline)."""
    from kgents_pipeline.verdict.report import write_html
    from kgents_pipeline.verdict.usecase import evaluate_history

    result, _ = evaluate_history(
        open_history(db),
        now=_now(now_text),
        checklist=checklist,
        record=False,
        archive=archive_root,
    )
    path = write_html(result, out)  # an unwritable file: VerdictError naming it (exit 2)
    click.echo(f"{result.state}: report written to {path}")
