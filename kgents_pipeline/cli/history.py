"""`kgents-pipeline history ...` and `kgents-pipeline trends`."""

from __future__ import annotations

import json

import click

from kgents_pipeline.history.db import DEFAULT_DB
from kgents_pipeline.loadtest.runner import DEFAULT_ARCHIVE

db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    default=str(DEFAULT_DB),
    envvar="KGENTS_DB_PATH",
    show_envvar=True,
    show_default=True,
    help="DuckDB history file.",
)
archive_option = click.option(
    "--archive",
    "archive_root",
    type=click.Path(file_okay=False),
    default=str(DEFAULT_ARCHIVE),
    envvar="KGENTS_ARCHIVE_DIR",
    show_envvar=True,
    show_default=True,
    help="Run archive folder.",
)


@click.group()
def history() -> None:
    """The DuckDB metrics history of load-test runs."""


@history.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@db_option
def ingest(run_dirs: tuple[str, ...], db_path: str) -> None:
    """Ingest archived run directories (data/k6/<run_id>/); re-ingesting changes nothing."""
    from kgents_pipeline.history.ingest import ingest_run_dirs

    for result in ingest_run_dirs(db_path, run_dirs):
        state = "valid" if result.valid else "INVALID: " + "; ".join(result.invalid_reasons)
        click.echo(f"{result.action:9} {result.run_id}  {result.points_rows} points  {state}")


@history.command()
@db_option
@archive_option
def rebuild(db_path: str, archive_root: str) -> None:
    """Re-ingest every archived run, replacing its rows; nothing it cannot re-create is lost.

    Runs not in the archive and operator records are kept; a run directory that fails is
    reported (exit 1) and keeps its old rows; an unreadable database file is moved aside."""
    from kgents_pipeline.history.ingest import rebuild as rebuild_history

    report = rebuild_history(db_path, archive_root)
    if report.moved_aside:
        click.echo(f"{db_path} could not be opened: moved aside to {report.moved_aside}", err=True)
    for problem in report.problems:
        click.echo(f"skipped (its old rows are kept): {problem}", err=True)
    if report.kept:
        click.echo(f"kept {len(report.kept)} runs that are not in {archive_root}", err=True)
    valid = sum(r.valid for r in report.results)
    click.echo(f"rebuilt {db_path}: {len(report.results)} runs ({valid} valid) from {archive_root}")
    if report.problems:
        raise SystemExit(1)


@click.command()
@db_option
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def trends(db_path: str, last: int, fmt: str) -> None:
    """The baseline trend: one row per run (the `baseline_trend` view)."""
    from kgents_pipeline.history.trends import format_table, trend

    rows = trend(db_path, last=last)
    if fmt == "json":
        click.echo(json.dumps(rows, default=str, indent=2))
    else:
        click.echo(format_table(rows))
