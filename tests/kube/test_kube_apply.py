"""Staged server-side apply against the real control plane (the faults a real server cannot
produce on demand are injected into the in-process fake, in its own package: test_injected_faults.py)."""

from __future__ import annotations

import json

import pytest
import yaml

from kgents_pipeline.errors import ManifestError
from kgents_pipeline.kube.apply import apply_set, comparable, with_managed_label
from kgents_pipeline.kube.client import FIELD_MANAGER, MANAGED_BY_LABEL, KubeClient
from kgents_pipeline.kube.render import render
from tests.kube.control_plane import LaunchSet, wait_until

KIND = {
    "namespaces": "Namespace",
    "networkpolicies": "NetworkPolicy",
    "poddisruptionbudgets": "PodDisruptionBudget",
}


def written(events) -> list[tuple[str, str | None, str]]:
    """(kind, namespace, name) of every accepted real (non-dry-run) write, sorted."""
    return sorted(
        (KIND[e.resource], None if e.resource == "namespaces" else e.namespace, e.name or "")
        for e in events
        if e.real_write
    )


def keys(objects) -> list[tuple[str, str | None, str]]:
    return sorted((o.kind, o.namespace, o.name) for o in objects)


# --- the real control plane ------------------------------------------------------------------


def test_first_apply_creates_everything_with_our_field_manager_and_label(kube, launch):
    mark = kube.audit.mark()
    with KubeClient(kube.access()) as client:
        report = apply_set(client, launch.rendered)
    objects = launch.rendered.objects
    assert report.ok and report.counts()["created"] == len(objects) == 9, report.to_table()
    assert report.orphans == () and all(r.written for r in report.results)
    for obj in objects:
        live = kube.read(obj.kind, obj.namespace, obj.name)
        assert live["metadata"]["labels"][MANAGED_BY_LABEL] == "kgents-pipeline"
        appliers = [
            m["manager"] for m in live["metadata"]["managedFields"] if m["operation"] == "Apply"
        ]
        assert appliers == [FIELD_MANAGER], obj.ref
    # each object: one read, one dry-run, one write, all as our field manager
    requests = kube.audit.pipeline_requests(mark)
    assert written(requests) == keys(objects)
    patches = [e for e in requests if e.verb == "patch"]
    assert len(patches) == 2 * len(objects) and all(
        e.field_manager == FIELD_MANAGER for e in patches
    )
    assert sum(e.dry_run for e in patches) == len(objects)


def test_second_apply_of_unchanged_manifests_sends_no_real_write(kube, launch):
    objects = launch.rendered.objects

    def our_marks() -> list[tuple[int | None, list[str]]]:
        """Per object: its generation and the time of our field manager's last write."""
        out = []
        for o in objects:
            meta = kube.read(o.kind, o.namespace, o.name)["metadata"]
            times = [m["time"] for m in meta["managedFields"] if m["manager"] == FIELD_MANAGER]
            out.append((meta.get("generation"), times))
        return out

    with KubeClient(kube.access()) as client:
        first = apply_set(client, launch.rendered)
        before = our_marks()
        mark = kube.audit.mark()
        second = apply_set(client, launch.rendered)
    assert first.counts()["created"] == len(objects)
    assert [r.action for r in second.results] == ["unchanged"] * len(objects)
    assert our_marks() == before
    # resourceVersions stay, but for the PDB, whose status the disruption controller writes
    assert [r.resource_version for r in second.results if r.kind != "PodDisruptionBudget"] == [
        r.resource_version for r in first.results if r.kind != "PodDisruptionBudget"
    ]
    # The API server's own log of what it was sent: dry-runs and reads only.
    requests = kube.audit.pipeline_requests(mark)
    assert [e for e in requests if e.is_write and not e.dry_run] == []
    patches = [e for e in requests if e.verb == "patch"]
    assert len(patches) == len(objects)
    assert all(e.dry_run and e.field_manager == FIELD_MANAGER for e in patches)
    assert {e.verb for e in requests} == {"get", "patch", "list"}


