"""What a real API server cannot do on demand, injected into the in-process fake: 429/5xx
(safe requests retried with backoff, a real write never retried), slow answers (timeouts), a
timed-out write recorded as unconfirmed, a lost response confirmed by reading back, a 409 racing
the write between our dry-run and our write, and how the command line reports a server error.
Everything else about apply, verify and the command line runs on the real control plane
(tests/kube)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kgents_pipeline.cli import main
from kgents_pipeline.errors import ClusterError
from kgents_pipeline.kube.apply import apply_set
from kgents_pipeline.kube.client import KubeClient
from kgents_pipeline.kube.render import render
from tests.kube.conftest import fast_access
from tests.kube.control_plane import MANIFESTS

pytestmark = pytest.mark.fake_api
INTENT = MANIFESTS / "launch" / "intent.yaml"


def fake_args(kubeconfig) -> list[str]:
    return ["--kubeconfig", str(kubeconfig), "--context", "fake", "--timeout", "2"]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_server_errors_on_safe_requests_are_retried_with_backoff(fake_api, fake_access, status):
    fake_api.inject(status=status, verb="get", resource="namespaces", times=2)
    fake_api.inject(status=status, verb="patch", dry_run=True, resource="networkpolicies")
    with KubeClient(fake_access) as client:
        report = apply_set(client, render(MANIFESTS))
    assert report.ok, report.to_table()
    assert all(f.times == 0 for f in fake_api.faults)  # every injected fault was consumed
    assert [f.hits for f in fake_api.faults] == [2, 1]


def test_server_error_on_a_real_write_is_not_retried(fake_api, fake_access):
    fake_api.inject(
        status=500, verb="patch", resource="namespaces", name="kgents-agents", dry_run=False
    )
    with KubeClient(fake_access) as client:
        report = apply_set(client, render(MANIFESTS))
    writes = [
        w
        for w in fake_api.real_writes()
        if w.name == "kgents-agents" and w.resource == "namespaces"
    ]
    assert len(writes) == 1
    failed = {r.ref: r.error for r in report.failed}
    assert "not retried" in failed["Namespace kgents-agents"]


def test_conflict_on_the_real_write_after_a_clean_dry_run_fails_that_object_only(
    fake_api, fake_access
):
    """Another writer between our dry-run and our write: a race no real server produces on
    demand. That object fails with the conflict; the rest is applied."""
    fake_api.inject(
        status=409,
        verb="patch",
        resource="poddisruptionbudgets",
        dry_run=False,
        message='Apply failed with 1 conflict: conflict with "helm": .spec.minAvailable',
    )
    with KubeClient(fake_access) as client:
        report = apply_set(client, render(MANIFESTS))
    assert [r.ref for r in report.failed] == ["PodDisruptionBudget kgents-triad/nats"]
    assert 'conflict with "helm"' in report.failed[0].error
    assert fake_api.get("PodDisruptionBudget", "kgents-triad", "nats") is None
    assert report.counts()["created"] == len(report.results) - 1


def test_slow_responses_time_out_and_are_retried_only_when_safe(fake_api, fake_kubeconfig):
    access = fast_access(fake_kubeconfig, request_timeout_s=0.3, retries=2)
    fake_api.inject(delay=0.6, verb="list", resource="pods", times=1)
    with KubeClient(access) as client:
        assert client.list_pods() == []  # first attempt timed out, the retry answered
        fake_api.inject(delay=0.6, verb="list", resource="pods", times=None)
        with pytest.raises(ClusterError, match=r"timed out \(0.3s per request\) after 2 attempt"):
            client.list_pods()


def test_timed_out_write_is_recorded_as_unconfirmed_and_a_rerun_converges(
    fake_api, fake_kubeconfig
):
    import time

    access = fast_access(fake_kubeconfig, request_timeout_s=0.3)
    fake_api.inject(
        delay=0.6, verb="patch", resource="namespaces", name="kgents-agents", dry_run=False
    )
    rendered = render(MANIFESTS)
    with KubeClient(access) as client:
        first = apply_set(client, rendered)
        failed = {r.ref: r.error for r in first.failed}
        assert set(failed) == {
            "Namespace kgents-agents",
            "NetworkPolicy kgents-agents/default-deny-ingress",
        }
        assert "write not confirmed" in failed["Namespace kgents-agents"]
        assert "not retried" in failed["Namespace kgents-agents"]
        assert sum(1 for w in fake_api.real_writes() if w.name == "kgents-agents") == 1
        time.sleep(0.5)  # the server finishes the write it was still holding
        second = apply_set(client, rendered)
    assert second.ok
    actions = {r.ref: r.action for r in second.results}
    assert actions["Namespace kgents-agents"] == "unchanged"
    assert actions["NetworkPolicy kgents-agents/default-deny-ingress"] == "created"


def test_lost_response_of_an_applied_write_is_confirmed_by_reading_back(fake_api, fake_access):
    fake_api.inject(
        status=504,
        after=True,
        verb="patch",
        resource="networkpolicies",
        name="redis",
        dry_run=False,
    )
    with KubeClient(fake_access) as client:
        report = apply_set(client, render(MANIFESTS))
    assert report.ok
    redis = {r.ref: r for r in report.results}["NetworkPolicy kgents-triad/redis"]
    assert redis.action == "created" and redis.written
    assert "read back shows the object applied" in redis.error and "HTTP 504" in redis.error
    assert (
        redis.resource_version
        == fake_api.get("NetworkPolicy", "kgents-triad", "redis")["metadata"]["resourceVersion"]
    )


def test_api_faults_surface_as_one_line_or_exit_1(fake_api, fake_kubeconfig):
    fake_api.inject(status=500, verb="list", resource="pods", times=None)
    result = CliRunner().invoke(
        main,
        [
            "manifests",
            "verify",
            str(MANIFESTS),
            *fake_args(fake_kubeconfig),
            "--intent",
            str(INTENT),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "list pods (cluster scope): HTTP 500" in result.output
