"""What the Dagster layer (`defs/`) shares, kept outside the auto-loaded folder: configuration
from `settings`, domain errors as `dg.Failure`, Markdown tables for metadata."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg

from kgents_pipeline import settings
from kgents_pipeline.errors import KgentsError
from kgents_pipeline.settings import Setting

if TYPE_CHECKING:
    from kgents_pipeline.history.tables import TableInfo

T = TypeVar("T")

# Who answers for every asset of this code location (shown on each asset in the UI).
OWNERS = ["team:platform"]

# The Dagster run tag carrying the verdict's state: the Runs list shows it without a click.
VERDICT_TAG = "kgents/verdict"


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


def figure(value: float) -> float:
    """A float for metadata, to 5 significant digits: still plotted across materializations,
    no longer shown as 23.241640874841696."""
    return float(f"{float(value):.5g}")


def md_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))


def table_metadata(table: TableInfo) -> dict[str, Any]:
    """Dagster's table metadata for a table or view of the history, as DuckDB describes it:
    qualified name, column schema (types from DuckDB) and row count."""
    return {
        "dagster/table_name": table.name,
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name=c.name,
                    type=c.type,
                    constraints=dg.TableColumnConstraints(nullable=c.nullable),
                )
                for c in table.columns
            ]
        ),
        "dagster/row_count": table.rows,
    }


def with_code_references(defs: dg.Definitions) -> dg.Definitions:
    """Every asset links to the function that computes it: the local file and line, or, with
    KGENTS_GIT_URL set, that file on KGENTS_GIT_BRANCH in the repository (paths mapped from
    this file, whose place in the repository is known)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # stable enough for links in the UI
        return _with_code_references(defs, Path(__file__))


def _with_code_references(defs: dg.Definitions, anchor: Path) -> dg.Definitions:
    assets = dg.with_source_code_references(list(defs.assets or ()))
    if settings.GIT_URL.is_set():
        assets = dg.link_code_references_to_git(
            assets,
            git_url=settings.GIT_URL.raw().rstrip("/"),
            git_branch=settings.GIT_BRANCH.raw(),
            file_path_mapping=dg.AnchorBasedFilePathMapping(
                local_file_anchor=anchor,
                file_anchor_path_in_repository="kgents_pipeline/dagster_support.py",
            ),
        )
    return dg.Definitions(
        assets=assets,
        asset_checks=defs.asset_checks,
        schedules=defs.schedules,
        sensors=defs.sensors,
        jobs=defs.jobs,
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        metadata=defs.metadata,
        component_tree=defs.component_tree,
    )


def initialize_pools(instance: dg.DagsterInstance, defs: dg.Definitions) -> list[str]:
    """Create, at the instance's default limit, every pool the code location's steps claim
    that the instance does not hold yet; the pools created.

    Dagster otherwise creates a pool the first time a step claims it. On PostgreSQL two run
    processes doing that at the same moment race, and the loser's run fails whole with a
    UniqueViolation on `concurrency_limits` (dagster-io/dagster#33552, open in the pinned
    Dagster). Run once per instance before its first runs (`kgents-pipeline pools`; `make run`
    and `make dev` do): a pool that exists is left as it is, limit set by hand included."""
    pools = sorted(
        {pool for a in defs.resolve_asset_graph().assets_defs for pool in a.node_def.pools}
    )
    if instance.global_op_concurrency_default_limit is None:
        return []  # no default limit: Dagster never creates a pool, so there is no race
    storage = instance.event_log_storage
    held = {limit.name for limit in storage.get_pool_limits()}
    created = [pool for pool in pools if pool not in held]
    for pool in created:
        storage.initialize_concurrency_limit_to_default(pool)
    return created
