"""Staged server-side apply against an API server (the fake unless KGENTS_TEST_KUBECONFIG is set)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kgents_pipeline.errors import ClusterError, ManifestError
from kgents_pipeline.kube.apply import ApplyAborted, apply_set, comparable, with_managed_label
from kgents_pipeline.kube.client import FIELD_MANAGER, MANAGED_BY_LABEL, KubeClient
from kgents_pipeline.kube.render import render
from tests.k8s_api import FakeKubeAPI
from tests.kube.conftest import MANIFESTS, fast_access

KUBECTL = str(Path(sys.executable).parent / "kubectl")


def test_second_apply_of_unchanged_manifests_sends_no_real_write(cluster):
    rendered = render(MANIFESTS)
    with KubeClient(cluster.access) as client:
        first = apply_set(client, rendered)
        assert first.ok, first.to_table()
        assert {r.action for r in first.results} <= {"created", "configured", "unchanged"}
        if cluster.fake is not None:
            assert first.counts()["created"] == len(rendered.objects)
            cluster.fake.clear_log()
        second = apply_set(client, rendered)
    assert [r.action for r in second.results] == ["unchanged"] * len(rendered.objects)
    assert [r.resource_version for r in second.results] == [
        r.resource_version for r in first.results
    ]
    if cluster.fake is not None:
        assert cluster.fake.real_writes() == []
        patches = [r for r in cluster.fake.resource_requests() if r.verb == "patch"]
        assert len(patches) == len(rendered.objects)
        assert all(r.dry_run and r.field_manager == FIELD_MANAGER for r in patches)
        assert all(r.content_type.startswith("application/apply-patch+yaml") for r in patches)


@pytest.mark.fake_only
def test_out_of_band_edit_is_reported_as_drift_and_repaired(fake_api: FakeKubeAPI, fake_access):
    rendered = render(MANIFESTS)
    with KubeClient(fake_access) as client:
        apply_set(client, rendered)
        # Someone removes a port from the NATS policy and a label from a namespace (kubectl edit).
        live = fake_api.get("NetworkPolicy", "kgents-triad", "nats")
        ingress = live["spec"]["ingress"][:2]
        fake_api.edit("NetworkPolicy", "kgents-triad", "nats", {"spec": {"ingress": ingress}})
        fake_api.edit(
            "Namespace", None, "kgents-gateway", {"metadata": {"labels": {"kgents.io/tier": None}}}
        )
        fake_api.clear_log()
        third = apply_set(client, rendered)
    by_ref = {r.ref: r for r in third.results}
    # The label removal left no owner: re-applied. The edited ingress list now belongs to
    # kubectl-edit (server-side apply semantics): reported as a conflict with the diff, not forced.
    assert by_ref["Namespace kgents-gateway"].action == "configured"
    assert "+    kgents.io/tier: gateway" in by_ref["Namespace kgents-gateway"].diff
    nats = by_ref["NetworkPolicy kgents-triad/nats"]
    assert nats.action == "failed" and 'conflict with "kubectl-edit"' in nats.error
    assert "+    - port: 8222" in nats.diff
    assert sum(r.action == "unchanged" for r in third.results) == len(rendered.objects) - 2
    assert sorted((w.resource, w.name) for w in fake_api.real_writes()) == [
        ("namespaces", "kgents-gateway")
    ]
    assert (
        fake_api.get("Namespace", None, "kgents-gateway")["metadata"]["labels"]["kgents.io/tier"]
        == "gateway"
    )
    with KubeClient(fake_access) as client:
        repaired = apply_set(client, rendered, force_conflicts=True)
        again = apply_set(client, rendered)
    assert [r.ref for r in repaired.results if r.action == "configured"] == [
        "NetworkPolicy kgents-triad/nats"
    ]
    assert len(fake_api.get("NetworkPolicy", "kgents-triad", "nats")["spec"]["ingress"]) == 3
    assert {r.action for r in again.results} == {"unchanged"}


@pytest.mark.fake_only
def test_conflict_with_another_field_manager_is_reported_not_forced(fake_api, fake_access):
    rendered = render(MANIFESTS)
    with KubeClient(fake_access) as client:
        apply_set(client, rendered)
        fake_api.edit(
            "PodDisruptionBudget",
            "kgents-triad",
            "nats",
            {"spec": {"minAvailable": 1}},
            manager="helm",
        )
        report = apply_set(client, rendered)
        failed = {r.ref: r.error for r in report.failed}
        assert list(failed) == ["PodDisruptionBudget kgents-triad/nats"]
        assert 'conflict with "helm"' in failed["PodDisruptionBudget kgents-triad/nats"]
        assert "force_conflicts" in failed["PodDisruptionBudget kgents-triad/nats"]
        assert (
            fake_api.get("PodDisruptionBudget", "kgents-triad", "nats")["spec"]["minAvailable"] == 1
        )
        forced = apply_set(client, rendered, force_conflicts=True)
    assert {r.ref: r.action for r in forced.results}[
        "PodDisruptionBudget kgents-triad/nats"
    ] == "configured"
    assert fake_api.get("PodDisruptionBudget", "kgents-triad", "nats")["spec"]["minAvailable"] == 2


@pytest.mark.fake_only
def test_every_object_carries_the_managed_by_label_and_orphans_are_reported_not_deleted(
    fake_api, fake_access
):
    rendered = render(MANIFESTS)
    fake_api.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kgents-triad"}})
    fake_api.seed(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "old-allow-all",
                "namespace": "kgents-triad",
                "labels": {MANAGED_BY_LABEL: "kgents-pipeline"},
            },
            "spec": {"podSelector": {}, "ingress": [{}]},
        }
    )
    with KubeClient(fake_access) as client:
        report = apply_set(client, rendered)
    assert report.orphans == ("NetworkPolicy kgents-triad/old-allow-all",)
    assert fake_api.get("NetworkPolicy", "kgents-triad", "old-allow-all") is not None
    assert not any(r.verb in ("delete", "deletecollection") for r in fake_api.requests)
    for obj in rendered.objects:
        live = fake_api.get(obj.kind, obj.namespace, obj.name)
        assert live["metadata"]["labels"][MANAGED_BY_LABEL] == "kgents-pipeline"
        assert [
            m["manager"] for m in live["metadata"]["managedFields"] if m["operation"] == "Apply"
        ] == [FIELD_MANAGER]


@pytest.mark.fake_only
def test_dry_run_writes_nothing_and_previews_objects_in_namespaces_to_be_created(
    fake_api, fake_access
):
    rendered = render(MANIFESTS)
    with KubeClient(fake_access) as client:
        report = apply_set(client, rendered, dry_run=True)
    assert report.dry_run and report.counts()["created"] == len(rendered.objects)
    assert fake_api.real_writes() == []
    assert fake_api.get("Namespace", None, "kgents-triad") is None
    # objects in not-yet-created namespaces are not dry-run on the server (it would 404)
    dry_patched = {(r.resource, r.name) for r in fake_api.resource_requests() if r.verb == "patch"}
    assert all(res == "namespaces" for res, _ in dry_patched)


@pytest.mark.fake_only
def test_missing_namespace_fails_the_objects_in_it_with_a_clear_message(fake_api, fake_access):
    rendered = render(MANIFESTS / "network-policies")  # seed step 1 alone: no Namespaces
    with KubeClient(fake_access) as client:
        report = apply_set(client, rendered)
    assert len(report.failed) == len(rendered.objects)
    assert all(
        "namespace kgents-" in r.error and "does not exist" in r.error for r in report.failed
    )
    assert fake_api.real_writes() == []


@pytest.mark.fake_only
def test_forbidden_aborts_the_apply_with_a_record_of_exactly_what_was_applied(
    fake_api, fake_access
):
    fake_api.inject(
        status=403,
        verb="patch",
        resource="namespaces",
        name="kgents-triad",
        times=None,
        message='namespaces "kgents-triad" is forbidden: User "ci" cannot patch resource "namespaces"',
    )
    rendered = render(MANIFESTS)
    with KubeClient(fake_access) as client, pytest.raises(ApplyAborted) as err:
        apply_set(client, rendered)
    # an environment-level error: one line naming the missing permission, not a per-object failure
    msg = str(err.value)
    assert "\n" not in msg and "may not patch namespaces" in msg and "API group 'core'" in msg
    report = err.value.report
    # every rendered object is in the partial record, in render order
    assert [r.ref for r in report.results] == [o.ref for o in rendered.objects]
    by_ref = {r.ref: r for r in report.results}
    assert by_ref["Namespace kgents-triad"].action == "failed"
    assert "may not patch namespaces" in by_ref["Namespace kgents-triad"].error
    not_attempted = [r for r in report.results if r.error.startswith("not attempted")]
    assert not_attempted and all(r.action == "failed" and not r.written for r in not_attempted)
    # exactly what was applied is on record: what the server received equals what is written
    written = sorted((w.resource, w.namespace, w.name) for w in fake_api.real_writes())
    assert written == sorted(
        ("namespaces", r.namespace, r.name) for r in report.results if r.written
    )
    assert {r.ref for r in report.results if r.written} == {
        r.ref for r in report.results if r.kind == "Namespace" and r.ref < "Namespace kgents-triad"
    }


@pytest.mark.fake_only
def test_forbidden_on_a_namespaced_read_names_the_namespace(fake_api, fake_access):
    fake_api.inject(
        status=403, verb="get", resource="networkpolicies", namespace="kgents-agents", times=None
    )
    with KubeClient(fake_access) as client, pytest.raises(ClusterError) as err:
        client.read("NetworkPolicy", "kgents-agents", "default-deny-ingress")
    msg = str(err.value)
    assert (
        "may not get networkpolicies" in msg
        and "networking.k8s.io" in msg
        and "in namespace kgents-agents" in msg
    )


@pytest.mark.fake_only
@pytest.mark.parametrize("status", [409, 422])
def test_rejected_real_write_fails_that_object_only(fake_api, fake_access, status):
    fake_api.inject(
        status=status,
        verb="patch",
        resource="poddisruptionbudgets",
        dry_run=False,
        message=f"injected {status}",
    )
    rendered = render(MANIFESTS)
    with KubeClient(fake_access) as client:
        report = apply_set(client, rendered)
    assert [r.ref for r in report.failed] == ["PodDisruptionBudget kgents-triad/nats"]
    assert f"injected {status}" in report.failed[0].error
    assert fake_api.get("PodDisruptionBudget", "kgents-triad", "nats") is None
    assert report.counts()["created"] == len(rendered.objects) - 1


@pytest.mark.fake_only
def test_invalid_422_on_dry_run_is_reported_before_any_write(fake_api, fake_access):
    fake_api.inject(
        status=422,
        verb="patch",
        resource="networkpolicies",
        name="redis",
        dry_run=True,
        message='NetworkPolicy.networking.k8s.io "redis" is invalid: spec.ingress[0].ports[0].port: Invalid value',
    )
    with KubeClient(fake_access) as client:
        report = apply_set(client, render(MANIFESTS))
    (failed,) = report.failed
    assert failed.ref == "NetworkPolicy kgents-triad/redis" and "is invalid" in failed.error
    assert not any(w.name == "redis" for w in fake_api.real_writes())


@pytest.mark.fake_only
def test_server_errors_on_safe_requests_are_retried_with_backoff(fake_api, fake_access):
    fake_api.inject(status=500, verb="get", resource="namespaces", times=2)
    fake_api.inject(status=503, verb="patch", dry_run=True, resource="networkpolicies", times=1)
    with KubeClient(fake_access) as client:
        report = apply_set(client, render(MANIFESTS))
    assert report.ok, report.to_table()
    assert all(
        f.hits == f.times + f.hits for f in fake_api.faults
    )  # every injected fault was consumed


@pytest.mark.fake_only
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


@pytest.mark.fake_only
def test_slow_responses_time_out_and_are_retried_only_when_safe(fake_api, fake_kubeconfig):
    access = fast_access(fake_kubeconfig, request_timeout_s=0.3, retries=2)
    fake_api.inject(delay=0.6, verb="list", resource="pods", times=1)
    with KubeClient(access) as client:
        assert client.list_pods() == []  # first attempt timed out, the retry answered
        fake_api.inject(delay=0.6, verb="list", resource="pods", times=None)
        with pytest.raises(ClusterError, match=r"timed out \(0.3s per request\) after 2 attempt"):
            client.list_pods()


@pytest.mark.fake_only
def test_disallowed_kind_is_refused_before_any_request(fake_api, fake_access, tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\n"
    )
    with (
        KubeClient(fake_access) as client,
        pytest.raises(ManifestError, match="kind ConfigMap is not allowed"),
    ):
        apply_set(client, render(tmp_path))
    assert fake_api.resource_requests() == []


@pytest.mark.fake_only
def test_fake_refuses_a_body_namespace_that_differs_from_the_url(fake_api, fake_access):
    from kubernetes.client.exceptions import ApiException

    with KubeClient(fake_access) as client:
        apply_set(client, render(MANIFESTS))
        api = client._api("NetworkingV1Api")
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "x", "namespace": "kgents-agents"},
            "spec": {"podSelector": {}},
        }
        with pytest.raises(ApiException) as err:
            api.patch_namespaced_network_policy(
                "x",
                "kgents-triad",
                body,
                field_manager="t",
                _content_type="application/apply-patch+yaml",
            )
    assert err.value.status == 400 and "does not match the namespace" in err.value.body


def _kubectl(*args: str, kubeconfig: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KUBECTL, f"--kubeconfig={kubeconfig}", "--context=fake", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.fake_only
def test_real_kubectl_server_side_apply_agrees_with_the_pipeline(fake_api, fake_access, tmp_path):
    """Cross-check of the fake: the real kubectl, applying the same render, produces the same
    objects, and `kubectl diff --server-side` sees what our diff sees."""
    assert shutil.which(KUBECTL) or Path(KUBECTL).exists()
    rendered = render(MANIFESTS)
    with KubeClient(fake_access) as client:
        apply_set(client, rendered)
    ours = {
        (o.kind, o.namespace, o.name): comparable(fake_api.get(o.kind, o.namespace, o.name))
        for o in rendered.objects
    }

    other = FakeKubeAPI().start()
    try:
        kc = other.kubeconfig(tmp_path / "kubectl-kubeconfig")
        stream = tmp_path / "rendered.yaml"
        stream.write_text(
            subprocess.run(
                [KUBECTL, "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=True
            ).stdout
        )
        done = _kubectl(
            "apply",
            "--server-side",
            "--field-manager=kgents-pipeline",
            "--validate=false",
            "-f",
            str(stream),
            kubeconfig=kc,
        )
        assert done.returncode == 0, done.stderr
        theirs = {key: comparable(other.get(*key)) for key in ours}
    finally:
        other.stop()
    for key, obj in ours.items():
        obj["metadata"]["labels"].pop(MANAGED_BY_LABEL)  # the only thing we add
        if not obj["metadata"]["labels"]:
            del obj["metadata"]["labels"]
        assert obj == theirs[key], key

    kc = fake_api.kubeconfig(tmp_path / "diff-kubeconfig")
    stream = tmp_path / "applied.yaml"  # what the pipeline sends: the render plus our label
    stream.write_text(yaml.safe_dump_all([with_managed_label(o.body) for o in rendered.objects]))
    same = _kubectl(
        "diff", "--server-side", "--field-manager=kgents-pipeline", "-f", str(stream), kubeconfig=kc
    )
    assert same.returncode == 0, same.stdout + same.stderr
    fake_api.edit(
        "NetworkPolicy",
        "kgents-triad",
        "redis",
        {"spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "cache"}}}},
        manager="kubectl-edit",
    )
    drifted = _kubectl(
        "diff",
        "--server-side",
        "--force-conflicts",
        "--field-manager=kgents-pipeline",
        "-f",
        str(stream),
        kubeconfig=kc,
    )
    assert drifted.returncode == 1, drifted.stderr
    assert "cache" in drifted.stdout and "redis" in drifted.stdout
    with KubeClient(fake_access) as client:
        ours_diff = apply_set(client, rendered, dry_run=True, force_conflicts=True)
    assert [r.ref for r in ours_diff.drifted] == ["NetworkPolicy kgents-triad/redis"]
    assert "cache" in ours_diff.drifted[0].diff
    assert fake_api.real_writes() and not any(
        w.user_agent.startswith("kubectl") for w in fake_api.real_writes()
    )


@pytest.mark.fake_only
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


@pytest.mark.fake_only
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
