"""Options every command shares, built from `kgents_pipeline.settings`: the same flag, variable
and default wherever an option appears."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from kgents_pipeline import settings
from kgents_pipeline.settings import Setting

F = TypeVar("F", bound=Callable[..., Any])


def from_setting(setting: Setting, *decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option whose variable and default come from `setting`."""
    kwargs.setdefault("default", setting.default)
    kwargs.setdefault("show_default", bool(setting.default))
    kwargs.setdefault("help", setting.help[0].upper() + setting.help[1:] + ".")
    return click.option(*decls, envvar=setting.env, show_envvar=True, **kwargs)


db_option = from_setting(
    settings.DB_PATH, "--db", "db", type=click.Path(dir_okay=False), help="Metrics history."
)
archive_option = from_setting(
    settings.ARCHIVE_DIR, "--archive", "archive_root", type=click.Path(file_okay=False)
)
checklist_option = from_setting(
    settings.CHECKLIST,
    "--checklist",
    type=click.Path(dir_okay=False),
    default=None,
    help=f"Launch checklist YAML [default: {settings.CHECKLIST.default}].",
)
manifests_argument = click.argument(
    "directory", required=False, default=settings.MANIFESTS_DIR.default, type=click.Path()
)
intent_option = from_setting(settings.INTENT, "--intent", "intent", type=click.Path())
by_option = click.option(
    "--by", default=None, help="Who does this (recorded with the action). Default: the OS user."
)
now_option = click.option(
    "--now",
    "now_text",
    default=None,
    help="Evaluate as of this ISO-8601 time (UTC if no zone): a what-if, never recorded in "
    "readiness_verdicts.",
)


def format_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    return click.option(
        "--format", "fmt", type=click.Choice(list(choices)), default=default, show_default=True
    )


def render_options(f: F) -> F:
    """Schema version and kind allowlist of `manifests` commands."""
    f = from_setting(settings.KUBE_VERSION, "--kube-version")(f)
    return from_setting(settings.ALLOWED_KINDS, "--allowed-kinds")(f)


def cluster_options(f: F) -> F:
    """Which cluster (always named explicitly) and how long to wait for it."""
    f = from_setting(settings.KUBECONFIG, "--kubeconfig", type=click.Path(), default=None)(f)
    f = from_setting(settings.KUBE_CONTEXT, "--context", "context", default=None)(f)
    f = click.option("--in-cluster", is_flag=True, help="Use the pod's service account instead.")(f)
    f = from_setting(settings.CONTEXT_ALLOWLIST, "--context-allowlist")(f)
    return from_setting(settings.KUBE_TIMEOUT_S, "--timeout", "timeout_s", type=float)(f)
