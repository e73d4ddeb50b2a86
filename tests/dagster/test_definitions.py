"""The code location loads the way `dg check defs` and the webserver load it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from tests.conftest import REPO


def test_dg_check_defs_passes_on_the_project():
    dg_bin = Path(sys.executable).parent / "dg"
    proc = subprocess.run(
        [str(dg_bin), "check", "defs"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_job_schedule_and_pools_are_defined():
    from kgents_pipeline.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def("launch_readiness_job")
    keys = {k.to_user_string() for k in job.asset_layer.asset_graph.get_all_asset_keys()}
    assert {"health_preflight", "load_test_run", "metrics_history"} <= keys
    schedule = definitions.resolve_schedule_def("nightly_launch_readiness")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert definitions.resolve_assets_def("load_test_run").op.pool == "k6"
    assert definitions.resolve_assets_def("metrics_history").op.pool == "duckdb"


def test_dagster_yaml_limits_pools_and_disables_telemetry():
    import yaml

    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["telemetry"]["enabled"] is False
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_the_postgres_instance_takes_its_connection_from_the_environment_only():
    import yaml

    text = (REPO / "dagster.postgres.yaml").read_text()
    config = yaml.safe_load(text)
    db = config["storage"]["postgres"]["postgres_db"]
    assert "password" not in db and "postgres_url" not in config["storage"]["postgres"]
    assert {k: v["env"] for k, v in db.items() if isinstance(v, dict)} == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "db_name": "DAGSTER_PG_DB",
        "username": "DAGSTER_PG_USER",
    }
    # The same pools as the embedded default: one step at a time across every run process.
    assert (
        config["concurrency"] == yaml.safe_load((REPO / "dagster.yaml").read_text())["concurrency"]
    )
