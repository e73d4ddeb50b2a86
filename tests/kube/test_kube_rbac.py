"""manifests/rbac/ is least privilege, proven by the real RBAC authorizer: the pipeline applies
and verifies as its ServiceAccount (a TokenRequest token, by kubeconfig and in-cluster), every
rule the ClusterRole grants is needed (without it the pipeline fails with a one-line 403 naming
it), and what the pipeline must never do is refused."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kgents_pipeline.cli import main
from kgents_pipeline.errors import ClusterError
from kgents_pipeline.kube.apply import ApplyAborted, apply_set
from kgents_pipeline.kube.client import KubeClient
from kgents_pipeline.kube.render import render
from kgents_pipeline.kube.validate import validate_objects
from tests.kube.conftest import RBAC, SA_NAME, SA_NAMESPACE, SA_USER
from tests.kube.control_plane import LaunchSet, seed_workloads, wait_for_pdb, wait_until

RBAC_KINDS = (
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
)


def run(*args: str):
    return CliRunner().invoke(main, ["manifests", *map(str, args)], catch_exceptions=False)


def test_rbac_manifests_are_valid_and_bound_to_the_service_account():
    rendered = render(RBAC)
    assert validate_objects(rendered.objects, allowed_kinds=RBAC_KINDS) == []
    binding = next(o for o in rendered.objects if o.kind == "ClusterRoleBinding")
    sa = next(o for o in rendered.objects if o.kind == "ServiceAccount")
    assert binding.body["subjects"] == [
        {"kind": "ServiceAccount", "name": sa.name, "namespace": sa.namespace}
    ]
    role = next(o for o in rendered.objects if o.kind == "ClusterRole")
    assert binding.body["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role.name,
    }
    for rule in role.body["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], "no wildcards"
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs")


def test_the_pipeline_applies_and_verifies_as_its_service_account(
    kube, launch, pipeline_sa, tmp_path
):
    seed_workloads(kube, launch)
    mark = kube.audit.mark()
    db = tmp_path / "h.duckdb"
    applied = run("apply", launch.dir, *pipeline_sa.cli_args(), "--db", db)
    assert applied.exit_code == 0, applied.output
    wait_for_pdb(kube, launch, expected=3, healthy=3)
    verified = run("verify", launch.dir, *pipeline_sa.cli_args(), "--intent", launch.intent)
    assert verified.exit_code == 0, verified.output
    assert "PASSED" in verified.output
    requests = kube.audit.pipeline_requests(mark)
    assert requests and {e.user for e in requests} == {SA_USER}
    assert {e.code for e in requests} <= {200, 201, 404}  # never a 403


def _granted(rules: list[dict]) -> list[tuple[str, str, str]]:
    return [
        (verb, group, resource)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


def test_every_rule_is_needed_without_it_the_pipeline_fails_with_a_403_naming_it(
    kube, pipeline_sa, tmp_path
):
    """Remove each verb on each resource of the ClusterRole in turn: on a fresh launch set,
    `manifests apply` then `manifests verify` as the ServiceAccount stop with exit 2 and one
    line naming exactly what is missing (apply needs `create` as well as `patch` to create)."""
    granted = _granted(pipeline_sa.rules)
    assert len(granted) == 14
    outcomes = {}
    for i, (verb, group, resource) in enumerate(granted):
        launch = LaunchSet(kube, tmp_path / f"case-{i}")
        try:
            with pipeline_sa.without(verb, group, resource):
                db = tmp_path / f"h-{i}.duckdb"
                result = run("apply", launch.dir, *pipeline_sa.cli_args(), "--db", db)
                stage = "apply"
                if result.exit_code == 0:
                    stage = "verify"
                    result = run(
                        "verify", launch.dir, *pipeline_sa.cli_args(), "--intent", launch.intent
                    )
        finally:
            launch.cleanup()
        line = result.output
        outcomes[(verb, resource)] = (
            stage,
            result.exit_code,
            line.count("\n") == 1 and "Traceback" not in line,
            f"may not {verb} {resource} (API group '{group or 'core'}')" in line,
        )
    needed_by_verify = {("list", "pods"), ("list", "statefulsets")}
    assert outcomes == {
        (v, r): ("verify" if (v, r) in needed_by_verify else "apply", 2, True, True)
        for v, _, r in granted
    }


NEVER = [
    # the launch set is never deleted or replaced: nothing is pruned, everything is applied
    ("delete", "namespaces"),
    ("delete", "networkpolicies.networking.k8s.io"),
    ("delete", "poddisruptionbudgets.policy"),
    ("deletecollection", "networkpolicies.networking.k8s.io"),
    ("update", "namespaces"),
    ("update", "networkpolicies.networking.k8s.io"),
    ("update", "poddisruptionbudgets.policy"),
    ("patch", "poddisruptionbudgets.policy", "status"),
    # secrets, workloads and the cluster's own machinery are none of its business
    ("get", "secrets"),
    ("list", "secrets"),
    ("update", "secrets"),
    ("get", "pods"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods", "exec"),
    ("create", "pods", "eviction"),
    ("patch", "statefulsets.apps"),
    ("update", "statefulsets.apps", "scale"),
    ("watch", "namespaces"),
    ("list", "nodes"),
    ("create", "serviceaccounts", "token"),
    ("impersonate", "serviceaccounts"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("*", "*"),
]


def test_kubectl_auth_can_i_says_no_to_what_the_pipeline_must_never_do(kube, pipeline_sa):
    def can_i(verb: str, resource: str, subresource: str = "") -> str:
        done = kube.kubectl(
            "auth", "can-i", verb, resource, f"--subresource={subresource}", "--all-namespaces",
            kubeconfig=pipeline_sa.kubeconfig, check=False,
        )  # fmt: skip
        return done.stdout.strip()

    assert {q: can_i(*q) for q in NEVER} == {q: "no" for q in NEVER}
    assert can_i("patch", "networkpolicies.networking.k8s.io") == "yes"  # the identity works

    # `--list`: everything it may do, beyond what any ServiceAccount may (the default roles)
    def listed(*identity: str, kubeconfig=None) -> set[tuple[str, str]]:
        out = kube.kubectl("auth", "can-i", "--list", *identity, kubeconfig=kubeconfig)
        out = out.stdout.splitlines()[1:]
        return {
            (line.split()[0], verb)
            for line in out
            if line[:1].strip()  # a resource row (non-resource URLs start with blanks)
            for verb in line.rsplit("[", 1)[1].rstrip("]").split()
        }

    anyone = listed(
        "--as=system:serviceaccount:default:default",
        "--as-group=system:serviceaccounts",
        "--as-group=system:authenticated",
    )
    ours = listed(kubeconfig=pipeline_sa.kubeconfig)
    assert sorted(ours - anyone) == sorted(
        [(r, v) for r in ("namespaces", "networkpolicies.networking.k8s.io",
                          "poddisruptionbudgets.policy") for v in ("create", "get", "list", "patch")]
        + [("pods", "list"), ("statefulsets.apps", "list")]
    )  # fmt: skip


def test_forbidden_aborts_the_apply_with_a_record_of_exactly_what_was_applied(
    kube, launch, pipeline_sa
):
    rendered = launch.rendered
    with pipeline_sa.without("patch", "networking.k8s.io", "networkpolicies"):
        mark = kube.audit.mark()
        with KubeClient(pipeline_sa.access()) as client, pytest.raises(ApplyAborted) as err:
            apply_set(client, rendered)
    # an environment-level error: one line naming the missing permission, not a per-object failure
    msg = str(err.value)
    assert "\n" not in msg and "may not patch networkpolicies" in msg
    assert "API group 'networking.k8s.io'" in msg and SA_USER in msg
    report = err.value.report
    # every rendered object is in the partial record, in render order
    assert [r.ref for r in report.results] == [o.ref for o in rendered.objects]
    stopped = next(r for r in report.results if r.kind == "NetworkPolicy")
    assert stopped.action == "failed" and "may not patch networkpolicies" in stopped.error
    not_attempted = [r for r in report.results if r.error.startswith("not attempted")]
    assert not_attempted and all(r.action == "failed" and not r.written for r in not_attempted)
    # exactly what was applied is on record: what the server accepted equals what is written
    accepted = sorted(
        (e.resource, e.name) for e in kube.audit.pipeline_requests(mark, SA_USER) if e.real_write
    )
    resource = {"Namespace": "namespaces", "PodDisruptionBudget": "poddisruptionbudgets"}
    assert accepted == sorted((resource[r.kind], r.name) for r in report.results if r.written)
    assert {r.kind for r in report.results if r.written} == {"Namespace", "PodDisruptionBudget"}


def test_forbidden_on_a_namespaced_read_names_the_namespace(launch, pipeline_sa):
    agents = launch.ns("kgents-agents")
    with (
        pipeline_sa.without("get", "networking.k8s.io", "networkpolicies"),
        KubeClient(pipeline_sa.access()) as client,
        pytest.raises(ClusterError) as err,
    ):
        client.read("NetworkPolicy", agents, "default-deny-ingress")
    msg = str(err.value)
    assert "may not get networkpolicies" in msg and "networking.k8s.io" in msg
    assert f"in namespace {agents}" in msg


def test_in_cluster_mode_applies_and_verifies_as_the_service_account(
    kube, launch, pipeline_sa, tmp_path, monkeypatch
):
    """The pipeline as a pod would run it: KUBERNETES_SERVICE_HOST/PORT, and the ServiceAccount's
    token and CA (from the kube-root-ca.crt ConfigMap the control plane publishes) as files."""
    from urllib.parse import urlparse

    ca = wait_until(
        "kube-root-ca.crt in the ServiceAccount's namespace",
        lambda: (
            kube.core.list_namespaced_config_map(
                SA_NAMESPACE, field_selector="metadata.name=kube-root-ca.crt"
            ).items
        ),
    )[0].data["ca.crt"]
    mounted = tmp_path / "serviceaccount"
    mounted.mkdir()
    (mounted / "token").write_text(pipeline_sa.token)
    (mounted / "ca.crt").write_text(ca)
    (mounted / "namespace").write_text(SA_NAMESPACE)
    server = urlparse(kube.server)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", server.hostname)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    monkeypatch.setenv("KGENTS_SERVICE_ACCOUNT_DIR", str(mounted))
    seed_workloads(kube, launch)
    mark = kube.audit.mark()
    db = tmp_path / "h.duckdb"
    applied = run("apply", launch.dir, "--in-cluster", "--db", db, "--format", "json")
    assert applied.exit_code == 0, applied.output
    assert '"context": "in-cluster"' in applied.output
    wait_for_pdb(kube, launch, expected=3, healthy=3)
    verified = run("verify", launch.dir, "--in-cluster", "--intent", launch.intent, "--db", db)
    assert verified.exit_code == 0, verified.output
    assert "verification (live, context in-cluster): PASSED" in verified.output
    requests = kube.audit.pipeline_requests(mark)
    assert requests and {e.user for e in requests} == {SA_USER}
    assert SA_NAME in SA_USER
