"""Fixtures for the cluster tests.

`kube`: the real control plane `make kube-up` started (`.kube-test/kubeconfig`, context
`kgents-test`), one per session; the fixture fails, never skips, when it is not up. `launch`: the
launch manifests in namespaces of the test's own, emptied and deleted afterwards. `pipeline_sa`:
the pipeline's ServiceAccount from `manifests/rbac`, with a TokenRequest token and a kubeconfig.

Every test that uses the control plane is marked `real_api`, from the fixtures it uses. What a
real server cannot do on demand (injected 429/5xx, slow and lost responses) is tested apart, on
the in-process fake, in its own package (test_injected_faults.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kgents_pipeline.kube.access import ClusterAccess
from tests.kube.control_plane import MANIFESTS, ControlPlane, LaunchSet, NotUp, wait_until

INTENT = MANIFESTS / "launch" / "intent.yaml"
RBAC = MANIFESTS / "rbac"
SA_NAMESPACE = "kgents-pipeline"
SA_NAME = "kgents-pipeline"
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"

__all__ = ["INTENT", "MANIFESTS", "fast_access"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_api: runs against the real control plane (make kube-up)"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test that uses the control plane (from its fixtures: the mark cannot drift)."""
    for item in items:
        if set(getattr(item, "fixturenames", ())) & {"kube", "launch", "pipeline_sa"}:
            item.add_marker("real_api")


@pytest.fixture(autouse=True)
def _default_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Commands record to the default history unless told otherwise: never the repo's data/."""
    db = tmp_path / "default-history.duckdb"
    monkeypatch.setenv("KGENTS_DB_PATH", str(db))
    return db


# --- the real control plane ------------------------------------------------------------------


@pytest.fixture(scope="session")
def kube() -> ControlPlane:
    try:
        plane = ControlPlane()
    except NotUp as exc:
        why = str(exc).splitlines()[0]
    else:
        plane.clean_leftovers()
        return plane
    pytest.fail(
        f"the test control plane is not up ({why}): run `make kube-up` (make test does it)",
        pytrace=False,
    )


@pytest.fixture
def launch(kube: ControlPlane, tmp_path: Path) -> Iterator[LaunchSet]:
    """The launch set in namespaces of this test's own; emptied and deleted afterwards."""
    launch_set = LaunchSet(kube, tmp_path / "manifests")
    try:
        yield launch_set
    finally:
        launch_set.cleanup()


@dataclass
class PipelineSA:
    """The pipeline's ServiceAccount (manifests/rbac), a TokenRequest token, a kubeconfig."""

    plane: ControlPlane
    token: str
    kubeconfig: Path
    rules: list[dict]  # the ClusterRole's rules as manifests/rbac has them

    user = SA_USER

    def access(self, **kw) -> ClusterAccess:
        opts = {"request_timeout_s": 10.0, "retries": 3, "backoff_s": 0.05, **kw}
        return ClusterAccess(
            mode="kubeconfig", kubeconfig=str(self.kubeconfig), context="kgents-test", **opts
        )

    def cli_args(self) -> list[str]:
        return ["--kubeconfig", str(self.kubeconfig), "--context", "kgents-test"]

    def allowed(self, verb: str, group: str, resource: str, namespace: str | None = None) -> bool:
        """The real authorizer's answer for this identity (a SubjectAccessReview)."""
        review = self.plane.api.sanitize_for_serialization(
            self.plane.authorization.create_subject_access_review(
                {
                    "spec": {
                        "user": SA_USER,
                        "groups": [
                            "system:serviceaccounts",
                            f"system:serviceaccounts:{SA_NAMESPACE}",
                            "system:authenticated",
                        ],
                        "resourceAttributes": {
                            "verb": verb,
                            "group": group,
                            "resource": resource,
                            **({"namespace": namespace} if namespace else {}),
                        },
                    }
                }
            )
        )
        return bool(review["status"].get("allowed"))

    def set_rules(self, rules: list[dict]) -> None:
        """Replace the ClusterRole's rules; wait until the authorizer answers by them."""
        role = self.plane.rbac.read_cluster_role(SA_NAME)
        before = _grants(self.plane.api.sanitize_for_serialization(role.rules))
        role.rules = rules
        self.plane.rbac.replace_cluster_role(SA_NAME, role)
        after = _grants(rules)
        for verb, group, resource in sorted(before ^ after):
            granted = (verb, group, resource) in after
            wait_until(
                f"the RBAC authorizer to {'allow' if granted else 'deny'} {verb} {resource}",
                lambda v=verb, g=group, r=resource, w=granted: self.allowed(v, g, r) == w,
            )

    @contextlib.contextmanager
    def without(self, verb: str, group: str, resource: str) -> Iterator[None]:
        """The ClusterRole minus one verb on one resource, restored afterwards."""
        reduced = []
        for rule in self.rules:
            if group in rule["apiGroups"] and resource in rule["resources"]:
                verbs = [v for v in rule["verbs"] if v != verb]
                if verbs:
                    reduced.append({**rule, "verbs": verbs})
            else:
                reduced.append(rule)
        self.set_rules(reduced)
        try:
            yield
        finally:
            self.set_rules(self.rules)


def _grants(rules: list[dict] | None) -> set[tuple[str, str, str]]:
    """(verb, group, resource) for every combination the rules grant."""
    return {
        (verb, group, resource)
        for rule in rules or []
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.fixture(scope="session")
def _pipeline_sa(kube: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> PipelineSA:
    import yaml

    kube.kubectl("apply", "-k", str(RBAC))
    rules = next(
        doc["rules"]
        for doc in yaml.safe_load_all(kube.kubectl("kustomize", str(RBAC)).stdout)
        if doc["kind"] == "ClusterRole"
    )
    token = kube.kubectl(
        "create", "token", SA_NAME, "-n", SA_NAMESPACE, "--duration=2h"
    ).stdout.strip()
    kubeconfig = kube.token_kubeconfig(tmp_path_factory.mktemp("sa") / "kubeconfig", token)
    return PipelineSA(kube, token, kubeconfig, rules)


@pytest.fixture
def pipeline_sa(_pipeline_sa: PipelineSA) -> PipelineSA:
    """The pipeline's identity with the ClusterRole exactly as manifests/rbac grants it."""
    live = _pipeline_sa.plane.api.sanitize_for_serialization(
        _pipeline_sa.plane.rbac.read_cluster_role(SA_NAME)
    )
    if live.get("rules") != _pipeline_sa.rules:
        _pipeline_sa.set_rules(_pipeline_sa.rules)
    return _pipeline_sa


def fast_access(kubeconfig: Path, context: str = "fake", **kw) -> ClusterAccess:
    """Short timeouts and backoff, so tests of failures (a closed port, injected faults) stay fast."""
    opts = {"request_timeout_s": 2.0, "retries": 3, "backoff_s": 0.01, **kw}
    return ClusterAccess(mode="kubeconfig", kubeconfig=str(kubeconfig), context=context, **opts)
