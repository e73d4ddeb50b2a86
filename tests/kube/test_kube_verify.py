"""Verification offline (workload model) and live (read back from the API server), and its record."""

from __future__ import annotations

import json

import pytest

from kgents_pipeline.history.cluster import record_apply, record_not_applied, record_verification
from kgents_pipeline.history.db import connect
from kgents_pipeline.history.store import open_history
from kgents_pipeline.kube.apply import apply_set
from kgents_pipeline.kube.client import KubeClient
from kgents_pipeline.kube.render import render
from kgents_pipeline.kube.verify import check_pdb, field_drift, verify_live, verify_offline
from tests.kube.conftest import INTENT, MANIFESTS, seed_workloads


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


def _applied(fake_api, fake_access, **seed):
    seed_workloads(fake_api, **seed)
    rendered = render(MANIFESTS)
    with KubeClient(fake_access) as client:
        assert apply_set(client, rendered).ok
    return rendered


@pytest.mark.fake_only
def test_live_verification_after_apply_passes(fake_api, fake_access):
    rendered = _applied(fake_api, fake_access)
    with KubeClient(fake_access) as client:
        v = verify_live(client, rendered, INTENT)
    assert v.passed, v.to_table()
    (pdb,) = v.pdbs
    assert pdb.workload == "StatefulSet kgents-triad/nats"
    assert (
        pdb.expected_pods,
        pdb.current_healthy,
        pdb.desired_healthy,
        pdb.disruptions_allowed,
    ) == (3, 3, 2, 1)


@pytest.mark.fake_only
def test_live_drift_missing_label_and_intent_violation_are_found(fake_api, fake_access):
    rendered = _applied(fake_api, fake_access)
    fake_api.edit(
        "Namespace",
        None,
        "kgents-observability",
        {"metadata": {"labels": {"kgents.io/tier": None}}},
    )
    fake_api.edit(
        "NetworkPolicy", "kgents-triad", "redis", {"spec": {"ingress": [{}]}}
    )  # allow all
    with KubeClient(fake_access) as client:
        v = verify_live(client, rendered, INTENT)
    assert {d.ref for d in v.drift} == {
        "Namespace kgents-observability",
        "NetworkPolicy kgents-triad/redis",
    }
    assert v.labels_missing == ("kgents-observability: kgents.io/tier=observability",)
    assert not v.intent_holds and any(x.get("kind") == "unexpected-allow" for x in v.violations)
    assert not v.passed


@pytest.mark.fake_only
def test_deleted_object_is_drift(fake_api, fake_access):
    rendered = _applied(fake_api, fake_access)
    with fake_api._lock:
        del fake_api._store[("networkpolicies", "kgents-agents", "default-deny-ingress")]
    with KubeClient(fake_access) as client:
        v = verify_live(client, rendered, INTENT)
    assert [(d.ref, d.missing) for d in v.drift] == [
        ("NetworkPolicy kgents-agents/default-deny-ingress", True)
    ]


@pytest.mark.fake_only
def test_pdb_does_not_protect_quorum_of_five_replicas(fake_api, fake_access):
    rendered = _applied(fake_api, fake_access, nats_replicas=5)
    with KubeClient(fake_access) as client:
        v = verify_live(client, rendered, INTENT)
    (pdb,) = v.pdbs
    assert not v.pdb_ok and pdb.quorum == 3
    assert any("below quorum" in p for p in pdb.problems)


@pytest.mark.fake_only
def test_unhealthy_nats_pods_put_quorum_at_risk(fake_api, fake_access):
    rendered = _applied(fake_api, fake_access, ready_nats=1)
    with KubeClient(fake_access) as client:
        v = verify_live(client, rendered, INTENT)
    (pdb,) = v.pdbs
    assert (pdb.current_healthy, pdb.disruptions_allowed) == (1, 0)
    assert not pdb.ok and any("quorum already at risk" in p for p in pdb.problems)


@pytest.mark.fake_only
def test_selector_that_matches_no_live_pod_is_reported(fake_api, fake_access):
    rendered = _applied(fake_api, fake_access, skip=("redis",))
    with KubeClient(fake_access) as client:
        v = verify_live(client, rendered, INTENT)
    assert v.unmatched_selectors == ("NetworkPolicy kgents-triad/redis",)
    assert not v.passed


@pytest.mark.fake_only
def test_pdb_status_not_yet_observed_fails_the_pdb_check(fake_api, fake_access):
    rendered = _applied(fake_api, fake_access)
    fake_api.pin_status("PodDisruptionBudget", "kgents-triad", "nats", {})
    with KubeClient(fake_access) as client:
        v = verify_live(client, rendered, INTENT)
    assert not v.pdb_ok and "disruption controller" in " ".join(v.pdbs[0].problems)


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


@pytest.mark.fake_only
def test_results_are_recorded_in_duckdb(fake_api, fake_access, tmp_path):
    db = tmp_path / "h.duckdb"
    seed_workloads(fake_api)
    rendered = render(MANIFESTS)
    with KubeClient(fake_access) as client:
        report = apply_set(client, rendered)
        v = verify_live(client, rendered, INTENT)
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
    assert row[:6] == ("live", "fake", True, 0, True, True)
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
