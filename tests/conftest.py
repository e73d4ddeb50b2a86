"""Shared fixtures: real k6 runs against the bundled demo target, real DuckDB files."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from kgents_pipeline.loadtest.runner import LoadTestRequest, RunResult, run_load_test
from kgents_pipeline.loadtest.target import DemoTarget
from tests import postgres as pg

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs the suite on two pytest-xdist workers, except the tests marked `serial`,
    which it runs afterwards one at a time: those sharing the control plane (its cluster-scoped
    objects, such as the pipeline's ClusterRole, and its audit log: tests/kube), the UI (a dg
    dev and a Chromium each) and those comparing measured latencies (marked by hand)."""
    for item in items:
        parts = item.path.relative_to(REPO / "tests").parts
        if parts[0] in ("kube", "ui") or parts[-1] == "test_make_dev.py":
            item.add_marker(pytest.mark.serial)


# The history test suite runs on both backends: a module that sets `BACKENDS = ("local",
# "ducklake")` gets every test that takes `db` (or `vdb`) once per backend, except those marked
# `local_only` (what only a file has: bytes, locks, extended attributes).
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    backends = getattr(metafunc.module, "BACKENDS", None)
    if backends and "backend" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("local_only"):
            backends = ("local",)
        metafunc.parametrize("backend", backends)


@pytest.fixture
def backend() -> str:
    return "local"


@pytest.fixture(scope="session")
def postgres() -> pg.PostgresServer:
    """The session's PostgreSQL server (127.0.0.1; the password in PGPASSWORD only)."""
    try:
        server = pg.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    os.environ["PGPASSWORD"] = server.password  # libpq's environment: subprocesses inherit it
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ducklake_template(postgres: pg.PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A DuckLake catalog migrated once by the code under test; each test gets a copy
    (CREATE DATABASE ... TEMPLATE), which costs 0.05 s instead of a migration's seconds."""
    from kgents_pipeline.history import ducklake
    from kgents_pipeline.history.store import open_history

    name = postgres.create_database("kgents_template")
    location = f"ducklake:postgres:{postgres.conninfo(name)}"
    mp = pytest.MonkeyPatch()
    mp.setenv("KGENTS_DUCKLAKE_DATA_PATH", str(tmp_path_factory.mktemp("lake-template")))
    try:
        with open_history(location).writer():
            pass
    finally:
        ducklake.forget(location)  # a template must have no session open
        mp.undo()
    return name


@pytest.fixture
def ducklake_history(
    postgres: pg.PostgresServer,
    ducklake_template: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """A new, migrated DuckLake history of its own (catalog database and data directory):
    its location, with KGENTS_DUCKLAKE_DATA_PATH set for this test."""
    import contextlib

    import psycopg2

    name = postgres.create_database(f"t_{uuid.uuid4().hex[:16]}", template=ducklake_template)
    data = tmp_path / "lake"
    data.mkdir()
    # The copy records the template's data path: point it at this test's directory (the
    # template holds no data file yet).
    with (
        contextlib.closing(
            psycopg2.connect(postgres.conninfo(name), password=postgres.password)
        ) as con,
        con.cursor() as cur,
    ):
        cur.execute("UPDATE ducklake_metadata SET value = %s WHERE key = 'data_path'", [f"{data}/"])
        con.commit()
    monkeypatch.setenv("KGENTS_DUCKLAKE_DATA_PATH", str(data))
    return f"ducklake:postgres:{postgres.conninfo(name)}"


@pytest.fixture
def db(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Path | str:
    """The history of a test: a DuckDB file, or (backend "ducklake") a DuckLake location."""
    if backend == "ducklake":
        return request.getfixturevalue("ducklake_history")
    return tmp_path / "metrics.duckdb"


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plain_duckdb(location: Path | str):
    """Plain DuckDB SQL on a history, as a person would open it: the file read-only, or the
    DuckLake catalog attached read-only with the packaged extensions (signature checked)."""
    import duckdb

    text = str(location)
    if not text.startswith("ducklake:"):
        return duckdb.connect(text, read_only=True)
    from kgents_pipeline.history import ducklake

    con = duckdb.connect(config={"autoinstall_known_extensions": "false"})
    platform = con.execute("PRAGMA platform").fetchone()[0]
    con.execute(f"SET extension_directory = '{ducklake.extension_directory(platform)}'")
    con.execute("LOAD postgres")
    con.execute("LOAD ducklake")
    con.execute(f"ATTACH '{text}' AS h (READ_ONLY)")
    con.execute("USE h")
    return con
