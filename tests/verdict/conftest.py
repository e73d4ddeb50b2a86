"""Fixtures of the verdict tests: a DuckDB history, an archive root, a signed checklist."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.verdict.synth import signed_checklist


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
