"""`kgents-pipeline run`: the launch-readiness job, in this process, on the Dagster instance of
`DAGSTER_HOME` (so the run shows in the UI), then a one-screen summary of what *this* run
produced: its checks, failed steps, the load test it ran and the verdict it derived."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgents_pipeline.errors import ConfigError, KgentsError
from kgents_pipeline.history.store import HistoryStore, open_history

if TYPE_CHECKING:
    import dagster as dg

JOB_NAME = "launch_readiness_job"


def _load_definitions() -> dg.Definitions:
    """The code location, with a configuration error reported as itself (one line), not as
    Dagster's component-tree dump."""
    from kgents_pipeline.definitions import defs

    try:
        return defs()
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, KgentsError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise


def initialize_instance_pools() -> str:
    """`kgents-pipeline pools`: the pools of the code location on the DAGSTER_HOME instance."""
    import dagster as dg

    from kgents_pipeline.dagster_support import initialize_pools

    home = os.environ.get("DAGSTER_HOME")
    if not home or not Path(home).is_dir():
        raise ConfigError(
            f"DAGSTER_HOME={home or '(unset)'} is not a directory: which Dagster instance? "
            "(make run and make dev set it)"
        )
    with dg.DagsterInstance.get() as instance:
        if instance.global_op_concurrency_default_limit is None:
            return "pools: the instance sets no concurrency.pools.default_limit: nothing to create"
        created = initialize_pools(instance, _load_definitions())
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
    made = f"created {', '.join(created)}" if created else "nothing to create"
    held = ", ".join(f"{name}={limit}" for name, limit in sorted(limits.items()))
    return f"pools: {made}; the instance holds {held or 'none'}"


def run_launch_readiness_job(echo: Callable[[str], None] = print) -> bool:
    """Execute the job and summarise it.

    True when the run succeeded and no ERROR-severity check failed (a WARN check, such as the
    verdict not being READY on rehearsal evidence, does not fail `make run`)."""
    import dagster as dg

    definitions = _load_definitions()
    job = definitions.resolve_job_def(JOB_NAME)
    if os.environ.get("DAGSTER_HOME"):
        instance = dg.DagsterInstance.get()
    else:
        echo("DAGSTER_HOME unset: using an ephemeral Dagster instance (the UI will not show it)")
        instance = dg.DagsterInstance.ephemeral()
    with instance:
        from kgents_pipeline.dagster_support import initialize_pools

        initialize_pools(instance, definitions)
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
    location = (definitions.resources or {})["history"].db_path
    store = open_history(str(location.get_value() if isinstance(location, dg.EnvVar) else location))

    echo("")
    echo(f"Dagster run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}")
    failed_errors = 0
    for check in result.get_asset_check_evaluations():
        mark = "ok" if check.passed else check.severity.value
        failed_errors += not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        echo(f"  {mark:5} check {check.asset_key.to_user_string()}.{check.check_name}")
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        message = (error.message if error else "step failed").strip().splitlines()[0]
        message = message.removeprefix("dagster._core.definitions.events.Failure: ")
        echo(f"  FAIL  step {event.step_key}: {message}")

    produced: dict[str, Mapping[str, Any]] = {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    _print_load_test(produced, store, echo)
    _print_verdict(produced.get("launch_readiness"), echo)
    return result.success and not failed_errors


def _value(metadata: Mapping[str, Any], key: str) -> Any:
    entry = metadata.get(key)
    return None if entry is None else entry.value


def _print_load_test(
    produced: Mapping[str, Mapping[str, Any]], store: HistoryStore, echo: Callable[[str], None]
) -> None:
    if "load_test_run" not in produced:
        echo("\nno load test ran in this run (see the failed steps above)")
        return
    run_dir = Path(str(_value(produced["load_test_run"], "run_dir")))
    if "metrics_history" not in produced:
        echo(
            f"\nthe load test ran but was not ingested (the verdict is not READY until it is); "
            f"its archive: {run_dir}\n  ingest it with: kgents-pipeline history ingest {run_dir} "
            f"--db {store}"
        )
        return
    from kgents_pipeline.history.ingest import ingest_run_dir
    from kgents_pipeline.history.windows import read_windows
    from kgents_pipeline.verdict.run_summary import run_summary

    # Re-ingesting an ingested run is a no-op that hands back its parsed record.
    result = ingest_run_dir(store, run_dir)
    with store.reader() as con:
        windows = read_windows(con, [result.run_id]).get(result.run_id)
    echo("")
    echo(run_summary(result, windows, history=str(store)))


def _print_verdict(metadata: Mapping[str, Any] | None, echo: Callable[[str], None]) -> None:
    if metadata is None:
        echo("  verdict  not evaluated in this run (see the failed steps above)")
        return
    label = " (rehearsal: demo target or offline cluster)" if _value(metadata, "rehearsal") else ""
    echo(f"  verdict  {_value(metadata, 'state')}{label}")
    failing = _value(metadata, "failing_rules")
    if failing and failing != "none":
        echo(f"           blocking: {failing}  (details: kgents-pipeline verdict)")
