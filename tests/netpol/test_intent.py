"""The launch intent: the repo's manifests hold it; widened, narrowed or mislabelled copies do not,
with the right violation; lints and exposures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kgents_pipeline.cli import main
from kgents_pipeline.kube.verify import check_manifests
from kgents_pipeline.netpol import (
    IntentReport,
    check_intent,
    load_intent,
    load_objects,
    workload_model,
)

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
INTENT = MANIFESTS / "launch" / "intent.yaml"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    dst = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, dst)
    return dst


def edit(path: Path, fn) -> None:
    docs = list(yaml.safe_load_all(path.read_text()))
    fn(docs)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def by_name(docs: list[dict], name: str, namespace: str | None = None) -> dict:
    return next(
        d
        for d in docs
        if d["metadata"]["name"] == name
        and (namespace is None or d["metadata"]["namespace"] == namespace)
    )


def check(copy: Path) -> IntentReport:
    return check_manifests(copy, copy / "launch" / "intent.yaml")


def test_repo_manifests_hold_the_launch_intent():
    report = check_manifests(MANIFESTS, INTENT)
    assert report.holds, report.to_table()
    assert report.violations == ()
    assert report.expectations_checked == 5
    assert not [x for x in report.lints if x.severity == "error"]
    json.dumps(report.to_dict())  # JSON-able


def test_widened_nats_client_rule_is_an_unexpected_allow(copy):
    # namespaceSelector {} instead of the gateway tier: every namespace reaches 4222
    def widen(docs):
        by_name(docs, "nats")["spec"]["ingress"][0]["from"][0] = {"namespaceSelector": {}}

    edit(copy / "network-policies" / "nats-policy.yaml", widen)
    report = check(copy)
    assert not report.holds
    bad = {(v.kind, v.src, v.port) for v in report.violations}
    assert ("unexpected-allow", "kgents-sandbox/intruder-0", 4222) in bad
    assert ("unexpected-allow", "kgents-triad/triad-0", 4222) in bad
    assert all(
        v.expectation == "nats-client" and v.kind == "unexpected-allow" for v in report.violations
    )
    v = next(v for v in report.violations if v.src == "kgents-sandbox/intruder-0")
    assert "kgents-triad/nats ingress[0].from[0] (all pods in all namespaces)" in v.explanation
    assert not any(v.src == "203.0.113.10" for v in report.violations)  # outside stays shut


def test_rule_without_from_lets_outside_addresses_in(copy):
    def widen(docs):
        del by_name(docs, "redis")["spec"]["ingress"][0]["from"]

    edit(copy / "network-policies" / "redis-policy.yaml", widen)
    report = check(copy)
    assert ("unexpected-allow", "203.0.113.10", 6379) in {
        (v.kind, v.src, v.port) for v in report.violations
    }
    assert any(e.via.startswith("any source") for e in report.exposures)


def test_narrowed_rule_is_a_missing_allow(copy):
    def narrow(docs):
        del by_name(docs, "nats")["spec"]["ingress"][0]["from"][1]  # drop the agents tier

    edit(copy / "network-policies" / "nats-policy.yaml", narrow)
    report = check(copy)
    assert {(v.kind, v.src) for v in report.violations} == {
        ("missing-allow", "kgents-agents/agent-0"),
        ("missing-allow", "kgents-agents/agent-1"),
    }
    assert "no ingress rule matches" in report.violations[0].explanation


def test_namespace_missing_its_tier_label_loses_access(copy):
    def unlabel(docs):
        del by_name(docs, "kgents-gateway")["metadata"]["labels"]["kgents.io/tier"]

    edit(copy / "namespace.yaml", unlabel)
    report = check(copy)
    # The label-based sources move with the label, so only the namespace_labels lint sees it.
    assert not report.holds
    lint = next(x for x in report.lints if x.code == "namespace-label-mismatch")
    assert lint.object == "Namespace kgents-gateway" and "kgents.io/tier=gateway" in lint.message


def test_cli_check_exit_codes_and_json(copy, monkeypatch):
    runner = CliRunner()
    ok = runner.invoke(
        main,
        [
            "policy",
            "check",
            "--manifests",
            str(copy),
            "--intent",
            str(copy / "launch/intent.yaml"),
            "--format",
            "json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["holds"] is True
    monkeypatch.chdir(REPO)  # defaults: manifests/ and manifests/launch/intent.yaml
    assert runner.invoke(main, ["policy", "check"]).exit_code == 0

    def widen(docs):
        by_name(docs, "nats")["spec"]["ingress"][2]["ports"] = []  # monitor rule: every port

    edit(copy / "network-policies" / "nats-policy.yaml", widen)
    bad = runner.invoke(
        main,
        ["policy", "check", "--manifests", str(copy), "--intent", str(copy / "launch/intent.yaml")],
    )
    assert bad.exit_code == 1
    assert "DOES NOT HOLD" in bad.stdout and "unexpected-allow" in bad.stdout
    assert "kgents-observability/prometheus-0" in bad.stdout


def test_pdb_selector_matching_nothing_is_an_error_lint(copy):
    def typo(docs):
        docs[0]["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "natz"}

    edit(copy / "nats" / "pdb.yaml", typo)
    report = check(copy)
    assert not report.holds and report.violations == ()
    assert [(x.code, x.severity) for x in report.lints] == [
        ("pdb-selector-matches-nothing", "error")
    ]


def test_policy_selector_matching_nothing_is_a_warning_only(copy):
    (copy / "network-policies" / "extra.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: old, namespace: kgents-triad}\n"
        "spec: {podSelector: {matchLabels: {app: gone}}, ingress: [{}]}\n"
    )
    kustomization = copy / "network-policies" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + "  - extra.yaml\n")
    report = check(copy)
    assert report.holds
    assert [(x.code, x.severity) for x in report.lints] == [("selector-matches-nothing", "warning")]


def test_pod_selector_only_peer_meant_for_another_namespace_is_an_error_lint(copy):
    # The classic trap: "from the gateway pods" written as a podSelector-only peer.
    def trap(docs):
        by_name(docs, "redis")["spec"]["ingress"][0]["from"][1] = {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}
        }

    edit(copy / "network-policies" / "redis-policy.yaml", trap)
    report = check(copy)
    lint = next(x for x in report.lints if x.code == "peer-own-namespace")
    assert lint.severity == "error" and "kgents-gateway" in lint.message
    assert ("missing-allow", "kgents-gateway/gateway-0") in {
        (v.kind, v.src) for v in report.violations
    }


def test_named_port_resolving_nowhere_is_an_error_lint(copy):
    def name_it(docs):
        by_name(docs, "nats")["spec"]["ingress"][1]["ports"] = [{"port": "routes"}]

    edit(copy / "network-policies" / "nats-policy.yaml", name_it)
    report = check(copy)
    assert ("named-port-unresolved", "error") in {(x.code, x.severity) for x in report.lints}
    assert {v.kind for v in report.violations} == {
        "missing-allow"
    }  # 6222 is closed between NATS pods


def test_ingress_only_default_deny_when_intent_needs_egress_closed_is_an_error_lint(copy):
    intent = copy / "launch" / "intent.yaml"
    doc = yaml.safe_load(intent.read_text())
    doc["egress_isolated_namespaces"] = ["kgents-agents"]
    intent.write_text(yaml.safe_dump(doc))
    report = check(copy)
    lint = next(x for x in report.lints if x.code == "egress-not-closed")
    assert "kgents-agents/default-deny-ingress is ingress-only" in lint.message
    assert not report.holds

    def close(docs):
        by_name(docs, "default-deny-ingress", "kgents-agents")["spec"]["policyTypes"] = [
            "Ingress",
            "Egress",
        ]

    edit(copy / "network-policies" / "default-deny.yaml", close)
    assert not any(x.code == "egress-not-closed" for x in check(copy).lints)


def test_exposures_name_the_namespace_labels_that_grant_access():
    report = check_manifests(MANIFESTS, INTENT)
    vias = {(e.via, e.ports) for e in report.exposures}
    assert ("namespaces labelled kgents.io/tier=gateway", "4222/TCP") in vias
    assert ("namespaces labelled kgents.io/tier=observability", "7777,8222/TCP") in vias
    gw = next(e for e in report.exposures if e.namespace_labels == {"kgents.io/tier": "gateway"})
    assert gw.current_namespaces == ("kgents-gateway",)


def test_destination_workload_without_pods_is_an_error_lint():
    intent = load_intent(INTENT)
    namespaces, pods = workload_model(intent)
    pods = [p for p in pods if p["metadata"]["labels"]["app.kubernetes.io/name"] != "redis"]
    objects = load_objects([MANIFESTS])
    report = check_intent(
        intent,
        namespaces=namespaces + [o for o in objects if o["kind"] == "Namespace"],
        pods=pods,
        policies=[o for o in objects if o["kind"] == "NetworkPolicy"],
    )
    assert not report.holds
    assert [x.code for x in report.lints if x.severity == "error"] == [
        "expectation-without-destination"
    ]


def test_workload_model_shapes_pods_and_namespaces_like_the_api():
    namespaces, pods = workload_model(load_intent(INTENT))
    nats = [p for p in pods if p["metadata"]["name"].startswith("nats-")]
    assert len(nats) == 3
    ports = {(p["containerPort"], p.get("name")) for p in nats[0]["spec"]["containers"][0]["ports"]}
    assert ports == {(4222, "client"), (6222, "cluster"), (8222, "monitor"), (7777, "metrics")}
    assert nats[0]["status"]["podIP"].startswith("10.244.")
    sandbox = next(n for n in namespaces if n["metadata"]["name"] == "kgents-sandbox")
    assert sandbox["metadata"]["labels"] == {"kubernetes.io/metadata.name": "kgents-sandbox"}


def test_check_intent_on_live_shaped_objects():
    # What the cluster-verification layer passes: sanitized API dicts, extra fields included.
    intent = load_intent(INTENT)
    _, pods = workload_model(intent)
    for p in pods:
        p["metadata"]["uid"] = "x"
        p["metadata"]["labels"]["pod-template-hash"] = "abc"
        p["status"]["phase"] = "Running"
    objects = load_objects([MANIFESTS])
    live_ns = [o for o in objects if o["kind"] == "Namespace"] + [
        {
            "metadata": {
                "name": "kgents-sandbox",
                "labels": {"kubernetes.io/metadata.name": "kgents-sandbox"},
            }
        }
    ]
    report = check_intent(
        intent,
        namespaces=live_ns,
        pods=pods,
        policies=[o for o in objects if o["kind"] == "NetworkPolicy"],
        pdbs=[o for o in objects if o["kind"] == "PodDisruptionBudget"],
    )
    assert report.holds, report.to_table()


def test_terminated_pods_are_left_out_of_the_live_check():
    intent = load_intent(INTENT)
    namespaces, pods = workload_model(intent)
    for p in pods:
        if p["metadata"]["labels"]["app.kubernetes.io/name"] == "redis":
            p["status"]["phase"] = "Succeeded"
    objects = load_objects([MANIFESTS / "namespace.yaml", MANIFESTS / "network-policies"])
    report = check_intent(
        intent,
        namespaces=namespaces + [o for o in objects if o["kind"] == "Namespace"],
        pods=pods,
        policies=[o for o in objects if o["kind"] == "NetworkPolicy"],
    )
    assert "expectation-without-destination" in {x.code for x in report.lints}


def test_kustomize_renders_the_whole_launch_set():
    from kgents_pipeline.kube.render import render  # the real kubectl kustomize

    docs = [o.body for o in render(MANIFESTS).objects]
    kinds = {d["kind"] for d in docs}
    assert kinds == {"Namespace", "NetworkPolicy", "PodDisruptionBudget"}
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("PodDisruptionBudget", "nats") in names
    assert {n for k, n in names if k == "Namespace"} == {
        "kgents-agents",
        "kgents-triad",
        "kgents-gateway",
        "kgents-observability",
    }
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2


def test_policy_check_sees_what_kustomize_renders_like_manifests_verify(copy):
    """A kustomize patch that opens the NATS policy to everyone: the raw files still look
    fine, the rendered set (what apply would send) does not, and both commands say so alike."""
    kustomization = copy / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text()
        + "patches:\n"
        + "  - target: {kind: NetworkPolicy, name: nats, namespace: kgents-triad}\n"
        + "    patch: |-\n"
        + "      - op: add\n"
        + "        path: /spec/ingress/-\n"
        + "        value: {}\n"
    )
    intent = str(copy / "launch" / "intent.yaml")
    runner = CliRunner()
    checked = runner.invoke(
        main, ["policy", "check", "--manifests", str(copy), "--intent", intent, "--format", "json"]
    )
    assert checked.exit_code == 1, checked.output
    report = json.loads(checked.output)
    assert report["holds"] is False and report["violations"]
    assert {v["kind"] for v in report["violations"]} == {"unexpected-allow"}
    assert all(v["dst"].startswith("kgents-triad/nats-") for v in report["violations"])
    assert all("kgents-triad/nats" in v["explanation"] for v in report["violations"])
    verified = runner.invoke(
        main,
        ["manifests", "verify", str(copy), "--offline", "--intent", intent, "--format", "json"],
        env={"KGENTS_DB_PATH": str(copy.parent / "h.duckdb")},
    )
    assert verified.exit_code == 1, verified.output
    assert json.loads(verified.output)["violations"] == report["violations"]
