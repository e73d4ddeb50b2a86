"""`kgents-pipeline manifests ...`: the CLI contract and its exit codes (0 / 1 negative / 2 bad input),
against the real control plane (an injected 5xx alone against the fake)."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from kgents_pipeline.cli import main
from kgents_pipeline.history.db import connect
from tests.kube.conftest import INTENT, MANIFESTS
from tests.kube.control_plane import seed_workloads, wait_for_pdb


def run(*args):
    return CliRunner().invoke(main, ["manifests", *map(str, args)], catch_exceptions=False)


def _one_line(result) -> str:
    assert result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    return result.output


def test_render_prints_the_objects_and_the_sha256():
    result = run("render", MANIFESTS)
    assert result.exit_code == 0
    docs = list(yaml.safe_load_all(result.output))
    assert len(docs) == 9 and result.output.startswith("# sha256: ")
    as_json = json.loads(run("render", MANIFESTS, "--format", "json").output)
    assert as_json["sha256"] in result.output


def test_validate_exit_codes(tmp_path):
    assert run("validate", MANIFESTS).exit_code == 0
    (tmp_path / "kustomization.yaml").write_text("resources: [p.yaml]\n")
    (tmp_path / "p.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: n}\n"
        "spec: {podSelector: {}, ingress: [{ports: [{port: 0, protocol: tcp}]}]}\n"
    )
    bad = run("validate", tmp_path)
    assert bad.exit_code == 1
    assert "p.yaml: NetworkPolicy n/p at spec.ingress[0].ports[0].port" in bad.output
    assert "protocol 'tcp'" in bad.output
    broken = run("validate", tmp_path / "nope")
    assert (
        broken.exit_code == 2
        and broken.output.count("\n") == 1
        and "not a directory" in broken.output
    )


def test_cluster_commands_without_a_context_are_bad_input(kube):
    for cmd in ("diff", "apply", "verify"):
        result = run(cmd, MANIFESTS)
        assert result.exit_code == 2 and "--context" in result.output
    result = run("apply", MANIFESTS, *kube.cli_args(), "--context-allowlist", "kind-kgents")
    assert result.exit_code == 2 and "not in the context allowlist" in result.output


def test_diff_apply_verify_against_the_api(kube, launch, tmp_path):
    args = kube.cli_args()
    db = tmp_path / "h.duckdb"
    triad = launch.ns("kgents-triad")
    seed_workloads(kube, launch)  # the namespaces exist (unlabelled): apply configures them
    drift = run("diff", launch.dir, *args)
    assert drift.exit_code == 1 and f"+++ applied/NetworkPolicy {triad}/nats" in drift.output
    mark = kube.audit.mark()
    dry = run("apply", launch.dir, *args, "--dry-run", "--db", db)
    assert dry.exit_code == 0 and not db.exists()
    assert [e for e in kube.audit.pipeline_requests(mark) if e.real_write] == []
    applied = run("apply", launch.dir, *args, "--db", db, "--format", "json")
    assert applied.exit_code == 0
    assert json.loads(applied.output)["counts"] == {
        "created": 5,
        "configured": 4,
        "unchanged": 0,
        "failed": 0,
    }
    assert run("diff", launch.dir, *args).exit_code == 0
    wait_for_pdb(kube, launch, expected=3, healthy=3)
    verified = run(
        "verify", launch.dir, *args, "--intent", launch.intent, "--format", "json", "--db", db
    )
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["passed"] is True
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM apply_events").fetchone()[0] == 9
        assert con.execute("SELECT count(*) FROM policy_verifications").fetchone()[0] == 1
    kube.kubectl(
        "-n", triad, "patch", "pdb", "nats", "--field-manager=helm", "--type=merge",
        "-p", '{"spec":{"minAvailable":1}}',
    )  # fmt: skip
    wait_for_pdb(kube, launch, expected=3, healthy=3)
    failing = run("verify", launch.dir, *args, "--intent", launch.intent)
    assert failing.exit_code == 1 and "PDB protects quorum FAIL" in failing.output
    conflict = run("apply", launch.dir, *args, "--db", db)
    assert conflict.exit_code == 1 and 'conflict with "helm"' in conflict.output


OTHER_MANAGERS = {
    # kubectl patch: an Update by the manager "kubectl-patch"
    "kubectl patch": ("kubectl-patch", ["patch", "networkpolicy", "redis", "--type=merge"]),
    # kubectl apply --server-side: an Apply by the manager "other", taking the field by force
    "kubectl apply --server-side": (
        "other",
        ["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"],
    ),
}


@pytest.mark.parametrize("how", list(OTHER_MANAGERS))
def test_a_field_taken_by_another_manager_is_drift_refused_then_repaired_by_force(
    kube, launch, tmp_path, how
):
    args, db = kube.cli_args(), tmp_path / "h.duckdb"
    triad = launch.ns("kgents-triad")
    assert run("apply", launch.dir, *args, "--db", db).exit_code == 0
    manager, command = OTHER_MANAGERS[how]
    selector = {"matchLabels": {"app.kubernetes.io/name": "cache"}}
    if how == "kubectl patch":
        kube.kubectl("-n", triad, *command, "-p", json.dumps({"spec": {"podSelector": selector}}))
    else:
        policy = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "redis", "namespace": triad},
            "spec": {"podSelector": selector},
        }
        kube.kubectl(*command, stdin=json.dumps(policy))
    diff = run("diff", launch.dir, *args)
    assert diff.exit_code == 1
    assert f"+++ applied/NetworkPolicy {triad}/redis" in diff.output
    assert f'conflict with "{manager}"' in diff.output
    refused = run("apply", launch.dir, *args, "--db", db)
    assert refused.exit_code == 1 and f'conflict with "{manager}"' in refused.output
    assert "set force_conflicts to take them" in refused.output
    live = kube.read("NetworkPolicy", triad, "redis")
    assert live["spec"]["podSelector"] == selector  # not forced: still theirs
    forced = run("apply", launch.dir, *args, "--force-conflicts", "--db", db, "--format", "json")
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.output)["counts"]["configured"] == 1
    live = kube.read("NetworkPolicy", triad, "redis")
    assert live["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "redis"}}
    assert run("diff", launch.dir, *args).exit_code == 0


def test_forbidden_apply_exits_2_after_recording_exactly_what_was_applied(
    kube, launch, pipeline_sa, tmp_path
):
    db = tmp_path / "h.duckdb"
    with pipeline_sa.without("patch", "networking.k8s.io", "networkpolicies"):
        mark = kube.audit.mark()
        denied = run("apply", launch.dir, *pipeline_sa.cli_args(), "--db", db)
    assert denied.exit_code == 2
    line = _one_line(denied)
    assert "may not patch networkpolicies" in line and "recorded as run cli-" in line
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT kind, name, action, written, error FROM apply_events").fetchall()
    assert len(rows) == 9  # every rendered object: applied, failed, or not attempted
    kinds = {"namespaces": "Namespace", "poddisruptionbudgets": "PodDisruptionBudget"}
    written = {(k, n) for k, n, _, w, _ in rows if w}
    accepted = kube.audit.pipeline_requests(mark, pipeline_sa.user)
    assert written == {(kinds[e.resource], e.name) for e in accepted if e.real_write}
    assert {k for k, _ in written} == {"Namespace", "PodDisruptionBudget"}
    errors = sorted(r[4] or "" for r in rows if r[2] == "failed")
    assert [e for e in errors if not e.startswith("not attempted")] == [
        e for e in errors if e.startswith("forbidden") and "may not patch networkpolicies" in e
    ]
    assert len([e for e in errors if not e.startswith("not attempted")]) == 1
    assert sum(e.startswith("not attempted") for e in errors) == len(errors) - 1 > 0


def _kubeconfig(path, server: str, user: dict) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    return str(path)


def test_unreachable_api_server_is_exit_2_not_drift(tmp_path, free_port):
    kubeconfig = _kubeconfig(
        tmp_path / "kc", f"https://127.0.0.1:{free_port}", {"token": "t"}
    )  # nothing listens there: connection refused
    args = ["--kubeconfig", kubeconfig, "--context", "x", "--timeout", "1"]
    db = tmp_path / "h.duckdb"
    for cmd in ("diff", "apply"):
        result = run(cmd, MANIFESTS, *args)
        assert result.exit_code == 2, result.output
        line = _one_line(result)
        assert "request failed" in line and "apply aborted; 0 object(s) written" in line
    result = run("apply", MANIFESTS, *args, "--db", db)
    assert result.exit_code == 2
    with connect(db, read_only=True) as con:
        assert con.execute(
            "SELECT count(*), count(*) FILTER (WHERE action = 'failed' AND NOT written) "
            "FROM apply_events"
        ).fetchone() == (9, 9)


def test_unauthorized_is_exit_2(kube, tmp_path):
    kubeconfig = kube.token_kubeconfig(tmp_path / "kc", "not-a-token")
    result = run("diff", MANIFESTS, "--kubeconfig", kubeconfig, "--context", "kgents-test")
    assert result.exit_code == 2
    assert "unauthorized (401)" in _one_line(result)


def test_object_refused_by_the_cluster_is_exit_1_not_2(kube, launch, tmp_path):
    """Valid by the schemas (client-side validation passes), refused by the server for this
    object only: exit 1, that object failed, the rest applied."""
    pdb = launch.dir / "nats" / "pdb.yaml"
    pdb.write_text(pdb.read_text().replace("app.kubernetes.io/name: nats", "app: -nats-"))
    result = run("apply", launch.dir, *kube.cli_args(), "--db", tmp_path / "h")
    assert result.exit_code == 1, result.output
    assert f"PodDisruptionBudget {launch.ns('kgents-triad')}/nats" in result.output
    assert "HTTP 422" in result.output and "created 8" in result.output


def test_verify_records_to_the_default_history(kube, launch, _default_db):
    seed_workloads(kube, launch)
    assert run("apply", launch.dir, *kube.cli_args()).exit_code == 0
    wait_for_pdb(kube, launch, expected=3, healthy=3)
    verified = run("verify", launch.dir, *kube.cli_args(), "--intent", launch.intent)
    assert verified.exit_code == 0, verified.output
    with connect(_default_db, read_only=True) as con:  # KGENTS_DB_PATH, as apply uses it
        assert con.execute("SELECT mode, context, passed FROM policy_verifications").fetchall() == [
            ("live", "kgents-test", True)
        ]
        assert con.execute("SELECT count(*) FROM apply_events").fetchone()[0] == 9


def test_every_db_option_names_its_environment_variable():
    for cmd in ("apply", "verify"):
        out = run(cmd, "--help").output
        assert "KGENTS_DB_PATH" in out and "data/metrics.duckdb" in out, out


def test_verify_offline_and_missing_intent():
    assert run("verify", MANIFESTS, "--offline", "--intent", INTENT).exit_code == 0
    missing = run("verify", MANIFESTS, "--offline", "--intent", "nope.yaml")
    assert missing.exit_code == 2 and "intent file nope.yaml does not exist" in missing.output


def test_diff_is_clean_after_apply(kube, launch, tmp_path):
    applied = run("apply", launch.dir, *kube.cli_args(), "--db", tmp_path / "h.duckdb")
    assert applied.exit_code == 0, applied.output
    diff = run("diff", launch.dir, *kube.cli_args())
    assert diff.exit_code == 0, diff.output


def test_tls_failure_is_exit_2(kube, tmp_path):
    """The real server's certificate, checked against the wrong trust (no CA: the system's)."""
    kubeconfig = _kubeconfig(tmp_path / "kc", kube.server, {"token": "t"})
    result = run("diff", MANIFESTS, "--kubeconfig", kubeconfig, "--context", "x")
    assert result.exit_code == 2
    assert "request failed (TLS)" in _one_line(result) and "SSLError" in result.output
