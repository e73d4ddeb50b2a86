"""Fixtures for the cluster tests.

`cluster`: the API server under test. With `KGENTS_TEST_KUBECONFIG` + `KGENTS_TEST_CONTEXT` set it
is that real cluster (e.g. kind); otherwise the in-process fake (`tests/k8s_api`). Tests that need
fault injection, seeding or the request log use `fake_api` directly and are marked `fake_only`:
against a real cluster run `pytest tests/kube -m "not fake_only"`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kgents_pipeline.kube.access import ClusterAccess
from tests.k8s_api import FakeKubeAPI

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
INTENT = MANIFESTS / "launch" / "intent.yaml"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fake_only: needs the fake API (fault injection, seeding, request log)"
    )


@pytest.fixture(autouse=True)
def _default_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Commands record to the default history unless told otherwise: never the repo's data/."""
    db = tmp_path / "default-history.duckdb"
    monkeypatch.setenv("KGENTS_DB_PATH", str(db))
    return db


@dataclass
class Cluster:
    access: ClusterAccess
    fake: FakeKubeAPI | None  # None against a real cluster


def fast_access(kubeconfig: Path, context: str = "fake", **kw) -> ClusterAccess:
    """Short timeouts and backoff so fault tests stay fast."""
    opts = {"request_timeout_s": 2.0, "retries": 3, "backoff_s": 0.01, **kw}
    return ClusterAccess(mode="kubeconfig", kubeconfig=str(kubeconfig), context=context, **opts)


@pytest.fixture
def fake_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubeAPI]:
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


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    kubeconfig = os.environ.get("KGENTS_TEST_KUBECONFIG")
    if kubeconfig:
        context = os.environ.get("KGENTS_TEST_CONTEXT", "")
        yield Cluster(
            ClusterAccess(mode="kubeconfig", kubeconfig=kubeconfig, context=context), None
        )
        return
    api = FakeKubeAPI().start()
    try:
        yield Cluster(fast_access(api.kubeconfig(tmp_path / "kubeconfig")), api)
    finally:
        api.stop()


def pod(
    namespace: str, name: str, labels: dict, ports: list[int], ip: str, ready: bool = True
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "containers": [
                {"name": "c", "image": "x", "ports": [{"containerPort": p} for p in ports]}
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def seed_workloads(
    fake: FakeKubeAPI,
    *,
    nats_replicas: int = 3,
    ready_nats: int | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """Namespaces' pods as the intent describes them, plus the NATS StatefulSet."""
    from kgents_pipeline.netpol import load_intent, workload_model

    _, pods = workload_model(load_intent(INTENT))
    for ns in _namespaces(pods):
        if fake.get("Namespace", None, ns) is None:
            fake.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    ready_nats = nats_replicas if ready_nats is None else ready_nats
    for p in pods:
        app = p["metadata"]["labels"].get("app.kubernetes.io/name")
        if app in skip or app == "nats":
            continue
        container = {"image": "x", **p["spec"]["containers"][0]}
        status = {
            **p["status"],
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        fake.seed({**p, "spec": {"containers": [container]}, "status": status})
    if "nats" not in skip:
        for i in range(nats_replicas):
            fake.seed(
                pod(
                    "kgents-triad",
                    f"nats-{i}",
                    {"app.kubernetes.io/name": "nats"},
                    [4222, 6222, 8222, 7777],
                    f"10.244.0.{10 + i}",
                    ready=i < ready_nats,
                )
            )
    fake.seed(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "nats", "namespace": "kgents-triad"},
            "spec": {
                "replicas": nats_replicas,
                "serviceName": "nats",
                "selector": {"matchLabels": {"app.kubernetes.io/name": "nats"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "nats"}},
                    "spec": {"containers": [{"name": "nats", "image": "nats"}]},
                },
            },
        }
    )


def _namespaces(pods: list[dict]) -> list[str]:
    return sorted({p["metadata"]["namespace"] for p in pods})
