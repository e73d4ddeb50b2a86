"""What the Dagster layer (`defs/`) shares, kept outside the auto-loaded folder: configuration
from `settings`, domain errors as `dg.Failure`, Markdown tables for metadata."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import dagster as dg

from kgents_pipeline.errors import KgentsError
from kgents_pipeline.settings import Setting

T = TypeVar("T")


def env_or(setting: Setting) -> str | dg.EnvVar:
    """`dg.EnvVar(...)` when the variable is set (the UI shows where the value came from), else
    the embedded default, so the code location loads with no configuration at all."""
    return dg.EnvVar(setting.env) if setting.is_set() else setting.default


def failure(exc: KgentsError) -> dg.Failure:
    """A domain error as a failed step: its one-line message, plus its issues when it has some."""
    metadata: dict[str, Any] = {"error_type": type(exc).__name__}
    issues = getattr(exc, "issues", None)
    if issues:
        metadata["issues"] = dg.MetadataValue.md("\n".join(f"- `{i}`" for i in issues))
        metadata["issue_count"] = len(issues)
    return dg.Failure(description=str(exc), metadata=metadata)


def domain(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a domain call; its errors become `dg.Failure` with what the user needs."""
    try:
        return fn(*args, **kwargs)
    except KgentsError as exc:
        raise failure(exc) from exc


def md_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))