def test_out_of_band_edit_is_reported_as_drift_and_repaired(kube, launch):
    triad, gateway = launch.ns("kgents-triad"), launch.ns("kgents-gateway")
    with KubeClient(kube.access()) as client:
        apply_set(client, launch.rendered)
        # Someone removes a port rule from the NATS policy and a label from a namespace.
        ingress = kube.read("NetworkPolicy", triad, "nats")["spec"]["ingress"][:2]
        patch = json.dumps({"spec": {"ingress": ingress}})
        kube.kubectl("-n", triad, "patch", "networkpolicy", "nats", "--type=merge", "-p", patch)
        kube.kubectl("label", "namespace", gateway, "kgents.io/tier-")
        mark = kube.audit.mark()
        third = apply_set(client, launch.rendered)
    by_ref = {r.ref: r for r in third.results}
    # The label removal left no owner: re-applied. The edited ingress list now belongs to
    # kubectl-patch (server-side apply semantics): reported as a conflict with the diff, not forced.
    assert by_ref[f"Namespace {gateway}"].action == "configured"
    assert "+    kgents.io/tier: gateway" in by_ref[f"Namespace {gateway}"].diff
    nats = by_ref[f"NetworkPolicy {triad}/nats"]
    assert nats.action == "failed" and 'conflict with "kubectl-patch"' in nats.error
    assert "+    - port: 8222" in nats.diff
    assert sum(r.action == "unchanged" for r in third.results) == len(launch.rendered.objects) - 2
    assert written(kube.audit.pipeline_requests(mark)) == [("Namespace", None, gateway)]
    assert (
        kube.read("Namespace", None, gateway)["metadata"]["labels"]["kgents.io/tier"] == "gateway"
    )
    with KubeClient(kube.access()) as client:
        repaired = apply_set(client, launch.rendered, force_conflicts=True)
        again = apply_set(client, launch.rendered)
    assert [r.ref for r in repaired.results if r.action == "configured"] == [
        f"NetworkPolicy {triad}/nats"
    ]
    assert len(kube.read("NetworkPolicy", triad, "nats")["spec"]["ingress"]) == 3
    assert {r.action for r in again.results} == {"unchanged"}


def test_conflict_with_another_field_manager_is_reported_not_forced(kube, launch):
    triad = launch.ns("kgents-triad")
    pdb = f"PodDisruptionBudget {triad}/nats"
    with KubeClient(kube.access()) as client:
        apply_set(client, launch.rendered)
        kube.kubectl(
            "-n", triad, "patch", "pdb", "nats", "--field-manager=helm", "--type=merge",
            "-p", '{"spec":{"minAvailable":1}}',
        )  # fmt: skip
        report = apply_set(client, launch.rendered)
        failed = {r.ref: r.error for r in report.failed}
        assert list(failed) == [pdb]
        assert 'conflict with "helm"' in failed[pdb] and "force_conflicts" in failed[pdb]
        assert kube.read("PodDisruptionBudget", triad, "nats")["spec"]["minAvailable"] == 1
        forced = apply_set(client, launch.rendered, force_conflicts=True)
    assert {r.ref: r.action for r in forced.results}[pdb] == "configured"
    assert kube.read("PodDisruptionBudget", triad, "nats")["spec"]["minAvailable"] == 2


def test_orphans_are_reported_and_never_deleted(kube, launch):
    triad = launch.ns("kgents-triad")
    kube.ensure_namespace(triad)
    kube.networking.create_namespaced_network_policy(
        triad,
        {
            "metadata": {"name": "old-allow-all", "labels": {MANAGED_BY_LABEL: "kgents-pipeline"}},
            "spec": {"podSelector": {}, "ingress": [{}]},
        },
    )
    mark = kube.audit.mark()
    with KubeClient(kube.access()) as client:
        report = apply_set(client, launch.rendered)
    assert report.ok and report.orphans == (f"NetworkPolicy {triad}/old-allow-all",)
    assert "carries our label, no longer rendered (not deleted)" in report.to_table()
    assert kube.read("NetworkPolicy", triad, "old-allow-all") is not None
    verbs = {e.verb for e in kube.audit.pipeline_requests(mark)}
    assert verbs.isdisjoint({"delete", "deletecollection"})


def test_dry_run_writes_nothing_and_previews_objects_in_namespaces_to_be_created(kube, launch):
    mark = kube.audit.mark()
    with KubeClient(kube.access()) as client:
        report = apply_set(client, launch.rendered, dry_run=True)
    assert report.dry_run and report.counts()["created"] == len(launch.rendered.objects)
    requests = kube.audit.pipeline_requests(mark)
    assert written(requests) == []
    assert kube.read("Namespace", None, launch.ns("kgents-triad")) is None
    # objects in not-yet-created namespaces are not dry-run on the server (it would 404)
    assert {e.resource for e in requests if e.verb == "patch"} == {"namespaces"}


