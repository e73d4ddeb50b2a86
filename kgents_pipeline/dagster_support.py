"""Helpers every defs module shares: configuration from the environment, domain errors as
`dg.Failure`."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from kgents_pipeline.errors import KgentsError


def env_or(name: str, default: str) -> str | dg.EnvVar:
    """`dg.EnvVar(name)` when the variable is set (the UI shows where the value came from),
    else the embedded default, so the code location loads with no configuration at all."""
    return dg.EnvVar(name) if os.environ.get(name, "") != "" else default


def failure(exc: KgentsError) -> dg.Failure:
    """A domain error as a failed step: its one-line message, plus its issues when it has some."""
    metadata: dict[str, Any] = {"error_type": type(exc).__name__}
    issues = getattr(exc, "issues", None)
    if issues:
        metadata["issues"] = dg.MetadataValue.md("\n".join(f"- `{i}`" for i in issues))
        metadata["issue_count"] = len(issues)
    return dg.Failure(description=str(exc), metadata=metadata)
