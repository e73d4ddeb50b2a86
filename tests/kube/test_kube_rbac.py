"""manifests/rbac/ is least privilege: it covers every request the pipeline makes, and every rule
it grants is used by some request (compared both ways with the fake API's request log)."""

from __future__ import annotations

import pytest

from kgents_pipeline.kube.apply import apply_set
from kgents_pipeline.kube.client import KubeClient
from kgents_pipeline.kube.render import render
from kgents_pipeline.kube.validate import validate_objects
from kgents_pipeline.kube.verify import verify_live
from tests.kube.conftest import INTENT, MANIFESTS, seed_workloads

RBAC = MANIFESTS / "rbac"
RBAC_KINDS = (
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
)


def granted() -> set[tuple[str, str, str, str | None]]:
    """(verb, group, resource, namespace-or-None-for-cluster-wide) the rbac manifests grant."""
    rendered = render(RBAC)
    out = set()
    for obj in rendered.objects:
        if obj.kind not in ("ClusterRole", "Role"):
            continue
        scope = obj.namespace if obj.kind == "Role" else None
        for rule in obj.body.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], "no wildcards"
            assert not rule.get("resourceNames") and not rule.get("nonResourceURLs")
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        out.add((verb, group, resource, scope))
    return out


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


@pytest.mark.fake_only
def test_role_covers_every_request_the_pipeline_makes_and_nothing_more(fake_api, fake_access):
    rendered = render(MANIFESTS)
    with KubeClient(fake_access) as client:
        apply_set(client, rendered, dry_run=True)  # diff
        apply_set(client, rendered)  # creates (apply upsert: patch + create)
        seed_workloads(fake_api)
        fake_api.edit(
            "PodDisruptionBudget",
            "kgents-triad",
            "nats",
            {"spec": {"minAvailable": 1}},
            manager="helm",
        )
        apply_set(client, rendered, force_conflicts=True)  # configures
        verify_live(client, rendered, INTENT)
    requested = {(r.verb, r.group, r.resource, r.namespace) for r in fake_api.resource_requests()}
    rules = granted()

    def covered(req):
        verb, group, resource, ns = req
        return (verb, group, resource, None) in rules or (verb, group, resource, ns) in rules

    assert {r for r in requested if not covered(r)} == set(), "requests the role does not allow"
    used = {
        (v, g, res, s)
        for (v, g, res, s) in rules
        if any(
            rv == v and rg == g and rr == res and (s is None or rn == s)
            for rv, rg, rr, rn in requested
        )
    }
    assert rules - used == set(), "rules no request needs"