def test_missing_namespace_is_a_404_on_dry_run_failing_the_objects_in_it(kube, launch):
    rendered = render(launch.dir / "network-policies")  # seed step 1 alone: no Namespaces
    mark = kube.audit.mark()
    with KubeClient(kube.access()) as client:
        report = apply_set(client, rendered)
    assert len(report.failed) == len(rendered.objects) == 4
    for r in report.failed:
        assert f"namespace {r.namespace} does not exist" in r.error
        assert f'namespaces "{r.namespace}" not found' in r.error  # the server's own words
    requests = kube.audit.pipeline_requests(mark)
    assert written(requests) == []
    assert {e.code for e in requests if e.verb == "patch" and e.dry_run} == {404}


def test_invalid_object_is_refused_with_422_on_dry_run_before_any_write(kube, launch):
    redis = launch.dir / "network-policies" / "redis-policy.yaml"
    redis.write_text(redis.read_text().replace("port: 6379", "port: 0"))
    mark = kube.audit.mark()
    with KubeClient(kube.access()) as client:
        report = apply_set(client, render(launch.dir))
    triad = launch.ns("kgents-triad")
    (failed,) = report.failed
    assert failed.ref == f"NetworkPolicy {triad}/redis" and "HTTP 422" in failed.error
    assert "is invalid" in failed.error and "must be between 1 and 65535" in failed.error
    assert report.counts()["created"] == len(report.results) - 1
    assert ("NetworkPolicy", triad, "redis") not in written(kube.audit.pipeline_requests(mark))
    assert kube.read("NetworkPolicy", triad, "redis") is None


def _freeze_pdb_writes(kube, launch) -> str:
    """A ValidatingAdmissionPolicy refusing every PodDisruptionBudget write that is not a
    dry-run in the launch set's namespaces: the real write fails (422) after a clean dry-run."""
    name = f"freeze-pdbs-{launch.suffix}"
    kube.admission.create_validating_admission_policy(
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["policy"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["poddisruptionbudgets"],
                        }
                    ]
                },
                "validations": [
                    {"expression": "request.dryRun == true", "message": "PDBs are frozen here"}
                ],
            },
        }
    )
    kube.admission.create_validating_admission_policy_binding(
        {
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/metadata.name",
                                "operator": "In",
                                "values": launch.namespaces,
                            }
                        ]
                    }
                },
            },
        }
    )
    probe_ns = launch.ns("kgents-sandbox")
    kube.ensure_namespace(probe_ns)
    probe = {"metadata": {"name": "probe"}, "spec": {"maxUnavailable": 1, "selector": {}}}

    def refused() -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            kube.policy.create_namespaced_pod_disruption_budget(probe_ns, probe)
        except ApiException as exc:
            return exc.status == 422
        kube.policy.delete_namespaced_pod_disruption_budget("probe", probe_ns)
        return False

    wait_until("the admission policy to refuse PDB writes", refused)
    return name


def test_rejected_real_write_fails_that_object_only(kube, launch):
    policy = _freeze_pdb_writes(kube, launch)
    try:
        with KubeClient(kube.access()) as client:
            report = apply_set(client, launch.rendered)
    finally:
        kube.admission.delete_validating_admission_policy_binding(policy)
        kube.admission.delete_validating_admission_policy(policy)
    triad = launch.ns("kgents-triad")
    assert [r.ref for r in report.failed] == [f"PodDisruptionBudget {triad}/nats"]
    (failed,) = report.failed
    assert "HTTP 422" in failed.error and "PDBs are frozen here" in failed.error
    assert not failed.written and "write not confirmed" not in failed.error  # refused: no doubt
    assert kube.read("PodDisruptionBudget", triad, "nats") is None
    assert report.counts()["created"] == len(launch.rendered.objects) - 1


def test_admission_refusal_fails_that_object_not_the_whole_apply(kube, launch):
    """A 403 that is not the authorizer's (a namespace being deleted refuses new objects) is
    that object's failure: it names no permission, and the rest of the set is still applied."""
    triad = launch.ns("kgents-triad")
    with KubeClient(kube.access()) as client:
        apply_set(client, launch.rendered)
        kube.networking.delete_namespaced_network_policy("redis", triad)
        kube.core.delete_namespace(triad)  # Terminating; its contents go after 5 s
        report = apply_set(client, launch.rendered)
    failed = {r.ref: r.error for r in report.failed}
    assert list(failed) == [f"NetworkPolicy {triad}/redis"]
    assert "refused (403)" in failed[f"NetworkPolicy {triad}/redis"]
    assert "is being terminated" in failed[f"NetworkPolicy {triad}/redis"]
    assert "manifests/rbac" not in failed[f"NetworkPolicy {triad}/redis"]
    assert sum(r.action == "unchanged" for r in report.results) == len(report.results) - 1


