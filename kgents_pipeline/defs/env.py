"""Resource configuration from environment variables, with the embedded defaults."""

from __future__ import annotations

import os

import dagster as dg


def env_or(name: str, default: str) -> str | dg.EnvVar:
    """`dg.EnvVar(name)` when the variable is set (the UI shows where the value came from),
    else the embedded default, so the code location loads with no configuration at all."""
    return dg.EnvVar(name) if os.environ.get(name, "") != "" else default
