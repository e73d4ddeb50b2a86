"""`kgents-pipeline history ...` (ingest, rebuild, the operator controls) and `trends`."""

from __future__ import annotations

import json

import click

from kgents_pipeline.cli.options import archive_option, by_option, db_option, format_option
from kgents_pipeline.errors import VerdictError
from kgents_pipeline.history.store import open_history


@click.group()
def history() -> None:
    """The DuckDB metrics history of load-test runs."""


@history.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@db_option
def ingest(run_dirs: tuple[str, ...], db: str) -> None:
    """Ingest archived run directories (data/k6/<run_id>/); re-ingesting changes nothing."""
    from kgents_pipeline.history.ingest import ingest_run_dirs

    for result in ingest_run_dirs(open_history(db), run_dirs):
        state = "valid" if result.valid else "INVALID: " + "; ".join(result.invalid_reasons)
        click.echo(f"{result.action:9} {result.run_id}  {result.points_rows} points  {state}")


@history.command()
@db_option
@archive_option
def rebuild(db: str, archive_root: str) -> None:
    """Re-ingest every archived run, replacing its rows; nothing it cannot re-create is lost.

    Runs not in the archive and operator records are kept; a run directory that fails is
    reported (exit 1) and keeps its old rows; an unreadable database file is moved aside."""
    from kgents_pipeline.history.ingest import rebuild as rebuild_history

    report = rebuild_history(open_history(db), archive_root)
    if report.moved_aside:
        click.echo(f"{db} could not be opened: moved aside to {report.moved_aside}", err=True)
    for problem in report.problems:
        click.echo(f"skipped (its old rows are kept): {problem}", err=True)
    if report.kept:
        click.echo(f"kept {len(report.kept)} runs that are not in {archive_root}", err=True)
    valid = sum(r.valid for r in report.results)
    click.echo(f"rebuilt {db}: {len(report.results)} runs ({valid} valid) from {archive_root}")
    if report.problems:
        raise SystemExit(1)


@history.command("invalidate")
@click.argument("run_id")
@click.option("--reason", required=True, help="Why this run is not evidence.")
@by_option
@db_option
def invalidate(run_id: str, reason: str, by: str | None, db: str) -> None:
    """Declare a run unusable as evidence (never a pass, a failure or a baseline). The history
    must exist."""
    from kgents_pipeline.verdict import usecase

    usecase.invalidate_run(open_history(db), run_id, reason=reason, by=by)
    click.echo(f"run {run_id} invalidated by {by or usecase.default_user()}: {reason}")


@history.command("pin-baseline")
@click.argument("run_id", required=False)
@click.option("--clear", is_flag=True, help="Remove the pinned baseline.")
@click.option("--reason", default="", help="Why this run is the reference.")
@by_option
@db_option
def pin_baseline(run_id: str | None, clear: bool, reason: str, by: str | None, db: str) -> None:
    """Pin RUN_ID as the baseline every run is also compared with (or --clear it). The history
    must exist."""
    from kgents_pipeline.verdict import usecase

    if clear == bool(run_id):
        raise VerdictError("give either RUN_ID or --clear")
    usecase.pin_baseline(open_history(db), None if clear else run_id, reason=reason, by=by)
    click.echo("baseline pin cleared" if clear else f"baseline pinned to run {run_id}")


@history.command("snapshot")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False),
    help="DuckDB file to write (an earlier snapshot is replaced; any other file is refused).",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0, max=24 * 3600),
    default=60.0,
    show_default=True,
    help="Seconds to wait for a writer (an ingest, a verdict) to finish with the history.",
)
@db_option
def snapshot(out: str, wait_s: float, db: str) -> None:
    """A consistent copy of the history in a new file, to query with any tool while the pipeline
    goes on writing (DuckDB refuses other processes, readers too, while a writer holds a file)."""
    counts = open_history(db).snapshot(out, lock_wait_s=wait_s)
    shown = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    click.echo(f"snapshot of {db} written to {out}: {shown or 'no rows'}")


@click.command()
@db_option
@click.option("--last", type=click.IntRange(min=1, max=1_000_000), default=20, show_default=True)
@format_option("table", "json")
def trends(db: str, last: int, fmt: str) -> None:
    """The baseline trend: one row per run (the `baseline_trend` view)."""
    from kgents_pipeline.history.trends import format_table, trend

    with open_history(db).reader() as con:
        rows = trend(con, last=last)
    if fmt == "json":
        click.echo(json.dumps(rows, default=str, indent=2))
    else:
        click.echo(format_table(rows))