def test_disallowed_kind_is_refused_before_any_request(kube, tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\n"
    )
    mark = kube.audit.mark()
    with (
        KubeClient(kube.access()) as client,
        pytest.raises(ManifestError, match="kind ConfigMap is not allowed"),
    ):
        apply_set(client, render(tmp_path))
    assert kube.audit.pipeline_requests(mark) == []


def test_a_body_namespace_that_differs_from_the_url_is_refused(kube, launch):
    """The typed call names the namespace on the URL: an object can never land in another
    namespace than its own (`utils.create_from_yaml`'s trap)."""
    from kubernetes.client.exceptions import ApiException

    with KubeClient(kube.access()) as client:
        apply_set(client, launch.rendered)
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "x", "namespace": launch.ns("kgents-agents")},
            "spec": {"podSelector": {}},
        }
        with pytest.raises(ApiException) as err:
            client._api("NetworkingV1Api").patch_namespaced_network_policy(
                "x",
                launch.ns("kgents-triad"),
                body,
                field_manager="t",
                _content_type="application/apply-patch+yaml",
            )
    assert err.value.status == 400 and "does not match the namespace" in err.value.body


def test_real_kubectl_server_side_apply_agrees_with_the_pipeline(kube, launch, tmp_path):
    """The real kubectl, applying the same render, produces the same objects, and
    `kubectl diff --server-side` sees what our diff sees."""
    with KubeClient(kube.access()) as client:
        apply_set(client, launch.rendered)
    theirs_set = LaunchSet(kube, tmp_path / "kubectl-manifests")
    try:
        stream = tmp_path / "rendered.yaml"
        stream.write_text(kube.kubectl("kustomize", str(theirs_set.dir)).stdout)
        kube.kubectl("apply", "--server-side", "--field-manager=kgents-pipeline", "-f", str(stream))
        for obj in launch.rendered.objects:
            ours = comparable(kube.read(obj.kind, obj.namespace, obj.name))
            name_there = theirs_set.rename(obj.name.removesuffix(f"-{launch.suffix}"))
            ns_there = obj.namespace and theirs_set.rename(
                obj.namespace.removesuffix(f"-{launch.suffix}")
            )
            theirs = comparable(kube.read(obj.kind, ns_there, name_there))
            ours["metadata"]["labels"].pop(MANAGED_BY_LABEL)  # the only thing we add
            if not ours["metadata"]["labels"]:
                del ours["metadata"]["labels"]
            same_names = json.loads(json.dumps(theirs).replace(theirs_set.suffix, launch.suffix))
            assert ours == same_names, obj.ref
    finally:
        theirs_set.cleanup()

    applied = tmp_path / "applied.yaml"  # what the pipeline sends: the render plus our label
    applied.write_text(
        yaml.safe_dump_all([with_managed_label(o.body) for o in launch.rendered.objects])
    )
    diff = ("diff", "--server-side", "--field-manager=kgents-pipeline", "-f", str(applied))
    same = kube.kubectl(*diff, check=False)
    assert same.returncode == 0, same.stdout + same.stderr
    triad = launch.ns("kgents-triad")
    cache = '{"spec":{"podSelector":{"matchLabels":{"app.kubernetes.io/name":"cache"}}}}'
    kube.kubectl("-n", triad, "patch", "networkpolicy", "redis", "--type=merge", "-p", cache)
    mark = kube.audit.mark()
    drifted = kube.kubectl(*diff, "--force-conflicts", check=False)
    assert drifted.returncode == 1, drifted.stderr
    assert "cache" in drifted.stdout and "redis" in drifted.stdout
    with KubeClient(kube.access()) as client:
        ours_diff = apply_set(client, launch.rendered, dry_run=True, force_conflicts=True)
    assert [r.ref for r in ours_diff.drifted] == [f"NetworkPolicy {triad}/redis"]
    assert "cache" in ours_diff.drifted[0].diff
    assert written(kube.audit.since(mark)) == []  # both diffs are dry-runs
