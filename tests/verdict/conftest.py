"""Fixtures of the verdict tests: a DuckDB history, an archive root, a signed checklist."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.verdict.synth import signed_checklist


@pytest.fixture(autouse=True)
def _own_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command of these tests examines this test's archive (the `archive` fixture's), never
    the working directory's `data/k6`, which a developer's `make run` fills."""
    monkeypatch.setenv("KGENTS_ARCHIVE_DIR", str(tmp_path / "k6"))


@pytest.fixture
def vdb(tmp_path: Path) -> Path:
    return tmp_path / "metrics.duckdb"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "k6"
    root.mkdir()
    return root


@pytest.fixture
def checklist(tmp_path: Path) -> Path:
    return signed_checklist(tmp_path / "checklist.yaml")
