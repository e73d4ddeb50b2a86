"""`kgents-pipeline`: the command line. Each domain contributes its commands; this module only
composes them and turns every error a user can cause into one line on stderr: domain errors,
usage errors (a bad option, a missing argument) and file-system errors (a full disk names its
device) exit 2; only a bug is an "internal error". No line ever shows the auth header's value."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from kgents_pipeline import settings
from kgents_pipeline.errors import KgentsError
from kgents_pipeline.filesystem import os_error_line


def _redact(text: str) -> str:
    """Never print the auth header's value, whatever error quoted it."""
    secret = settings.AUTH_HEADER.raw()
    for value in {secret, secret.strip()}:
        if len(value) >= 4:
            text = text.replace(value, "***").replace(repr(value)[1:-1], "***")
    return text


def _fail(message: str, code: int = 2) -> None:
    click.echo(_redact(" ".join(message.split())), err=True)
    sys.exit(code)


class _Group(click.Group):
    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Click's own handling, except that every usage error is one line (and its exit 2)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx is not None else "kgents-pipeline"
            _fail(f"error: {exc.format_message()} (see `{path} --help`)", exc.exit_code)
        except click.ClickException as exc:
            _fail(f"error: {exc.format_message()}", exc.exit_code)
        except click.Abort:
            _fail("Aborted!", 1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KgentsError as exc:
            _fail(f"error: {exc}")
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except OSError as exc:  # the environment (a full disk, a permission), not a bug
            if settings.DEBUG.raw():
                raise
            _fail(f"error: {os_error_line(exc)}")
        except Exception as exc:  # a bug: still one line unless asked for the traceback
            if settings.DEBUG.raw():
                raise
            _fail(
                f"internal error: {type(exc).__name__}: {exc} "
                "(set KGENTS_DEBUG=1 for the traceback)"
            )


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


@main.command("pools")
def pools_command() -> None:
    """Create the code location's Dagster pools (k6, duckdb) on the instance of DAGSTER_HOME at
    its default limit, once, before its first runs: on a PostgreSQL instance two runs creating
    a pool at the same moment fail (Dagster's race). A pool that exists is left as it is."""
    from kgents_pipeline.cli.run import initialize_instance_pools

    click.echo(initialize_instance_pools())


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
