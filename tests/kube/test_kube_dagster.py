"""The cluster assets, materialized with real Dagster (offline by default, live against the real
control plane)."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from kgents_pipeline.defs.cluster import (
    applied_manifests,
    policy_verification,
    rendered_manifests,
)
from kgents_pipeline.defs.resources import ClusterResource, HistoryResource
from kgents_pipeline.defs.resources import resources as defs
from kgents_pipeline.history.db import connect
from kgents_pipeline.kube.render import render
from tests.kube.conftest import INTENT, MANIFESTS
from tests.kube.control_plane import seed_workloads

ASSETS = [rendered_manifests, applied_manifests, policy_verification]


def materialize(cluster: ClusterResource, db, *, raise_on_error: bool = True):
    return dg.materialize(
        ASSETS,
        resources={"cluster": cluster, "history": HistoryResource(db_path=str(db))},
        raise_on_error=raise_on_error,
    )


def checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def meta(result, node: str) -> dict:
    return result.asset_materializations_for_node(node)[0].metadata


def test_offline_default_renders_validates_and_checks_the_intent(tmp_path):
    db = tmp_path / "h.duckdb"
    result = materialize(ClusterResource(manifests_dir=str(MANIFESTS), intent_path=str(INTENT)), db)
    assert result.success
    rendered = result.asset_materializations_for_node("rendered_manifests")[0]
    assert rendered.tags["dagster/data_version"] == render(MANIFESTS).sha256
    assert meta(result, "applied_manifests")["status"].value == "not applied (offline rehearsal)"
    assert meta(result, "policy_verification")["rehearsal"].value is True
    assert checks(result) == {"intent_holds": True, "no_drift": True, "pdb_protects_quorum": True}
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT DISTINCT action FROM apply_events").fetchall() == [
            ("not_applied",)
        ]
        assert con.execute("SELECT mode, intent_holds FROM policy_verifications").fetchall() == [
            ("offline", True)
        ]


def test_invalid_manifests_fail_the_asset_with_every_issue(tmp_path):
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    pdb = copy / "nats" / "pdb.yaml"
    pdb.write_text(
        pdb.read_text().replace("minAvailable: 2", "minAvailable: 2\n  maxUnavailable: 1")
    )
    result = materialize(
        ClusterResource(manifests_dir=str(copy), intent_path=str(INTENT)),
        tmp_path / "h.duckdb",
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "mutually exclusive" in failure.step_failure_data.user_failure_data.description
    assert failure.step_failure_data.user_failure_data.metadata["issue_count"].value == 1


def test_violated_intent_fails_the_blocking_check(tmp_path):
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    nats = copy / "network-policies" / "nats-policy.yaml"
    nats.write_text(
        nats.read_text().replace("kgents.io/tier: observability", "kgents.io/tier: agents")
    )
    result = materialize(
        ClusterResource(manifests_dir=str(copy), intent_path=str(INTENT)),
        tmp_path / "h.duckdb",
        raise_on_error=False,
    )
    assert checks(result)["intent_holds"] is False
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "intent_holds"
    )
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert policy_verification.check_specs_by_output_name  # declared next to the asset
    assert next(s for s in policy_verification.check_specs if s.name == "intent_holds").blocking


def test_live_mode_applies_then_verifies_and_reapply_writes_nothing(kube, launch, tmp_path):
    seed_workloads(kube, launch)
    cluster = ClusterResource(
        mode="kubeconfig",
        kubeconfig=str(kube.kubeconfig),
        context=kube.context,
        manifests_dir=str(launch.dir),
        intent_path=str(launch.intent),
    )
    db = tmp_path / "h.duckdb"
    # no waiting here: the asset waits for the disruption controller to compute the PDB status
    first = materialize(cluster, db)
    assert meta(first, "applied_manifests")["count_created"].value == 5
    assert checks(first) == {"intent_holds": True, "no_drift": True, "pdb_protects_quorum": True}
    mark = kube.audit.mark()
    second = materialize(cluster, db)
    assert meta(second, "applied_manifests")["count_unchanged"].value == 9
    assert [e for e in kube.audit.pipeline_requests(mark) if e.is_write and not e.dry_run] == []
    with connect(db, read_only=True) as con:
        assert con.execute(
            "SELECT count(DISTINCT run_id), count(*) FROM apply_events"
        ).fetchone() == (2, 18)
        assert (
            con.execute(
                "SELECT count(*) FROM policy_verifications WHERE mode='live' AND passed"
            ).fetchone()[0]
            == 2
        )


def test_live_apply_failure_fails_the_asset_after_recording_what_was_applied(
    kube, launch, pipeline_sa, tmp_path
):
    cluster = ClusterResource(
        mode="kubeconfig",
        kubeconfig=str(pipeline_sa.kubeconfig),
        context="kgents-test",
        manifests_dir=str(launch.dir),
        intent_path=str(launch.intent),
    )
    db = tmp_path / "h.duckdb"
    with pipeline_sa.without("patch", "policy", "poddisruptionbudgets"):
        mark = kube.audit.mark()
        result = materialize(cluster, db, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert (
        "may not patch poddisruptionbudgets"
        in failure.step_failure_data.user_failure_data.description
    )
    with connect(db, read_only=True) as con:
        rows = con.execute(
            "SELECT kind, namespace, name, action, error FROM apply_events"
        ).fetchall()
    # a 403 is environment-level: the apply stops, and every object's outcome is on record
    assert len(rows) == 9
    refused = [r for r in rows if r[3] == "failed" and not (r[4] or "").startswith("not att")]
    assert [(r[0], r[2]) for r in refused] == [("PodDisruptionBudget", "nats")]
    assert "may not patch poddisruptionbudgets" in refused[0][4]
    created = {(r[0], r[2]) for r in rows if r[3] == "created"}
    kinds = {"namespaces": "Namespace", "networkpolicies": "NetworkPolicy"}
    accepted = kube.audit.pipeline_requests(mark, pipeline_sa.user)
    assert created == {(kinds[e.resource], e.name) for e in accepted if e.real_write}
    assert len(created) + 1 + sum((r[4] or "").startswith("not attempted") for r in rows) == 9


def test_resource_is_wired_from_the_environment(monkeypatch, kube, tmp_path):
    monkeypatch.setenv("KGENTS_CLUSTER_MODE", "kubeconfig")
    monkeypatch.setenv("KGENTS_KUBECONFIG", str(kube.kubeconfig))
    monkeypatch.setenv("KGENTS_KUBE_CONTEXT", kube.context)
    monkeypatch.setenv("KGENTS_CONTEXT_ALLOWLIST", "staging")
    monkeypatch.setenv("KGENTS_MANIFESTS_DIR", str(MANIFESTS))
    resource = defs().resources["cluster"]
    mark = kube.audit.mark()
    result = dg.materialize(
        [rendered_manifests, applied_manifests],
        resources={
            "cluster": resource,
            "history": HistoryResource(db_path=str(tmp_path / "h.duckdb")),
        },
        raise_on_error=False,
    )
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "not in the context allowlist" in failure.step_failure_data.user_failure_data.description
    assert kube.audit.pipeline_requests(mark) == []
    monkeypatch.delenv("KGENTS_CLUSTER_MODE")
    assert defs().resources["cluster"].mode == "offline"


def test_code_location_carries_the_cluster_assets_and_checks():
    from kgents_pipeline.definitions import defs as code_location

    definitions = code_location()
    for name in ("rendered_manifests", "applied_manifests", "policy_verification"):
        asset = definitions.resolve_assets_def(name)
        key = dg.AssetKey(name)
        assert asset.group_names_by_key[key] == "cluster"
        assert "kubernetes" in asset.specs_by_key[key].kinds
    assert definitions.resolve_assets_def("applied_manifests").op.pool == "duckdb"
    graph = definitions.resolve_asset_graph()
    assert {
        k.name for k in graph.asset_check_keys if k.asset_key.path == ["policy_verification"]
    } == {
        "intent_holds",
        "no_drift",
        "pdb_protects_quorum",
    }
    assert graph.get(dg.AssetKey("policy_verification")).parent_keys == {
        dg.AssetKey("applied_manifests")
    }


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"KGENTS_CLUSTER_MODE": "bogus"}, "KGENTS_CLUSTER_MODE='bogus': expected one of"),
        ({"KGENTS_CLUSTER_MODE": "kubeconfig", "KGENTS_KUBECONFIG": "kc"}, "KGENTS_KUBE_CONTEXT"),
        ({"KGENTS_CLUSTER_MODE": "kubeconfig", "KGENTS_KUBE_CONTEXT": "x"}, "KGENTS_KUBECONFIG"),
    ],
)
def test_bad_cluster_settings_stop_the_run_before_anything_runs(tmp_path, env, needle):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    exe = Path(sys.executable).parent / "kgents-pipeline"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KGENTS_")}
    started = time.monotonic()
    proc = subprocess.run(
        [str(exe), "run"],
        env={**clean, **env, "DAGSTER_HOME": str(tmp_path), "KGENTS_DB_PATH": str(tmp_path / "h")},
        cwd=MANIFESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert elapsed < 25  # refused while loading the definitions, long before the 30 s load test
    assert not (tmp_path / "h").exists()


def test_defs_accept_the_valid_modes(monkeypatch):
    monkeypatch.setenv("KGENTS_CLUSTER_MODE", "in-cluster")
    assert defs().resources["cluster"].mode.get_value() == "in-cluster"
