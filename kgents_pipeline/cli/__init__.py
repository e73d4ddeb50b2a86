"""`kgents-pipeline`: the command line. Each domain contributes its commands; this module only
composes them and turns domain errors into one line on stderr and exit 2."""

from __future__ import annotations

import sys
from typing import Any

import click

from kgents_pipeline import settings
from kgents_pipeline.errors import KgentsError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KgentsError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: still one line unless asked for the traceback
            if settings.DEBUG.raw():
                raise
            click.echo(
                f"internal error: {type(exc).__name__}: {exc} (set KGENTS_DEBUG=1 for the traceback)",
                err=True,
            )
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Launch-readiness evidence for the kgents SaaS: manifests, policies, load tests, verdict."""


@main.command("run")
def run_command() -> None:
    """Run launch_readiness_job in this process (embedded defaults: offline cluster, demo
    target) and print a summary. Exit 1 when the job failed."""
    from kgents_pipeline.cli.run import run_launch_readiness_job

    if not run_launch_readiness_job(click.echo):
        raise SystemExit(1)


def _register() -> None:
    from kgents_pipeline.cli.history import history, trends
    from kgents_pipeline.cli.loadtest import loadtest, target_group
    from kgents_pipeline.cli.manifests import manifests
    from kgents_pipeline.cli.policy import policy
    from kgents_pipeline.cli.verdict import report, verdict

    for command in (policy, manifests, loadtest, history, trends, target_group, verdict, report):
        main.add_command(command)


_register()

if __name__ == "__main__":
    sys.exit(main())
