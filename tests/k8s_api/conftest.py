"""Fixtures of the injected-fault tests: the in-process fake API server (`FakeKubeAPI`), used
only for what a real API server cannot do on demand; everything else runs on the real control
plane (tests/kube)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kgents_pipeline.kube.access import ClusterAccess
from tests.k8s_api import FakeKubeAPI
from tests.kube.conftest import fast_access


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubeAPI]:
    # A proxy in the environment must not capture loopback traffic: the client reads proxy variables.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    api = FakeKubeAPI().start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def fake_kubeconfig(fake_api: FakeKubeAPI, tmp_path: Path) -> Path:
    return fake_api.kubeconfig(tmp_path / "kubeconfig", context="fake")


@pytest.fixture
def fake_access(fake_kubeconfig: Path) -> ClusterAccess:
    return fast_access(fake_kubeconfig)
