"""The load-test assets under real Dagster execution (`dg.materialize`, real k6, real DuckDB)."""

from __future__ import annotations

import dagster as dg

from kgents_pipeline.defs.loadtest import health_preflight, load_test_run, metrics_history
from kgents_pipeline.defs.resources import HistoryResource, LoadTestResource
from kgents_pipeline.history.store import open_history
from kgents_pipeline.history.trends import trend

ASSETS = [health_preflight, load_test_run, metrics_history]


def _materialize(tmp_path, instance, **loadtest):
    resources = {
        "history": HistoryResource(
            db_path=str(tmp_path / "metrics.duckdb"), archive_dir=str(tmp_path / "k6")
        ),
        # 400 requests: enough for the Wilson bound of 0 errors to fall below 1%.
        "loadtest": LoadTestResource(rate=100, duration="4s", **loadtest),
    }
    return dg.materialize(ASSETS, resources=resources, instance=instance, raise_on_error=False)


def _checks(result) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def _metadata(result, key: str) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)
    ]
    return event.materialization.metadata


def test_healthy_demo_run_materializes_with_float_metadata_and_passing_checks(tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        result = _materialize(tmp_path, instance)
        assert result.success
        assert _checks(result) == {
            "p95_below_500ms": True,
            "error_rate_below_1pct": True,
            "sustained_rate": True,
        }
        meta = _metadata(result, "metrics_history")
        for key in ("p95_ms", "p99_ms", "error_rate", "achieved_rps"):
            assert isinstance(meta[key], dg.FloatMetadataValue), key
        assert 0 < meta["p95_ms"].value < 500
        assert meta["dagster/row_count"].value > 0
        run_meta = _metadata(result, "load_test_run")
        assert run_meta["exit_code"].value == 0 and run_meta["target_kind"].value == "demo"
        # The step's log is quiet (no banner, no per-second progress); the archive keeps it all.
        messages = [e.user_message for e in instance.all_logs(result.run_id)]
        k6_lines = [m for m in messages if "k6" in m or "VUs" in m]
        assert not [m for m in messages if m.startswith("running (") or "Grafana" in m]
        assert any(m.startswith("k6 finished at 4 s") for m in messages), k6_lines
        assert len(k6_lines) < 10, k6_lines
        archived = (tmp_path / "k6" / run_meta["run_id"].value / "k6.log").read_text()
        assert archived.count("running (") >= 4 and "Grafana" in archived
    rows = open_history(tmp_path / "metrics.duckdb").read(trend)
    assert len(rows) == 1 and rows[0]["run_id"] == run_meta["run_id"].value


def test_failing_target_fails_the_error_rate_check_and_still_records_the_run(tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        result = _materialize(tmp_path, instance, demo_error_rate=0.5)
        checks = _checks(result)
        assert checks["error_rate_below_1pct"] is False
        assert checks["p95_below_500ms"] is True  # fast, but failing: the two are kept apart
        assert result.success  # non-blocking: downstream assets still see the failure
        [check] = [c for c in result.get_asset_check_evaluations() if not c.passed]
        assert check.severity == dg.AssetCheckSeverity.ERROR
        meta = _metadata(result, "metrics_history")
        assert 0.3 < meta["error_rate"].value < 0.7
    # The failing run is in the history all the same: that is what the verdict reads.
    assert open_history(tmp_path / "metrics.duckdb").read(trend)[0]["error_rate"] > 0.3


def test_missing_k6_fails_the_load_test_asset_with_a_clear_description(tmp_path, monkeypatch):
    monkeypatch.setenv("KGENTS_K6_BIN", str(tmp_path / "no-k6"))
    with dg.DagsterInstance.ephemeral() as instance:
        result = _materialize(tmp_path, instance)
        assert not result.success
        [failure] = result.get_step_failure_events()
        assert failure.step_key == "load_test_run"
        assert "k6 binary not found" in failure.event_specific_data.error.message
