"""Verification offline (workload model) and live (read back from the real API server, with
pods from the real StatefulSet controller and PDB status from the real disruption controller),
and its record."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from click.testing import CliRunner

from kgents_pipeline.cli import main
from kgents_pipeline.defs.cluster import (
    applied_manifests,
    policy_verification,
    rendered_manifests,
)
from kgents_pipeline.defs.resources import ClusterResource, HistoryResource
from kgents_pipeline.history.cluster import record_apply, record_not_applied, record_verification
from kgents_pipeline.history.db import connect
from kgents_pipeline.history.store import open_history
from kgents_pipeline.kube.apply import apply_set, with_managed_label
from kgents_pipeline.kube.client import KubeClient
from kgents_pipeline.kube.render import render
from kgents_pipeline.kube.verify import check_pdb, field_drift, verify_live, verify_offline
from tests.kube.conftest import INTENT, MANIFESTS
from tests.kube.control_plane import seed_workloads, wait_for_pdb


def test_offline_verification_of_the_repo_manifests_passes():
    v = verify_offline(render(MANIFESTS), INTENT)
    assert v.mode == "offline" and v.passed, v.to_table()
    (pdb,) = v.pdbs
    assert (pdb.replicas, pdb.quorum, pdb.effective_min_available) == (3, 2, 2)


def test_offline_verification_finds_an_intent_violation(tmp_path):
    import shutil

    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    nats = copy / "network-policies" / "nats-policy.yaml"
    nats.write_text(
        nats.read_text().replace("kgents.io/tier: observability", "kgents.io/tier: agents")
    )
    v = verify_offline(render(copy), INTENT)
    assert not v.intent_holds and v.violations and not v.passed


def _applied(kube, launch, **seed):
    seed_workloads(kube, launch, **seed)
    with KubeClient(kube.access()) as client:
        assert apply_set(client, launch.rendered).ok
    return launch.rendered


def test_live_verification_after_apply_passes(kube, launch):
    rendered = _applied(kube, launch)
    wait_for_pdb(kube, launch, expected=3, healthy=3)
    with KubeClient(kube.access()) as client:
        v = verify_live(client, rendered, launch.intent)
    assert v.passed, v.to_table()
    (pdb,) = v.pdbs
    assert pdb.workload == f"StatefulSet {launch.ns('kgents-triad')}/nats"
    assert (
        pdb.expected_pods,
        pdb.current_healthy,
        pdb.desired_healthy,
        pdb.disruptions_allowed,
    ) == (3, 3, 2, 1)


def test_live_drift_missing_label_and_intent_violation_are_found(kube, launch):
    rendered = _applied(kube, launch)
    observability, triad = launch.ns("kgents-observability"), launch.ns("kgents-triad")
    kube.kubectl("label", "namespace", observability, "kgents.io/tier-")
    allow_all = '{"spec":{"ingress":[{}]}}'
    kube.kubectl("-n", triad, "patch", "networkpolicy", "redis", "--type=merge", "-p", allow_all)
    with KubeClient(kube.access()) as client:
        v = verify_live(client, rendered, launch.intent)
    assert {d.ref for d in v.drift} == {
        f"Namespace {observability}",
        f"NetworkPolicy {triad}/redis",
    }
    assert v.labels_missing == (f"{observability}: kgents.io/tier=observability",)
    assert not v.intent_holds and any(x.get("kind") == "unexpected-allow" for x in v.violations)
    assert not v.passed


def test_deleted_object_is_drift(kube, launch):
    rendered = _applied(kube, launch)
    agents = launch.ns("kgents-agents")
    kube.kubectl("-n", agents, "delete", "networkpolicy", "default-deny-ingress")
    with KubeClient(kube.access()) as client:
        v = verify_live(client, rendered, launch.intent)
    assert [(d.ref, d.missing) for d in v.drift] == [
        (f"NetworkPolicy {agents}/default-deny-ingress", True)
    ]


def test_pdb_does_not_protect_quorum_of_five_replicas(kube, launch):
    rendered = _applied(kube, launch, nats_replicas=5)
    wait_for_pdb(kube, launch, expected=5, healthy=5)
    with KubeClient(kube.access()) as client:
        v = verify_live(client, rendered, launch.intent)
    (pdb,) = v.pdbs
    assert not v.pdb_ok and pdb.quorum == 3
    assert any("below quorum" in p for p in pdb.problems)


def test_unhealthy_nats_pods_put_quorum_at_risk(kube, launch):
    rendered = _applied(kube, launch, ready_nats=1)
    wait_for_pdb(kube, launch, expected=3, healthy=1)
    with KubeClient(kube.access()) as client:
        v = verify_live(client, rendered, launch.intent)
    (pdb,) = v.pdbs
    assert (pdb.current_healthy, pdb.disruptions_allowed) == (1, 0)
    assert not pdb.ok and any("quorum already at risk" in p for p in pdb.problems)


def test_selector_that_matches_no_live_pod_is_reported(kube, launch):
    rendered = _applied(kube, launch, skip=("redis",))
    wait_for_pdb(kube, launch, expected=3, healthy=3)
    with KubeClient(kube.access()) as client:
        v = verify_live(client, rendered, launch.intent)
    assert v.unmatched_selectors == (f"NetworkPolicy {launch.ns('kgents-triad')}/redis",)
    assert not v.passed


def test_pdb_status_not_yet_observed_fails_the_pdb_check(kube, launch):
    """What a real API server returns for a PDB the disruption controller has not seen yet (a
    server-side dry-run create: stored as it would be, before any controller runs): a zeroed
    status with no observedGeneration. It must not read as "0 disruptions allowed"."""
    kube.ensure_namespace(launch.ns("kgents-triad"))
    (obj,) = [o for o in launch.rendered.objects if o.kind == "PodDisruptionBudget"]
    with KubeClient(kube.access()) as client:
        fresh = client.apply(with_managed_label(obj.body), dry_run=True, force=False)
    assert fresh["status"] == {
        "currentHealthy": 0,
        "desiredHealthy": 0,
        "disruptionsAllowed": 0,
        "expectedPods": 0,
    }
    check = check_pdb(
        fresh, workload="StatefulSet nats", replicas=3, matched_pods=3, status=fresh["status"]
    )
    assert not check.ok and "disruption controller has not computed" in " ".join(check.problems)


def test_field_drift_ignores_server_defaults_but_not_changed_values():
    desired = {"spec": {"ingress": [{"ports": [{"port": 80}]}]}}
    assert (
        field_drift(
            desired,
            {
                "spec": {
                    "ingress": [{"ports": [{"port": 80, "protocol": "TCP"}]}],
                    "policyTypes": ["Ingress"],
                }
            },
        )
        == []
    )
    assert field_drift(desired, {"spec": {"ingress": [{"ports": [{"port": 81}]}]}}) == [
        "spec.ingress[0].ports[0].port"
    ]
    assert field_drift(desired, {"spec": {"ingress": []}}) == ["spec.ingress"]


def test_pdb_with_max_unavailable_and_percentages():
    pdb = {"metadata": {"name": "n", "namespace": "t"}, "spec": {"maxUnavailable": 1}}
    assert check_pdb(pdb, workload="w", replicas=3, matched_pods=3, status=None).ok
    pdb["spec"] = {"minAvailable": "50%"}
    assert not check_pdb(
        pdb, workload="w", replicas=4, matched_pods=4, status=None
    ).ok  # keeps 2 of 4, quorum 3


def test_results_are_recorded_in_duckdb(kube, launch, tmp_path):
    db = tmp_path / "h.duckdb"
    seed_workloads(kube, launch)
    rendered = launch.rendered
    with KubeClient(kube.access()) as client:
        report = apply_set(client, rendered)
        wait_for_pdb(kube, launch, expected=3, healthy=3)
        v = verify_live(client, rendered, launch.intent)
    open_history(db).write(record_apply, "run-1", report)
    open_history(db).write(record_apply, "run-1", report)  # idempotent per run
    open_history(db).write(record_not_applied, "run-0", rendered)
    open_history(db).write(record_verification, "run-1", v)
    with connect(db, read_only=True) as con:
        actions = con.execute(
            "SELECT action, count(*) FROM apply_events WHERE run_id='run-1' GROUP BY 1"
        ).fetchall()
        assert sorted(actions) == [("configured", 4), ("created", 5)]
        assert (
            con.execute("SELECT count(*) FROM apply_events WHERE action='not_applied'").fetchone()[
                0
            ]
            == 9
        )
        row = con.execute(
            "SELECT mode, context, intent_holds, drift_count, pdb_ok, passed, violations, rendered_sha256 "
            "FROM policy_verifications WHERE run_id='run-1'"
        ).fetchone()
    assert row[:6] == ("live", "kgents-test", True, 0, True, True)
    assert json.loads(row[6]) == [] and row[7] == rendered.sha256


def test_selector_checks_use_the_netpol_matcher_and_refuse_unknown_operators():
    from kgents_pipeline.errors import PolicyError
    from kgents_pipeline.kube.render import RenderedObject
    from kgents_pipeline.kube.verify import unmatched_selectors

    def policy(selector: dict) -> RenderedObject:
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"podSelector": selector},
        }
        return RenderedObject("NetworkPolicy", "networking.k8s.io/v1", "n", "p", body, "p.yaml")

    pods = [{"metadata": {"namespace": "n", "name": "a", "labels": {"app": "web"}}}]
    notin = {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}
    assert unmatched_selectors([policy(notin)], pods) == []
    bogus = {"matchExpressions": [{"key": "app", "operator": "Equals", "values": ["db"]}]}
    with pytest.raises(PolicyError, match="operator 'Equals'"):
        unmatched_selectors([policy(bogus)], pods)  # was: silently matched every pod


def test_pdb_evidence_fails_when_nats_is_scaled_to_two(kube, launch, tmp_path):
    """The PDB for real: pods from the StatefulSet controller, status from the disruption
    controller, read by `manifests verify`, recorded, judged by the verdict's `pdb` rule, and
    by the policy_verification asset's check."""
    db = tmp_path / "h.duckdb"
    cli = [*kube.cli_args(), "--intent", str(launch.intent), "--db", str(db), "--format", "json"]

    def verify() -> tuple[int, dict]:
        result = CliRunner().invoke(main, ["manifests", "verify", str(launch.dir), *cli])
        return result.exit_code, json.loads(result.output)

    def pdb_reason() -> dict:
        result = CliRunner().invoke(main, ["verdict", "--db", str(db), "--format", "json"])
        return {r["rule"]: r for r in json.loads(result.output)["reasons"]}["pdb"]

    _applied(kube, launch)
    wait_for_pdb(kube, launch, expected=3, healthy=3)
    code, three = verify()
    assert code == 0 and three["pdb_ok"] is True
    assert pdb_reason()["passed"] is True

    triad = launch.ns("kgents-triad")
    kube.kubectl("-n", triad, "scale", "statefulset", "nats", "--replicas=2")
    pdb = wait_for_pdb(kube, launch, expected=2, healthy=2)
    assert (pdb["status"]["desiredHealthy"], pdb["status"]["disruptionsAllowed"]) == (2, 0)
    code, two = verify()
    assert code == 1 and two["pdb_ok"] is False and two["intent_holds"] is True
    (check,) = two["pdbs"]
    assert (check["replicas"], check["quorum"], check["disruptions_allowed"]) == (2, 2, 0)
    assert any("every voluntary disruption" in p for p in check["problems"])
    reason = pdb_reason()  # judged on the newest live verification: this one
    assert reason["passed"] is False and "does not protect quorum" in reason["message"]
    assert reason["blocks"] == "NOT_READY"  # failed on evidence, not for want of it

    cluster = ClusterResource(
        mode="kubeconfig",
        kubeconfig=str(kube.kubeconfig),
        context=kube.context,
        manifests_dir=str(launch.dir),
        intent_path=str(launch.intent),
    )
    result = dg.materialize(
        [rendered_manifests, applied_manifests, policy_verification],
        resources={"cluster": cluster, "history": HistoryResource(db_path=str(db))},
    )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"intent_holds": True, "no_drift": True, "pdb_protects_quorum": False}


def test_an_error_lint_that_fails_the_intent_is_shown_with_the_failure(kube, launch):
    """The live intent check reads every policy in the cluster: a policy elsewhere whose
    podSelector-only peer can only mean pods of another namespace fails the intent with no
    violation; the table says which policy and why instead of a bare FAIL."""
    rendered = _applied(kube, launch)
    wait_for_pdb(kube, launch, expected=3, healthy=3)
    gateway = launch.ns("kgents-gateway")
    kube.networking.create_namespaced_network_policy(
        gateway,
        {
            "metadata": {"name": "from-nats"},
            "spec": {
                "podSelector": {},
                "ingress": [
                    {"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "nats"}}}]}
                ],
            },
        },
    )
    with KubeClient(kube.access()) as client:
        v = verify_live(client, rendered, launch.intent)
    assert not v.intent_holds and v.violations == () and not v.passed
    table = v.to_table()
    assert "intent holds        FAIL (0 violation(s), 1 error lint(s))" in table
    assert f"lint peer-own-namespace: NetworkPolicy {gateway}/from-nats:" in table
