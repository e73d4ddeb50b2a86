"""Shared fixtures: real k6 runs against the bundled demo target, real DuckDB files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kgents_pipeline.loadtest.runner import LoadTestRequest, RunResult, run_load_test
from kgents_pipeline.loadtest.target import DemoTarget

REPO = Path(__file__).resolve().parents[1]


def k6_run(
    archive: Path,
    *,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    rate: int = 50,
    duration: str = "2s",
    target_url: str | None = None,
    target_kind: str = "demo",
    timeout_s: float | None = None,
    log=lambda line: None,
) -> RunResult:
    """One short real k6 run; against a fresh demo target unless `target_url` is given."""
    if target_url is not None:
        request = LoadTestRequest(
            target_url, target_kind, rate=rate, duration=duration, timeout_s=timeout_s
        )
        return run_load_test(request, archive_root=archive, log=log)
    with DemoTarget(latency_ms=latency_ms, error_rate=error_rate) as demo:
        request = LoadTestRequest(
            demo.url, target_kind, rate=rate, duration=duration, timeout_s=timeout_s
        )
        return run_load_test(request, archive_root=archive, log=log)


@pytest.fixture(scope="session")
def healthy_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """A healthy 2 s run at 50 req/s, archived once for the session. Copy before mutating."""
    return k6_run(tmp_path_factory.mktemp("archive"))


@pytest.fixture
def run_copy(healthy_run: RunResult, tmp_path: Path) -> Path:
    """A private copy of the healthy run's directory (same run_id), safe to damage."""
    dst = tmp_path / "k6" / healthy_run.run_id
    shutil.copytree(healthy_run.run_dir, dst)
    return dst


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "metrics.duckdb"


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
