"""`kgents-pipeline manifests ...`: the CLI contract and its exit codes (0 / 1 negative / 2 bad input)."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from kgents_pipeline.cli import main
from kgents_pipeline.history.db import connect
from tests.kube.conftest import INTENT, MANIFESTS, seed_workloads


def run(*args: str):
    return CliRunner().invoke(main, ["manifests", *args], catch_exceptions=False)


def cluster_args(kubeconfig) -> list[str]:
    return ["--kubeconfig", str(kubeconfig), "--context", "fake", "--timeout", "2"]


def test_render_prints_the_objects_and_the_sha256():
    result = run("render", str(MANIFESTS))
    assert result.exit_code == 0
    docs = list(yaml.safe_load_all(result.output))
    assert len(docs) == 9 and result.output.startswith("# sha256: ")
    as_json = json.loads(run("render", str(MANIFESTS), "--format", "json").output)
    assert as_json["sha256"] in result.output


def test_validate_exit_codes(tmp_path):
    assert run("validate", str(MANIFESTS)).exit_code == 0
    (tmp_path / "kustomization.yaml").write_text("resources: [p.yaml]\n")
    (tmp_path / "p.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: n}\n"
        "spec: {podSelector: {}, ingress: [{ports: [{port: 0, protocol: tcp}]}]}\n"
    )
    bad = run("validate", str(tmp_path))
    assert bad.exit_code == 1
    assert "p.yaml: NetworkPolicy n/p at spec.ingress[0].ports[0].port" in bad.output
    assert "protocol 'tcp'" in bad.output
    broken = run("validate", str(tmp_path / "nope"))
    assert (
        broken.exit_code == 2
        and broken.output.count("\n") == 1
        and "not a directory" in broken.output
    )


def test_cluster_commands_without_a_context_are_bad_input(tmp_path, fake_kubeconfig):
    for cmd in ("diff", "apply", "verify"):
        result = run(cmd, str(MANIFESTS))
        assert result.exit_code == 2 and "--context" in result.output
    result = run(
        "apply",
        str(MANIFESTS),
        "--kubeconfig",
        str(fake_kubeconfig),
        "--context",
        "fake",
        "--context-allowlist",
        "kind-kgents",
    )
    assert result.exit_code == 2 and "not in the context allowlist" in result.output


@pytest.mark.fake_only
def test_diff_apply_verify_against_the_api(fake_api, fake_kubeconfig, tmp_path):
    args = cluster_args(fake_kubeconfig)
    db = tmp_path / "h.duckdb"
    seed_workloads(fake_api)
    drift = run("diff", str(MANIFESTS), *args)
    assert drift.exit_code == 1 and "+++ applied/NetworkPolicy kgents-triad/nats" in drift.output
    dry = run("apply", str(MANIFESTS), *args, "--dry-run", "--db", str(db))
    assert dry.exit_code == 0 and fake_api.real_writes() == [] and not db.exists()
    applied = run("apply", str(MANIFESTS), *args, "--db", str(db), "--format", "json")
    assert applied.exit_code == 0
    assert json.loads(applied.output)["counts"] == {
        "created": 5,
        "configured": 4,
        "unchanged": 0,
        "failed": 0,
    }
    assert run("diff", str(MANIFESTS), *args).exit_code == 0
    verified = run(
        "verify",
        str(MANIFESTS),
        *args,
        "--intent",
        str(INTENT),
        "--format",
        "json",
        "--db",
        str(db),
    )
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["passed"] is True
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM apply_events").fetchone()[0] == 9
        assert con.execute("SELECT count(*) FROM policy_verifications").fetchone()[0] == 1
    fake_api.edit(
        "PodDisruptionBudget", "kgents-triad", "nats", {"spec": {"minAvailable": 1}}, manager="helm"
    )
    failing = run("verify", str(MANIFESTS), *args, "--intent", str(INTENT))
    assert failing.exit_code == 1 and "PDB protects quorum FAIL" in failing.output
    conflict = run("apply", str(MANIFESTS), *args, "--db", str(db))
    assert conflict.exit_code == 1 and 'conflict with "helm"' in conflict.output


@pytest.mark.fake_only
def test_api_faults_surface_as_one_line_or_exit_1(fake_api, fake_kubeconfig, tmp_path):
    args = cluster_args(fake_kubeconfig)
    fake_api.inject(status=500, verb="list", resource="pods", times=None)
    result = run("verify", str(MANIFESTS), *args, "--intent", str(INTENT))
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "list pods (cluster scope): HTTP 500" in result.output


def _one_line(result) -> str:
    assert result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    return result.output


@pytest.mark.fake_only
def test_forbidden_apply_exits_2_after_recording_exactly_what_was_applied(
    fake_api, fake_kubeconfig, tmp_path
):
    db = tmp_path / "h.duckdb"
    fake_api.inject(status=403, verb="patch", resource="networkpolicies", times=None)
    denied = run("apply", str(MANIFESTS), *cluster_args(fake_kubeconfig), "--db", str(db))
    assert denied.exit_code == 2
    line = _one_line(denied)
    assert "may not patch networkpolicies" in line and "recorded as run cli-" in line
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT kind, name, action, written, error FROM apply_events").fetchall()
    assert len(rows) == 9  # every rendered object: applied, failed, or not attempted
    kinds = {"namespaces": "Namespace", "poddisruptionbudgets": "PodDisruptionBudget"}
    written = {(k, n) for k, n, _, w, _ in rows if w}
    assert written == {(kinds[w.resource], w.name) for w in fake_api.real_writes()}
    assert {k for k, _ in written} == {"Namespace", "PodDisruptionBudget"}
    errors = sorted(r[4] or "" for r in rows if r[2] == "failed")
    assert [e for e in errors if not e.startswith("not attempted")] == [
        e for e in errors if e.startswith("forbidden") and "may not patch networkpolicies" in e
    ]
    assert len([e for e in errors if not e.startswith("not attempted")]) == 1
    assert sum(e.startswith("not attempted") for e in errors) == len(errors) - 1 > 0


@pytest.mark.fake_only
def test_unreachable_api_server_is_exit_2_not_drift(tmp_path):
    from tests.k8s_api import FakeKubeAPI

    api = FakeKubeAPI().start()
    kubeconfig = api.kubeconfig(tmp_path / "kc")
    api.stop()  # connection refused from now on
    db = tmp_path / "h.duckdb"
    for cmd in ("diff", "apply"):
        result = run(cmd, str(MANIFESTS), *cluster_args(kubeconfig), "--timeout", "1")
        assert result.exit_code == 2, result.output
        line = _one_line(result)
        assert "request failed" in line and "apply aborted; 0 object(s) written" in line
    result = run("apply", str(MANIFESTS), *cluster_args(kubeconfig), "--db", str(db))
    assert result.exit_code == 2
    with connect(db, read_only=True) as con:
        assert con.execute(
            "SELECT count(*), count(*) FILTER (WHERE action = 'failed' AND NOT written) "
            "FROM apply_events"
        ).fetchone() == (9, 9)


@pytest.mark.fake_only
def test_unauthorized_is_exit_2(fake_api, fake_kubeconfig):
    fake_api.inject(status=401, times=None, message="Unauthorized")
    result = run("diff", str(MANIFESTS), *cluster_args(fake_kubeconfig))
    assert result.exit_code == 2
    assert "unauthorized (401)" in _one_line(result)


@pytest.mark.fake_only
def test_rejected_object_is_still_exit_1(fake_api, fake_kubeconfig, tmp_path):
    fake_api.inject(
        status=422, verb="patch", resource="poddisruptionbudgets", times=None, message="invalid"
    )
    result = run(
        "apply", str(MANIFESTS), *cluster_args(fake_kubeconfig), "--db", str(tmp_path / "h")
    )
    assert result.exit_code == 1 and "PodDisruptionBudget kgents-triad/nats" in result.output


@pytest.mark.fake_only
def test_verify_records_to_the_default_history(fake_api, fake_kubeconfig, _default_db):
    seed_workloads(fake_api)
    assert run("apply", str(MANIFESTS), *cluster_args(fake_kubeconfig)).exit_code == 0
    verified = run(
        "verify", str(MANIFESTS), *cluster_args(fake_kubeconfig), "--intent", str(INTENT)
    )
    assert verified.exit_code == 0, verified.output
    with connect(_default_db, read_only=True) as con:  # KGENTS_DB_PATH, as apply uses it
        assert con.execute("SELECT mode, context, passed FROM policy_verifications").fetchall() == [
            ("live", "fake", True)
        ]
        assert con.execute("SELECT count(*) FROM apply_events").fetchone()[0] == 9


def test_every_db_option_names_its_environment_variable():
    for cmd in ("apply", "verify"):
        out = run(cmd, "--help").output
        assert "KGENTS_DB_PATH" in out and "data/metrics.duckdb" in out, out


def test_verify_offline_and_missing_intent():
    assert run("verify", str(MANIFESTS), "--offline", "--intent", str(INTENT)).exit_code == 0
    missing = run("verify", str(MANIFESTS), "--offline", "--intent", "nope.yaml")
    assert missing.exit_code == 2 and "intent file nope.yaml does not exist" in missing.output


def test_diff_is_clean_after_apply(cluster, tmp_path):
    """Runs against a real cluster too (KGENTS_TEST_KUBECONFIG): apply, then nothing to diff."""
    args = [
        "--kubeconfig",
        str(cluster.access.kubeconfig),
        "--context",
        str(cluster.access.context),
    ]
    applied = run("apply", str(MANIFESTS), *args, "--db", str(tmp_path / "h.duckdb"))
    assert applied.exit_code == 0, applied.output
    diff = run("diff", str(MANIFESTS), *args)
    assert diff.exit_code == 0, diff.output


@pytest.mark.fake_only
def test_tls_failure_is_exit_2(fake_api, fake_kubeconfig):
    doc = yaml.safe_load(fake_kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = fake_api.url.replace("http://", "https://")
    fake_kubeconfig.write_text(yaml.safe_dump(doc))
    result = run("diff", str(MANIFESTS), *cluster_args(fake_kubeconfig))
    assert result.exit_code == 2
    assert "request failed (TLS)" in _one_line(result) and "SSLError" in result.output
