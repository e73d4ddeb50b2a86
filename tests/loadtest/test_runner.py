"""The k6 runner against the real k6 binary and the bundled demo target."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from kgents_pipeline.errors import LoadTestError
from kgents_pipeline.loadtest.runner import (
    LoadTestRequest,
    Outcome,
    describe_exit,
    parse_duration,
    run_load_test,
)
from tests.conftest import k6_run

RUN_JSON_KEYS = {
    "run_id",
    "started_at",
    "finished_at",
    "exit_code",
    "k6_version",
    "script_sha256",
    "target_url",
    "target_kind",
    "rate",
    "duration_s",
}


def test_healthy_run_archives_run_json_summary_and_points(healthy_run):
    assert healthy_run.exit_code == 0 and healthy_run.outcome is Outcome.PASSED
    files = {p.name for p in healthy_run.run_dir.iterdir()}
    assert {"run.json", "summary.json", "points.ndjson.gz", "k6.log", "saas-health.js"} <= files
    meta = json.loads((healthy_run.run_dir / "run.json").read_text())
    assert set(meta) >= RUN_JSON_KEYS
    assert meta["exit_code"] == 0 and meta["target_kind"] == "demo"
    assert meta["rate"] == 50 and meta["duration_s"] == 2.0
    assert meta["k6_version"].startswith("1.")
    assert len(meta["script_sha256"]) == 64
    summary = json.loads((healthy_run.run_dir / "summary.json").read_text())
    # The summary trend stats we asked for: count and p(99) next to p(95).
    values = summary["metrics"]["http_req_duration{expected_response:true}"]["values"]
    assert values["count"] >= 95 and "p(99)" in values and "p(95)" in values


def test_output_is_streamed_line_by_line_and_auth_header_never_logged(tmp_path):
    lines: list[str] = []
    from kgents_pipeline.loadtest.target import DemoTarget

    with DemoTarget() as demo:
        request = LoadTestRequest(
            demo.url, "demo", rate=20, duration="1s", auth_header="Bearer s3cr3t-token"
        )
        result = run_load_test(request, archive_root=tmp_path, log=lines.append)
    assert result.exit_code == 0
    assert any("running" in line for line in lines)  # k6's own progress lines arrived
    everything = "\n".join(lines) + "".join(p.read_text() for p in result.run_dir.glob("*.json"))
    everything += (result.run_dir / "k6.log").read_text()
    assert "s3cr3t-token" not in everything


def test_missing_k6_binary_is_a_clear_error_and_creates_nothing(tmp_path):
    request = LoadTestRequest("http://127.0.0.1:9", "remote", rate=1, duration="1s")
    with pytest.raises(LoadTestError, match="k6 binary not found"):
        run_load_test(request, archive_root=tmp_path, k6_bin=tmp_path / "no-k6")
    assert list(tmp_path.iterdir()) == []


def test_refused_target_finishes_with_failed_thresholds_not_a_fast_run(tmp_path, free_port):
    result = k6_run(
        tmp_path,
        target_url=f"http://127.0.0.1:{free_port}",
        target_kind="remote",
        rate=20,
        duration="1s",
    )
    assert result.exit_code == 99 and result.outcome is Outcome.THRESHOLDS_FAILED
    summary = json.loads((result.run_dir / "summary.json").read_text())
    ok = summary["metrics"]["http_req_duration{expected_response:true}"]["values"]
    assert ok["count"] == 0  # no request succeeded: its "p(95) = 0" means nothing
    assert summary["metrics"]["errors"]["values"]["rate"] == 1


def test_timeout_stops_k6_which_exits_105_with_the_archive_intact(tmp_path):
    result = k6_run(tmp_path, rate=20, duration="30s", timeout_s=2)
    assert result.outcome is Outcome.TIMED_OUT
    assert result.exit_code == 105  # k6 handled SIGTERM
    meta = json.loads((result.run_dir / "run.json").read_text())
    assert meta["exit_code"] == 105 and meta["finished_at"] is not None
    assert (result.run_dir / "points.ndjson.gz").exists()


def _k6_children() -> list[int]:
    me = str(os.getpid())
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[1] == me and b"k6" in cmd:
            pids.append(int(stat.parent.name))
    return pids


def test_k6_killed_mid_run_is_reported_as_killed(tmp_path):
    holder: dict = {}
    worker = threading.Thread(
        target=lambda: holder.update(result=k6_run(tmp_path, rate=20, duration="20s"))
    )
    worker.start()
    deadline = time.monotonic() + 15
    while not (pids := _k6_children()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pids, "k6 did not start"
    time.sleep(1.0)
    os.kill(pids[0], signal.SIGKILL)
    worker.join(timeout=30)
    result = holder["result"]
    assert result.exit_code == 137 and result.outcome is Outcome.KILLED
    assert not (result.run_dir / "summary.json").exists()
    assert json.loads((result.run_dir / "run.json").read_text())["exit_code"] == 137


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0, Outcome.PASSED),
        (99, Outcome.THRESHOLDS_FAILED),
        (104, Outcome.INVALID_CONFIG),
        (105, Outcome.INTERRUPTED),
        (107, Outcome.SCRIPT_EXCEPTION),
        (108, Outcome.SCRIPT_ABORTED),
        (110, Outcome.MARKED_AS_FAILED),
        (137, Outcome.KILLED),
        (-9, Outcome.KILLED),
        (255, Outcome.K6_ERROR),
        (143, Outcome.INTERRUPTED),
        (42, Outcome.K6_ERROR),
        (None, Outcome.K6_ERROR),
    ],
)
def test_every_k6_exit_code_maps_to_an_explained_outcome(code, outcome):
    got, message = describe_exit(code)
    assert got is outcome and message


def test_bad_request_values_are_refused_before_k6_starts():
    with pytest.raises(LoadTestError, match="target URL"):
        LoadTestRequest("ftp://x", "remote")
    with pytest.raises(LoadTestError, match="rate"):
        LoadTestRequest("http://127.0.0.1:1", "remote", rate=0)
    with pytest.raises(LoadTestError, match="duration"):
        LoadTestRequest("http://127.0.0.1:1", "remote", duration="soon")
    assert parse_duration("1m30s") == 90 and parse_duration("2h") == 7200


def test_run_ids_name_the_machine_so_a_shared_archive_never_collides():
    import datetime as dt

    from kgents_pipeline.loadtest.runner import machine_tag, new_run_id

    at = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)
    here, there = new_run_id(at), new_run_id(at, machine="0badc0")
    assert here.startswith(f"20261130T020000Z-{machine_tag()}-") and len(machine_tag()) == 6
    assert there.startswith("20261130T020000Z-0badc0-") and here != there
